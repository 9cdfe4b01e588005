//! IPReservation (`projectcalico.org/v3`, cluster-scoped): addresses the
//! IPAM allocator must not hand out. It only blocks new allocations;
//! addresses already assigned inside a reserved range stay assigned.

use ipnet::IpNet;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpReservationSpec {
    /// CIDRs or single addresses, as written (Calico accepts both).
    #[serde(default, rename = "reservedCIDRs")]
    #[schemars(schema_with = "cidrs_or_addresses")]
    pub reserved_cidrs: Vec<String>,
}

/// What [`parse_reserved`] accepts, as far as OpenAPI formats say it.
fn cidrs_or_addresses(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {
            "type": "string",
            "anyOf": [{"format": "cidr"}, {"format": "ipv4"}, {"format": "ipv6"}]
        }
    })
}

/// One `reservedCIDRs` entry as a network: a CIDR (host bits are ignored,
/// as Go's ParseCIDR does) or a single address as a /32 or /128.
pub fn parse_reserved(s: &str) -> Option<IpNet> {
    if let Ok(n) = s.trim().parse::<IpNet>() {
        return Some(n.trunc());
    }
    s.trim().parse::<IpAddr>().ok().map(IpNet::from)
}

impl IpReservationSpec {
    /// The entries that parse; stored reservations were validated at
    /// apply time, but one written by another tool may not have been.
    pub fn networks(&self) -> Vec<IpNet> {
        self.reserved_cidrs
            .iter()
            .filter_map(|s| parse_reserved(s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_addresses_parse_to_networks() {
        assert_eq!(
            parse_reserved("10.0.0.5/30"),
            Some("10.0.0.4/30".parse().unwrap())
        );
        assert_eq!(
            parse_reserved("10.0.0.9"),
            Some("10.0.0.9/32".parse().unwrap())
        );
        assert_eq!(
            parse_reserved("fd00::1"),
            Some("fd00::1/128".parse().unwrap())
        );
        assert_eq!(parse_reserved("10.0.0.0/33"), None);
        assert_eq!(parse_reserved("nope"), None);
    }
}
