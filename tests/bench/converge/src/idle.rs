//! Idle cost of a running lab (issue 16 §2), the measuring half of
//! `tests/bench-idle.sh` (which builds the lab, the external BIRD peer and
//! its routes). Benchmark-only.
//!
//! `bench-idle sample` reads every tabby-node's (and the BIRD peer's)
//! /proc counters, sleeps out the window, reads them again and writes one
//! JSON file per window: CPU % of a core (utime+stime delta ÷ clock ticks ÷
//! wall time), VmRSS and VmHWM at the end, threads, and wake-ups (context
//! switches of every thread) per second. `bench-idle report` prints two
//! windows side by side (before the routes are announced: the same-run
//! reference; after) against the goals and appends the
//! BENCH_RESULTS lines.

mod idle_proc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use idle_proc::{Counters, Proc, Window};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The goals per tabby-node.
const GOAL_RSS_MB: f64 = 30.0;
const GOAL_CPU_PCT: f64 = 0.5;

#[derive(Parser)]
struct Opts {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// One line per node for the script: name, namespace, address, pid.
    Nodes {
        #[arg(long)]
        lab_dir: PathBuf,
    },
    /// Measure one idle window.
    Sample {
        /// The lab's directory (holds lab.json with every node's pid).
        #[arg(long)]
        lab_dir: PathBuf,
        /// The external BGP peer's BIRD, measured beside the nodes.
        #[arg(long)]
        bird_pid: Option<u32>,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Where the window's JSON goes.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the windows against the goals; BENCH_RESULTS lines.
    Report {
        /// The window before the routes were announced (the reference).
        #[arg(long)]
        before: PathBuf,
        #[arg(long)]
        after: PathBuf,
        /// How many routes every node held in the `after` window.
        #[arg(long)]
        routes: usize,
    },
}

fn main() -> Result<()> {
    match Opts::parse().cmd {
        Cmd::Nodes { lab_dir } => {
            for n in lab_nodes(&lab_dir)? {
                println!("{} {} {} {}", n.name, n.netns, n.address, n.pid);
            }
            Ok(())
        }
        Cmd::Sample {
            lab_dir,
            bird_pid,
            seconds,
            out,
        } => sample(&lab_dir, bird_pid, seconds, &out),
        Cmd::Report {
            before,
            after,
            routes,
        } => report(&Window::load(&before)?, &Window::load(&after)?, routes),
    }
}

struct LabNode {
    name: String,
    netns: String,
    address: String,
    pid: u32,
}

fn lab_nodes(lab_dir: &std::path::Path) -> Result<Vec<LabNode>> {
    let f = lab_dir.join("lab.json");
    let text = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
    let lab: serde_json::Value = serde_json::from_str(&text)?;
    let nodes = lab["nodes"].as_array().context("lab.json has no nodes")?;
    nodes
        .iter()
        .map(|n| {
            let text = |k: &str| -> Result<String> {
                Ok(n[k]
                    .as_str()
                    .with_context(|| format!("node without {k}"))?
                    .into())
            };
            Ok(LabNode {
                name: text("name")?,
                netns: text("netns")?,
                address: text("address")?,
                pid: n["pid"].as_u64().context("node without a pid")? as u32,
            })
        })
        .collect()
}

fn sample(
    lab_dir: &std::path::Path,
    bird: Option<u32>,
    seconds: u64,
    out: &std::path::Path,
) -> Result<()> {
    let mut who: Vec<(String, String, u32)> = lab_nodes(lab_dir)?
        .into_iter()
        .map(|n| (n.name, "tabby-node".to_string(), n.pid))
        .collect();
    if let Some(p) = bird {
        who.push(("bird".into(), "bird".into(), p));
    }
    let ticks = idle_proc::clock_ticks();
    let start: Vec<Counters> = who
        .iter()
        .map(|(n, _, p)| Counters::read(*p).with_context(|| format!("{n} (pid {p})")))
        .collect::<Result<_>>()?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let wall = t0.elapsed().as_secs_f64();
    let mut procs = Vec::new();
    for ((name, kind, pid), a) in who.iter().zip(&start) {
        let b = Counters::read(*pid)
            .with_context(|| format!("{name} (pid {pid}) exited during the window"))?;
        procs.push(Proc::between(name, kind, a, &b, ticks, wall));
    }
    let w = Window {
        wall_s: wall,
        procs,
    };
    std::fs::write(out, serde_json::to_string_pretty(&w.to_json())?)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// The median, p90 and max of `v` (nearest rank).
fn spread(mut v: Vec<f64>) -> [f64; 3] {
    if v.is_empty() {
        return [f64::NAN; 3];
    }
    v.sort_by(f64::total_cmp);
    let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    [rank(0.5), rank(0.9), v[v.len() - 1]]
}

fn report(before: &Window, after: &Window, routes: usize) -> Result<()> {
    let nodes_a = after.of("tabby-node");
    let nodes_b = before.of("tabby-node");
    let n = nodes_a.len();
    println!(
        "idle cost: {n} tabby-nodes (mesh, {} peers each + 1 external BIRD peer), {:.0} s windows; reference = the same nodes before the {routes} routes were announced",
        n.saturating_sub(1),
        after.wall_s
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9}   {:>9} {:>9} {:>9}   goal",
        "per tabby-node", "median", "p90", "max", "ref med", "ref p90", "ref max"
    );
    type Get = fn(&Proc) -> f64;
    let rows: [(&str, &str, &str, Get, Option<f64>); 5] = [
        (
            "RSS (VmRSS at end)",
            "rss",
            "MB",
            |p| p.rss_mb(),
            Some(GOAL_RSS_MB),
        ),
        ("peak RSS (VmHWM)", "rss", "MB", |p| p.hwm_mb(), None),
        (
            "CPU (% of a core)",
            "cpu",
            "%",
            |p| p.cpu_pct,
            Some(GOAL_CPU_PCT),
        ),
        (
            "wake-ups/s (context switches)",
            "",
            "/s",
            |p| p.wakeups_per_s,
            None,
        ),
        ("threads", "", "", |p| p.threads as f64, None),
    ];
    let mut lines = Vec::new();
    for (label, metric, unit, get, goal) in rows {
        let a = spread(nodes_a.iter().map(|p| get(p)).collect());
        let b = spread(nodes_b.iter().map(|p| get(p)).collect());
        let goal_txt = goal.map_or(String::new(), |g| {
            let met = a[0] < g;
            format!(
                "< {g} {unit}: median {}",
                if met { "met" } else { "MISSED" }
            )
        });
        println!(
            "{label:<34} {:>9.2} {:>9.2} {:>9.2}   {:>9.2} {:>9.2} {:>9.2}   {goal_txt}",
            a[0], a[1], a[2], b[0], b[1], b[2]
        );
        if metric.is_empty() {
            continue;
        }
        for (i, stat) in ["median", "p90", "max"].iter().enumerate() {
            lines.push(result_line(
                &format!("tabby-node {label}, {stat} of {n} nodes, {} mesh peers + 1 BIRD peer, {routes} routes", n.saturating_sub(1)),
                metric,
                unit,
                a[i],
                Some(("same nodes before the routes were announced", b[i])),
                goal.map(|g| (format!("< {g} {}", if unit == "%" { "%" } else { "MB" }), a[i] < g)),
            ));
        }
    }
    for (w, when) in [(before, "before"), (after, "after")] {
        for p in w.of("bird") {
            println!(
                "BIRD peer ({when}: {n} sessions, {} routes): RSS {:.1} MB (peak {:.1}), CPU {:.2} % of a core, {:.1} wake-ups/s",
                if when == "after" { routes } else { 0 },
                p.rss_mb(),
                p.hwm_mb(),
                p.cpu_pct,
                p.wakeups_per_s
            );
            if when == "after" {
                let case = format!("BIRD 2 external peer, {n} sessions, {routes} static routes");
                lines.push(result_line(&case, "rss", "MB", p.rss_mb(), None, None));
                lines.push(result_line(&case, "cpu", "%", p.cpu_pct, None, None));
            }
        }
    }
    let total = |w: &Window| w.procs.iter().map(|p| p.cpu_pct).sum::<f64>();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!(
        "whole lab (every tabby-node + BIRD): {:.1} % of a core after ({:.1} % of this {cores}-core machine), {:.1} % before",
        total(after),
        total(after) / cores as f64,
        total(before)
    );
    lines.push(result_line(
        &format!("whole lab total, {n} tabby-nodes + BIRD, {routes} routes"),
        "cpu",
        "%",
        total(after),
        Some(("same lab before the routes were announced", total(before))),
        None,
    ));
    if let Some(path) = std::env::var_os("BENCH_RESULTS") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", PathBuf::from(&path).display()))?;
        for l in lines {
            // One write per line: appends from several benches interleave
            // only at line boundaries.
            f.write_all(format!("{l}\n").as_bytes())?;
        }
    }
    Ok(())
}

