//! Client TLS through async-nats: server TLS, mutual TLS, handshake-first, and the error a
//! plain-text client gets.

use std::time::Duration;

use futures::StreamExt;
use petrel_server::{HandshakeFirst, TlsOptions};
use petrel_testkit::{spawn_with, RawClient, TestCerts, TestServer};

async fn tls_server(
    configure: impl FnOnce(&TestCerts) -> TlsOptions,
) -> (TestServer, TestCerts, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path()).unwrap();
    let tls = configure(&certs);
    let s = spawn_with(|b| b.tls(tls)).await;
    (s, certs, dir)
}

async fn roundtrip(c: &async_nats::Client) {
    let mut sub = c.subscribe("secure.>").await.unwrap();
    c.flush().await.unwrap();
    c.publish("secure.hello", "over tls".into()).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.payload, "over tls");
}

#[tokio::test]
async fn tls_pubsub_and_info_flag() {
    let (s, certs, _dir) = tls_server(|c| TlsOptions::new(&c.server_cert, &c.server_key)).await;
    let c = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(certs.ca.clone())
        .connect(s.client_url())
        .await
        .unwrap();
    roundtrip(&c).await;
    assert!(c.server_info().tls_required);
}

#[tokio::test]
async fn plain_client_gets_tls_required() {
    let (s, _certs, _dir) = tls_server(|c| TlsOptions::new(&c.server_cert, &c.server_key)).await;
    let mut raw = RawClient::connect(s.addr()).await;
    raw.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n").await;
    raw.expect(b"-ERR 'Secure Connection - TLS Required'\r\n")
        .await;
    raw.expect_closed().await;
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate() {
    let (s, certs, _dir) = tls_server(|c| TlsOptions {
        ca_file: Some(c.ca.clone()),
        verify: true,
        ..TlsOptions::new(&c.server_cert, &c.server_key)
    })
    .await;
    let without = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(certs.ca.clone())
        .connect(s.client_url())
        .await;
    // With TLS 1.3 the refusal may only surface on first use.
    if let Ok(c) = without {
        assert!(c.flush().await.is_err(), "no client certificate must fail");
    }
    let with = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(certs.ca.clone())
        .add_client_certificate(certs.client_cert.clone(), certs.client_key.clone())
        .connect(s.client_url())
        .await
        .unwrap();
    roundtrip(&with).await;
}

#[tokio::test]
async fn handshake_first_and_auto() {
    let (s, certs, _dir) = tls_server(|c| TlsOptions {
        handshake_first: HandshakeFirst::On,
        ..TlsOptions::new(&c.server_cert, &c.server_key)
    })
    .await;
    let c = async_nats::ConnectOptions::new()
        .tls_first()
        .add_root_certificates(certs.ca.clone())
        .connect(s.client_url())
        .await
        .unwrap();
    roundtrip(&c).await;

    let (s, certs, _dir) = tls_server(|c| TlsOptions {
        handshake_first: HandshakeFirst::Auto(Duration::from_millis(50)),
        ..TlsOptions::new(&c.server_cert, &c.server_key)
    })
    .await;
    for tls_first in [true, false] {
        let mut o = async_nats::ConnectOptions::new()
            .require_tls(true)
            .add_root_certificates(certs.ca.clone());
        if tls_first {
            o = o.tls_first();
        }
        let c = o.connect(s.client_url()).await.unwrap();
        roundtrip(&c).await;
    }
}
