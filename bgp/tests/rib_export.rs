//! Adj-RIB-Out: peer-role rules (iBGP split horizon, RFC 4456 route
//! reflection), eBGP/iBGP attribute rewriting, export policy, and the
//! diffs handed to the encoder.

mod common_rib;

use common_rib::*;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr};
use tabby_bgp::policy::{parse_community, PrefixFilter, PrefixMatch};
use tabby_bgp::rib::{PeerExport, Rib, RouteAttrs};
use tabby_bgp::wire::{self, AsSegment, Family, Message, SessionContext};

fn sent(rib: &Rib, peer: IpAddr, prefix: &str) -> Option<RouteAttrs> {
    rib.advertised(peer, &net(prefix))
}

fn seq(v: &[u32]) -> Vec<AsSegment> {
    vec![AsSegment::Sequence(v.to_vec())]
}

#[test]
fn originated_prefix_to_ebgp_and_ibgp() {
    let mut rib = Rib::new(local());
    let ebgp = up_peer(&mut rib, 11, 65001, |c| {
        c.export.add_communities = vec![parse_community("64512:100").unwrap()];
    });
    let ibgp = up_peer(&mut rib, 12, LOCAL_AS, |_| {});
    let c = rib.originate(
        &[net("10.244.1.0/26")],
        &[parse_community("64512:1").unwrap()],
    );
    assert_eq!(c.exports.len(), 2);

    let e = sent(&rib, ebgp, "10.244.1.0/26").unwrap();
    assert_eq!(e.as_path, seq(&[LOCAL_AS]));
    assert_eq!(e.next_hop, Some(ip("10.0.0.1")));
    assert_eq!(e.local_pref, None);
    assert_eq!(e.communities, vec![64512 << 16 | 1, 64512 << 16 | 100]);

    let i = sent(&rib, ibgp, "10.244.1.0/26").unwrap();
    assert!(i.as_path.is_empty());
    assert_eq!(
        i.next_hop,
        Some(ip("10.0.0.1")),
        "next-hop self for originated"
    );
    assert_eq!(i.local_pref, Some(100));
    assert_eq!(i.communities, vec![64512 << 16 | 1]);
}

#[test]
fn ebgp_learned_to_ebgp_prepends_strips_and_sets_next_hop() {
    let mut rib = Rib::new(local());
    let a = up_peer(&mut rib, 11, 65001, |_| {});
    let b = up_peer(&mut rib, 12, 65002, |_| {});
    let keep = up_peer(&mut rib, 13, 65003, |c| c.keep_original_next_hop = true);
    let mut x = attrs(&[65001], "10.0.0.11");
    x.med = Some(7);
    x.communities = vec![1];
    rib.apply_update(a, &announce(&["192.0.2.0/24"], x));

    let out = sent(&rib, b, "192.0.2.0/24").unwrap();
    assert_eq!(out.as_path, seq(&[LOCAL_AS, 65001]));
    assert_eq!(out.next_hop, Some(ip("10.0.0.1")));
    assert_eq!(out.med, None, "MED from another AS is not passed on");
    assert_eq!(out.communities, vec![1]);
    assert_eq!(out.local_pref, None);

    let out = sent(&rib, keep, "192.0.2.0/24").unwrap();
    assert_eq!(out.next_hop, Some(ip("10.0.0.11")));
    // Split horizon: nothing goes back to the peer it came from.
    assert!(sent(&rib, a, "192.0.2.0/24").is_none());
}

#[test]
fn ebgp_learned_to_ibgp_keeps_next_hop_and_med() {
    let mut rib = Rib::new(local());
    let a = up_peer(&mut rib, 11, 65001, |_| {});
    let i = up_peer(&mut rib, 12, LOCAL_AS, |_| {});
    let mut x = attrs(&[65001], "10.0.0.11");
    x.med = Some(7);
    rib.apply_update(a, &announce(&["192.0.2.0/24"], x));
    let out = sent(&rib, i, "192.0.2.0/24").unwrap();
    assert_eq!(out.as_path, seq(&[65001]));
    assert_eq!(out.next_hop, Some(ip("10.0.0.11")));
    assert_eq!(out.med, Some(7));
    assert_eq!(out.local_pref, Some(100));
    assert_eq!(out.originator_id, None);
}

