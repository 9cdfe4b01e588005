//! The SQLite watch alone: a writer process commits IP pools at irregular
//! intervals while this process watches the same file, once woken (the
//! default) and once polling every 100 ms (the store before its wake-up).
//! Prints p50/p99/max from the start of each write in the writer to its
//! event in the watcher, both read from the system-wide monotonic clock.
//! Benchmark-only.

#[path = "../../emit.rs"]
mod emit;

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tabby_agent::datastore::sqlite::{SqliteStore, WatchOptions};
use tabby_agent::datastore::Datastore;
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::{Kind, Object, Resource};

/// CLOCK_MONOTONIC in ns: the same clock in every process.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn pool(n: usize) -> Resource {
    let mut spec = IpPoolSpec {
        cidr: format!("10.{}.{}.0/24", 100 + n / 256, n % 256),
        ..Default::default()
    };
    spec.fill_defaults(false);
    Resource::IpPool(Object::new("IPPool", &format!("w{n}"), spec))
}

/// The writer: one line per write, "NAME START_NS COMMITTED_NS".
async fn writer(db: &Path, writes: usize, round: usize) -> Result<()> {
    let store = SqliteStore::open(db).await?;
    for i in 0..writes {
        // 20..57 ms apart, never in step with a 100 ms poll.
        tokio::time::sleep(Duration::from_millis(20 + (i * 7919 % 37) as u64)).await;
        let n = round * writes + i;
        let t = mono_ns();
        store.create(pool(n)).await?;
        println!("w{n} {t} {}", mono_ns());
    }
    Ok(())
}

async fn row(
    label: &str,
    db: &Path,
    opts: WatchOptions,
    writes: usize,
    round: usize,
) -> Result<[f64; 3]> {
    let store = SqliteStore::open_with(db, opts).await?;
    let from = store.list(Kind::IpPool, None).await?.revision;
    let mut w = store.watch(&[Kind::IpPool], from).await?;
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--writer",
            &db.display().to_string(),
            &writes.to_string(),
            &round.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the writer")?;
    let out = child.stdout.take().context("writer stdout")?;
    let mut got = std::collections::HashMap::new();
    while got.len() < writes {
        let ev = tokio::time::timeout(Duration::from_secs(30), w.next())
            .await
            .context("no event in 30 s")?
            .context("watch ended")??;
        got.insert(ev.resource.name().to_string(), mono_ns());
    }
    if !child.wait()?.success() {
        bail!("writer failed");
    }
    // From the start of the write, and from its commit (the wake-up's own
    // share).
    let (mut lat, mut after_commit): (Vec<f64>, Vec<f64>) = BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            let mut f = l.split(' ');
            let seen = *got.get(f.next()?)?;
            let start: u64 = f.next()?.parse().ok()?;
            let done: u64 = f.next()?.parse().ok()?;
            let ms = |t: u64| seen.saturating_sub(t) as f64 / 1e6;
            Some((ms(start), ms(done)))
        })
        .unzip();
    if lat.len() != writes {
        bail!("{} of {writes} writes matched", lat.len());
    }
    lat.sort_by(f64::total_cmp);
    after_commit.sort_by(f64::total_cmp);
    let p = |v: &[f64], q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    println!(
        "{label:<34} writes {writes:>4}  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  (after COMMIT: p50 {:.2} ms, p99 {:.2} ms)",
        p(&lat, 0.5),
        p(&lat, 0.99),
        lat[lat.len() - 1],
        p(&after_commit, 0.5),
        p(&after_commit, 0.99),
    );
    Ok([p(&lat, 0.5), p(&lat, 0.99), lat[lat.len() - 1]])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--writer") {
        let [_, db, n, round] = &args[..] else {
            bail!("--writer DB WRITES ROUND");
        };
        return writer(Path::new(db), n.parse()?, round.parse()?).await;
    }
    let writes: usize = match args.first() {
        Some(n) => n.parse().context("usage: bench-watch [WRITES]")?,
        None => 200,
    };
    let dir = std::env::temp_dir().join(format!("tabby-bench-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("tabby.db");
    let r = async {
        let wake = row(
            "sqlite watch, other process: wake-up",
            &db,
            WatchOptions::default(),
            writes,
            0,
        )
        .await?;
        let poll = WatchOptions {
            wake: false,
            poll: Duration::from_millis(100),
        };
        let polled = row("  reference: 100 ms poll", &db, poll, writes, 1).await?;
        // Issue 16 §1's results (BENCH_RESULTS): the wake-up against the
        // poll it replaced, from the start of each write.
        let case = format!("sqlite watch, another process's write -> event, {writes} writes");
        let metrics = ["latency_p50", "latency_p99", "latency_max"];
        for ((metric, w), p) in metrics.into_iter().zip(wake).zip(polled) {
            emit::figure("1", "watch", &case, metric, "ms", w)
                .reference("100 ms poll", p)
                .write();
        }
        anyhow::Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    r
}
