//! Account JWT pushes in operator mode (`$SYS.REQ.…CLAIMS.*`): the full resolver stores
//! them and answers lookups and lists, new accounts appear, revocations, limits, imports,
//! private exports and JetStream change at once, the MEMORY resolver updates what it
//! holds, and the operator deletes accounts.

use std::time::Duration;

use async_nats::jetstream;

use crate::operator_support::*;
use crate::support::{api_code, config, spawn_config};

#[tokio::test]
async fn the_full_resolver_takes_pushes_and_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let (s, sys) = full_with_admin(dir.path()).await;
    let (alice_jwt, alice_seed) = user(APP_SEED, None, "alice", |_| {});
    let (mut alice, line) = raw_login(s.addr(), &alice_jwt, Some(&alice_seed)).await;
    assert_eq!(line, "PONG");
    let app_key = public(APP_SEED);
    // Preloads are written to the directory.
    assert!(dir.path().join(format!("{app_key}.jwt")).exists());

    // Revoke alice: she is disconnected at once.
    let alice_key = petrel_jwt::peek_subject(&alice_jwt).unwrap();
    let revoking = account_jwt(APP_SEED, "APP", |c| {
        c.nats.revocations.insert(alice_key, now() + 5);
    });
    let r = sys_request(
        &sys,
        format!("$SYS.REQ.ACCOUNT.{app_key}.CLAIMS.UPDATE"),
        revoking.clone(),
    )
    .await;
    assert_eq!(r["data"]["code"], 200, "{r}");
    assert_eq!(r["data"]["message"], "jwt updated");
    assert_eq!(r["data"]["account"], app_key.as_str());
    let rest = alice.read_until_closed_or(Duration::from_secs(10)).await;
    assert_eq!(
        String::from_utf8_lossy(&rest),
        "-ERR 'User Authentication Revoked'\r\n"
    );
    // A running account's JetStream limits change with its JWT.
    let (jwt, seed) = user(APP_SEED, None, "js-user", |_| {});
    let app_js = jetstream::new(connect(&s.client_url(), &jwt, &seed).await.unwrap());
    app_js
        .create_stream(config("FIRST", &["first"]))
        .await
        .unwrap();
    let one_stream = account_jwt(APP_SEED, "APP", |c| {
        c.nats.limits.js.streams = 1;
        c.nats.revocations = petrel_jwt::Account::default().revocations;
    });
    let r = sys_request(
        &sys,
        format!("$SYS.REQ.ACCOUNT.{app_key}.CLAIMS.UPDATE"),
        one_stream.clone(),
    )
    .await;
    assert_eq!(r["data"]["code"], 200, "{r}");
    let e = app_js
        .create_stream(config("SECOND", &["second"]))
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), 10027);

    // Lookup and list.
    let m = sys
        .request(
            format!("$SYS.REQ.ACCOUNT.{app_key}.CLAIMS.LOOKUP"),
            "".into(),
        )
        .await
        .unwrap();
    assert_eq!(std::str::from_utf8(&m.payload).unwrap(), one_stream);
    let r = sys_request(&sys, "$SYS.REQ.CLAIMS.LIST".into(), String::new()).await;
    let listed: Vec<&str> = r["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(listed.contains(&app_key.as_str()) && listed.contains(&public(SYS_SEED).as_str()));

    // A new account pushed while running: its users log in and use JetStream.
    let new_seed = nkeys::KeyPair::new_account().seed().unwrap();
    let new_jwt = account_jwt(&new_seed, "NEW", |c| {
        c.nats.limits.js.disk_storage = -1;
        c.nats.limits.js.mem_storage = -1;
    });
    let r = sys_request(&sys, "$SYS.REQ.CLAIMS.UPDATE".into(), new_jwt).await;
    assert_eq!(r["data"]["message"], "jwt updated", "{r}");
    let (jwt, seed) = user(&new_seed, None, "newbie", |_| {});
    let newbie = jetstream::new(connect(&s.client_url(), &jwt, &seed).await.unwrap());
    newbie.create_stream(config("N", &["n.>"])).await.unwrap();
    newbie
        .publish("n.1", "x".into())
        .await
        .unwrap()
        .await
        .unwrap();

    // Refused: a JWT no trusted operator signed, a subject that names another account,
    // an older JWT than the one held.
    let rogue_op = nkeys::KeyPair::new_operator();
    let mut rogue = account_claims(APP_SEED, "APP");
    let rogue = petrel_jwt::encode(&mut rogue, &rogue_op, now()).unwrap();
    let r = sys_request(
        &sys,
        format!("$SYS.REQ.ACCOUNT.{app_key}.CLAIMS.UPDATE"),
        rogue,
    )
    .await;
    assert_eq!(r["error"]["code"], 500, "{r}");
    let r = sys_request(
        &sys,
        format!("$SYS.REQ.ACCOUNT.{}.CLAIMS.UPDATE", public(SYS_SEED)),
        revoking,
    )
    .await;
    assert_eq!(
        r["error"]["description"],
        "jwt update resulted in error - subject does not match jwt content"
    );
    let mut older = account_claims(APP_SEED, "APP");
    older.iat = 1;
    let older = petrel_jwt::encode(&mut older, &kp(OPERATOR_SIGNING_SEED), 1).unwrap();
    let r = sys_request(&sys, "$SYS.REQ.CLAIMS.UPDATE".into(), older).await;
    assert_eq!(
        r["error"]["description"],
        "jwt update resulted in error - existing JWT is newer"
    );
    // Only the system account may push.
    let (jwt, seed) = user(APP_SIGNING_SEED, Some(&app_key), "pusher", |_| {});
    let app_user = connect(&s.client_url(), &jwt, &seed).await.unwrap();
    let e = app_user
        .request("$SYS.REQ.CLAIMS.UPDATE", "x".into())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), async_nats::client::RequestErrorKind::NoResponders);
    drop(s);

    // After a restart the pushed account is still there (read from the directory).
    let s = server("operator-full.conf", Some(dir.path())).await;
    let (jwt, seed) = user(&new_seed, None, "again", |_| {});
    connect(&s.client_url(), &jwt, &seed)
        .await
        .expect("the pushed account survives a restart");
}

