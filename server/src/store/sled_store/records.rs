//! Records in the sled store, layout 2: each commit's changes are kept once,
//! in a chunk of their record, and a new record costs five keys.
//!
//! Keys (all in the default tree, so that a commit is one atomic batch):
//! - `r/<doc>` the record's [`RecordMeta`]: grid, kind, last commit, summary,
//!   flattened row, and how far its base reaches. The row is kept packed
//!   against its commit's changes where that is smaller (a visit log's note
//!   is in both: [`packed`]), and handed out joined with them;
//! - `b/<doc>` its base: a saved document holding its changes up to
//!   `base_seq`, written when the record is compacted (see [`super::compact`]);
//! - `c/<doc><seq>` one commit's [`Chunk`]: the heads after it, its changes'
//!   hashes, and the changes themselves (emptied once folded into the base);
//! - `f/<seq>` the feed entry ([`FeedRef`]): time, record, grid, device;
//! - `i/<grid>\0<seq>` the grid's feed (value: the record), and
//!   `g/<grid>\0<doc>` the grid's records (value: the kind's index).
//!
//! A scope above a grid reads the feeds or record lists of the grids beneath
//! it merged in order; when it spans many grids, it filters the whole feed or
//! record list instead. The grids holding records are kept in memory.

use super::*;
use automerge::ReadDoc;
use gridsync_shared::records::RecordSummary;
use gridsync_shared::records::row::packed;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

/// Present while every record has its row: set by a pass over the records that
/// finds none without one, removed by any write that leaves one without. Once
/// set, a server start no longer reads every record's meta looking for records
/// without rows (at 1,000,000 records that pass held ≈90 MB of sled's nodes).
pub(super) const ROWS_COMPLETE: &[u8] = b"m/rows-complete";
/// The prefix of every record's meta key.
pub(super) const META_PREFIX: &[u8] = b"r/";

/// A scope spanning more grids than this is read by filtering the whole
/// feed (or record list) rather than merging per-grid indexes.
const MERGE_AT_MOST: usize = 48;

/// What the store keeps of a record beside its changes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct RecordMeta {
    pub grid: TerritoryPath,
    pub kind: RecordKind,
    /// Feed position of its last commit.
    pub seq: u64,
    pub summary: RecordSummary,
    /// Its changes up to here are in its base (`b/`); 0: it has none.
    pub base_seq: u64,
    /// Commits since the base (chunks still holding their changes).
    pub chunks: u32,
    /// Flattened row as of `seq`, if the committer gave one: as given, or
    /// packed against the changes of the chunk at `seq` ([`packed::AT_REST`]).
    #[serde(with = "serde_bytes")]
    pub row: Option<Vec<u8>>,
}

/// One commit of a record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Chunk {
    /// The record's heads after it.
    pub heads: Vec<[u8; 32]>,
    /// Hashes of the changes it added.
    pub hashes: Vec<[u8; 32]>,
    /// The changes, until folded into the base. Stored packed (see
    /// [`packed_changes`]); in memory always as Automerge wrote them.
    #[serde(with = "packed_changes")]
    pub changes: Vec<Vec<u8>>,
}

impl Chunk {
    /// The chunk as stored: its changes packed ([`packed_changes`]) or, when
    /// `pack` is false, kept as Automerge wrote them (both read back alike).
    pub(super) fn at_rest(&self, pack: bool) -> Result<Vec<u8>, StoreError> {
        if pack {
            return enc(self);
        }
        /// A [`Chunk`]'s stored shape, its changes as they are.
        #[derive(Serialize)]
        struct Unpacked<'a> {
            heads: &'a [[u8; 32]],
            hashes: &'a [[u8; 32]],
            changes: Vec<&'a serde_bytes::Bytes>,
        }
        enc(&Unpacked {
            heads: &self.heads,
            hashes: &self.hashes,
            changes: self.changes.iter().map(|c| serde_bytes::Bytes::new(c)).collect(),
        })
    }
}

/// A chunk's changes as kept, not unpacked: what a row packed against them
/// is handed out with. Reads the bytes of a [`Chunk`].
#[derive(Deserialize)]
struct ChangesAtRest {
    #[serde(rename = "heads")]
    _heads: Vec<[u8; 32]>,
    #[serde(rename = "hashes")]
    _hashes: Vec<[u8; 32]>,
    changes: Vec<serde_bytes::ByteBuf>,
}

/// Changes at rest: each one as Automerge wrote it, or zlib-compressed when
/// that is smaller. They are told apart by their first byte: an Automerge
/// chunk starts with its magic `0x85`, a zlib stream with `0x78`. Chunks
/// written before packing existed hold only the former and read unchanged.
mod packed_changes {
    use flate2::{Compression, read::ZlibDecoder, write::ZlibEncoder};
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};
    use std::io::{Read, Write};

    /// Changes shorter than this are kept as they are (zlib would not pay).
    const PACK_FROM: usize = 200;
    const ZLIB: u8 = 0x78;

    pub fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let packed: Vec<Vec<u8>> = list.iter().map(|c| pack(c)).collect();
        s.collect_seq(packed.iter().map(|b| Bytes::new(b)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<ByteBuf>::deserialize(d)?.into_iter().map(|b| unpack(b.into_vec()).map_err(D::Error::custom)).collect()
    }

    /// The change packed: compressed if that makes it smaller.
    pub(super) fn pack(change: &[u8]) -> Vec<u8> {
        thread_local! {
            /// This thread's encoder, reset for each change: a new one
            /// allocates and clears its tables (a third of packing's cost).
            static ENCODER: std::cell::RefCell<Option<ZlibEncoder<Vec<u8>>>> = const { std::cell::RefCell::new(None) };
        }
        if change.len() >= PACK_FROM {
            let packed = ENCODER.with(|cell| {
                let mut slot = cell.try_borrow_mut().ok()?;
                let mut z = slot.take().unwrap_or_else(|| ZlibEncoder::new(Vec::new(), Compression::default()));
                // A reset starts a new stream, as a new encoder would.
                z.reset(Vec::with_capacity(change.len() / 2)).ok()?;
                let written = z.write_all(change);
                let out = z.reset(Vec::new()).ok();
                *slot = Some(z);
                written.ok().and(out)
            });
            if let Some(out) = packed
                && out.len() < change.len()
            {
                return out;
            }
        }
        change.to_vec()
    }

    /// The change as Automerge wrote it.
    pub(super) fn unpack(stored: Vec<u8>) -> Result<Vec<u8>, String> {
        if stored.first() != Some(&ZLIB) {
            return Ok(stored);
        }
        let mut out = Vec::with_capacity(stored.len() * 3);
        ZlibDecoder::new(stored.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| format!("a packed change does not inflate: {e}"))?;
        Ok(out)
    }
}

