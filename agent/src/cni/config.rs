//! The network configuration on stdin: one plugin's entry of a conflist as
//! the runtime renders it (`cniVersion` and `name` copied in from the list,
//! `prevResult` added for CHECK and DEL, `runtimeConfig` and other keys the
//! runtime adds are ignored).
//!
//! Keys this plugin doesn't use are ignored, not refused, so a Calico
//! conflist entry (`policy`, `log_level`, `log_file_path`,
//! `container_settings`, `feature_control`, `etcd_endpoints`, ...) works
//! with only `type` and `ipam.type` changed. `"datastore_type":
//! "kubernetes"` turns on Kubernetes mode: ADD reads the pod's IPAM
//! annotations through `kubernetes.kubeconfig` (see `cni::k8s`).

use super::error::{CniError, DECODING_FAILURE, INCOMPATIBLE_VERSION, INVALID_CONFIG};
use serde::Deserialize;
use std::path::PathBuf;

/// Versions whose result format this plugin writes. 1.1.0 is 1.0.0 plus
/// STATUS and GC; results are the same.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
pub const IPAM_TYPE: &str = "tabby-ipam";
pub const PLUGIN_TYPE: &str = "tabby";

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct IpamConf {
    #[serde(rename = "type")]
    pub ipam_type: String,
    #[serde(default)]
    pub ipv4_pools: Vec<String>,
    #[serde(default)]
    pub ipv6_pools: Vec<String>,
    /// Calico spells booleans here as strings ("true"/"false").
    #[serde(default)]
    pub assign_ipv4: Option<String>,
    #[serde(default)]
    pub assign_ipv6: Option<String>,
}

impl IpamConf {
    /// `assign_ipv4` unless `"false"` (Calico's default is true); false
    /// with `assign_ipv6: "true"` makes an IPv6-only pod.
    pub fn wants_ipv4(&self) -> bool {
        self.assign_ipv4.as_deref() != Some("false")
    }

    /// `assign_ipv6: "true"` (Calico's default is false): the pod gets an
    /// IPv6 address besides its IPv4 one, from `ipv6_pools` (empty: any
    /// IPv6 pool that selects the node).
    pub fn wants_ipv6(&self) -> bool {
        self.assign_ipv6.as_deref() == Some("true")
    }
}

/// Calico's string booleans: "true", "false", or absent.
fn string_bool(field: &str, v: &Option<String>) -> Result<(), CniError> {
    match v.as_deref() {
        None | Some("true") | Some("false") => Ok(()),
        Some(other) => Err(CniError::new(
            INVALID_CONFIG,
            format!("{field} is {other:?} (expected \"true\" or \"false\")"),
        )),
    }
}

/// Calico's `kubernetes` section.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
struct RawKubernetes {
    #[serde(default)]
    kubeconfig: Option<String>,
    #[serde(default)]
    k8s_api_root: Option<String>,
}

/// How ADD reaches the Kubernetes API in Kubernetes mode.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeConf {
    /// None: kube's inference (`KUBECONFIG`, `~/.kube/config`, in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// Replaces the kubeconfig's server URL (Calico's `k8s_api_root`).
    pub api_root: Option<String>,
}

/// `datastore_type` values: Calico's two, and Tabby's own file store.
pub const DATASTORE_TYPES: [&str; 3] = ["kubernetes", "etcdv3", "sqlite"];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Raw {
    cni_version: String,
    name: String,
    #[serde(rename = "type")]
    plugin_type: String,
    #[serde(default)]
    nodename: Option<String>,
    // Calico's own keys are snake_case (`ipam.ipv4_pools`); so is this one.
    #[serde(default, rename = "run_dir")]
    run_dir: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default, rename = "datastore_type")]
    datastore_type: Option<String>,
    #[serde(default)]
    kubernetes: Option<RawKubernetes>,
    #[serde(default)]
    ipam: Option<IpamConf>,
    #[serde(default)]
    prev_result: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    pub plugin_type: String,
    /// Empty: the node serving the socket uses its own name.
    pub nodename: String,
    pub run_dir: PathBuf,
    /// None: ask the node (Dataplane.Status pod_mtu).
    pub mtu: Option<u32>,
    pub ipam: IpamConf,
    /// Some in Kubernetes mode (`datastore_type: kubernetes`).
    pub kubernetes: Option<KubeConf>,
    pub prev_result: Option<serde_json::Value>,
}

