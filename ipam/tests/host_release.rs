//! Releasing a deleted node's block affinities (Calico's
//! ReleaseHostAffinities with "must be empty"): empty blocks go with their
//! affinities, a block still holding an address keeps both.

use tabby_ipam::allocator::{AssignRequest, Ipam};
use tabby_ipam::memory::MemoryIpamStore;
use tabby_ipam::pool::Pool;
use tabby_ipam::store::{Affinity, AffinityState, Config, IpamStore};

#[tokio::test]
async fn empty_blocks_go_busy_ones_stay() {
    let pool = Pool {
        name: "p".into(),
        cidr: "10.0.0.0/24".parse().unwrap(),
        block_size: 26,
        node_selector: "all()".parse().unwrap(),
        disabled: false,
        allowed_uses: vec![],
    };
    let ipam = Ipam::new(MemoryIpamStore::new(vec![pool], Config::default()));
    let (a, _) = ipam
        .auto_assign(&AssignRequest::new("h-a", "gone"))
        .await
        .unwrap();
    let (other, _) = ipam
        .auto_assign(&AssignRequest::new("h-n1", "n1"))
        .await
        .unwrap();
    // Block placement is hashed from the node name: take the two free ones.
    let used: Vec<ipnet::IpNet> = [a[0], other[0]]
        .iter()
        .map(|ip| ipnet::IpNet::new(*ip, 26).unwrap().trunc())
        .collect();
    let free: Vec<ipnet::IpNet> = "10.0.0.0/24"
        .parse::<ipnet::IpNet>()
        .unwrap()
        .subnets(26)
        .unwrap()
        .filter(|b| !used.contains(b))
        .collect();
    // A second, empty block for "gone".
    let second = free[0];
    ipam.store()
        .create_affinity(&Affinity {
            node: "gone".into(),
            cidr: second,
            state: AffinityState::Pending,
        })
        .await
        .unwrap();
    let blk = tabby_ipam::block::Block::new(second, Some("host:gone".into()), 1).unwrap();
    ipam.store().create_block(&blk).await.unwrap();
    // And an affinity with no block at all.
    let dangling = free[1];
    ipam.store()
        .create_affinity(&Affinity {
            node: "gone".into(),
            cidr: dangling,
            state: AffinityState::Pending,
        })
        .await
        .unwrap();

    let r = ipam.release_host_affinities("gone").await.unwrap();
    let busy = ipnet::IpNet::new(a[0], 26).unwrap().trunc();
    assert_eq!(r.kept, [busy]);
    let mut released = r.released.clone();
    released.sort();
    assert_eq!(released, [second, dangling]);
    assert!(ipam.store().get_block(second).await.unwrap().is_none());
    assert!(ipam.store().get_block(busy).await.unwrap().is_some());
    let left = ipam.store().list_affinities(Some("gone")).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].value.cidr, busy);
    // Once its address is released the last block goes too; n1 is untouched.
    ipam.release_by_handle("h-a").await.unwrap();
    let r = ipam.release_host_affinities("gone").await.unwrap();
    assert_eq!((r.released, r.kept), (vec![busy], vec![]));
    assert!(ipam
        .store()
        .list_affinities(Some("gone"))
        .await
        .unwrap()
        .is_empty());
    let blocks = ipam.store().list_blocks().await.unwrap();
    assert_eq!(blocks.len(), 1);
    assert!(blocks[0].value.cidr.contains(&other[0]));
}
