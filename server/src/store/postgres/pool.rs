//! A small pool of blocking PostgreSQL connections, each with its prepared
//! statements, and the mapping of PostgreSQL's errors onto [`StoreError`].
//!
//! The `postgres` client drives its own single-threaded runtime: it must be
//! called from a plain thread or tokio's blocking pool, never from an async task.

use super::super::StoreError;
use ::postgres::error::SqlState;
use ::postgres::{Client, Config, NoTls, Statement};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How long a caller waits for a free connection before giving up.
const WAIT_FOR_CONNECTION: Duration = Duration::from_secs(30);

/// A connection with the statements prepared on it so far.
pub(super) struct Conn {
    pub client: Client,
    /// Statements prepared on it, by their text.
    pub prepared: HashMap<&'static str, Statement>,
}

/// Up to `max` connections, opened on demand and kept.
pub(super) struct Pool {
    config: Config,
    max: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Conn>,
    open: usize,
}

/// A connection lent by the pool; it goes back when dropped (unless broken).
pub(super) struct Lent<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl std::ops::Deref for Lent<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        match &self.conn {
            Some(c) => c,
            None => unreachable!("a lent connection is present until dropped"),
        }
    }
}

impl std::ops::DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        match &mut self.conn {
            Some(c) => c,
            None => unreachable!("a lent connection is present until dropped"),
        }
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let mut state = self.pool.lock();
        if conn.client.is_closed() {
            state.open -= 1;
        } else {
            state.idle.push(conn);
        }
        drop(state);
        self.pool.freed.notify_one();
    }
}

impl Pool {
    /// A pool over `config` holding at most `max` connections.
    pub fn new(config: Config, max: usize) -> Self {
        Self {
            config,
            max: max.max(1),
            state: Mutex::new(PoolState { idle: Vec::new(), open: 0 }),
            freed: Condvar::new(),
        }
    }

    /// The most connections it keeps.
    pub fn max(&self) -> usize {
        self.max
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection: an idle one, a new one while fewer than `max` are open,
    /// or the next one given back.
    pub fn get(&self) -> Result<Lent<'_>, StoreError> {
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Lent { pool: self, conn: Some(conn) });
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(conn) => Ok(Lent { pool: self, conn: Some(conn) }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let (next, timeout) =
                self.freed.wait_timeout(state, WAIT_FOR_CONNECTION).unwrap_or_else(|p| p.into_inner());
            state = next;
            if timeout.timed_out() && state.idle.is_empty() && state.open >= self.max {
                return Err(StoreError::Unwritable(format!(
                    "no PostgreSQL connection free within {} s ({} open)",
                    WAIT_FOR_CONNECTION.as_secs(),
                    state.open
                )));
            }
        }
    }

    fn connect(&self) -> Result<Conn, StoreError> {
        let mut client = self.config.connect(NoTls).map_err(pg)?;
        // A commit is acknowledged only once it is on disk (and on synchronous
        // standbys, where the database is set up with them).
        client.batch_execute("SET synchronous_commit = on").map_err(pg)?;
        Ok(Conn { client, prepared: HashMap::new() })
    }
}

/// Whether a failed transaction may simply be run again (a serialization
/// failure or a deadlock: nothing of it was applied).
pub(super) fn retryable(e: &::postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

/// A PostgreSQL error as a store error: a lost connection or a full disk
/// means the store cannot write now; a unique violation is a conflict.
pub(super) fn pg(e: ::postgres::Error) -> StoreError {
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection failed or closed.
        return StoreError::Unwritable(format!("PostgreSQL: {e}"));
    };
    let class = &code.code()[..2];
    let text = match e.as_db_error() {
        Some(db) => format!("PostgreSQL {}: {}", code.code(), db.message()),
        None => format!("PostgreSQL {}: {e}", code.code()),
    };
    match class {
        // 08 connection exception, 53 insufficient resources (disk full), 57 operator intervention (shutdown).
        "08" | "53" | "57" => StoreError::Unwritable(text),
        "23" if *code == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(text),
        _ => StoreError::Engine(text),
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.lock().idle);
        // A client's drop says goodbye to the server by blocking on its own
        // runtime, which panics on an async worker: done on a thread of its own.
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}
