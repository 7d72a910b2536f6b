//! The monitoring endpoints over real sockets: a server with JetStream and monitoring,
//! named async-nats connections, subscriptions, a stream and a durable consumer, then the
//! JSON of `/varz`, `/connz`, `/subsz`, `/jsz`, `/healthz`, `/accountz` and the Prometheus
//! text of `/metrics`, checked field by field against nats-server's names.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::support::publish_all;
use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, stream};
use futures::StreamExt;
use petrel_testkit::{
    http_get, spawn_jetstream_with_monitor, spawn_with, spawn_with_monitor, HttpResponse,
};
use serde_json::Value;

async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_get(addr, path).await.expect("GET from the monitor")
}

/// GET returning 200 JSON.
async fn json(addr: SocketAddr, path: &str) -> Value {
    let r = get(addr, path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    assert_eq!(r.content_type, "application/json", "{path}");
    r.json()
}

async fn named(url: &str, name: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .name(name)
        .connect(url)
        .await
        .expect("connect")
}

/// `name{labels}` → value, and the names declared by `# TYPE` lines.
fn parse_metrics(text: &str) -> (HashMap<String, f64>, HashMap<String, String>) {
    let mut samples = HashMap::new();
    let mut types = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            types.insert(name.to_string(), kind.to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (key, value) = line.rsplit_once(' ').expect("sample line");
            samples.insert(
                key.to_string(),
                value.parse::<f64>().expect("numeric value"),
            );
        }
    }
    (samples, types)
}

/// Two named clients, three subscriptions, three core messages, a stream with five
/// messages and a durable pull consumer with two deliveries not yet acked.
struct Scenario {
    server: petrel_testkit::TestServer,
    _alpha: async_nats::Client,
    _beta: async_nats::Client,
    _subs: Vec<async_nats::Subscriber>,
    _unacked: Vec<jetstream::Message>,
}

async fn scenario() -> Scenario {
    let server = spawn_jetstream_with_monitor().await;
    let alpha = named(&server.client_url(), "alpha").await;
    let beta = named(&server.client_url(), "beta").await;
    let mut plain = alpha.subscribe("foo").await.unwrap();
    let foo_any = alpha.subscribe("foo.*").await.unwrap();
    let bar = alpha.queue_subscribe("bar", "q".to_string()).await.unwrap();
    alpha.flush().await.unwrap();
    for _ in 0..3 {
        beta.publish("foo", "hello".into()).await.unwrap();
    }
    beta.flush().await.unwrap();
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(5), plain.next())
            .await
            .expect("core message")
            .expect("subscription open");
    }
    let js = jetstream::new(beta.clone());
    let orders = js
        .create_stream(stream::Config {
            name: "ORDERS".to_string(),
            subjects: vec!["orders.>".to_string()],
            ..Default::default()
        })
        .await
        .unwrap();
    publish_all(&js, "orders.new", (0..5).map(|i| format!("o{i}"))).await;
    let consumer = orders
        .create_consumer(pull::Config {
            durable_name: Some("worker".to_string()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = consumer.fetch().max_messages(2).messages().await.unwrap();
    let mut unacked = Vec::new();
    while let Some(m) = batch.next().await {
        unacked.push(m.unwrap());
    }
    assert_eq!(unacked.len(), 2);
    Scenario {
        server,
        _alpha: alpha,
        _beta: beta,
        _subs: vec![plain, foo_any, bar],
        _unacked: unacked,
    }
}

/// The connection named `name` in a `/connz` body.
fn conn<'a>(connz: &'a Value, name: &str) -> &'a Value {
    connz["connections"]
        .as_array()
        .expect("connections array")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no connection named {name}: {connz}"))
}

