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
            let mut b = sled::Batch::default();
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
