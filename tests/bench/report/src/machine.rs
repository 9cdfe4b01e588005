//! The machine the figures came from, read from /proc when the report is
//! written (the end of the run): figures on a shared 2-core machine under
//! load mean something else than on an idle 16-core one, so the report
//! always says which.

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Machine {
    /// What `nproc` prints: the CPUs this process may run on.
    pub cpus: Option<usize>,
    pub cpu_model: Option<String>,
    pub mem_total_kib: Option<u64>,
    pub mem_available_kib: Option<u64>,
    /// `uname -r`.
    pub kernel: Option<String>,
    /// The 1, 5 and 15 minute load averages.
    pub load: Option<String>,
    /// UTC, "YYYY-MM-DD HH:MM".
    pub date: String,
}

impl Machine {
    pub fn read() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let meminfo = read("/proc/meminfo").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().ok().map(|n| n.get()),
            cpu_model: read("/proc/cpuinfo").and_then(|t| cpu_model(&t)),
            mem_total_kib: meminfo_kib(&meminfo, "MemTotal"),
            mem_available_kib: meminfo_kib(&meminfo, "MemAvailable"),
            kernel: read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()),
            load: read("/proc/loadavg").and_then(|t| loadavg(&t)),
            date: utc_date(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            ),
        }
    }
}

pub fn meminfo_kib(meminfo: &str, key: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let (k, rest) = l.split_once(':')?;
        (k == key).then(|| rest.split_whitespace().next()?.parse().ok())?
    })
}

pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "model name").then(|| v.trim().to_string())
    })
}

pub fn loadavg(text: &str) -> Option<String> {
    let f: Vec<&str> = text.split_whitespace().take(3).collect();
    (f.len() == 3).then(|| f.join(" "))
}

/// Seconds since the epoch as a UTC date, without a date crate: the
/// days-to-civil conversion of Howard Hinnant's date algorithms.
pub fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hh, mm) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00");
        // 2000-02-29 12:34 UTC, a leap day.
        assert_eq!(utc_date(951_827_640), "2000-02-29 12:34");
        assert_eq!(utc_date(1_796_168_400), "2026-12-01 23:40");
    }

    #[test]
    fn proc_files() {
        let mi = "MemTotal:        8123456 kB\nMemFree: 1 kB\nMemAvailable:    4000000 kB\n";
        assert_eq!(meminfo_kib(mi, "MemTotal"), Some(8_123_456));
        assert_eq!(meminfo_kib(mi, "MemAvailable"), Some(4_000_000));
        assert_eq!(meminfo_kib(mi, "SwapTotal"), None);
        assert_eq!(
            cpu_model("processor\t: 0\nmodel name\t: Some CPU @ 2.00GHz\n").as_deref(),
            Some("Some CPU @ 2.00GHz")
        );
        assert_eq!(
            loadavg("4.12 5.01 6.00 3/900 1234\n").as_deref(),
            Some("4.12 5.01 6.00")
        );
        assert_eq!(loadavg(""), None);
    }
}
