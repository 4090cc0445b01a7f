//! gridsync-server: merges every phone's sync into one store and serves the
//! phone app and the administrators.
//!
//! # Layout
//!
//! - [`store`]: the store trait and its sled implementation.
//! - [`auth`]: passwords, device registration, bearer tokens.
//! - [`sync`]: the sync service (push, validate, commit, flush, pull).
//! - [`http`]: warp routes; [`error`]: the one error-to-status mapping.
//! - [`admin`]: administrative commands, shared by the CLI and the admin socket.
//! - [`demo`]: the demo city.
//! - [`app`]: the phone app's files; [`tls`]: HTTPS.
//!
//! [`run`] serves on a given listener until a shutdown future completes, so
//! tests start a real server on `127.0.0.1:0` in one line.

pub mod admin;
pub mod app;
pub mod auth;
pub mod demo;
pub mod error;
pub mod http;
pub mod store;
pub mod sync;
pub mod tls;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::Store;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn state(store: Arc<dyn Store>) -> http::AppState {
    http::AppState { app_dir: app::default_app_dir(), store, locks: Arc::new(sync::DocLocks::default()) }
}

/// Serves HTTP on `listener` with `store` until `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    warp::serve(http::routes(state(store))).incoming(listener).graceful(shutdown).run().await;
}

/// Serves HTTPS on `listener` with `store` until `shutdown` completes.
pub async fn run_tls(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    acceptor: tokio_rustls::TlsAcceptor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    tls::serve(listener, acceptor, warp::service(http::routes(state(store))), shutdown).await;
}

/// The local admin socket's path inside a data directory.
pub fn admin_socket_path(data: &Path) -> PathBuf {
    data.join("admin.sock")
}

/// Serves administrative commands on a Unix socket in the data directory, so
/// that the CLI can act while the server holds the store. Access is the file
/// system's: only who can open the data directory can connect.
pub async fn serve_admin_socket(path: PathBuf, store: Arc<dyn Store>) -> std::io::Result<()> {
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    loop {
        let (stream, _) = listener.accept().await?;
        let store = store.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            if BufReader::new(read).read_line(&mut line).await.is_err() {
                return;
            }
            let reply = match serde_json::from_str::<admin::AdminCommand>(&line) {
                Err(e) => AdminReply { ok: false, output: format!("bad admin command: {e}") },
                Ok(cmd) => {
                    let result = tokio::task::spawn_blocking(move || admin::execute(store.as_ref(), cmd, "cli")).await;
                    match result {
                        Ok(Ok(output)) => AdminReply { ok: true, output },
                        Ok(Err(e)) => AdminReply { ok: false, output: e.to_string() },
                        Err(e) => AdminReply { ok: false, output: e.to_string() },
                    }
                }
            };
            let mut bytes = serde_json::to_vec(&reply).unwrap_or_default();
            bytes.push(b'\n');
            let _ = write.write_all(&bytes).await;
        });
    }
}

/// The admin socket's answer.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct AdminReply {
    /// Whether the command succeeded.
    pub ok: bool,
    /// Its output or error.
    pub output: String,
}

/// Sends one command to a running server's admin socket.
pub async fn send_admin_command(path: &Path, command: &admin::AdminCommand) -> std::io::Result<AdminReply> {
    let stream = tokio::net::UnixStream::connect(path).await?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(command)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}
