//! Consistent snapshots of a territory as of one moment of the change feed,
//! and their import into an empty server.
//!
//! A snapshot is pinned to a feed position: each document is read at the heads
//! it had after the last change at or before that position, so a record is
//! never half-written and nothing that arrived later appears, however many
//! phones sync while the export runs. Memory stays flat: documents are read
//! page by page, one kind at a time, and written straight into the archive.
//! A snapshot made with photos ([`SnapshotRequest::photos`]) takes the photos
//! its records referenced at that moment from the store's photo blobs, one at
//! a time (a photo is immutable, so any time after is as good as the moment).

use crate::error::ApiError;
use crate::export::names::Names;
use crate::export::{ExportError, SnapshotItem, SnapshotSource};
use crate::store::{DocWrite, Store};
use automerge::Automerge;
use gridsync_shared::masking::mask_record;
use gridsync_shared::records::{read_record, read_record_at};
use gridsync_shared::{DeviceId, DocId, RecordKind, TerritoryPath};
use std::io::Read;

/// Everything in `scope` as of feed position `seq`, optionally masked.
pub struct StoreSnapshot<'a> {
    store: &'a dyn Store,
    scope: TerritoryPath,
    seq: u64,
    mask: bool,
}

impl<'a> StoreSnapshot<'a> {
    /// A snapshot of `scope` at feed position `seq`; `mask` hides ID and phone numbers.
    pub fn new(store: &'a dyn Store, scope: TerritoryPath, seq: u64, mask: bool) -> Self {
        Self { store, scope, seq, mask }
    }

    fn item(&self, id: DocId, bytes: &[u8]) -> Result<Option<SnapshotItem>, ExportError> {
        let Some(heads) = self.store.doc_heads_at(id, self.seq).map_err(|e| ExportError::Source(e.to_string()))? else {
            return Ok(None); // created after the snapshot's moment
        };
        let doc = Automerge::load(bytes).map_err(|e| ExportError::Source(format!("document {id}: {e}")))?;
        let (record, automerge) = if doc.get_heads() == heads {
            (read_record(&doc), bytes.to_vec())
        } else {
            let then = doc.fork_at(&heads).map_err(|e| ExportError::Source(format!("document {id}: {e}")))?;
            (read_record_at(&doc, &heads), then.save())
        };
        let mut record = record.map_err(|e| ExportError::Source(format!("document {id}: {e}")))?;
        if self.mask {
            mask_record(&mut record);
        }
        Ok(Some(SnapshotItem { id, record, automerge }))
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
        let mut after: Option<DocId> = None;
        let mut page: std::vec::IntoIter<(DocId, crate::store::StoredDoc)> = Vec::new().into_iter();
        let mut done = false;
        Box::new(std::iter::from_fn(move || {
            loop {
                if let Some((id, stored)) = page.next() {
                    after = Some(id);
                    if stored.kind != kind {
                        continue;
                    }
                    match self.item(id, &stored.bytes) {
                        Ok(Some(item)) => return Some(Ok(item)),
                        Ok(None) => continue,
                        Err(e) => return Some(Err(e)),
                    }
                }
                if done {
                    return None;
                }
                match self.store.docs_in_scope(&self.scope, after, 256) {
                    Ok(next) if next.is_empty() => done = true,
                    Ok(next) => page = next.into_iter(),
                    Err(e) => {
                        done = true;
                        return Some(Err(ExportError::Source(e.to_string())));
                    }
                }
            }
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
                row: None,
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
        let source = StoreSnapshot::new(store, self.scope.clone(), self.seq, self.meta.masked);
        crate::export::write_snapshot(out, self.format, &self.meta, &source, progress)
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
    store.append_audit(actor, "snapshot.export", &detail, now)?;
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
