//! A real `nats-server` as a child process, for mixed clusters and side-by-side checks:
//! free ports (`-1`), a config file in a temporary directory, the ports read back from
//! nats-server's ports file, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Why nats-server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum NatsServerError {
    /// The process could not be started.
    #[error("cannot start {path}: {cause}")]
    Start {
        /// Executable.
        path: PathBuf,
        /// Underlying error.
        cause: std::io::Error,
    },
    /// It did not write its ports file in time (it logs why on stderr).
    #[error("nats-server did not report its ports: {0}")]
    NoPorts(String),
}

/// A running nats-server, killed on drop.
pub struct NatsServer {
    child: Child,
    /// Client port.
    pub port: u16,
    /// Route port, when a cluster was configured.
    pub cluster_port: Option<u16>,
    /// WebSocket port, when `websocket {}` was configured.
    pub ws_port: Option<u16>,
    /// Monitoring port, when `http` was configured.
    pub monitor_port: Option<u16>,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// `nats://127.0.0.1:<port>`.
    pub fn client_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<route port>`, when clustered.
    pub fn route_addr(&self) -> Option<String> {
        self.cluster_port.map(|p| format!("127.0.0.1:{p}"))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nats-server binary named by the environment variable `var` (e.g.
/// `PETREL_NATS_SERVER_215`), else `nats-server` on `PATH`.
pub fn find_nats_server(var: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    })
}

/// Starts `binary` on loopback with free ports, named `name`; with `cluster` set, in that
/// cluster, dialling `routes` (`host:port`s). `extra` is appended to the config.
pub fn spawn_nats_server(
    binary: &Path,
    name: &str,
    cluster: Option<&str>,
    routes: &[String],
    extra: &str,
) -> Result<NatsServer, NatsServerError> {
    spawn_nats_server_with(binary, name, cluster, routes, "", extra)
}

/// [`spawn_nats_server`] with `cluster_extra` added inside the `cluster {}` block (route
/// TLS, authorization).
pub fn spawn_nats_server_with(
    binary: &Path,
    name: &str,
    cluster: Option<&str>,
    routes: &[String],
    cluster_extra: &str,
    extra: &str,
) -> Result<NatsServer, NatsServerError> {
    let dir = tempfile::tempdir().map_err(|cause| NatsServerError::Start {
        path: binary.to_path_buf(),
        cause,
    })?;
    let mut conf = format!(
        "server_name: {name}\nhost: 127.0.0.1\nport: -1\nports_file_dir: \"{}\"\n",
        dir.path().display()
    );
    if let Some(c) = cluster {
        let routes: Vec<String> = routes.iter().map(|r| format!("nats-route://{r}")).collect();
        conf.push_str(&format!(
            "cluster {{\n  name: {c}\n  host: 127.0.0.1\n  port: -1\n  routes: [{}]\n{cluster_extra}\n}}\n",
            routes.join(", ")
        ));
    }
    conf.push_str(extra);
    let conf_path = dir.path().join("nats.conf");
    std::fs::write(&conf_path, conf).map_err(|cause| NatsServerError::Start {
        path: conf_path.clone(),
        cause,
    })?;
    let child = Command::new(binary)
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|cause| NatsServerError::Start {
            path: binary.to_path_buf(),
            cause,
        })?;
    let ports_file = dir.path().join(format!(
        "{}_{}.ports",
        binary
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default(),
        child.id()
    ));
    let mut server = NatsServer {
        child,
        port: 0,
        cluster_port: None,
        ws_port: None,
        monitor_port: None,
        _dir: dir,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(&ports_file) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                server.port = first_port(&v["nats"]).unwrap_or(0);
                server.cluster_port = first_port(&v["cluster"]);
                server.ws_port = first_port(&v["websocket"]);
                server.monitor_port = first_port(&v["monitoring"]);
                if server.port != 0 && (cluster.is_none() || server.cluster_port.is_some()) {
                    return Ok(server);
                }
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(NatsServerError::NoPorts(ports_file.display().to_string()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The port of the first URL in a ports-file list (`["nats://127.0.0.1:4222"]`).
fn first_port(v: &serde_json::Value) -> Option<u16> {
    v.as_array()?
        .first()?
        .as_str()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()
}
