//! Output on the HVM debug port 0xe9, which Xen prints on its console as `(dN) ...` lines.

use core::arch::asm;

/// The console; `say!` formats a line onto it.
pub struct Con;

impl core::fmt::Write for Con {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            out(b);
        }
        Ok(())
    }
}

/// One byte to the port.
pub fn out(b: u8) {
    // SAFETY: port I/O from the guest kernel; Xen intercepts port 0xe9.
    unsafe { asm!("out 0xe9, al", in("al") b, options(nomem, nostack, preserves_flags)) };
}

/// Print one line.
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::console::Con, format_args!($($t)*));
        $crate::console::out(b'\n');
    }};
}
