//! The monitoring dashboard (`GET /` on the monitoring port) in a real headless Chromium.
//!
//! A server with JetStream and monitoring gets named async-nats connections,
//! subscriptions, core traffic, two streams and a durable pull consumer with unacked
//! deliveries. While core traffic still flows, Chromium renders the page with virtual time
//! (a minute of one-second polls in a few real seconds) and saves a screenshot to
//! `target/test-artifacts/dashboard.png`. Then the traffic stops, the counters settle,
//! Chromium renders the page again with `--dump-dom`, and every number the page shows (read
//! back from its `id` / `data-*` attributes) must equal what `/varz`, `/connz`, `/subsz`
//! and `/jsz` say.
//!
//! Needs `chromium` (Debian: `apt-get install -y chromium`; or `PETREL_CHROMIUM=<path>`),
//! so it is `#[ignore]`d: `cargo test --workspace` lists it as ignored, and
//! `cargo test -p petrel-tests -- --ignored` runs it. `.ci/run` installs Chromium, sets
//! `PETREL_REQUIRE_BROWSER=1` (a missing browser then fails the test) and runs the ignored
//! tests; run by hand without a browser, it prints a SKIP line. `PETREL_SKIP_BROWSER_TESTS=1`
//! always skips.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, stream};
use futures::StreamExt;
use petrel_testkit::{http_get, spawn_jetstream_with_monitor};
use serde_json::Value;

use crate::support::publish_all;

/// Chromium is killed after this long: a hang must not block CI.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(30);

/// The browser: `$PETREL_CHROMIUM`, `/usr/bin/chromium`, or one on `PATH`.
fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PETREL_CHROMIUM") {
        return Some(p.into());
    }
    let debian = Path::new("/usr/bin/chromium");
    if debian.is_file() {
        return Some(debian.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| {
            [
                "chromium",
                "chromium-browser",
                "google-chrome",
                "google-chrome-stable",
            ]
            .map(|name| dir.join(name))
        })
        .find(|p| p.is_file())
}

/// Run headless Chromium on `url` with `args` (a fresh profile, killed after
/// [`CHROMIUM_TIMEOUT`]); its stdout.
async fn chromium(bin: &Path, url: &str, args: &[String]) -> String {
    let profile = tempfile::tempdir().expect("temporary chromium profile");
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    // On timeout the child is dropped, which kills it (kill_on_drop).
    let out = tokio::time::timeout(CHROMIUM_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("chromium did not finish within {CHROMIUM_TIMEOUT:?}"))
        .expect("wait for chromium");
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One start tag of the dumped DOM: its attributes and the text right after it.
#[derive(Debug)]
struct Tag {
    attrs: HashMap<String, String>,
    text: String,
}

impl Tag {
    fn attr(&self, name: &str) -> &str {
        self.attrs.get(name).map_or("", String::as_str)
    }

    /// `data-value` as an integer.
    fn value(&self) -> u64 {
        self.attr("data-value")
            .parse()
            .unwrap_or_else(|e| panic!("data-value of {self:?}: {e}"))
    }
}

/// The start tags of serialized HTML (scripts skipped), enough to read attributes back.
fn parse_tags(html: &str) -> Vec<Tag> {
    let mut tags = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let name_end = rest
            .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        let mut attrs = HashMap::new();
        let mut s = &rest[name_end..];
        loop {
            s = s.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '/');
            if s.is_empty() || s.starts_with('>') {
                break;
            }
            let key_end = s
                .find(|c: char| c.is_ascii_whitespace() || c == '=' || c == '>')
                .unwrap_or(s.len());
            let key = s[..key_end].to_string();
            s = &s[key_end..];
            let mut value = String::new();
            if let Some(v) = s.strip_prefix('=') {
                let (raw, after) = match v.chars().next() {
                    Some(q @ ('"' | '\'')) => {
                        let end = v[1..].find(q).map_or(v.len(), |e| e + 1);
                        (&v[1..end], v.get(end + 1..).unwrap_or(""))
                    }
                    _ => {
                        let end = v
                            .find(|c: char| c.is_ascii_whitespace() || c == '>')
                            .unwrap_or(v.len());
                        (&v[..end], &v[end..])
                    }
                };
                value = unescape(raw);
                s = after;
            }
            attrs.insert(key, value);
        }
        rest = s.strip_prefix('>').unwrap_or(s);
        if name == "script" || name == "style" {
            let close = format!("</{name}");
            rest = rest.find(&close).map_or("", |e| &rest[e..]);
            continue;
        }
        let text = unescape(&rest[..rest.find('<').unwrap_or(rest.len())]);
        tags.push(Tag { attrs, text });
    }
    tags
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// Find elements of the dumped DOM by attributes.
struct Dom(Vec<Tag>);