/// One feed entry, without its changes (those are in the record's chunk).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct FeedRef {
    pub at: i64,
    pub doc: DocId,
    pub grid: TerritoryPath,
    pub device: DeviceId,
}

pub(super) fn meta_key(doc: DocId) -> Vec<u8> {
    key(META_PREFIX, &[doc.as_bytes()])
}

pub(super) fn base_key(doc: DocId) -> Vec<u8> {
    key(b"b/", &[doc.as_bytes()])
}

pub(super) fn chunk_key(doc: DocId, seq: u64) -> Vec<u8> {
    key(b"c/", &[doc.as_bytes(), &seq.to_be_bytes()])
}

pub(super) fn feed_key(seq: u64) -> Vec<u8> {
    key(b"f/", &[&seq.to_be_bytes()])
}

pub(super) fn kind_index(kind: RecordKind) -> u8 {
    RecordKind::ALL.iter().position(|k| *k == kind).and_then(|i| u8::try_from(i).ok()).unwrap_or(u8::MAX)
}

fn kind_of_index(i: u8) -> Option<RecordKind> {
    RecordKind::ALL.get(usize::from(i)).copied()
}

/// The hash of a change from its bytes: SHA-256 over its chunk's type, length
/// and body, as Automerge computes it (parsed in full for a compressed chunk).
pub(super) fn change_hash(bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    use sha2::{Digest, Sha256};
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    let plain = (|| {
        let rest = bytes.strip_prefix(&MAGIC)?.get(4..)?;
        let (&kind, rest) = rest.split_first()?;
        if kind != 1 {
            return None;
        }
        let mut len: u64 = 0;
        let mut used = 0;
        for (i, b) in rest.iter().take(10).enumerate() {
            len |= u64::from(b & 0x7f) << (7 * i);
            used = i + 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        let len = usize::try_from(len).ok()?;
        (rest.len() == used + len).then(|| {
            let mut h = Sha256::new();
            h.update([kind]);
            h.update(rest);
            let out: [u8; 32] = h.finalize().into();
            out
        })
    })();
    match plain {
        Some(h) => Ok(h),
        None => automerge::Change::from_bytes(bytes.to_vec())
            .map(|c| c.hash().0)
            .map_err(|e| StoreError::Corrupt(format!("a committed change does not parse: {e}"))),
    }
}

impl SledStore {
    /// The grids holding records, read from the record lists at open.
    pub(super) fn load_grids(db: &sled::Db) -> Result<BTreeSet<TerritoryPath>, StoreError> {
        let mut grids = BTreeSet::new();
        let mut from = b"g/".to_vec();
        while let Some(kv) = db.range(from.clone()..).next() {
            let (k, _) = kv.map_err(engine)?;
            if !k.starts_with(b"g/") {
                break;
            }
            let rest = &k[2..];
            let end = rest.iter().position(|b| *b == 0).ok_or_else(|| StoreError::Corrupt("record list key".into()))?;
            let text = std::str::from_utf8(&rest[..end]).map_err(|_| StoreError::Corrupt("record list key".into()))?;
            grids.insert(TerritoryPath::parse(text).map_err(|e| StoreError::Corrupt(format!("record list key: {e}")))?);
            // Jump past this grid's entries.
            from = key(b"g/", &[text.as_bytes(), &[1]]);
        }
        Ok(grids)
    }

    /// The grids with records within `scope`.
    pub(super) fn grids_in(&self, scope: &TerritoryPath) -> Vec<TerritoryPath> {
        let grids = self.grids.read().unwrap_or_else(|p| p.into_inner());
        grids
            .range(scope.clone()..)
            .take_while(|g| g.as_str().starts_with(scope.as_str()))
            .filter(|g| scope.contains(g))
            .cloned()
            .collect()
    }

    pub(super) fn meta(db: &sled::Db, doc: DocId) -> Result<Option<RecordMeta>, StoreError> {
        get(db, &meta_key(doc))
    }

    /// The record's document: its base, then the changes of every chunk after it.
    pub(super) fn doc_of(db: &sled::Db, doc: DocId) -> Result<Option<StoredDoc>, StoreError> {
        match Self::meta(db, doc)? {
            Some(meta) => Self::doc_with(db, doc, meta).map(Some),
            None => Ok(None),
        }
    }

    /// The record's document, its meta already read. A compaction may fold
    /// chunks between the reads of the meta and of the chunks (reads take no
    /// lock): then the meta is read again.
    fn doc_with(db: &sled::Db, doc: DocId, mut meta: RecordMeta) -> Result<StoredDoc, StoreError> {
        const READS: usize = 16;
        for _ in 0..READS {
            if let Some(stored) = Self::doc_as_of(db, doc, &meta)? {
                return Ok(stored);
            }
            meta = Self::meta(db, doc)?.ok_or_else(|| StoreError::Corrupt(format!("record {doc}: meta missing")))?;
        }
        Err(StoreError::Corrupt(format!("record {doc}: a chunk after its base is folded")))
    }

    /// The record's document as `meta` describes it; None if a chunk after
    /// its base has been folded since `meta` was read.
    fn doc_as_of(db: &sled::Db, doc: DocId, meta: &RecordMeta) -> Result<Option<StoredDoc>, StoreError> {
        let mut bytes = Vec::new();
        if meta.base_seq > 0 {
            let base = db.get(base_key(doc)).map_err(engine)?;
            bytes.extend_from_slice(&base.ok_or_else(|| StoreError::Corrupt(format!("record {doc}: base missing")))?);
        }
        for kv in db.range(chunk_key(doc, meta.base_seq.saturating_add(1))..=chunk_key(doc, u64::MAX)) {
            let chunk: Chunk = dec(&kv.map_err(engine)?.1)?;
            if chunk.changes.is_empty() && !chunk.hashes.is_empty() {
                return Ok(None);
            }
            for c in chunk.changes {
                bytes.extend_from_slice(&c);
            }
        }
        Ok(Some(StoredDoc { grid: meta.grid.clone(), kind: meta.kind, seq: meta.seq, bytes }))
    }

    /// Commits many documents as one atomic batch (see [`Store::commit_docs`]).
    pub(super) fn commit_records(
        &self,
        writes: Vec<(DocWrite, Vec<HouseholdKey>)>,
        at: i64,
    ) -> Result<u64, StoreError> {
        // Only a new record's changes are packed (and its row against them).
        // A kept record's are folded into its base by compaction within a few
        // commits: packing them would be work thrown away (about 8 % of a
        // steady stream of edits' CPU). Which records exist is read before
        // the lock, so a record created concurrently may go unpacked: either
        // form reads the same.
        let existing: Vec<bool> = {
            let db = self.db()?;
            writes.iter().map(|(w, _)| db.contains_key(meta_key(w.doc)).map_err(engine)).collect::<Result<_, _>>()?
        };
        // Hashing and packing each commit's changes is most of a commit's
        // work: done before taking the writers' lock.
        let writes = writes
            .into_iter()
            .zip(existing)
            .map(|((mut w, keys), existing)| {
                let heads: Vec<[u8; 32]> = w.heads.iter().map(|h| h.0).collect();
                let (base, chunk) = if w.changes.is_empty() && !w.bytes.is_empty() {
                    // A whole document without its changes: it becomes the base.
                    (Some(std::mem::take(&mut w.bytes)), Chunk { heads, hashes: Vec::new(), changes: Vec::new() })
                } else {
                    let hashes = w.changes.iter().map(|c| change_hash(c)).collect::<Result<Vec<_>, _>>()?;
                    let changes: Vec<&[u8]> = w.changes.iter().map(Vec::as_slice).collect();
                    if !existing && let Some(packed) = w.row.as_deref().and_then(|row| packed::pack(row, &changes)) {
                        w.row = Some(packed);
                    }
                    (None, Chunk { heads, hashes, changes: std::mem::take(&mut w.changes) })
                };
                Ok((w, keys, base, chunk.at_rest(!existing)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let _w = self.lock();
        let mut new_grids = Vec::new();
        let mut compact = Vec::new();
        let seq = self.write_op(|db| {
            let mut seq = counter(db, SEQ)?;
            let at = match db.get_lt(b"g/").map_err(engine)? {
                // Keep feed time non-decreasing even if the clock steps back.
                Some((k, v)) if k.starts_with(b"f/") => at.max(dec::<FeedRef>(&v)?.at),
                _ => at,
            };
            let mut b = sled::Batch::default();
            // A record committed twice in one batch: its meta as this batch left it.
            let mut metas: HashMap<DocId, RecordMeta> = HashMap::new();
            for (w, keys, base, chunk) in writes {
                seq += 1;
                let seq_be = seq.to_be_bytes();
                let before = match metas.remove(&w.doc) {
                    Some(m) => Some(m),
                    None => Self::meta(db, w.doc)?,
                };
                let mut meta = match before {
                    Some(m) => m,
                    None => {
                        b.insert(
                            key(&scope_key(b"g/", &w.grid), &[w.doc.as_bytes()]),
                            vec![kind_index(w.summary.kind)],
                        );
                        new_grids.push(w.grid.clone());
                        RecordMeta {
                            grid: w.grid.clone(),
                            kind: w.summary.kind,
                            seq,
                            summary: w.summary,
                            base_seq: 0,
                            chunks: 0,
                            row: None,
                        }
                    }
                };
                b.insert(chunk_key(w.doc, seq), chunk);
                if let Some(base) = base {
                    b.insert(base_key(w.doc), base);
                    meta.base_seq = seq;
                    meta.chunks = 0;
                } else {
                    meta.chunks = meta.chunks.saturating_add(1);
                }
                meta.seq = seq;
                meta.summary = w.summary;
                meta.row = w.row;
                if meta.row.is_none() {
                    b.remove(ROWS_COMPLETE);
                    self.rowless_writes.fetch_add(1, Ordering::AcqRel);
                }
                if meta.chunks >= super::compact::COMPACT_AT_CHUNKS {
                    compact.push(w.doc);
                }
                b.insert(key(&scope_key(b"i/", &meta.grid), &[&seq_be]), w.doc.as_bytes().to_vec());
                for (k, v) in photos::index_entries(w.doc, &w.grid, &w.photos)? {
                    b.insert(k, v);
                }
                for hk in keys {
                    let k = key(imports::KEYS, &[&hk.key]);
                    if hk.replace || db.get(&k).map_err(engine)?.is_none() {
                        b.insert(k, enc(&hk.entry)?);
                    }
                }
                let entry = FeedRef { at, doc: w.doc, grid: meta.grid.clone(), device: w.device };
                b.insert(feed_key(seq), enc(&entry)?);
                b.insert(meta_key(w.doc), enc(&meta)?);
                metas.insert(w.doc, meta);
            }
            b.insert(SEQ, seq.to_be_bytes().to_vec());
            // Visible to readers from here on, durable or not: never hand these positions out again.
            self.seq_floor.fetch_max(seq, Ordering::AcqRel);
            db.apply_batch(b).map_err(unwritable)?;
            Ok(seq)
        })?;
        if !new_grids.is_empty() {
            let mut grids = self.grids.write().unwrap_or_else(|p| p.into_inner());
            grids.extend(new_grids);
        }
        for doc in compact {
            self.compactor.want(doc);
        }
        Ok(seq)
    }

    /// Feed positions (with their records) within `scope` after `after`, up to
    /// `durable`, in order, at most `limit`.
    fn feed_positions(
        &self,
        db: &sled::Db,
        scope: &TerritoryPath,
        after: u64,
        durable: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Option<FeedRef>)>, StoreError> {
        let grids = self.grids_in(scope);
        let mut out = Vec::new();
        if grids.len() > MERGE_AT_MOST {
            for kv in db.range(feed_key(after.saturating_add(1))..=feed_key(durable)) {
                let (k, v) = kv.map_err(engine)?;
                if out.len() >= limit {
                    break;
                }
                let entry: FeedRef = dec(&v)?;
                if scope.contains(&entry.grid) {
                    out.push((seq_of(&k[2..])?, Some(entry)));
                }
            }
            return Ok(out);
        }
        let mut iters: Vec<_> = grids
            .iter()
            .map(|g| {
                let prefix = scope_key(b"i/", g);
                let start = key(&prefix, &[&after.saturating_add(1).to_be_bytes()]);
                let end = key(&prefix, &[&durable.to_be_bytes()]);
                (prefix.len(), db.range(start..=end))
            })
            .collect();
        let mut heap = BinaryHeap::new();
        for (i, (plen, it)) in iters.iter_mut().enumerate() {
            if let Some(kv) = it.next() {
                heap.push(Reverse((seq_of(&kv.map_err(engine)?.0[*plen..])?, i)));
            }
        }
        while let Some(Reverse((seq, i))) = heap.pop() {
            if out.len() >= limit {
                break;
            }
            out.push((seq, None));
            let (plen, it) = &mut iters[i];
            if let Some(kv) = it.next() {
                heap.push(Reverse((seq_of(&kv.map_err(engine)?.0[*plen..])?, i)));
            }
        }
        Ok(out)
    }

    pub(super) fn feed_entries(
        &self,
        scope: &TerritoryPath,
        after: u64,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, StoreError> {
        let db = self.db()?;
        let durable = self.durable_seq.load(Ordering::Acquire);
        if after >= durable {
            return Ok(Vec::new());
        }
        let positions = self.feed_positions(&db, scope, after, durable, limit)?;
        // Bases parsed for entries folded into them, once per record.
        let mut bases: HashMap<DocId, automerge::Automerge> = HashMap::new();
        let mut out = Vec::with_capacity(positions.len());
        for (seq, entry) in positions {
            let entry = match entry {
                Some(e) => e,
                None => get::<FeedRef>(&db, &feed_key(seq))?
                    .ok_or_else(|| StoreError::Corrupt(format!("feed entry {seq} missing")))?,
            };
            let chunk: Chunk = get(&db, &chunk_key(entry.doc, seq))?
                .ok_or_else(|| StoreError::Corrupt(format!("record {}: chunk {seq} missing", entry.doc)))?;
            let changes = if chunk.changes.is_empty() && !chunk.hashes.is_empty() {
                // A base loaded for an earlier entry may predate a compaction
                // that folded this one since: then read the record's base again.
                let mut found = Self::changes_from_base(&db, &mut bases, entry.doc, &chunk.hashes)?;
                if found.is_none() {
                    bases.remove(&entry.doc);
                    found = Self::changes_from_base(&db, &mut bases, entry.doc, &chunk.hashes)?;
                }
                found.ok_or_else(|| {
                    StoreError::Corrupt(format!("record {}: a change of entry {seq} is not in its base", entry.doc))
                })?
            } else {
                chunk.changes
            };
            out.push(FeedEntry { seq, at: entry.at, doc: entry.doc, grid: entry.grid, device: entry.device, changes });
        }
        Ok(out)
    }

    /// The changes named by `hashes` from `doc`'s base (parsed once per read,
    /// in `bases`); None if the base loaded holds not all of them.
    fn changes_from_base(
        db: &sled::Db,
        bases: &mut HashMap<DocId, automerge::Automerge>,
        doc: DocId,
        hashes: &[[u8; 32]],
    ) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        let base = match bases.entry(doc) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let bytes = db
                    .get(base_key(doc))
                    .map_err(engine)?
                    .ok_or_else(|| StoreError::Corrupt(format!("record {doc}: base missing")))?;
                v.insert(
                    automerge::Automerge::load(&bytes)
                        .map_err(|e| StoreError::Corrupt(format!("record {doc}: base: {e}")))?,
                )
            }
        };
        Ok(hashes.iter().map(|h| base.get_change_by_hash(&ChangeHash(*h)).map(|c| c.raw_bytes().to_vec())).collect())
    }

    /// Records within `scope` after `after` in id order, with their metas, at
    /// most `limit`; only those of `kind` if given.
    fn records_listed(
        &self,
        db: &sled::Db,
        scope: &TerritoryPath,
        kind: Option<RecordKind>,
        after: Option<DocId>,
        limit: usize,
    ) -> Result<Vec<(DocId, RecordMeta)>, StoreError> {
        let grids = self.grids_in(scope);
        let mut out = Vec::new();
        let id_after = |after: Option<DocId>, prefix: &[u8]| match after {
            Some(id) => {
                let mut k = key(prefix, &[id.as_bytes()]);
                k.push(0);
                k
            }
            None => prefix.to_vec(),
        };
        if grids.len() > MERGE_AT_MOST {
            for kv in db.range(id_after(after, b"r/")..) {
                let (k, v) = kv.map_err(engine)?;
                if !k.starts_with(b"r/") || out.len() >= limit {
                    break;
                }
                let meta: RecordMeta = dec(&v)?;
                if scope.contains(&meta.grid) && kind.is_none_or(|want| want == meta.kind) {
                    out.push((doc_of_key(&k[2..])?, meta));
                }
            }
            return Ok(out);
        }
        type Listing = Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>>;
        let mut iters: Vec<(usize, Listing)> = grids
            .iter()
            .map(|g| {
                let prefix = scope_key(b"g/", g);
                let start = id_after(after, &prefix);
                let plen = prefix.len();
                let it: Listing = Box::new(db.range(start..).take_while(move |kv| match kv {
                    Ok((k, _)) => k.starts_with(&prefix),
                    Err(_) => true,
                }));
                (plen, it)
            })
            .collect();
        let wanted = kind.map(kind_index);
        let next = |listing: &mut (usize, Listing)| -> Result<Option<DocId>, StoreError> {
            let (plen, it) = listing;
            for kv in it.by_ref() {
                let (k, v) = kv.map_err(engine)?;
                if wanted.is_none_or(|w| v.first() == Some(&w)) {
                    return Ok(Some(doc_of_key(&k[*plen..])?));
                }
            }
            Ok(None)
        };
        let mut heap = BinaryHeap::new();
        for (i, listing) in iters.iter_mut().enumerate() {
            if let Some(id) = next(listing)? {
                heap.push(Reverse((*id.as_bytes(), i)));
            }
        }
        while let Some(Reverse((id, i))) = heap.pop() {
            if out.len() >= limit {
                break;
            }
            let id = DocId::from_bytes(id);
            let meta =
                Self::meta(db, id)?.ok_or_else(|| StoreError::Corrupt(format!("record {id}: listed, no meta")))?;
            out.push((id, meta));
            if let Some(id) = next(&mut iters[i])? {
                heap.push(Reverse((*id.as_bytes(), i)));
            }
        }
        Ok(out)
    }

    pub(super) fn docs_listed(
        &self,
        scope: &TerritoryPath,
        after: Option<DocId>,
        limit: usize,
    ) -> Result<Vec<(DocId, StoredDoc)>, StoreError> {
        let db = self.db()?;
        let mut out = Vec::new();
        for (id, meta) in self.records_listed(&db, scope, None, after, limit)? {
            out.push((id, Self::doc_with(&db, id, meta)?));
        }
        Ok(out)
    }

    pub(super) fn listings(
        &self,
        scope: &TerritoryPath,
        kind: RecordKind,
        after: Option<DocId>,
        limit: usize,
    ) -> Result<Vec<RecordListing>, StoreError> {
        let db = self.db()?;
        self.records_listed(&db, scope, Some(kind), after, limit)?
            .into_iter()
            .map(|(id, meta)| Ok(RecordListing { id, seq: meta.seq, row: Self::row_with_changes(&db, id, meta)? }))
            .collect()
    }

    /// The record's row as readers decode it: a row kept packed is joined
    /// with the changes it was packed against. None if those are gone (a
    /// reader then reads the document).
    fn row_with_changes(db: &sled::Db, id: DocId, meta: RecordMeta) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(row) = meta.row else { return Ok(None) };
        if row.first() != Some(&packed::AT_REST) {
            return Ok(Some(row));
        }
        let chunk = match db.get(chunk_key(id, meta.seq)).map_err(engine)? {
            Some(v) => dec::<ChangesAtRest>(&v)?,
            None => ChangesAtRest { _heads: Vec::new(), _hashes: Vec::new(), changes: Vec::new() },
        };
        if chunk.changes.is_empty() {
            tracing::warn!(doc = %id, seq = meta.seq, "a packed row's changes are gone: its document is read instead");
            return Ok(None);
        }
        let changes: Vec<&[u8]> = chunk.changes.iter().map(|c| c.as_slice()).collect();
        Ok(Some(packed::with_changes(row, &changes)))
    }

    pub(super) fn heads_at(&self, id: DocId, seq: u64) -> Result<Option<Vec<ChangeHash>>, StoreError> {
        let db = self.db()?;
        match db.range(chunk_key(id, 0)..=chunk_key(id, seq)).next_back() {
            None => Ok(None),
            Some(kv) => {
                let chunk: Chunk = dec(&kv.map_err(engine)?.1)?;
                Ok(Some(chunk.heads.into_iter().map(ChangeHash).collect()))
            }
        }
    }

    /// The time of the feed's last entry at or before `seq`, if any.
    pub(super) fn time_upto(db: &sled::Db, seq: u64) -> Result<Option<i64>, StoreError> {
        match db.range(feed_key(0)..=feed_key(seq)).next_back() {
            None => Ok(None),
            Some(kv) => Ok(Some(dec::<FeedRef>(&kv.map_err(engine)?.1)?.at)),
        }
    }

    pub(super) fn rowless(&self, after: Option<DocId>, limit: usize) -> Result<Vec<(DocId, u64)>, StoreError> {
        if self.db()?.contains_key(ROWS_COMPLETE).map_err(engine)? {
            return Ok(Vec::new());
        }
        let writes_before = self.rowless_writes.load(Ordering::Acquire);
        let found = self.scan_rowless(after, limit)?;
        if after.is_none() && found.is_empty() && limit > 0 {
            self.note_rows_complete(writes_before)?;
        }
        Ok(found)
    }

    /// Marks the store as holding no record without a row, unless a write
    /// since `writes_before` (of [`SledStore::rowless_writes`]) left one.
    fn note_rows_complete(&self, writes_before: u64) -> Result<(), StoreError> {
        let _w = self.lock();
        if self.rowless_writes.load(Ordering::Acquire) != writes_before {
            return Ok(());
        }
        self.write_op(|db| db.insert(ROWS_COMPLETE, Vec::new()).map(|_| ()).map_err(unwritable))
    }

    /// Up to `limit` records after `after` without a row, read from their metas.
    fn scan_rowless(&self, after: Option<DocId>, limit: usize) -> Result<Vec<(DocId, u64)>, StoreError> {
        let db = self.db()?;
        let start = match after {
            Some(id) => {
                let mut k = meta_key(id);
                k.push(0);
                k
            }
            None => b"r/".to_vec(),
        };
        let mut out = Vec::new();
        for kv in db.range(start..) {
            let (k, v) = kv.map_err(engine)?;
            if !k.starts_with(b"r/") || out.len() >= limit {
                break;
            }
            let meta: RecordMeta = dec(&v)?;
            if meta.row.is_none() {
                out.push((doc_of_key(&k[2..])?, meta.seq));
            }
        }
        Ok(out)
    }

    pub(super) fn keep_row(&self, id: DocId, seq: u64, row: Vec<u8>) -> Result<bool, StoreError> {
        let _w = self.lock();
        self.write_op(|db| {
            let Some(meta) = Self::meta(db, id)? else { return Ok(false) };
            if meta.seq != seq {
                return Ok(false);
            }
            db.insert(meta_key(id), enc(&RecordMeta { row: Some(row), ..meta })?).map_err(unwritable)?;
            Ok(true)
        })
    }

    pub(super) fn counts_by_kind(&self) -> Result<Vec<(RecordKind, u64)>, StoreError> {
        let db = self.db()?;
        let mut counts = [0u64; RecordKind::ALL.len()];
        for kv in db.scan_prefix(b"g/") {
            let (_, v) = kv.map_err(engine)?;
            if let Some(kind) = v.first().copied().and_then(kind_of_index)
                && let Some(i) = RecordKind::ALL.iter().position(|k| *k == kind)
            {
                counts[i] += 1;
            }
        }
        Ok(RecordKind::ALL.into_iter().zip(counts).collect())
    }
}

fn seq_of(bytes: &[u8]) -> Result<u64, StoreError> {
    bytes.try_into().map(u64::from_be_bytes).map_err(|_| StoreError::Corrupt("feed position".into()))
}

fn doc_of_key(bytes: &[u8]) -> Result<DocId, StoreError> {
    let id: [u8; 16] = bytes.try_into().map_err(|_| StoreError::Corrupt("record id".into()))?;
    Ok(DocId::from_bytes(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visit(store: &SledStore, id: u8, grid: &str, row: Option<Vec<u8>>) -> u64 {
        let write = DocWrite {
            doc: DocId::from_bytes([id; 16]),
            grid: grid.parse().expect("grid"),
            summary: RecordSummary { kind: RecordKind::VisitLog, household: None, at: 1 },
            bytes: b"a saved document".to_vec(),
            heads: Vec::new(),
            device: DeviceId::from_bytes([1; 16]),
            changes: Vec::new(),
            photos: Vec::new(),
            row,
        };
        store.commit_doc(write, 1).expect("commit")
    }

    /// One change writing a 640-character visit note, as a phone would push it.
    fn long_visit_change() -> (Vec<u8>, Vec<ChangeHash>) {
        use automerge::transaction::Transactable;
        let mut doc = automerge::AutoCommit::new();
        let note: String = "走访住户，了解家中老人身体状况和用水用电情况，".chars().cycle().take(640).collect();
        doc.put(automerge::ROOT, "note", note).expect("put");
        let change = doc.get_changes(&[]).first().map(|c| c.raw_bytes().to_vec()).expect("a change");
        (change, doc.get_heads())
    }

    #[test]
    fn a_commits_changes_are_kept_compressed_and_read_back_as_automerge_wrote_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        let (change, heads) = long_visit_change();
        let doc = DocId::from_bytes([3; 16]);
        let grid: TerritoryPath = "a/b/c/d/g1".parse().expect("grid");
        let write = DocWrite {
            doc,
            grid: grid.clone(),
            summary: RecordSummary { kind: RecordKind::VisitLog, household: None, at: 1 },
            bytes: Vec::new(),
            heads,
            device: DeviceId::from_bytes([1; 16]),
            changes: vec![change.clone()],
            photos: Vec::new(),
            row: None,
        };
        let seq = store.commit_doc(write, 1).expect("commit");
        let db = store.db().expect("db");
        let stored = db.get(chunk_key(doc, seq)).expect("get").expect("the chunk");
        assert!(
            stored.len() * 2 < change.len(),
            "the chunk takes {} bytes for a change of {}: not compressed",
            stored.len(),
            change.len()
        );
        drop(db);
        store.flush().expect("flush");
        assert_eq!(store.feed_after(&grid, 0, 10).expect("feed")[0].changes, vec![change.clone()]);
        let loaded = store.load_doc(doc).expect("load").expect("the record");
        assert!(automerge::Automerge::load(&loaded.bytes).is_ok_and(|d| d.get_changes(&[]).len() == 1));

        // A chunk written before changes were packed reads as it was.
        #[derive(Serialize)]
        struct Unpacked {
            heads: Vec<[u8; 32]>,
            hashes: Vec<[u8; 32]>,
            #[serde(with = "gridsync_shared::protocol::byte_strings")]
            changes: Vec<Vec<u8>>,
        }
        let old =
            enc(&Unpacked { heads: vec![[1; 32]], hashes: vec![[2; 32]], changes: vec![change.clone()] }).expect("enc");
        let chunk: Chunk = dec(&old).expect("an unpacked chunk reads");
        assert_eq!(chunk.changes, vec![change]);
    }

    #[test]
    fn a_kept_records_later_changes_are_stored_as_written_and_read_back_with_its_first() {
        use automerge::transaction::Transactable;
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        let doc = DocId::from_bytes([4; 16]);
        let grid: TerritoryPath = "a/b/c/d/g1".parse().expect("grid");
        let mut am = automerge::AutoCommit::new();
        let note = |n: usize| -> String {
            "走访住户，了解家中老人身体状况和用水用电情况，".chars().cycle().skip(n).take(640).collect()
        };
        let mut written = Vec::new();
        let mut seqs = Vec::new();
        for n in 0..2 {
            let since = am.get_heads();
            am.put(automerge::ROOT, "note", note(n)).expect("put");
            let change = am.get_changes(&since).first().map(|c| c.raw_bytes().to_vec()).expect("a change");
            written.push(change.clone());
            let write = DocWrite {
                doc,
                grid: grid.clone(),
                summary: RecordSummary { kind: RecordKind::VisitLog, household: None, at: 1 },
                bytes: Vec::new(),
                heads: am.get_heads(),
                device: DeviceId::from_bytes([1; 16]),
                changes: vec![change],
                photos: Vec::new(),
                row: None,
            };
            seqs.push(store.commit_doc(write, 1).expect("commit"));
        }
        let db = store.db().expect("db");
        let at_rest = |seq: u64| db.get(chunk_key(doc, seq)).expect("get").expect("the chunk").len();
        assert!(at_rest(seqs[0]) * 2 < written[0].len(), "a new record's change is packed");
        assert!(at_rest(seqs[1]) > written[1].len(), "a kept record's later change is stored as written");
        drop(db);
        store.flush().expect("flush");
        let feed = store.feed_after(&grid, 0, 10).expect("feed");
        assert!(feed.iter().flat_map(|e| e.changes.clone()).eq(written.iter().cloned()), "the feed holds both changes");
        let loaded = store.load_doc(doc).expect("load").expect("the record");
        assert_eq!(automerge::Automerge::load(&loaded.bytes).expect("loads").get_changes(&[]).len(), 2);
    }

    #[test]
    fn a_change_packs_to_the_same_bytes_as_a_new_encoder_gives_however_often_a_thread_packs() {
        use flate2::{Compression, write::ZlibEncoder};
        use std::io::Write;
        let (change, _) = long_visit_change();
        let mut fresh = ZlibEncoder::new(Vec::new(), Compression::default());
        fresh.write_all(&change).expect("write");
        let fresh = fresh.finish().expect("finish");
        for _ in 0..3 {
            let packed = packed_changes::pack(&change);
            assert_eq!(packed, fresh);
            assert_eq!(packed_changes::unpack(packed).expect("unpack"), change);
        }
        assert_eq!(packed_changes::pack(&change[..100]), change[..100].to_vec(), "short changes stay as they are");
    }

    #[test]
    fn once_every_record_has_its_row_the_records_are_not_read_again_until_a_write_leaves_one_without() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        visit(&store, 1, "a/b/c/d/g1", Some(b"row".to_vec()));
        assert!(store.records_without_rows(None, 10).expect("list").is_empty());
        let db = store.db().expect("db");
        assert!(db.contains_key(ROWS_COMPLETE).expect("read"), "a pass finding none marks the store");
        // A meta that cannot be read is not read: the mark answers.
        db.insert(meta_key(DocId::from_bytes([9; 16])), b"not a meta".to_vec()).expect("write");
        drop(db);
        assert!(store.records_without_rows(None, 10).expect("answered by the mark").is_empty());
        store.db().expect("db").remove(meta_key(DocId::from_bytes([9; 16]))).expect("remove");

        let seq = visit(&store, 2, "a/b/c/d/g2", None);
        let id = DocId::from_bytes([2; 16]);
        assert!(!store.db().expect("db").contains_key(ROWS_COMPLETE).expect("read"), "a rowless write unmarks");
        assert_eq!(store.records_without_rows(None, 10).expect("list"), vec![(id, seq)]);
        assert!(store.set_row(id, seq, b"row".to_vec()).expect("set"));
        assert!(store.records_without_rows(None, 10).expect("list").is_empty());
        assert!(store.db().expect("db").contains_key(ROWS_COMPLETE).expect("read"), "marked again");
    }

    #[test]
    fn a_new_store_is_marked_as_holding_every_row_so_no_start_reads_its_records() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        assert!(store.db().expect("db").contains_key(ROWS_COMPLETE).expect("read"), "nothing to look for");
        visit(&store, 1, "a/b/c/d/g1", Some(b"row".to_vec()));
        drop(store);
        let store = SledStore::open(dir.path()).expect("reopen");
        assert!(store.db().expect("db").contains_key(ROWS_COMPLETE).expect("read"), "still marked");
        // A meta the pass could not read is never read.
        store.db().expect("db").insert(meta_key(DocId::from_bytes([9; 16])), b"not a meta".to_vec()).expect("write");
        assert!(store.records_without_rows(None, 10).expect("answered by the mark").is_empty());
    }

    #[test]
    fn a_record_left_without_a_row_while_a_pass_reads_keeps_the_store_unmarked() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        visit(&store, 1, "a/b/c/d/g1", Some(b"row".to_vec()));
        let writes_before = store.rowless_writes.load(Ordering::Acquire);
        assert!(store.scan_rowless(None, 10).expect("scan").is_empty());
        // Between the pass's read and its mark, a record behind it loses its row.
        let seq = visit(&store, 1, "a/b/c/d/g1", None);
        store.note_rows_complete(writes_before).expect("note");
        assert!(!store.db().expect("db").contains_key(ROWS_COMPLETE).expect("read"));
        assert_eq!(store.records_without_rows(None, 10).expect("list"), vec![(DocId::from_bytes([1; 16]), seq)]);
    }

    #[test]
    fn a_record_without_a_row_is_listed_until_given_one_for_its_last_commit() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        let seq = visit(&store, 1, "a/b/c/d/g1", None);
        visit(&store, 2, "a/b/c/d/g2", Some(b"row".to_vec()));
        let id = DocId::from_bytes([1; 16]);
        assert_eq!(store.records_without_rows(None, 10).expect("list"), vec![(id, seq)]);
        assert!(!store.set_row(id, seq + 5, b"stale".to_vec()).expect("set"), "a row of another commit is refused");
        assert!(store.set_row(id, seq, b"now".to_vec()).expect("set"));
        assert!(store.records_without_rows(None, 10).expect("list").is_empty());
        let scope: TerritoryPath = "a/b/c/d".parse().expect("scope");
        let rows: Vec<_> = store
            .records_in_scope(&scope, RecordKind::VisitLog, None, 10)
            .expect("list")
            .into_iter()
            .map(|l| l.row)
            .collect();
        assert_eq!(rows, vec![Some(b"now".to_vec()), Some(b"row".to_vec())], "both grids, in id order");
    }

    use gridsync_shared::records::Record;

    /// A grid manager writing visit logs with 600-character notes, as the phone does.
    struct Phone {
        grid: TerritoryPath,
        author: gridsync_shared::Author,
    }

    impl Phone {
        fn new() -> Phone {
            let grid: TerritoryPath = "a/b/c/d/g1".parse().expect("grid");
            let author = gridsync_shared::Author {
                person: gridsync_shared::PersonId(uuid::Uuid::from_u128(1)),
                role: gridsync_shared::Role::FieldStaff,
                territory: grid.clone(),
            };
            Phone { grid, author }
        }

        /// A note of 600 varied characters (as real notes are: text that
        /// repeats itself would compress as well without any dictionary).
        fn fields(seed: u32) -> gridsync_shared::records::VisitFields {
            let notes = (0..600u32)
                .map(|i| {
                    char::from_u32(0x4e00 + i.wrapping_mul(2_654_435_761).wrapping_add(seed) % 3000).unwrap_or('一')
                })
                .collect();
            gridsync_shared::records::VisitFields { visited_at: 5, notes, ..Default::default() }
        }

        fn write(&self, doc: DocId) -> automerge::Automerge {
            use gridsync_shared::records::{NewRecord, new_record_with_id};
            let new = NewRecord::VisitLog(Phone::fields(1));
            new_record_with_id(doc, automerge::ActorId::random(), &self.author, &self.grid, 5, &new).expect("visit")
        }

        fn rewrite(&self, am: &mut automerge::Automerge) {
            let mut editor = gridsync_shared::records::Editor::new(am, &self.author, 6);
            editor.update_visit(&Phone::fields(2)).expect("edit");
        }

        /// Pushes what `am` has beyond `since`, with the record's row, as the server commits a push.
        fn push(&self, store: &SledStore, doc: DocId, am: &automerge::Automerge, since: &[ChangeHash]) -> Record {
            let (write, record) = self.commit_of(doc, am, since);
            store.commit_doc(write, 1).expect("commit");
            record
        }

        /// The commit of what `am` has beyond `since`, and the record it leaves.
        fn commit_of(&self, doc: DocId, am: &automerge::Automerge, since: &[ChangeHash]) -> (DocWrite, Record) {
            let record = gridsync_shared::records::read_record(am).expect("reads");
            let write = DocWrite {
                doc,
                grid: self.grid.clone(),
                summary: record.summary(),
                bytes: Vec::new(),
                heads: am.get_heads(),
                device: DeviceId::from_bytes([1; 16]),
                changes: am.get_changes(since).iter().map(|c| c.raw_bytes().to_vec()).collect(),
                photos: Vec::new(),
                row: Some(gridsync_shared::records::row::encode_row(&record)),
            };
            (write, record)
        }
    }

    /// The one visit log's row as listed, decoded; its bytes at rest.
    fn listed(store: &SledStore, doc: DocId) -> (Option<Record>, Vec<u8>) {
        let scope: TerritoryPath = "a/b".parse().expect("scope");
        let listed = store.records_in_scope(&scope, RecordKind::VisitLog, None, 10).expect("list");
        assert_eq!(listed.len(), 1);
        let record = listed[0]
            .row
            .as_deref()
            .map(|row| gridsync_shared::records::row::decode_row(row).expect("the row decodes"));
        let db = store.db().expect("db");
        let at_rest = SledStore::meta(&db, doc).expect("meta").expect("the record").row.unwrap_or_default();
        (record, at_rest)
    }

    #[test]
    fn a_visit_logs_row_is_kept_against_its_change_and_listed_as_the_record() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        let (phone, doc) = (Phone::new(), DocId::new_v7(5, [4; 10]));
        let mut am = phone.write(doc);
        let written = phone.push(&store, doc, &am, &[]);
        let (record, at_rest) = listed(&store, doc);
        assert_eq!(record.as_ref(), Some(&written));
        assert_eq!(at_rest.first(), Some(&packed::AT_REST));
        assert!(at_rest.len() < 300, "the row takes {} bytes at rest", at_rest.len());

        // An edit that does not touch the note: its row cannot lean on the note.
        let heads = am.get_heads();
        let mut editor = gridsync_shared::records::Editor::new(&mut am, &phone.author, 7);
        editor.void_record("写错了").expect("void");
        let voided = phone.push(&store, doc, &am, &heads);
        let (record, at_rest) = listed(&store, doc);
        assert_eq!(record.as_ref(), Some(&voided));
        assert!(at_rest.len() > 1000, "the row takes {} bytes at rest", at_rest.len());
    }

    #[test]
    fn compaction_folding_the_changes_a_row_leans_on_keeps_the_row_readable() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        let (phone, doc) = (Phone::new(), DocId::new_v7(5, [4; 10]));
        let mut am = phone.write(doc);
        let (created, _) = phone.commit_of(doc, &am, &[]);
        let heads = am.get_heads();
        phone.rewrite(&mut am);
        let (rewrite, rewritten) = phone.commit_of(doc, &am, &heads);
        // Created and rewritten in one batch: the record is new to the store,
        // so the rewrite's row is packed against its changes.
        store.commit_docs(vec![(created, Vec::new()), (rewrite, Vec::new())], 1).expect("commit");
        assert_eq!(listed(&store, doc).1.first(), Some(&packed::AT_REST), "packed against the rewrite");
        assert!(store.compact(doc).expect("compact"), "both commits folded");
        let (record, at_rest) = listed(&store, doc);
        assert_eq!(record.as_ref(), Some(&rewritten), "the row reads without the folded changes");
        assert_eq!(at_rest.first(), Some(&gridsync_shared::records::row::ROW_VERSION));
        assert!(store.records_without_rows(None, 10).expect("rowless").is_empty());
    }
}
