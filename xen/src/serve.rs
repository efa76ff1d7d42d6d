//! The event loop of a bus of devices on one IOREQ server (`PciBus::serve`,
//! `MmioBus::serve`): one thread waits in `poll(2)` on the event channel and every device's
//! interrupt descriptors, serves the guest's requests, relays back ends' interrupts and
//! notices back ends that go or come back.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use crate::ioreq::{Handler, IoreqServer};
use crate::platform::Platform;
use crate::Error;

/// A bus's devices as the loop sees them, by index.
pub(crate) trait Sources: Handler {
    /// How many devices.
    fn count(&self) -> usize;
    /// Device `i`'s descriptors that become readable when it has interrupts to relay.
    fn fds(&self, i: usize) -> Vec<BorrowedFd<'_>>;
    /// How soon device `i` wants polling even if none of its descriptors becomes readable.
    fn timeout(&self, i: usize) -> Option<Duration>;
    /// Relay device `i`'s interrupts and notice its back end's comings and goings.
    fn poll(&mut self, i: usize);
    /// Changes whenever a device's saved state does.
    fn generation(&self) -> u64;
}

/// Serve `bus` on `server` until `stop` is set and the platform woken; `changed` after every
/// wake-up in which the guest changed the bus's saved state.
pub(crate) fn serve<B: Sources, P: Platform + AsFd>(
    bus: &mut B,
    server: &mut IoreqServer<'_, P>,
    stop: &AtomicBool,
    mut changed: impl FnMut(&B),
) -> Result<(), Error> {
    let mut generation = bus.generation();
    let xen = server.xen_ref();
    // Which devices to poll after this wake-up (bit per device; all past 64).
    let mut due: u64;
    let mut events: bool;
    let bit = |i: usize| 1u64.checked_shl(i as u32).unwrap_or(u64::MAX);
    while !stop.load(Ordering::Acquire) {
        {
            let mut fds = Vec::with_capacity(8);
            fds.push(PollFd::new(xen.platform(), PollFlags::IN));
            // The device each descriptor belongs to.
            let mut owner = Vec::with_capacity(8);
            let irqs: Vec<_> = (0..bus.count())
                .flat_map(|i| bus.fds(i).into_iter().map(move |fd| (i, fd)))
                .collect();
            for (i, fd) in &irqs {
                fds.push(PollFd::new(fd, PollFlags::IN));
                owner.push(*i);
            }
            let timeout = (0..bus.count())
                .filter_map(|i| bus.timeout(i))
                .min()
                .map(|t| Timespec {
                    tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
                    tv_nsec: t.subsec_nanos().into(),
                });
            let polled = poll(&mut fds, timeout.as_ref());
            // The event channel woke us (requests, or a stop): serve it; an interrupt or a
            // timeout alone does not need its (empty) read.
            events = !(polled.is_ok() && fds[0].revents().is_empty());
            due = match polled {
                // Timed out: every device (one is waiting to reconnect).
                Ok(0) => u64::MAX,
                Ok(_) => {
                    let mut d = 0u64;
                    for (fd, &i) in fds[1..].iter().zip(&owner) {
                        if !fd.revents().is_empty() {
                            d |= bit(i);
                        }
                    }
                    d
                }
                Err(rustix::io::Errno::INTR) => u64::MAX,
                Err(e) => {
                    return Err(Error::Os {
                        op: "poll",
                        errno: e.raw_os_error(),
                    })
                }
            };
        }
        if events {
            match server.serve_once(bus) {
                Ok(_) => {}
                Err(Error::Stopped) => return Ok(()),
                Err(e) => return Err(e),
            }
            let now = bus.generation();
            if now != generation {
                generation = now;
                changed(bus);
            }
        }
        // Only the devices whose descriptors woke us (an idle device costs no system call),
        // and those waiting for a back end to come back.
        for i in 0..bus.count() {
            if due & bit(i) != 0 || bus.timeout(i).is_some() {
                bus.poll(i);
            }
        }
    }
    Ok(())
}
