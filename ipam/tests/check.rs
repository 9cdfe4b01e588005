//! `ipam check` finds what crashes and deleted nodes leave behind, and
//! `--fix` leaves a state that checks clean and that the allocator uses.

use std::collections::HashSet;
use tabby_ipam::allocator::{AssignRequest, Ipam};
use tabby_ipam::block::Block;
use tabby_ipam::check::{check, fix, Problem};
use tabby_ipam::memory::MemoryIpamStore;
use tabby_ipam::pool::Pool;
use tabby_ipam::store::{Affinity, AffinityState, Config, IpamStore};

fn setup() -> Ipam<MemoryIpamStore> {
    let pool = Pool {
        name: "p".into(),
        cidr: "10.0.0.0/24".parse().unwrap(),
        block_size: 26,
        node_selector: "all()".parse().unwrap(),
        disabled: false,
        allowed_uses: vec![],
    };
    Ipam::new(MemoryIpamStore::new(vec![pool], Config::default()))
}

fn req(node: &str, handle: &str) -> AssignRequest {
    AssignRequest::new(handle, node)
}

fn nodes(n: &[&str]) -> HashSet<String> {
    n.iter().map(|s| s.to_string()).collect()
}

async fn fix_and_recheck(
    ipam: &Ipam<MemoryIpamStore>,
    n: &HashSet<String>,
    live: Option<&HashSet<String>>,
) {
    let problems = check(ipam.store(), n, live).await.unwrap();
    assert!(!problems.is_empty());
    assert_eq!(fix(ipam, &problems).await.unwrap(), problems.len());
    let after = check(ipam.store(), n, live).await.unwrap();
    assert!(after.is_empty(), "after --fix: {after:?}");
}

#[tokio::test]
async fn crash_between_block_creation_and_confirmation_is_recovered() {
    let ipam = setup();
    let cidr = "10.0.0.64/26".parse().unwrap();
    // The allocator died after steps 1 and 2 of a claim.
    let pending = Affinity {
        node: "n1".into(),
        cidr,
        state: AffinityState::Pending,
    };
    ipam.store().create_affinity(&pending).await.unwrap();
    let block = Block::new(cidr, Some("host:n1".into()), 1).unwrap();
    ipam.store().create_block(&block).await.unwrap();
    let n = nodes(&["n1"]);
    let problems = check(ipam.store(), &n, None).await.unwrap();
    assert_eq!(
        problems,
        [Problem::UnconfirmedBlock {
            cidr,
            node: "n1".into()
        }]
    );
    assert_eq!(
        problems[0].to_string(),
        "block 10.0.0.64/26 is affine to n1 but the affinity is not confirmed"
    );
    fix_and_recheck(&ipam, &n, None).await;
    // The recovered block is used, not leaked.
    let (ips, _) = ipam.auto_assign(&req("n1", "h")).await.unwrap();
    assert!(cidr.contains(&ips[0]));
}

#[tokio::test]
async fn dangling_pending_affinity_and_deleted_node() {
    let ipam = setup();
    ipam.auto_assign(&req("gone", "h-gone")).await.unwrap();
    ipam.auto_assign(&req("n1", "h1")).await.unwrap();
    ipam.release_by_handle("h-gone").await.unwrap();
    ipam.auto_assign(&req("gone2", "h-gone2")).await.unwrap();
    let dangling = Affinity {
        node: "n1".into(),
        cidr: "10.0.0.192/26".parse().unwrap(),
        state: AffinityState::Pending,
    };
    ipam.store().create_affinity(&dangling).await.unwrap();
    let n = nodes(&["n1"]);
    let problems = check(ipam.store(), &n, None).await.unwrap();
    assert_eq!(problems.len(), 3, "{problems:?}");
    fix_and_recheck(&ipam, &n, None).await;
    // "gone"'s empty block was deleted; "gone2"'s block, still holding an
    // address, is kept but unaffine.
    let blocks = ipam.store().list_blocks().await.unwrap();
    assert_eq!(blocks.len(), 2);
    assert!(blocks
        .iter()
        .any(|b| b.value.affinity.is_none() && !b.value.is_empty()));
    assert!(ipam
        .store()
        .list_affinities(Some("gone"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn missing_handle_record_and_leaked_addresses() {
    let ipam = setup();
    ipam.auto_assign(&req("n1", "keep")).await.unwrap();
    let (lost, _) = ipam.auto_assign(&req("n1", "lost-record")).await.unwrap();
    ipam.auto_assign(&req("n1", "dead-pod")).await.unwrap();
    let rec = ipam
        .store()
        .get_handle("lost-record")
        .await
        .unwrap()
        .unwrap();
    ipam.store()
        .delete_handle("lost-record", rec.revision)
        .await
        .unwrap();

    let n = nodes(&["n1"]);
    let live: HashSet<String> = ["keep", "lost-record"].map(String::from).into();
    let problems = check(ipam.store(), &n, Some(&live)).await.unwrap();
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t == "handle lost-record holds 1 address(es) but has no handle record"),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.ends_with("is allocated to dead-pod, which no live workload uses")),
        "{text:?}"
    );
    fix_and_recheck(&ipam, &n, Some(&live)).await;
    assert!(ipam.store().get_handle("dead-pod").await.unwrap().is_none());
    assert_eq!(ipam.release_by_handle("lost-record").await.unwrap(), lost);
    assert!(check(ipam.store(), &n, Some(&live))
        .await
        .unwrap()
        .is_empty());
}
