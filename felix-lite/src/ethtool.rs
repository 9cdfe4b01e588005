//! Transmit checksum offload on/off through the `SIOCETHTOOL` ioctl
//! (`ETHTOOL_GTXCSUM` / `ETHTOOL_STXCSUM`), what Felix's
//! `ethtool.EthtoolTXOff` does for `ChecksumOffloadBroken` and what
//! `ethtool -K dev tx off` does. The ioctl goes through a socket, so it acts
//! on the calling thread's network namespace.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;

#[derive(Debug, thiserror::Error)]
pub enum EthtoolError {
    #[error("interface name {0:?} is not a valid Linux interface name")]
    BadName(String),
    #[error("{iface}: ethtool {op} failed: {source}")]
    Ioctl {
        iface: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with the `ifr_data` member; padded to the kernel's 40
/// bytes on 64-bit.
#[repr(C)]
struct IfReqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

fn ioctl(iface: &str, op: &'static str, value: &mut EthtoolValue) -> Result<(), EthtoolError> {
    if iface.is_empty() || iface.len() >= libc::IFNAMSIZ || iface.contains('\0') {
        return Err(EthtoolError::BadName(iface.to_string()));
    }
    let fail = |source| EthtoolError::Ioctl {
        iface: iface.to_string(),
        op,
        source,
    };
    // SAFETY: plain socket(2); the fd is owned and closed by OwnedFd.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh valid descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfReqData {
        name: [0; libc::IFNAMSIZ],
        data: value as *mut EthtoolValue as *mut libc::c_void,
        _pad: [0; 16],
    };
    for (dst, src) in req.name.iter_mut().zip(iface.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: req and the ethtool_value it points to outlive the call; the
    // kernel reads/writes only sizeof(struct ethtool_value) through data.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL as _, &mut req) };
    if rc < 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    Ok(())
}

/// Whether transmit checksum offload is on.
pub fn tx_checksum(iface: &str) -> Result<bool, EthtoolError> {
    let mut v = EthtoolValue {
        cmd: ETHTOOL_GTXCSUM,
        data: 0,
    };
    ioctl(iface, "get tx checksum", &mut v)?;
    Ok(v.data != 0)
}

/// Turns transmit checksum offload on or off; returns whether it changed.
pub fn set_tx_checksum(iface: &str, enabled: bool) -> Result<bool, EthtoolError> {
    if tx_checksum(iface)? == enabled {
        return Ok(false);
    }
    let mut v = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: u32::from(enabled),
    };
    ioctl(iface, "set tx checksum", &mut v)?;
    tracing::info!(iface, enabled, "tx checksum offload changed");
    Ok(true)
}
