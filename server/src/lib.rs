//! gridsync-server: merges every phone's sync into one store and serves the
//! phone app and the administrators.
//!
//! # Layout
//!
//! - [`store`]: the store trait and its sled implementation.
//! - [`auth`]: passwords, device registration, bearer tokens.
//! - [`sync`]: the sync service (push, validate, commit, flush, pull).
//! - [`http`]: warp routes; [`error`]: the one error-to-status mapping;
//!   [`http_directory`]: the names of people and territories a phone may see.
//! - [`admin`]: administrative commands, shared by the CLI and the admin socket.
//! - [`demo`]: the demo city.
//! - [`export`]: snapshot files (CSV, XLSX, JSON lines, Automerge bundle) with their manifest.
//! - [`reports`]: administrators' reports (the shared figures over stored documents).
//! - [`app`]: the phone app's files; [`tls`]: HTTPS.
//! - [`connections`]: the one accept loop (HTTP and HTTPS) with its connection
//!   cap and deadlines; [`backpressure`]: syncs refused with `Retry-After`
//!   rather than queued.
//! - [`snapshot`]: consistent snapshots as of a feed position, bundle import;
//!   [`http_admin`]: snapshot and audit downloads.
//! - [`photos`]: who may read or upload a photo, an upload's checks and its
//!   own bound; [`http_photos`]: the photo routes.
//! - [`backup`]: full backups while the server serves, and restoring one.
//! - [`metrics`]: `GET /metrics` in the Prometheus text format, and who may read it.
//!
//! [`run`] serves on a given listener until a shutdown future completes, so
//! tests start a real server on `127.0.0.1:0` in one line; [`run_with`] takes
//! the [`Limits`].

pub mod admin;
pub mod app;
pub mod auth;
pub mod backpressure;
pub mod backup;
pub mod connections;
pub mod demo;
pub mod error;
pub mod export;
pub mod http;
pub mod http_admin;
pub mod http_auth;
pub mod http_directory;
pub mod http_imports;
pub mod http_photos;
pub mod imports;
pub mod metrics;
pub mod photos;
pub mod reports;
pub mod snapshot;
pub mod store;
pub mod sync;
pub mod tls;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::Store;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Everything that bounds the server's work: open connections and their
/// deadlines, and how many syncs run or wait at once.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    /// The connection cap and deadlines.
    pub connections: connections::ConnectionLimits,
    /// Sync workers and their short queue.
    pub sync: backpressure::SyncLimits,
    /// Photo uploads at once (apart from syncs).
    pub photos: photos::PhotoLimits,
    /// Who may read `/metrics` (default: loopback only).
    pub metrics: metrics::MetricsAccess,
}

async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = http_imports::on_start(store.as_ref()) {
        tracing::warn!(error = %e, "could not look over the import runs at start");
    }
    // The last backup's time outlives a restart (and counts a backup the CLI made while the server was stopped).
    match store.last_backup() {
        Ok(Some(mark)) => metrics::backup_finished(mark.at),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not read when the last backup was made"),
    }
    let compaction = tokio::spawn(compact_in_background(Arc::downgrade(&store)));
    let edge = Arc::new(connections::ConnectionStats::default());
    let source = app::AppSource::from_env();
    if source.has_wasm() {
        tracing::info!(app = %source, files = source.file_count(), "phone app");
    } else {
        tracing::warn!(app = %source, "phone app incomplete: no WebAssembly package (web/pkg); / says so");
    }
    let mut state = http::AppState::with_limits(store, source, limits.sync, edge.clone());
    state.upload_gate = Arc::new(photos::UploadGate::new(limits.photos));
    state.metrics_access = limits.metrics;
    let routes = warp::service(http::routes(state));
    connections::serve(listener, tls, routes, limits.connections, edge, shutdown).await;
    // Holding the store no longer once serving ends: whoever opened it may close it.
    compaction.abort();
    let _ = compaction.await;
}