/// Why `s` can't name a pool of the family, if it can't: pools are named
/// by CIDR or, as Calico allows, by the IPPool's name (a Kubernetes object
/// name: lowercase letters, digits, '-' and '.').
pub fn pool_ref_problem(s: &str, v6: bool) -> Option<String> {
    let family = if v6 { "IPv6" } else { "IPv4" };
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        return (net.addr().is_ipv6() != v6).then(|| format!("{s:?} is not an {family} CIDR"));
    }
    let name_ok = !s.is_empty()
        && s.len() <= 253
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    (!name_ok).then(|| format!("{s:?} is neither an {family} CIDR nor an IP pool name"))
}

impl NetConf {
    pub fn socket(&self) -> PathBuf {
        crate::grpc::socket_path(&self.run_dir)
    }
}

/// Where a JSON decoding error is, in the runtime's terms.
fn decode_error(e: &serde_json::Error) -> CniError {
    CniError::new(
        DECODING_FAILURE,
        format!(
            "network configuration on stdin is not valid JSON: {}",
            json_error(e)
        ),
    )
}

/// serde_json's message with its position said once: its Display already
/// ends in "at line L column C", so adding the position again repeated it.
pub(crate) fn json_error(e: &serde_json::Error) -> String {
    let s = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = s.strip_suffix(&suffix).unwrap_or(&s);
    format!("{msg} at line {} column {}", e.line(), e.column())
}

/// stdin, decoded once: the error result's version, VERSION's answer and
/// the configuration are all read from this one value.
pub struct Stdin {
    /// Only whitespace: VERSION may be called with an empty stdin.
    blank: bool,
    json: Result<serde_json::Value, CniError>,
}

impl Stdin {
    pub fn decode(stdin: &[u8]) -> Stdin {
        Stdin {
            blank: stdin.iter().all(|b| b.is_ascii_whitespace()),
            json: serde_json::from_slice(stdin).map_err(|e| decode_error(&e)),
        }
    }

    /// Only the version, for VERSION (whose stdin may be just
    /// `{"cniVersion": "..."}` or empty) and for the error result.
    pub fn requested_version(&self) -> Result<Option<String>, CniError> {
        if self.blank {
            return Ok(None);
        }
        let v = self.json.as_ref().map_err(Clone::clone)?;
        Ok(v.get("cniVersion")
            .and_then(|v| v.as_str())
            .map(String::from))
    }

    /// The whole configuration, see [`parse`].
    pub fn into_conf(self, ipam_only: bool) -> Result<NetConf, CniError> {
        parse(self.json?, ipam_only)
    }
}

