//! The faults of the `route`, `pool` and `route-budget` checks: foreign
//! routes into another node's block as an operator or a second routing
//! daemon leaves them (seed 000), and pools a real cluster ends up with
//! (seed 002): one over the node subnets, written past `apply`'s checks as
//! kubectl writes CRDs, and one with /32 blocks, which `apply` accepts.

use super::super::sh;
use super::super::state::{Lab, NODE_NET_SECOND_OCTETS};
use super::Fault;
use anyhow::{anyhow, bail, Context, Result};
use ipnet::Ipv4Net;
use serde_json::Value;
use std::net::Ipv4Addr;
use std::sync::Arc;
use tabby_agent::ctl::apply::{apply_documents, Mode};
use tabby_agent::datastore::{connect, Datastore, DatastoreConfig, Error as StoreError};
use tabby_agent::resources::{parse_documents, Kind, Resource};

pub const FAULTS: &[Fault] = &[
    Fault {
        name: "foreign-route",
        about: "a static /27 inside another node's block via the node subnet's network address (seed 000)",
        inject: foreign_route,
        clear: clear_foreign_route,
    },
    Fault {
        name: "wrong-next-hop",
        about: "a static route for another node's block via the subnet's router, not the owner, at metric 100",
        inject: wrong_next_hop,
        clear: clear_wrong_next_hop,
    },
    Fault {
        name: "overlapping-pool",
        about: "an enabled IPPool over the node subnets (172.31.0.0/16), written straight to the datastore",
        inject: overlapping_pool,
        clear: clear_overlapping_pool,
    },
    Fault {
        name: "tiny-blocks",
        about: "an IPPool with blockSize 32 on a /16 (65536 possible blocks), applied as tabbyctl apply accepts it",
        inject: tiny_blocks,
        clear: clear_tiny_blocks,
    },
];

/// The metric of `wrong-next-hop`'s route: behind Tabby's metric 0, as a
/// fallback route an operator adds "just in case".
const FALLBACK_METRIC: u32 = 100;
const OVERLAPPING_POOL: &str = "overlapping-pool";
const TINY_POOL: &str = "tiny-blocks";
const TINY_CIDR: &str = "172.29.0.0/16";

/// Runs `f` against the lab's datastore from the fabric namespace, where
/// etcd and the API stand-in listen (sqlite is a file: anywhere works).
fn with_store<T, F, Fut>(lab: &Lab, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(Arc<dyn Datastore>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T>>,
{
    let env = lab.datastore_env();
    let cfg = DatastoreConfig::from_lookup(|k| {
        env.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    })
    .map_err(|e| anyhow!(e))?;
    tabby_felix_lite::netns::block_on_in(&lab.fabric.netns, move || async move {
        let store = connect(&cfg)
            .await
            .context("connecting to the lab's datastore")?;
        f(store).await
    })?
}

/// A block another node owns, preferring one on `i`'s subnet (its route
/// is native via eth0, the case of seed 000): (block, owner).
fn foreign_block(lab: &Lab, i: usize) -> Result<(Ipv4Net, String)> {
    let me = lab.nodes[i].name.clone();
    let same_subnet: Vec<String> = lab
        .nodes
        .iter()
        .filter(|n| n.subnet == lab.nodes[i].subnet && n.name != me)
        .map(|n| n.name.clone())
        .collect();
    let mut blocks: Vec<(Ipv4Net, String)> = with_store(lab, |store| async move {
        let list = store.list(Kind::IpamBlock, None).await?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|r| match r {
                Resource::IpamBlock(b) if !b.spec.deleted => {
                    let owner = b.spec.affinity.as_deref()?.strip_prefix("host:")?;
                    Some((b.spec.cidr.parse().ok()?, owner.to_string()))
                }
                _ => None,
            })
            .collect())
    })?;
    blocks.retain(|(_, owner)| *owner != me);
    blocks.sort_by_key(|(b, owner)| (!same_subnet.contains(owner), *b));
    blocks
        .into_iter()
        .next()
        .with_context(|| format!("no other node than {me} owns a block: add a pod on another node"))
}

fn subnet(lab: &Lab, i: usize) -> Result<Ipv4Net> {
    let s = &lab.nodes[i].subnet;
    Ok(s.parse::<Ipv4Net>()
        .with_context(|| format!("node subnet {s:?}"))?
        .trunc())
}

fn router(lab: &Lab, i: usize) -> Result<Ipv4Addr> {
    lab.fabric
        .bridges
        .iter()
        .find(|b| b.subnet == lab.nodes[i].subnet)
        .map(|b| b.router)
        .context("the node's subnet has no router")
}

fn foreign_route(lab: &mut Lab, i: usize) -> Result<()> {
    let (block, _) = foreign_block(lab, i)?;
    let dst = Ipv4Net::new(block.network(), block.prefix_len() + 1)?;
    let via = subnet(lab, i)?.network().to_string();
    sh::ip_in(
        &lab.nodes[i].netns,
        &[
            "route",
            "add",
            &dst.to_string(),
            "via",
            &via,
            "dev",
            "eth0",
            "proto",
            "static",
        ],
    )?;
    Ok(())
}