#[tokio::test]
async fn varz_reports_identity_options_and_counters() {
    let s = scenario().await;
    let m = s.server.monitor_addr().expect("monitoring on");
    let v = json(m, "/varz").await;
    assert_eq!(v["server_id"], s.server.handle().server_id());
    assert_eq!(v["version"], "2.10.0");
    assert_eq!(v["port"], s.server.addr().port());
    assert_eq!(v["http_port"], m.port());
    assert_eq!(v["max_payload"], 1_048_576);
    assert_eq!(v["ping_interval"], 120_000_000_000u64);
    assert_eq!(v["auth_timeout"], 2);
    assert_eq!(v["write_deadline"], 10_000_000_000u64);
    assert_eq!(v["connections"], 2);
    assert!(v["total_connections"].as_u64() >= Some(2));
    // 3 PUB foo + stream create + 5 publishes + consumer create + pull request.
    assert!(v["in_msgs"].as_u64() >= Some(11), "{v}");
    assert!(v["out_msgs"].as_u64() >= Some(3), "{v}");
    // alpha's 3 + the clients' inboxes + JetStream's internal subscriptions.
    assert!(v["subscriptions"].as_u64() >= Some(5), "{v}");
    assert_eq!(v["slow_consumers"], 0);
    assert_eq!(v["system_account"], "$SYS");
    assert_eq!(v["http_req_stats"]["/varz"], 1);
    assert!(v["uptime"].as_str().is_some_and(|u| u.ends_with('s')));
    assert!(v["start"].as_str().is_some_and(|t| t.ends_with('Z')));
    let js = &v["jetstream"];
    assert!(js["config"]["store_dir"]
        .as_str()
        .is_some_and(|d| d.ends_with("jetstream")));
    assert!(js["config"]["max_memory"].as_u64() > Some(0));
    assert_eq!(js["stats"]["accounts"], 1);
    assert!(js["stats"]["storage"].as_u64() > Some(0));
    assert!(js["stats"]["api"]["total"].as_u64() >= Some(2), "{js}");
    for key in ["cluster", "gateway", "leaf", "mqtt", "websocket"] {
        assert_eq!(v[key], serde_json::json!({}), "{key}");
    }
    // The second request is counted too.
    let v = json(m, "/varz").await;
    assert_eq!(v["http_req_stats"]["/varz"], 2);
}

