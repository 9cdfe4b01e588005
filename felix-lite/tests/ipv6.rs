//! The IPv6 dataplane on real kernels (root): two "nodes" joined by a veth
//! with ULA addresses; node A's reconciler programs a native IPv6 block
//! route, a blackhole for its own block, a pod's /128 with the link-local
//! gateway on the host end, the IPv6 sysctls and NAT66, refuses an
//! unusable next hop by name, leaves a foreign route alone, and puts a
//! deleted route back.

mod common;

use common::{is_root, wait_until, Netns};
use std::net::Ipv6Addr;
use std::time::Duration;
use tabby_felix_lite::model::{
    BlockRoute, BlockRoute6, DesiredState, Path, Path6, Pool, Pool6, Workload6,
};
use tabby_felix_lite::podlink::{self, PodLinkSpec};
use tabby_felix_lite::reconcile::{Config, Reconciler};
use tabby_felix_lite::{netns, podlink6};

const A_IP: &str = "fd00:97::1";
const B_IP: &str = "fd00:97::2";
const A_BLOCK: &str = "fd00:246:10::/122";
const B_BLOCK: &str = "fd00:246:20::/122";
const B_HOST: &str = "fd00:246:20::5";
const POD_IP: &str = "fd00:246:10::5";
const FOREIGN_BLOCK: &str = "fd00:246:30::/122";
const OFF_SUBNET: &str = "fd00:99::1";

const FIREWALL: &str = "nft -f - <<'EOF'
table inet filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
  }
}
EOF";

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn block(cidr: &str, path: Path6, node: &str) -> BlockRoute6 {
    BlockRoute6 {
        cidr: cidr.parse().unwrap(),
        path,
        node: node.into(),
    }
}

fn state() -> DesiredState {
    DesiredState {
        node_interface: "eth0".into(),
        routes6: vec![
            block(A_BLOCK, Path6::Blackhole, "a"),
            block(B_BLOCK, Path6::Native { gateway: ip6(B_IP) }, "b"),
            block(
                "fd00:246:40::/122",
                Path6::Native {
                    gateway: ip6(OFF_SUBNET),
                },
                "c",
            ),
            block(FOREIGN_BLOCK, Path6::Native { gateway: ip6(B_IP) }, "d"),
        ],
        workloads6: vec![Workload6 {
            ip: ip6(POD_IP),
            host_interface: "cali1".into(),
            workload_id: "default/pod6".into(),
        }],
        pools6: vec![Pool6 {
            cidr: "fd00:246::/32".parse().unwrap(),
            nat_outgoing: true,
        }],
        // Dual stack: the IPv4 and IPv6 forward accepts share the
        // firewall's inet chain and must not push each other around.
        routes: vec![BlockRoute {
            cidr: "10.246.10.0/26".parse().unwrap(),
            path: Path::Blackhole,
            node: "a".into(),
        }],
        pools: vec![Pool {
            cidr: "10.246.0.0/16".parse().unwrap(),
            nat_outgoing: true,
        }],
        ..DesiredState::default()
    }
}

fn route6(ns: &Netns, dst: &str) -> Option<serde_json::Value> {
    ns.ip_json(&["-6", "route", "show", "table", "main"])
        .as_array()
        .and_then(|a| a.iter().find(|r| r["dst"] == dst).cloned())
}

/// Node A (reconciler) and B (a static neighbour holding `B_HOST`), plus a
/// pod on A wired Calico style: host end `cali1` with MAC ee:ee:ee:ee:ee:ee,
/// pod default route via fe80::ecee:eeff:feee:eeee.
fn topology() -> (Netns, Netns, Netns) {
    let a = Netns::new("v6a");
    let b = Netns::new("v6b");
    a.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &b.name,
    ]);
    a.ip(&["addr", "add", &format!("{A_IP}/64"), "dev", "eth0", "nodad"]);
    b.ip(&["addr", "add", &format!("{B_IP}/64"), "dev", "eth0", "nodad"]);
    a.ip(&["link", "set", "eth0", "up"]);
    b.ip(&["link", "set", "eth0", "up"]);
    b.ip(&["addr", "add", &format!("{B_HOST}/128"), "dev", "lo"]);
    b.ip(&["-6", "route", "add", A_BLOCK, "via", A_IP]);
    // The pod as the CNI plugin builds it: podlink's veth (host end MAC
    // ee:ee:ee:ee:ee:ee), then its IPv6 address and default route.
    let pod = Netns::new("v6pod");
    let spec = PodLinkSpec {
        host_ifname: "cali1".into(),
        pod_ifname: "eth0".into(),
        netns: netns::path(&pod.name),
        ip: Some("10.246.10.5".parse().unwrap()),
        mtu: 1500,
    };
    netns::run_in(&a.name, move || podlink::setup(&spec))
        .unwrap()
        .expect("pod veth");
    podlink6::add_ipv6(&netns::path(&pod.name), "eth0", ip6(POD_IP)).expect("pod IPv6");
    let routes = pod.must("ip -6 route show default");
    assert!(
        routes.contains("default via fe80::ecee:eeff:feee:eeee dev eth0"),
        "{routes}"
    );
    // Someone else's route on a destination Tabby wants.
    a.ip(&[
        "-6",
        "route",
        "add",
        FOREIGN_BLOCK,
        "via",
        B_IP,
        "dev",
        "eth0",
        "proto",
        "static",
    ]);
    a.must(FIREWALL);
    (a, b, pod)
}

