//! Authentication through async-nats: users lists (plain and bcrypt) and nkeys.

use petrel_server::{Auth, User};
use petrel_testkit::{spawn_with, RawClient};

fn users() -> Auth {
    Auth::Users(vec![
        User {
            user: "etl".into(),
            password: Some(bcrypt::hash("etl-secret", 4).unwrap()),
            ..User::default()
        },
        User {
            user: "api".into(),
            password: Some("api-plain".into()),
            ..User::default()
        },
    ])
}

#[tokio::test]
async fn users_list_with_bcrypt_and_plain_passwords() {
    let s = spawn_with(|b| b.auth(users())).await;
    for (u, p) in [("etl", "etl-secret"), ("api", "api-plain")] {
        let c = async_nats::ConnectOptions::with_user_and_password(u.into(), p.into())
            .connect(s.client_url())
            .await
            .unwrap_or_else(|e| panic!("{u}: {e}"));
        c.flush().await.unwrap();
    }
    for (u, p) in [("etl", "api-plain"), ("api", "etl-secret"), ("nobody", "x")] {
        let res = async_nats::ConnectOptions::with_user_and_password(u.into(), p.into())
            .connect(s.client_url())
            .await;
        assert!(res.is_err(), "{u}/{p} must be refused");
    }
    let mut raw = RawClient::connect(s.addr()).await;
    raw.send(b"CONNECT {\"user\":\"etl\",\"pass\":\"nope\"}\r\n")
        .await;
    raw.expect(b"-ERR 'Authorization Violation'\r\n").await;
    raw.expect_closed().await;
}

#[tokio::test]
async fn nkey_users_sign_the_nonce() {
    let kp = nkeys::KeyPair::new_user();
    let seed = kp.seed().unwrap();
    let s = spawn_with(|b| {
        b.auth(Auth::Users(vec![User {
            user: kp.public_key(),
            nkey: Some(kp.public_key()),
            ..User::default()
        }]))
    })
    .await;
    let mut raw = RawClient::connect(s.addr()).await;
    raw.send(b"PING\r\n").await;
    raw.expect(b"-ERR 'Authorization Violation'\r\n").await;
    let c = async_nats::ConnectOptions::with_nkey(seed)
        .connect(s.client_url())
        .await
        .unwrap();
    c.flush().await.unwrap();
    let stranger = nkeys::KeyPair::new_user().seed().unwrap();
    assert!(async_nats::ConnectOptions::with_nkey(stranger)
        .connect(s.client_url())
        .await
        .is_err());
}

#[tokio::test]
async fn info_advertises_auth_and_nonce_only_for_nkeys() {
    let s = spawn_with(|b| b.auth(users())).await;
    let mut c = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::io::AsyncReadExt::read(&mut c, &mut buf)
        .await
        .unwrap();
    let info = String::from_utf8_lossy(&buf[..n]);
    assert!(
        info.contains("\"headers\":true,\"auth_required\":true,\"max_payload\""),
        "{info}"
    );
    assert!(!info.contains("nonce"), "{info}");
}
