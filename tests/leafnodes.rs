//! Leafnodes between Petrel servers, over TCP and WebSocket, driven by async-nats on
//! both sides: messages and wildcards both ways, no echo back to the spoke, a queue
//! group served exactly once across the leaf, request/reply, unsubscribe propagation,
//! a hub inside a cluster, and the hub's handshake rules (CONNECT first, credentials,
//! loop detection) checked byte by byte with a raw spoke.

use std::time::Duration;

use futures::StreamExt;
use petrel_testkit::{
    http_get, LeafRemote, LeafUrl, LeafUser, LeafnodeOptions, RawClient, ServerBuilder, TestServer,
    WebSocketOptions,
};

use crate::cluster::{
    client, drain_now, queue_exactly_once, settle, until_marker, until_received, WAIT,
};

/// A hub: a leafnode listener on a free port (plus whatever `more` adds).
pub(crate) async fn hub_with(
    name: &str,
    leaf: LeafnodeOptions,
    more: impl FnOnce(ServerBuilder) -> ServerBuilder,
) -> TestServer {
    let leaf = LeafnodeOptions {
        host: "127.0.0.1".parse().unwrap(),
        port: Some(0),
        ..leaf
    };
    petrel_testkit::spawn_with(|b| more(b.server_name(name).leafnodes(leaf))).await
}

/// A spoke of the hub at `url`.
pub(crate) async fn spoke(name: &str, url: &str) -> TestServer {
    spoke_with(name, remote(url), |b| b).await
}

/// A remote for `url`.
pub(crate) fn remote(url: &str) -> LeafRemote {
    LeafRemote {
        urls: vec![LeafUrl::parse(url).expect("leaf url")],
        ..LeafRemote::default()
    }
}

/// A spoke with its remote and builder settings.
pub(crate) async fn spoke_with(
    name: &str,
    remote: LeafRemote,
    more: impl FnOnce(ServerBuilder) -> ServerBuilder,
) -> TestServer {
    let leaf = LeafnodeOptions {
        remotes: vec![remote],
        reconnect: Duration::from_millis(100),
        ..LeafnodeOptions::default()
    };
    petrel_testkit::spawn_with(|b| more(b.server_name(name).leafnodes(leaf))).await
}

/// Waits until `server` has `n` leaf connections.
pub(crate) async fn wait_leafs(server: &TestServer, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.handle().leaf_peers().len() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} leaf connections expected, have {:?}",
            server.handle().leaf_peers()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pub/sub both ways, no echo, a queue group, request/reply and unsubscribe between a
/// spoke's client and a hub's client.
pub(crate) async fn exchange(spoke_c: &async_nats::Client, hub_c: &async_nats::Client) {
    // Spoke → hub, wildcards.
    let mut on_hub = hub_c.subscribe("medisync.etl.*.completed").await.unwrap();
    hub_c.flush().await.unwrap();
    until_received(spoke_c, &mut on_hub, "medisync.etl.job1.completed").await;
    // Hub → spoke.
    let mut on_spoke = spoke_c.subscribe("SECURITY.ALERTS.*").await.unwrap();
    spoke_c.flush().await.unwrap();
    until_received(hub_c, &mut on_spoke, "SECURITY.ALERTS.login").await;
    // Every message once, in order, and none echoed back to the spoke's own subscriber.
    let mut local = spoke_c
        .subscribe("medisync.etl.job2.completed")
        .await
        .unwrap();
    spoke_c.flush().await.unwrap();
    for i in 0..50 {
        spoke_c
            .publish("medisync.etl.job2.completed", format!("{i}").into())
            .await
            .unwrap();
    }
    spoke_c
        .publish("medisync.etl.job2.completed", "end".into())
        .await
        .unwrap();
    spoke_c.flush().await.unwrap();
    let want: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    let got: Vec<String> = until_marker(&mut on_hub, "end")
        .await
        .into_iter()
        .filter(|p| p != "probe")
        .collect();
    assert_eq!(got, want);
    assert_eq!(until_marker(&mut local, "end").await, want);
    // What the hub sends afterwards comes after any echo would have: none came.
    settle(hub_c, &mut on_spoke, "SECURITY.ALERTS.sync").await;
    assert!(drain_now(&mut local).is_empty(), "a message came back");
    // Request/reply: a service on the hub answers the spoke, and the other way round.
    for (service, requester, subject) in
        [(hub_c, spoke_c, "svc.hub"), (spoke_c, hub_c, "svc.spoke")]
    {
        let mut sub = service.subscribe(subject).await.unwrap();
        service.flush().await.unwrap();
        let s = service.clone();
        let task = tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                if let Some(reply) = m.reply {
                    s.publish(reply, m.payload).await.unwrap();
                    s.flush().await.unwrap();
                }
            }
        });
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let r = tokio::time::timeout(
                Duration::from_secs(2),
                requester.request(subject, "ping".into()),
            )
            .await;
            if let Ok(Ok(r)) = r {
                assert_eq!(&r.payload[..], b"ping");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no reply on {subject}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        task.abort();
    }
    // A queue group on the hub serves the spoke's messages exactly once.
    let mut workers = Vec::new();
    for _ in 0..2 {
        workers.push(
            hub_c
                .queue_subscribe("jobs", "workers".into())
                .await
                .unwrap(),
        );
    }
    let mut marker = hub_c.subscribe("jobs.marker").await.unwrap();
    hub_c.flush().await.unwrap();
    until_received(spoke_c, &mut marker, "jobs.marker").await;
    let mut markers = vec![("jobs.marker".to_string(), marker)];
    queue_exactly_once(spoke_c, &mut workers, &mut markers, 200).await;
}

