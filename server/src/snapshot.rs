//! Consistent snapshots of a territory as of one moment of the change feed,
//! and their import into an empty server.
//!
//! A snapshot is pinned to a feed position: each record is read as it was
//! after the last change at or before that position, so a record is never
//! half-written and nothing that arrived later appears, however many phones
//! sync while the export runs. A record unchanged since that position is read
//! from the flattened row the store keeps beside its document
//! ([`gridsync_shared::records::row`]), without Automerge; any other from its
//! document at the heads it had then. Records are read on one worker per core
//! ([`with_pool`], [`read_records`]) and handed out in id order, one kind at a
//! time, at most a few hundred ahead of the archive, so memory stays flat and
//! the same store and moment give the same bytes. The workers also list the
//! store a page ahead and mask what a masked snapshot hides, so the thread
//! writing the archive only formats. A snapshot made with photos
//! ([`SnapshotRequest::photos`]) takes the photos its records referenced at
//! that moment from the store's photo blobs, one at a time (a photo is
//! immutable, so any time after is as good as the moment).

use crate::error::ApiError;
use crate::export::names::Names;
use crate::export::{ExportError, SnapshotItem, SnapshotSource};
use crate::store::{DocWrite, RecordListing, Store, StoreError};
use automerge::Automerge;
use gridsync_shared::masking::mask_record;
use gridsync_shared::records::row::decode_row;
use gridsync_shared::records::{read_record, read_record_at};
use gridsync_shared::{DeviceId, DocId, Record, RecordKind, TerritoryPath};
use std::collections::VecDeque;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, sync_channel};
use std::sync::{Arc, Mutex};

/// Listings asked of the store at a time.
const LISTING_PAGE: usize = 256;
/// Records one worker reads as one job.
const CHUNK: usize = 32;
/// Jobs read ahead of the consumer: at most `CHUNK * AHEAD` (256) records in
/// flight, whatever the territory's size.
const AHEAD: usize = 8;

/// A job for the [`Pool`]'s workers.
type Job<'e> = Box<dyn FnOnce() + Send + 'e>;

/// Worker threads (one per core) that read records for one export or report;
/// they live for one [`with_pool`] call.
#[derive(Clone)]
pub struct Pool<'e> {
    jobs: Sender<Job<'e>>,
}

impl<'e> Pool<'e> {
    /// Runs `job` on a worker. A job that panics is dropped (its results with it).
    fn run(&self, job: Job<'e>) -> Result<(), Job<'e>> {
        self.jobs.send(job).map_err(|e| e.0)
    }
}

/// Runs `work` with a [`Pool`] of one worker per core (as
/// `std::thread::available_parallelism` counts them); the workers end with it.
pub fn with_pool<'e, R>(work: impl FnOnce(&Pool<'e>) -> R) -> R {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|threads| {
        let (jobs, queue) = std::sync::mpsc::channel::<Job<'e>>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..workers {
            let queue = Arc::clone(&queue);
            threads.spawn(move || {
                loop {
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    // A panicking job drops its result sender: its reader sees an error.
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
            });
        }
        let pool = Pool { jobs };
        work(&pool)
        // `pool` drops here: the queue closes and the workers end.
    })
}

/// Which state of each record to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moment {
    /// As the store holds it now.
    Now,
    /// As of feed position `seq` (records created later are left out).
    Seq(u64),
}

/// One record as read by [`read_records`].
pub struct ReadRecord {
    /// The record.
    pub id: DocId,
    /// The record at the moment, or why its document could not be read.
    pub record: Result<Record, String>,
    /// The document at the moment (`Automerge::save()`), if asked for.
    pub automerge: Option<Vec<u8>>,
}

/// What to read of each record.
#[derive(Clone, Copy)]
struct Want {
    moment: Moment,
    /// Also the document's bytes (a bundle).
    automerge: bool,
    /// Mask each record ([`mask_record`]) on the worker that read it.
    mask: bool,
}