#[test]
fn ibgp_learned_is_not_sent_to_ibgp_without_reflection() {
    let mut rib = Rib::new(local());
    let i1 = up_peer(&mut rib, 11, LOCAL_AS, |_| {});
    let i2 = up_peer(&mut rib, 12, LOCAL_AS, |_| {});
    let e = up_peer(&mut rib, 13, 65003, |_| {});
    let c = rib.apply_update(i1, &announce(&["10.244.5.0/26"], attrs(&[], "10.0.0.11")));
    assert!(sent(&rib, i2, "10.244.5.0/26").is_none());
    assert!(c.export_for(i2).is_none());
    let out = sent(&rib, e, "10.244.5.0/26").unwrap();
    assert_eq!(out.as_path, seq(&[LOCAL_AS]));
}

fn rr_rib() -> (Rib, IpAddr, IpAddr, IpAddr, IpAddr) {
    let mut l = local();
    l.cluster_id = Some(Ipv4Addr::new(1, 1, 1, 1));
    let mut rib = Rib::new(l);
    let c1 = up_peer(&mut rib, 11, LOCAL_AS, |c| c.route_reflector_client = true);
    let c2 = up_peer(&mut rib, 12, LOCAL_AS, |c| c.route_reflector_client = true);
    let n1 = up_peer(&mut rib, 21, LOCAL_AS, |_| {});
    let n2 = up_peer(&mut rib, 22, LOCAL_AS, |_| {});
    (rib, c1, c2, n1, n2)
}

#[test]
fn reflector_passes_client_routes_to_everyone_with_originator_and_cluster_list() {
    let (mut rib, c1, c2, n1, _) = rr_rib();
    rib.apply_update(c1, &announce(&["10.244.1.0/26"], attrs(&[], "10.0.0.11")));
    for target in [c2, n1] {
        let out = sent(&rib, target, "10.244.1.0/26").unwrap();
        assert_eq!(out.originator_id, Some(Ipv4Addr::new(10, 0, 0, 11)));
        assert_eq!(out.cluster_list, vec![Ipv4Addr::new(1, 1, 1, 1)]);
        assert_eq!(
            out.next_hop,
            Some(ip("10.0.0.11")),
            "reflected keeps next hop"
        );
    }
    assert!(sent(&rib, c1, "10.244.1.0/26").is_none());
}

#[test]
fn reflector_passes_non_client_routes_to_clients_only() {
    let (mut rib, c1, c2, n1, n2) = rr_rib();
    let mut x = attrs(&[], "10.0.0.21");
    // Already reflected once elsewhere: ORIGINATOR_ID stays, cluster prepended.
    x.originator_id = Some(Ipv4Addr::new(10, 7, 7, 7));
    x.cluster_list = vec![Ipv4Addr::new(2, 2, 2, 2)];
    rib.apply_update(n1, &announce(&["10.244.2.0/26"], x));
    for target in [c1, c2] {
        let out = sent(&rib, target, "10.244.2.0/26").unwrap();
        assert_eq!(out.originator_id, Some(Ipv4Addr::new(10, 7, 7, 7)));
        assert_eq!(
            out.cluster_list,
            vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(2, 2, 2, 2)]
        );
    }
    assert!(sent(&rib, n2, "10.244.2.0/26").is_none());
}

#[test]
fn large_communities_are_reflected_and_originated_unchanged() {
    let (mut rib, c1, c2, n1, _) = rr_rib();
    let large = vec![wire::LargeCommunity::new(65000, 1, 2)];
    let mut x = attrs(&[], "10.0.0.11");
    x.large_communities = large.clone();
    rib.apply_update(c1, &announce(&["10.244.1.0/26"], x));
    for target in [c2, n1] {
        let out = sent(&rib, target, "10.244.1.0/26").unwrap();
        assert_eq!(out.large_communities, large);
    }
    let mine = vec![wire::LargeCommunity::new(4_200_000_000, 7, 8)];
    rib.originate_with(&[net("10.96.0.0/12")], &[1], &mine);
    let out = sent(&rib, c1, "10.96.0.0/12").unwrap();
    assert_eq!((out.communities, out.large_communities), (vec![1], mine));
}

#[test]
fn reflection_loops_are_dropped_on_import() {
    let (mut rib, c1, _, n1, _) = rr_rib();
    let mut x = attrs(&[], "10.0.0.11");
    x.cluster_list = vec![Ipv4Addr::new(1, 1, 1, 1)];
    rib.apply_update(c1, &announce(&["10.244.1.0/26"], x));
    let mut y = attrs(&[], "10.0.0.21");
    y.originator_id = Some(Ipv4Addr::new(10, 0, 0, 1));
    rib.apply_update(n1, &announce(&["10.244.2.0/26"], y));
    assert!(rib.is_empty());
}

