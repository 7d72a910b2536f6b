//! The binary's lifecycle controls: `--ports_file_dir` (how other languages find a server
//! started with `-p -1`), `--signal <sig>=<pid file>` (reload, ldm) and lame-duck mode on
//! SIGUSR2 ending in a clean exit.

#![cfg(unix)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_petrel");

/// Waits for `<dir>/petrel_<pid>.ports` and returns its JSON.
fn wait_ports_file(dir: &Path, pid: u32) -> serde_json::Value {
    let path = dir.join(format!("petrel_{pid}.ports"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            return serde_json::from_str(&text).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no ports file at {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn ports_file_signal_reload_and_lame_duck_exit() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("petrel.pid");
    let log_file = dir.path().join("petrel.log");
    let mut child = Command::new(BIN)
        .args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
        .arg(dir.path())
        .args(["-P"])
        .arg(&pid_file)
        .args(["-l"])
        .arg(&log_file)
        .args([
            "--lame_duck_duration",
            "1s",
            "--lame_duck_grace_period",
            "100ms",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ports = wait_ports_file(dir.path(), child.id());
    let url = ports["nats"][0].as_str().unwrap().to_string();
    assert!(url.starts_with("nats://127.0.0.1:"), "{ports}");
    let client = async_nats::connect(url.as_str()).await.unwrap();
    client.flush().await.unwrap();

    // --signal reload=<pid file>: the running server logs a reload.
    let signal = |spec: String| {
        let out = Command::new(BIN)
            .args(["--signal", &spec])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    signal(format!("reload={}", pid_file.display()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log_file)
        .unwrap_or_default()
        .contains("Reloaded server configuration")
    {
        assert!(Instant::now() < deadline, "no reload logged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // --signal ldm: lame duck, clients closed, then a clean exit that removes the files.
    signal(format!("ldm={}", pid_file.display()));
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap().code())
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(
        log.contains("Entering lame duck mode, stop accepting new clients"),
        "{log}"
    );
    assert!(log.contains("Server Exiting.."), "{log}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ports") || n.ends_with(".pid"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn signal_errors_are_one_line() {
    let out = Command::new(BIN)
        .args(["--signal", "bogus=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown signal"), "{err}");
    let out = Command::new(BIN)
        .args(["--signal", "stop=999999999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sending SIGKILL to pid 999999999 failed: No such process"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// `$SYS.REQ.SERVER.<id>.RELOAD` re-reads the binary's config file, and its monitoring
/// requests are answered (the binary installs both).
#[tokio::test]
async fn system_account_reload_and_varz_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("petrel.conf");
    let write = |max_payload: u32| {
        std::fs::write(
            &conf,
            format!(
                "max_payload: {max_payload}\naccounts {{ SYS: {{ users: [ {{user: admin, password: admin}} ] }} }}\nsystem_account: SYS\n"
            ),
        )
        .unwrap();
    };
    write(1000);
    let mut child = Command::new(BIN)
        .args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ports = wait_ports_file(dir.path(), child.id());
    let url = ports["nats"][0].as_str().unwrap().to_string();
    let admin = async_nats::ConnectOptions::with_user_and_password("admin".into(), "admin".into())
        .connect(url.as_str())
        .await
        .unwrap();
    let ask = |subject: String| {
        let admin = admin.clone();
        async move {
            let m = admin.request(subject, "".into()).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap()
        }
    };
    let varz = ask("$SYS.REQ.SERVER.PING.VARZ".into()).await;
    assert_eq!(varz["data"]["max_payload"], 1000, "{varz}");
    let id = varz["data"]["server_id"].as_str().unwrap().to_string();
    write(2000);
    let reload = ask(format!("$SYS.REQ.SERVER.{id}.RELOAD")).await;
    assert!(reload.get("error").is_none(), "{reload}");
    let varz = ask("$SYS.REQ.SERVER.PING.VARZ".into()).await;
    assert_eq!(varz["data"]["max_payload"], 2000, "{varz}");
    // A file that does not load: the error comes back, the running config stays.
    std::fs::write(&conf, "max_payload: {").unwrap();
    let reload = ask(format!("$SYS.REQ.SERVER.{id}.RELOAD")).await;
    assert_eq!(reload["error"]["code"], 500, "{reload}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `--cluster`, `--cluster_name` and `--routes` form a cluster of two processes; the
/// ports file names the route listener as nats-server's does.
#[tokio::test]
async fn cluster_flags_join_two_processes() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let start = |args: &[&str]| {
        Command::new(BIN)
            .args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = start(&["--cluster", "nats://127.0.0.1:-1", "--cluster_name", "cli"]);
    let ports = wait_ports_file(dir.path(), first.id());
    let route = ports["cluster"][0]
        .as_str()
        .expect("cluster URL")
        .to_string();
    let mut second = start(&[
        "--cluster",
        "nats://127.0.0.1:-1",
        "--cluster_name",
        "cli",
        "--routes",
        &route,
    ]);
    let ports2 = wait_ports_file(dir.path(), second.id());
    let a = async_nats::connect(ports["nats"][0].as_str().unwrap())
        .await
        .unwrap();
    let b = async_nats::connect(ports2["nats"][0].as_str().unwrap())
        .await
        .unwrap();
    let mut sub = b.subscribe("across").await.unwrap();
    b.flush().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        a.publish("across", "hi".into()).await.unwrap();
        a.flush().await.unwrap();
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), sub.next()).await {
            assert_eq!(&m.payload[..], b"hi");
            break;
        }
        assert!(Instant::now() < deadline, "no message across the route");
    }
    for child in [&mut first, &mut second] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
