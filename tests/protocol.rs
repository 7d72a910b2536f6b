//! Byte-exact protocol behaviour, compared with nats-server 2.9.10 captures.

use std::time::Duration;

use petrel_testkit::{spawn, spawn_with, RawClient};

const QUIET: &str = r#"{"verbose":false,"pedantic":false}"#;

#[tokio::test]
async fn info_greeting_shape() {
    let s = spawn().await;
    let mut c = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::io::AsyncReadExt::read(&mut c, &mut buf)
        .await
        .unwrap();
    let line = std::str::from_utf8(&buf[..n]).unwrap();
    assert!(line.starts_with("INFO {\"server_id\":\"N"), "{line}");
    assert!(line.ends_with("} \r\n"), "space before CRLF: {line:?}");
    assert!(line.contains("\"version\":\"2.10.0\""));
    assert!(line.contains("\"headers\":true"));
    assert!(line.contains("\"max_payload\":1048576"));
    assert!(line.contains("\"proto\":1"));
    assert!(!line.contains("auth_required"));
}

#[tokio::test]
async fn verbose_exchange_matches_nats_server() {
    let s = spawn().await;
    let mut c = RawClient::connect(s.addr()).await;
    c.send(
        b"CONNECT {\"verbose\":true,\"headers\":true,\"no_responders\":true,\"protocol\":1}\r\n",
    )
    .await;
    c.expect(b"+OK\r\n").await;
    c.send(b"SUB foo 1\r\n").await;
    c.expect(b"+OK\r\n").await;
    c.send(b"PUB foo 5\r\nhello\r\n").await;
    c.expect(b"+OK\r\nMSG foo 1 5\r\nhello\r\n").await;
    c.send(b"HPUB foo 18 23\r\nNATS/1.0\r\nA: b\r\n\r\nhello\r\n")
        .await;
    c.expect(b"+OK\r\nHMSG foo 1 18 23\r\nNATS/1.0\r\nA: b\r\n\r\nhello\r\n")
        .await;
    c.send(b"SUB foo.* q 2\r\n").await;
    c.expect(b"+OK\r\n").await;
    c.send(b"PUB foo.bar r.x 2\r\nhi\r\n").await;
    c.expect(b"+OK\r\nMSG foo.bar 2 r.x 2\r\nhi\r\n").await;
    c.send(b"UNSUB 1 1\r\n").await;
    c.expect(b"+OK\r\n").await;
    c.send(b"PUB foo 1\r\nx\r\nPING\r\n").await;
    c.expect(b"+OK\r\nPONG\r\n").await;
}

#[tokio::test]
async fn connect_defaults_are_verbose() {
    let s = spawn().await;
    let mut c = RawClient::connect(s.addr()).await;
    c.send(b"CONNECT {}\r\nSUB foo 1\r\nPING\r\n").await;
    c.expect(b"+OK\r\n+OK\r\nPONG\r\n").await;
}

#[tokio::test]
async fn case_insensitive_verbs_and_tabs() {
    let s = spawn().await;
    let mut c = RawClient::connect_with(s.addr(), QUIET).await;
    c.send(b"sub foo 1\r\npub\tfoo\t 2\r\nhi\r\nping\r\n").await;
    c.expect(b"MSG foo 1 2\r\nhi\r\nPONG\r\n").await;
}

#[tokio::test]
async fn invalid_subjects_keep_connection_open() {
    let s = spawn().await;
    let mut c = RawClient::connect_with(s.addr(), QUIET).await;
    c.send(b"SUB foo..bar 1\r\nPING\r\n").await;
    c.expect(b"-ERR 'Invalid Subject'\r\nPONG\r\n").await;
    c.send(b"SUB >.x 1\r\nPING\r\n").await;
    c.expect(b"-ERR 'Invalid Subject'\r\nPONG\r\n").await;
}

#[tokio::test]
async fn unknown_op_closes_with_err() {
    let s = spawn().await;
    for input in [
        &b"FOO\r\n"[..],
        b"MSG foo 1 2\r\nhi\r\n",
        b"PUB foo 2\r\nabc\r\n",
        b"UNSUB\r\n",
        b"\r\n",
    ] {
        let mut c = RawClient::connect_with(s.addr(), QUIET).await;
        c.send(input).await;
        c.expect(b"-ERR 'Unknown Protocol Operation'\r\n").await;
        c.expect_closed().await;
    }
}

#[tokio::test]
async fn malformed_arguments_close_silently() {
    let s = spawn().await;
    for input in [
        &b"PUB foo x\r\n"[..],
        b"SUB foo\r\n",
        b"PUB a b c 2\r\n",
        b"UNSUB 1 2 3\r\n",
        b"HPUB foo 12 14\r\n",
        b"CONNECT {bad json\r\n",
    ] {
        let mut c = RawClient::connect(s.addr()).await;
        c.send(input).await;
        c.expect_closed().await;
    }
}

#[tokio::test]
async fn payload_over_max_is_refused() {
    let s = spawn_with(|b| b.max_payload(100)).await;
    let mut c = RawClient::connect_with(s.addr(), QUIET).await;
    c.send(b"PUB foo 101\r\n").await;
    c.expect(b"-ERR 'Maximum Payload Violation'\r\n").await;
    c.expect_closed().await;
    let mut c = RawClient::connect_with(s.addr(), QUIET).await;
    let mut msg = b"SUB foo 1\r\nPUB foo 100\r\n".to_vec();
    msg.extend_from_slice(&[b'x'; 100]);
    msg.extend_from_slice(b"\r\n");
    c.send(&msg).await;
    c.expect(b"MSG foo 1 100\r\n").await;
}

