//! Installs and removes 100k routes via a gateway inside a throwaway network
//! namespace, with Tabby's batched writer and with `ip -batch`, in the same
//! run, and prints both rates and their ratio. Then the whole reconciler
//! (issue 16 §3): its first pass, a pass with nothing to do (goal: at most
//! 50 ms at 100k routes) and one after a full-resync request (a full dump),
//! next to `ip -batch`, medians over rounds. With `BENCH_RESULTS` set, each
//! figure is appended there as a JSON line. Needs root.

#[path = "../tests/common/mod.rs"]
mod common;

use common::Netns;
use ipnet::Ipv4Net;
use std::io::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use tabby_felix_lite::model::{BlockRoute, DesiredState, Path};
use tabby_felix_lite::netlink::routes::{add_request, delete_request, RouteSpec, RouteTarget};
use tabby_felix_lite::netlink::NlSocket;
use tabby_felix_lite::netns;
use tabby_felix_lite::reconcile::{Config, Reconciler, ReconcilerHandle, Status};

const ROUTES: u32 = 100_000;
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 2);
const ROUNDS: usize = 3;

fn destinations() -> Vec<Ipv4Net> {
    let base = u32::from(Ipv4Addr::new(172, 16, 0, 0));
    (0..ROUTES)
        .map(|i| Ipv4Net::new(Ipv4Addr::from(base + i), 32).expect("valid /32"))
        .collect()
}

fn count_tabby_routes(ns: &Netns) -> usize {
    ns.ip(&["route", "show", "proto", "81"]).lines().count()
}

fn ip_batch(ns: &Netns, verb: &str, dsts: &[Ipv4Net]) -> Duration {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    {
        let mut w = std::io::BufWriter::new(file.as_file_mut());
        for d in dsts {
            writeln!(w, "route {verb} {d} via {GATEWAY} dev veth0 proto 81").expect("write");
        }
    }
    let path = file.path().to_str().expect("utf-8 path").to_string();
    let start = Instant::now();
    ns.ip(&["-batch", &path]);
    start.elapsed()
}

fn tabby(ns: &Netns, dsts: Vec<Ipv4Net>, oif: u32) -> (Duration, Duration) {
    netns::run_in(&ns.name, move || {
        let mut sock = NlSocket::open().expect("netlink socket");
        let specs: Vec<RouteSpec> = dsts
            .iter()
            .map(|&dst| RouteSpec {
                dst,
                target: RouteTarget::Gateway {
                    gateway: GATEWAY,
                    oif,
                    onlink: false,
                },
            })
            .collect();
        let start = Instant::now();
        let failures = sock
            .apply(specs.iter().map(|s| add_request(s, false)))
            .expect("add batch");
        let add = start.elapsed();
        assert!(failures.is_empty(), "adds failed: {:?}", &failures[..1]);
        let start = Instant::now();
        let failures = sock
            .apply(specs.iter().map(|s| delete_request(s.dst, 0, 0)))
            .expect("delete batch");
        let del = start.elapsed();
        assert!(failures.is_empty(), "deletes failed: {:?}", &failures[..1]);
        (add, del)
    })
    .expect("run in netns")
}

/// What one round of the reconciler took, end to end (set_desired to the
/// status of the pass that worked from it).
struct Round {
    first: Duration,
    /// Median of [`NOOPS`] passes with nothing to do.
    noop: Duration,
    /// The same, as the pass measured itself.
    noop_pass: Duration,
    resync: Duration,
    /// The pass a route notification woke (one route deleted outside): a
    /// diff against a view that changed, and one write.
    event_pass: Duration,
    removal: Duration,
}

const NOOPS: usize = 5;

/// Waits until no pass ran for 300 ms (the first pass's own notifications
/// wake one more).
fn quiet(handle: &ReconcilerHandle) {
    let mut last = handle.status().passes;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = handle.status().passes;
        if now == last {
            return;
        }
        last = now;
    }
}

