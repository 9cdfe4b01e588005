//! Felix's feature detection, as far as Tabby needs it:
//! `ChecksumOffloadBroken` (felix/environment/feature_detect_linux.go).
//!
//! True on kernels up to and including 5.7.0, where VXLAN with SNAT produced
//! bad outer UDP checksums (calico#3145); `FELIX_FEATUREDETECTOVERRIDE`
//! (`ChecksumOffloadBroken=true,...`) overrides the kernel check in either
//! direction. vSphere's vmxnet3 needs the override on any kernel
//! (calico#4727 / #9433), which is why it is worth exposing.

/// The first kernel release where offload is trusted again is anything
/// above this one.
pub const LAST_BROKEN_KERNEL: (u32, u32, u32) = (5, 7, 0);
pub const OVERRIDE_VAR: &str = "FELIX_FEATUREDETECTOVERRIDE";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    #[error(
        "{OVERRIDE_VAR}: item {item:?} {problem} (expected Name=value items separated by \
         commas, e.g. ChecksumOffloadBroken=true)"
    )]
    Override { item: String, problem: String },
    #[error("cannot read the kernel release (uname): {0}")]
    Uname(String),
    #[error("kernel release {0:?} does not start with a version number like 5.7.0")]
    KernelRelease(String),
}

/// Felix's overrides are Go `strconv.ParseBool` values.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The `ChecksumOffloadBroken` entry of an override list, if present.
/// Other well-formed `key=value` items belong to features Tabby doesn't
/// implement and are ignored, as a Felix configuration may carry them.
pub fn parse_override(list: &str) -> Result<Option<bool>, FeatureError> {
    let mut found = None;
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let err = |problem: &str| FeatureError::Override {
            item: item.to_string(),
            problem: problem.to_string(),
        };
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| err("is not key=value"))?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(err("has an empty key"));
        }
        if k == "ChecksumOffloadBroken" {
            found = Some(parse_bool(v).ok_or_else(|| err("needs true or false"))?);
        } else {
            tracing::debug!(item, "feature override not used by Tabby");
        }
    }
    Ok(found)
}

/// `major.minor.patch` from a release string such as `6.18.44-fc-v669`,
/// `5.4.0-1045-aws` or `5.7`; missing parts are 0.
pub fn parse_kernel_release(release: &str) -> Result<(u32, u32, u32), FeatureError> {
    let mut nums = [0u32; 3];
    let mut rest = release.trim();
    for (i, slot) in nums.iter_mut().enumerate() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            if i == 0 {
                return Err(FeatureError::KernelRelease(release.to_string()));
            }
            break;
        }
        *slot = rest[..digits]
            .parse()
            .map_err(|_| FeatureError::KernelRelease(release.to_string()))?;
        rest = &rest[digits..];
        match rest.strip_prefix('.') {
            Some(r) => rest = r,
            None => break,
        }
    }
    Ok((nums[0], nums[1], nums[2]))
}

/// The decision for a given override and kernel release.
pub fn checksum_offload_broken_for(
    override_list: Option<&str>,
    kernel_release: &str,
) -> Result<bool, FeatureError> {
    if let Some(v) = override_list.map(parse_override).transpose()?.flatten() {
        return Ok(v);
    }
    Ok(parse_kernel_release(kernel_release)? <= LAST_BROKEN_KERNEL)
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> Result<String, FeatureError> {
    // SAFETY: uname fills a caller-owned struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return Err(FeatureError::Uname(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    // SAFETY: the kernel NUL-terminates release within the array.
    let c = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) };
    Ok(c.to_string_lossy().into_owned())
}

/// Felix's `ChecksumOffloadBroken` on this machine, honouring the override
/// (pass the value of `FELIX_FEATUREDETECTOVERRIDE`).
pub fn checksum_offload_broken(override_list: Option<&str>) -> Result<bool, FeatureError> {
    if let Some(v) = override_list.map(parse_override).transpose()?.flatten() {
        return Ok(v);
    }
    checksum_offload_broken_for(None, &kernel_release()?)
}

/// What Felix assumes when it cannot read the kernel version: an old
/// kernel (3.10), on which checksum offload is broken. Offload off costs
/// some CPU; offload wrongly on loses VXLAN packets (calico#3145).
pub const BROKEN_WHEN_KERNEL_UNKNOWN: bool = true;

/// Why [`decide_checksum_offload`] decided as it did, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffloadReason {
    /// `FELIX_FEATUREDETECTOVERRIDE` named `ChecksumOffloadBroken`.
    Override,
    /// The running kernel's version, compared with [`LAST_BROKEN_KERNEL`].
    Kernel((u32, u32, u32)),
    /// The kernel release could not be read or parsed: Felix's default
    /// ([`BROKEN_WHEN_KERNEL_UNKNOWN`]).
    KernelUnknown(FeatureError),
}