impl Dom {
    /// The one element with all of `attrs`.
    fn find(&self, attrs: &[(&str, &str)]) -> &Tag {
        let found: Vec<&Tag> = self
            .0
            .iter()
            .filter(|t| {
                attrs
                    .iter()
                    .all(|(k, v)| t.attrs.get(*k).map(String::as_str) == Some(v))
            })
            .collect();
        match found.as_slice() {
            [one] => one,
            _ => panic!("{} elements with {attrs:?}", found.len()),
        }
    }

    fn id(&self, id: &str) -> &Tag {
        self.find(&[("id", id)])
    }
}

/// `GET path` as JSON.
async fn json(addr: std::net::SocketAddr, path: &str) -> Value {
    let r = http_get(addr, path).await.expect("GET from the monitor");
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.json()
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an unsigned integer: {v}"))
}

async fn named(url: &str, name: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .name(name)
        .connect(url)
        .await
        .expect("connect")
}

/// The numbers that must stop moving before the page is compared with the endpoints:
/// `/varz`'s counters, `/connz` and `/jsz` without the fields that move on their own.
async fn counters(addr: std::net::SocketAddr) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for key in ["now", "uptime", "idle", "last_activity", "rtt"] {
                    map.remove(key);
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let v = json(addr, "/varz").await;
    let mut all = serde_json::json!({
        "varz": [v["in_msgs"], v["out_msgs"], v["in_bytes"], v["out_bytes"], v["subscriptions"]],
        "connz": json(addr, "/connz").await["connections"],
        "jsz": json(addr, "/jsz?streams=true&consumers=true").await["account_details"],
        "accstatz": json(addr, "/accstatz?unused=1").await["account_statz"],
    });
    strip(&mut all);
    all
}

/// The browser to use; `None` (skip) when `PETREL_SKIP_BROWSER_TESTS=1`, or when there is
/// none and `PETREL_REQUIRE_BROWSER` is not `1`; otherwise panics with how to install one.
pub(crate) fn browser_or_skip() -> Option<PathBuf> {
    if std::env::var("PETREL_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
        eprintln!("note: PETREL_SKIP_BROWSER_TESTS=1, skipping the dashboard browser test");
        return None;
    }
    let Some(browser) = find_chromium() else {
        if std::env::var("PETREL_REQUIRE_BROWSER").as_deref() != Ok("1") {
            println!(
                "SKIP dashboard_in_headless_chromium: no Chromium found \
                 (apt-get install -y chromium to run it; CI sets PETREL_REQUIRE_BROWSER=1)"
            );
            return None;
        }
        panic!(
            "the dashboard test needs Chromium and found none (looked for $PETREL_CHROMIUM, \
             /usr/bin/chromium, chromium / chromium-browser / google-chrome on PATH).\n\
             Install it with: apt-get install -y --no-install-recommends chromium\n\
             or skip browser tests with PETREL_SKIP_BROWSER_TESTS=1"
        );
    };
    Some(browser)
}

