//! Property tests of request decoding: any 32 bytes decode without panicking, and whatever
//! decodes satisfies the invariants the server relies on.

use proptest::prelude::*;
use xen::ioreq::{decode, fallback_size, Data, Dir, Invalid, Request};
use xen::sys::{Ioreq, IoreqType};

fn raw() -> impl Strategy<Value = Ioreq> {
    (any::<[u8; 32]>(), 0u32..10, 0u32..9, 0u8..10).prop_map(|(bytes, size, count, ty)| {
        let mut r: Ioreq = zerocopy::transmute!(bytes);
        // Bias towards plausible values half of the time.
        if bytes[0] & 1 == 0 {
            r.size = size;
            r.count = count;
            r.r#type = IoreqType(ty);
        }
        r
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn decoding_never_panics_and_keeps_its_promises(r in raw()) {
        match decode(&r) {
            Ok(Request::Pio(a)) => {
                prop_assert_eq!(r.r#type, IoreqType::PIO);
                prop_assert!(a.addr <= 0xffff);
                prop_assert!(a.size.bytes() <= 4);
                prop_assert!(a.count >= 1);
                prop_assert!(u64::from(a.count) * u64::from(a.size.bytes()) <= 4096);
                if let Data::Value(v) = a.data { prop_assert_eq!(v & !a.size.mask(), 0); }
            }
            Ok(Request::Mmio(a)) => {
                prop_assert_eq!(r.r#type, IoreqType::COPY);
                prop_assert_eq!(a.size.bytes(), r.size);
                prop_assert_eq!(a.count, r.count);
                prop_assert_eq!(a.dir == Dir::Read, r.flags.dir() == 1);
                prop_assert_eq!(a.df, r.flags.df() == 1);
                match a.data {
                    Data::GuestPtr(p) => { prop_assert_eq!(p, r.data); prop_assert_eq!(r.flags.data_is_ptr(), 1); }
                    Data::Value(v) => prop_assert_eq!(v & !a.size.mask(), 0),
                }
            }
            Ok(Request::PciConfig(p)) => {
                prop_assert_eq!(r.count, 1);
                prop_assert!(p.size.bytes() <= 4);
                prop_assert_eq!(u64::from(p.sbdf), r.addr >> 32);
                prop_assert_eq!(p.data & !p.size.mask(), 0);
            }
            Ok(Request::Invalidate) => prop_assert_eq!(r.r#type, IoreqType::INVALIDATE),
            Ok(Request::TimeOffset(o)) => { prop_assert_eq!(r.r#type, IoreqType::TIMEOFFSET); prop_assert_eq!(o, r.data); }
            Err(Invalid::Size(s)) => prop_assert!(![1, 2, 4, 8].contains(&s)),
            Err(Invalid::CountZero) => prop_assert_eq!(r.count, 0),
            Err(Invalid::CountTooLarge(c)) => prop_assert!(u64::from(c) * u64::from(r.size) > 4096),
            Err(Invalid::UnknownType(t)) => prop_assert!(![0u8, 1, 2, 7, 8].contains(&t)),
            Err(Invalid::PortOutOfRange(a)) => prop_assert!(a > 0xffff),
            Err(Invalid::PortSize(s)) => prop_assert_eq!(s, 8),
            Err(Invalid::PciSize(s)) => prop_assert_eq!(s, 8),
            Err(Invalid::PciShape) => prop_assert!(r.count != 1 || r.flags.data_is_ptr() == 1),
            // Decoding knows no ranges: the server refuses unclaimed accesses after it.
            Err(e) => prop_assert!(false, "decode gave {:?}", e),
        }
    }

    #[test]
    fn fallback_sizes_are_real_sizes_covering_the_request(s in any::<u32>()) {
        let f = fallback_size(s);
        prop_assert!([1, 2, 4, 8].contains(&f.bytes()));
        prop_assert!(f.bytes() >= s.min(8));
    }
}
