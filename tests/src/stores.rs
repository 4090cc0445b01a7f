//! Which store the integration tests run on: the embedded sled store (the
//! default) or, with `GRIDSYNC_TEST_STORE=postgres`, PostgreSQL — one throwaway
//! cluster per test process (started on first use, stopped when the process
//! exits), a fresh database for each server. One suite, two stores.
//!
//! Tests about sled itself (its files, backups, vacuum, its upgrade) name
//! [`Backend::Sled`] explicitly; everything else follows [`Backend::from_env`].

use gridsync_server::store::postgres::scratch::ScratchPostgres;
use gridsync_server::store::{PgStore, SledStore, Store};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Once};

/// The environment variable choosing the store: `sled` (or unset) or `postgres`.
pub const STORE_ENV: &str = "GRIDSYNC_TEST_STORE";

/// A store the test servers can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded sled store in a data directory.
    Sled,
    /// A database on this test process's throwaway PostgreSQL.
    Postgres,
}

impl Backend {
    /// The store `GRIDSYNC_TEST_STORE` names (unset: sled). Panics on any other
    /// value, so that a typo never quietly runs the suite on sled.
    pub fn from_env() -> Backend {
        match std::env::var(STORE_ENV).as_deref() {
            Err(std::env::VarError::NotPresent) | Ok("" | "sled") => Backend::Sled,
            Ok("postgres" | "postgresql") => Backend::Postgres,
            Ok(other) => panic!("{STORE_ENV}={other:?}: expected sled or postgres"),
            Err(e) => panic!("{STORE_ENV}: {e}"),
        }
    }
}

/// This process's throwaway PostgreSQL, once started (taken at exit), and
/// the migrated database every test database is copied from.
static CLUSTER: Mutex<Option<(ScratchPostgres, String)>> = Mutex::new(None);
static STARTED: Once = Once::new();

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

unsafe extern "C" {
    /// The C library's `atexit`: runs `f` when the process exits normally
    /// (the test harness returns from `main` or calls `exit`).
    fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
}

/// Stops this process's PostgreSQL and deletes its directory.
extern "C" fn stop_cluster() {
    let taken = lock(&CLUSTER).take();
    drop(taken);
}

/// Runs `f` on a plain thread (the PostgreSQL client blocks, and panics
/// inside a tokio runtime).
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match std::thread::spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs `f` with this process's PostgreSQL, starting it on first use. Fails
/// loudly (never skips) when PostgreSQL cannot be started.
fn with_cluster<T>(f: impl FnOnce(&ScratchPostgres, &str) -> T) -> T {
    STARTED.call_once(|| {
        // No flushes to disk: the tests kill gridsync's processes, never the
        // database's machine, and what PostgreSQL has committed survives a
        // client's death without them (COMMIT still waits for the WAL write).
        let pg = ScratchPostgres::start_with(&["fsync=off", "full_page_writes=off"])
            .unwrap_or_else(|e| panic!("{STORE_ENV}=postgres needs a throwaway PostgreSQL: {e}"));
        reap_after_exit(pg.dir());
        // The schema migrated once; each test's database is a copy (a file copy
        // costs less than a migration of an empty database).
        let template = pg.create_database().unwrap_or_else(|e| panic!("the template database: {e}"));
        drop(PgStore::open(&template).unwrap_or_else(|e| panic!("migrating the template database: {e}")));
        *lock(&CLUSTER) = Some((pg, template));
        // SAFETY: registers a plain function with no arguments, as atexit expects.
        let registered = unsafe { atexit(stop_cluster) };
        assert_eq!(registered, 0, "atexit refused the PostgreSQL clean-up");
    });
    let guard = lock(&CLUSTER);
    let (pg, template) = guard.as_ref().expect("this process's PostgreSQL was stopped: the process is exiting");
    f(pg, template)
}

/// Should this process die without running its exit handlers (SIGKILL, an
/// abort), a detached watcher stops its PostgreSQL (immediate shutdown) and
/// deletes `dir` once it is gone, so that no server or directory is left behind.
fn reap_after_exit(dir: &Path) {
    let script = r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
pid=$(head -n 1 "$2/data/postmaster.pid" 2>/dev/null) && kill -QUIT "$pid" 2>/dev/null
sleep 1; rm -rf "$2""#;
    let spawned = std::process::Command::new("setsid")
        .args(["sh", "-c", script, "reaper"])
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("warning: no watcher for the throwaway PostgreSQL in {} ({e})", dir.display());
    }
}

/// A fresh database on this process's PostgreSQL, dropped with this value.
pub struct Database {
    /// Its connection string.
    pub url: String,
}

impl Database {
    /// Creates a new database holding the migrated, empty schema.
    pub fn create() -> Database {
        let url = on_thread(|| with_cluster(|pg, template| pg.copy_database(template)))
            .unwrap_or_else(|e| panic!("a database on the throwaway PostgreSQL: {e}"));
        Database { url }
    }

    /// Opens the gridsync store in it (migrating the empty database).
    pub fn open(&self) -> Arc<PgStore> {
        let url = self.url.clone();
        Arc::new(on_thread(move || PgStore::open(&url)).expect("open the PostgreSQL store"))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let url = self.url.clone();
        // Best effort: the cluster and all its databases go at exit anyway.
        let _ = on_thread(move || with_cluster(|pg, _| pg.drop_database(&url)));
    }
}

/// The databases standing for data directories, kept to the end of the process.
static DATA_DATABASES: Mutex<Option<HashMap<PathBuf, Database>>> = Mutex::new(None);

/// The database that stands for data directory `data` in PostgreSQL mode:
/// created on first use, the same one for every later process and CLI
/// command on `data` (as the sled store is the one in `data`).
pub fn database_of(data: &Path) -> String {
    let mut map = lock(&DATA_DATABASES);
    let map = map.get_or_insert_with(HashMap::new);
    map.entry(data.to_path_buf()).or_insert_with(Database::create).url.clone()
}

/// The store a server on `data` uses under `backend`: the sled store in
/// `data`, or the database standing for `data` ([`database_of`]).
pub fn open_store(backend: Backend, data: &Path) -> Arc<dyn Store> {
    match backend {
        Backend::Sled => Arc::new(SledStore::open(data).expect("open the sled store")),
        Backend::Postgres => {
            let url = database_of(data);
            Arc::new(on_thread(move || PgStore::open(&url)).expect("open the PostgreSQL store"))
        }
    }
}

/// The `--store` arguments a server process or CLI command on `data` gets under `backend`.
pub fn store_args(backend: Backend, data: &Path) -> Vec<String> {
    match backend {
        Backend::Sled => Vec::new(),
        Backend::Postgres => vec!["--store".into(), database_of(data)],
    }
}
