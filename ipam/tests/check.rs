//! `ipam check` finds what crashes and deleted nodes leave behind, and
//! `--fix` leaves a state that checks clean and that the allocator uses.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};
use tabby_ipam::allocator::{AssignRequest, Ipam};
use tabby_ipam::block::Block;
use tabby_ipam::check::{check, fix, LeakCheck, Problem};
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

async fn fix_and_recheck(ipam: &Ipam<MemoryIpamStore>, n: &HashSet<String>) {
    let problems = check(ipam.store(), n, None).await.unwrap();
    assert!(!problems.is_empty());
    assert_eq!(fix(ipam, &problems).await.unwrap(), problems.len());
    let after = check(ipam.store(), n, None).await.unwrap();
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
    fix_and_recheck(&ipam, &n).await;
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
    fix_and_recheck(&ipam, &n).await;
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

fn leak_check(live: &HashSet<String>, grace: Duration) -> LeakCheck<'_> {
    LeakCheck {
        workloads: live,
        grace,
        now: SystemTime::now(),
    }
}

#[tokio::test]
async fn missing_handle_record_and_leaked_addresses() {
    let ipam = setup();
    ipam.auto_assign(&req("n1", "k8s-pod-network.keep"))
        .await
        .unwrap();
    let (lost, _) = ipam
        .auto_assign(&req("n1", "k8s-pod-network.lost-record"))
        .await
        .unwrap();
    let (dead, _) = ipam
        .auto_assign(&req("n1", "k8s-pod-network.dead"))
        .await
        .unwrap();
    // Not a pod or tunnel handle: nothing to ask about, never "leaked".
    ipam.auto_assign(&req("n1", "reserved-by-admin"))
        .await
        .unwrap();
    let rec = ipam
        .store()
        .get_handle("k8s-pod-network.lost-record")
        .await
        .unwrap()
        .unwrap();
    ipam.store()
        .delete_handle("k8s-pod-network.lost-record", rec.revision)
        .await
        .unwrap();

    let n = nodes(&["n1"]);
    let live: HashSet<String> = ["keep", "lost-record"].map(String::from).into();
    let lc = leak_check(&live, Duration::ZERO);
    let problems = check(ipam.store(), &n, Some(&lc)).await.unwrap();
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 2, "{text:?}");
    assert!(
        text.iter().any(|t| t
            == "handle k8s-pod-network.lost-record holds 1 address(es) but has no handle record"),
        "{text:?}"
    );
    assert!(
        text.contains(&format!(
            "IP {} is allocated to k8s-pod-network.dead, which no live workload uses",
            dead[0]
        )),
        "{text:?}"
    );
    assert_eq!(fix(&ipam, &problems).await.unwrap(), 2);
    assert!(check(ipam.store(), &n, Some(&lc)).await.unwrap().is_empty());
    assert!(ipam
        .store()
        .get_handle("k8s-pod-network.dead")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        ipam.release_by_handle("k8s-pod-network.lost-record")
            .await
            .unwrap(),
        lost
    );
    assert_eq!(
        ipam.release_by_handle("reserved-by-admin")
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn young_pod_allocations_and_tunnels_of_existing_nodes_are_not_leaks() {
    let ipam = setup();
    let mut young = req("n1", "k8s-pod-network.starting");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let ts = |secs_ago: u64| {
        // RFC 3339 by hand, to keep the test free of a time crate.
        let t = now.as_secs() - secs_ago;
        let (d, s) = ((t / 86_400) as i64, t % 86_400);
        let (y, m, dd) = civil(d);
        format!(
            "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}Z",
            s / 3600,
            s / 60 % 60,
            s % 60
        )
    };
    young.attributes.insert("timestamp".into(), ts(60));
    ipam.auto_assign(&young).await.unwrap();
    let mut old = req("n1", "k8s-pod-network.gone");
    // Calico's CNI plugin writes Go's time format.
    old.attributes.insert(
        "timestamp".into(),
        ts(3600).replace('T', " ").replace('Z', ".5 +0000 UTC"),
    );
    let (gone, _) = ipam.auto_assign(&old).await.unwrap();
    let mut tunnel = req("n1", "vxlan-tunnel-addr-n1");
    tunnel.use_for = tabby_ipam::pool::Use::Tunnel;
    ipam.auto_assign(&tunnel).await.unwrap();
    let mut orphan = req("n2", "vxlan-tunnel-addr-n2");
    orphan.use_for = tabby_ipam::pool::Use::Tunnel;
    let (orphan_ip, _) = ipam.auto_assign(&orphan).await.unwrap();

    // n2 is gone: its affinity and its tunnel address are both problems.
    let n = nodes(&["n1"]);
    let live = HashSet::new();
    let lc = leak_check(&live, Duration::from_secs(15 * 60));
    let problems = check(ipam.store(), &n, Some(&lc)).await.unwrap();
    let leaked: Vec<_> = problems
        .iter()
        .filter_map(|p| match p {
            Problem::Leaked { ip, handle } => Some((*ip, handle.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        leaked,
        vec![
            (orphan_ip[0], "vxlan-tunnel-addr-n2"),
            (gone[0], "k8s-pod-network.gone")
        ],
        "{problems:?}"
    );
    assert!(problems.iter().any(|p| p.to_string()
        == format!(
            "IP {} is allocated to vxlan-tunnel-addr-n2, but node n2 does not exist",
            orphan_ip[0]
        )));
    // With no grace period the young allocation is judged too.
    let lc0 = leak_check(&live, Duration::ZERO);
    let all = check(ipam.store(), &n, Some(&lc0)).await.unwrap();
    assert!(all.iter().any(
        |p| matches!(p, Problem::Leaked { handle, .. } if handle == "k8s-pod-network.starting")
    ));
    fix(&ipam, &problems).await.unwrap();
    let after = check(ipam.store(), &n, Some(&lc)).await.unwrap();
    assert!(after.is_empty(), "{after:?}");
    assert!(ipam
        .store()
        .get_handle("vxlan-tunnel-addr-n1")
        .await
        .unwrap()
        .is_some());
    assert!(ipam
        .store()
        .get_handle("k8s-pod-network.starting")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_fix_never_frees_an_address_someone_else_now_holds() {
    let ipam = setup();
    let (ip, _) = ipam
        .auto_assign(&req("n1", "k8s-pod-network.dead"))
        .await
        .unwrap();
    let live = HashSet::new();
    let lc = leak_check(&live, Duration::ZERO);
    let n = nodes(&["n1"]);
    let problems = check(ipam.store(), &n, Some(&lc)).await.unwrap();
    assert_eq!(problems.len(), 1);
    // Between check and fix the address is released and handed out again.
    ipam.release_by_handle("k8s-pod-network.dead")
        .await
        .unwrap();
    let cidr = ipnet::IpNet::new(ip[0], 26).unwrap().trunc();
    let vb = ipam.store().get_block(cidr).await.unwrap().unwrap();
    let mut b = vb.value;
    b.assign_ip(
        ip[0],
        tabby_ipam::block::Attribute {
            handle_id: Some("k8s-pod-network.new".into()),
            secondary: Default::default(),
        },
    )
    .unwrap();
    ipam.store().update_block(&b, vb.revision).await.unwrap();
    fix(&ipam, &problems).await.unwrap();
    let vb = ipam.store().get_block(cidr).await.unwrap().unwrap();
    assert_eq!(
        vb.value.holder(ip[0]).and_then(|a| a.handle_id.as_deref()),
        Some("k8s-pod-network.new")
    );
}

/// (year, month, day) of days since the epoch.
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
