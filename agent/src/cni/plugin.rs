//! The commands. The main plugin (`tabby`) builds the pod's interface
//! itself and asks the node (over `$run_dir/tabby.sock`) for the address
//! and for the host side; the IPAM plugin (`tabby-ipam`) only assigns and
//! releases addresses, for a main plugin of another kind that delegates to
//! it.
//!
//! Order of ADD: address, interface, node registration; a failure at any
//! step undoes the earlier ones (the address is released, the veth
//! removed), so a failed ADD leaks nothing. A dual-stack pod's IPv6
//! address is assigned with its IPv4 one, added to the pod end after the
//! IPv4 setup ([`tabby_felix_lite::podlink6`]) and registered in the same
//! AddWorkload. An IPv6-only pod (`assign_ipv4: "false"`) gets a veth with
//! no IPv4 on it and only its /128 and IPv6 default route. DEL runs every step even if an
//! earlier one finds nothing, and is safe to repeat.

use super::annotations::Assignment;
use super::assign::{assign, release_quietly};
use super::config::{self, NetConf};
use super::env::{self, CniEnv, Command};
use super::error::*;
use super::result::{self, Interfaces};
use super::rpc::call;
use crate::grpc::connect_unix;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tabby_felix_lite::podlink::{self, PodLinkError, PodLinkSpec};
use tabby_felix_lite::podlink6;
use tabby_proto::dataplane as dp;
use tabby_proto::dataplane::dataplane_client::DataplaneClient;
use tabby_proto::ipam as ip;
use tabby_proto::ipam::ipam_client::IpamClient;
use tonic::transport::Channel;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Used when the config says 0 and the node has not measured its
/// interface yet (no reconcile pass so far).
const FALLBACK_MTU: u32 = 1500;

/// What to print on stdout and whether the exit is a success.
pub struct Outcome {
    pub stdout: String,
    pub success: bool,
}

/// Runs one invocation: `get` reads the environment (`Err` with the lossy
/// form for a value that is not UTF-8), `stdin` is the network
/// configuration, `ipam_only` selects the `tabby-ipam` plugin.
pub async fn run(
    get: impl Fn(&str) -> Option<Result<String, String>>,
    stdin: &[u8],
    ipam_only: bool,
) -> Outcome {
    let stdin = config::Stdin::decode(stdin);
    // The error result carries the caller's version when it can be read.
    let version = stdin
        .requested_version()
        .ok()
        .flatten()
        .filter(|v| config::SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| "1.0.0".into());
    match dispatch(get, stdin, ipam_only, &version).await {
        Ok(out) => Outcome {
            stdout: out.map(|v| v.to_string()).unwrap_or_default(),
            success: true,
        },
        Err(e) => Outcome {
            stdout: e.to_json(&version),
            success: false,
        },
    }
}

async fn dispatch(
    get: impl Fn(&str) -> Option<Result<String, String>>,
    stdin: config::Stdin,
    ipam_only: bool,
    version: &str,
) -> Result<Option<serde_json::Value>, CniError> {
    let env = env::from_lookup(get)?;
    if env.command == Command::Version {
        stdin.requested_version()?;
        return Ok(Some(serde_json::json!({
            "cniVersion": version,
            "supportedVersions": config::SUPPORTED_VERSIONS,
        })));
    }
    let conf = stdin.into_conf(ipam_only)?;
    match (env.command, ipam_only) {
        (Command::Status, _) => status(&conf).await.map(|_| None),
        // Leaked addresses are found and released by `tabbyctl ipam check`
        // (it compares allocations with WorkloadEndpoints), and a DEL that
        // failed is retried by the runtime; GC has nothing else to do.
        (Command::Gc, _) => Ok(None),
        (Command::Add, false) => add(&env, &conf).await.map(Some),
        (Command::Del, false) => del(&env, &conf).await.map(|_| None),
        (Command::Check, false) => check(&env, &conf).await.map(|_| None),
        (Command::Add, true) => ipam_add(&env, &conf).await.map(Some),
        (Command::Del, true) => release(&env, &conf).await.map(|_| None),
        (Command::Check, true) => ipam_check(&env, &conf).await.map(|_| None),
        (Command::Version, _) => unreachable!("handled above"),
    }
}

