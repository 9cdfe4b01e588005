//! Kernel settings under `/proc/sys/net`, the one kernel write that is not
//! netlink.
//!
//! `/proc/sys/net` shows the network namespace of the thread that *opens*
//! the file (checked on this kernel: a thread that `setns`-ed into a
//! namespace reads and writes that namespace's values while the rest of the
//! process keeps the host's). So every call opens afresh and acts on the
//! calling thread's namespace; tests/host.rs proves the host is untouched.
//!
//! What Felix (iptables dataplane) sets, and Tabby therefore sets:
//! - `net.ipv4.ip_forward=1` (Felix `IPForwarding=Enabled`).
//! - per workload interface (`endpoint_mgr.go configureInterface`):
//!   `route_localnet=1`, `neigh.<if>.proxy_delay=0`, `proxy_arp=1`,
//!   `forwarding=1`, and `rp_filter` = the host's `conf.default.rp_filter`
//!   (strict unless the host chose otherwise: pods can't spoof sources, and
//!   the /32 route back to the pod makes strict RPF pass), plus IPv6
//!   `accept_ra=0`.
//!
//! Felix leaves `conf.all.rp_filter` alone and so does Tabby: the reverse
//! path of pod traffic is the pod's own /32 route and of VXLAN traffic the
//! block route via `vxlan.calico`, so strict RPF passes for both.

use std::fs;
use std::io::ErrorKind;
use std::path::PathBuf;

/// One value that was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Dotted name as `sysctl` prints it (`net.ipv4.conf.cali1.proxy_arp`).
    pub key: String,
    pub old: String,
    pub new: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("interface name {0:?} is not a valid Linux interface name")]
    BadInterface(String),
    #[error(
        "interface {0} does not exist in this network namespace (no /proc/sys/net/ipv4/conf/{0})"
    )]
    NoInterface(String),
    #[error("{key}: cannot {op} {path}: {source}")]
    Io {
        key: String,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn path_of(parts: &[&str]) -> (String, PathBuf) {
    let mut p = PathBuf::from("/proc/sys");
    for part in parts {
        p.push(part);
    }
    (parts.join("."), p)
}

/// Reads one value (trimmed).
pub fn read(parts: &[&str]) -> Result<String, SysctlError> {
    let (key, path) = path_of(parts);
    fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|source| SysctlError::Io {
            key,
            op: "read",
            path,
            source,
        })
}

/// Writes `value` unless it is already set; returns the change, if any.
pub fn ensure(parts: &[&str], value: &str) -> Result<Option<Change>, SysctlError> {
    let old = read(parts)?;
    if old == value {
        return Ok(None);
    }
    let (key, path) = path_of(parts);
    fs::write(&path, value).map_err(|source| SysctlError::Io {
        key: key.clone(),
        op: "write",
        path,
        source,
    })?;
    tracing::info!(%key, %old, new = value, "sysctl changed");
    Ok(Some(Change {
        key,
        old,
        new: value.to_string(),
    }))
}

fn push(changes: &mut Vec<Change>, c: Option<Change>) {
    if let Some(c) = c {
        changes.push(c);
    }
}

/// Host-wide settings: `net.ipv4.ip_forward=1`.
pub fn ensure_host() -> Result<Vec<Change>, SysctlError> {
    let mut changes = Vec::new();
    push(&mut changes, ensure(&["net", "ipv4", "ip_forward"], "1")?);
    Ok(changes)
}

fn check_iface(iface: &str) -> Result<(), SysctlError> {
    let ok = !iface.is_empty()
        && iface.len() < 16
        && iface != "."
        && iface != ".."
        && !iface.contains(['/', '\0'])
        && !iface.contains(char::is_whitespace);
    if !ok {
        return Err(SysctlError::BadInterface(iface.to_string()));
    }
    let (_, dir) = path_of(&["net", "ipv4", "conf", iface]);
    if !dir.is_dir() {
        return Err(SysctlError::NoInterface(iface.to_string()));
    }
    Ok(())
}

/// Settings for a workload's host-side veth, as Felix applies them.
pub fn ensure_workload(iface: &str) -> Result<Vec<Change>, SysctlError> {
    check_iface(iface)?;
    let mut c = Vec::new();
    let conf = |leaf: &'static str| ["net", "ipv4", "conf", iface, leaf];
    push(&mut c, ensure(&conf("route_localnet"), "1")?);
    push(
        &mut c,
        ensure(&["net", "ipv4", "neigh", iface, "proxy_delay"], "0")?,
    );
    push(&mut c, ensure(&conf("proxy_arp"), "1")?);
    push(&mut c, ensure(&conf("forwarding"), "1")?);
    // Felix reads conf/default/rp_filter once and falls back to strict.
    let rp = read(&["net", "ipv4", "conf", "default", "rp_filter"]).unwrap_or_else(|_| "1".into());
    push(&mut c, ensure(&conf("rp_filter"), &rp)?);
    // Router advertisements from a pod must not configure the host; absent
    // when IPv6 is disabled, which is fine.
    match ensure(&["net", "ipv6", "conf", iface, "accept_ra"], "0") {
        Ok(ch) => push(&mut c, ch),
        Err(SysctlError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(c)
}
