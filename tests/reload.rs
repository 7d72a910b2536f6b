//! Configuration reload: new auth, permissions and limits reach existing connections.

use petrel_server::{Auth, Options, Permissions, SubjectPermission, User};
use petrel_testkit::{spawn_with, RawClient};

fn user(name: &str, pass: &str, publish: Option<&str>, subscribe: Option<&str>) -> User {
    let sp = |s: Option<&str>| {
        s.map(|s| SubjectPermission {
            allow: vec![s.to_string()],
            deny: vec![],
        })
    };
    User {
        user: name.into(),
        password: Some(pass.into()),
        permissions: Some(Permissions {
            publish: sp(publish),
            subscribe: sp(subscribe),
            allow_responses: None,
        }),
        ..User::default()
    }
}

fn opts(users: Vec<User>, max_payload: usize) -> Options {
    Options {
        host: std::net::Ipv4Addr::LOCALHOST.into(),
        port: 0,
        auth: Auth::Users(users),
        max_payload,
        ..Options::default()
    }
}

#[tokio::test]
async fn reload_applies_to_existing_connections() {
    let before = opts(
        vec![
            user("a", "pw-a", None, None),
            user("b", "pw-b", Some("x.>"), Some("x.>")),
        ],
        1024,
    );
    let s = spawn_with(|b| b.options(before)).await;
    let mut a =
        RawClient::connect_with(s.addr(), r#"{"verbose":false,"user":"a","pass":"pw-a"}"#).await;
    let mut b =
        RawClient::connect_with(s.addr(), r#"{"verbose":false,"user":"b","pass":"pw-b"}"#).await;
    b.send(b"SUB x.> 1\r\nPUB x.one 1\r\n1\r\nPING\r\n").await;
    b.expect(b"MSG x.one 1 1\r\n1\r\nPONG\r\n").await;

    // Remove user a, move b from x.> to y.>, and lower max_payload.
    let after = opts(vec![user("b", "pw-b", Some("y.>"), Some("y.>"))], 16);
    s.handle().reload(after).unwrap();

    a.expect(b"-ERR 'Authorization Violation'\r\n").await;
    a.expect_closed().await;
    b.expect(b"-ERR 'Permissions Violation for Subscription to \"x.>\"'\r\n")
        .await;
    b.send(b"PUB x.two 1\r\n2\r\nSUB y.> 2\r\nPUB y.one 1\r\n3\r\nPING\r\n")
        .await;
    b.expect(
        b"-ERR 'Permissions Violation for Publish to \"x.two\"'\r\nMSG y.one 2 1\r\n3\r\nPONG\r\n",
    )
    .await;
    b.send(b"PUB y.big 17\r\n").await;
    b.expect(b"-ERR 'Maximum Payload Violation'\r\n").await;

    // New connections see the new rules too.
    assert!(
        async_nats::ConnectOptions::with_user_and_password("a".into(), "pw-a".into())
            .connect(s.client_url())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn reload_refuses_invalid_options() {
    let s = spawn_with(|b| b).await;
    let bad = Options {
        max_payload: 0,
        ..Options::default()
    };
    assert!(s.handle().reload(bad).is_err());
    let c = async_nats::connect(s.client_url()).await.unwrap();
    c.flush().await.unwrap();
}