impl std::fmt::Display for OffloadReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b, c) = LAST_BROKEN_KERNEL;
        match self {
            OffloadReason::Override => write!(f, "{OVERRIDE_VAR} sets ChecksumOffloadBroken"),
            OffloadReason::Kernel((x, y, z)) => {
                write!(f, "kernel {x}.{y}.{z}, broken up to {a}.{b}.{c}")
            }
            OffloadReason::KernelUnknown(e) => {
                write!(f, "{e}; assuming an old kernel as Felix does")
            }
        }
    }
}

/// The decision from the override item (already validated, see
/// [`parse_override`]) and, only when there is none, the kernel release.
/// Never fails: an unusable release falls back to Felix's default and the
/// reason carries the error.
pub fn decide_checksum_offload(
    overridden: Option<bool>,
    release: impl FnOnce() -> Result<String, FeatureError>,
) -> (bool, OffloadReason) {
    if let Some(v) = overridden {
        return (v, OffloadReason::Override);
    }
    match release().and_then(|r| parse_kernel_release(&r)) {
        Ok(v) => (v <= LAST_BROKEN_KERNEL, OffloadReason::Kernel(v)),
        Err(e) => (BROKEN_WHEN_KERNEL_UNKNOWN, OffloadReason::KernelUnknown(e)),
    }
}

/// [`decide_checksum_offload`] on the running kernel, logged: meant to be
/// called once at start, so the log says once what `vxlan.calico` gets and
/// why, and a kernel release that can't be used is a WARN, not a silent
/// default.
pub fn resolve_checksum_offload_broken(overridden: Option<bool>) -> bool {
    let (broken, why) = decide_checksum_offload(overridden, kernel_release);
    if let OffloadReason::KernelUnknown(_) = &why {
        tracing::warn!(
            broken,
            reason = %why,
            "ChecksumOffloadBroken: cannot tell from the kernel; set {OVERRIDE_VAR}=ChecksumOffloadBroken=false to keep tx checksum offload on"
        );
    } else {
        tracing::info!(broken, reason = %why, "ChecksumOffloadBroken");
    }
    broken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(
            parse_kernel_release("6.18.44-fc-v669").unwrap(),
            (6, 18, 44)
        );
        assert_eq!(parse_kernel_release("5.4.0-1045-aws").unwrap(), (5, 4, 0));
        assert_eq!(parse_kernel_release("5.7").unwrap(), (5, 7, 0));
        assert_eq!(parse_kernel_release("4.19.0+").unwrap(), (4, 19, 0));
        assert!(parse_kernel_release("linux-5.4").is_err());
        assert!(checksum_offload_broken_for(None, "5.7.0").unwrap());
        assert!(checksum_offload_broken_for(None, "5.4.0-1045-aws").unwrap());
        assert!(!checksum_offload_broken_for(None, "5.7.1").unwrap());
        assert!(!checksum_offload_broken_for(None, "5.8.0-rc1").unwrap());
        assert!(!checksum_offload_broken_for(None, "6.18.44-fc-v669").unwrap());
        // The running kernel parses.
        checksum_offload_broken(None).unwrap();
    }

    #[test]
    fn overrides() {
        assert!(checksum_offload_broken_for(Some("ChecksumOffloadBroken=true"), "6.1.0").unwrap());
        assert!(!checksum_offload_broken_for(
            Some("SNATFullyRandom=false, ChecksumOffloadBroken=false"),
            "4.19.0"
        )
        .unwrap());
        assert!(checksum_offload_broken_for(Some("SNATFullyRandom=false"), "4.19.0").unwrap());
        assert!(checksum_offload_broken_for(Some(""), "4.19.0").unwrap());
        let e = checksum_offload_broken_for(Some("ChecksumOffloadBroken=yes"), "6.1")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("FELIX_FEATUREDETECTOVERRIDE")
                && e.contains("\"ChecksumOffloadBroken=yes\""),
            "{e}"
        );
        let e = parse_override("a=b,oops").unwrap_err().to_string();
        assert!(e.contains("\"oops\" is not key=value"), "{e}");
    }

    #[test]
    fn decided_once_without_failing() {
        let never = || -> Result<String, FeatureError> { panic!("overridden: no kernel read") };
        assert_eq!(
            decide_checksum_offload(Some(false), never),
            (false, OffloadReason::Override)
        );
        assert_eq!(
            decide_checksum_offload(None, || Ok("6.1.0-13-amd64".into())),
            (false, OffloadReason::Kernel((6, 1, 0)))
        );
        assert!(decide_checksum_offload(None, || Ok("5.4.0".into())).0);
        // Unreadable or unparsable: Felix's default, with the reason kept.
        let (broken, why) =
            decide_checksum_offload(None, || Err(FeatureError::Uname("EFAULT".into())));
        assert!(broken);
        let text = why.to_string();
        assert!(text.contains("uname") && text.contains("EFAULT"), "{text}");
        let (broken, why) = decide_checksum_offload(None, || Ok("linux".into()));
        assert!(broken);
        assert!(matches!(
            why,
            OffloadReason::KernelUnknown(FeatureError::KernelRelease(_))
        ));
        let e = parse_override("ChecksumOffloadBroken")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected Name=value"), "{e}");
    }
}
