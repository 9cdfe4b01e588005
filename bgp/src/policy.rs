//! Import and export policy hooks the agent configures per peer. The iBGP
//! and route-reflector rules are not policy: they live in the RIB's export
//! step and always apply.

use ipnet::IpNet;

/// One prefix-list entry: `prefix` itself and, when `max_len` is larger,
/// every more specific prefix inside it up to `max_len` (BIRD's
/// `10.0.0.0/16{16,26}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixMatch {
    pub prefix: IpNet,
    pub min_len: u8,
    pub max_len: u8,
}

impl PrefixMatch {
    /// The prefix and everything more specific (e.g. a pool CIDR and its blocks).
    pub fn or_longer(prefix: IpNet) -> Self {
        PrefixMatch {
            prefix: prefix.trunc(),
            min_len: prefix.prefix_len(),
            max_len: prefix.max_prefix_len(),
        }
    }

    /// Exactly this prefix.
    pub fn exact(prefix: IpNet) -> Self {
        PrefixMatch {
            prefix: prefix.trunc(),
            min_len: prefix.prefix_len(),
            max_len: prefix.prefix_len(),
        }
    }

    pub fn matches(&self, net: &IpNet) -> bool {
        let len = net.prefix_len();
        len >= self.min_len && len <= self.max_len && self.prefix.contains(net)
    }
}

/// Which prefixes pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PrefixFilter {
    #[default]
    Any,
    Nothing,
    /// A prefix passes when any entry matches.
    List(Vec<PrefixMatch>),
}

impl PrefixFilter {
    pub fn accepts(&self, net: &IpNet) -> bool {
        match self {
            PrefixFilter::Any => true,
            PrefixFilter::Nothing => false,
            PrefixFilter::List(list) => list.iter().any(|m| m.matches(net)),
        }
    }
}

/// Applied to every prefix a peer announces, after AS-loop and
/// route-reflector loop checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportPolicy {
    pub filter: PrefixFilter,
}

/// Applied to every best path before the peer-role rules rewrite it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPolicy {
    /// Prefixes this speaker originates always pass (when the peer role
    /// allows them at all); this gates whether they are sent.
    pub originated: bool,
    /// Which routes learned from other peers may be passed on (the iBGP
    /// and route-reflector rules still apply on top).
    pub learned: PrefixFilter,
    /// Standard communities (`asn << 16 | value`) added on export.
    pub add_communities: Vec<u32>,
}

impl Default for ExportPolicy {
    fn default() -> Self {
        ExportPolicy {
            originated: true,
            learned: PrefixFilter::Any,
            add_communities: Vec::new(),
        }
    }
}

impl ExportPolicy {
    pub fn accepts(&self, net: &IpNet, originated: bool) -> bool {
        if originated {
            self.originated
        } else {
            self.learned.accepts(net)
        }
    }
}

/// Parses `"asn:value"` (both 16-bit) into a standard community.
pub fn parse_community(text: &str) -> Result<u32, PolicyError> {
    let bad = || PolicyError::Community(text.to_string());
    let (hi, lo) = text.split_once(':').ok_or_else(bad)?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    Ok(u32::from(hi) << 16 | u32::from(lo))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("community {0:?}: expected \"asn:value\" with both parts 0..=65535")]
    Community(String),
}
