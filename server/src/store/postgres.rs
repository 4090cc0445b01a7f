//! The PostgreSQL store: several gridsync server processes share one
//! database, and any of them serves any phone (issue 15). Blocking client and
//! a small connection pool ([`pool`]); the schema is migrated on open ([`schema`]).
//!
//! # The change feed: one counter row, taken last
//!
//! Each commit's transaction first writes what needs no feed position (photo
//! index, household keys), then runs
//! `UPDATE feed_counter SET seq = seq + n, at = GREATEST(at, $now) RETURNING seq, at`,
//! then writes its records and feed rows under the positions returned, and
//! commits. The counter row's lock is held from that UPDATE to COMMIT, so
//! commits that take positions are serialised in position order: a
//! transaction can take position N+1 only after the one holding N has
//! committed (and become visible: PostgreSQL leaves the process array before
//! it releases locks) or rolled back (then N is taken again: no gap). Hence the
//! committed feed is always a prefix `1..=head` of positions, whichever server
//! wrote it; a reader paging with `seq > cursor` in any single statement can
//! never see N+1 while N is still to come, so it never skips an entry that a
//! slower transaction commits later, and it needs no visibility watermark.
//! Feed times are kept non-decreasing by the same row (`at`).
//!
//! Throughput limit: one commit at a time per database holds the row, from
//! the UPDATE through two statements per record (record, feed row) to the
//! COMMIT's WAL flush, which cannot be shared with other commits (they wait
//! for the row): at most about 1 / (fsync + 3 round trips) commits per second
//! across all servers. Measured here (`readers_paging_while_two_processes_…`,
//! 8 writers on two pools, fsync on): 420-1,060 commits/s on a disk whose
//! fdatasync takes 1.05 ms (`pg_test_fsync`: 950 per second), i.e. the flush.
//! [`Store::commit_docs`] takes `n` positions in one UPDATE, so a batch of
//! pushes costs one slot: batching pushes per process is how to go past it.
//! The prefix property needs neither LISTEN/NOTIFY nor advisory locks;
//! CockroachDB and YugabyteDB (serializable) order the counter's writers the
//! same way, retrying on a serialization failure (not tested here).
//!
//! Durability: a commit is acknowledged after COMMIT returns, with
//! `synchronous_commit = on`; [`Store::flush`] has nothing left to do. A
//! transaction whose connection is lost before COMMIT (nothing applied) runs
//! again on a new one; a lost COMMIT is reported (its outcome is unknown) and
//! the phone's retry, idempotent, settles it.
//! Every reader is one statement (joins where it needs several tables), so
//! it reads one consistent snapshot.

use super::*;
use ::postgres::IsolationLevel;
use ::postgres::types::ToSql;
use pool::{Conn, Pool, pg, retryable};
use std::collections::HashMap;

pub mod backup;
mod extras;
mod group;
mod move_in;
mod pool;
mod records;
pub mod schema;
pub mod scratch;

pub use group::GroupCounts;
pub use move_in::{MoveError, Moved};

/// A store in a PostgreSQL (or compatible) database.
pub struct PgStore {
    pool: Pool,
    /// The store epochs as last read, and when (see [`backup`]): every sync asks for them.
    epochs: backup::EpochCache,
    /// Commits waiting to go into the next transaction together (group commit).
    commits: group::Gather<records::CommitJob>,
}

/// How many connections a server process keeps open by default.
pub const DEFAULT_CONNECTIONS: usize = 16;

/// How often a transaction that lost a serialization race is run again.
const RETRIES: usize = 8;

/// Why a transaction's body stopped: PostgreSQL said so (perhaps to be
/// retried), or the store did (damaged data).
enum Fail {
    Pg(::postgres::Error),
    Store(StoreError),
}

