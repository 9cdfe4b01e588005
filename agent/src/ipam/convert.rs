//! Calico's IPAM resources to `tabby_ipam` types and back. Values read
//! from a store are checked before the allocator relies on them.

use crate::resources::ipam::{
    affinity_name, block_name, AffinityState as ResState, AllocationAttribute, BlockAffinitySpec,
    IpamBlockSpec, IpamConfigSpec, IpamHandleSpec,
};
use crate::resources::ippool::{AllowedUse, IpPoolSpec};
use crate::resources::{Object, Resource};
use ipnet::IpNet;
use std::collections::{BTreeMap, VecDeque};
use tabby_ipam::block::{Attribute, Block};
use tabby_ipam::pool::{Pool, Use};
use tabby_ipam::selector::Selector;
use tabby_ipam::store::{Affinity, AffinityState, Config, Handle, StoreError, Versioned};

pub(crate) fn config_from(c: &IpamConfigSpec) -> Config {
    Config {
        strict_affinity: c.strict_affinity,
        auto_allocate_blocks: c.auto_allocate_blocks,
        max_blocks_per_host: c.max_blocks_per_host,
        reserved: Vec::new(),
    }
}

fn corrupt(what: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("stored {what} is not usable: {why}"))
}

pub(crate) fn pool_from(name: &str, spec: &IpPoolSpec) -> Result<Pool, StoreError> {
    let cidr: IpNet = spec
        .cidr
        .parse()
        .map_err(|e| corrupt(&format!("IPPool {name}"), e))?;
    let node_selector = match spec.node_selector.as_deref() {
        None => Selector::all(),
        Some(s) => Selector::parse(s).map_err(|e| corrupt(&format!("IPPool {name}"), e))?,
    };
    // Stored pools were defaulted at apply time; fill again for pools
    // written by other tools.
    let mut spec = spec.clone();
    spec.fill_defaults(cidr.addr().is_ipv6());
    Ok(Pool {
        name: name.to_string(),
        cidr,
        block_size: spec.block_size.unwrap_or_default(),
        node_selector,
        disabled: spec.disabled,
        allowed_uses: spec
            .allowed_uses
            .iter()
            .filter_map(|u| match u {
                AllowedUse::Workload => Some(Use::Workload),
                AllowedUse::Tunnel => Some(Use::Tunnel),
                AllowedUse::LoadBalancer => None,
            })
            .collect(),
    })
}

pub(crate) fn block_from(spec: &IpamBlockSpec) -> Result<Block, StoreError> {
    let what = format!("IPAMBlock {}", spec.cidr);
    let cidr: IpNet = spec.cidr.parse().map_err(|e| corrupt(&what, e))?;
    // A block from the store is checked before the allocator indexes into
    // it: lengths and indices must agree with the CIDR.
    let fresh = Block::new(cidr, None, 0).map_err(|e| corrupt(&what, e))?;
    let size = fresh.size() as usize;
    if spec.allocations.len() != size {
        return Err(corrupt(
            &what,
            format!(
                "{} allocations for {size} addresses",
                spec.allocations.len()
            ),
        ));
    }
    let n_attr = spec.attributes.len() as u32;
    if spec.unallocated.iter().any(|o| *o as usize >= size)
        || spec.allocations.iter().flatten().any(|a| *a >= n_attr)
    {
        return Err(corrupt(&what, "ordinal or attribute index out of range"));
    }
    Ok(Block {
        cidr,
        affinity: spec.affinity.clone(),
        allocations: spec.allocations.clone(),
        unallocated: spec.unallocated.iter().copied().collect::<VecDeque<_>>(),
        attributes: spec
            .attributes
            .iter()
            .map(|a| Attribute {
                handle_id: a.handle_id.clone(),
                secondary: a.secondary.clone(),
            })
            .collect(),
        sequence_number: spec.sequence_number,
        sequence_for_allocation: spec
            .sequence_number_for_allocation
            .iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, *v)))
            .collect(),
        deleted: spec.deleted,
    })
}

