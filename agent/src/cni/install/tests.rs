//! install-cni against a temporary host root: what lands where, and that
//! a bad template or an unwritable directory stops it before it writes.

use super::*;
use std::collections::HashMap;
use std::path::Path;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

fn config(root: &Path, pairs: &[(&str, &str)]) -> InstallConfig {
    InstallConfig::from_env(env(pairs), Some(root.to_path_buf()), "/bin/sh".into()).unwrap()
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn installs_the_binaries_and_a_conflist_filled_in_from_the_env() {
    let root = tempfile::tempdir().unwrap();
    let cfg = config(
        root.path(),
        &[
            ("NODENAME", "node-a"),
            ("KUBERNETES_NODE_NAME", "node-b"),
            ("CNI_MTU", "1410"),
            ("DATASTORE_TYPE", "sqlite"),
            ("TABBY_RUN_DIR", "/run/t"),
        ],
    );
    let done = install(&cfg).await.unwrap();
    assert_eq!(done.kubeconfig, None, "no cluster, no kubeconfig");
    let list: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&done.conflist).unwrap()).unwrap();
    assert_eq!(
        marker::read(&list),
        marker::Mark::Intact,
        "install-cni marks its file"
    );
    let p = &list["plugins"][0];
    // KUBERNETES_NODE_NAME wins over NODENAME, as in Calico's install.
    assert_eq!(p["nodename"], "node-b");
    assert_eq!(p["mtu"], 1410);
    assert_eq!(p["datastore_type"], "sqlite");
    assert_eq!(p["run_dir"], "/run/t");
    assert_eq!(
        p["kubernetes"]["kubeconfig"],
        "/etc/cni/net.d/tabby-kubeconfig"
    );
    assert_eq!(
        files_under(root.path()),
        vec![
            root.path().join("etc/cni/net.d/10-tabby.conflist"),
            root.path().join("opt/cni/bin/tabby"),
            root.path().join("opt/cni/bin/tabby-ipam"),
        ]
    );
    assert_eq!(
        std::fs::read(root.path().join("opt/cni/bin/tabby-ipam")).unwrap(),
        std::fs::read("/bin/sh").unwrap()
    );
}

#[tokio::test]
async fn in_a_cluster_the_kubeconfig_is_written_0600_with_the_pods_token_when_no_api_answers() {
    use std::os::unix::fs::MetadataExt;
    let root = tempfile::tempdir().unwrap();
    let sa = tempfile::tempdir().unwrap();
    std::fs::write(sa.path().join("ca.crt"), "CA PEM").unwrap();
    std::fs::write(sa.path().join("token"), "pod-token\n").unwrap();
    std::fs::write(sa.path().join("namespace"), "kube-system").unwrap();
    let sa_dir = sa.path().display().to_string();
    let cfg = config(
        root.path(),
        &[
            ("NODENAME", "n"),
            // Nothing listens on port 1: the TokenRequest fails fast.
            ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
            ("KUBERNETES_SERVICE_PORT", "1"),
            ("TABBY_SERVICEACCOUNT_DIR", &sa_dir),
        ],
    );
    let done = install(&cfg).await.unwrap();
    let (path, source) = done.kubeconfig.unwrap();
    assert_eq!(source, kubeconfig::TokenSource::PodToken);
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    let kc: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        kc["clusters"][0]["cluster"]["server"],
        "https://127.0.0.1:1"
    );
    assert_eq!(kc["users"][0]["user"]["token"], "pod-token");
}

#[tokio::test]
async fn an_invalid_template_is_rejected_before_anything_is_written() {
    let root = tempfile::tempdir().unwrap();
    for (template, want) in [
        // Not JSON.
        (r#"{"name": "x", "#, "not valid JSON"),
        // JSON, but the tabby entry's IPAM is not tabby-ipam.
        (
            r#"{"name":"x","cniVersion":"1.0.0","plugins":[{"type":"tabby","ipam":{"type":"host-local"}}]}"#,
            "host-local",
        ),
        // A datastore the plugin does not know, filled in from the env.
        (
            r#"{"name":"x","cniVersion":"1.0.0","plugins":[{"type":"tabby","datastore_type":"__DATASTORE_TYPE__","ipam":{"type":"tabby-ipam"}}]}"#,
            "datastore_type \"consul\"",
        ),
    ] {
        let cfg = config(
            root.path(),
            &[
                ("NODENAME", "n"),
                ("CNI_NETWORK_CONFIG", template),
                ("DATASTORE_TYPE", "consul"),
            ],
        );
        let e = install(&cfg).await.unwrap_err().to_string();
        assert!(e.contains("CNI_NETWORK_CONFIG") && e.contains(want), "{e}");
        assert!(e.contains("nothing was written"), "{e}");
        assert_eq!(files_under(root.path()), Vec::<PathBuf>::new());
    }
}

#[tokio::test]
async fn an_unwritable_host_path_is_named() {
    let root = tempfile::tempdir().unwrap();
    // A file where the CNI config directory should be: not writable as a
    // directory even for root (who ignores permission bits).
    std::fs::create_dir_all(root.path().join("etc/cni")).unwrap();
    std::fs::write(root.path().join("etc/cni/net.d"), "").unwrap();
    let cfg = config(root.path(), &[("NODENAME", "n")]);
    let e = install(&cfg).await.unwrap_err().to_string();
    let dir = root.path().join("etc/cni/net.d");
    assert!(
        e.starts_with(&format!("{} is not writable", dir.display())),
        "{e}"
    );
}

#[test]
fn missing_node_name_and_bad_mtu_name_the_variable() {
    let e = InstallConfig::from_env(env(&[]), None, "/bin/sh".into()).unwrap_err();
    assert!(
        e.to_string().contains("KUBERNETES_NODE_NAME nor NODENAME"),
        "{e}"
    );
    let e = InstallConfig::from_env(
        env(&[("NODENAME", "n"), ("CNI_MTU", "big")]),
        None,
        "x".into(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("CNI_MTU \"big\""), "{e}");
    let c = InstallConfig::from_env(env(&[("NODENAME", "n")]), None, "x".into()).unwrap();
    assert_eq!(c.host_root, PathBuf::from("/host"));
    assert_eq!(c.values.datastore, "kubernetes");
    assert_eq!(c.values.mtu, 0);
}
