//! An in-process Tabby speaker whose sockets live in a test namespace.

use super::inproc::{in_ns, runtime};
use super::netns::Netns;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tabby_bgp::peer_config::{LocalConfig, PeerConfig};
use tabby_bgp::speaker::{BestPath, PeerStatus, Speaker, SpeakerConfig};

pub struct Tabby {
    rt: Option<tokio::runtime::Runtime>,
    pub speaker: Speaker,
}

/// Test timers: BIRD's are 9/3 with 1 s connect delay, ours match.
pub fn peer(address: &str, remote_as: u32) -> PeerConfig {
    let mut p = PeerConfig::new(address.parse().unwrap(), remote_as);
    p.hold_time = 9;
    p.connect_retry = Duration::from_secs(1);
    p.error_wait = (Duration::from_secs(1), Duration::from_secs(2));
    p
}

impl Tabby {
    pub fn start(ns: &Netns, local: LocalConfig, listen: &str, peers: Vec<PeerConfig>) -> Tabby {
        Self::start_with(ns, local, listen, peers, Vec::new())
    }

    pub fn start_with(
        ns: &Netns,
        local: LocalConfig,
        listen: &str,
        peers: Vec<PeerConfig>,
        originate: Vec<ipnet::IpNet>,
    ) -> Tabby {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "tabby_bgp=info".into()),
            )
            .with_test_writer()
            .try_init();
        let rt = runtime(ns);
        let listen = SocketAddr::new(listen.parse().expect("listen address"), 179);
        let speaker = in_ns(&rt, async move {
            Speaker::start(SpeakerConfig {
                local,
                listen: Some(listen),
                peers,
                originate,
            })
            .await
        })
        .expect("speaker starts");
        Tabby {
            rt: Some(rt),
            speaker,
        }
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("runtime")
    }

    pub fn run<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        in_ns(self.rt(), fut)
    }

    pub fn peer(&self, address: &str) -> PeerStatus {
        let s = self.speaker.clone();
        let a: IpAddr = address.parse().unwrap();
        self.run(async move { s.peer(a).await })
            .expect("peer status")
    }

    pub fn established(&self, address: &str) -> bool {
        self.peer(address).state == tabby_bgp::fsm::State::Established
    }

    pub fn best(&self, prefix: &str) -> Option<BestPath> {
        let s = self.speaker.clone();
        let p: ipnet::IpNet = prefix.parse().unwrap();
        self.run(async move { s.best_paths().await })
            .expect("best paths")
            .into_iter()
            .find(|b| b.prefix == p)
    }

    pub fn originate(&self, prefixes: &[&str]) {
        let s = self.speaker.clone();
        let v = prefixes.iter().map(|p| p.parse().unwrap()).collect();
        self.run(async move { s.originate(v, Vec::new()).await })
            .unwrap();
    }

    pub fn withdraw(&self, prefixes: &[&str]) {
        let s = self.speaker.clone();
        let v = prefixes.iter().map(|p| p.parse().unwrap()).collect();
        self.run(async move { s.withdraw(v).await }).unwrap();
    }

    /// Like `kill -9`: every task and socket goes without a NOTIFICATION.
    pub fn kill(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Tabby {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
