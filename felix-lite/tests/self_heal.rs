//! Self-healing that no stream of events can starve (root): the resync
//! schedule keeps ticking under constant netlink churn, nftables changes
//! are noticed from nftables' own notifications, and the forwarding
//! sysctls come back on their own.

mod common;

use common::{add_workload_veth, is_root, node_with_eth0, wait_until, Netns};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tabby_felix_lite::model::{BlockRoute, DesiredState, Path, Pool, Workload};
use tabby_felix_lite::reconcile::{Config, Reconciler, NFT_CHECK_GAP, SYSCTL_CHECK_EVERY};

/// A host firewall whose forward chain drops what it does not accept.
const FIREWALL: &str = "nft -f - <<'EOF'
table inet filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
  }
}
EOF";

/// What a firewall reload does to that chain: rebuilt with only its own
/// rules, so Tabby's accepts are gone (one nftables transaction).
const RELOAD: &str = "nft -f - <<'EOF'
flush chain inet filter forward
add rule inet filter forward ct state established,related accept
EOF";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn state() -> DesiredState {
    DesiredState {
        node_interface: "eth0".into(),
        routes: vec![BlockRoute {
            cidr: "10.245.0.0/26".parse().unwrap(),
            path: Path::Blackhole,
            node: "a".into(),
        }],
        workloads: vec![Workload {
            ip: ip("10.245.0.9"),
            host_interface: "cali9".into(),
            workload_id: "default/pod-9".into(),
        }],
        pools: vec![Pool {
            cidr: "10.245.0.0/16".parse().unwrap(),
            nat_outgoing: true,
        }],
        ..DesiredState::default()
    }
}

/// Tabby's accept rules in the firewall's forward chain.
fn accepts(ns: &Netns) -> usize {
    ns.must("nft list chain inet filter forward")
        .matches("comment \"tabby:forward\"")
        .count()
}

fn has_own_table(ns: &Netns) -> bool {
    ns.exec("nft", &["list", "table", "ip", "tabby"]).0
}

/// Waits until no pass has run for 300 ms; returns the pass count.
fn quiet(rec: &Reconciler) -> u64 {
    let mut last = rec.handle().status().passes;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = rec.handle().status().passes;
        if now == last {
            return now;
        }
        last = now;
    }
}

fn node(tag: &str, resync: Duration) -> (Netns, Reconciler) {
    let ns = node_with_eth0(tag, "10.98.0.1/24");
    add_workload_veth(&ns, "cali9", "pod9");
    ns.must(FIREWALL);
    let config = Config {
        resync_interval: resync,
        ..Config::default()
    };
    let rec = Reconciler::start_in_netns(&ns.name, config).expect("start");
    let status = common::apply(&rec.handle(), state());
    assert!(
        status.last_pass.failures.is_empty(),
        "{:?}",
        status.last_pass.failures
    );
    assert_eq!(accepts(&ns), 2, "initial sync placed the accepts");
    (ns, rec)
}

