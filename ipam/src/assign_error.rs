//! Why a specific address can't be had. Its own module so the allocator's
//! error can carry it without the allocator and `assign_ip` naming each
//! other.

use ipnet::IpNet;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignIpError {
    #[error("{ip} is not in any IP pool")]
    NotInPool { ip: IpAddr },
    #[error("{ip} is in IP pool {pool} ({name}), which is disabled")]
    PoolDisabled {
        ip: IpAddr,
        pool: IpNet,
        name: String,
    },
    #[error("{ip} is already in use{}", .handle.as_ref().map(|h| format!(" by handle {h}")).unwrap_or_default())]
    InUse { ip: IpAddr, handle: Option<String> },
    #[error(
        "{ip} is in block {block}, affine to {}, and IPAMConfig strictAffinity forbids node {node} from using another node's block",
        .owner.as_deref().unwrap_or("no node")
    )]
    NotAffine {
        ip: IpAddr,
        block: IpNet,
        owner: Option<String>,
        node: String,
    },
}
