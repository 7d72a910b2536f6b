//! Subscribe permissions mean what they say: a wildcard subscription is allowed only when
//! every subject it covers is allowed (`allow: foo.*` admits `SUB foo.bar` and
//! `SUB foo.*`, never `SUB foo.>` or `SUB >`), a subscription covered by a deny entry is
//! refused, and one that only overlaps a deny entry never receives a denied subject.
//! Queue-qualified entries follow the same rule.

use petrel_server::{Auth, Permissions, SubjectPermission, User};
use petrel_testkit::{spawn_with, RawClient, TestServer};

use crate::support::sp;

fn user(name: &str, subscribe: Option<SubjectPermission>) -> User {
    User {
        user: name.into(),
        password: Some("pw".into()),
        permissions: subscribe.map(|s| Permissions {
            publish: None,
            subscribe: Some(s),
            allow_responses: None,
        }),
        ..User::default()
    }
}

async fn server() -> TestServer {
    let users = vec![
        user("star", sp(&["foo.*"], &[])),
        user("nostar", sp(&[], &["foo.*"])),
        user("queues", sp(&["jobs.* q1", "work.* q.*"], &[])),
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

fn refused(subject: &str, queue: Option<&str>) -> String {
    match queue {
        Some(q) => format!(
            "-ERR 'Permissions Violation for Subscription to \"{subject}\" using queue \"{q}\"'\r\n"
        ),
        None => format!("-ERR 'Permissions Violation for Subscription to \"{subject}\"'\r\n"),
    }
}

#[tokio::test]
async fn a_wildcard_allow_admits_only_its_subsets() {
    let s = server().await;
    let mut c = raw_as(&s, "star").await;
    for bad in ["foo.>", ">", "*.*", "*.bar", "foo.bar.baz"] {
        c.send(format!("SUB {bad} 9\r\nPING\r\n").as_bytes()).await;
        c.expect(format!("{}PONG\r\n", refused(bad, None)).as_bytes())
            .await;
    }
    c.send(b"SUB foo.* 1\r\nSUB foo.bar 2\r\nPING\r\n").await;
    c.expect(b"PONG\r\n").await;
    // Had `SUB foo.>` (sid 9) been admitted, foo.a.b would arrive first.
    let mut admin = raw_as(&s, "admin").await;
    admin
        .send(b"PUB foo.a.b 1\r\nx\r\nPUB foo.bar 1\r\ny\r\nPING\r\n")
        .await;
    admin.expect(b"PONG\r\n").await;
    c.expect(b"MSG foo.bar 1 1\r\ny\r\nMSG foo.bar 2 1\r\ny\r\n")
        .await;
}

#[tokio::test]
async fn a_deny_refuses_its_subsets_and_filters_overlapping_wildcards() {
    let s = server().await;
    let mut c = raw_as(&s, "nostar").await;
    for bad in ["foo.bar", "foo.*"] {
        c.send(format!("SUB {bad} 9\r\nPING\r\n").as_bytes()).await;
        c.expect(format!("{}PONG\r\n", refused(bad, None)).as_bytes())
            .await;
    }
    c.send(b"SUB foo.> 1\r\nPING\r\n").await;
    c.expect(b"PONG\r\n").await;
    let mut all = raw_as(&s, "nostar").await;
    all.send(b"SUB > 2\r\nPING\r\n").await;
    all.expect(b"PONG\r\n").await;
    let mut admin = raw_as(&s, "admin").await;
    admin
        .send(b"PUB foo.x 1\r\nd\r\nPUB foo.x.y 1\r\na\r\nPUB other 1\r\nb\r\nPING\r\n")
        .await;
    admin.expect(b"PONG\r\n").await;
    c.expect(b"MSG foo.x.y 1 1\r\na\r\n").await;
    all.expect(b"MSG foo.x.y 2 1\r\na\r\nMSG other 2 1\r\nb\r\n")
        .await;
}

#[tokio::test]
async fn queue_qualified_entries_use_the_same_rule() {
    let s = server().await;
    let mut c = raw_as(&s, "queues").await;
    for (subject, queue) in [
        ("jobs.>", Some("q1")),
        ("jobs.a", Some("q2")),
        ("work.x", Some("q")),
        ("work.>", Some("q.a")),
    ] {
        let q = queue.map(|q| format!(" {q}")).unwrap_or_default();
        c.send(format!("SUB {subject}{q} 9\r\nPING\r\n").as_bytes())
            .await;
        c.expect(format!("{}PONG\r\n", refused(subject, queue)).as_bytes())
            .await;
    }
    c.send(b"SUB jobs.a 9\r\nPING\r\n").await;
    c.expect(format!("{}PONG\r\n", refused("jobs.a", None)).as_bytes())
        .await;
    c.send(b"SUB jobs.* q1 1\r\nSUB work.x q.a 2\r\nPING\r\n")
        .await;
    c.expect(b"PONG\r\n").await;
}
