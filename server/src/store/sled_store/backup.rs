//! Backups of the sled store, and restoring one into an empty directory.
//!
//! A backup copies every tree (name, key, value) while writers go on, then
//! re-copies the keys written meanwhile inside a brief moment with no write
//! in flight: the result equals the store at that moment. How:
//!
//! 1. With the [`Gate`] held alone (no write half done), a subscriber is
//!    registered on every tree; from then on each write's key is recorded in
//!    that tree's dirty set by a small thread per tree.
//! 2. Every tree is iterated and copied without blocking anyone (a "fuzzy"
//!    copy: a key not written meanwhile is copied exactly; any other is dirty).
//! 3. The dirty keys are copied again (their current value, or their
//!    removal), a few times while writes go on, until few are left.
//! 4. The gate is taken alone once more; the last dirty keys' values are read
//!    (trees created meanwhile are read whole) and the gate is released. Only
//!    then are they written out: applied in order after the rest, they make
//!    the copy equal to the store at that instant.
//!
//! Writers hold the gate shared ([`SledStore::write_op`] and the writers'
//! lock take it, re-entrantly, always before the writers' mutex), which costs
//! an uncontended read lock per write.

use super::*;
use crate::backup::{BackupFacts, BackupMark, BackupSink};
use std::cell::RefCell;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll, Wake, Waker};

/// sled's name for the default tree (the main tree, `db` itself).
const DEFAULT_TREE: &[u8] = b"__sled__default";
/// The store's epochs after its original one (postcard `Vec<StoreEpoch>`).
const EPOCHS: &[u8] = b"m/epochs";
/// The last backup made (postcard [`BackupMark`]).
const LAST_BACKUP: &[u8] = b"m/backup";
/// Catch-up passes over the dirty keys before the final moment.
const CATCH_UP_PASSES: usize = 4;
/// Stop catching up once a pass re-copied fewer keys than this.
const FEW_DIRTY: usize = 2_000;
/// Keys per batch when restoring.
const RESTORE_BATCH: usize = 4_096;

thread_local! {
    /// The gates this thread holds shared, with how many times: a write inside
    /// another (a flush under the writers' lock) does not ask again, which
    /// could wait forever behind a backup waiting for the outer one.
    static HELD: RefCell<Vec<(usize, u32)>> = const { RefCell::new(Vec::new()) };
}

/// Writes hold this shared; a backup holds it alone for an instant.
#[derive(Default)]
pub(super) struct Gate {
    lock: RwLock<()>,
}

/// A write's share of the [`Gate`] (or a re-entry into one this thread holds).
pub(super) struct GateGuard<'a> {
    gate: &'a Gate,
    _shared: Option<RwLockReadGuard<'a, ()>>,
}

impl Gate {
    fn id(&self) -> usize {
        self as *const Gate as usize
    }

    /// Enters the gate shared (at once if this thread is already inside it).
    pub(super) fn enter(&self) -> GateGuard<'_> {
        let id = self.id();
        let again = HELD.with(|h| {
            let mut h = h.borrow_mut();
            match h.iter_mut().find(|(g, _)| *g == id) {
                Some((_, n)) => {
                    *n += 1;
                    true
                }
                None => false,
            }
        });
        let shared = if again {
            None
        } else {
            let guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
            HELD.with(|h| h.borrow_mut().push((id, 1)));
            Some(guard)
        };
        GateGuard { gate: self, _shared: shared }
    }

    /// Holds the gate alone: returns once no write is in flight, and keeps new ones waiting.
    fn alone(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.lock.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        let id = self.gate.id();
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().position(|(g, _)| *g == id) {
                h[i].1 -= 1;
                if h[i].1 == 0 {
                    h.swap_remove(i);
                }
            }
        });
    }
}

