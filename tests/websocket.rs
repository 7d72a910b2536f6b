//! WebSocket clients (`websocket {}`): async-nats over `ws://` and `wss://` talking to
//! TCP clients, the listener's default credentials, nats-server's refusal of a bad
//! upgrade and of a foreign origin, and `ws_connect_urls` in a cluster.

use std::time::Duration;

use futures::StreamExt;
use petrel_testkit::{spawn_with, RawClient, TestCerts, TestServer, WebSocketOptions};

fn plain() -> WebSocketOptions {
    WebSocketOptions {
        host: std::net::Ipv4Addr::LOCALHOST.into(),
        port: 0,
        no_tls: true,
        ..WebSocketOptions::default()
    }
}

fn ws_url(s: &TestServer, scheme: &str) -> String {
    let a = s.handle().websocket_addr().expect("websocket on");
    match scheme {
        "wss" => format!("wss://localhost:{}", a.port()),
        _ => format!("ws://{a}"),
    }
}

async fn exchange(ws: &async_nats::Client, tcp: &async_nats::Client) {
    // Subscriptions first: async-nats 0.51's WebSocket transport can let a later flush's
    // PING overtake a SUB queued after a publish (nats-server 2.15.1 sees the same).
    let mut from_tcp = ws.subscribe("medisync.etl.*.completed").await.unwrap();
    let mut svc = ws.subscribe("svc.size").await.unwrap();
    let mut from_ws = tcp.subscribe("SECURITY.ALERTS.*").await.unwrap();
    ws.flush().await.unwrap();
    tcp.flush().await.unwrap();
    tcp.publish("medisync.etl.job.completed", "to ws".into())
        .await
        .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), from_tcp.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&m.payload[..], b"to ws");
    // Request/reply with the responder on the WebSocket side, and a large payload.
    let responder = ws.clone();
    let task = tokio::spawn(async move {
        let m = svc.next().await.unwrap();
        responder
            .publish(m.reply.unwrap(), m.payload.len().to_string().into())
            .await
            .unwrap();
        responder.flush().await.unwrap();
    });
    let big = vec![b'x'; 300 * 1024];
    let r = tcp.request("svc.size", big.into()).await.unwrap();
    assert_eq!(&r.payload[..], b"307200");
    task.await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Source", "browser");
    ws.publish_with_headers("SECURITY.ALERTS.login", headers, "from ws".into())
        .await
        .unwrap();
    ws.flush().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), from_ws.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&m.payload[..], b"from ws");
    assert_eq!(
        m.headers.unwrap().get("X-Source").unwrap().as_str(),
        "browser"
    );
}

#[tokio::test]
async fn async_nats_over_ws_talks_to_tcp_clients() {
    let s = spawn_with(|b| b.websocket(plain()).http_port(0)).await;
    let ws = async_nats::connect(ws_url(&s, "ws")).await.unwrap();
    let tcp = async_nats::connect(s.client_url()).await.unwrap();
    exchange(&ws, &tcp).await;
    assert!(!ws.server_info().tls_required);
    // Monitoring: the listener in /varz, the client's type in /connz.
    let monitor = s.monitor_addr().unwrap();
    let varz: serde_json::Value = serde_json::from_str(
        &petrel_testkit::http_get(monitor, "/varz")
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    let port = s.handle().websocket_addr().unwrap().port();
    assert_eq!(varz["websocket"]["port"], port);
    assert_eq!(varz["websocket"]["no_tls"], true);
    let connz: serde_json::Value = serde_json::from_str(
        &petrel_testkit::http_get(monitor, "/connz")
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    let types: Vec<&str> = connz["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"websocket") && types.contains(&"nats"),
        "{types:?}"
    );
}

#[tokio::test]
async fn async_nats_over_wss() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path()).unwrap();
    let opts = WebSocketOptions {
        no_tls: false,
        tls: Some(petrel_testkit::TlsOptions::new(
            &certs.server_cert,
            &certs.server_key,
        )),
        ..plain()
    };
    let s = spawn_with(|b| b.websocket(opts)).await;
    let ws = async_nats::ConnectOptions::new()
        .add_root_certificates(certs.ca.clone())
        .connect(ws_url(&s, "wss"))
        .await
        .unwrap();
    let tcp = async_nats::connect(s.client_url()).await.unwrap();
    exchange(&ws, &tcp).await;
}

/// A raw WebSocket client (tokio-websockets) with `cookie`, and what the server sends it
/// after `ops`: the text of its frames up to the close frame, and the close frame's code
/// and reason.
async fn raw_ws(
    addr: std::net::SocketAddr,
    cookie: Option<&str>,
    ops: &str,
) -> (String, Option<(u16, String)>) {
    use futures::SinkExt;
    let mut b = tokio_websockets::ClientBuilder::new()
        .uri(&format!("ws://{addr}/"))
        .unwrap();
    if let Some(c) = cookie {
        b = b
            .add_header(
                http::header::COOKIE,
                http::HeaderValue::from_str(c).unwrap(),
            )
            .unwrap();
    }
    let (mut ws, _) = b.connect().await.expect("upgrade");
    ws.send(tokio_websockets::Message::binary(ops.as_bytes().to_vec()))
        .await
        .unwrap();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next()).await;
        match next {
            Ok(Some(Ok(m))) if m.is_close() => {
                let close = m.as_close().map(|(c, r)| (u16::from(c), r.to_string()));
                return (text, close);
            }
            Ok(Some(Ok(m))) => text.push_str(&String::from_utf8_lossy(&m.into_payload())),
            _ => return (text, None),
        }
        if text.contains("PONG") {
            return (text, None);
        }
    }
}

