//! The standalone daemon's YAML file (`tabby-node bgp --config FILE`).
//!
//! ```yaml
//! routerId: 10.0.0.1
//! asNumber: 64512
//! listenAddress: 0.0.0.0        # default 0.0.0.0
//! listenPort: 179               # default 179
//! gracefulRestartTime: 120      # seconds we ask peers to keep our routes; 0 = off
//! clusterId: 10.0.0.1           # makes this speaker a route reflector
//! originate: [10.244.0.0/26]
//! installRoutes: false          # kernel route install (see tabby-node)
//! peers:
//!   - address: 10.0.0.2
//!     asNumber: 64512
//!     password: s3cr3t          # TCP-MD5
//!     port: 179
//!     sourceAddress: 10.0.0.1
//!     otherFamilyNextHop: fd00::1 # next hop for IPv6 prefixes on this IPv4 session
//!     routeReflectorClient: false
//!     nextHopMode: auto         # auto | keep (keepOriginalNextHop)
//!     holdTime: 90
//!     openTimeout: 30           # seconds from connect to Established (OpenSent/OpenConfirm)
//!     passive: false
//!     maxPrefixes: 0
//!     bfd: { minRx: 300, minTx: 300, multiplier: 3 }  # milliseconds; {} = these defaults
//! ```

//!
//! The YAML is the agent's business: these types mirror the speaker's
//! [`tabby_bgp::peer_config`] in the file's camelCase and convert into it
//! ([`DaemonConfig::speaker_config`]), so the speaker crate needs no serde.

use ipnet::IpNet;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use tabby_bgp::peer_config::{
    BfdSettings, LocalConfig, PeerConfig, DEFAULT_HOLD_TIME, DEFAULT_RESTART_TIME,
};
use tabby_bgp::speaker::SpeakerConfig;
use tabby_bgp::transport::md5::MAX_KEY_LEN;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {field}: {source}")]
    Parse {
        path: String,
        field: String,
        source: serde_yaml::Error,
    },
    #[error("{path}: {field}: {reason}")]
    Invalid {
        path: String,
        field: String,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NextHopMode {
    /// Next-hop self towards eBGP peers and for originated prefixes;
    /// learned routes keep theirs towards iBGP peers (what BIRD does).
    #[default]
    Auto,
    /// Keep the original next hop, even towards eBGP peers.
    Keep,
}

/// BFD to a peer (RFC 5880/5882), intervals in milliseconds.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonBfd {
    #[serde(default)]
    pub min_rx: Option<u32>,
    #[serde(default)]
    pub min_tx: Option<u32>,
    #[serde(default)]
    pub multiplier: Option<u8>,
}

