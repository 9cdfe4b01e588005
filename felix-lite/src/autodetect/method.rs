//! Parsing `IP_AUTODETECTION_METHOD` / `IP6_AUTODETECTION_METHOD` and `IP`
//! the way calico-node reads them.

use super::family::Family;
use ipnet::{Ipv4Net, Ipv6Net};
use regex::Regex;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Calico's `DEFAULT_INTERFACES_TO_EXCLUDE` for `first-found` and
/// `skip-interface` (node/pkg/lifecycle/startup/autodetection), in its order.
/// `^lo` is unanchored at the end on purpose: Calico skips `lower0` too.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^podman.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^lo",
    "^br-.*",
    "^cali.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-ipvs.*",
    "^cni.*",
    r"^vxlan\.calico.*",
    r"^vxlan-v6\.calico.*",
    r"^wireguard\.cali.*",
    r"^wg-v6\.cali.*",
    "^nodelocaldns.*",
];

/// One `IP_AUTODETECTION_METHOD` value (`Method<Ipv6Net>`:
/// `IP6_AUTODETECTION_METHOD`, the same methods with IPv6 CIDRs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method<N = Ipv4Net> {
    /// `first-found` (also the empty string).
    FirstFound,
    /// `interface=REGEX[,REGEX]`: only matching interfaces, no default excludes.
    Interface(Vec<String>),
    /// `skip-interface=REGEX[,REGEX]`: these on top of [`DEFAULT_EXCLUDES`].
    SkipInterface(Vec<String>),
    /// `can-reach=DEST`: the source address the kernel would use towards DEST.
    CanReach(String),
    /// `cidr=CIDR[,CIDR]`: the first address inside one of these, on any interface.
    Cidr(Vec<N>),
    /// `kubernetes-internal-ip`: the caller supplies the Node's InternalIP and
    /// resolves it with [`super::local_cidr`].
    KubernetesInternalIp,
}

/// Why an `IP_AUTODETECTION_METHOD`, `IP6_AUTODETECTION_METHOD` or `IP`
/// value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?}: {problem}")]
pub struct ParseError {
    pub variable: &'static str,
    pub value: String,
    pub problem: String,
}

fn method_err<N: Family>(value: &str, problem: impl Into<String>) -> ParseError {
    ParseError {
        variable: N::METHOD_VAR,
        value: value.to_string(),
        problem: problem.into(),
    }
}

/// Calico splits lists on `\s*,\s*`.
fn split_list(s: &str) -> Vec<&str> {
    s.split(',').map(str::trim).collect()
}

fn regex_list<N: Family>(value: &str, what: &str, list: &str) -> Result<Vec<String>, ParseError> {
    let items = split_list(list);
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if item.is_empty() {
            return Err(method_err::<N>(
                value,
                format!("{what}= needs a comma-separated list of interface-name regexes, got an empty item"),
            ));
        }
        Regex::new(item).map_err(|e| {
            method_err::<N>(
                value,
                format!("{what}=: {item:?} is not a valid regex: {e}"),
            )
        })?;
        out.push(item.to_string());
    }
    Ok(out)
}

impl FromStr for Method<Ipv4Net> {
    type Err = ParseError;

    fn from_str(value: &str) -> Result<Self, ParseError> {
        parse_method(value)
    }
}

impl FromStr for Method<Ipv6Net> {
    type Err = ParseError;

    fn from_str(value: &str) -> Result<Self, ParseError> {
        parse_method(value)
    }
}

fn parse_method<N: Family>(value: &str) -> Result<Method<N>, ParseError> {
    let s = value.trim();
    if s.is_empty() || s == "first-found" {
        return Ok(Method::FirstFound);
    }
    if s == "kubernetes-internal-ip" {
        return Ok(Method::KubernetesInternalIp);
    }
    if let Some(rest) = s.strip_prefix("interface=") {
        return regex_list::<N>(value, "interface", rest).map(Method::Interface);
    }
    if let Some(rest) = s.strip_prefix("skip-interface=") {
        return regex_list::<N>(value, "skip-interface", rest).map(Method::SkipInterface);
    }
    if let Some(rest) = s.strip_prefix("can-reach=") {
        let dest = rest.trim();
        if dest.is_empty() || dest.contains(char::is_whitespace) {
            return Err(method_err::<N>(
                value,
                format!("can-reach= needs one {} address or host name", N::NAME),
            ));
        }
        return Ok(Method::CanReach(dest.to_string()));
    }
    if let Some(rest) = s.strip_prefix("cidr=") {
        let mut cidrs = Vec::new();
        for item in split_list(rest) {
            let net: N = item.parse().map_err(|_| {
                method_err::<N>(
                    value,
                    format!(
                        "cidr=: {item:?} is not an {} CIDR (expected {})",
                        N::NAME,
                        N::CIDR_EXAMPLE
                    ),
                )
            })?;
            cidrs.push(net);
        }
        return Ok(Method::Cidr(cidrs));
    }
    Err(method_err::<N>(
        value,
        "expected first-found, interface=REGEX[,REGEX], skip-interface=REGEX[,REGEX], \
         can-reach=DEST, cidr=CIDR[,CIDR] or kubernetes-internal-ip",
    ))
}