/// Records of `kind` in `scope` at `moment`, in id order, read on `pool`'s
/// workers (in the caller's thread without one) at most 256 ahead of the
/// consumer. A record whose store listing carries a row current at the moment
/// is read from its row; any other (no row, a row that does not decode, a
/// record changed after the moment, or the documents asked for with
/// `automerge`) from its document. Yields `Err` for a store failure, after
/// which it ends.
pub fn read_records<'e>(
    store: &'e dyn Store,
    scope: TerritoryPath,
    kind: RecordKind,
    moment: Moment,
    automerge: bool,
    pool: Option<Pool<'e>>,
) -> impl Iterator<Item = Result<ReadRecord, StoreError>> + 'e {
    read_records_as(store, scope, kind, Want { moment, automerge, mask: false }, pool)
}

/// [`read_records`] as `want` asks. The store is listed a page ahead on the
/// pool's workers too, so the consumer's thread only hands records out.
fn read_records_as<'e>(
    store: &'e dyn Store,
    scope: TerritoryPath,
    kind: RecordKind,
    want: Want,
    pool: Option<Pool<'e>>,
) -> impl Iterator<Item = Result<ReadRecord, StoreError>> + 'e {
    let mut listed: VecDeque<RecordListing> = VecDeque::new();
    let mut listing = Listing::start(store, scope, kind, None, pool.as_ref());
    let mut listed_all = false;
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut ready: std::vec::IntoIter<Result<Option<ReadRecord>, StoreError>> = Vec::new().into_iter();
    let mut failed = false;
    std::iter::from_fn(move || {
        loop {
            if failed {
                return None;
            }
            // Keep the workers AHEAD jobs ahead of what is handed out.
            while pending.len() < AHEAD && !(listed_all && listed.is_empty()) {
                if listed.len() < CHUNK && !listed_all {
                    match listing.next_page(pool.as_ref()) {
                        Ok(page) => {
                            listed_all = page.is_none();
                            listed.extend(page.into_iter().flatten());
                        }
                        Err(e) => {
                            failed = true;
                            return Some(Err(e));
                        }
                    }
                    continue;
                }
                let chunk: Vec<RecordListing> = listed.drain(..listed.len().min(CHUNK)).collect();
                pending.push_back(start_reading(store, chunk, want, pool.as_ref()));
            }
            if let Some(next) = ready.next() {
                match next {
                    Ok(Some(read)) => return Some(Ok(read)),
                    Ok(None) => continue,
                    Err(e) => {
                        failed = true;
                        return Some(Err(e));
                    }
                }
            }
            let next = pending.pop_front()?;
            match next.finish("a worker reading records failed (see the log)") {
                Ok(reads) => ready = reads.into_iter(),
                Err(e) => {
                    failed = true;
                    return Some(Err(e));
                }
            }
        }
    })
}

/// Listing a kind's records in scope, page by page, in id order: the next
/// page is asked of the store (on a worker, with a pool) as soon as the one
/// before it is handed out.
struct Listing<'e> {
    store: &'e dyn Store,
    scope: TerritoryPath,
    kind: RecordKind,
    /// The page being listed; None once the last page was handed out.
    next: Option<PendingPage>,
}

/// A page of listings being read, or read.
type PendingPage = Pooled<Result<Vec<RecordListing>, StoreError>>;

/// Work started on a pool's worker (or done at once without one): its
/// result, when asked for.
enum Pooled<T> {
    Ready(T),
    Running(Receiver<T>),
}

impl<T: Send> Pooled<T> {
    /// Starts `work` on `pool`; does it here without one, or when the pool
    /// has no workers left.
    fn start<'e>(pool: Option<&Pool<'e>>, work: impl FnOnce() -> T + Send + 'e) -> Pooled<T>
    where
        T: 'e,
    {
        let Some(pool) = pool else { return Pooled::Ready(work()) };
        let (done, result) = sync_channel(1);
        match pool.run(Box::new(move || {
            let _ = done.send(work());
        })) {
            Ok(()) => Pooled::Running(result),
            Err(job) => {
                job(); // no workers left: here
                Pooled::Running(result)
            }
        }
    }

    /// The result; `failed` if the worker doing it failed (it panicked).
    fn finish(self, failed: &str) -> Result<T, StoreError> {
        match self {
            Pooled::Ready(t) => Ok(t),
            Pooled::Running(result) => result.recv().map_err(|_| StoreError::Engine(failed.into())),
        }
    }
}

