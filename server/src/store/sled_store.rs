//! The default store: sled, embedded, one tree with prefixed keys so that each
//! commit is one atomic batch.
//!
//! Records are kept in layout 2 (see [`records`]): each commit's changes once,
//! five keys for a new record. Other keys: `p/`, `u/`, `v/`, `t/` people,
//! usernames, devices and territories, `pd/<person>` disabled people, `a/<seq>`
//! audit log, `m/*` counters and marks (`m/layout` the layout version),
//! `pr/<sha256 hex><doc>` the photo index (written in each commit's batch).
//! Photo bytes live in trees of their own (see [`photos`]); household keys and
//! import runs too (see [`imports`]). A store written in layout 1 is upgraded
//! in place when opened (see [`migrate`]). The large values are compressed by
//! the store (changes, rows); sled's own page compression is off for new
//! stores, and a store made with it keeps it.
//!
//! A failed write (disk full, I/O error) poisons a sled 0.34 database for
//! good: every later write returns the same error, though space was freed.
//! So after a failed write the store refuses writes at once with
//! [`StoreError::Unwritable`], and at most once a second (backing off to 10 s)
//! probes the file system with a 1 MiB file; once that succeeds it drops the
//! poisoned database (sled's file lock goes with its last handle), reopens it
//! — which recovers exactly what was flushed — and checks it with a flushed
//! write. Reads go on from the old database meanwhile. A feed position handed
//! out before the failure is never handed out again: the reopened counter
//! starts above the highest one used, so a phone whose cursor saw an entry that
//! did not survive cannot miss the next one.

use super::*;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

mod backup;
mod compact;
mod counts;
mod devices;
mod imports;
mod migrate;
mod photos;
mod profile;
mod records;
mod vacuum;

pub use profile::PrefixBytes;
pub use vacuum::{VacuumError, Vacuumed};

/// A store in a sled database directory.
pub struct SledStore {
    dir: PathBuf,
    /// The database; `None` only while a reopen failed.
    db: RwLock<Option<sled::Db>>,
    /// Serialises writers so sequence numbers become visible in order.
    write: Mutex<()>,
    /// Every write holds this shared; a backup holds it alone for a moment
    /// (see [`backup`]), so that no write is half done at its instant.
    gate: backup::Gate,
    /// Serialises photo uploads' appends (apart from `write`: a record's
    /// commit never waits behind a photo).
    uploads: Mutex<()>,
    /// Whether writing works, and when it was last probed.
    health: Mutex<Health>,
    /// The highest feed and audit positions this process handed out.
    seq_floor: AtomicU64,
    audit_floor: AtomicU64,
    /// The highest feed position known to be on disk. Readers see the feed only
    /// up to here: a position read before a crash could otherwise be handed to
    /// another entry after it, and a phone whose cursor passed it would never
    /// receive that entry.
    durable_seq: AtomicU64,
    /// The grids holding records (see [`records`]).
    grids: RwLock<std::collections::BTreeSet<TerritoryPath>>,
    /// Records due for compaction.
    compactor: compact::Queue,
    /// Writes by this process that left a record without a row: a pass that
    /// finds every record with its row marks the store so only if none
    /// happened while it read (see [`records::ROWS_COMPLETE`]).
    rowless_writes: AtomicU64,
}

#[derive(Default)]
struct Health {
    /// Set by a failed write; cleared by a successful reopen.
    failed: Option<Failed>,
    /// The last file-system probe while healthy: when, and what it said.
    probed: Option<(Instant, Result<(), String>)>,
}

struct Failed {
    reason: String,
    next_attempt: Instant,
    backoff: Duration,
}

impl Failed {
    fn again_later(&mut self, reason: String) {
        self.reason = reason;
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(RECOVERY_BACKOFF_MAX);
    }
}

/// A read lock on the current database.
struct Db<'a>(RwLockReadGuard<'a, Option<sled::Db>>);

