//! Upgrading a store written in an earlier layout, in place, when it is opened.
//!
//! Layout 1 (up to this release) kept each record's whole saved document
//! (`d/`), its summary (`s/`), heads after each commit (`h/`), and feed
//! entries (`f/`) holding the commit's changes a second time, indexed under
//! every territory above the grid (`i/`, `g/`). Layout 2 is [`super::records`].
//!
//! The upgrade works in batches, each atomic, and records in the store how far
//! it got (`m/migrating`), so a process killed part way resumes where it
//! stopped: first every record (its chunks take their changes from its feed
//! entries), then every feed entry (its changes dropped, its indexes above the
//! grid removed). A record whose feed entries do not hold all of its changes
//! (none written by this server lacks any, but the check is cheap) keeps its
//! saved document as its base instead.
//!
//! A batch holds 512 records (or feed entries); `GRIDSYNC_UPGRADE_BATCH=<n>`
//! sets another size (tests use small batches to kill the server between
//! them). Each batch logs a `debug` line with how far the upgrade got.

use super::records::{Chunk, FeedRef, RecordMeta, base_key, change_hash, chunk_key, feed_key, meta_key};
use super::*;
use gridsync_shared::records::RecordSummary;
use std::collections::HashSet;

/// The layout this code writes.
pub(super) const LAYOUT: u32 = 2;
/// The layout version (u32, big-endian); absent in layout 1.
pub(super) const LAYOUT_KEY: &[u8] = b"m/layout";
/// How far an upgrade got: [`Progress`].
const PROGRESS_KEY: &[u8] = b"m/migrating";
/// Records (or feed entries) per batch, unless `GRIDSYNC_UPGRADE_BATCH` says otherwise.
const BATCH: usize = 512;
/// The environment variable that sets the batch size.
const BATCH_VAR: &str = "GRIDSYNC_UPGRADE_BATCH";

#[derive(Debug, Serialize, Deserialize)]
enum Progress {
    /// Records up to (excluding) this id are done.
    Records(Vec<u8>),
    /// Feed entries up to this position are done.
    Feed(u64),
}

/// The layout 1 feed entry, with its changes.
#[derive(Deserialize)]
struct FeedEntryV1 {
    #[allow(dead_code)]
    seq: u64,
    at: i64,
    doc: DocId,
    grid: TerritoryPath,
    device: DeviceId,
    #[serde(with = "gridsync_shared::protocol::byte_strings")]
    changes: Vec<Vec<u8>>,
}

/// The layout of the store in `db`: 1 if it holds layout-1 records and no mark.
fn layout(db: &sled::Db) -> Result<u32, StoreError> {
    if let Some(v) = db.get(LAYOUT_KEY).map_err(engine)? {
        let b: [u8; 4] = v.as_ref().try_into().map_err(|_| StoreError::Corrupt("layout mark".into()))?;
        return Ok(u32::from_be_bytes(b));
    }
    let v1 = db.scan_prefix(b"d/").next().is_some()
        || db.scan_prefix(b"f/").next().is_some()
        || db.get(PROGRESS_KEY).map_err(engine)?.is_some();
    Ok(if v1 { 1 } else { LAYOUT })
}

/// Brings the store in `db` to the current layout (a new store is marked).
pub(super) fn to_current(db: &sled::Db) -> Result<(), StoreError> {
    match layout(db)? {
        LAYOUT => {
            if db.get(LAYOUT_KEY).map_err(engine)?.is_none() {
                let mut b = sled::Batch::default();
                b.insert(LAYOUT_KEY, LAYOUT.to_be_bytes().to_vec());
                // A new store holds no record, so none without its export row:
                // written only by this release, it never needs the start-up pass
                // that looks for them (which reads every record).
                if db.scan_prefix(super::records::META_PREFIX).next().is_none() {
                    b.insert(super::records::ROWS_COMPLETE, Vec::new());
                }
                db.apply_batch(b).map_err(unwritable)?;
                db.flush().map_err(unwritable)?;
            }
            Ok(())
        }
        1 => from_layout_1(db),
        other => Err(StoreError::Corrupt(format!(
            "this data directory is in store layout {other}, newer than this gridsync-server knows ({LAYOUT}): run the newer release"
        ))),
    }
}

/// The batch size: [`BATCH`], or a positive number in [`BATCH_VAR`].
fn batch_size() -> usize {
    match std::env::var(BATCH_VAR) {
        Err(_) => BATCH,
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                tracing::warn!(value = %v, "{BATCH_VAR} is not a positive number; upgrading in batches of {BATCH}");
                BATCH
            }
        },
    }
}

