//! Why one BGP session is down, decided from what was read and probed:
//! pure, so every cause is tested without a network.
//!
//! The order matters: a local rule that drops TCP 179 explains any error
//! the speaker shows (a hold timer expiry, then silence), so it comes
//! first; then what the TCP probe saw (filtered, refused), which is
//! first-hand where the speaker's last error may be old; only with TCP
//! open does the NOTIFICATION (AS mismatch, hold timer) or an MD5
//! suspicion name the cause.

use crate::doctor::Finding;
use tabby_felix_lite::firewall::PortBlock;
use tabby_proto::bgp::{ErrorKind, SessionState};

const CHECK: &str = "bgp";

/// What the active TCP connect to peer:179 saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Open,
    Refused,
    /// No SYN-ACK within the timeout (seconds).
    TimedOut(u64),
    /// Another error (no route, network down), as the OS said it.
    Failed(String),
}

/// Where the AS a session expects comes from, so the fix edits the right
/// resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsSource {
    /// `spec.bgp.asNumber` of this Node.
    Node(String),
    /// `spec.asNumber` of this BGPConfiguration.
    Config(String),
    /// `spec.asNumber` of this BGPPeer.
    Peer(String),
    /// Nothing sets it: Calico's default 64512.
    Default,
}

impl AsSource {
    fn describe(&self) -> String {
        match self {
            AsSource::Node(n) => format!("Node {n}'s spec.bgp.asNumber"),
            AsSource::Config(n) => format!("BGPConfiguration {n}'s asNumber"),
            AsSource::Peer(n) => format!("BGPPeer {n}'s asNumber"),
            AsSource::Default => "the default AS 64512 (no asNumber set)".into(),
        }
    }

    /// The command that makes the resource say `to` instead of `from`.
    fn fix(&self, from: u32, to: u32) -> Option<String> {
        let (kind, name) = match self {
            AsSource::Node(n) => ("node", n),
            AsSource::Config(n) => ("bgpconfig", n),
            AsSource::Peer(n) => ("bgppeer", n),
            AsSource::Default => return None,
        };
        Some(format!(
            "tabbyctl get {kind} {name} -o yaml | sed 's/asNumber: {from}$/asNumber: {to}/' | tabbyctl apply -f -"
        ))
    }
}

/// Everything known about one session that is not Established.
#[derive(Debug, Clone)]
pub struct Session {
    pub address: String,
    pub port: u16,
    /// The peer's node, for mesh peers and BGPPeers at a node's address.
    pub node: Option<String>,
    pub peer_type: String,
    pub state: SessionState,
    pub last_error: String,
    pub error_kind: ErrorKind,
    /// The state the last error happened in.
    pub error_state: SessionState,
    pub notification: Option<(u32, u32)>,
    /// The AS the peer's last OPEN carried (None before one arrived).
    pub peer_open_as: Option<u32>,
    /// The AS this speaker announces, and the one it expects of the peer.
    pub local_as: u32,
    pub remote_as: u32,
    /// Where `remote_as` comes from, and where this node's own AS comes
    /// from in the datastore (with its value there).
    pub remote_as_source: AsSource,
    pub local_as_source: (u32, AsSource),
    /// Whether this node connects (mesh: the higher address connects).
    pub we_connect: bool,
    pub probe: Option<Probe>,
    /// The speaker has a socket in SYN_SENT to the peer: its SYN goes
    /// unanswered right now.
    pub syn_sent: bool,
    /// Local nftables rules that drop or reject TCP 179.
    pub local_blocks: Vec<PortBlock>,
    /// A TCP-MD5 password configured for this session (its source).
    pub password: Option<String>,
    /// Blocks of the peer's node that VXLAN fallback carries meanwhile.
    pub fallback_blocks: usize,
    /// Every node address (for the allow rule).
    pub node_addresses: Vec<String>,
}

impl Session {
    fn who(&self) -> String {
        match &self.node {
            Some(n) => format!("{n} ({})", self.address),
            None => format!("peer {}", self.address),
        }
    }

    fn remote(&self) -> String {
        self.node.clone().unwrap_or_else(|| self.address.clone())
    }

