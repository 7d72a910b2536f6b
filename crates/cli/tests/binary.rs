//! The `petrel` executable: flags, exit codes, logs, config files, signals.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use petrel_testkit::{spawn_binary_with, RawClient};

const BIN: &str = env!("CARGO_BIN_EXE_petrel");

fn run(args: &[&str]) -> (i32, String, String) {
    run_env(args, &[])
}

/// Runs petrel with `args` and the environment variables `env` added.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run petrel");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_and_help() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("petrel: v"), "{out}");
    assert!(out.contains("2.10.0"));
    let (code, out, _) = run(&["-h"]);
    assert_eq!(code, 0);
    for flag in [
        "-addr",
        "-port",
        "-jetstream",
        "-store_dir",
        "-user",
        "-pass",
        "-auth",
        "-http_port",
        "-config",
    ] {
        assert!(out.contains(flag), "help lacks {flag}");
    }
}

#[test]
fn bad_flags_fail_with_one_line() {
    for (args, want) in [
        (&["--bogus"][..], "flag provided but not defined: -bogus"),
        (&["-p", "abc"], "invalid value \"abc\" for flag -p"),
        (&["-p"], "flag needs an argument: -p"),
        (&["--user", "a"], "--user requires --pass"),
        (
            &["-c", "/nonexistent/petrel.conf"],
            "cannot load config file",
        ),
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn config_test_mode() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.conf");
    std::fs::write(&good, "port: 4333\nmax_payload: 64KB\n").unwrap();
    let (code, out, _) = run(&["-t", "-c", good.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("test is successful"));
    for example in ["nats.conf", "petrel.toml", "medisync.conf"] {
        let path = format!("{}/../../config/{example}", env!("CARGO_MANIFEST_DIR"));
        let (code, out, err) = run(&["-t", "-c", &path]);
        assert_eq!(code, 0, "{example}: {err}");
        assert!(out.contains("test is successful"));
    }
    // The compose service's file takes its passwords from the environment.
    let compose = format!(
        "{}/../../config/medisync-compose.conf",
        env!("CARGO_MANIFEST_DIR")
    );
    let env = [
        ("MEDISYNC_ETL_PASSWORD", "etl-secret"),
        ("MEDISYNC_API_PASSWORD", "api-secret"),
    ];
    let (code, out, err) = run_env(&["-t", "-c", &compose], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("test is successful"));
    let (code, _, err) = run_env(&["-t", "-c", &compose], &env[1..]);
    assert_eq!(code, 1);
    assert!(err.contains("MEDISYNC_ETL_PASSWORD"), "{err}");
    let toml = dir.path().join("bad.toml");
    std::fs::write(&toml, "port = \"x\"\n").unwrap();
    let (code, _, err) = run(&["-t", "-c", toml.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.toml:1:8"), "{err}");
    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "port: {\n").unwrap();
    let (code, _, err) = run(&["-t", "-c", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.conf:"), "{err}");
}

#[tokio::test]
async fn serves_clients_and_logs_like_nats_server() {
    let server = spawn_binary_with(Path::new(BIN), &["-n", "bin-test"]).expect("start petrel");
    let nc = async_nats::connect(server.client_url()).await.unwrap();
    let mut sub = nc.subscribe("hello").await.unwrap();
    nc.flush().await.unwrap();
    nc.publish("hello", "world".into()).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.payload, "world");
    let mut raw = RawClient::connect(server.addr()).await;
    raw.send(b"PING\r\n").await;
    raw.expect(b"PONG\r\n").await;
    let log = server.log_lines().join("\n");
    assert!(log.contains("Server is ready"), "{log}");
    assert!(log.contains("Name:     bin-test"), "{log}");
}

#[tokio::test]
async fn config_file_applies_and_flags_override() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nats.conf");
    std::fs::write(
        &conf,
        "server_name: from-file\nmax_payload: 100\nauthorization { user: etl, password: pw }\n",
    )
    .unwrap();
    let server = spawn_binary_with(
        Path::new(BIN),
        &[
            "-c",
            conf.to_str().unwrap(),
            "-n",
            "from-flag",
            "--max_payload",
            "50",
        ],
    )
    .unwrap();
    let mut raw = RawClient::connect(server.addr()).await;
    raw.send(b"CONNECT {\"user\":\"etl\",\"pass\":\"pw\",\"verbose\":false}\r\nPUB x 51\r\n")
        .await;
    raw.expect(b"-ERR 'Maximum Payload Violation'\r\n").await;
    let nc = async_nats::ConnectOptions::with_user_and_password("etl".into(), "pw".into())
        .connect(server.client_url())
        .await
        .unwrap();
    assert_eq!(nc.server_info().server_name, "from-flag");
    assert_eq!(
        nc.server_info().max_payload,
        50,
        "--max_payload overrides the file"
    );
    assert!(async_nats::connect(server.client_url()).await.is_err());
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_flushes_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("petrel.pid");
    let log_file = dir.path().join("petrel.log");
    let mut child = Command::new(BIN)
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            "-1",
            "-P",
            pid_file.to_str().unwrap(),
            "-l",
            log_file.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // With -l the log goes to the file: wait for the listen line there.
    let addr = {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log_file).unwrap_or_default();
            if let Some(a) = text
                .lines()
                .find_map(|l| l.split("Listening for client connections on ").nth(1))
            {
                break a.trim().parse::<std::net::SocketAddr>().unwrap();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no listen line in {text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid as u32, child.id());
    // Transparent huge pages are off for the server (mimalloc refaulting zeroed 2 MiB
    // pages cost a fifth of the CPU per small message); kernels before 6.x lack the line.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }
    let mut raw = RawClient::connect_with(addr, r#"{"verbose":false}"#).await;
    raw.send(b"SUB q 1\r\nPING\r\n").await;
    raw.expect(b"PONG\r\n").await;
    let publ = async_nats::connect(format!("nats://{addr}")).await.unwrap();
    for _ in 0..200 {
        publ.publish("q", "z".into()).await.unwrap();
    }
    publ.flush().await.unwrap();
    // SIGTERM via kill(1): no unsafe code needed in the test.
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..200 {
        raw.expect(b"MSG q 1 1\r\nz\r\n").await;
    }
    raw.expect_closed().await;
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap().code())
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(log.contains("[INF] Trapped \"terminated\" signal"), "{log}");
    assert!(log.contains("[INF] Initiating Shutdown..."), "{log}");
    assert!(log.contains("Server Exiting.."), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "no ANSI escape codes in the log file: {log:?}"
    );
    assert!(!pid_file.exists(), "pid file removed on exit");
}

#[tokio::test]
async fn trace_logs_protocol_without_secrets() {
    let server = spawn_binary_with(
        Path::new(BIN),
        &["-V", "--user", "etl", "--pass", "hunter2"],
    )
    .unwrap();
    let mut raw = RawClient::connect(server.addr()).await;
    raw.send(b"CONNECT {\"user\":\"etl\",\"pass\":\"hunter2\",\"verbose\":false}\r\nSUB trace.me 7\r\nPING\r\n").await;
    raw.expect(b"PONG\r\n").await;
    let mut bad = RawClient::connect(server.addr()).await;
    bad.send(b"CONNECT {\"user\":\"etl\",\"pass\":\"wrong-secret\"}\r\n")
        .await;
    bad.expect(b"-ERR 'Authorization Violation'\r\n").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = server.log_lines().join("\n");
        if log.contains("Authorization Violation") || std::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(log.contains("<<- [SUB trace.me 7]"), "{log}");
    assert!(!log.contains('\u{1b}'), "no ANSI escape codes: {log:?}");
    assert!(
        log.contains("[WRN]") && log.contains("Authorization Violation"),
        "{log}"
    );
    assert!(
        !log.contains("hunter2") && !log.contains("wrong-secret"),
        "secret leaked: {log}"
    );
}

#[tokio::test]
async fn tls_flags() {
    let dir = tempfile::tempdir().unwrap();
    let certs = petrel_testkit::TestCerts::generate(dir.path()).unwrap();
    let server = spawn_binary_with(
        Path::new(BIN),
        &[
            "--tlsverify",
            "--tlscert",
            certs.server_cert.to_str().unwrap(),
            "--tlskey",
            certs.server_key.to_str().unwrap(),
            "--tlscacert",
            certs.ca.to_str().unwrap(),
        ],
    )
    .unwrap();
    let nc = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(certs.ca.clone())
        .add_client_certificate(certs.client_cert.clone(), certs.client_key.clone())
        .connect(server.client_url())
        .await
        .unwrap();
    nc.flush().await.unwrap();
    assert!(nc.server_info().tls_required);
    let (code, _, err) = run(&["--tls"]);
    assert_eq!(code, 1);
    assert!(err.contains("--tlscert"), "{err}");
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_and_bad_file_keeps_old_config() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nats.conf");
    std::fs::write(
        &conf,
        "authorization { users: [ { user: old, password: pw1 } ] }\n",
    )
    .unwrap();
    let server = spawn_binary_with(Path::new(BIN), &["-c", conf.to_str().unwrap()]).unwrap();
    let mut old = RawClient::connect_with(
        server.addr(),
        r#"{"verbose":false,"user":"old","pass":"pw1"}"#,
    )
    .await;
    let hup = |pid: u32| {
        let ok = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };

    std::fs::write(
        &conf,
        "authorization { users: [ { user: new, password: pw2 } ] }\n",
    )
    .unwrap();
    hup(server.pid());
    old.expect(b"-ERR 'Authorization Violation'\r\n").await;
    old.expect_closed().await;
    let c = async_nats::ConnectOptions::with_user_and_password("new".into(), "pw2".into())
        .connect(server.client_url())
        .await
        .unwrap();
    c.flush().await.unwrap();

    std::fs::write(&conf, "authorization { users: [ {\n").unwrap();
    hup(server.pid());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let log = server.log_lines().join("\n");
        if log.contains("Failed to reload server configuration") {
            assert!(
                log.contains("nats.conf:"),
                "error names the position: {log}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reload failure logged: {log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The previous configuration is still in force.
    c.flush().await.unwrap();
    let again = async_nats::ConnectOptions::with_user_and_password("new".into(), "pw2".into())
        .connect(server.client_url())
        .await
        .unwrap();
    again.flush().await.unwrap();
}

/// A startup error names its cause once (not "X: cause: cause").
#[test]
fn startup_errors_print_their_cause_once() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let store = file.join("store");
    let store = store.to_str().unwrap();
    for (args, cause) in [
        (
            vec!["-c", "/nonexistent/petrel.conf"],
            "No such file or directory",
        ),
        (
            vec!["-a", "127.0.0.1", "-p", port.as_str()],
            "Address already in use",
        ),
        (
            vec!["-a", "127.0.0.1", "-p", "-1", "-js", "-sd", store],
            "Not a directory",
        ),
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        let last = err.trim_end().lines().last().unwrap_or_default();
        assert_eq!(last.matches(cause).count(), 1, "{args:?}: {last}");
    }
}

/// `-t` refuses what a real run refuses (an unknown key, as nats-server) and shows what a
/// real run warns about.
#[test]
fn config_test_mode_matches_a_real_run() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.conf");
    std::fs::write(&typo, "port: 4222\nmax_payloud: 1MB\n").unwrap();
    let (code, out, err) = run(&["-t", "-c", typo.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("typo.conf:2:1: unknown field \"max_payloud\""),
        "{err}"
    );
    let (code, _, err) = run(&["-c", typo.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown field \"max_payloud\""), "{err}");
    let later = dir.path().join("later.conf");
    std::fs::write(&later, "port: 4222\ngateway { port: 7222 }\n").unwrap();
    let (code, out, err) = run(&["-t", "-c", later.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("test is successful"), "{out}");
    assert!(err.contains("gateway is not supported yet"), "{err}");
}

/// A second server on a store directory in use refuses to start and names the holder.
#[test]
fn a_store_directory_in_use_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().to_str().unwrap();
    let first = spawn_binary_with(Path::new(BIN), &["-js", "-sd", sd]).unwrap();
    let (code, _, err) = run(&["-a", "127.0.0.1", "-p", "-1", "-js", "-sd", sd]);
    assert_eq!(code, 1, "{err}");
    let want = format!("is in use by another server (pid {})", first.pid());
    assert!(err.contains(&want), "{err}");
    drop(first);
}

/// Each recovered stream is logged once.
#[tokio::test]
async fn each_recovered_stream_is_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().to_str().unwrap();
    let s = spawn_binary_with(Path::new(BIN), &["-js", "-sd", sd]).unwrap();
    let nc = async_nats::connect(s.client_url()).await.unwrap();
    let js = async_nats::jetstream::new(nc);
    for name in ["A", "B"] {
        js.create_stream(async_nats::jetstream::stream::Config {
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    drop(s);
    let s = spawn_binary_with(Path::new(BIN), &["-js", "-sd", sd]).unwrap();
    let _ = async_nats::connect(s.client_url()).await.unwrap();
    let lines = s.log_lines();
    for name in ["stream=A", "stream=B"] {
        let n = lines
            .iter()
            .filter(|l| l.contains("stream recovered") && l.contains(name))
            .count();
        assert_eq!(n, 1, "{name}: {lines:#?}");
    }
}

/// `--healthcheck` (the container image's HEALTHCHECK) exits 0 against a healthy server's
/// `/healthz` and 1, saying why, when nothing answers.
#[test]
fn healthcheck_flag_probes_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().to_str().unwrap();
    let s = spawn_binary_with(Path::new(BIN), &["-js", "-sd", sd, "-m", "-1"]).unwrap();
    let addr = s.monitor_addr(Duration::from_secs(10)).expect("monitor");
    let port = addr.port().to_string();
    let (code, _, err) = run(&["--healthcheck", "-m", &port]);
    assert_eq!(code, 0, "{err}");
    let url = format!("http://{addr}/healthz");
    let (code, _, err) = run(&["--healthcheck_url", &url]);
    assert_eq!(code, 0, "{err}");
    drop(s);
    let (code, _, err) = run(&["--healthcheck_url", &url]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("petrel: unhealthy: cannot connect to"),
        "{err}"
    );
}
