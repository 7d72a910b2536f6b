//! Leafnodes between Petrel and real nats-server (2.15.1 from PyPI, Debian's 2.9.10),
//! in both roles and over both transports: a Petrel spoke of a nats-server hub and a
//! nats-server spoke of a Petrel hub, over TCP and WebSocket, each checked with
//! async-nats clients on both sides (the same checks as between Petrel servers:
//! wildcards both ways, no echo, request/reply both ways, a queue group exactly once).
//!
//! `.ci/run` installs both binaries and sets `PETREL_NATS_SERVER_215`,
//! `PETREL_NATS_SERVER_29` and `PETREL_REQUIRE_NATS_SERVER`; elsewhere a missing binary
//! skips the test with a message.

use std::time::Duration;

use petrel_testkit::{spawn_nats_server, LeafnodeOptions, NatsServer, WebSocketOptions};

use crate::cluster::WAIT;
use crate::cluster_interop::binary;
use crate::leafnodes::{exchange, hub_with, spoke, wait_leafs};

const VERSIONS: [&str; 2] = ["PETREL_NATS_SERVER_215", "PETREL_NATS_SERVER_29"];

async fn connect(url: &str) -> async_nats::Client {
    async_nats::connect(url).await.expect("connect")
}

/// Waits until the nats-server at `monitor` (its `/leafz`) lists `n` leaf connections.
async fn nats_leafs(server: &NatsServer, n: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let addr = format!("127.0.0.1:{}", server.monitor_port.expect("monitor port"))
        .parse()
        .unwrap();
    loop {
        if let Ok(r) = petrel_testkit::http_get(addr, "/leafz").await {
            if r.json()["leafnodes"].as_u64() == Some(n) {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nats-server has no leaf"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port free a moment ago (nats-server's ports file does not list its leafnode
/// port, so the test picks one).
fn free_port() -> u16 {
    crate::support::free_ports(1)[0]
}

/// A nats-server hub: leafnode and WebSocket listeners, monitoring.
fn nats_hub(bin: &std::path::Path) -> (NatsServer, u16) {
    let port = free_port();
    let conf = format!(
        "http: \"127.0.0.1:-1\"\nleafnodes {{ host: 127.0.0.1, port: {port} }}\nwebsocket {{ host: 127.0.0.1, port: -1, no_tls: true }}\n"
    );
    let hub = spawn_nats_server(bin, "nshub", None, &[], &conf).expect("nats-server");
    (hub, port)
}

#[tokio::test]
async fn a_petrel_spoke_of_a_nats_server_hub() {
    for var in VERSIONS {
        let Some(bin) = binary(var) else { continue };
        for ws in [false, true] {
            let (hub, leaf_port) = nats_hub(&bin);
            let url = if ws {
                format!("ws://127.0.0.1:{}", hub.ws_port.expect("ws port"))
            } else {
                format!("nats-leaf://127.0.0.1:{leaf_port}")
            };
            let spoke = spoke("pspoke", &url).await;
            wait_leafs(&spoke, 1).await;
            nats_leafs(&hub, 1).await;
            let (s, h) = (
                crate::cluster::client(&spoke).await,
                connect(&hub.client_url()).await,
            );
            eprintln!("{var}, websocket {ws}");
            exchange(&s, &h).await;
        }
    }
}

#[tokio::test]
async fn a_nats_server_spoke_of_a_petrel_hub() {
    for var in VERSIONS {
        let Some(bin) = binary(var) else { continue };
        for ws in [false, true] {
            let wsopts = WebSocketOptions {
                host: "127.0.0.1".parse().unwrap(),
                port: 0,
                no_tls: true,
                ..WebSocketOptions::default()
            };
            let hub = hub_with("phub", LeafnodeOptions::default(), |b| b.websocket(wsopts)).await;
            let url = if ws {
                format!(
                    "ws://127.0.0.1:{}",
                    hub.handle().websocket_addr().unwrap().port()
                )
            } else {
                hub.leaf_url().unwrap()
            };
            let conf = format!(
                "http: \"127.0.0.1:-1\"\nleafnodes {{ reconnect: 1, remotes: [{{ url: \"{url}\" }}] }}\n"
            );
            let spoke = spawn_nats_server(&bin, "nsspoke", None, &[], &conf).expect("nats-server");
            wait_leafs(&hub, 1).await;
            nats_leafs(&spoke, 1).await;
            let (s, h) = (
                connect(&spoke.client_url()).await,
                crate::cluster::client(&hub).await,
            );
            eprintln!("{var}, websocket {ws}");
            exchange(&s, &h).await;
        }
    }
}

#[tokio::test]
async fn tls_leafnodes_with_nats_server() {
    let dir = tempfile::tempdir().unwrap();
    let certs = petrel_testkit::TestCerts::generate(dir.path()).unwrap();
    for var in VERSIONS {
        let Some(bin) = binary(var) else { continue };
        // A Petrel spoke of a nats-server TLS hub.
        let port = free_port();
        let conf = format!(
            "http: \"127.0.0.1:-1\"\nleafnodes {{ host: 127.0.0.1, port: {port}, tls {{ cert_file: \"{}\", key_file: \"{}\" }} }}\n",
            certs.server_cert.display(),
            certs.server_key.display()
        );
        let hub = spawn_nats_server(&bin, "nstlshub", None, &[], &conf).expect("nats-server");
        let (_, tls_remote) = crate::leafnodes::tls_pair(&certs);
        let remote = petrel_testkit::LeafRemote {
            urls: crate::leafnodes::remote(&format!("nats-leaf://127.0.0.1:{port}")).urls,
            ..tls_remote
        };
        let spoke = crate::leafnodes::spoke_with("ptlsspoke", remote, |b| b).await;
        wait_leafs(&spoke, 1).await;
        let (s, h) = (
            crate::cluster::client(&spoke).await,
            connect(&hub.client_url()).await,
        );
        eprintln!("{var}: Petrel spoke, TLS");
        exchange(&s, &h).await;
        // A nats-server spoke of a Petrel TLS hub.
        let (hub_opts, _) = crate::leafnodes::tls_pair(&certs);
        let phub = hub_with("ptlshub", hub_opts, |b| b).await;
        let conf = format!(
            "http: \"127.0.0.1:-1\"\nleafnodes {{ reconnect: 1, remotes: [{{ url: \"{}\", tls {{ ca_file: \"{}\" }} }}] }}\n",
            phub.leaf_url().unwrap(),
            certs.ca.display()
        );
        let nspoke = spawn_nats_server(&bin, "nstlsspoke", None, &[], &conf).expect("nats-server");
        wait_leafs(&phub, 1).await;
        nats_leafs(&nspoke, 1).await;
        let (s, h) = (
            connect(&nspoke.client_url()).await,
            crate::cluster::client(&phub).await,
        );
        eprintln!("{var}: nats-server spoke, TLS");
        exchange(&s, &h).await;
    }
}
