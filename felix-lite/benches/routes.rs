//! Installs and removes 100k routes via a gateway inside a throwaway network
//! namespace, with Tabby's batched writer and with `ip -batch`, in the same
//! run, and prints both rates and their ratio. Needs root.

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
use tabby_felix_lite::reconcile::{Config, Reconciler};

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

/// The same routes through the whole reconciler (read back, diff, write,
/// status): first pass, a pass with nothing to do, and removal.
fn reconciler(ns: &Netns, dsts: &[Ipv4Net]) -> (Duration, Duration, Duration) {
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
    let timed = |state: DesiredState, want: usize| {
        let start = Instant::now();
        let generation = handle.set_desired(state);
        let status = rt
            .block_on(handle.wait_for_generation(generation))
            .expect("reconciler running");
        let took = start.elapsed();
        assert!(
            status.last_pass.failures.is_empty(),
            "{:?}",
            &status.last_pass.failures[..1]
        );
        assert_eq!(status.last_pass.routes_programmed, want);
        took
    };
    let first = timed(state.clone(), dsts.len());
    let noop = timed(state.clone(), dsts.len());
    state.routes.clear();
    let removal = timed(state, 0);
    assert_eq!(count_tabby_routes(ns), 0);
    (first, noop, removal)
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
    let mut best_tabby = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        let add = ip_batch(&ns, "add", &dsts);
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
    let (first, noop, removal) = reconciler(&ns, &dsts);

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
    println!(
        "ratio tabby / ip -batch: add {:.2}x, del {:.2}x, add+del {:.2}x (goal >= 2.5x)",
        best_ip.0.as_secs_f64() / best_tabby.0.as_secs_f64(),
        best_ip.1.as_secs_f64() / best_tabby.1.as_secs_f64(),
        ip_both.as_secs_f64() / tabby_both.as_secs_f64()
    );
    println!(
        "reconciler ({ROUTES} block routes): first pass {:.0} ms ({:.0} routes/s), \
         pass with nothing to do {:.0} ms, removal {:.0} ms",
        first.as_secs_f64() * 1e3,
        rate(first),
        noop.as_secs_f64() * 1e3,
        removal.as_secs_f64() * 1e3
    );
}