/// Wakes the tracker's thread when sled has an event for it.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Records the key of every write to one tree, from its start until [`Tracker::finish`].
///
/// sled hands each event to a subscriber through a channel of 1,024; a write
/// that finds it full waits, holding sled's process-wide write lock, until
/// the subscriber takes one. So the thread drains it at all times, and the
/// subscription ends ([`Tracker::finish`]) only inside the exclusive gate,
/// when no write can be waiting on it.
struct Tracker {
    events: Arc<Mutex<Option<sled::Subscriber>>>,
    keys: Arc<Mutex<HashSet<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Takes in every event sled has delivered. Polled, not iterated: sled's
/// blocking calls cannot be stopped, and its `next_timeout` sticks after a
/// write that changed nothing.
fn drain(events: &mut sled::Subscriber, cx: &mut Context<'_>, keys: &Mutex<HashSet<Vec<u8>>>) {
    while let Poll::Ready(Some(event)) = Pin::new(&mut *events).poll(cx) {
        keys.lock().unwrap_or_else(|p| p.into_inner()).insert(event.key().to_vec());
    }
}

impl Tracker {
    /// Starts recording; call with no write in flight, or a write under way may be missed.
    fn start(tree: &sled::Tree) -> Result<Self, StoreError> {
        let events = Arc::new(Mutex::new(Some(tree.watch_prefix(Vec::<u8>::new()))));
        let keys: Arc<Mutex<HashSet<Vec<u8>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (e, k, s) = (events.clone(), keys.clone(), stop.clone());
        let spawned = std::thread::Builder::new().name("backup-tracker".into()).spawn(move || {
            // Woken by sled when an event is delivered (else every 20 ms).
            let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
            let mut cx = Context::from_waker(&waker);
            while !s.load(Ordering::Acquire) {
                match e.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                    Some(events) => drain(events, &mut cx, &k),
                    None => break,
                }
                std::thread::park_timeout(Duration::from_millis(20));
            }
        });
        match spawned {
            Ok(thread) => Ok(Self { events, keys, stop, thread: Some(thread) }),
            Err(err) => {
                // No write can be waiting on a subscription this young: the gate is held alone.
                drop(events.lock().unwrap_or_else(|p| p.into_inner()).take());
                Err(StoreError::Engine(format!("starting the backup's write tracker: {err}")))
            }
        }
    }

    /// The keys written since the last call (or the start).
    fn take(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.keys.lock().unwrap_or_else(|p| p.into_inner())).into_iter().collect()
    }

    /// Call with the gate held alone: takes in every event delivered (here,
    /// not by the thread: no waiting for it to be scheduled), ends the
    /// subscription, and returns the keys not yet taken — with no write in
    /// flight, every write's.
    fn finish(&self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Release);
        let subscription = self.events.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut events) = subscription {
            drain(&mut events, &mut Context::from_waker(Waker::noop()), &self.keys);
        }
        self.take()
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// A tree by name: the default tree is `db` itself (sled keeps another handle
/// under its name, whose subscribers never hear the default tree's writes).
pub(super) fn tree_named(db: &sled::Db, name: &[u8]) -> Result<sled::Tree, StoreError> {
    if name == DEFAULT_TREE { Ok(sled::Tree::clone(db)) } else { db.open_tree(name).map_err(engine) }
}

/// One tree being copied.
struct Copying {
    name: Vec<u8>,
    tree: sled::Tree,
    tracker: Tracker,
    entries: u64,
}

/// A key's value at the backup's moment (None: absent).
type Redo = (usize, Vec<u8>, Option<sled::IVec>);
/// A tree opened during the copy, read whole at the moment.
type LateTree = (Vec<u8>, Vec<(sled::IVec, sled::IVec)>);