#[test]
fn native_ipv6_routes_pod_gateway_nat66_and_refusals() {
    if !is_root() {
        return;
    }
    let (a, _b, pod) = topology();
    let rec = Reconciler::start_in_netns(&a.name, Config::default()).expect("start");
    let status = common::apply(&rec.handle(), state());
    let failures: Vec<String> = status
        .last_pass
        .failures
        .iter()
        .map(|f| f.to_string())
        .collect();

    // Native route via B, blackhole for the own block, the pod's /128.
    let r = route6(&a, B_BLOCK).expect("native IPv6 block route");
    assert_eq!(r["gateway"], B_IP, "{r}");
    assert_eq!(r["dev"], "eth0", "{r}");
    assert_eq!(r["protocol"], "81", "{r}");
    let r = route6(&a, A_BLOCK).expect("blackhole for the own block");
    assert_eq!(r["type"], "blackhole", "{r}");
    let r = route6(&a, POD_IP).expect("workload /128");
    assert_eq!(r["dev"], "cali1", "{r}");

    // The unusable next hop is refused by name; nothing is programmed.
    let refused = failures
        .iter()
        .find(|f| f.contains("fd00:246:40::/122"))
        .unwrap_or_else(|| panic!("no refusal in {failures:#?}"));
    assert!(
        refused.contains(&format!("next hop {OFF_SUBNET} is on no connected subnet")),
        "{refused}"
    );
    assert!(route6(&a, "fd00:246:40::/122").is_none());

    // The foreign route is left alone and reported.
    let r = route6(&a, FOREIGN_BLOCK).expect("foreign route still there");
    assert_eq!(r["protocol"], "static", "{r}");
    assert!(
        failures
            .iter()
            .any(|f| f.contains(FOREIGN_BLOCK) && f.contains("protocol 4")),
        "{failures:#?}"
    );
    assert_eq!(failures.len(), 2, "{failures:#?}");

    // Sysctls, as Felix and Calico's CNI plugin set them.
    let sysctl = |k: &str| a.must(&format!("sysctl -n {k}")).trim().to_string();
    assert_eq!(sysctl("net.ipv6.conf.all.forwarding"), "1");
    assert_eq!(sysctl("net.ipv6.conf.cali1.proxy_ndp"), "1");
    assert_eq!(sysctl("net.ipv6.conf.cali1.forwarding"), "1");
    assert_eq!(sysctl("net.ipv6.conf.cali1.accept_ra"), "0");
    let addrs = a.must("ip -6 addr show dev cali1");
    assert!(addrs.contains("fe80::ecee:eeff:feee:eeee/64"), "{addrs}");

    // NAT66 for the natOutgoing pool; IPv6 accepts next to the IPv4 ones.
    let ruleset = a.must("nft list ruleset");
    assert!(ruleset.contains("table ip6 tabby"), "{ruleset}");
    assert!(
        ruleset.contains("ip6 saddr @masq-pools ip6 daddr != @all-pools masquerade"),
        "{ruleset}"
    );
    let chain = a.must("nft list chain inet filter forward");
    assert!(chain.contains("ip6 saddr fd00:246::/32 accept"), "{chain}");
    assert!(chain.contains("ip6 daddr fd00:246::/32 accept"), "{chain}");
    assert_eq!(
        chain.matches("comment \"tabby:forward\"").count(),
        2,
        "{chain}"
    );
    assert_eq!(
        chain.matches("comment \"tabby:forward6\"").count(),
        2,
        "{chain}"
    );

    // The pod reaches B through A (forwarding, the firewall's chain
    // accepting pool traffic, the link-local gateway).
    let mut last = String::new();
    let ok = (0..10).any(|_| {
        let (ok, out) = pod.exec("ping", &["-6", "-c", "2", "-i", "0.2", "-W", "1", B_HOST]);
        last = out;
        ok
    });
    assert!(ok, "pod could not ping {B_HOST}: {last}");

    // A full resync finds nothing to write: in particular the two
    // families' nftables rules do not fight.
    let before = rec.handle().status().passes;
    rec.handle().resync();
    wait_until("the resync pass", Duration::from_secs(3), || {
        let s = rec.handle().status();
        s.passes > before && s.last_pass.nft_checked
    });
    let s = rec.handle().status();
    // Nothing at all to write: IPv6 routes read back as written (metric
    // 1024, no scope), sysctls and the gateway settled, nftables in place.
    assert!(s.last_pass.applied.is_empty(), "{:?}", s.last_pass.applied);

    // A deleted IPv6 route comes back from the route notification.
    a.ip(&["-6", "route", "del", B_BLOCK]);
    let took = wait_until("IPv6 route back", Duration::from_secs(3), || {
        route6(&a, B_BLOCK).is_some()
    });
    println!("IPv6 route repaired in {took:?}");
    // And an IPv6 forwarding sysctl from its netconf notification.
    a.must("sysctl -qw net.ipv6.conf.all.forwarding=0");
    wait_until("IPv6 forwarding back", Duration::from_secs(3), || {
        sysctl("net.ipv6.conf.all.forwarding") == "1"
    });

    // Dropping IPv6 from the state removes what Tabby wrote, and only that.
    common::apply(&rec.handle(), DesiredState::default());
    assert!(route6(&a, B_BLOCK).is_none());
    assert!(route6(&a, FOREIGN_BLOCK).is_some());
    assert!(!a.exec("nft", &["list", "table", "ip6", "tabby"]).0);
    let chain = a.must("nft list chain inet filter forward");
    assert!(!chain.contains("tabby:forward"), "{chain}");
}
