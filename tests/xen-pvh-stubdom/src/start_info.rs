//! The command line from the PVH start info (`struct hvm_start_info`,
//! xen/include/public/arch-x86/hvm/start_info.h): magic at offset 0, `cmdline_paddr` (a
//! NUL-terminated string, 0 if none) at offset 24. Memory is identity-mapped (entry.rs).

const MAGIC: u32 = 0x336e_c578;

/// A copy of the command line (at most 256 bytes), split into `key=value` words.
pub struct Cmdline {
    line: [u8; 256],
    len: usize,
}

/// The command line of the start info at physical address `start_info`.
pub fn cmdline(start_info: u64) -> Cmdline {
    let mut c = Cmdline {
        line: [0; 256],
        len: 0,
    };
    let p = start_info as usize as *const u32;
    // SAFETY: Xen placed the start info at this address, which is identity-mapped.
    let (magic, lo, hi) = unsafe {
        (
            p.read_volatile(),
            p.add(6).read_volatile(),
            p.add(7).read_volatile(),
        )
    };
    let addr = (u64::from(hi) << 32) | u64::from(lo);
    if magic != MAGIC || addr == 0 || addr >= 1 << 32 {
        return c;
    }
    while c.len < c.line.len() {
        // SAFETY: the NUL-terminated string Xen wrote below 4 GiB (identity-mapped), read up to
        // the copy's size.
        let b = unsafe { (addr as usize as *const u8).add(c.len).read_volatile() };
        if b == 0 {
            break;
        }
        c.line[c.len] = b;
        c.len += 1;
    }
    c
}

impl Cmdline {
    /// The value of `key=value`, if the line has that word.
    pub fn value(&self, key: &[u8]) -> Option<&[u8]> {
        self.line[..self.len].split(|&b| b == b' ').find_map(|w| {
            let v = w.strip_prefix(key)?;
            v.strip_prefix(b"=")
        })
    }
}