/// Adds and removes an address on an interface Tabby has no business with,
/// once a second: harmless, but every change is an rtnetlink event that
/// wakes a pass (routine churn on a busy node).
struct Churn {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Churn {
    fn start(ns: &Netns) -> Churn {
        ns.veth("churn0", "churn1");
        let name = ns.name.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut add = true;
            while !stop2.load(Ordering::Relaxed) {
                let op = if add { "add" } else { "del" };
                common::run(
                    "ip",
                    &["-n", &name, "addr", op, "192.0.2.1/32", "dev", "churn0"],
                );
                add = !add;
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        Churn {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn resync_schedule_is_not_postponed_by_netlink_churn() {
    if !is_root() {
        return;
    }
    let resync = Duration::from_secs(4);
    let (ns, rec) = node("starve", resync);
    let handle = rec.handle();
    let churn = Churn::start(&ns);
    // Into the regime where a pass runs every second: a sleep re-armed
    // after each pass would never reach 4 s from here on.
    std::thread::sleep(Duration::from_millis(1500));
    let before = handle.status();
    let since = Instant::now();

    // Not checked in between: the pass the reload's notification wakes
    // starts at once after a quiet spell, and can put the accepts back
    // before `nft list` would show them gone.
    ns.must(RELOAD);
    let took = wait_until(
        "forward accepts back under churn",
        resync + Duration::from_secs(2),
        || accepts(&ns) == 2,
    );
    println!("forward accepts back {took:?} after the reload, under churn");

    // Two whole periods of churn more: the schedule ticked in each.
    let window = resync * 2 + Duration::from_secs(1);
    std::thread::sleep(window.saturating_sub(since.elapsed()));
    let after = handle.status();
    drop(churn);
    let passes = after.passes - before.passes;
    let resyncs = after.scheduled_resyncs - before.scheduled_resyncs;
    println!("{passes} passes and {resyncs} scheduled resyncs in {window:?} of churn");
    assert!(passes >= 6, "the churn woke only {passes} passes");
    assert!(
        resyncs >= 2,
        "{resyncs} scheduled resyncs in {window:?} with resync every {resync:?}"
    );
}

#[test]
fn nftables_changes_are_repaired_from_nftables_notifications() {
    if !is_root() {
        return;
    }
    // A resync far away: only nftables' notifications explain a repair.
    let (ns, rec) = node("nftev", Duration::from_secs(300));
    let handle = rec.handle();
    assert!(handle.status().nft_events, "NFNLGRP_NFTABLES subscribed");
    let within = NFT_CHECK_GAP + Duration::from_secs(2);

    ns.must(RELOAD);
    // The first change after a quiet spell is checked at once.
    let took = wait_until("forward accepts back", Duration::from_secs(1), || {
        accepts(&ns) == 2
    });
    println!("forward accepts back {took:?} after a firewall reload");
    let s = handle.status();
    assert!(s.last_pass.nft_checked);
    assert_eq!(s.scheduled_resyncs, 0, "not the schedule");

    let (ok, out) = ns.exec("nft", &["delete", "table", "ip", "tabby"]);
    assert!(ok, "{out}");
    // Right after that check: this one waits for the rate limit.
    let took = wait_until("table ip tabby back", within, || has_own_table(&ns));
    println!("table ip tabby back {took:?} after its deletion");

    // Tabby's repairs are nftables commits too, announced like anyone
    // else's; they must not wake yet another check, and so on forever.
    std::thread::sleep(Duration::from_millis(500));
    let settled = handle.status().passes;
    std::thread::sleep(NFT_CHECK_GAP * 2 + Duration::from_secs(1));
    assert_eq!(
        handle.status().passes,
        settled,
        "passes kept running after the repair"
    );
    assert_eq!(accepts(&ns), 2);
}

#[test]
fn forwarding_sysctls_come_back_on_their_own() {
    if !is_root() {
        return;
    }
    let ns = node_with_eth0("sysheal", "10.98.0.1/24");
    add_workload_veth(&ns, "cali9", "pod9");
    let read = |k: &str| ns.must(&format!("sysctl -n {k}")).trim().to_string();
    ns.must("sysctl -qw net.ipv4.ip_forward=0");
    let config = Config {
        resync_interval: Duration::from_secs(300),
        ..Config::default()
    };
    let rec = Reconciler::start_in_netns(&ns.name, config).expect("start");
    let mut no_pools = state();
    no_pools.pools.clear();
    let status = common::apply(&rec.handle(), no_pools);
    let said = status.last_pass.applied.join("\n");
    assert!(
        said.contains("sysctl net.ipv4.ip_forward=1 (was 0)"),
        "{said}"
    );

    // The kernel announces a forwarding change (RTM_NEWNETCONF), so the
    // pass it wakes puts it back at once; it also turned every interface's
    // forwarding off, which comes back with it. Once the passes the first
    // one set off are over, so none of them can be what repairs it.
    quiet(&rec);
    ns.must("sysctl -qw net.ipv4.ip_forward=0");
    let took = wait_until("ip_forward back to 1", Duration::from_secs(1), || {
        read("net.ipv4.ip_forward") == "1"
    });
    println!("ip_forward back in {took:?}");
    wait_until("cali9 forwarding back", Duration::from_secs(1), || {
        read("net.ipv4.conf.cali9.forwarding") == "1"
    });

    // route_localnet is announced by nothing: the sysctl timer finds it.
    // Once the passes the repair above set off are over, exactly one pass
    // (the timer's) must run.
    let passes = quiet(&rec);
    ns.must("sysctl -qw net.ipv4.conf.cali9.route_localnet=0");
    let took = wait_until(
        "route_localnet back to 1",
        SYSCTL_CHECK_EVERY + Duration::from_millis(1500),
        || read("net.ipv4.conf.cali9.route_localnet") == "1",
    );
    println!("route_localnet back in {took:?}");
    wait_until("the pass reported", Duration::from_secs(1), || {
        rec.handle().status().passes > passes
    });
    let s = rec.handle().status();
    assert_eq!(s.passes, passes + 1, "only the sysctl timer's pass");
    assert_eq!(s.scheduled_resyncs, 0);
    let said = s.last_pass.applied.join("\n");
    assert_eq!(
        said, "sysctl net.ipv4.conf.cali9.route_localnet=1 (was 0)",
        "the pass applied what drifted"
    );
}
