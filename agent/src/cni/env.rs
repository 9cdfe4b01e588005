//! The `CNI_*` environment the runtime sets, validated per command.

use super::error::{CniError, INVALID_ENV};
use crate::resources::limits::shorten;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    /// 1.1.0 garbage collection: accepted and a no-op (see `plugin`).
    Gc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniEnv {
    pub command: Command,
    pub container_id: String,
    /// Absent on DEL when the runtime already destroyed the netns.
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub pod_namespace: String,
    pub pod_name: String,
    /// The runtime named the pod (`K8S_POD_NAMESPACE` and `K8S_POD_NAME`
    /// in CNI_ARGS): there is a Kubernetes Pod to read annotations from.
    pub k8s_pod: bool,
}

impl CniEnv {
    /// `k8s-pod-network.<containerID>`, Calico's IPAM handle.
    pub fn handle_id(&self) -> String {
        tabby_ipam::handle::pod_handle(&self.container_id)
    }
}

fn bad(var: &str, why: impl std::fmt::Display) -> CniError {
    CniError::new(INVALID_ENV, format!("{var} {why}"))
}

/// Parses `CNI_ARGS` (`K=V;K=V`); unknown keys are ignored as Calico does.
fn parse_args(args: &str) -> Result<Vec<(String, String)>, CniError> {
    args.split(';')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    bad(
                        "CNI_ARGS",
                        format!("has {p:?}, expected KEY=VALUE pairs separated by ';'"),
                    )
                })
        })
        .collect()
}

