//! RIB-only load: one feeder peer announces N IPv4 /32s (UPDATEs of 800
//! NLRI sharing one attribute set), one monitor peer receives them.
//! Prints the time per phase and the process's peak RSS, to see what the
//! RIB costs apart from sockets and the codec.
//!
//! `cargo run --release -p tabby-bgp --example rib_load -- 1000000`

use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;
use tabby_bgp::fsm::Negotiated;
use tabby_bgp::peer_config::{LocalConfig, PeerConfig};
use tabby_bgp::rib::{Rib, SessionInfo};
use tabby_bgp::wire::{AsSegment, Family, Origin, PathAttributes, Update};

fn session(id: Ipv4Addr, asn: u32) -> SessionInfo {
    SessionInfo {
        negotiated: Negotiated {
            peer_id: id,
            peer_as: asn,
            local_as: 64512,
            ibgp: false,
            hold_time: 90,
            keepalive: 30,
            four_octet_as: true,
            extended_message: false,
            families: vec![Family::IPV4_UNICAST],
            route_refresh: true,
            peer_graceful_restart: None,
        },
        next_hop_v4: Some(Ipv4Addr::new(10, 0, 0, 1)),
        next_hop_v6: Some(Ipv6Addr::LOCALHOST),
    }
}

fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut rib = Rib::new(LocalConfig::new(Ipv4Addr::new(10, 0, 0, 1), 64512));
    let feeder = Ipv4Addr::new(10, 0, 0, 2);
    let monitor = Ipv4Addr::new(10, 0, 0, 3);
    for (addr, asn) in [(feeder, 65001), (monitor, 65002)] {
        rib.set_peer(PeerConfig::new(IpAddr::V4(addr), asn));
        rib.session_up(IpAddr::V4(addr), session(addr, asn));
    }
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: vec![AsSegment::Sequence(vec![65001])],
        next_hop: Some(feeder),
        ..PathAttributes::default()
    };
    let updates: Vec<Update> = (0..n)
        .collect::<Vec<_>>()
        .chunks(800)
        .map(|c| Update {
            attrs: attrs.clone(),
            nlri: c
                .iter()
                .map(|i| Ipv4Net::new(Ipv4Addr::from(0x0b00_0000 + i), 32).unwrap())
                .collect(),
            ..Update::default()
        })
        .collect();

    let before = rss_kib();
    let start = Instant::now();
    let mut exported = 0usize;
    let mut messages = 0usize;
    for u in &updates {
        let changes = rib.apply_update(IpAddr::V4(feeder), u);
        for e in &changes.exports {
            exported += e.announced_count();
            messages += e.to_updates().len();
        }
    }
    let load = start.elapsed();
    println!(
        "announce {n}: {:.3} s ({:.0} prefixes/s), exported {exported} in {messages} UPDATEs, {} attribute sets",
        load.as_secs_f64(),
        f64::from(n) / load.as_secs_f64(),
        rib.attribute_sets()
    );
    println!(
        "RSS: {} MiB before load (input UPDATEs), {} MiB after, peak {} MiB",
        before / 1024,
        rss_kib() / 1024,
        peak_rss_kib() / 1024
    );

    let start = Instant::now();
    let withdrawals: Vec<IpNet> = updates
        .iter()
        .flat_map(|u| u.nlri.iter().map(|n| IpNet::V4(*n)))
        .collect();
    let mut withdrawn = 0;
    for chunk in withdrawals.chunks(800) {
        let w = Update {
            withdrawn: chunk
                .iter()
                .filter_map(|n| match n {
                    IpNet::V4(v) => Some(*v),
                    IpNet::V6(_) => None,
                })
                .collect(),
            ..Update::default()
        };
        for e in rib.apply_update(IpAddr::V4(feeder), &w).exports {
            withdrawn += e.withdraw.len();
        }
    }
    println!(
        "withdraw {n}: {:.3} s, {withdrawn} withdrawals exported, Loc-RIB now {}",
        start.elapsed().as_secs_f64(),
        rib.len()
    );
}
