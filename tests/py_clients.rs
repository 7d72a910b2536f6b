//! Behaviours specific to nats.py, driven by the real client (a venv with `nats-py` and
//! `nkeys`; `.ci/run` makes one and sets `PETREL_PYTHON`): a creds-file login in operator
//! mode (nats.py signs the nonce in standard base64 with padding, async-nats without).
//! Without that Python the test says so and passes, except where `PETREL_REQUIRE_PYTHON`
//! is set (CI).

use std::process::Stdio;

use crate::operator_support::public;
use crate::support::spawn_config;

/// The Python that has nats-py and nkeys, or `None` (after saying why) when there is
/// none and it is not required.
fn python() -> Option<String> {
    let candidates = [
        std::env::var("PETREL_PYTHON").ok(),
        Some("/tmp/petrel-py/bin/python".to_string()),
    ];
    for p in candidates.into_iter().flatten() {
        let ok = std::process::Command::new(&p)
            .args(["-c", "import nats, nkeys"])
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
        "PETREL_REQUIRE_PYTHON is set but no Python with nats-py and nkeys was found"
    );
    eprintln!("skipped: no Python with nats-py and nkeys (python3 -m venv /tmp/petrel-py && /tmp/petrel-py/bin/pip install nats-py nkeys)");
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
