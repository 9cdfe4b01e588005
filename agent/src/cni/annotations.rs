//! Calico's IPAM annotations, as ADD honours them in Kubernetes mode
//! (Calico's `cni-plugin/pkg/k8s`): which pools to assign from, or which
//! address to assign. Pure: the annotations are read by [`super::k8s`].
//!
//! - `cni.projectcalico.org/ipv4pools`: a JSON list of pool names or
//!   CIDRs. The pod's value, if not empty, wins over the namespace's, which
//!   wins over the conflist's `ipam.ipv4_pools`. An empty list means any
//!   pool, as in Calico (it replaces the conflist's list).
//! - `cni.projectcalico.org/ipv6pools`: checked the same way; with the
//!   conflist's `ipam.assign_ipv6: "true"` it replaces `ipam.ipv6_pools`
//!   as above (without it no IPv6 address is assigned, as in Calico).
//! - `cni.projectcalico.org/ipFamilies`: `["IPv4"]` only (no IPv6 yet).
//! - `cni.projectcalico.org/ipAddrs` (pod only): a JSON list holding one
//!   address to assign; any pool annotation is then not used, as Calico's
//!   AssignIP ignores pools.
//! - `ipAddrsNoIpam`, `floatingIPs` and `hwAddr` are refused as
//!   unsupported rather than ignored: the pod would come up without what
//!   it asked for.
//!
//! Every error names the annotation, where it was, and what was expected;
//! it is returned before anything is assigned.

use super::config::pool_ref_problem;
use super::error::{CniError, INVALID_CONFIG, UNSUPPORTED_FIELD};
use crate::datastore::kdd::pod::{IPV4_POOLS, IPV6_POOLS, IP_ADDRS};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

pub const IP_FAMILIES: &str = "cni.projectcalico.org/ipFamilies";
pub const IP_ADDRS_NO_IPAM: &str = "cni.projectcalico.org/ipAddrsNoIpam";
pub const FLOATING_IPS: &str = "cni.projectcalico.org/floatingIPs";
pub const HW_ADDR: &str = "cni.projectcalico.org/hwAddr";

/// The pod's and its namespace's annotations, and their names for
/// messages.
pub struct PodAnnotations<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    pub pod_annotations: &'a BTreeMap<String, String>,
    pub namespace_annotations: &'a BTreeMap<String, String>,
}

/// What to ask the node's IPAM for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// Ipam.AutoAssign from these IPv4 pools (names or CIDRs; empty: any
    /// pool that selects the node) and, for a dual-stack conflist, the
    /// IPv6 pools of an annotation (None: the conflist's `ipv6_pools`).
    Pools {
        v4: Vec<String>,
        v6: Option<Vec<String>>,
    },
    /// Ipam.AssignIp of exactly this address.
    Address(Ipv4Addr),
}

/// One annotation's value and where it was found.
struct Found<'a> {
    value: &'a str,
    key: &'a str,
    origin: String,
}

impl Found<'_> {
    fn invalid(&self, expected: &str, why: impl std::fmt::Display) -> CniError {
        CniError::new(
            INVALID_CONFIG,
            format!(
                "annotation {} on {} is {:?}: {why}; expected {expected}",
                self.key, self.origin, self.value
            ),
        )
    }

    fn unsupported(&self, why: &str) -> CniError {
        CniError::new(
            UNSUPPORTED_FIELD,
            format!("annotation {} on {}: {why}", self.key, self.origin),
        )
    }

    /// The value as a JSON list of strings.
    fn list(&self, expected: &str) -> Result<Vec<String>, CniError> {
        serde_json::from_str(self.value).map_err(|e| self.invalid(expected, e))
    }
}

