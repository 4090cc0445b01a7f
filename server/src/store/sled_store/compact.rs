//! Compaction: a record whose commits have piled up (a case with many
//! follow-ups) gets one saved document, its base, in place of the changes
//! those commits kept. Its chunks keep their heads and change hashes, so as-of
//! reads are unchanged and an old feed entry is served from the base.
//!
//! The work (parsing and saving the document) is done outside the writers'
//! lock; only the batch that swaps it in is written under it, and only if no
//! other compaction of the record came first. Commits meanwhile are kept: the
//! base reaches only as far as the commit it was made from.

use super::records::{Chunk, RecordMeta, base_key, chunk_key, meta_key};
use super::*;
use gridsync_shared::records::row::packed;
use std::collections::BTreeSet;

/// A record is compacted once this many commits hold their own changes.
pub(super) const COMPACT_AT_CHUNKS: u32 = 8;

/// Records due for compaction, in memory: one lost in a restart is queued
/// again by its next commit.
#[derive(Default)]
pub(super) struct Queue {
    due: Mutex<BTreeSet<DocId>>,
}

impl Queue {
    /// Queues a record.
    pub(super) fn want(&self, doc: DocId) {
        self.due.lock().unwrap_or_else(|p| p.into_inner()).insert(doc);
    }

    fn take(&self, limit: usize) -> Vec<DocId> {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        let taken: Vec<DocId> = due.iter().take(limit).copied().collect();
        for d in &taken {
            due.remove(d);
        }
        taken
    }
}

impl SledStore {
    /// Compacts up to `limit` queued records; returns how many.
    pub(super) fn compact_queued(&self, limit: usize) -> Result<usize, StoreError> {
        let mut done = 0;
        for doc in self.compactor.take(limit) {
            if self.compact(doc)? {
                done += 1;
            }
        }
        Ok(done)
    }

