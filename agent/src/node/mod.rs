//! tabby-node, the node agent: configured like calico-node from the
//! environment, it writes this node's Node resource, computes the routes to
//! every block (native, VXLAN, or VXLAN fallback when BGP cannot reach the
//! owner), runs the BGP speaker and felix-lite, and serves the node's gRPC
//! socket.
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `NODENAME` | required | this node's name |
//! | `IP` | `autodetect` | `autodetect`, `A.B.C.D[/N]` (must be on an interface) or `none` |
//! | `IP_AUTODETECTION_METHOD` | `first-found` | `interface=`, `skip-interface=`, `can-reach=`, `cidr=` |
//! | `AS` | unset | written to Node.spec.bgp.asNumber |
//! | `CALICO_NETWORKING_BACKEND` | `bird` | `bird` (BGP by Tabby's speaker), `vxlan` (no BGP), `none` |
//! | `DATASTORE_TYPE`, `TABBY_DATASTORE`, `ETCD_ENDPOINTS` | `sqlite`, `/var/lib/tabby/tabby.db` | |
//! | `CALICO_IPV4POOL_CIDR`, `_BLOCK_SIZE`, `_VXLAN`, `_NAT_OUTGOING` | `192.168.0.0/16`, 26, `Never`, true | the default pool, created only if no pool exists |
//! | `CALICO_IPV6POOL_CIDR`, `_BLOCK_SIZE`, `_VXLAN`, `_NAT_OUTGOING` | unset, 122, `Never`, false | the default IPv6 pool `default-ipv6-ippool`, created only if the CIDR is set and no IPv6 pool exists |
//! | `TABBY_RUN_DIR` | `/var/run/tabby` | holds `tabby.sock` (0600) |
//! | `TABBY_VXLAN_FALLBACK` | true | route blocks BGP cannot reach through vxlan.calico |
//! | `TABBY_BGP_HOLD_TIME`, `TABBY_BGP_CONNECT_RETRY` | 90, 5 s | session timers; the hold time is also the fallback delay |
//! | `TABBY_BGP_SECRETS_DIR` | `/etc/tabby/bgp-secrets` | BGP passwords: `<dir>/<secret>/<key>` (`secrets.rs`) |
//! | `TABBY_LOG` | `info` | tracing filter |
//! | `FELIX_HEALTHENABLED`, `FELIX_HEALTHHOST`, `FELIX_HEALTHPORT` | false, localhost, 9099 | `/liveness`, `/readiness` (`crate::observe`) |
//! | `FELIX_PROMETHEUSMETRICSENABLED`, `_HOST`, `_PORT` | false, all interfaces, 9091 | `/metrics` |
//!
//! Paths per remote block (confirmed affinities from the datastore): pool
//! `vxlanMode: Always` → vxlan; `CrossSubnet` → native inside this node's
//! subnet, else vxlan; `Never` with BGP → native via the owner when its
//! mesh session is up and it is on a connected subnet, else native via a
//! route learned from a ToR / route reflector / BGPPeer covering the block,
//! else `vxlan-fallback` once no BGP path has existed for the hold time (a
//! hold-timer expiry counts as a hold time already); see `routes.rs`. Own
//! blocks are blackholed. Prefixes learned from non-mesh BGP peers inside a
//! pool and outside every known block are routed natively via a connected
//! next hop.
//!
//! SIGTERM: Cease to every peer, then exit; kernel routes, vxlan.calico and
//! workload routes stay for the next start, whose first desired state
//! already holds every block. After a crash (`kill -9`) the next start
//! sets the graceful-restart R bit (marker `bgp.running` in the run dir).

pub mod advertise;
pub mod bfd;
pub mod bgp;
pub mod cluster;
pub mod config;
pub mod config6;
pub mod daemon;
pub mod installation;
pub mod peer_select;
pub mod peers;
pub mod router_id;
pub mod routes;
mod routes_bgp;
mod routes_model;
pub mod secrets;
pub mod session_addrs;
pub mod startup;
pub mod tunnel;
pub mod vtep;

#[cfg(test)]
mod peer_select_tests;
#[cfg(test)]
mod peers_tests;
#[cfg(test)]
mod peers_tor_tests;
#[cfg(test)]
mod routes6_tests;
#[cfg(test)]
mod routes_bgp_tests;
#[cfg(test)]
mod routes_tests;

pub use config::NodeConfig;
pub use daemon::run;
