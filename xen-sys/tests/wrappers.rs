//! Typed hypercall wrappers against a recording backend: each wrapper must issue the right
//! hypercall number with the right argument registers, and map Xen's result.

use std::cell::RefCell;

use xen_sys::*;

/// Records every call and answers with a programmed result.
struct Recorder {
    calls: RefCell<Vec<(u32, [u64; 5])>>,
    ret: i64,
}

impl Recorder {
    fn new(ret: i64) -> Self {
        Recorder {
            calls: RefCell::new(Vec::new()),
            ret,
        }
    }

    fn only_call(&self) -> (u32, [u64; 5]) {
        let calls = self.calls.borrow();
        assert_eq!(calls.len(), 1, "{calls:?}");
        calls[0]
    }
}

// SAFETY: a test double: it never dereferences the pointers it is given.
unsafe impl Hypercall for Recorder {
    unsafe fn hypercall(&self, op: u32, args: [u64; 5]) -> i64 {
        self.calls.borrow_mut().push((op, args));
        self.ret
    }
}

#[test]
fn event_channel_send_passes_cmd_and_pointer() {
    let r = Recorder::new(0);
    let send = EvtchnSend { port: 7 };
    // SAFETY: the recorder does not dereference the pointer.
    let res = unsafe { event_channel_op_send(&r, &send) };
    assert_eq!(res, Ok(0));
    let (op, args) = r.only_call();
    assert_eq!(op, 32);
    assert_eq!(op, __HYPERVISOR_event_channel_op);
    assert_eq!(args[0], EVTCHNOP_send as u64);
    assert_eq!(args[0], 4);
    assert_eq!(args[1], &send as *const EvtchnSend as usize as u64);
    assert_eq!(&args[2..], &[0, 0, 0]);
}

#[test]
fn xen_version_version_passes_a_null_argument_and_returns_the_value() {
    let r = Recorder::new(0x0004_0011);
    // SAFETY: no memory is passed.
    let v = unsafe { xen_version_version(&r) }.unwrap();
    assert_eq!(XenVersion::from_xenver(v as u32), XenVersion::new(4, 17));
    assert_eq!(r.only_call(), (17, [XENVER_version as u64, 0, 0, 0, 0]));
}

#[test]
fn errors_come_back_as_xen_errno() {
    let r = Recorder::new(-38);
    let mut param = XenHvmParam::default();
    // SAFETY: the recorder does not dereference the pointer.
    let e = unsafe { hvm_op_get_param(&r, &mut param) };
    assert_eq!(e, Err(XenErrno::ENOSYS));
    assert_eq!(e.unwrap_err().name(), Some("XEN_ENOSYS"));
    let (op, args) = r.only_call();
    assert_eq!(op, __HYPERVISOR_hvm_op);
    assert_eq!(args[0], HVMOP_get_param as u64);
    assert_eq!(args[1], &mut param as *mut XenHvmParam as usize as u64);
}

#[test]
fn console_io_write_passes_count_and_buffer() {
    let r = Recorder::new(5);
    let msg = b"hello";
    // SAFETY: the recorder does not dereference the pointer.
    let n = unsafe { console_io_write(&r, msg.len() as u32, msg.as_ptr()) };
    assert_eq!(n, Ok(5));
    assert_eq!(
        r.only_call(),
        (
            __HYPERVISOR_console_io,
            [
                CONSOLEIO_write as u64,
                5,
                msg.as_ptr() as usize as u64,
                0,
                0
            ]
        )
    );
}

#[test]
fn dm_op_passes_domid_count_and_buffer_array() {
    let r = Recorder::new(0);
    let op = XenDmOp {
        op: XenDmop::NR_VCPUS,
        ..Default::default()
    };
    let mut bufs = [XenDmOpBuf {
        h: GuestHandle::from_ptr(&op),
        size: core::mem::size_of::<XenDmOp>() as _,
    }];
    // SAFETY: the recorder does not dereference the pointers.
    let res = unsafe { dm_op(&r, 5, 1, bufs.as_mut_ptr()) };
    assert_eq!(res, Ok(0));
    let (nr, args) = r.only_call();
    assert_eq!(nr, 41);
    assert_eq!(args[0], 5);
    assert_eq!(args[1], 1);
    assert_eq!(args[2], bufs.as_ptr() as usize as u64);
}