    fn evidence(&self, extra: &[String]) -> String {
        let mut parts = vec![format!(
            "peer {} ({}) is {}{}",
            self.address,
            self.peer_type,
            state_name(self.state),
            if self.last_error.is_empty() {
                String::new()
            } else {
                format!(", last error \"{}\"", self.last_error)
            }
        )];
        parts.extend(extra.iter().cloned());
        if self.fallback_blocks > 0 {
            parts.push(format!(
                "VXLAN fallback carries {} block{} of {} meanwhile",
                self.fallback_blocks,
                if self.fallback_blocks == 1 { "" } else { "s" },
                self.remote()
            ));
        }
        parts.join("; ")
    }

    /// Whether an active TCP probe may tell more than the speaker does,
    /// and cannot disturb the peer. A probe that connects is taken by the
    /// peer's speaker for this node's BGP connection (and its close resets
    /// the peer's set-up), so no probe where TCP evidently works (an OPEN
    /// was exchanged), where the speaker already knows (refused, a SYN
    /// unanswered), where a local rule explains it, or where this node
    /// only waits for the peer to connect.
    pub fn needs_probe(&self) -> bool {
        let opened = matches!(
            self.error_state,
            SessionState::OpenSent | SessionState::OpenConfirm
        ) && matches!(self.error_kind, ErrorKind::TcpClosed | ErrorKind::TcpReset);
        self.we_connect
            && !self.syn_sent
            && !opened
            && self.error_kind != ErrorKind::TcpRefused
            && self.notification.is_none_or(|(code, _)| code == 4)
            && self.relevant_blocks().is_empty()
    }

    /// The local rules that matter: input rules when the peer connects to
    /// us, output rules when we connect.
    fn relevant_blocks(&self) -> Vec<&PortBlock> {
        self.local_blocks
            .iter()
            .filter(|b| {
                (b.hook == "input" && (!self.we_connect || self.peer_type != MESH))
                    || (b.hook == "output" && self.we_connect)
            })
            .collect()
    }
}

pub const MESH: &str = "node-to-node mesh";

pub fn state_name(s: SessionState) -> &'static str {
    match s {
        SessionState::Unspecified => "in an unknown state",
        SessionState::Idle => "Idle",
        SessionState::Connect => "Connect",
        SessionState::Active => "Active",
        SessionState::OpenSent => "OpenSent",
        SessionState::OpenConfirm => "OpenConfirm",
        SessionState::Established => "Established",
    }
}

fn probe_text(p: &Probe, addr: &str) -> String {
    match p {
        Probe::Open => format!("TCP connect to {addr}:179 succeeded"),
        Probe::Refused => format!("TCP connect to {addr}:179 refused"),
        Probe::TimedOut(s) => format!("TCP connect to {addr}:179: no answer within {s} s"),
        Probe::Failed(e) => format!("TCP connect to {addr}:179: {e}"),
    }
}

