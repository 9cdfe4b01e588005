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
//! For IPv6 (only when the desired state has any): `net.ipv6.conf.all.forwarding=1`
//! on the host, and per IPv6 workload interface what Felix and Calico's
//! CNI plugin set: `disable_ipv6=0` (without IPv6 the host end has no
//! link-local address, and that address, `fe80::ecee:eeff:feee:eeee` from
//! the MAC `ee:ee:ee:ee:ee:ee`, is the pod's gateway), `proxy_ndp=1`,
//! `forwarding=1` and `accept_ra=0`. Their writes notify
//! `RTNLGRP_IPV6_NETCONF`, except `accept_ra` and `disable_ipv6`, which the
//! periodic read covers.
//!
//! How drift is noticed: a write of `ip_forward` (which is
//! `conf.all.forwarding`), `forwarding`, `proxy_arp` or `rp_filter` makes
//! the kernel send `RTM_NEWNETCONF` to `RTNLGRP_IPV4_NETCONF` (seen with
//! `ip monitor netconf`), which the reconciler follows, so those are put
//! back by the pass it wakes. `route_localnet`, `proxy_delay` and
//! `accept_ra` send nothing; for them the reconciler reads every value here
//! with [`check_host`]/[`check_workload`] (reads only, no writes) every few
//! seconds and runs a pass when one drifted.
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

/// Writes `value` as it is (the caller has read the old one and logs).
pub fn write(parts: &[&str], value: &str) -> Result<(), SysctlError> {
    let (key, path) = path_of(parts);
    fs::write(&path, value).map_err(|source| SysctlError::Io {
        key,
        op: "write",
        path,
        source,
    })
}

/// Writes `value` unless it is already set; returns the change, if any.
pub fn ensure(parts: &[&str], value: &str) -> Result<Option<Change>, SysctlError> {
    settle(parts, value, Mode::Write)
}

/// Whether [`settle`] fixes a drifted value or only reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Write,
    /// Read only: the reconciler's cheap periodic look (see
    /// [`check_host`]) must not write outside a pass, which is where
    /// changes are reported.
    Check,
}

fn settle(parts: &[&str], value: &str, mode: Mode) -> Result<Option<Change>, SysctlError> {
    let old = read(parts)?;
    if old == value {
        return Ok(None);
    }
    let (key, path) = path_of(parts);
    if mode == Mode::Write {
        fs::write(&path, value).map_err(|source| SysctlError::Io {
            key: key.clone(),
            op: "write",
            path,
            source,
        })?;
        tracing::info!(%key, %old, new = value, "sysctl changed");
    }
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
    host(Mode::Write)
}

/// What [`ensure_host`] would change, without writing: one read of
/// `/proc/sys`.
pub fn check_host() -> Result<Vec<Change>, SysctlError> {
    host(Mode::Check)
}

fn host(mode: Mode) -> Result<Vec<Change>, SysctlError> {
    let mut changes = Vec::new();
    push(
        &mut changes,
        settle(&["net", "ipv4", "ip_forward"], "1", mode)?,
    );
    Ok(changes)
}

/// Host-wide IPv6 settings: `net.ipv6.conf.all.forwarding=1`.
pub fn ensure_host6() -> Result<Vec<Change>, SysctlError> {
    host6(Mode::Write)
}

pub fn check_host6() -> Result<Vec<Change>, SysctlError> {
    host6(Mode::Check)
}

fn host6(mode: Mode) -> Result<Vec<Change>, SysctlError> {
    let mut changes = Vec::new();
    push(
        &mut changes,
        settle(&["net", "ipv6", "conf", "all", "forwarding"], "1", mode)?,
    );
    Ok(changes)
}

/// IPv6 settings for a workload's host-side veth.
pub fn ensure_workload6(iface: &str) -> Result<Vec<Change>, SysctlError> {
    workload6(iface, Mode::Write)
}

pub fn check_workload6(iface: &str) -> Result<Vec<Change>, SysctlError> {
    workload6(iface, Mode::Check)
}

fn workload6(iface: &str, mode: Mode) -> Result<Vec<Change>, SysctlError> {
    check_iface(iface)?;
    let mut c = Vec::new();
    let conf = |leaf: &'static str| ["net", "ipv6", "conf", iface, leaf];
    push(&mut c, settle(&conf("disable_ipv6"), "0", mode)?);
    push(&mut c, settle(&conf("proxy_ndp"), "1", mode)?);
    push(&mut c, settle(&conf("forwarding"), "1", mode)?);
    push(&mut c, settle(&conf("accept_ra"), "0", mode)?);
    Ok(c)
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
    workload(iface, Mode::Write)
}

/// What [`ensure_workload`] would change, without writing (six reads).
pub fn check_workload(iface: &str) -> Result<Vec<Change>, SysctlError> {
    workload(iface, Mode::Check)
}

fn workload(iface: &str, mode: Mode) -> Result<Vec<Change>, SysctlError> {
    check_iface(iface)?;
    let mut c = Vec::new();
    let conf = |leaf: &'static str| ["net", "ipv4", "conf", iface, leaf];
    push(&mut c, settle(&conf("route_localnet"), "1", mode)?);
    push(
        &mut c,
        settle(&["net", "ipv4", "neigh", iface, "proxy_delay"], "0", mode)?,
    );
    push(&mut c, settle(&conf("proxy_arp"), "1", mode)?);
    push(&mut c, settle(&conf("forwarding"), "1", mode)?);
    // Felix reads conf/default/rp_filter once and falls back to strict.
    let rp = read(&["net", "ipv4", "conf", "default", "rp_filter"]).unwrap_or_else(|_| "1".into());
    push(&mut c, settle(&conf("rp_filter"), &rp, mode)?);
    // Router advertisements from a pod must not configure the host; absent
    // when IPv6 is disabled, which is fine.
    match settle(&["net", "ipv6", "conf", iface, "accept_ra"], "0", mode) {
        Ok(ch) => push(&mut c, ch),
        Err(SysctlError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(c)
}