#[tokio::test]
async fn a_petrel_spoke_and_hub_exchange_messages() {
    let hub = hub_with("hub", LeafnodeOptions::default(), |b| b).await;
    let spoke = spoke("spoke", &hub.leaf_url().unwrap()).await;
    wait_leafs(&hub, 1).await;
    wait_leafs(&spoke, 1).await;
    let (s, h) = (client(&spoke).await, client(&hub).await);
    exchange(&s, &h).await;
}

#[tokio::test]
async fn leafnodes_over_websocket() {
    let ws = WebSocketOptions {
        host: "127.0.0.1".parse().unwrap(),
        port: 0,
        no_tls: true,
        ..WebSocketOptions::default()
    };
    let hub = hub_with("wshub", LeafnodeOptions::default(), |b| {
        b.websocket(ws).http_port(0)
    })
    .await;
    let port = hub.handle().websocket_addr().unwrap().port();
    let spoke = spoke("wsspoke", &format!("ws://127.0.0.1:{port}")).await;
    wait_leafs(&hub, 1).await;
    let (s, h) = (client(&spoke).await, client(&hub).await);
    exchange(&s, &h).await;
    let leafz = http_get(hub.monitor_addr().unwrap(), "/leafz?subs=1")
        .await
        .unwrap()
        .json();
    assert_eq!(leafz["leafnodes"], 1, "{leafz}");
    assert_eq!(leafz["leafs"][0]["name"], "wsspoke", "{leafz}");
    assert_eq!(leafz["leafs"][0]["is_spoke"], false, "{leafz}");
}

