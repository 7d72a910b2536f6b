//! Message headers through the client, including multi-value headers.

use std::time::Duration;

use futures::StreamExt;
use petrel_testkit::spawn;

#[tokio::test]
async fn headers_round_trip_with_multiple_values() {
    let s = spawn().await;
    let c = async_nats::connect(s.client_url()).await.unwrap();
    let mut sub = c.subscribe("h.test").await.unwrap();
    c.flush().await.unwrap();
    let mut h = async_nats::HeaderMap::new();
    h.insert("Trace-Id", "abc-123");
    h.append("X-Tag", "one");
    h.append("X-Tag", "two");
    c.publish_with_headers("h.test", h, "body".into())
        .await
        .unwrap();
    c.flush().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    let got = m.headers.expect("headers delivered");
    assert_eq!(got.get("Trace-Id").map(|v| v.as_str()), Some("abc-123"));
    let tags: Vec<&str> = got.get_all("X-Tag").map(|v| v.as_str()).collect();
    assert_eq!(tags, vec!["one", "two"]);
    assert_eq!(m.payload, "body");
}
