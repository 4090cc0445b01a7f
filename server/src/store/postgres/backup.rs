//! The PostgreSQL store's epochs (one per restore; a move from sled brings
//! the sled store's) and the mark of its last backup.

use super::*;
use std::time::{Duration, Instant};

/// How long the epochs read are used before they are read again. Every sync
/// asks for them (its cursor names one), and they change only when a backup
/// is restored, which needs an empty database: a server serving one sees the
/// new epoch within this long.
const EPOCHS_KEPT: Duration = Duration::from_secs(1);

/// The store's epochs as last read, and when.
#[derive(Default)]
pub(super) struct EpochCache(std::sync::Mutex<Option<(Instant, Vec<StoreEpoch>)>>);

impl EpochCache {
    /// Forgets what was read (the epochs were just written).
    pub(super) fn forget(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl PgStore {
    pub(super) fn stored_epochs(&self) -> Result<Vec<StoreEpoch>, StoreError> {
        let lock = || self.epochs.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, epochs)) = lock().as_ref()
            && at.elapsed() < EPOCHS_KEPT
        {
            return Ok(epochs.clone());
        }
        let epochs = self.read_epochs()?;
        *lock() = Some((Instant::now(), epochs.clone()));
        Ok(epochs)
    }

    fn read_epochs(&self) -> Result<Vec<StoreEpoch>, StoreError> {
        self.read(|q| {
            q.query("SELECT id, base_seq, at FROM store_epochs ORDER BY n", &[])?
                .into_iter()
                .map(|r| {
                    let id: Vec<u8> = r.get(0);
                    Ok(StoreEpoch {
                        id: id.try_into().map_err(|_| corrupt("a store epoch id is not 16 bytes"))?,
                        base_seq: unsigned(r.get(1))?,
                        at: r.get(2),
                    })
                })
                .collect()
        })
    }

    pub(super) fn last_backup_mark(&self) -> Result<Option<crate::backup::BackupMark>, StoreError> {
        self.read(|q| {
            let Some(r) = q.query_opt("SELECT at, head_seq FROM last_backup WHERE id = 1", &[])? else {
                return Ok(None);
            };
            Ok(Some(crate::backup::BackupMark { at: r.get(0), head_seq: unsigned(r.get(1))? }))
        })
    }

    pub(super) fn note_backup_mark(&self, mark: &crate::backup::BackupMark) -> Result<(), StoreError> {
        self.write(IsolationLevel::ReadCommitted, |q| {
            q.execute(
                "INSERT INTO last_backup (id, at, head_seq) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at, head_seq = EXCLUDED.head_seq",
                &[&mark.at, &big(mark.head_seq)],
            )?;
            Ok(())
        })
    }
}

/// What a PostgreSQL backup's header names as its engine (restore checks it).
pub const ENGINE: &str = "postgresql; every table, row by row (JSON)";

/// The trees of a PostgreSQL backup are its tables, named `pg/<table>`.
const TREE_PREFIX: &str = "pg/";

/// A table name as an SQL identifier.
fn ident(table: &str) -> String {
    format!("\"{}\"", table.replace('"', "\"\""))
}

/// The store's tables (those a backup holds): every table of the schema but `schema_version`.
fn tables<C: ::postgres::GenericClient>(c: &mut C) -> Result<Vec<String>, ::postgres::Error> {
    Ok(c.query(
        "SELECT table_name::TEXT FROM information_schema.tables WHERE table_schema = current_schema() \
         AND table_type = 'BASE TABLE' AND table_name <> 'schema_version' ORDER BY table_name",
        &[],
    )?
    .into_iter()
    .map(|r| r.get(0))
    .collect())
}

/// Runs `f`, which blocks on the database, where the client may block: here
/// outside a runtime, handing the worker over on a multi-threaded one. Unlike
/// [`off_runtime`] it needs no `Send` (a backup's sink), so it refuses a
/// current-thread runtime.
fn blocking_here<T>(f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => f(),
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        Ok(_) => Err(StoreError::Engine("a PostgreSQL backup runs on a plain thread or the blocking pool".into())),
    }
}

