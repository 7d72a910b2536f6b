//! Authentication under hostile load: bcrypt runs on a bounded pool off the reactor, so a
//! flood of CONNECTs with wrong passwords cannot starve authenticated clients; an unknown
//! user is refused exactly like a wrong password.

use std::time::Duration;

use futures::StreamExt;
use petrel_server::{Auth, User};
use petrel_testkit::{spawn_with, RawClient};

/// A single-threaded runtime (the default for tests): a bcrypt check on the reactor
/// would stop every connection for its whole duration.
#[tokio::test]
async fn a_flood_of_bad_bcrypt_connects_does_not_starve_other_clients() {
    let hash = bcrypt::hash("right", 10).unwrap();
    let users = vec![
        User {
            user: "svc".into(),
            password: Some(hash),
            ..User::default()
        },
        User {
            user: "plain".into(),
            password: Some("plain-pw".into()),
            ..User::default()
        },
    ];
    let s = spawn_with(|b| b.auth(Auth::Users(users))).await;
    let nc = async_nats::ConnectOptions::with_user_and_password("plain".into(), "plain-pw".into())
        .connect(s.client_url())
        .await
        .unwrap();
    let mut echo = nc.subscribe("echo").await.unwrap();
    let responder = {
        let nc = nc.clone();
        tokio::spawn(async move {
            while let Some(m) = echo.next().await {
                if let Some(reply) = m.reply {
                    nc.publish(reply, m.payload).await.unwrap();
                }
            }
        })
    };
    // 40 connections each asking for a bcrypt check that fails.
    let mut flood = Vec::new();
    for i in 0..40 {
        let addr = s.addr();
        flood.push(tokio::spawn(async move {
            let mut c = RawClient::connect(addr).await;
            c.send(format!("CONNECT {{\"user\":\"svc\",\"pass\":\"wrong-{i}\"}}\r\n").as_bytes())
                .await;
            c.read_until_closed_or(Duration::from_secs(60)).await
        }));
    }
    tokio::task::yield_now().await;
    // Meanwhile an authenticated client's requests are answered.
    for i in 0..20 {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            nc.request("echo", format!("{i}").into()),
        )
        .await
        .expect("starved by the bcrypt flood")
        .unwrap();
        assert_eq!(r.payload, format!("{i}"));
    }
    for f in flood {
        let out = f.await.unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("Authorization Violation") || text.contains("Authentication Timeout"),
            "{text}"
        );
    }
    responder.abort();
}

#[tokio::test]
async fn an_unknown_user_is_refused_like_a_wrong_password() {
    let users = vec![User {
        user: "svc".into(),
        password: Some(bcrypt::hash("right", 4).unwrap()),
        ..User::default()
    }];
    let s = spawn_with(|b| b.auth(Auth::Users(users))).await;
    let mut out = Vec::new();
    for json in [
        r#"{"verbose":false,"user":"svc","pass":"wrong"}"#,
        r#"{"verbose":false,"user":"nobody","pass":"wrong"}"#,
    ] {
        let mut c = RawClient::connect(s.addr()).await;
        c.send(format!("CONNECT {json}\r\nPING\r\n").as_bytes())
            .await;
        out.push(c.read_until_closed().await);
    }
    assert_eq!(out[0], out[1]);
    assert_eq!(&out[0][..], b"-ERR 'Authorization Violation'\r\n");
}
