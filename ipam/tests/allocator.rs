//! The allocator against the in-process store: Calico's block/affinity
//! semantics, handles, limits, borrowing, crash leftovers and concurrency.
//! (The agent runs the same allocator against real sqlite and etcd.)

use ipnet::IpNet;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use tabby_ipam::allocator::{AssignRequest, Ipam, IpamError};
use tabby_ipam::memory::MemoryIpamStore;
use tabby_ipam::pool::{Pool, Use};
use tabby_ipam::store::{Affinity, AffinityState, Config, IpamStore};

fn pool(cidr: &str, bs: u8) -> Pool {
    Pool {
        name: format!("pool-{cidr}"),
        cidr: cidr.parse().unwrap(),
        block_size: bs,
        node_selector: "all()".parse().unwrap(),
        disabled: false,
        allowed_uses: vec![],
    }
}

fn req(node: &str, handle: &str, n: usize) -> AssignRequest {
    AssignRequest {
        num_v4: n,
        ..AssignRequest::new(handle, node)
    }
}

fn ipam(pools: Vec<Pool>, cfg: Config) -> Ipam<MemoryIpamStore> {
    Ipam::new(MemoryIpamStore::new(pools, cfg))
}

#[tokio::test]
async fn claims_an_affine_block_and_fills_it_before_the_next() {
    let ipam = ipam(vec![pool("10.0.0.0/24", 28)], Config::default());
    let (a, _) = ipam.auto_assign(&req("n1", "h1", 3)).await.unwrap();
    let affs = ipam.store().list_affinities(Some("n1")).await.unwrap();
    assert_eq!(affs.len(), 1);
    assert_eq!(affs[0].value.state, AffinityState::Confirmed);
    let block = affs[0].value.cidr;
    assert!(a.iter().all(|ip| block.contains(ip)));
    // 16 addresses per block: the next 13 still fit in the first block
    // (unless it holds a pool edge, which is skipped).
    let (b, _) = ipam.auto_assign(&req("n1", "h2", 12)).await.unwrap();
    assert!(b.iter().all(|ip| block.contains(ip)));
    let (c, _) = ipam.auto_assign(&req("n1", "h3", 5)).await.unwrap();
    assert_eq!(
        ipam.store()
            .list_affinities(Some("n1"))
            .await
            .unwrap()
            .len(),
        2
    );
    let all: HashSet<IpAddr> = a.iter().chain(&b).chain(&c).copied().collect();
    assert_eq!(all.len(), 20, "no duplicates");
    let pool_net: IpNet = "10.0.0.0/24".parse().unwrap();
    assert!(!all.contains(&pool_net.network()) && !all.contains(&pool_net.broadcast()));
    let h = ipam.store().get_handle("h1").await.unwrap().unwrap();
    assert_eq!(h.value.blocks.values().sum::<u32>(), 3);
}

#[tokio::test]
async fn tunnel_addresses_are_never_a_block_network_or_broadcast_address() {
    let ipam = ipam(vec![pool("10.9.0.0/16", 30)], Config::default());
    let mut r = req("n1", "vxlan-tunnel-addr-n1", 1);
    r.use_for = Use::Tunnel;
    for i in 0..20 {
        r.handle_id = format!("vxlan-tunnel-addr-n{i}");
        r.node = format!("n{i}");
        let (ips, _) = ipam.auto_assign(&r).await.unwrap();
        let blk = IpNet::new(ips[0], 30).unwrap().trunc();
        assert_ne!(ips[0], blk.network(), "node n{i}");
        assert_ne!(ips[0], blk.broadcast(), "node n{i}");
    }
}

#[tokio::test]
async fn exhausted_pool_names_the_pool_and_assigns_nothing() {
    let ipam = ipam(vec![pool("10.0.0.0/29", 29)], Config::default());
    // 8 addresses minus the pool's network and broadcast address.
    ipam.auto_assign(&req("n1", "a", 5)).await.unwrap();
    let e = ipam.auto_assign(&req("n1", "b", 2)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "IP pool 10.0.0.0/29 has no free addresses (2 requested)"
    );
    assert!(ipam.store().get_handle("b").await.unwrap().is_none());
    ipam.auto_assign(&req("n1", "c", 1)).await.unwrap();
}

