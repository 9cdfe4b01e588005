//! The bounds of issue 15: `tabbyctl apply` takes time linear in its input
//! (thousands of pools, deep nesting), refuses an input that is too large
//! or holds too many resources, and every backend refuses an object over
//! 1.5 MiB naming it. Errors echo a long name once, shortened.

mod common;

use common::Ctl;
use std::time::{Duration, Instant};
use tabby_agent::datastore::{Datastore, Error};
use tabby_agent::resources::limits::{MAX_INPUT_BYTES, MAX_OBJECT_BYTES, MAX_RESOURCES};
use tabby_agent::resources::{parse_documents, Resource};

fn apply_text(ctl: &Ctl, text: &str) -> (bool, String, Duration) {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), text).unwrap();
    let t = Instant::now();
    let o = ctl.run(&["apply", "-f", tmp.path().to_str().unwrap()]);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        t.elapsed(),
    )
}

fn pools(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: p{i}}}\n\
                 spec: {{cidr: 10.{}.{}.0/24}}\n---\n",
                i / 256,
                i % 256
            )
        })
        .collect()
}

/// 20000 pools and one that overlaps them all: every overlap is found and
/// nothing is written, in time linear in the pools (it took 14 s for 16000
/// in a release build when every pair was compared).
#[test]
fn thousands_of_pools_validate_in_linear_time() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Ctl::sqlite(&dir.path().join("tabby.db"));
    let text = pools(20_000)
        + "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: wide}\nspec: {cidr: 10.0.0.0/8}\n";
    let (ok, err, took) = apply_text(&ctl, &text);
    assert!(!ok);
    assert_eq!(err.matches(" overlaps IPPool ").count(), 20_001);
    assert!(
        err.contains("document 20001 (IPPool \"wide\"): spec.cidr: 10.0.0.0/8 overlaps IPPool"),
        "{}",
        &err[err.len().saturating_sub(500)..]
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(
        ctl.ok(&["get", "ippools"]).lines().count(),
        1,
        "only the header"
    );
}

/// 50000 levels of flow mappings (250 KB) took 22 s to reach serde_yaml's
/// recursion error; now refused before it scans them.
#[test]
fn deep_nesting_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Ctl::sqlite(&dir.path().join("tabby.db"));
    let deep = format!("a: {}1{}\n", "{a: ".repeat(50_000), "}".repeat(50_000));
    let (ok, err, took) = apply_text(&ctl, &(pools(1) + &deep));
    assert!(!ok);
    assert!(
        err.contains(": document 2: nested deeper than 128 levels (at line 6)"),
        "{err}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn too_large_an_input_or_too_many_resources_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Ctl::sqlite(&dir.path().join("tabby.db"));
    let mut big = pools(1);
    big.push_str("# ");
    big.push_str(&"x".repeat(MAX_INPUT_BYTES));
    let (ok, err, took) = apply_text(&ctl, &big);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "larger than the limit of one input ({MAX_INPUT_BYTES} bytes, 64 MiB)"
        )),
        "{err}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // Empty mappings are the cheapest documents to count.
    let many = "{}\n---\n".repeat(MAX_RESOURCES + 1);
    let (ok, err, _) = apply_text(&ctl, &many);
    assert!(!ok);
    assert!(
        err.contains(&format!("more than {MAX_RESOURCES} resources in one input")),
        "{}",
        &err[err.len().saturating_sub(500)..]
    );
    assert_eq!(
        ctl.ok(&["get", "ippools"]).lines().count(),
        1,
        "only the header"
    );
}

fn pool_with_annotation(name: &str, bytes: usize) -> Resource {
    let yaml = format!(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: {name}\n  annotations:\n    blob: {}\nspec: {{cidr: 10.60.0.0/16}}\n",
        "x".repeat(bytes)
    );
    parse_documents("t", &yaml).unwrap().remove(0).resource
}

/// An IPPool with a 2 MiB annotation: refused by apply with its document
/// and name, and by each backend's create, update and transaction.
#[test]
fn an_object_over_the_limit_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tabby.db");
    let ctl = Ctl::sqlite(&db);
    let r = pool_with_annotation("big", 2 << 20);
    let text = serde_yaml::to_string(&r).unwrap();
    let (ok, err, _) = apply_text(&ctl, &text);
    assert!(!ok);
    assert!(
        err.contains("document 1 (IPPool \"big\"): is 2097")
            && err.contains(&format!(
                " bytes; an object may be at most {MAX_OBJECT_BYTES} bytes"
            )),
        "{}",
        &err[..err.len().min(500)]
    );
    assert!(err.len() < 1000, "the annotation was echoed");
    assert!(std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) < 1 << 20);
}

async fn store_refuses(store: &dyn Datastore) {
    let big = pool_with_annotation("big", 2 << 20);
    let e = store.create(big.clone()).await.unwrap_err();
    assert!(
        matches!(&e, Error::TooLarge { name, size, limit, .. }
            if name == "big" && *size > 2 << 20 && *limit == MAX_OBJECT_BYTES),
        "{e}"
    );
    assert!(e.to_string().contains("IPPool \"big\" is "), "{e}");
    let small = store.create(pool_with_annotation("big", 10)).await.unwrap();
    let mut grown = big.clone();
    grown.metadata_mut().resource_version = small.metadata().resource_version.clone();
    assert!(matches!(
        store.update(grown.clone()).await,
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        store
            .transact(vec![tabby_agent::datastore::TxnWrite::Update(grown)])
            .await,
        Err(Error::TooLarge { .. })
    ));
    // Just under the limit is fine.
    let fits = pool_with_annotation("fits", MAX_OBJECT_BYTES - 1024);
    store.create(fits).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_refuses_an_object_over_the_limit() {
    for kind in ["memory", "sqlite", "etcd", "kubernetes"] {
        let backend = common::Backend::new(kind).await;
        store_refuses(backend.client().await.as_ref()).await;
    }
}

/// A 1 MB name is echoed neither whole nor twice.
#[test]
fn a_long_name_is_not_echoed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Ctl::sqlite(&dir.path().join("tabby.db"));
    let name = "a".repeat(1 << 20);
    let text = format!(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: {name}}}\nspec: {{cidr: 10.61.0.0/16}}\n"
    );
    let (ok, err, _) = apply_text(&ctl, &text);
    assert!(!ok);
    assert!(err.len() < 1000, "{} bytes of error", err.len());
    assert!(
        err.contains("metadata.name: is 1048576 bytes long; a name is at most 253 characters"),
        "{err}"
    );
}
