//! A stand-in for the Kubernetes API server, for tests only.
//!
//! No real apiserver can be installed where Tabby's tests run, so Tabby's
//! Kubernetes datastore (kube-rs over real HTTP) is tested against this: an
//! HTTP/1.1 JSON server on 127.0.0.1 implementing the slice of the protocol
//! Tabby uses, each behaviour taken from the Kubernetes API conventions
//! (`contributors/devel/sig-architecture/api-conventions.md`) or the API
//! concepts page (`kubernetes.io/docs/reference/using-api/api-concepts/`).
//! It is never a dependency of a shipped crate.
//!
//! # What it implements
//!
//! - **Resources**: core `v1` `nodes`, `namespaces` (cluster-scoped) and
//!   `pods` (namespaced); `coordination.k8s.io/v1` `leases` (namespaced);
//!   `apiextensions.k8s.io/v1` `customresourcedefinitions`. Creating or
//!   replacing a CRD serves its group, versions and plural with its scope,
//!   and a `/status` subresource if a version declares `subresources.status`;
//!   deleting it stops serving it and deletes its objects. Objects are keyed
//!   by group, resource, namespace and name (not version: one object is
//!   served under each version of its resource, with only `apiVersion`
//!   changed — no conversion).
//! - **Metadata** (conventions, "Metadata"): one store-wide resourceVersion
//!   (a decimal u64, like etcd's revision) stamped on every write; `uid`,
//!   `creationTimestamp` and `generation: 1` on create, `generateName`;
//!   `generation` goes up when anything outside metadata and status changes.
//!   An update that changes nothing is not written (no new resourceVersion,
//!   no event), as the apiserver's storage does.
//! - **Verbs** (concepts, "Resource URIs", "API verbs"): get; list across
//!   all namespaces or in one; create (201, 409 AlreadyExists); update (409
//!   Conflict for a stale `metadata.resourceVersion` — conventions,
//!   "Concurrency Control and Consistency"; without one, unconditional for
//!   nodes, pods and namespaces but 409 for leases, CRDs and custom
//!   resources, whose strategies disallow unconditional update; a PUT of a
//!   missing lease creates it, `AllowCreateOnUpdate`); delete
//!   (returns the object; `DeleteOptions.preconditions.uid` and
//!   `.resourceVersion` → 409 on mismatch); patch on the object and on
//!   `/status` as merge patch (RFC 7386), strategic merge patch (lists with a
//!   known patch merge key — `conditions`/`addresses` by `type`,
//!   `containers`/`env`/`volumes` by `name`, and a few more in `patch.rs` —
//!   merged by key, with `$patch: delete` on list elements; refused with 415
//!   for custom resources, as the apiserver does) or JSON patch (RFC 6902,
//!   all six operations). Other patch types, server-side apply included,
//!   are 415.
//! - **Selectors** ("Labels and Selectors", "Field Selectors"): label
//!   selectors with `=`, `==`, `!=`, `in`, `notin`, existence and `!`;
//!   field selectors `=`, `==`, `!=` on `metadata.name`,
//!   `metadata.namespace`, and the kind-specific fields the apiserver
//!   registers (pods: `spec.nodeName`, `status.phase` and a few more);
//!   other fields are 400 "field label not supported", as on a real cluster.
//! - **Status subresource** (conventions, "Spec and Status"; CRD docs,
//!   "Status subresource"): for kinds with one, writes to the object keep
//!   the stored `.status`; writes to `/status` keep the stored `.spec` and,
//!   for built-in kinds, take the new metadata (labels, annotations: Calico's
//!   CNI plugin patches pods/status with annotations), while for custom
//!   resources only `.status` is taken (apiextensions' status strategy).
//!   On create, pods get `status: {phase: Pending}`, namespaces
//!   `{phase: Active}`, custom resources with a status subresource lose
//!   their status; nodes keep what was sent.
//! - **List resourceVersion** ("Resource versions", "resourceVersionMatch"):
//!   a list carries the store's resourceVersion; `resourceVersionMatch=Exact`
//!   rebuilds the list at that version from the history (410 Expired if
//!   compacted, 504 if in the future).
//! - **Watch** ("Efficient detection of changes", "Watch bookmarks",
//!   "Streaming lists"): `watch=true|1` on a collection streams
//!   newline-delimited `{"type","object"}` events, chunked. Without a
//!   resourceVersion or from "0" it starts with ADDED for every current
//!   object; from a resourceVersion it sends the events strictly after it
//!   from the history. `allowWatchBookmarks` gets a BOOKMARK every
//!   [`Options::bookmark_interval`] (1 s by default); `sendInitialEvents`
//!   with `resourceVersionMatch=NotOlderThan` ends the initial ADDEDs with
//!   the `k8s.io/initial-events-end` bookmark; `timeoutSeconds` ends the
//!   stream cleanly; selectors filter, and an object that stops (starts)
//!   matching is sent as DELETED (ADDED). DELETED carries the last state
//!   with the delete's resourceVersion. A watch from before the compacted
//!   history gets a 200 whose only event is an ERROR with a 410 `Expired`
//!   Status ("too old resource version"). The history is bounded
//!   ([`Options::history`]) and [`StandIn::compact`] drops it on demand.
//! - **Errors** (conventions, "Response Status Kind"): `v1 Status` bodies
//!   with reason and code, so kube-rs yields `kube::Error::Api`.
//! - **Discovery** (concepts, "Discovery API", unaggregated form only):
//!   `/version` (claims 1.33), `/api`, `/api/v1`, `/apis` (with CRD groups),
//!   `/apis/<group>` and `/apis/<group>/<version>`; and a `meta.k8s.io/v1`
//!   Table ("Receiving resources as Tables") when `Accept` asks for one:
//!   Name and Age, or Name plus a CRD's `additionalPrinterColumns` with
//!   simple `.a.b` JSONPaths. Enough for `kubectl get` and `kubectl apply`.
//! - **Outages**: [`StandIn::stop`] closes the listener and every open
//!   connection and watch; [`StandIn::restart`] serves the same data on the
//!   same port again.
//!
//! # What it does not do
//!
//! No TLS; no authentication or authorization (any bearer token, or none,
//! is accepted); no admission (a namespaced object may be created in a
//! namespace that does not exist); no schema validation or defaulting of
//! any object (custom resources included: `openAPIV3Schema` is ignored); no
//! conversion between versions; no protobuf, YAML or CBOR bodies, only
//! JSON; no server-side apply, `managedFields` or field managers; no
//! finalizers, graceful deletion or garbage collector (delete is
//! immediate; deleting a namespace leaves its objects); no `dryRun`
//! (refused with 400 rather than silently written); no pagination (`limit`
//! is ignored, every item is returned at once, never a `continue` token);
//! no `deletecollection`; no `/openapi/v2` or `/openapi/v3` (404, so
//! `kubectl apply` needs `--validate=false`); no aggregated discovery
//! (clients fall back to the unaggregated documents); no watch on a single
//! object's URL (use the collection with `fieldSelector=metadata.name=`);
//! no HTTP/2 and no `Watch` over WebSocket; no events, services or any kind
//! not listed above, unless defined by a CRD.
//!
//! # Use
//!
//! ```no_run
//! # async fn demo() -> Result<(), tabby_kube_standin::StandInError> {
//! let server = tabby_kube_standin::StandIn::start().await?;
//! server.load_crds_yaml(&std::fs::read_to_string("manifests/crds.yaml")?)?;
//! let client: kube::Client = server.client().await?;
//! // ... exercise the code under test with `client` ...
//! server.stop().await;      // clients now see connection errors
//! server.restart().await?;  // same port, same data
//! server.compact();         // watches from older versions now get 410
//! # Ok(()) }
//! ```
//!
//! The `kube-standin` binary serves the same for shell scripts and kubectl:
//! `kube-standin --listen 127.0.0.1:6443 --kubeconfig kubeconfig
//! [--crds manifests/crds.yaml]`.

mod discovery;
mod handle;
mod history;
mod listener;
mod patch;
mod request;
mod resources;
mod router;
mod select;
mod server;
mod status;
mod store;
mod util;
mod watch;
mod writes;

pub use handle::{StandIn, StandInError};
pub use history::WatchStart;
pub use patch::PatchKind;
pub use resources::{PrinterColumn, ResourceType};
pub use server::Options;
pub use status::{ApiError, Details};
pub use store::Store;
pub use writes::Target;
