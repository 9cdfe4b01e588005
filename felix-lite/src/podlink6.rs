//! The pod end's IPv6, as Calico's CNI plugin configures it for a dual
//! stack or IPv6 pod: the pod's address as a /128 and `default via
//! fe80::ecee:eeff:feee:eeee dev <CNI_IFNAME>`, the link-local address the
//! host end (MAC `ee:ee:ee:ee:ee:ee`, built by [`crate::podlink::setup`])
//! answers for. No on-link prefix: everything leaves through the host end,
//! as with IPv4's 169.254.1.1. The host side (the `/128 dev cali…` route,
//! `proxy_ndp`, `forwarding`, the gateway address itself) is the
//! reconciler's, told through `Workload6`.

use crate::model::POD_GATEWAY_V6;
use crate::netlink::links;
use crate::netlink::routes::{self, RouteSpec, RouteTarget};
use crate::netlink::{NlError, NlSocket};
use crate::netns;
use crate::podlink::PodLinkError;
use ipnet::Ipv6Net;
use netlink_packet_route::route::RouteProtocol;
use netlink_packet_route::RouteNetlinkMessage;
use std::net::Ipv6Addr;
use std::path::Path;

fn step(what: String) -> impl FnOnce(NlError) -> PodLinkError {
    move |source| PodLinkError::Netlink { step: what, source }
}

/// Adds `ip`/128 and the IPv6 default route to `pod_ifname` inside the
/// namespace at `netns` (after [`crate::podlink::setup`], which has
/// brought the link up). The address skips duplicate address detection:
/// IPAM made it unique, and a tentative address could not be used for the
/// pod's first second.
pub fn add_ipv6(netns: &Path, pod_ifname: &str, ip: Ipv6Addr) -> Result<(), PodLinkError> {
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
        return Err(PodLinkError::Invalid(format!(
            "{ip} is not a unicast address for a pod"
        )));
    }
    let name = pod_ifname.to_string();
    netns::run_in_path(netns, move || -> Result<(), PodLinkError> {
        let mut sock = NlSocket::open()?;
        let all = links::dump_links(&mut sock).map_err(step("reading pod links".into()))?;
        let link = all.iter().find(|l| l.name == name).ok_or_else(|| {
            PodLinkError::Mismatch(format!("{name} does not exist in the pod namespace"))
        })?;
        let req = links::add_addr6_request(link.index, ip, 128);
        sock.execute(req.message, req.flags)
            .map_err(step(format!("adding {ip}/128 to {name}")))?;
        let mut req = routes::add_request(
            &RouteSpec {
                dst: Ipv6Net::default(),
                target: RouteTarget::Gateway {
                    gateway: POD_GATEWAY_V6,
                    oif: link.index,
                    onlink: false,
                },
            },
            true,
        );
        // The pod's own configuration, as `ip route add` would write it.
        if let RouteNetlinkMessage::NewRoute(m) = &mut req.message {
            m.header.protocol = RouteProtocol::Boot;
        }
        sock.execute(req.message, req.flags).map_err(step(format!(
            "adding default via {POD_GATEWAY_V6} dev {name}"
        )))
    })?
}

/// CHECK's IPv6 half: `pod_ifname` in `netns` holds `ip`/128 and the
/// default route via the link-local gateway (what [`add_ipv6`] made).
pub fn check_ipv6(netns: &Path, pod_ifname: &str, ip: Ipv6Addr) -> Result<(), PodLinkError> {
    let name = pod_ifname.to_string();
    netns::run_in_path(netns, move || -> Result<(), PodLinkError> {
        let mut sock = NlSocket::open()?;
        let all = links::dump_links(&mut sock).map_err(step("reading pod links".into()))?;
        let link = all.iter().find(|l| l.name == name).ok_or_else(|| {
            PodLinkError::Mismatch(format!("{name} does not exist in the pod namespace"))
        })?;
        let addrs =
            links::dump_addrs6(&mut sock).map_err(step("reading pod IPv6 addresses".into()))?;
        if !addrs
            .iter()
            .any(|a| a.index == link.index && a.ip == ip && a.prefix_len == 128)
        {
            return Err(PodLinkError::Mismatch(format!(
                "{name} does not hold {ip}/128"
            )));
        }
        let rts = routes::dump6(&mut sock).map_err(step("reading pod IPv6 routes".into()))?;
        let default = rts.iter().any(|r| {
            r.dst.prefix_len() == 0
                && r.gateway == Some(POD_GATEWAY_V6)
                && r.oif == Some(link.index)
        });
        if !default {
            return Err(PodLinkError::Mismatch(format!(
                "default via {POD_GATEWAY_V6} dev {name} is missing"
            )));
        }
        Ok(())
    })?
}