impl<'e> Listing<'e> {
    /// Starts listing the page after `after`.
    fn start(
        store: &'e dyn Store,
        scope: TerritoryPath,
        kind: RecordKind,
        after: Option<DocId>,
        pool: Option<&Pool<'e>>,
    ) -> Self {
        let next = Some(Self::page(store, scope.clone(), kind, after, pool));
        Self { store, scope, kind, next }
    }

    fn page(
        store: &'e dyn Store,
        scope: TerritoryPath,
        kind: RecordKind,
        after: Option<DocId>,
        pool: Option<&Pool<'e>>,
    ) -> PendingPage {
        Pooled::start(pool, move || store.records_in_scope(&scope, kind, after, LISTING_PAGE))
    }

    /// The next page (and the one after it started), or None after the last.
    fn next_page(&mut self, pool: Option<&Pool<'e>>) -> Result<Option<Vec<RecordListing>>, StoreError> {
        let page = match self.next.take() {
            None => return Ok(None),
            Some(page) => page.finish("a worker listing records failed (see the log)")??,
        };
        if page.len() >= LISTING_PAGE
            && let Some(last) = page.last()
        {
            self.next = Some(Self::page(self.store, self.scope.clone(), self.kind, Some(last.id), pool));
        }
        Ok(Some(page))
    }
}

/// A chunk of records being read, or read.
type Pending = Pooled<Vec<Result<Option<ReadRecord>, StoreError>>>;

/// Starts reading `chunk` on `pool` (or reads it now without one).
fn start_reading<'e>(store: &'e dyn Store, chunk: Vec<RecordListing>, want: Want, pool: Option<&Pool<'e>>) -> Pending {
    let read = move || {
        chunk
            .into_iter()
            .map(|listing| {
                let mut read = read_one(store, listing, want);
                if want.mask
                    && let Ok(Some(ReadRecord { record: Ok(record), .. })) = &mut read
                {
                    mask_record(record);
                }
                read
            })
            .collect::<Vec<_>>()
    };
    Pooled::start(pool, read)
}

/// One listed record at the moment wanted: None if it did not exist yet.
fn read_one(store: &dyn Store, listing: RecordListing, want: Want) -> Result<Option<ReadRecord>, StoreError> {
    let id = listing.id;
    let row_current = match want.moment {
        Moment::Now => true,
        Moment::Seq(seq) => listing.seq <= seq,
    };
    let row = listing.row.as_deref().filter(|_| row_current).and_then(|row| match decode_row(row) {
        Ok(record) => Some(record),
        Err(error) => {
            tracing::warn!(doc = %id, %error, "record row unreadable: reading its document");
            None
        }
    });
    if !want.automerge
        && let Some(record) = row
    {
        return Ok(Some(ReadRecord { id, record: Ok(record), automerge: None }));
    }
    let Some(stored) = store.load_doc(id)? else {
        return Err(StoreError::Corrupt(format!("record {id} is listed but its document is missing")));
    };
    // The document as loaded may be newer than the listing (and the moment).
    let heads = match want.moment {
        Moment::Seq(seq) if stored.seq > seq => match store.doc_heads_at(id, seq)? {
            Some(heads) => Some(heads),
            None => return Ok(None), // created after the moment
        },
        _ => None,
    };
    if heads.is_none()
        && stored.seq == listing.seq
        && let Some(record) = row
    {
        // The stored document is the one the row was made of: no need to parse it.
        return Ok(Some(ReadRecord { id, record: Ok(record), automerge: Some(stored.bytes) }));
    }
    let doc = match Automerge::load(&stored.bytes) {
        Ok(doc) => doc,
        Err(e) => return Ok(Some(ReadRecord { id, record: Err(e.to_string()), automerge: None })),
    };
    let (record, automerge) = match heads {
        Some(heads) if doc.get_heads() != heads => {
            let record = read_record_at(&doc, &heads).map_err(|e| e.to_string());
            let then = match doc.fork_at(&heads) {
                Ok(then) => want.automerge.then(|| then.save()),
                Err(e) => return Ok(Some(ReadRecord { id, record: Err(e.to_string()), automerge: None })),
            };
            (record, then)
        }
        _ => (read_record(&doc).map_err(|e| e.to_string()), want.automerge.then_some(stored.bytes)),
    };
    Ok(Some(ReadRecord { id, record, automerge }))
}

