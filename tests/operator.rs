//! Operator (JWT) mode through async-nats and raw sockets: creds-file logins, user
//! permissions and limits from JWTs, signing keys (plain and scoped), bearer tokens,
//! revocation and expiry with nats-server's errors, JetStream limits from the account
//! JWT, and the full resolver: pushes over `$SYS`, lookups, new accounts, persistence.

use std::time::Duration;

use async_nats::jetstream;
use petrel_jwt::{Permission, ScopedKey, SigningKey, UserLimits};
use petrel_testkit::TestServer;

use crate::operator_support::*;
use crate::support::{api_code, config, spawn_config};

/// An example operator config with its preloads replaced by `preload` when given.
async fn server(file: &str, dir: Option<&std::path::Path>) -> TestServer {
    let dir = dir.map(|d| d.display().to_string());
    spawn_config(
        file,
        move |t| match dir {
            Some(d) => t.replace("./data/jwt", &d),
            None => t,
        },
        None,
        true,
    )
    .await
}

/// A server like config/operator-memory.conf whose APP account JWT is `app`.
async fn memory_with_app(app: String) -> TestServer {
    let text = demo_config("MEMORY");
    let default_app = text
        .lines()
        .skip_while(|l| !l.contains("# APP"))
        .nth(1)
        .and_then(|l| l.split('"').nth(1))
        .expect("APP preload")
        .to_string();
    let text = text.replace(&default_app, &app);
    let loaded = petrel_config::load_str(&text, "operator.conf").expect("loads");
    petrel_testkit::spawn_with_store(move |b, dir| {
        let mut o = loaded.options;
        o.http_port = None;
        if let Some(js) = o.jetstream.as_mut() {
            js.store_dir = dir.to_path_buf();
        }
        b.options(o)
            .host(std::net::Ipv4Addr::LOCALHOST.into())
            .port(0)
    })
    .await
}

#[test]
fn demo_configs_are_current() {
    let root = format!("{}/../config", env!("CARGO_MANIFEST_DIR"));
    let files = [
        ("operator-memory.conf", demo_config("MEMORY")),
        (
            "operator-full.conf",
            demo_config("{ type: full, dir: \"./data/jwt\", allow_delete: false }"),
        ),
        ("operator/alice.creds", alice_creds()),
    ];
    if std::env::var_os("PETREL_WRITE_DEMO").is_some() {
        for (name, text) in &files {
            std::fs::write(format!("{root}/{name}"), text).expect("write");
        }
    }
    for (name, _) in &files[..2] {
        let text = std::fs::read_to_string(format!("{root}/{name}")).expect("read");
        let o = petrel_config::load_str(&text, name).expect("loads").options;
        let mode = o.operator.expect("operator mode");
        assert_eq!(mode.operators[0].claims.sub, public(OPERATOR_SEED));
        assert_eq!(o.system_account, Some(public(SYS_SEED)));
        for (key, jwt) in &mode.preload {
            let c = petrel_jwt::decode::<petrel_jwt::Account>(jwt).expect("verifies");
            assert_eq!(&c.sub, key);
            assert_eq!(c.iss, public(OPERATOR_SIGNING_SEED));
            let seed = if *key == public(APP_SEED) {
                APP_SEED
            } else {
                SYS_SEED
            };
            assert_eq!(c.nats, account_claims(seed, &c.name).nats, "{name}: {key}");
        }
    }
    let creds = std::fs::read_to_string(format!("{root}/operator/alice.creds")).expect("read");
    let parsed = petrel_jwt::parse_creds(&creds).expect("creds");
    let user = petrel_jwt::decode::<petrel_jwt::User>(&parsed.jwt).expect("verifies");
    assert_eq!((user.iss, user.sub), (public(APP_SEED), public(ALICE_SEED)));
}

