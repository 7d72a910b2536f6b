//! Per-user publish/subscribe permissions, exactly as nats-server enforces them: the
//! violation is an `-ERR` and the connection stays open.

use std::time::Duration;

use futures::StreamExt;
use petrel_server::{Auth, Permissions, ResponsePermission, User};
use petrel_testkit::{spawn_with, RawClient, TestServer};

use crate::support::sp;

fn user(name: &str, permissions: Option<Permissions>) -> User {
    User {
        user: name.into(),
        password: Some("pw".into()),
        permissions,
        ..User::default()
    }
}

async fn server() -> TestServer {
    let users = vec![
        // A workflow worker: may publish only its own events, may not touch admin.
        user(
            "worker",
            Some(Permissions {
                publish: sp(&["chat.workflow.>"], &["chat.workflow.admin.>"]),
                subscribe: sp(
                    &["chat.workflow.execute.*", "jobs workers"],
                    &["chat.workflow.execute.secret"],
                ),
                allow_responses: None,
            }),
        ),
        // A service that may only answer requests.
        user(
            "svc",
            Some(Permissions {
                publish: sp(&["nothing.allowed"], &[]),
                subscribe: sp(&["svc.>"], &[]),
                allow_responses: Some(ResponsePermission {
                    max: 1,
                    expires: Duration::from_secs(60),
                }),
            }),
        ),
        // The same service without allow_responses.
        user(
            "mute",
            Some(Permissions {
                publish: sp(&["nothing.allowed"], &[]),
                subscribe: sp(&["svc.>"], &[]),
                allow_responses: None,
            }),
        ),
        user("admin", None),
    ];
    spawn_with(|b| b.auth(Auth::Users(users))).await
}

