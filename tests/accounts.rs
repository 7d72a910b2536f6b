//! Accounts through async-nats, configured as in config/accounts.conf: isolation (the
//! same subject in two accounts never crosses), no_auth_user, one JetStream per account
//! (same stream names, separate stores), the accounts' JetStream limits and the account
//! without JetStream, with nats-server 2.15.1's errors.

use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use petrel_testkit::{http_get, TestServer};

use crate::support::{api_code, config, login, spawn_config};

/// config/accounts.conf (its text through `edit`), monitoring on.
async fn server(edit: impl FnOnce(String) -> String) -> TestServer {
    spawn_config("accounts.conf", edit, None, true).await
}

#[tokio::test]
async fn the_same_subject_never_crosses_accounts() {
    let s = server(|t| t).await;
    let workflow = login(&s, "workflow").await;
    let ops = login(&s, "ops").await;
    let anonymous = async_nats::connect(s.client_url()).await.unwrap();
    let mut in_ops = ops.subscribe("events.>").await.unwrap();
    let mut in_workflow = anonymous.subscribe("events.>").await.unwrap();
    ops.flush().await.unwrap();
    anonymous.flush().await.unwrap();
    workflow
        .publish("events.a", "from workflow".into())
        .await
        .unwrap();
    ops.publish("events.b", "from ops".into()).await.unwrap();
    workflow.flush().await.unwrap();
    ops.flush().await.unwrap();
    // The anonymous client is `workflow` (no_auth_user): it hears only its account.
    let m = in_workflow.next().await.unwrap();
    assert_eq!(
        (m.subject.as_str(), &m.payload[..]),
        ("events.a", &b"from workflow"[..])
    );
    let m = in_ops.next().await.unwrap();
    assert_eq!(
        (m.subject.as_str(), &m.payload[..]),
        ("events.b", &b"from ops"[..])
    );
    // A request across accounts finds no responder.
    let _responder = ops.subscribe("svc.time").await.unwrap();
    ops.flush().await.unwrap();
    let e = workflow.request("svc.time", "".into()).await.unwrap_err();
    assert_eq!(e.kind(), async_nats::client::RequestErrorKind::NoResponders);
    // Nothing else arrived meanwhile: the next message on each is a fresh marker.
    workflow.publish("events.z", "marker".into()).await.unwrap();
    ops.publish("events.z", "marker".into()).await.unwrap();
    assert_eq!(&in_workflow.next().await.unwrap().payload[..], b"marker");
    assert_eq!(&in_ops.next().await.unwrap().payload[..], b"marker");
}