#[tokio::test]
async fn pushed_account_jwts_change_imports_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (s, sys) = full_with_admin(dir.path()).await;
    let app_key = public(APP_SEED);
    // APP exports its events; a new account imports them.
    push(
        &sys,
        account_jwt(APP_SEED, "APP", |c| {
            c.nats.exports.push(petrel_jwt::Export {
                subject: "events.>".into(),
                kind: "stream".into(),
                ..Default::default()
            });
        }),
    )
    .await;
    let watcher_seed = nkeys::KeyPair::new_account().seed().unwrap();
    let importing = |with_import: bool| {
        let app_key = app_key.clone();
        account_jwt(&watcher_seed, "WATCHER", move |c| {
            if with_import {
                c.nats.imports.push(petrel_jwt::Import {
                    subject: "events.>".into(),
                    account: app_key,
                    kind: "stream".into(),
                    ..Default::default()
                });
            }
        })
    };
    push(&sys, importing(true)).await;
    let (jwt, seed) = user(&watcher_seed, None, "w", |_| {});
    let watcher = connect(&s.client_url(), &jwt, &seed).await.unwrap();
    let mut events = watcher.subscribe("events.>").await.unwrap();
    watcher.flush().await.unwrap();
    let (jwt, seed) = user(APP_SEED, None, "p", |_| {});
    let app = connect(&s.client_url(), &jwt, &seed).await.unwrap();
    app.publish("events.1", "one".into()).await.unwrap();
    app.flush().await.unwrap();
    let m = futures::StreamExt::next(&mut events).await.unwrap();
    assert_eq!(
        (m.subject.as_str(), &m.payload[..]),
        ("events.1", &b"one"[..])
    );

    // The import is removed by the next push: APP's events stop; WATCHER's own marker is
    // the next thing its subscriber sees.
    push(&sys, importing(false)).await;
    app.publish("events.2", "two".into()).await.unwrap();
    app.flush().await.unwrap();
    watcher
        .publish("events.marker", "marker".into())
        .await
        .unwrap();
    let m = futures::StreamExt::next(&mut events).await.unwrap();
    assert_eq!(m.subject.as_str(), "events.marker");
}

