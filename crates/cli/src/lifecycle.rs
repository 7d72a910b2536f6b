//! Process lifecycle helpers of the binary: `--signal <sig>[=<pid>]` (send a signal to a
//! running petrel, found by pid or pid file), and the ports file of `--ports_file_dir`
//! (`<exe>_<pid>.ports`, JSON with the client and monitoring URLs, removed on exit) that
//! lets other programs and languages find a server started with `-p -1`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// The signal names nats-server accepts and the signal each one sends.
const SIGNALS: &[(&str, &str)] = &[
    ("stop", "KILL"),
    ("quit", "INT"),
    ("term", "TERM"),
    ("reopen", "USR1"),
    ("reload", "HUP"),
    ("ldm", "USR2"),
];

/// Sends the signal `spec` (`<name>[=<pid or pid file>]`) to a running server. Without a
/// pid, the pid file from `-P` / `pid_file` is used.
pub fn send_signal(spec: &str, pid_file: Option<&Path>) -> anyhow::Result<()> {
    let (name, target) = match spec.split_once('=') {
        Some((n, t)) => (n, Some(t)),
        None => (spec, None),
    };
    let Some((_, sig)) = SIGNALS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
        bail!("unknown signal {name:?} (one of: {})", names.join(", "));
    };
    let pid = match target {
        Some(t) if t.chars().all(|c| c.is_ascii_digit()) && !t.is_empty() => parse_pid(t)?,
        Some(t) => read_pid(Path::new(t))?,
        None => match pid_file {
            Some(p) => read_pid(p)?,
            None => running_petrel()?,
        },
    };
    kill(pid, sig)
}

/// Sends `SIG<sig>` to `pid`.
#[cfg(unix)]
fn kill(pid: i32, sig: &str) -> anyhow::Result<()> {
    use rustix::process::{kill_process, Pid, Signal};
    let signal = match sig {
        "KILL" => Signal::KILL,
        "INT" => Signal::INT,
        "TERM" => Signal::TERM,
        "USR1" => Signal::USR1,
        "HUP" => Signal::HUP,
        _ => Signal::USR2,
    };
    let target = Pid::from_raw(pid).with_context(|| format!("bad pid {pid}"))?;
    kill_process(target, signal)
        .map_err(std::io::Error::from)
        .with_context(|| format!("sending SIG{sig} to pid {pid} failed"))
}

/// Signals need a Unix system.
#[cfg(not(unix))]
fn kill(_pid: i32, sig: &str) -> anyhow::Result<()> {
    bail!("sending SIG{sig} needs a Unix system")
}

/// The one other running process named `petrel` (as nats-server looks itself up when
/// `--signal` names no pid): in a container, the server is the only one.
fn running_petrel() -> anyhow::Result<i32> {
    let me = std::process::id();
    let mut found = Vec::new();
    let entries = std::fs::read_dir("/proc")
        .context("no pid given and /proc cannot be read: use --signal <name>=<pid or pid file>")?;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if pid != me && comm.trim_end() == "petrel" {
            found.push(pid);
        }
    }
    match found.as_slice() {
        [] => {
            bail!("no petrel process is running (or give one: --signal <name>=<pid or pid file>)")
        }
        [pid] => parse_pid(&pid.to_string()),
        many => {
            let pids: Vec<String> = many.iter().map(|p| p.to_string()).collect();
            bail!(
                "multiple petrel processes are running (pids {}): use --signal <name>=<pid>",
                pids.join(", ")
            )
        }
    }
}

/// A pid as kill(2) takes it.
fn parse_pid(text: &str) -> anyhow::Result<i32> {
    match text.parse::<i32>() {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => bail!("{text:?} is not a pid"),
    }
}

fn read_pid(path: &Path) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read pid file {}", path.display()))?;
    let pid = text.trim();
    if pid.is_empty() || !pid.chars().all(|c| c.is_ascii_digit()) {
        bail!("pid file {} does not hold a pid", path.display());
    }
    parse_pid(pid)
}

/// A written ports file; removed when dropped.
pub struct PortsFile {
    path: PathBuf,
}

#[derive(serde::Serialize)]
struct Ports {
    nats: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    monitoring: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cluster: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    websocket: Vec<String>,
}

/// The URL for `addr` (an unspecified bind address is reached on loopback).
fn url(scheme: &str, addr: SocketAddr) -> String {
    let ip = addr.ip();
    let host = if ip.is_unspecified() {
        if addr.is_ipv4() {
            "127.0.0.1".to_string()
        } else {
            "[::1]".to_string()
        }
    } else if addr.is_ipv6() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    format!("{scheme}://{host}:{}", addr.port())
}

impl PortsFile {
    /// Writes `<dir>/<exe>_<pid>.ports` like nats-server:
    /// `{"nats":[...],"monitoring":[...],"cluster":[...]}`.
    pub fn write(
        dir: &Path,
        client: SocketAddr,
        monitoring: Option<SocketAddr>,
        cluster: Option<SocketAddr>,
        websocket: Option<(SocketAddr, bool)>,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "petrel".to_string());
        let path = dir.join(format!("{exe}_{}.ports", std::process::id()));
        let ports = Ports {
            nats: vec![url("nats", client)],
            monitoring: monitoring.map(|m| url("http", m)).into_iter().collect(),
            cluster: cluster.map(|c| url("nats", c)).into_iter().collect(),
            websocket: websocket
                .map(|(w, tls)| url(if tls { "wss" } else { "ws" }, w))
                .into_iter()
                .collect(),
        };
        let body = serde_json::to_vec(&ports).context("encoding the ports file")?;
        let tmp = path.with_extension("ports.tmp");
        std::fs::write(&tmp, body).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(PortsFile { path })
    }
}

impl Drop for PortsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_signal_and_missing_pid() {
        assert!(send_signal("nope", None)
            .unwrap_err()
            .to_string()
            .contains("unknown signal"));
        // (No test sends without a pid: it would signal whichever petrel runs.)
        assert!(send_signal("stop=0", None)
            .unwrap_err()
            .to_string()
            .contains("is not a pid"));
        let dir = tempfile::tempdir().unwrap();
        let pf = dir.path().join("p.pid");
        std::fs::write(&pf, "not a pid").unwrap();
        assert!(send_signal(&format!("reload={}", pf.display()), None).is_err());
    }

    #[test]
    fn ports_file_shape_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = "0.0.0.0:4222".parse().unwrap();
        let f = PortsFile::write(
            dir.path(),
            addr,
            Some("127.0.0.1:8222".parse().unwrap()),
            None,
            None,
        )
        .unwrap();
        let path = f.path.clone();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            r#"{"nats":["nats://127.0.0.1:4222"],"monitoring":["http://127.0.0.1:8222"]}"#
        );
        drop(f);
        assert!(!path.exists());
    }
}
