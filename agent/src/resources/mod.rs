//! Calico's resource kinds as typed Rust values, and reading them from
//! multi-document YAML/JSON in either `projectcalico.org/v3` (calicoctl) or
//! `crd.projectcalico.org/v1` (kubectl) form.

pub mod asn;
pub mod bfd;
pub mod bgp;
pub mod duration;
pub mod installation;
pub mod installation_render;
mod installation_validate;
pub mod ipam;
pub mod ippool;
pub mod kind;
pub mod limits;
pub mod meta;
pub mod node;
mod parse;
pub mod reservation;
pub mod validate;
mod validate_pool;
pub mod workload;

pub use asn::AsNumber;
pub use kind::Kind;
pub use meta::{Object, ObjectMeta, API_CRD_V1, API_V3};
pub use parse::{parse_documents, parse_documents_lenient, ParseError, ParsedDocument};

use serde::Serialize;

pub type IpPool = Object<ippool::IpPoolSpec>;
pub type BgpPeer = Object<bgp::BgpPeerSpec>;
pub type BgpConfiguration = Object<bgp::BgpConfigurationSpec>;
pub type Node = Object<node::NodeSpec>;
pub type IpamBlock = Object<ipam::IpamBlockSpec>;
pub type BlockAffinity = Object<ipam::BlockAffinitySpec>;
pub type IpamHandle = Object<ipam::IpamHandleSpec>;
pub type IpamConfig = Object<ipam::IpamConfigSpec>;
pub type WorkloadEndpoint = Object<workload::WorkloadEndpointSpec>;
pub type IpReservation = Object<reservation::IpReservationSpec>;
pub type Installation = Object<installation::InstallationSpec>;

/// One resource of any kind Tabby stores.
#[derive(Clone, Debug, PartialEq)]
pub enum Resource {
    IpPool(IpPool),
    BgpPeer(BgpPeer),
    BgpConfiguration(BgpConfiguration),
    Node(Node),
    IpamBlock(IpamBlock),
    BlockAffinity(BlockAffinity),
    IpamHandle(IpamHandle),
    IpamConfig(IpamConfig),
    WorkloadEndpoint(WorkloadEndpoint),
    IpReservation(IpReservation),
    Installation(Installation),
}

/// Runs `$body` with `$o` bound to the inner `Object<_>` of any variant.
macro_rules! each_variant {
    ($r:expr, $o:ident => $body:expr) => {
        match $r {
            Resource::IpPool($o) => $body,
            Resource::BgpPeer($o) => $body,
            Resource::BgpConfiguration($o) => $body,
            Resource::Node($o) => $body,
            Resource::IpamBlock($o) => $body,
            Resource::BlockAffinity($o) => $body,
            Resource::IpamHandle($o) => $body,
            Resource::IpamConfig($o) => $body,
            Resource::WorkloadEndpoint($o) => $body,
            Resource::IpReservation($o) => $body,
            Resource::Installation($o) => $body,
        }
    };
}

impl Resource {
    pub fn kind(&self) -> Kind {
        match self {
            Resource::IpPool(_) => Kind::IpPool,
            Resource::BgpPeer(_) => Kind::BgpPeer,
            Resource::BgpConfiguration(_) => Kind::BgpConfiguration,
            Resource::Node(_) => Kind::Node,
            Resource::IpamBlock(_) => Kind::IpamBlock,
            Resource::BlockAffinity(_) => Kind::BlockAffinity,
            Resource::IpamHandle(_) => Kind::IpamHandle,
            Resource::IpamConfig(_) => Kind::IpamConfig,
            Resource::WorkloadEndpoint(_) => Kind::WorkloadEndpoint,
            Resource::IpReservation(_) => Kind::IpReservation,
            Resource::Installation(_) => Kind::Installation,
        }
    }

    /// Sets `kind:` to Tabby's spelling (`IPAMConfiguration` → `IPAMConfig`).
    pub(crate) fn canonicalize_kind(&mut self) {
        let k = self.kind().as_str().to_string();
        each_variant!(self, o => o.kind = k)
    }

    pub fn metadata(&self) -> &ObjectMeta {
        each_variant!(self, o => &o.metadata)
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        each_variant!(self, o => &mut o.metadata)
    }

    pub fn name(&self) -> &str {
        &self.metadata().name
    }

    /// The name a datastore keys it by: `<namespace>/<name>` for
    /// namespaced kinds (namespace "default" when unset), else the name.
    pub fn key_name(&self) -> String {
        if self.kind().namespaced() {
            self.metadata().namespaced_key()
        } else {
            self.name().to_string()
        }
    }

    /// The revision this copy was read at, if it came from a datastore.
    pub fn revision(&self) -> Option<u64> {
        self.metadata()
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
    }

    pub fn set_revision(&mut self, rev: u64) {
        self.metadata_mut().resource_version = Some(rev.to_string());
    }

    /// The resource in calicoctl's v3 form (the operator's v1 for an
    /// Installation), as a JSON value.
    pub fn to_json_value(&self) -> serde_json::Value {
        let mut c = self.clone();
        let api = self.kind().api_version();
        each_variant!(&mut c, o => o.api_version = api.to_string());
        // Serializing these plain data types cannot fail.
        each_variant!(&c, o => serde_json::to_value(o).unwrap_or(serde_json::Value::Null))
    }

    /// Reads a resource from its v3 (or CRD v1) JSON form.
    pub fn from_json_slice(bytes: &[u8]) -> Result<Resource, String> {
        let v: serde_yaml::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        parse::resource_from_value(v).map_err(|e| e.to_string())
    }

    /// Serializes as v3 JSON bytes (the stored form in sqlite and etcd).
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json_value()).unwrap_or_default()
    }
}

impl Serialize for Resource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json_value().serialize(s)
    }
}