/// The same routes through the whole reconciler (read back, diff, write,
/// status), started afresh: first pass, passes with nothing to do, one
/// after a resync request, and removal.
fn reconciler(ns: &Netns, dsts: &[Ipv4Net]) -> Round {
    ns.ip(&["route", "flush", "proto", "81"]);
    let rec = Reconciler::start_in_netns(&ns.name, Config::default()).expect("reconciler");
    let handle = rec.handle();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut state = DesiredState {
        node_interface: "veth0".into(),
        routes: dsts
            .iter()
            .map(|&cidr| BlockRoute {
                cidr,
                path: Path::Native { gateway: GATEWAY },
                node: "bench".into(),
            })
            .collect(),
        ..DesiredState::default()
    };
    let check = |status: &Status, want: usize| {
        assert!(
            status.last_pass.failures.is_empty(),
            "{:?}",
            &status.last_pass.failures[..1]
        );
        assert_eq!(status.last_pass.routes_programmed, want);
    };
    let timed = |state: DesiredState, want: usize| {
        let start = Instant::now();
        let generation = handle.set_desired(state);
        let status = rt
            .block_on(handle.wait_for_generation(generation))
            .expect("reconciler running");
        let took = start.elapsed();
        check(&status, want);
        (took, *status.recent_durations.last().expect("a pass"))
    };
    let (first, _) = timed(state.clone(), dsts.len());
    let mut noops = Vec::new();
    for _ in 0..NOOPS {
        quiet(&handle);
        noops.push(timed(state.clone(), dsts.len()));
        assert_eq!(handle.status().last_pass.applied_count, 0);
    }
    quiet(&handle);
    let passes = handle.status().passes;
    let start = Instant::now();
    handle.resync();
    // Polled: the status of a pass that read the same generation.
    let status = loop {
        let s = handle.status();
        if s.passes > passes {
            break s;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let resync = start.elapsed();
    check(&status, dsts.len());
    quiet(&handle);
    let passes = handle.status().passes;
    let gone = dsts[dsts.len() / 2].to_string();
    ns.ip(&["route", "del", &gone, "proto", "81"]);
    let event_pass = loop {
        let s = handle.status();
        if s.passes > passes && s.last_pass.applied_count == 1 {
            break *s.recent_durations.last().expect("a pass");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    quiet(&handle);
    state.routes.clear();
    let (removal, _) = timed(state, 0);
    assert_eq!(count_tabby_routes(ns), 0);
    Round {
        first,
        noop: median(noops.iter().map(|n| n.0).collect()),
        noop_pass: median(noops.iter().map(|n| n.1).collect()),
        resync,
        event_pass,
        removal,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One JSON line per figure in `$BENCH_RESULTS` (section 3, bench "fib").
fn result(
    case: &str,
    metric: &str,
    unit: &str,
    value: f64,
    reference: Option<(&str, f64)>,
    goal: Option<&str>,
    met: Option<bool>,
) {
    let Some(path) = std::env::var_os("BENCH_RESULTS") else {
        return;
    };
    let line = serde_json::json!({
        "section": "3", "bench": "fib", "case": case, "metric": metric, "unit": unit,
        "value": value,
        "reference": reference.map(|r| r.0),
        "reference_value": reference.map(|r| r.1),
        "ratio": reference.map(|r| value / r.1),
        "goal": goal, "met": met,
    });
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("BENCH_RESULTS opens");
    f.write_all(format!("{line}\n").as_bytes())
        .expect("BENCH_RESULTS written");
}

fn rate(d: Duration) -> f64 {
    f64::from(ROUTES) / d.as_secs_f64()
}

fn main() {
    if !common::is_root() {
        println!("routes bench: skipped (needs root for network namespaces)");
        return;
    }
    let ns = Netns::new("bench");
    ns.ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
    ]);
    ns.ip(&["addr", "add", "10.255.0.1/24", "dev", "veth0"]);
    ns.ip(&["link", "set", "veth0", "up"]);
    ns.ip(&["link", "set", "veth1", "up"]);
    let links = ns.ip_json(&["link", "show", "veth0"]);
    let oif = links[0]["ifindex"].as_u64().expect("ifindex") as u32;
    let dsts = destinations();

    let mut best_ip = (Duration::MAX, Duration::MAX);
    let mut ip_adds = Vec::new();
    let mut best_tabby = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        let add = ip_batch(&ns, "add", &dsts);
        ip_adds.push(add);
        assert_eq!(
            count_tabby_routes(&ns),
            dsts.len(),
            "ip -batch installed all"
        );
        let del = ip_batch(&ns, "del", &dsts);
        assert_eq!(count_tabby_routes(&ns), 0);
        best_ip = (best_ip.0.min(add), best_ip.1.min(del));

        let (add, del) = tabby(&ns, dsts.clone(), oif);
        assert_eq!(count_tabby_routes(&ns), 0, "tabby removed all");
        best_tabby = (best_tabby.0.min(add), best_tabby.1.min(del));
    }
    // Check once that the writer really installs (the timed rounds delete
    // in the same thread before we can look).
    netns::run_in(&ns.name, {
        let dsts = dsts.clone();
        move || {
            let mut sock = NlSocket::open().expect("netlink socket");
            let f = sock
                .apply(dsts.iter().map(|&dst| {
                    add_request(
                        &RouteSpec {
                            dst,
                            target: RouteTarget::Gateway {
                                gateway: GATEWAY,
                                oif,
                                onlink: false,
                            },
                        },
                        false,
                    )
                }))
                .expect("add batch");
            assert!(f.is_empty());
        }
    })
    .expect("run in netns");
    assert_eq!(count_tabby_routes(&ns), dsts.len(), "tabby installed all");

    ns.ip(&["route", "flush", "proto", "81"]);
    let rounds: Vec<Round> = (0..ROUNDS).map(|_| reconciler(&ns, &dsts)).collect();
    let med = |f: fn(&Round) -> Duration| median(rounds.iter().map(f).collect());
    let (first, noop, noop_pass) = (med(|r| r.first), med(|r| r.noop), med(|r| r.noop_pass));
    let (resync, removal) = (med(|r| r.resync), med(|r| r.removal));
    let event_pass = med(|r| r.event_pass);
    let ip_add = median(ip_adds.clone());

    let ip_both = best_ip.0 + best_ip.1;
    let tabby_both = best_tabby.0 + best_tabby.1;
    println!("routes: {ROUTES} /32 routes via a gateway, best of {ROUNDS} rounds");
    println!(
        "ip -batch: add {:.0}/s, del {:.0}/s, add+del {:.0} routes/s",
        rate(best_ip.0),
        rate(best_ip.1),
        2.0 * f64::from(ROUTES) / ip_both.as_secs_f64()
    );
    println!(
        "tabby:     add {:.0}/s, del {:.0}/s, add+del {:.0} routes/s",
        rate(best_tabby.0),
        rate(best_tabby.1),
        2.0 * f64::from(ROUTES) / tabby_both.as_secs_f64()
    );
    let writer_ratio = ip_both.as_secs_f64() / tabby_both.as_secs_f64();
    println!(
        "ratio tabby / ip -batch: add {:.2}x, del {:.2}x, add+del {writer_ratio:.2}x (goal >= 2.5x)",
        best_ip.0.as_secs_f64() / best_tabby.0.as_secs_f64(),
        best_ip.1.as_secs_f64() / best_tabby.1.as_secs_f64(),
    );
    result(
        "batched writer add+del, 100k routes",
        "rate",
        "ops/s",
        2.0 * f64::from(ROUTES) / tabby_both.as_secs_f64(),
        Some((
            "ip -batch add+del",
            2.0 * f64::from(ROUTES) / ip_both.as_secs_f64(),
        )),
        Some(">= 2.5x ip -batch"),
        Some(writer_ratio >= 2.5),
    );

    println!("reconciler, {ROUTES} block routes, medians of {ROUNDS} rounds (ip -batch add: {:.0} ms, median):", ms(ip_add));
    let first_ratio = ip_add.as_secs_f64() / first.as_secs_f64();
    println!(
        "  first pass        {:7.1} ms  {:.0} routes/s = {first_ratio:.2}x ip -batch (goal >= 3x: {})",
        ms(first),
        rate(first),
        if first_ratio >= 3.0 { "met" } else { "NOT met" }
    );
    result(
        "first pass, 100k routes",
        "rate",
        "ops/s",
        rate(first),
        Some(("ip -batch add", rate(ip_add))),
        Some(">= 3x ip -batch"),
        Some(first_ratio >= 3.0),
    );
    let noop_met = ms(noop) <= 50.0;
    println!(
        "  no-op pass        {:7.1} ms  (the pass itself {:.1} ms) = {:.3} of ip -batch add (goal <= 50 ms: {})",
        ms(noop),
        ms(noop_pass),
        noop.as_secs_f64() / ip_add.as_secs_f64(),
        if noop_met { "met" } else { "NOT met" }
    );
    result(
        "no-op pass, 100k routes",
        "time",
        "ms",
        ms(noop),
        Some(("ip -batch add", ms(ip_add))),
        Some("<= 50 ms"),
        Some(noop_met),
    );
    println!(
        "  after resync()    {:7.1} ms  (full dump and repair, the 90 s schedule's cost) = {:.3} of ip -batch add",
        ms(resync),
        resync.as_secs_f64() / ip_add.as_secs_f64()
    );
    result(
        "no-op pass after a full-resync request (full dump), 100k routes",
        "time",
        "ms",
        ms(resync),
        Some(("ip -batch add", ms(ip_add))),
        None,
        None,
    );
    println!(
        "  repair pass       {:7.1} ms  (woken by an outside `ip route del`: diff against the changed view, one write)",
        ms(event_pass)
    );
    result(
        "pass repairing one route deleted outside (notification-driven), 100k routes",
        "time",
        "ms",
        ms(event_pass),
        None,
        None,
        None,
    );
    println!(
        "  removal           {:7.1} ms  = {:.2}x ip -batch del",
        ms(removal),
        best_ip.1.as_secs_f64() / removal.as_secs_f64()
    );
    result(
        "removal of 100k routes",
        "time",
        "ms",
        ms(removal),
        Some(("ip -batch del", ms(best_ip.1))),
        None,
        None,
    );
}