#[tokio::test]
async fn each_account_has_its_own_jetstream() {
    let s = server(|t| t).await;
    let workflow = jetstream::new(login(&s, "workflow").await);
    let security = jetstream::new(login(&s, "dashboard").await);
    for js in [&workflow, &security] {
        js.create_stream(config("EVENTS", &["events.>"]))
            .await
            .unwrap();
    }
    workflow
        .publish("events.1", "w".into())
        .await
        .unwrap()
        .await
        .unwrap();
    for _ in 0..3 {
        security
            .publish("events.1", "s".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let count = |js: jetstream::Context| async move {
        let mut st = js.get_stream("EVENTS").await.unwrap();
        st.info().await.unwrap().state.messages
    };
    assert_eq!(count(workflow.clone()).await, 1);
    assert_eq!(count(security.clone()).await, 3);
    // Separate stores: each account's directory holds its own stream.
    for account in ["WORKFLOW", "SECURITY"] {
        let dir = s
            .store_dir()
            .join("jetstream")
            .join(account)
            .join("streams/EVENTS");
        assert!(dir.is_dir(), "{}", dir.display());
    }
    // The account without JetStream gets nats-server's 10039 for any API.
    let ops = jetstream::new(login(&s, "ops").await);
    let e = ops.create_stream(config("X", &["x"])).await.unwrap_err();
    assert_eq!(api_code(&e), 10039);
    let ops = login(&s, "ops").await;
    let reply = ops.request("$JS.API.INFO", "".into()).await.unwrap();
    assert_eq!(
        &reply.payload[..],
        &br#"{"type":"io.nats.jetstream.api.v1.account_info_response","error":{"code":503,"err_code":10039,"description":"JetStream not enabled for account"}}"#[..]
    );
}

#[tokio::test]
async fn account_limits_refuse_as_nats_server_does() {
    let s = server(|t| {
        t.replace("max_mem: 64M", "max_mem: 1M")
            .replace("max_streams: 10", "max_streams: 2")
            .replace("max_consumers: 20", "max_consumers: 1")
    })
    .await;
    let js = jetstream::new(login(&s, "dashboard").await);
    let account = js.query_account().await.unwrap();
    assert_eq!(
        (
            account.limits.max_memory,
            account.limits.max_streams,
            account.limits.max_consumers
        ),
        (Some(1_000_000), Some(2), Some(1))
    );
    let memory = |name: &str, max_bytes: i64| stream::Config {
        storage: stream::StorageType::Memory,
        max_bytes,
        ..config(name, &[&format!("{}.>", name.to_lowercase())])
    };
    let e = js
        .create_stream(memory("BIG", 2_000_000))
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), 10028);
    let mem = js.create_stream(memory("MEM", -1)).await.unwrap();
    js.create_stream(config("ALERTS", &["alerts.>"]))
        .await
        .unwrap();
    let e = js
        .create_stream(config("THIRD", &["third"]))
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), 10027);
    // max_consumers counts per stream, as nats-server.
    let consumer = |name: &str| jetstream::consumer::pull::Config {
        durable_name: Some(name.into()),
        ..Default::default()
    };
    mem.create_consumer(consumer("c1")).await.unwrap();
    let e = mem.create_consumer(consumer("c2")).await.unwrap_err();
    assert!(e.to_string().contains("10026"), "{e}");
    let alerts = js.get_stream("ALERTS").await.unwrap();
    alerts.create_consumer(consumer("c1")).await.unwrap();
    // Publishing past max_mem: refused with 10002 once the account's memory is used up.
    let payload = bytes::Bytes::from(vec![b'x'; 100_000]);
    let mut refused = None;
    for i in 0..20 {
        let ack = js.publish("mem.a", payload.clone()).await.unwrap().await;
        if let Err(e) = ack {
            refused = Some((i, e.to_string()));
            break;
        }
    }
    let (i, e) = refused.expect("the account limit refuses a publish");
    assert_eq!(i, 9, "nine 100 kB messages fit in 1 MB");
    assert!(e.contains("10002"), "{e}");
    let mut mem = js.get_stream("MEM").await.unwrap();
    assert_eq!(mem.info().await.unwrap().state.messages, 9);
    // Regression: a deleted stream gave its bytes back to the account only at restart.
    js.delete_stream("MEM").await.unwrap();
    js.create_stream(memory("MEM", -1)).await.unwrap();
    js.publish("mem.a", payload.clone())
        .await
        .unwrap()
        .await
        .expect("the deleted stream's bytes are free again");
}

