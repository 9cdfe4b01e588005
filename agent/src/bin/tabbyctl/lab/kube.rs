//! A kubernetes lab: Calico's Kubernetes datastore served by the test-only
//! API stand-in (`kube-standin`, no real apiserver can be installed here)
//! in the fabric namespace, on the first router address like etcd. The lab
//! plays the kubelet's part: it registers each node as a core Node and
//! creates each pod's Pod before the CNI ADD, as a kubelet would have.

use super::sh::step;
use super::sh::{self, in_ns};
use super::state::{Lab, KUBE_PORT};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;

pub fn start(lab: &mut Lab) -> Result<()> {
    let f = lab.fabric.netns.clone();
    let addr = lab.fabric.bridges[0].router;
    let crds = lab.dir.join("crds.yaml");
    std::fs::write(
        &crds,
        // The Installation CRD too, so the lab can be driven by one.
        tabby_agent::manifests::crds_yaml()
            + &tabby_agent::manifests::installation_crd::operator_crds_yaml(),
    )
    .with_context(|| format!("writing {}", crds.display()))?;
    let bin = sh::binary("kube-standin")?;
    let mut cmd = in_ns(&f, &bin.display().to_string());
    cmd.arg(format!("--listen={addr}:{KUBE_PORT}"))
        .arg(format!("--kubeconfig={}", lab.kubeconfig().display()))
        .arg(format!("--crds={}", crds.display()));
    let pid = sh::spawn_detached(&mut cmd, &lab.dir.join("kube-api.log"))?;
    lab.kube_pid = Some(pid);
    let endpoint = format!("http://{addr}:{KUBE_PORT}");
    lab.kube_endpoint = Some(endpoint.clone());
    let log = lab.dir.join("kube-api.log");
    sh::wait_datastore(
        &f,
        &lab.datastore_env(),
        "the API stand-in",
        &endpoint,
        &log,
    )?;
    step(
        &lab.name,
        "kube-api",
        format_args!(
            "Kubernetes API stand-in in {f} at {endpoint} (pid {pid}), Calico's CRDs loaded"
        ),
    );
    // The kubelets' part: every node registered, every pod scheduled.
    let mut objects: Vec<Value> = lab
        .nodes
        .iter()
        .map(|n| {
            json!({"apiVersion": "v1", "kind": "Node",
                   "metadata": {"name": n.name, "labels": {
                       "kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux"}},
                   "status": {"addresses": node_addresses(lab, n)}})
        })
        .collect();
    let mut namespaces: Vec<&str> = lab.pods.iter().map(|p| p.namespace.as_str()).collect();
    namespaces.sort();
    namespaces.dedup();
    for ns in namespaces {
        objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    for p in &lab.pods {
        objects.push(pod_object(&p.namespace, &p.name, &p.node));
    }
    apply(lab, &objects)
}

/// The kubelet's `status.addresses`: an InternalIP per family the node
/// has (an ipv6 lab's nodes keep IPv4 for the lab's plumbing only).
fn node_addresses(lab: &Lab, n: &super::state::Node) -> Value {
    let mut v = Vec::new();
    if lab.ip_family.has_v4() {
        v.push(json!({"type": "InternalIP", "address": n.address.to_string()}));
    }
    if let Some(a6) = n.address6 {
        v.push(json!({"type": "InternalIP", "address": a6.to_string()}));
    }
    v.push(json!({"type": "Hostname", "address": n.name}));
    Value::Array(v)
}

/// A Pod as the scheduler leaves it: bound to a node, not yet networked.
pub fn pod_object(namespace: &str, name: &str, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": namespace, "labels": {"lab": "pod"}},
           "spec": {"nodeName": node, "containers": [{"name": "pause", "image": "pause"}]}})
}

/// Creates `objects` through `tabbyctl lab kube-apply` run inside the
/// fabric namespace (the API is only reachable there).
pub fn apply(lab: &Lab, objects: &[Value]) -> Result<()> {
    kube_apply_in_fabric(lab, objects, false)
}

/// Deletes `objects` the same way.
pub fn delete(lab: &Lab, objects: &[Value]) -> Result<()> {
    kube_apply_in_fabric(lab, objects, true)
}

fn kube_apply_in_fabric(lab: &Lab, objects: &[Value], delete: bool) -> Result<()> {
    let file = lab.dir.join("kube-objects.json");
    std::fs::write(&file, serde_json::to_vec(objects)?)?;
    let tabbyctl = std::env::current_exe()?.display().to_string();
    let mut c = in_ns(&lab.fabric.netns, &tabbyctl);
    c.args(["lab", "kube-apply", "--kubeconfig"])
        .arg(lab.kubeconfig());
    if delete {
        c.arg("--delete");
    }
    c.arg(&file);
    sh::run(&mut c).map(|_| ())
}

/// `lab kube-apply`: creates core objects (Node, Namespace, Pod) from a
/// JSON list; one that already exists is left as it is. With `delete`,
/// deletes them; one already gone is fine.
pub async fn kube_apply(kubeconfig: &Path, file: &Path, delete: bool) -> Result<()> {
    use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let objects: Vec<Value> = serde_json::from_str(&text)?;
    let store = tabby_agent::datastore::kdd::KubeStore::connect(Some(kubeconfig)).await?;
    let client = store.client().clone();
    for o in objects {
        let kind = o["kind"].as_str().unwrap_or_default().to_string();
        let (plural, namespaced) = match kind.as_str() {
            "Node" => ("nodes", false),
            "Namespace" => ("namespaces", false),
            "Pod" => ("pods", true),
            other => bail!("lab kube-apply: kind {other:?} is not one the lab creates"),
        };
        let ar = kube::api::ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: kind.clone(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = match o["metadata"]["namespace"].as_str() {
            Some(ns) if namespaced => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        };
        let obj: DynamicObject = serde_json::from_value(o)?;
        if delete {
            let name = obj.metadata.name.clone().unwrap_or_default();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e).with_context(|| format!("deleting {kind} {name:?}")),
            }
            continue;
        }
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err(e).with_context(|| format!("creating {kind} {:?}", obj.metadata.name))
            }
        }
    }
    Ok(())
}
