//! What the load generator reads off the server and its own clocks: a
//! process's CPU time and peak memory from `/proc`, a directory's size on disk,
//! latency percentiles.

use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// CPU time and memory of one process, as Linux reports them.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessStats {
    /// User plus system CPU time so far, in seconds.
    pub cpu_s: f64,
    /// Peak resident set size so far (VmHWM), in bytes.
    pub peak_rss: u64,
    /// Resident set size now (VmRSS), in bytes.
    pub rss: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`; None where there is no `/proc`.
pub fn process_stats(pid: u32) -> Option<ProcessStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 of `rest`), in clock ticks.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|k| k * 1024)
    };
    Some(ProcessStats { cpu_s: ticks as f64 / clock_ticks_per_second(), peak_rss: kib("VmHWM:")?, rss: kib("VmRSS:")? })
}

/// The figures of several processes (a city's servers) added up: CPU time,
/// peak and current memory; None if any has no `/proc` entry.
pub fn processes_stats(pids: &[u32]) -> Option<ProcessStats> {
    pids.iter().try_fold(ProcessStats::default(), |sum, pid| {
        let s = process_stats(*pid)?;
        Some(ProcessStats { cpu_s: sum.cpu_s + s.cpu_s, peak_rss: sum.peak_rss + s.peak_rss, rss: sum.rss + s.rss })
    })
}

/// The kernel's USER_HZ: 100 on every Linux this runs on.
fn clock_ticks_per_second() -> f64 {
    100.0
}

/// This process's own figures.
pub fn own_stats() -> Option<ProcessStats> {
    process_stats(std::process::id())
}

/// Bytes of every file under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    /// How many were measured.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Latency {
    /// Percentiles of `samples` (nearest rank).
    pub fn of(samples: &mut [Duration]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            ms(samples[rank - 1])
        };
        Latency { count: samples.len(), p50_ms: at(0.50), p90_ms: at(0.90), p99_ms: at(0.99), max_ms: at(1.0) }
    }
}

/// A duration in milliseconds, rounded to microseconds.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Rounds to `places` decimals, for readable JSON.
pub fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(&mut s);
        assert_eq!((l.count, l.p50_ms, l.p99_ms, l.max_ms), (100, 50.0, 99.0, 100.0));
    }

    #[test]
    fn this_process_can_read_its_own_cpu_and_memory() {
        let s = own_stats().expect("/proc on Linux");
        assert!(s.peak_rss >= s.rss && s.rss > 0);
    }
}
