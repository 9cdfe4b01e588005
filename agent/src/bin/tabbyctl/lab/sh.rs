//! Running the tools an operator would (`ip`, `sysctl`, `ping`) and
//! watching the lab's daemons by pid.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion; a non-zero exit is an error quoting the
/// command and its stderr.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

pub fn ip(args: &[&str]) -> Result<Output> {
    run(Command::new("ip").args(args))
}

/// `ip -n NS ...`
pub fn ip_in(ns: &str, args: &[&str]) -> Result<Output> {
    run(Command::new("ip").arg("-n").arg(ns).args(args))
}

/// A command run inside namespace `ns` with `ip netns exec`.
pub fn in_ns(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

pub fn sysctl_in(ns: &str, setting: &str) -> Result<()> {
    run(in_ns(ns, "sysctl").args(["-q", "-w", setting])).map(|_| ())
}

pub fn netns_list() -> Result<Vec<String>> {
    let out = ip(&["netns", "list"])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

pub fn netns_pids(ns: &str) -> Vec<u32> {
    ip(&["netns", "pids", ns])
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Starts `cmd` detached from us (own process group, output to `log`), so
/// it outlives this tabbyctl and a Ctrl-C in the terminal does not reach it.
/// `ip netns exec` and `env` exec in place, so the pid is the daemon's own.
pub fn spawn_detached(cmd: &mut Command, log: &Path) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    if let Some(d) = log.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone()?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", describe(cmd)))?;
    Ok(child.id())
}

/// Whether `pid` is a live process whose command line mentions `what`
/// (so a recycled pid is not mistaken for our daemon). Zombies are dead.
pub fn alive(pid: u32, what: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, None | Some("Z") | Some("X")) {
        return false;
    }
    // A process in the middle of execve shows an empty command line for a
    // moment: that is our daemon starting, not a stranger.
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.is_empty() || String::from_utf8_lossy(&c).contains(what))
        .unwrap_or(false)
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Polls `f` every 100 ms until it is true or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends SIGTERM, then SIGKILL if `pid` is still alive after `grace`.
pub fn stop(pid: u32, what: &str, grace: Duration) {
    if !alive(pid, what) {
        return;
    }
    signal(pid, "TERM");
    if !wait_for(grace, || !alive(pid, what)) {
        signal(pid, "KILL");
        wait_for(Duration::from_secs(2), || !alive(pid, what));
    }
}

/// The directory of the running tabbyctl, where cargo (and an install)
/// puts tabby-node and the tabby CNI plugin too.
pub fn bin_dir() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("locating the tabbyctl binary")?;
    Ok(exe
        .parent()
        .context("tabbyctl binary has no directory")?
        .to_path_buf())
}

pub fn binary(name: &str) -> Result<std::path::PathBuf> {
    let p = bin_dir()?.join(name);
    if !p.exists() {
        bail!(
            "{} not found next to tabbyctl (build the workspace: cargo build --workspace)",
            p.display()
        );
    }
    Ok(p)
}

/// One line of `lab` progress: `[<lab>] [<what>] <msg>`.
pub fn step(lab: &str, what: &str, msg: impl std::fmt::Display) {
    println!("[{lab}] [{what}] {msg}");
}

/// Waits until tabbyctl itself can list pools through a lab's datastore
/// server (etcd, or the API stand-in) from inside `netns` with `env`,
/// naming the server and its log if it never answers.
pub fn wait_datastore(
    netns: &str,
    env: &[(String, String)],
    what: &str,
    endpoint: &str,
    log: &Path,
) -> Result<()> {
    let tabbyctl = std::env::current_exe()?;
    let ok = wait_for(Duration::from_secs(30), || {
        let mut c = in_ns(netns, "env");
        for (k, v) in env {
            c.arg(format!("{k}={v}"));
        }
        c.arg(&tabbyctl).args(["get", "ippools"]);
        run(&mut c).is_ok()
    });
    if !ok {
        bail!(
            "{what} in {netns} did not answer on {endpoint} within 30 s (log: {})",
            log.display()
        );
    }
    Ok(())
}