impl<'a> PodAnnotations<'a> {
    fn on_pod(&self, key: &'a str) -> Option<Found<'a>> {
        let value = self.pod_annotations.get(key).filter(|v| !v.is_empty())?;
        Some(Found {
            value,
            key,
            origin: format!("pod {}/{}", self.namespace, self.pod),
        })
    }

    /// The pod's non-empty value, else the namespace's.
    fn on_pod_or_namespace(&self, key: &'a str) -> Option<Found<'a>> {
        self.on_pod(key).or_else(|| {
            let value = self
                .namespace_annotations
                .get(key)
                .filter(|v| !v.is_empty())?;
            Some(Found {
                value,
                key,
                origin: format!("namespace {}", self.namespace),
            })
        })
    }

    /// A pool annotation's list, each entry checked for the family.
    fn pools(&self, key: &'a str, v6: bool) -> Result<Option<Vec<String>>, CniError> {
        let Some(f) = self.on_pod_or_namespace(key) else {
            return Ok(None);
        };
        let family = if v6 { "IPv6" } else { "IPv4" };
        let expected = format!(
            "a JSON list of {family} pool names or CIDRs, e.g. [\"default-{}-ippool\"]",
            family.to_ascii_lowercase()
        );
        let pools = f.list(&expected)?;
        for p in &pools {
            if let Some(why) = pool_ref_problem(p, v6) {
                return Err(f.invalid(&expected, why));
            }
        }
        Ok(Some(pools))
    }

    fn check_families(&self) -> Result<(), CniError> {
        let Some(f) = self.on_pod_or_namespace(IP_FAMILIES) else {
            return Ok(());
        };
        let expected = "a JSON list of \"IPv4\" and/or \"IPv6\"";
        let families = f.list(expected)?;
        if let Some(bad) = families
            .iter()
            .find(|x| !matches!(x.as_str(), "IPv4" | "IPv6"))
        {
            return Err(f.invalid(expected, format!("{bad:?} is not an IP family")));
        }
        if families.iter().any(|x| x == "IPv6") || !families.iter().any(|x| x == "IPv4") {
            return Err(f.unsupported(
                "the tabby plugin assigns exactly one IPv4 address per pod (no IPv6 yet); \
                 only [\"IPv4\"] is supported",
            ));
        }
        Ok(())
    }

    fn address(&self, f: &Found<'_>) -> Result<Ipv4Addr, CniError> {
        let expected = "a JSON list of one IPv4 address, e.g. [\"10.244.1.7\"]";
        let items = f.list(expected)?;
        if items.is_empty() {
            return Err(f.invalid(expected, "the list is empty"));
        }
        let mut v4 = None;
        for s in &items {
            match s.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) if v4.is_none() => v4 = Some(a),
                Ok(IpAddr::V4(_)) => {
                    return Err(f.invalid(expected, "it holds more than one IPv4 address"))
                }
                Ok(IpAddr::V6(_)) => {
                    return Err(f.unsupported(&format!(
                        "{s} is an IPv6 address; the tabby plugin assigns IPv4 only"
                    )))
                }
                Err(_) => return Err(f.invalid(expected, format!("{s:?} is not an IP address"))),
            }
        }
        v4.ok_or_else(|| f.invalid(expected, "it holds no IPv4 address"))
    }