/// Everything in `scope` as of feed position `seq`, optionally masked.
pub struct StoreSnapshot<'a> {
    store: &'a dyn Store,
    scope: TerritoryPath,
    seq: u64,
    mask: bool,
    automerge: bool,
    pool: Option<Pool<'a>>,
}

impl<'a> StoreSnapshot<'a> {
    /// A snapshot of `scope` at feed position `seq`; `mask` hides ID and
    /// phone numbers. Its items carry their documents ([`SnapshotItem::automerge`]),
    /// read in the caller's thread.
    pub fn new(store: &'a dyn Store, scope: TerritoryPath, seq: u64, mask: bool) -> Self {
        Self { store, scope, seq, mask, automerge: true, pool: None }
    }

    /// Whether items carry their documents (only a bundle needs them: the
    /// other formats read records from their rows where the store keeps them).
    pub fn with_documents(mut self, automerge: bool) -> Self {
        self.automerge = automerge;
        self
    }

    /// Reads records on `pool`'s workers, handed out in the same order.
    pub fn on(mut self, pool: &Pool<'a>) -> Self {
        self.pool = Some(pool.clone());
        self
    }
}

impl SnapshotSource for StoreSnapshot<'_> {
    fn names(&self) -> Result<Names, ExportError> {
        let source = |e: crate::store::StoreError| ExportError::Source(e.to_string());
        let people = self.store.people().map_err(source)?.into_iter().map(|p| (p.id, p.name));
        let territories = self.store.territories().map_err(source)?.into_iter().map(|t| (t.path, t.name));
        Ok(Names::new(people, territories))
    }

    fn photo(
        &self,
        hash: &gridsync_shared::photos::PhotoHash,
    ) -> Result<Option<(gridsync_shared::photos::PhotoType, Vec<u8>)>, ExportError> {
        self.store.photo(hash).map_err(|e| ExportError::Source(format!("photo {hash}: {e}")))
    }

    fn items(&self, kind: RecordKind) -> Box<dyn Iterator<Item = Result<SnapshotItem, ExportError>> + '_> {
        // Masked on the workers, as they read.
        let want = Want { moment: Moment::Seq(self.seq), automerge: self.automerge, mask: self.mask };
        let reads = read_records_as(self.store, self.scope.clone(), kind, want, self.pool.clone());
        Box::new(reads.map(move |read| {
            let read = read.map_err(|e| ExportError::Source(e.to_string()))?;
            let id = read.id;
            let record = read.record.map_err(|e| ExportError::Source(format!("document {id}: {e}")))?;
            Ok(SnapshotItem { id, record, automerge: read.automerge.unwrap_or_default() })
        }))
    }
}

/// What [`import_bundle`] loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Records (documents) stored.
    pub records: u64,
    /// Photos stored (a bundle made with photos).
    pub photos: u64,
}

/// Loads a bundle snapshot (`records/<id>.automerge` entries in a zip, and
/// `photos/<sha256>.<ext>` entries if it was made with photos) into `store`,
/// which should be empty. Every document is checked to be a valid record
/// before it is stored; every photo to be a JPEG or WebP of at most
/// [`MAX_PHOTO_BYTES`] whose SHA-256 is its name, referenced by a record
/// stored before it (photos come after the records in a bundle), and is
/// stored as a verified upload would be.
///
/// [`MAX_PHOTO_BYTES`]: gridsync_shared::photos::limits::MAX_PHOTO_BYTES
pub fn import_bundle(store: &dyn Store, bundle: impl Read + std::io::Seek, now: i64) -> Result<Imported, ApiError> {
    let mut zip = zip::ZipArchive::new(bundle).map_err(|e| ApiError::BadRequest(format!("not a bundle: {e}")))?;
    let mut count = 0;
    let mut photos = 0;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| ApiError::BadRequest(format!("bundle entry {i}: {e}")))?;
        let name = entry.name().map_err(|e| ApiError::BadRequest(format!("bundle entry {i}: {e}")))?.to_string();
        if let Some(file) = name.strip_prefix("photos/") {
            import_photo(store, file, &mut entry)
                .map_err(|e| ApiError::BadRequest(format!("bundle entry {name}: {e}")))?;
            photos += 1;
            continue;
        }
        let Some(id) = name.strip_prefix("records/").and_then(|n| n.strip_suffix(".automerge")) else { continue };
        let id: DocId =
            id.parse().map_err(|_| ApiError::BadRequest(format!("bundle entry {name}: not a record id")))?;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| ApiError::BadRequest(format!("bundle entry {name}: {e}")))?;
        let doc = Automerge::load(&bytes).map_err(|e| ApiError::BadRequest(format!("{name}: {e}")))?;
        let record = read_record(&doc).map_err(|e| ApiError::BadRequest(format!("{name}: {e}")))?;
        store.commit_doc(
            DocWrite {
                doc: id,
                grid: record.meta().grid.clone(),
                summary: record.summary(),
                bytes: doc.save(),
                heads: doc.get_heads(),
                device: DeviceId(uuid::Uuid::nil()),
                changes: doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect(),
                photos: record.photos().to_vec(),
                row: Some(gridsync_shared::records::row::encode_row(&record)),
            },
            now,
        )?;
        count += 1;
    }
    store.flush()?;
    Ok(Imported { records: count, photos })
}

