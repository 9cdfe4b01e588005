//! `tabby`: the CNI plugin. Invoked by the container runtime with `CNI_*`
//! in the environment and the network configuration on stdin; prints the
//! result (or a CNI error result) on stdout. Installed or linked as
//! `tabby-ipam` it is the IPAM-only plugin.
//!
//! stdout belongs to the runtime, so logs go to stderr, and only when
//! `TABBY_LOG` asks for them (e.g. `TABBY_LOG=debug`).
//!
//! `tabby install-cni [--host-root DIR]` is the DaemonSet's init container
//! instead: it installs this binary, the conflist and the plugin's
//! kubeconfig on the host (`tabby_agent::cni::install`). The runtime never
//! passes arguments to a plugin, so argv[1] cannot clash with CNI mode.

use std::io::{Read, Write};
use std::process::ExitCode;

fn ipam_only() -> bool {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .is_some_and(|n| n == tabby_agent::cni::config::IPAM_TYPE)
}

const INSTALL_USAGE: &str = "usage: tabby install-cni [--host-root DIR]\n\
    Installs the tabby CNI plugin on the host mounted at DIR (default $TABBY_HOST_ROOT, else /host).\n\
    Environment: KUBERNETES_NODE_NAME or NODENAME, CNI_MTU, CNI_NETWORK_CONFIG, CNI_CONF_NAME,\n\
    DATASTORE_TYPE, TABBY_RUN_DIR, KUBERNETES_SERVICE_HOST/_PORT, TABBY_SERVICEACCOUNT_DIR.";

fn install_cni(args: &[String]) -> ExitCode {
    let filter = std::env::var("TABBY_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    let mut host_root = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--host-root" => match it.next() {
                Some(d) => host_root = Some(std::path::PathBuf::from(d)),
                None => return usage("--host-root needs a directory"),
            },
            "-h" | "--help" => {
                println!("{INSTALL_USAGE}");
                return ExitCode::SUCCESS;
            }
            other => match other.strip_prefix("--host-root=") {
                Some(d) => host_root = Some(d.into()),
                None => return usage(&format!("unknown argument {other:?}")),
            },
        }
    }
    let binary = match std::env::current_exe() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("tabby install-cni: finding this binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = match tabby_agent::cni::install::InstallConfig::from_env(
        |k| std::env::var(k).ok(),
        host_root,
        binary,
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tabby install-cni: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tabby install-cni: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(tabby_agent::cni::install::install(&cfg)) {
        Ok(done) => {
            println!("installed {}", done.conflist.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tabby install-cni: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("tabby install-cni: {problem}\n{INSTALL_USAGE}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    // args_os: std::env::args panics on an argument that is not UTF-8.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.first().map(String::as_str) == Some("install-cni") {
        return install_cni(&args[1..]);
    }
    if let Ok(filter) = std::env::var("TABBY_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let mut stdin = Vec::new();
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Err(e) => tabby_agent::cni::Outcome {
            stdout: tabby_agent::cni::error::CniError::new(
                tabby_agent::cni::error::IO_FAILURE,
                format!("reading the network configuration from stdin: {e}"),
            )
            .to_json("1.0.0"),
            success: false,
        },
        Ok(_) => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("tabby: starting the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(tabby_agent::cni::run(
                // var_os: a value that is not UTF-8 is reported as such,
                // not as unset.
                |k| {
                    std::env::var_os(k).map(|v| {
                        v.into_string()
                            .map_err(|v| v.to_string_lossy().into_owned())
                    })
                },
                &stdin,
                ipam_only(),
            ))
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(outcome.stdout.as_bytes());
    if !outcome.stdout.is_empty() {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
    if outcome.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
