//! The watchdog that ends a hung test ends the servers the test started with
//! it: a server left behind would hold its port, its data directory and the
//! output pipe CI waits on.

use gridsync_tests::Watchdog;
use gridsync_tests::process::{ServerProcess, free_port, small_city};
use std::path::Path;
use std::time::{Duration, Instant};

/// Where [`hangs_until_the_watchdog_ends_it`] writes its server's process id;
/// unset, that test does nothing.
const PID_FILE: &str = "GRIDSYNC_WATCHDOG_VICTIM_PID_FILE";

/// Not a check of its own: run by the test below in a test process of its
/// own, it starts a server, writes the server's process id and hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hangs_until_the_watchdog_ends_it() {
    let Some(pid_file) = std::env::var_os(PID_FILE) else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    small_city(&data, &[("li", "hung-test-password")]).await;
    let server = ServerProcess::start(&data, free_port(), &[]).await;
    let watchdog = Watchdog::arm("watchdog::hangs_until_the_watchdog_ends_it", Duration::from_secs(1));
    std::fs::write(&pid_file, server.pid().expect("a running server").to_string()).expect("write the pid");
    watchdog.phase("hanging on purpose");
    tokio::time::sleep(Duration::from_secs(600)).await;
    drop(server);
}

#[test]
fn a_test_the_watchdog_ends_takes_the_servers_it_started_with_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let pid_file = dir.path().join("server.pid");
    let out = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["watchdog::hangs_until_the_watchdog_ends_it", "--exact", "--nocapture", "--test-threads=1"])
        .env(PID_FILE, &pid_file)
        .env_remove("GRIDSYNC_WATCHDOG_S")
        .output()
        .expect("run the hanging test");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "the watchdog ends the test as failed; stderr: {stderr}");
    assert!(stderr.contains("hanging on purpose"), "the watchdog names the phase; stderr: {stderr}");
    let pid: u32 = std::fs::read_to_string(&pid_file).expect("the server's pid").trim().parse().expect("a pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "server {pid} outlived the test the watchdog ended");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether process `pid` runs (exists and is not a zombie awaiting its parent).
fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat"));
    // The state is the field after the parenthesised command name.
    stat.is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}
