//! Assigning one specific address, as Calico's `AssignIP` does for the
//! `cni.projectcalico.org/ipAddrs` annotation: the address must lie in an
//! enabled pool; the block holding it is claimed for the node when no one
//! has created it yet, and used as it is when someone has (whoever's it
//! is, unless strictAffinity forbids that). Pool node selectors and
//! IPReservations don't apply: they steer automatic assignment, and an
//! explicit request has already chosen.

use crate::allocator::{seed_for, Conflicts, Ipam, IpamError};
use crate::block::{Attribute, BlockError};
use crate::store::*;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct AssignIpRequest {
    pub ip: IpAddr,
    /// e.g. `k8s-pod-network.<containerID>`.
    pub handle_id: String,
    /// The node a block claimed for this address becomes affine to.
    pub node: String,
    pub attributes: BTreeMap<String, String>,
}

pub use crate::assign_error::AssignIpError;

impl<S: IpamStore> Ipam<S> {
    /// Assigns `req.ip` to `req.handle_id`, returning the pool it is in.
    /// Block and handle are written in one transaction, so the address is
    /// either recorded in both or in neither.
    pub async fn assign_ip(&self, req: &AssignIpRequest) -> Result<IpNet, IpamError> {
        let ip = req.ip;
        let pools = self.store.pools().await?;
        // The narrowest pool wins should pools overlap: it is the one whose
        // block size describes the address's block.
        let Some(pool) = pools
            .iter()
            .filter(|p| p.cidr.contains(&ip))
            .max_by_key(|p| p.cidr.prefix_len())
        else {
            return Err(AssignIpError::NotInPool { ip }.into());
        };
        if pool.disabled {
            return Err(AssignIpError::PoolDisabled {
                ip,
                pool: pool.cidr,
                name: pool.name.clone(),
            }
            .into());
        }
        let Some(cidr) = pool.block_of(ip) else {
            return Err(AssignIpError::NotInPool { ip }.into());
        };
        let cfg = self.store.config().await?;
        let attr = Attribute {
            handle_id: Some(req.handle_id.clone()),
            secondary: req.attributes.clone(),
        };
        let mut conflicts = Conflicts {
            n: 0,
            seed: seed_for(&req.handle_id),
        };
        loop {
            let vb = match self.store.get_block(cidr).await? {
                Some(vb) if !vb.value.deleted => vb,
                // Being deleted by its host: wait for it to go, then claim.
                Some(_) => {
                    conflicts.hit().await?;
                    continue;
                }
                None => {
                    match self.claim(&req.node, cidr).await {
                        Ok(()) => {}
                        // Someone else created it meanwhile: use theirs.
                        Err(IpamError::Store(StoreError::Conflict)) => conflicts.hit().await?,
                        Err(e) => return Err(e),
                    }
                    continue;
                }
            };
            let mut block = vb.value;
            if cfg.strict_affinity && block.host() != Some(req.node.as_str()) {
                return Err(AssignIpError::NotAffine {
                    ip,
                    block: cidr,
                    owner: block.host().map(str::to_string),
                    node: req.node.clone(),
                }
                .into());
            }
            match block.assign_ip(ip, attr.clone()) {
                Ok(()) => {}
                Err(BlockError::AlreadyAssigned { handle, .. }) => {
                    return Err(AssignIpError::InUse { ip, handle }.into())
                }
                // The block is the pool's block of `ip`: it holds it.
                Err(e) => {
                    return Err(IpamError::Store(StoreError::Unavailable(format!(
                        "block {cidr}: {e}"
                    ))))
                }
            }
            let current = self.store.get_handle(&req.handle_id).await?;
            let (mut handle, handle_rev) = match current {
                Some(v) => (v.value, Some(v.revision)),
                None => (
                    Handle {
                        id: req.handle_id.clone(),
                        blocks: BTreeMap::new(),
                    },
                    None,
                ),
            };
            *handle.blocks.entry(cidr).or_default() += 1;
            match self
                .store
                .write_block_and_handle(&block, vb.revision, &handle, handle_rev)
                .await
            {
                Ok(_) => return Ok(pool.cidr),
                // Block or handle changed since we read them: read both again
                // (the address may have been taken meanwhile).
                Err((
                    _,
                    StoreError::Conflict | StoreError::NotFound | StoreError::AlreadyExists,
                )) => conflicts.hit().await?,
                Err((_, e)) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::AssignRequest;
    use crate::memory::MemoryIpamStore;
    use crate::pool::Pool;

    fn pool(name: &str, cidr: &str, disabled: bool) -> Pool {
        Pool {
            name: name.into(),
            cidr: cidr.parse().unwrap(),
            block_size: 26,
            node_selector: "all()".parse().unwrap(),
            disabled,
            allowed_uses: vec![],
        }
    }

    fn ipam(cfg: Config) -> Ipam<MemoryIpamStore> {
        Ipam::new(MemoryIpamStore::new(
            vec![
                pool("a", "10.1.0.0/24", false),
                pool("off", "10.2.0.0/24", true),
            ],
            cfg,
        ))
    }

    fn req(ip: &str, handle: &str, node: &str) -> AssignIpRequest {
        AssignIpRequest {
            ip: ip.parse().unwrap(),
            handle_id: handle.into(),
            node: node.into(),
            attributes: BTreeMap::from([("pod".to_string(), "web".to_string())]),
        }
    }

    #[tokio::test]
    async fn claims_the_block_for_the_node_and_records_the_handle() {
        let ipam = ipam(Config::default());
        let pool = ipam.assign_ip(&req("10.1.0.77", "h1", "n1")).await.unwrap();
        assert_eq!(pool, "10.1.0.0/24".parse::<IpNet>().unwrap());
        let block: IpNet = "10.1.0.64/26".parse().unwrap();
        let affs = ipam.store().list_affinities(Some("n1")).await.unwrap();
        assert_eq!(affs.len(), 1);
        assert_eq!(
            (affs[0].value.cidr, affs[0].value.state),
            (block, AffinityState::Confirmed)
        );
        let b = ipam.store().get_block(block).await.unwrap().unwrap().value;
        let holder = b.holder("10.1.0.77".parse().unwrap()).unwrap();
        assert_eq!(holder.handle_id.as_deref(), Some("h1"));
        assert_eq!(holder.secondary["pod"], "web");
        assert_eq!(b.in_use(), 1);
        let h = ipam.store().get_handle("h1").await.unwrap().unwrap().value;
        assert_eq!(h.blocks, BTreeMap::from([(block, 1)]));
        // Released by handle like any other assignment.
        let released = ipam.release_by_handle("h1").await.unwrap();
        assert_eq!(released, vec!["10.1.0.77".parse::<IpAddr>().unwrap()]);
    }

    #[tokio::test]
    async fn uses_another_nodes_block_as_it_is_unless_strict() {
        let ipam = ipam(Config::default());
        // n1 owns the block through an ordinary assignment.
        let (got, _) = ipam
            .auto_assign(&AssignRequest::new("h0", "n1"))
            .await
            .unwrap();
        let block = IpNet::new(got[0], 26).unwrap().trunc();
        let wanted = match block.network() {
            IpAddr::V4(n) => IpAddr::V4((u32::from(n) + 40).into()),
            IpAddr::V6(_) => unreachable!(),
        };
        let mut r = req("0.0.0.0", "h2", "n2");
        r.ip = wanted;
        ipam.assign_ip(&r).await.unwrap();
        let b = ipam.store().get_block(block).await.unwrap().unwrap().value;
        assert_eq!(b.host(), Some("n1"), "the block stays n1's");
        assert_eq!(b.holder(wanted).unwrap().handle_id.as_deref(), Some("h2"));
        assert!(ipam
            .store()
            .list_affinities(Some("n2"))
            .await
            .unwrap()
            .is_empty());

        let strict = self::ipam(Config {
            strict_affinity: true,
            ..Config::default()
        });
        strict
            .assign_ip(&req("10.1.0.5", "h1", "n1"))
            .await
            .unwrap();
        let e = strict
            .assign_ip(&req("10.1.0.6", "h2", "n2"))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, IpamError::Assign(AssignIpError::NotAffine { owner: Some(o), .. }) if o == "n1"),
            "{e}"
        );
        assert!(e.to_string().contains("strictAffinity"), "{e}");
    }

    #[tokio::test]
    async fn refuses_an_address_in_use_outside_pools_or_in_a_disabled_pool() {
        let ipam = ipam(Config::default());
        ipam.assign_ip(&req("10.1.0.9", "h1", "n1")).await.unwrap();
        let e = ipam
            .assign_ip(&req("10.1.0.9", "h2", "n1"))
            .await
            .unwrap_err();
        assert_eq!(
            e,
            IpamError::Assign(AssignIpError::InUse {
                ip: "10.1.0.9".parse().unwrap(),
                handle: Some("h1".into())
            })
        );
        assert_eq!(e.to_string(), "10.1.0.9 is already in use by handle h1");
        // The refused request left no trace on its handle.
        assert!(ipam.store().get_handle("h2").await.unwrap().is_none());

        let e = ipam
            .assign_ip(&req("10.9.0.1", "h3", "n1"))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "10.9.0.1 is not in any IP pool");
        let e = ipam
            .assign_ip(&req("10.2.0.1", "h3", "n1"))
            .await
            .unwrap_err();
        assert!(
            matches!(e, IpamError::Assign(AssignIpError::PoolDisabled { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("disabled"), "{e}");
        assert!(ipam.store().list_blocks().await.unwrap().len() == 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_requests_for_one_address_give_it_to_exactly_one() {
        let ipam = std::sync::Arc::new(ipam(Config::default()));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let ipam = ipam.clone();
                tokio::spawn(async move {
                    ipam.assign_ip(&req("10.1.0.200", &format!("h{i}"), &format!("n{}", i % 2)))
                        .await
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(IpamError::Assign(AssignIpError::InUse { .. })) => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(ok, 1);
        let block: IpNet = "10.1.0.192/26".parse().unwrap();
        let b = ipam.store().get_block(block).await.unwrap().unwrap().value;
        assert_eq!(b.in_use(), 1);
        let handles = ipam.store().list_handles().await.unwrap();
        assert_eq!(handles.len(), 1, "only the winner's handle exists");
    }
}
