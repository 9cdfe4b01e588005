//! WATCH, checked against API concepts "Efficient detection of changes",
//! "Watch bookmarks" and "Streaming lists", through kube-rs.

mod common;

use std::time::Duration;

use common::node;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::Api;
use serde_json::json;
use tabby_kube_standin::{Options, StandIn};
use tokio::time::timeout;

/// A stand-in with bookmarks every 200 ms, so tests don't wait for them.
async fn quick() -> (StandIn, kube::Client) {
    let opts = Options {
        bookmark_interval: Duration::from_millis(200),
        ..Options::default()
    };
    let s = StandIn::start_with(([127, 0, 0, 1], 0).into(), opts)
        .await
        .expect("starts");
    let c = s.client().await.expect("client");
    (s, c)
}

fn rv(n: &Node) -> u64 {
    n.metadata
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .expect("numeric rv")
}

/// A compact record of one event: type, name, resourceVersion.
fn describe(e: &WatchEvent<Node>) -> (String, String, u64) {
    let (t, n) = match e {
        WatchEvent::Added(n) => ("ADDED", n),
        WatchEvent::Modified(n) => ("MODIFIED", n),
        WatchEvent::Deleted(n) => ("DELETED", n),
        WatchEvent::Bookmark(b) => {
            return (
                "BOOKMARK".into(),
                String::new(),
                b.metadata.resource_version.parse().unwrap_or(0),
            )
        }
        WatchEvent::Error(s) => return ("ERROR".into(), s.reason.clone(), u64::from(s.code)),
    };
    (t.into(), n.metadata.name.clone().unwrap_or_default(), rv(n))
}

// "Efficient detection of changes": a watch from a resourceVersion gets
// every change strictly after it, in order, including those made before
// the watch began; DELETED carries the delete's resourceVersion. "Watch
// bookmarks": with allowWatchBookmarks the stream also carries BOOKMARKs
// whose resourceVersion covers everything already sent.
#[tokio::test]
async fn watch_from_a_version_sends_later_changes_in_order_and_bookmarks() {
    let (_s, c) = quick().await;
    let nodes: Api<Node> = Api::all(c);
    let pp = PostParams::default();
    let n1 = nodes.create(&pp, &node("n1")).await.expect("n1");
    let label = json!({"metadata": {"labels": {"x": "1"}}});
    let m1 = nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("label");
    let wp = WatchParams::default().timeout(10);
    let mut stream = nodes
        .watch(&wp, &rv(&n1).to_string())
        .await
        .expect("watch")
        .boxed();
    let n2 = nodes.create(&pp, &node("n2")).await.expect("n2");
    nodes
        .delete("n1", &DeleteParams::default())
        .await
        .expect("delete");
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let e = timeout(Duration::from_secs(5), stream.try_next())
            .await
            .expect("an event within 5s")
            .expect("no stream error")
            .expect("stream open");
        let d = describe(&e);
        // Bookmarks may come in between; keep the first one after the delete.
        if d.0 != "BOOKMARK" || seen.len() == 3 {
            seen.push(d);
        }
    }
    let del_rv = rv(&n2) + 1;
    assert_eq!(
        seen,
        vec![
            ("MODIFIED".into(), "n1".into(), rv(&m1)),
            ("ADDED".into(), "n2".into(), rv(&n2)),
            ("DELETED".into(), "n1".into(), del_rv),
            ("BOOKMARK".into(), String::new(), del_rv),
        ]
    );
}

// "Semantics for watch": without a resourceVersion (or from "0") a watch
// starts with a synthetic ADDED for every current object.
#[tokio::test]
async fn watch_from_zero_starts_with_the_current_objects() {
    let (_s, c) = quick().await;
    let nodes: Api<Node> = Api::all(c);
    for n in ["a", "b"] {
        nodes
            .create(&PostParams::default(), &node(n))
            .await
            .expect("create");
    }
    let mut stream = nodes
        .watch(&WatchParams::default().timeout(5), "0")
        .await
        .expect("watch")
        .boxed();
    let mut added = Vec::new();
    for _ in 0..2 {
        let e = timeout(Duration::from_secs(5), stream.try_next())
            .await
            .expect("in time")
            .expect("ok")
            .expect("open");
        added.push(describe(&e));
    }
    let names: Vec<(&str, &str)> = added
        .iter()
        .map(|(t, n, _)| (t.as_str(), n.as_str()))
        .collect();
    assert_eq!(names, vec![("ADDED", "a"), ("ADDED", "b")]);
}