/// Checks and stores one photo of a bundle, named `<sha256>.<ext>`.
fn import_photo(store: &dyn Store, file: &str, entry: &mut impl Read) -> Result<(), String> {
    use gridsync_shared::photos::{PhotoHash, PhotoType, check_photo_bytes, limits::MAX_PHOTO_BYTES};
    let (hash, ext) = file.split_once('.').ok_or("not photos/<sha256>.<ext>")?;
    let hash = PhotoHash::parse(hash).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    entry.take(MAX_PHOTO_BYTES + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    let mime =
        PhotoType::sniff(&bytes).filter(|t| t.ext() == ext).ok_or("not a JPEG or WebP photo of its named type")?;
    check_photo_bytes(&bytes, bytes.len() as u64, mime).map_err(|e| e.to_string())?;
    if crate::photos::photo_hash(&bytes) != hash {
        return Err("its bytes do not hash to its name".into());
    }
    if store.photo_referrers(&hash).map_err(|e| e.to_string())?.is_empty() {
        return Err("no record in the bundle references it".into());
    }
    store.finish_upload(&hash, mime, &bytes).map_err(|e| e.to_string())
}

/// A snapshot asked for on the command line or over the admin socket.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SnapshotRequest {
    /// `csv`, `xlsx`, `jsonl` or `bundle`.
    pub format: String,
    /// Territory path (default: every record).
    pub territory: Option<String>,
    /// Server time in Unix ms the snapshot is as of (default: now).
    pub as_of: Option<i64>,
    /// Export ID and phone numbers unmasked (needs a reason).
    pub unmask: bool,
    /// Why an unmasked export is needed.
    pub reason: Option<String>,
    /// Add every photo the records reference to the archive (`photos/<sha256>.<ext>`).
    #[serde(default)]
    pub photos: bool,
}

/// A validated, audited snapshot, ready to be written.
pub struct PreparedSnapshot {
    format: crate::export::Format,
    scope: TerritoryPath,
    seq: u64,
    meta: crate::export::SnapshotMeta,
}

