//! `cni`: what the container runtime will do with this node's CNI
//! directories. containerd and CRI-O read the net dir's `.conf`,
//! `.conflist` and `.json` files in lexical order and network every pod
//! with the first one (containerd stops at it even when it is broken), so
//! a leftover `05-flannel.conflist` or `10-calico.conflist` silently wins
//! over Tabby's `10-tabby.conflist` (seed 003). Tabby's own file must also
//! be the one install-cni wrote (its mark, [`marker`]), name this node, and
//! find every plugin it names in the bin dir.

use super::{Ctx, Finding};
use crate::cni::config::{IPAM_TYPE, PLUGIN_TYPE};
use crate::cni::install::marker::{self, Mark};
use crate::cni::install::{BIN_DIR, DEFAULT_CONF_NAME, NET_DIR};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const CHECK: &str = "cni";

/// One network config file of the net dir.
#[derive(Debug, Clone)]
pub struct ConfFile {
    pub name: String,
    /// As a conflist (a `.conf` becomes a list of its one plugin), or why
    /// the runtime cannot load it.
    pub list: Result<Value, String>,
}

impl ConfFile {
    pub fn parse(name: &str, text: &str) -> ConfFile {
        let list = serde_json::from_str::<Value>(text)
            .map_err(|e| format!("not valid JSON: {e}"))
            .and_then(|v| {
                if name.ends_with(".conflist") {
                    match v.get("plugins").and_then(Value::as_array) {
                        Some(p) if !p.is_empty() => Ok(v),
                        _ => Err("a conflist with no plugins".to_string()),
                    }
                } else if v
                    .get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| !t.is_empty())
                {
                    Ok(serde_json::json!({"name": v.get("name"), "plugins": [v]}))
                } else {
                    Err("a network config with no type".to_string())
                }
            });
        ConfFile {
            name: name.to_string(),
            list,
        }
    }

    /// Every plugin the file makes the runtime execute: each entry's type
    /// and its IPAM plugin's.
    pub fn plugins(&self) -> Vec<String> {
        let mut out = Vec::new();
        let entries = self
            .list
            .as_ref()
            .ok()
            .and_then(|l| l["plugins"].as_array());
        for p in entries.into_iter().flatten() {
            for t in [&p["type"], &p["ipam"]["type"]] {
                if let Some(t) = t.as_str().filter(|t| !t.is_empty()) {
                    if !out.iter().any(|o| o == t) {
                        out.push(t.to_string());
                    }
                }
            }
        }
        out
    }

    fn is_tabby(&self) -> bool {
        self.plugins().iter().any(|p| p == PLUGIN_TYPE)
    }

    fn describe(&self) -> String {
        match &self.list {
            Ok(_) => format!("{} (plugins: {})", self.name, self.plugins().join(", ")),
            Err(e) => format!("{} ({e})", self.name),
        }
    }
}

/// Where the runtime looks, and what this doctor can offer as fixes.
pub struct Dirs {
    pub net: PathBuf,
    pub bin: PathBuf,
    /// Tabby's conflist name (`CNI_CONF_NAME`, as install-cni names it).
    pub conf_name: String,
    /// A `tabby` binary to install from (next to this tabbyctl).
    pub tabby: Option<PathBuf>,
}