/// The spec's container ID rule: alphanumerics, '_', '.', '-', starting
/// with an alphanumeric. It ends up in IPAM handles and datastore keys.
fn valid_container_id(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The longest container ID taken: runtimes use 64 hex digits, and the ID
/// becomes part of an IPAM handle and of datastore keys.
const MAX_CONTAINER_ID: usize = 1024;

/// `get` returns what the runtime set; a value that is not UTF-8 comes as
/// `Err` with its lossy form, so it is reported as such, not as unset.
pub fn from_lookup(
    get: impl Fn(&str) -> Option<Result<String, String>>,
) -> Result<CniEnv, CniError> {
    let mut not_utf8 = None;
    let nonempty = |k: &str| match get(k) {
        Some(Ok(v)) => Some(v).filter(|v| !v.is_empty()),
        Some(Err(lossy)) => Some(lossy),
        None => None,
    };
    for k in [
        "CNI_COMMAND",
        "CNI_CONTAINERID",
        "CNI_IFNAME",
        "CNI_NETNS",
        "CNI_ARGS",
    ] {
        if let Some(Err(lossy)) = get(k) {
            not_utf8.get_or_insert((k, lossy));
        }
    }
    if let Some((k, lossy)) = not_utf8 {
        return Err(bad(k, format!("{:?} is not valid UTF-8", shorten(&lossy))));
    }
    let command = match nonempty("CNI_COMMAND").as_deref() {
        Some("ADD") => Command::Add,
        Some("DEL") => Command::Del,
        Some("CHECK") => Command::Check,
        Some("VERSION") => Command::Version,
        Some("STATUS") => Command::Status,
        Some("GC") => Command::Gc,
        Some(other) => {
            return Err(bad(
                "CNI_COMMAND",
                format!(
                    "is {:?}; expected ADD, DEL, CHECK, VERSION, STATUS or GC",
                    shorten(other)
                ),
            ))
        }
        None => return Err(bad("CNI_COMMAND", "is not set")),
    };
    let mut env = CniEnv {
        command,
        container_id: String::new(),
        netns: None,
        ifname: String::new(),
        pod_namespace: String::new(),
        pod_name: String::new(),
        k8s_pod: false,
    };
    if matches!(command, Command::Version | Command::Status | Command::Gc) {
        return Ok(env);
    }
    env.container_id =
        nonempty("CNI_CONTAINERID").ok_or_else(|| bad("CNI_CONTAINERID", "is not set"))?;
    if env.container_id.len() > MAX_CONTAINER_ID {
        return Err(bad(
            "CNI_CONTAINERID",
            format!(
                "{:?} is too long (at most {MAX_CONTAINER_ID} characters)",
                shorten(&env.container_id)
            ),
        ));
    }
    if !valid_container_id(&env.container_id) {
        return Err(bad(
            "CNI_CONTAINERID",
            format!(
                "{:?} is invalid: use letters, digits, '_', '.' and '-', starting with a letter or digit",
                shorten(&env.container_id)
            ),
        ));
    }
    env.ifname = nonempty("CNI_IFNAME").ok_or_else(|| bad("CNI_IFNAME", "is not set"))?;
    // The kernel's rule (dev_valid_name): "." and ".." are directory
    // names in /sys/class/net, not interface names.
    if env.ifname.len() > 15
        || env.ifname == "."
        || env.ifname == ".."
        || env.ifname.contains(['/', ':'])
        || env.ifname.contains(char::is_whitespace)
    {
        return Err(bad(
            "CNI_IFNAME",
            format!(
                "{:?} is not a valid interface name (at most 15 characters, not \".\" or \"..\", no '/', ':' or spaces)",
                shorten(&env.ifname)
            ),
        ));
    }
    env.netns = nonempty("CNI_NETNS").map(PathBuf::from);
    if env.netns.is_none() && command != Command::Del {
        return Err(bad(
            "CNI_NETNS",
            "is not set (the pod's network namespace path)",
        ));
    }
    let args = parse_args(&nonempty("CNI_ARGS").unwrap_or_default())?;
    let arg = |k: &str| {
        args.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    // Without Kubernetes arguments (a runtime used directly) the container
    // stands in for the pod, so names stay unique.
    let namespace = arg("K8S_POD_NAMESPACE").filter(|v| !v.is_empty());
    let name = arg("K8S_POD_NAME").filter(|v| !v.is_empty());
    env.k8s_pod = namespace.is_some() && name.is_some();
    env.pod_namespace = namespace.unwrap_or_else(|| "default".into());
    env.pod_name = name.unwrap_or_else(|| env.container_id.clone());
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, CniError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_lookup(|k| m.get(k).cloned().map(Ok))
    }

    #[test]
    fn add_needs_netns_and_names_it() {
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap_err();
        assert_eq!(e.code, INVALID_ENV);
        assert!(e.msg.contains("CNI_NETNS"), "{}", e.msg);
        // DEL may come after the netns is gone.
        let d = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap();
        assert_eq!(d.netns, None);
    }

    #[test]
    fn reads_the_pod_from_cni_args() {
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c0ffee"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/var/run/netns/x"),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=dns-1;K8S_POD_UID=u",
            ),
        ])
        .unwrap();
        assert_eq!(
            (e.pod_namespace.as_str(), e.pod_name.as_str()),
            ("kube-system", "dns-1")
        );
        assert_eq!(e.handle_id(), "k8s-pod-network.c0ffee");
        assert!(e.k8s_pod);
        let plain = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c0ffee"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/var/run/netns/x"),
            ("CNI_ARGS", "K8S_POD_NAMESPACE=kube-system"),
        ])
        .unwrap();
        assert!(!plain.k8s_pod, "a namespace alone names no pod");
        assert_eq!(plain.pod_name, "c0ffee");
        let bad = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "../x"),
            ("CNI_IFNAME", "eth0"),
        ]);
        assert!(bad.unwrap_err().msg.contains("CNI_CONTAINERID"));
        for ifname in [".", ".."] {
            let e = env(&[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "c0ffee"),
                ("CNI_IFNAME", ifname),
                ("CNI_NETNS", "/var/run/netns/x"),
            ]);
            assert!(e.unwrap_err().msg.contains("CNI_IFNAME"), "{ifname}");
        }
        let lossy = from_lookup(|k| match k {
            "CNI_COMMAND" => Some(Ok("ADD".into())),
            "CNI_CONTAINERID" => Some(Err("ab\u{fffd}".into())),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(lossy.code, INVALID_ENV);
        assert!(
            lossy.msg.contains("CNI_CONTAINERID") && lossy.msg.contains("not valid UTF-8"),
            "{}",
            lossy.msg
        );
        assert!(env(&[("CNI_COMMAND", "FOO")])
            .unwrap_err()
            .msg
            .contains("CNI_COMMAND"));
    }
}
