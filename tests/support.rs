//! Helpers shared by the black-box tests: a stream config, acknowledged publishes, a
//! fetch that waits, subject permissions.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use petrel_server::SubjectPermission;

/// Allow and deny lists.
pub(crate) fn sp(allow: &[&str], deny: &[&str]) -> Option<SubjectPermission> {
    Some(SubjectPermission {
        allow: allow.iter().map(|s| s.to_string()).collect(),
        deny: deny.iter().map(|s| s.to_string()).collect(),
    })
}

/// Fetches up to `n` messages, waiting up to `wait` for them.
pub(crate) async fn fetch_within(
    c: &consumer::PullConsumer,
    n: usize,
    wait: Duration,
) -> Vec<jetstream::Message> {
    let mut msgs = c
        .fetch()
        .max_messages(n)
        .expires(wait)
        .messages()
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(m) = msgs.next().await {
        out.push(m.unwrap());
    }
    out
}

/// A stream config with a name and subjects, defaults otherwise.
pub(crate) fn config(name: &str, subjects: &[&str]) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// Publishes every payload to `subject`, each waiting for its PubAck.
pub(crate) async fn publish_all<I>(js: &jetstream::Context, subject: &str, payloads: I)
where
    I: IntoIterator<Item = String>,
{
    for p in payloads {
        js.publish(subject.to_string(), p.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// Publishes `n` messages (`m0`, `m1`, ...) to `subject`, each waiting for its PubAck.
pub(crate) async fn publish(js: &jetstream::Context, subject: &str, n: usize) {
    publish_all(js, subject, (0..n).map(|i| format!("m{i}"))).await;
}

/// The JetStream `err_code` of a refused stream create or update.
pub(crate) fn api_code(err: &jetstream::context::CreateStreamError) -> u64 {
    match err.kind() {
        jetstream::context::CreateStreamErrorKind::JetStream(e) => e.error_code().0,
        other => panic!("expected an API error, got {other}"),
    }
}

/// A server running the example config `config/<file>` (its text through `edit` first) on
/// a free port, with its store in `store` (else the server's temporary directory) and
/// monitoring on a free port when `monitor`.
pub(crate) async fn spawn_config(
    file: &str,
    edit: impl FnOnce(String) -> String,
    store: Option<&std::path::Path>,
    monitor: bool,
) -> petrel_testkit::TestServer {
    let path = format!("{}/../config/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = edit(std::fs::read_to_string(&path).expect("read the example config"));
    let loaded = petrel_config::load_str(&text, file).expect("the example config loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let store = store.map(std::path::Path::to_path_buf);
    petrel_testkit::spawn_with_store(move |b, dir| {
        let mut o = loaded.options;
        o.http_port = monitor.then_some(0);
        if let Some(js) = o.jetstream.as_mut() {
            js.store_dir = store.unwrap_or_else(|| dir.to_path_buf());
        }
        b.options(o)
            .host(std::net::Ipv4Addr::LOCALHOST.into())
            .port(0)
    })
    .await
}

/// A connection as `user` with the example configs' password (`<user>-change-me`).
pub(crate) async fn login(s: &petrel_testkit::TestServer, user: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), format!("{user}-change-me"))
        .connect(s.client_url())
        .await
        .expect("log in")
}

/// `n` distinct free TCP ports on 127.0.0.1, for nodes that must listen on ports known in
/// advance (routes listing every node). They are taken below the kernel's ephemeral range:
/// a port from that range, once released, can become the source port of some other test's
/// outgoing connection before the node binds it (a restarted node failed with
/// `AddrInUse`); below it only explicit binds compete, and each port is checked free.
pub(crate) fn free_ports(n: usize) -> Vec<u16> {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (lo, hi) = (10_000u16, ephemeral_start.max(12_000));
    let mut ports: Vec<u16> = Vec::with_capacity(n);
    while ports.len() < n {
        let p = fastrand::u16(lo..hi);
        if !ports.contains(&p) && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            ports.push(p);
        }
    }
    ports
}

/// Every sequence in `1..=last` but `deleted` holds `{prefix}{seq}`.
pub(crate) async fn all_there(
    js: &jetstream::Context,
    stream: &str,
    prefix: &str,
    last: u64,
    deleted: &[u64],
) {
    let s = js.get_stream(stream).await.unwrap();
    for seq in 1..=last {
        let got = s.get_raw_message(seq).await;
        if deleted.contains(&seq) {
            assert!(got.is_err(), "{stream} seq {seq} was deleted");
        } else {
            let m = got.unwrap_or_else(|e| panic!("{stream} seq {seq}: {e}"));
            assert_eq!(&m.payload[..], format!("{prefix}{seq}").as_bytes());
        }
    }
}

/// A request with these headers and this body; the reply's body as JSON (a PubAck or its
/// error, an API answer).
pub(crate) async fn request_json(
    nc: &async_nats::Client,
    subject: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> serde_json::Value {
    let mut h = async_nats::HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, *v);
    }
    let r = nc
        .request_with_headers(subject.to_string(), h, body.to_string().into())
        .await
        .unwrap();
    serde_json::from_slice(&r.payload).unwrap()
}

/// Starts a JetStream server storing in `dir` through the simulated disk `fs` (power-loss
/// tests: `fs.crash…()` between two boots).
pub(crate) async fn boot_on_sim(
    fs: &petrel_store::SimFs,
    dir: &std::path::Path,
) -> petrel_server::ServerHandle {
    petrel_server::Server::builder()
        .host(std::net::Ipv4Addr::LOCALHOST.into())
        .port(0)
        .jetstream(dir)
        .store_backend(std::sync::Arc::new(fs.clone()))
        .start()
        .await
        .unwrap()
}
