//! tabby-node's configuration, read from calico-node's environment
//! variables plus Tabby's own (`TABBY_*`). Parsed from a lookup function so
//! tests never touch the process environment. Every error names the
//! variable and what was expected, and stops the daemon at start.

use crate::datastore::DatastoreConfig;
use crate::resources::ippool::EncapMode;
use crate::resources::AsNumber;
use ipnet::Ipv4Net;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use tabby_felix_lite::autodetect::{IpSetting, Method};
use tabby_felix_lite::{features, mtu};

use crate::grpc::DEFAULT_RUN_DIR;

/// `CALICO_NETWORKING_BACKEND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// BGP through Tabby's own speaker (calico-node runs BIRD here).
    Bird,
    /// No BGP: every remote block goes through VXLAN.
    Vxlan,
    /// No route distribution at all (policy-only).
    None,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Bird => "bird",
            Backend::Vxlan => "vxlan",
            Backend::None => "none",
        }
    }
}

/// The default pool created when none exists (`CALICO_IPV4POOL_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultPool {
    pub cidr: Ipv4Net,
    pub block_size: u8,
    pub vxlan_mode: EncapMode,
    pub nat_outgoing: bool,
}

/// Which settings an Installation could also give were set in this
/// node's own environment: those win over the Installation (a node's env
/// is the more specific place, as in a DaemonSet override).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnvSet {
    /// `IP` set to an address or `none` (not `autodetect`).
    pub ip: bool,
    pub autodetect: bool,
    pub backend: bool,
    pub vxlan_mtu: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    pub node_name: String,
    pub ip: IpSetting,
    pub autodetect: Method,
    pub as_number: Option<AsNumber>,
    pub backend: Backend,
    pub datastore: DatastoreConfig,
    pub pool: DefaultPool,
    pub run_dir: PathBuf,
    pub vxlan_fallback: bool,
    /// Hold time proposed to every peer, and how long a mesh session may be
    /// down before its blocks fall back to VXLAN.
    pub hold_time: Duration,
    pub connect_retry: Duration,
    /// The `tracing` filter (`TABBY_LOG`), e.g. `info` or `tabby=debug`.
    pub log: String,
    /// `FELIX_VXLANMTU`; None (unset or 0) = the parent interface's MTU
    /// minus VXLAN's 50 bytes, worked out by felix-lite.
    pub vxlan_mtu: Option<u32>,
    /// The `ChecksumOffloadBroken` item of `FELIX_FEATUREDETECTOVERRIDE`;
    /// None = decide from the kernel release
    /// ([`NodeConfig::checksum_offload_broken`]).
    pub checksum_offload_override: Option<bool>,
    /// Where `/liveness` and `/readiness` are served (`FELIX_HEALTH*`);
    /// None when `FELIX_HEALTHENABLED` is not true.
    pub health: Option<SocketAddr>,
    /// Where `/metrics` is served (`FELIX_PROMETHEUSMETRICS*`); None when
    /// `FELIX_PROMETHEUSMETRICSENABLED` is not true.
    pub metrics: Option<SocketAddr>,
    pub env_set: EnvSet,
    /// `IP6`, `IP6_AUTODETECTION_METHOD`, `CALICO_IPV6POOL_*`,
    /// `FELIX_IPV6SUPPORT` (parsed and validated; not acted on yet).
    pub ipv6: super::config6::Ipv6Config,
    /// `CALICO_ROUTER_ID`.
    pub router_id: super::router_id::RouterId,
}

impl NodeConfig {
    pub fn socket_path(&self) -> PathBuf {
        crate::grpc::socket_path(&self.run_dir)
    }

    /// Felix's `ChecksumOffloadBroken` for this node: the override, else the
    /// kernel release. Reads the kernel and logs the decision (a WARN when
    /// the release can't be used and Felix's default applies), so call it
    /// once at start; parsing the environment stays free of I/O.
    pub fn checksum_offload_broken(&self) -> bool {
        features::resolve_checksum_offload_broken(self.checksum_offload_override)
    }

