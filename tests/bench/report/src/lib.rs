//! Benchmark-only: turns the JSON Lines results the benches of issue 16
//! append (to `BENCH_RESULTS`, which `tests/bench.sh` sets) into
//! `report.md` and its SVG charts. Never shipped.

pub mod charts;
pub mod machine;
pub mod markdown;
pub mod results;

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// What `write_report` wrote, and the lines it skipped.
#[derive(Debug)]
pub struct Written {
    pub report: PathBuf,
    pub charts: Vec<PathBuf>,
    pub warnings: Vec<results::Warning>,
}

/// Reads `input`, writes report.md (and convergence.svg, ratios.svg when
/// there is something to draw) into `out_dir`.
pub fn write_report(input: &Path, out_dir: &Path) -> Result<Written> {
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    // A bench killed mid-write may leave a torn line; lossy keeps the rest.
    let r = results::parse(&String::from_utf8_lossy(&bytes));
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut charts = markdown::Charts::default();
    let mut written = Vec::new();
    let mut save = |name: &str, svg: String| -> Result<String> {
        let p = out_dir.join(name);
        std::fs::write(&p, svg).with_context(|| format!("writing {}", p.display()))?;
        written.push(p);
        Ok(name.to_string())
    };
    let dists: Vec<_> = r.distributions.iter().collect();
    if !dists.is_empty() {
        charts.convergence = Some(save("convergence.svg", charts::convergence_cdf(&dists)?)?);
    }
    let with_ratio: Vec<_> = r
        .figures
        .iter()
        .filter(|f| f.ratio.is_some_and(|x| x > 0.0))
        .collect();
    if !with_ratio.is_empty() {
        charts.ratios = Some(save("ratios.svg", charts::ratios(&with_ratio)?)?);
    }
    let md = markdown::render(
        &r,
        &machine::Machine::read(),
        &input.display().to_string(),
        &charts,
    );
    let report = out_dir.join("report.md");
    std::fs::write(&report, md).with_context(|| format!("writing {}", report.display()))?;
    Ok(Written {
        report,
        charts: written,
        warnings: r.warnings,
    })
}