impl<N: std::fmt::Display> std::fmt::Display for Method<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::FirstFound => write!(f, "first-found"),
            Method::Interface(r) => write!(f, "interface={}", r.join(",")),
            Method::SkipInterface(r) => write!(f, "skip-interface={}", r.join(",")),
            Method::CanReach(d) => write!(f, "can-reach={d}"),
            Method::Cidr(c) => {
                let c: Vec<String> = c.iter().map(ToString::to_string).collect();
                write!(f, "cidr={}", c.join(","))
            }
            Method::KubernetesInternalIp => write!(f, "kubernetes-internal-ip"),
        }
    }
}

/// calico-node's `IP` variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpSetting {
    /// Empty or `autodetect`: run `IP_AUTODETECTION_METHOD`.
    Autodetect,
    /// `none`: no IPv4 node address (BGP-less IPv6-only setups).
    None,
    /// An explicit address; without `/N` the prefix is taken from the
    /// interface that holds it, as Calico does.
    Fixed {
        addr: Ipv4Addr,
        prefix_len: Option<u8>,
    },
}

impl FromStr for IpSetting {
    type Err = ParseError;

    fn from_str(value: &str) -> Result<Self, ParseError> {
        let err = |problem: &str| ParseError {
            variable: "IP",
            value: value.to_string(),
            problem: problem.to_string(),
        };
        let s = value.trim();
        match s {
            "" | "autodetect" => return Ok(IpSetting::Autodetect),
            "none" => return Ok(IpSetting::None),
            _ => {}
        }
        if s.contains('/') {
            let net: Ipv4Net = s
                .parse()
                .map_err(|_| err("expected autodetect, none, A.B.C.D or A.B.C.D/N"))?;
            return Ok(IpSetting::Fixed {
                addr: net.addr(),
                prefix_len: Some(net.prefix_len()),
            });
        }
        let addr: Ipv4Addr = s
            .parse()
            .map_err(|_| err("expected autodetect, none, A.B.C.D or A.B.C.D/N"))?;
        Ok(IpSetting::Fixed {
            addr,
            prefix_len: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!("".parse::<Method>().unwrap(), Method::FirstFound);
        assert_eq!("first-found".parse::<Method>().unwrap(), Method::FirstFound);
        assert_eq!(
            "interface=eth.*, ens[0-9]+".parse::<Method>().unwrap(),
            Method::Interface(vec!["eth.*".into(), "ens[0-9]+".into()])
        );
        assert_eq!(
            "skip-interface=stor.*".parse::<Method>().unwrap(),
            Method::SkipInterface(vec!["stor.*".into()])
        );
        assert_eq!(
            "can-reach=10.0.0.1".parse::<Method>().unwrap(),
            Method::CanReach("10.0.0.1".into())
        );
        assert_eq!(
            "cidr=10.0.0.0/8,192.168.1.0/24".parse::<Method>().unwrap(),
            Method::Cidr(vec![
                "10.0.0.0/8".parse().unwrap(),
                "192.168.1.0/24".parse().unwrap()
            ])
        );
        let m: Method = "cidr=10.0.0.0/8,192.168.1.0/24".parse().unwrap();
        assert_eq!(m.to_string(), "cidr=10.0.0.0/8,192.168.1.0/24");
    }

    #[test]
    fn errors_name_the_variable_and_what_was_expected() {
        let e = "interfaces=eth0".parse::<Method>().unwrap_err().to_string();
        assert!(
            e.starts_with("IP_AUTODETECTION_METHOD=\"interfaces=eth0\""),
            "{e}"
        );
        assert!(e.contains("expected first-found"), "{e}");
        let e = "interface=eth(".parse::<Method>().unwrap_err().to_string();
        assert!(e.contains("\"eth(\" is not a valid regex"), "{e}");
        let e = "cidr=10.0.0.0/8,bogus"
            .parse::<Method>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"bogus\" is not an IPv4 CIDR"), "{e}");
        let e = "interface=eth0,".parse::<Method>().unwrap_err().to_string();
        assert!(e.contains("empty item"), "{e}");
        assert!("can-reach=".parse::<Method>().is_err());
    }

    #[test]
    fn ip_setting() {
        assert_eq!("".parse::<IpSetting>().unwrap(), IpSetting::Autodetect);
        assert_eq!(
            "autodetect".parse::<IpSetting>().unwrap(),
            IpSetting::Autodetect
        );
        assert_eq!("none".parse::<IpSetting>().unwrap(), IpSetting::None);
        assert_eq!(
            "10.1.2.3/24".parse::<IpSetting>().unwrap(),
            IpSetting::Fixed {
                addr: "10.1.2.3".parse().unwrap(),
                prefix_len: Some(24)
            }
        );
        assert_eq!(
            "10.1.2.3".parse::<IpSetting>().unwrap(),
            IpSetting::Fixed {
                addr: "10.1.2.3".parse().unwrap(),
                prefix_len: None
            }
        );
        let e = "10.1.2.3/33".parse::<IpSetting>().unwrap_err().to_string();
        assert!(e.starts_with("IP=\"10.1.2.3/33\""), "{e}");
    }
}
