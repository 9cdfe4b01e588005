//! Optional kernel route install for the standalone daemon: best paths
//! learned from peers go into the main table with `proto bgp`, through one
//! long-lived `ip -batch` process (one fork for the daemon's lifetime).
//!
//! In the full node agent, kernel writes belong to felix-lite; this hook is
//! only for `tabby-node bgp` running on its own, like `bird`'s kernel
//! protocol.

use anyhow::Context;
use ipnet::IpNet;
use std::collections::HashSet;
use std::process::Stdio;
use tabby_bgp::speaker::{BestPath, BestPathEvent, BestPathWatch, Speaker};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::broadcast::error::RecvError;

struct Kernel {
    _child: Child,
    stdin: ChildStdin,
    installed: HashSet<IpNet>,
}

impl Kernel {
    fn spawn() -> anyhow::Result<Kernel> {
        let mut child = Command::new("ip")
            .args(["-force", "-batch", "-"])
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting `ip -batch` for route install")?;
        let stdin = child.stdin.take().context("ip -batch stdin")?;
        Ok(Kernel {
            _child: child,
            stdin,
            installed: HashSet::new(),
        })
    }

    fn set(&mut self, b: &BestPath, out: &mut String) {
        // Our own prefixes and next-hop-less paths are not routes to install.
        match (b.from_peer, b.next_hop) {
            (Some(_), Some(nh)) => {
                out.push_str(&format!("route replace {} via {nh} proto bgp\n", b.prefix));
                self.installed.insert(b.prefix);
            }
            _ => self.unset(b.prefix, out),
        }
    }

    fn unset(&mut self, prefix: IpNet, out: &mut String) {
        if self.installed.remove(&prefix) {
            out.push_str(&format!("route del {prefix} proto bgp\n"));
        }
    }

    async fn write(&mut self, cmds: &str) -> anyhow::Result<()> {
        if !cmds.is_empty() {
            self.stdin
                .write_all(cmds.as_bytes())
                .await
                .context("writing to `ip -batch`")?;
            self.stdin.flush().await?;
        }
        Ok(())
    }
}

pub async fn run(speaker: Speaker, mut watch: BestPathWatch) -> anyhow::Result<()> {
    let mut k = Kernel::spawn()?;
    loop {
        let mut cmds = String::new();
        let keep: HashSet<IpNet> = watch.snapshot.iter().map(|b| b.prefix).collect();
        let gone: Vec<IpNet> = k.installed.difference(&keep).copied().collect();
        for p in gone {
            k.unset(p, &mut cmds);
        }
        for b in &watch.snapshot {
            k.set(b, &mut cmds);
        }
        k.write(&cmds).await?;
        loop {
            match watch.changes.recv().await {
                Ok(batch) => {
                    let mut cmds = String::new();
                    for e in batch.iter() {
                        match e {
                            BestPathEvent::Updated(b) => k.set(b, &mut cmds),
                            BestPathEvent::Withdrawn(p) => k.unset(*p, &mut cmds),
                        }
                    }
                    k.write(&cmds).await?;
                }
                Err(RecvError::Lagged(_)) => break,
                Err(RecvError::Closed) => return Ok(()),
            }
        }
        watch = speaker.watch().await?;
    }
}
