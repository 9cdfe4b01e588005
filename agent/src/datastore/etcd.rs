//! etcdv3 backend: Calico's key layout, CAS by mod revision in a
//! transaction, native watch. The store revision is etcd's revision.

use super::etcd_keys::{self, kind_prefix, parse_key};
use super::*;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KeyValue, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use futures::StreamExt;
use std::time::Duration;

#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
}

/// etcd's error, short: the gRPC message and the innermost cause
/// ("tcp connect error: Connection refused (os error 111)"), not the
/// Debug dump of every layer, which made each retry's WARN 400 characters.
fn unavailable(e: etcd_client::Error) -> Error {
    let etcd_client::Error::GRpcStatus(status) = &e else {
        return Error::Unavailable(format!("etcd: {e}"));
    };
    let mut text = status.message().to_string();
    let mut cause = std::error::Error::source(status);
    let mut innermost = None;
    while let Some(c) = cause {
        innermost = Some(c.to_string());
        cause = c.source();
    }
    if let Some(c) = innermost.filter(|c| !text.contains(c.as_str())) {
        text = if text.is_empty() {
            c
        } else {
            format!("{text}: {c}")
        };
    }
    if text.is_empty() {
        text = status.code().to_string();
    }
    Error::Unavailable(format!("etcd: {text}"))
}

fn from_kv(kind: Kind, name: &str, kv: &KeyValue) -> Result<Resource, Error> {
    let mut r = etcd_keys::decode(kind, name, kv.value()).map_err(|reason| Error::Corrupt {
        kind,
        name: name.to_string(),
        reason,
    })?;
    // The key is what names the object, whatever the value says.
    let m = r.metadata_mut();
    match name.split_once('/').filter(|_| kind.namespaced()) {
        Some((ns, n)) => {
            m.namespace = Some(ns.to_string());
            m.name = n.to_string();
        }
        None => m.name = name.to_string(),
    }
    r.set_revision(kv.mod_revision() as Revision);
    Ok(r)
}

/// The current value, when a transaction's compare failed and its else
/// branch read the key.
fn current_from(resp: &etcd_client::TxnResponse) -> Option<KeyValue> {
    resp.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(g) => g.kvs().first().cloned(),
        _ => None,
    })
}

impl EtcdStore {
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore, Error> {
        // HTTP/2 keep-alive: a watch over a connection whose far end hung
        // or vanished (SIGSTOP, a partition) would otherwise wait for TCP's
        // own timeouts, hours; this breaks it so the reflector resumes it.
        // 10 s stays above etcd's default --grpc-keepalive-min-time (5 s),
        // below which etcd answers pings with GOAWAY.
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(15))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        let client = Client::connect(endpoints, Some(opts))
            .await
            .map_err(|e| Error::Unavailable(format!("etcd at {}: {e}", endpoints.join(","))))?;
        Ok(EtcdStore { client })
    }

    fn client(&self) -> Client {
        self.client.clone()
    }

    fn revision_of(resp: &etcd_client::TxnResponse) -> Revision {
        resp.header().map(|h| h.revision() as Revision).unwrap_or(0)
    }
}

