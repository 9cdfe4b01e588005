//! The convergence rows: printed for a person, and appended to
//! `$BENCH_RESULTS` (one JSON object per line) for the report.

use std::io::Write;

/// One row's figures, all in ms, sorted.
pub struct Row<'a> {
    pub label: &'a str,
    pub nodes: usize,
    pub claims: usize,
    /// CNI ADD start on the claiming node → the route in another node's
    /// kernel, every (claim, node) pair.
    pub lat: &'a [f64],
    /// The claim's confirmation in the datastore (see `claims`) → the
    /// route in another node's kernel: the measure.
    pub from_claim: &'a [f64],
    pub cni: &'a [f64],
    pub own: &'a [f64],
    pub missing: usize,
    /// CPU ms each other node spent per claim (the untimed fill pod's
    /// work included), sorted.
    pub cpu_per_claim: &'a [f64],
}

/// The goal for p99 (§1).
const GOAL_P99_MS: f64 = 50.0;

pub fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}

pub fn print(r: &Row, claimer: &str) {
    println!(
        "{:<28} nodes {:>3}  claims {:>4}  pairs {:>6}  claim -> route: p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms  missing {}",
        r.label,
        r.nodes,
        r.claims,
        r.from_claim.len(),
        pct(r.from_claim, 0.50),
        pct(r.from_claim, 0.99),
        r.from_claim.last().copied().unwrap_or(f64::NAN),
        r.missing,
    );
    println!(
        "{:<28}   CNI ADD start -> route: p50 {:.1} ms  p99 {:.1} ms (CNI ADD p50 {:.1} ms; {claimer}'s own route p50 {:.1} ms)",
        "",
        pct(r.lat, 0.50),
        pct(r.lat, 0.99),
        pct(r.cni, 0.50),
        pct(r.own, 0.50),
    );
    let total: f64 = r.cpu_per_claim.iter().sum();
    println!(
        "{:<28}   CPU per claim per other node: median {:.2} ms  max {:.2} ms; all {} other nodes together {:.1} ms",
        "",
        pct(r.cpu_per_claim, 0.50),
        r.cpu_per_claim.last().copied().unwrap_or(f64::NAN),
        r.cpu_per_claim.len(),
        total,
    );
}

/// Appends the row to `$BENCH_RESULTS` when it is set; `reference` is the
/// row measured as the reference in the same run, if any.
pub fn emit(r: &Row, reference: Option<&Row>) -> std::io::Result<()> {
    let Some(path) = std::env::var_os("BENCH_RESULTS") else {
        return Ok(());
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let case = format!("{}, {} nodes", r.label, r.nodes);
    let mut lines = vec![serde_json::json!({
        "section": "1", "bench": "converge", "case": case, "samples_ms": r.from_claim,
    })];
    let figures = [
        (
            "claim -> route in every other kernel",
            r.from_claim,
            reference.map(|x| x.from_claim),
            true,
        ),
        (
            "CNI ADD start -> route in every other kernel",
            r.lat,
            reference.map(|x| x.lat),
            false,
        ),
    ];
    for (what, v, of_ref, goal) in figures {
        for (metric, q) in [
            ("latency_p50", 0.5),
            ("latency_p99", 0.99),
            ("latency_max", 1.0),
        ] {
            let value = pct(v, q);
            let refv = of_ref.map(|x| pct(x, q));
            let judged = goal && metric == "latency_p99";
            lines.push(serde_json::json!({
                "section": "1", "bench": "converge",
                "case": format!("{case}: {what}"),
                "metric": metric, "unit": "ms", "value": finite(value),
                "reference": reference.map(|x| x.label),
                "reference_value": refv.and_then(finite),
                "ratio": refv.and_then(|rv| finite(value / rv)),
                "goal": judged.then_some("<= 50 ms"),
                "met": judged.then_some(value <= GOAL_P99_MS),
            }));
        }
    }
    let total: f64 = r.cpu_per_claim.iter().sum();
    for (metric, value) in [
        ("cpu_ms_per_claim_per_node_p50", pct(r.cpu_per_claim, 0.5)),
        ("cpu_ms_per_claim_all_nodes", total),
    ] {
        lines.push(serde_json::json!({
            "section": "1", "bench": "converge",
            "case": format!("{case}: CPU per claim of the other nodes"),
            "metric": metric, "unit": "ms", "value": finite(value),
            "reference": null, "reference_value": null, "ratio": null,
            "goal": null, "met": null,
        }));
    }
    for l in lines {
        f.write_all(format!("{l}\n").as_bytes())?;
    }
    Ok(())
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}