async fn get_json(s: &TestServer, path: &str) -> serde_json::Value {
    let addr = s.monitor_addr().expect("monitoring on");
    let r = http_get(addr, path).await.unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

#[tokio::test]
async fn monitoring_shows_the_accounts() {
    let s = server(|t| t).await;
    let _workflow = login(&s, "workflow").await;
    let _anonymous = async_nats::connect(s.client_url()).await.unwrap();
    let ops = login(&s, "ops").await;
    let _sub = ops.subscribe("x").await.unwrap();
    ops.flush().await.unwrap();
    let security = jetstream::new(login(&s, "dashboard").await);
    security
        .create_stream(config("ALERTS", &["alerts.>"]))
        .await
        .unwrap();

    let accountz = get_json(&s, "/accountz").await;
    let mut names: Vec<String> = accountz["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["$G", "$SYS", "OPS", "SECURITY", "WORKFLOW"]);
    assert_eq!(accountz["system_account"], "$SYS");
    let detail = get_json(&s, "/accountz?acc=WORKFLOW").await;
    let d = &detail["account_detail"];
    assert_eq!(
        (d["account_name"].as_str(), d["client_connections"].as_u64()),
        (Some("WORKFLOW"), Some(2))
    );
    assert_eq!(d["jetstream_enabled"], true);
    let r = http_get(s.monitor_addr().unwrap(), "/accountz?acc=NOPE")
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body.trim()),
        (400, "Account NOPE does not exist")
    );

    // /connz: the account with auth=1 (left out for $G), acc= filters.
    let connz = get_json(&s, "/connz?auth=1&acc=OPS").await;
    assert_eq!(connz["num_connections"], 1);
    let c = &connz["connections"][0];
    assert_eq!(
        (
            c["authorized_user"].as_str(),
            c["account"].as_str(),
            c["name_tag"].as_str()
        ),
        (Some("ops"), Some("OPS"), Some("OPS"))
    );
    let plain = get_json(&s, "/connz?acc=OPS").await;
    assert!(plain["connections"][0].get("account").is_none());

    // /jsz: the JetStream accounts, their limits as reservations, their streams.
    let jsz = get_json(&s, "/jsz?accounts=1").await;
    assert_eq!(jsz["accounts"], 2);
    let details = jsz["account_details"].as_array().unwrap();
    let sec = details.iter().find(|d| d["name"] == "SECURITY").unwrap();
    assert_eq!(sec["reserved_memory"], 64_000_000u64);
    let wf = details.iter().find(|d| d["name"] == "WORKFLOW").unwrap();
    assert_eq!(wf["reserved_memory"], u64::MAX);
    // /accstatz: connections and traffic per account; unused accounts only on request.
    let mut in_ops = ops.subscribe("y").await.unwrap();
    for _ in 0..3 {
        ops.publish("y", "12345".into()).await.unwrap();
    }
    for _ in 0..3 {
        in_ops.next().await.unwrap();
    }
    let statz = get_json(&s, "/accstatz").await;
    let list = statz["account_statz"].as_array().unwrap();
    let ops_stat = list.iter().find(|a| a["acc"] == "OPS").unwrap();
    assert_eq!(
        (ops_stat["conns"].as_u64(), ops_stat["total_conns"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(ops_stat["received"]["msgs"], 3);
    assert_eq!(ops_stat["sent"]["msgs"], 3);
    assert_eq!(ops_stat["sent"]["bytes"], 15);
    assert!(
        list.iter().all(|a| a["acc"] != "$SYS"),
        "unused accounts are left out"
    );
    let all = get_json(&s, "/accstatz?unused=1").await;
    assert!(all["account_statz"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["acc"] == "$SYS"));
    // /metrics: per-account numbers, streams labelled with their account.
    let addr = s.monitor_addr().unwrap();
    let metrics = http_get(addr, "/metrics").await.unwrap().body;
    for line in [
        "petrel_account_in_msgs_total{account=\"OPS\"} 3",
        "petrel_account_out_bytes_total{account=\"OPS\"} 15",
        "petrel_account_connections{account=\"WORKFLOW\"} 2",
        "petrel_stream_messages{account=\"SECURITY\",stream=\"ALERTS\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    let one = get_json(&s, "/jsz?acc=SECURITY&streams=1").await;
    let only = one["account_details"].as_array().unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["stream_detail"][0]["name"], "ALERTS");
}

/// Regression: mirrored messages were stored without the account's byte limit.
#[tokio::test]
async fn a_mirror_stays_within_the_accounts_bytes() {
    let s = server(|t| t.replace("max_mem: 64M", "max_mem: 250K")).await;
    let client = login(&s, "dashboard").await;
    let js = jetstream::new(client.clone());
    let memory = |c: stream::Config| stream::Config {
        storage: stream::StorageType::Memory,
        ..c
    };
    js.create_stream(memory(config("SRC", &["src.>"])))
        .await
        .unwrap();
    let payload = bytes::Bytes::from(vec![b'x'; 100_000]);
    for _ in 0..2 {
        js.publish("src.a", payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    js.create_stream(memory(stream::Config {
        name: "MIR".into(),
        mirror: Some(stream::Source {
            name: "SRC".into(),
            ..Default::default()
        }),
        ..Default::default()
    }))
    .await
    .unwrap();
    // Wait for the mirror to have tried (its status says when it last looked).
    for _ in 0..250 {
        let raw = client
            .request("$JS.API.STREAM.INFO.MIR", "".into())
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&raw.payload).unwrap();
        if v["mirror"]["active"].as_i64().is_some_and(|a| a >= 0) {
            assert_eq!(v["state"]["messages"], 0, "{v}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the mirror never reported");
}
