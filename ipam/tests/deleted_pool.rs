//! Issue 15 items 7 and 8: what a deleted pool leaves (its blocks and
//! affinities) is shown, reported by `ipam check`, and goes once empty, as
//! Calico leaves it; a Node's tunnel address IPAM does not hold is
//! reported; an allocation can be kept off addresses in use elsewhere.

use ipnet::IpNet;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use tabby_ipam::allocator::{AssignRequest, Ipam};
use tabby_ipam::check::{check, check_tunnels, fix, Problem};
use tabby_ipam::memory::MemoryIpamStore;
use tabby_ipam::pool::{Pool, Use};
use tabby_ipam::report::{usage, NO_POOL};
use tabby_ipam::store::{Config, IpamStore};

fn pool(cidr: &str) -> Pool {
    Pool {
        name: "p".into(),
        cidr: cidr.parse().unwrap(),
        block_size: 26,
        node_selector: "all()".parse().unwrap(),
        disabled: false,
        allowed_uses: vec![],
    }
}

fn block_of(ip: IpAddr) -> IpNet {
    IpNet::new(ip, 26).unwrap().trunc()
}

fn nodes() -> HashSet<String> {
    ["n1", "n2"].iter().map(|s| s.to_string()).collect()
}

/// One address for handle `handle` on `node`, as a CNI ADD asks.
async fn assign(
    ipam: &Ipam<MemoryIpamStore>,
    handle: &str,
    node: &str,
) -> (Vec<IpAddr>, Vec<IpAddr>) {
    ipam.auto_assign(&AssignRequest::new(handle, node))
        .await
        .unwrap()
}

async fn blocks(ipam: &Ipam<MemoryIpamStore>) -> Vec<tabby_ipam::block::Block> {
    let b = ipam.store().list_blocks().await.unwrap();
    b.into_iter().map(|b| b.value).collect()
}

