//! The doctor's pings: the system `ping`, one echo, bounded in time, so a
//! finding can quote the very command an operator would type to see it
//! again. Pings go only to node and tunnel addresses the datastore lists.

use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::process::Command;

/// How one ping went.
#[derive(Debug, Clone)]
pub struct Ping {
    /// An echo reply came back.
    pub ok: bool,
    /// The command as typed: `ping -c 1 -w 1 -M do -s 1472 172.31.2.13`.
    pub cmd: String,
    /// What it said that matters: the loss line or the error.
    pub said: String,
}

impl Ping {
    /// `ping ... 172.31.1.12: reply` / `: no reply (...)`, for evidence.
    pub fn describe(&self) -> String {
        if self.ok {
            format!("`{}`: reply", self.cmd)
        } else {
            format!("`{}`: no reply ({})", self.cmd, self.said)
        }
    }

    /// The path MTU the kernel already knows, when ping refused to send
    /// (`ping: local error: message too long, mtu=1400`).
    pub fn local_mtu(&self) -> Option<u32> {
        let (_, rest) = self.said.split_once("mtu=")?;
        rest.trim()
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .ok()
    }
}

/// `ping -c 1 -w <s> <opts> <dst>`: `timeout` for the whole ping (a
/// deadline, not `-W`, so a lost reply does not keep it lingering; at
/// least a second, as older iputils count whole seconds).
pub async fn ping(timeout: Duration, opts: &[&str], dst: Ipv4Addr) -> Ping {
    let wait = timeout.as_secs().max(1);
    let mut args: Vec<String> = vec!["-c".into(), "1".into(), "-w".into(), wait.to_string()];
    args.extend(opts.iter().map(|s| s.to_string()));
    args.push(dst.to_string());
    let cmd = format!("ping {}", args.join(" "));
    let mut c = Command::new("ping");
    c.arg("-n")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    // The process gets its own wait plus slack to start and report.
    let run = tokio::time::timeout(Duration::from_secs(wait + 3), c.output()).await;
    let (ok, said) = match run {
        Err(_) => (false, "ping did not finish".to_string()),
        Ok(Err(e)) => (false, format!("cannot run ping: {e}")),
        Ok(Ok(out)) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let said = text
                .lines()
                .find(|l| l.contains("error") || l.contains("ping:"))
                .or_else(|| text.lines().find(|l| l.contains("transmitted")))
                .unwrap_or("")
                .trim()
                .to_string();
            (out.status.success(), said)
        }
    };
    Ping { ok, cmd, said }
}

/// The largest packet (IP total length) in `(pass, fail)` that gets
/// through with DF set, bisecting with at most `steps` pings; `pass` is a
/// size known to get through.
pub async fn largest_passing(
    timeout: Duration,
    dst: Ipv4Addr,
    mut pass: u32,
    mut fail: u32,
    steps: u32,
) -> u32 {
    for _ in 0..steps {
        if fail <= pass + 1 {
            break;
        }
        let mid = pass + (fail - pass) / 2;
        let p = df_ping(timeout, dst, mid).await;
        if p.ok {
            pass = mid;
        } else if let Some(m) = p.local_mtu().filter(|m| *m > pass && *m < mid) {
            // The kernel learnt the path MTU meanwhile (an ICMP
            // "fragmentation needed"): that is the answer's upper bound.
            fail = m + 1;
        } else {
            fail = mid;
        }
    }
    pass
}

/// A ping whose IP packet is `size` bytes, with DF set.
pub async fn df_ping(timeout: Duration, dst: Ipv4Addr, size: u32) -> Ping {
    let payload = size.saturating_sub(28).to_string();
    ping(timeout, &["-M", "do", "-s", &payload], dst).await
}
