//! The `gridsync-server` binary: `serve`, and the administrative commands.

/// jemalloc rather than the system allocator: Automerge makes many small
/// allocations across worker threads, which glibc's per-thread arenas keep
/// (field day 50x10x100: peak RSS 120 MB with glibc; see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's run-time options (read as its `malloc_conf`): a background
/// thread gives pages freed after a burst (an export, a storm of downloads)
/// back to the system while the server idles, rather than only when it next
/// allocates (1,000,000 records: idle RSS 188 → 169 MiB; 40 s after a CSV
/// export 313 MiB instead of staying at 361; BENCHMARKS.md).
/// `_RJEM_MALLOC_CONF` still overrides it.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 23] = b"background_thread:true\0";

/// Gives the pages jemalloc holds freed back to the system now rather than
/// within its 10 s decay: opening a large sled store frees much of what it
/// read while rebuilding its page table, which an idle server would
/// otherwise hold as resident memory for those seconds.
fn return_freed_memory() {
    // Every arena (MALLCTL_ARENAS_ALL = 4096).
    let name = c"arena.4096.purge";
    // SAFETY: `arena.<i>.purge` reads and writes nothing; jemalloc is this process's allocator.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(name.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut(), 0)
    };
    if rc != 0 {
        tracing::debug!(rc, "jemalloc purge refused");
    }
}

use clap::{Parser, Subcommand};
use gridsync_server::admin::{self, AdminCommand};
use gridsync_server::snapshot::SnapshotRequest;
use gridsync_server::store::{SledStore, Store, StoreError};
use gridsync_server::{
    Limits, admin_socket_path, connections, demo, http::now_ms, send_admin_command, serve_admin_socket,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "gridsync-server", version, about = "gridsync: offline-first records for community grid managers")]
struct Cli {
    /// Data directory of the embedded sled store.
    #[arg(long, global = true, env = "GRIDSYNC_DATA", default_value = "gridsync-data")]
    data: PathBuf,
    /// The store: a PostgreSQL address (`postgres://user@host/db`, or
    /// `host=/run/postgresql dbname=gridsync`) that several server processes
    /// share; unset, the embedded sled store in --data. `serve` and the admin
    /// commands only, so far.
    #[arg(long, global = true, env = "GRIDSYNC_STORE")]
    store: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server (HTTP API and phone app).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "GRIDSYNC_LISTEN", default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// On an empty store, create a small demo city and print its accounts.
        #[arg(long)]
        demo: bool,
        /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
        #[arg(long, env = "GRIDSYNC_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's PEM private key.
        #[arg(long, env = "GRIDSYNC_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Open connections at most (default: the open-file limit less a reserve, at most 16,384).
        #[arg(long, env = "GRIDSYNC_MAX_CONNECTIONS")]
        max_connections: Option<usize>,
    },
    /// Download a consistent snapshot (zip with a manifest) of a territory,
    /// from the data directory or, while the server runs, through it.
    Snapshot {
        /// csv, xlsx, jsonl or bundle.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Where to write the archive.
        #[arg(long)]
        out: PathBuf,
        /// Territory path (default: the whole city).
        #[arg(long)]
        territory: Option<String>,
        /// As of this moment: Unix ms or YYYY-MM-DD[ HH:MM[:SS]] in China time (default: now).
        #[arg(long)]
        as_of: Option<String>,
        /// Export ID and phone numbers unmasked (needs --reason; recorded in the audit log).
        #[arg(long, requires = "reason")]
        unmask: bool,
        /// Why an unmasked export is needed.
        #[arg(long)]
        reason: Option<String>,
        /// Also put every photo the records reference into the archive, as
        /// photos/<sha256>.<ext>, listed in the manifest.
        #[arg(long)]
        photos: bool,
    },
    /// Write a full backup of the store (records, people, devices, territories,
    /// audit log, feed, photos, imports: every tree), consistent as of one
    /// moment; works on a stopped server and, through its admin socket, on a running one.
    Backup {
        /// Where to write it (created with mode 600: it holds password hashes).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into this data directory, which must be empty or
    /// absent; the server must be stopped. Phones continue from where they were.
    Restore {
        /// The file written by `backup`.
        file: PathBuf,
    },
    /// Rewrite this (stopped) store into a new, empty directory in large
    /// batches, giving back the space sled keeps free after small commits
    /// (often half the file); checks the copy key by key and leaves this
    /// directory as it was. Then stop using this one and serve the copy.
    Vacuum {
        /// The new data directory (empty or absent).
        #[arg(long)]
        into: PathBuf,
    },
    /// Move this (stopped) sled store into an empty PostgreSQL database (the
    /// one --store or GRIDSYNC_STORE names): records with every change at its
    /// feed position, people with their password hashes, devices with their
    /// tokens, territories, the audit log, photos, imports. One transaction:
    /// all or nothing; a non-empty database is refused. Phones continue
    /// against servers on the database without signing in or downloading again.
    /// (Not `migrate`: that is what each store does to its own layout on start.)
    MoveTo,
    /// Load a bundle snapshot into this (empty) data directory; the server must be stopped.
    Import {
        /// The bundle archive written by `snapshot --format bundle`.
        file: PathBuf,
    },
    /// Import a city's spreadsheets (XLSX or CSV in UTF-8 or GBK): territories,
    /// people or households; or write a template. Works on a stopped server and,
    /// through its admin socket, on a running one.
    #[command(subcommand)]
    ImportCity(ImportCityCommand),
    #[command(flatten)]
    Admin(AdminCommand),
}

