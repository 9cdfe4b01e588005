//! The Adj-RIB-Out is not stored but recomputed; this checks that the
//! diffs alone keep a peer's copy exact. Random operations from several
//! peers (announce, withdraw, session flaps, reconfiguration) are applied,
//! every diff is replayed into a mirror per peer, and each mirror must
//! equal what the RIB would advertise now, with matching counters.

mod common_rib;

use common_rib::*;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use tabby_bgp::peer_config::PeerConfig;
use tabby_bgp::policy::{PrefixFilter, PrefixMatch};
use tabby_bgp::rib::{Rib, RibChanges, RouteAttrs};
use tabby_bgp::wire::{Family, Update};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

static WITHDRAWN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

type Mirror = HashMap<IpAddr, HashMap<IpNet, RouteAttrs>>;

fn replay(mirror: &mut Mirror, c: &RibChanges) {
    let total: usize = c.exports.iter().map(|e| e.withdraw.len()).sum();
    WITHDRAWN.fetch_add(total, std::sync::atomic::Ordering::Relaxed);
    for e in &c.exports {
        let m = mirror.entry(e.peer).or_default();
        for p in &e.withdraw {
            assert!(
                m.remove(p).is_some(),
                "withdrew {p} never sent to {}",
                e.peer
            );
        }
        for (attrs, prefixes) in &e.announce {
            for p in prefixes {
                m.insert(*p, RouteAttrs::clone(attrs));
            }
        }
    }
}

fn prefix(i: u64) -> IpNet {
    if i.is_multiple_of(5) {
        format!("fd00:{i}::/64").parse().unwrap()
    } else {
        format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap()
    }
}

fn peer_config(n: u8, asn: u32, rr_client: bool, filtered: bool) -> PeerConfig {
    let mut c = PeerConfig::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)), asn);
    c.route_reflector_client = rr_client;
    if filtered {
        c.export.learned = PrefixFilter::List(vec![PrefixMatch::or_longer(net("10.0.0.0/9"))]);
    }
    c
}

#[test]
fn diffs_keep_every_peer_copy_exact() {
    let mut l = local();
    l.cluster_id = Some(Ipv4Addr::new(1, 1, 1, 1));
    let mut rib = Rib::new(l);
    // (n, asn, rr client)
    let peers: [(u8, u32, bool); 5] = [
        (11, 65001, false),
        (12, 65002, false),
        (13, LOCAL_AS, true),
        (14, LOCAL_AS, false),
        (15, LOCAL_AS, true),
    ];
    let both = [Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    let mut up = [false; 5];
    let mut filtered = [false; 5];
    let mut mirror = Mirror::new();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for (n, asn, rr) in peers {
        rib.set_peer(peer_config(n, asn, rr, false));
    }
    for step in 0..4000u32 {
        let i = rng.below(5) as usize;
        let (n, asn, rr) = peers[i];
        let addr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, n));
        let changes = match rng.below(100) {
            0..=2 => {
                mirror.remove(&addr);
                let was = up[i];
                up[i] = false;
                let gr = if was && rng.below(2) == 0 {
                    Some(120)
                } else {
                    None
                };
                rib.session_down(addr, gr)
            }
            3..=6 if !up[i] => {
                up[i] = true;
                let neg = with_gr(
                    negotiated(Ipv4Addr::new(10, 0, 0, n), asn, &both),
                    &both,
                    true,
                );
                rib.session_up(addr, session(neg))
            }
            7 => {
                filtered[i] = !filtered[i];
                rib.set_peer(peer_config(n, asn, rr, filtered[i]))
            }
            8 => rib.restart_timer_expired(addr),
            9 => rib.originate(&[prefix(rng.below(300))], &[]),
            10 => rib.withdraw_local(&[prefix(rng.below(300))]),
            11 => {
                // ROUTE-REFRESH re-sends; replaying it must change nothing.
                rib.route_refresh(addr)
            }
            _ if up[i] => {
                let count = 1 + rng.below(20);
                let mut path = vec![];
                if asn != LOCAL_AS {
                    path.push(asn);
                }
                for _ in 0..rng.below(3) {
                    path.push(65100 + rng.below(3) as u32);
                }
                let mut u = Update::default();
                let mut v6 = Vec::new();
                for _ in 0..count {
                    let p = prefix(rng.below(300));
                    let withdraw = rng.below(3) == 0;
                    match (p, withdraw) {
                        (IpNet::V4(v), true) => u.withdrawn.push(v),
                        (IpNet::V4(v), false) => u.nlri.push(v),
                        (IpNet::V6(_), _) => v6.push(p),
                    }
                }
                let mut a = attrs(&path, &format!("10.0.0.{n}"));
                a.med = Some(rng.below(3) as u32);
                u.attrs = a;
                let c = rib.apply_update(addr, &u);
                if !v6.is_empty() {
                    let strs: Vec<String> = v6.iter().map(|p| p.to_string()).collect();
                    let refs: Vec<&str> = strs.iter().map(String::as_str).collect();
                    replay(&mut mirror, &c);
                    rib.apply_update(addr, &announce_v6(&refs, &path, &format!("fd00::{n}")))
                } else {
                    c
                }
            }
            _ => continue,
        };
        replay(&mut mirror, &changes);
        if step.is_multiple_of(50) || step > 3950 {
            check(&rib, &peers, &up, &mirror);
        }
    }
    check(&rib, &peers, &up, &mirror);
    // The run must have exercised both directions.
    assert!(WITHDRAWN.load(std::sync::atomic::Ordering::Relaxed) > 100);
    assert!(mirror.values().map(HashMap::len).sum::<usize>() > 100);
}

fn check(rib: &Rib, peers: &[(u8, u32, bool)], up: &[bool], mirror: &Mirror) {
    let empty = HashMap::new();
    for (i, (n, _, _)) in peers.iter().enumerate() {
        let addr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, *n));
        let m = mirror.get(&addr).unwrap_or(&empty);
        if !up[i] {
            assert!(m.is_empty());
            continue;
        }
        for k in 0..300 {
            let p = prefix(k);
            assert_eq!(
                m.get(&p),
                rib.advertised(addr, &p).as_ref(),
                "peer {addr} prefix {p}"
            );
        }
        assert_eq!(rib.peer_counts(addr).unwrap().advertised, m.len() as u64);
    }
}