    /// Folds a record's chunks into a new base; false if there was nothing to fold.
    pub(super) fn compact(&self, doc: DocId) -> Result<bool, StoreError> {
        let (meta, bytes) = {
            let db = self.db()?;
            let Some(meta) = Self::meta(&db, doc)? else { return Ok(false) };
            if meta.chunks < 2 {
                return Ok(false);
            }
            let Some(stored) = Self::doc_of(&db, doc)? else { return Ok(false) };
            // The document as of `meta.seq`: read in one go with the meta,
            // but a commit may land between the two reads; checked below.
            (meta, stored.bytes)
        };
        let parsed = automerge::Automerge::load(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("record {doc} does not load: {e}")))?;
        let base = parsed.save();
        let heads: Vec<[u8; 32]> = parsed.get_heads().iter().map(|h| h.0).collect();
        let _w = self.lock();
        self.write_op(|db| {
            let Some(now) = Self::meta(db, doc)? else { return Ok(false) };
            if now.base_seq != meta.base_seq {
                return Ok(false);
            }
            // The base holds exactly the chunks up to the last one whose heads it has.
            let mut folded: Vec<(u64, Chunk)> = Vec::new();
            let mut reached = None;
            for kv in db.range(chunk_key(doc, meta.base_seq.saturating_add(1))..=chunk_key(doc, u64::MAX)) {
                let (k, v) = kv.map_err(engine)?;
                let seq = u64::from_be_bytes(
                    k[k.len() - 8..].try_into().map_err(|_| StoreError::Corrupt("chunk key".into()))?,
                );
                let chunk: Chunk = dec(&v)?;
                let last = chunk.heads == heads;
                folded.push((seq, chunk));
                if last {
                    reached = Some(seq);
                    break;
                }
            }
            let Some(reached) = reached else { return Ok(false) };
            // A row packed against a chunk's changes must not outlive them.
            let mut now = now;
            let mut dropped_row = false;
            if now.seq == reached
                && let Some((_, last)) = folded.last()
                && let Some(row) = now.row.take()
            {
                let changes: Vec<&[u8]> = last.changes.iter().map(Vec::as_slice).collect();
                now.row = match packed::unpack(row, &changes) {
                    Ok(row) => Some(row),
                    Err(error) => {
                        // Rows are rebuilt from documents where missing (see `Store::set_row`).
                        tracing::warn!(%doc, %error, "a packed row did not unpack at compaction: dropped");
                        dropped_row = true;
                        None
                    }
                };
            }
            let mut b = sled::Batch::default();
            if dropped_row {
                b.remove(super::records::ROWS_COMPLETE);
                self.rowless_writes.fetch_add(1, Ordering::AcqRel);
            }
            b.insert(base_key(doc), base.clone());
            let count = u32::try_from(folded.len()).unwrap_or(u32::MAX);
            for (seq, chunk) in folded {
                b.insert(chunk_key(doc, seq), enc(&Chunk { changes: Vec::new(), ..chunk })?);
            }
            let meta = RecordMeta { base_seq: reached, chunks: now.chunks.saturating_sub(count), ..now };
            b.insert(meta_key(doc), enc(&meta)?);
            db.apply_batch(b).map_err(unwritable)?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use gridsync_shared::records::RecordSummary;

    /// A case committed `n` times, one change each, as pushes would commit it.
    fn case_committed(store: &SledStore, grid: &TerritoryPath, n: usize) -> (DocId, automerge::Automerge) {
        let doc_id = DocId::from_bytes([7; 16]);
        let mut doc = automerge::Automerge::new();
        for i in 0..n {
            follow_up(store, grid, doc_id, &mut doc, i);
        }
        store.flush().expect("flush");
        (doc_id, doc)
    }

    /// Commits the case's follow-up `i`, one change, as a push would.
    fn follow_up(store: &SledStore, grid: &TerritoryPath, doc_id: DocId, doc: &mut automerge::Automerge, i: usize) {
        let before = doc.get_heads();
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, format!("follow_up_{i}"), format!("第{i}次跟进")).expect("put");
        tx.commit();
        let write = DocWrite {
            doc: doc_id,
            grid: grid.clone(),
            summary: RecordSummary { kind: RecordKind::Case, household: None, at: 1 },
            bytes: Vec::new(),
            heads: doc.get_heads(),
            device: DeviceId::from_bytes([1; 16]),
            changes: doc.get_changes(&before).iter().map(|c| c.raw_bytes().to_vec()).collect(),
            photos: Vec::new(),
            row: None,
        };
        store.commit_doc(write, 1_000 + i as i64).expect("commit");
    }

    #[test]
    fn reads_racing_compactions_always_find_every_change() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        let grid: TerritoryPath = "xg/xn/sh/dh/g1".parse().expect("grid");
        let (id, mut doc) = case_committed(&store, &grid, 1);
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = || {
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) {
                    // Reads take no lock: a compaction may land in the middle of one.
                    let feed = store.feed_after(&grid, 0, 10_000).map_err(|e| format!("feed: {e}"))?;
                    if feed.iter().any(|e| e.changes.is_empty()) {
                        return Err("an entry without its changes".to_string());
                    }
                    store.load_doc(id).map_err(|e| format!("load: {e}"))?;
                    reads += 1;
                }
                Ok::<u64, String>(reads)
            };
            let readers = [s.spawn(reader), s.spawn(reader)];
            for i in 1..400 {
                follow_up(&store, &grid, id, &mut doc, i);
                store.flush().expect("flush");
                store.compact_queued(1).expect("compact");
            }
            done.store(true, Ordering::Release);
            for r in readers {
                let reads = r.join().expect("reader").expect("every read finds every change");
                assert!(reads > 0);
            }
        });
    }

    #[test]
    fn compaction_folds_commits_into_a_base_and_every_read_stays_the_same() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        let grid: TerritoryPath = "xg/xn/sh/dh/g1".parse().expect("grid");
        let community: TerritoryPath = "xg/xn/sh/dh".parse().expect("scope");
        let (id, doc) = case_committed(&store, &grid, 10);

        let feed = |scope: &TerritoryPath| store.feed_after(scope, 0, 100).expect("feed");
        let heads: Vec<_> = (0..=11).map(|seq| store.doc_heads_at(id, seq).expect("heads")).collect();
        let (feed_before, community_before) = (feed(&grid), feed(&community));
        assert_eq!(feed_before.len(), 10);
        let before = store.load_doc(id).expect("load").expect("stored");

        assert_eq!(store.compact_queued(10).expect("compact"), 1, "queued by its eighth commit");
        let after = store.load_doc(id).expect("load").expect("stored");
        let db = store.db().expect("db");
        let meta = SledStore::meta(&db, id).expect("meta").expect("meta");
        drop(db);
        assert_eq!((meta.base_seq, meta.chunks), (10, 0), "every commit folded");
        assert_ne!(after.bytes, before.bytes, "the base stands in for the chunks");
        assert_eq!(automerge::Automerge::load(&after.bytes).expect("load").get_heads(), doc.get_heads());
        assert_eq!(feed(&grid), feed_before, "old entries are served from the base, byte for byte");
        assert_eq!(feed(&community), community_before);
        let heads_after: Vec<_> = (0..=11).map(|seq| store.doc_heads_at(id, seq).expect("heads")).collect();
        assert_eq!(heads_after, heads, "as-of reads are unchanged");

        // A commit after the base is kept beside it.
        let mut doc = doc;
        let before_heads = doc.get_heads();
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, "status", "closed").expect("put");
        tx.commit();
        let change = doc.get_changes(&before_heads)[0].raw_bytes().to_vec();
        let write = DocWrite {
            doc: id,
            grid: grid.clone(),
            summary: RecordSummary { kind: RecordKind::Case, household: None, at: 1 },
            bytes: Vec::new(),
            heads: doc.get_heads(),
            device: DeviceId::from_bytes([2; 16]),
            changes: vec![change.clone()],
            photos: Vec::new(),
            row: None,
        };
        store.commit_doc(write, 2_000).expect("commit");
        store.flush().expect("flush");
        let latest = store.load_doc(id).expect("load").expect("stored");
        assert_eq!(automerge::Automerge::load(&latest.bytes).expect("load").get_heads(), doc.get_heads());
        assert_eq!(store.feed_after(&grid, 10, 10).expect("feed")[0].changes, vec![change]);
    }

    #[test]
    fn a_record_with_few_commits_is_not_queued() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        let grid: TerritoryPath = "xg/xn/sh/dh/g1".parse().expect("grid");
        case_committed(&store, &grid, COMPACT_AT_CHUNKS as usize - 1);
        assert_eq!(store.compact_queued(10).expect("compact"), 0);
    }
}
