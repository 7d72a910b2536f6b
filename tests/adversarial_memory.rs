//! Memory a client can make the server hold is bounded: answers it does not read count
//! toward `max_pending`, a publisher that outruns a stream's disk is stalled or refused
//! (each publish answered), a consumer holds a bounded number of pull requests, and
//! monitoring pages are capped.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use petrel_testkit::{spawn_with, spawn_with_store, RawClient};
use tokio::io::AsyncWriteExt;

use crate::support::config;

#[tokio::test]
async fn pongs_nobody_reads_count_toward_max_pending() {
    // A long write deadline: only the pending-bytes bound can close it in time.
    let s = spawn_with(|b| {
        b.max_payload(16 * 1024)
            .max_pending(64 * 1024)
            .write_deadline(Duration::from_secs(60))
    })
    .await;
    let mut c = RawClient::connect_with(s.addr(), r#"{"verbose":false}"#).await;
    // 3,000,000 PINGs ask for 18 MB of PONGs, never read — more than the kernel's socket
    // buffers hold: the server must cut the client off instead of queueing without bound.
    let pings = b"PING\r\n".repeat(3_000_000);
    // The write may fail once the server closes; what matters is that it does close.
    let _ = c.stream().write_all(&pings).await;
    let _ = c.read_until_closed().await;
    assert_eq!(s.handle().stats().slow_consumers, 1);
}

#[tokio::test]
async fn a_publisher_outrunning_the_disk_gets_every_publish_answered() {
    let s = spawn_with_store(|b, dir| b.jetstream(dir).max_payload(1024 * 1024)).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    js.create_stream(config("FLOOD", &["flood.>"]))
        .await
        .unwrap();
    let body = vec![b'x'; 1024 * 1024];
    const N: usize = 200;
    let mut tasks = Vec::new();
    for conn in 0..2 {
        let addr = s.addr();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = RawClient::connect_with(addr, r#"{"verbose":false,"headers":true}"#).await;
            c.send(format!("SUB acks.{conn} 1\r\n").as_bytes()).await;
            // Fire and forget as fast as the socket takes it.
            let mut frame = Vec::new();
            for _ in 0..N {
                frame.clear();
                frame.extend_from_slice(
                    format!("PUB flood.{conn} acks.{conn} {}\r\n", body.len()).as_bytes(),
                );
                frame.extend_from_slice(&body);
                frame.extend_from_slice(b"\r\n");
                c.stream().write_all(&frame).await.unwrap();
            }
            // Every publish gets exactly one answer: a PubAck or a 429 refusal.
            let (mut ok, mut refused) = (0, 0);
            while ok + refused < N {
                let line = c.read_line().await;
                let body = c.read_line().await;
                if line.starts_with("HMSG") {
                    assert!(body.contains("429 Too Many Requests"), "{body}");
                    let json = c.read_line().await;
                    assert!(json.contains(r#""err_code":10167"#), "{json}");
                    refused += 1;
                } else {
                    assert!(body.contains(r#""stream":"FLOOD""#), "{body}");
                    ok += 1;
                }
            }
            (ok, refused)
        }));
    }
    let mut stored = 0;
    for t in tasks {
        let (ok, _refused) = t.await.unwrap();
        stored += ok;
    }
    let info = js.get_stream("FLOOD").await.unwrap().cached_info().clone();
    assert_eq!(info.state.messages as usize, stored, "stored = acked");
}

#[tokio::test]
async fn a_consumer_holds_a_bounded_number_of_pull_requests() {
    let s = spawn_with_store(|b, dir| b.jetstream(dir)).await;
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = jetstream::new(nc.clone());
    let st = js.create_stream(config("W", &["w.>"])).await.unwrap();
    st.create_consumer(consumer::pull::Config {
        durable_name: Some("C".into()),
        max_waiting: 100_000_000,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut c = RawClient::connect_with(s.addr(), r#"{"verbose":false,"headers":true}"#).await;
    c.send(b"SUB r.> 1\r\n").await;
    let req = r#"{"batch":1,"expires":60000000000}"#;
    let mut frames = Vec::new();
    for i in 0..10_001 {
        frames.extend_from_slice(
            format!(
                "PUB $JS.API.CONSUMER.MSG.NEXT.W.C r.{i} {}\r\n{req}\r\n",
                req.len()
            )
            .as_bytes(),
        );
    }
    c.send(&frames).await;
    let line = c.read_line().await;
    assert!(line.starts_with("HMSG r.10000 1 "), "{line}");
    assert_eq!(c.read_line().await, "NATS/1.0 409 Exceeded MaxWaiting");
}

#[tokio::test]
async fn monitoring_pages_are_capped() {
    let s = spawn_with(|b| b.http_port(0)).await;
    let _nc = async_nats::connect(s.client_url()).await.unwrap();
    let addr = s.monitor_addr().unwrap();
    let r = petrel_testkit::http_get(addr, "/connz?limit=99999999")
        .await
        .unwrap();
    assert_eq!(r.json()["limit"], 10_000);
}
