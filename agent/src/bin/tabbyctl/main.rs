//! `tabbyctl`: calicoctl's resource commands against Tabby's datastore
//! (chosen by `DATASTORE_TYPE`, as calicoctl does).

mod doctor;
mod ipam;
mod lab;
mod manifests;
mod node;
mod output;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Read;
use std::sync::Arc;
use tabby_agent::ctl::apply::{
    apply_documents, delete_documents, validate_documents, ApplyError, Mode,
};
use tabby_agent::datastore::{connect, Datastore, DatastoreConfig};
use tabby_agent::resources::{parse_documents_lenient, Kind, ParsedDocument, Resource};

#[derive(Parser)]
#[command(
    name = "tabbyctl",
    version,
    about = "Manage Tabby (Calico-compatible) resources",
    after_help = "Datastore: DATASTORE_TYPE=sqlite (default; file from TABBY_DATASTORE, \
                  default /var/lib/tabby/tabby.db) or etcdv3 (ETCD_ENDPOINTS)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create or update the resources in FILE ("-" for stdin).
    Apply {
        #[arg(short = 'f', long = "filename")]
        file: String,
    },
    /// Create the resources in FILE; fails if any exists.
    Create {
        #[arg(short = 'f', long = "filename")]
        file: String,
    },
    /// Replace the resources in FILE; fails if any is missing.
    Replace {
        #[arg(short = 'f', long = "filename")]
        file: String,
    },
    /// Delete the resources in FILE, or KIND NAME.
    Delete {
        #[arg(short = 'f', long = "filename")]
        file: Option<String>,
        kind: Option<String>,
        name: Option<String>,
    },
    /// IP address management: show usage, release addresses.
    Ipam {
        #[command(subcommand)]
        cmd: ipam::IpamCmd,
    },
    /// The local tabby-node: `node status` (as calicoctl node status).
    Node {
        #[command(subcommand)]
        cmd: NodeCmd,
    },
    /// A Tabby cluster on this machine in network namespaces (up, status,
    /// check, down).
    Lab {
        #[command(flatten)]
        which: lab::Which,
        #[command(subcommand)]
        cmd: lab::LabCmd,
    },
    /// Write the Kubernetes manifests generated from Tabby's types into DIR:
    /// crds.yaml (Calico's CRDs), tabby.yaml (RBAC, DaemonSet, Deployment),
    /// installation.yaml (an example Installation).
    Manifests {
        #[arg(long = "out", value_name = "DIR", default_value = "manifests")]
        out: std::path::PathBuf,
        /// The image every container runs (default: this release's).
        #[arg(long = "image", value_name = "REPO:TAG")]
        image: Option<String>,
        /// Take the DaemonSet's MTU, backend and default pool from this
        /// Installation.
        #[arg(long = "installation", value_name = "FILE")]
        installation: Option<std::path::PathBuf>,
    },
    /// Show resources of KIND (e.g. ippools, bgppeers, bgpconfig, nodes).
    Get {
        kind: String,
        name: Option<String>,
        #[arg(short = 'o', long = "output", value_enum, default_value = "ps")]
        output: Output,
    },
}

