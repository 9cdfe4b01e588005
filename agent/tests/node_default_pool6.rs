//! tabby-node's default IPv6 pool: created from `CALICO_IPV6POOL_*` only
//! when `CALICO_IPV6POOL_CIDR` is set and no IPv6 pool exists (calico-node
//! checks each family on its own), next to the IPv4 default pool, over a
//! real SQLite datastore.

use std::collections::HashMap;
use tabby_agent::datastore::{sqlite::SqliteStore, Datastore};
use tabby_agent::node::config::NodeConfig;
use tabby_agent::node::startup::{ensure_default_pool, ensure_default_pool6};
use tabby_agent::resources::ippool::EncapMode;
use tabby_agent::resources::{Kind, Resource};

fn config(pairs: &[(&str, &str)]) -> NodeConfig {
    let mut m: HashMap<String, String> = HashMap::from([("NODENAME".into(), "node-1".into())]);
    for (k, v) in pairs {
        m.insert(k.to_string(), v.to_string());
    }
    NodeConfig::from_map(&m).unwrap()
}

async fn pools(ds: &dyn Datastore) -> Vec<(String, String, Option<u8>, Option<EncapMode>, bool)> {
    let mut v: Vec<_> = ds
        .list(Kind::IpPool, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|r| match r {
            Resource::IpPool(p) => Some((
                p.metadata.name.clone(),
                p.spec.cidr.clone(),
                p.spec.block_size,
                p.spec.vxlan_mode,
                p.spec.nat_outgoing,
            )),
            _ => None,
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test]
async fn the_ipv6_default_pool_follows_calico_ipv6pool_variables() {
    let dir = tempfile::tempdir().unwrap();
    let ds = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();

    // Unset CIDR: no IPv6 pool (Tabby makes up no random ULA).
    let v4_only = config(&[("CALICO_IPV4POOL_CIDR", "10.244.0.0/16")]);
    ensure_default_pool(&ds, &v4_only).await.unwrap();
    ensure_default_pool6(&ds, &v4_only).await.unwrap();
    assert_eq!(pools(&ds).await.len(), 1);

    // Set: created beside the existing IPv4 pool, with the variables'
    // block size, VXLAN mode and natOutgoing.
    let dual = config(&[
        ("CALICO_IPV4POOL_CIDR", "10.244.0.0/16"),
        ("CALICO_IPV6POOL_CIDR", "fd00:10:244::/48"),
        ("CALICO_IPV6POOL_BLOCK_SIZE", "120"),
        ("CALICO_IPV6POOL_VXLAN", "Always"),
        ("CALICO_IPV6POOL_NAT_OUTGOING", "true"),
    ]);
    ensure_default_pool(&ds, &dual).await.unwrap();
    ensure_default_pool6(&ds, &dual).await.unwrap();
    let all = pools(&ds).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        all[1],
        (
            "default-ipv6-ippool".to_string(),
            "fd00:10:244::/48".to_string(),
            Some(120),
            Some(EncapMode::Always),
            true
        )
    );

    // An IPv6 pool exists: another CIDR on restart creates nothing.
    let other = config(&[("CALICO_IPV6POOL_CIDR", "fd00:99::/48")]);
    ensure_default_pool6(&ds, &other).await.unwrap();
    assert_eq!(pools(&ds).await, all);
}
