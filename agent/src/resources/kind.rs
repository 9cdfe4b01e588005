//! The resource kinds Tabby stores, their names in each API and on the CLI.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    IpPool,
    BgpPeer,
    BgpConfiguration,
    Node,
    IpamBlock,
    BlockAffinity,
    IpamHandle,
    IpamConfig,
    WorkloadEndpoint,
    IpReservation,
    /// The tigera operator's Installation (`operator.tigera.io/v1`).
    Installation,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::IpPool,
        Kind::BgpPeer,
        Kind::BgpConfiguration,
        Kind::Node,
        Kind::IpamBlock,
        Kind::BlockAffinity,
        Kind::IpamHandle,
        Kind::IpamConfig,
        Kind::WorkloadEndpoint,
        Kind::IpReservation,
        Kind::Installation,
    ];

    /// Kinds whose objects live in a namespace; they are stored under
    /// `<namespace>/<name>`.
    pub fn namespaced(self) -> bool {
        self == Kind::WorkloadEndpoint
    }

    /// The apiVersion of the kind's own API: calicoctl's v3 for Calico's
    /// kinds, the operator's for the Installation.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Installation => super::installation::API_OPERATOR_V1,
            _ => super::meta::API_V3,
        }
    }

    /// The `kind:` field value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::IpPool => "IPPool",
            Kind::BgpPeer => "BGPPeer",
            Kind::BgpConfiguration => "BGPConfiguration",
            Kind::Node => "Node",
            Kind::IpamBlock => "IPAMBlock",
            Kind::BlockAffinity => "BlockAffinity",
            Kind::IpamHandle => "IPAMHandle",
            Kind::IpamConfig => "IPAMConfig",
            Kind::WorkloadEndpoint => "WorkloadEndpoint",
            Kind::IpReservation => "IPReservation",
            Kind::Installation => "Installation",
        }
    }

    /// The lowercase plural used in etcd keys and CRD names.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::IpPool => "ippools",
            Kind::BgpPeer => "bgppeers",
            Kind::BgpConfiguration => "bgpconfigurations",
            Kind::Node => "nodes",
            Kind::IpamBlock => "ipamblocks",
            Kind::BlockAffinity => "blockaffinities",
            Kind::IpamHandle => "ipamhandles",
            Kind::IpamConfig => "ipamconfigs",
            Kind::WorkloadEndpoint => "workloadendpoints",
            Kind::IpReservation => "ipreservations",
            Kind::Installation => "installations",
        }
    }

    /// Reads a `kind:` value. The v3 API calls IPAMConfig
    /// `IPAMConfiguration`; both are accepted.
    pub fn from_kind_field(s: &str) -> Option<Kind> {
        if s == "IPAMConfiguration" {
            return Some(Kind::IpamConfig);
        }
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Reads a kind as typed on the command line (`ippool`, `ippools`,
    /// `IPPool`, `bgpconfig`, ...), case-insensitively like calicoctl.
    pub fn from_cli(s: &str) -> Option<Kind> {
        let l = s.to_ascii_lowercase();
        let k = match l.as_str() {
            "ippool" | "ippools" | "ipp" | "ipps" | "pool" | "pools" => Kind::IpPool,
            "bgppeer" | "bgppeers" | "bgpp" | "bgpps" | "bp" | "bps" => Kind::BgpPeer,
            "bgpconfiguration" | "bgpconfigurations" | "bgpconfig" | "bgpconfigs" => {
                Kind::BgpConfiguration
            }
            "node" | "nodes" | "no" | "nos" => Kind::Node,
            "ipamblock" | "ipamblocks" => Kind::IpamBlock,
            "blockaffinity" | "blockaffinities" => Kind::BlockAffinity,
            "ipamhandle" | "ipamhandles" => Kind::IpamHandle,
            "ipamconfig" | "ipamconfigs" | "ipamconfiguration" | "ipamconfigurations" => {
                Kind::IpamConfig
            }
            "workloadendpoint" | "workloadendpoints" | "wep" | "weps" => Kind::WorkloadEndpoint,
            "ipreservation" | "ipreservations" | "ipr" | "iprs" => Kind::IpReservation,
            "installation" | "installations" => Kind::Installation,
            _ => return None,
        };
        Some(k)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
