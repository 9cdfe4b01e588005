//! IPAM assignment throughput and latency on SQLite and etcd, next to the
//! raw etcd single-key compare-and-swap transaction rate measured in the
//! same run against the same etcd. Prints the ratio (goal: etcd-backed
//! assignment >= 0.8x the raw transaction rate), then the same with 8
//! assigner processes at once against 8 raw CAS clients (goal >= 0.6x,
//! no address twice). Run: `bash tests/bench.sh`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "ipam_parts/concurrent.rs"]
mod concurrent;
#[path = "../../tests/bench/emit.rs"]
mod emit;

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tabby_agent::datastore::{sqlite::SqliteStore, Datastore};
use tabby_agent::ipam::DatastoreIpam;
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::{Object, Resource};
use tabby_ipam::allocator::{AssignRequest, Ipam};

/// Assignments per single-assigner row; `IPAM_BENCH_N` (QUICK=1) lowers it.
fn n() -> usize {
    std::env::var("IPAM_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

struct Stats {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

fn stats(mut lat: Vec<Duration>, total: Duration) -> Stats {
    lat.sort();
    Stats {
        rate: lat.len() as f64 / total.as_secs_f64(),
        p50: lat[lat.len() / 2],
        p99: lat[lat.len() * 99 / 100],
    }
}

/// `cached`: the store as tabby-node runs it (watch-fed cache, one
/// transaction per assignment); otherwise every read goes to the store.
async fn assign_bench(ds: Arc<dyn Datastore>, cached: bool, pool: &str) -> Stats {
    let mut spec = IpPoolSpec {
        cidr: pool.into(),
        ..Default::default()
    };
    spec.fill_defaults(false);
    ds.create(Resource::IpPool(Object::new("IPPool", pool, spec)))
        .await
        .unwrap();
    let store = if cached {
        let s = DatastoreIpam::cached(ds);
        assert!(s.wait_ready(Duration::from_secs(10)).await, "cache loads");
        s
    } else {
        DatastoreIpam::new(ds)
    };
    let ipam = Ipam::new(store);
    let node = format!("bench-node-{}", pool.replace(['.', '/'], "-"));
    let mut lat = Vec::with_capacity(n());
    let start = Instant::now();
    for i in 0..n() {
        let req = AssignRequest::new(&format!("k8s-pod-network.bench-{pool}-{i}"), &node);
        let t = Instant::now();
        ipam.auto_assign(&req).await.unwrap();
        lat.push(t.elapsed());
    }
    stats(lat, start.elapsed())
}

/// The cheapest useful write etcd offers: a CAS put on one key.
async fn raw_txn_bench(endpoint: &str) -> Stats {
    let mut c = Client::connect([endpoint], None).await.unwrap();
    let key = "/bench/raw";
    let mut rev = c
        .put(key, "0", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let mut lat = Vec::with_capacity(n());
    let start = Instant::now();
    for i in 0..n() {
        let t = Instant::now();
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, rev)])
            .and_then([TxnOp::put(key, i.to_string(), None)]);
        let r = c.txn(txn).await.unwrap();
        assert!(r.succeeded());
        rev = r.header().unwrap().revision();
        lat.push(t.elapsed());
    }
    stats(lat, start.elapsed())
}

/// The transaction one assignment writes, with raw etcd: CAS on a block
/// key carrying a value as large as a real block's, plus a new handle key
/// of a real handle's size. What is left between this and `assign` is
/// Tabby's own cost; what is between this and `raw_txn_bench` is etcd's
/// cost of the bigger transaction.
async fn shaped_txn_bench(endpoint: &str) -> (Stats, usize, usize) {
    let mut c = Client::connect([endpoint], None).await.unwrap();
    let size = |kvs: &[etcd_client::KeyValue]| kvs.iter().map(|kv| kv.value().len()).max();
    let prefix = Some(etcd_client::GetOptions::new().with_prefix());
    let blocks = c
        .get("/calico/ipam/v2/assignment/", prefix.clone())
        .await
        .unwrap();
    let handles = c.get("/calico/ipam/v2/handle/", prefix).await.unwrap();
    let block_len = size(blocks.kvs()).expect("the assign bench left blocks");
    let handle_len = size(handles.kvs()).expect("the assign bench left handles");
    let (block, handle) = ("x".repeat(block_len), "y".repeat(handle_len));
    let key = "/bench/shaped-block";
    let mut rev = c
        .put(key, block.as_str(), None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let mut lat = Vec::with_capacity(n());
    let start = Instant::now();
    for i in 0..n() {
        let t = Instant::now();
        let hkey = format!("/bench/shaped-handle/{i}");
        let txn = Txn::new()
            .when([
                Compare::mod_revision(key, CompareOp::Equal, rev),
                Compare::version(hkey.as_str(), CompareOp::Equal, 0),
            ])
            .and_then([
                TxnOp::put(key, block.as_str(), None),
                TxnOp::put(hkey.as_str(), handle.as_str(), None),
            ]);
        let r = c.txn(txn).await.unwrap();
        assert!(r.succeeded());
        rev = r.header().unwrap().revision();
        lat.push(t.elapsed());
    }
    (stats(lat, start.elapsed()), block_len, handle_len)
}

fn row(name: &str, s: &Stats) {
    println!(
        "{name:<34} {:>10.0}/s   p50 {:>8.2} ms   p99 {:>8.2} ms",
        s.rate,
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3
    );
}

/// Issue 16 §5's results (BENCH_RESULTS): a rate, and its latencies.
fn rate(case: &str, rate: f64) -> emit::Line {
    emit::figure("5", "ipam", case, "rate", "ops/s", rate)
}

fn emit_latencies(case: &str, s: &Stats) {
    for (metric, d) in [("latency_p50", s.p50), ("latency_p99", s.p99)] {
        emit::figure("5", "ipam", case, metric, "ms", d.as_secs_f64() * 1e3).write();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    concurrent::child_if_asked().await;
    let etcd = common::Etcd::start().await;
    let raw = raw_txn_bench(&etcd.endpoint).await;
    let on_etcd = assign_bench(etcd.client().await, true, "10.80.0.0/16").await;
    let (shaped, block_len, handle_len) = shaped_txn_bench(&etcd.endpoint).await;
    let uncached = assign_bench(etcd.client().await, false, "10.81.0.0/16").await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn Datastore> = Arc::new(
        SqliteStore::open(&dir.path().join("bench.db"))
            .await
            .unwrap(),
    );
    let on_sqlite = assign_bench(sqlite, true, "10.82.0.0/16").await;
    let (raw_many, raw_etcd_ms) = concurrent::raw_concurrent(&etcd.endpoint, etcd.pid()).await;
    let many = concurrent::assign_processes(&etcd.endpoint, etcd.pid(), etcd.client().await).await;

    println!(
        "IPAM benchmark: {} sequential single-address assignments, one node",
        n()
    );
    row("raw etcd CAS transaction", &raw);
    row(
        &format!("raw etcd txn, {block_len}+{handle_len} B"),
        &shaped,
    );
    row("assign (etcd)", &on_etcd);
    row("assign (etcd, no cache)", &uncached);
    row("assign (sqlite)", &on_sqlite);
    let ratio = on_etcd.rate / raw.rate;
    println!(
        "ratio etcd assign / raw etcd txn: {ratio:.2}x (goal >= 0.80x){}",
        if ratio >= 0.8 { "" } else { "  BELOW GOAL" }
    );
    println!(
        "ratio etcd assign / raw txn of the same shape: {:.2}x",
        on_etcd.rate / shaped.rate
    );
    let raw_name = "raw etcd CAS transaction";
    let shaped_name = format!("raw etcd txn, {block_len}+{handle_len} B");
    rate(raw_name, raw.rate).write();
    emit_latencies(raw_name, &raw);
    rate(&shaped_name, shaped.rate).write();
    emit_latencies(&shaped_name, &shaped);
    rate("assign (etcd), one assigner", on_etcd.rate)
        .reference(raw_name, raw.rate)
        .goal(">= 0.80x raw etcd CAS", ratio >= 0.8)
        .write();
    rate(
        "assign (etcd), one assigner, vs the same transaction shape",
        on_etcd.rate,
    )
    .reference(&shaped_name, shaped.rate)
    .write();
    emit_latencies("assign (etcd), one assigner", &on_etcd);
    rate("assign (etcd, no cache)", uncached.rate)
        .reference(raw_name, raw.rate)
        .write();
    emit_latencies("assign (etcd, no cache)", &uncached);
    rate("assign (sqlite)", on_sqlite.rate).write();
    emit_latencies("assign (sqlite)", &on_sqlite);
    let (p, each) = (concurrent::PROCESSES, concurrent::EACH);
    println!("{p} concurrent processes (one node each) x {each} assignments, same etcd:");
    println!(
        "{:<34} {raw_many:>10.0}/s",
        format!("raw etcd CAS, {p} clients")
    );
    println!(
        "{:<34} {:>10.0}/s   0 duplicates",
        format!("assign (etcd), {p} processes"),
        many.rate
    );
    println!(
        "CPU per assignment: assigner processes {:.2} ms, etcd {:.2} ms (per raw CAS: etcd {raw_etcd_ms:.2} ms)",
        many.cpu_assigners_ms, many.cpu_etcd_ms
    );
    let ratio = many.rate / raw_many;
    println!(
        "ratio concurrent assign / raw concurrent txn: {ratio:.2}x (goal >= 0.60x){}",
        if ratio >= 0.6 { "" } else { "  BELOW GOAL" }
    );
    let raw_name = format!("raw etcd CAS, {p} clients");
    rate(&raw_name, raw_many).write();
    rate(&format!("assign (etcd), {p} processes at once"), many.rate)
        .reference(&raw_name, raw_many)
        .goal(&format!(">= 0.60x raw etcd CAS, {p} clients"), ratio >= 0.6)
        .write();
    let cpu = |case: &str, ms: f64| emit::figure("5", "ipam", case, "cpu", "ms", ms);
    cpu(
        "CPU per assignment, assigner processes",
        many.cpu_assigners_ms,
    )
    .write();
    cpu("CPU per assignment, etcd", many.cpu_etcd_ms)
        .reference("etcd CPU per raw CAS", raw_etcd_ms)
        .write();
}
