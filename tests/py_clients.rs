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

/// Runs a nats.py script to its end; what it printed, as JSON.
async fn run_script(py: &str, script: &str, args: &[&str]) -> serde_json::Value {
    let out = tokio::process::Command::new(py)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "nats.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from the script")
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
    let v = run_script(&py, CREDS_LOGIN, &[&s.client_url(), &creds]).await;
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

const KV_TTL: &str = r#"
import asyncio, json, sys
import nats
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyWrongLastSequenceError

async def main(url):
    nc = await nats.connect(url)
    js = nc.jetstream()
    kv = await js.create_key_value(KeyValueConfig(bucket="py_sessions", history=5, limit_marker_ttl=2))
    watcher = await kv.watch("user.*")
    first = await watcher.updates(timeout=5)  # None: nothing yet
    await kv.create("user.1", b"alice", msg_ttl=1)
    try:
        await kv.create("user.1", b"again", msg_ttl=1)
        refused = False
    except KeyWrongLastSequenceError:
        refused = True
    ops = []
    while len(ops) < 2:
        e = await watcher.updates(timeout=20)
        if e is not None:
            ops.append([e.key, e.operation])
    # nats.py reads the server's marker as an entry without a value (as against
    # nats-server 2.15.1: its get and create know KV-Operation only); put goes on.
    marker = await kv.get("user.1")
    put = await kv.put("user.1", b"carol")
    print(json.dumps({"first": first, "refused": refused, "ops": ops,
                      "marker": [marker.value, marker.revision], "put": put}))
    await nc.close()

asyncio.run(main(sys.argv[1]))
"#;

/// KV per-key TTLs through nats.py: a key created with `msg_ttl` expires, the watcher sees
/// the server's limit marker as a purge (revision 2), and the key takes new values.
#[tokio::test]
async fn nats_py_kv_keys_expire_with_a_limit_marker() {
    let Some(py) = python() else {
        return;
    };
    let s = petrel_testkit::spawn_jetstream().await;
    let v = run_script(&py, KV_TTL, &[&s.client_url()]).await;
    assert_eq!(v["first"], serde_json::Value::Null);
    assert_eq!(v["refused"], true, "{v}");
    assert_eq!(
        v["ops"],
        serde_json::json!([["user.1", null], ["user.1", "PURGE"]]),
        "{v}"
    );
    assert_eq!(v["marker"], serde_json::json!([null, 2]), "{v}");
    assert_eq!(v["put"], 3);
}