async fn connect(conf: &NetConf) -> Result<Channel, CniError> {
    let sock = conf.socket();
    let unreachable = |why: String| {
        CniError::new(
            TRY_AGAIN_LATER,
            format!(
                "node socket {} is not reachable ({why}); is tabby-node running on this node? try again later",
                sock.display()
            ),
        )
    };
    if !sock.exists() {
        return Err(unreachable("it does not exist".into()));
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, connect_unix(&sock)).await {
        Ok(Ok(ch)) => Ok(ch),
        Ok(Err(e)) => {
            use std::error::Error;
            let mut why = e.to_string();
            let mut src = e.source();
            while let Some(s) = src {
                why = format!("{why}: {s}");
                src = s.source();
            }
            Err(unreachable(why))
        }
        Err(_) => Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
    }
}

async fn node_status(ch: &Channel) -> Result<dp::DataplaneStatus, CniError> {
    let mut c = DataplaneClient::new(ch.clone());
    call("Dataplane.Status", c.status(dp::StatusRequest {})).await
}

async fn status(conf: &NetConf) -> Result<(), CniError> {
    let ch = connect(conf)
        .await
        .map_err(|e| CniError::new(PLUGIN_NOT_AVAILABLE, e.msg))?;
    node_status(&ch)
        .await
        .map_err(|e| CniError::new(PLUGIN_NOT_AVAILABLE, e.msg))?;
    Ok(())
}

fn podlink_error(e: PodLinkError, env: &CniEnv) -> CniError {
    use tabby_felix_lite::netns::NetnsError;
    match &e {
        PodLinkError::Netns(NetnsError::Open { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            CniError::new(
                UNKNOWN_CONTAINER,
                format!(
                    "CNI_NETNS {} does not exist",
                    env.netns
                        .as_deref()
                        .unwrap_or(std::path::Path::new(""))
                        .display()
                ),
            )
        }
        _ => CniError::new(INTERFACE_FAILED, e.to_string()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PodLinkError> + Send + 'static,
    env: &CniEnv,
) -> Result<T, CniError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| podlink_error(e, env)),
        Err(e) => Err(CniError::new(
            INTERFACE_FAILED,
            format!("interface work panicked: {e}"),
        )),
    }
}

async fn pod_mtu(conf: &NetConf, status: &dp::DataplaneStatus) -> u32 {
    match conf.mtu {
        Some(m) => m,
        None if status.pod_mtu != 0 => status.pod_mtu,
        None => {
            tracing::warn!("the node has not measured its interface MTU yet; using {FALLBACK_MTU}");
            FALLBACK_MTU
        }
    }
}