#[tokio::test]
async fn control_line_over_max_is_refused() {
    let s = spawn().await;
    let mut c = RawClient::connect_with(s.addr(), QUIET).await;
    let line = format!("SUB {} 1\r\n", "a".repeat(5000));
    c.send(line.as_bytes()).await;
    c.expect(b"-ERR 'maximum control line exceeded'\r\n").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn split_frames_byte_by_byte() {
    let s = spawn().await;
    let mut c = RawClient::connect_with(s.addr(), QUIET).await;
    let script = b"SUB a.b 7\r\nPUB a.b reply 11\r\nhello world\r\nPING\r\n";
    // No Nagle: each byte leaves as its own segment, so the server sees real splits.
    c.stream().set_nodelay(true).unwrap();
    for byte in script {
        c.send(&[*byte]).await;
        tokio::task::yield_now().await;
    }
    c.expect(b"MSG a.b 7 reply 11\r\nhello world\r\nPONG\r\n")
        .await;
}

#[tokio::test]
async fn duplicate_sid_and_unknown_unsub_are_ignored() {
    let s = spawn().await;
    let mut c = RawClient::connect_with(s.addr(), QUIET).await;
    c.send(b"SUB foo 1\r\nSUB foo 1\r\nUNSUB 99\r\nPUB foo 2\r\nhi\r\nPING\r\n")
        .await;
    c.expect(b"MSG foo 1 2\r\nhi\r\nPONG\r\n").await;
}

#[tokio::test]
async fn unsub_max_delivers_exactly_max() {
    let s = spawn().await;
    // The server's own subscriptions (system services) are counted too.
    let internal = s.handle().stats().subscriptions;
    let mut c = RawClient::connect_with(s.addr(), QUIET).await;
    c.send(
        b"SUB foo 1\r\nUNSUB 1 2\r\nPUB foo 1\r\na\r\nPUB foo 1\r\nb\r\nPUB foo 1\r\nc\r\nPING\r\n",
    )
    .await;
    c.expect(b"MSG foo 1 1\r\na\r\nMSG foo 1 1\r\nb\r\nPONG\r\n")
        .await;
    assert_eq!(s.handle().stats().subscriptions, internal);
}

#[tokio::test]
async fn pedantic_wildcard_publish_reported_but_delivered() {
    let s = spawn().await;
    let mut c = RawClient::connect_with(s.addr(), r#"{"verbose":false,"pedantic":true}"#).await;
    c.send(b"SUB foo.* 1\r\nPUB foo.* 2\r\nhi\r\nPING\r\n")
        .await;
    c.expect(b"-ERR 'Invalid Publish Subject'\r\nMSG foo.* 1 2\r\nhi\r\nPONG\r\n")
        .await;
}

#[tokio::test]
async fn connect_protocol_errors() {
    let s = spawn().await;
    let mut c = RawClient::connect(s.addr()).await;
    c.send(b"CONNECT {\"protocol\":2}\r\n").await;
    c.expect(b"-ERR 'invalid client protocol'\r\n").await;
    c.expect_closed().await;
    let mut c = RawClient::connect(s.addr()).await;
    c.send(b"CONNECT {\"no_responders\":true}\r\n").await;
    c.expect(b"-ERR 'no responders requires headers support'\r\n")
        .await;
    c.expect_closed().await;
}

#[tokio::test]
async fn no_responders_status_is_byte_exact() {
    let s = spawn().await;
    let mut c = RawClient::connect_with(
        s.addr(),
        r#"{"verbose":false,"headers":true,"no_responders":true}"#,
    )
    .await;
    c.send(b"SUB in.box 9\r\nPUB nobody in.box 0\r\n\r\nPING\r\n")
        .await;
    // 2.15.1's form: the status line and the request's subject.
    c.expect(b"HMSG in.box 9 38 38\r\nNATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n\r\nPONG\r\n")
        .await;
}

#[tokio::test]
async fn headers_stripped_for_clients_without_headers() {
    let s = spawn().await;
    let mut sub = RawClient::connect_with(s.addr(), r#"{"verbose":false}"#).await;
    sub.send(b"SUB foo 1\r\nPING\r\n").await;
    sub.expect(b"PONG\r\n").await;
    let mut publ = RawClient::connect_with(s.addr(), r#"{"verbose":false,"headers":true}"#).await;
    publ.send(b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n")
        .await;
    publ.expect(b"PONG\r\n").await;
    sub.expect(b"MSG foo 1 2\r\nhi\r\n").await;
}

#[tokio::test]
async fn stale_connection_after_unanswered_pings() {
    let s = spawn_with(|b| b.ping(Duration::from_millis(100), 2)).await;
    let mut c = RawClient::connect(s.addr()).await;
    c.send(format!("CONNECT {QUIET}\r\n").as_bytes()).await;
    c.expect(b"PING\r\nPING\r\n-ERR 'Stale Connection'\r\n")
        .await;
    c.expect_closed().await;
}

#[tokio::test]
async fn answered_pings_keep_connection() {
    let s = spawn_with(|b| b.ping(Duration::from_millis(50), 1)).await;
    let mut c = RawClient::connect_with(s.addr(), QUIET).await;
    for _ in 0..5 {
        c.expect(b"PING\r\n").await;
        c.send(b"PONG\r\n").await;
    }
}
