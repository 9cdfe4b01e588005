//! `tabbyctl apply/get/delete` as a user runs them: Calico's documented
//! examples apply unchanged and round-trip through `get -o yaml`; invalid
//! input gives one error line per problem naming the field, and leaves the
//! datastore exactly as it was. Runs against the embedded store and a real
//! etcd.

mod common;

use common::Ctl;
use std::path::{Path, PathBuf};
use tabby_agent::resources::{parse_documents, Resource};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/calico-docs");

impl Ctl {
    /// Everything stored, as YAML, to compare before/after.
    fn snapshot(&self) -> String {
        ["ippools", "bgppeers", "bgpconfigurations", "nodes"]
            .iter()
            .map(|k| self.ok(&["get", k, "-o", "yaml"]))
            .collect()
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

fn docs_round_trip(ctl: &Ctl) {
    for f in ["ippools.yaml", "bgp.yaml", "nodes.yaml", "crd-v1.yaml"] {
        let path = fixture(f);
        let out = ctl.ok(&["apply", "-f", path.to_str().unwrap()]);
        assert!(out.starts_with("Successfully applied"), "{out}");
        let original = std::fs::read_to_string(&path).unwrap();
        let docs = parse_documents(f, &original).unwrap();
        for d in docs {
            let r = &d.resource;
            let kind = r.kind().plural();
            let yaml = ctl.ok(&["get", kind, r.name(), "-o", "yaml"]);
            let got = parse_documents("get", &yaml).unwrap().remove(0).resource;
            // Every field the user wrote comes back with the same value
            // (defaults may be added, as calicoctl adds them).
            let want = r.to_json_value()["spec"].clone();
            let have = got.to_json_value()["spec"].clone();
            for (k, v) in want.as_object().unwrap() {
                assert_eq!(&have[k], v, "{f}: {} {} spec.{k}", r.kind(), r.name());
            }
            assert_eq!(got.metadata().labels, r.metadata().labels);
            // And re-applying what get printed changes nothing but the revision.
            let tmp = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(tmp.path(), &yaml).unwrap();
            ctl.ok(&["apply", "-f", tmp.path().to_str().unwrap()]);
            let again = ctl.ok(&["get", kind, r.name(), "-o", "yaml"]);
            let again = parse_documents("get", &again).unwrap().remove(0).resource;
            assert_eq!(strip_rev(&again), strip_rev(&got));
        }
    }
    let wide = ctl.ok(&["get", "ippools", "-o", "wide"]);
    let header = wide.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("VXLANMODE"),
        "{wide}"
    );
    assert!(
        wide.contains("vxlan-pool") && wide.contains("Always"),
        "{wide}"
    );
    // A whole list printed by get applies back too.
    let list = ctl.ok(&["get", "ippools", "-o", "yaml"]);
    assert!(list.contains("kind: IPPoolList"), "{list}");
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &list).unwrap();
    ctl.ok(&["apply", "-f", tmp.path().to_str().unwrap()]);
}

fn strip_rev(r: &Resource) -> Resource {
    let mut c = r.clone();
    c.metadata_mut().resource_version = None;
    c
}

