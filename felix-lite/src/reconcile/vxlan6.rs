//! `vxlan-v6.calico`: Felix's IPv6 VXLAN device (same VNI 4096 and port
//! 4789 as `vxlan.calico`, an IPv6 `local`, 70 bytes of overhead), its MTU
//! and its /128 tunnel address. Mirrors `vxlan`, which owns the IPv4 one.

use super::{ItemError, PassReport};
use crate::model::{LocalVxlan6, VXLAN_PORT, VXLAN_V6_DEVICE, VXLAN_VNI};
use crate::netlink::links::{self, KernelAddr6, KernelLink, Vxlan6Spec};
use crate::netlink::NlSocket;
use crate::reconcile::plan::{dev_label, fmt_mac};
use netlink_packet_route::link::InfoKind;

/// What only a re-create fixes (VNI, parent, local, port, learning, MAC).
pub fn mismatches6(link: &KernelLink, want: &Vxlan6Spec, links_now: &[KernelLink]) -> Vec<String> {
    if link.kind != Some(InfoKind::Vxlan) {
        return vec![format!("it is a {:?} device, not vxlan", link.kind)];
    }
    let info = link.vxlan.clone().unwrap_or_default();
    let mut out = Vec::new();
    if info.parent != Some(want.parent) {
        let now = info
            .parent
            .map(|i| {
                let name = links_now.iter().find(|l| l.index == i);
                format!("dev {}", dev_label(i, name.map(|l| l.name.as_str())))
            })
            .unwrap_or_else(|| "no parent device".into());
        let parent = links_now.iter().find(|l| l.index == want.parent);
        out.push(format!(
            "bound to {now}, want dev {}",
            dev_label(want.parent, parent.map(|l| l.name.as_str()))
        ));
    }
    if info.local6 != Some(want.local) {
        out.push(format!(
            "local address {:?}, want {}",
            info.local6, want.local
        ));
    }
    if info.vni != Some(want.vni) {
        out.push(format!("VNI {:?}, want {}", info.vni, want.vni));
    }
    if info.port != Some(want.port) {
        out.push(format!("UDP port {:?}, want {}", info.port, want.port));
    }
    if info.learning != Some(false) {
        out.push("learning is on, want nolearning".into());
    }
    if link.mac.as_deref() != Some(&want.mac[..]) {
        out.push(format!("MAC differs, want {}", fmt_mac(&want.mac)));
    }
    out
}

fn delete(sock: &mut NlSocket, index: u32, why: &str, report: &mut PassReport) -> bool {
    match sock.execute(links::delete_link_request(index).message, 0) {
        Ok(()) => {
            report.applied(format!("deleted {VXLAN_V6_DEVICE} ({why})"));
            true
        }
        Err(e) => {
            report.netlink_fail(VXLAN_V6_DEVICE, format!("{why}, but delete failed: {e}"));
            false
        }
    }
}

/// Makes `vxlan-v6.calico` match `want` (removes it when None); the
/// device's index and MTU when it exists afterwards.
pub fn reconcile6(
    sock: &mut NlSocket,
    want: Option<&LocalVxlan6>,
    links_now: &[KernelLink],
    report: &mut PassReport,
) -> Option<(u32, u32)> {
    let existing = links_now.iter().find(|l| l.name == VXLAN_V6_DEVICE);
    let Some(want) = want else {
        if let Some(l) = existing {
            delete(sock, l.index, "no IPv6 VXLAN wanted", report);
        }
        return None;
    };
    let Some(parent) = links_now.iter().find(|l| l.name == want.parent) else {
        report.failures.push(ItemError::new(
            VXLAN_V6_DEVICE,
            format!("parent interface {:?} does not exist", want.parent),
        ));
        return None;
    };
    let mtu = crate::mtu::vxlan6_mtu(parent.mtu, (want.mtu != 0).then_some(want.mtu));
    let spec = Vxlan6Spec {
        name: VXLAN_V6_DEVICE.to_string(),
        vni: VXLAN_VNI,
        port: VXLAN_PORT,
        parent: parent.index,
        local: want.local_ip,
        mac: want.mac,
        mtu,
    };
    if let Some(l) = existing {
        let wrong = mismatches6(l, &spec, links_now);
        if wrong.is_empty() {
            if l.mtu != mtu || !l.up {
                let req = links::set_link_request(l.index, mtu);
                match sock.execute(req.message, req.flags) {
                    Ok(()) => report.applied(format!("{VXLAN_V6_DEVICE}: mtu {mtu}, up")),
                    Err(e) => report
                        .netlink_fail(VXLAN_V6_DEVICE, format!("setting mtu {mtu}/up failed: {e}")),
                }
            }
            return Some((l.index, mtu));
        }
        tracing::warn!(device = VXLAN_V6_DEVICE, problems = %wrong.join("; "), "existing device is wrong; re-creating it");
        if !delete(sock, l.index, &wrong.join("; "), report) {
            return None;
        }
    }
    let req = links::create_vxlan6_request(&spec);
    if let Err(e) = sock.execute(req.message, req.flags) {
        report.netlink_fail(VXLAN_V6_DEVICE, format!("create failed: {e}"));
        return None;
    }
    report.applied(format!(
        "created {VXLAN_V6_DEVICE} vni {VXLAN_VNI} port {VXLAN_PORT} dev {} local {} mtu {mtu}",
        want.parent, want.local_ip
    ));
    match links::dump_links(sock) {
        Ok(all) => all
            .iter()
            .find(|l| l.name == VXLAN_V6_DEVICE)
            .map(|l| (l.index, mtu)),
        Err(e) => {
            report.netlink_fail(VXLAN_V6_DEVICE, format!("reading links failed: {e}"));
            None
        }
    }
}

/// Exactly the tunnel address, as a /128, besides the kernel's own
/// link-local address (which is left alone).
pub fn reconcile_address6(
    sock: &mut NlSocket,
    index: u32,
    want: &LocalVxlan6,
    addrs: &[KernelAddr6],
    report: &mut PassReport,
) {
    let mine: Vec<&KernelAddr6> = addrs
        .iter()
        .filter(|a| a.index == index && !a.is_link_local())
        .collect();
    for a in &mine {
        if a.ip != want.tunnel_ip || a.prefix_len != 128 {
            let req = links::delete_addr6_request(index, a.ip, a.prefix_len);
            match sock.execute(req.message, req.flags) {
                Ok(()) => report.applied(format!(
                    "removed {}/{} from {VXLAN_V6_DEVICE}",
                    a.ip, a.prefix_len
                )),
                Err(e) => report.netlink_fail(
                    VXLAN_V6_DEVICE,
                    format!("removing stray address {}/{}: {e}", a.ip, a.prefix_len),
                ),
            }
        }
    }
    if !mine
        .iter()
        .any(|a| a.ip == want.tunnel_ip && a.prefix_len == 128)
    {
        let req = links::add_addr6_request(index, want.tunnel_ip, 128);
        match sock.execute(req.message, req.flags) {
            Ok(()) => report.applied(format!("added {}/128 to {VXLAN_V6_DEVICE}", want.tunnel_ip)),
            Err(e) => report.netlink_fail(
                VXLAN_V6_DEVICE,
                format!("adding tunnel address {}/128: {e}", want.tunnel_ip),
            ),
        }
    }
}