#[derive(Subcommand)]
enum NodeCmd {
    /// BGP peers and the route path of every remote block, from the node's
    /// socket in TABBY_RUN_DIR (default /var/run/tabby).
    Status {
        #[arg(long)]
        run_dir: Option<std::path::PathBuf>,
    },
    /// Find the cross-node failures (routes, VXLAN, MTU, BGP, FORWARD,
    /// sysctls, pools, CNI, datastore) and name each fix; exits non-zero
    /// on any error-level finding.
    Doctor(doctor::DoctorArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Ps,
    Wide,
    Yaml,
    Json,
}

fn read_input(file: &str) -> Result<(String, String)> {
    // One byte over the limit is enough for the parser to refuse the input
    // with its message; reading the rest would only cost memory.
    let cap = tabby_agent::resources::limits::MAX_INPUT_BYTES as u64 + 1;
    let mut s = String::new();
    if file == "-" {
        std::io::stdin()
            .take(cap)
            .read_to_string(&mut s)
            .context("reading standard input")?;
        return Ok(("<stdin>".into(), s));
    }
    std::fs::File::open(file)
        .and_then(|f| f.take(cap).read_to_string(&mut s))
        .with_context(|| format!("reading {file}"))?;
    Ok((file.to_string(), s))
}

fn parse_file(file: &str) -> Result<(String, Vec<ParsedDocument>)> {
    let (source, text) = read_input(file)?;
    let (mut docs, mut errs) = parse_documents_lenient(&source, &text);
    if !errs.is_empty() {
        // Report the problems of the documents that did parse too, so one
        // run shows everything that needs fixing.
        errs.extend(validate_documents(&source, &mut docs));
        errs.sort_by_key(|e| e.document);
        return Err(invalid(
            &errs.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        ));
    }
    if docs.is_empty() {
        bail!("{source}: no resources found");
    }
    Ok((source, docs))
}

fn invalid(lines: &[String]) -> anyhow::Error {
    anyhow!("{}\nNothing was applied.", lines.join("\n"))
}

fn kind_summary(rs: &[Resource]) -> String {
    let mut kinds: Vec<Kind> = rs.iter().map(Resource::kind).collect();
    kinds.dedup();
    match kinds.as_slice() {
        [one] => format!("{} '{}' resource(s)", rs.len(), one),
        _ => format!("{} resource(s)", rs.len()),
    }
}

fn report(e: ApplyError) -> anyhow::Error {
    match e {
        ApplyError::Invalid(errs) => {
            invalid(&errs.iter().map(|e| e.to_string()).collect::<Vec<_>>())
        }
        other => anyhow!(other),
    }
}

async fn write_cmd(store: &dyn Datastore, file: &str, mode: Mode, verb: &str) -> Result<()> {
    let (source, docs) = parse_file(file)?;
    let stored = apply_documents(store, &source, docs, mode)
        .await
        .map_err(report)?;
    println!("Successfully {verb} {}", kind_summary(&stored));
    Ok(())
}

fn kind_arg(s: &str) -> Result<Kind> {
    Kind::from_cli(s).ok_or_else(|| {
        anyhow!(
            "{s:?} is not a resource kind (expected one of {})",
            Kind::ALL.map(|k| k.plural()).join(", ")
        )
    })
}

async fn run(cli: Cli) -> Result<()> {
    // These talk to a node's socket, build namespaces or render files: no
    // datastore.
    let cmd = match cli.cmd {
        Cmd::Node {
            cmd: NodeCmd::Status { run_dir },
        } => return node::status(run_dir).await,
        Cmd::Node {
            cmd: NodeCmd::Doctor(args),
        } => return doctor::run(args).await,
        Cmd::Lab { which, cmd } => return lab::run(which, cmd).await,
        Cmd::Manifests {
            out,
            image,
            installation,
        } => return manifests::write_all(&out, image, installation.as_deref()),
        other => other,
    };
    let cfg = DatastoreConfig::from_env().map_err(|e| anyhow!(e))?;
    let shared: Arc<dyn Datastore> = connect(&cfg).await?;
    let store = shared.as_ref();
    match cmd {
        Cmd::Ipam { cmd } => ipam::run(shared.clone(), cmd).await,
        Cmd::Apply { file } => write_cmd(store, &file, Mode::Apply, "applied").await,
        Cmd::Create { file } => write_cmd(store, &file, Mode::Create, "created").await,
        Cmd::Replace { file } => write_cmd(store, &file, Mode::Replace, "replaced").await,
        Cmd::Delete { file, kind, name } => {
            let deleted = match (file, kind, name) {
                (Some(f), None, None) => {
                    let (source, docs) = parse_file(&f)?;
                    delete_documents(store, &source, &docs)
                        .await
                        .map_err(report)?
                }
                (None, Some(k), Some(n)) => vec![store.delete(kind_arg(&k)?, &n, None).await?],
                _ => bail!("use either `delete -f FILE` or `delete KIND NAME`"),
            };
            println!("Successfully deleted {}", kind_summary(&deleted));
            Ok(())
        }
        Cmd::Node { .. } | Cmd::Lab { .. } | Cmd::Manifests { .. } => {
            unreachable!("dispatched before connecting")
        }
        Cmd::Get { kind, name, output } => {
            let kind = kind_arg(&kind)?;
            let (items, revision, single) = match &name {
                Some(n) => {
                    let r = store.get(kind, n).await?;
                    let rev = r.revision().unwrap_or(0);
                    (vec![r], rev, true)
                }
                None => {
                    let l = store.list(kind, None).await?;
                    (l.items, l.revision, false)
                }
            };
            let text = match output {
                Output::Ps | Output::Wide => {
                    output::render_table(kind, &items, matches!(output, Output::Wide))
                }
                Output::Yaml | Output::Json => {
                    let v = if single {
                        items[0].to_json_value()
                    } else {
                        output::list_value(kind, &items, revision)
                    };
                    if matches!(output, Output::Yaml) {
                        serde_yaml::to_string(&v)?
                    } else {
                        serde_json::to_string_pretty(&v)? + "\n"
                    }
                }
            };
            print!("{text}");
            Ok(())
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TABBY_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}