#[tokio::test]
async fn unsubscribing_reaches_the_other_side() {
    let hub = hub_with("uhub", LeafnodeOptions::default(), |b| b).await;
    let spoke = spoke("uspoke", &hub.leaf_url().unwrap()).await;
    wait_leafs(&hub, 1).await;
    let (s, h) = (client(&spoke).await, client(&hub).await);
    let mut sub = h.subscribe("gone.soon").await.unwrap();
    h.flush().await.unwrap();
    until_received(&s, &mut sub, "gone.soon").await;
    sub.unsubscribe().await.unwrap();
    h.flush().await.unwrap();
    // The spoke forgets the hub's interest: a request gets no-responders there (one
    // sent before the news arrived goes to the hub, which does not answer for a leaf).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = tokio::time::timeout(
            Duration::from_millis(500),
            s.request("gone.soon", "x".into()),
        )
        .await;
        match r {
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => break,
            _ => assert!(tokio::time::Instant::now() < deadline, "interest stayed"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_hub_in_a_cluster_carries_the_spoke_to_every_node() {
    let nodes = petrel_testkit::spawn_cluster_with(2, |b, i, _| {
        b.leafnodes(LeafnodeOptions {
            host: "127.0.0.1".parse().unwrap(),
            port: Some(0),
            ..LeafnodeOptions::default()
        })
        .server_name(format!("c{i}"))
    })
    .await;
    let spoke = spoke("cspoke", &nodes[0].leaf_url().unwrap()).await;
    wait_leafs(&nodes[0], 1).await;
    let (s, far) = (client(&spoke).await, client(&nodes[1]).await);
    // Spoke → hub → route → the other node, and back.
    let mut on_far = far.subscribe("orders.*").await.unwrap();
    far.flush().await.unwrap();
    until_received(&s, &mut on_far, "orders.new").await;
    let mut on_spoke = s.subscribe("replies.>").await.unwrap();
    s.flush().await.unwrap();
    until_received(&far, &mut on_spoke, "replies.a.b").await;
}

/// Reads the hub's INFO line and parses it.
async fn hub_info(raw: &mut RawClient) -> serde_json::Value {
    let line = raw.read_line().await;
    let json = line
        .strip_prefix("INFO ")
        .unwrap_or_else(|| panic!("INFO first, got {line:?}"));
    serde_json::from_str(json.trim()).unwrap()
}

async fn raw_leaf(hub: &TestServer) -> RawClient {
    RawClient::connect(hub.handle().leafnode_addr().unwrap()).await
}

#[tokio::test]
async fn the_hub_speaks_first_and_wants_connect() {
    let hub = hub_with(
        "rhub",
        LeafnodeOptions {
            users: vec![LeafUser {
                user: "leaf".into(),
                password: "s3cret".into(),
                account: None,
            }],
            auth_timeout: Duration::from_millis(300),
            ..LeafnodeOptions::default()
        },
        |b| b,
    )
    .await;
    // What a nats-server spoke checks in the first INFO (else it hangs up).
    let raw = raw_leaf(&hub).await;
    let info = raw.info();
    let mut raw = raw;
    assert!(info["client_id"].as_u64().unwrap() > 0, "{info}");
    assert!(
        !info["leafnode_urls"].as_array().unwrap().is_empty(),
        "{info}"
    );
    assert_eq!(info["info_on_connect"], true);
    assert!(info.get("compression").is_none(), "no compression offered");
    assert!(!info["nonce"].as_str().unwrap().is_empty());
    // Anything before CONNECT.
    raw.send(b"LS+ foo\r\n").await;
    raw.expect(b"-ERR 'Authorization Violation'\r\n").await;
    raw.expect_closed().await;
    // Wrong password; then no CONNECT at all.
    let mut raw = raw_leaf(&hub).await;
    raw.send(b"CONNECT {\"user\":\"leaf\",\"pass\":\"nope\"}\r\n")
        .await;
    raw.expect(b"-ERR 'Authorization Violation'\r\n").await;
    raw.expect_closed().await;
    let mut raw = raw_leaf(&hub).await;
    raw.expect(b"-ERR 'Authentication Timeout'\r\n").await;
    // A client library on the leaf port.
    let mut raw = raw_leaf(&hub).await;
    raw.send(b"CONNECT {\"user\":\"leaf\",\"pass\":\"s3cret\",\"lang\":\"go\"}\r\n")
        .await;
    raw.expect(b"-ERR 'attempted to connect to leaf node port'\r\n")
        .await;
}

#[tokio::test]
async fn the_hub_detects_a_loop_and_forwards_leaf_messages() {
    let hub = hub_with("lhub", LeafnodeOptions::default(), |b| b).await;
    let h = client(&hub).await;
    let mut sub = h.subscribe("from.leaf").await.unwrap();
    let _workers = h.queue_subscribe("q.work", "g".into()).await.unwrap();
    h.flush().await.unwrap();
    let mut raw = raw_leaf(&hub).await;
    raw.send(b"CONNECT {\"name\":\"rawleaf\",\"cluster\":\"rawleaf\",\"headers\":true}\r\n")
        .await;
    let info = hub_info(&mut raw).await;
    assert_eq!(info["connect_info"], true);
    assert_eq!(info["remote_account"], "$G");
    // The dump: the hub's loop-detection subject and its clients' interest (and the
    // system services the account imports).
    let mut lines: Vec<String> = Vec::new();
    let wanted = |lines: &[String]| {
        ["LS+ from.leaf", "LS+ q.work g 1"]
            .iter()
            .all(|w| lines.iter().any(|l| l == w))
            && lines.iter().any(|l| l.starts_with("LS+ $LDS."))
    };
    while !wanted(&lines) {
        assert!(lines.len() < 100, "{lines:?}");
        lines.push(raw.read_line().await);
    }
    assert!(lines.iter().any(|l| l == "LS+ from.leaf"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "LS+ q.work g 1"), "{lines:?}");
    let lds = lines
        .iter()
        .find(|l| l.starts_with("LS+ $LDS."))
        .expect("loop detection subject")
        .clone();
    // A leaf's message reaches the hub's client with its reply.
    raw.send(b"LMSG from.leaf _INBOX.r 5\r\nhello\r\n").await;
    let m = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (&m.payload[..], m.reply.as_deref()),
        (&b"hello"[..], Some("_INBOX.r"))
    );
    // The hub's own subject coming back is a loop.
    raw.send(format!("{lds}\r\n").as_bytes()).await;
    // (The rest of the dump may come first.)
    let err = loop {
        let line = raw.read_line().await;
        if !line.starts_with("LS+ ") {
            break line;
        }
    };
    assert_eq!(
        err,
        "-ERR 'Loop detected for leafnode account=\"$G\". Delaying attempt to reconnect for 30s'"
    );
    raw.expect_closed().await;
}

/// TLS on the leafnode listener (`tls_required` in its INFO, the handshake after it)
/// and a remote that verifies the hub with `tls { ca_file }`.
pub(crate) fn tls_pair(certs: &petrel_testkit::TestCerts) -> (LeafnodeOptions, LeafRemote) {
    let hub = LeafnodeOptions {
        tls: Some(petrel_testkit::TlsOptions::new(
            &certs.server_cert,
            &certs.server_key,
        )),
        ..LeafnodeOptions::default()
    };
    let ca_only = petrel_testkit::TlsOptions {
        ca_file: Some(certs.ca.clone()),
        ..petrel_testkit::TlsOptions::new("", "")
    };
    let remote = LeafRemote {
        tls: Some(ca_only),
        ..LeafRemote::default()
    };
    (hub, remote)
}

#[tokio::test]
async fn leafnodes_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = petrel_testkit::TestCerts::generate(dir.path()).unwrap();
    let (hub_opts, tls_remote) = tls_pair(&certs);
    let hub = hub_with("tlshub", hub_opts, |b| b).await;
    let info = raw_leaf(&hub).await.info();
    assert_eq!(info["tls_required"], true, "{info}");
    let url = hub.leaf_url().unwrap();
    let spoke = spoke_with(
        "tlsspoke",
        LeafRemote {
            urls: remote(&url).urls,
            ..tls_remote
        },
        |b| b,
    )
    .await;
    wait_leafs(&hub, 1).await;
    let (s, h) = (client(&spoke).await, client(&hub).await);
    exchange(&s, &h).await;
}

