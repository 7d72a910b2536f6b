//! Start the `petrel` executable as a child process on a free port.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Why the binary could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// No `petrel` executable was found.
    #[error("petrel binary not found (set PETREL_BIN or run `cargo build -p petrel`)")]
    NotFound,
    /// The process could not be started.
    #[error("cannot start {path}: {cause}")]
    Start {
        /// Executable.
        path: PathBuf,
        /// Underlying error.
        cause: std::io::Error,
    },
    /// The process did not report its listen address in time.
    #[error("petrel did not report its listen address; output: {0}")]
    NoAddress(String),
}

/// A `petrel` child process, killed on drop.
pub struct BinaryServer {
    child: Child,
    addr: SocketAddr,
    /// Log lines arrive here from the stderr reader thread.
    log: mpsc::Receiver<String>,
    /// Every log line received so far.
    seen: std::cell::RefCell<Vec<String>>,
}

impl BinaryServer {
    /// `nats://127.0.0.1:<port>`.
    pub fn client_url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// The address the child listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line the child has printed so far (stderr).
    pub fn log_lines(&self) -> Vec<String> {
        let mut seen = self.seen.borrow_mut();
        seen.extend(self.log.try_iter());
        seen.clone()
    }

    /// Wait (up to `timeout`) for the `Starting http monitor on <addr>` log line that the
    /// child prints when started with `-m`; the monitoring address.
    pub fn monitor_addr(&self, timeout: Duration) -> Option<SocketAddr> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let found = self.log_lines().iter().find_map(|line| {
                line.split("Starting http monitor on ")
                    .nth(1)
                    .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            });
            if found.is_some() {
                return found;
            }
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            if let Ok(line) = self.log.recv_timeout(left) {
                self.seen.borrow_mut().push(line);
            }
        }
    }

    /// Wait (up to `timeout`) for the child to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code().or(Some(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Locate the `petrel` executable: `$PETREL_BIN`, else next to the running test binary's
/// target directory (`target/<profile>/petrel`).
pub fn find_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PETREL_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?;
    for _ in 0..3 {
        let candidate = dir.join(format!("petrel{}", std::env::consts::EXE_SUFFIX));
        if candidate.is_file() {
            return Some(candidate);
        }
        dir = dir.parent()?;
    }
    None
}

/// Start `petrel -a 127.0.0.1 -p -1` and wait until it listens.
pub fn spawn_binary() -> Result<BinaryServer, SpawnError> {
    let bin = find_binary().ok_or(SpawnError::NotFound)?;
    spawn_binary_with(&bin, &[])
}

/// Start the executable at `bin` with `-a 127.0.0.1 -p -1` plus `args`, and wait (up to
/// 10 s) for its `Listening for client connections on` log line.
pub fn spawn_binary_with(bin: &Path, args: &[&str]) -> Result<BinaryServer, SpawnError> {
    let mut child = Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", "-1"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|cause| SpawnError::Start {
            path: bin.to_path_buf(),
            cause,
        })?;
    let (tx, rx) = mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        let addr = line
            .split("Listening for client connections on ")
            .nth(1)
            .and_then(|a| a.trim().parse::<SocketAddr>().ok());
        seen.push(line);
        if let Some(addr) = addr {
            return Ok(BinaryServer {
                child,
                addr,
                log: rx,
                seen: std::cell::RefCell::new(seen),
            });
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(SpawnError::NoAddress(seen.join("\n")))
}