impl SledStore {
    /// See the module's documentation.
    pub(super) fn backup_into(&self, sink: &mut dyn BackupSink) -> Result<BackupFacts, StoreError> {
        let started = Instant::now();
        // Holding a handle keeps a reopen (after a failed write) from swapping
        // the database under the copy: sled's file lock goes only with the last handle.
        let db: sled::Db = sled::Db::clone(&*self.db()?);
        let mut trees: Vec<Copying> = Vec::new();
        let tracking = {
            let _alone = self.gate.alone();
            db.tree_names().into_iter().try_for_each(|name| {
                let tree = tree_named(&db, &name)?;
                let tracker = Tracker::start(&tree)?;
                trees.push(Copying { name: name.to_vec(), tree, tracker, entries: 0 });
                Ok::<(), StoreError>(())
            })
        };
        let copied = tracking.and_then(|()| Self::copy_while_writes_go_on(&mut trees, sink));

        // The moment: no write in flight, none starts until the values are read.
        // (Also on a failed copy: subscriptions end only here, see `Tracker`.)
        let moment = Instant::now();
        let alone = self.gate.alone();
        let dirty: Vec<Vec<Vec<u8>>> = trees.iter().map(|t| t.tracker.finish()).collect();
        let recopied = copied?;
        let mut redo: Vec<Redo> = Vec::new();
        for (i, (t, keys)) in trees.iter().zip(dirty).enumerate() {
            for k in keys {
                let v = t.tree.get(&k).map_err(engine)?;
                redo.push((i, k, v));
            }
        }
        // Trees opened during the copy are read whole (they are new, so small).
        let mut late: Vec<LateTree> = Vec::new();
        for name in db.tree_names() {
            if !trees.iter().any(|t| t.name.as_slice() == name.as_ref()) {
                let tree = tree_named(&db, &name)?;
                let all = tree.iter().collect::<Result<Vec<_>, _>>().map_err(engine)?;
                late.push((name.to_vec(), all));
            }
        }
        let head_seq = counter(&db, SEQ)?;
        let audit_seq = counter(&db, AUDIT_SEQ)?;
        let epochs: Vec<StoreEpoch> = get(&db, EPOCHS)?.unwrap_or_default();
        drop(alone);
        let gate_held = moment.elapsed();
        // The trackers' threads end (outside the moment).
        let trees: Vec<(Vec<u8>, u64)> = trees.into_iter().map(|t| (t.name, t.entries)).collect();

        for (i, k, v) in &redo {
            sink.item(&trees[*i].0, k, v.as_deref())?;
        }
        let mut tree_counts: Vec<(String, u64)> =
            trees.iter().map(|(name, n)| (String::from_utf8_lossy(name).into_owned(), *n)).collect();
        for (name, all) in &late {
            for (k, v) in all {
                sink.item(name, k, Some(v))?;
            }
            tree_counts.push((String::from_utf8_lossy(name).into_owned(), all.len() as u64));
        }
        Ok(BackupFacts {
            head_seq,
            audit_seq,
            epoch: epochs.last().map(|e| e.id),
            epochs: epochs.len() as u64,
            trees: tree_counts,
            recopied: recopied + redo.len() as u64,
            gate_held_ms: gate_held.as_secs_f64() * 1000.0,
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// Copies every tree, then the keys written meanwhile, again while few
    /// are left; returns how many keys were copied again.
    fn copy_while_writes_go_on(trees: &mut [Copying], sink: &mut dyn BackupSink) -> Result<u64, StoreError> {
        for t in trees.iter_mut() {
            for kv in t.tree.iter() {
                let (k, v) = kv.map_err(engine)?;
                sink.item(&t.name, &k, Some(&v))?;
                t.entries += 1;
            }
        }
        let mut recopied = 0u64;
        for _ in 0..CATCH_UP_PASSES {
            let mut n = 0;
            for t in trees.iter() {
                for k in t.tracker.take() {
                    let v = t.tree.get(&k).map_err(engine)?;
                    sink.item(&t.name, &k, v.as_deref())?;
                    n += 1;
                }
            }
            recopied += n as u64;
            if n < FEW_DIRTY {
                break;
            }
        }
        Ok(recopied)
    }

    pub(super) fn stored_epochs(&self) -> Result<Vec<StoreEpoch>, StoreError> {
        Ok(get(&*self.db()?, EPOCHS)?.unwrap_or_default())
    }

    pub(super) fn stored_last_backup(&self) -> Result<Option<BackupMark>, StoreError> {
        get(&*self.db()?, LAST_BACKUP)
    }

    pub(super) fn note_backup_mark(&self, mark: &BackupMark) -> Result<(), StoreError> {
        let v = enc(mark)?;
        self.write_op(|db| db.insert(LAST_BACKUP, v).map(|_| ()).map_err(unwritable))
    }

    /// Writes a backup's items, in order, into a new sled database in `dir`
    /// (which must not hold one), then starts a new epoch whose base is the
    /// backup's feed position, and flushes. Returns the store (open: no
    /// reopening, which a process forked meanwhile could find locked) and the
    /// epoch. Nothing is flushed before `items` ends without error; the caller
    /// discards `dir` on an error.
    pub fn restore_into(
        dir: &Path,
        items: &mut dyn Iterator<Item = Result<crate::backup::BackupItem, StoreError>>,
        at: i64,
    ) -> Result<(SledStore, StoreEpoch), StoreError> {
        let db = open_db(dir)?;
        let mut current: Option<(Vec<u8>, sled::Tree)> = None;
        let mut batch = sled::Batch::default();
        let mut pending = 0usize;
        for item in items {
            let (name, k, v) = item?;
            if current.as_ref().is_none_or(|(n, _)| *n != name) {
                if let Some((_, tree)) = &current {
                    tree.apply_batch(std::mem::take(&mut batch)).map_err(unwritable)?;
                    pending = 0;
                }
                current = Some((name.clone(), tree_named(&db, &name)?));
            }
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
            pending += 1;
            if pending >= RESTORE_BATCH
                && let Some((_, tree)) = &current
            {
                tree.apply_batch(std::mem::take(&mut batch)).map_err(unwritable)?;
                pending = 0;
            }
        }
        if let Some((_, tree)) = &current {
            tree.apply_batch(batch).map_err(unwritable)?;
        }
        let mut epochs: Vec<StoreEpoch> = get(&db, EPOCHS)?.unwrap_or_default();
        let epoch = StoreEpoch { id: rand::random(), base_seq: counter(&db, SEQ)?, at };
        epochs.push(epoch);
        db.insert(EPOCHS, enc(&epochs)?).map_err(unwritable)?;
        db.flush().map_err(unwritable)?;
        drop(current);
        Ok((Self::over(dir, db)?, epoch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Collects a backup's items as the restore applies them: in order, last one wins.
    #[derive(Default)]
    struct Applied(BTreeMap<(Vec<u8>, Vec<u8>), Vec<u8>>, u64);

    impl BackupSink for Applied {
        fn item(&mut self, tree: &[u8], key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
            self.1 += 1;
            let k = (tree.to_vec(), key.to_vec());
            match value {
                Some(v) => self.0.insert(k, v.to_vec()),
                None => self.0.remove(&k),
            };
            Ok(())
        }
    }

    fn everything(db: &sled::Db) -> BTreeMap<(Vec<u8>, Vec<u8>), Vec<u8>> {
        let mut out = BTreeMap::new();
        for name in db.tree_names() {
            for kv in tree_named(db, &name).expect("tree").iter() {
                let (k, v) = kv.expect("kv");
                out.insert((name.to_vec(), k.to_vec()), v.to_vec());
            }
        }
        out
    }

    #[test]
    fn a_backup_taken_while_writers_go_on_equals_the_store_at_one_moment() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Arc::new(SledStore::open(dir.path()).expect("open"));
        for i in 0..5_000u32 {
            store.db().expect("db").insert(format!("x/{i:06}"), &i.to_be_bytes()).expect("seed");
        }
        let stop = Arc::new(AtomicBool::new(false));
        // Writers keep pairs of keys equal (a "document" and its "index") in
        // one batch, remove keys, write the same value again (a write that
        // changes nothing), and write into a tree created during the backup.
        let writers: Vec<_> = (0..3u32)
            .map(|w| {
                let (store, stop) = (store.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut n = 0u32;
                    while !stop.load(Ordering::Acquire) {
                        n += 1;
                        let v = (w * 1_000_000 + n).to_be_bytes();
                        store
                            .write_op(|db| {
                                let mut b = sled::Batch::default();
                                b.insert(format!("a/{w}/{}", n % 500).as_bytes(), &v);
                                b.insert(format!("z/{w}/{}", n % 500).as_bytes(), &v);
                                b.remove(format!("x/{:06}", (n * 7 + w) % 5_000).as_bytes());
                                db.apply_batch(b).map_err(unwritable)?;
                                db.insert(b"same", b"value".as_slice()).map_err(unwritable)?;
                                db.open_tree(format!("late{w}"))
                                    .map_err(engine)?
                                    .insert(n.to_be_bytes(), &v)
                                    .map_err(unwritable)?;
                                Ok(())
                            })
                            .expect("write");
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30));
        let mut applied = Applied::default();
        let facts = store.backup(&mut applied).expect("backup");
        stop.store(true, Ordering::Release);
        for w in writers {
            w.join().expect("writer");
        }
        assert!(facts.recopied > 0, "writes went on during the backup: {facts:?}");
        // Every pair agrees: no write is half in the backup.
        for w in 0..3 {
            for i in 0..500 {
                let a = applied.0.get(&(DEFAULT_TREE.to_vec(), format!("a/{w}/{i}").into_bytes()));
                let z = applied.0.get(&(DEFAULT_TREE.to_vec(), format!("z/{w}/{i}").into_bytes()));
                assert_eq!(a, z, "writer {w} key {i}: the pair differs in the backup");
            }
        }
        // And the backup is a state the store passed through: restored, it
        // holds exactly the items applied (checked against a restore below).
        let target = tempfile::tempdir().expect("tmp");
        let items: Vec<_> = applied.0.iter().map(|((t, k), v)| Ok((t.clone(), k.clone(), Some(v.clone())))).collect();
        let (restored, epoch) =
            SledStore::restore_into(&target.path().join("r"), &mut items.into_iter(), 7).expect("restore");
        let restored = restored.db().expect("db");
        let mut expected = applied.0.clone();
        expected.insert((DEFAULT_TREE.to_vec(), EPOCHS.to_vec()), enc(&vec![epoch]).expect("enc"));
        assert_eq!(everything(&restored), expected);
    }

    #[test]
    fn a_backup_with_no_writes_is_the_whole_store_and_the_gate_is_reentrant() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        store.append_audit("cli", "test", "one", 1).expect("audit");
        {
            // A write under the writers' lock that flushes (enters the gate twice).
            let _w = store.lock();
            store.write_op(|db| db.insert(b"k", b"v".as_slice()).map(|_| ()).map_err(unwritable)).expect("write");
        }
        let mut applied = Applied::default();
        let facts = store.backup(&mut applied).expect("backup");
        assert_eq!(applied.0, everything(&store.db().expect("db")));
        assert_eq!((facts.audit_seq, facts.recopied, facts.epoch), (1, 0, None));
    }
}