impl std::ops::Deref for Db<'_> {
    type Target = sled::Db;
    fn deref(&self) -> &sled::Db {
        match self.0.as_ref() {
            Some(db) => db,
            // `SledStore::db` hands out a guard only over a database.
            None => unreachable!("Db guard without a database"),
        }
    }
}

fn engine(e: sled::Error) -> StoreError {
    // An I/O error (a full disk met by sled's background flush, then
    // returned to any later call) means the store cannot write: said as such.
    match e {
        sled::Error::Io(_) => StoreError::Unwritable(e.to_string()),
        e => StoreError::Engine(e.to_string()),
    }
}

/// A failed write: the database is poisoned until reopened.
fn unwritable(e: sled::Error) -> StoreError {
    StoreError::Unwritable(e.to_string())
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(b).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// An audit entry as kept; one written before entries named their territory
/// (five fields, no sixth) reads as one about the whole store. The current
/// form is tried first: postcard would read a current entry's first five
/// fields as the old form and ignore the rest.
fn audit_entry(b: &[u8]) -> Result<AuditEntry, StoreError> {
    /// The form of releases before the audit log kept territories.
    #[derive(Deserialize)]
    struct Untagged {
        seq: u64,
        at: i64,
        actor: String,
        action: String,
        detail: String,
    }
    dec::<AuditEntry>(b).or_else(|current| {
        let Untagged { seq, at, actor, action, detail } = dec(b).map_err(|_| current)?;
        Ok(AuditEntry { seq, at, actor, action, detail, territory: None })
    })
}

fn key(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn scope_key(prefix: &[u8], scope: &TerritoryPath) -> Vec<u8> {
    key(prefix, &[scope.as_str().as_bytes(), b"\0"])
}

const SEQ: &[u8] = b"m/seq";
/// sled's in-process page cache.
const CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// zstd's level for sled's pages, in stores made with them compressed.
const ZSTD_LEVEL: i32 = 3;
const AUDIT_SEQ: &[u8] = b"m/audit";
/// Written and flushed after a reopen, to prove the database writes again.
const PROBE_KEY: &[u8] = b"m/probe";
/// The file the write probes use, in the data directory.
const PROBE_FILE: &str = ".write-probe";
/// Bytes of the health probe while writing works, and of the probe that decides a reopen.
const HEALTH_PROBE_BYTES: usize = 4 * 1024;
const RECOVERY_PROBE_BYTES: usize = 1024 * 1024;
const HEALTH_PROBE_EVERY: Duration = Duration::from_secs(1);
const RECOVERY_BACKOFF_FIRST: Duration = Duration::from_secs(1);
const RECOVERY_BACKOFF_MAX: Duration = Duration::from_secs(10);

fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    // sled's page cache defaults to 1 GiB; a bounded cache keeps the server's
    // memory predictable (the OS page cache still holds hot data).
    sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_BYTES)
        .use_compression(compressed(dir))
        .compression_factor(ZSTD_LEVEL)
        .open()
        .map_err(|e| match e {
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") => {
                StoreError::Locked(dir.display().to_string())
            }
            other => engine(other),
        })
}