pub(crate) fn block_resource(b: &Block) -> Resource {
    let spec = IpamBlockSpec {
        cidr: b.cidr.to_string(),
        affinity: b.affinity.clone(),
        affinity_claim_time: None,
        strict_affinity: false,
        allocations: b.allocations.clone(),
        unallocated: b.unallocated.iter().copied().collect(),
        attributes: b
            .attributes
            .iter()
            .map(|a| AllocationAttribute {
                handle_id: a.handle_id.clone(),
                secondary: a.secondary.clone(),
                released_at: None,
            })
            .collect(),
        sequence_number: b.sequence_number,
        sequence_number_for_allocation: b
            .sequence_for_allocation
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        deleted: b.deleted,
    };
    Resource::IpamBlock(Object::new(
        "IPAMBlock",
        &block_name(&b.cidr.to_string()),
        spec,
    ))
}

fn state_to(s: AffinityState) -> ResState {
    match s {
        AffinityState::Pending => ResState::Pending,
        AffinityState::Confirmed => ResState::Confirmed,
        AffinityState::PendingDeletion => ResState::PendingDeletion,
    }
}

fn state_from(s: ResState) -> AffinityState {
    match s {
        ResState::Pending => AffinityState::Pending,
        ResState::Confirmed => AffinityState::Confirmed,
        ResState::PendingDeletion => AffinityState::PendingDeletion,
    }
}

pub(crate) fn affinity_resource(a: &Affinity) -> Resource {
    let cidr = a.cidr.to_string();
    let spec = BlockAffinitySpec {
        state: state_to(a.state),
        node: a.node.clone(),
        cidr: cidr.clone(),
        deleted: false,
    };
    Resource::BlockAffinity(Object::new(
        "BlockAffinity",
        &affinity_name(&a.node, &cidr),
        spec,
    ))
}

pub(crate) fn handle_resource(h: &Handle) -> Resource {
    let spec = IpamHandleSpec {
        handle_id: h.id.clone(),
        block: h.blocks.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        deleted: false,
    };
    Resource::IpamHandle(Object::new("IPAMHandle", &h.id, spec))
}

pub(crate) fn versioned_block(r: &Resource) -> Result<Versioned<Block>, StoreError> {
    match r {
        Resource::IpamBlock(b) => Ok(Versioned {
            value: block_from(&b.spec)?,
            revision: r.revision().unwrap_or_default(),
        }),
        _ => Err(corrupt("IPAMBlock", "wrong kind")),
    }
}

pub(crate) fn versioned_affinity(r: &Resource) -> Result<Versioned<Affinity>, StoreError> {
    let Resource::BlockAffinity(a) = r else {
        return Err(corrupt("BlockAffinity", "wrong kind"));
    };
    let cidr = a
        .spec
        .cidr
        .parse::<IpNet>()
        .map_err(|e| corrupt(&format!("BlockAffinity {}", a.metadata.name), e))?;
    Ok(Versioned {
        value: Affinity {
            node: a.spec.node.clone(),
            cidr,
            state: state_from(a.spec.state),
        },
        revision: r.revision().unwrap_or_default(),
    })
}

pub(crate) fn versioned_handle(r: &Resource) -> Result<Versioned<Handle>, StoreError> {
    let Resource::IpamHandle(h) = r else {
        return Err(corrupt("IPAMHandle", "wrong kind"));
    };
    let id = &h.metadata.name;
    let mut blocks = BTreeMap::new();
    for (k, v) in &h.spec.block {
        let cidr = k
            .parse::<IpNet>()
            .map_err(|e| corrupt(&format!("IPAMHandle {id}"), e))?;
        blocks.insert(cidr, *v);
    }
    Ok(Versioned {
        value: Handle {
            id: id.clone(),
            blocks,
        },
        revision: r.revision().unwrap_or_default(),
    })
}