#[tokio::test]
async fn block_limit_with_strict_affinity_and_borrowing_without() {
    let strict = Config {
        strict_affinity: true,
        max_blocks_per_host: 1,
        ..Config::default()
    };
    let ipam_s = ipam(vec![pool("10.0.0.0/24", 29)], strict);
    ipam_s.auto_assign(&req("n1", "a", 5)).await.unwrap();
    let e = ipam_s.auto_assign(&req("n1", "b", 5)).await.unwrap_err();
    assert!(matches!(e, IpamError::BlockLimit { limit: 1, .. }), "{e}");
    assert!(
        e.to_string()
            .contains("maxBlocksPerHost (1) and strictAffinity forbids borrowing"),
        "{e}"
    );

    // Not strict: n2 is at its limit, so it borrows from n1's block.
    let loose = Config {
        max_blocks_per_host: 1,
        ..Config::default()
    };
    let ipam_l = ipam(vec![pool("10.0.0.0/27", 29)], loose);
    for n in ["n1", "n2", "n3", "n4"] {
        ipam_l
            .auto_assign(&req(n, &format!("{n}-a"), 1))
            .await
            .unwrap();
    }
    let (ips, _) = ipam_l.auto_assign(&req("n2", "n2-b", 10)).await.unwrap();
    let blocks = ipam_l.store().list_blocks().await.unwrap();
    let owners: HashSet<String> = ips
        .iter()
        .filter_map(|ip| blocks.iter().find(|b| b.value.cidr.contains(ip)))
        .filter_map(|b| b.value.host().map(str::to_string))
        .collect();
    assert!(owners.len() > 1, "borrowed from other hosts: {owners:?}");
}

/// The default limit (0 = 20 blocks) with the pool far from full: the error
/// names the limit and its effective value, not an exhausted pool.
#[tokio::test]
async fn hitting_the_default_block_limit_says_so() {
    let ipam = ipam(vec![pool("10.0.0.0/16", 30)], Config::default());
    // 20 blocks of 4 addresses.
    ipam.auto_assign(&req("n1", "a", 80)).await.unwrap();
    let e = ipam.auto_assign(&req("n1", "b", 1)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "node n1 has reached IPAMConfig maxBlocksPerHost (20, the effective value of 0) and \
         no other block has a free address; raise maxBlocksPerHost or free addresses"
    );
}

#[tokio::test]
async fn release_by_handle_and_ip_are_idempotent_and_clean_up_handles() {
    let ipam = ipam(vec![pool("10.0.0.0/24", 26)], Config::default());
    let (ips, _) = ipam.auto_assign(&req("n1", "h", 3)).await.unwrap();
    assert!(ipam.release_by_handle("unknown").await.unwrap().is_empty());
    let one = ipam.release_ips(&ips[..1]).await.unwrap();
    assert_eq!(one, ips[..1]);
    assert!(ipam.release_ips(&ips[..1]).await.unwrap().is_empty());
    let h = ipam.store().get_handle("h").await.unwrap().unwrap();
    assert_eq!(h.value.blocks.values().sum::<u32>(), 2);
    let mut rest = ipam.release_by_handle("h").await.unwrap();
    rest.sort();
    assert_eq!(rest, ips[1..]);
    assert!(ipam.store().get_handle("h").await.unwrap().is_none());
    assert!(ipam.release_by_handle("h").await.unwrap().is_empty());
    let blocks = ipam.store().list_blocks().await.unwrap();
    assert!(blocks.iter().all(|b| b.value.is_empty()));
}

#[tokio::test]
async fn a_claim_interrupted_after_the_pending_affinity_is_completed_or_undone() {
    let ipam = ipam(vec![pool("10.0.0.0/24", 26)], Config::default());
    let cidr: IpNet = "10.0.0.64/26".parse().unwrap();
    // Crash after step 1: a pending affinity with no block.
    let pending = Affinity {
        node: "n1".into(),
        cidr,
        state: AffinityState::Pending,
    };
    ipam.store().create_affinity(&pending).await.unwrap();
    ipam.claim("n1", cidr).await.unwrap();
    let a = ipam.store().list_affinities(Some("n1")).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].value.state, AffinityState::Confirmed);
    // n2 left a pending affinity for the same block: its claim loses and
    // its pending affinity is removed.
    let theirs = Affinity {
        node: "n2".into(),
        ..pending
    };
    ipam.store().create_affinity(&theirs).await.unwrap();
    assert!(ipam.claim("n2", cidr).await.is_err());
    assert!(ipam
        .store()
        .list_affinities(Some("n2"))
        .await
        .unwrap()
        .is_empty());
    let b = ipam.store().get_block(cidr).await.unwrap().unwrap();
    assert_eq!(b.value.host(), Some("n1"));
}

#[tokio::test]
async fn explicit_pool_requests_and_ipv6() {
    let ipam = ipam(
        vec![
            pool("10.1.0.0/16", 26),
            pool("10.2.0.0/16", 26),
            pool("fd00::/112", 122),
        ],
        Config::default(),
    );
    let mut r = req("n1", "h", 1);
    r.pools_v4 = vec!["10.2.0.0/16".parse().unwrap()];
    r.num_v6 = 1;
    let (v4, v6) = ipam.auto_assign(&r).await.unwrap();
    assert!("10.2.0.0/16".parse::<IpNet>().unwrap().contains(&v4[0]));
    assert!(v6[0].is_ipv6());
    let h = ipam.store().get_handle("h").await.unwrap().unwrap();
    assert_eq!(
        h.value.blocks.len(),
        2,
        "one handle holds a v4 and a v6 address"
    );
    r.pools_v4 = vec!["10.3.0.0/16".parse().unwrap()];
    r.handle_id = "h2".into();
    let e = ipam.auto_assign(&r).await.unwrap_err();
    assert_eq!(e.to_string(), "IP pool 10.3.0.0/16 does not exist");
}