#[tokio::test]
async fn a_spoke_logs_in_with_an_nkey_and_is_bound_to_its_account() {
    // No leafnode users: the hub checks the server's users, as nats-server does; the
    // nkey signs the hub's nonce and the user's account is the leaf's.
    let kp = nkeys::KeyPair::new_user();
    let conf = format!(
        "accounts {{ TEAM {{ users: [{{ nkey: {} }}, {{ user: app, password: pw }}] }} }}\n",
        kp.public_key()
    );
    let opts = petrel_config::load_str(&conf, "leaf.conf").unwrap().options;
    let leaf = LeafnodeOptions {
        host: "127.0.0.1".parse().unwrap(),
        port: Some(0),
        ..LeafnodeOptions::default()
    };
    let hub = petrel_testkit::spawn_with(|b| {
        b.options(opts)
            .host("127.0.0.1".parse().unwrap())
            .port(0)
            .http_port(0)
            .server_name("khub")
            .leafnodes(leaf)
    })
    .await;
    let spoke = spoke_with(
        "kspoke",
        LeafRemote {
            nkey_seed: Some(kp.seed().unwrap()),
            ..remote(&hub.leaf_url().unwrap())
        },
        |b| b,
    )
    .await;
    wait_leafs(&hub, 1).await;
    let h = async_nats::ConnectOptions::with_user_and_password("app".into(), "pw".into())
        .connect(hub.client_url())
        .await
        .unwrap();
    let s = client(&spoke).await;
    let mut sub = h.subscribe("team.events").await.unwrap();
    h.flush().await.unwrap();
    until_received(&s, &mut sub, "team.events").await;
    let leafz = http_get(hub.monitor_addr().unwrap(), "/leafz?acc=TEAM")
        .await
        .unwrap()
        .json();
    assert_eq!(leafz["leafs"][0]["account"], "TEAM", "{leafz}");
    // Another key's signature is refused.
    let mut raw = raw_leaf(&hub).await;
    let other = nkeys::KeyPair::new_user();
    let nonce = raw.info()["nonce"].as_str().unwrap().to_string();
    let sig = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(other.sign(nonce.as_bytes()).unwrap())
    };
    raw.send(
        format!(
            "CONNECT {{\"nkey\":\"{}\",\"sig\":\"{sig}\"}}\r\n",
            kp.public_key()
        )
        .as_bytes(),
    )
    .await;
    raw.expect(b"-ERR 'Authorization Violation'\r\n").await;
}

