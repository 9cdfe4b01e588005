//! The IPPool and name rules, shared by IPPool's validation and the
//! Installation's (whose pools are IPPools once rendered).

use super::ippool::{EncapMode, IpPoolSpec};
use super::parse::FieldProblem;
use ipnet::IpNet;

pub(crate) fn problem(field: &str, message: impl Into<String>) -> FieldProblem {
    FieldProblem {
        field: Some(field.to_string()),
        message: message.into(),
    }
}

/// Calico requires lowercase RFC 1123 subdomain names.
pub(crate) fn check_name(name: &str, p: &mut Vec<FieldProblem>) {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() {
        p.push(problem("metadata.name", "required"));
    } else if name.len() > 253 {
        // Not echoed: the error line names the resource already.
        p.push(problem(
            "metadata.name",
            format!(
                "is {} bytes long; a name is at most 253 characters",
                name.len()
            ),
        ));
    } else if !name.chars().all(ok_char)
        || !alnum(name.chars().next())
        || !alnum(name.chars().last())
    {
        p.push(problem(
            "metadata.name",
            format!(
                "{name:?} is not a valid name (lowercase letters, digits, '-' and '.', \
                 starting and ending with a letter or digit, at most 253 characters)"
            ),
        ));
    }
}

pub(crate) fn cidr_msg(s: &str) -> String {
    format!("{s:?} is not a CIDR (expected e.g. 192.168.0.0/16 or fd00::/48)")
}

pub(crate) fn check_pool(spec: &mut IpPoolSpec, p: &mut Vec<FieldProblem>) {
    if spec.cidr.is_empty() {
        p.push(problem("spec.cidr", "required"));
        return;
    }
    let net: IpNet = match spec.cidr.parse() {
        Ok(n) => n,
        Err(_) => {
            p.push(problem("spec.cidr", cidr_msg(&spec.cidr)));
            return;
        }
    };
    if net.trunc() != net {
        p.push(problem(
            "spec.cidr",
            format!(
                "{} has host bits set; did you mean {}?",
                spec.cidr,
                net.trunc()
            ),
        ));
    }
    let link_local: IpNet = if net.addr().is_ipv4() {
        "169.254.0.0/16".parse().unwrap_or(net)
    } else {
        "fe80::/10".parse().unwrap_or(net)
    };
    if overlaps(&net, &link_local) {
        p.push(problem(
            "spec.cidr",
            format!("{net} overlaps the link-local range {link_local}"),
        ));
    }
    if let Some(sel) = &spec.node_selector {
        if let Err(e) = tabby_ipam::selector::Selector::parse(sel) {
            p.push(problem("spec.nodeSelector", e.to_string()));
        }
    }
    let v6 = net.addr().is_ipv6();
    spec.fill_defaults(v6);
    // fill_defaults has set it.
    let bs = spec.block_size.unwrap_or_default();
    let (lo, hi) = if v6 { (116, 128) } else { (20, 32) };
    if !(lo..=hi).contains(&bs) {
        p.push(problem(
            "spec.blockSize",
            format!(
                "{bs} is outside {lo}..{hi} for an {} pool",
                if v6 { "IPv6" } else { "IPv4" }
            ),
        ));
    } else if bs < net.prefix_len() {
        p.push(problem(
            "spec.blockSize",
            format!(
                "/{bs} blocks are larger than the pool {net}: blockSize must be at least the pool's prefix length {}",
                net.prefix_len()
            ),
        ));
    }
    let ipip = spec.ipip_mode.unwrap_or_default();
    let vxlan = spec.vxlan_mode.unwrap_or_default();
    if ipip != EncapMode::Never && vxlan != EncapMode::Never {
        p.push(problem(
            "spec.vxlanMode",
            "ipipMode and vxlanMode cannot both be enabled on one pool",
        ));
    }
    if v6 && ipip != EncapMode::Never {
        p.push(problem(
            "spec.ipipMode",
            "IPIP is not supported on IPv6 pools",
        ));
    }
}

pub(crate) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(cidr: &str, block_size: Option<u8>, ipip: EncapMode) -> Vec<FieldProblem> {
        let mut spec = IpPoolSpec {
            cidr: cidr.into(),
            block_size,
            ipip_mode: Some(ipip),
            ..Default::default()
        };
        let mut p = Vec::new();
        check_pool(&mut spec, &mut p);
        p
    }

    fn only(p: &[FieldProblem]) -> (&str, &str) {
        assert_eq!(p.len(), 1, "{p:?}");
        (
            p[0].field.as_deref().unwrap_or_default(),
            p[0].message.as_str(),
        )
    }

    #[test]
    fn an_ipv6_pool_defaults_to_122_and_takes_116_to_128() {
        let mut spec = IpPoolSpec {
            cidr: "fd00:10::/48".into(),
            ..Default::default()
        };
        let mut p = Vec::new();
        check_pool(&mut spec, &mut p);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(spec.block_size, Some(122));
        for bs in [116, 128] {
            assert!(problems("fd00:10::/48", Some(bs), EncapMode::Never).is_empty());
        }
        for bs in [115, 129, 26] {
            let p = problems("fd00:10::/48", Some(bs), EncapMode::Never);
            let (field, msg) = only(&p);
            assert_eq!(field, "spec.blockSize");
            assert!(msg.contains("outside 116..128 for an IPv6 pool"), "{msg}");
        }
    }

    #[test]
    fn ipv6_blocks_larger_than_the_pool_are_refused() {
        let p = problems("fd00:10::/120", Some(118), EncapMode::Never);
        let (field, msg) = only(&p);
        assert_eq!(field, "spec.blockSize");
        assert!(msg.contains("larger than the pool fd00:10::/120"), "{msg}");
    }

    #[test]
    fn ipip_on_an_ipv6_pool_is_refused_naming_ipip_mode() {
        for mode in [EncapMode::Always, EncapMode::CrossSubnet] {
            let p = problems("fd00:10::/48", None, mode);
            let (field, msg) = only(&p);
            assert_eq!(field, "spec.ipipMode");
            assert!(msg.contains("IPIP is not supported on IPv6 pools"), "{msg}");
        }
        assert!(problems("10.244.0.0/16", None, EncapMode::Always).is_empty());
    }
}
