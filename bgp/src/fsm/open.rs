//! Building our OPEN, checking the peer's, and what the two negotiate.
//!
//! Required capabilities: none by name. 4-octet AS, route refresh,
//! extended messages (RFC 8654) and graceful restart are used when both
//! sides offer them. The only hard
//! requirement is at least one address family in common (a peer sending
//! no Multiprotocol capability implies IPv4 unicast, RFC 4760 §8); without
//! one the session could carry nothing, so it is refused with 2/7 naming
//! the families we offer.

use super::notify::*;
use crate::peer_config::{LocalConfig, PeerConfig};
use crate::wire::{
    Afi, Capability, Family, GracefulRestartFamily, Notification, Open, AS_TRANS, BGP_VERSION,
};
use std::net::Ipv4Addr;

/// What a session runs with once both OPENs are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub peer_id: Ipv4Addr,
    pub peer_as: u32,
    pub local_as: u32,
    pub ibgp: bool,
    /// Seconds; 0 means neither side sends keepalives or runs a hold timer.
    pub hold_time: u16,
    pub keepalive: u16,
    pub four_octet_as: bool,
    /// RFC 8654: both sides advertised extended messages, so UPDATEs may
    /// be up to 65,535 octets.
    pub extended_message: bool,
    /// Families both sides offered, sorted.
    pub families: Vec<Family>,
    pub route_refresh: bool,
    /// The peer's graceful-restart capability, restricted to negotiated
    /// families; `None` when the peer did not offer it (then its routes are
    /// dropped, not kept stale, when the session goes down).
    pub peer_graceful_restart: Option<PeerGracefulRestart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerGracefulRestart {
    /// The peer's restart time capped by our `max_restart_time`.
    pub restart_time: u16,
    /// R bit: the peer has just restarted.
    pub restarting: bool,
    pub families: Vec<GracefulRestartFamily>,
}

impl PeerGracefulRestart {
    /// Families whose forwarding state the peer says it preserved (F bit).
    pub fn preserved(&self, family: Family) -> bool {
        self.families
            .iter()
            .any(|f| f.family == family && f.forwarding_preserved)
    }
}

/// Our OPEN for this peer.
pub fn build_open(local: &LocalConfig, peer: &PeerConfig) -> Open {
    let mut capabilities: Vec<Capability> = peer
        .families
        .iter()
        .map(|f| Capability::Multiprotocol(*f))
        .collect();
    capabilities.push(Capability::RouteRefresh);
    // Always offered: it only raises the limit when the peer offers it
    // too, and lets an UPDATE that grows on re-advertisement (our AS
    // prepended) still reach a peer that can take it.
    capabilities.push(Capability::ExtendedMessage);
    capabilities.push(Capability::FourOctetAs(local.asn));
    if let Some(restart_time) = local.graceful_restart {
        capabilities.push(Capability::GracefulRestart {
            restarting: local.restarting,
            restart_time: restart_time.min(0x0fff),
            families: peer
                .families
                .iter()
                .map(|f| GracefulRestartFamily {
                    family: *f,
                    forwarding_preserved: local.forwarding_preserved,
                })
                .collect(),
        });
    }
    Open {
        version: BGP_VERSION,
        my_as: u16::try_from(local.asn).unwrap_or(AS_TRANS),
        hold_time: peer.hold_time,
        bgp_id: local.router_id,
        capabilities,
    }
}

/// RFC 4271 §6.2 checks in the RFC's order, then negotiation. The error is
/// the NOTIFICATION to send.
pub fn check_open(
    local: &LocalConfig,
    peer: &PeerConfig,
    open: &Open,
) -> Result<Negotiated, Notification> {
    if open.version != BGP_VERSION {
        // Data: the largest version we support.
        return Err(notification(
            OPEN_MESSAGE_ERROR,
            OPEN_UNSUPPORTED_VERSION,
            vec![0, BGP_VERSION],
        ));
    }
    let peer_as = open.asn();
    if peer_as != peer.remote_as || (open.my_as == AS_TRANS && peer_as == u32::from(AS_TRANS)) {
        return Err(notification(
            OPEN_MESSAGE_ERROR,
            OPEN_BAD_PEER_AS,
            Vec::new(),
        ));
    }
    let ibgp = peer_as == local.asn;
    // RFC 6286: only iBGP needs distinct identifiers.
    if open.bgp_id.is_unspecified() || (ibgp && open.bgp_id == local.router_id) {
        return Err(notification(
            OPEN_MESSAGE_ERROR,
            OPEN_BAD_BGP_ID,
            Vec::new(),
        ));
    }
    if open.hold_time == 1 || open.hold_time == 2 {
        return Err(notification(
            OPEN_MESSAGE_ERROR,
            OPEN_UNACCEPTABLE_HOLD_TIME,
            Vec::new(),
        ));
    }

    let mut offered: Vec<Family> = open
        .capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
        .collect();
    if offered.is_empty() {
        offered.push(Family::IPV4_UNICAST);
    }
    let mut families: Vec<Family> = peer
        .families
        .iter()
        .copied()
        .filter(|f| offered.contains(f))
        .collect();
    families.sort();
    families.dedup();
    if families.is_empty() {
        return Err(notification(
            OPEN_MESSAGE_ERROR,
            OPEN_UNSUPPORTED_CAPABILITY,
            multiprotocol_data(&peer.families),
        ));
    }

    let hold_time = if open.hold_time == 0 || peer.hold_time == 0 {
        0
    } else {
        open.hold_time.min(peer.hold_time)
    };
    let four_octet_as = open
        .capabilities
        .iter()
        .any(|c| matches!(c, Capability::FourOctetAs(_)));
    let extended_message = open
        .capabilities
        .iter()
        .any(|c| matches!(c, Capability::ExtendedMessage));
    let route_refresh = open
        .capabilities
        .iter()
        .any(|c| matches!(c, Capability::RouteRefresh));
    let peer_graceful_restart = open.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart {
            restarting,
            restart_time,
            families: gr_families,
        } => Some(PeerGracefulRestart {
            restart_time: (*restart_time).min(peer.max_restart_time),
            restarting: *restarting,
            families: gr_families
                .iter()
                .filter(|f| families.contains(&f.family))
                .cloned()
                .collect(),
        }),
        _ => None,
    });

    Ok(Negotiated {
        peer_id: open.bgp_id,
        peer_as,
        local_as: local.asn,
        ibgp,
        hold_time,
        keepalive: hold_time / 3,
        four_octet_as,
        extended_message,
        families,
        route_refresh,
        peer_graceful_restart,
    })
}

/// RFC 5492 §3: the data of 2/7 lists the capabilities that were missing,
/// each as code, length, value.
fn multiprotocol_data(families: &[Family]) -> Vec<u8> {
    let mut data = Vec::with_capacity(families.len() * 6);
    for f in families {
        let afi: u16 = match f.afi {
            Afi::Ipv4 => 1,
            Afi::Ipv6 => 2,
        };
        data.extend_from_slice(&[1, 4]);
        data.extend_from_slice(&afi.to_be_bytes());
        data.extend_from_slice(&[0, 1]);
    }
    data
}
