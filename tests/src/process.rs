//! The real `gridsync-server` binary as a child process, for tests that must
//! stop and restart (or kill) the server itself. Under `GRIDSYNC_TEST_STORE=postgres`
//! a data directory stands for a database of its own ([`crate::stores::database_of`]):
//! every process and CLI command on it gets `--store` with that database.

use crate::stores::{Backend, store_args};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The process ids of the servers this test process started and has not yet
/// killed, for [`kill_running_servers`].
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn running() -> std::sync::MutexGuard<'static, Vec<u32>> {
    RUNNING.lock().unwrap_or_else(|p| p.into_inner())
}

fn forget(pid: Option<u32>) {
    if let Some(pid) = pid {
        running().retain(|&p| p != pid);
    }
}

/// Sends SIGKILL to every server process this test process started and has
/// not killed: for a test process about to exit without running destructors
/// (the [`crate::Watchdog`]), so that no server outlives it holding a port,
/// a data directory or CI's output pipe.
pub fn kill_running_servers() {
    let pids: Vec<String> = running().drain(..).map(|p| p.to_string()).collect();
    if !pids.is_empty() {
        let _ = std::process::Command::new("kill").arg("-KILL").args(&pids).stderr(Stdio::null()).status();
    }
}

/// The `gridsync-server` built alongside the running executable, if there is
/// one: beside it (a binary in target/<profile>) or one level up (a test in
/// target/<profile>/deps). `GRIDSYNC_SERVER_BIN=<path>` names another (a
/// release build, or a copy that a concurrent build cannot replace mid-run).
pub fn built_server_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("GRIDSYNC_SERVER_BIN") {
        return Some(PathBuf::from(bin));
    }
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
    binary: PathBuf,
    port: u16,
    extra: Vec<String>,
    tls_cert: Option<Vec<u8>>,
}

impl ServerProcess {
    /// Runs the binary with `args` on `data`'s store (the store under test,
    /// [`Backend::from_env`]) and returns its output (for CLI commands).
    pub async fn cli(data: &Path, args: &[&str]) -> std::process::Output {
        Self::cli_on(Backend::from_env(), data, args).await
    }

    /// Like [`Self::cli`], on the given store (`Backend::Sled` for commands about sled's files).
    pub async fn cli_on(backend: Backend, data: &Path, args: &[&str]) -> std::process::Output {
        Command::new(server_binary())
            .arg("--data")
            .arg(data)
            .args(store_args(backend, data))
            .args(args)
            .output()
            .await
            .expect("run gridsync-server")
    }

    /// Starts `gridsync-server serve` on `data` (on the store under test) at
    /// `port`, waiting until it answers /healthz.
    pub async fn start(data: &Path, port: u16, extra: &[&str]) -> ServerProcess {
        Self::start_on(Backend::from_env(), data, port, extra).await
    }

    /// Like [`Self::start`], on the given store.
    pub async fn start_on(backend: Backend, data: &Path, port: u16, extra: &[&str]) -> ServerProcess {
        Self::start_with_scheme_on(backend, data, port, extra, None).await
    }

    /// Like [`Self::start`]; with `tls_cert` (DER) the server is expected to
    /// speak HTTPS and readiness is checked by a TCP connect instead.
    pub async fn start_with_scheme(data: &Path, port: u16, extra: &[&str], tls_cert: Option<Vec<u8>>) -> ServerProcess {
        Self::start_with_scheme_on(Backend::from_env(), data, port, extra, tls_cert).await
    }

    /// Like [`Self::start_with_scheme`], on the given store.
    pub async fn start_with_scheme_on(
        backend: Backend,
        data: &Path,
        port: u16,
        extra: &[&str],
        tls_cert: Option<Vec<u8>>,
    ) -> ServerProcess {
        let store = store_args(backend, data);
        let extra: Vec<&str> = store.iter().map(String::as_str).chain(extra.iter().copied()).collect();
        Self::start_binary(&server_binary(), data, port, &extra, tls_cert).await
    }

    /// Starts another `gridsync-server serve` on the PostgreSQL database that
    /// stands for `store_of` ([`crate::stores::database_of`]), with its own data
    /// directory `data` (its admin socket) at `port`: a second process serving
    /// the same store, as behind a load balancer (a sled store has one process).
    pub async fn start_beside(store_of: &Path, data: &Path, port: u16) -> ServerProcess {
        let store = store_args(Backend::Postgres, store_of);
        let extra: Vec<&str> = store.iter().map(String::as_str).collect();
        Self::start_binary(&server_binary(), data, port, &extra, None).await
    }

