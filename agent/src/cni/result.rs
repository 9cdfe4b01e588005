//! The success result of ADD (and of the IPAM plugin), in the format of the
//! requested `cniVersion`: 1.x drops the per-address `version` field that
//! 0.3/0.4 require. A dual-stack pod has two `ips` entries (the /32, then
//! the /128 with the link-local gateway) and two default routes; an
//! IPv6-only pod the /128 and the IPv6 default route only.

use serde_json::{json, Value};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use tabby_felix_lite::model::POD_GATEWAY_V6;

/// The pod's interfaces as ADD built them.
pub struct Interfaces<'a> {
    pub host_name: &'a str,
    pub host_mac: &'a str,
    pub pod_name: &'a str,
    pub pod_mac: &'a str,
    pub sandbox: &'a Path,
}

fn legacy(version: &str) -> bool {
    version.starts_with("0.")
}

fn ip_entry(version: &str, ip: Ipv4Addr, interface: Option<usize>) -> Value {
    // Calico returns the pod address as a /32: the pod has no subnet, every
    // destination is reached through the 169.254.1.1 default route.
    let mut e = json!({ "address": format!("{ip}/32") });
    if let Some(i) = interface {
        e["interface"] = json!(i);
    }
    if legacy(version) {
        e["version"] = json!("4");
    }
    e
}

fn ip6_entry(version: &str, ip: Ipv6Addr, interface: Option<usize>) -> Value {
    // A /128 for the same reason as the /32; the gateway is the link-local
    // address the host end holds.
    let mut e = json!({ "address": format!("{ip}/128"), "gateway": POD_GATEWAY_V6.to_string() });
    if let Some(i) = interface {
        e["interface"] = json!(i);
    }
    if legacy(version) {
        e["version"] = json!("6");
    }
    e
}

fn ips(
    version: &str,
    ip: Option<Ipv4Addr>,
    ip6: Option<Ipv6Addr>,
    interface: Option<usize>,
) -> Value {
    let mut v: Vec<Value> = ip
        .map(|a| ip_entry(version, a, interface))
        .into_iter()
        .collect();
    v.extend(ip6.map(|a| ip6_entry(version, a, interface)));
    Value::Array(v)
}

/// The main plugin's ADD result: host veth (index 0), pod interface with
/// its sandbox (index 1), the /32 (and /128) on the pod interface, the
/// default route(s).
pub fn add_result(
    version: &str,
    ip: Option<Ipv4Addr>,
    ip6: Option<Ipv6Addr>,
    ifaces: &Interfaces<'_>,
) -> Value {
    let mut routes = Vec::new();
    if ip.is_some() {
        routes.push(json!({ "dst": "0.0.0.0/0", "gw": "169.254.1.1" }));
    }
    if ip6.is_some() {
        routes.push(json!({ "dst": "::/0", "gw": POD_GATEWAY_V6.to_string() }));
    }
    json!({
        "cniVersion": version,
        "interfaces": [
            { "name": ifaces.host_name, "mac": ifaces.host_mac },
            {
                "name": ifaces.pod_name,
                "mac": ifaces.pod_mac,
                "sandbox": ifaces.sandbox.display().to_string(),
            },
        ],
        "ips": ips(version, ip, ip6, Some(1)),
        "routes": routes,
        "dns": {},
    })
}

/// The IPAM plugin's result: the address only; the delegating plugin builds
/// the interfaces and routes.
pub fn ipam_result(version: &str, ip: Option<Ipv4Addr>, ip6: Option<Ipv6Addr>) -> Value {
    json!({
        "cniVersion": version,
        "ips": ips(version, ip, ip6, None),
        "dns": {},
    })
}

/// The pod's IPv4 address in a previous result (CHECK, DEL).
pub fn prev_ipv4(prev: &Value) -> Option<Ipv4Addr> {
    prev.get("ips")?.as_array()?.iter().find_map(|e| {
        let a = e.get("address")?.as_str()?;
        a.split('/').next()?.parse().ok()
    })
}

/// The pod's IPv6 address in a previous result (dual stack), if any.
pub fn prev_ipv6(prev: &Value) -> Option<Ipv6Addr> {
    prev.get("ips")?.as_array()?.iter().find_map(|e| {
        let a = e.get("address")?.as_str()?;
        a.split('/').next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_shape_the_ips() {
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        let new = ipam_result("1.0.0", Some(ip), None);
        assert_eq!(new["ips"][0]["address"], "10.1.2.3/32");
        assert!(new["ips"][0].get("version").is_none());
        let old = ipam_result("0.3.1", Some(ip), None);
        assert_eq!(old["ips"][0]["version"], "4");
        assert_eq!(prev_ipv4(&new), Some(ip));
        assert_eq!(prev_ipv6(&new), None);
        let ip6: Ipv6Addr = "fd00:1::7".parse().unwrap();
        let dual = ipam_result("0.4.0", Some(ip), Some(ip6));
        assert_eq!(dual["ips"][1]["address"], "fd00:1::7/128");
        assert_eq!(dual["ips"][1]["version"], "6");
        assert_eq!(dual["ips"][1]["gateway"], "fe80::ecee:eeff:feee:eeee");
        assert_eq!((prev_ipv4(&dual), prev_ipv6(&dual)), (Some(ip), Some(ip6)));
        assert_eq!(prev_ipv4(&json!({"ips": []})), None);
        // IPv6 only: the /128 alone, and only the IPv6 default route.
        let v6 = ipam_result("1.0.0", None, Some(ip6));
        assert_eq!(v6["ips"].as_array().unwrap().len(), 1);
        assert_eq!((prev_ipv4(&v6), prev_ipv6(&v6)), (None, Some(ip6)));
        let ifaces = Interfaces {
            host_name: "cali1",
            host_mac: "ee:ee:ee:ee:ee:ee",
            pod_name: "eth0",
            pod_mac: "02:00:00:00:00:01",
            sandbox: Path::new("/var/run/netns/x"),
        };
        let add = add_result("1.0.0", None, Some(ip6), &ifaces);
        assert_eq!(
            add["routes"],
            json!([{ "dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee" }])
        );
        assert_eq!(add["ips"][0]["address"], "fd00:1::7/128");
    }
}
