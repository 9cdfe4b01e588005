//! IPReservation end to end, on the embedded SQLite store and a real etcd:
//! applied with `tabbyctl apply` while an allocator with a warm watch-fed
//! cache is running, it reaches that allocator through its watch within a
//! bound; a read-through allocator honours it from the very next
//! assignment; filling the pool hands out every unreserved address and no
//! reserved one; an
//! address assigned before the reservation stays assigned; `ipam show`
//! counts reserved addresses; bad entries are rejected at apply time naming
//! the field; `get -o yaml` applies back unchanged, in both API forms.

mod common;

use common::{Backend, Ctl};
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Output;
use std::time::{Duration, Instant};
use tabby_agent::ipam::DatastoreIpam;
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::{parse_documents, Object, Resource};
use tabby_ipam::allocator::{AssignRequest, Ipam, IpamError};
use tabby_ipam::store::IpamStore;

impl Ctl {
    fn apply_text(&self, yaml: &str) -> Output {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), yaml).unwrap();
        self.run(&["apply", "-f", tmp.path().to_str().unwrap()])
    }
}

const POOL: &str = "10.51.0.0/27";

/// Every address of `net`.
fn addresses(net: IpNet) -> BTreeSet<IpAddr> {
    net.hosts()
        .chain([net.network(), net.broadcast()])
        .collect()
}

/// The number in a `ipam show` cell such as `5 (15%)`.
fn count(cell: &str) -> u32 {
    cell.split_whitespace().next().unwrap().parse().unwrap()
}