#[tokio::test]
async fn connz_lists_sorts_and_pages_connections() {
    let s = scenario().await;
    let m = s.server.monitor_addr().expect("monitoring on");
    let c = json(m, "/connz").await;
    assert_eq!(c["num_connections"], 2);
    assert_eq!(c["total"], 2);
    assert_eq!(c["offset"], 0);
    assert_eq!(c["limit"], 1024);
    let alpha = conn(&c, "alpha");
    assert_eq!(alpha["kind"], "Client");
    assert_eq!(alpha["type"], "nats");
    assert_eq!(alpha["ip"], "127.0.0.1");
    assert_eq!(alpha["subscriptions"], 3);
    assert_eq!(alpha["out_msgs"], 3);
    assert_eq!(alpha["out_bytes"], 15);
    assert_eq!(alpha["lang"], "rust");
    assert!(alpha["version"].as_str().is_some_and(|v| !v.is_empty()));
    assert_eq!(alpha["rtt"], "0s", "no keep-alive PING answered yet");
    assert_eq!(alpha["pending_bytes"], 0);
    assert!(alpha.get("subscriptions_list").is_none());
    assert!(alpha.get("authorized_user").is_none());
    let beta = conn(&c, "beta");
    assert!(beta["in_msgs"].as_u64() >= Some(11), "{beta}");
    assert!(beta["in_bytes"].as_u64() > Some(0), "{beta}");
    let alpha_cid = alpha["cid"].as_u64().expect("cid");
    let beta_cid = beta["cid"].as_u64().expect("cid");

    // Sorting: most messages from the client first; most subscriptions first; by cid.
    let c = json(m, "/connz?sort=msgs_from").await;
    assert_eq!(c["connections"][0]["name"], "beta");
    let c = json(m, "/connz?sort=subs").await;
    assert_eq!(c["connections"][0]["name"], "alpha");
    let c = json(m, "/connz?sort=cid").await;
    assert!(c["connections"][0]["cid"].as_u64() < c["connections"][1]["cid"].as_u64());
    for sort in [
        "start",
        "pending",
        "msgs_to",
        "bytes_to",
        "bytes_from",
        "last",
        "idle",
        "uptime",
    ] {
        let c = json(m, &format!("/connz?sort={sort}")).await;
        assert_eq!(c["num_connections"], 2, "{sort}");
    }

    // Paging.
    let c = json(m, "/connz?limit=1&offset=1").await;
    assert_eq!(
        (
            &c["num_connections"],
            &c["total"],
            &c["offset"],
            &c["limit"]
        ),
        (
            &Value::from(1),
            &Value::from(2),
            &Value::from(1),
            &Value::from(1)
        )
    );
    assert_eq!(c["connections"][0]["cid"], beta_cid.max(alpha_cid));
    let c = json(m, "/connz?offset=5").await;
    assert_eq!(c["num_connections"], 0);
    assert_eq!(c["connections"], serde_json::json!([]));

    // One connection by cid.
    let c = json(m, &format!("/connz?cid={alpha_cid}")).await;
    assert_eq!(c["num_connections"], 1);
    assert_eq!(c["connections"][0]["name"], "alpha");

    // Subscriptions as subjects, then in detail.
    let c = json(m, "/connz?subs=1").await;
    let mut list: Vec<String> = conn(&c, "alpha")["subscriptions_list"]
        .as_array()
        .expect("subscriptions_list")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    list.sort();
    assert_eq!(list, ["bar", "foo", "foo.*"]);
    let c = json(m, "/connz?subs=detail").await;
    let detail = conn(&c, "alpha")["subscriptions_list_detail"]
        .as_array()
        .expect("subscriptions_list_detail")
        .clone();
    let plain = detail.iter().find(|d| d["subject"] == "foo").expect("foo");
    assert_eq!(plain["msgs"], 3);
    assert_eq!(plain["cid"], alpha_cid);
    let bar = detail.iter().find(|d| d["subject"] == "bar").expect("bar");
    assert_eq!(bar["qgroup"], "q");

    // Bad parameters: 400 with nats-server's texts.
    let r = get(m, "/connz?sort=bogus").await;
    assert_eq!(
        (r.status, r.body.trim()),
        (400, "invalid sorting option: bogus")
    );
    let r = get(m, "/connz?limit=x").await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.starts_with("Error decoding int for 'limit'"),
        "{}",
        r.body
    );
    let r = get(m, "/connz?subs=maybe").await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn subsz_counts_and_tests_subjects() {
    let s = scenario().await;
    let m = s.server.monitor_addr().expect("monitoring on");
    let varz = json(m, "/varz").await;
    let st = json(m, "/subsz").await;
    assert_eq!(st["num_subscriptions"], varz["subscriptions"]);
    assert!(st["num_inserts"].as_u64() >= st["num_subscriptions"].as_u64());
    assert!(st["num_matches"].as_u64() > Some(0), "{st}");
    assert!(st["max_fanout"].as_u64() >= Some(1), "{st}");
    assert!(st.get("subscriptions_list").is_none());
    assert!(
        st.get("server_id").is_none(),
        "bare statistics as nats-server"
    );
    let alias = json(m, "/subscriptionsz").await;
    assert_eq!(alias["num_subscriptions"], st["num_subscriptions"]);

    let conns = json(m, "/connz").await;
    let alpha_cid = conn(&conns, "alpha")["cid"].clone();
    let t = json(m, "/subsz?subs=1&test=foo").await;
    assert_eq!(t["total"], 1);
    assert_eq!(t["server_id"], s.server.handle().server_id());
    let only = &t["subscriptions_list"][0];
    assert_eq!(only["account"], "$G");
    assert_eq!(only["subject"], "foo");
    assert_eq!(only["msgs"], 3);
    assert_eq!(only["cid"], alpha_cid);
    // A stream subject matches JetStream's internal subscription (cid 0).
    let t = json(m, "/subsz?subs=1&test=orders.x").await;
    assert_eq!(t["subscriptions_list"][0]["subject"], "orders.>");
    assert_eq!(t["subscriptions_list"][0]["msgs"], 5);
    // Every subscription, paged.
    let all = json(m, "/subsz?subs=1").await;
    assert_eq!(all["total"], st["num_subscriptions"]);
    let page = json(m, "/subsz?subs=1&offset=1&limit=2").await;
    assert_eq!(
        (&page["total"], &page["limit"]),
        (&Value::from(2), &Value::from(2))
    );
    assert_eq!(page["subscriptions_list"][0], all["subscriptions_list"][1]);
    let r = get(m, "/subsz?subs=1&test=foo.*").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body.trim(),
        "invalid test subject, must be valid publish subject: foo.*"
    );
}