#[tokio::test]
async fn private_exports_need_an_activation_token() {
    let dir = tempfile::tempdir().unwrap();
    let (s, sys) = full_with_admin(dir.path()).await;
    push(
        &sys,
        account_jwt(APP_SEED, "APP", |c| {
            c.nats.exports.push(petrel_jwt::Export {
                subject: "secret.>".into(),
                kind: "stream".into(),
                token_req: true,
                ..Default::default()
            });
        }),
    )
    .await;
    let watcher_seed = nkeys::KeyPair::new_account().seed().unwrap();
    let watcher_key = public(&watcher_seed);
    let with_token = |token: Option<String>| {
        account_jwt(&watcher_seed, "WATCHER", move |c| {
            c.nats.imports.push(petrel_jwt::Import {
                subject: "secret.>".into(),
                account: public(APP_SEED),
                kind: "stream".into(),
                token,
                ..Default::default()
            });
        })
    };
    let (jwt, seed) = user(APP_SEED, None, "p", |_| {});
    let app = connect(&s.client_url(), &jwt, &seed).await.unwrap();
    // No token, then a token for another account: nothing arrives (the marker, published
    // in WATCHER itself, is the next message).
    let someone_else = public(&nkeys::KeyPair::new_account().seed().unwrap());
    for token in [
        None,
        Some(activation(APP_SEED, &someone_else, "secret.>", "stream")),
    ] {
        push(&sys, with_token(token)).await;
        let (jwt, seed) = user(&watcher_seed, None, "w", |_| {});
        let watcher = connect(&s.client_url(), &jwt, &seed).await.unwrap();
        let mut got = watcher.subscribe("secret.>").await.unwrap();
        watcher.flush().await.unwrap();
        app.publish("secret.1", "hidden".into()).await.unwrap();
        app.flush().await.unwrap();
        watcher.publish("secret.marker", "m".into()).await.unwrap();
        let m = futures::StreamExt::next(&mut got).await.unwrap();
        assert_eq!(m.subject.as_str(), "secret.marker");
    }
    // Its own token: the import works.
    push(
        &sys,
        with_token(Some(activation(
            APP_SEED,
            &watcher_key,
            "secret.>",
            "stream",
        ))),
    )
    .await;
    let (jwt, seed) = user(&watcher_seed, None, "w", |_| {});
    let watcher = connect(&s.client_url(), &jwt, &seed).await.unwrap();
    let mut got = watcher.subscribe("secret.>").await.unwrap();
    watcher.flush().await.unwrap();
    app.publish("secret.2", "shared".into()).await.unwrap();
    app.flush().await.unwrap();
    let m = futures::StreamExt::next(&mut got).await.unwrap();
    assert_eq!(
        (m.subject.as_str(), &m.payload[..]),
        ("secret.2", &b"shared"[..])
    );
}