impl PgStore {
    /// Writes every row of every table into `sink`, in one read-only
    /// REPEATABLE READ transaction: the backup is the database at one moment
    /// while servers go on writing (they never wait for it).
    pub(super) fn backup_rows(
        &self,
        sink: &mut dyn crate::backup::BackupSink,
    ) -> Result<crate::backup::BackupFacts, StoreError> {
        use ::postgres::fallible_iterator::FallibleIterator;
        let started = std::time::Instant::now();
        blocking_here(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn
                .client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(pg)?;
            let mut trees = Vec::new();
            for table in tables(&mut tx).map_err(pg)? {
                let tree = format!("{TREE_PREFIX}{table}");
                let sql = format!("SELECT row_to_json(t)::TEXT FROM {} t", ident(&table));
                let mut rows = tx.query_raw(sql.as_str(), std::iter::empty::<&(dyn ToSql + Sync)>()).map_err(pg)?;
                let mut n = 0u64;
                while let Some(row) = rows.next().map_err(pg)? {
                    let json: String = row.get(0);
                    sink.item(tree.as_bytes(), &n.to_be_bytes(), Some(json.as_bytes()))?;
                    n += 1;
                }
                trees.push((tree, n));
            }
            let head: i64 = tx.query_one("SELECT seq FROM feed_counter WHERE id = 1", &[]).map_err(pg)?.get(0);
            let audit: i64 = tx.query_one("SELECT seq FROM audit_counter WHERE id = 1", &[]).map_err(pg)?.get(0);
            let epochs: Vec<Vec<u8>> = tx
                .query("SELECT id FROM store_epochs ORDER BY n", &[])
                .map_err(pg)?
                .into_iter()
                .map(|r| r.get(0))
                .collect();
            tx.commit().map_err(pg)?;
            Ok(crate::backup::BackupFacts {
                head_seq: unsigned(head)?,
                audit_seq: unsigned(audit)?,
                epoch: epochs.last().and_then(|id| id.as_slice().try_into().ok()),
                epochs: epochs.len() as u64,
                trees,
                recopied: 0,
                gate_held_ms: 0.0,
                elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
            })
        })
    }

    /// Restores a PostgreSQL backup into this (empty) database in one
    /// transaction, checked to its end before anything is kept; starts a new
    /// store epoch (phones are told, send their own changes again and go on
    /// from the backup's position) and audits it as done by `who`, with `detail`.
    pub fn restore_backup<R: std::io::Read + Send>(
        &self,
        reader: &mut crate::backup::BackupReader<R>,
        who: &str,
        detail: &str,
        at: i64,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<StoreEpoch, crate::backup::BackupError> {
        use crate::backup::BackupError;
        if reader.header.engine != ENGINE {
            return Err(BackupError::OtherEngine(
                reader.header.engine.clone(),
                "a sled data directory (--data, without --store)",
            ));
        }
        let outcome = off_runtime(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.client.transaction().map_err(pg)?;
            if let Err(held) = move_in::refuse_unless_empty(&mut tx) {
                return Ok(Err(BackupError::NotEmpty(format!("the PostgreSQL database ({held})"))));
            }
            let known = tables(&mut tx).map_err(pg)?;
            tx.batch_execute("DELETE FROM feed_counter; DELETE FROM audit_counter").map_err(pg)?;
            let mut inserts: HashMap<String, ::postgres::Statement> = HashMap::new();
            let mut n = 0u64;
            for item in reader.by_ref() {
                let (tree, _key, value) = item?;
                let tree = String::from_utf8_lossy(&tree).into_owned();
                let Some(table) = tree.strip_prefix(TREE_PREFIX).filter(|t| known.iter().any(|k| k == t)) else {
                    return Ok(Err(BackupError::Corrupt(format!(
                        "a row of {tree:?}, which this database has no table for"
                    ))));
                };
                let Some(value) = value else { continue };
                let json = std::str::from_utf8(&value).map_err(|_| corrupt("a row that is not JSON text"))?;
                let st = match inserts.get(table) {
                    Some(st) => st.clone(),
                    None => {
                        let t = ident(table);
                        let sql =
                            format!("INSERT INTO {t} SELECT * FROM json_populate_record(NULL::{t}, $1::TEXT::JSON)");
                        let st = tx.prepare(&sql).map_err(pg)?;
                        inserts.insert(table.to_string(), st.clone());
                        st
                    }
                };
                tx.execute(&st, &[&json]).map_err(pg)?;
                n += 1;
                if n.is_multiple_of(1024) {
                    progress(n);
                }
            }
            if let Some(e) = reader.failure() {
                return Ok(Err(e));
            }
            let Some(end) = reader.end.clone() else { return Ok(Err(BackupError::Truncated(0))) };
            tx.batch_execute(
                "INSERT INTO feed_counter (id, seq, at) VALUES (1, 0, 0) ON CONFLICT DO NOTHING; \
                 INSERT INTO audit_counter (id, seq) VALUES (1, 0) ON CONFLICT DO NOTHING",
            )
            .map_err(pg)?;
            let head: i64 = tx.query_one("SELECT seq FROM feed_counter WHERE id = 1", &[]).map_err(pg)?.get(0);
            if unsigned(head)? != end.facts.head_seq {
                return Ok(Err(BackupError::Corrupt(format!(
                    "the restored feed counter is {head}, the backup says {}",
                    end.facts.head_seq
                ))));
            }
            let epoch = StoreEpoch { id: *uuid::Uuid::new_v4().as_bytes(), base_seq: end.facts.head_seq, at };
            let count: i64 = tx.query_one("SELECT COUNT(*) FROM store_epochs", &[]).map_err(pg)?.get(0);
            let ord = i32::try_from(count).unwrap_or(i32::MAX);
            tx.execute(
                "INSERT INTO store_epochs (n, id, base_seq, at) VALUES ($1, $2, $3, $4)",
                &[&ord, &epoch.id.as_slice(), &big(epoch.base_seq), &epoch.at],
            )
            .map_err(pg)?;
            let seq: i64 = tx
                .query_one("UPDATE audit_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq", &[])
                .map_err(pg)?
                .get(0);
            let detail = format!("{detail}; new store epoch {}", hex::encode(epoch.id));
            tx.execute(
                "INSERT INTO audit (seq, at, actor, action, detail) VALUES ($1, $2, $3, 'store.restore', $4)",
                &[&seq, &at, &who, &detail],
            )
            .map_err(pg)?;
            tx.commit().map_err(pg)?;
            self.epochs.forget();
            Ok(Ok(epoch))
        });
        outcome.map_err(BackupError::Store)?
    }
}