#[tokio::test]
async fn a_remote_with_hub_true_plays_the_hub() {
    // A node of a cluster dials a standalone server with `hub: true`: the cluster is the
    // hub, so the standalone server's messages reach the cluster's other node.
    let edge = hub_with("edge", LeafnodeOptions::default(), |b| b).await;
    let url = edge.leaf_url().unwrap();
    let nodes = petrel_testkit::spawn_cluster_with(2, |b, i, _| {
        let b = b.server_name(format!("h{i}"));
        if i == 0 {
            b.leafnodes(LeafnodeOptions {
                remotes: vec![LeafRemote {
                    hub: true,
                    ..remote(&url)
                }],
                reconnect: Duration::from_millis(100),
                ..LeafnodeOptions::default()
            })
        } else {
            b
        }
    })
    .await;
    wait_leafs(&edge, 1).await;
    let (e, far) = (client(&edge).await, client(&nodes[1]).await);
    let mut on_far = far.subscribe("edge.data").await.unwrap();
    far.flush().await.unwrap();
    until_received(&e, &mut on_far, "edge.data").await;
    let mut on_edge = e.subscribe("to.edge").await.unwrap();
    e.flush().await.unwrap();
    until_received(&far, &mut on_edge, "to.edge").await;
}

#[tokio::test]
async fn jetstream_crosses_a_leaf_only_by_domain() {
    // As nats-server: `$JS.API.>` stays on each side of a client account's leaf
    // connection; the hub's JetStream is reached from the spoke as `$JS.<domain>.API`.
    let store = tempfile::tempdir().unwrap();
    let hub = hub_with("jshub", LeafnodeOptions::default(), |b| {
        b.jetstream(store.path()).jetstream_domain("hub")
    })
    .await;
    let spoke = spoke("jsspoke", &hub.leaf_url().unwrap()).await;
    wait_leafs(&hub, 1).await;
    let s = client(&spoke).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let info = loop {
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            s.request("$JS.hub.API.INFO", "".into()),
        )
        .await;
        if let Ok(Ok(m)) = r {
            break serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no answer from the hub's domain"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        info["type"], "io.nats.jetstream.api.v1.account_info_response",
        "{info}"
    );
    assert!(info.get("error").is_none(), "{info}");
    // The plain API subject is the spoke's own (it has no JetStream): never the hub's.
    match s.request("$JS.API.INFO", "".into()).await {
        Err(e) => assert_eq!(e.kind(), async_nats::RequestErrorKind::NoResponders),
        Ok(m) => {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            assert!(v.get("error").is_some(), "the hub answered: {v}");
        }
    }
}