#[test]
fn memory_op_acquire_resource_and_sched_op_numbers() {
    let r = Recorder::new(0);
    let mut ar = XenMemAcquireResource {
        domid: 3,
        r#type: XenMemResourceType::IOREQ_SERVER,
        ..Default::default()
    };
    // SAFETY: the recorder does not dereference the pointer.
    unsafe { memory_op_acquire_resource(&r, &mut ar) }.unwrap();
    assert_eq!(r.only_call().0, 12);
    assert_eq!(r.only_call().1[0], 28);

    let r = Recorder::new(0);
    let sd = SchedShutdown {
        reason: SchedShutdownReason::POWEROFF,
    };
    // SAFETY: the recorder does not dereference the pointer.
    unsafe { sched_op_shutdown(&r, &sd) }.unwrap();
    assert_eq!(r.only_call().0, 29);
    assert_eq!(r.only_call().1[0], 2);
}

#[test]
fn ioreq_bitfield_accessors_match_the_reference_bit_positions() {
    // Reference: bits 0-3 state (0x0F), bit 4 data_is_ptr (0x10), bit 5 dir (0x20), bit 6 df (0x40).
    assert_eq!(IoreqFlags::STATE_MASK, 0x0f);
    assert_eq!(IoreqFlags::DATA_IS_PTR_MASK, 0x10);
    assert_eq!(IoreqFlags::DIR_MASK, 0x20);
    assert_eq!(IoreqFlags::DF_MASK, 0x40);
    let f = IoreqFlags(0x7b); // 0111_1011: df=1, dir=1, data_is_ptr=1, state=0xb
    assert_eq!(f.state(), 0xb);
    assert_eq!(f.data_is_ptr(), 1);
    assert_eq!(f.dir(), 1);
    assert_eq!(f.df(), 1);
    let g = IoreqFlags::default()
        .with_state(STATE_IORESP_READY)
        .with_dir(IOREQ_READ)
        .with_df(1);
    assert_eq!(g.0, 0x03 | 0x20 | 0x40);
    // with_ masks the value to the member's width and leaves the rest alone.
    assert_eq!(g.with_state(0xff).0, 0x0f | 0x20 | 0x40);
    assert_eq!(g.with_dir(0).0, 0x03 | 0x40);

    // The byte sits at offset 30 of ioreq, type at 31.
    let mut req = Ioreq {
        flags: g,
        r#type: IoreqType::PCI_CONFIG,
        ..Default::default()
    };
    req.addr = 0x1122_3344_5566_7788;
    let bytes = zerocopy::IntoBytes::as_bytes(&req);
    assert_eq!(bytes[30], 0x63);
    assert_eq!(bytes[31], 2);
    assert_eq!(&bytes[0..8], &0x1122_3344_5566_7788u64.to_le_bytes());
}

#[test]
fn buf_ioreq_bits_match_the_reference() {
    // bits 0-7 type, bit 9 dir, bits 10-11 size, bits 12-31 addr; data is the next u32.
    let lo = BufIoreqLo(0)
        .with_type(1)
        .with_dir(1)
        .with_size(3)
        .with_addr(0xfffff);
    assert_eq!(lo.0, 1 | (1 << 9) | (3 << 10) | (0xfffff << 12));
    assert_eq!(lo.addr(), 0xfffff);
    assert_eq!(core::mem::size_of::<BufferedIopage>(), 4096);
}

#[test]
fn value_sets_keep_unknown_values() {
    let t = IoreqType(0x42);
    assert_eq!(t.name(), None);
    assert_eq!(format!("{t:?}"), "IoreqType(66)");
    assert_eq!(
        format!("{:?}", IoreqType::INVALIDATE),
        "IOREQ_TYPE_INVALIDATE"
    );
    assert_eq!(IoreqType::INVALIDATE.0, 8);
    assert_eq!(XenDmop::NR_VCPUS.0, 20);
    assert_eq!(XenErrno::EOPNOTSUPP.0, 95);
}

#[test]
fn flags_combine_and_report_unknown_bits() {
    let f = XenDmopIoreqServerInfoFlags::NO_GFNS;
    assert_eq!(f.bits(), 1);
    assert!(f.contains(XenDmopIoreqServerInfoFlags::NO_GFNS));
    assert_eq!(XenDmopIoreqServerInfoFlags(0x8001).unknown_bits(), 0x8000);
    let a = XenDmopIoreqMemAccess::READ | XenDmopIoreqMemAccess::WRITE;
    assert_eq!(a.bits(), 3);
}

