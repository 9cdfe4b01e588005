use super::diagnose::*;
use crate::doctor::Severity;
use tabby_felix_lite::firewall::PortBlock;
use tabby_proto::bgp::{ErrorKind, SessionState};

fn session() -> Session {
    Session {
        address: "172.31.1.11".into(),
        port: 179,
        node: Some("node-1".into()),
        peer_type: MESH.into(),
        state: SessionState::Active,
        last_error: String::new(),
        error_kind: ErrorKind::Unspecified,
        error_state: SessionState::Unspecified,
        notification: None,
        peer_open_as: None,
        local_as: 64512,
        remote_as: 64512,
        remote_as_source: AsSource::Default,
        local_as_source: (64512, AsSource::Default),
        we_connect: true,
        probe: Some(Probe::Open),
        syn_sent: false,
        local_blocks: Vec::new(),
        password: None,
        fallback_blocks: 0,
        node_addresses: vec!["172.31.1.11".into(), "172.31.1.12".into()],
    }
}

fn drop_rule(hook: &str) -> PortBlock {
    PortBlock {
        family: "inet".into(),
        table: "fw".into(),
        chain: hook.into(),
        hook: hook.into(),
        handle: Some(3),
        verdict: "drop".into(),
        text: "tcp dport 179 drop".into(),
    }
}

#[test]
fn a_local_drop_rule_is_named_with_the_command_that_deletes_it() {
    let mut s = session();
    s.we_connect = false;
    s.local_blocks = vec![drop_rule("input")];
    s.error_kind = ErrorKind::NotificationSent;
    s.notification = Some((4, 0));
    s.fallback_blocks = 2;
    let f = diagnose(&s);
    assert_eq!(f.severity, Severity::Error);
    assert!(
        f.what.contains("this node's firewall drops TCP 179"),
        "{}",
        f.what
    );
    assert_eq!(f.fix, "nft delete rule inet fw input handle 3");
    assert!(f
        .evidence
        .contains("nft: inet fw input handle 3: tcp dport 179 drop"));
    assert!(
        f.evidence
            .contains("VXLAN fallback carries 2 blocks of node-1 meanwhile"),
        "{}",
        f.evidence
    );
}

#[test]
fn an_input_rule_does_not_matter_when_this_node_connects_on_the_mesh() {
    let mut s = session();
    s.local_blocks = vec![drop_rule("input")];
    s.probe = Some(Probe::TimedOut(2));
    let f = diagnose(&s);
    assert!(f.what.contains("filtered"), "{}", f.what);
    assert!(
        f.fix.starts_with("on node-1: run tabbyctl node doctor"),
        "{}",
        f.fix
    );
    assert!(f.fix.contains("tcp dport 179 accept"));
    // An output rule does.
    s.local_blocks = vec![drop_rule("output")];
    assert!(diagnose(&s).what.contains("this node's firewall"));
}

#[test]
fn a_policy_drop_gets_an_allow_rule_for_the_node_addresses() {
    let mut s = session();
    s.we_connect = false;
    let mut b = drop_rule("input");
    b.handle = None;
    b.text = "policy drop".into();
    s.local_blocks = vec![b];
    let f = diagnose(&s);
    assert_eq!(
        f.fix,
        "nft insert rule inet fw input ip saddr { 172.31.1.11, 172.31.1.12 } tcp dport 179 accept"
    );
}

#[test]
fn refused_and_filtered_come_from_the_probe_else_from_the_speaker() {
    let mut s = session();
    s.probe = Some(Probe::Refused);
    let f = diagnose(&s);
    assert!(f.what.contains("node-1 refuses TCP 179"), "{}", f.what);
    assert!(f
        .evidence
        .contains("TCP connect to 172.31.1.11:179 refused"));
    s.probe = None;
    s.error_kind = ErrorKind::TcpTimedOut;
    assert!(diagnose(&s).what.contains("does not answer"));
    s.error_kind = ErrorKind::TcpRefused;
    assert!(diagnose(&s).what.contains("refuses"));
}

#[test]
fn bad_peer_as_sent_names_both_ases_and_the_resource() {
    let mut s = session();
    s.error_kind = ErrorKind::NotificationSent;
    s.notification = Some((2, 2));
    s.remote_as = 65001;
    s.peer_open_as = Some(64512);
    s.remote_as_source = AsSource::Node("node-1".into());
    let f = diagnose(&s);
    assert!(
        f.what
            .contains("announces AS 64512 but this node expects AS 65001")
            && f.what.contains("Node node-1's spec.bgp.asNumber"),
        "{}",
        f.what
    );
    assert_eq!(
        f.fix,
        "tabbyctl get node node-1 -o yaml | sed 's/asNumber: 65001$/asNumber: 64512/' | tabbyctl apply -f -"
    );
}