/// Each bad input: (yaml, text the single error line must contain).
const BAD: &[(&str, &str)] = &[
    (
        "kind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.50.0.0/16, blockSize: 19}",
        "(IPPool \"a\"): spec.blockSize: 19 is outside 20..32",
    ),
    (
        "kind: IPPool\nmetadata: {name: a}\nspec: {cidr: 'fd00::/48', blockSize: 64}",
        "spec.blockSize: 64 is outside 116..128",
    ),
    (
        "kind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.50.0.0/28, blockSize: 26}",
        "spec.blockSize: /26 blocks are larger than the pool",
    ),
    (
        "kind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.500.0.0/16}",
        "spec.cidr: \"10.500.0.0/16\" is not a CIDR",
    ),
    (
        "kind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.50.0.0/16, vxlanMode: sometimes}",
        "spec.vxlanMode: unknown variant `sometimes`",
    ),
    (
        "kind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.50.0.0/16, ipipMode: Maybe}",
        "spec.ipipMode: unknown variant `Maybe`",
    ),
    (
        "kind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.1.128.0/17}",
        "spec.cidr: 10.1.128.0/17 overlaps IPPool \"my.ippool-1\"",
    ),
    (
        "kind: BGPConfiguration\nmetadata: {name: default}\nspec: {asNumber: 4294967296}",
        "spec.asNumber: AS number 4294967296 is out of range",
    ),
    (
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 10.0.0.300, asNumber: 64512}",
        "spec.peerIP: \"10.0.0.300\" is not an IP address",
    ),
    (
        "kind: FelixConfigurationz\nmetadata: {name: default}\nspec: {}",
        "kind: unknown kind \"FelixConfigurationz\"",
    ),
    (
        "kind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.50.0.0/16, blockSze: 26}",
        "spec.blockSze: unknown field `blockSze`, expected one of `cidr`, `blockSize`",
    ),
    (
        "kind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.50.0.0/16, nodeSelector: \"rack = 'a'\"}",
        "spec.nodeSelector: invalid selector \"rack = 'a'\" at character 5",
    ),
    (
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 10.0.0.1, asNumber: 1, failureDetectionMode: BFDAlways}",
        "spec.failureDetectionMode: \"BFDAlways\" is not one of None, BFDIfDirectlyConnected",
    ),
    (
        "kind: BGPConfiguration\nmetadata: {name: default}\nspec: {bfdMultiplier: 0}",
        "spec.bfdMultiplier: 0 is outside 1..255",
    ),
    (
        "kind: BGPPeer\nmetadata: {name: p}\nspec: {peerSelector: \"has(rr\"}",
        "spec.peerSelector: invalid selector \"has(rr\" at character 6: expected ')' after has(key",
    ),
];

fn bad_inputs_are_rejected_whole(ctl: &Ctl) {
    let before = ctl.snapshot();
    for (i, (doc, want)) in BAD.iter().enumerate() {
        // A good document first: it must not be applied either.
        let file = format!(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: good-{i}}}\nspec: {{cidr: 10.77.0.0/16}}\n---\napiVersion: projectcalico.org/v3\n{doc}\n"
        );
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), &file).unwrap();
        let path = tmp.path().to_str().unwrap();
        let o = ctl.run(&["apply", "-f", path]);
        assert!(!o.status.success(), "case {i} was accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| l.contains("document")).collect();
        assert_eq!(lines.len(), 1, "case {i}: one error line expected:\n{err}");
        assert!(
            lines[0].contains(&format!("{path}: document 2")),
            "case {i}: {err}"
        );
        assert!(
            lines[0].contains(want),
            "case {i}: want {want:?} in:\n{err}"
        );
        assert!(err.contains("Nothing was applied."), "{err}");
    }
    assert_eq!(ctl.snapshot(), before, "the datastore changed");
}

#[test]
fn sqlite_docs_examples_round_trip_and_bad_input_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Ctl::sqlite(&dir.path().join("tabby.db"));
    docs_round_trip(&ctl);
    bad_inputs_are_rejected_whole(&ctl);
    let out = ctl.ok(&["delete", "-f", fixture("bgp.yaml").to_str().unwrap()]);
    assert_eq!(out.trim(), "Successfully deleted 4 resource(s)");
    assert!(!ctl.ok(&["get", "bgppeers"]).contains("rack1-tor"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_docs_examples_round_trip_and_bad_input_changes_nothing() {
    let etcd = common::Etcd::start().await;
    let ctl = Ctl::etcd(&etcd.endpoint);
    tokio::task::spawn_blocking(move || {
        docs_round_trip(&ctl);
        bad_inputs_are_rejected_whole(&ctl);
    })
    .await
    .unwrap();
}

/// A file with several broken documents reports every problem in one run,
/// parse errors and validation errors alike, in document order.
#[test]
fn every_problem_in_a_file_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Ctl::sqlite(&dir.path().join("tabby.db"));
    let text: String = BAD[..3]
        .iter()
        .chain(&BAD[4..6])
        .enumerate()
        .map(|(i, (doc, _))| {
            format!(
                "apiVersion: projectcalico.org/v3\n{}\n---\n",
                doc.replace("{name: a}", &format!("{{name: a{i}}}"))
            )
        })
        .collect();
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &text).unwrap();
    let o = ctl.run(&["apply", "-f", tmp.path().to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let docs: Vec<&str> = err
        .lines()
        .filter_map(|l| l.split(": document ").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    assert_eq!(docs, ["1", "2", "3", "4", "5"], "{err}");
    assert!(
        ctl.ok(&["get", "ippools"]).lines().count() == 1,
        "only the header"
    );
}
