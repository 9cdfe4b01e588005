//! kubectl against the `kube-standin` binary: what an operator (and the
//! lab scripts) will run. kubectl is `$KUBECTL` or `kubectl` on PATH
//! (tests/run.sh installs Debian's `kubernetes-client`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const CRDS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/calico-crds.yaml"
);

/// The server process, killed (by its own pid) when the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `kube-standin` on a free port and waits for its `listening on`.
fn serve(kubeconfig: &Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-standin"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(kubeconfig)
        .stdout(Stdio::piped())
        .spawn()
        .expect("kube-standin starts");
    let out = child.stdout.take().expect("piped stdout");
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("reads stdout");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (server, url.to_string())
}

struct Kubectl<'a> {
    kubeconfig: &'a Path,
    cache: &'a Path,
}

impl Kubectl<'_> {
    /// Runs kubectl; (success, stdout, stderr).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let out = Command::new(&bin)
            .arg("--kubeconfig")
            .arg(self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache)
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("running {bin} (install kubernetes-client, or set KUBECTL): {e}")
            });
        let s = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        (out.status.success(), s(out.stdout), s(out.stderr))
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
        out
    }
}

const OBJECTS: &str = "\
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 10.244.0.0/16
  vxlanMode: CrossSubnet
---
apiVersion: crd.projectcalico.org/v1
kind: BlockAffinity
metadata:
  name: node-a-10-244-1-0-26
spec:
  cidr: 10.244.1.0/26
  node: node-a
  state: confirmed
---
apiVersion: v1
kind: Node
metadata:
  name: node-a
";

// kubectl apply (client-side: GET, then POST or PATCH), get with the
// server-side Table, and get -o yaml (plain JSON list), against the
// discovery and Table the stand-in serves.
#[test]
fn kubectl_applies_crds_and_objects_and_gets_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let (_server, url) = serve(&kubeconfig);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let cache = dir.path().join("cache");
    let k = Kubectl {
        kubeconfig: &kubeconfig,
        cache: &cache,
    };
    // Without /openapi, kubectl's client-side validation cannot run: the
    // stand-in documents that apply needs --validate=false.
    let (ok, _, err) = k.run(&["apply", "-f", CRDS]);
    assert!(
        !ok,
        "apply with validation should fail without /openapi: {err}"
    );
    let out = k.ok(&["apply", "--validate=false", "-f", CRDS]);
    assert_eq!(out.matches(" created").count(), 11, "{out}");
    let objects = dir.path().join("objects.yaml");
    std::fs::write(&objects, OBJECTS).expect("write objects");
    let out = k.ok(&[
        "apply",
        "--validate=false",
        "-f",
        objects.to_str().unwrap_or_default(),
    ]);
    assert_eq!(out.matches(" created").count(), 3, "{out}");
    // Applying again changes a field: a PATCH (merge for custom resources).
    std::fs::write(&objects, OBJECTS.replace("CrossSubnet", "Always")).expect("rewrite");
    let out = k.ok(&[
        "apply",
        "--validate=false",
        "-f",
        objects.to_str().unwrap_or_default(),
    ]);
    assert!(
        out.contains("ippool.crd.projectcalico.org/default-ipv4-ippool configured"),
        "{out}"
    );
    let out = k.ok(&["get", "ippools.crd.projectcalico.org"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("AGE"),
        "{out}"
    );
    assert!(lines[1].starts_with("default-ipv4-ippool "), "{out}");
    let mode = k.ok(&[
        "get",
        "ippool",
        "default-ipv4-ippool",
        "-o",
        "jsonpath={.spec.vxlanMode}",
    ]);
    assert_eq!(mode, "Always");
    let yaml = k.ok(&["get", "blockaffinities.crd.projectcalico.org", "-o", "yaml"]);
    assert!(yaml.contains("kind: List"), "{yaml}");
    assert!(
        yaml.contains("kind: BlockAffinity") && yaml.contains("node: node-a"),
        "{yaml}"
    );
    assert!(yaml.contains("resourceVersion: \""), "{yaml}");
    let out = k.ok(&["get", "nodes"]);
    assert!(
        out.lines().nth(1).is_some_and(|l| l.starts_with("node-a ")),
        "{out}"
    );
    k.ok(&["label", "node", "node-a", "tabby.dev/role=edge"]);
    let out = k.ok(&["get", "nodes", "-l", "tabby.dev/role=edge", "-o", "name"]);
    assert_eq!(out.trim(), "node/node-a");
    let out = k.ok(&["delete", "ippool", "default-ipv4-ippool"]);
    assert!(out.contains("deleted"), "{out}");
    let (ok, _, err) = k.run(&["get", "ippool", "default-ipv4-ippool"]);
    assert!(!ok && err.contains("NotFound"), "{err}");
}
