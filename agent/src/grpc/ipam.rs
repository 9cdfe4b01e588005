//! The `Ipam` gRPC service over the allocator.

use std::net::IpAddr;
use std::sync::Arc;
use tabby_ipam::allocator::{AssignRequest, Ipam, IpamError};
use tabby_ipam::assign_ip::{AssignIpError, AssignIpRequest};
use tabby_ipam::pool::{Pool, Use};
use tabby_ipam::report::usage;
use tabby_ipam::store::IpamStore;
use tabby_proto::ipam as pb;
use tonic::{Request, Response, Status};
use tracing::Instrument;

pub struct IpamService<S> {
    ipam: Arc<Ipam<S>>,
    /// The node this agent runs on; requests that name no node use it.
    node: String,
}

impl<S> IpamService<S> {
    pub fn new(ipam: Arc<Ipam<S>>, node: &str) -> Self {
        IpamService {
            ipam,
            node: node.to_string(),
        }
    }
}

/// Codes chosen so the CNI plugin can map them: UNAVAILABLE means "try
/// again later" (CNI code 11).
fn status(e: IpamError) -> Status {
    let msg = e.to_string();
    match e {
        IpamError::Pool(_) => Status::failed_precondition(msg),
        IpamError::Assign(AssignIpError::InUse { .. }) => Status::already_exists(msg),
        IpamError::Assign(_) => Status::failed_precondition(msg),
        IpamError::Exhausted { .. } | IpamError::BlockLimit { .. } => {
            Status::resource_exhausted(msg)
        }
        IpamError::TooManyConflicts(_) | IpamError::Store(_) => Status::unavailable(msg),
    }
}

/// When the address was assigned, unless the caller said: `ipam check`
/// leaves allocations younger than its grace period alone.
fn with_timestamp(
    mut attrs: std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    attrs.entry("timestamp".into()).or_insert_with(|| {
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
    });
    attrs
}

/// The pools a request names, as CIDRs: each entry is a CIDR or, as in
/// Calico's CNI `ipv4_pools`/`ipv6_pools` and pool annotations, an
/// IPPool's name. `pools` is read only when some entry is a name.
async fn resolve_pools<S: IpamStore>(
    store: &S,
    v: &[String],
    field: &str,
    v6: bool,
) -> Result<Vec<ipnet::IpNet>, Status> {
    let mut known: Option<Vec<Pool>> = None;
    let mut out = Vec::with_capacity(v.len());
    for s in v {
        let net = match s.parse::<ipnet::IpNet>() {
            Ok(n) => n,
            Err(_) => {
                if known.is_none() {
                    known = Some(store.pools().await.map_err(|e| status(e.into()))?);
                }
                let pools = known.as_deref().unwrap_or_default();
                match pools.iter().find(|p| p.name == *s) {
                    Some(p) => p.cidr,
                    None => {
                        return Err(Status::failed_precondition(format!(
                            "{field}: {s:?} is neither a CIDR nor the name of an IP pool"
                        )))
                    }
                }
            }
        };
        if net.addr().is_ipv6() != v6 {
            return Err(Status::invalid_argument(format!(
                "{field}: {s:?} ({net}) is not an IPv{} pool",
                if v6 { 6 } else { 4 }
            )));
        }
        out.push(net);
    }
    Ok(out)
}

impl<S: IpamStore + 'static> IpamService<S> {
    /// Each address with its block's prefix length, as Calico returns them
    /// (`AutoAssignResponse.ipv4`/`ipv6`, kept for callers built before the
    /// bare `*_addresses` fields).
    async fn with_prefix(&self, ips: &[IpAddr]) -> Result<Vec<String>, Status> {
        let pools = self
            .ipam
            .store()
            .pools()
            .await
            .map_err(|e| status(e.into()))?;
        Ok(ips
            .iter()
            .map(|ip| {
                let len = pools
                    .iter()
                    .find(|p| p.cidr.contains(ip))
                    .map(|p| p.block_size)
                    .unwrap_or(if ip.is_ipv4() { 32 } else { 128 });
                format!("{ip}/{len}")
            })
            .collect())
    }
}