impl PreparedSnapshot {
    /// The feed position the snapshot is pinned to.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Writes the archive to `out`; `progress` gets the count of records written.
    pub fn write(
        &self,
        store: &dyn Store,
        out: &mut dyn std::io::Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<crate::export::Manifest, ApiError> {
        let bundle = self.format == crate::export::Format::Bundle;
        with_pool(|pool| {
            let source = StoreSnapshot::new(store, self.scope.clone(), self.seq, self.meta.masked)
                .with_documents(bundle)
                .on(pool);
            crate::export::write_snapshot(out, self.format, &self.meta, &source, progress)
        })
        .map_err(|e| ApiError::Internal(e.to_string()))
    }
}

/// Checks a snapshot request (format, territory, a reason for any unmasked
/// export), pins it to a feed position, and records it in the audit log as
/// done by `actor` — all before a byte is written.
pub fn prepare(store: &dyn Store, req: &SnapshotRequest, actor: &str) -> Result<PreparedSnapshot, ApiError> {
    let format: crate::export::Format = req.format.parse().map_err(|e: String| ApiError::BadRequest(e))?;
    let reason = req.reason.clone().unwrap_or_default();
    if req.unmask && reason.trim().is_empty() {
        return Err(ApiError::BadRequest("an unmasked export needs a reason".into()));
    }
    if matches!(format, crate::export::Format::Bundle) && !req.unmask {
        return Err(ApiError::BadRequest(
            "the Automerge bundle holds records in full: ask for it unmasked, with a reason".into(),
        ));
    }
    let scope = match req.territory.as_deref() {
        Some(t) => TerritoryPath::parse(t).map_err(|e| ApiError::BadRequest(e.to_string()))?,
        None => store
            .territories()?
            .into_iter()
            .map(|t| t.path)
            .find(|p| p.parent().is_none())
            .ok_or_else(|| ApiError::BadRequest("the store has no territories yet".into()))?,
    };
    let now = crate::http::now_ms();
    let as_of = req.as_of.unwrap_or(now);
    let seq = if req.as_of.is_some() { store.seq_at(as_of)? } else { store.head_seq()? };
    let detail = format!(
        "format={} territory={scope} as_of={as_of} as_of_seq={seq} masked={}{}{}",
        req.format,
        !req.unmask,
        if req.photos { " photos=true" } else { "" },
        if req.unmask { format!(" reason={reason}") } else { String::new() }
    );
    store.append_audit_in(Some(&scope), actor, "snapshot.export", &detail, now)?;
    let meta = crate::export::SnapshotMeta {
        territory: scope.clone(),
        as_of_ms: as_of,
        as_of_seq: seq,
        generated_at_ms: now,
        generated_by: actor.to_string(),
        masked: !req.unmask,
        photos: req.photos,
    };
    Ok(PreparedSnapshot { format, scope, seq, meta })
}

/// Parses a moment given on the command line: Unix milliseconds, or a date
/// and time in China Standard Time (UTC+8) as `YYYY-MM-DD`, `YYYY-MM-DD HH:MM`
/// or `YYYY-MM-DDTHH:MM:SS`.
pub fn parse_as_of(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || format!("{text:?}: expected Unix ms or YYYY-MM-DD[ HH:MM[:SS]] (China time)");
    let (date, time) = t.split_once([' ', 'T']).unwrap_or((t, "00:00:00"));
    let d: Vec<i64> = date.split('-').map(|p| p.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let hms: Vec<i64> = time.split(':').map(|p| p.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let [y, m, day] = d[..] else { return Err(bad()) };
    let (h, min, s) = match hms[..] {
        [h, min] => (h, min, 0),
        [h, min, s] => (h, min, s),
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&h)
        || !(0..60).contains(&min)
        || !(0..61).contains(&s)
    {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 86_400 + h * 3_600 + min * 60 + s) - 8 * 3_600) * 1_000)
}

/// The receiving end of a snapshot being written: chunks of the archive, then
/// an error item if writing failed part way (the archive is then incomplete).
pub type ArchiveChunks = tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>;

/// Writes `prepared` on a blocking thread into a bounded channel of 64 KiB
/// chunks: a slow reader makes the writer wait, so memory stays flat.
pub fn spawn_export(store: std::sync::Arc<dyn Store>, prepared: PreparedSnapshot) -> ArchiveChunks {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter { tx: tx.clone(), buf: Vec::new() };
        let result = prepared
            .write(store.as_ref(), &mut out, &mut |_| {})
            .and_then(|_| std::io::Write::flush(&mut out).map_err(|e| ApiError::Internal(e.to_string())));
        if let Err(e) = result {
            tracing::error!(error = %e, "snapshot export failed");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    rx
}

/// A `Write` handing 64 KiB chunks to an async reader through a bounded channel.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = bytes::Bytes::from(std::mem::take(&mut self.buf));
            self.tx.blocking_send(Ok(chunk)).map_err(|_| std::io::Error::other("the reader went away"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_as_of;

    #[test]
    fn china_time_dates_parse_to_unix_ms() {
        assert_eq!(parse_as_of("1970-01-01 08:00"), Ok(0));
        assert_eq!(parse_as_of("2026-11-25T20:00:00"), Ok(1_795_608_000_000));
        assert_eq!(parse_as_of("1795608000000"), Ok(1_795_608_000_000));
        assert!(parse_as_of("25/11/2026").is_err());
    }
}