/// The store's upkeep while the server serves, a little at a time on a
/// blocking thread: compacts records whose commits have piled up
/// ([`Store::compact_some`]), and gives records stored without a flattened
/// row (by an earlier release) their row, so exports and reports need not
/// parse them ([`Store::records_without_rows`]).
async fn compact_in_background(store: std::sync::Weak<dyn Store>) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(2);
    const AT_ONCE: usize = 64;
    const ROWS_AT_ONCE: usize = 512;
    // Where the pass over records without rows stands; None once done.
    let mut rows_after: Option<Option<gridsync_shared::DocId>> = Some(None);
    loop {
        tokio::time::sleep(EVERY).await;
        let Some(store) = store.upgrade() else { return };
        let compacting = store.clone();
        match tokio::task::spawn_blocking(move || compacting.compact_some(AT_ONCE)).await {
            Ok(Ok(n)) if n > 0 => tracing::debug!(records = n, "compacted"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "compaction failed; retried later"),
            Err(e) => tracing::warn!(error = %e, "compaction task failed"),
        }
        if let Some(after) = rows_after {
            match tokio::task::spawn_blocking(move || fill_rows(store.as_ref(), after, ROWS_AT_ONCE)).await {
                Ok(Ok(next)) => rows_after = next,
                Ok(Err(e)) => tracing::warn!(error = %e, "giving records their rows failed; retried later"),
                Err(e) => tracing::warn!(error = %e, "row task failed"),
            }
        }
    }
}

/// Gives up to `limit` records after `after` that have no row their row;
/// returns where to go on from, or None when no record is left without one.
fn fill_rows(
    store: &dyn Store,
    after: Option<gridsync_shared::DocId>,
    limit: usize,
) -> Result<Option<Option<gridsync_shared::DocId>>, store::StoreError> {
    let page = store.records_without_rows(after, limit)?;
    let Some((last, _)) = page.last().copied() else { return Ok(None) };
    for (id, seq) in page {
        let Some(doc) = store.load_doc(id)? else { continue };
        let record = automerge::Automerge::load(&doc.bytes)
            .map_err(|e| e.to_string())
            .and_then(|d| gridsync_shared::records::read_record(&d).map_err(|e| e.to_string()));
        match record {
            Ok(record) => {
                store.set_row(id, seq, gridsync_shared::records::row::encode_row(&record))?;
            }
            Err(error) => tracing::warn!(doc = %id, %error, "a stored record does not read; left without a row"),
        }
    }
    Ok(Some(Some(last)))
}

/// Serves HTTP on `listener` with `store` until `shutdown` completes, with
/// the default [`Limits`].
pub async fn run(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    run_with(listener, store, Limits::default(), shutdown).await;
}

/// Serves HTTP on `listener` with `store` and `limits` until `shutdown` completes.
pub async fn run_with(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve(listener, store, None, limits, shutdown).await;
}

/// Serves HTTPS on `listener` with `store` until `shutdown` completes, with
/// the default [`Limits`].
pub async fn run_tls(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    acceptor: tokio_rustls::TlsAcceptor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    run_tls_with(listener, store, acceptor, Limits::default(), shutdown).await;
}

/// Serves HTTPS on `listener` with `store` and `limits` until `shutdown` completes.
pub async fn run_tls_with(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    acceptor: tokio_rustls::TlsAcceptor,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve(listener, store, Some(acceptor), limits, shutdown).await;
}

/// The local admin socket's path inside a data directory.
pub fn admin_socket_path(data: &Path) -> PathBuf {
    data.join("admin.sock")
}