/// Waits until no `sled::Db` of this process holds the store in `dir` open
/// (at most `within`): sled lets go of its file lock a moment after the last
/// handle is dropped, when its background writers finish, so a store closed
/// and opened again at once in one process could read as `Locked`. Probes
/// the lock sled takes (an exclusive `flock` on the `db` file) without
/// opening the store; returns `Locked` if it is still held after `within`.
pub(crate) fn wait_until_closed(dir: &Path, within: Duration) -> Result<(), StoreError> {
    use std::os::fd::AsRawFd;
    let deadline = Instant::now() + within;
    loop {
        let file = match std::fs::File::open(dir.join("db")) {
            Ok(f) => f,
            // No store there: nothing holds it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::Unwritable(format!("{}: {e}", dir.display()))),
        };
        // SAFETY: flock on a descriptor this function owns; the lock goes with it when `file` drops.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(StoreError::Locked(dir.display().to_string()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether the store in `dir` uses sled's page compression: as it was made
/// (sled refuses a change), and no for a new one. Compressed pages made sled
/// 2× slower to write and 20× slower to open after a crash (it replays its
/// log since the last snapshot, inflating every page); the store compresses
/// the large values itself instead (see [`records`]).
fn compressed(dir: &Path) -> bool {
    // sled's `conf`: text lines, then a checksum.
    match std::fs::read(dir.join("conf")) {
        Ok(conf) => String::from_utf8_lossy(&conf).lines().any(|l| l.trim() == "use_compression: true"),
        Err(_) => false,
    }
}

/// Writes, syncs and removes a file of `bytes` bytes in `dir`.
fn probe_dir(dir: &Path, bytes: usize) -> Result<(), String> {
    use std::io::Write;
    let path = dir.join(PROBE_FILE);
    let result = (|| {
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&vec![0u8; bytes])?;
        f.sync_all()
    })();
    let _ = std::fs::remove_file(&path);
    result.map_err(|e| format!("writing to {}: {e}", dir.display()))
}

fn counter(db: &sled::Db, k: &[u8]) -> Result<u64, StoreError> {
    Ok(match db.get(k).map_err(engine)? {
        Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::Corrupt("counter".into()))?),
        None => 0,
    })
}

fn get<T: DeserializeOwned>(db: &sled::Db, k: &[u8]) -> Result<Option<T>, StoreError> {
    db.get(k).map_err(engine)?.map(|v| dec(&v)).transpose()
}