    /// The assignment the annotations ask for, given the conflist's
    /// `ipam.ipv4_pools`.
    pub fn assignment(&self, conf_pools: &[String]) -> Result<Assignment, CniError> {
        // Pools first, as Calico parses them first: a malformed pool
        // annotation is an error even when ipAddrs makes it moot.
        let v4_pools = self.pools(IPV4_POOLS, false)?;
        let v6_pools = self.pools(IPV6_POOLS, true)?;
        self.check_families()?;
        let ip_addrs = self.on_pod(IP_ADDRS);
        if let Some(f) = self.on_pod(IP_ADDRS_NO_IPAM) {
            if ip_addrs.is_some() {
                return Err(CniError::new(
                    INVALID_CONFIG,
                    format!(
                        "annotations {IP_ADDRS} and {IP_ADDRS_NO_IPAM} on {} can't be used together",
                        f.origin
                    ),
                ));
            }
            return Err(f.unsupported(&format!(
                "bypassing IPAM is not supported; use {IP_ADDRS} to have the address assigned"
            )));
        }
        for key in [FLOATING_IPS, HW_ADDR] {
            if let Some(f) = self.on_pod(key) {
                return Err(f.unsupported("not supported by the tabby plugin yet"));
            }
        }
        if let Some(f) = ip_addrs {
            return Ok(Assignment::Address(self.address(&f)?));
        }
        Ok(Assignment::Pools {
            v4: v4_pools.unwrap_or_else(|| conf_pools.to_vec()),
            v6: v6_pools,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::error::INVALID_CONFIG;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn assignment(
        pod: &[(&str, &str)],
        ns: &[(&str, &str)],
        conf: &[&str],
    ) -> Result<Assignment, CniError> {
        let (p, n) = (map(pod), map(ns));
        let conf: Vec<String> = conf.iter().map(|s| s.to_string()).collect();
        PodAnnotations {
            namespace: "shop",
            pod: "web-1",
            pod_annotations: &p,
            namespace_annotations: &n,
        }
        .assignment(&conf)
    }

    fn pools(v: &[&str]) -> Assignment {
        Assignment::Pools {
            v4: v.iter().map(|s| s.to_string()).collect(),
            v6: None,
        }
    }

    #[test]
    fn pod_over_namespace_over_conflist() {
        let conf = ["10.0.0.0/16"];
        assert_eq!(assignment(&[], &[], &conf).unwrap(), pools(&conf));
        let ns = [(IPV4_POOLS, r#"["ns-pool"]"#)];
        assert_eq!(assignment(&[], &ns, &conf).unwrap(), pools(&["ns-pool"]));
        let pod = [(IPV4_POOLS, r#"["10.9.0.0/24", "pod-pool"]"#)];
        assert_eq!(
            assignment(&pod, &ns, &conf).unwrap(),
            pools(&["10.9.0.0/24", "pod-pool"])
        );
        // An empty value is no annotation; an empty list is "any pool".
        assert_eq!(
            assignment(&[(IPV4_POOLS, "")], &ns, &conf).unwrap(),
            pools(&["ns-pool"])
        );
        assert_eq!(
            assignment(&[(IPV4_POOLS, "[]")], &ns, &conf).unwrap(),
            pools(&[])
        );
        // IPv6 pools: the annotation's list, used for a dual-stack conflist.
        let v6 = [(IPV6_POOLS, r#"["fd00:10::/64"]"#)];
        assert_eq!(
            assignment(&v6, &[], &conf).unwrap(),
            Assignment::Pools {
                v4: conf.iter().map(|s| s.to_string()).collect(),
                v6: Some(vec!["fd00:10::/64".into()]),
            }
        );
        let fam = [(IP_FAMILIES, r#"["IPv4"]"#)];
        assert_eq!(assignment(&fam, &[], &conf).unwrap(), pools(&conf));
    }

    #[test]
    fn ip_addrs_assigns_exactly_that_address_and_overrides_pools() {
        let pod = [(IP_ADDRS, r#"["10.9.0.7"]"#), (IPV4_POOLS, r#"["other"]"#)];
        assert_eq!(
            assignment(&pod, &[], &[]).unwrap(),
            Assignment::Address(Ipv4Addr::new(10, 9, 0, 7))
        );
        // Only the pod's: a namespace can't pin every pod to one address.
        let ns = [(IP_ADDRS, r#"["10.9.0.7"]"#)];
        assert_eq!(assignment(&[], &ns, &[]).unwrap(), pools(&[]));
    }

    /// The error's code and message, asserting the message names the
    /// annotation and where it was.
    fn refused(
        pod: &[(&str, &str)],
        ns: &[(&str, &str)],
        key: &str,
        origin: &str,
    ) -> (u32, String) {
        let e = assignment(pod, ns, &[]).unwrap_err();
        assert!(e.msg.contains(key), "{} does not name {key}", e.msg);
        assert!(e.msg.contains(origin), "{} does not name {origin}", e.msg);
        (e.code, e.msg)
    }

    #[test]
    fn malformed_annotations_name_the_annotation_and_what_was_expected() {
        let (code, msg) = refused(&[(IPV4_POOLS, "pool-a")], &[], IPV4_POOLS, "pod shop/web-1");
        assert_eq!(code, INVALID_CONFIG);
        assert!(
            msg.contains("expected a JSON list of IPv4 pool names or CIDRs"),
            "{msg}"
        );
        let (code, msg) = refused(
            &[],
            &[(IPV4_POOLS, r#"["fd00::/64"]"#)],
            IPV4_POOLS,
            "namespace shop",
        );
        assert_eq!(code, INVALID_CONFIG);
        assert!(msg.contains("not an IPv4 CIDR"), "{msg}");
        let (code, _) = refused(&[(IPV4_POOLS, r#"[1, 2]"#)], &[], IPV4_POOLS, "pod");
        assert_eq!(code, INVALID_CONFIG);
        // A bad namespace value matters only when the pod doesn't override it.
        let ok = assignment(
            &[(IPV4_POOLS, r#"["a"]"#)],
            &[(IPV4_POOLS, "nonsense")],
            &[],
        );
        assert_eq!(ok.unwrap(), pools(&["a"]));
        let (code, _) = refused(&[(IPV6_POOLS, r#"["10.0.0.0/8"]"#)], &[], IPV6_POOLS, "pod");
        assert_eq!(code, INVALID_CONFIG);
        // Checked even with ipAddrs set, as Calico parses pools first.
        let (code, _) = refused(
            &[(IP_ADDRS, r#"["10.9.0.7"]"#), (IPV4_POOLS, "x")],
            &[],
            IPV4_POOLS,
            "pod",
        );
        assert_eq!(code, INVALID_CONFIG);
        for bad in [
            "10.9.0.7",
            "[]",
            r#"["10.9.0.300"]"#,
            r#"["10.9.0.7","10.9.0.8"]"#,
        ] {
            let (code, msg) = refused(&[(IP_ADDRS, bad)], &[], IP_ADDRS, "pod shop/web-1");
            assert_eq!(code, INVALID_CONFIG, "{bad}: {msg}");
            assert!(
                msg.contains("expected a JSON list of one IPv4 address"),
                "{msg}"
            );
        }
        let (code, _) = refused(&[(IP_FAMILIES, r#"["IPv5"]"#)], &[], IP_FAMILIES, "pod");
        assert_eq!(code, INVALID_CONFIG);
    }

    #[test]
    fn what_the_plugin_cannot_do_is_refused_not_ignored() {
        let (code, _) = refused(&[(IP_ADDRS, r#"["fd00::7"]"#)], &[], IP_ADDRS, "pod");
        assert_eq!(code, UNSUPPORTED_FIELD);
        let (code, _) = refused(
            &[],
            &[(IP_FAMILIES, r#"["IPv4","IPv6"]"#)],
            IP_FAMILIES,
            "namespace shop",
        );
        assert_eq!(code, UNSUPPORTED_FIELD);
        let (code, _) = refused(
            &[(IP_ADDRS_NO_IPAM, r#"["10.9.0.7"]"#)],
            &[],
            IP_ADDRS_NO_IPAM,
            "pod",
        );
        assert_eq!(code, UNSUPPORTED_FIELD);
        let both = [
            (IP_ADDRS_NO_IPAM, r#"["10.9.0.7"]"#),
            (IP_ADDRS, r#"["10.9.0.7"]"#),
        ];
        let (code, msg) = refused(&both, &[], IP_ADDRS_NO_IPAM, "pod");
        assert_eq!(code, INVALID_CONFIG);
        assert!(msg.contains("can't be used together"), "{msg}");
        let (code, _) = refused(
            &[(FLOATING_IPS, r#"["1.2.3.4"]"#)],
            &[],
            FLOATING_IPS,
            "pod",
        );
        assert_eq!(code, UNSUPPORTED_FIELD);
    }
}
