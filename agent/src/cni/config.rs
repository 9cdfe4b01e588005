//! The network configuration on stdin: one plugin's entry of a conflist as
//! the runtime renders it (`cniVersion` and `name` copied in from the list,
//! `prevResult` added for CHECK and DEL, `runtimeConfig` and other keys the
//! runtime adds are ignored).

use super::error::{
    CniError, DECODING_FAILURE, INCOMPATIBLE_VERSION, INVALID_CONFIG, UNSUPPORTED_FIELD,
};
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
    pub prev_result: Option<serde_json::Value>,
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
            "network configuration on stdin is not valid JSON: {} at line {} column {}",
            e,
            e.line(),
            e.column()
        ),
    )
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
    if !ipam.ipv6_pools.is_empty() || ipam.assign_ipv6.as_deref() == Some("true") {
        return Err(CniError::new(
            UNSUPPORTED_FIELD,
            "ipam.assign_ipv6 / ipam.ipv6_pools: IPv6 pod addresses are not supported yet",
        ));
    }
    if ipam.assign_ipv4.as_deref() == Some("false") {
        return Err(CniError::new(
            UNSUPPORTED_FIELD,
            "ipam.assign_ipv4 \"false\": a pod needs an IPv4 address (IPv6-only is not supported)",
        ));
    }
    for p in &ipam.ipv4_pools {
        if p.parse::<ipnet::Ipv4Net>().is_err() {
            return invalid(format!(
                "ipam.ipv4_pools: {p:?} is not an IPv4 CIDR (pools are named by CIDR)"
            ));
        }
    }
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
        let v6 = GOOD.replace(
            r#""type":"tabby-ipam""#,
            r#""type":"tabby-ipam","assign_ipv6":"true""#,
        );
        assert_eq!(
            parse(v6.as_bytes(), false).unwrap_err().code,
            UNSUPPORTED_FIELD
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