/// Parses and validates. `ipam_only`: this is the `tabby-ipam` plugin, so
/// the top-level `type` belongs to whatever plugin delegates to us.
pub fn parse(value: serde_json::Value, ipam_only: bool) -> Result<NetConf, CniError> {
    if !value.is_object() {
        return Err(CniError::new(
            DECODING_FAILURE,
            "network configuration on stdin must be a JSON object",
        ));
    }
    // The version first: a config of an unknown version may legitimately
    // carry fields this plugin doesn't know.
    match value.get("cniVersion") {
        Some(serde_json::Value::String(v)) if SUPPORTED_VERSIONS.contains(&v.as_str()) => {}
        Some(serde_json::Value::String(v)) => {
            return Err(CniError::new(
                INCOMPATIBLE_VERSION,
                format!(
                    "cniVersion {v:?} is not supported; supported: {}",
                    SUPPORTED_VERSIONS.join(", ")
                ),
            ))
        }
        Some(_) => return Err(CniError::new(INVALID_CONFIG, "cniVersion must be a string")),
        None => return Err(CniError::new(INVALID_CONFIG, "cniVersion is missing")),
    }
    let raw: Raw = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = if path == "." {
            format!("network configuration: {inner}")
        } else {
            format!("network configuration field {path}: {inner}")
        };
        CniError::new(INVALID_CONFIG, msg)
    })?;
    let invalid = |m: String| Err(CniError::new(INVALID_CONFIG, m));
    if raw.name.is_empty() {
        return invalid("name is empty".into());
    }
    if !ipam_only && raw.plugin_type != PLUGIN_TYPE {
        return invalid(format!(
            "type is {:?}; this plugin is {PLUGIN_TYPE:?}",
            raw.plugin_type
        ));
    }
    let Some(ipam) = raw.ipam else {
        return invalid(format!(
            "ipam is missing (expected {{\"type\": \"{IPAM_TYPE}\"}})"
        ));
    };
    if ipam.ipam_type != IPAM_TYPE {
        return invalid(format!(
            "ipam.type is {:?}; the tabby plugin assigns addresses through the node and \
             supports only {IPAM_TYPE:?}",
            ipam.ipam_type
        ));
    }
    string_bool("ipam.assign_ipv4", &ipam.assign_ipv4)?;
    string_bool("ipam.assign_ipv6", &ipam.assign_ipv6)?;
    if !ipam.wants_ipv4() && !ipam.wants_ipv6() {
        // Calico's plugin fails with this once IPAM has assigned nothing;
        // refused here before the node is asked.
        return invalid(
            "IPAM plugin returned missing IP config (ipam.assign_ipv4 is \"false\" and \
             ipam.assign_ipv6 is not \"true\": expected at least one family)"
                .to_string(),
        );
    }
    // As Calico, ipv6_pools without assign_ipv6 "true" are not used; they
    // are still checked, so a typo shows before dual stack is turned on.
    for (field, pools, v6) in [
        ("ipv4_pools", &ipam.ipv4_pools, false),
        ("ipv6_pools", &ipam.ipv6_pools, true),
    ] {
        for p in pools {
            if let Some(why) = pool_ref_problem(p, v6) {
                return invalid(format!("ipam.{field}: {why}"));
            }
        }
    }
    let kubernetes = match raw.datastore_type.as_deref() {
        Some("kubernetes") => {
            let k = raw.kubernetes.unwrap_or_default();
            let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
            Some(KubeConf {
                kubeconfig: nonempty(k.kubeconfig).map(PathBuf::from),
                api_root: nonempty(k.k8s_api_root),
            })
        }
        None => None,
        Some(t) if DATASTORE_TYPES.contains(&t) => None,
        Some(t) => {
            return invalid(format!(
                "datastore_type {t:?} is not a datastore type (expected {})",
                DATASTORE_TYPES.join(", ")
            ))
        }
    };
    if let Some(m) = raw.mtu.filter(|m| *m != 0 && !(68..=65535).contains(m)) {
        return invalid(format!(
            "mtu {m} is out of range (0 = ask the node, or 68..=65535)"
        ));
    }
    let run_dir = raw
        .run_dir
        .unwrap_or_else(|| crate::grpc::DEFAULT_RUN_DIR.into());
    if run_dir.is_empty() {
        return invalid("run_dir is empty".into());
    }
    Ok(NetConf {
        cni_version: raw.cni_version,
        name: raw.name,
        plugin_type: raw.plugin_type,
        nodename: raw.nodename.unwrap_or_default(),
        run_dir: PathBuf::from(run_dir),
        mtu: raw.mtu.filter(|m| *m != 0),
        ipam,
        kubernetes,
        prev_result: raw.prev_result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// stdin as the plugin decodes it, then [`super::parse`].
    fn parse(stdin: &[u8], ipam_only: bool) -> Result<NetConf, CniError> {
        Stdin::decode(stdin).into_conf(ipam_only)
    }

    const GOOD: &str = r#"{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"tabby",
        "nodename":"n1","mtu":0,"ipam":{"type":"tabby-ipam"},"runtimeConfig":{"x":1}}"#;

    #[test]
    fn accepts_a_rendered_conflist_entry() {
        let c = parse(GOOD.as_bytes(), false).unwrap();
        assert_eq!(c.nodename, "n1");
        assert_eq!(c.mtu, None);
        assert_eq!(c.socket(), PathBuf::from("/var/run/tabby/tabby.sock"));
        let other = GOOD.replace(r#""nodename""#, r#""run_dir":"/run/x","nodename""#);
        let c = parse(other.as_bytes(), false).unwrap();
        assert_eq!(c.socket(), PathBuf::from("/run/x/tabby.sock"));
    }

    /// Calico's own conflist entry (calico.yaml's `cni_network_config`,
    /// rendered), with only the plugin and IPAM types changed.
    const CALICO: &str = r#"{"cniVersion":"0.3.1","name":"k8s-pod-network","type":"tabby",
        "log_level":"info","log_file_path":"/var/log/calico/cni/cni.log",
        "datastore_type":"kubernetes","nodename":"node-1","mtu":0,
        "ipam":{"type":"tabby-ipam","ipv4_pools":["default-ipv4-ippool","10.9.0.0/16"]},
        "policy":{"type":"k8s"},
        "kubernetes":{"kubeconfig":"/etc/cni/net.d/calico-kubeconfig"},
        "container_settings":{"allow_ip_forwarding":false},
        "feature_control":{"floating_ips":false}}"#;

    #[test]
    fn a_calico_conflist_entry_selects_kubernetes_mode() {
        let c = parse(CALICO.as_bytes(), false).unwrap();
        assert_eq!(
            c.kubernetes,
            Some(KubeConf {
                kubeconfig: Some("/etc/cni/net.d/calico-kubeconfig".into()),
                api_root: None,
            })
        );
        assert_eq!(c.ipam.ipv4_pools, ["default-ipv4-ippool", "10.9.0.0/16"]);
        // Without a kubeconfig: inferred later, still Kubernetes mode.
        let bare = CALICO.replace(
            r#""kubernetes":{"kubeconfig":"/etc/cni/net.d/calico-kubeconfig"},"#,
            "",
        );
        let c = parse(bare.as_bytes(), false).unwrap();
        assert_eq!(c.kubernetes, Some(KubeConf::default()));
        // Other datastores: the node has the datastore; the plugin reads
        // nothing itself.
        let etcd = CALICO.replace(r#""kubernetes","#, r#""etcdv3","#);
        assert_eq!(parse(etcd.as_bytes(), false).unwrap().kubernetes, None);
        assert_eq!(parse(GOOD.as_bytes(), false).unwrap().kubernetes, None);
        let e = parse(
            CALICO.replace(r#""kubernetes","#, r#""k8s","#).as_bytes(),
            false,
        )
        .unwrap_err();
        assert_eq!(e.code, INVALID_CONFIG);
        assert!(e.msg.contains("datastore_type \"k8s\""), "{}", e.msg);
    }

    #[test]
    fn pools_are_named_by_cidr_or_name_of_the_right_family() {
        assert_eq!(pool_ref_problem("10.0.0.0/16", false), None);
        assert_eq!(pool_ref_problem("default-ipv4-ippool", false), None);
        assert_eq!(pool_ref_problem("fd00::/48", true), None);
        let why = pool_ref_problem("fd00::/48", false).unwrap();
        assert!(why.contains("not an IPv4 CIDR"), "{why}");
        for bad in ["", "Pool_A", "-x", "10.0.0.0/33"] {
            assert!(pool_ref_problem(bad, false).is_some(), "{bad:?}");
        }
        let conf = GOOD.replace(
            r#""type":"tabby-ipam""#,
            r#""type":"tabby-ipam","ipv4_pools":["fd00::/48"]"#,
        );
        let e = parse(conf.as_bytes(), false).unwrap_err();
        assert_eq!(e.code, INVALID_CONFIG);
        assert!(e.msg.starts_with("ipam.ipv4_pools: "), "{}", e.msg);
    }

    #[test]
    fn dual_stack_is_calicos_ipam_section() {
        let conf = GOOD.replace(
            r#""type":"tabby-ipam""#,
            r#""type":"tabby-ipam","assign_ipv4":"true","assign_ipv6":"true",
               "ipv4_pools":["10.9.0.0/16"],"ipv6_pools":["fd00:9::/48","default-ipv6-ippool"]"#,
        );
        let c = parse(conf.as_bytes(), false).unwrap();
        assert!(c.ipam.wants_ipv6());
        assert_eq!(c.ipam.ipv6_pools, ["fd00:9::/48", "default-ipv6-ippool"]);
        // Calico's default: IPv4 only.
        assert!(!parse(GOOD.as_bytes(), false).unwrap().ipam.wants_ipv6());
        let e = parse(conf.replace("fd00:9::/48", "10.8.0.0/16").as_bytes(), false).unwrap_err();
        assert_eq!(e.code, INVALID_CONFIG);
        assert!(e.msg.starts_with("ipam.ipv6_pools: "), "{}", e.msg);
        assert!(e.msg.contains("not an IPv6 CIDR"), "{}", e.msg);
        let e = parse(
            conf.replace(r#""assign_ipv6":"true""#, r#""assign_ipv6":"yes""#)
                .as_bytes(),
            false,
        )
        .unwrap_err();
        assert_eq!(e.code, INVALID_CONFIG);
        assert!(e.msg.contains("ipam.assign_ipv6 is \"yes\""), "{}", e.msg);
    }

    #[test]
    fn errors_name_the_problem_and_carry_the_spec_code() {
        let e = parse(b"{\"cniVersion\": \"1.0.0\",\n \"name\": }", false).unwrap_err();
        assert_eq!(e.code, DECODING_FAILURE);
        assert!(e.msg.contains("line 2"), "{}", e.msg);
        let e = parse(GOOD.replace("1.0.0", "9.9.9").as_bytes(), false).unwrap_err();
        assert_eq!(e.code, INCOMPATIBLE_VERSION);
        let e = parse(GOOD.replace("tabby-ipam", "host-local").as_bytes(), false).unwrap_err();
        assert_eq!(e.code, INVALID_CONFIG);
        assert!(e.msg.contains("ipam.type"), "{}", e.msg);
        let e = parse(GOOD.replace("\"mtu\":0", "\"mtu\":\"x\"").as_bytes(), false).unwrap_err();
        assert_eq!(e.code, INVALID_CONFIG);
        assert!(e.msg.contains("mtu"), "{}", e.msg);
        let v6_only = GOOD.replace(
            r#""type":"tabby-ipam""#,
            r#""type":"tabby-ipam","assign_ipv4":"false","assign_ipv6":"true""#,
        );
        let c = parse(v6_only.as_bytes(), false).unwrap();
        assert!(!c.ipam.wants_ipv4() && c.ipam.wants_ipv6());
        let neither = v6_only.replace(r#""assign_ipv6":"true""#, r#""assign_ipv6":"false""#);
        let e = parse(neither.as_bytes(), false).unwrap_err();
        assert_eq!(e.code, INVALID_CONFIG);
        assert!(
            e.msg.starts_with("IPAM plugin returned missing IP config"),
            "{}",
            e.msg
        );
        // The IPAM plugin doesn't care what delegates to it.
        let other = GOOD.replace(r#""type":"tabby","#, r#""type":"bridge","#);
        assert!(parse(other.as_bytes(), true).is_ok());
        assert_eq!(
            parse(other.as_bytes(), false).unwrap_err().code,
            INVALID_CONFIG
        );
    }
}
