//! `neigh`: the kernel's ARP and NDP tables (`arp_cache`, `ndisc_cache`)
//! overflowing or nearly full. When they overflow, new neighbour entries
//! fail (`neighbour: arp_cache: neighbor table overflow!` in dmesg, `ping:
//! sendmsg: No buffer space available`), BGP sessions to peers not yet
//! resolved stay in Connect and blocks fall back with reasons that do not
//! say why.
//!
//! The tables are host-wide: one per family for every network namespace,
//! so the figures are the host's wherever the doctor runs. They are read
//! over netlink (`ip -s ntable show`): the thresholds, the entry count and
//! the kernel's `table_fulls` counter (the sum of the column of that name
//! in `/proc/net/stat/arp_cache`, which, like
//! `/proc/sys/net/ipv4/neigh/default`, exists only in the host's
//! namespace). `table_fulls` counts since boot, so only a counter that
//! rises while the doctor looks (1 s, taken only when it is non-zero) is
//! an overflow now; an old count alone is no finding, or every run after
//! one past overflow would warn. Permanent entries (Tabby's VTEPs) are in
//! the count but do not count against `gc_thresh3`; the ones in this
//! namespace are taken off, other namespaces' cannot be seen.

use super::{Ctx, Finding};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use tabby_felix_lite::neigh_limits::{self, Family, Thresholds};
use tabby_felix_lite::netlink::ntable::{self, NeighTable};
use tabby_felix_lite::netlink::{neigh, NlSocket};

const CHECK: &str = "neigh";
/// How long a non-zero `table_fulls` is watched for a rise.
const WATCH: Duration = Duration::from_secs(1);

pub async fn check(_ctx: &Ctx) -> Vec<Finding> {
    let Ok(mut sock) = NlSocket::open() else {
        return Vec::new(); // the kernel source's own finding says why
    };
    let Ok(first) = ntable::dump_tables(&mut sock) else {
        return Vec::new();
    };
    let later = if first.iter().any(|t| t.table_fulls > 0) {
        tokio::time::sleep(WATCH).await;
        ntable::dump_tables(&mut sock).ok()
    } else {
        None
    };
    let mut permanent = |ipv6: bool| {
        let n = if ipv6 {
            neigh::dump_neighbours_of::<Ipv6Addr>(&mut sock, 0).map(|v| count(&v, |n| n.permanent))
        } else {
            neigh::dump_neighbours_of::<Ipv4Addr>(&mut sock, 0).map(|v| count(&v, |n| n.permanent))
        };
        n.unwrap_or(0)
    };
    let mut out = Vec::new();
    for t in &first {
        let here = permanent(t.ipv6);
        let fulls = later
            .as_ref()
            .and_then(|l| l.iter().find(|x| x.ipv6 == t.ipv6))
            .map(|x| x.table_fulls);
        out.extend(judge(t, here, fulls));
    }
    out
}

fn count<T>(v: &[T], f: impl Fn(&T) -> bool) -> u64 {
    v.iter().filter(|x| f(x)).count() as u64
}