#[test]
fn export_policy_gates_learned_and_originated() {
    let mut rib = Rib::new(local());
    let src = up_peer(&mut rib, 11, 65001, |_| {});
    let only_own = up_peer(&mut rib, 12, 65002, |c| {
        c.export.learned = PrefixFilter::Nothing
    });
    let pools = up_peer(&mut rib, 13, 65003, |c| {
        c.export.learned = PrefixFilter::List(vec![PrefixMatch::or_longer(net("10.244.0.0/16"))]);
    });
    let nothing = up_peer(&mut rib, 14, 65004, |c| {
        c.export.originated = false;
        c.export.learned = PrefixFilter::Nothing;
    });
    rib.originate(&[net("10.244.9.0/26")], &[]);
    rib.apply_update(
        src,
        &announce(
            &["10.244.1.0/26", "192.0.2.0/24"],
            attrs(&[65001], "10.0.0.11"),
        ),
    );
    assert!(sent(&rib, only_own, "10.244.9.0/26").is_some());
    assert!(sent(&rib, only_own, "10.244.1.0/26").is_none());
    assert!(sent(&rib, pools, "10.244.1.0/26").is_some());
    assert!(sent(&rib, pools, "192.0.2.0/24").is_none());
    assert!(sent(&rib, nothing, "10.244.9.0/26").is_none());
    assert_eq!(rib.peer_counts(pools).unwrap().advertised, 2);
}

#[test]
fn reconfigured_export_policy_withdraws_what_no_longer_passes() {
    let mut rib = Rib::new(local());
    let src = up_peer(&mut rib, 11, 65001, |_| {});
    let dst = up_peer(&mut rib, 12, 65002, |_| {});
    rib.apply_update(
        src,
        &announce(&["192.0.2.0/24"], attrs(&[65001], "10.0.0.11")),
    );
    assert!(sent(&rib, dst, "192.0.2.0/24").is_some());
    let mut cfg = tabby_bgp::peer_config::PeerConfig::new(dst, 65002);
    cfg.export.learned = PrefixFilter::Nothing;
    let c = rib.set_peer(cfg);
    assert_eq!(
        c.export_for(dst).unwrap().withdraw,
        vec![net("192.0.2.0/24")]
    );
    assert!(sent(&rib, dst, "192.0.2.0/24").is_none());
}

#[test]
fn best_path_changes_and_withdrawals_reach_the_monitor() {
    let mut rib = Rib::new(local());
    let a = up_peer(&mut rib, 11, 65001, |_| {});
    let b = up_peer(&mut rib, 12, 65002, |_| {});
    let m = up_peer(&mut rib, 13, 65003, |_| {});
    rib.apply_update(
        b,
        &announce(&["192.0.2.0/24"], attrs(&[65002, 9], "10.0.0.12")),
    );
    assert_eq!(
        sent(&rib, m, "192.0.2.0/24").unwrap().as_path,
        seq(&[LOCAL_AS, 65002, 9])
    );
    // A better path replaces it: an announcement, no withdrawal.
    let c = rib.apply_update(
        a,
        &announce(&["192.0.2.0/24"], attrs(&[65001], "10.0.0.11")),
    );
    let e = c.export_for(m).unwrap();
    assert!(e.withdraw.is_empty());
    assert_eq!(e.announced_count(), 1);
    assert_eq!(
        sent(&rib, m, "192.0.2.0/24").unwrap().as_path,
        seq(&[LOCAL_AS, 65001])
    );
    // b now has a's route (better than its own): b must see it.
    assert!(sent(&rib, b, "192.0.2.0/24").is_some());
    // a sees b's path? No: the best is a's own, which is never sent back.
    assert!(sent(&rib, a, "192.0.2.0/24").is_none());
    rib.apply_update(a, &withdraw(&["192.0.2.0/24"]));
    rib.apply_update(b, &withdraw(&["192.0.2.0/24"]));
    assert!(sent(&rib, m, "192.0.2.0/24").is_none());
    assert_eq!(rib.peer_counts(m).unwrap().advertised, 0);
}

