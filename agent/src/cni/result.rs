//! The success result of ADD (and of the IPAM plugin), in the format of the
//! requested `cniVersion`: 1.x drops the per-address `version` field that
//! 0.3/0.4 require.

use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::path::Path;

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

/// The main plugin's ADD result: host veth (index 0), pod interface with
/// its sandbox (index 1), the /32 on the pod interface, the default route.
pub fn add_result(version: &str, ip: Ipv4Addr, ifaces: &Interfaces<'_>) -> Value {
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
        "ips": [ip_entry(version, ip, Some(1))],
        "routes": [{ "dst": "0.0.0.0/0", "gw": "169.254.1.1" }],
        "dns": {},
    })
}

/// The IPAM plugin's result: the address only; the delegating plugin builds
/// the interfaces and routes.
pub fn ipam_result(version: &str, ip: Ipv4Addr) -> Value {
    json!({
        "cniVersion": version,
        "ips": [ip_entry(version, ip, None)],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_shape_the_ips() {
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        let new = ipam_result("1.0.0", ip);
        assert_eq!(new["ips"][0]["address"], "10.1.2.3/32");
        assert!(new["ips"][0].get("version").is_none());
        let old = ipam_result("0.3.1", ip);
        assert_eq!(old["ips"][0]["version"], "4");
        assert_eq!(prev_ipv4(&new), Some(ip));
        assert_eq!(prev_ipv4(&json!({"ips": []})), None);
    }
}
