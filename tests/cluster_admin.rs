//! The cluster as operators and clients see it: `/routez`, `/varz`'s cluster section and
//! `/metrics` gauges; clients' INFO `connect_urls` (and async INFO when a node joins or
//! enters lame-duck mode); route authorization; and nats-server's refusals on the route
//! port, byte for byte.

use std::time::Duration;

use petrel_testkit::{
    http_get, spawn_cluster_with, wait_for_routes, ClusterOptions, RawClient, RouteUrl, TestServer,
};

async fn get_json(node: &TestServer, path: &str) -> serde_json::Value {
    let addr = node.monitor_addr().expect("monitoring on");
    let r = http_get(addr, path).await.expect("GET");
    serde_json::from_str(&r.body).expect("JSON")
}

fn cluster_opts(routes: Vec<RouteUrl>) -> ClusterOptions {
    ClusterOptions {
        name: Some("petrel-test".into()),
        host: std::net::Ipv4Addr::LOCALHOST.into(),
        port: 0,
        routes,
        ..ClusterOptions::default()
    }
}

fn seed_of(node: &TestServer) -> RouteUrl {
    RouteUrl::parse(&node.handle().cluster_addr().unwrap().to_string()).unwrap()
}

#[tokio::test]
async fn routez_varz_and_metrics_show_the_cluster() {
    let nodes = spawn_cluster_with(2, |b, _, _| b.http_port(0)).await;
    let c = async_nats::connect(nodes[1].client_url()).await.unwrap();
    let _sub = c.subscribe("seen.on.node0").await.unwrap();
    c.flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let routez = loop {
        let r = get_json(&nodes[0], "/routez?subs=1").await;
        let subs = r["routes"][0]["subscriptions_list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if subs.iter().any(|s| s == "$G seen.on.node0") {
            break r;
        }
        assert!(tokio::time::Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(routez["num_routes"], 1);
    let route = &routez["routes"][0];
    assert_eq!(route["remote_name"], "node-1");
    assert_eq!(route["remote_id"], nodes[1].handle().server_id());
    assert_eq!(route["did_solicit"], false, "node 1 dialled node 0");
    assert_eq!(route["compression"], "not supported");
    let varz = get_json(&nodes[0], "/varz").await;
    assert_eq!(varz["cluster"]["name"], "petrel-test");
    assert_eq!(
        varz["cluster"]["cluster_port"],
        nodes[0].handle().cluster_addr().unwrap().port()
    );
    assert_eq!(
        (varz["routes"].as_u64(), varz["remotes"].as_u64()),
        (Some(1), Some(1))
    );
    let urls = varz["connect_urls"].as_array().unwrap();
    assert!(
        urls.iter()
            .any(|u| u == &nodes[1].handle().addr().to_string()),
        "{urls:?}"
    );
    let varz1 = get_json(&nodes[1], "/varz").await;
    assert_eq!(
        varz1["cluster"]["urls"][0],
        format!("nats-route://{}", nodes[0].handle().cluster_addr().unwrap())
    );
    let addr = nodes[0].monitor_addr().unwrap();
    let metrics = http_get(addr, "/metrics").await.unwrap().body;
    assert!(metrics.contains("\npetrel_routes 1\n"), "{metrics}");
    assert!(metrics.contains("\npetrel_route_remotes 1\n"), "{metrics}");
}

/// Reads INFO lines from `raw` until one has `n` connect URLs.
async fn info_with_urls(raw: &mut RawClient, n: usize) -> serde_json::Value {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), raw.read_line())
            .await
            .expect("an async INFO");
        if let Some(json) = line.strip_prefix("INFO ") {
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            if v["connect_urls"].as_array().map_or(0, Vec::len) == n {
                return v;
            }
        }
    }
}

