//! The container image on this machine's Docker engine: the compose service turns healthy,
//! acknowledged messages survive `compose restart`, `down` + `up` and `docker stop`
//! (exit code 0, nats-server's shutdown lines), services resolve each other by name, and a
//! read-only or full store volume turns the healthcheck unhealthy with the cause logged.
//!
//! They need a Docker engine, so they are `#[ignore]`d: CI runs them with `--ignored` and
//! `PETREL_REQUIRE_DOCKER=1` after docker/build.sh; by hand without an engine they print a
//! SKIP line. Run them with
//! `cargo test -p petrel-tests --test integration container -- --ignored --nocapture`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};

use crate::docker_support::{
    docker_ok, docker_or_skip, ensure_image, free_port, health, logs, wait_health, Created,
    Project, IMAGE,
};

/// Connects as MediSync's etl user, retrying while the published port comes up.
async fn connect_etl(port: u16, password: &str) -> async_nats::Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let opts =
            async_nats::ConnectOptions::with_user_and_password("etl".into(), password.into());
        match opts.connect(format!("nats://127.0.0.1:{port}")).await {
            Ok(nc) => return nc,
            Err(e) if Instant::now() < deadline => {
                eprintln!("connect: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot connect to 127.0.0.1:{port}: {e}"),
        }
    }
}

