//! Process numbers for `/varz` (`mem`, `cpu`, `cores`), read from `/proc` on Linux (0
//! elsewhere, no unsafe code).

use std::time::Instant;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// Resident set size in bytes.
pub(crate) fn rss_bytes() -> u64 {
    // statm: size resident shared text lib data dt, in pages (4 KiB on the platforms we
    // run on).
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Logical CPUs available to the process.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// User plus system CPU time of the process, in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces: fields are counted after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// CPU usage between calls, in percent of one core (nats-server's `cpu`).
#[derive(Debug)]
pub(crate) struct CpuMeter {
    last: Option<(Instant, f64)>,
    percent: f64,
}

impl CpuMeter {
    /// A meter with no sample yet.
    pub fn new() -> Self {
        Self {
            last: cpu_seconds().map(|c| (Instant::now(), c)),
            percent: 0.0,
        }
    }

    /// Usage since the previous call (the previous value if called again within 100 ms).
    pub fn sample(&mut self) -> f64 {
        let Some(cpu) = cpu_seconds() else {
            return 0.0;
        };
        let now = Instant::now();
        match self.last {
            Some((at, _)) if now.duration_since(at).as_millis() < 100 => {}
            Some((at, before)) => {
                let wall = now.duration_since(at).as_secs_f64();
                self.percent = ((cpu - before) / wall * 1000.0).round() / 10.0;
                self.last = Some((now, cpu));
            }
            None => self.last = Some((now, cpu)),
        }
        self.percent.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_numbers_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(rss_bytes() > 0);
            assert!(cpu_seconds().is_some());
        }
        assert!(cores() >= 1);
        let mut m = CpuMeter::new();
        assert!(m.sample() >= 0.0);
    }
}
