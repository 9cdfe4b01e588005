//! kube-runtime's watcher end to end, as Tabby uses it, and outages.

mod common;

use std::time::Duration;

use common::node;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::PostParams;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, ResourceExt};
use serde_json::json;
use tabby_kube_standin::{Options, StandIn};
use tokio::time::timeout;

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

/// Events as short strings: `Init`, `InitApply(n1)`, `Apply(n1)`, ...
fn name(e: &Event<Node>) -> String {
    match e {
        Event::Init => "Init".into(),
        Event::InitApply(n) => format!("InitApply({})", n.name_any()),
        Event::InitDone => "InitDone".into(),
        Event::Apply(n) => format!("Apply({})", n.name_any()),
        Event::Delete(n) => format!("Delete({})", n.name_any()),
    }
}

/// Reads watcher events until one equals `want`, returning all read.
async fn until<S>(stream: &mut S, want: &str) -> Vec<String>
where
    S: futures::Stream<Item = Result<Event<Node>, watcher::Error>> + Unpin,
{
    let mut seen = Vec::new();
    loop {
        let e = timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap_or_else(|_| panic!("no {want} within 10s; saw {seen:?}"))
            .expect("watcher streams forever");
        // Errors are items of the stream; with a backoff the watcher goes
        // on after them. A 410 is recorded by its code, others by kind.
        seen.push(match e {
            Ok(e) => name(&e),
            Err(watcher::Error::WatchError(s)) => format!("Error({})", s.code),
            Err(_) => "Error".into(),
        });
        if seen.last().map(String::as_str) == Some(want) {
            return seen;
        }
    }
}

// What Tabby's datastore does: list, watch, follow bookmarks; and when its
// version has been compacted away while it was disconnected, the 410 makes
// the watcher relist (API concepts, "Efficient detection of changes":
// "clients must handle 410 Gone by clearing their cache and relisting").
#[tokio::test]
async fn watcher_lists_watches_and_relists_after_an_outage_with_compaction() {
    let (s, c) = quick().await;
    let nodes: Api<Node> = Api::all(c);
    nodes
        .create(&PostParams::default(), &node("n1"))
        .await
        .expect("n1");
    let cfg = watcher::Config::default().timeout(30);
    let stream = watcher::watcher(nodes.clone(), cfg).default_backoff();
    let mut stream = std::pin::pin!(stream);
    assert_eq!(
        until(&mut stream, "InitDone").await,
        vec!["Init", "InitApply(n1)", "InitDone"]
    );
    nodes
        .create(&PostParams::default(), &node("n2"))
        .await
        .expect("n2");
    assert_eq!(until(&mut stream, "Apply(n2)").await, vec!["Apply(n2)"]);
    // Let a bookmark move the watcher's version on, then take the server
    // away, write behind the watcher's back and forget the history.
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.stop().await;
    s.put_json("/api/v1/nodes/n3", json!({"metadata": {"name": "n3"}}))
        .expect("direct write");
    s.delete_json("/api/v1/nodes/n1").expect("direct delete");
    s.compact();
    s.restart().await.expect("restart");
    let seen = until(&mut stream, "InitDone").await;
    // Connection errors while it reconnects, then the 410, then the relist.
    let from_410 = seen
        .iter()
        .position(|e| e == "Error(410)")
        .unwrap_or_else(|| panic!("no 410 in {seen:?}"));
    assert!(seen[..from_410].iter().all(|e| e == "Error"), "{seen:?}");
    assert_eq!(
        seen[from_410 + 1..],
        ["Init", "InitApply(n2)", "InitApply(n3)", "InitDone"],
        "a relist after 410"
    );
}

// "Streaming lists" (sendInitialEvents): the watcher's streaming-list mode
// gets the current objects as ADDED and the initial-events-end bookmark.
#[tokio::test]
async fn watcher_streaming_list_mode() {
    let (_s, c) = quick().await;
    let nodes: Api<Node> = Api::all(c);
    nodes
        .create(&PostParams::default(), &node("n1"))
        .await
        .expect("n1");
    let stream = watcher::watcher(nodes.clone(), watcher::Config::default().streaming_lists());
    let mut stream = std::pin::pin!(stream);
    assert_eq!(
        until(&mut stream, "InitDone").await,
        vec!["Init", "InitApply(n1)", "InitDone"]
    );
    nodes
        .create(&PostParams::default(), &node("n2"))
        .await
        .expect("n2");
    assert_eq!(until(&mut stream, "Apply(n2)").await, vec!["Apply(n2)"]);
}

// Outage simulation: while stopped, requests fail with a transport error
// (not an API Status); after restart the same port serves the same data.
#[tokio::test]
async fn stop_refuses_requests_and_restart_serves_the_same_data() {
    let (s, c) = quick().await;
    let nodes: Api<Node> = Api::all(c);
    let made = nodes
        .create(&PostParams::default(), &node("n1"))
        .await
        .expect("n1");
    let addr = s.addr();
    s.stop().await;
    assert!(!s.is_serving());
    match nodes.get("n1").await {
        Err(kube::Error::Api(e)) => panic!("expected a transport error, got API error {e:?}"),
        Err(_) => {}
        Ok(n) => panic!("served while stopped: {n:?}"),
    }
    s.restart().await.expect("restart");
    assert_eq!(s.addr(), addr);
    let again = nodes.get("n1").await.expect("served again");
    assert_eq!(again.metadata.uid, made.metadata.uid);
    assert_eq!(
        again.metadata.resource_version,
        made.metadata.resource_version
    );
    assert!(matches!(
        s.restart().await,
        Err(tabby_kube_standin::StandInError::AlreadyRunning)
    ));
}

// Stopping drops open watches: a raw watch stream ends (or errors) rather
// than hanging, so a client notices the outage.
#[tokio::test]
async fn stop_ends_open_watch_streams() {
    let (s, c) = quick().await;
    let nodes: Api<Node> = Api::all(c);
    let wp = kube::api::WatchParams::default().disable_bookmarks();
    let stream = nodes.watch(&wp, "0").await.expect("watch");
    let mut stream = std::pin::pin!(stream);
    s.stop().await;
    let end = timeout(Duration::from_secs(5), stream.try_next())
        .await
        .expect("the stream ends in time");
    assert!(
        !matches!(end, Ok(Some(_))),
        "got an event after stop: {end:?}"
    );
}
