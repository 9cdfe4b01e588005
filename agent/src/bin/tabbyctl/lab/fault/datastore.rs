//! Datastore faults: the datastore gone, an address a CNI ADD took whose
//! DEL never came, and a Node whose VXLAN tunnel address is another host's.

use super::super::sh;
use super::super::state::{DatastoreKind, Lab};
use super::super::up;
use super::Fault;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

pub const FAULTS: &[Fault] = &[
    Fault {
        name: "datastore-down",
        about: "the datastore unreachable: etcd stopped, or the SQLite file replaced by a directory",
        inject: down_inject,
        clear: down_clear,
    },
    Fault {
        name: "ipam-leak",
        about: "an address assigned an hour ago for a pod that never existed (an ADD whose DEL never came)",
        inject: leak_inject,
        clear: leak_clear,
    },
    Fault {
        name: "vtep-conflict",
        about: "another node's ipv4VXLANTunnelAddr set to this node's IP in the datastore",
        inject: vtep_inject,
        clear: vtep_clear,
    },
];

/// Where `datastore-down` keeps the SQLite files while it is injected.
fn held_dir(lab: &Lab) -> PathBuf {
    lab.dir.join("tabby.db.fault-down")
}

const DB_FILES: [&str; 3] = ["tabby.db", "tabby.db-wal", "tabby.db-shm"];

fn down_inject(lab: &mut Lab, _: usize) -> Result<()> {
    match lab.datastore {
        DatastoreKind::Sqlite => {
            let held = held_dir(lab);
            if held.exists() {
                return Ok(());
            }
            std::fs::create_dir(&held)?;
            for f in DB_FILES {
                let p = lab.dir.join(f);
                if p.exists() {
                    std::fs::rename(&p, held.join(f))
                        .with_context(|| format!("moving {}", p.display()))?;
                }
            }
            // Open file descriptors keep working; anything opening the
            // database anew (tabbyctl, the doctor, a restarted daemon)
            // finds a directory, which not even root can open as SQLite.
            std::fs::create_dir(lab.dir.join("tabby.db"))?;
            Ok(())
        }
        DatastoreKind::Etcdv3 => {
            if let Some(p) = lab.etcd_pid.filter(|p| sh::alive(*p, "etcd")) {
                sh::stop(p, "etcd", Duration::from_secs(10));
            }
            Ok(())
        }
        DatastoreKind::Kubernetes => {
            bail!("datastore-down: not on kubernetes labs (the API stand-in keeps its state in memory)")
        }
    }
}

fn down_clear(lab: &mut Lab, _: usize) -> Result<()> {
    match lab.datastore {
        DatastoreKind::Sqlite => {
            let held = held_dir(lab);
            if !held.exists() {
                return Ok(());
            }
            let db = lab.dir.join("tabby.db");
            if db.is_dir() {
                std::fs::remove_dir(&db).with_context(|| format!("removing {}", db.display()))?;
            }
            for f in DB_FILES {
                let p = held.join(f);
                if p.exists() {
                    std::fs::rename(&p, lab.dir.join(f))?;
                }
            }
            std::fs::remove_dir(&held)?;
            Ok(())
        }
        DatastoreKind::Etcdv3 => {
            if !lab.etcd_pid.is_some_and(|p| sh::alive(p, "etcd")) {
                up::etcd(lab)?;
            }
            Ok(())
        }
        DatastoreKind::Kubernetes => Ok(()),
    }
}

fn leak_handle(lab: &Lab, i: usize) -> String {
    format!(
        "{}{}-never-created-{}",
        tabby_ipam::handle::POD_HANDLE_PREFIX,
        lab.name,
        lab.nodes[i].name
    )
}

/// Runs `f` on a runtime of its own: fault actions are plain functions
/// called from tabbyctl's single-threaded runtime.
fn block_on<T: Send>(f: impl std::future::Future<Output = Result<T>> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(f)
        })
        .join()
        .unwrap_or_else(|_| bail!("the fault's thread panicked"))
    })
}

async fn ipam_client(
    lab: &Lab,
    i: usize,
) -> Result<tabby_proto::ipam::ipam_client::IpamClient<tonic::transport::Channel>> {
    let socket = tabby_agent::grpc::socket_path(&lab.nodes[i].run_dir);
    let ch = tabby_agent::grpc::connect_unix(&socket)
        .await
        .with_context(|| format!("connecting to {}", socket.display()))?;
    Ok(tabby_proto::ipam::ipam_client::IpamClient::new(ch))
}