// "Efficient detection of changes": a watch from a version older than the
// compacted history gets one ERROR event with a 410 Expired Status.
#[tokio::test]
async fn watch_from_a_compacted_version_gets_410_expired() {
    let (s, c) = quick().await;
    let nodes: Api<Node> = Api::all(c);
    let n1 = nodes
        .create(&PostParams::default(), &node("n1"))
        .await
        .expect("n1");
    nodes
        .create(&PostParams::default(), &node("n2"))
        .await
        .expect("n2");
    s.compact();
    let mut stream = nodes
        .watch(&WatchParams::default(), &rv(&n1).to_string())
        .await
        .expect("watch")
        .boxed();
    let e = timeout(Duration::from_secs(5), stream.try_next())
        .await
        .expect("in time")
        .expect("ok")
        .expect("open");
    assert_eq!(describe(&e), ("ERROR".into(), "Expired".into(), 410));
    // ... and nothing after it.
    let end = timeout(Duration::from_secs(5), stream.try_next())
        .await
        .expect("ends");
    assert!(matches!(end, Ok(None)), "{end:?}");
    // The current version is still fine.
    let mut ok = nodes
        .watch(
            &WatchParams::default().timeout(1),
            &s.current_rv().to_string(),
        )
        .await
        .expect("watch")
        .boxed();
    let e = timeout(Duration::from_secs(5), ok.try_next())
        .await
        .expect("in time")
        .expect("ok");
    assert!(matches!(e, Some(WatchEvent::Bookmark(_))), "{e:?}");
}

// "Watch" with a label selector: an object that stops matching is sent as
// DELETED and one that starts matching as ADDED, as the apiserver's watch
// filter does.
#[tokio::test]
async fn selector_watch_turns_label_changes_into_added_and_deleted() {
    let (s, c) = quick().await;
    let nodes: Api<Node> = Api::all(c);
    let pp = PostParams::default();
    nodes.create(&pp, &node("n1")).await.expect("n1");
    nodes.create(&pp, &node("other")).await.expect("other");
    let wp = WatchParams::default()
        .labels("role=edge")
        .timeout(10)
        .disable_bookmarks();
    let mut stream = nodes
        .watch(&wp, &s.current_rv().to_string())
        .await
        .expect("watch")
        .boxed();
    let set = |v: &str| json!({"metadata": {"labels": {"role": v}}});
    let patch = |n: &'static str, v: &'static str| {
        let nodes = nodes.clone();
        async move {
            nodes
                .patch(n, &PatchParams::default(), &Patch::Merge(&set(v)))
                .await
                .expect("patch")
        }
    };
    patch("n1", "edge").await;
    patch("other", "core").await;
    patch("n1", "edge2").await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let e = timeout(Duration::from_secs(5), stream.try_next())
            .await
            .expect("in time")
            .expect("ok")
            .expect("open");
        let (t, n, _) = describe(&e);
        seen.push((t, n));
    }
    assert_eq!(
        seen,
        vec![
            ("ADDED".into(), "n1".into()),
            ("DELETED".into(), "n1".into())
        ]
    );
}

// "Watch" timeoutSeconds: the server ends the stream cleanly after it.
#[tokio::test]
async fn timeout_seconds_ends_the_stream() {
    let (_s, c) = quick().await;
    let nodes: Api<Node> = Api::all(c);
    let started = std::time::Instant::now();
    let stream = nodes
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), "0")
        .await
        .expect("watch");
    let rest: Vec<_> = timeout(Duration::from_secs(5), stream.collect::<Vec<_>>())
        .await
        .expect("ended in time");
    assert!(rest.is_empty(), "no objects, no events: {rest:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "ended too early"
    );
}