/// Reads lines until one that is not `LS+`/`LS-` (the interest dump may come first).
async fn next_non_interest(raw: &mut RawClient) -> String {
    loop {
        let line = raw.read_line().await;
        if !line.starts_with("LS+ ") && !line.starts_with("LS- ") {
            return line;
        }
    }
}

#[tokio::test]
async fn deny_imports_and_exports_hold_on_the_spoke() {
    let hub = hub_with("dhub", LeafnodeOptions::default(), |b| b).await;
    let spoke = spoke_with(
        "dspoke",
        LeafRemote {
            deny_imports: vec!["di.>".into()],
            deny_exports: vec!["de.>".into()],
            ..remote(&hub.leaf_url().unwrap())
        },
        |b| b,
    )
    .await;
    wait_leafs(&hub, 1).await;
    let (s, h) = (client(&spoke).await, client(&hub).await);
    // Exports: the spoke's `de.a` never reaches the hub; `ok.end` after it does.
    let mut on_hub = h.subscribe("*.*").await.unwrap();
    h.flush().await.unwrap();
    until_received(&s, &mut on_hub, "ok.a").await;
    s.publish("de.a", "denied".into()).await.unwrap();
    s.publish("ok.end", "end".into()).await.unwrap();
    s.flush().await.unwrap();
    let mut seen = Vec::new();
    loop {
        let m = tokio::time::timeout(WAIT, on_hub.next())
            .await
            .unwrap()
            .unwrap();
        if m.subject.as_str() == "ok.end" {
            break;
        }
        seen.push(m.subject.to_string());
    }
    assert!(!seen.iter().any(|s| s == "de.a"), "{seen:?}");
    // Imports: the hub's `di.b` is dropped by the spoke; `ok.end` after it arrives.
    let mut on_spoke = s.subscribe("*.*").await.unwrap();
    s.flush().await.unwrap();
    until_received(&h, &mut on_spoke, "ok.b").await;
    h.publish("di.b", "denied".into()).await.unwrap();
    h.publish("ok.end", "end".into()).await.unwrap();
    h.flush().await.unwrap();
    let mut seen = Vec::new();
    loop {
        let m = tokio::time::timeout(WAIT, on_spoke.next())
            .await
            .unwrap()
            .unwrap();
        if m.subject.as_str() == "ok.end" {
            break;
        }
        seen.push(m.subject.to_string());
    }
    assert!(!seen.iter().any(|s| s == "di.b"), "{seen:?}");
}

#[tokio::test]
async fn the_hub_enforces_min_version_and_replaces_duplicates() {
    let hub = hub_with(
        "vhub",
        LeafnodeOptions {
            min_version: Some("2.10.0".into()),
            ..LeafnodeOptions::default()
        },
        |b| b,
    )
    .await;
    // Too old: the connect_info INFO, then nats-server's refusal.
    let mut raw = raw_leaf(&hub).await;
    raw.send(b"CONNECT {\"version\":\"2.9.0\",\"name\":\"old\"}\r\n")
        .await;
    assert!(raw.read_line().await.starts_with("INFO "));
    assert_eq!(
        next_non_interest(&mut raw).await,
        "-ERR 'connection rejected since minimum version required is \"2.10.0\"'"
    );
    // The same server connecting twice: the first connection is told and closed.
    let hello = b"CONNECT {\"version\":\"2.15.1\",\"name\":\"dup\",\"cluster\":\"dupc\",\"remote_account\":\"$G\"}\r\n";
    let mut first = raw_leaf(&hub).await;
    first.send(hello).await;
    assert!(first.read_line().await.starts_with("INFO "));
    wait_leafs(&hub, 1).await;
    let mut second = raw_leaf(&hub).await;
    second.send(hello).await;
    assert!(second.read_line().await.starts_with("INFO "));
    assert_eq!(
        next_non_interest(&mut first).await,
        "-ERR 'Duplicate Remote LeafNode Connection'"
    );
    first.expect_closed().await;
    wait_leafs(&hub, 1).await;
}