fn all<T: DeserializeOwned>(db: &sled::Db, prefix: &[u8]) -> Result<Vec<T>, StoreError> {
    db.scan_prefix(prefix).map(|kv| dec(&kv.map_err(engine)?.1)).collect()
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`. Fails with `Locked` if a
    /// running server holds it.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        Self::over(dir, open_db(dir)?)
    }

    /// The store over `db`, opened in `dir`.
    fn over(dir: &Path, db: sled::Db) -> Result<Self, StoreError> {
        migrate::to_current(&db)?;
        // What sled finds on opening is what reached the disk.
        let durable = counter(&db, SEQ)?;
        let grids = Self::load_grids(&db)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            db: RwLock::new(Some(db)),
            write: Mutex::new(()),
            gate: backup::Gate::default(),
            uploads: Mutex::new(()),
            health: Mutex::new(Health::default()),
            seq_floor: AtomicU64::new(0),
            audit_floor: AtomicU64::new(0),
            durable_seq: AtomicU64::new(durable),
            grids: RwLock::new(grids),
            compactor: compact::Queue::default(),
            rowless_writes: AtomicU64::new(0),
        })
    }

    /// The current database, for one operation (never held across another call of `db`).
    fn db(&self) -> Result<Db<'_>, StoreError> {
        let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
        if guard.is_some() {
            return Ok(Db(guard));
        }
        // Not holding the lock while asking why: a reopen holds `health` while it waits for it.
        drop(guard);
        Err(StoreError::Unwritable(self.failure().unwrap_or_else(|| "the store is being reopened".into())))
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failure(&self) -> Option<String> {
        self.health().failed.as_ref().map(|f| f.reason.clone())
    }

    /// The writers' lock, taken after the backup gate (always in this order).
    fn lock(&self) -> (std::sync::MutexGuard<'_, ()>, backup::GateGuard<'_>) {
        let gate = self.gate.enter();
        (self.write.lock().unwrap_or_else(|p| p.into_inner()), gate)
    }

    /// Runs a write; a failure marks the database poisoned. While it is, writes
    /// are refused at once except when a recovery attempt is due.
    fn write_op<T>(&self, f: impl FnOnce(&sled::Db) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let _gate = self.gate.enter();
        self.recover_if_failed()?;
        let result = {
            let db = self.db()?;
            f(&db)
        };
        if let Err(StoreError::Unwritable(reason)) = &result {
            let mut h = self.health();
            if h.failed.is_none() {
                tracing::error!(error = %reason, dir = %self.dir.display(), "the store failed to write; refusing writes until it recovers");
                h.failed = Some(Failed {
                    reason: reason.clone(),
                    next_attempt: Instant::now() + RECOVERY_BACKOFF_FIRST,
                    backoff: RECOVERY_BACKOFF_FIRST * 2,
                });
            }
        }
        result
    }

    /// If a write failed: refuses at once unless an attempt is due; then, if
    /// the file system takes a 1 MiB file again, reopens the database.
    fn recover_if_failed(&self) -> Result<(), StoreError> {
        let mut h = self.health();
        let Some(failed) = h.failed.as_mut() else { return Ok(()) };
        if Instant::now() < failed.next_attempt {
            return Err(StoreError::Unwritable(failed.reason.clone()));
        }
        if let Err(e) = probe_dir(&self.dir, RECOVERY_PROBE_BYTES) {
            failed.again_later(e);
            return Err(StoreError::Unwritable(failed.reason.clone()));
        }
        match self.reopen() {
            Ok(()) => {
                tracing::info!(dir = %self.dir.display(), "the store writes again: reopened and recovered");
                h.failed = None;
                h.probed = None;
                Ok(())
            }
            Err(e) => {
                failed.again_later(e.to_string());
                Err(StoreError::Unwritable(failed.reason.clone()))
            }
        }
    }

    /// Drops the poisoned database (waiting for operations under way), opens
    /// it again, lifts its counters above every position handed out, and proves
    /// it writes.
    fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        // sled holds an exclusive lock on its files until its last handle is dropped.
        drop(slot.take());
        let db = open_db(&self.dir)?;
        for (k, floor) in [(SEQ, &self.seq_floor), (AUDIT_SEQ, &self.audit_floor)] {
            let floor = floor.load(Ordering::Acquire);
            let durable = counter(&db, k)?;
            if durable < floor {
                tracing::warn!(
                    counter = %String::from_utf8_lossy(k), durable, floor,
                    "positions handed out before the failed write were not saved; they stay unused"
                );
                db.insert(k, floor.to_be_bytes().to_vec()).map_err(unwritable)?;
            }
        }
        db.insert(PROBE_KEY, crate::http::now_ms().to_be_bytes().to_vec()).map_err(unwritable)?;
        db.flush().map_err(unwritable)?;
        // Positions up to the counter are now on disk or gaps nobody saw.
        self.durable_seq.fetch_max(counter(&db, SEQ)?, Ordering::AcqRel);
        *slot = Some(db);
        Ok(())
    }
}

impl Store for SledStore {
    fn put_territory(&self, t: &Territory) -> Result<(), StoreError> {
        let (k, v) = (key(b"t/", &[t.path.as_str().as_bytes()]), enc(t)?);
        self.write_op(|db| db.insert(k, v).map(|_| ()).map_err(unwritable))
    }

    fn territories(&self) -> Result<Vec<Territory>, StoreError> {
        all(&*self.db()?, b"t/")
    }

    fn put_person(&self, p: &Person) -> Result<(), StoreError> {
        let _w = self.lock();
        let ukey = key(b"u/", &[p.username.as_bytes()]);
        let value = enc(p)?;
        self.write_op(|db| {
            if let Some(existing) = db.get(&ukey).map_err(engine)?
                && existing.as_ref() != p.id.as_bytes()
            {
                return Err(StoreError::Conflict(format!("username {:?}", p.username)));
            }
            let mut b = sled::Batch::default();
            b.insert(key(b"p/", &[p.id.as_bytes()]), value);
            b.insert(ukey, p.id.as_bytes().to_vec());
            db.apply_batch(b).map_err(unwritable)
        })
    }

    fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError> {
        get(&*self.db()?, &key(b"p/", &[id.as_bytes()]))
    }

    fn person_by_username(&self, username: &str) -> Result<Option<Person>, StoreError> {
        let db = self.db()?;
        match db.get(key(b"u/", &[username.as_bytes()])).map_err(engine)? {
            None => Ok(None),
            Some(id) => get(&db, &key(b"p/", &[&id])),
        }
    }

    fn people(&self) -> Result<Vec<Person>, StoreError> {
        all(&*self.db()?, b"p/")
    }

    fn put_device(&self, d: &Device) -> Result<(), StoreError> {
        let (k, v) = (key(b"v/", &[d.id.as_bytes()]), enc(d)?);
        self.write_op(|db| db.insert(k, v).map(|_| ()).map_err(unwritable))
    }

    fn device(&self, id: DeviceId) -> Result<Option<Device>, StoreError> {
        get(&*self.db()?, &key(b"v/", &[id.as_bytes()]))
    }

    fn devices(&self) -> Result<Vec<Device>, StoreError> {
        all(&*self.db()?, b"v/")
    }

    fn person_disabled_at(&self, person: PersonId) -> Result<Option<i64>, StoreError> {
        match self.db()?.get(key(b"pd/", &[person.as_bytes()])).map_err(engine)? {
            None => Ok(None),
            Some(v) => Ok(Some(i64::from_be_bytes(
                v.as_ref().try_into().map_err(|_| StoreError::Corrupt("disabled mark".into()))?,
            ))),
        }
    }

    fn set_person_disabled(&self, person: PersonId, at: Option<i64>) -> Result<(), StoreError> {
        let k = key(b"pd/", &[person.as_bytes()]);
        self.write_op(|db| {
            match at {
                Some(at) => db.insert(k, at.to_be_bytes().to_vec()),
                None => db.remove(k),
            }
            .map(|_| ())
            .map_err(unwritable)
        })
    }

    fn device_grace(&self, device: DeviceId) -> Result<Vec<TerritoryPath>, StoreError> {
        // Territory paths, one per line (a store written before moves were
        // remembered more than once holds exactly one).
        match self.db()?.get(key(b"dg/", &[device.as_bytes()])).map_err(engine)? {
            None => Ok(Vec::new()),
            Some(v) => {
                let text = std::str::from_utf8(&v).map_err(|_| StoreError::Corrupt("grace territory".into()))?;
                text.lines()
                    .map(|t| TerritoryPath::parse(t).map_err(|e| StoreError::Corrupt(format!("grace territory: {e}"))))
                    .collect()
            }
        }
    }

    fn set_device_grace(&self, device: DeviceId, territories: &[TerritoryPath]) -> Result<(), StoreError> {
        let k = key(b"dg/", &[device.as_bytes()]);
        let text = territories.iter().map(|t| t.as_str()).collect::<Vec<_>>().join("\n");
        self.write_op(|db| {
            if territories.is_empty() { db.remove(k) } else { db.insert(k, text.as_bytes()) }
                .map(|_| ())
                .map_err(unwritable)
        })
    }

    fn note_device_seen(&self, device: DeviceId, seen: DeviceSeen) -> Result<(), StoreError> {
        self.note_device_seen_impl(device, seen)
    }

    fn device_seen(&self, device: DeviceId) -> Result<Option<DeviceSeen>, StoreError> {
        self.device_seen_impl(device)
    }

    fn epochs(&self) -> Result<Vec<StoreEpoch>, StoreError> {
        self.stored_epochs()
    }

    fn backup(&self, sink: &mut dyn crate::backup::BackupSink) -> Result<crate::backup::BackupFacts, StoreError> {
        self.backup_into(sink)
    }

    fn last_backup(&self) -> Result<Option<crate::backup::BackupMark>, StoreError> {
        self.stored_last_backup()
    }

    fn note_backup(&self, mark: &crate::backup::BackupMark) -> Result<(), StoreError> {
        self.note_backup_mark(mark)
    }

    fn load_doc(&self, id: DocId) -> Result<Option<StoredDoc>, StoreError> {
        let db = self.db()?;
        Self::doc_of(&db, id)
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

    fn summary(&self, id: DocId) -> Result<Option<RecordSummary>, StoreError> {
        let db = self.db()?;
        Ok(Self::meta(&db, id)?.map(|m| m.summary))
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
        self.db()?;
        Ok(self.durable_seq.load(Ordering::Acquire))
    }

    fn seq_at(&self, at_ms: i64) -> Result<u64, StoreError> {
        let db = self.db()?;
        // The time of the last entry at or before `seq` (positions lost to a
        // failed write leave gaps); non-decreasing in seq, so binary search works.
        let time_upto = |seq: u64| Self::time_upto(&db, seq);
        let (mut lo, mut hi) = (0u64, self.durable_seq.load(Ordering::Acquire));
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if time_upto(mid)?.is_none_or(|at| at <= at_ms) { lo = mid } else { hi = mid - 1 }
        }
        Ok(lo)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let db = self.db()?;
        Ok(StoreStats { head_seq: counter(&db, SEQ)?, disk_bytes: db.size_on_disk().map_err(engine)? })
    }

    fn doc_counts(&self) -> Result<Vec<(RecordKind, u64)>, StoreError> {
        self.counts_by_kind()
    }

    fn compact_some(&self, limit: usize) -> Result<usize, StoreError> {
        self.compact_queued(limit)
    }

    fn records_without_rows(&self, after: Option<DocId>, limit: usize) -> Result<Vec<(DocId, u64)>, StoreError> {
        self.rowless(after, limit)
    }

    fn set_row(&self, id: DocId, seq: u64, row: Vec<u8>) -> Result<bool, StoreError> {
        self.keep_row(id, seq, row)
    }

    fn append_audit_in(
        &self,
        territory: Option<&TerritoryPath>,
        actor: &str,
        action: &str,
        detail: &str,
        at: i64,
    ) -> Result<u64, StoreError> {
        let _w = self.lock();
        self.write_op(|db| {
            let seq = counter(db, AUDIT_SEQ)? + 1;
            let entry = AuditEntry {
                seq,
                at,
                actor: actor.into(),
                action: action.into(),
                detail: detail.into(),
                territory: territory.cloned(),
            };
            let mut b = sled::Batch::default();
            b.insert(AUDIT_SEQ, seq.to_be_bytes().to_vec());
            b.insert(key(b"a/", &[&seq.to_be_bytes()]), enc(&entry)?);
            self.audit_floor.fetch_max(seq, Ordering::AcqRel);
            db.apply_batch(b).map_err(unwritable)?;
            db.flush().map_err(unwritable)?;
            Ok(seq)
        })
    }

    fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let db = self.db()?;
        let start = key(b"a/", &[&(after + 1).to_be_bytes()]);
        let mut out = Vec::new();
        for kv in db.range(start..) {
            let (k, v) = kv.map_err(engine)?;
            if !k.starts_with(b"a/") || out.len() >= limit {
                break;
            }
            out.push(audit_entry(&v)?);
        }
        Ok(out)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.write_op(|db| {
            // Every entry up to `head` is applied (writers hold the lock from
            // taking a position to applying its batch); once flushed, readers may see them.
            let head = {
                let _w = self.lock();
                counter(db, SEQ)?
            };
            db.flush().map_err(unwritable)?;
            self.durable_seq.fetch_max(head, Ordering::AcqRel);
            Ok(())
        })
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

    fn check_writable(&self) -> Result<(), StoreError> {
        self.recover_if_failed()?;
        let mut h = self.health();
        if let Some((at, result)) = &h.probed
            && at.elapsed() < HEALTH_PROBE_EVERY
        {
            return result.clone().map_err(StoreError::Unwritable);
        }
        let result = probe_dir(&self.dir, HEALTH_PROBE_BYTES);
        h.probed = Some((Instant::now(), result.clone()));
        result.map_err(StoreError::Unwritable)
    }
}
