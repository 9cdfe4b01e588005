//! `tabby-node controllers`' settings: a flag, else an environment
//! variable, else the default. Calico's names where Calico has one
//! (`leakGracePeriod`, `POD_NAMESPACE`, `DATASTORE_TYPE`/`KUBECONFIG`).
//! Calico also reads the KubeControllersConfiguration resource
//! (`spec.controllers.node.leakGracePeriod`); Tabby does not (yet): the
//! flag or `TABBY_LEAK_GRACE_PERIOD` is the only source.

use crate::datastore::DatastoreConfig;
use std::time::Duration;

/// Calico's leakGracePeriod default.
pub const DEFAULT_LEAK_GRACE_PERIOD: Duration = Duration::from_secs(15 * 60);
/// The GC's period when the grace period is 0 (Calico's periodic sync).
pub const GC_OFF_SYNC_PERIOD: Duration = Duration::from_secs(5 * 60);
/// Never sync more often than this, however short the grace period.
pub const MIN_SYNC_PERIOD: Duration = Duration::from_secs(1);
pub const DEFAULT_LEASE_NAME: &str = "tabby-kube-controllers";
pub const DEFAULT_LEASE_NAMESPACE: &str = "kube-system";
/// client-go's leader election defaults: a lease of 15 s, renewed every 2 s.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
pub const DEFAULT_RENEW_PERIOD: Duration = Duration::from_secs(2);

/// The flags as given (None: not given).
#[derive(Debug, Clone, Default)]
pub struct ControllersArgs {
    pub leak_grace_period: Option<String>,
    pub lease_namespace: Option<String>,
    pub lease_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// The holder identity: `POD_NAME`, else the host name and this
    /// process's ID (several unpodded replicas on one host must differ).
    pub identity: String,
    /// `leaseDurationSeconds`: how long a holder that stopped renewing
    /// keeps the lease before another replica may take it over.
    pub duration: Duration,
    pub renew_period: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ControllersConfig {
    pub datastore: DatastoreConfig,
    /// 0 turns the GC of pod addresses on live nodes off; deleted nodes
    /// are still cleaned up, as Calico does.
    pub leak_grace_period: Duration,
    pub lease: LeaseSettings,
    pub log: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn duration(name: &str, s: &str) -> Result<Duration, ConfigError> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s.trim()).map_err(|e| {
        ConfigError(format!(
            "{name}: {s:?} is not a duration like 15m or 90s: {e}"
        ))
    })
}

impl ControllersConfig {
    pub fn from_env(args: ControllersArgs) -> Result<ControllersConfig, ConfigError> {
        Self::from_lookup(args, |k| std::env::var(k).ok())
    }