#[async_trait]
impl Datastore for EtcdStore {
    fn backend(&self) -> &'static str {
        "etcdv3"
    }

    async fn ping(&self) -> Result<(), Error> {
        // One key name under Calico's root, no values: as cheap as a read
        // gets, and served only by a member that is up.
        let opts = GetOptions::new()
            .with_prefix()
            .with_keys_only()
            .with_limit(1);
        self.client()
            .get(etcd_keys::ROOT, Some(opts))
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn get(&self, kind: Kind, name: &str) -> Result<Resource, Error> {
        let resp = self
            .client()
            .get(etcd_keys::key(kind, name), None)
            .await
            .map_err(unavailable)?;
        match resp.kvs().first() {
            Some(kv) => from_kv(kind, name, kv),
            None => Err(Error::NotFound {
                kind,
                name: name.to_string(),
            }),
        }
    }

    async fn list(&self, kind: Kind, name_prefix: Option<&str>) -> Result<ListResult, Error> {
        let resp = self
            .client()
            .get(kind_prefix(kind), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(unavailable)?;
        let revision = resp.header().map(|h| h.revision() as Revision).unwrap_or(0);
        let mut items = Vec::new();
        for kv in resp.kvs() {
            let Ok(key) = std::str::from_utf8(kv.key()) else {
                continue;
            };
            let Some((k, name)) = parse_key(key) else {
                continue;
            };
            if k == kind && name.starts_with(name_prefix.unwrap_or("")) {
                items.push(from_kv(kind, &name, kv)?);
            }
        }
        items.sort_by_key(Resource::key_name);
        Ok(ListResult { items, revision })
    }

    async fn create(&self, mut resource: Resource) -> Result<Resource, Error> {
        prepare_create(&mut resource);
        let (kind, name) = (resource.kind(), resource.key_name());
        let key = etcd_keys::key(kind, &name);
        let txn = Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, etcd_keys::encode(&resource)?, None)]);
        let resp = self.client().txn(txn).await.map_err(unavailable)?;
        if !resp.succeeded() {
            return Err(Error::AlreadyExists { kind, name });
        }
        resource.set_revision(Self::revision_of(&resp));
        Ok(resource)
    }

    async fn update(&self, mut resource: Resource) -> Result<Resource, Error> {
        let expected = required_revision(&resource)?;
        let (kind, name) = (resource.kind(), resource.key_name());
        let key = etcd_keys::key(kind, &name);
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                expected as i64,
            )])
            .and_then([TxnOp::put(key.clone(), etcd_keys::encode(&resource)?, None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.client().txn(txn).await.map_err(unavailable)?;
        if !resp.succeeded() {
            return Err(match current_from(&resp) {
                None => Error::NotFound { kind, name },
                Some(kv) => Error::Conflict {
                    kind,
                    name,
                    expected,
                    current: kv.mod_revision() as Revision,
                },
            });
        }
        resource.set_revision(Self::revision_of(&resp));
        Ok(resource)
    }

    async fn delete(
        &self,
        kind: Kind,
        name: &str,
        revision: Option<Revision>,
    ) -> Result<Resource, Error> {
        let key = etcd_keys::key(kind, name);
        let cmp = match revision {
            Some(r) => Compare::mod_revision(key.clone(), CompareOp::Equal, r as i64),
            None => Compare::version(key.clone(), CompareOp::Greater, 0),
        };
        let txn = Txn::new()
            .when([cmp])
            .and_then([TxnOp::delete(
                key.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.client().txn(txn).await.map_err(unavailable)?;
        if !resp.succeeded() {
            return Err(match current_from(&resp) {
                None => Error::NotFound {
                    kind,
                    name: name.to_string(),
                },
                Some(kv) => Error::Conflict {
                    kind,
                    name: name.to_string(),
                    expected: revision.unwrap_or_default(),
                    current: kv.mod_revision() as Revision,
                },
            });
        }
        let prev = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Delete(d) => d.prev_kvs().first().cloned(),
            _ => None,
        });
        match prev {
            Some(kv) => from_kv(kind, name, &kv),
            None => Err(Error::NotFound {
                kind,
                name: name.to_string(),
            }),
        }
    }

    async fn transact(&self, writes: Vec<TxnWrite>) -> Result<Vec<Revision>, Error> {
        let mut compares = Vec::with_capacity(writes.len());
        let mut ops = Vec::with_capacity(writes.len());
        let mut reads = Vec::with_capacity(writes.len());
        for w in &writes {
            let (kind, name) = w.target();
            let key = etcd_keys::key(kind, &name);
            match w {
                TxnWrite::Create(r) => {
                    let mut r = r.clone();
                    prepare_create(&mut r);
                    compares.push(Compare::version(key.clone(), CompareOp::Equal, 0));
                    ops.push(TxnOp::put(key.clone(), etcd_keys::encode(&r)?, None));
                }
                TxnWrite::Update(r) => {
                    let expected = required_revision(r)?;
                    compares.push(Compare::mod_revision(
                        key.clone(),
                        CompareOp::Equal,
                        expected as i64,
                    ));
                    ops.push(TxnOp::put(key.clone(), etcd_keys::encode(r)?, None));
                }
                TxnWrite::Delete { revision, .. } => {
                    compares.push(Compare::mod_revision(
                        key.clone(),
                        CompareOp::Equal,
                        *revision as i64,
                    ));
                    ops.push(TxnOp::delete(key.clone(), None));
                }
            }
            reads.push(TxnOp::get(key, None));
        }
        let txn = Txn::new().when(compares).and_then(ops).or_else(reads);
        let resp = self.client().txn(txn).await.map_err(unavailable)?;
        if resp.succeeded() {
            // One etcd transaction, one revision for every key it wrote.
            return Ok(vec![Self::revision_of(&resp); writes.len()]);
        }
        // The else branch read every key, in order: find the first write
        // whose precondition does not hold.
        let current: Vec<Option<Revision>> = resp
            .op_responses()
            .into_iter()
            .map(|op| match op {
                TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.mod_revision() as Revision),
                _ => None,
            })
            .collect();
        for (w, cur) in writes.iter().zip(current) {
            w.check(cur)?;
        }
        Err(Error::Unavailable(
            "etcd refused a transaction whose preconditions all hold; try again".into(),
        ))
    }

    async fn watch(&self, kinds: &[Kind], from: Revision) -> Result<WatchStream, Error> {
        let prefix = match kinds {
            [one] => kind_prefix(*one),
            _ => etcd_keys::ROOT.to_string(),
        };
        let opts = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(from as i64 + 1);
        let stream = self
            .client()
            .watch(prefix, Some(opts))
            .await
            .map_err(unavailable)?;
        let kinds = kinds.to_vec();
        let events = stream
            .map(move |msg| -> Vec<Result<WatchEvent, Error>> {
                let resp = match msg {
                    Ok(r) => r,
                    Err(e) => return vec![Err(unavailable(e))],
                };
                if resp.compact_revision() > 0 {
                    return vec![Err(Error::Compacted {
                        requested: from,
                        compacted: resp.compact_revision() as Revision,
                    })];
                }
                if resp.canceled() {
                    return vec![Err(Error::Unavailable(format!(
                        "etcd cancelled the watch: {}",
                        resp.cancel_reason()
                    )))];
                }
                resp.events()
                    .iter()
                    .filter_map(|ev| {
                        let kv = ev.kv()?;
                        let key = std::str::from_utf8(kv.key()).ok()?;
                        let (kind, name) = parse_key(key)?;
                        if !wants(&kinds, kind) {
                            return None;
                        }
                        let rev = kv.mod_revision() as Revision;
                        Some(match ev.event_type() {
                            etcd_client::EventType::Put => {
                                let event_type = if kv.create_revision() == kv.mod_revision() {
                                    EventType::Added
                                } else {
                                    EventType::Modified
                                };
                                from_kv(kind, &name, kv).map(|resource| WatchEvent {
                                    revision: rev,
                                    event_type,
                                    resource,
                                })
                            }
                            etcd_client::EventType::Delete => match ev.prev_kv() {
                                Some(prev) => from_kv(kind, &name, prev).map(|mut resource| {
                                    resource.set_revision(rev);
                                    WatchEvent {
                                        revision: rev,
                                        event_type: EventType::Deleted,
                                        resource,
                                    }
                                }),
                                None => Err(Error::Corrupt {
                                    kind,
                                    name: name.clone(),
                                    reason: "delete event without the previous value".into(),
                                }),
                            },
                        })
                    })
                    .collect()
            })
            .flat_map(futures::stream::iter);
        Ok(Box::pin(events))
    }
}