async fn raw_as(s: &TestServer, name: &str) -> RawClient {
    RawClient::connect_with(
        s.addr(),
        &format!(r#"{{"verbose":false,"pedantic":false,"user":"{name}","pass":"pw"}}"#),
    )
    .await
}

async fn client_as(s: &TestServer, name: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(name.into(), "pw".into())
        .connect(s.client_url())
        .await
        .unwrap()
}

#[tokio::test]
async fn publish_allowed_denied_and_deny_overrides_allow() {
    let s = server().await;
    let mut w = raw_as(&s, "worker").await;
    w.send(b"SUB chat.workflow.execute.* 1\r\nPUB chat.workflow.execute.run 2\r\nok\r\nPING\r\n")
        .await;
    w.expect(b"MSG chat.workflow.execute.run 1 2\r\nok\r\nPONG\r\n")
        .await;
    w.send(b"PUB chat.other 1\r\nx\r\nPING\r\n").await;
    w.expect(b"-ERR 'Permissions Violation for Publish to \"chat.other\"'\r\nPONG\r\n")
        .await;
    w.send(b"PUB chat.workflow.admin.reset 1\r\nx\r\nPING\r\n")
        .await;
    w.expect(
        b"-ERR 'Permissions Violation for Publish to \"chat.workflow.admin.reset\"'\r\nPONG\r\n",
    )
    .await;
    // Still open and working.
    w.send(b"PUB chat.workflow.execute.run 1\r\ny\r\nPING\r\n")
        .await;
    w.expect(b"MSG chat.workflow.execute.run 1 1\r\ny\r\nPONG\r\n")
        .await;
}

#[tokio::test]
async fn subscribe_rules_with_wildcards_queues_and_delivery_deny() {
    let s = server().await;
    let mut w = raw_as(&s, "worker").await;
    w.send(b"SUB chat.> 1\r\nPING\r\n").await;
    w.expect(b"-ERR 'Permissions Violation for Subscription to \"chat.>\"'\r\nPONG\r\n")
        .await;
    w.send(b"SUB jobs other 2\r\nPING\r\n").await;
    w.expect(b"-ERR 'Permissions Violation for Subscription to \"jobs\" using queue \"other\"'\r\nPONG\r\n")
        .await;
    w.send(b"SUB jobs workers 3\r\nSUB chat.workflow.execute.* 4\r\nPING\r\n")
        .await;
    w.expect(b"PONG\r\n").await;
    // The wildcard subscription is allowed, but the denied subject is never delivered.
    let admin = client_as(&s, "admin").await;
    admin
        .publish("chat.workflow.execute.secret", "hidden".into())
        .await
        .unwrap();
    admin
        .publish("chat.workflow.execute.open", "shown".into())
        .await
        .unwrap();
    admin.publish("jobs", "job".into()).await.unwrap();
    admin.flush().await.unwrap();
    w.expect(b"MSG chat.workflow.execute.open 4 5\r\nshown\r\nMSG jobs 3 3\r\njob\r\n")
        .await;
}

#[tokio::test]
async fn allow_responses_lets_a_service_reply_once() {
    let s = server().await;
    let svc = client_as(&s, "svc").await;
    let mut requests = svc.subscribe("svc.echo").await.unwrap();
    svc.flush().await.unwrap();
    let responder = tokio::spawn(async move {
        let req = requests.next().await.unwrap();
        let reply = req.reply.clone().unwrap();
        svc.publish(reply.clone(), "pong".into()).await.unwrap();
        // A second answer to the same request exceeds max: 1 and is dropped.
        svc.publish(reply, "again".into()).await.unwrap();
        svc.flush().await.unwrap();
        // Publishing elsewhere is still denied.
        svc.publish("random.subject", "x".into()).await.unwrap();
        svc.flush().await.unwrap();
        svc
    });
    let admin = async_nats::ConnectOptions::with_user_and_password("admin".into(), "pw".into())
        .request_timeout(Some(Duration::from_secs(5)))
        .connect(s.client_url())
        .await
        .unwrap();
    let resp = admin.request("svc.echo", "ping".into()).await.unwrap();
    assert_eq!(resp.payload, "pong");
    responder.await.unwrap();
}

#[tokio::test]
async fn without_allow_responses_the_reply_is_denied() {
    let s = server().await;
    let mut mute = raw_as(&s, "mute").await;
    mute.send(b"SUB svc.echo 1\r\nPING\r\n").await;
    mute.expect(b"PONG\r\n").await;
    let mut admin = raw_as(&s, "admin").await;
    admin
        .send(b"SUB _INBOX.r1 9\r\nPUB svc.echo _INBOX.r1 4\r\nping\r\nPING\r\n")
        .await;
    admin.expect(b"PONG\r\n").await;
    mute.expect(b"MSG svc.echo 1 _INBOX.r1 4\r\nping\r\n").await;
    mute.send(b"PUB _INBOX.r1 4\r\npong\r\nPING\r\n").await;
    mute.expect(b"-ERR 'Permissions Violation for Publish to \"_INBOX.r1\"'\r\nPONG\r\n")
        .await;
    admin.send(b"PING\r\n").await;
    admin.expect(b"PONG\r\n").await;
}

#[tokio::test]
async fn default_permissions_apply_to_users_without_their_own() {
    let users = vec![user("plain", None)];
    let s = spawn_with(|b| {
        b.auth(Auth::Users(users)).default_permissions(Permissions {
            publish: sp(&["public.>"], &[]),
            subscribe: None,
            allow_responses: None,
        })
    })
    .await;
    let mut c = raw_as(&s, "plain").await;
    c.send(b"PUB public.x 0\r\n\r\nPUB private.x 0\r\n\r\nPING\r\n")
        .await;
    c.expect(b"-ERR 'Permissions Violation for Publish to \"private.x\"'\r\nPONG\r\n")
        .await;
}

#[tokio::test]
async fn response_permission_is_used_up_after_max() {
    let s = server().await;
    let mut svc = raw_as(&s, "svc").await;
    svc.send(b"SUB svc.echo 1\r\nPING\r\n").await;
    svc.expect(b"PONG\r\n").await;
    let mut admin = raw_as(&s, "admin").await;
    admin
        .send(b"SUB _INBOX.r2 9\r\nPUB svc.echo _INBOX.r2 4\r\nping\r\nPING\r\n")
        .await;
    admin.expect(b"PONG\r\n").await;
    svc.expect(b"MSG svc.echo 1 _INBOX.r2 4\r\nping\r\n").await;
    svc.send(b"PUB _INBOX.r2 1\r\na\r\nPUB _INBOX.r2 1\r\nb\r\nPING\r\n")
        .await;
    svc.expect(b"-ERR 'Permissions Violation for Publish to \"_INBOX.r2\"'\r\nPONG\r\n")
        .await;
    admin.expect(b"MSG _INBOX.r2 9 1\r\na\r\n").await;
    admin.send(b"PING\r\n").await;
    admin.expect(b"PONG\r\n").await;
}