/// The RECORDS stream of the tests: a file stream on the store volume.
fn records() -> stream::Config {
    stream::Config {
        name: "RECORDS".into(),
        subjects: vec!["records.ingest.>".into()],
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// Asserts RECORDS holds exactly `n` messages, sequences 1..=n, payloads `r<seq-1>`.
async fn assert_records(nc: &async_nats::Client, n: u64) {
    let js = jetstream::new(nc.clone());
    let mut s = js.get_stream("RECORDS").await.expect("RECORDS exists");
    let state = s.info().await.expect("stream info").state.clone();
    assert_eq!(
        (state.messages, state.first_sequence, state.last_sequence),
        (n, 1, n)
    );
    for seq in [1, n / 2, n] {
        let m = s.get_raw_message(seq).await.expect("stored message");
        assert_eq!(m.payload, format!("r{}", seq - 1).as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine: cargo test -p petrel-tests -- --ignored (CI runs it)"]
async fn compose_service_keeps_acknowledged_messages() {
    if !docker_or_skip("compose_service_keeps_acknowledged_messages") {
        return;
    }
    ensure_image();
    let password = format!("etl-{}", std::process::id());
    let project = Project::new("compose.yaml", &[("MEDISYNC_ETL_PASSWORD", &password)]);
    let took = project.up_healthy("petrel");
    println!("compose up -> healthy: {} ms", took.as_millis());

    let nc = connect_etl(project.client_port(), &password).await;
    let js = jetstream::new(nc.clone());
    js.create_stream(records()).await.expect("create RECORDS");
    let mut acks = Vec::new();
    for i in 0..1000 {
        let ack = js.publish("records.ingest.lab", format!("r{i}").into());
        acks.push(ack.await.expect("publish"));
    }
    for (i, ack) in acks.into_iter().enumerate() {
        assert_eq!(ack.await.expect("PubAck").sequence, i as u64 + 1);
    }
    assert_records(&nc, 1000).await;
    // The wrong password is refused: the config's $MEDISYNC_ETL_PASSWORD came from compose.
    let wrong = async_nats::ConnectOptions::with_user_and_password("etl".into(), "x".into())
        .connect(format!("nats://127.0.0.1:{}", project.client_port()))
        .await;
    assert!(wrong.is_err(), "a wrong password must be refused");
    drop(nc);
    // `petrel --signal reload` inside the container finds the server without a pid.
    let id = project.container("petrel");
    docker_ok(&["exec", &id, "/petrel", "--signal", "reload"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logs(&id).contains("Reloading server configuration") {
        assert!(
            Instant::now() < deadline,
            "no reload logged:\n{}",
            logs(&id)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    project.ok(&["restart"]);
    wait_health(
        &project.container("petrel"),
        "healthy",
        Duration::from_secs(60),
    );
    let nc = connect_etl(project.client_port(), &password).await;
    assert_records(&nc, 1000).await;
    drop(nc);

    project.ok(&["down"]);
    let volume = format!("{}_petrel-data", project.name);
    docker_ok(&["volume", "inspect", &volume]);
    project.up_healthy("petrel");
    let nc = connect_etl(project.client_port(), &password).await;
    assert_records(&nc, 1000).await;
    let log = logs(&project.container("petrel"));
    assert!(
        log.contains("Recovered 1 streams with 1000 messages"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine: cargo test -p petrel-tests -- --ignored (CI runs it)"]
async fn docker_stop_is_graceful_and_loses_no_acknowledged_message() {
    if !docker_or_skip("docker_stop_is_graceful_and_loses_no_acknowledged_message") {
        return;
    }
    ensure_image();
    let password = format!("etl-{}", std::process::id());
    let project = Project::new("compose.yaml", &[("MEDISYNC_ETL_PASSWORD", &password)]);
    project.up_healthy("petrel");
    let id = project.container("petrel");
    let nc = connect_etl(project.client_port(), &password).await;
    let js = jetstream::new(nc.clone());
    js.create_stream(records()).await.expect("create RECORDS");

    // Publish without pause while the container is stopped; remember every PubAck.
    let acked: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let sink = acked.clone();
    let publisher = tokio::spawn(async move {
        for i in 0.. {
            let payload = format!("s{i}");
            let Ok(ack) = js
                .publish("records.ingest.stop", payload.clone().into())
                .await
            else {
                break;
            };
            let Ok(ack) = ack.await else { break };
            sink.lock().unwrap().push((ack.sequence, payload));
        }
    });
    while acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    docker_ok(&["stop", "-t", "30", &id]);
    println!("docker stop: {} ms", start.elapsed().as_millis());
    assert_eq!(
        docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &id]),
        "0"
    );
    let log = logs(&id);
    for line in [
        "[INF] Trapped \"terminated\" signal",
        "[INF] Initiating Shutdown...",
        "[INF] Initiating JetStream Shutdown...",
        "[INF] JetStream Shutdown",
        "[INF] Server Exiting..",
    ] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }
    tokio::time::timeout(Duration::from_secs(30), publisher)
        .await
        .expect("the publisher gives up once the server is gone")
        .expect("publisher task");
    drop(nc);

    docker_ok(&["start", &id]);
    wait_health(&id, "healthy", Duration::from_secs(60));
    let nc = connect_etl(project.client_port(), &password).await;
    let s = jetstream::new(nc)
        .get_stream("RECORDS")
        .await
        .expect("RECORDS");
    let acked = acked.lock().unwrap().clone();
    println!("{} publishes acknowledged before the stop", acked.len());
    for (seq, payload) in acked {
        let m = s
            .get_raw_message(seq)
            .await
            .expect("acknowledged message kept");
        assert_eq!(m.payload, payload.as_bytes(), "sequence {seq}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine: cargo test -p petrel-tests -- --ignored (CI runs it)"]
async fn stack_services_reach_petrel_by_name() {
    if !docker_or_skip("stack_services_reach_petrel_by_name") {
        return;
    }
    ensure_image();
    let project = Project::new("compose.stack.yaml", &[]);
    project.up_healthy("petrel");
    // The one-shot container resolves "petrel" through Docker's DNS inside the static
    // binary and exits 0 once the broker answers healthy.
    let probe = project.container("broker-ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    while docker_ok(&["inspect", "-f", "{{.State.Status}}", &probe]) != "exited" {
        assert!(Instant::now() < deadline, "broker-ready still running");
        std::thread::sleep(Duration::from_millis(100));
    }
    let code = docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &probe]);
    assert_eq!(code, "0", "broker-ready: {}", logs(&probe));
    // The SynapticOS streams of seed 001, created from the host as the README shows.
    let nc = async_nats::connect(format!("nats://127.0.0.1:{}", project.client_port()))
        .await
        .expect("connect");
    let js = jetstream::new(nc);
    for config in synapticos_streams() {
        js.create_stream(config).await.expect("create stream");
    }
    let mut names = Vec::new();
    let mut list = js.stream_names();
    while let Some(n) = futures::StreamExt::next(&mut list).await {
        names.push(n.expect("stream name"));
    }
    names.sort();
    assert_eq!(names.len(), 5, "{names:?}");
    js.publish("security.alerts.login", "x".into())
        .await
        .expect("publish")
        .await
        .expect("stored in SECURITY_EVENTS");
}

/// The production streams of SynapticOS's JetStream configuration (seed 001).
fn synapticos_streams() -> Vec<stream::Config> {
    const MB: i64 = 1024 * 1024;
    const DAY: u64 = 24 * 3600;
    let table: [(&str, &[&str], i64, i64, u64); 5] = [
        (
            "CONSCIOUSNESS_EVENTS",
            &["consciousness.>"],
            50_000,
            512 * MB,
            1,
        ),
        (
            "ORCHESTRATOR_EVENTS",
            &["orchestrator.>"],
            100_000,
            1024 * MB,
            7,
        ),
        ("SECURITY_EVENTS", &["security.>"], 200_000, 2048 * MB, 30),
        (
            "HEALTH_METRICS",
            &["health.>", "metrics.>"],
            500_000,
            1024 * MB,
            7,
        ),
        (
            "PRIORITY_EVENTS",
            &["priority.>", "critical.>", "alert.>"],
            10_000,
            100 * MB,
            30,
        ),
    ];
    table
        .into_iter()
        .map(
            |(name, subjects, max_messages, max_bytes, days)| stream::Config {
                name: name.into(),
                subjects: subjects.iter().map(|s| s.to_string()).collect(),
                max_messages,
                max_bytes,
                max_age: Duration::from_secs(days * DAY),
                // Critical events are kept in memory for fast access.
                storage: if name == "PRIORITY_EVENTS" {
                    stream::StorageType::Memory
                } else {
                    stream::StorageType::File
                },
                ..Default::default()
            },
        )
        .collect()
}

/// Runs the image on `volume_arg` (a `-v` value) with a fast healthcheck, for the store
/// problem tests; returns the container and its client port.
fn run_on_volume(created: &mut Created, what: &str, volume_arg: &str) -> (String, u16) {
    let port = free_port();
    let publish = format!("{port}:4222");
    let name = created.run(
        what,
        &[
            "-p",
            &publish,
            "-v",
            volume_arg,
            "--health-interval",
            "1s",
            "--health-start-period",
            "1s",
            IMAGE,
        ],
    );
    (name, port)
}

/// Waits for `container` to turn unhealthy; returns its log and the healthcheck's output.
fn unhealthy_with_cause(container: &str, cause: &str) {
    wait_health(container, "unhealthy", Duration::from_secs(60));
    let log = logs(container);
    let expected = format!("[ERR] JetStream store directory /data is not writable: {cause}");
    assert!(
        log.contains(&expected),
        "no {expected:?} in the log:\n{log}"
    );
    let checks = docker_ok(&["inspect", "-f", "{{json .State.Health.Log}}", container]);
    assert!(checks.contains("petrel: unhealthy"), "{checks}");
    assert!(checks.contains(cause), "{checks}");
    assert_eq!(health(container), "unhealthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine: cargo test -p petrel-tests -- --ignored (CI runs it)"]
async fn read_only_store_volume_is_unhealthy_and_says_why() {
    if !docker_or_skip("read_only_store_volume_is_unhealthy_and_says_why") {
        return;
    }
    ensure_image();
    let mut created = Created::default();
    let volume = created.volume("ro", &[]);
    let (name, port) = run_on_volume(&mut created, "ro", &format!("{volume}:/data:ro"));
    unhealthy_with_cause(&name, "Read-only file system");
    // Core NATS stays up for the clients that do not need JetStream.
    let nc = async_nats::connect(format!("nats://127.0.0.1:{port}"))
        .await
        .expect("core NATS still serves");
    nc.flush().await.expect("PING/PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine: cargo test -p petrel-tests -- --ignored (CI runs it)"]
async fn full_store_volume_is_unhealthy_and_says_why() {
    if !docker_or_skip("full_store_volume_is_unhealthy_and_says_why") {
        return;
    }
    ensure_image();
    let mut created = Created::default();
    let tmpfs = ["--opt", "type=tmpfs", "--opt", "device=tmpfs"];
    let size = ["--opt", "o=size=4m,uid=65532,gid=65532"];
    let volume = created.volume("full", &[&tmpfs[..], &size[..]].concat());
    let (name, port) = run_on_volume(&mut created, "full", &format!("{volume}:/data"));
    wait_health(&name, "healthy", Duration::from_secs(60));
    let nc = async_nats::connect(format!("nats://127.0.0.1:{port}"))
        .await
        .expect("connect");
    let js = jetstream::new(nc);
    let config = stream::Config {
        name: "FILL".into(),
        subjects: vec!["fill".into()],
        ..Default::default()
    };
    js.create_stream(config).await.expect("create FILL");
    // Fill the volume: large messages, then smaller ones into what is left.
    let mut refused = 0;
    for size in [64 * 1024, 4 * 1024, 256, 16] {
        for _ in 0..400 {
            let ack = js.publish("fill", vec![b'x'; size].into()).await;
            if ack.expect("publish").await.is_err() {
                refused += 1;
                break;
            }
        }
    }
    assert!(refused > 0, "a 4 MiB volume never refused a publish");
    unhealthy_with_cause(&name, "No space left on device");
}