/// `import-city` subcommands.
#[derive(Subcommand)]
enum ImportCityCommand {
    /// 网格划分表: districts, sub-districts, communities and grids under the city.
    Territories(ImportFileArgs),
    /// 网格员名册: people; new ones get random initial passwords (needs --passwords-out).
    People(ImportFileArgs),
    /// 人口信息表: households and their members, one row per resident.
    Households(ImportFileArgs),
    /// Write the template of territories, people or households (.xlsx or .csv by --out's extension).
    Template {
        /// territories, people or households.
        kind: String,
        /// Where to write it, e.g. 人口信息表.xlsx.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct ImportFileArgs {
    /// The spreadsheet (.xlsx, or .csv in UTF-8, UTF-8 with BOM, or GBK).
    file: PathBuf,
    /// Check every row and report; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Import the rows without problems and skip the others (default: a file with problems imports nothing).
    #[arg(long)]
    skip_problems: bool,
    /// Where to write new people's initial passwords (CSV; created with mode 600).
    #[arg(long)]
    passwords_out: Option<PathBuf>,
    /// Import as this administrator (default: the administrator nearest the city's root).
    #[arg(long = "as")]
    as_user: Option<String>,
}

/// What the server logs unless `GRIDSYNC_LOG` says otherwise: its own events
/// at info, Automerge's only when something is wrong.
const DEFAULT_LOG_FILTER: &str = "info,automerge=warn";

fn init_logs() {
    use tracing_subscriber::EnvFilter;
    // Automerge marks its parsing functions as info-level spans: formatting
    // them cost ~6 % of a steady push's CPU (perf, 2,400 changes/s offered).
    let filter = EnvFilter::try_from_env("GRIDSYNC_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let json = std::env::var("GRIDSYNC_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.store.is_some()
        && !matches!(
            cli.command,
            Command::Serve { .. }
                | Command::Admin(_)
                | Command::MoveTo
                | Command::Snapshot { .. }
                | Command::Backup { .. }
                | Command::Restore { .. }
                | Command::Import { .. }
                | Command::ImportCity(_)
        )
    {
        eprintln!(
            "error: vacuum is the sled store's (it gives back the space sled keeps free); a PostgreSQL database is vacuumed by PostgreSQL itself"
        );
        return ExitCode::FAILURE;
    }
    match cli.command {
        Command::Serve { listen, demo, tls_cert, tls_key, max_connections } => {
            init_logs();
            let tls = tls_cert.zip(tls_key);
            match serve(cli.data, cli.store, listen, demo, tls, max_connections).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Admin(cmd) => admin_command(cli.data, cli.store, cmd).await,
        Command::Backup { out } => print_outcome(match cli.store {
            Some(url) => gridsync_server::backup::backup_command_postgres(url, &out).await,
            None => gridsync_server::backup::backup_command(&cli.data, &out).await,
        }),
        Command::Restore { file } => print_outcome(match cli.store {
            Some(url) => gridsync_server::backup::restore_command_postgres(url, &file).await,
            None => gridsync_server::backup::restore_command(&cli.data, &file),
        }),
        Command::Vacuum { into } => print_outcome(vacuum(&cli.data, &into)),
        Command::MoveTo => print_outcome(move_to(cli.data, cli.store).await),
        Command::ImportCity(cmd) => match import_city(&cli.data, cli.store, cmd).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Snapshot { format, out, territory, as_of, unmask, reason, photos } => {
            let as_of = match as_of.as_deref().map(gridsync_server::snapshot::parse_as_of).transpose() {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("error: --as-of {e}");
                    return ExitCode::FAILURE;
                }
            };
            let req = SnapshotRequest { format, territory, as_of, unmask, reason, photos };
            let written = match cli.store {
                Some(url) => snapshot_from_postgres(url, req, out.clone()).await,
                None => snapshot_command(&cli.data, &req, &out).await,
            };
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    let _ = std::fs::remove_file(&out);
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Import { file } => {
            let import = move |store: &dyn Store| {
                let f = std::fs::File::open(&file).map_err(|e| format!("{}: {e}", file.display()))?;
                let n = gridsync_server::snapshot::import_bundle(store, std::io::BufReader::new(f), now_ms())
                    .map_err(|e| e.to_string())?;
                let what = format!("{} records and {} photos from {}", n.records, n.photos, file.display());
                store.append_audit("cli", "bundle.import", &what, now_ms()).map_err(|e| e.to_string())?;
                Ok::<_, String>(n)
            };
            let result = match cli.store {
                Some(url) => match open_postgres(url).await {
                    Ok(store) => tokio::task::spawn_blocking(move || import(store.as_ref()))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r),
                    Err(e) => Err(e),
                },
                None => SledStore::open(&cli.data).map_err(|e| e.to_string()).and_then(|store| import(&store)),
            };
            match result {
                Ok(n) => {
                    println!("imported {} records and {} photos", n.records, n.photos);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Prints a command's text, or its error on stderr.
fn print_outcome(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The limits for this process: its open-file limit raised to the hard limit
/// first, so that thousands of phones can connect where the system allows.
fn limits(max_connections: Option<usize>, networked_store: bool) -> Limits {
    let before = connections::fd_limit();
    let fds = connections::raise_fd_limit();
    let mut limits = Limits { metrics: gridsync_server::metrics::MetricsAccess::from_env(), ..Limits::default() };
    if networked_store {
        limits.sync = gridsync_server::backpressure::SyncLimits::for_networked_store();
    }
    if let Some(fds) = fds {
        limits.connections = connections::ConnectionLimits::for_fd_limit(fds);
    }
    if let Some(max) = max_connections {
        limits.connections.max_connections = max.max(1);
    }
    tracing::info!(
        open_files_before = ?before.map(|(soft, _)| soft), open_files = ?fds,
        max_connections = limits.connections.max_connections, sync_workers = limits.sync.workers,
        "limits"
    );
    limits
}

/// `vacuum --into`: the rewrite, with a progress line and what it gave back.
fn vacuum(data: &std::path::Path, into: &std::path::Path) -> Result<String, String> {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} entries copied ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let done = SledStore::vacuum(data, into, &mut |n| bar.set_position(n));
    bar.finish_and_clear();
    let done = done.map_err(|e| e.to_string())?;
    let mb = |b: u64| b as f64 / 1e6;
    Ok(format!(
        "copied {} entries from {} into {} and checked them: {:.0} MB → {:.0} MB.\n\
         {} is unchanged. To serve the copy: keep the server stopped, then\n\
         \x20 mv {} {}.old && mv {} {}\n\
         start the server, and remove {}.old once you are satisfied. Phones notice nothing.\n",
        done.entries,
        data.display(),
        into.display(),
        mb(done.bytes_before),
        mb(done.bytes_after),
        data.display(),
        data.display(),
        data.display(),
        into.display(),
        data.display(),
        data.display()
    ))
}

/// `move-to`: the stopped sled store in `data` into the empty PostgreSQL
/// database at `url`, with a progress line; audited in the database.
async fn move_to(data: PathBuf, url: Option<String>) -> Result<String, String> {
    let url = url.ok_or(
        "move-to needs --store postgres://… (or GRIDSYNC_STORE): the empty PostgreSQL database to move this store into",
    )?;
    if !data.join("db").exists() {
        return Err(format!("no gridsync store in {} (use --data)", data.display()));
    }
    let source = match SledStore::open(&data) {
        Ok(s) => s,
        Err(StoreError::Locked(_)) => {
            return Err(format!(
                "a gridsync-server is running on {}: stop it first (the move copies a stopped store; nothing was changed)",
                data.display()
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} {msg} copied ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let b = bar.clone();
    let shown = data.display().to_string();
    let task = tokio::task::spawn_blocking(move || {
        let target = gridsync_server::store::PgStore::open(&url).map_err(|e| e.to_string())?;
        let started = std::time::Instant::now();
        let moved = target
            .move_in(&source, &mut |what, n| {
                b.set_message(what.to_string());
                b.set_position(n);
            })
            .map_err(|e| e.to_string())?;
        let what = format!(
            "moved from the sled store in {shown}: {} records, {} feed entries (feed position {}), {} people, {} devices",
            moved.records, moved.feed_entries, moved.head_seq, moved.people, moved.devices
        );
        target.append_audit("cli", "store.move", &what, now_ms()).map_err(|e| e.to_string())?;
        Ok::<_, String>((moved, started.elapsed()))
    });
    let result = task.await.map_err(|e| e.to_string());
    bar.finish_and_clear();
    let (m, took) = result??;
    let d = data.display();
    Ok(format!(
        "moved {d} into the PostgreSQL database in {:.1} s, in one transaction:\n\
         \x20 {} records, {} feed entries (feed position {}), {} audit entries,\n\
         \x20 {} territories, {} people, {} devices, {} photos, {} unfinished uploads,\n\
         \x20 {} household keys, {} import runs, {} store epochs.\n\
         Start the servers with --store on this database (several may share it). Phones continue\n\
         where they were: same device tokens, same sync cursors. {d} is unchanged; do not serve it\n\
         again (phones' new work is in the database now); keep it until you are satisfied, or back it up.\n",
        took.as_secs_f64(),
        m.records,
        m.feed_entries,
        m.head_seq,
        m.audit_entries,
        m.territories,
        m.people,
        m.devices,
        m.photos,
        m.uploads,
        m.household_keys,
        m.import_runs,
        m.epochs,
    ))
}

/// The PostgreSQL store at `url`, opened on the blocking pool (its client blocks).
async fn open_postgres(url: String) -> Result<Arc<dyn Store>, String> {
    let opened = tokio::task::spawn_blocking(move || gridsync_server::store::PgStore::open(&url)).await;
    match opened {
        Ok(Ok(store)) => Ok(Arc::new(store)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("opening the PostgreSQL store failed: {e}")),
    }
}

async fn serve(
    data: PathBuf,
    store_url: Option<String>,
    listen: SocketAddr,
    demo: bool,
    tls: Option<(PathBuf, PathBuf)>,
    max_connections: Option<usize>,
) -> Result<(), String> {
    let limits = limits(max_connections, store_url.is_some());
    let acceptor = match &tls {
        Some((cert, key)) => Some(gridsync_server::tls::acceptor(cert, key).map_err(|e| e.to_string())?),
        None => None,
    };
    std::fs::create_dir_all(&data).map_err(|e| format!("cannot create data directory {}: {e}", data.display()))?;
    let store: Arc<dyn Store> = match store_url {
        Some(url) => open_postgres(url).await?,
        None => Arc::new(SledStore::open(&data).map_err(|e| e.to_string())?),
    };
    return_freed_memory();
    if demo::store_is_empty(store.as_ref()).map_err(|e| e.to_string())? {
        if demo {
            let text = demo::create_demo(store.as_ref(), now_ms()).map_err(|e| e.to_string())?;
            println!("{text}");
        } else {
            let exe = "gridsync-server";
            let d = data.display();
            println!(
                "This store is empty: nobody can sign in yet. Either restart with --demo for a demo city, or create\n\
                 the first administrator (while the server runs, from another terminal):\n\
                 \x20 {exe} --data {d} territory add xg 孝感市\n\
                 \x20 {exe} --data {d} person add --username admin --name 管理员 --role administrator --territory xg\n"
            );
        }
    }
    let listener = connections::listen(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let socket = admin_socket_path(&data);
    tokio::spawn(serve_admin_socket(socket.clone(), store.clone()));
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    tracing::info!(%addr, %scheme, data = %data.display(), "gridsync-server listening");
    println!("gridsync-server listening on {scheme}://{addr} (data: {})", data.display());
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap_or_else(|_| {
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).expect("signals")
                });
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
    };
    match acceptor {
        Some(acceptor) => gridsync_server::run_tls_with(listener, store.clone(), acceptor, limits, shutdown).await,
        None => gridsync_server::run_with(listener, store.clone(), limits, shutdown).await,
    }
    let _ = std::fs::remove_file(&socket);
    store.flush().map_err(|e| e.to_string())
}

async fn admin_command(data: PathBuf, store_url: Option<String>, cmd: AdminCommand) -> ExitCode {
    let result = match store_url {
        // A shared database: no process holds it, so the command runs here.
        Some(url) => match open_postgres(url).await {
            Ok(store) => tokio::task::spawn_blocking(move || admin::execute(store.as_ref(), cmd, "cli"))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
            Err(e) => Err(e),
        },
        None => match SledStore::open(&data) {
            Ok(store) => admin::execute(&store, cmd, "cli").map_err(|e| e.to_string()),
            Err(StoreError::Locked(_)) => match send_admin_command(&admin_socket_path(&data), &cmd).await {
                Ok(reply) if reply.ok => Ok(reply.output),
                Ok(reply) => Err(reply.output),
                Err(e) => Err(format!("the store is in use but the running server's admin socket did not answer: {e}")),
            },
            Err(e) => Err(e.to_string()),
        },
    };
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes a snapshot to `out`, directly from the data directory, or through
/// the running server's admin socket when it holds the store; with a progress bar.
async fn snapshot_command(data: &std::path::Path, req: &SnapshotRequest, out: &std::path::Path) -> Result<(), String> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?);
    let bar = ProgressBar::new_spinner();
    match SledStore::open(data) {
        Ok(store) => {
            bar.set_style(
                ProgressStyle::with_template("{spinner} {pos} records written ({elapsed})")
                    .map_err(|e| e.to_string())?,
            );
            let prepared = gridsync_server::snapshot::prepare(&store, req, "cli").map_err(|e| e.to_string())?;
            let manifest =
                prepared.write(&store, &mut file, &mut |n| bar.set_position(n)).map_err(|e| e.to_string())?;
            bar.finish();
            std::io::Write::flush(&mut file).map_err(|e| e.to_string())?;
            println!("{} records, as of feed position {} → {}", manifest.counts.total(), prepared.seq(), out.display());
            Ok(())
        }
        Err(StoreError::Locked(_)) => {
            bar.set_style(
                ProgressStyle::with_template("{spinner} {bytes} received from the running server ({elapsed})")
                    .map_err(|e| e.to_string())?,
            );
            let mut progress = |n: u64| bar.set_position(n);
            gridsync_server::fetch_snapshot(&admin_socket_path(data), req, &mut file, &mut progress)
                .await
                .map_err(|e| format!("the running server's admin socket did not answer: {e}"))??;
            bar.finish();
            std::io::Write::flush(&mut file).map_err(|e| e.to_string())?;
            drop(file);
            // The manifest is the archive's last entry: without it, the export broke off.
            let complete = std::fs::File::open(out)
                .ok()
                .and_then(|f| zip::ZipArchive::new(f).ok())
                .is_some_and(|mut z| z.by_name(gridsync_server::export::MANIFEST_NAME).is_ok());
            if !complete {
                return Err("the snapshot broke off before its manifest; see the server's log".into());
            }
            println!("snapshot written to {}", out.display());
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Writes a snapshot of the PostgreSQL store at `url` to `out` (any server
/// may be running on it: the snapshot is pinned to a feed position).
async fn snapshot_from_postgres(url: String, req: SnapshotRequest, out: PathBuf) -> Result<(), String> {
    let store = open_postgres(url).await?;
    let task = tokio::task::spawn_blocking(move || {
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?);
        let prepared = gridsync_server::snapshot::prepare(store.as_ref(), &req, "cli").map_err(|e| e.to_string())?;
        let manifest = prepared.write(store.as_ref(), &mut file, &mut |_| {}).map_err(|e| e.to_string())?;
        std::io::Write::flush(&mut file).map_err(|e| e.to_string())?;
        println!("{} records, as of feed position {} → {}", manifest.counts.total(), prepared.seq(), out.display());
        Ok(())
    });
    task.await.map_err(|e| e.to_string())?
}

/// `import-city`: a template, or an import on the stopped store or through the
/// running server's admin socket, with a progress bar. Ok(false): refused or
/// (for a dry run) problems found.
async fn import_city(
    data: &std::path::Path,
    store_url: Option<String>,
    cmd: ImportCityCommand,
) -> Result<bool, String> {
    use gridsync_server::imports::{self, cli::ImportCityRequest};
    use gridsync_shared::imports::ImportKind;
    let (kind, args) = match cmd {
        ImportCityCommand::Template { kind, out } => {
            let kind = ImportKind::parse(&kind).ok_or("kind must be territories, people or households")?;
            let bytes = match out.extension().and_then(|e| e.to_str()) {
                Some("csv") => imports::templates::csv(kind),
                _ => imports::templates::xlsx(kind).map_err(|e| e.to_string())?,
            };
            std::fs::write(&out, bytes).map_err(|e| format!("{}: {e}", out.display()))?;
            println!("{} 模板已写入 {}", kind.name_zh(), out.display());
            return Ok(true);
        }
        ImportCityCommand::Territories(a) => (ImportKind::Territories, a),
        ImportCityCommand::People(a) => (ImportKind::People, a),
        ImportCityCommand::Households(a) => (ImportKind::Households, a),
    };
    if kind == ImportKind::People && !args.dry_run && args.passwords_out.is_none() {
        return Err("a people import needs --passwords-out <file> for the new people's initial passwords".into());
    }
    let file = std::fs::canonicalize(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let req = ImportCityRequest {
        kind,
        file,
        dry_run: args.dry_run,
        skip_problems: args.skip_problems,
        as_user: args.as_user,
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} ({per_sec}, {elapsed}, 还需 {eta})")
            .map_err(|e| e.to_string())?,
    );
    let progress_bar = bar.clone();
    let mut progress = move |done: u64, total: u64| {
        progress_bar.set_length(total);
        progress_bar.set_position(done);
    };
    let opened = match store_url {
        // A shared database: no process holds it, so the import runs here.
        Some(url) => Ok(open_postgres(url).await?),
        None => SledStore::open(data).map(|s| Arc::new(s) as Arc<dyn Store>),
    };
    let end = match opened {
        Ok(store) => {
            let task = tokio::task::spawn_blocking(move || {
                imports::cli::execute(store.as_ref(), &req, &mut progress).map_err(|e| e.to_string())
            });
            task.await.map_err(|e| e.to_string())??
        }
        Err(StoreError::Locked(_)) => imports::cli::send(&admin_socket_path(data), &req, &mut progress)
            .await
            .map_err(|e| format!("the store is in use but the running server's admin socket did not answer: {e}"))?,
        Err(e) => return Err(e.to_string()),
    };
    bar.finish_and_clear();
    print!("{}", end.output);
    if let (Some(csv), Some(out)) = (&end.passwords_csv, &args.passwords_out) {
        write_private(out, csv.as_bytes()).map_err(|e| format!("{}: {e}", out.display()))?;
        println!("新人员的初始密码已写入 {}（只此一份，请妥善分发）", out.display());
    }
    Ok(end.ok)
}

/// Writes a file only its owner may read.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
