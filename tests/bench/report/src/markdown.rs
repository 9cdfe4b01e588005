//! report.md: the machine, the charts, then one table per issue-16
//! section. A section (or a bench within it) with no lines is said to be
//! missing, so a bench that failed or was skipped is visible in the report
//! rather than absent from it.

use crate::machine::Machine;
use crate::results::{Distribution, Figure, Results};
use std::fmt::Write;

/// Issue 16's sections: number, title, the benches that report in it.
pub const SECTIONS: &[(&str, &str, &[&str])] = &[
    (
        "1",
        "Pod-route convergence and the SQLite watch",
        &["watch", "converge"],
    ),
    ("2", "Idle cost per node", &["idle"]),
    ("3", "Dataplane route programming (FIB)", &["fib"]),
    ("4", "BGP speaker", &["bgp"]),
    ("5", "IPAM assignment", &["ipam"]),
];

/// Which chart files were written next to report.md.
#[derive(Debug, Default)]
pub struct Charts {
    pub convergence: Option<String>,
    pub ratios: Option<String>,
}

pub fn num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.001 {
        format!("{v:.3}")
    } else {
        format!("{v:.2e}")
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn with_unit(v: Option<f64>, unit: &str) -> String {
    v.map_or("–".into(), |v| format!("{} {unit}", num(v)))
}

/// The nearest-rank quantile of sorted samples.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    (n > 0).then(|| sorted[((n as f64 * q).ceil() as usize).clamp(1, n) - 1])
}

fn figure_row(out: &mut String, f: &Figure) {
    let reference = match (&f.reference, f.reference_value) {
        (Some(r), Some(v)) => format!("{}: {}", cell(r), with_unit(Some(v), &f.unit)),
        (Some(r), None) => cell(r),
        (None, Some(v)) => with_unit(Some(v), &f.unit),
        (None, None) => "–".into(),
    };
    let met = match f.met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "–",
    };
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {reference} | {} | {} | {met} |",
        cell(&f.bench),
        cell(&f.case),
        cell(&f.metric),
        with_unit(f.value, &f.unit),
        f.ratio.map_or("–".into(), |r| format!("{}×", num(r))),
        f.goal.as_deref().map_or("–".into(), cell),
    );
}

fn distribution_row(out: &mut String, d: &Distribution) {
    let q = |q| with_unit(quantile(&d.samples_ms, q), "ms");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} |",
        cell(&d.bench),
        cell(&d.case),
        d.samples_ms.len(),
        q(0.5),
        q(0.99),
        with_unit(d.samples_ms.last().copied(), "ms"),
    );
}

fn section(
    out: &mut String,
    r: &Results,
    number: &str,
    title: &str,
    benches: &[&str],
    charts: &Charts,
) {
    let _ = writeln!(out, "## {number}. {title}\n");
    if !r.has_section(number) {
        let names: Vec<String> = benches.iter().map(|b| format!("`{b}`")).collect();
        let _ =
            writeln!(
            out,
            "**Missing**: no results from {} (the bench did not run, failed, or wrote nothing).\n",
            if names.is_empty() { "this section".into() } else { names.join(", ") }
        );
        return;
    }
    for b in benches.iter().filter(|b| !r.has_bench(number, b)) {
        let _ = writeln!(
            out,
            "**Missing**: no results from `{b}` (did not run, failed, or wrote nothing).\n"
        );
    }
    let dists: Vec<&Distribution> = r
        .distributions
        .iter()
        .filter(|d| d.section == number)
        .collect();
    if !dists.is_empty() {
        out.push_str("| bench | case | samples | p50 | p99 | max |\n|---|---|---|---|---|---|\n");
        dists.iter().for_each(|d| distribution_row(out, d));
        out.push('\n');
        // The CDF holds every distribution: shown once, with the first.
        let first = r.distributions.first().map(|d| d.section.as_str());
        if let (Some(svg), Some(true)) = (&charts.convergence, first.map(|s| s == number)) {
            let _ = writeln!(out, "![convergence CDF]({svg})\n");
        }
    }
    let figs: Vec<&Figure> = r.figures.iter().filter(|f| f.section == number).collect();
    if !figs.is_empty() {
        out.push_str(
            "| bench | case | metric | value | reference | ratio | goal | met |\n|---|---|---|---|---|---|---|---|\n",
        );
        figs.iter().for_each(|f| figure_row(out, f));
        out.push('\n');
    }
}

pub fn render(r: &Results, m: &Machine, source: &str, charts: &Charts) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Tabby benchmark report\n");
    let _ = writeln!(
        out,
        "Written {} UTC from `{}`: {} figures, {} distributions.\n",
        m.date,
        source,
        r.figures.len(),
        r.distributions.len()
    );
    out.push_str("## Machine\n\n");
    let or = |v: Option<String>| v.unwrap_or_else(|| "unknown".into());
    let gib = |k: Option<u64>| k.map(|k| format!("{:.1} GiB", k as f64 / 1048576.0));
    let _ = writeln!(
        out,
        "- CPUs (`nproc`): {}",
        or(m.cpus.map(|c| c.to_string()))
    );
    let _ = writeln!(out, "- CPU model: {}", or(m.cpu_model.clone()));
    let _ = writeln!(
        out,
        "- memory: {} total, {} available",
        or(gib(m.mem_total_kib)),
        or(gib(m.mem_available_kib))
    );
    let _ = writeln!(out, "- kernel (`uname -r`): {}", or(m.kernel.clone()));
    let _ = writeln!(
        out,
        "- load average (1, 5, 15 min) when the report was written: {}\n",
        or(m.load.clone())
    );
    if !r.warnings.is_empty() {
        out.push_str("## Skipped lines\n\n");
        for w in &r.warnings {
            let _ = writeln!(out, "- {}", cell(&w.to_string()));
        }
        out.push('\n');
    }
    out.push_str("## Ratios\n\n");
    match &charts.ratios {
        Some(svg) => {
            let _ = writeln!(
                out,
                "Every figure with a same-run reference; green: goal met, red: missed, grey: no goal; the black mark is the goal where it is a ratio.\n\n![ratios against their references]({svg})\n"
            );
        }
        None => out.push_str("No figure with a ratio in these results.\n\n"),
    }
    if charts.convergence.is_none() {
        out.push_str("No distribution (`samples_ms`) in these results: no convergence CDF.\n\n");
    }
    for (number, title, benches) in SECTIONS {
        section(&mut out, r, number, title, benches, charts);
    }
    // Lines of a section this report does not know are still shown.
    let mut others: Vec<&str> = r
        .figures
        .iter()
        .map(|f| f.section.as_str())
        .chain(r.distributions.iter().map(|d| d.section.as_str()))
        .filter(|s| !SECTIONS.iter().any(|(n, _, _)| n == s))
        .collect();
    others.sort();
    others.dedup();
    for s in others {
        section(
            &mut out,
            r,
            s,
            "(a section this report does not know)",
            &[],
            charts,
        );
    }
    out
}
