//! One error type for a back end: xenstore's and the device backends' errors convert into
//! `xen::Error` with `?`, keeping their operation and errno (shown by name).
#![cfg(all(feature = "std", target_os = "linux"))]

use xen::sys::backend::privcmd::{Errno, Error as DeviceError};

fn from_xenstore() -> Result<(), xen::Error> {
    Err(xen::xenstore::Error::Daemon {
        op: "XS_READ",
        path: "/local/domain/5/name".into(),
        errno: 2,
        name: "ENOENT".into(),
    })?;
    Ok(())
}

fn from_device() -> Result<(), xen::Error> {
    Err(DeviceError::Ioctl {
        op: "IOCTL_EVTCHN_BIND_INTERDOMAIN",
        errno: Errno::from_raw_os_error(3),
    })?;
    Ok(())
}

fn from_device_without_errno() -> Result<(), xen::Error> {
    Err(DeviceError::Invalid {
        op: "IOCTL_PRIVCMD_DM_OP",
        reason: "more than 16 buffers",
    })?;
    Ok(())
}

#[test]
fn xenstore_and_device_errors_convert_with_their_operation_and_errno() {
    let e = from_xenstore().unwrap_err();
    assert_eq!(e.errno(), Some(2));
    assert_eq!(e.to_string(), "XS_READ: ENOENT (errno 2)");
    let e = from_device().unwrap_err();
    assert_eq!(
        e,
        xen::Error::Os {
            op: "IOCTL_EVTCHN_BIND_INTERDOMAIN",
            errno: 3
        }
    );
    assert_eq!(
        e.to_string(),
        "IOCTL_EVTCHN_BIND_INTERDOMAIN: ESRCH (errno 3)"
    );
    // No errno: no made-up one either.
    let e = from_device_without_errno().unwrap_err();
    assert_eq!(e.errno(), None);
    assert_eq!(e.to_string(), "IOCTL_PRIVCMD_DM_OP: more than 16 buffers");
}