#[tokio::test]
async fn jsz_details_streams_and_consumers() {
    let s = scenario().await;
    let m = s.server.monitor_addr().expect("monitoring on");
    let j = json(m, "/jsz").await;
    assert_eq!(j["streams"], 1);
    assert_eq!(j["consumers"], 1);
    assert_eq!(j["messages"], 5);
    assert!(j["bytes"].as_u64() > Some(0));
    assert_eq!(j["accounts"], 1);
    assert!(j.get("account_details").is_none());
    assert!(j.get("disabled").is_none());

    let j = json(m, "/jsz?accounts=true").await;
    let acc = &j["account_details"][0];
    assert_eq!(acc["name"], "$G");
    assert!(acc.get("stream_detail").is_none());

    let j = json(m, "/jsz?streams=true&consumers=true").await;
    let st = &j["account_details"][0]["stream_detail"][0];
    assert_eq!(st["name"], "ORDERS");
    assert!(st.get("config").is_none());
    assert_eq!(st["state"]["messages"], 5);
    assert_eq!(st["state"]["first_seq"], 1);
    assert_eq!(st["state"]["last_seq"], 5);
    assert_eq!(st["state"]["consumer_count"], 1);
    let c = &st["consumer_detail"][0];
    assert_eq!(c["stream_name"], "ORDERS");
    assert_eq!(c["name"], "worker");
    assert!(c.get("config").is_none());
    assert_eq!(c["num_pending"], 3);
    assert_eq!(c["num_ack_pending"], 2);
    assert_eq!(c["num_redelivered"], 0);
    assert_eq!(c["num_waiting"], 0);
    assert_eq!(c["delivered"]["stream_seq"], 2);
    assert_eq!(c["delivered"]["consumer_seq"], 2);
    assert!(c["delivered"]["last_active"].is_string());
    assert_eq!(c["ack_floor"]["stream_seq"], 0);

    // consumers=true implies streams; config=true adds the configs.
    let j = json(m, "/jsz?consumers=true&config=true").await;
    let st = &j["account_details"][0]["stream_detail"][0];
    assert_eq!(st["config"]["name"], "ORDERS");
    assert_eq!(st["config"]["subjects"], serde_json::json!(["orders.>"]));
    let c = &st["consumer_detail"][0];
    assert_eq!(c["config"]["durable_name"], "worker");
    assert_eq!(c["config"]["ack_policy"], "explicit");

    let r = get(m, "/jsz?streams=bogus").await;
    assert_eq!(r.status, 400);
    assert!(r.body.starts_with("Error decoding boolean for 'streams'"));
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let s = scenario().await;
    let m = s.server.monitor_addr().expect("monitoring on");
    let r = get(m, "/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    let (samples, types) = parse_metrics(&r.body);
    let value = |key: &str| {
        *samples
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in\n{}", r.body))
    };
    assert_eq!(value("petrel_connections"), 2.0);
    assert!(value("petrel_connections_total") >= 2.0);
    assert!(value("petrel_subscriptions") >= 5.0);
    assert!(value("petrel_in_msgs_total") >= 11.0);
    assert!(value("petrel_out_msgs_total") >= 3.0);
    assert!(value("petrel_in_bytes_total") > 0.0);
    assert_eq!(value("petrel_slow_consumers_total"), 0.0);
    assert_eq!(value("petrel_jetstream_enabled"), 1.0);
    assert_eq!(value("petrel_jetstream_streams"), 1.0);
    assert_eq!(value("petrel_jetstream_messages"), 5.0);
    assert_eq!(
        value("petrel_stream_messages{account=\"$G\",stream=\"ORDERS\"}"),
        5.0
    );
    assert!(value("petrel_stream_bytes{account=\"$G\",stream=\"ORDERS\"}") > 0.0);
    assert_eq!(
        value("petrel_stream_last_seq{account=\"$G\",stream=\"ORDERS\"}"),
        5.0
    );
    let consumer = "{account=\"$G\",stream=\"ORDERS\",consumer=\"worker\"}";
    assert_eq!(
        value(&format!("petrel_consumer_num_pending{consumer}")),
        3.0
    );
    assert_eq!(
        value(&format!("petrel_consumer_num_ack_pending{consumer}")),
        2.0
    );
    assert_eq!(
        value(&format!("petrel_consumer_num_redelivered{consumer}")),
        0.0
    );
    let info = samples
        .keys()
        .find(|k| k.starts_with("petrel_info{"))
        .expect("petrel_info");
    assert!(info.contains(&format!("server_id=\"{}\"", s.server.handle().server_id())));
    // Every sample belongs to a family declared with # HELP and # TYPE.
    for key in samples.keys() {
        let name = key.split('{').next().unwrap_or(key);
        let kind = types
            .get(name)
            .unwrap_or_else(|| panic!("{name} has no # TYPE"));
        assert!(
            r.body.contains(&format!("# HELP {name} ")),
            "{name} has no # HELP"
        );
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name}: {kind}"
        );
    }
}

#[tokio::test]
async fn healthz_accountz_index_and_unknown_paths() {
    let s = scenario().await;
    let m = s.server.monitor_addr().expect("monitoring on");
    let r = get(m, "/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (200, "{\"status\":\"ok\"}"));
    let r = get(m, "/healthz?js-enabled-only=true").await;
    assert_eq!((r.status, r.body.as_str()), (200, "{\"status\":\"ok\"}"));
    let a = json(m, "/accountz").await;
    assert_eq!(a["server_id"], s.server.handle().server_id());
    assert_eq!(a["system_account"], "$SYS");
    assert_eq!(a["accounts"], serde_json::json!(["$G", "$SYS"]));
    assert!(a["now"].is_string());
    // The dashboard (tests/dashboard.rs runs it in a browser), linking the raw endpoints.
    let r = get(m, "/").await;
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/html"));
    assert!(r.body.contains("<title>Petrel dashboard</title>"));
    for link in [
        "varz", "connz", "subsz", "jsz", "healthz", "accountz", "metrics",
    ] {
        assert!(r.body.contains(&format!("href=\"./{link}\"")), "{link}");
    }
    let r = get(m, "/nope").await;
    assert_eq!((r.status, r.body.trim()), (404, "404 page not found"));
}