#[test]
fn bad_peer_as_received_blames_this_node_when_it_runs_a_stale_as() {
    let mut s = session();
    s.error_kind = ErrorKind::NotificationReceived;
    s.notification = Some((2, 2));
    s.local_as_source = (65001, AsSource::Node("node-2".into()));
    let f = diagnose(&s);
    assert!(
        f.what.contains("this node announces AS 64512"),
        "{}",
        f.what
    );
    assert!(f.what.contains("the datastore says AS 65001"), "{}", f.what);
    assert!(f.fix.contains("sed 's/asNumber: 65001$/asNumber: 64512/'"));
    // The peer may close before its NOTIFICATION is read.
    s.notification = None;
    s.error_kind = ErrorKind::TcpClosed;
    s.error_state = SessionState::OpenSent;
    let f = diagnose(&s);
    assert!(
        f.what
            .contains("closed the connection after this node's OPEN"),
        "{}",
        f.what
    );
    assert!(f.fix.contains("sed 's/asNumber: 65001$/asNumber: 64512/'"));
    s.notification = Some((2, 2));
    s.error_kind = ErrorKind::NotificationReceived;
    // Consistent here: the other side must say what it expects.
    s.local_as_source = (64512, AsSource::Default);
    assert!(diagnose(&s).fix.contains("tabbyctl node doctor on node-1"));
}

#[test]
fn hold_timer_expiry_says_which_side_went_silent() {
    let mut s = session();
    s.notification = Some((4, 0));
    s.error_kind = ErrorKind::NotificationReceived;
    let f = diagnose(&s);
    assert!(f.what.contains("hold timer expiry"), "{}", f.what);
    assert!(f.what.contains("node-1 heard nothing from this node"));
}

#[test]
fn md5_is_suspected_only_with_a_password_and_tcp_open() {
    let mut s = session();
    s.state = SessionState::Connect;
    assert!(!diagnose(&s).what.contains("TCP-MD5"));
    s.password = Some("BGPPeer tor password, secret bgp key pw".into());
    let f = diagnose(&s);
    assert!(f.what.contains("passwords likely differ"), "{}", f.what);
    assert!(f.fix.contains("BGPPeer password secret on both sides"));
    s.probe = Some(Probe::TimedOut(2));
    assert!(diagnose(&s)
        .what
        .contains("TCP-MD5 password only one side has"));
}

#[test]
fn an_unanswered_syn_of_the_speaker_is_filtered_without_a_probe() {
    let mut s = session();
    s.probe = None;
    s.syn_sent = true;
    assert!(!s.needs_probe());
    let f = diagnose(&s);
    assert!(f.what.contains("does not answer"), "{}", f.what);
    assert!(f.evidence.contains("SYN-SENT"), "{}", f.evidence);
}

#[test]
fn probes_are_sent_only_where_they_tell_more_and_disturb_nothing() {
    let mut s = session();
    s.probe = None;
    s.error_kind = ErrorKind::NotificationReceived;
    s.notification = Some((4, 0));
    assert!(s.needs_probe(), "a hold timer expiry: is TCP through now?");
    s.notification = Some((2, 2));
    assert!(!s.needs_probe(), "an OPEN was exchanged: TCP works");
    s.notification = None;
    s.error_kind = ErrorKind::TcpClosed;
    s.error_state = SessionState::OpenSent;
    assert!(!s.needs_probe());
    s.error_kind = ErrorKind::TcpRefused;
    assert!(!s.needs_probe());
    s.error_kind = ErrorKind::Unspecified;
    assert!(s.needs_probe());
    s.we_connect = false;
    assert!(!s.needs_probe(), "the peer connects to this node");
    let f = diagnose(&s);
    assert!(f.what.contains("waits for node-1 to connect"), "{}", f.what);
}

#[test]
fn a_peer_that_shut_the_session_down_is_named_as_the_place_to_look() {
    let mut s = session();
    s.we_connect = false;
    s.probe = None;
    s.error_kind = ErrorKind::NotificationReceived;
    s.error_state = SessionState::Established;
    s.notification = Some((6, 2));
    let f = diagnose(&s);
    assert_eq!(f.severity, Severity::Error);
    assert!(f.what.contains("node-1 shut it down"), "{}", f.what);
    assert!(
        f.fix.starts_with("on node-1: check that tabby-node runs"),
        "{}",
        f.fix
    );
}