fn from_layout_1(db: &sled::Db) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let batch = batch_size();
    let mut progress: Progress = get(db, PROGRESS_KEY)?.unwrap_or(Progress::Records(Vec::new()));
    tracing::info!(?progress, batch, "upgrading the store to layout {LAYOUT}");
    let mut records = 0u64;
    if let Progress::Records(from) = &progress {
        let mut from = key(b"d/", &[from]);
        loop {
            let ids: Vec<DocId> = db
                .range(from.clone()..)
                .take_while(|kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(b"d/")))
                .take(batch)
                .map(|kv| {
                    let (k, _) = kv.map_err(engine)?;
                    let id: [u8; 16] = k[2..].try_into().map_err(|_| StoreError::Corrupt("record key".into()))?;
                    Ok(DocId::from_bytes(id))
                })
                .collect::<Result<_, StoreError>>()?;
            let Some(last) = ids.last() else { break };
            let mut b = sled::Batch::default();
            for id in &ids {
                record(db, *id, &mut b)?;
            }
            let mut next = last.as_bytes().to_vec();
            next.push(0);
            b.insert(PROGRESS_KEY, enc(&Progress::Records(next.clone()))?);
            db.apply_batch(b).map_err(unwritable)?;
            records += ids.len() as u64;
            tracing::debug!(records, "upgrade batch: records rewritten");
            from = key(b"d/", &[&next]);
        }
        progress = Progress::Feed(0);
        db.insert(PROGRESS_KEY, enc(&progress)?).map_err(unwritable)?;
    }
    let mut entries = 0u64;
    if let Progress::Feed(done) = progress {
        let mut from = done.saturating_add(1);
        loop {
            let page: Vec<(u64, sled::IVec)> = db
                .range(feed_key(from)..=feed_key(u64::MAX))
                .take(batch)
                .map(|kv| {
                    let (k, v) = kv.map_err(engine)?;
                    let seq = k[2..]
                        .try_into()
                        .map(u64::from_be_bytes)
                        .map_err(|_| StoreError::Corrupt("feed key".into()))?;
                    Ok((seq, v))
                })
                .collect::<Result<_, StoreError>>()?;
            let Some((last, _)) = page.last() else { break };
            let last = *last;
            let mut b = sled::Batch::default();
            for (seq, v) in &page {
                let e: FeedEntryV1 = dec(v)?;
                for scope in e.grid.ancestors_and_self() {
                    if scope != e.grid {
                        b.remove(key(&scope_key(b"i/", &scope), &[&seq.to_be_bytes()]));
                    }
                }
                b.insert(feed_key(*seq), enc(&FeedRef { at: e.at, doc: e.doc, grid: e.grid, device: e.device })?);
            }
            b.insert(PROGRESS_KEY, enc(&Progress::Feed(last))?);
            db.apply_batch(b).map_err(unwritable)?;
            entries += page.len() as u64;
            tracing::debug!(entries, up_to = last, "upgrade batch: feed entries rewritten");
            from = last.saturating_add(1);
        }
    }
    let mut b = sled::Batch::default();
    b.remove(PROGRESS_KEY);
    // Upgraded records have no rows yet: the server gives them theirs.
    b.remove(super::records::ROWS_COMPLETE);
    b.insert(LAYOUT_KEY, LAYOUT.to_be_bytes().to_vec());
    db.apply_batch(b).map_err(unwritable)?;
    db.flush().map_err(unwritable)?;
    tracing::info!(records, entries, seconds = started.elapsed().as_secs_f64(), "the store is in layout {LAYOUT}");
    Ok(())
}

/// Rewrites one layout-1 record into `b`.
fn record(db: &sled::Db, id: DocId, b: &mut sled::Batch) -> Result<(), StoreError> {
    let Some(doc): Option<StoredDoc> = get(db, &key(b"d/", &[id.as_bytes()]))? else { return Ok(()) };
    let summary: RecordSummary =
        get(db, &key(b"s/", &[id.as_bytes()]))?.unwrap_or(RecordSummary { kind: doc.kind, household: None, at: 0 });
    // Each commit: its position, the heads after it, and its changes from the feed.
    let mut chunks: Vec<(u64, Chunk)> = Vec::new();
    let prefix = key(b"h/", &[id.as_bytes()]);
    for kv in db.scan_prefix(&prefix) {
        let (k, v) = kv.map_err(engine)?;
        let seq = k[prefix.len()..]
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt("heads key".into()))?;
        let heads: Vec<[u8; 32]> = dec(&v)?;
        let changes = match get::<FeedEntryV1>(db, &feed_key(seq))? {
            Some(e) if e.doc == id => e.changes,
            _ => Vec::new(),
        };
        let hashes = changes.iter().map(|c| change_hash(c)).collect::<Result<Vec<_>, _>>()?;
        chunks.push((seq, Chunk { heads, hashes, changes }));
        b.remove(k);
    }
    // Do the chunks hold every change of the document? Every change's
    // dependencies must be among them, and so must the document's heads.
    let hashes: HashSet<[u8; 32]> = chunks.iter().flat_map(|(_, c)| c.hashes.iter().copied()).collect();
    let whole = chunks.last().is_some_and(|(_, last)| last.heads.iter().all(|h| hashes.contains(h)))
        && chunks.iter().flat_map(|(_, c)| c.changes.iter()).all(|bytes| {
            automerge::Change::from_bytes(bytes.clone()).is_ok_and(|c| c.deps().iter().all(|d| hashes.contains(&d.0)))
        });
    let mut meta = RecordMeta {
        grid: doc.grid.clone(),
        kind: doc.kind,
        seq: doc.seq,
        summary,
        base_seq: 0,
        chunks: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
        row: None,
    };
    if !whole {
        b.insert(base_key(id), doc.bytes);
        meta.base_seq = doc.seq;
        meta.chunks = 0;
    }
    for (seq, chunk) in chunks {
        let chunk = if whole { chunk } else { Chunk { changes: Vec::new(), ..chunk } };
        b.insert(chunk_key(id, seq), enc(&chunk)?);
    }
    for scope in doc.grid.ancestors_and_self() {
        b.remove(key(&scope_key(b"g/", &scope), &[id.as_bytes()]));
    }
    b.insert(key(&scope_key(b"g/", &doc.grid), &[id.as_bytes()]), vec![super::records::kind_index(doc.kind)]);
    b.insert(meta_key(id), enc(&meta)?);
    b.remove(key(b"d/", &[id.as_bytes()]));
    b.remove(key(b"s/", &[id.as_bytes()]));
    Ok(())
}