    /// Like [`Self::start_with_scheme`], running the given server binary with
    /// exactly these arguments (no `--store` added: pass one in `extra`).
    pub async fn start_binary(
        binary: &Path,
        data: &Path,
        port: u16,
        extra: &[&str],
        tls_cert: Option<Vec<u8>>,
    ) -> ServerProcess {
        // GRIDSYNC_TEST_SERVER_LOG=<file> keeps the servers' logs (appended) for a failing run.
        let stderr = std::env::var_os("GRIDSYNC_TEST_SERVER_LOG")
            .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok())
            .map_or_else(Stdio::null, Stdio::from);
        let child = Command::new(binary)
            .arg("--data")
            .arg(data)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn gridsync-server");
        if let Some(pid) = child.id() {
            running().push(pid);
        }
        let scheme = if tls_cert.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        // Each probe bounded, so that a server that accepts but never answers fails the deadline.
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("an HTTP client");
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
        ServerProcess {
            url,
            data: data.to_path_buf(),
            child,
            binary: binary.to_path_buf(),
            port,
            extra: extra.iter().map(|a| a.to_string()).collect(),
            tls_cert,
        }
    }

    /// The operating system's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the process with SIGKILL: no shutdown, no final flush.
    pub async fn kill(mut self) {
        reap(&mut self.child).await;
    }

    /// Kills the process with SIGKILL and starts the same binary again on the
    /// same data directory, port and arguments, waiting until it answers.
    pub async fn restart(mut self) -> ServerProcess {
        reap(&mut self.child).await;
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        Self::start_binary(&self.binary, &self.data, self.port, &extra, self.tls_cert.take()).await
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // `kill_on_drop` kills it; it is no longer one of ours to kill.
        forget(self.child.id());
    }
}

/// Sends SIGKILL to `child` and waits until it is gone. Polls `try_wait`
/// (a plain `waitpid`) rather than awaiting the exit notice, which relies on
/// the runtime's child-signal or pidfd handling; panics should the process
/// outlive SIGKILL by 30 s.
pub async fn reap(child: &mut tokio::process::Child) {
    forget(child.id());
    let _ = child.start_kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => {}
        }
        assert!(Instant::now() < deadline, "process {:?} still alive 30 s after SIGKILL", child.id());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Creates, through the CLI, the city `xg/xn/sh/dh/g1` (孝感市 … 第一网格) and a
/// field-staff person per `(username, password)` in grid g1.
pub async fn small_city(data: &Path, staff: &[(&str, &str)]) {
    small_city_on(Backend::from_env(), data, staff).await;
}

/// Like [`small_city`], on the given store.
pub async fn small_city_on(backend: Backend, data: &Path, staff: &[(&str, &str)]) {
    let people: Vec<CliPerson<'_>> = staff
        .iter()
        .map(|(username, password)| CliPerson { username, password, role: "field_staff", territory: "g1" })
        .collect();
    city_on(backend, data, &["g1"], &people).await;
}

/// The community every [`city`] grid hangs under.
pub const COMMUNITY: &str = "xg/xn/sh/dh";

/// A person for [`city`] to create.
#[derive(Clone, Copy, Debug)]
pub struct CliPerson<'a> {
    /// Sign-in name (also the display name).
    pub username: &'a str,
    /// Password.
    pub password: &'a str,
    /// `field_staff`, `supervisor` or `administrator`.
    pub role: &'a str,
    /// A grid of the city (`g1`), or `""` for the whole community.
    pub territory: &'a str,
}

/// Creates, through the CLI, the community `xg/xn/sh/dh` (孝感市 … 东湖社区)
/// with the given grids under it (`g1` is 第一网格), and the given people.
pub async fn city(data: &Path, grids: &[&str], people: &[CliPerson<'_>]) {
    city_on(Backend::from_env(), data, grids, people).await;
}

/// Like [`city`], on the given store.
pub async fn city_on(backend: Backend, data: &Path, grids: &[&str], people: &[CliPerson<'_>]) {
    const NUMERALS: [&str; 9] = ["一", "二", "三", "四", "五", "六", "七", "八", "九"];
    let mut territories: Vec<(String, String)> = vec![
        ("xg".into(), "孝感市".into()),
        ("xg/xn".into(), "孝南区".into()),
        ("xg/xn/sh".into(), "书院街道".into()),
        (COMMUNITY.into(), "东湖社区".into()),
    ];
    for grid in grids {
        let n: Option<usize> = grid.strip_prefix('g').and_then(|n| n.parse().ok());
        let name = n
            .and_then(|n| NUMERALS.get(n.wrapping_sub(1)))
            .map_or_else(|| format!("{grid}网格"), |numeral| format!("第{numeral}网格"));
        territories.push((format!("{COMMUNITY}/{grid}"), name));
    }
    for (path, name) in &territories {
        let args = ["territory", "add", path.as_str(), name.as_str()];
        let out = ServerProcess::cli_on(backend, data, &args).await;
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    for p in people {
        let territory =
            if p.territory.is_empty() { COMMUNITY.to_string() } else { format!("{COMMUNITY}/{}", p.territory) };
        let args = [
            "person",
            "add",
            "--username",
            p.username,
            "--name",
            p.username,
            "--role",
            p.role,
            "--territory",
            &territory,
            "--password",
            p.password,
        ];
        let out = ServerProcess::cli_on(backend, data, &args).await;
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
