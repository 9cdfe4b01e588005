//! /proc counters of one process, and one idle window's figures.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a constant of the running system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// What one read of /proc/<pid> gives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Context switches (voluntary + involuntary) summed over every thread
    /// alive at the read: each is a wake-up of a thread, or a preemption.
    pub switches: u64,
    pub rss_kb: u64,
    pub hwm_kb: u64,
    pub anon_kb: u64,
    pub threads: u64,
}

impl Counters {
    pub fn read(pid: u32) -> Result<Counters> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let mut c = parse(&stat, &status)?;
        c.switches = 0;
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))?;
        for t in tasks.flatten() {
            // A thread may end between the listing and the read.
            if let Ok(s) = std::fs::read_to_string(t.path().join("status")) {
                c.switches += field(&s, "voluntary_ctxt_switches:").unwrap_or(0)
                    + field(&s, "nonvoluntary_ctxt_switches:").unwrap_or(0);
            }
        }
        Ok(c)
    }
}

/// `Key:  123 kB` → 123.
fn field(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Counters from /proc/<pid>/stat and /proc/<pid>/status text (the
/// process's own switches only: `read` sums its threads').
pub fn parse(stat: &str, status: &str) -> Result<Counters> {
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it start behind the last ')'. utime and stime are
    // fields 14 and 15, so the 12th and 13th after the state (field 3).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        bail!("unexpected /proc stat: {stat:?}");
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| -> Result<u64> {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("field {} of /proc stat: {stat:?}", i + 3))
    };
    Ok(Counters {
        cpu_ticks: num(11)? + num(12)?,
        switches: field(status, "voluntary_ctxt_switches:").unwrap_or(0)
            + field(status, "nonvoluntary_ctxt_switches:").unwrap_or(0),
        rss_kb: field(status, "VmRSS:").unwrap_or(0),
        hwm_kb: field(status, "VmHWM:").unwrap_or(0),
        anon_kb: field(status, "RssAnon:").unwrap_or(0),
        threads: field(status, "Threads:").unwrap_or(0),
    })
}

/// One process over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Proc {
    pub name: String,
    /// `tabby-node` or `bird`.
    pub kind: String,
    pub cpu_pct: f64,
    pub wakeups_per_s: f64,
    pub rss_kb: u64,
    pub hwm_kb: u64,
    pub anon_kb: u64,
    pub threads: u64,
}

impl Proc {
    pub fn between(
        name: &str,
        kind: &str,
        a: &Counters,
        b: &Counters,
        ticks_per_s: f64,
        wall_s: f64,
    ) -> Proc {
        let cpu_s = b.cpu_ticks.saturating_sub(a.cpu_ticks) as f64 / ticks_per_s;
        Proc {
            name: name.into(),
            kind: kind.into(),
            cpu_pct: 100.0 * cpu_s / wall_s,
            wakeups_per_s: b.switches.saturating_sub(a.switches) as f64 / wall_s,
            rss_kb: b.rss_kb,
            hwm_kb: b.hwm_kb,
            anon_kb: b.anon_kb,
            threads: b.threads,
        }
    }

    /// Megabytes (10^6 bytes) as the goal is written; /proc counts KiB.
    pub fn rss_mb(&self) -> f64 {
        self.rss_kb as f64 * 1024.0 / 1e6
    }

    pub fn hwm_mb(&self) -> f64 {
        self.hwm_kb as f64 * 1024.0 / 1e6
    }
}

pub struct Window {
    pub wall_s: f64,
    pub procs: Vec<Proc>,
}

impl Window {
    pub fn of(&self, kind: &str) -> Vec<&Proc> {
        self.procs.iter().filter(|p| p.kind == kind).collect()
    }

    pub fn to_json(&self) -> Value {
        let procs: Vec<Value> = self
            .procs
            .iter()
            .map(|p| {
                json!({"name": p.name, "kind": p.kind, "cpu_pct": p.cpu_pct,
                "wakeups_per_s": p.wakeups_per_s, "rss_kb": p.rss_kb, "hwm_kb": p.hwm_kb,
                "anon_kb": p.anon_kb, "threads": p.threads})
            })
            .collect();
        json!({"wall_s": self.wall_s, "procs": procs})
    }

    pub fn load(path: &std::path::Path) -> Result<Window> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let v: Value = serde_json::from_str(&text)?;
        let procs = v["procs"]
            .as_array()
            .context("window without procs")?
            .iter()
            .map(|p| Proc {
                name: p["name"].as_str().unwrap_or_default().into(),
                kind: p["kind"].as_str().unwrap_or_default().into(),
                cpu_pct: p["cpu_pct"].as_f64().unwrap_or(f64::NAN),
                wakeups_per_s: p["wakeups_per_s"].as_f64().unwrap_or(f64::NAN),
                rss_kb: p["rss_kb"].as_u64().unwrap_or(0),
                hwm_kb: p["hwm_kb"].as_u64().unwrap_or(0),
                anon_kb: p["anon_kb"].as_u64().unwrap_or(0),
                threads: p["threads"].as_u64().unwrap_or(0),
            })
            .collect();
        Ok(Window {
            wall_s: v["wall_s"].as_f64().unwrap_or(f64::NAN),
            procs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (tabby (node) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 150 50 0 0 20 0 3 0 1000 100000 2000 18446744073709551615";
    const STATUS: &str = "Name:\ttabby-node\nVmHWM:\t   25000 kB\nVmRSS:\t   20480 kB\nRssAnon:\t   12000 kB\nThreads:\t3\nvoluntary_ctxt_switches:\t70\nnonvoluntary_ctxt_switches:\t5\n";

    #[test]
    fn parses_stat_past_a_command_name_with_parentheses() {
        let c = parse(STAT, STATUS).unwrap();
        assert_eq!(c.cpu_ticks, 200);
        assert_eq!(
            (c.rss_kb, c.hwm_kb, c.anon_kb, c.threads),
            (20480, 25000, 12000, 3)
        );
        assert_eq!(c.switches, 75);
        assert!(parse("garbage", STATUS).is_err());
        assert!(parse("1 (x) S 1", STATUS).is_err());
    }

    #[test]
    fn window_figures_and_json_round_trip() {
        let a = parse(STAT, STATUS).unwrap();
        let mut b = a.clone();
        b.cpu_ticks += 30; // 0.3 s of CPU at 100 ticks/s
        b.switches += 600;
        let p = Proc::between("node-1", "tabby-node", &a, &b, 100.0, 60.0);
        assert!((p.cpu_pct - 0.5).abs() < 1e-9, "{}", p.cpu_pct);
        assert!((p.wakeups_per_s - 10.0).abs() < 1e-9);
        assert!((p.rss_mb() - 20.97152).abs() < 1e-9);
        let w = Window {
            wall_s: 60.0,
            procs: vec![p.clone()],
        };
        let f = std::env::temp_dir().join(format!("bench-idle-{}.json", std::process::id()));
        std::fs::write(&f, w.to_json().to_string()).unwrap();
        let back = Window::load(&f).unwrap();
        let _ = std::fs::remove_file(&f);
        assert_eq!(back.procs, vec![p]);
        assert_eq!(back.of("bird").len(), 0);
    }

    #[test]
    fn a_live_process_reads() {
        let c = Counters::read(std::process::id()).unwrap();
        assert!(c.rss_kb > 0 && c.threads >= 1, "{c:?}");
    }
}
