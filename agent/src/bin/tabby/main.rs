//! `tabby`: the CNI plugin. Invoked by the container runtime with `CNI_*`
//! in the environment and the network configuration on stdin; prints the
//! result (or a CNI error result) on stdout. Installed or linked as
//! `tabby-ipam` it is the IPAM-only plugin.
//!
//! stdout belongs to the runtime, so logs go to stderr, and only when
//! `TABBY_LOG` asks for them (e.g. `TABBY_LOG=debug`).

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

fn main() -> ExitCode {
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
                |k| std::env::var(k).ok(),
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
