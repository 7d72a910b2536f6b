//! Operator (JWT) mode logins through async-nats and raw sockets: creds files, user
//! permissions and limits from JWTs, signing keys (plain and scoped), bearer tokens,
//! revocation, expiry and connection limits with nats-server's errors, JetStream limits
//! from the account JWT. Account JWT pushes are in operator_pushes.rs.

use std::time::Duration;

use async_nats::jetstream;
use petrel_jwt::{Permission, ScopedKey, SigningKey, UserLimits};
use petrel_testkit::TestServer;

use crate::operator_support::*;
use crate::support::{api_code, config};
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