async fn scenario(b: &Backend) {
    let ds = b.client().await;
    let ctl = Ctl::for_backend(b);
    let mut spec = IpPoolSpec {
        cidr: POOL.into(),
        block_size: Some(29),
        ..Default::default()
    };
    spec.fill_defaults(false);
    ds.create(Resource::IpPool(Object::new("IPPool", "res-pool", spec)))
        .await
        .unwrap();

    // A long-running allocator, its cache loaded before the reservation
    // exists.
    let store = DatastoreIpam::cached(b.client().await);
    assert!(store.wait_ready(Duration::from_secs(10)).await);
    let ipam = Ipam::new(store);
    let (first, _) = ipam
        .auto_assign(&AssignRequest::new("k8s-pod-network.before", "n1"))
        .await
        .unwrap();
    let held = first[0];

    let yaml = format!(
        "apiVersion: projectcalico.org/v3\n\
         kind: IPReservation\n\
         metadata:\n  name: keep-out\n\
         spec:\n  reservedCIDRs:\n  - 10.51.0.8/29\n  - 10.51.0.17\n  - {held}\n"
    );
    let o = ctl.apply_text(&yaml);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let pool: IpNet = POOL.parse().unwrap();
    let mut reserved: BTreeSet<IpAddr> = addresses("10.51.0.8/29".parse().unwrap());
    reserved.insert("10.51.0.17".parse().unwrap());
    reserved.insert(held);
    let edges: BTreeSet<IpAddr> = [pool.network(), pool.broadcast()].into();
    let want: BTreeSet<IpAddr> = addresses(pool)
        .into_iter()
        .filter(|ip| !reserved.contains(ip) && !edges.contains(ip))
        .collect();

    // A read-through allocator (what one-shot tools use) sees it at once.
    let direct = DatastoreIpam::new(b.client().await);
    let want_nets: Vec<IpNet> =
        IpNet::aggregate(&reserved.iter().map(|ip| IpNet::from(*ip)).collect());
    assert_eq!(direct.config().await.unwrap().reserved, want_nets);
    // The warm allocator learns it from its watch.
    let t0 = Instant::now();
    while ipam.store().config().await.unwrap().reserved != want_nets {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the cached allocator never saw the reservation"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    // Fill the pool from the warm allocator.
    let mut got = BTreeSet::new();
    for i in 0.. {
        let req = AssignRequest::new(&format!("k8s-pod-network.fill-{i}"), "n1");
        match ipam.auto_assign(&req).await {
            Ok((v4, _)) => {
                for ip in v4 {
                    assert!(!reserved.contains(&ip), "handed out reserved {ip}");
                    assert!(got.insert(ip), "handed out {ip} twice");
                }
            }
            Err(IpamError::Exhausted { .. }) => break,
            Err(e) => panic!("assign {i}: {e}"),
        }
        assert!(i < 64, "the /27 pool never ran out");
    }
    assert_eq!(got, want, "every unreserved address, and nothing else");

    // The address held before the reservation is still held.
    let out = ctl.ok(&["ipam", "show", "--ip", &held.to_string()]);
    assert!(
        out.starts_with(&format!(
            "IP {held} is in use\nHandle: k8s-pod-network.before\n"
        )),
        "{out}"
    );

    // ipam show: in use = the fill plus the held address; reserved = the
    // reservations and pool edges that are not in use; nothing free.
    let out = ctl.ok(&["ipam", "show", "--show-blocks"]);
    let rows: Vec<Vec<String>> = out
        .lines()
        .filter(|l| l.contains("| IP Pool") || l.contains("| Block"))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    let p = rows.iter().find(|r| r[2] == POOL).expect(&out);
    let in_use = want.len() as u32 + 1;
    let unreserved_idle = (reserved.len() + edges.len()) as u32 - 1;
    assert_eq!(
        (count(&p[3]), count(&p[4]), count(&p[5]), count(&p[6])),
        (32, in_use, unreserved_idle, 0),
        "{out}"
    );
    let wholly = rows.iter().find(|r| r[2] == "10.51.0.8/29").expect(&out);
    assert_eq!(
        (count(&wholly[4]), count(&wholly[5]), count(&wholly[6])),
        (0, 8, 0),
        "the fully reserved block:\n{out}"
    );

    // get: the table, and the YAML applies back unchanged.
    let table = ctl.ok(&["get", "ipreservations"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains(&format!("keep-out   10.51.0.8/29,10.51.0.17,{held}")),
        "{table}"
    );
    let got_yaml = ctl.ok(&["get", "ipreservation", "keep-out", "-o", "yaml"]);
    let before = parse_documents("get", &got_yaml)
        .unwrap()
        .remove(0)
        .resource;
    let Resource::IpReservation(r) = &before else {
        panic!("{got_yaml}")
    };
    assert_eq!(
        r.spec.reserved_cidrs,
        ["10.51.0.8/29", "10.51.0.17", &held.to_string()]
    );
    let o = ctl.apply_text(&got_yaml);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = ctl.ok(&["get", "ipreservation", "keep-out", "-o", "yaml"]);
    let after = parse_documents("get", &again).unwrap().remove(0).resource;
    assert_eq!(strip_rev(after), strip_rev(before));
    let list = ctl.ok(&["get", "ipreservations", "-o", "yaml"]);
    assert!(list.contains("kind: IPReservationList"), "{list}");
    let o = ctl.apply_text(&list);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The kubectl (CRD) form applies too, and lists beside the v3 one.
    let o = ctl.apply_text(
        "apiVersion: crd.projectcalico.org/v1\n\
         kind: IPReservation\n\
         metadata:\n  name: from-crd\n\
         spec:\n  reservedCIDRs: [\"fd00:51::/120\"]\n",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = ctl.ok(&["get", "ipr"]);
    assert!(table.contains("from-crd   fd00:51::/120"), "{table}");

    // Bad entries: every one named, nothing stored.
    let o = ctl.apply_text(
        "apiVersion: projectcalico.org/v3\n\
         kind: IPReservation\n\
         metadata:\n  name: bad\n\
         spec:\n  reservedCIDRs: [\"10.51.0.0/28\", \"10.51.0.300\", \"fd00::/129\"]\n",
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("spec.reservedCIDRs[1]") && err.contains("\"10.51.0.300\""),
        "{err}"
    );
    assert!(
        err.contains("spec.reservedCIDRs[2]") && err.contains("\"fd00::/129\""),
        "{err}"
    );
    assert!(!err.contains("spec.reservedCIDRs[0]"), "{err}");
    assert!(!ctl.run(&["get", "ipreservation", "bad"]).status.success());

    // Deleting the reservation frees its addresses once the watch has
    // delivered the deletion.
    ctl.ok(&["delete", "ipreservation", "keep-out"]);
    let t0 = Instant::now();
    let left: Vec<IpNet> = vec!["fd00:51::/120".parse().unwrap()];
    while ipam.store().config().await.unwrap().reserved != left {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the cached allocator never saw the deletion"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (v4, _) = ipam
        .auto_assign(&AssignRequest::new("k8s-pod-network.after", "n1"))
        .await
        .unwrap();
    assert!(reserved.contains(&v4[0]), "{} was never reserved", v4[0]);
}

fn strip_rev(mut r: Resource) -> Resource {
    r.metadata_mut().resource_version = None;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reservations_are_never_handed_out() {
    scenario(&Backend::new("sqlite").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_reservations_are_never_handed_out() {
    let b = Backend::new("etcd").await;
    let endpoint = match &b {
        Backend::Etcd(e) => e.endpoint.clone(),
        _ => unreachable!(),
    };
    scenario(&b).await;
    // Stored where calicoctl keeps it.
    let mut c = etcd_client::Client::connect([endpoint], None)
        .await
        .unwrap();
    let r = c
        .get(
            "/calico/resources/v3/projectcalico.org/ipreservations/from-crd",
            None,
        )
        .await
        .unwrap();
    let kv = r.kvs().first().expect("the IPReservation key");
    let v: serde_json::Value = serde_json::from_slice(kv.value()).unwrap();
    assert_eq!(v["kind"], "IPReservation");
    assert_eq!(v["spec"]["reservedCIDRs"][0], "fd00:51::/120");
}