fn result_line(
    case: &str,
    metric: &str,
    unit: &str,
    value: f64,
    reference: Option<(&str, f64)>,
    goal: Option<(String, bool)>,
) -> serde_json::Value {
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let ratio = reference.and_then(|(_, r)| (r > 0.0).then(|| round(value / r)));
    serde_json::json!({
        "section": "2",
        "bench": "idle",
        "case": case,
        "metric": metric,
        "unit": unit,
        "value": round(value),
        "reference": reference.map(|r| r.0),
        "reference_value": reference.map(|r| round(r.1)),
        "ratio": ratio,
        "goal": goal.as_ref().map(|g| g.0.clone()),
        "met": goal.map(|g| g.1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(spread(v), [5.0, 9.0, 10.0]);
        assert_eq!(spread(vec![3.0]), [3.0, 3.0, 3.0]);
        assert_eq!(spread(vec![2.0, 1.0]), [1.0, 2.0, 2.0]);
        assert!(spread(vec![])[0].is_nan());
    }

    #[test]
    fn result_line_has_the_conventions_fields() {
        let l = result_line(
            "x",
            "cpu",
            "%",
            0.25,
            Some(("before", 0.5)),
            Some(("< 0.5 %".into(), true)),
        );
        assert_eq!(l["section"], "2");
        assert_eq!(l["bench"], "idle");
        assert_eq!(l["ratio"], 0.5);
        assert_eq!(l["met"], true);
        let l = result_line("y", "rss", "MB", 1.0, None, None);
        assert!(l["reference"].is_null() && l["ratio"].is_null() && l["met"].is_null());
    }
}
