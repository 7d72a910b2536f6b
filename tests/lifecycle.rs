//! Lame-duck mode with a real client: the server stops accepting, advertises `ldm` in INFO,
//! closes its clients after the grace period, and a client that also knows a second server
//! reconnects there and keeps working.

use std::time::Duration;

use futures::StreamExt;
use petrel_testkit::{spawn, spawn_with, RawClient};

#[tokio::test]
async fn lame_duck_mode_moves_clients_to_another_server() {
    let a =
        spawn_with(|b| b.lame_duck(Duration::from_millis(800), Duration::from_millis(200))).await;
    let b = spawn().await;
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    // Servers in list order: the client starts on A.
    let client = async_nats::ConnectOptions::new()
        .retain_servers_order()
        .retry_on_initial_connect()
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e.to_string());
            }
        })
        .connect(vec![a.client_url(), b.client_url()])
        .await
        .unwrap();
    let mut sub = client.subscribe("after.ldm").await.unwrap();
    client.flush().await.unwrap();
    assert_eq!(
        client.server_info().port,
        a.addr().port(),
        "client starts on A"
    );
    // A raw connection on A sees the INFO with ldm.
    let mut raw = RawClient::connect_with(a.addr(), r#"{"verbose":false}"#).await;
    let a_addr = a.addr();
    let ldm = tokio::spawn(a.lame_duck());
    let line = raw.read_line().await;
    assert!(
        line.starts_with("INFO ") && line.contains("\"ldm\":true"),
        "{line}"
    );
    // No new connections while in lame duck mode.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        tokio::net::TcpStream::connect(a_addr).await.is_err(),
        "still accepting"
    );
    tokio::time::timeout(Duration::from_secs(10), ldm)
        .await
        .unwrap()
        .unwrap();
    raw.expect_closed().await;
    // The client saw the INFO with ldm.
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &String| e.contains("lame duck")) {
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("lame duck event")
            .unwrap();
        seen.push(e);
    }
    // The client carries on through B.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        client.publish("after.ldm", "hi".into()).await.unwrap();
        let _ = client.flush().await;
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
            assert_eq!(m.payload, "hi");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "client never recovered on B"
        );
    }
    assert_eq!(client.server_info().port, b.addr().port());
}