/// What the scenario keeps open: the clients, their subscriptions and the unacked
/// deliveries.
struct Scenario {
    api: async_nats::Client,
    _billing: async_nats::Client,
    _audit: async_nats::Client,
    _subs: Vec<async_nats::Subscriber>,
    _unacked: Vec<jetstream::Message>,
    /// `metrics.tick` and `metrics.>` (fanout 2 for the core traffic), drained later.
    metrics: Vec<async_nats::Subscriber>,
}

/// Three named connections, six subscriptions, streams ORDERS (file, 12 messages) and
/// EVENTS (memory, 4 messages), and a durable pull consumer `worker` on ORDERS with 5
/// messages delivered and the first 2 acked.
async fn scenario(url: &str) -> Scenario {
    let api = named(url, "orders-api").await;
    let billing = named(url, "billing-worker").await;
    let audit = named(url, "audit-log").await;
    let mut orders_sub = billing.subscribe("orders.*").await.unwrap();
    let events_sub = billing.subscribe("events.>").await.unwrap();
    let queue_sub = billing
        .queue_subscribe("jobs", "workers".into())
        .await
        .unwrap();
    let ticks = audit.subscribe("metrics.tick").await.unwrap();
    let all_metrics = audit.subscribe("metrics.>").await.unwrap();
    let audit_sub = audit.subscribe("audit.>").await.unwrap();
    billing.flush().await.unwrap();
    audit.flush().await.unwrap();

    let js = jetstream::new(api.clone());
    let orders = js
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.*".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    js.create_stream(stream::Config {
        name: "EVENTS".into(),
        subjects: vec!["events.>".into()],
        storage: stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    publish_all(&js, "orders.new", (0..12).map(|i| format!("order {i}"))).await;
    let logins = (0..4).map(|i| format!("{{\"user\":{i}}}"));
    publish_all(&js, "events.user.login", logins).await;
    for _ in 0..12 {
        orders_sub.next().await.expect("core copy of an order");
    }
    let worker = orders
        .create_consumer(pull::Config {
            durable_name: Some("worker".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = worker.fetch().max_messages(5).messages().await.unwrap();
    let mut delivered = Vec::new();
    while let Some(msg) = batch.next().await {
        delivered.push(msg.unwrap());
    }
    assert_eq!(delivered.len(), 5);
    let unacked = delivered.split_off(2);
    for msg in &delivered {
        msg.double_ack().await.unwrap();
    }
    Scenario {
        api,
        _billing: billing,
        _audit: audit,
        _subs: vec![orders_sub, events_sub, queue_sub, audit_sub],
        _unacked: unacked,
        metrics: vec![ticks, all_metrics],
    }
}

/// Render the page into `target/test-artifacts/dashboard.png` (1280x1000, a minute of
/// virtual time) and check that a real image came out.
async fn screenshot(browser: &Path, page: &str) -> PathBuf {
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("create target/test-artifacts");
    let png = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&png);
    chromium(
        browser,
        page,
        &[
            "--virtual-time-budget=60000".into(),
            "--window-size=1280,1000".into(),
            format!("--screenshot={}", png.display()),
        ],
    )
    .await;
    let shot = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert!(shot.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(shot.len() > 30_000, "screenshot only {} bytes", shot.len());
    let dim = |at: usize| u32::from_be_bytes([shot[at], shot[at + 1], shot[at + 2], shot[at + 3]]);
    assert_eq!((dim(16), dim(20)), (1280, 1000), "screenshot size (IHDR)");
    png
}

/// Wait (up to 10 s) until [`counters`] stops changing; the settled numbers.
async fn settle(addr: std::net::SocketAddr) -> Value {
    let mut last = counters(addr).await;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = counters(addr).await;
        if now == last {
            break;
        }
        last = now;
    }
    last
}

#[tokio::test]
#[ignore = "needs Chromium: cargo test -p petrel-tests -- --ignored (CI runs it)"]
async fn dashboard_in_headless_chromium() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let server = spawn_jetstream_with_monitor().await;
    let m = server.monitor_addr().expect("monitoring on");
    let page = format!("http://{m}/");
    let mut sc = scenario(&server.client_url()).await;

    // Core traffic keeps flowing while the screenshot is taken, so the charts have rates.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (api, stop) = (sc.api.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for i in 0..100 {
                    let body = "x".repeat(32 + i % 96);
                    api.publish("metrics.tick", body.into()).await.unwrap();
                }
                api.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let drains: Vec<_> = sc
        .metrics
        .drain(..)
        .map(|sub| tokio::spawn(sub.count()))
        .collect();
    let png = screenshot(&browser, &page).await;
    eprintln!("dashboard screenshot: {}", png.display());

    // Stop the traffic, let every counter settle, then read the page's numbers back.
    stop.store(true, Ordering::Relaxed);
    publisher.await.unwrap();
    sc.api.flush().await.unwrap();
    let settled = settle(m).await;
    // The server's own periodic events (`$SYS` statsz) are matched too, so `num_matches`
    // may move while the page is read: it is checked between a read before and one after.
    let matches_before = u(&json(m, "/subsz").await["num_matches"]);
    let html = chromium(
        &browser,
        &page,
        &["--virtual-time-budget=5000".into(), "--dump-dom".into()],
    )
    .await;
    let dom = Dom(parse_tags(&html));
    let varz = json(m, "/varz").await;
    let connz = json(m, "/connz?subs=1").await;
    let subsz = json(m, "/subsz").await;
    let jsz = json(m, "/jsz?streams=true&consumers=true&config=true").await;
    let accstatz = json(m, "/accstatz?unused=1").await;
    assert_eq!(counters(m).await, settled, "counters moved meanwhile");

    check_status(&dom, &html);
    check_server(&dom, &varz, &server.addr().to_string());
    check_totals(&dom, &varz, &subsz, matches_before);
    check_connections(&dom, &connz);
    check_jetstream(&dom, &jsz);
    check_accounts(&dom, &accstatz);
    assert!(html.contains("orders.*"), "stream subjects shown");
    drains.iter().for_each(|d| d.abort());
}