async fn add(env: &CniEnv, conf: &NetConf) -> Result<serde_json::Value, CniError> {
    let netns = env
        .netns
        .clone()
        .expect("ADD requires CNI_NETNS (checked by env)");
    // Before anything is assigned: a gone sandbox is the runtime's problem.
    if !netns.exists() {
        return Err(CniError::new(
            UNKNOWN_CONTAINER,
            format!("CNI_NETNS {} does not exist", netns.display()),
        ));
    }
    check_namespace(&netns)?;
    let ch = connect(conf).await?;
    let status = node_status(&ch).await?;
    let mtu = pod_mtu(conf, &status).await;
    let (probe_ns, probe_if) = (netns.clone(), env.ifname.clone());
    if blocking(move || podlink::pod_end_exists(&probe_ns, &probe_if), env).await? {
        return Err(CniError::new(
            INTERFACE_FAILED,
            format!(
                "{} already exists in {} (ADD repeated without DEL?); nothing changed",
                env.ifname,
                netns.display()
            ),
        ));
    }
    // Before anything is assigned: a bad annotation or an unreachable API
    // server must leave nothing behind.
    let wanted = super::k8s::assignment(conf, env).await?;
    let got = assign(&ch, env, conf, &wanted).await?;
    let ip = got.v4;
    let spec = PodLinkSpec {
        host_ifname: podlink::host_veth_name(&env.pod_namespace, &env.pod_name),
        pod_ifname: env.ifname.clone(),
        netns: netns.clone(),
        ip,
        mtu,
    };
    let link = match blocking(
        {
            let spec = spec.clone();
            move || podlink::setup(&spec)
        },
        env,
    )
    .await
    {
        Ok(l) => l,
        Err(e) => {
            release_quietly(&ch, &got).await;
            return Err(e);
        }
    };
    let undo_link = || {
        let (host, ns, ifname) = (link.host_ifname.clone(), netns.clone(), env.ifname.clone());
        blocking(
            move || podlink::teardown(Some(&host), Some(&ns), &ifname),
            env,
        )
    };
    if let Some(ip6) = got.v6 {
        let (ns, ifname) = (netns.clone(), env.ifname.clone());
        if let Err(e) = blocking(move || podlink6::add_ipv6(&ns, &ifname, ip6), env).await {
            let _ = undo_link().await;
            release_quietly(&ch, &got).await;
            return Err(e);
        }
    }
    let pod_mac = podlink::fmt_mac(&link.pod_mac);
    let mut c = DataplaneClient::new(ch.clone());
    let workload = dp::Workload {
        ip: ip.map(|a| a.to_string()).unwrap_or_default(),
        host_interface: link.host_ifname.clone(),
        namespace: env.pod_namespace.clone(),
        pod: env.pod_name.clone(),
        container_id: env.container_id.clone(),
        interface_name: env.ifname.clone(),
        mac: pod_mac.clone(),
        node: conf.nodename.clone(),
        ipv6: got.v6.map(|a| a.to_string()).unwrap_or_default(),
    };
    if let Err(e) = call("Dataplane.AddWorkload", c.add_workload(workload)).await {
        let _ = undo_link().await;
        release_quietly(&ch, &got).await;
        return Err(e);
    }
    tracing::info!(ip = ?ip, ipv6 = ?got.v6, host = %link.host_ifname, "pod networked");
    Ok(result::add_result(
        &conf.cni_version,
        ip,
        got.v6,
        &Interfaces {
            host_name: &link.host_ifname,
            host_mac: &podlink::fmt_mac(&link.host_mac),
            pod_name: &link.pod_ifname,
            pod_mac: &pod_mac,
            sandbox: &netns,
        },
    ))
}

/// A namespace file (a bind mount of one, or /proc/PID/ns/net) lives on
/// nsfs, which all namespace files share; a regular file or directory
/// there is a runtime's mistake, refused before the node is asked for an
/// address.
fn check_namespace(netns: &std::path::Path) -> Result<(), CniError> {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.dev());
    match (dev(netns), dev(std::path::Path::new("/proc/self/ns/net"))) {
        (Ok(a), Ok(b)) if a != b => Err(CniError::new(
            INVALID_ENV,
            format!(
                "CNI_NETNS {} is not a network namespace (expected a path such as /var/run/netns/NAME \
                 or /proc/PID/ns/net)",
                netns.display()
            ),
        )),
        // Unreadable either way: setting up the interface reports it.
        _ => Ok(()),
    }
}

async fn release(env: &CniEnv, conf: &NetConf) -> Result<(), CniError> {
    let ch = connect(conf).await?;
    let mut c = IpamClient::new(ch);
    let req = ip::ReleaseByHandleRequest {
        handle_id: env.handle_id(),
    };
    call("Ipam.ReleaseByHandle", c.release_by_handle(req)).await?;
    Ok(())
}

async fn del(env: &CniEnv, conf: &NetConf) -> Result<(), CniError> {
    // The pod end lives in this sandbox's netns, so removing it can't hurt a
    // newer sandbox of the same pod; it also goes when the node is down.
    let (ns, ifname) = (env.netns.clone(), env.ifname.clone());
    blocking(move || podlink::teardown(None, ns.as_deref(), &ifname), env).await?;
    let ch = connect(conf).await?;
    let mut c = DataplaneClient::new(ch.clone());
    let prev_ip = conf.prev_result.as_ref().and_then(result::prev_ipv4);
    let req = dp::RemoveWorkloadRequest {
        ip: prev_ip.map(|i| i.to_string()).unwrap_or_default(),
        namespace: env.pod_namespace.clone(),
        pod: env.pod_name.clone(),
        interface_name: env.ifname.clone(),
        container_id: env.container_id.clone(),
    };
    let removed = call("Dataplane.RemoveWorkload", c.remove_workload(req)).await?;
    if !removed.kept_for_other_container {
        let host = podlink::host_veth_name(&env.pod_namespace, &env.pod_name);
        blocking(move || podlink::teardown(Some(&host), None, "eth0"), env).await?;
    }
    release(env, conf).await
}

