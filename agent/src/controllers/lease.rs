//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's
//! `leaderelection` does it, so only one controllers replica garbage
//! collects: create the Lease if there is none, renew it while we hold it,
//! take it over only once its holder has not renewed it for
//! `leaseDurationSeconds` (timed on our own clock from when we last saw the
//! record change, so clock skew between replicas doesn't matter), and
//! clear the holder on shutdown so another replica need not wait. Every
//! write is a compare-and-swap on the Lease's resourceVersion.

use super::config::LeaseSettings;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};

/// A Lease record as far as expiry goes: (holder, renewTime).
type Record = (Option<String>, Option<String>);

pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseSettings,
    /// The other holder's record (holder, renewTime) as last seen, and when
    /// we first saw it so.
    observed: Option<(Record, Instant)>,
}

fn conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

impl Elector {
    pub fn new(client: Client, cfg: LeaseSettings) -> Elector {
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.cfg.identity
    }

    /// One round: acquire the Lease or renew it. Returns whether we hold it
    /// now. Losing a race (409) is `Ok(false)`, not an error.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let me = self.cfg.identity.clone();
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(secs(self.cfg.duration)),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = (
            holder.clone(),
            spec.renew_time.as_ref().map(|t| t.0.to_string()),
        );
        let seen = match &self.observed {
            Some((r, at)) if *r == record => *at,
            _ => {
                self.observed = Some((record, Instant::now()));
                Instant::now()
            }
        };
        if let Some(h) = holder.as_deref().filter(|h| *h != me) {
            let held_for = spec
                .lease_duration_seconds
                .map(|s| Duration::from_secs(s.max(0) as u64))
                .unwrap_or(self.cfg.duration);
            if seen.elapsed() < held_for {
                return Ok(false);
            }
            info!(holder = h, lease = %self.cfg.name, "taking over the lease: not renewed for {held_for:?}");
        }
        if holder.as_deref() != Some(me.as_str()) {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(me);
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(secs(self.cfg.duration));
        // `lease` carries the resourceVersion it was read at: a replace is
        // a CAS, and a 409 means another replica wrote first.
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if we hold it: clears the holder (client-go's
    /// ReleaseOnCancel), so another replica takes over at its next round.
    pub async fn release(&mut self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            return Ok(false);
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Runs the election until `stop` is dropped, publishing on `leader`
/// whether we hold the Lease; then releases it if we do. Leadership is
/// given up (published false) as soon as a renewal is refused, or when
/// renewals have failed for two thirds of the lease duration (client-go's
/// renewDeadline), before any other replica may take over.
pub async fn elect(mut el: Elector, leader: watch::Sender<bool>, mut stop: watch::Receiver<()>) {
    let period = el.cfg.renew_period;
    let deadline = el.cfg.duration * 2 / 3;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_renewed: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        let leading = *leader.borrow();
        match el.try_acquire_or_renew().await {
            Ok(true) => {
                last_renewed = Some(Instant::now());
                if !leading {
                    info!(identity = el.identity(), lease = %el.cfg.name, namespace = %el.cfg.namespace, "became the leader");
                    leader.send_replace(true);
                }
            }
            Ok(false) => {
                if leading {
                    warn!(
                        identity = el.identity(),
                        "lost the lease to another replica"
                    );
                    leader.send_replace(false);
                }
            }
            Err(e) => {
                warn!(error = %e, "lease round failed");
                if leading && last_renewed.is_none_or(|t| t.elapsed() >= deadline) {
                    warn!(
                        identity = el.identity(),
                        "could not renew the lease in time; standing down"
                    );
                    leader.send_replace(false);
                }
            }
        }
    }
    if *leader.borrow() {
        leader.send_replace(false);
        match el.release().await {
            Ok(true) => info!(identity = el.identity(), "released the lease"),
            Ok(false) => {}
            Err(e) => warn!(error = %e, "could not release the lease; it lapses on its own"),
        }
    }
}