impl DaemonBfd {
    fn settings(&self) -> BfdSettings {
        let d = BfdSettings::default();
        let ms = |v: Option<u32>, def| v.map_or(def, |m| Duration::from_millis(m.into()));
        BfdSettings {
            min_rx: ms(self.min_rx, d.min_rx),
            min_tx: ms(self.min_tx, d.min_tx),
            multiplier: self.multiplier.unwrap_or(d.multiplier),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonPeer {
    pub address: IpAddr,
    pub as_number: u32,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub source_address: Option<IpAddr>,
    #[serde(default)]
    pub other_family_next_hop: Option<IpAddr>,
    #[serde(default)]
    pub route_reflector_client: bool,
    #[serde(default)]
    pub next_hop_mode: NextHopMode,
    #[serde(default)]
    pub hold_time: Option<u16>,
    /// Seconds a connection may take from connect to Established before
    /// it is dropped (default the speaker's 30 s).
    #[serde(default)]
    pub open_timeout: Option<u16>,
    #[serde(default)]
    pub passive: bool,
    #[serde(default)]
    pub max_prefixes: u32,
    #[serde(default)]
    pub bfd: Option<DaemonBfd>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonConfig {
    pub router_id: Ipv4Addr,
    pub as_number: u32,
    #[serde(default)]
    pub listen_address: Option<IpAddr>,
    #[serde(default)]
    pub listen_port: Option<u16>,
    #[serde(default)]
    pub graceful_restart_time: Option<u16>,
    #[serde(default)]
    pub cluster_id: Option<Ipv4Addr>,
    #[serde(default)]
    pub originate: Vec<IpNet>,
    #[serde(default)]
    pub install_routes: bool,
    #[serde(default)]
    pub peers: Vec<DaemonPeer>,
}

impl DaemonConfig {
    pub fn load(path: &Path) -> Result<DaemonConfig, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text, &p)
    }

    /// Parses and validates; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<DaemonConfig, ConfigError> {
        let de = serde_yaml::Deserializer::from_str(text);
        let cfg: DaemonConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            ConfigError::Parse {
                path: origin.to_string(),
                field: if field == "." {
                    "(top level)".into()
                } else {
                    field
                },
                source: e.into_inner(),
            }
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |field: String, reason: &str| ConfigError::Invalid {
            path: origin.to_string(),
            field,
            reason: reason.to_string(),
        };
        if self.router_id.is_unspecified() || self.router_id.is_broadcast() {
            return Err(bad("routerId".into(), "expected a unicast IPv4 address"));
        }
        if self.as_number == 0 {
            return Err(bad("asNumber".into(), "expected a non-zero AS number"));
        }
        if self.graceful_restart_time.is_some_and(|t| t > 4095) {
            return Err(bad(
                "gracefulRestartTime".into(),
                "expected at most 4095 seconds",
            ));
        }
        let mut seen = HashSet::new();
        for (i, p) in self.peers.iter().enumerate() {
            let f = |name: &str| format!("peers[{i}].{name}");
            if !seen.insert(p.address) {
                return Err(bad(f("address"), "the same peer address appears twice"));
            }
            if p.as_number == 0 {
                return Err(bad(f("asNumber"), "expected a non-zero AS number"));
            }
            if p.password
                .as_ref()
                .is_some_and(|pw| pw.is_empty() || pw.len() > MAX_KEY_LEN)
            {
                return Err(bad(f("password"), "expected 1 to 80 bytes (TCP-MD5 key)"));
            }
            if p.source_address
                .is_some_and(|s| s.is_ipv4() != p.address.is_ipv4())
            {
                return Err(bad(
                    f("sourceAddress"),
                    "expected the same address family as address",
                ));
            }
            if p.other_family_next_hop
                .is_some_and(|s| s.is_ipv4() == p.address.is_ipv4() || s.is_unspecified())
            {
                return Err(bad(
                    f("otherFamilyNextHop"),
                    "expected a unicast address of the other family than address",
                ));
            }
            if p.hold_time.is_some_and(|h| h == 1 || h == 2) {
                return Err(bad(f("holdTime"), "expected 0 or at least 3 seconds"));
            }
            if p.open_timeout == Some(0) {
                return Err(bad(f("openTimeout"), "expected at least 1 second"));
            }
            if p.port == Some(0) {
                return Err(bad(f("port"), "expected a TCP port (1-65535)"));
            }
            if let Some(b) = &p.bfd {
                for (name, v) in [("bfd.minRx", b.min_rx), ("bfd.minTx", b.min_tx)] {
                    if v.is_some_and(|ms| !(10..=60_000).contains(&ms)) {
                        return Err(bad(f(name), "expected 10 to 60000 milliseconds"));
                    }
                }
                if b.multiplier == Some(0) {
                    return Err(bad(f("bfd.multiplier"), "expected 1 to 255"));
                }
            }
        }
        Ok(())
    }

    pub fn listen(&self) -> SocketAddr {
        SocketAddr::new(
            self.listen_address
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            self.listen_port.unwrap_or(179),
        )
    }

    /// The speaker configuration. `restarting` sets the R bit of our
    /// graceful-restart capability (the daemon was restarted).
    pub fn speaker_config(&self, restarting: bool) -> SpeakerConfig {
        let mut local = LocalConfig::new(self.router_id, self.as_number);
        local.cluster_id = self.cluster_id;
        local.graceful_restart = match self.graceful_restart_time {
            Some(0) => None,
            Some(t) => Some(t),
            None => Some(DEFAULT_RESTART_TIME),
        };
        local.restarting = restarting;
        let peers = self
            .peers
            .iter()
            .map(|p| {
                let mut c = PeerConfig::new(p.address, p.as_number);
                c.password = p.password.clone();
                c.port = p.port.unwrap_or(179);
                c.source_address = p.source_address;
                c.other_family_next_hop = p.other_family_next_hop;
                c.route_reflector_client = p.route_reflector_client;
                c.keep_original_next_hop = p.next_hop_mode == NextHopMode::Keep;
                c.hold_time = p.hold_time.unwrap_or(DEFAULT_HOLD_TIME);
                if let Some(t) = p.open_timeout {
                    c.open_timeout = std::time::Duration::from_secs(t.into());
                }
                c.passive = p.passive;
                c.max_prefixes = p.max_prefixes;
                c.bfd = p.bfd.map(|b| b.settings());
                c
            })
            .collect();
        SpeakerConfig {
            local,
            listen: Some(self.listen()),
            peers,
            originate: self.originate.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "
routerId: 10.0.0.1
asNumber: 64512
listenPort: 1179
originate: [10.244.0.0/26]
peers:
  - address: 10.0.0.2
    asNumber: 64513
    password: s3cr3t
    nextHopMode: keep
    holdTime: 9
    otherFamilyNextHop: fd00::1
";

    #[test]
    fn parses_and_maps_to_the_speaker() {
        let c = DaemonConfig::parse(GOOD, "t.yaml").unwrap();
        let s = c.speaker_config(true);
        assert_eq!(s.listen, Some("0.0.0.0:1179".parse().unwrap()));
        assert!(s.local.restarting);
        assert_eq!(s.local.graceful_restart, Some(120));
        let p = &s.peers[0];
        assert_eq!((p.remote_as, p.hold_time, p.port), (64513, 9, 179));
        assert!(p.keep_original_next_hop);
        assert_eq!(p.password.as_deref(), Some("s3cr3t"));
        assert_eq!(p.other_family_next_hop, Some("fd00::1".parse().unwrap()));
        assert_eq!(s.originate, vec!["10.244.0.0/26".parse::<IpNet>().unwrap()]);
        assert_eq!(p.bfd, None);
        let c = DaemonConfig::parse(
            &GOOD.replace(
                "holdTime: 9",
                "holdTime: 9\n    bfd: { minTx: 100, multiplier: 5 }",
            ),
            "t.yaml",
        )
        .unwrap();
        let b = c.speaker_config(false).peers[0].bfd.expect("bfd");
        assert_eq!(
            (b.min_rx, b.min_tx, b.multiplier),
            (Duration::from_millis(300), Duration::from_millis(100), 5)
        );
        let e = DaemonConfig::parse(&GOOD.replace("holdTime: 9", "bfd: { minRx: 5 }"), "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("peers[0].bfd.minRx"), "{e}");
    }

    #[test]
    fn errors_name_the_field() {
        let e = DaemonConfig::parse(&GOOD.replace("asNumber: 64513", "asNumber: x"), "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("peers[0].asNumber"), "{e}");
        let c = DaemonConfig::parse(
            &GOOD.replace("holdTime: 9", "holdTime: 9\n    openTimeout: 7"),
            "t.yaml",
        )
        .unwrap();
        let p = &c.speaker_config(false).peers[0];
        assert_eq!(p.open_timeout, std::time::Duration::from_secs(7));
        let e = DaemonConfig::parse(&GOOD.replace("holdTime: 9", "openTimeout: 0"), "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("peers[0].openTimeout"), "{e}");
        let e = DaemonConfig::parse(&GOOD.replace("holdTime: 9", "holdTime: 2"), "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("peers[0].holdTime") && e.contains("at least 3"),
            "{e}"
        );
        let e = DaemonConfig::parse(&GOOD.replace("listenPort", "listenPrt"), "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listenPrt"), "{e}");
        let e = DaemonConfig::parse(&GOOD.replace("fd00::1", "10.0.0.9"), "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("peers[0].otherFamilyNextHop") && e.contains("other family"),
            "{e}"
        );
        let dup = format!("{GOOD}  - address: 10.0.0.2\n    asNumber: 1\n");
        let e = DaemonConfig::parse(&dup, "t.yaml").unwrap_err().to_string();
        assert!(e.contains("peers[1].address") && e.contains("twice"), "{e}");
    }
}