#[tokio::test]
async fn without_jetstream() {
    let s = spawn_with_monitor().await;
    let m = s.monitor_addr().expect("monitoring on");
    // nats-server 2.9.10 checks JetStream only when it is configured: still healthy.
    let r = get(m, "/healthz?js-enabled-only=true").await;
    assert_eq!((r.status, r.body.as_str()), (200, "{\"status\":\"ok\"}"));
    let r = get(m, "/healthz?js-enabled-only=bogus").await;
    assert_eq!(r.status, 400);
    let j = json(m, "/jsz").await;
    assert_eq!(j["disabled"], true);
    assert_eq!(j["streams"], 0);
    assert_eq!(
        j["config"],
        serde_json::json!({"max_memory": 0, "max_storage": 0})
    );
    let v = json(m, "/varz").await;
    assert_eq!(v["jetstream"], serde_json::json!({}));
    let (samples, _) = parse_metrics(&get(m, "/metrics").await.body);
    assert_eq!(samples.get("petrel_jetstream_enabled"), Some(&0.0));
    assert!(!samples.keys().any(|k| k.starts_with("petrel_stream_")));
}

#[tokio::test]
async fn connz_auth_shows_the_user() {
    let s = spawn_with(|b| b.user_pass("etl", "s3cret").http_port(0)).await;
    let m = s.monitor_addr().expect("monitoring on");
    let _nc = async_nats::ConnectOptions::with_user_and_password("etl".into(), "s3cret".into())
        .name("loader")
        .connect(s.client_url())
        .await
        .unwrap();
    let c = json(m, "/connz?auth=true").await;
    let loader = conn(&c, "loader");
    assert_eq!(loader["authorized_user"], "etl");
    assert!(
        loader.get("account").is_none(),
        "nats-server 2.9.10 shows no account"
    );
    let c = json(m, "/connz").await;
    assert!(conn(&c, "loader").get("authorized_user").is_none());
    let v = json(m, "/varz").await;
    assert_eq!(v["auth_required"], true);
}

#[tokio::test]
async fn monitor_stops_with_the_server() {
    let s = spawn_with_monitor().await;
    let m = s.monitor_addr().expect("monitoring on");
    assert_eq!(get(m, "/healthz").await.status, 200);
    s.shutdown().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while http_get(m, "/healthz").await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "monitor still answering after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn connz_shows_tls_version_and_cipher() {
    let dir = tempfile::tempdir().unwrap();
    let certs = petrel_testkit::TestCerts::generate(dir.path()).unwrap();
    let tls = petrel_server::TlsOptions::new(&certs.server_cert, &certs.server_key);
    let s = spawn_with(|b| b.tls(tls).http_port(0)).await;
    let m = s.monitor_addr().expect("monitoring on");
    let _nc = async_nats::ConnectOptions::new()
        .name("secure")
        .require_tls(true)
        .add_root_certificates(certs.ca.clone())
        .connect(s.client_url())
        .await
        .unwrap();
    let c = json(m, "/connz").await;
    let secure = conn(&c, "secure");
    assert_eq!(secure["tls_version"], "1.3");
    assert!(
        secure["tls_cipher_suite"]
            .as_str()
            .is_some_and(|c| c.starts_with("TLS_") && !c.starts_with("TLS13_")),
        "{secure}"
    );
    let v = json(m, "/varz").await;
    assert_eq!(v["tls_required"], true);
    assert!(v.get("tls_verify").is_none());
}

#[tokio::test]
async fn connz_rtt_from_keep_alive_pings() {
    let s = spawn_with(|b| b.ping(Duration::from_millis(50), 10).http_port(0)).await;
    let m = s.monitor_addr().expect("monitoring on");
    let _nc = named(&s.client_url(), "pinged").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let c = json(m, "/connz?sort=rtt").await;
        let rtt = conn(&c, "pinged")["rtt"].as_str().unwrap_or("").to_string();
        if rtt != "0s" {
            assert!(rtt.ends_with('s'), "{rtt}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "rtt never measured");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
