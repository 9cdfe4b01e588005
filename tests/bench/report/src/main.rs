//! `bench-report RESULTS.jsonl OUT_DIR`: report.md and its charts from the
//! benches' results (run by `tests/bench.sh` at its end).

use anyhow::{bail, Result};
use std::path::Path;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, out_dir] = &args[..] else {
        bail!("usage: bench-report RESULTS.jsonl OUT_DIR");
    };
    let w = tabby_bench_report::write_report(Path::new(input), Path::new(out_dir))?;
    for warning in &w.warnings {
        eprintln!("warning: {input}: {warning} (skipped)");
    }
    println!("report: {}", w.report.display());
    for c in &w.charts {
        println!("chart:  {}", c.display());
    }
    Ok(())
}
