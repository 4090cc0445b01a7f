//! A throwaway PostgreSQL for tests and benchmarks: `initdb` into a temporary
//! directory, a server listening only on a Unix socket there, one database
//! per caller, stopped and deleted when dropped. Finds the programs in
//! `GRIDSYNC_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `PATH`;
//! fails (never skips) when they are missing. As root it runs them as the
//! `postgres` user, since PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use thiserror::Error;

/// Why a throwaway PostgreSQL could not be had.
#[derive(Debug, Error)]
pub enum ScratchError {
    /// `initdb` and `pg_ctl` were not found.
    #[error(
        "PostgreSQL's programs (initdb, pg_ctl) were not found: install Debian's postgresql package, or set GRIDSYNC_PG_BIN to their directory ({0})"
    )]
    Missing(String),
    /// A step failed.
    #[error("the throwaway PostgreSQL failed: {0}")]
    Failed(String),
}

/// A running throwaway PostgreSQL server.
pub struct ScratchPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    databases: AtomicUsize,
}

/// The port in the socket's name (`.s.PGSQL.<port>`); no TCP port is opened.
const PORT: u16 = 5432;

fn failed(what: &str, e: impl std::fmt::Display) -> ScratchError {
    ScratchError::Failed(format!("{what}: {e}"))
}

impl ScratchPostgres {
    /// The directory holding `initdb` and `pg_ctl`.
    pub fn bin_dir() -> Result<PathBuf, ScratchError> {
        if let Some(dir) = std::env::var_os("GRIDSYNC_PG_BIN") {
            let dir = PathBuf::from(dir);
            return if dir.join("initdb").is_file() {
                Ok(dir)
            } else {
                Err(ScratchError::Missing(format!("GRIDSYNC_PG_BIN={} holds no initdb", dir.display())))
            };
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let v: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((v, bin))
            })
            .collect();
        versions.sort();
        if let Some((_, bin)) = versions.pop() {
            return Ok(bin);
        }
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
            .ok_or_else(|| ScratchError::Missing("not in GRIDSYNC_PG_BIN, /usr/lib/postgresql/*/bin or PATH".into()))
    }

    /// Makes and starts a new server (about a second).
    pub fn start() -> Result<Self, ScratchError> {
        Self::start_with(&[])
    }

    /// Like [`Self::start`], with these server settings (`name=value`, each
    /// given as `-c`): e.g. `fsync=off` for tests that kill gridsync's
    /// processes but never the database's machine.
    pub fn start_with(settings: &[&str]) -> Result<Self, ScratchError> {
        let bin = Self::bin_dir()?;
        let dir =
            tempfile::Builder::new().prefix("gridsync-pg-").tempdir().map_err(|e| failed("temporary directory", e))?;
        let as_postgres = std::env::var("USER").map(|u| u == "root").unwrap_or(false) || is_root();
        if as_postgres {
            let status =
                Command::new("chown").arg("postgres:").arg(dir.path()).status().map_err(|e| failed("chown", e))?;
            if !status.success() {
                return Err(ScratchError::Failed(
                    "cannot hand the directory to the postgres user (is there one?)".into(),
                ));
            }
        }
        let pg = Self { dir, bin, as_postgres, databases: AtomicUsize::new(0) };
        let data = pg.data();
        pg.run(
            "initdb",
            &["-D", path_str(&data)?, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        )?;
        let mut options =
            format!("-k {} -c listen_addresses='' -p {PORT} -c max_connections=300", path_str(pg.dir.path())?);
        for setting in settings {
            options.push_str(" -c ");
            options.push_str(setting);
        }
        let log = pg.dir.path().join("log");
        pg.run("pg_ctl", &["-D", path_str(&data)?, "-l", path_str(&log)?, "-w", "-t", "60", "-o", &options, "start"])?;
        Ok(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of PostgreSQL's programs (as `postgres` when we are root).
    fn run(&self, program: &str, args: &[&str]) -> Result<(), ScratchError> {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).current_dir(self.dir.path()).output().map_err(|e| failed(program, e))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
            return Err(ScratchError::Failed(format!(
                "{program} {}: {}{}\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Restarts the server (as a failover would): every open connection is closed.
    pub fn restart(&self) -> Result<(), ScratchError> {
        let (data, log) = (self.data(), self.dir.path().join("log"));
        self.run("pg_ctl", &["-D", path_str(&data)?, "-l", path_str(&log)?, "-m", "fast", "-w", "restart"])
    }

    /// The connection string of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("host={} port={PORT} user=postgres dbname={name}", self.dir.path().display())
    }

    /// The temporary directory holding the data directory, the socket and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Drops the database of connection string `url` (made by
    /// [`Self::create_database`]), closing its sessions first.
    /// Call from a plain thread (the client is blocking).
    pub fn drop_database(&self, url: &str) -> Result<(), ScratchError> {
        let name = database_name(url)?;
        let mut client =
            ::postgres::Client::connect(&self.url("postgres"), ::postgres::NoTls).map_err(|e| failed("connect", e))?;
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .map_err(|e| failed("DROP DATABASE", e))
    }

    /// Creates a new empty database and returns its connection string.
    /// Call from a plain thread (the client is blocking).
    pub fn create_database(&self) -> Result<String, ScratchError> {
        let name = format!("gridsync_{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let mut client =
            ::postgres::Client::connect(&self.url("postgres"), ::postgres::NoTls).map_err(|e| failed("connect", e))?;
        client.batch_execute(&format!("CREATE DATABASE {name}")).map_err(|e| failed("CREATE DATABASE", e))?;
        Ok(self.url(&name))
    }

    /// Creates a new database as a copy of the one at `template` (made by
    /// [`Self::create_database`], no session open on it) and returns its
    /// connection string: a file copy, quicker than migrating an empty one.
    /// Call from a plain thread (the client is blocking).
    pub fn copy_database(&self, template: &str) -> Result<String, ScratchError> {
        let template = database_name(template)?;
        let name = format!("gridsync_{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let mut client =
            ::postgres::Client::connect(&self.url("postgres"), ::postgres::NoTls).map_err(|e| failed("connect", e))?;
        // A session on the template that is still closing makes the copy fail for a moment.
        let mut tries = 0;
        loop {
            match client.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")) {
                Ok(()) => return Ok(self.url(&name)),
                Err(e) if tries < 100 && e.code() == Some(&::postgres::error::SqlState::OBJECT_IN_USE) => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(failed("CREATE DATABASE … TEMPLATE", e)),
            }
        }
    }
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        if let Ok(data) = path_str(&self.data()).map(str::to_string) {
            let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        }
    }
}

/// The name of the database at `url`, if it is one [`ScratchPostgres`] made.
fn database_name(url: &str) -> Result<String, ScratchError> {
    let config: ::postgres::Config = url.parse().map_err(|e| failed("connection string", e))?;
    let name = config.get_dbname().ok_or_else(|| ScratchError::Failed(format!("no database in {url}")))?;
    if !name.starts_with("gridsync_") || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(ScratchError::Failed(format!("not a database this server made: {name}")));
    }
    Ok(name.to_string())
}

fn path_str(p: &Path) -> Result<&str, ScratchError> {
    p.to_str().ok_or_else(|| ScratchError::Failed(format!("not a UTF-8 path: {}", p.display())))
}

/// Whether this process runs as root (whose files the `postgres` user cannot own).
fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.trim_ascii() == b"0").unwrap_or(false)
}