/// The finding for one session that is not Established.
pub fn diagnose(s: &Session) -> Finding {
    let probe = s.probe.as_ref();
    let mut ev: Vec<String> = probe
        .map(|p| probe_text(p, &s.address))
        .into_iter()
        .collect();
    let blocks = s.relevant_blocks();
    if !blocks.is_empty() {
        return local_rule(s, &blocks, ev);
    }
    if s.syn_sent {
        ev.push(format!(
            "the speaker's SYN to {}:179 is unanswered (its socket is in SYN-SENT)",
            s.address
        ));
    }
    let tcp = probe.cloned().or(match s.error_kind {
        _ if s.syn_sent => Some(Probe::TimedOut(0)),
        ErrorKind::TcpRefused => Some(Probe::Refused),
        ErrorKind::TcpTimedOut => Some(Probe::TimedOut(0)),
        _ => None,
    });
    let remote = s.remote();
    match tcp {
        Some(Probe::TimedOut(_)) => {
            let what = format!(
                "BGP session with {} is down: TCP 179 on {remote} does not answer (filtered: \
                 the SYN goes unanswered), so a firewall on {remote} or between the nodes drops it{}",
                s.who(),
                if s.password.is_some() {
                    " (or a TCP-MD5 password only one side has: the kernel drops unsigned SYNs)"
                } else {
                    ""
                }
            );
            return Finding::error(CHECK, what)
                .evidence(s.evidence(&ev))
                .fix(allow_fix(s, "remote"));
        }
        Some(Probe::Refused) => {
            let what = format!(
                "BGP session with {} is down: {remote} refuses TCP 179 (nothing listens there — \
                 tabby-node down or BGP on another listenPort — or a firewall rejects it)",
                s.who()
            );
            return Finding::error(CHECK, what)
                .evidence(s.evidence(&ev))
                .fix(format!(
                    "on {remote}: check that tabby-node runs and listens (ss -ltn 'sport = :179') \
                     and run tabbyctl node doctor there to find a reject rule"
                ));
        }
        Some(Probe::Failed(e)) => {
            return Finding::error(
                CHECK,
                format!(
                    "BGP session with {} is down: {remote} cannot be reached ({e})",
                    s.who()
                ),
            )
            .evidence(s.evidence(&ev))
            .fix(format!(
                "check this node's route to {} (ip route get {}) and that {remote} is up",
                s.address, s.address
            ));
        }
        Some(Probe::Open) | None => {}
    }
    // A peer that refuses our OPEN may close before its NOTIFICATION is
    // read; with this node announcing an AS the datastore no longer says,
    // that is the same mismatch.
    let closed_after_open = matches!(s.error_kind, ErrorKind::TcpClosed | ErrorKind::TcpReset)
        && matches!(
            s.error_state,
            SessionState::OpenSent | SessionState::OpenConfirm
        );
    if s.notification == Some((2, 2)) || (closed_after_open && s.local_as_source.0 != s.local_as) {
        return bad_peer_as(s, ev);
    }
    if let Some((4, _)) = s.notification {
        let dir = if s.error_kind == ErrorKind::NotificationSent {
            format!("this node heard nothing from {remote} for a whole hold time")
        } else {
            format!("{remote} heard nothing from this node for a whole hold time")
        };
        return Finding::error(
            CHECK,
            format!(
                "BGP session with {} went down on hold timer expiry: {dir} (keepalives lost: a \
                 firewall dropping established TCP 179 traffic, or a peer too busy to send)",
                s.who()
            ),
        )
        .evidence(s.evidence(&ev))
        .fix(allow_fix(s, "both"));
    }
    if let Some(src) = &s.password {
        if matches!(s.state, SessionState::Connect | SessionState::Active)
            && probe == Some(&Probe::Open)
        {
            return Finding::error(
                CHECK,
                format!(
                    "BGP session with {} does not get past {} although TCP 179 is open, and a \
                     TCP-MD5 password is configured ({src}): the passwords likely differ (the \
                     kernel drops segments whose signature does not match); note tabby-node \
                     does not sign its sessions with TCP-MD5 yet",
                    s.who(),
                    state_name(s.state)
                ),
            )
            .evidence(s.evidence(&ev))
            .fix(format!(
                "check the BGPPeer password secret on both sides ({src}: the secret's key must \
                 hold the same password on this node and on {remote})"
            ));
        }
    }
    // The peer's own speaker ended the session (Cease: administrative
    // shutdown or reset), as tabby-node does when it stops: the peer's
    // node is the place to look, not the network.
    if s.error_kind == ErrorKind::NotificationReceived
        && matches!(s.notification, Some((6, 2)) | Some((6, 4)))
    {
        return Finding::error(
            CHECK,
            format!(
                "BGP session with {} is down: {remote} shut it down (Cease, administrative \
                 shutdown or reset: its tabby-node stopped, restarted or was reconfigured) and \
                 has not come back",
                s.who()
            ),
        )
        .evidence(s.evidence(&ev))
        .fix(format!(
            "on {remote}: check that tabby-node runs (its log says why it stopped) and run \
             tabbyctl node doctor there"
        ));
    }
    if !s.we_connect && s.notification.is_none() {
        return Finding::error(
            CHECK,
            format!(
                "BGP session with {} is down: this node waits for {remote} to connect (on the \
                 mesh the higher address connects) and no connection arrives",
                s.who()
            ),
        )
        .evidence(s.evidence(&ev))
        .fix(format!(
            "run tabbyctl node doctor on {remote}: it sees its own connection attempts to this \
             node (filtered, refused); or allow TCP 179 from the node addresses here: \
             nft insert rule inet filter input ip saddr {{ {} }} tcp dport 179 accept",
            s.node_addresses.join(", ")
        ));
    }
    if let Some((code, sub)) = s.notification {
        ev.push(format!("NOTIFICATION {code}/{sub}"));
    }
    Finding::error(
        CHECK,
        format!(
            "BGP session with {} is not Established ({})",
            s.who(),
            state_name(s.state)
        ),
    )
    .evidence(s.evidence(&ev))
    .fix(format!(
        "read tabby-node's log on this node and on {remote} for {}",
        s.address
    ))
}