/// The longest command the admin socket reads (commands are short JSON lines).
const MAX_ADMIN_LINE: u64 = 64 * 1024;

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
            // One command per connection, one line long, bounded.
            let mut reader = BufReader::new(read.take(MAX_ADMIN_LINE + 1));
            if reader.read_line(&mut line).await.is_err() {
                return;
            }
            let request = if line.len() as u64 > MAX_ADMIN_LINE {
                Err(format!("bad admin command: longer than {MAX_ADMIN_LINE} bytes"))
            } else {
                serde_json::from_str::<SocketRequest>(&line).map_err(|e| format!("bad admin command: {e}"))
            };
            if let Ok(SocketRequest::Snapshot(req)) = request {
                stream_snapshot(store, req, write).await;
                return;
            }
            if let Ok(SocketRequest::ImportCity(req)) = request {
                imports::cli::serve(store, req, write).await;
                return;
            }
            if let Ok(SocketRequest::Backup(req)) = request {
                backup::serve_backup(store, req, write).await;
                return;
            }
            let reply = match request.and_then(|r| match r {
                SocketRequest::Admin(cmd) => Ok(cmd),
                SocketRequest::Snapshot(_) | SocketRequest::ImportCity(_) | SocketRequest::Backup(_) => {
                    Err("unreachable".into())
                }
            }) {
                Err(e) => AdminReply { ok: false, output: e },
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

/// What the CLI asks of a running server over the admin socket.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum SocketRequest {
    /// An administrative command; answered with one [`AdminReply`] line.
    Admin(admin::AdminCommand),
    /// A snapshot; answered with an [`AdminReply`] line, then (if ok) the archive's bytes until EOF.
    Snapshot(snapshot::SnapshotRequest),
    /// A city import (`import-city`); answered with progress lines, then its end.
    ImportCity(imports::cli::ImportCityRequest),
    /// A full backup; answered with an [`AdminReply`] line, then the backup file's bytes until EOF.
    Backup(backup::BackupRequest),
}

async fn stream_snapshot(
    store: Arc<dyn Store>,
    req: snapshot::SnapshotRequest,
    mut write: tokio::net::unix::OwnedWriteHalf,
) {
    let prepared = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || snapshot::prepare(store.as_ref(), &req, "cli")).await
    };
    let prepared = match prepared {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return send_reply(&mut write, false, e.to_string()).await,
        Err(e) => return send_reply(&mut write, false, e.to_string()).await,
    };
    send_reply(&mut write, true, format!("snapshot as of feed position {}", prepared.seq())).await;
    let mut chunks = snapshot::spawn_export(store, prepared);
    while let Some(chunk) = chunks.recv().await {
        match chunk {
            Ok(bytes) if write.write_all(&bytes).await.is_ok() => {}
            // A failed export ends the stream early; the CLI sees an archive without its manifest.
            _ => break,
        }
    }
}

async fn send_reply(write: &mut tokio::net::unix::OwnedWriteHalf, ok: bool, output: String) {
    let mut bytes = serde_json::to_vec(&AdminReply { ok, output }).unwrap_or_default();
    bytes.push(b'\n');
    let _ = write.write_all(&bytes).await;
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
    let mut line = serde_json::to_vec(&SocketRequest::Admin(command.clone()))?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}

/// Asks a running server for a snapshot over its admin socket and copies the
/// archive into `out`, calling `progress` with the bytes received so far.
pub async fn fetch_snapshot(
    path: &Path,
    req: &snapshot::SnapshotRequest,
    out: &mut (dyn std::io::Write + Send),
    progress: &mut (dyn FnMut(u64) + Send),
) -> std::io::Result<Result<(), String>> {
    fetch_over_socket(path, &SocketRequest::Snapshot(req.clone()), out, progress).await
}

/// Sends `request` (one whose answer is a file: a snapshot or a backup) to a
/// running server's admin socket; on a yes, copies the bytes that follow the
/// answer line into `out`, calling `progress` with the bytes received so far.
/// `Ok(Err(message))` is the server's refusal.
pub(crate) async fn fetch_over_socket(
    path: &Path,
    request: &SocketRequest,
    out: &mut (dyn std::io::Write + Send),
    progress: &mut (dyn FnMut(u64) + Send),
) -> std::io::Result<Result<(), String>> {
    use tokio::io::AsyncReadExt;
    let stream = tokio::net::UnixStream::connect(path).await?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut reader = BufReader::new(read);
    let mut answer = String::new();
    reader.read_line(&mut answer).await?;
    let reply: AdminReply = serde_json::from_str(&answer).map_err(std::io::Error::other)?;
    if !reply.ok {
        return Ok(Err(reply.output));
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        total += n as u64;
        progress(total);
    }
    Ok(Ok(()))
}
