//! Behaviours specific to nats.py, driven by the real client (a venv with `nats-py`,
//! `nkeys` and `aiohttp`; `.ci/run` makes one and sets `PETREL_PYTHON`): a creds-file login
//! in operator mode (nats.py signs the nonce in standard base64 with padding, async-nats
//! without), and nats.py's WebSocket transport (aiohttp) with headers and a reconnect.
//! Without that Python the test says so and passes, except where `PETREL_REQUIRE_PYTHON`
//! is set (CI).

use std::process::Stdio;

use crate::operator_support::public;
use crate::support::spawn_config;

/// The Python that has nats-py and nkeys, or `None` (after saying why) when there is
/// none and it is not required.
pub(crate) fn python() -> Option<String> {
    let candidates = [
        std::env::var("PETREL_PYTHON").ok(),
        Some("/tmp/petrel-py/bin/python".to_string()),
    ];
    for p in candidates.into_iter().flatten() {
        let ok = std::process::Command::new(&p)
            .args(["-c", "import nats, nkeys, aiohttp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(p);
        }
    }
    assert!(
        std::env::var_os("PETREL_REQUIRE_PYTHON").is_none(),
        "PETREL_REQUIRE_PYTHON is set but no Python with nats-py, nkeys and aiohttp was found"
    );
    eprintln!("skipped: no Python with nats-py, nkeys and aiohttp (python3 -m venv /tmp/petrel-py && /tmp/petrel-py/bin/pip install nats-py nkeys aiohttp)");
    None
}

const CREDS_LOGIN: &str = r#"
import asyncio, json, sys
import nats

async def main(url, creds):
    nc = await nats.connect(url, user_credentials=creds, allow_reconnect=False)
    sub = await nc.subscribe("orders.>")
    await nc.publish("orders.py", b"from nats.py")
    msg = await sub.next_msg(timeout=5)
    me = await nc.request("$SYS.REQ.USER.INFO", b"", timeout=5)
    print(json.dumps({"payload": msg.data.decode(), "me": json.loads(me.data)["data"]}))
    await nc.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

#[tokio::test]
async fn nats_py_logs_in_with_a_creds_file() {
    let Some(py) = python() else {
        return;
    };
    let s = spawn_config("operator-memory.conf", |t| t, None, false).await;
    let creds = format!(
        "{}/../config/operator/alice.creds",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = tokio::process::Command::new(py)
        .args(["-c", CREDS_LOGIN, &s.client_url(), &creds])
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "nats.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON from the script");
    assert_eq!(v["payload"], "from nats.py");
    assert_eq!(v["me"]["user_name"], "alice");
    assert_eq!(
        v["me"]["account"],
        public(crate::operator_support::APP_SEED).as_str()
    );
}

const WEBSOCKET: &str = r#"
import asyncio, json, sys
import nats

async def main(ws_url, tcp_url):
    reconnected = asyncio.Event()
    async def on_reconnect():
        reconnected.set()
    nc = await nats.connect(ws_url, reconnected_cb=on_reconnect, reconnect_time_wait=0.1)
    tcp = await nats.connect(tcp_url)
    sub = await nc.subscribe("medisync.etl.*.completed")
    await nc.flush()
    await tcp.publish("medisync.etl.job9.completed", b"over tcp", headers={"X-Job": "9"})
    msg = await sub.next_msg(timeout=5)
    async def echo(m):
        await m.respond(m.data.upper())
    await tcp.subscribe("svc.upper", cb=echo)
    await tcp.flush()
    reply = await nc.request("svc.upper", b"from websocket", timeout=5)
    print(json.dumps({"payload": msg.data.decode(), "header": msg.headers["X-Job"],
                      "reply": reply.data.decode(), "ws": nc.connected_url.scheme}))
    sys.stdout.flush()
    # The server restarts on the same ports (test side); nats.py reconnects.
    line = await asyncio.get_event_loop().run_in_executor(None, sys.stdin.readline)
    await asyncio.wait_for(reconnected.wait(), 10)
    sub2 = await nc.subscribe("after.reconnect")
    await nc.flush()
    await tcp.publish("after.reconnect", b"again")
    again = await sub2.next_msg(timeout=5)
    print(json.dumps({"again": again.data.decode()}))
    await nc.close()
    await tcp.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

#[tokio::test]
async fn nats_py_over_websocket() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let Some(py) = python() else {
        return;
    };
    let ws = petrel_testkit::WebSocketOptions {
        host: std::net::Ipv4Addr::LOCALHOST.into(),
        port: 0,
        no_tls: true,
        ..Default::default()
    };
    let s = petrel_testkit::spawn_with(|b| b.websocket(ws.clone())).await;
    let url = format!("ws://{}", s.handle().websocket_addr().unwrap());
    let mut child = tokio::process::Command::new(py)
        .args(["-c", WEBSOCKET, &url, &s.client_url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .expect("nats.py answered in time")
        .unwrap()
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap_or_else(|_| panic!("{first}"));
    assert_eq!(v["payload"], "over tcp");
    assert_eq!(v["header"], "9");
    assert_eq!(v["reply"], "FROM WEBSOCKET");
    assert_eq!(v["ws"], "ws");
    // Restart the server on the same ports: nats.py reconnects over WebSocket.
    let (port, ws_port) = (
        s.handle().addr().port(),
        s.handle().websocket_addr().unwrap().port(),
    );
    s.shutdown().await;
    let ws = petrel_testkit::WebSocketOptions {
        port: ws_port,
        ..ws
    };
    let _s = petrel_testkit::spawn_with(|b| b.port(port).websocket(ws)).await;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").await.unwrap();
    let second = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .expect("nats.py reconnected in time")
        .unwrap()
        .unwrap_or_default();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "nats.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&second).unwrap_or_else(|_| panic!("{second}"));
    assert_eq!(v["again"], "again");
}
