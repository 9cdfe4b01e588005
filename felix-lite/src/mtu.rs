//! Host and pod MTU, following Felix's `findHostMTU` and encapsulation
//! overheads (`int_dataplane.go`).
//!
//! Felix takes the smallest MTU of the up links whose names match
//! `MTUIfacePattern`, falling back to 1460 when none match (calico#9718 /
//! #4522: a NIC named outside the pattern silently gave pods the fallback).
//! Tabby prefers the MTU of the autodetected node interface when it is
//! known: that is the interface VXLAN is bound to, so its MTU is the one the
//! encapsulated packets must fit. The pattern is the fallback, and the
//! result says which rule produced the number.

use crate::autodetect::{self, HostError, HostInterface};
use regex::Regex;

/// Felix's default `MTUIfacePattern`.
pub const DEFAULT_IFACE_PATTERN: &str = r"^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)";
/// Felix's value when no interface matches.
pub const FALLBACK_HOST_MTU: u32 = 1460;

/// Encapsulation in use on the pod network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    None,
    Vxlan,
    Ipip,
    Wireguard,
}

impl Encap {
    /// Bytes of overhead for IPv4 (Felix: VXLAN 50, IPIP 20, WireGuard 60).
    pub fn overhead(self) -> u32 {
        match self {
            Encap::None => 0,
            Encap::Vxlan => crate::model::VXLAN_OVERHEAD,
            Encap::Ipip => 20,
            Encap::Wireguard => 60,
        }
    }
}

/// The host MTU and where it came from (for the start-up log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMtu {
    pub mtu: u32,
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MtuError {
    #[error("FELIX_MTUIFACEPATTERN={pattern:?} is not a valid regex: {source}")]
    Pattern {
        pattern: String,
        #[source]
        source: regex::Error,
    },
    #[error("FELIX_VXLANMTU={value:?}: expected a whole number of bytes between 68 and 65535 (0 = auto)")]
    VxlanMtu { value: String },
    #[error(transparent)]
    Host(#[from] HostError),
}

/// The choice over a snapshot: `node_interface` wins when it exists,
/// otherwise Felix's smallest-matching-up-link rule, otherwise 1460.
pub fn host_mtu_in(
    ifaces: &[HostInterface],
    node_interface: Option<&str>,
    pattern: &str,
) -> Result<HostMtu, MtuError> {
    if let Some(f) = node_interface.and_then(|n| ifaces.iter().find(|f| f.name == n)) {
        if f.mtu > 0 {
            return Ok(HostMtu {
                mtu: f.mtu,
                source: format!("MTU of the node interface {}", f.name),
            });
        }
    }
    let re = Regex::new(pattern).map_err(|source| MtuError::Pattern {
        pattern: pattern.to_string(),
        source,
    })?;
    let smallest = ifaces
        .iter()
        .filter(|f| f.up && f.mtu > 0 && re.is_match(&f.name))
        .min_by_key(|f| f.mtu);
    Ok(match smallest {
        Some(f) => HostMtu {
            mtu: f.mtu,
            source: format!(
                "smallest MTU of up interfaces matching {pattern}: {}",
                f.name
            ),
        },
        None => HostMtu {
            mtu: FALLBACK_HOST_MTU,
            source: format!(
                "no up interface matches {pattern}; using Felix's fallback {FALLBACK_HOST_MTU}"
            ),
        },
    })
}

/// [`host_mtu_in`] over the current namespace's links.
pub async fn host_mtu(node_interface: Option<&str>, pattern: &str) -> Result<HostMtu, MtuError> {
    let ifaces = autodetect::host::interfaces().await?;
    host_mtu_in(&ifaces, node_interface, pattern)
}

/// The MTU pods get: host MTU minus the encapsulation overhead.
pub fn pod_mtu(host_mtu: u32, encap: Encap) -> u32 {
    host_mtu.saturating_sub(encap.overhead())
}

/// Parses `FELIX_VXLANMTU`: `None` for unset/empty/0 (derive it).
pub fn parse_vxlan_mtu(value: Option<&str>) -> Result<Option<u32>, MtuError> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let err = || MtuError::VxlanMtu {
        value: v.to_string(),
    };
    let n: u32 = v.parse().map_err(|_| err())?;
    match n {
        0 => Ok(None),
        68..=65535 => Ok(Some(n)),
        _ => Err(err()),
    }
}

/// The `vxlan.calico` MTU: explicit `FELIX_VXLANMTU` if given, else the
/// MTU of the interface VXLAN is bound to (`host_mtu`) - 50. The one place
/// this is decided: the reconciler calls it with the parent's current MTU.
pub fn vxlan_mtu(host_mtu: u32, explicit: Option<u32>) -> u32 {
    explicit.unwrap_or_else(|| pod_mtu(host_mtu, Encap::Vxlan))
}

/// `vxlan-v6.calico`'s MTU (Felix `VXLANMTUV6`): the explicit value, else
/// the parent's less [`crate::model::VXLAN_V6_OVERHEAD`].
pub fn vxlan6_mtu(host_mtu: u32, explicit: Option<u32>) -> u32 {
    explicit.unwrap_or_else(|| host_mtu.saturating_sub(crate::model::VXLAN_V6_OVERHEAD))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, up: bool, mtu: u32) -> HostInterface {
        HostInterface {
            index: 0,
            name: name.into(),
            up,
            mtu,
            addrs: vec![],
            addrs6: vec![],
        }
    }

    #[test]
    fn felix_pattern_and_fallback() {
        let ifaces = [
            f("lo", true, 65536),
            f("eth0", true, 1500),
            f("ens5", true, 9001),
            f("enp1s0", false, 1000),
            f("stor0", true, 1400),
        ];
        let h = host_mtu_in(&ifaces, None, DEFAULT_IFACE_PATTERN).unwrap();
        assert_eq!(h.mtu, 1500, "{h:?}");
        let h = host_mtu_in(&ifaces, Some("ens5"), DEFAULT_IFACE_PATTERN).unwrap();
        assert_eq!(h.mtu, 9001);
        assert!(h.source.contains("node interface ens5"));
        let h = host_mtu_in(&[f("stor0", true, 9000)], None, DEFAULT_IFACE_PATTERN).unwrap();
        assert_eq!(h.mtu, FALLBACK_HOST_MTU);
        assert!(host_mtu_in(&ifaces, None, "(")
            .unwrap_err()
            .to_string()
            .contains("FELIX_MTUIFACEPATTERN"));
    }

    #[test]
    fn overheads_and_explicit_vxlan_mtu() {
        assert_eq!(pod_mtu(1500, Encap::Vxlan), 1450);
        assert_eq!(pod_mtu(1500, Encap::Ipip), 1480);
        assert_eq!(pod_mtu(1500, Encap::Wireguard), 1440);
        assert_eq!(pod_mtu(1500, Encap::None), 1500);
        assert_eq!(parse_vxlan_mtu(None).unwrap(), None);
        assert_eq!(parse_vxlan_mtu(Some("0")).unwrap(), None);
        assert_eq!(parse_vxlan_mtu(Some(" 1410 ")).unwrap(), Some(1410));
        assert_eq!(vxlan_mtu(9001, Some(1410)), 1410);
        assert_eq!(vxlan_mtu(9001, None), 8951);
        let e = parse_vxlan_mtu(Some("big")).unwrap_err().to_string();
        assert!(e.starts_with("FELIX_VXLANMTU=\"big\""), "{e}");
        assert!(parse_vxlan_mtu(Some("40")).is_err());
    }
}