impl From<::postgres::Error> for Fail {
    fn from(e: ::postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

/// A write that failed: why, and whether it failed at COMMIT, when whether
/// it was applied is unknown (otherwise nothing of it was).
struct WriteFailure {
    error: StoreError,
    at_commit: bool,
}

/// A client (a connection or a transaction on it) with the connection's
/// prepared statements: each statement is parsed once per connection.
struct Q<'a, C: ::postgres::GenericClient> {
    c: &'a mut C,
    prepared: &'a mut HashMap<&'static str, ::postgres::Statement>,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl<C: ::postgres::GenericClient> Q<'_, C> {
    fn st(&mut self, sql: &'static str) -> Result<::postgres::Statement, ::postgres::Error> {
        if let Some(st) = self.prepared.get(sql) {
            return Ok(st.clone());
        }
        let st = self.c.prepare(sql)?;
        self.prepared.insert(sql, st.clone());
        Ok(st)
    }

    fn execute(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64, ::postgres::Error> {
        let st = self.st(sql)?;
        self.c.execute(&st, params)
    }

    fn query(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<::postgres::Row>, ::postgres::Error> {
        let st = self.st(sql)?;
        self.c.query(&st, params)
    }

    fn query_one(&mut self, sql: &'static str, params: Params<'_>) -> Result<::postgres::Row, ::postgres::Error> {
        let st = self.st(sql)?;
        self.c.query_one(&st, params)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<::postgres::Row>, ::postgres::Error> {
        let st = self.st(sql)?;
        self.c.query_opt(&st, params)
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(v).map_err(corrupt)
}

fn dec<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(b).map_err(corrupt)
}

fn path(s: &str) -> Result<TerritoryPath, StoreError> {
    TerritoryPath::parse(s).map_err(|e| corrupt(format!("territory {s:?}: {e}")))
}

/// A count or position as PostgreSQL's BIGINT.
fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A BIGINT read back as a count or position.
fn unsigned(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| corrupt(format!("negative position {n}")))
}

/// `limit` as a LIMIT.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The scope filter's parameters: `grid = $a OR substr(grid, 1, $b) = $c`.
/// (A range over `grid` would need a bytewise collation, which not every
/// database is made with; paths are ASCII, so characters are bytes.)
fn scope_params(scope: &TerritoryPath) -> (String, i32, String) {
    let prefix = format!("{}/", scope.as_str());
    let len = i32::try_from(prefix.len()).unwrap_or(i32::MAX);
    (scope.as_str().to_string(), len, prefix)
}

/// Whether the connection is gone after an error (the server went away, or
/// said it was shutting down, 57P01, and closed it).
fn lost(conn: &Conn) -> bool {
    conn.client.is_closed()
}

/// Runs `f`, which blocks on the database. Store methods belong on tokio's
/// blocking pool (`spawn_blocking`), but the blocking client drives a runtime
/// of its own, which panics wherever a tokio runtime is entered (an async
/// task; on a current-thread runtime, its blocking pool too, as far as the
/// store can tell). So within a runtime: on a multi-threaded one the worker is
/// handed over (`block_in_place`); on a current-thread one (tests) `f` runs on
/// a thread of its own, joined.
fn off_runtime<T: Send>(f: impl FnOnce() -> Result<T, StoreError> + Send) -> Result<T, StoreError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => f(),
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| {
            s.spawn(f).join().unwrap_or_else(|_| Err(StoreError::Engine("a PostgreSQL store call panicked".into())))
        }),
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host/db`, or
    /// `host=/run/postgresql dbname=gridsync`), applying any migration it
    /// lacks. Call from a plain thread or the blocking pool, not an async task.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, DEFAULT_CONNECTIONS)
    }

    /// As [`PgStore::open`], keeping at most `connections` connections.
    pub fn open_with(url: &str, connections: usize) -> Result<Self, StoreError> {
        let config: ::postgres::Config =
            url.parse().map_err(|e| StoreError::Engine(format!("not a PostgreSQL address: {e}")))?;
        let store = Self {
            pool: Pool::new(config, connections),
            epochs: Default::default(),
            commits: group::Gather::new(records::GROUP_WRITES),
        };
        off_runtime(|| schema::migrate(&mut *store.pool.get()?))?;
        Ok(store)
    }

    /// Runs `body` in one transaction, again from the start if it loses a
    /// serialization race or a deadlock (nothing of it was applied then).
    fn write<T: Send>(
        &self,
        isolation: IsolationLevel,
        body: impl FnMut(&mut Q<'_, ::postgres::Transaction<'_>>) -> Result<T, Fail> + Send,
    ) -> Result<T, StoreError> {
        off_runtime(|| self.write_here(isolation, body))
    }

    fn write_here<T>(
        &self,
        isolation: IsolationLevel,
        body: impl FnMut(&mut Q<'_, ::postgres::Transaction<'_>>) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        self.write_telling(isolation, body).map_err(|f| f.error)
    }

    /// As [`Self::write_here`], telling a failure whose outcome is unknown
    /// (COMMIT sent, its answer lost) from one where nothing was applied.
    fn write_telling<T>(
        &self,
        isolation: IsolationLevel,
        mut body: impl FnMut(&mut Q<'_, ::postgres::Transaction<'_>>) -> Result<T, Fail>,
    ) -> Result<T, WriteFailure> {
        let applied_nothing = |error| WriteFailure { error, at_commit: false };
        let mut conn = self.pool.get().map_err(applied_nothing)?;
        let (mut attempt, mut reconnects) = (0, 0);
        loop {
            attempt += 1;
            let Conn { client, prepared } = &mut *conn;
            // The error, and whether it came from COMMIT (whose outcome is then unknown).
            let outcome = (|| -> Result<T, (Fail, bool)> {
                let mut tx =
                    client.build_transaction().isolation_level(isolation).start().map_err(|e| (e.into(), false))?;
                let v = body(&mut Q { c: &mut tx, prepared }).map_err(|f| (f, false))?;
                tx.commit().map_err(|e| (e.into(), true))?;
                Ok(v)
            })();
            match outcome {
                Ok(v) => return Ok(v),
                Err((Fail::Pg(e), false)) if lost(&conn) && reconnects < self.pool.max() => {
                    tracing::warn!(error = %e, "a PostgreSQL connection was lost; the write goes on another");
                    // The server closed this connection (a restart, a failover) before
                    // COMMIT: nothing of the transaction was applied; again on another.
                    reconnects += 1;
                    drop(conn);
                    conn = self.pool.get().map_err(applied_nothing)?;
                }
                Err((Fail::Pg(e), _)) if retryable(&e) && attempt < RETRIES => {
                    std::thread::sleep(std::time::Duration::from_millis(attempt as u64));
                }
                Err((Fail::Pg(e), at_commit)) => return Err(WriteFailure { error: pg(e), at_commit }),
                Err((Fail::Store(e), at_commit)) => return Err(WriteFailure { error: e, at_commit }),
            }
        }
    }

    /// Runs `body` on a connection outside any explicit transaction: for one
    /// statement (again on another connection if the server closed this one).
    fn read<T: Send>(
        &self,
        mut body: impl FnMut(&mut Q<'_, ::postgres::Client>) -> Result<T, Fail> + Send,
    ) -> Result<T, StoreError> {
        off_runtime(|| {
            let mut conn = self.pool.get()?;
            let mut reconnects = 0;
            loop {
                let Conn { client, prepared } = &mut *conn;
                match body(&mut Q { c: client, prepared }) {
                    Ok(v) => return Ok(v),
                    Err(Fail::Pg(e)) if lost(&conn) && reconnects < self.pool.max() => {
                        tracing::warn!(error = %e, "a PostgreSQL connection was lost; the read goes on another");
                        reconnects += 1;
                        drop(conn);
                        conn = self.pool.get()?;
                    }
                    Err(Fail::Pg(e)) => return Err(pg(e)),
                    Err(Fail::Store(e)) => return Err(e),
                }
            }
        })
    }

    fn person_of(row: &::postgres::Row) -> Result<Person, StoreError> {
        let role: String = row.get("role");
        let territory: String = row.get("territory");
        Ok(Person {
            id: PersonId(row.get("id")),
            username: row.get("username"),
            name: row.get("name"),
            role: role.parse().map_err(|_| corrupt(format!("role {role:?}")))?,
            territory: path(&territory)?,
            password_hash: row.get("password_hash"),
            created_at: row.get("created_at"),
        })
    }

    fn device_of(row: &::postgres::Row) -> Result<Device, StoreError> {
        let token_hash: Vec<u8> = row.get("token_hash");
        Ok(Device {
            id: DeviceId(row.get("id")),
            person: PersonId(row.get("person")),
            name: row.get("name"),
            actor: row.get("actor"),
            token_hash: token_hash.try_into().map_err(|_| corrupt("device token hash"))?,
            created_at: row.get("created_at"),
            revoked_at: row.get("revoked_at"),
        })
    }
}

impl Store for PgStore {
    fn put_territory(&self, t: &Territory) -> Result<(), StoreError> {
        self.write(IsolationLevel::ReadCommitted, |q| {
            q.execute(
                "INSERT INTO territories (path, name) VALUES ($1, $2) ON CONFLICT (path) DO UPDATE SET name = EXCLUDED.name",
                &[&t.path.as_str(), &t.name],
            )?;
            Ok(())
        })
    }

    fn territories(&self) -> Result<Vec<Territory>, StoreError> {
        let mut out = self.read(|q| {
            q.query("SELECT path, name FROM territories", &[])?
                .iter()
                .map(|r| Ok(Territory { path: path(r.get(0))?, name: r.get(1) }))
                .collect::<Result<Vec<_>, Fail>>()
        })?;
        // Path order as the sled store gives it (bytewise, whatever the database's collation).
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn put_person(&self, p: &Person) -> Result<(), StoreError> {
        self.write(IsolationLevel::ReadCommitted, |q| {
            // The username's owner, if any, must be this person (its unique index settles races).
            if let Some(row) = q.query_opt("SELECT id FROM people WHERE username = $1", &[&p.username])?
                && row.get::<_, uuid::Uuid>(0) != p.id.0
            {
                return Err(StoreError::Conflict(format!("username {:?}", p.username)).into());
            }
            q.execute(
                "INSERT INTO people (id, username, name, role, territory, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, \
                 name = EXCLUDED.name, role = EXCLUDED.role, territory = EXCLUDED.territory, \
                 password_hash = EXCLUDED.password_hash, created_at = EXCLUDED.created_at",
                &[
                    &p.id.0,
                    &p.username,
                    &p.name,
                    &p.role.as_str(),
                    &p.territory.as_str(),
                    &p.password_hash,
                    &p.created_at,
                ],
            )
            .map_err(|e| match pg(e) {
                StoreError::Conflict(_) => Fail::Store(StoreError::Conflict(format!("username {:?}", p.username))),
                other => Fail::Store(other),
            })?;
            Ok(())
        })
    }

    fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError> {
        self.read(|q| {
            let row = q.query_opt(
                "SELECT id, username, name, role, territory, password_hash, created_at FROM people WHERE id = $1",
                &[&id.0],
            )?;
            Ok(row.as_ref().map(Self::person_of).transpose()?)
        })
    }

    fn person_by_username(&self, username: &str) -> Result<Option<Person>, StoreError> {
        self.read(|q| {
            let row = q.query_opt(
                "SELECT id, username, name, role, territory, password_hash, created_at FROM people WHERE username = $1",
                &[&username],
            )?;
            Ok(row.as_ref().map(Self::person_of).transpose()?)
        })
    }

    fn people(&self) -> Result<Vec<Person>, StoreError> {
        self.read(|q| {
            q.query(
                "SELECT id, username, name, role, territory, password_hash, created_at FROM people ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| Self::person_of(r).map_err(Fail::Store))
            .collect()
        })
    }

    fn put_device(&self, d: &Device) -> Result<(), StoreError> {
        self.write(IsolationLevel::ReadCommitted, |q| {
            q.execute(
                "INSERT INTO devices (id, person, name, actor, token_hash, created_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET person = EXCLUDED.person, \
                 name = EXCLUDED.name, actor = EXCLUDED.actor, token_hash = EXCLUDED.token_hash, \
                 created_at = EXCLUDED.created_at, revoked_at = EXCLUDED.revoked_at",
                &[&d.id.0, &d.person.0, &d.name, &d.actor, &d.token_hash.as_slice(), &d.created_at, &d.revoked_at],
            )?;
            Ok(())
        })
    }

    fn device(&self, id: DeviceId) -> Result<Option<Device>, StoreError> {
        self.read(|q| {
            let row = q.query_opt(
                "SELECT id, person, name, actor, token_hash, created_at, revoked_at FROM devices WHERE id = $1",
                &[&id.0],
            )?;
            Ok(row.as_ref().map(Self::device_of).transpose()?)
        })
    }

    fn devices(&self) -> Result<Vec<Device>, StoreError> {
        self.read(|q| {
            q.query("SELECT id, person, name, actor, token_hash, created_at, revoked_at FROM devices ORDER BY id", &[])?
                .iter()
                .map(|r| Self::device_of(r).map_err(Fail::Store))
                .collect()
        })
    }

    fn person_disabled_at(&self, person: PersonId) -> Result<Option<i64>, StoreError> {
        self.read(|q| {
            let row = q.query_opt("SELECT disabled_at FROM people WHERE id = $1", &[&person.0])?;
            Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)))
        })
    }

    fn set_person_disabled(&self, person: PersonId, at: Option<i64>) -> Result<(), StoreError> {
        self.write(IsolationLevel::ReadCommitted, |q| {
            let n = q.execute("UPDATE people SET disabled_at = $2 WHERE id = $1", &[&person.0, &at])?;
            if n == 0 && at.is_some() {
                return Err(StoreError::Engine(format!("no person {} to disable", person.0)).into());
            }
            Ok(())
        })
    }

    fn device_grace(&self, device: DeviceId) -> Result<Vec<TerritoryPath>, StoreError> {
        self.read(|q| {
            let Some(row) = q.query_opt("SELECT territories FROM device_grace WHERE device = $1", &[&device.0])? else {
                return Ok(Vec::new());
            };
            let text: String = row.get(0);
            Ok(text.lines().map(path).collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn set_device_grace(&self, device: DeviceId, territories: &[TerritoryPath]) -> Result<(), StoreError> {
        let text = territories.iter().map(|t| t.as_str()).collect::<Vec<_>>().join("\n");
        self.write(IsolationLevel::ReadCommitted, |q| {
            if territories.is_empty() {
                q.execute("DELETE FROM device_grace WHERE device = $1", &[&device.0])?;
            } else {
                q.execute(
                    "INSERT INTO device_grace (device, territories) VALUES ($1, $2) \
                     ON CONFLICT (device) DO UPDATE SET territories = EXCLUDED.territories",
                    &[&device.0, &text],
                )?;
            }
            Ok(())
        })
    }

    fn note_device_seen(&self, device: DeviceId, seen: DeviceSeen) -> Result<(), StoreError> {
        let pending = seen.pending.map(big);
        self.write(IsolationLevel::ReadCommitted, |q| {
            q.execute(
                "INSERT INTO device_seen (device, at, pending) VALUES ($1, $2, $3) \
                 ON CONFLICT (device) DO UPDATE SET at = EXCLUDED.at, pending = EXCLUDED.pending",
                &[&device.0, &seen.at, &pending],
            )?;
            Ok(())
        })
    }

    fn device_seen(&self, device: DeviceId) -> Result<Option<DeviceSeen>, StoreError> {
        self.read(|q| {
            let Some(row) = q.query_opt("SELECT at, pending FROM device_seen WHERE device = $1", &[&device.0])? else {
                return Ok(None);
            };
            let pending: Option<i64> = row.get(1);
            Ok(Some(DeviceSeen { at: row.get(0), pending: pending.map(unsigned).transpose()? }))
        })
    }

    fn load_doc(&self, id: DocId) -> Result<Option<StoredDoc>, StoreError> {
        self.doc(id)
    }

    fn commit_doc(&self, w: DocWrite, at: i64) -> Result<u64, StoreError> {
        self.commit_records(vec![(w, Vec::new())], at)
    }

    fn commit_doc_with_keys(&self, w: DocWrite, at: i64, keys: &[HouseholdKey]) -> Result<u64, StoreError> {
        self.commit_records(vec![(w, keys.to_vec())], at)
    }

    fn commit_docs(&self, writes: Vec<(DocWrite, Vec<HouseholdKey>)>, at: i64) -> Result<u64, StoreError> {
        self.commit_records(writes, at)
    }

    fn summary(&self, id: DocId) -> Result<Option<RecordSummary>, StoreError> {
        self.read(|q| {
            let row = q.query_opt("SELECT summary FROM records WHERE id = $1", &[&id.0])?;
            Ok(row.map(|r| dec::<RecordSummary>(r.get(0))).transpose()?)
        })
    }

    fn summaries(&self, ids: &[DocId]) -> Result<HashMap<DocId, RecordSummary>, StoreError> {
        let ids: Vec<uuid::Uuid> = ids.iter().map(|d| d.0).collect();
        self.read(|q| {
            q.query("SELECT id, summary FROM records WHERE id = ANY($1)", &[&ids])?
                .iter()
                .map(|r| Ok((DocId(r.get(0)), dec::<RecordSummary>(r.get(1))?)))
                .collect()
        })
    }

    fn feed_after(&self, scope: &TerritoryPath, after: u64, limit: usize) -> Result<Vec<FeedEntry>, StoreError> {
        self.feed_entries(scope, after, limit)
    }

    fn docs_in_scope(
        &self,
        scope: &TerritoryPath,
        after: Option<DocId>,
        limit: usize,
    ) -> Result<Vec<(DocId, StoredDoc)>, StoreError> {
        self.docs_listed(scope, after, limit)
    }

    fn records_in_scope(
        &self,
        scope: &TerritoryPath,
        kind: RecordKind,
        after: Option<DocId>,
        limit: usize,
    ) -> Result<Vec<RecordListing>, StoreError> {
        self.listings(scope, kind, after, limit)
    }

    fn record_counts_by_grid(
        &self,
        scope: &TerritoryPath,
    ) -> Result<Vec<(TerritoryPath, RecordKind, u64)>, StoreError> {
        self.counts_by_grid(scope)
    }

    fn doc_heads_at(&self, id: DocId, seq: u64) -> Result<Option<Vec<ChangeHash>>, StoreError> {
        self.heads_at(id, seq)
    }

    fn head_seq(&self) -> Result<u64, StoreError> {
        self.read(|q| Ok(unsigned(q.query_one("SELECT seq FROM feed_counter WHERE id = 1", &[])?.get(0))?))
    }

    fn seq_at(&self, at_ms: i64) -> Result<u64, StoreError> {
        self.read(|q| {
            let row =
                q.query_opt("SELECT seq FROM feed WHERE at <= $1 ORDER BY at DESC, seq DESC LIMIT 1", &[&at_ms])?;
            Ok(row.map(|r| unsigned(r.get(0))).transpose()?.unwrap_or(0))
        })
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let head_seq = self.head_seq()?;
        // PostgreSQL's own measure; engines without it (CockroachDB) report 0.
        let disk_bytes = self
            .read(|q| Ok(q.query_one("SELECT pg_database_size(current_database())", &[])?.get::<_, i64>(0)))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .unwrap_or(0);
        Ok(StoreStats { head_seq, disk_bytes })
    }

    fn doc_counts(&self) -> Result<Vec<(RecordKind, u64)>, StoreError> {
        self.counts_by_kind()
    }

    fn records_without_rows(&self, after: Option<DocId>, limit: usize) -> Result<Vec<(DocId, u64)>, StoreError> {
        self.rowless(after, limit)
    }

    fn set_row(&self, id: DocId, seq: u64, row: Vec<u8>) -> Result<bool, StoreError> {
        self.write(IsolationLevel::ReadCommitted, |q| {
            Ok(q.execute("UPDATE records SET flat_row = $3 WHERE id = $1 AND seq = $2", &[&id.0, &big(seq), &row])?
                == 1)
        })
    }

    fn append_audit_in(
        &self,
        territory: Option<&TerritoryPath>,
        actor: &str,
        action: &str,
        detail: &str,
        at: i64,
    ) -> Result<u64, StoreError> {
        self.audit_append(territory, actor, action, detail, at)
    }

    fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_entries(after, limit)
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every commit was durable when it returned (synchronous_commit = on).
        Ok(())
    }

    fn photo(&self, hash: &PhotoHash) -> Result<Option<(PhotoType, Vec<u8>)>, StoreError> {
        self.photo_blob(hash)
    }

    fn has_photo(&self, hash: &PhotoHash) -> Result<bool, StoreError> {
        self.photo_stored(hash)
    }

    fn photo_referrers(&self, hash: &PhotoHash) -> Result<Vec<PhotoReferrer>, StoreError> {
        self.referrers(hash)
    }

    fn upload_received(&self, hash: &PhotoHash) -> Result<u64, StoreError> {
        self.upload_held(hash)
    }

    fn append_upload(&self, hash: &PhotoHash, offset: u64, bytes: &[u8]) -> Result<UploadAppend, StoreError> {
        self.upload_append(hash, offset, bytes)
    }

    fn upload_bytes(&self, hash: &PhotoHash) -> Result<Vec<u8>, StoreError> {
        self.upload_assembled(hash)
    }

    fn finish_upload(&self, hash: &PhotoHash, mime: PhotoType, bytes: &[u8]) -> Result<(), StoreError> {
        self.upload_finish(hash, mime, bytes)
    }

    fn discard_upload(&self, hash: &PhotoHash) -> Result<(), StoreError> {
        self.upload_discard(hash)
    }

    fn household_key(&self, key: &[u8; 32]) -> Result<Option<HouseholdKeyEntry>, StoreError> {
        self.household_key_entry(key)
    }

    fn put_import_run(&self, id: &str, created_at: i64, run: &[u8]) -> Result<(), StoreError> {
        self.import_run_put(id, created_at, run)
    }

    fn import_run(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.import_run_get(id)
    }

    fn import_runs(&self, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.import_runs_newest(limit)
    }

    fn put_import_secret(&self, id: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.import_secret_put(id, bytes)
    }

    fn take_import_secret(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.import_secret_take(id)
    }

    fn import_device(&self, person: PersonId) -> Result<Option<DeviceId>, StoreError> {
        self.import_device_get(person)
    }

    fn set_import_device(&self, person: PersonId, device: DeviceId) -> Result<(), StoreError> {
        self.import_device_set(person, device)
    }

    fn epochs(&self) -> Result<Vec<StoreEpoch>, StoreError> {
        self.stored_epochs()
    }

    fn last_backup(&self) -> Result<Option<crate::backup::BackupMark>, StoreError> {
        self.last_backup_mark()
    }

    fn note_backup(&self, mark: &crate::backup::BackupMark) -> Result<(), StoreError> {
        self.note_backup_mark(mark)
    }

    fn backup(&self, sink: &mut dyn crate::backup::BackupSink) -> Result<crate::backup::BackupFacts, StoreError> {
        self.backup_rows(sink)
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        // The database reports a full disk on the write that meets it
        // (Unwritable); here only whether it answers.
        self.read(|q| {
            q.query_one("SELECT 1", &[])?;
            Ok(())
        })
    }
}