/// The page polled without errors, more than once (so rates were computed), and with
/// the traffic stopped every rate is 0.
fn check_status(dom: &Dom, html: &str) {
    let status = dom.id("status");
    assert_eq!(status.attr("data-state"), "ok", "status line: {html}");
    let polls: u64 = status.attr("data-polls").parse().unwrap();
    assert!(polls >= 3, "only {polls} polls");
    for chart in ["chart-msgs", "chart-bytes"] {
        let points: u64 = dom.id(chart).attr("data-points").parse().unwrap();
        assert!(points >= 2, "{chart}: {points} points");
    }
    for rate in [
        "rate-in-msgs",
        "rate-out-msgs",
        "rate-in-bytes",
        "rate-out-bytes",
    ] {
        assert_eq!(dom.id(rate).attr("data-value"), "0", "{rate}");
    }
}

fn check_server(dom: &Dom, varz: &Value, listen: &str) {
    let name = varz["server_name"].as_str().unwrap();
    assert_eq!(dom.id("server-name").text, name);
    let id = varz["server_id"].as_str().unwrap();
    assert_eq!(dom.id("server-id").attr("data-value"), id);
    assert_eq!(dom.id("server-listen").text, listen);
    assert!(!dom.id("server-uptime").text.is_empty());
    assert_eq!(dom.id("server-jetstream").attr("data-value"), "on");
    let version = varz["version"].as_str().unwrap();
    assert!(dom.id("server-version").text.contains(version));
}