/// The finding for one table, given the permanent entries seen in this
/// namespace and `table_fulls` read [`WATCH`] later (None: not watched,
/// it was 0).
pub fn judge(t: &NeighTable, permanent_here: u64, fulls_later: Option<u64>) -> Option<Finding> {
    let family = Family::of(t);
    let now = Thresholds::of(t);
    let counted = u64::from(t.entries).saturating_sub(permanent_here);
    let rising = fulls_later.filter(|&l| l > t.table_fulls);
    let nearly_full = counted * 10 >= u64::from(t.gc_thresh3) * 9;
    if rising.is_none() && !nearly_full {
        return None;
    }
    let demand = counted.max(u64::from(t.gc_thresh3));
    let target = neigh_limits::size(now, demand).unwrap_or(now);
    let mut evidence = format!(
        "{}: {} entries (host-wide, every network namespace; {permanent_here} of them \
         permanent in this one, which the limit does not count), \
         {} = {}, {} = {}",
        t.name,
        t.entries,
        family.key("gc_thresh2"),
        t.gc_thresh2,
        family.key("gc_thresh3"),
        t.gc_thresh3
    );
    evidence.push_str(&format!(", table_fulls {}", t.table_fulls));
    if let Some(l) = rising {
        evidence.push_str(&format!(" → {l} in {} s", WATCH.as_secs()));
    }
    let fix = format!(
        "on the host (the table is shared by every network namespace): sysctl -w {} \
         (and the same in /etc/sysctl.d/ to keep it across reboots)",
        target.sysctl_args(family)
    );
    let label = family.label();
    let what = match rising {
        Some(l) => Finding::error(
            CHECK,
            format!(
                "the {label} neighbour table is overflowing: the kernel refused {} new \
                 entries while the doctor watched, so lookups of neighbours not yet resolved \
                 fail (No buffer space available) and sessions to such peers stay in Connect",
                l - t.table_fulls
            ),
        ),
        None => Finding::warning(
            CHECK,
            format!(
                "the {label} neighbour table is nearly full: up to {counted} of its \
                 {} entries are in use; past it new {} lookups fail",
                t.gc_thresh3,
                if t.ipv6 { "NDP" } else { "ARP" }
            ),
        ),
    };
    Some(what.evidence(evidence).fix(fix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Severity;

    fn table(entries: u32, fulls: u64) -> NeighTable {
        NeighTable {
            ipv6: false,
            name: "arp_cache".into(),
            gc_thresh1: 128,
            gc_thresh2: 512,
            gc_thresh3: 1024,
            entries,
            table_fulls: fulls,
        }
    }

    #[test]
    fn a_table_with_room_has_nothing_even_after_an_old_overflow() {
        assert_eq!(judge(&table(300, 0), 0, None), None);
        // Overflowed once since boot, not now.
        assert_eq!(judge(&table(300, 17), 0, Some(17)), None);
        // 2,450 entries, but 2,000 are this namespace's permanent VTEPs.
        assert_eq!(judge(&table(2450, 0), 2000, None), None);
    }

    #[test]
    fn a_rising_table_fulls_is_an_overflow_now_with_the_sysctls_to_raise() {
        let f = judge(&table(1024, 12), 49, Some(30)).expect("a finding");
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(f.check, "neigh");
        assert!(f.what.contains("refused 18 new entries"), "{}", f.what);
        assert!(
            f.evidence.contains("table_fulls 12 → 30 in 1 s"),
            "{}",
            f.evidence
        );
        assert!(
            f.evidence.contains("49 of them permanent"),
            "{}",
            f.evidence
        );
        // Sized for at least the current hard limit: 2 × 1024 + 1024.
        assert!(
            f.fix.contains(
                "sysctl -w net.ipv4.neigh.default.gc_thresh1=384 \
                 net.ipv4.neigh.default.gc_thresh2=1536 net.ipv4.neigh.default.gc_thresh3=3072"
            ),
            "{}",
            f.fix
        );
    }

    #[test]
    fn ninety_percent_of_the_hard_limit_is_nearly_full() {
        assert_eq!(judge(&table(921, 0), 0, None), None);
        let f = judge(&table(922, 0), 0, None).expect("a finding");
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.what.contains("up to 922 of its 1024"), "{}", f.what);
        let mut v6 = table(5000, 0);
        v6.ipv6 = true;
        v6.name = "ndisc_cache".into();
        let f = judge(&v6, 0, None).expect("a finding");
        assert!(
            f.what.contains("IPv6") && f.what.contains("NDP"),
            "{}",
            f.what
        );
        assert!(
            f.fix.contains("net.ipv6.neigh.default.gc_thresh3=11264"),
            "{}",
            f.fix
        );
    }
}
