//! `offload`: tx checksum offload on `vxlan.calico` against Felix's
//! `ChecksumOffloadBroken` (seed 001; calico#3145: kernels up to 5.7.0 put
//! bad outer UDP checksums on VXLAN with SNAT; calico#4727: vmxnet3 needs
//! the override on any kernel). The decision is made the way tabby-node
//! makes it, from the `FELIX_FEATUREDETECTOVERRIDE` of the environment the
//! doctor runs with (in the pod or `lab exec`, tabby-node's own as the
//! manifest sets it) and the running kernel, so an override edited into
//! the DaemonSet but not yet rolled out shows as a device left with
//! offload on.

use super::{Ctx, Finding};
use tabby_felix_lite::ethtool;
use tabby_felix_lite::features::{
    self, FeatureError, OffloadReason, LAST_BROKEN_KERNEL, OVERRIDE_VAR,
};
use tabby_felix_lite::model::VXLAN_DEVICE;

pub async fn check(ctx: &Ctx) -> Vec<Finding> {
    let Some(k) = ctx.kernel() else {
        return Vec::new();
    };
    if k.link(VXLAN_DEVICE).is_none() {
        return Vec::new();
    }
    let Ok(tx_on) = ethtool::tx_checksum(VXLAN_DEVICE) else {
        return Vec::new();
    };
    let release = features::kernel_release();
    assess(tx_on, ctx.env(OVERRIDE_VAR), release)
}

/// The findings for a device whose tx offload is `tx_on`, an override
/// value as set (None: unset), and the kernel release.
fn assess(
    tx_on: bool,
    override_list: Option<&str>,
    release: Result<String, FeatureError>,
) -> Vec<Finding> {
    let set = override_list.filter(|v| !v.trim().is_empty());
    let overridden = match set.map(features::parse_override).transpose() {
        Ok(o) => o.flatten(),
        Err(e) => {
            return vec![Finding::error(
                "offload",
                format!("{OVERRIDE_VAR} cannot be read, so tabby-node refuses it"),
            )
            .evidence(e.to_string())
            .fix(format!(
                "{OVERRIDE_VAR}=ChecksumOffloadBroken=true (or =false)"
            ))];
        }
    };
    let release_text = release.clone().unwrap_or_default();
    let kernel_bad = release
        .as_ref()
        .ok()
        .and_then(|r| features::parse_kernel_release(r).ok())
        .map(|v| v <= LAST_BROKEN_KERNEL);
    let (broken, why) = features::decide_checksum_offload(overridden, || release);
    let (a, b, c) = LAST_BROKEN_KERNEL;
    let mut out = Vec::new();
    if broken && tx_on {
        let keep = match why {
            OffloadReason::Override => format!(
                "restart tabby-node so it applies {OVERRIDE_VAR}={} itself",
                set.unwrap_or_default()
            ),
            _ => format!(
                "keep {OVERRIDE_VAR}=ChecksumOffloadBroken=true in tabby-node's environment"
            ),
        };
        out.push(
            Finding::error(
                "offload",
                format!(
                    "tx checksum offload is on for {VXLAN_DEVICE} but checksum offload is broken here ({why}): VXLAN packets leave with bad UDP checksums and the other nodes drop them (calico#3145)"
                ),
            )
            .evidence(format!(
                "`ethtool -k {VXLAN_DEVICE}`: tx-checksumming: on; kernel {release_text}; {OVERRIDE_VAR}={}",
                set.unwrap_or("(unset)")
            ))
            .fix(format!("ethtool -K {VXLAN_DEVICE} tx off  # then {keep}")),
        );
    }
    if overridden == Some(false) && kernel_bad == Some(true) {
        out.push(
            Finding::warning(
                "offload",
                format!(
                    "{OVERRIDE_VAR} says checksum offload is not broken, but kernel {release_text} is at or below {a}.{b}.{c}, where VXLAN with SNAT gets bad UDP checksums (calico#3145)"
                ),
            )
            .evidence(format!("{OVERRIDE_VAR}={}", set.unwrap_or_default()))
            .fix(format!("{OVERRIDE_VAR}=ChecksumOffloadBroken=true")),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(r: &str) -> Result<String, FeatureError> {
        Ok(r.to_string())
    }

    #[test]
    fn modern_kernel_with_offload_on_is_fine() {
        assert!(assess(true, None, rel("6.1.0-13-amd64")).is_empty());
        assert!(assess(false, Some("ChecksumOffloadBroken=true"), rel("6.1.0")).is_empty());
    }

    #[test]
    fn override_not_applied_yet_is_an_error() {
        let f = assess(true, Some("ChecksumOffloadBroken=true"), rel("6.18.44"));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, super::super::Severity::Error);
        assert!(f[0].fix.starts_with("ethtool -K vxlan.calico tx off"));
        assert!(f[0].fix.contains("restart tabby-node"));
        assert!(f[0].evidence.contains("tx-checksumming: on"));
    }

    #[test]
    fn old_kernel_with_offload_on_is_an_error() {
        let f = assess(true, None, rel("5.4.0-1045-aws"));
        assert_eq!(f.len(), 1);
        assert!(f[0].what.contains("kernel 5.4.0"), "{f:?}");
        assert!(f[0].fix.contains("ChecksumOffloadBroken=true"));
        // Off: what tabby-node does on such a kernel.
        assert!(assess(false, None, rel("5.4.0")).is_empty());
    }

    #[test]
    fn override_false_on_a_bad_kernel_warns() {
        let f = assess(true, Some("ChecksumOffloadBroken=false"), rel("5.4.0"));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, super::super::Severity::Warning);
        let e = assess(true, Some("ChecksumOffloadBroken=yes"), rel("6.1"));
        assert!(e[0].evidence.contains("ChecksumOffloadBroken=yes"), "{e:?}");
    }
}
