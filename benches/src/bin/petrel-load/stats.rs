//! Measurements and output: CPU and memory accounting from `/proc` (server, this tool and
//! the rest of the machine), latency percentiles, and the `Report` printed as the final
//! `RESULT key=value ...` line.

use anyhow::{Context, Result};

use crate::args::Scenario;

pub(crate) fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu_ticks(pid: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .with_context(|| format!("malformed {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    let get = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("malformed {path}"))
    };
    Ok(get(11)? + get(12)?)
}

/// Resident and peak resident memory of a process in MB (VmRSS, VmHWM), if readable.
fn memory_mb(pid: &str) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((kb("VmRSS:")? / 1024.0, kb("VmHWM:")? / 1024.0))
}

/// Machine-wide busy (user+nice+system+irq+softirq) and steal ticks from `/proc/stat`.
fn host_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy = v.iter().take(3).sum::<u64>() + v.get(5).unwrap_or(&0) + v.get(6).unwrap_or(&0);
    Some((busy, *v.get(7).unwrap_or(&0)))
}

/// CPU seconds used by the server (if `--server-pid`), by this tool, and by everything
/// else on the machine (interference from other work skews a run: it is reported).
pub(crate) struct CpuMeter {
    server_pid: Option<String>,
    tck: f64,
    server0: u64,
    self0: u64,
    host0: Option<(u64, u64)>,
}

pub(crate) struct CpuUsed {
    pub(crate) server_s: Option<f64>,
    tool_s: f64,
    /// Machine-wide busy seconds not used by the server or this tool, and steal seconds.
    other_s: Option<(f64, f64)>,
    /// Server VmRSS and VmHWM (MB) at the end of the measured phase.
    server_mem: Option<(f64, f64)>,
}

impl CpuMeter {
    pub(crate) fn start(server_pid: Option<u32>, tck: u64) -> Result<Self> {
        let server_pid = server_pid.map(|p| p.to_string());
        let server0 = match &server_pid {
            Some(p) => cpu_ticks(p).context("--server-pid")?,
            None => 0,
        };
        Ok(Self {
            server_pid,
            tck: tck as f64,
            server0,
            self0: cpu_ticks("self")?,
            host0: host_ticks(),
        })
    }

    pub(crate) fn stop(&self) -> Result<CpuUsed> {
        let server_s = match &self.server_pid {
            Some(p) => Some(cpu_ticks(p)?.saturating_sub(self.server0) as f64 / self.tck),
            None => None,
        };
        let tool_s = cpu_ticks("self")?.saturating_sub(self.self0) as f64 / self.tck;
        let other_s = match (self.host0, host_ticks(), server_s) {
            (Some((b0, s0)), Some((b1, s1)), Some(srv)) => {
                let busy = b1.saturating_sub(b0) as f64 / self.tck;
                Some((
                    (busy - srv - tool_s).max(0.0),
                    s1.saturating_sub(s0) as f64 / self.tck,
                ))
            }
            _ => None,
        };
        Ok(CpuUsed {
            server_s,
            tool_s,
            other_s,
            server_mem: self.server_pid.as_deref().and_then(memory_mb),
        })
    }
}

/// Key/value results, printed for people and then as one `RESULT` line.
pub(crate) struct Report {
    fields: Vec<(&'static str, String)>,
}

impl Report {
    pub(crate) fn new(scenario: Scenario) -> Self {
        Self {
            fields: vec![
                ("scenario", scenario.name().into()),
                ("status", "ok".into()),
            ],
        }
    }

    pub(crate) fn add(&mut self, key: &'static str, value: impl ToString) {
        self.fields.push((key, value.to_string()));
    }

    pub(crate) fn print(&self) {
        for (k, v) in &self.fields {
            println!("{k:>20}: {v}");
        }
        let line: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("RESULT {}", line.join(" "));
    }
}

/// `text` as one `RESULT` value: whitespace replaced by `_`.
pub(crate) fn token(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect()
}

pub(crate) fn add_cpu(r: &mut Report, used: &CpuUsed, delivered: u64, elapsed: f64) {
    if let Some(s) = used.server_s {
        r.add("server_cpu_s", format!("{s:.2}"));
        r.add(
            "cpu_ns_per_msg",
            format!("{:.0}", s * 1e9 / delivered as f64),
        );
        r.add("server_cpu_util", format!("{:.2}", s / elapsed));
    }
    if let Some((other, steal)) = used.other_s {
        r.add("other_cpu_s", format!("{other:.2}"));
        r.add("steal_s", format!("{steal:.2}"));
    }
    if let Some((rss, hwm)) = used.server_mem {
        r.add("server_rss_mb", format!("{rss:.1}"));
        r.add("server_peak_rss_mb", format!("{hwm:.1}"));
    }
    r.add("tool_cpu_s", format!("{:.2}", used.tool_s));
    r.add("tool_cpu_util", format!("{:.2}", used.tool_s / elapsed));
}

/// Add `mean_us`, `p50_us`, `p90_us`, `p99_us`, `p999_us` and `max_us` for latencies
/// given in nanoseconds (sorted here).
pub(crate) fn add_latency(r: &mut Report, lat: &mut [u64]) {
    lat.sort_unstable();
    let mean = lat.iter().sum::<u64>() as f64 / lat.len() as f64 / 1e3;
    r.add("mean_us", format!("{mean:.1}"));
    for (name, q) in [
        ("p50_us", 0.50),
        ("p90_us", 0.90),
        ("p99_us", 0.99),
        ("p999_us", 0.999),
        ("max_us", 1.0),
    ] {
        r.add(name, format!("{:.1}", percentile(lat, q)));
    }
}

pub(crate) fn percentile(sorted: &[u64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
    }
}
