//! The real `gridsync-server` binary as a child process, for tests that must
//! stop and restart (or kill) the server itself.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The `gridsync-server` built alongside the running executable, if there is
/// one: beside it (a binary in target/<profile>) or one level up (a test in
/// target/<profile>/deps).
pub fn built_server_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join("gridsync-server"), dir.parent()?.join("gridsync-server")].into_iter().find(|p| p.exists())
}

/// The built `gridsync-server` binary (built on demand if missing).
pub fn server_binary() -> PathBuf {
    if let Some(bin) = built_server_binary() {
        return bin;
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/gridsync-server
    let bin = exe.parent().and_then(Path::parent).expect("target dir").join("gridsync-server");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "-p", "gridsync-server", "--bin", "gridsync-server"])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building gridsync-server failed");
    bin
}

/// A running `gridsync-server serve` process.
pub struct ServerProcess {
    /// Base URL.
    pub url: String,
    /// Its data directory.
    pub data: PathBuf,
    child: Child,
}

impl ServerProcess {
    /// Runs the binary with `args` on `data` and returns its output (for CLI commands).
    pub async fn cli(data: &Path, args: &[&str]) -> std::process::Output {
        Command::new(server_binary()).arg("--data").arg(data).args(args).output().await.expect("run gridsync-server")
    }

    /// Starts `gridsync-server serve` on `data` at `port`, waiting until it answers /healthz.
    pub async fn start(data: &Path, port: u16, extra: &[&str]) -> ServerProcess {
        Self::start_with_scheme(data, port, extra, None).await
    }

    /// Like [`Self::start`]; with `tls_cert` (DER) the server is expected to
    /// speak HTTPS and readiness is checked by a TCP connect instead.
    pub async fn start_with_scheme(data: &Path, port: u16, extra: &[&str], tls_cert: Option<Vec<u8>>) -> ServerProcess {
        Self::start_binary(&server_binary(), data, port, extra, tls_cert).await
    }

    /// Like [`Self::start_with_scheme`], running the given server binary.
    pub async fn start_binary(
        binary: &Path,
        data: &Path,
        port: u16,
        extra: &[&str],
        tls_cert: Option<Vec<u8>>,
    ) -> ServerProcess {
        let child = Command::new(binary)
            .arg("--data")
            .arg(data)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn gridsync-server");
        let scheme = if tls_cert.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let http = reqwest::Client::new();
        loop {
            let up = if tls_cert.is_some() {
                tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
            } else {
                http.get(format!("{url}/healthz")).send().await.is_ok_and(|r| r.status().is_success())
            };
            if up {
                break;
            }
            assert!(Instant::now() < deadline, "gridsync-server did not come up on {url}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ServerProcess { url, data: data.to_path_buf(), child }
    }

    /// The operating system's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the process with SIGKILL: no shutdown, no final flush.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Creates, through the CLI, the city `xg/xn/sh/dh/g1` (孝感市 … 第一网格) and a
/// field-staff person per `(username, password)` in grid g1.
pub async fn small_city(data: &Path, staff: &[(&str, &str)]) {
    for args in [
        &["territory", "add", "xg", "孝感市"][..],
        &["territory", "add", "xg/xn", "孝南区"],
        &["territory", "add", "xg/xn/sh", "书院街道"],
        &["territory", "add", "xg/xn/sh/dh", "东湖社区"],
        &["territory", "add", "xg/xn/sh/dh/g1", "第一网格"],
    ] {
        let out = ServerProcess::cli(data, args).await;
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    for (username, password) in staff {
        let args = [
            "person",
            "add",
            "--username",
            username,
            "--name",
            username,
            "--role",
            "field_staff",
            "--territory",
            "xg/xn/sh/dh/g1",
            "--password",
            password,
        ];
        let out = ServerProcess::cli(data, &args).await;
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