impl Dirs {
    /// The flags, unless they are at their defaults and the environment
    /// names the directories (`CNI_NET_DIR`/`CNI_BIN_DIR`, as Calico's
    /// install-cni reads them).
    pub fn of(ctx: &Ctx) -> Dirs {
        let pick = |flag: &Path, default: &str, env: &str| match ctx.env(env) {
            Some(v) if flag == Path::new(default) && !v.is_empty() => PathBuf::from(v),
            _ => flag.to_path_buf(),
        };
        let tabby = std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.join(PLUGIN_TYPE)))
            .filter(|p| executable(p));
        Dirs {
            net: pick(&ctx.opts.cni_net_dir, "/etc/cni/net.d", "CNI_NET_DIR"),
            bin: pick(&ctx.opts.cni_bin_dir, "/opt/cni/bin", "CNI_BIN_DIR"),
            conf_name: ctx
                .env("CNI_CONF_NAME")
                .filter(|n| !n.is_empty())
                .unwrap_or(DEFAULT_CONF_NAME)
                .to_string(),
            tabby,
        }
    }

    /// Re-running install-cni, when the two directories sit where it
    /// writes them under one root.
    fn install_fix(&self) -> String {
        let root = self
            .net
            .strip_suffix_path(NET_DIR)
            .filter(|r| self.bin.strip_suffix_path(BIN_DIR).as_ref() == Some(r));
        match (&self.tabby, root) {
            (Some(t), Some(r)) => format!("{} install-cni --host-root {}", t.display(), r.display()),
            _ => format!(
                "re-run tabby install-cni for {} and {} (restart this node's tabby-node pod: its init container runs it)",
                self.net.display(),
                self.bin.display()
            ),
        }
    }

    fn copy_fix(&self, missing: &[&str]) -> String {
        let Some(src) = &self.tabby else {
            return self.install_fix();
        };
        let bin = self.bin.display();
        let mut cmds = vec![format!(
            "install -m 0755 {} {bin}/{PLUGIN_TYPE}",
            src.display()
        )];
        if missing.contains(&IPAM_TYPE) {
            // install-cni links the IPAM plugin to the same binary.
            cmds.push(format!("ln -f {bin}/{PLUGIN_TYPE} {bin}/{IPAM_TYPE}"));
        }
        cmds.join(" && ")
    }
}

trait StripSuffixPath {
    fn strip_suffix_path(&self, suffix: &str) -> Option<PathBuf>;
}

impl StripSuffixPath for PathBuf {
    fn strip_suffix_path(&self, suffix: &str) -> Option<PathBuf> {
        let s = self.to_str()?.trim_end_matches('/');
        let root = s.strip_suffix(suffix)?;
        let root = root.strip_suffix('/').unwrap_or(root);
        Some(PathBuf::from(if root.is_empty() { "/" } else { root }))
    }
}

fn executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The net dir's config files in the runtime's order (libcni's
/// extensions, lexical by name).
pub fn read_net_dir(dir: &Path) -> Result<Vec<ConfFile>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<ConfFile> = entries
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            Path::new(n)
                .extension()
                .is_some_and(|x| x == "conf" || x == "conflist" || x == "json")
        })
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(&n));
            match text {
                Ok(t) => ConfFile::parse(&n, &t),
                Err(e) => ConfFile {
                    list: Err(format!("unreadable: {e}")),
                    name: n,
                },
            }
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

pub async fn check(ctx: &Ctx) -> Vec<Finding> {
    let dirs = Dirs::of(ctx);
    let files = read_net_dir(&dirs.net);
    let bin = dirs.bin.clone();
    assess(&dirs, files, &ctx.node_name, |p| executable(&bin.join(p)))
}

