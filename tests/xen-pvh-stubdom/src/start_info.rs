//! The command line from the PVH start info (`xen::sys::HvmStartInfo`, from the spec's
//! `hvm/start_info.toml`). Memory is identity-mapped (entry.rs).

use xen::sys::{HvmStartInfo, XEN_HVM_START_MAGIC_VALUE};

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
    // SAFETY: Xen placed the start info at this address, which is identity-mapped; a copy,
    // read once (it may not be 8-aligned).
    let info = unsafe { (start_info as usize as *const HvmStartInfo).read_unaligned() };
    let addr = info.cmdline_paddr;
    if info.magic != XEN_HVM_START_MAGIC_VALUE || addr == 0 || addr >= 1 << 32 {
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