#[tokio::test]
async fn creds_login_and_user_permissions_from_the_jwt() {
    let s = server("operator-memory.conf", None).await;
    // The example creds file, as nats.go / nats.py / the nats CLI read it.
    let creds = std::fs::read_to_string(format!(
        "{}/../config/operator/alice.creds",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let alice = async_nats::ConnectOptions::with_credentials(&creds)
        .unwrap()
        .connect(s.client_url())
        .await
        .expect("creds login");
    let mut sub = alice.subscribe("orders.>").await.unwrap();
    alice.publish("orders.1", "a".into()).await.unwrap();
    let m = futures::StreamExt::next(&mut sub).await.unwrap();
    assert_eq!(&m.payload[..], b"a");
    // $SYS.REQ.USER.INFO names the JWT's user and account as nats-server 2.15.1 does.
    let me = alice
        .request("$SYS.REQ.USER.INFO", "".into())
        .await
        .unwrap();
    let me: serde_json::Value = serde_json::from_slice(&me.payload).unwrap();
    assert_eq!(me["data"]["user"], public(ALICE_SEED).as_str());
    assert_eq!(me["data"]["user_name"], "alice");
    assert_eq!(me["data"]["account"], public(APP_SEED).as_str());
    assert_eq!(me["data"]["account_name"], "APP");

    // A user limited to app.> by its JWT.
    let (jwt, seed) = user(APP_SEED, None, "limited", |c| {
        c.nats.limits.permissions.publish = Permission {
            allow: vec!["app.>".into()],
            deny: vec![],
        };
    });
    let (mut raw, line) = raw_login(s.addr(), &jwt, Some(&seed)).await;
    assert_eq!(line, "PONG");
    raw.send(b"PUB other 1\r\nx\r\nPUB app.ok 1\r\ny\r\nPING\r\n")
        .await;
    assert_eq!(
        raw.read_line().await,
        "-ERR 'Permissions Violation for Publish to \"other\"'"
    );
    assert_eq!(raw.read_line().await, "PONG");

    // Accounts are named by their public keys; APP's JetStream works.
    let js = jetstream::new(alice);
    js.create_stream(config("ORDERS", &["orders.>"]))
        .await
        .unwrap();
    js.publish("orders.2", "b".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let info = s.handle().monitor_view().accounts();
    assert!(info.iter().any(|a| a.name == public(APP_SEED)));
}

#[tokio::test]
async fn bad_logins_get_authorization_violation() {
    let s = server("operator-memory.conf", None).await;
    let stranger = nkeys::KeyPair::new_account();
    let cases: Vec<(&str, String, Option<String>)> = {
        let (ok_jwt, ok_seed) = user(APP_SEED, None, "u", |_| {});
        let (expired, expired_seed) = user(APP_SEED, None, "old", |c| c.exp = Some(now() - 10));
        let (later, later_seed) = user(APP_SEED, None, "later", |c| c.nbf = Some(now() + 3600));
        let stranger_seed = stranger.seed().unwrap();
        let (foreign, foreign_seed) = user(&stranger_seed, None, "foreign", |_| {});
        let (unlisted, unlisted_seed) =
            user(&stranger_seed, Some(&public(APP_SEED)), "unlisted", |_| {});
        let other_user = nkeys::KeyPair::new_user().seed().unwrap();
        let (ws_only, ws_seed) = user(APP_SEED, None, "ws", |c| {
            c.nats.limits.allowed_connection_types = vec!["WEBSOCKET".into()];
        });
        let (elsewhere, elsewhere_seed) = user(APP_SEED, None, "far", |c| {
            c.nats.limits.src = vec!["10.0.0.0/8".into()];
        });
        vec![
            ("no signature", ok_jwt.clone(), None),
            ("another key's signature", ok_jwt, Some(other_user)),
            ("expired", expired, Some(expired_seed)),
            ("not yet valid", later, Some(later_seed)),
            ("unknown account", foreign, Some(foreign_seed)),
            (
                "key not among the account's signing keys",
                unlisted,
                Some(unlisted_seed),
            ),
            ("not a JWT", "eyJ.bad.jwt".into(), Some(ok_seed)),
            ("websocket connections only", ws_only, Some(ws_seed)),
            ("another network", elsewhere, Some(elsewhere_seed)),
        ]
    };
    for (what, jwt, seed) in cases {
        let (_raw, line) = raw_login(s.addr(), &jwt, seed.as_deref()).await;
        assert_eq!(line, "-ERR 'Authorization Violation'", "{what}");
    }
    // No JWT at all.
    let (_raw, line) = raw_login(s.addr(), "", None).await;
    assert_eq!(line, "-ERR 'Authorization Violation'");
    // The same restrictions, met.
    let (jwt, seed) = user(APP_SEED, None, "local", |c| {
        c.nats.limits.allowed_connection_types = vec!["STANDARD".into(), "WEBSOCKET".into()];
        c.nats.limits.src = vec!["127.0.0.0/8".into()];
    });
    let (_raw, line) = raw_login(s.addr(), &jwt, Some(&seed)).await;
    assert_eq!(line, "PONG");
}

#[tokio::test]
async fn signing_keys_bearer_tokens_and_revocations() {
    let scoped = nkeys::KeyPair::new_account();
    let scoped_seed = scoped.seed().unwrap();
    let (revoked_jwt, revoked_seed) = user(APP_SEED, None, "revoked", |_| {});
    let revoked_key = petrel_jwt::peek_subject(&revoked_jwt).unwrap();
    let app = account_jwt(APP_SEED, "APP", |c| {
        c.nats
            .signing_keys
            .push(SigningKey::Scoped(Box::new(ScopedKey {
                kind: "user_scope".into(),
                key: scoped.public_key(),
                role: "readers".into(),
                template: UserLimits {
                    permissions: petrel_jwt::Permissions {
                        publish: Permission {
                            allow: vec!["read.>".into()],
                            deny: vec![],
                        },
                        ..Default::default()
                    },
                    ..UserLimits::default()
                },
            })));
        c.nats.revocations.insert(revoked_key.clone(), now() + 60);
    });
    let s = memory_with_app(app).await;
    let app_key = public(APP_SEED);

    // A signing key's user (issuer_account names APP).
    let (jwt, seed) = user(APP_SIGNING_SEED, Some(&app_key), "sk", |_| {});
    let c = connect(&s.client_url(), &jwt, &seed)
        .await
        .expect("signing key user");
    c.flush().await.unwrap();
    // A scoped key's user gets the template's permissions, whatever its JWT says.
    let (jwt, seed) = user(&scoped_seed, Some(&app_key), "scoped", |c| {
        c.nats.limits.permissions.publish.allow = vec![">".into()];
    });
    let (mut raw, line) = raw_login(s.addr(), &jwt, Some(&seed)).await;
    assert_eq!(line, "PONG");
    raw.send(b"PUB write.x 0\r\n\r\nPING\r\n").await;
    assert_eq!(
        raw.read_line().await,
        "-ERR 'Permissions Violation for Publish to \"write.x\"'"
    );
    // A bearer token needs no signed nonce.
    let (jwt, _) = user(APP_SEED, None, "bearer", |c| {
        c.nats.limits.bearer_token = true
    });
    let (_raw, line) = raw_login(s.addr(), &jwt, None).await;
    assert_eq!(line, "PONG");
    // A revoked user (issued before the revocation time).
    let (_raw, line) = raw_login(s.addr(), &revoked_jwt, Some(&revoked_seed)).await;
    assert_eq!(line, "-ERR 'Authorization Violation'");
}

#[tokio::test]
async fn the_account_jwt_limits_connections() {
    let s = memory_with_app(account_jwt(APP_SEED, "APP", |c| c.nats.limits.conn = 1)).await;
    let (jwt, seed) = user(APP_SEED, None, "one", |_| {});
    let (_first, line) = raw_login(s.addr(), &jwt, Some(&seed)).await;
    assert_eq!(line, "PONG");
    let (_second, line) = raw_login(s.addr(), &jwt, Some(&seed)).await;
    assert_eq!(line, "-ERR 'maximum account active connections exceeded'");
}

#[tokio::test]
async fn an_expiring_user_is_disconnected() {
    let s = server("operator-memory.conf", None).await;
    let (jwt, seed) = user(APP_SEED, None, "short", |c| c.exp = Some(now() + 2));
    let (mut raw, line) = raw_login(s.addr(), &jwt, Some(&seed)).await;
    assert_eq!(line, "PONG");
    // Waits for the expiry (about two seconds of wall clock: JWT times are Unix seconds).
    let rest = raw.read_until_closed_or(Duration::from_secs(10)).await;
    assert_eq!(
        String::from_utf8_lossy(&rest),
        "-ERR 'User Authentication Expired'\r\n"
    );
}

#[tokio::test]
async fn jetstream_limits_come_from_the_account_jwt() {
    let app = account_jwt(APP_SEED, "APP", |c| {
        c.nats.limits.js.streams = 1;
        c.nats.limits.js.max_bytes_required = false;
    });
    let s = memory_with_app(app).await;
    let (jwt, seed) = user(APP_SEED, None, "js", |_| {});
    let js = jetstream::new(connect(&s.client_url(), &jwt, &seed).await.unwrap());
    js.create_stream(config("ONE", &["one"])).await.unwrap();
    let e = js.create_stream(config("TWO", &["two"])).await.unwrap_err();
    assert_eq!(api_code(&e), 10027);
    // SYS has no JetStream: its users get 10039.
    let (jwt, seed) = user(SYS_SEED, None, "sys", |_| {});
    let sys = jetstream::new(connect(&s.client_url(), &jwt, &seed).await.unwrap());
    let e = sys.create_stream(config("S", &["s"])).await.unwrap_err();
    assert_eq!(api_code(&e), 10039);
}

/// A full-resolver server (JWTs in `dir`) and a connection of a system account user.
async fn full_with_admin(dir: &std::path::Path) -> (TestServer, async_nats::Client) {
    let s = server("operator-full.conf", Some(dir)).await;
    let (jwt, seed) = user(SYS_SEED, None, "admin", |_| {});
    let sys = connect(&s.client_url(), &jwt, &seed).await.unwrap();
    (s, sys)
}

/// Push an account JWT over `$SYS.REQ.CLAIMS.UPDATE`; it must be taken.
async fn push(sys: &async_nats::Client, jwt: String) {
    let r = sys_request(sys, "$SYS.REQ.CLAIMS.UPDATE".into(), jwt).await;
    assert_eq!(r["data"]["code"], 200, "{r}");
}

/// A `$SYS` request's JSON reply.
async fn sys_request(c: &async_nats::Client, subject: String, body: String) -> serde_json::Value {
    let m = c.request(subject, body.into()).await.expect("a reply");
    serde_json::from_slice(&m.payload).expect("JSON")
}

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