#[test]
fn unchanged_best_path_sends_nothing() {
    let mut rib = Rib::new(local());
    let a = up_peer(&mut rib, 11, 65001, |_| {});
    let _m = up_peer(&mut rib, 13, 65003, |_| {});
    rib.apply_update(
        a,
        &announce(&["192.0.2.0/24"], attrs(&[65001], "10.0.0.11")),
    );
    let c = rib.apply_update(
        a,
        &announce(&["192.0.2.0/24"], attrs(&[65001], "10.0.0.11")),
    );
    assert!(c.is_empty(), "{c:?}");
}

#[test]
fn session_up_dumps_the_loc_rib_then_end_of_rib() {
    let mut rib = Rib::new(local());
    let a = up_peer(&mut rib, 11, 65001, |_| {});
    rib.originate(&[net("10.244.9.0/26"), net("fd00:9::/64")], &[]);
    rib.apply_update(
        a,
        &announce(&["192.0.2.0/24"], attrs(&[65001], "10.0.0.11")),
    );
    let addr = Ipv4Addr::new(10, 0, 0, 13);
    rib.set_peer(tabby_bgp::peer_config::PeerConfig::new(
        IpAddr::V4(addr),
        65003,
    ));
    let both = [Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    let c = rib.session_up(IpAddr::V4(addr), session(negotiated(addr, 65003, &both)));
    let e = c.export_for(IpAddr::V4(addr)).unwrap();
    assert_eq!(e.announced_count(), 3);
    assert_eq!(e.end_of_rib, both);
    let v6 = sent(&rib, IpAddr::V4(addr), "fd00:9::/64").unwrap();
    assert_eq!(v6.next_hop, Some(ip("fd00::1")));
    let updates = e.to_updates();
    let last = updates.last().unwrap();
    assert_eq!(last.end_of_rib(), Some(Family::IPV6_UNICAST));
}

#[test]
fn one_update_of_many_prefixes_is_one_group_packed_under_4096_bytes() {
    let mut rib = Rib::new(local());
    let feeder = up_peer(&mut rib, 11, 65001, |_| {});
    let monitor = up_peer(&mut rib, 13, 65003, |_| {});
    let prefixes: Vec<String> = (0..3000u32)
        .map(|i| format!("100.{}.{}.0/24", i / 256, i % 256))
        .collect();
    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    let mut a = attrs(&[65001, 65010, 65011], "10.0.0.11");
    a.communities = (0..20).collect();
    let c = rib.apply_update(feeder, &announce(&refs, a));
    assert_eq!(c.best.len(), 3000);
    let e: &PeerExport = c.export_for(monitor).unwrap();
    assert_eq!(e.announce.len(), 1, "one attribute set, one group");
    assert_eq!(e.announce[0].1.len(), 3000);
    assert_eq!(rib.attribute_sets(), 2, "received set and exported set");

    let updates = e.to_updates();
    let mut total = 0;
    for u in &updates {
        total += u.nlri.len();
        let mut buf = Vec::new();
        wire::encode(
            &Message::Update(u.clone()),
            &SessionContext::default(),
            &mut buf,
        )
        .expect("encodes");
        assert!(buf.len() <= 4096, "{} bytes", buf.len());
    }
    assert_eq!(total, 3000);
    assert!(updates.len() <= 5, "packed: {} messages", updates.len());
    let all: Vec<IpNet> = updates
        .iter()
        .flat_map(|u| u.nlri.iter().map(|n| IpNet::V4(*n)))
        .collect();
    assert_eq!(all.len(), 3000);
}

#[test]
fn withdrawals_are_grouped_per_family() {
    let mut rib = Rib::new(local());
    let feeder = up_peer(&mut rib, 11, 65001, |_| {});
    let monitor = up_peer(&mut rib, 13, 65003, |_| {});
    rib.apply_update(
        feeder,
        &announce(&["192.0.2.0/24"], attrs(&[65001], "10.0.0.11")),
    );
    rib.apply_update(
        feeder,
        &announce_v6(&["fd00:10::/64"], &[65001], "fd00::11"),
    );
    let c = rib.session_down(feeder, None);
    let e = c.export_for(monitor).unwrap();
    let updates = e.to_updates();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].withdrawn.len(), 1);
    assert_eq!(
        updates[1].attrs.mp_unreach.as_ref().unwrap().withdrawn,
        vec![net("fd00:10::/64")]
    );
}