#[tonic::async_trait]
impl<S: IpamStore + 'static> pb::ipam_server::Ipam for IpamService<S> {
    async fn auto_assign(
        &self,
        req: Request<pb::AutoAssignRequest>,
    ) -> Result<Response<pb::AutoAssignResponse>, Status> {
        let r = req.into_inner();
        if r.handle_id.is_empty() {
            return Err(Status::invalid_argument("handle_id: required"));
        }
        let node = if r.node.is_empty() {
            self.node.clone()
        } else {
            r.node
        };
        // The span is attached to the future, not entered: a guard held
        // across an await would mark whatever else runs on this thread
        // meanwhile as part of this assignment.
        let span = tracing::info_span!("auto_assign", handle = %r.handle_id, node = %node);
        async move {
            let mut attributes = with_timestamp(r.attributes.into_iter().collect());
            // The node is known here, so a caller need not look it up
            // just to label the allocation (Calico's `node` attribute).
            attributes
                .entry("node".into())
                .or_insert_with(|| node.clone());
            let areq = AssignRequest {
                handle_id: r.handle_id,
                node,
                num_v4: r.num_ipv4 as usize,
                num_v6: r.num_ipv6 as usize,
                pools_v4: resolve_pools(self.ipam.store(), &r.ipv4_pools, "ipv4_pools", false)
                    .await?,
                pools_v6: resolve_pools(self.ipam.store(), &r.ipv6_pools, "ipv6_pools", true)
                    .await?,
                attributes,
                use_for: Use::Workload,
                exclude: Vec::new(),
            };
            let (v4, v6) = self.ipam.auto_assign(&areq).await.map_err(status)?;
            let bare = |ips: &[IpAddr]| ips.iter().map(ToString::to_string).collect();
            Ok(Response::new(pb::AutoAssignResponse {
                ipv4: self.with_prefix(&v4).await?,
                ipv6: self.with_prefix(&v6).await?,
                ipv4_addresses: bare(&v4),
                ipv6_addresses: bare(&v6),
            }))
        }
        .instrument(span)
        .await
    }

    async fn assign_ip(
        &self,
        req: Request<pb::AssignIpRequest>,
    ) -> Result<Response<pb::AssignIpResponse>, Status> {
        let r = req.into_inner();
        if r.handle_id.is_empty() {
            return Err(Status::invalid_argument("handle_id: required"));
        }
        let ip: IpAddr = r.ip.parse().map_err(|_| {
            Status::invalid_argument(format!("ip: {:?} is not an IP address", r.ip))
        })?;
        let node = if r.node.is_empty() {
            self.node.clone()
        } else {
            r.node
        };
        let span = tracing::info_span!("assign_ip", handle = %r.handle_id, node = %node, %ip);
        async move {
            let mut attributes = with_timestamp(r.attributes.into_iter().collect());
            attributes
                .entry("node".into())
                .or_insert_with(|| node.clone());
            let areq = AssignIpRequest {
                ip,
                handle_id: r.handle_id,
                node,
                attributes,
            };
            let pool = self.ipam.assign_ip(&areq).await.map_err(status)?;
            Ok(Response::new(pb::AssignIpResponse {
                ip: ip.to_string(),
                pool: pool.to_string(),
            }))
        }
        .instrument(span)
        .await
    }

    async fn release_by_handle(
        &self,
        req: Request<pb::ReleaseByHandleRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        let id = req.into_inner().handle_id;
        if id.is_empty() {
            return Err(Status::invalid_argument("handle_id: required"));
        }
        let ips = self.ipam.release_by_handle(&id).await.map_err(status)?;
        Ok(Response::new(pb::ReleaseResponse {
            released: ips.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn release_ip(
        &self,
        req: Request<pb::ReleaseIpRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        let s = req.into_inner().ip;
        let ip: IpAddr = s
            .parse()
            .map_err(|_| Status::invalid_argument(format!("ip: {s:?} is not an IP address")))?;
        let ips = self.ipam.release_ips(&[ip]).await.map_err(status)?;
        Ok(Response::new(pb::ReleaseResponse {
            released: ips.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn show(
        &self,
        req: Request<pb::ShowRequest>,
    ) -> Result<Response<pb::ShowResponse>, Status> {
        let r = req.into_inner();
        let store = self.ipam.store();
        let e = |e: tabby_ipam::store::StoreError| status(e.into());
        let blocks: Vec<_> = store
            .list_blocks()
            .await
            .map_err(e)?
            .into_iter()
            .map(|b| b.value)
            .collect();
        let mut resp = pb::ShowResponse::default();
        if !r.ip.is_empty() {
            let ip: IpAddr = r.ip.parse().map_err(|_| {
                Status::invalid_argument(format!("ip: {:?} is not an IP address", r.ip))
            })?;
            if let Some(a) = blocks
                .iter()
                .find(|b| b.cidr.contains(&ip))
                .and_then(|b| b.holder(ip))
            {
                resp.ip_in_use = true;
                resp.handle_id = a.handle_id.clone().unwrap_or_default();
                resp.attributes = a.secondary.clone().into_iter().collect();
            }
            return Ok(Response::new(resp));
        }
        let pools = store.pools().await.map_err(e)?;
        let cfg = store.config().await.map_err(e)?;
        resp.rows = usage(&pools, &blocks, &cfg, r.show_blocks)
            .into_iter()
            .map(|u| pb::Usage {
                grouping: u.grouping.to_string(),
                cidr: u.cidr.to_string(),
                total: u64::try_from(u.total).unwrap_or(u64::MAX),
                in_use: u64::try_from(u.in_use).unwrap_or(u64::MAX),
                reserved: u64::try_from(u.reserved).unwrap_or(u64::MAX),
                affinity: u.affinity,
            })
            .collect();
        Ok(Response::new(resp))
    }
}
