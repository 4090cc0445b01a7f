//! City import benchmark: a generated 人口信息表 of N households (default
//! 300,000) of two residents each, spread over G grids (default 300), imported
//! with the real `gridsync-server import-city households` on a stopped store;
//! then the same file again (which must change nothing). Prints one JSON line
//! per run: wall time, households and rows per second, the server process's
//! peak RSS (VmHWM) and user and system CPU seconds (both read from /proc
//! until it exits), and the machine's load average at the end.
//!
//! `cargo build --release -p gridsync-server -p gridsync-tests --bins &&
//!  target/release/gridsync-bench-import 300000 300`

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn idn(first17: &str) -> String {
    let weights = [7u32, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17.chars().zip(weights).map(|(c, w)| c.to_digit(10).unwrap_or(0) * w).sum();
    let check = "10X98765432".chars().nth((sum % 11) as usize).unwrap_or('0');
    format!("{first17}{check}")
}

/// A distinct valid ID number for resident `n` (n < 10^9).
fn resident_id(n: usize) -> String {
    // Area 420902, a birth date in 1950–1999, then 3 digits of n; the area's
    // last 3 digits carry more of n so that every number is distinct.
    let (hi, lo) = (n / 1000, n % 1000);
    let day = hi % (50 * 12 * 28);
    let area = 420000 + (hi / (50 * 12 * 28)) % 1000;
    idn(&format!("{area}{}{:02}{:02}{lo:03}", 1950 + day / (12 * 28), 1 + (day / 28) % 12, 1 + day % 28))
}

fn cli(bin: &Path, data: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new(bin).arg("--data").arg(data).args(args).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// User and system CPU seconds of process `pid` so far (from /proc; clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| rest.get(i - 3).and_then(|v| v.parse::<f64>().ok());
    Some((ticks(14)? / 100.0, ticks(15)? / 100.0))
}

/// Runs the CLI, reading its VmHWM and CPU time until it exits; returns
/// (seconds, peak KiB, (user, system) CPU seconds, stdout).
fn measured(bin: &Path, data: &Path, args: &[&str]) -> Result<(f64, u64, (f64, f64), String), String> {
    let t = Instant::now();
    let mut child = Command::new(bin)
        .arg("--data")
        .arg(data)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let mut cpu = (0.0, 0.0);
    let status = loop {
        if let Some(c) = cpu_seconds(child.id()) {
            cpu = c;
        }
        if let Ok(s) = std::fs::read_to_string(&status_file)
            && let Some(kib) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let secs = t.elapsed().as_secs_f64();
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut stdout).map_err(|e| e.to_string())?;
    }
    if !status.success() {
        return Err(format!("{args:?} failed: {stdout}"));
    }
    Ok((secs, peak, cpu, stdout))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(300_000);
    let grids: usize = std::env::args().nth(2).map(|a| a.parse()).transpose()?.unwrap_or(300);
    let bin = gridsync_tests::process::server_binary();
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    cli(&bin, &data, &["territory", "add", "xg", "孝感市"])?;
    let territories = dir.path().join("territories.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&territories)?);
        writeln!(f, "区县编码,区县名称,街道编码,街道名称,社区编码,社区名称,网格编码,网格名称")?;
        for g in 0..grids {
            writeln!(f, "xn,孝南区,s{},街道{},c{},社区{},g{g},网格{g}", g / 100, g / 100, g / 10, g / 10)?;
        }
    }
    cli(&bin, &data, &["import-city", "territories", territories.to_str().ok_or("path")?])?;
    let admin = ["person", "add", "--username", "admin", "--name", "管理员", "--role", "administrator"];
    cli(&bin, &data, &[&admin[..], &["--territory", "xg", "--password", "bench-admin-pass"]].concat())?;

    let file = dir.path().join("households.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file)?);
        writeln!(f, "户号,所属网格,地址,姓名,与户主关系,身份证号,联系电话,标签,备注")?;
        for i in 0..n {
            let g = i % grids;
            let grid = format!("xg/xn/s{}/c{}/g{g}", g / 100, g / 10);
            writeln!(
                f,
                "HH{i:07},{grid},东湖路{i}号,户主{i},户主,{},1380013{:04},独居老人,",
                resident_id(2 * i),
                i % 10_000
            )?;
            writeln!(f, "HH{i:07},{grid},,成员{i},配偶,{},,,", resident_id(2 * i + 1))?;
        }
    }
    let bytes = std::fs::metadata(&file)?.len();
    let path = file.to_str().ok_or("path")?;
    for (run, expect) in [("first", "新建"), ("again", "不变")] {
        let (secs, peak_kib, (user_s, sys_s), stdout) = measured(&bin, &data, &["import-city", "households", path])?;
        let line = stdout.lines().find(|l| l.starts_with("已导入")).unwrap_or("").to_string();
        println!(
            "{}",
            serde_json::json!({
                "workload": "city_import",
                "run": run,
                "households": n,
                "rows": 2 * n,
                "grids": grids,
                "file_mb": (bytes as f64 / 1e5).round() / 10.0,
                "wall_s": (secs * 10.0).round() / 10.0,
                "households_per_s": (n as f64 / secs).round(),
                "rows_per_s": ((2 * n) as f64 / secs).round(),
                "peak_rss_mib": (peak_kib as f64 / 1024.0).round(),
                "user_s": (user_s * 10.0).round() / 10.0,
                "sys_s": (sys_s * 10.0).round() / 10.0,
                "load_avg_1m": std::fs::read_to_string("/proc/loadavg")
                    .ok()
                    .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse::<f64>().ok())),
                "outcome": line,
                "met": secs < 120.0 && line.contains(expect),
            })
        );
    }
    Ok(())
}
