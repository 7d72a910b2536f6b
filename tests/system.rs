//! The system account's services through async-nats, configured as config/system.conf:
//! `$SYS.REQ.SERVER.*` and `$SYS.REQ.ACCOUNT.*` requests with nats-server 2.15.1's reply
//! shapes, other accounts' view of themselves, unknown requests (503), and the
//! CONNECT/DISCONNECT events and STATSZ heartbeat.

use futures::StreamExt;
use petrel_testkit::TestServer;
use serde_json::Value;

use crate::support::{login, spawn_config};

async fn server() -> TestServer {
    spawn_config("system.conf", |t| t, None, true).await
}

async fn ask(c: &async_nats::Client, subject: &str, body: &str) -> Value {
    let m = c
        .request(subject.to_string(), body.to_string().into())
        .await
        .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&m.payload).expect("a JSON reply")
}

#[tokio::test]
async fn server_requests_answer_like_nats_server() {
    let s = server().await;
    let admin = login(&s, "admin").await;
    let _app = login(&s, "app").await;
    let id = s.handle().server_id().to_string();

    let ping = ask(&admin, "$SYS.REQ.SERVER.PING", "").await;
    assert_eq!(ping["server"]["id"], id.as_str());
    assert_eq!(ping["server"]["name"], "petrel-1");
    assert_eq!(ping["server"]["jetstream"], true);
    assert!(ping["server"]["seq"].as_u64().unwrap() > 0);
    assert_eq!(ping["statsz"]["connections"], 2);
    assert!(ping["statsz"]["jetstream"]["config"]["max_storage"]
        .as_u64()
        .is_some());

    let idz = ask(&admin, "$SYS.REQ.SERVER.PING.IDZ", "").await;
    assert_eq!(
        idz,
        serde_json::json!({ "name": "petrel-1", "host": "127.0.0.1", "id": id })
    );
    let varz = ask(&admin, &format!("$SYS.REQ.SERVER.{id}.VARZ"), "").await;
    assert_eq!(varz["data"]["server_id"], id.as_str());
    assert_eq!(varz["data"]["system_account"], "SYS");
    let connz = ask(
        &admin,
        "$SYS.REQ.SERVER.PING.CONNZ",
        r#"{"subscriptions":true,"auth":true}"#,
    )
    .await;
    let conns = connz["data"]["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2);
    assert!(conns
        .iter()
        .any(|c| c["authorized_user"] == "app" && c["account"] == "APP"));
    let bad = ask(&admin, "$SYS.REQ.SERVER.PING.CONNZ", "{bad").await;
    assert_eq!(bad["error"]["code"], 400);
    let sort = ask(&admin, "$SYS.REQ.SERVER.PING.CONNZ", r#"{"sort":"bogus"}"#).await;
    assert_eq!(
        sort["error"]["description"],
        "invalid sorting option: bogus"
    );
    let healthz = ask(&admin, "$SYS.REQ.SERVER.PING.HEALTHZ", "").await;
    assert_eq!(healthz["data"]["status"], "ok");
    let jsz = ask(&admin, "$SYS.REQ.SERVER.PING.JSZ", r#"{"accounts":true}"#).await;
    assert!(jsz["data"]["config"]["max_storage"].as_u64().is_some());
    let accountz = ask(&admin, "$SYS.REQ.SERVER.PING.ACCOUNTZ", "").await;
    assert!(accountz["data"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "APP"));

    let info = ask(&admin, "$SYS.REQ.ACCOUNT.APP.INFO", "").await;
    assert_eq!(info["data"]["account_name"], "APP");
    assert_eq!(info["data"]["jetstream_enabled"], true);
    let missing = ask(&admin, "$SYS.REQ.ACCOUNT.NOSUCH.INFO", "").await;
    assert_eq!(missing["error"]["code"], 500);
    assert_eq!(
        missing["error"]["description"],
        "Account NOSUCH does not exist"
    );
    let subsz = ask(
        &admin,
        "$SYS.REQ.SERVER.PING.SUBSZ",
        r#"{"subscriptions":true}"#,
    )
    .await;
    assert!(
        subsz["data"]["num_subscriptions"].as_u64().unwrap() > 0,
        "{subsz}"
    );
    let app_jsz = ask(&admin, "$SYS.REQ.ACCOUNT.APP.JSZ", "").await;
    let details = app_jsz["data"]["account_details"].as_array().unwrap();
    assert_eq!(details.len(), 1, "only APP: {app_jsz}");
    assert_eq!(details[0]["name"], "APP");
    let statz = ask(&admin, "$SYS.REQ.ACCOUNT.APP.STATZ", "").await;
    assert_eq!(statz["data"]["account_statz"][0]["acc"], "APP");
    assert_eq!(statz["data"]["account_statz"][0]["conns"], 1);
    let me = ask(&admin, "$SYS.REQ.USER.INFO", "").await;
    assert_eq!(
        (&me["data"]["user"], &me["data"]["account"]),
        (&"admin".into(), &"SYS".into())
    );
    // Without a reload hook (an embedded server) RELOAD says so.
    let reload = ask(&admin, &format!("$SYS.REQ.SERVER.{id}.RELOAD"), "").await;
    assert_eq!(reload["error"]["code"], 500);

    // The nats CLI's filters: a server they do not select stays silent.
    let named = ask(
        &admin,
        "$SYS.REQ.SERVER.PING.VARZ",
        r#"{"server_name":"petrel-1"}"#,
    )
    .await;
    assert_eq!(named["data"]["server_name"], "petrel-1");
    let mut inbox = admin.subscribe("filtered.reply").await.unwrap();
    admin
        .publish_with_reply(
            "$SYS.REQ.SERVER.PING.VARZ",
            "filtered.reply",
            r#"{"server_name":"other"}"#.into(),
        )
        .await
        .unwrap();
    admin
        .publish_with_reply("$SYS.REQ.SERVER.PING.IDZ", "filtered.reply", "{}".into())
        .await
        .unwrap();
    let first: Value = serde_json::from_slice(&inbox.next().await.unwrap().payload).unwrap();
    assert_eq!(
        first["name"], "petrel-1",
        "the filtered VARZ got no reply: {first}"
    );
    let closed = ask(&admin, "$SYS.REQ.SERVER.PING.CONNZ", r#"{"state":1}"#).await;
    assert_eq!(
        closed["data"]["connections"].as_array().map(Vec::len),
        Some(0)
    );

    // What nobody answers gets a 503, as from nats-server.
    no_responders(
        &admin,
        &[
            "$SYS.REQ.SERVER.PING.NOPE",
            "$SYS.REQ.SERVER.NOTME.VARZ",
            "$SYS.REQ.ACCOUNT.APP.NOPE",
        ],
    )
    .await;
}

/// Each subject's request gets the no-responders status.
async fn no_responders(c: &async_nats::Client, subjects: &[&str]) {
    for subject in subjects {
        let e = c.request(subject.to_string(), "".into()).await.unwrap_err();
        assert_eq!(
            e.kind(),
            async_nats::client::RequestErrorKind::NoResponders,
            "{subject}"
        );
    }
}

#[tokio::test]
async fn other_accounts_see_only_themselves() {
    let s = server().await;
    let admin = login(&s, "admin").await;
    admin.flush().await.unwrap();
    let app = login(&s, "app").await;
    let me = ask(&app, "$SYS.REQ.USER.INFO", "").await;
    assert_eq!(me["data"]["user"], "app");
    assert_eq!(me["data"]["account"], "APP");
    for subject in ["$SYS.REQ.SERVER.PING.CONNZ", "$SYS.REQ.ACCOUNT.PING.CONNZ"] {
        let connz = ask(&app, subject, r#"{"auth":true}"#).await;
        let conns = connz["data"]["connections"].as_array().unwrap();
        assert_eq!(conns.len(), 1, "{subject}: only APP's connection: {connz}");
        assert_eq!(conns[0]["account"], "APP");
    }
    let statz = ask(&app, "$SYS.REQ.ACCOUNT.PING.STATZ", "").await;
    let accounts = statz["data"]["account_statz"].as_array().unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["acc"], "APP");
    // The server-wide requests belong to the system account.
    no_responders(
        &app,
        &[
            "$SYS.REQ.SERVER.PING",
            "$SYS.REQ.SERVER.PING.VARZ",
            "$SYS.REQ.ACCOUNT.APP.INFO",
        ],
    )
    .await;
}

#[tokio::test]
async fn connect_and_disconnect_events() {
    let s = server().await;
    let admin = login(&s, "admin").await;
    let mut events = admin.subscribe("$SYS.ACCOUNT.APP.>").await.unwrap();
    admin.flush().await.unwrap();
    let app =
        async_nats::ConnectOptions::with_user_and_password("app".into(), "app-change-me".into())
            .name("worker-1")
            .connect(s.client_url())
            .await
            .unwrap();
    app.publish("work", "x".into()).await.unwrap();
    app.flush().await.unwrap();
    drop(app);
    let connect = events.next().await.unwrap();
    assert_eq!(connect.subject.as_str(), "$SYS.ACCOUNT.APP.CONNECT");
    let e: Value = serde_json::from_slice(&connect.payload).unwrap();
    assert_eq!(e["type"], "io.nats.server.advisory.v1.client_connect");
    assert_eq!(e["client"]["name"], "worker-1");
    assert_eq!(e["client"]["user"], "app");
    assert_eq!(e["client"]["acc"], "APP");
    assert_eq!(e["client"]["kind"], "Client");
    assert_eq!(e["server"]["id"], s.handle().server_id());
    let disconnect = events.next().await.unwrap();
    assert_eq!(disconnect.subject.as_str(), "$SYS.ACCOUNT.APP.DISCONNECT");
    let e: Value = serde_json::from_slice(&disconnect.payload).unwrap();
    assert_eq!(e["type"], "io.nats.server.advisory.v1.client_disconnect");
    assert_eq!(e["reason"], "Client Closed");
    assert_eq!(e["client"]["name"], "worker-1");
    assert_eq!(e["received"]["msgs"], 1);
    assert!(e["client"]["stop"].is_string());
}

#[tokio::test]
async fn refused_credentials_are_reported() {
    let s = server().await;
    let admin = login(&s, "admin").await;
    let mut events = admin
        .subscribe(format!(
            "$SYS.SERVER.{}.CLIENT.AUTH.ERR",
            s.handle().server_id()
        ))
        .await
        .unwrap();
    let mut disconnects = admin.subscribe("$SYS.ACCOUNT.$G.DISCONNECT").await.unwrap();
    admin.flush().await.unwrap();
    let mut raw = petrel_testkit::RawClient::connect(s.addr()).await;
    raw.send(b"CONNECT {\"user\":\"app\",\"pass\":\"wrong\",\"verbose\":false}\r\n")
        .await;
    assert_eq!(raw.read_line().await, "-ERR 'Authorization Violation'");
    for sub in [&mut events, &mut disconnects] {
        let e: Value = serde_json::from_slice(&sub.next().await.unwrap().payload).unwrap();
        assert_eq!(e["type"], "io.nats.server.advisory.v1.client_disconnect");
        assert_eq!(e["reason"], "Authentication Failure");
        assert_eq!(e["client"]["acc"], "$G");
    }
}

#[tokio::test]
async fn kick_and_lame_duck_one_client() {
    let s = server().await;
    let admin = login(&s, "admin").await;
    let id = s.handle().server_id().to_string();
    let mut raw = petrel_testkit::RawClient::connect(s.addr()).await;
    let cid = raw.info()["client_id"].as_u64().unwrap();
    raw.send(
        b"CONNECT {\"user\":\"app\",\"pass\":\"app-change-me\",\"verbose\":false}\r\nPING\r\n",
    )
    .await;
    assert_eq!(raw.read_line().await, "PONG");

    let r = ask(
        &admin,
        &format!("$SYS.REQ.SERVER.{id}.LDM"),
        &format!("{{\"cid\":{cid}}}"),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
    let info = raw.read_line().await;
    assert!(
        info.starts_with("INFO ") && info.contains("\"ldm\":true"),
        "{info}"
    );

    let mut events = admin
        .subscribe("$SYS.ACCOUNT.APP.DISCONNECT")
        .await
        .unwrap();
    admin.flush().await.unwrap();
    let r = ask(
        &admin,
        &format!("$SYS.REQ.SERVER.{id}.KICK"),
        &format!("{{\"cid\":{cid}}}"),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
    raw.read_until_closed_or(std::time::Duration::from_secs(5))
        .await;
    let e: Value = serde_json::from_slice(&events.next().await.unwrap().payload).unwrap();
    assert_eq!(e["reason"], "Kicked");
    assert_eq!(e["client"]["id"], cid);

    let r = ask(
        &admin,
        &format!("$SYS.REQ.SERVER.{id}.KICK"),
        r#"{"cid":99999}"#,
    )
    .await;
    assert_eq!(r["error"]["description"], "no such client or leafnode id");
    let r = ask(
        &admin,
        &format!("$SYS.REQ.SERVER.{id}.LDM"),
        r#"{"cid":99999}"#,
    )
    .await;
    assert_eq!(r["error"]["description"], "no such client id");
}

#[tokio::test]
async fn statsz_heartbeat() {
    let s = server().await;
    let admin = login(&s, "admin").await;
    let mut beats = admin
        .subscribe(format!("$SYS.SERVER.{}.STATSZ", s.handle().server_id()))
        .await
        .unwrap();
    // As nats-server: the first soon after start (then 1, 2, 4, 8 s apart, then every
    // 10 s).
    let beat = tokio::time::timeout(std::time::Duration::from_secs(10), beats.next())
        .await
        .expect("a STATSZ within 10 s of start")
        .unwrap();
    let v: Value = serde_json::from_slice(&beat.payload).unwrap();
    assert_eq!(v["statsz"]["connections"], 1);
    assert_eq!(v["server"]["name"], "petrel-1");
}