/// The findings for the net dir's `files` (or why it could not be read),
/// `installed` saying whether a plugin is executable in the bin dir.
pub fn assess(
    dirs: &Dirs,
    files: Result<Vec<ConfFile>, String>,
    node: &str,
    installed: impl Fn(&str) -> bool,
) -> Vec<Finding> {
    let net = dirs.net.display().to_string();
    let files = match files {
        Ok(f) if !f.is_empty() => f,
        other => {
            let evidence = match other {
                Err(e) => e,
                Ok(_) => format!("{net} has no .conf, .conflist or .json file"),
            };
            return vec![Finding::error(
                CHECK,
                format!("no CNI network config in {net}: the runtime reports the network not ready and no pod starts"),
            )
            .evidence(evidence)
            .fix(dirs.install_fix())];
        }
    };
    let order = files
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let tabby = files
        .iter()
        .position(|f| f.name == dirs.conf_name)
        .or_else(|| files.iter().position(ConfFile::is_tabby));
    let Some(ti) = tabby else {
        return vec![Finding::error(
            CHECK,
            format!(
                "no Tabby conflist in {net}: the runtime networks pods with {}",
                files[0].describe()
            ),
        )
        .evidence(format!("ls {net}: {order}"))
        .fix(dirs.install_fix())];
    };
    let mine = &files[ti];
    let mut out = Vec::new();
    for (i, f) in files[..ti].iter().enumerate() {
        let what = match (i, &f.list) {
            (0, Ok(_)) => format!(
                "the runtime networks pods with {}, not Tabby's {}: it sorts first in {net} \
                 (remove whatever installs it, e.g. an old flannel or Calico DaemonSet, or it comes back)",
                f.describe(),
                mine.name
            ),
            (0, Err(_)) => format!(
                "{} sorts before Tabby's {} and cannot be loaded: containerd stops at it and starts no pod",
                f.describe(),
                mine.name
            ),
            _ => format!(
                "{} also sorts before Tabby's {}: the runtime takes it once the files before it are gone",
                f.describe(),
                mine.name
            ),
        };
        out.push(
            Finding::error(CHECK, what)
                .evidence(format!("ls {net}: {order}"))
                .fix(format!("mv {net}/{0} {net}/{0}.disabled", f.name)),
        );
    }
    let list = match &mine.list {
        Ok(l) => l,
        Err(e) => {
            out.push(
                Finding::error(
                    CHECK,
                    format!(
                        "Tabby's conflist {net}/{} cannot be loaded: no pod gets a network",
                        mine.name
                    ),
                )
                .evidence(e.clone())
                .fix(dirs.install_fix()),
            );
            return out;
        }
    };
    out.extend(own_file(dirs, mine, list, node));
    let missing: Vec<String> = mine
        .plugins()
        .into_iter()
        .filter(|p| !installed(p))
        .collect();
    let ours: Vec<&str> = missing
        .iter()
        .map(String::as_str)
        .filter(|p| *p == PLUGIN_TYPE || *p == IPAM_TYPE)
        .collect();
    let bin = dirs.bin.display();
    for p in &missing {
        let (what, fix) = if ours.contains(&p.as_str()) {
            (
                format!(
                    "the {p} CNI plugin is missing from {bin}: every pod ADD on this node fails"
                ),
                dirs.copy_fix(&ours),
            )
        } else {
            (
                format!("the {p} plugin that {} names is missing from {bin}: every pod ADD on this node fails", mine.name),
                format!("install the {p} plugin (containernetworking/plugins) into {bin}, or remove it from {net}/{}", mine.name),
            )
        };
        out.push(
            Finding::error(CHECK, what)
                .evidence(format!("{bin}/{p}: no such executable file"))
                .fix(fix),
        );
    }
    out
}

/// Tabby's own file: install-cni's mark, a valid tabby entry, this node.
fn own_file(dirs: &Dirs, f: &ConfFile, list: &Value, node: &str) -> Vec<Finding> {
    let path = format!("{}/{}", dirs.net.display(), f.name);
    let mut out = Vec::new();
    if f.name.ends_with(".conflist") {
        if let Err(e) = crate::cni::conflist::validate(&list.to_string()) {
            out.push(
                Finding::error(CHECK, format!("Tabby's conflist {path} is one the tabby plugin refuses: every pod ADD fails"))
                    .evidence(e.to_string())
                    .fix(dirs.install_fix()),
            );
            return out;
        }
    }
    let entry = list["plugins"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["type"] == PLUGIN_TYPE));
    let named = entry
        .and_then(|e| e["nodename"].as_str())
        .unwrap_or_default();
    if !named.is_empty() && !node.is_empty() && named != node {
        out.push(
            Finding::error(
                CHECK,
                format!("{path} is for node {named}, not this node {node}: pods here get addresses recorded for {named}"),
            )
            .evidence(format!("\"nodename\": \"{named}\""))
            .fix(dirs.install_fix()),
        );
    }
    match marker::read(list) {
        Mark::Intact => {}
        Mark::Missing => out.push(
            Finding::warning(
                CHECK,
                format!("{path} is Tabby's conflist, but tabby install-cni did not write it: its settings may not be this node's, and the next install-cni replaces it"),
            )
            .evidence(format!("no \"{}\" mark in {path}", marker::MARK_KEY))
            .fix(dirs.install_fix()),
        ),
        Mark::Edited => out.push(
            Finding::warning(
                CHECK,
                format!("{path} was edited after tabby install-cni wrote it: the next install-cni run undoes the edit (make lasting changes in CNI_NETWORK_CONFIG or CNI_MTU)"),
            )
            .evidence(format!("its content no longer matches the \"{}\" mark's sha256", marker::MARK_KEY))
            .fix(dirs.install_fix())),
    }
    out
}

#[cfg(test)]
#[path = "cni_tests.rs"]
mod tests;
