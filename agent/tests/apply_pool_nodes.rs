//! `tabbyctl apply/create/replace` refuse an IPPool that contains a node's
//! own address (seed 002: pods handed the hosts' addresses), naming the
//! field, the node and its address, and write nothing — against the real
//! SQLite datastore, as a user runs tabbyctl.

mod common;

use common::Ctl;

const NODES: &str = "\
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: worker-1}
spec:
  bgp: {ipv4Address: 10.20.1.11/24}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: worker-2}
spec:
  bgp: {ipv4Address: 10.20.2.12/24, ipv6Address: 'fd00:20::12/64'}
";

fn pool(name: &str, cidr: &str, extra: &str) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: {name}}}\nspec: {{cidr: '{cidr}'{extra}}}\n"
    )
}

fn apply(ctl: &Ctl, verb: &str, yaml: &str) -> (bool, String) {
    let o = ctl.run_stdin(&[verb, "-f", "-"], yaml);
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn pools_over_node_addresses_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Ctl::sqlite(&dir.path().join("tabby.db"));
    let (ok, out) = apply(&ctl, "apply", NODES);
    assert!(ok, "{out}");
    let before = ctl.ok(&["get", "ippools", "-o", "yaml"]);

    // A pool over both node subnets, in one file with a good pool: the
    // whole file is refused, and the error names each node and address.
    let yaml = format!(
        "{}---\n{}",
        pool("good", "10.30.0.0/16", ""),
        pool("wide", "10.20.0.0/16", "")
    );
    for verb in ["apply", "create"] {
        let (ok, out) = apply(&ctl, verb, &yaml);
        assert!(!ok, "{verb} accepted a pool over the nodes:\n{out}");
        let line = out
            .lines()
            .find(|l| l.contains("(IPPool \"wide\")"))
            .unwrap_or_else(|| panic!("no error line for the pool:\n{out}"));
        assert!(line.contains("spec.cidr: 10.20.0.0/16 contains"), "{line}");
        assert!(
            line.contains(
                "Node \"worker-1\"'s address 10.20.1.11 (spec.bgp.ipv4Address 10.20.1.11/24)"
            ),
            "{line}"
        );
        assert!(
            line.contains("Node \"worker-2\"'s address 10.20.2.12"),
            "{line}"
        );
        assert!(out.contains("Nothing was applied."), "{out}");
        assert!(
            !out.contains("(IPPool \"good\")"),
            "the good pool is fine:\n{out}"
        );
    }
    // IPv6 node addresses count too, and a /32-sized pool is refused.
    let (ok, out) = apply(&ctl, "apply", &pool("v6", "fd00:20::/48", ""));
    assert!(
        !ok && out.contains("worker-2\"'s address fd00:20::12"),
        "{out}"
    );
    let (ok, out) = apply(&ctl, "apply", &pool("one", "10.20.1.0/26", ""));
    assert!(!ok && out.contains("worker-1"), "{out}");
    assert!(!out.contains("worker-2"), "{out}");
    assert_eq!(ctl.ok(&["get", "ippools", "-o", "yaml"]), before);

    // A pool next to the nodes (same /16, no node address in it) is fine.
    let (ok, out) = apply(&ctl, "apply", &pool("beside", "10.20.128.0/17", ""));
    assert!(ok, "{out}");

    // Replace is checked too: a stored pool may not be re-applied enabled
    // over a node that got its address later...
    let (ok, out) = apply(
        &ctl,
        "apply",
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: worker-3}\nspec:\n  bgp: {ipv4Address: 10.20.200.13/24}\n",
    );
    assert!(ok, "{out}");
    let (ok, out) = apply(&ctl, "replace", &pool("beside", "10.20.128.0/17", ""));
    assert!(!ok && out.contains("worker-3"), "{out}");
    // ...but it may be disabled, the first step out of such a pool.
    let (ok, out) = apply(
        &ctl,
        "replace",
        &pool("beside", "10.20.128.0/17", ", disabled: true"),
    );
    assert!(ok, "{out}");
    let got = ctl.ok(&["get", "ippool", "beside", "-o", "yaml"]);
    assert!(got.contains("disabled: true"), "{got}");
    // A new pool, disabled or not, is refused.
    let (ok, out) = apply(
        &ctl,
        "create",
        &pool("later", "10.20.200.0/24", ", disabled: true"),
    );
    assert!(!ok && out.contains("worker-3"), "{out}");
}