#[tokio::test]
async fn an_account_update_enforces_its_new_limits() {
    // The MEMORY resolver takes updates of the accounts it holds.
    let s = server("operator-memory.conf", None).await;
    let (sys_jwt, sys_seed) = user(SYS_SEED, None, "admin", |_| {});
    let sys = connect(&s.client_url(), &sys_jwt, &sys_seed).await.unwrap();
    let app_key = public(APP_SEED);
    let (jwt, seed) = user(APP_SEED, None, "u", |_| {});
    let (mut first, line) = raw_login(s.addr(), &jwt, Some(&seed)).await;
    assert_eq!(line, "PONG");
    let (mut second, line) = raw_login(s.addr(), &jwt, Some(&seed)).await;
    assert_eq!(line, "PONG");
    first.send(b"SUB a 1\r\nSUB b 2\r\nPING\r\n").await;
    assert_eq!(first.read_line().await, "PONG");

    // One connection allowed: the newest goes.
    let one_conn = account_jwt(APP_SEED, "APP", |c| c.nats.limits.conn = 1);
    let r = sys_request(
        &sys,
        format!("$SYS.REQ.ACCOUNT.{app_key}.CLAIMS.UPDATE"),
        one_conn,
    )
    .await;
    assert_eq!(r["data"]["message"], "jwt updated", "{r}");
    let rest = second.read_until_closed_or(Duration::from_secs(5)).await;
    assert_eq!(
        String::from_utf8_lossy(&rest),
        "-ERR 'maximum account active connections exceeded'\r\n"
    );
    // One subscription per connection: the first holds two.
    let one_sub = account_jwt(APP_SEED, "APP", |c| {
        c.nats.limits.conn = 1;
        c.nats.limits.subs = 1;
    });
    let r = sys_request(
        &sys,
        format!("$SYS.REQ.ACCOUNT.{app_key}.CLAIMS.UPDATE"),
        one_sub,
    )
    .await;
    assert_eq!(r["data"]["message"], "jwt updated", "{r}");
    let rest = first.read_until_closed_or(Duration::from_secs(5)).await;
    assert_eq!(
        String::from_utf8_lossy(&rest),
        "-ERR 'maximum subscriptions exceeded'\r\n"
    );
    // An account the MEMORY resolver does not hold is not taken.
    let stranger = nkeys::KeyPair::new_account().seed().unwrap();
    let r = sys_request(
        &sys,
        format!("$SYS.REQ.ACCOUNT.{}.CLAIMS.UPDATE", public(&stranger)),
        account_jwt(&stranger, "NEW", |_| {}),
    )
    .await;
    assert_eq!(r["data"]["message"], "jwt update skipped", "{r}");
}

