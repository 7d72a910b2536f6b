//! The dashboard's live subject view in a real headless Chromium, in real time (virtual
//! time opens no WebSocket): the page, opened at `/#live=<subject>`, reads the WebSocket
//! listener from `/varz`, subscribes over it with the NATS protocol and lists each
//! message. A small Python program drives Chromium through the DevTools protocol
//! (`aiohttp`, in the CI virtualenv) and reads the table back while the test publishes.
//!
//! Needs Chromium and that Python; `#[ignore]`d like the other browser test (CI runs it).

use std::process::Stdio;
use std::time::Duration;

use petrel_testkit::WebSocketOptions;

use crate::dashboard::browser_or_skip;
use crate::py_clients::python;

/// Opens `url` in headless Chromium and prints the live table's text and state once it
/// contains `want` (exit 0), or after `timeout` seconds (exit 1).
const CDP: &str = r#"
import asyncio, json, re, subprocess, sys, tempfile, time
import aiohttp

browser, url, want, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])

async def main():
    profile = tempfile.mkdtemp()
    proc = subprocess.Popen(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--remote-debugging-port=0", "--user-data-dir=" + profile, "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        port = None
        deadline = time.time() + timeout
        while port is None and time.time() < deadline:
            line = proc.stderr.readline().decode(errors="replace")
            m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if m:
                port = int(m.group(1))
        if port is None:
            print("no DevTools port"); return 1
        async with aiohttp.ClientSession() as s:
            async with s.put(f"http://127.0.0.1:{port}/json/new?about:blank") as r:
                target = await r.json(content_type=None)
            ws = await s.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
            # Navigate here: a URL's fragment would not survive /json/new's query string.
            await ws.send_json({"id": 0, "method": "Page.navigate", "params": {"url": url}})
            n = 0
            last = ""
            while time.time() < deadline:
                n += 1
                expr = "JSON.stringify([document.getElementById('live-body')?.textContent || '', (document.getElementById('live-state')?.dataset.state || '') + ': ' + (document.getElementById('live-state')?.textContent || ''), document.getElementById('live-body')?.dataset.count || '0'])"
                await ws.send_json({"id": n, "method": "Runtime.evaluate", "params": {"expression": expr, "returnByValue": True}})
                while True:
                    msg = await ws.receive_json()
                    if msg.get("id") == n:
                        break
                value = msg.get("result", {}).get("result", {}).get("value", "[]")
                last = value
                text, state, count = json.loads(value)
                if want in text:
                    print(json.dumps({"text": text, "state": state, "count": count}))
                    return 0
                await asyncio.sleep(0.2)
            print("timed out: " + last)
            return 1
    finally:
        proc.kill()
        proc.wait()

sys.exit(asyncio.run(main()))
"#;

#[tokio::test]
#[ignore = "needs Chromium: cargo test -p petrel-tests -- --ignored (CI runs it)"]
async fn the_dashboard_shows_a_subject_live() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let Some(py) = python() else {
        return;
    };
    let ws = WebSocketOptions {
        host: "127.0.0.1".parse().unwrap(),
        port: 0,
        no_tls: true,
        ..WebSocketOptions::default()
    };
    let server = petrel_testkit::spawn_with(|b| b.http_port(0).websocket(ws)).await;
    let m = server.monitor_addr().expect("monitoring on");
    let url = format!("http://127.0.0.1:{}/#live=orders.%3E", m.port());
    let mut child = tokio::process::Command::new(py)
        .args(["-c", CDP])
        .arg(&browser)
        .arg(&url)
        .arg("live-hello-7")
        .arg("25")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start python");
    let nc = crate::cluster::client(&server).await;
    // Publish until the page has shown the message (it subscribes once it has loaded).
    let mut i = 0u32;
    let status = loop {
        i += 1;
        nc.publish("orders.new", format!("live-hello-{}", i % 10).into())
            .await
            .unwrap();
        nc.flush().await.unwrap();
        tokio::select! {
            s = child.wait() => break s.expect("python ran"),
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        assert!(i < 400, "the page showed nothing in 40 s");
    };
    let out = child.wait_with_output().await.expect("python output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON line");
    assert_eq!(v["state"], "watching: watching orders.>", "{v}");
    assert!(
        v["count"].as_str().unwrap().parse::<u32>().unwrap() >= 1,
        "{v}"
    );
    assert!(v["text"].as_str().unwrap().contains("orders.new"), "{v}");
}