fn check_totals(dom: &Dom, varz: &Value, subsz: &Value, matches_before: u64) {
    for (id, field) in [
        ("varz-connections", "connections"),
        ("varz-total-connections", "total_connections"),
        ("varz-subscriptions", "subscriptions"),
        ("varz-in-msgs", "in_msgs"),
        ("varz-out-msgs", "out_msgs"),
        ("varz-in-bytes", "in_bytes"),
        ("varz-out-bytes", "out_bytes"),
        ("varz-slow-consumers", "slow_consumers"),
    ] {
        assert_eq!(dom.id(id).value(), u(&varz[field]), "{id}");
    }
    assert_eq!(dom.id("varz-connections").value(), 3);
    assert!(dom.id("varz-in-msgs").value() > 500, "the traffic counted");
    let in_msgs = fmt_thousands(u(&varz["in_msgs"]));
    assert_eq!(dom.id("varz-in-msgs").text, in_msgs, "shown formatted");
    for (id, field) in [
        ("subsz-num-subscriptions", "num_subscriptions"),
        ("subsz-max-fanout", "max_fanout"),
    ] {
        assert_eq!(dom.id(id).value(), u(&subsz[field]), "{id}");
    }
    let shown = dom.id("subsz-num-matches").value();
    let after = u(&subsz["num_matches"]);
    assert!(
        (matches_before..=after).contains(&shown),
        "subsz-num-matches {shown} outside {matches_before}..={after}"
    );
}