/// The IPv4 address of ADD's result, when the config asks for one (an
/// IPv6-only pod's result holds none: its /128 is checked on its own).
fn prev_ip(conf: &NetConf) -> Result<Option<Ipv4Addr>, CniError> {
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            INVALID_CONFIG,
            "prevResult is missing; CHECK needs the result of ADD",
        )
    })?;
    let ip = result::prev_ipv4(prev);
    if ip.is_none() && conf.ipam.wants_ipv4() {
        return Err(CniError::new(
            INVALID_CONFIG,
            "prevResult.ips holds no IPv4 address",
        ));
    }
    if ip.is_none() && result::prev_ipv6(prev).is_none() {
        return Err(CniError::new(
            INVALID_CONFIG,
            "prevResult.ips holds no IPv6 address (ipam.assign_ipv4 is \"false\")",
        ));
    }
    Ok(ip)
}

/// The node's IPAM says `ip` is held by this container's handle.
async fn check_assignment(ch: &Channel, env: &CniEnv, ip: IpAddr) -> Result<(), CniError> {
    let mut c = IpamClient::new(ch.clone());
    let req = ip::ShowRequest {
        show_blocks: false,
        ip: ip.to_string(),
    };
    let shown = call("Ipam.Show", c.show(req)).await?;
    if !shown.ip_in_use {
        return Err(CniError::new(
            CHECK_FAILED,
            format!("{ip} is not assigned in IPAM"),
        ));
    }
    if shown.handle_id != env.handle_id() {
        return Err(CniError::new(
            CHECK_FAILED,
            format!(
                "{ip} is assigned to handle {}, not {}",
                shown.handle_id,
                env.handle_id()
            ),
        ));
    }
    Ok(())
}

async fn check(env: &CniEnv, conf: &NetConf) -> Result<(), CniError> {
    let ip = prev_ip(conf)?;
    if let Some(ns) = &env.netns {
        check_namespace(ns)?;
    }
    let ch = connect(conf).await?;
    let status = node_status(&ch).await?;
    let spec = PodLinkSpec {
        host_ifname: podlink::host_veth_name(&env.pod_namespace, &env.pod_name),
        pod_ifname: env.ifname.clone(),
        netns: env
            .netns
            .clone()
            .expect("CHECK requires CNI_NETNS (checked by env)"),
        ip,
        mtu: pod_mtu(conf, &status).await,
    };
    let as_check = |e: CniError| match e.code {
        INTERFACE_FAILED => CniError::new(CHECK_FAILED, e.msg),
        _ => e,
    };
    let (ns, ifname) = (spec.netns.clone(), spec.pod_ifname.clone());
    blocking(move || podlink::check(&spec), env)
        .await
        .map_err(as_check)?;
    if let Some(ip6) = conf.prev_result.as_ref().and_then(result::prev_ipv6) {
        blocking(move || podlink6::check_ipv6(&ns, &ifname, ip6), env)
            .await
            .map_err(as_check)?;
    }
    if let Some(ip) = ip {
        check_assignment(&ch, env, ip.into()).await?;
    }
    check_ipv6_assignment(&ch, env, conf).await
}

/// A dual-stack prevResult's IPv6 address must be held by the handle too.
async fn check_ipv6_assignment(ch: &Channel, env: &CniEnv, conf: &NetConf) -> Result<(), CniError> {
    match conf.prev_result.as_ref().and_then(result::prev_ipv6) {
        Some(ip6) => check_assignment(ch, env, ip6.into()).await,
        None => Ok(()),
    }
}

/// As Calico's calico-ipam, the IPAM plugin reads no annotations: the
/// main plugin that delegates to it is the one that knows the pod.
async fn ipam_add(env: &CniEnv, conf: &NetConf) -> Result<serde_json::Value, CniError> {
    let ch = connect(conf).await?;
    let pools = Assignment::Pools {
        v4: conf.ipam.ipv4_pools.clone(),
        v6: None,
    };
    let got = assign(&ch, env, conf, &pools).await?;
    Ok(result::ipam_result(&conf.cni_version, got.v4, got.v6))
}

async fn ipam_check(env: &CniEnv, conf: &NetConf) -> Result<(), CniError> {
    let ip = prev_ip(conf)?;
    let ch = connect(conf).await?;
    if let Some(ip) = ip {
        check_assignment(&ch, env, ip.into()).await?;
    }
    check_ipv6_assignment(&ch, env, conf).await
}