fn local_rule(s: &Session, blocks: &[&PortBlock], mut ev: Vec<String>) -> Finding {
    for b in blocks {
        ev.push(match b.handle {
            Some(h) => format!("nft: {} handle {h}: {}", b.chain_label(), b.text),
            None => format!(
                "nft: {} (hook {}) has policy drop and no rule accepting tcp dport 179",
                b.chain_label(),
                b.hook
            ),
        });
    }
    let first = blocks[0];
    let rule = match first.handle {
        Some(_) => format!("rule `{}` in {}", first.text, first.chain_label()),
        None => format!("policy drop of {}", first.chain_label()),
    };
    let fix = blocks
        .iter()
        .map(|b| match b.handle {
            Some(h) => format!("nft delete rule {} handle {h}", b.chain_label()),
            None => format!(
                "nft insert rule {} ip saddr {{ {} }} tcp dport 179 accept",
                b.chain_label(),
                s.node_addresses.join(", ")
            ),
        })
        .collect::<Vec<_>>()
        .join(" && ");
    Finding::error(
        CHECK,
        format!(
            "BGP session with {} is down: this node's firewall {}s TCP 179 ({rule})",
            s.who(),
            first.verdict
        ),
    )
    .evidence(s.evidence(&ev))
    .fix(fix)
}

/// The rule that lets the nodes reach each other's TCP 179, on `side`.
fn allow_fix(s: &Session, side: &str) -> String {
    let remote = s.remote();
    let rule = format!(
        "nft insert rule inet filter input ip saddr {{ {} }} tcp dport 179 accept",
        s.node_addresses.join(", ")
    );
    match side {
        "remote" => format!(
            "on {remote}: run tabbyctl node doctor there (it names the rule that drops TCP 179), \
             or allow TCP 179 from the node addresses in its firewall: {rule}"
        ),
        _ => format!(
            "allow TCP 179 both ways between the nodes, on this node and on {remote} (ct state \
             established must pass too): {rule}"
        ),
    }
}

fn bad_peer_as(s: &Session, ev: Vec<String>) -> Finding {
    let remote = s.remote();
    if s.error_kind == ErrorKind::NotificationSent {
        // We refused the peer's OPEN: it announced an AS other than the
        // one we expect.
        let got = s.peer_open_as.unwrap_or(0);
        let what = format!(
            "BGP session with {} is refused for an AS mismatch (bad peer AS): {remote} announces \
             AS {got} but this node expects AS {} (from {}); set the one that is wrong: that \
             setting, or {remote}'s own AS if {} is right",
            s.who(),
            s.remote_as,
            s.remote_as_source.describe(),
            s.remote_as
        );
        let fix = s
            .remote_as_source
            .fix(s.remote_as, got)
            .unwrap_or_else(|| format!("restart tabby-node on {remote}, or set its AS to {got}"));
        return Finding::error(CHECK, what)
            .evidence(s.evidence(&ev))
            .fix(fix);
    }
    // The peer refused our OPEN.
    let (ds_as, src) = &s.local_as_source;
    let how = if s.notification.is_some() {
        format!("bad peer AS, from {remote}")
    } else {
        format!("{remote} closed the connection after this node's OPEN")
    };
    let mut what = format!(
        "BGP session with {} is refused for an AS mismatch ({how}): this node announces AS {} \
         and {remote} expects another",
        s.who(),
        s.local_as
    );
    let fix = if *ds_as != s.local_as {
        what.push_str(&format!(
            "; the datastore says AS {ds_as} for this node ({}) but its tabby-node still \
             announces {} (it follows a change within seconds: if it stays, restart tabby-node \
             here), or set it back",
            src.describe(),
            s.local_as
        ));
        src.fix(*ds_as, s.local_as)
            .unwrap_or_else(|| "restart tabby-node on this node".into())
    } else {
        format!("run tabbyctl node doctor on {remote}: it names the AS it expects and where from")
    };
    Finding::error(CHECK, what)
        .evidence(s.evidence(&ev))
        .fix(fix)
}