#[tokio::test]
async fn a_deleted_pools_blocks_are_shown_reported_and_go_once_empty() {
    let ipam = Ipam::new(MemoryIpamStore::new(
        vec![pool("10.0.0.0/24")],
        Config::default(),
    ));
    let (a, _) = assign(&ipam, "h1", "n1").await;
    let (b, _) = assign(&ipam, "h2", "n1").await;
    // n2's block is emptied while the pool exists: as a host's only block
    // in the pool it stays, affine to n2.
    let (c, _) = assign(&ipam, "h3", "n2").await;
    ipam.release_by_handle("h3").await.unwrap();
    let (busy, empty) = (block_of(a[0]), block_of(c[0]));
    assert_eq!(busy, block_of(b[0]));
    assert_eq!(blocks(&ipam).await.len(), 2);

    ipam.store().set_pools(Vec::new());

    // ipam show: neither block is hidden, even without --show-blocks.
    let rows = usage(&[], &blocks(&ipam).await, &Config::default(), false);
    let shown: Vec<(&str, IpNet, u128)> = rows
        .iter()
        .map(|r| (r.grouping, r.cidr, r.in_use))
        .collect();
    let mut want = vec![(NO_POOL, busy, 2), (NO_POOL, empty, 0)];
    want.sort_by_key(|w| w.1);
    assert_eq!(shown, want);

    // ipam check reports both; --fix removes only the empty one (and its
    // affinity): the other still holds two pods' addresses.
    let problems = check(ipam.store(), &nodes(), None).await.unwrap();
    assert!(
        problems.contains(&Problem::BlockOutsidePools {
            cidr: busy,
            in_use: 2
        }),
        "{problems:?}"
    );
    assert!(
        problems.contains(&Problem::BlockOutsidePools {
            cidr: empty,
            in_use: 0
        }),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(
        problems.iter().find(|p| matches!(p, Problem::BlockOutsidePools { in_use: 2, .. })).unwrap().to_string(),
        format!("block {busy} is in no IP pool (its pool was deleted); it goes once its 2 address(es) are released")
    );
    assert_eq!(fix(&ipam, &problems).await.unwrap(), 1);
    assert!(ipam.store().get_block(empty).await.unwrap().is_none());
    assert!(ipam
        .store()
        .get_affinity("n2", empty)
        .await
        .unwrap()
        .is_none());
    assert!(
        ipam.store().get_block(busy).await.unwrap().is_some(),
        "its addresses are still in use"
    );

    // Its last address released, the block and its affinity go.
    ipam.release_by_handle("h1").await.unwrap();
    assert!(ipam.store().get_block(busy).await.unwrap().is_some());
    ipam.release_ips(&b).await.unwrap();
    assert!(
        ipam.store().get_block(busy).await.unwrap().is_none(),
        "emptied outside any pool"
    );
    assert!(ipam.store().list_affinities(None).await.unwrap().is_empty());
    assert_eq!(check(ipam.store(), &nodes(), None).await.unwrap(), []);
}

#[tokio::test]
async fn a_tunnel_address_ipam_does_not_hold_is_reported() {
    let ipam = Ipam::new(MemoryIpamStore::new(
        vec![pool("10.0.0.0/24")],
        Config::default(),
    ));
    let mut req = AssignRequest::new(&tabby_ipam::handle::vxlan_tunnel_handle("n1"), "n1");
    req.use_for = Use::Tunnel;
    let (t1, _) = ipam.auto_assign(&req).await.unwrap();
    let mut tunnels = BTreeMap::new();
    tunnels.insert("n1".to_string(), t1[0]);
    assert_eq!(check_tunnels(ipam.store(), &tunnels).await.unwrap(), []);
    // Released while vxlan.calico still carries it (the report in the issue).
    ipam.release_ips(&t1).await.unwrap();
    let p = check_tunnels(ipam.store(), &tunnels).await.unwrap();
    assert_eq!(
        p,
        [Problem::TunnelNotHeld {
            node: "n1".into(),
            ip: t1[0],
            holder: None
        }]
    );
    assert_eq!(
        p[0].to_string(),
        format!(
            "node n1's VXLAN tunnel address {} is not assigned in IPAM",
            t1[0]
        )
    );
    // Handed to a pod meanwhile.
    ipam.assign_ip(&tabby_ipam::assign_ip::AssignIpRequest {
        ip: t1[0],
        handle_id: "k8s-pod-network.c1".into(),
        node: "n1".into(),
        attributes: BTreeMap::new(),
    })
    .await
    .unwrap();
    let p = check_tunnels(ipam.store(), &tunnels).await.unwrap();
    assert_eq!(p[0].to_string(), format!("node n1's VXLAN tunnel address {} is held by k8s-pod-network.c1, not vxlan-tunnel-addr-n1", t1[0]));
}

#[tokio::test]
async fn excluded_addresses_are_never_assigned() {
    // A pool overlapping the node subnet 10.0.0.0/28 (apply refuses only
    // pools containing a Node's address, not the router's).
    let ipam = Ipam::new(MemoryIpamStore::new(
        vec![pool("10.0.0.0/24")],
        Config::default(),
    ));
    let mut req = AssignRequest::new("vxlan-tunnel-addr-n1", "n1");
    req.use_for = Use::Tunnel;
    req.exclude = vec!["10.0.0.0/28".parse().unwrap()];
    let (t, _) = ipam.auto_assign(&req).await.unwrap();
    let ip = t[0];
    let sub: IpNet = "10.0.0.0/28".parse().unwrap();
    assert!(!sub.contains(&ip), "{ip} is in the excluded {sub}");
}

/// What tabby-node does for its own blocks when a pool goes: the empty
/// ones go at once (Calico's pool deletion), the busy ones stay.
#[tokio::test]
async fn a_nodes_empty_blocks_of_a_deleted_pool_go_at_once() {
    let ipam = Ipam::new(MemoryIpamStore::new(
        vec![pool("10.0.0.0/24")],
        Config::default(),
    ));
    let (a, _) = assign(&ipam, "h1", "n1").await;
    let (b, _) = assign(&ipam, "h2", "n2").await;
    ipam.release_by_handle("h2").await.unwrap();
    let (busy, empty) = (block_of(a[0]), block_of(b[0]));
    assert!(
        ipam.store().get_block(empty).await.unwrap().is_some(),
        "n2's last block stays while the pool exists"
    );
    assert_eq!(
        ipam.release_orphan_blocks("n2").await.unwrap(),
        [],
        "still in a pool"
    );
    ipam.store().set_pools(Vec::new());
    assert_eq!(
        ipam.release_orphan_blocks("n1").await.unwrap(),
        [],
        "still holds h1"
    );
    assert_eq!(ipam.release_orphan_blocks("n2").await.unwrap(), [empty]);
    assert!(ipam
        .store()
        .get_affinity("n2", empty)
        .await
        .unwrap()
        .is_none());
    assert!(ipam.store().get_block(busy).await.unwrap().is_some());
}