    pub fn from_env() -> Result<NodeConfig, String> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::from_map(&env)
    }

    pub fn from_map(env: &HashMap<String, String>) -> Result<NodeConfig, String> {
        let get = |k: &str| env.get(k).map(|v| v.trim().to_string());
        let non_empty = |k: &str| get(k).filter(|v| !v.is_empty());

        let node_name = non_empty("NODENAME").ok_or_else(|| {
            "NODENAME: required (the name of this node, as in the Node resource)".to_string()
        })?;
        if node_name.len() > 253
            || !node_name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            return Err(format!(
                "NODENAME: {node_name:?} is not a valid node name (expected lower-case letters, digits, '-' and '.')"
            ));
        }
        let ip: IpSetting = get("IP")
            .unwrap_or_default()
            .parse()
            .map_err(|e: tabby_felix_lite::autodetect::ParseError| e.to_string())?;
        let autodetect: Method = get("IP_AUTODETECTION_METHOD")
            .unwrap_or_default()
            .parse()
            .map_err(|e: tabby_felix_lite::autodetect::ParseError| e.to_string())?;
        let as_number = match non_empty("AS") {
            None => None,
            Some(v) => Some(AsNumber::parse(&v).map_err(|e| {
                format!("AS: {v:?} is not an AS number (expected 1-4294967295 or asdot X.Y): {e}")
            })?),
        };
        let backend = match non_empty("CALICO_NETWORKING_BACKEND").as_deref() {
            None | Some("bird") => Backend::Bird,
            Some("vxlan") => Backend::Vxlan,
            Some("none") => Backend::None,
            Some(other) => {
                return Err(format!(
                    "CALICO_NETWORKING_BACKEND: {other:?} is not a backend (expected bird, vxlan or none)"
                ))
            }
        };
        let datastore = DatastoreConfig::from_lookup(|k| get(k))?;
        let pool = default_pool(&non_empty)?;
        let run_dir = non_empty("TABBY_RUN_DIR")
            .unwrap_or_else(|| DEFAULT_RUN_DIR.to_string())
            .into();
        let vxlan_fallback = match non_empty("TABBY_VXLAN_FALLBACK") {
            None => true,
            Some(v) => parse_bool("TABBY_VXLAN_FALLBACK", &v)?,
        };
        let hold = seconds(&non_empty, "TABBY_BGP_HOLD_TIME", 90)?;
        // RFC 4271: 0 (no keepalives) or at least 3 seconds.
        if hold != 0 && hold < 3 || hold > u64::from(u16::MAX) {
            return Err(format!(
                "TABBY_BGP_HOLD_TIME: {hold} is not a hold time (expected 0 or 3-65535 seconds)"
            ));
        }
        let retry = seconds(&non_empty, "TABBY_BGP_CONNECT_RETRY", 5)?;
        if retry == 0 {
            return Err(
                "TABBY_BGP_CONNECT_RETRY: 0 is not a retry interval (expected at least 1 second)"
                    .into(),
            );
        }
        let log = non_empty("TABBY_LOG").unwrap_or_else(|| "info".to_string());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log) {
            return Err(format!(
                "TABBY_LOG: {log:?} is not a log filter (expected e.g. info, debug or tabby_agent=debug): {e}"
            ));
        }
        let vxlan_mtu =
            mtu::parse_vxlan_mtu(get("FELIX_VXLANMTU").as_deref()).map_err(|e| e.to_string())?;
        let checksum_offload_override = match non_empty(features::OVERRIDE_VAR) {
            None => None,
            Some(v) => features::parse_override(&v).map_err(|e| e.to_string())?,
        };
        let env_set = EnvSet {
            ip: ip != IpSetting::Autodetect,
            autodetect: non_empty("IP_AUTODETECTION_METHOD").is_some(),
            backend: non_empty("CALICO_NETWORKING_BACKEND").is_some(),
            vxlan_mtu: vxlan_mtu.is_some(),
        };
        let ipv6 = super::config6::Ipv6Config::from_lookup(&non_empty)?;
        let health = health_addr(env)?;
        let metrics = endpoint(
            &non_empty,
            "FELIX_PROMETHEUSMETRICS",
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            9091,
        )?;
        let router_id = super::router_id::parse(non_empty("CALICO_ROUTER_ID").as_deref())?;
        Ok(NodeConfig {
            router_id,
            ipv6,
            env_set,
            health,
            metrics,
            node_name,
            ip,
            autodetect,
            as_number,
            backend,
            datastore,
            pool,
            run_dir,
            vxlan_fallback,
            hold_time: Duration::from_secs(hold),
            connect_retry: Duration::from_secs(retry),
            log,
            vxlan_mtu,
            checksum_offload_override,
        })
    }
}

