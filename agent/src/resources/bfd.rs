//! BFD settings in Calico's resources: BGPPeer's `failureDetectionMode`
//! (Calico's own field) and Tabby's extensions on BGPConfiguration (the
//! mesh's mode, and the intervals and multiplier, named after Calico
//! Enterprise's BFDConfiguration, which Tabby does not read).

use super::bgp::BgpConfigurationSpec;
use super::duration::parse_go_duration;
use super::parse::FieldProblem;
use super::validate_pool::problem;
use std::time::Duration;
use tabby_bgp::peer_config::BfdSettings;

pub const MODE_NONE: &str = "None";
pub const MODE_BFD_IF_DIRECTLY_CONNECTED: &str = "BFDIfDirectlyConnected";

/// Below 10 ms a user-space timer on a busy node misfires; above a minute
/// BFD detects nothing the BGP hold time would not.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// True for `BFDIfDirectlyConnected` (the only mode that turns BFD on).
pub fn wants_bfd(mode: Option<&str>) -> bool {
    mode == Some(MODE_BFD_IF_DIRECTLY_CONNECTED)
}

pub(crate) fn check_mode(field: &str, mode: Option<&str>, p: &mut Vec<FieldProblem>) {
    if let Some(m) = mode {
        if m != MODE_NONE && m != MODE_BFD_IF_DIRECTLY_CONNECTED {
            p.push(problem(
                field,
                format!("{m:?} is not one of {MODE_NONE}, {MODE_BFD_IF_DIRECTLY_CONNECTED}"),
            ));
        }
    }
}

fn interval(text: &str) -> Result<Duration, String> {
    let d = parse_go_duration(text)?;
    if d < MIN_INTERVAL || d > MAX_INTERVAL {
        return Err(format!("{text:?} is outside 10ms..60s"));
    }
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!("{text:?} is not a whole number of milliseconds"));
    }
    Ok(d)
}

pub(crate) fn check_bgp_config(spec: &BgpConfigurationSpec, p: &mut Vec<FieldProblem>) {
    check_mode(
        "spec.nodeToNodeMeshFailureDetectionMode",
        spec.node_to_node_mesh_failure_detection_mode.as_deref(),
        p,
    );
    for (field, v) in [
        (
            "spec.bfdMinimumRecvInterval",
            &spec.bfd_minimum_recv_interval,
        ),
        (
            "spec.bfdMinimumSendInterval",
            &spec.bfd_minimum_send_interval,
        ),
    ] {
        if let Some(Err(e)) = v.as_deref().map(interval) {
            p.push(problem(field, e));
        }
    }
    if let Some(m) = spec.bfd_multiplier {
        if !(1..=255).contains(&m) {
            p.push(problem(
                "spec.bfdMultiplier",
                format!("{m} is outside 1..255"),
            ));
        }
    }
}

/// The node's BFD timers: the default BGPConfiguration's, else 300 ms × 3.
/// Values that would not validate (only possible in a datastore written
/// by something else) fall back to the defaults.
pub fn settings(spec: Option<&BgpConfigurationSpec>) -> BfdSettings {
    let d = BfdSettings::default();
    let Some(s) = spec else {
        return d;
    };
    let pick = |v: &Option<String>, def| v.as_deref().and_then(|t| interval(t).ok()).unwrap_or(def);
    BfdSettings {
        min_rx: pick(&s.bfd_minimum_recv_interval, d.min_rx),
        min_tx: pick(&s.bfd_minimum_send_interval, d.min_tx),
        multiplier: s
            .bfd_multiplier
            .and_then(|m| u8::try_from(m).ok())
            .filter(|m| *m >= 1)
            .unwrap_or(d.multiplier),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_their_validation() {
        let mut s = BgpConfigurationSpec {
            bfd_minimum_recv_interval: Some("100ms".into()),
            bfd_multiplier: Some(5),
            ..Default::default()
        };
        let b = settings(Some(&s));
        assert_eq!(
            (b.min_rx, b.min_tx, b.multiplier),
            (Duration::from_millis(100), Duration::from_millis(300), 5)
        );
        let mut p = Vec::new();
        check_bgp_config(&s, &mut p);
        assert!(p.is_empty(), "{p:?}");
        s.bfd_minimum_send_interval = Some("5ms".into());
        s.bfd_multiplier = Some(0);
        s.node_to_node_mesh_failure_detection_mode = Some("BFD".into());
        check_bgp_config(&s, &mut p);
        let fields: Vec<_> = p.iter().filter_map(|x| x.field.clone()).collect();
        assert_eq!(
            fields,
            [
                "spec.nodeToNodeMeshFailureDetectionMode",
                "spec.bfdMinimumSendInterval",
                "spec.bfdMultiplier"
            ]
        );
        assert!(
            p[0].message.contains("BFDIfDirectlyConnected"),
            "{}",
            p[0].message
        );
        assert!(p[1].message.contains("10ms..60s"), "{}", p[1].message);
        // What would not validate falls back to the defaults.
        assert_eq!(settings(Some(&s)).min_tx, Duration::from_millis(300));
        assert_eq!(settings(Some(&s)).multiplier, 3);
    }
}