/// 8 concurrent allocators on 4 nodes share one store: every address is
/// handed out once, and after releasing everything nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_allocators_never_duplicate_and_leak_nothing() {
    let ipam = Arc::new(ipam(vec![pool("10.0.0.0/20", 26)], Config::default()));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let ipam = ipam.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..100 {
                let (ips, _) = ipam
                    .auto_assign(&req(&format!("n{}", t % 4), &format!("t{t}-{i}"), 1))
                    .await
                    .unwrap();
                mine.extend(ips);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<IpAddr> = all.iter().copied().collect();
    assert_eq!(unique.len(), 800, "duplicates handed out");
    let in_use: u32 = ipam
        .store()
        .list_blocks()
        .await
        .unwrap()
        .iter()
        .map(|b| b.value.in_use())
        .sum();
    assert_eq!(in_use, 800);
    for t in 0..8 {
        for i in 0..100 {
            assert_eq!(
                ipam.release_by_handle(&format!("t{t}-{i}"))
                    .await
                    .unwrap()
                    .len(),
                1
            );
        }
    }
    let blocks = ipam.store().list_blocks().await.unwrap();
    assert!(
        blocks.iter().all(|b| b.value.is_empty()),
        "leaked addresses"
    );
    for b in &blocks {
        assert!(b.value.attributes.is_empty());
    }
}

/// Emptied blocks go back to the pool, except the host's last one.
#[tokio::test]
async fn empty_blocks_are_given_back_but_the_last_is_kept() {
    let ipam = ipam(vec![pool("10.0.0.0/24", 28)], Config::default());
    // 40 addresses need three /28 blocks.
    let (ips, _) = ipam.auto_assign(&req("n1", "big", 40)).await.unwrap();
    assert_eq!(
        ipam.store()
            .list_affinities(Some("n1"))
            .await
            .unwrap()
            .len(),
        3
    );
    let (other, _) = ipam.auto_assign(&req("n2", "other", 1)).await.unwrap();
    assert_eq!(
        ipam.release_by_handle("big").await.unwrap().len(),
        ips.len()
    );
    let affs = ipam.store().list_affinities(Some("n1")).await.unwrap();
    assert_eq!(affs.len(), 1, "n1 keeps one block");
    assert_eq!(affs[0].value.state, AffinityState::Confirmed);
    let blocks = ipam.store().list_blocks().await.unwrap();
    assert_eq!(blocks.len(), 2, "n1's last block and n2's");
    // n2's only block is kept too when emptied.
    ipam.release_ips(&other).await.unwrap();
    assert_eq!(ipam.store().list_blocks().await.unwrap().len(), 2);
    // And n1 still allocates from its kept block.
    let (again, _) = ipam.auto_assign(&req("n1", "again", 1)).await.unwrap();
    assert!(affs[0].value.cidr.contains(&again[0]));
}

/// Assign/release churn on shared nodes, so blocks are emptied and given
/// back while other tasks allocate from them: every address a task is given
/// is held by its handle, and the end state checks clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churn_with_block_give_back_stays_consistent() {
    let ipam = Arc::new(ipam(vec![pool("10.0.0.0/21", 28)], Config::default()));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let ipam = ipam.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                let h = format!("t{t}-{i}");
                let (ips, _) = ipam
                    .auto_assign(&req(&format!("n{}", t % 2), &h, 1 + i % 7))
                    .await
                    .unwrap();
                for ip in &ips {
                    let blocks = ipam.store().list_blocks().await.unwrap();
                    let b = blocks.iter().find(|b| b.value.cidr.contains(ip)).unwrap();
                    let holder = b.value.holder(*ip).and_then(|a| a.handle_id.clone());
                    assert_eq!(holder.as_deref(), Some(h.as_str()), "{ip}");
                }
                if i % 3 != 0 {
                    assert_eq!(ipam.release_by_handle(&h).await.unwrap().len(), ips.len());
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let nodes: HashSet<String> = ["n0", "n1"].map(String::from).into();
    let problems = tabby_ipam::check::check(ipam.store(), &nodes, None)
        .await
        .unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    for t in 0..8 {
        for i in (0..40).step_by(3) {
            ipam.release_by_handle(&format!("t{t}-{i}")).await.unwrap();
        }
    }
    let blocks = ipam.store().list_blocks().await.unwrap();
    assert!(blocks.iter().all(|b| b.value.is_empty()));
    assert!(
        blocks.len() <= 2,
        "each node keeps at most its last block: {}",
        blocks.len()
    );
}