#[test]
fn dm_op_union_members_round_trip_and_zero_the_rest() {
    let mut op = XenDmOp {
        op: XenDmop::MAP_IO_RANGE_TO_IOREQ_SERVER,
        ..Default::default()
    };
    op.u.set_map_io_range_to_ioreq_server(XenDmOpIoreqServerRange {
        id: 1,
        r#type: XenDmopIoRangeType::MEMORY,
        start: 0xfe00_0000,
        end: 0xfe00_0fff,
        ..Default::default()
    });
    let bytes = zerocopy::IntoBytes::as_bytes(&op);
    assert_eq!(bytes.len(), 32);
    assert_eq!(&bytes[0..4], &3u32.to_le_bytes());
    assert_eq!(&bytes[8..10], &1u16.to_le_bytes());
    assert_eq!(&bytes[12..16], &1u32.to_le_bytes());
    assert_eq!(&bytes[16..24], &0xfe00_0000u64.to_le_bytes());
    assert_eq!(op.u.map_io_range_to_ioreq_server().end, 0xfe00_0fff);
    op.u.set_nr_vcpus(XenDmOpNrVcpus { vcpus: 4 });
    assert_eq!(op.u.nr_vcpus().vcpus, 4);
    assert!(op.u.bytes()[4..].iter().all(|b| *b == 0));
}

#[test]
fn pci_sbdf_matches_the_macro() {
    assert_eq!(pci_sbdf(0xffff, 0xff, 0x1f, 7), 0xffff_ffff);
    assert_eq!(pci_sbdf(0, 1, 2, 3), (1 << 8) | (2 << 3) | 3);
    // Out-of-range device/function bits are masked as in C.
    assert_eq!(pci_sbdf(0, 0, 0x20, 8), 0);
}

#[cfg(target_pointer_width = "64")]
#[test]
fn lp64_ioctl_numbers() {
    assert_eq!(IOCTL_PRIVCMD_HYPERCALL, 0x0030_5000);
    assert_eq!(IOCTL_PRIVCMD_DM_OP, 0x0010_5005);
    assert_eq!(IOCTL_PRIVCMD_MMAP_RESOURCE, 0x0020_5007);
    assert_eq!(IOCTL_EVTCHN_BIND_INTERDOMAIN, 0x0008_4501);
    assert_eq!(core::mem::size_of::<XenDmOpBuf>(), 16);
}

#[test]
fn abi_metadata() {
    assert_eq!(<Ioreq as XenAbi>::C_NAME, "struct ioreq");
    assert_eq!(<XenDmOpU as XenAbi>::C_NAME, "");
    assert!(<XenDmOpNrVcpus as XenAbi>::SINCE >= XenVersion::new(4, 15));
}

#[test]
fn grant_table_op_copy_passes_cmd_array_and_count() {
    let r = Recorder::new(0);
    let mut source = GnttabCopyPtr {
        domid: 3,
        offset: 0x10,
        ..Default::default()
    };
    source.u.set_ref(42);
    let mut dest = GnttabCopyPtr {
        domid: DOMID_SELF,
        ..Default::default()
    };
    dest.u.set_gmfn(0x1234);
    let mut ops = [
        GnttabCopy {
            source,
            dest,
            len: 0x20,
            flags: GnttabCopyFlags::SOURCE_GREF,
            ..Default::default()
        },
        GnttabCopy::default(),
    ];
    // SAFETY: the recorder does not dereference the pointer.
    let res = unsafe { grant_table_op_copy(&r, ops.as_mut_ptr(), ops.len() as u32) };
    assert_eq!(res, Ok(0));
    assert_eq!(
        r.only_call(),
        (
            __HYPERVISOR_grant_table_op,
            [GNTTABOP_copy as u64, ops.as_ptr() as usize as u64, 2, 0, 0]
        )
    );
    assert_eq!(GNTTABOP_copy, 5);
    // The union holds a grant reference or a frame number in the first bytes of each end.
    let bytes = zerocopy::IntoBytes::as_bytes(&ops[0]);
    let end = core::mem::size_of::<GnttabCopyPtr>();
    assert_eq!(&bytes[0..4], &42u32.to_le_bytes());
    assert_eq!(&bytes[end..end + 4], &0x1234u32.to_le_bytes());
    assert_eq!(ops[0].dest.u.gmfn(), 0x1234);
    assert_eq!(ops[1].status, GnttabStatus::OKAY);
    assert_eq!(GnttabStatus(-13).name(), Some("GNTST_no_space"));
}
