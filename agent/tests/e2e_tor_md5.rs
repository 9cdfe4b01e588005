//! End to end, session protection between tabby-node and a real BIRD 2
//! ToR (issue 17). TCP-MD5: a key file that is missing leaves the peer out
//! and `node status` says which secret; then
//! the BGPPeer's `password.secretKeyRef` is resolved Tabby's way (the file
//! `$TABBY_BGP_SECRETS_DIR/<name>/<key>`, which the lab sets to
//! `<lab dir>/bgp-secrets`) and BIRD has `password`: the session comes up.
//! Pointed at a key with another password it never does, and `node status`
//! says the kernel drops the peer's segments for their signature. GTSM
//! (`ttlSecurity`): with it on our side only, BIRD's low-TTL segments are
//! dropped and the session stays down; with BIRD's `ttl security on` too it
//! comes up (so we send with TTL 255). Root only.

mod e2e_common;
mod tor_common;

use e2e_common::{serial, wait_until, Lab};
use std::time::Duration;
use tor_common::*;

const GOOD: &str = "s3cr3t-rack1";

fn peer_yaml(tor: &str, key: &str) -> String {
    base_peer(tor)
        + &format!(
            "  password:
    secretKeyRef:
      name: tor-md5
      key: {key}
"
        )
}

fn base_peer(tor: &str) -> String {
    format!(
        "apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: rack-r1-tor
spec:
  nodeSelector: rack == 'r1'
  peerIP: {tor}
  asNumber: 64513
  numAllowedLocalASNumbers: 1
"
    )
}

/// Adds `line` to BIRD's protocol for node-1 and reconfigures BIRD.
fn bird_node1(lab: &Lab, line: &str) {
    let conf_path = format!("/var/run/tabby-lab/{}/bird.conf", lab.name);
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    let conf = conf.replacen(
        "protocol bgp node1 {\n",
        &format!("protocol bgp node1 {{\n  {line}\n"),
        1,
    );
    std::fs::write(&conf_path, conf).unwrap();
    let out = birdc(lab, &["configure"]);
    assert!(out.contains("Reconfigur"), "birdc configure: {out}");
}

fn apply(lab: &Lab, yaml: &str) {
    let f = format!("/var/run/tabby-lab/{}/md5-peer.yaml", lab.name);
    std::fs::write(&f, yaml).unwrap();
    let (ok, out) = lab.tabbyctl(&["apply", "-f", &f]);
    assert!(ok, "apply: {out}");
}

/// node-1's ToR row in `node status`.
fn tor_row(lab: &Lab, node: &str, tor: &str) -> String {
    let (_, status) = lab.node_status(node);
    status
        .lines()
        .find(|l| l.starts_with(&format!("| {tor} ")))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn md5_with_bird_comes_up_with_the_right_key_and_never_with_a_wrong_one() {
    let _g = serial();
    let lab = two_racks("tormd5", &[]);
    wait_tor_routes(&lab, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let node = &lab.node_names()[0];
    let tor = tor_of(&lab, node);
    // A key that is not there: no session (it could never come up), and
    // node status names the peer, the secret and the file.
    apply(&lab, &peer_yaml(&tor, "absent"));
    let mut status = String::new();
    let named = wait_until(Duration::from_secs(10), || {
        status = lab.node_status(node).1;
        status.contains(
            "BGP session not configured: BGPPeer rack-r1-tor: password secret tor-md5 key absent: cannot read",
        ) && !status.contains(&format!("| {tor} "))
    });
    assert!(named, "{node}: missing secret not reported:\n{status}");
    let dir = format!("/var/run/tabby-lab/{}", lab.name);
    std::fs::create_dir_all(format!("{dir}/bgp-secrets/tor-md5")).unwrap();
    // As a mounted Secret created with `echo` holds it: a trailing newline.
    std::fs::write(
        format!("{dir}/bgp-secrets/tor-md5/rack1"),
        format!("{GOOD}\n"),
    )
    .unwrap();
    std::fs::write(format!("{dir}/bgp-secrets/tor-md5/other"), "not-the-key").unwrap();

    // BIRD's side: node-1's protocol gets the password.
    bird_node1(&lab, &format!("password \"{GOOD}\";"));

    apply(&lab, &peer_yaml(&tor, "rack1"));
    let up = wait_until(Duration::from_secs(20), || {
        tor_row(&lab, node, &tor).contains("Established")
            && birdc(&lab, &["show", "protocols", "node1"]).contains("Established")
    });
    assert!(
        up,
        "{node}: not Established with the right key: {}\nBIRD: {}\n{}",
        tor_row(&lab, node, &tor),
        birdc(&lab, &["show", "protocols", "all", "node1"]),
        lab.logs()
    );
    wait_tor_routes(&lab, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));

    // The wrong key: the session resets and never comes back; the kernel's
    // drops of BIRD's signed SYNs are named.
    apply(&lab, &peer_yaml(&tor, "other"));
    let mut seen_mismatch = false;
    let mut rows = Vec::new();
    let came_up = wait_until(Duration::from_secs(10), || {
        let r = tor_row(&lab, node, &tor);
        seen_mismatch |= r.contains("TCP-MD5 signature mismatch");
        rows.push(r.clone());
        // Established right after the apply is the old session going.
        rows.len() > 8 && r.contains("Established")
    });
    assert!(!came_up, "Established with a wrong key: {rows:?}");
    assert!(
        seen_mismatch,
        "node status never named the MD5 mismatch: {:?}",
        rows.last()
    );
}

#[test]
fn gtsm_drops_low_ttl_segments_and_comes_up_when_both_sides_use_it() {
    let _g = serial();
    let lab = two_racks("torttl", &[]);
    wait_tor_routes(&lab, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let node = &lab.node_names()[0];
    let tor = tor_of(&lab, node);
    // Ours only: BIRD sends its eBGP segments with a low TTL, which our
    // kernel now drops, so the reset session stays down.
    apply(&lab, &(base_peer(&tor) + "  ttlSecurity: 1\n"));
    let mut rows = Vec::new();
    let came_up = wait_until(Duration::from_secs(6), || {
        let r = tor_row(&lab, node, &tor);
        rows.push(r.clone());
        rows.len() > 6 && r.contains("Established")
    });
    assert!(
        !came_up,
        "Established although BIRD does not use GTSM: {rows:?}"
    );
    // BIRD too: it now sends 255 and demands 255 from us.
    bird_node1(&lab, "ttl security on;");
    let up = wait_until(Duration::from_secs(20), || {
        tor_row(&lab, node, &tor).contains("Established")
            && birdc(&lab, &["show", "protocols", "node1"]).contains("Established")
    });
    assert!(
        up,
        "not Established with GTSM on both sides: {}\nBIRD: {}\n{}",
        tor_row(&lab, node, &tor),
        birdc(&lab, &["show", "protocols", "all", "node1"]),
        lab.logs()
    );
    wait_tor_routes(&lab, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
}