#[tokio::test]
async fn the_websocket_authorization_overrides_the_servers_for_websocket_clients() {
    let opts = WebSocketOptions {
        auth: Some(petrel_testkit::Auth::UserPass {
            user: "browser".into(),
            pass: "s3cret".into(),
        }),
        cookies: petrel_testkit::WsCookies {
            user: Some("u".into()),
            pass: Some("p".into()),
            ..Default::default()
        },
        ..plain()
    };
    let s = spawn_with(|b| b.websocket(opts)).await;
    // TCP clients are not affected: the server itself has no authentication.
    let tcp = async_nats::connect(s.client_url()).await.unwrap();
    tcp.flush().await.unwrap();
    // WebSocket clients log in with the listener's credentials...
    let ws = async_nats::ConnectOptions::with_user_and_password("browser".into(), "s3cret".into())
        .connect(ws_url(&s, "ws"))
        .await
        .unwrap();
    ws.flush().await.unwrap();
    assert!(ws.server_info().auth_required);
    let addr = s.handle().websocket_addr().unwrap();
    // ...or their cookies (CONNECT left the fields empty)...
    let (text, _) = raw_ws(
        addr,
        Some("u=browser; p=s3cret"),
        "CONNECT {\"verbose\":false}\r\nPING\r\n",
    )
    .await;
    assert!(text.contains("PONG"), "{text}");
    // ...and without them are refused, with nats-server's close frame.
    let (text, close) = raw_ws(addr, None, "CONNECT {\"verbose\":false}\r\nPING\r\n").await;
    assert!(text.contains("-ERR 'Authorization Violation'"), "{text}");
    assert_eq!(close, Some((1008, "Authentication Failure".to_string())));
}

/// Sends an upgrade request with `extra` headers and returns the status line and body.
async fn upgrade(addr: std::net::SocketAddr, extra: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test]
async fn bad_upgrades_and_foreign_origins_are_refused() {
    let opts = WebSocketOptions {
        same_origin: true,
        ..plain()
    };
    let s = spawn_with(|b| b.websocket(opts)).await;
    let addr = s.handle().websocket_addr().unwrap();
    let resp = upgrade(
        addr,
        "Sec-WebSocket-Version: 13\r\nOrigin: http://evil.example\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{resp}");
    assert!(resp.contains("Sec-Websocket-Version: 13\r\n"), "{resp}");
    assert!(resp.ends_with("\r\n\r\nForbidden\n"), "{resp}");
    let resp = upgrade(addr, "Sec-WebSocket-Version: 12\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{resp}");
    assert!(resp.ends_with("\r\n\r\nBad Request\n"), "{resp}");
    // The same origin is fine: 101 and then the server's INFO in a binary frame.
    let resp = upgrade(
        addr,
        &format!("Sec-WebSocket-Version: 13\r\nOrigin: http://{addr}\r\n"),
    )
    .await;
    assert!(
        resp.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{resp}"
    );
    assert!(
        resp.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{resp}"
    );
    assert!(resp.contains("INFO {"), "{resp}");
}

#[tokio::test]
async fn a_cluster_tells_clients_every_websocket_url() {
    let nodes = petrel_testkit::spawn_cluster_with(2, |b, _, _| b.websocket(plain())).await;
    // A WebSocket client is told the nodes' WebSocket URLs (nats-server puts them in
    // `connect_urls`), and the WebSocket listener as host and port.
    let c = async_nats::connect(ws_url(&nodes[0], "ws")).await.unwrap();
    let info = c.server_info();
    let want: Vec<String> = nodes
        .iter()
        .map(|n| n.handle().websocket_addr().unwrap().to_string())
        .collect();
    assert_eq!(info.connect_urls, want);
    assert_eq!(
        info.port,
        nodes[0].handle().websocket_addr().unwrap().port()
    );
    // A TCP client is told the client URLs, never `ws_connect_urls`.
    let raw = RawClient::connect(nodes[0].handle().addr()).await;
    let info = raw.info();
    assert!(info.get("ws_connect_urls").is_none());
    let tcp: Vec<String> = nodes
        .iter()
        .map(|n| n.handle().addr().to_string())
        .collect();
    assert_eq!(info["connect_urls"], serde_json::json!(tcp));
}

#[tokio::test]
async fn a_websocket_no_auth_user_logs_in_websocket_clients_only() {
    let users = vec![
        petrel_testkit::User {
            user: "app".into(),
            password: Some("app-pw".into()),
            ..Default::default()
        },
        petrel_testkit::User {
            user: "guest".into(),
            password: Some("guest-pw".into()),
            ..Default::default()
        },
    ];
    let opts = WebSocketOptions {
        no_auth_user: Some("guest".into()),
        ..plain()
    };
    let s = spawn_with(|b| b.auth(petrel_testkit::Auth::Users(users)).websocket(opts)).await;
    // Without credentials over WebSocket: logged in as guest.
    let addr = s.handle().websocket_addr().unwrap();
    let (text, _) = raw_ws(addr, None, "CONNECT {\"verbose\":false}\r\nPING\r\n").await;
    assert!(text.contains("PONG"), "{text}");
    // Without credentials over TCP: refused (no server-wide no_auth_user).
    let mut raw = RawClient::connect(s.addr()).await;
    raw.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n").await;
    raw.expect(b"-ERR 'Authorization Violation'\r\n").await;
}