fn check_connections(dom: &Dom, connz: &Value) {
    let conns = connz["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 3);
    for c in conns {
        let cid = c["cid"].to_string();
        let cell = |field: &str| dom.find(&[("data-cid", cid.as_str()), ("data-field", field)]);
        assert_eq!(cell("name").text, c["name"].as_str().unwrap());
        for field in [
            "subscriptions",
            "in_msgs",
            "out_msgs",
            "in_bytes",
            "out_bytes",
            "pending_bytes",
        ] {
            assert_eq!(cell(field).value(), u(&c[field]), "cid {cid} {field}");
        }
        let lang = c["lang"].as_str().unwrap();
        let version = c["version"].as_str().unwrap();
        assert_eq!(cell("client").text, format!("{lang} {version}"));
    }
}

/// The accounts table shows `/accstatz?unused=1`'s numbers, one row per account.
fn check_accounts(dom: &Dom, accstatz: &Value) {
    let accounts = accstatz["account_statz"].as_array().unwrap();
    assert!(accounts
        .iter()
        .any(|a| a["acc"] == "$G" && u(&a["conns"]) == 3));
    for a in accounts {
        let acc = a["acc"].as_str().unwrap();
        let cell = |field: &str| dom.find(&[("data-account", acc), ("data-field", field)]);
        for (field, want) in [
            ("conns", &a["conns"]),
            ("total_conns", &a["total_conns"]),
            ("num_subscriptions", &a["num_subscriptions"]),
            ("received_msgs", &a["received"]["msgs"]),
            ("sent_msgs", &a["sent"]["msgs"]),
            ("received_bytes", &a["received"]["bytes"]),
            ("sent_bytes", &a["sent"]["bytes"]),
            ("slow_consumers", &a["slow_consumers"]),
        ] {
            assert_eq!(cell(field).value(), u(want), "{acc} {field}");
        }
    }
}

fn check_jetstream(dom: &Dom, jsz: &Value) {
    for (id, field) in [
        ("jsz-streams", "streams"),
        ("jsz-consumers", "consumers"),
        ("jsz-messages", "messages"),
        ("jsz-bytes", "bytes"),
    ] {
        assert_eq!(dom.id(id).value(), u(&jsz[field]), "{id}");
    }
    assert_eq!(dom.id("jsz-api-total").value(), u(&jsz["api"]["total"]));
    let streams = jsz["account_details"][0]["stream_detail"]
        .as_array()
        .unwrap();
    assert_eq!(streams.len(), 2);
    for s in streams {
        let name = s["name"].as_str().unwrap();
        let cell = |field: &str| dom.find(&[("data-stream", name), ("data-field", field)]);
        for field in [
            "messages",
            "bytes",
            "first_seq",
            "last_seq",
            "consumer_count",
        ] {
            assert_eq!(cell(field).value(), u(&s["state"][field]), "{name} {field}");
        }
        for c in s["consumer_detail"].as_array().into_iter().flatten() {
            check_consumer(dom, name, c);
        }
    }
    let orders = |field: &str| dom.find(&[("data-stream", "ORDERS"), ("data-field", field)]);
    assert_eq!(orders("messages").value(), 12);
    assert_eq!(orders("consumer_count").value(), 1);
    let worker = |field: &str| {
        dom.find(&[
            ("data-stream", "ORDERS"),
            ("data-consumer", "worker"),
            ("data-field", field),
        ])
    };
    assert_eq!(worker("num_pending").value(), 7);
    assert_eq!(worker("num_ack_pending").value(), 3);
    assert_eq!(worker("delivered_stream_seq").value(), 5);
    assert_eq!(worker("ack_floor_stream_seq").value(), 2);
}

fn check_consumer(dom: &Dom, stream: &str, c: &Value) {
    let name = c["name"].as_str().unwrap();
    let cell = |field: &str| {
        dom.find(&[
            ("data-stream", stream),
            ("data-consumer", name),
            ("data-field", field),
        ])
    };
    for field in [
        "num_pending",
        "num_ack_pending",
        "num_redelivered",
        "num_waiting",
    ] {
        assert_eq!(cell(field).value(), u(&c[field]), "{name} {field}");
    }
    for pair in ["delivered", "ack_floor"] {
        for seq in ["stream_seq", "consumer_seq"] {
            let field = format!("{pair}_{seq}");
            assert_eq!(cell(&field).value(), u(&c[pair][seq]), "{name} {field}");
        }
    }
}

/// `1234567` as `1,234,567` (the page's integer format).
fn fmt_thousands(n: u64) -> String {
    let digits: Vec<char> = n.to_string().chars().collect();
    let head = match digits.len() % 3 {
        0 => 3.min(digits.len()),
        r => r,
    };
    let mut out: String = digits[..head].iter().collect();
    for group in digits[head..].chunks(3) {
        out.push(',');
        out.extend(group);
    }
    out
}

#[test]
fn thousands_and_tags() {
    for (n, want) in [
        (0, "0"),
        (12, "12"),
        (123, "123"),
        (1234, "1,234"),
        (1234567, "1,234,567"),
    ] {
        assert_eq!(fmt_thousands(n), want);
    }
    let dom = Dom(parse_tags(
        "<p id=a data-value='7' class=\"x &amp; y\">7 &lt; 8</p><script>if (a<b) {}</script><b id=\"b\">",
    ));
    assert_eq!(dom.id("a").value(), 7);
    assert_eq!(dom.id("a").attr("class"), "x & y");
    assert_eq!(dom.id("a").text, "7 < 8");
    assert_eq!(dom.id("b").text, "");
}

/// A two-node cluster: the page draws this server and its peer and lists the route with
/// the numbers `/routez` gives.
#[tokio::test]
#[ignore = "needs Chromium: cargo test -p petrel-tests -- --ignored (CI runs it)"]
async fn dashboard_draws_the_cluster() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let nodes = petrel_testkit::spawn_cluster_with(2, |b, _, _| b.http_port(0)).await;
    let m = nodes[0].monitor_addr().expect("monitoring on");
    let html = chromium(
        &browser,
        &format!("http://{m}/"),
        &["--virtual-time-budget=3000".into(), "--dump-dom".into()],
    )
    .await;
    let dom = Dom(parse_tags(&html));
    assert_eq!(dom.id("cluster-map").attr("data-peers"), "1", "{html}");
    assert_eq!(dom.id("cluster-name-text").text, "petrel-test");
    let routez = json(m, "/routez").await;
    let route = &routez["routes"][0];
    let rid = route["rid"].to_string();
    let name = dom.find(&[("data-rid", rid.as_str()), ("data-field", "remote_name")]);
    assert_eq!(name.text, "node-1");
    assert!(
        html.contains(">node-0<") && html.contains(">node-1<"),
        "both nodes drawn"
    );
}
