//! The report from a small results file: tables, missing sections, skipped
//! lines and both charts, through the library and through the binary.

use std::path::Path;
use std::process::Command;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/results.jsonl");

#[test]
fn report_from_the_fixture() {
    let out = tempfile::tempdir().unwrap();
    let w = tabby_bench_report::write_report(Path::new(FIXTURE), out.path()).unwrap();
    let md = std::fs::read_to_string(&w.report).unwrap();

    // One row per figure, with value, reference, ratio, goal and met.
    assert!(md.contains(
        "| fib | no-op pass, 100k routes | time | 12.30 ms | ip -batch add: 180.0 ms | 0.070× | <= 50 ms | yes |"
    ), "{md}");
    assert!(md.contains(
        "| bgp | single: 1 feeder x 100000: tabby | rss | 16.10 MiB | BIRD 2: 14.20 MiB | 1.13× | <= 1.0x BIRD | **no** |"
    ), "{md}");
    // The IPAM line has no ratio field: it is value / reference_value.
    assert!(md.contains("| ipam | assign (etcd) | rate | 820.0 ops/s | raw etcd CAS transaction: 1500 ops/s | 0.547× |"), "{md}");
    // A figure without a reference says so rather than leaving cells out.
    assert!(
        md.contains(
            "| bgp | single: 1 feeder x 100000: direct (no SUT) | time | 0.002 s | – | – | – | – |"
        ),
        "{md}"
    );
    // Distributions: count and nearest-rank quantiles.
    assert!(
        md.contains("| converge | sqlite, 10 nodes x 50 claims | 60 | "),
        "{md}"
    );
    // Section 2 has no lines: said to be missing, not dropped.
    let idle = md.split("## 2. Idle cost per node").nth(1).unwrap();
    assert!(
        idle.trim_start()
            .starts_with("**Missing**: no results from `idle`"),
        "{md}"
    );
    // Section 1 has watch and converge; nothing is missing there.
    let s1 = md
        .split("## 1.")
        .nth(1)
        .unwrap()
        .split("## 2.")
        .next()
        .unwrap();
    assert!(!s1.contains("Missing"), "{s1}");
    // The machine and the charts, by relative link.
    assert!(md.contains("- CPUs (`nproc`): "));
    assert!(md.contains("- kernel (`uname -r`): "));
    assert!(md.contains("- load average (1, 5, 15 min)"));
    assert!(md.contains("](convergence.svg)") && md.contains("](ratios.svg)"));

    // The fixture's line 5 is cut short; every other line still counts.
    assert_eq!(w.warnings.len(), 1);
    assert_eq!(w.warnings[0].line, 5);
    assert!(md.contains("- line 5: not JSON"), "{md}");
    assert!(md.contains("9 figures, 2 distributions"), "{md}");

    let cdf = std::fs::read_to_string(out.path().join("convergence.svg")).unwrap();
    assert!(cdf.starts_with("<svg") && cdf.trim_end().ends_with("</svg>"));
    for text in [
        "ms from the start of the CNI ADD",
        "fraction of (claim, node) pairs",
        "converge: sqlite, 10 nodes x 50 claims (n=60)",
        "converge: sqlite-poll, 10 nodes x 50 claims (n=60)",
    ] {
        assert!(
            cdf.contains(&text_element(text)),
            "convergence.svg lacks {text}"
        );
    }
    let bars = std::fs::read_to_string(out.path().join("ratios.svg")).unwrap();
    assert!(bars.starts_with("<svg") && bars.trim_end().ends_with("</svg>"));
    for text in [
        "ratio to the reference (log scale; 1 = as the reference)",
        "§3 fib: no-op pass, 100k routes, time vs ip -batch add",
        "§5 ipam: assign (etcd), rate vs raw etcd CAS transaction",
        "goal (a ratio)",
        "goal missed",
        " 4.00×",
    ] {
        assert!(
            bars.contains(&text_element(text)),
            "ratios.svg lacks {text}"
        );
    }
    // 8 figures have a ratio, 1 has none: in the fixture 4 met, 2 missed,
    // 2 without a goal, each colour also once in the legend.
    for (rgb, count) in [("2E8B57", 5), ("C83C32", 3), ("788296", 3)] {
        assert_eq!(
            bars.matches(&format!("fill=\"#{rgb}\"")).count(),
            count,
            "{rgb}: {bars}"
        );
    }
}

/// plotters' SVG backend writes each text as `<text ...>\nTEXT\n</text>`.
fn text_element(text: &str) -> String {
    format!(">\n{text}\n</text>")
}

#[test]
fn the_binary_warns_and_still_renders() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("results.jsonl");
    std::fs::write(
        &input,
        concat!(
            "{\"section\":\"4\",\"bench\":\"bgp\",\"case\":\"churn: tabby\",\"metric\":\"cpu\",\"unit\":\"s\",\"value\":0.05,\"reference\":\"BIRD 2\",\"reference_value\":0.04,\"ratio\":1.25,\"goal\":\"<= 0.7x BIRD\",\"met\":false}\n",
            "{\"section\":\"4\",\"bench\":\"bgp\",\"case\":\"x\",\"metric\":\"cpu\"}\n",
            "\u{0}\u{1}garbage\n",
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_bench-report"))
        .args([&input, &out])
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("line 2: no \"unit\" string"), "{stderr}");
    assert!(stderr.contains("line 3: not JSON"), "{stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("report.md"), "{stdout}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| bgp | churn: tabby | cpu | 0.050 s | BIRD 2: 0.040 s | 1.25× | <= 0.7x BIRD | **no** |"), "{md}");
    // No distribution: no CDF file, and the report says why.
    assert!(!out.join("convergence.svg").exists());
    assert!(md.contains("no convergence CDF"));
    for missing in ["`watch`, `converge`", "`idle`", "`fib`", "`ipam`"] {
        assert!(
            md.contains(&format!("**Missing**: no results from {missing}")),
            "{missing}: {md}"
        );
    }
    // A results file that is not there is an error, not an empty report.
    let run = Command::new(env!("CARGO_BIN_EXE_bench-report"))
        .args([&dir.path().join("nope.jsonl"), &out])
        .output()
        .unwrap();
    assert!(!run.status.success());
}