async fn release(lab: &Lab, i: usize) -> Result<()> {
    let mut c = ipam_client(lab, i).await?;
    c.release_by_handle(tabby_proto::ipam::ReleaseByHandleRequest {
        handle_id: leak_handle(lab, i),
    })
    .await
    .context("Ipam.ReleaseByHandle")?;
    Ok(())
}

fn leak_inject(lab: &mut Lab, i: usize) -> Result<()> {
    let lab = &*lab;
    block_on(async move {
        // Injected twice is still one leaked address.
        release(lab, i).await?;
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        let pod = format!("never-created-{}", lab.nodes[i].name);
        let attributes = [
            ("namespace", "default".to_string()),
            ("pod", pod),
            (
                "timestamp",
                humantime::format_rfc3339_seconds(an_hour_ago).to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let r = ipam_client(lab, i)
            .await?
            .auto_assign(tabby_proto::ipam::AutoAssignRequest {
                handle_id: leak_handle(lab, i),
                num_ipv4: 1,
                attributes,
                ..Default::default()
            })
            .await
            .context("Ipam.AutoAssign")?
            .into_inner();
        sh::step(
            &lab.name,
            &lab.nodes[i].name,
            format_args!(
                "assigned {} to {} (no such pod)",
                r.ipv4_addresses.join(", "),
                leak_handle(lab, i)
            ),
        );
        Ok(())
    })
}

fn leak_clear(lab: &mut Lab, i: usize) -> Result<()> {
    let lab = &*lab;
    block_on(release(lab, i))
}

/// `tabbyctl ARGS` against the lab's datastore, from the fabric namespace
/// (where etcd and the API stand-in are reachable).
fn ctl(lab: &Lab, args: &[&str]) -> Result<String> {
    let mut c = sh::in_ns(&lab.fabric.netns, "env");
    for (k, v) in lab.datastore_env() {
        c.arg(format!("{k}={v}"));
    }
    c.arg(std::env::current_exe()?).args(args);
    Ok(String::from_utf8_lossy(&sh::run(&mut c)?.stdout).into_owned())
}

/// What `vtep-conflict` changed: (node, its tunnel address before).
fn vtep_record(lab: &Lab) -> PathBuf {
    lab.dir.join("fault-vtep-conflict.json")
}

fn set_tunnel(lab: &Lab, node: &str, addr: Option<&str>) -> Result<()> {
    let mut v: serde_json::Value =
        serde_json::from_str(&ctl(lab, &["get", "node", node, "-o", "json"])?)
            .context("tabbyctl get node -o json")?;
    match addr {
        Some(a) => v["spec"]["ipv4VXLANTunnelAddr"] = a.into(),
        None => {
            if let Some(s) = v["spec"].as_object_mut() {
                s.remove("ipv4VXLANTunnelAddr");
            }
        }
    }
    let file = lab.dir.join("fault-vtep-node.json");
    std::fs::write(&file, v.to_string())?;
    let r = ctl(lab, &["apply", "-f", &file.display().to_string()]);
    let _ = std::fs::remove_file(&file);
    r.map(|_| ())
}

/// The node whose Node gets node `i`'s IP as its tunnel address.
fn other(lab: &Lab, i: usize) -> Result<String> {
    match lab.nodes.iter().enumerate().find(|(j, _)| *j != i) {
        Some((_, n)) => Ok(n.name.clone()),
        None => bail!("vtep-conflict needs a second node"),
    }
}

fn vtep_inject(lab: &mut Lab, i: usize) -> Result<()> {
    let record = vtep_record(lab);
    if record.exists() {
        return Ok(());
    }
    let other = other(lab, i)?;
    let v: serde_json::Value =
        serde_json::from_str(&ctl(lab, &["get", "node", &other, "-o", "json"])?)?;
    let before = v["spec"]["ipv4VXLANTunnelAddr"]
        .as_str()
        .map(str::to_string);
    std::fs::write(
        &record,
        serde_json::json!({"node": other, "before": before}).to_string(),
    )?;
    set_tunnel(lab, &other, Some(&lab.nodes[i].address.to_string()))
}

fn vtep_clear(lab: &mut Lab, _: usize) -> Result<()> {
    let record = vtep_record(lab);
    let Ok(text) = std::fs::read_to_string(&record) else {
        return Ok(());
    };
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let node = v["node"]
        .as_str()
        .context("vtep-conflict record without a node")?;
    set_tunnel(lab, node, v["before"].as_str())?;
    std::fs::remove_file(&record)?;
    Ok(())
}