    pub fn from_lookup(
        args: ControllersArgs,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<ControllersConfig, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let datastore = DatastoreConfig::from_lookup(get).map_err(ConfigError)?;
        let leak_grace_period = match (args.leak_grace_period, get("TABBY_LEAK_GRACE_PERIOD")) {
            (Some(f), _) => duration("--leak-grace-period", &f)?,
            (None, Some(e)) => duration("TABBY_LEAK_GRACE_PERIOD", &e)?,
            (None, None) => DEFAULT_LEAK_GRACE_PERIOD,
        };
        let lease_duration = match get("TABBY_LEASE_DURATION") {
            Some(v) => duration("TABBY_LEASE_DURATION", &v)?,
            None => DEFAULT_LEASE_DURATION,
        };
        let renew_period = match get("TABBY_LEASE_RENEW_PERIOD") {
            Some(v) => duration("TABBY_LEASE_RENEW_PERIOD", &v)?,
            None => DEFAULT_RENEW_PERIOD,
        };
        if lease_duration < Duration::from_secs(1) || renew_period.is_zero() {
            return Err(ConfigError(
                "TABBY_LEASE_DURATION must be at least 1s and TABBY_LEASE_RENEW_PERIOD above 0"
                    .into(),
            ));
        }
        if renew_period >= lease_duration {
            return Err(ConfigError(format!(
                "TABBY_LEASE_RENEW_PERIOD ({renew_period:?}) must be shorter than \
                 TABBY_LEASE_DURATION ({lease_duration:?}), or the lease lapses between renewals"
            )));
        }
        let identity = match get("POD_NAME") {
            Some(p) => p,
            None => {
                let host = get("HOSTNAME")
                    .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "tabby-controllers".into());
                format!("{host}_{}", std::process::id())
            }
        };
        Ok(ControllersConfig {
            datastore,
            leak_grace_period,
            lease: LeaseSettings {
                namespace: args
                    .lease_namespace
                    .or_else(|| get("POD_NAMESPACE"))
                    .unwrap_or_else(|| DEFAULT_LEASE_NAMESPACE.into()),
                name: args
                    .lease_name
                    .or_else(|| get("TABBY_LEASE_NAME"))
                    .unwrap_or_else(|| DEFAULT_LEASE_NAME.into()),
                identity,
                duration: lease_duration,
                renew_period,
            },
            log: get("TABBY_LOG").unwrap_or_else(|| "info".into()),
        })
    }

    /// How often the GC runs: half the grace period (Calico's sync
    /// period), at least [`MIN_SYNC_PERIOD`]; [`GC_OFF_SYNC_PERIOD`] when
    /// the grace period is 0.
    pub fn sync_period(&self) -> Duration {
        if self.leak_grace_period.is_zero() {
            GC_OFF_SYNC_PERIOD
        } else {
            (self.leak_grace_period / 2).max(MIN_SYNC_PERIOD)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: ControllersArgs, env: &[(&str, &str)]) -> Result<ControllersConfig, ConfigError> {
        ControllersConfig::from_lookup(args, |k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_flags_over_env_and_sync_period() {
        let c = cfg(ControllersArgs::default(), &[("HOSTNAME", "h1")]).unwrap();
        assert_eq!(c.leak_grace_period, DEFAULT_LEAK_GRACE_PERIOD);
        assert_eq!(c.sync_period(), Duration::from_secs(450));
        assert_eq!(c.lease.namespace, "kube-system");
        assert_eq!(c.lease.name, "tabby-kube-controllers");
        assert_eq!(c.lease.identity, format!("h1_{}", std::process::id()));
        let env = [
            ("TABBY_LEAK_GRACE_PERIOD", "10m"),
            ("POD_NAMESPACE", "calico-system"),
            ("POD_NAME", "ctl-7f9"),
        ];
        let c = cfg(ControllersArgs::default(), &env).unwrap();
        assert_eq!(c.leak_grace_period, Duration::from_secs(600));
        assert_eq!(
            (c.lease.namespace.as_str(), c.lease.identity.as_str()),
            ("calico-system", "ctl-7f9")
        );
        let flags = ControllersArgs {
            leak_grace_period: Some("1s".into()),
            lease_namespace: Some("tabby".into()),
            lease_name: Some("gc".into()),
        };
        let c = cfg(flags, &env).unwrap();
        assert_eq!(c.leak_grace_period, Duration::from_secs(1));
        assert_eq!(c.sync_period(), MIN_SYNC_PERIOD, "floored");
        assert_eq!(
            (c.lease.namespace.as_str(), c.lease.name.as_str()),
            ("tabby", "gc")
        );
        let off = cfg(
            ControllersArgs {
                leak_grace_period: Some("0".into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(off.sync_period(), GC_OFF_SYNC_PERIOD);
    }

    #[test]
    fn bad_values_name_their_source() {
        let e = cfg(
            ControllersArgs {
                leak_grace_period: Some("soon".into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err();
        assert!(e.0.starts_with("--leak-grace-period: \"soon\""), "{e}");
        let e = cfg(Default::default(), &[("TABBY_LEAK_GRACE_PERIOD", "-1")]).unwrap_err();
        assert!(e.0.starts_with("TABBY_LEAK_GRACE_PERIOD:"), "{e}");
        let e = cfg(
            Default::default(),
            &[
                ("TABBY_LEASE_DURATION", "2s"),
                ("TABBY_LEASE_RENEW_PERIOD", "2s"),
            ],
        )
        .unwrap_err();
        assert!(e.0.contains("must be shorter"), "{e}");
        let e = cfg(Default::default(), &[("DATASTORE_TYPE", "mysql")]).unwrap_err();
        assert!(e.0.starts_with("DATASTORE_TYPE:"), "{e}");
    }
}