#[tokio::test]
async fn clients_are_told_every_node_and_of_lame_duck() {
    let nodes = spawn_cluster_with(2, |b, _, _| b).await;
    let mut raw = RawClient::connect_with(
        nodes[0].handle().addr(),
        r#"{"verbose":false,"protocol":1}"#,
    )
    .await;
    let info = raw.info();
    assert_eq!(info["cluster"], "petrel-test");
    let urls: Vec<String> = info["connect_urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| n.handle().addr().to_string())
        .collect();
    assert_eq!(urls, addrs, "own URL first, then the peer's");
    // A third node joins: an async INFO lists it.
    let third = petrel_testkit::spawn_with(|b| {
        b.server_name("node-2")
            .cluster(cluster_opts(vec![seed_of(&nodes[0])]))
    })
    .await;
    let info = info_with_urls(&mut raw, 3).await;
    assert!(info["connect_urls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u == &third.handle().addr().to_string()));
    // It enters lame-duck mode: clients stop being sent its URL.
    let third_url = third.handle().addr().to_string();
    let ldm = tokio::spawn(third.lame_duck());
    let info = info_with_urls(&mut raw, 2).await;
    assert!(!info["connect_urls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u.as_str() == Some(third_url.as_str())));
    ldm.await.unwrap();
}

#[tokio::test]
async fn route_authorization_is_enforced() {
    let secured = |routes: Vec<RouteUrl>| ClusterOptions {
        user: Some("ruser".into()),
        password: Some("T0pS3cr3t".into()),
        ..cluster_opts(routes)
    };
    let a = petrel_testkit::spawn_with(|b| b.server_name("a").cluster(secured(vec![]))).await;
    let mut seed = seed_of(&a);
    seed.user = Some("ruser".into());
    seed.pass = Some("T0pS3cr3t".into());
    let b = petrel_testkit::spawn_with(|b| b.server_name("b").cluster(secured(vec![seed]))).await;
    wait_for_routes(&[a.handle(), b.handle()], 1).await;
    // Wrong or missing credentials: nats-server's refusal.
    let route = a.handle().cluster_addr().unwrap();
    for creds in [r#""user":"ruser","pass":"wrong","#, ""] {
        let mut raw = RawClient::connect(route).await;
        assert_eq!(raw.info()["auth_required"], true);
        let connect = format!(
            r#"CONNECT {{"echo":true,"verbose":false,"pedantic":false,{creds}"tls_required":false,"headers":true,"name":"NX","cluster":"petrel-test"}}"#
        );
        raw.send(format!("{connect}\r\n").as_bytes()).await;
        raw.expect(b"-ERR 'Authorization Violation'\r\n").await;
        raw.expect_closed().await;
    }
}

#[tokio::test]
async fn the_route_port_refuses_what_nats_server_refuses() {
    let node = petrel_testkit::spawn_with(|b| b.cluster(cluster_opts(vec![]))).await;
    let route = node.handle().cluster_addr().unwrap();
    let connect = |cluster: &str, extra: &str| {
        format!(
            "CONNECT {{\"echo\":true,\"verbose\":false,\"pedantic\":false,\"tls_required\":false,\"headers\":true,\"name\":\"NX\",\"cluster\":\"{cluster}\"{extra}}}\r\n"
        )
    };
    let cases: [(String, &[u8]); 4] = [
        ("PING\r\n".into(), b"-ERR 'Authorization Violation'\r\n"),
        (
            connect("other", ""),
            b"-ERR 'Rejecting connection, cluster name \"other\" does not match \"petrel-test\"'\r\n",
        ),
        (
            connect("petrel-test", ",\"lang\":\"go\""),
            b"-ERR 'attempted to connect to route port'\r\n",
        ),
        (
            connect("petrel-test", ",\"gateway\":\"east\""),
            b"-ERR 'Rejecting connection from gateway \"east\" on the Route port'\r\n",
        ),
    ];
    for (send, want) in cases {
        let mut raw = RawClient::connect(route).await;
        let info = raw.info();
        assert_eq!(info["cluster"], "petrel-test");
        assert_eq!(info["proto"], 2);
        assert!(info.get("route_pool_size").is_none() && info.get("compression").is_none());
        raw.send(send.as_bytes()).await;
        raw.expect(want).await;
        raw.expect_closed().await;
    }
    // A registered peer that sends an unknown op is closed with nats-server's text, one
    // with unparsable arguments silently.
    let mut raw = RawClient::connect(route).await;
    raw.send(connect("petrel-test", "").as_bytes()).await;
    let info = r#"INFO {"server_id":"NPEER","server_name":"peer","version":"2.15.1","proto":2,"host":"127.0.0.1","port":1,"headers":true,"max_payload":1048576,"cluster":"petrel-test"}"#;
    raw.send(format!("{info}\r\nPING\r\n").as_bytes()).await;
    // Its interest (RS+ lines) comes first, then the PONG.
    while raw.read_line().await != "PONG" {}
    raw.send(b"SUB foo 1\r\n").await;
    loop {
        let line = raw.read_line().await;
        if line.starts_with("-ERR") {
            assert_eq!(line, "-ERR 'Unknown Protocol Operation'");
            break;
        }
    }
    raw.expect_closed().await;
    let mut raw = RawClient::connect(route).await;
    raw.send(connect("petrel-test", "").as_bytes()).await;
    let info = info
        .replace("NPEER", "NPEER2")
        .replace("\"peer\"", "\"peer2\"");
    raw.send(format!("{info}\r\nPING\r\n").as_bytes()).await;
    while raw.read_line().await != "PONG" {}
    raw.send(b"RMSG $G foo x\r\n").await;
    let rest = raw.read_until_closed().await;
    assert!(!String::from_utf8_lossy(&rest).contains("-ERR"), "{rest:?}");
}

fn tls_cluster(certs: &petrel_testkit::TestCerts, routes: Vec<RouteUrl>) -> ClusterOptions {
    ClusterOptions {
        tls: Some(petrel_testkit::TlsOptions {
            ca_file: Some(certs.ca.clone()),
            verify: true,
            ..petrel_testkit::TlsOptions::new(&certs.node_cert, &certs.node_key)
        }),
        ..cluster_opts(routes)
    }
}

/// `localhost:<route port>` of `node` (the name the test certificate carries).
fn tls_seed(node: &TestServer) -> RouteUrl {
    RouteUrl::parse(&format!(
        "localhost:{}",
        node.handle().cluster_addr().unwrap().port()
    ))
    .unwrap()
}

#[tokio::test]
async fn routes_run_over_tls_and_gossip_keeps_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let certs = petrel_testkit::TestCerts::generate(dir.path()).unwrap();
    let a = petrel_testkit::spawn_with(|b| b.server_name("a").cluster(tls_cluster(&certs, vec![])))
        .await;
    let b = petrel_testkit::spawn_with(|b| {
        b.server_name("b")
            .cluster(tls_cluster(&certs, vec![tls_seed(&a)]))
    })
    .await;
    // c learns of b through a's gossip (an IP address) and dials it as "localhost".
    let c = petrel_testkit::spawn_with(|b| {
        b.server_name("c")
            .cluster(tls_cluster(&certs, vec![tls_seed(&a)]))
    })
    .await;
    wait_for_routes(&[a.handle(), b.handle(), c.handle()], 2).await;
    let (ca, cc) = (
        async_nats::connect(a.client_url()).await.unwrap(),
        async_nats::connect(c.client_url()).await.unwrap(),
    );
    let mut sub = cc.subscribe("over.tls").await.unwrap();
    cc.flush().await.unwrap();
    crate::cluster::until_received(&ca, &mut sub, "over.tls").await;
}

#[tokio::test]
async fn tls_routes_interoperate_with_nats_server() {
    let Some(bin) = std::env::var_os("PETREL_NATS_SERVER_215").map(std::path::PathBuf::from) else {
        assert!(std::env::var_os("PETREL_REQUIRE_NATS_SERVER").is_none());
        eprintln!("skipped: set PETREL_NATS_SERVER_215 to run the TLS route interop test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let certs = petrel_testkit::TestCerts::generate(dir.path()).unwrap();
    let p = petrel_testkit::spawn_with(|b| b.server_name("p").cluster(tls_cluster(&certs, vec![])))
        .await;
    let tls = format!(
        "  tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true }}",
        certs.node_cert.display(),
        certs.node_key.display(),
        certs.ca.display()
    );
    let seed = format!("localhost:{}", p.handle().cluster_addr().unwrap().port());
    let n =
        petrel_testkit::spawn_nats_server_with(&bin, "n", Some("petrel-test"), &[seed], &tls, "")
            .expect("start nats-server");
    wait_for_routes(&[p.handle()], 1).await;
    let (pc, nc) = (
        async_nats::connect(p.client_url()).await.unwrap(),
        async_nats::connect(n.client_url()).await.unwrap(),
    );
    let mut on_n = nc.subscribe("tls.to.nats").await.unwrap();
    nc.flush().await.unwrap();
    crate::cluster::until_received(&pc, &mut on_n, "tls.to.nats").await;
    let mut on_p = pc.subscribe("tls.to.petrel").await.unwrap();
    pc.flush().await.unwrap();
    crate::cluster::until_received(&nc, &mut on_p, "tls.to.petrel").await;
}

#[tokio::test]
async fn advertise_and_no_advertise() {
    // `advertise` is what the route INFO gives peers; `no_advertise` keeps the other nodes'
    // URLs (and this one's) out of clients' INFO and out of the route INFO.
    let a = petrel_testkit::spawn_with(|b| {
        b.server_name("a").cluster(ClusterOptions {
            advertise: Some("nats-a.example:7777".into()),
            no_advertise: true,
            ..cluster_opts(vec![])
        })
    })
    .await;
    let b =
        petrel_testkit::spawn_with(|b| b.server_name("b").cluster(cluster_opts(vec![seed_of(&a)])))
            .await;
    wait_for_routes(&[a.handle(), b.handle()], 1).await;
    let raw = RawClient::connect(a.handle().cluster_addr().unwrap()).await;
    let info = raw.info();
    assert_eq!(
        (info["host"].as_str(), info["port"].as_u64()),
        (Some("nats-a.example"), Some(7777))
    );
    assert_eq!(info["ip"], "nats-route://nats-a.example:7777/");
    assert!(info.get("connect_urls").is_none(), "{info}");
    let client = RawClient::connect(a.handle().addr()).await;
    assert!(client.info().get("connect_urls").is_none());
    // b advertises normally: its clients hear of both nodes... except a, which asked not to be.
    let client = RawClient::connect(b.handle().addr()).await;
    let urls = client.info()["connect_urls"].clone();
    assert_eq!(urls, serde_json::json!([b.handle().addr().to_string()]));
}