#[tokio::test]
async fn a_push_turns_jetstream_on_for_a_running_account() {
    let dir = tempfile::tempdir().unwrap();
    let (s, sys) = full_with_admin(dir.path()).await;
    let seed = nkeys::KeyPair::new_account().seed().unwrap();
    push(&sys, account_jwt(&seed, "LATER", |_| {})).await;
    let (jwt, user_seed) = user(&seed, None, "u", |_| {});
    let js = jetstream::new(connect(&s.client_url(), &jwt, &user_seed).await.unwrap());
    let e = js.create_stream(config("L", &["l.>"])).await.unwrap_err();
    assert_eq!(api_code(&e), 10039);
    push(
        &sys,
        account_jwt(&seed, "LATER", |c| {
            c.nats.limits.js.disk_storage = -1;
            c.nats.limits.js.mem_storage = -1;
        }),
    )
    .await;
    // JetStream starts in the background: the API answers once it runs.
    let mut created = None;
    for _ in 0..50 {
        match js.create_stream(config("L", &["l.>"])).await {
            Ok(s) => {
                created = Some(s);
                break;
            }
            Err(e) if api_code(&e) == 10039 => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(created.is_some(), "JetStream turned on by the push");
    js.publish("l.1", "x".into()).await.unwrap().await.unwrap();
    // The 10039 responder is gone: every request now gets JetStream's answer.
    for _ in 0..10 {
        js.query_account().await.expect("account info, not 10039");
    }
}

/// A delete request: a generic JWT `signer` issues about itself, listing `accounts`.
fn delete_request(signer: &str, accounts: &[String]) -> String {
    let key = kp(signer);
    let mut data = serde_json::Map::new();
    data.insert("accounts".into(), serde_json::json!(accounts));
    let mut c = petrel_jwt::Claims::new(key.public_key(), "delete", petrel_jwt::Generic { data });
    petrel_jwt::encode(&mut c, &key, now()).unwrap()
}

#[tokio::test]
async fn the_operator_deletes_accounts() {
    // Without allow_delete, nothing is deleted.
    let dir = tempfile::tempdir().unwrap();
    let (s, sys) = full_with_admin(dir.path()).await;
    let app = vec![public(APP_SEED)];
    let r = sys_request(
        &sys,
        "$SYS.REQ.CLAIMS.DELETE".into(),
        delete_request(OPERATOR_SIGNING_SEED, &app),
    )
    .await;
    let by = public(OPERATOR_SIGNING_SEED);
    assert_eq!(
        r["error"]["description"],
        format!("delete accounts request by {by} failed - delete must be enabled in server config")
    );
    drop((s, sys));

    let d = dir.path().display().to_string();
    let s = spawn_config(
        "operator-full.conf",
        move |t| {
            t.replace("./data/jwt", &d)
                .replace("allow_delete: false", "allow_delete: true")
        },
        None,
        false,
    )
    .await;
    let (jwt, seed) = user(SYS_SEED, None, "admin", |_| {});
    let sys = connect(&s.client_url(), &jwt, &seed).await.unwrap();
    let (jwt, seed) = user(APP_SEED, None, "u", |_| {});
    let (mut raw, line) = raw_login(s.addr(), &jwt, Some(&seed)).await;
    assert_eq!(line, "PONG");
    // Refused: the system account, a key no operator trusts, a request not self-signed.
    let sys_key = vec![public(SYS_SEED)];
    let r = sys_request(
        &sys,
        "$SYS.REQ.CLAIMS.DELETE".into(),
        delete_request(OPERATOR_SIGNING_SEED, &sys_key),
    )
    .await;
    assert_eq!(
        r["error"]["description"],
        format!("delete accounts request by {by} failed - not allowed to delete system account")
    );
    let stranger = nkeys::KeyPair::new_operator().seed().unwrap();
    let r = sys_request(
        &sys,
        "$SYS.REQ.CLAIMS.DELETE".into(),
        delete_request(&stranger, &app),
    )
    .await;
    assert!(
        r["error"]["description"]
            .as_str()
            .unwrap()
            .ends_with("failed - not trusted"),
        "{r}"
    );
    // The operator's signing key deletes APP: its client is closed, its file set aside,
    // its users can no longer log in.
    let r = sys_request(
        &sys,
        "$SYS.REQ.CLAIMS.DELETE".into(),
        delete_request(OPERATOR_SIGNING_SEED, &app),
    )
    .await;
    assert_eq!(r["data"]["message"], "deleted 1 accounts", "{r}");
    let rest = raw.read_until_closed_or(Duration::from_secs(5)).await;
    assert_eq!(
        String::from_utf8_lossy(&rest),
        "-ERR 'Account Authentication Expired'\r\n"
    );
    assert!(dir.path().join(format!("{}.jwt.deleted", app[0])).exists());
    assert!(!dir.path().join(format!("{}.jwt", app[0])).exists());
    let (_raw, line) = raw_login(s.addr(), &jwt, Some(&seed)).await;
    assert_eq!(line, "-ERR 'Authorization Violation'");
}

#[tokio::test]
async fn a_users_payload_limit_holds_across_account_updates() {
    let s = server("operator-memory.conf", None).await;
    let (sys_jwt, sys_seed) = user(SYS_SEED, None, "admin", |_| {});
    let sys = connect(&s.client_url(), &sys_jwt, &sys_seed).await.unwrap();
    let (jwt, seed) = user(APP_SEED, None, "small", |c| c.nats.limits.payload = 4);
    let (mut raw, line) = raw_login(s.addr(), &jwt, Some(&seed)).await;
    assert_eq!(line, "PONG");
    raw.send(b"PUB ok 4\r\nfour\r\nPING\r\n").await;
    assert_eq!(raw.read_line().await, "PONG");
    // An account update makes every connection check its login again; the user's own
    // limit still applies afterwards (regression: the re-check restored the server's).
    let app_key = public(APP_SEED);
    let r = sys_request(
        &sys,
        format!("$SYS.REQ.ACCOUNT.{app_key}.CLAIMS.UPDATE"),
        account_jwt(APP_SEED, "APP", |_| {}),
    )
    .await;
    assert_eq!(r["data"]["message"], "jwt updated", "{r}");
    raw.send(b"PING\r\n").await;
    assert_eq!(raw.read_line().await, "PONG");
    raw.send(b"PUB big 5\r\nfives\r\n").await;
    let rest = raw.read_until_closed_or(Duration::from_secs(5)).await;
    assert_eq!(
        String::from_utf8_lossy(&rest),
        "-ERR 'Maximum Payload Violation'\r\n"
    );
}
