//! Helpers of the container tests: is a Docker engine there, the image (built by
//! docker/build.sh when missing), compose projects and containers that each test names
//! uniquely and removes, with its volumes and networks, when it ends. Nothing here touches
//! a container, network or volume the tests did not create.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The image the tests run.
pub(crate) const IMAGE: &str = "petrel:latest";

/// The repository's root directory.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// True when a Docker engine answers. Otherwise prints a SKIP line for `test` and returns
/// false, or panics when `PETREL_REQUIRE_DOCKER=1` (CI).
pub(crate) fn docker_or_skip(test: &str) -> bool {
    let answers = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if answers {
        return true;
    }
    assert!(
        std::env::var("PETREL_REQUIRE_DOCKER").as_deref() != Ok("1"),
        "{test}: no Docker engine answers `docker info`, and PETREL_REQUIRE_DOCKER=1"
    );
    eprintln!("SKIP {test}: no Docker engine answers `docker info`");
    false
}

/// Runs `docker args`.
pub(crate) fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

/// Runs `docker args`, panics unless it succeeds, returns its trimmed stdout.
pub(crate) fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Makes sure the image exists, building it with docker/build.sh when the engine lacks it
/// (CI builds it before the tests).
pub(crate) fn ensure_image() {
    static BUILD: Mutex<()> = Mutex::new(());
    let _once = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if docker(&["image", "inspect", IMAGE]).status.success() {
        return;
    }
    let status = Command::new("bash")
        .arg(repo_root().join("docker/build.sh"))
        .status()
        .expect("run docker/build.sh");
    assert!(status.success(), "docker/build.sh failed");
}

/// A name no other test run uses: `petrel-test-<pid>-<n>-<what>`.
pub(crate) fn unique_name(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("petrel-test-{}-{n}-{what}", std::process::id())
}

/// A TCP port that was free a moment ago, for a container's published port.
pub(crate) fn free_port() -> u16 {
    crate::support::free_ports(1)[0]
}

/// The compose command of this machine: `docker compose` (v2) or `docker-compose` (v1).
fn compose_command() -> Vec<&'static str> {
    let works = |cmd: &[&str]| {
        Command::new(cmd[0])
            .args(&cmd[1..])
            .arg("version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if works(&["docker", "compose"]) {
        vec!["docker", "compose"]
    } else if works(&["docker-compose"]) {
        vec!["docker-compose"]
    } else {
        panic!("neither `docker compose` nor `docker-compose` works");
    }
}

/// A compose project of one of docker/'s files, under a unique project name, with its host
/// ports and environment chosen by the test. Dropping it runs `down -v`.
pub(crate) struct Project {
    /// The project name (`-p`).
    pub name: String,
    file: PathBuf,
    compose: Vec<&'static str>,
    env: Vec<(String, String)>,
}

impl Project {
    /// A project of `docker/<file>` whose published ports are free ports of this host.
    pub fn new(file: &str, env: &[(&str, &str)]) -> Self {
        let mut all: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.push(("PETREL_PORT".into(), free_port().to_string()));
        all.push(("PETREL_HTTP_PORT".into(), free_port().to_string()));
        all.push(("PETREL_IMAGE".into(), IMAGE.into()));
        Self {
            name: unique_name("compose"),
            file: repo_root().join("docker").join(file),
            compose: compose_command(),
            env: all,
        }
    }

    /// The host port clients connect to.
    pub fn client_port(&self) -> u16 {
        self.var("PETREL_PORT").parse().expect("port")
    }

    fn var(&self, name: &str) -> &str {
        let found = self.env.iter().find(|(k, _)| k == name);
        &found.expect("variable set").1
    }

    /// Runs `compose -p <name> -f <file> args`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(self.compose[0])
            .args(&self.compose[1..])
            .args(["-p", &self.name, "-f"])
            .arg(&self.file)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run compose")
    }

    /// Runs `compose args`, panics unless it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "compose {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The id of `service`'s container (created or running).
    pub fn container(&self, service: &str) -> String {
        let id = self.ok(&["ps", "-q", service]);
        assert!(!id.is_empty(), "no container for {service}");
        id
    }

    /// `docker compose up -d`, then waits for `service` to turn healthy; returns the time
    /// from the `up` to healthy.
    pub fn up_healthy(&self, service: &str) -> Duration {
        let start = Instant::now();
        self.ok(&["up", "-d"]);
        wait_health(&self.container(service), "healthy", Duration::from_secs(60));
        start.elapsed()
    }
}

/// Starts the three-node project of `docker/<file>` (services `nats-1..3`, client ports
/// `PETREL_PORT_1..3` on free host ports) and waits until every node is healthy.
pub(crate) fn three_nodes_up(file: &str, healthy_within: Duration) -> (Project, [u16; 3]) {
    let ports = [free_port(), free_port(), free_port()];
    let env: Vec<(String, String)> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("PETREL_PORT_{}", i + 1), p.to_string()))
        .collect();
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let project = Project::new(file, &env_ref);
    project.ok(&["up", "-d"]);
    for node in ["nats-1", "nats-2", "nats-3"] {
        wait_health(&project.container(node), "healthy", healthy_within);
    }
    (project, ports)
}

impl Drop for Project {
    fn drop(&mut self) {
        // A failed test leaves the servers' last words in its output.
        if std::thread::panicking() {
            let logs = self.run(&["logs", "--no-color", "--tail", "60"]);
            eprintln!(
                "--- logs of compose project {} ---\n{}{}",
                self.name,
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            );
        }
        let out = self.run(&["down", "-v", "--remove-orphans", "-t", "10"]);
        if !out.status.success() {
            eprintln!(
                "compose down of {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Containers and volumes a test created with plain `docker`, removed on drop.
#[derive(Default)]
pub(crate) struct Created {
    containers: Vec<String>,
    volumes: Vec<String>,
}

impl Created {
    /// Creates a volume (`docker volume create` with `opts`) named after `what`.
    pub fn volume(&mut self, what: &str, opts: &[&str]) -> String {
        let name = unique_name(what);
        let mut args = vec!["volume", "create"];
        args.extend_from_slice(opts);
        args.push(&name);
        docker_ok(&args);
        self.volumes.push(name.clone());
        name
    }

    /// `docker run -d --name <unique> args…`; returns the container's name.
    pub fn run(&mut self, what: &str, args: &[&str]) -> String {
        let name = unique_name(what);
        let mut all = vec!["run", "-d", "--name", &name];
        all.extend_from_slice(args);
        self.containers.push(name.clone());
        docker_ok(&all);
        name
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", "-v", c]);
        }
        for v in &self.volumes {
            let _ = docker(&["volume", "rm", "-f", v]);
        }
    }
}

/// The container's health status ("starting", "healthy", "unhealthy").
pub(crate) fn health(container: &str) -> String {
    docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", container])
}

/// The container's stdout and stderr.
pub(crate) fn logs(container: &str) -> String {
    let out = docker(&["logs", container]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits until `container`'s health status is `want`; panics with its logs on timeout or
/// when the container stops running.
pub(crate) fn wait_health(container: &str, want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let status = health(container);
        if status == want {
            return;
        }
        let running = docker_ok(&["inspect", "-f", "{{.State.Running}}", container]);
        assert!(
            running == "true" && Instant::now() < deadline,
            "{container} is {status} (running: {running}), not {want}; logs:\n{}",
            logs(container)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