/// The health endpoint from `FELIX_HEALTHENABLED`, `FELIX_HEALTHHOST`
/// (default localhost, as Felix) and `FELIX_HEALTHPORT` (9099); None when
/// disabled. Disabled by default as in Felix; calico-node's manifest turns
/// it on. Shared with `tabby-node health`, which must find the port the
/// daemon serves without needing the daemon's other variables.
pub fn health_addr(env: &HashMap<String, String>) -> Result<Option<SocketAddr>, String> {
    let non_empty = |k: &str| {
        env.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    endpoint(
        &non_empty,
        "FELIX_HEALTH",
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        9099,
    )
}

/// `<prefix>ENABLED`, `<prefix>HOST`, `<prefix>PORT`: Felix's naming for
/// both its health and its Prometheus endpoints.
fn endpoint(
    get: &dyn Fn(&str) -> Option<String>,
    prefix: &str,
    default_host: IpAddr,
    default_port: u16,
) -> Result<Option<SocketAddr>, String> {
    let enabled_var = format!("{prefix}ENABLED");
    let enabled = match get(&enabled_var) {
        None => false,
        Some(v) => parse_bool(&enabled_var, &v)?,
    };
    let host_var = format!("{prefix}HOST");
    let host = match get(&host_var) {
        None => default_host,
        Some(h) if h.eq_ignore_ascii_case("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(h) => h.parse::<IpAddr>().map_err(|_| {
            format!("{host_var}: {h:?} is not an address (expected an IP address or localhost)")
        })?,
    };
    let port_var = format!("{prefix}PORT");
    let port = match get(&port_var) {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{port_var}: {p:?} is not a port (expected 1-65535)"))?,
    };
    Ok(enabled.then_some(SocketAddr::new(host, port)))
}

fn default_pool(get: &dyn Fn(&str) -> Option<String>) -> Result<DefaultPool, String> {
    let cidr_text = get("CALICO_IPV4POOL_CIDR").unwrap_or_else(|| "192.168.0.0/16".into());
    let cidr: Ipv4Net = cidr_text.parse().map_err(|_| {
        format!("CALICO_IPV4POOL_CIDR: {cidr_text:?} is not an IPv4 CIDR (expected A.B.C.D/N)")
    })?;
    if cidr.trunc() != cidr {
        return Err(format!(
            "CALICO_IPV4POOL_CIDR: {cidr} has host bits set (expected {})",
            cidr.trunc()
        ));
    }
    let block_size = match get("CALICO_IPV4POOL_BLOCK_SIZE") {
        None => 26,
        Some(v) => v
            .parse::<u8>()
            .ok()
            .filter(|b| (20..=32).contains(b))
            .ok_or_else(|| {
                format!("CALICO_IPV4POOL_BLOCK_SIZE: {v:?} is not a block size (expected 20-32)")
            })?,
    };
    if block_size < cidr.prefix_len() {
        return Err(format!(
            "CALICO_IPV4POOL_BLOCK_SIZE: /{block_size} blocks do not fit in CALICO_IPV4POOL_CIDR {cidr} (expected at least {})",
            cidr.prefix_len()
        ));
    }
    let vxlan_mode =
        super::config6::vxlan_mode_var("CALICO_IPV4POOL_VXLAN", get("CALICO_IPV4POOL_VXLAN"))?;
    let nat_outgoing = match get("CALICO_IPV4POOL_NAT_OUTGOING") {
        None => true,
        Some(v) => parse_bool("CALICO_IPV4POOL_NAT_OUTGOING", &v)?,
    };
    Ok(DefaultPool {
        cidr,
        block_size,
        vxlan_mode,
        nat_outgoing,
    })
}

fn parse_bool(var: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!(
            "{var}: {v:?} is not a boolean (expected true or false)"
        )),
    }
}

fn seconds(get: &dyn Fn(&str) -> Option<String>, var: &str, default: u64) -> Result<u64, String> {
    match get(var) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| format!("{var}: {v:?} is not a number of seconds (expected e.g. 9)")),
    }
}
