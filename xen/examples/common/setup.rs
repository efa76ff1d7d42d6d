//! What the virtio examples share: RAM ranges from the command line, stopping on a signal, and
//! the guest's RAM mapped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use xen::linux::Linux;
use xen::memory::GuestRam;
use xen::Xen;

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Set by SIGTERM and SIGINT, which also wake the serving loop.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// `START-END` (hex, inclusive) as (start, length).
pub fn ram_range(r: &str) -> Res<(u64, u64)> {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16);
    let (a, b) = r.split_once('-').ok_or("a RAM range is START-END in hex")?;
    let (a, b) = (hex(a)?, hex(b)?);
    if b < a {
        return Err("a RAM range ends before it starts".into());
    }
    Ok((a, b - a + 1))
}

/// The library's warnings (a device that needs a reset, a back end that broke the protocol),
/// one line each on stderr; `XEN_LOG=info` or `debug` for more.
struct Stderr;
impl log::Log for Stderr {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("{}: {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}
static STDERR: Stderr = Stderr;

/// The platform, with SIGTERM and SIGINT setting [`STOP`] and waking the loop, and the
/// library's warnings on stderr.
pub fn open(nonblocking: bool) -> Res<Arc<Xen<Linux>>> {
    if log::set_logger(&STDERR).is_ok() {
        let level = match std::env::var("XEN_LOG").as_deref() {
            Ok("debug") => log::LevelFilter::Debug,
            Ok("info") => log::LevelFilter::Info,
            _ => log::LevelFilter::Warn,
        };
        log::set_max_level(level);
    }
    let linux = if nonblocking {
        Linux::open_nonblocking()?
    } else {
        Linux::open()?
    };
    let xen = Arc::new(Xen::new(linux)?);
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let x = Arc::clone(&xen);
        // SAFETY: the handler stores to an atomic and makes one ioctl; no allocation, no lock.
        unsafe {
            signal_hook::low_level::register(sig, move || {
                STOP.store(true, Ordering::Release);
                x.platform().request_stop();
            })
        }?;
    }
    Ok(xen)
}

/// The guest's RAM in `ram`, mapped (pages Xen has not populated are reported, not mapped).
pub fn guest_ram(
    name: &str,
    xen: &Xen<Linux>,
    domid: xen::DomId,
    ram: &[(u64, u64)],
) -> Res<GuestRam<xen::linux::LinuxPages>> {
    let guest = GuestRam::map(xen.platform(), domid, ram)?;
    if !guest.failed_pages().is_empty() {
        eprintln!(
            "{name}: {} pages of the given RAM are not mapped",
            guest.failed_pages().len()
        );
    }
    Ok(guest)
}
