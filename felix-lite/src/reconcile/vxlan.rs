//! `vxlan.calico`: the device, its MTU and its tunnel address.

use super::{ItemError, PassReport};
use crate::model::{LocalVxlan, VXLAN_DEVICE, VXLAN_PORT, VXLAN_VNI};
use crate::netlink::links::{self, KernelAddr, KernelLink, VxlanSpec};
use crate::netlink::NlSocket;
use crate::reconcile::plan::{dev_label, fmt_mac};
use netlink_packet_route::link::InfoKind;

/// What is wrong with an existing device that only a re-create fixes
/// (the kernel can't change VNI, parent, local or port of a live VXLAN).
/// `links_now` names the parent it is bound to.
pub fn mismatches(
    link: &KernelLink,
    want: &VxlanSpec,
    parent_name: &str,
    links_now: &[KernelLink],
) -> Vec<String> {
    let mut out = Vec::new();
    if link.kind != Some(InfoKind::Vxlan) {
        out.push(format!("it is a {:?} device, not vxlan", link.kind));
        return out;
    }
    let info = link.vxlan.clone().unwrap_or_default();
    if info.parent != Some(want.parent) {
        let now = match info.parent {
            Some(i) => {
                let name = links_now.iter().find(|l| l.index == i);
                format!("dev {}", dev_label(i, name.map(|l| l.name.as_str())))
            }
            None => "no parent device".to_string(),
        };
        out.push(format!(
            "bound to {now}, want dev {}",
            dev_label(want.parent, Some(parent_name))
        ));
    }
    if info.local != Some(want.local) {
        out.push(format!(
            "local address {:?}, want {}",
            info.local, want.local
        ));
    }
    if info.vni != Some(want.vni) {
        out.push(format!("VNI {:?}, want {}", info.vni, want.vni));
    }
    if info.port != Some(want.port) {
        out.push(format!("UDP port {:?}, want {}", info.port, want.port));
    }
    if info.learning != Some(false) {
        out.push("learning is on, want nolearning".to_string());
    }
    if link.mac.as_deref() != Some(&want.mac[..]) {
        out.push(format!(
            "MAC {}, want {}",
            link.mac
                .as_deref()
                .and_then(|m| <[u8; 6]>::try_from(m).ok())
                .map(|m| fmt_mac(&m))
                .unwrap_or_else(|| "none".into()),
            fmt_mac(&want.mac)
        ));
    }
    out
}

/// Makes `vxlan.calico` match `want` (or removes it when `want` is None).
/// Returns the device's index and MTU when it exists afterwards.
pub fn reconcile(
    sock: &mut NlSocket,
    want: Option<&LocalVxlan>,
    links_now: &[KernelLink],
    report: &mut PassReport,
) -> Option<(u32, u32)> {
    let existing = links_now.iter().find(|l| l.name == VXLAN_DEVICE);
    let Some(want) = want else {
        if let Some(l) = existing {
            match sock.execute(links::delete_link_request(l.index).message, 0) {
                Ok(()) => report.applied(format!("deleted {VXLAN_DEVICE} (no VXLAN wanted)")),
                Err(e) => report.netlink_fail(VXLAN_DEVICE, format!("delete failed: {e}")),
            }
        }
        return None;
    };
    let Some(parent) = links_now.iter().find(|l| l.name == want.parent) else {
        report.failures.push(ItemError::new(
            VXLAN_DEVICE,
            format!("parent interface {:?} does not exist", want.parent),
        ));
        return None;
    };
    // Decided here, on every pass, from the parent as the kernel has it
    // now: a parent whose MTU changes takes vxlan.calico along.
    let mtu = crate::mtu::vxlan_mtu(parent.mtu, (want.mtu != 0).then_some(want.mtu));
    let spec = VxlanSpec {
        name: VXLAN_DEVICE.to_string(),
        vni: VXLAN_VNI,
        port: VXLAN_PORT,
        parent: parent.index,
        local: want.local_ip,
        mac: want.mac,
        mtu,
    };
    if let Some(l) = existing {
        let wrong = mismatches(l, &spec, &want.parent, links_now);
        if wrong.is_empty() {
            if l.mtu != mtu || !l.up {
                let req = links::set_link_request(l.index, mtu);
                match sock.execute(req.message, req.flags) {
                    Ok(()) => report.applied(format!("{VXLAN_DEVICE}: mtu {mtu}, up")),
                    Err(e) => report
                        .netlink_fail(VXLAN_DEVICE, format!("setting mtu {mtu}/up failed: {e}")),
                }
            }
            return Some((l.index, mtu));
        }
        tracing::warn!(
            device = VXLAN_DEVICE,
            problems = %wrong.join("; "),
            "existing device is wrong; deleting and re-creating it"
        );
        if let Err(e) = sock.execute(links::delete_link_request(l.index).message, 0) {
            report.netlink_fail(
                VXLAN_DEVICE,
                format!(
                    "is wrong ({}) but could not be deleted: {e}",
                    wrong.join("; ")
                ),
            );
            return None;
        }
        report.applied(format!("deleted {VXLAN_DEVICE}: {}", wrong.join("; ")));
    }
    let req = links::create_vxlan_request(&spec);
    if let Err(e) = sock.execute(req.message, req.flags) {
        report.netlink_fail(VXLAN_DEVICE, format!("create failed: {e}"));
        return None;
    }
    report.applied(format!(
        "created {VXLAN_DEVICE} vni {VXLAN_VNI} port {VXLAN_PORT} dev {} local {} mtu {mtu}",
        want.parent, want.local_ip
    ));
    match links::dump_links(sock) {
        Ok(all) => match all.iter().find(|l| l.name == VXLAN_DEVICE) {
            Some(l) => Some((l.index, mtu)),
            None => {
                report.fail(VXLAN_DEVICE, "created but not found afterwards".to_string());
                None
            }
        },
        Err(e) => {
            report.netlink_fail(VXLAN_DEVICE, format!("reading links failed: {e}"));
            None
        }
    }
}

/// Exactly the tunnel address, as a /32, on the device.
pub fn reconcile_address(
    sock: &mut NlSocket,
    index: u32,
    want: &LocalVxlan,
    addrs: &[KernelAddr],
    report: &mut PassReport,
) {
    let mine: Vec<&KernelAddr> = addrs.iter().filter(|a| a.index == index).collect();
    for a in &mine {
        if a.ip != want.tunnel_ip || a.prefix_len != 32 {
            let req = links::delete_addr_request(index, a.ip, a.prefix_len);
            match sock.execute(req.message, req.flags) {
                Ok(()) => report.applied(format!(
                    "removed {}/{} from {VXLAN_DEVICE}",
                    a.ip, a.prefix_len
                )),
                Err(e) => report.netlink_fail(
                    VXLAN_DEVICE,
                    format!("removing stray address {}/{}: {e}", a.ip, a.prefix_len),
                ),
            }
        }
    }
    if !mine
        .iter()
        .any(|a| a.ip == want.tunnel_ip && a.prefix_len == 32)
    {
        let req = links::add_addr_request(index, want.tunnel_ip, 32);
        match sock.execute(req.message, req.flags) {
            Ok(()) => report.applied(format!("added {}/32 to {VXLAN_DEVICE}", want.tunnel_ip)),
            Err(e) => report.netlink_fail(
                VXLAN_DEVICE,
                format!("adding tunnel address {}/32: {e}", want.tunnel_ip),
            ),
        }
    }
}