/// The node's static routes into pod space whose next hop is `via` (and,
/// if given, whose metric is `metric`), as `ip -j` lists them.
fn static_routes(lab: &Lab, i: usize, via: Ipv4Addr, metric: Option<u32>) -> Result<Vec<String>> {
    let out = sh::ip_in(
        &lab.nodes[i].netns,
        &["-j", "route", "show", "proto", "static"],
    )?;
    let routes: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let pods = pod_space()?;
    Ok(routes
        .into_iter()
        .filter(|r| r["gateway"] == via.to_string().as_str())
        .filter(|r| metric.is_none_or(|m| r["metric"].as_u64() == Some(u64::from(m))))
        .filter_map(|r| {
            let dst = r["dst"].as_str()?.to_string();
            let net: Ipv4Net = dst.parse().or_else(|_| format!("{dst}/32").parse()).ok()?;
            pods.contains(&net).then_some(dst)
        })
        .collect())
}

fn pod_space() -> Result<Ipv4Net> {
    super::super::state::POD_POOL
        .parse()
        .map_err(|e| anyhow!("the lab's pod pool: {e}"))
}

fn delete_static(lab: &Lab, i: usize, via: Ipv4Addr, metric: Option<u32>) -> Result<()> {
    for dst in static_routes(lab, i, via, metric)? {
        let mut args = vec!["route", "del", &dst, "via"];
        let via = via.to_string();
        args.extend([via.as_str(), "proto", "static"]);
        let m = metric.map(|m| m.to_string());
        if let Some(m) = &m {
            args.extend(["metric", m]);
        }
        sh::ip_in(&lab.nodes[i].netns, &args)?;
    }
    Ok(())
}

fn clear_foreign_route(lab: &mut Lab, i: usize) -> Result<()> {
    let via = subnet(lab, i)?.network();
    delete_static(lab, i, via, None)
}

fn wrong_next_hop(lab: &mut Lab, i: usize) -> Result<()> {
    let (block, _) = foreign_block(lab, i)?;
    let via = router(lab, i)?.to_string();
    let metric = FALLBACK_METRIC.to_string();
    sh::ip_in(
        &lab.nodes[i].netns,
        &[
            "route",
            "add",
            &block.to_string(),
            "via",
            &via,
            "dev",
            "eth0",
            "proto",
            "static",
            "metric",
            &metric,
        ],
    )?;
    Ok(())
}

fn clear_wrong_next_hop(lab: &mut Lab, i: usize) -> Result<()> {
    let via = router(lab, i)?;
    delete_static(lab, i, via, Some(FALLBACK_METRIC))
}

fn pool_yaml(name: &str, cidr: &str, block_size: u8, selector: &str) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: {name}\nspec:\n  cidr: {cidr}\n  blockSize: {block_size}\n  ipipMode: Never\n  vxlanMode: Never\n  natOutgoing: false\n  nodeSelector: {selector:?}\n"
    )
}

fn one_pool(source: &str, yaml: &str) -> Result<Vec<tabby_agent::resources::ParsedDocument>> {
    parse_documents(source, yaml).map_err(|e| {
        anyhow!(
            "{}",
            e.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

/// Every node subnet of the lab lies in 172.31.0.0/16.
fn overlapping_pool(lab: &mut Lab, _i: usize) -> Result<()> {
    let (a, b) = NODE_NET_SECOND_OCTETS;
    let yaml = pool_yaml(OVERLAPPING_POOL, &format!("{a}.{b}.0.0/16"), 26, "all()");
    let docs = one_pool(OVERLAPPING_POOL, &yaml)?;
    // Straight to the store, as `kubectl apply` of the CRD would: no
    // tabbyctl validation on the way.
    with_store(lab, move |store| async move {
        for d in docs {
            store.create(d.resource).await?;
        }
        Ok(())
    })
}

fn delete_pool(lab: &Lab, name: &'static str) -> Result<()> {
    with_store(lab, move |store| async move {
        match store.delete(Kind::IpPool, name, None).await {
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    })
}

fn clear_overlapping_pool(lab: &mut Lab, _i: usize) -> Result<()> {
    delete_pool(lab, OVERLAPPING_POOL)
}

/// `nodeSelector: !all()` keeps the lab's own pods out of it: the doctor
/// flags the block size, whichever nodes the pool serves.
fn tiny_blocks(lab: &mut Lab, _i: usize) -> Result<()> {
    let docs = one_pool(TINY_POOL, &pool_yaml(TINY_POOL, TINY_CIDR, 32, "!all()"))?;
    with_store(lab, move |store| async move {
        match apply_documents(store.as_ref(), TINY_POOL, docs, Mode::Apply).await {
            Ok(_) => Ok(()),
            Err(e) => bail!("tabbyctl apply refused the pool: {e}"),
        }
    })
}

fn clear_tiny_blocks(lab: &mut Lab, _i: usize) -> Result<()> {
    delete_pool(lab, TINY_POOL)
}
