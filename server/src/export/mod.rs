//! Snapshot files: everything in a territory as of one moment, written as one
//! zip archive in constant memory.
//!
//! Every format is a zip, so every snapshot carries its manifest:
//!
//! | format | entries |
//! | --- | --- |
//! | [`Format::Csv`] | `households.csv`, `visit_logs.csv`, `cases.csv`, `promises.csv`: UTF-8 with BOM, CRLF, Chinese headers, cells guarded for Excel/WPS (see [`csv`]), names beside ids (see [`names`]) and voided records marked (see [`table`]) |
//! | [`Format::Xlsx`] | `snapshot.xlsx`: one worksheet per record type, same columns as the CSV (see [`xlsx`]) |
//! | [`Format::Jsonl`] | `households.jsonl` ...: one `{"id": ..., "record": ...}` object per line, the [`Record`] as serde writes it |
//! | [`Format::Bundle`] | `records/<id>.automerge`: each document as `Automerge::save()` wrote it, from which a fresh server rebuilds the same state |
//!
//! and, last, `manifest.json` ([`Manifest`]): what the snapshot is of, counts
//! per record type, and the name, size and SHA-256 of every other entry, hashed
//! while the entry streams out.
//!
//! A snapshot made with photos ([`SnapshotMeta::photos`]) also holds every
//! photo its records reference (as of the snapshot's moment, a case's
//! follow-ups' photos included), each once, as `photos/<sha256>.<ext>` —
//! the names the CSV and XLSX rows' 照片 column and the JSONL lines'
//! `photo_files` give — after the record entries and before the manifest. They
//! come from [`SnapshotSource::photo`] one at a time and are stored without
//! recompressing. A referenced photo the server does not have (not uploaded
//! yet), or whose stored bytes do not hash to its name, is not an error: the
//! manifest lists it in `missing_photos`, and `photos` counts what is in.
//! Without photos the archive is as it always was.
//!
//! Records come from a [`SnapshotSource`] one kind at a time and go straight
//! into their entry; nothing collects them, so memory stays flat whatever the
//! count. The archive is written by a small streaming zip writer with data
//! descriptors, so `out` need not seek; it spools the zip's central directory,
//! as this module spools the manifest's list of entries, to a temporary file
//! past 1 MiB, so even a bundle of millions of records keeps memory flat (the
//! `zip` crate's writer keeps a few hundred bytes per entry in memory).
//!
//! The writer does not mask: a masked snapshot ([`SnapshotMeta::masked`]) is
//! one whose source passes records through
//! [`gridsync_shared::masking::mask_record`]. An Automerge bundle carries each
//! document's whole history and so cannot be masked; [`write_snapshot`] refuses
//! a masked bundle.

pub mod csv;
mod jsonl;
pub mod names;
pub mod table;
pub mod xlsx;
mod zipstream;

use gridsync_shared::photos::{PhotoHash, PhotoType};
use gridsync_shared::{DocId, Record, RecordKind, TerritoryPath};
use names::Names;
use serde::ser::{Error as _, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use sha2::Digest as _;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::str::FromStr;
use tempfile::SpooledTempFile;
use thiserror::Error;
use zipstream::ZipStream;

/// The manifest's entry name; always the archive's last entry.
pub const MANIFEST_NAME: &str = "manifest.json";

/// The version of the manifest's layout, written into it.
pub const MANIFEST_VERSION: u32 = 1;

/// The time zone of every local time a snapshot shows: Asia/Shanghai (UTC+8, no daylight saving).
pub const LOCAL_OFFSET_MS: i64 = 8 * 3_600_000;

/// One record of a snapshot: its id, the record as it read at the snapshot's moment, and
/// the Automerge document as of that moment (`Automerge::save()` bytes).
#[derive(Clone, Debug)]
pub struct SnapshotItem {
    /// The record's id.
    pub id: DocId,
    /// The record as it read at the snapshot's moment (masked, for a masked snapshot).
    pub record: Record,
    /// The document as of that moment, as `Automerge::save()` wrote it (used
    /// by the bundle only; a source may leave it empty for the other formats).
    pub automerge: Vec<u8>,
}

/// What the snapshot is of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The territory whose records it holds.
    pub territory: TerritoryPath,
    /// The moment it shows, Unix milliseconds (server time).
    pub as_of_ms: i64,
    /// The change-feed position of that moment.
    pub as_of_seq: u64,
    /// When it was made, Unix milliseconds.
    pub generated_at_ms: i64,
    /// Who made it (a username or `cli`).
    pub generated_by: String,
    /// Whether ID and phone numbers are masked in it.
    pub masked: bool,
    /// Whether the archive also holds the photos its records reference.
    pub photos: bool,
}

/// A snapshot's file format. Every format is a zip archive with a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One CSV file per record type, for Excel and WPS.
    Csv,
    /// One XLSX workbook, one worksheet per record type.
    Xlsx,
    /// One JSON-lines file per record type, the records as serde writes them.
    Jsonl,
    /// The raw Automerge documents, from which a server can be rebuilt.
    Bundle,
}

impl Format {
    /// Every format, in a stable order.
    pub const ALL: [Format; 4] = [Format::Csv, Format::Xlsx, Format::Jsonl, Format::Bundle];

    /// The format's name, as `FromStr` accepts it.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Jsonl => "jsonl",
            Format::Bundle => "bundle",
        }
    }

    /// The extension of a downloaded snapshot file (always a zip): `csv.zip`, `xlsx.zip`...
    pub fn file_extension(self) -> &'static str {
        match self {
            Format::Csv => "csv.zip",
            Format::Xlsx => "xlsx.zip",
            Format::Jsonl => "jsonl.zip",
            Format::Bundle => "bundle.zip",
        }
    }

    /// The MIME type of a snapshot file: every format is a zip archive.
    pub fn content_type(self) -> &'static str {
        "application/zip"
    }

    /// A file name for a snapshot of `meta` in this format, e.g.
    /// `gridsync-xg-xn-20240501-120000-seq42.csv.zip` (local time of the snapshot's moment).
    pub fn file_name(self, meta: &SnapshotMeta) -> String {
        let t = LocalTime::from_unix_ms(meta.as_of_ms);
        format!(
            "gridsync-{}-{:04}{:02}{:02}-{:02}{:02}{:02}-seq{}.{}",
            meta.territory.as_str().replace('/', "-"),
            t.year,
            t.month,
            t.day,
            t.hour,
            t.minute,
            t.second,
            meta.as_of_seq,
            self.file_extension()
        )
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown snapshot format {s:?}: expected csv, xlsx, jsonl or bundle"))
    }
}

/// Where records come from: called once per record kind, yields that kind's records in a stable order.
pub trait SnapshotSource {
    /// The records of `kind`, each as it read at the snapshot's moment, in a stable order.
    fn items(&self, kind: RecordKind) -> Box<dyn Iterator<Item = Result<SnapshotItem, ExportError>> + '_>;

    /// The names of people and territories to write beside their ids (CSV and
    /// XLSX), as they are now; none by default.
    fn names(&self) -> Result<Names, ExportError> {
        Ok(Names::default())
    }

    /// A stored photo's type and bytes, `None` when the source does not have
    /// it (not uploaded yet); asked only for snapshots made with photos, one
    /// photo at a time. None by default.
    fn photo(&self, _hash: &PhotoHash) -> Result<Option<(PhotoType, Vec<u8>)>, ExportError> {
        Ok(None)
    }
}

/// Why a snapshot could not be written. Whatever was written to `out` before is incomplete.
#[derive(Debug, Error)]
pub enum ExportError {
    /// The source failed to produce a record (store error, unreadable document).
    #[error("snapshot source: {0}")]
    Source(String),
    /// The source yielded a record of another kind than it was asked for.
    #[error("record {id} is a {found}, but the source was asked for {expected} records")]
    WrongKind {
        /// The record.
        id: DocId,
        /// The kind asked for.
        expected: RecordKind,
        /// The kind it is.
        found: RecordKind,
    },
    /// A masked bundle was asked for: Automerge documents keep their whole history, so they cannot be masked.
    #[error("an Automerge bundle cannot be masked: documents carry their full history; export it unmasked")]
    MaskedBundle,
    /// Writing to the output failed.
    #[error("writing the snapshot: {0}")]
    Io(#[from] std::io::Error),
    /// A CSV file could not be written.
    #[error("writing CSV: {0}")]
    Csv(#[from] ::csv::Error),
    /// The XLSX workbook could not be written.
    #[error("writing XLSX: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    /// A record or the manifest could not be serialized.
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// How many records of each type a snapshot holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// 住户
    pub household: u64,
    /// 走访记录
    pub visit_log: u64,
    /// 事件
    pub case: u64,
    /// 承诺事项
    pub promise: u64,
}

impl Counts {
    /// The count of `kind`.
    pub fn get(&self, kind: RecordKind) -> u64 {
        match kind {
            RecordKind::Household => self.household,
            RecordKind::VisitLog => self.visit_log,
            RecordKind::Case => self.case,
            RecordKind::Promise => self.promise,
        }
    }

    /// The count of every kind together.
    pub fn total(&self) -> u64 {
        self.household + self.visit_log + self.case + self.promise
    }

    fn bump(&mut self, kind: RecordKind) {
        match kind {
            RecordKind::Household => self.household += 1,
            RecordKind::VisitLog => self.visit_log += 1,
            RecordKind::Case => self.case += 1,
            RecordKind::Promise => self.promise += 1,
        }
    }
}

/// One entry of the archive as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// The entry's name in the archive.
    pub name: String,
    /// Its size in bytes, uncompressed.
    pub size: u64,
    /// SHA-256 of its uncompressed bytes, lowercase hex.
    pub sha256: String,
}

/// The photos of a snapshot made with photos.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoCounts {
    /// Distinct photo files the snapshot's records reference.
    pub referenced: u64,
    /// Of those, the ones in the archive.
    pub included: u64,
    /// Of those, the ones not in it (listed in [`Manifest::missing_photos`]).
    pub missing: u64,
    /// The bytes of the photos in the archive, uncompressed.
    pub bytes: u64,
}

/// Why a referenced photo is not in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingReason {
    /// The server does not have the photo's bytes: the phone has not uploaded it yet.
    NotUploaded,
    /// The stored bytes do not hash to the photo's name (damaged storage): left out.
    HashMismatch,
}

/// A photo the snapshot's records reference but its archive does not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingPhoto {
    /// The entry it would have had, `photos/<sha256>.<ext>` (what the rows name).
    pub name: String,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
    /// Its size as the referencing record gives it.
    pub size: u64,
    /// The first record (in archive order) that references it.
    pub referenced_by: DocId,
    /// Why it is not in the archive.
    pub reason: MissingReason,
}

/// `manifest.json`: what a snapshot is of, and a checksum of every other entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest layout's version ([`MANIFEST_VERSION`]).
    pub manifest_version: u32,
    /// The snapshot's format.
    pub format: Format,
    /// The territory whose records it holds.
    pub territory: TerritoryPath,
    /// The moment it shows, Unix milliseconds.
    pub as_of_ms: i64,
    /// The same moment as ISO-8601 text in Beijing time, e.g. `2024-05-01T12:00:00.000+08:00`.
    pub as_of: String,
    /// The change-feed position of that moment.
    pub as_of_seq: u64,
    /// When it was made, Unix milliseconds.
    pub generated_at_ms: i64,
    /// The same moment as ISO-8601 text in Beijing time.
    pub generated_at: String,
    /// Who made it.
    pub generated_by: String,
    /// Whether ID and phone numbers are masked.
    pub masked: bool,
    /// Records per type.
    pub counts: Counts,
    /// For a snapshot made with photos: how many photos it references and
    /// holds (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photos: Option<PhotoCounts>,
    /// For a snapshot made with photos: the referenced photos it does not
    /// hold, and why (absent when there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_photos: Vec<MissingPhoto>,
    /// Every other entry of the archive, in archive order. In the value
    /// [`write_snapshot`] returns, a bundle's per-record entries (`records/…`)
    /// and the photos (`photos/…`) are left out, as they grow with the record
    /// count; the archive's `manifest.json` lists them all.
    pub files: Vec<ManifestFile>,
}

/// Writes the whole snapshot as one zip archive to `out` (a non-seekable writer is fine), calling
/// `progress(records_written_so_far)` as it goes; returns the manifest it also wrote into the archive.
///
/// A masked [`Format::Bundle`] is refused with [`ExportError::MaskedBundle`]. On
/// error the archive written so far is incomplete and should be discarded. The
/// returned manifest leaves out a bundle's per-record entries (see [`Manifest::files`]).
pub fn write_snapshot<W: Write>(
    out: W,
    format: Format,
    meta: &SnapshotMeta,
    source: &dyn SnapshotSource,
    progress: &mut dyn FnMut(u64),
) -> Result<Manifest, ExportError> {
    if format == Format::Bundle && meta.masked {
        return Err(ExportError::MaskedBundle);
    }
    let mut archive = Archive::new(out, meta.generated_at_ms);
    let wanted = meta.photos.then(BTreeMap::new);
    let mut run = Run { counts: Counts::default(), progress, written: 0, photos: wanted };
    match format {
        Format::Csv => {
            let names = source.names()?;
            for kind in RecordKind::ALL {
                let name = format!("{}.csv", table::file_stem(kind));
                let items = noting_heads(run.items(source, kind), &names);
                archive.entry(&name, true, |w| csv::write_kind(w, kind, meta.as_of_ms, &names, items))?;
            }
        }
        Format::Jsonl => {
            for kind in RecordKind::ALL {
                let name = format!("{}.jsonl", table::file_stem(kind));
                archive.entry(&name, true, |w| jsonl::write_kind(w, run.items(source, kind)))?;
            }
        }
        Format::Xlsx => {
            let names = source.names()?;
            let mut book = xlsx::SnapshotBook::new(meta.generated_at_ms)?;
            for kind in RecordKind::ALL {
                book.write_kind(kind, meta.as_of_ms, &names, noting_heads(run.items(source, kind), &names))?;
            }
            // The workbook is a zip of deflated parts already: deflating it
            // again gains nothing, so it is stored (in deflate's stored blocks).
            archive.entry_compressed(xlsx::ENTRY_NAME, true, flate2::Compression::none(), |w| book.save(w))?;
        }
        Format::Bundle => {
            for kind in RecordKind::ALL {
                for item in run.items(source, kind) {
                    let item = item?;
                    archive.entry(&format!("records/{}.automerge", item.id), false, |w| {
                        Ok(w.write_all(&item.automerge)?)
                    })?;
                }
            }
        }
    }
    let (photos, missing_photos) = match run.photos.take() {
        Some(wanted) => {
            let (counts, missing) = archive.photos(source, wanted)?;
            (Some(counts), missing)
        }
        None => (None, Vec::new()),
    };
    let manifest = Manifest {
        manifest_version: MANIFEST_VERSION,
        format,
        territory: meta.territory.clone(),
        as_of_ms: meta.as_of_ms,
        as_of: LocalTime::from_unix_ms(meta.as_of_ms).iso8601(),
        as_of_seq: meta.as_of_seq,
        generated_at_ms: meta.generated_at_ms,
        generated_at: LocalTime::from_unix_ms(meta.generated_at_ms).iso8601(),
        generated_by: meta.generated_by.clone(),
        masked: meta.masked,
        counts: run.counts,
        photos,
        missing_photos,
        files: Vec::new(),
    };
    archive.finish(manifest)
}

/// `items`, noting each household's head in `names` as it passes: households
/// come first ([`RecordKind::ALL`]), so the records naming them find their heads.
fn noting_heads<'a>(
    items: impl Iterator<Item = Result<SnapshotItem, ExportError>> + 'a,
    names: &'a Names,
) -> impl Iterator<Item = Result<SnapshotItem, ExportError>> + 'a {
    items.inspect(move |item| {
        if let Ok(SnapshotItem { id, record: Record::Household(h), .. }) = item {
            names.note_household(*id, &h.fields.head);
        }
    })
}

/// A photo file the snapshot's records reference.
struct WantedPhoto {
    sha256: PhotoHash,
    size: u64,
    referenced_by: DocId,
}

/// Counting and progress over every kind's items, and (for a snapshot made
/// with photos) the photo files they reference, by entry name.
struct Run<'p> {
    counts: Counts,
    progress: &'p mut dyn FnMut(u64),
    written: u64,
    photos: Option<BTreeMap<String, WantedPhoto>>,
}

impl Run<'_> {
    /// `source`'s items of `kind`, each checked to be of that kind, counted and
    /// reported to `progress` as the consumer takes it.
    fn items<'a>(
        &'a mut self,
        source: &'a dyn SnapshotSource,
        kind: RecordKind,
    ) -> impl Iterator<Item = Result<SnapshotItem, ExportError>> + 'a {
        source.items(kind).map(move |item| {
            let item = item?;
            let found = item.record.kind();
            if found != kind {
                return Err(ExportError::WrongKind { id: item.id, expected: kind, found });
            }
            self.counts.bump(kind);
            if let Some(wanted) = self.photos.as_mut() {
                for p in item.record.photos() {
                    wanted.entry(table::photo_file_name(&p.sha256, p.mime)).or_insert_with(|| WantedPhoto {
                        sha256: p.sha256.clone(),
                        size: p.size,
                        referenced_by: item.id,
                    });
                }
            }
            self.written += 1;
            (self.progress)(self.written);
            Ok(item)
        })
    }
}

/// The zip archive being written, and the manifest's list of its entries:
/// one JSON line per entry in a spool (memory up to 1 MiB, then a temporary
/// file), plus, in memory, the entries the returned manifest keeps.
struct Archive<W: Write> {
    zip: ZipStream<W>,
    listed: BufWriter<SpooledTempFile>,
    kept: Vec<ManifestFile>,
}

/// Entries whose names start so are listed in `manifest.json` but not kept in memory.
const NOT_KEPT_PREFIXES: [&str; 2] = ["records/", "photos/"];

impl<W: Write> Archive<W> {
    fn new(out: W, generated_at_ms: i64) -> Self {
        Self {
            zip: ZipStream::new(out, &LocalTime::from_unix_ms(generated_at_ms)),
            listed: BufWriter::new(SpooledTempFile::new(1 << 20)),
            kept: Vec::new(),
        }
    }

    /// Writes one entry with `body`, hashing and counting its bytes for the
    /// manifest. `large` allows more than 4 GiB (ZIP64) for entries that may grow so.
    fn entry(
        &mut self,
        name: &str,
        large: bool,
        body: impl FnOnce(&mut dyn Write) -> Result<(), ExportError>,
    ) -> Result<(), ExportError> {
        self.entry_compressed(name, large, flate2::Compression::default(), body)
    }

    /// [`Archive::entry`] at a chosen deflate level.
    fn entry_compressed(
        &mut self,
        name: &str,
        large: bool,
        level: flate2::Compression,
        body: impl FnOnce(&mut dyn Write) -> Result<(), ExportError>,
    ) -> Result<(), ExportError> {
        let digest = self.zip.entry_compressed(name, large, level, body)?;
        let file = ManifestFile { name: name.to_string(), size: digest.size, sha256: digest.sha256 };
        serde_json::to_writer(&mut self.listed, &file)?;
        self.listed.write_all(b"\n")?;
        if !NOT_KEPT_PREFIXES.iter().any(|p| name.starts_with(p)) {
            self.kept.push(file);
        }
        Ok(())
    }

    /// Writes the `wanted` photos from `source`, one at a time, each stored
    /// as it is (photos are compressed already); returns what went in and
    /// what did not.
    fn photos(
        &mut self,
        source: &dyn SnapshotSource,
        wanted: BTreeMap<String, WantedPhoto>,
    ) -> Result<(PhotoCounts, Vec<MissingPhoto>), ExportError> {
        let mut counts = PhotoCounts { referenced: wanted.len() as u64, ..PhotoCounts::default() };
        let mut missing = Vec::new();
        for (name, want) in wanted {
            let reason = match source.photo(&want.sha256)? {
                Some((_, bytes)) if PhotoHash::from_digest(&sha2::Sha256::digest(&bytes).into()) == want.sha256 => {
                    self.entry_compressed(&name, false, flate2::Compression::none(), |w| Ok(w.write_all(&bytes)?))?;
                    counts.included += 1;
                    counts.bytes += bytes.len() as u64;
                    continue;
                }
                Some(_) => MissingReason::HashMismatch,
                None => MissingReason::NotUploaded,
            };
            counts.missing += 1;
            missing.push(MissingPhoto {
                name,
                sha256: want.sha256.to_string(),
                size: want.size,
                referenced_by: want.referenced_by,
                reason,
            });
        }
        Ok((counts, missing))
    }

    /// Writes `manifest` (with every entry listed) as the last entry, closes the
    /// archive, and returns the manifest with the entries kept in memory.
    fn finish(mut self, mut manifest: Manifest) -> Result<Manifest, ExportError> {
        let mut listed = self.listed.into_inner().map_err(|e| e.into_error())?;
        listed.seek(SeekFrom::Start(0))?;
        let streamed = StreamedManifest { manifest: &manifest, files: RefCell::new(BufReader::new(listed)) };
        self.zip.entry(MANIFEST_NAME, false, |w| {
            serde_json::to_writer_pretty(&mut *w, &streamed)?;
            Ok::<_, ExportError>(w.write_all(b"\n")?)
        })?;
        self.zip.finish()?;
        manifest.files = self.kept;
        Ok(manifest)
    }
}

/// A [`Manifest`] serialized with its file list read from the spool.
struct StreamedManifest<'a> {
    manifest: &'a Manifest,
    files: RefCell<BufReader<SpooledTempFile>>,
}

impl Serialize for StreamedManifest<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The manifest's fields in order, `files` last and streamed.
        #[derive(Serialize)]
        struct Fields<'a, F: Serialize> {
            manifest_version: u32,
            format: Format,
            territory: &'a TerritoryPath,
            as_of_ms: i64,
            as_of: &'a str,
            as_of_seq: u64,
            generated_at_ms: i64,
            generated_at: &'a str,
            generated_by: &'a str,
            masked: bool,
            counts: Counts,
            #[serde(skip_serializing_if = "Option::is_none")]
            photos: Option<PhotoCounts>,
            #[serde(skip_serializing_if = "<[MissingPhoto]>::is_empty")]
            missing_photos: &'a [MissingPhoto],
            files: F,
        }
        let m = self.manifest;
        Fields {
            manifest_version: m.manifest_version,
            format: m.format,
            territory: &m.territory,
            as_of_ms: m.as_of_ms,
            as_of: &m.as_of,
            as_of_seq: m.as_of_seq,
            generated_at_ms: m.generated_at_ms,
            generated_at: &m.generated_at,
            generated_by: &m.generated_by,
            masked: m.masked,
            counts: m.counts,
            photos: m.photos,
            missing_photos: &m.missing_photos,
            files: SpooledFiles(&self.files),
        }
        .serialize(serializer)
    }
}

/// The spooled JSON lines of [`ManifestFile`]s, serialized as one list.
struct SpooledFiles<'a>(&'a RefCell<BufReader<SpooledTempFile>>);

impl Serialize for SpooledFiles<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut spool = self.0.borrow_mut();
        let mut seq = serializer.serialize_seq(None)?;
        let mut line = String::new();
        loop {
            line.clear();
            if spool.read_line(&mut line).map_err(S::Error::custom)? == 0 {
                break;
            }
            let file: ManifestFile = serde_json::from_str(&line).map_err(S::Error::custom)?;
            seq.serialize_element(&file)?;
        }
        seq.end()
    }
}

/// A moment as a calendar date and wall-clock time in Beijing time (UTC+8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    /// Year, e.g. 2024.
    pub year: i64,
    /// Month, 1-12.
    pub month: u8,
    /// Day of the month, 1-31.
    pub day: u8,
    /// Hour, 0-23.
    pub hour: u8,
    /// Minute, 0-59.
    pub minute: u8,
    /// Second, 0-59.
    pub second: u8,
    /// Millisecond, 0-999.
    pub millisecond: u16,
}

impl LocalTime {
    /// The Beijing-time calendar moment of `ms` Unix milliseconds.
    pub fn from_unix_ms(ms: i64) -> Self {
        let local = ms.saturating_add(LOCAL_OFFSET_MS);
        let days = local.div_euclid(86_400_000);
        let in_day = local.rem_euclid(86_400_000);
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        // Every narrowing below is of a value already within its range.
        Self {
            year,
            month: month as u8,
            day: day as u8,
            hour: (in_day / 3_600_000) as u8,
            minute: (in_day / 60_000 % 60) as u8,
            second: (in_day / 1_000 % 60) as u8,
            millisecond: (in_day % 1_000) as u16,
        }
    }

    /// `2024-05-01 12:00:00`: how spreadsheets show a local time.
    pub fn text(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `2024-05-01T12:00:00.000+08:00`: ISO-8601 with the offset.
    pub fn iso8601(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+08:00",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millisecond
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_is_beijing_time_across_day_and_year_boundaries() {
        assert_eq!(LocalTime::from_unix_ms(0).iso8601(), "1970-01-01T08:00:00.000+08:00");
        assert_eq!(LocalTime::from_unix_ms(1_700_000_000_123).iso8601(), "2023-11-15T06:13:20.123+08:00");
        // 2023-12-31T16:00:00Z is midnight of New Year in Beijing.
        assert_eq!(LocalTime::from_unix_ms(1_704_038_400_000).text(), "2024-01-01 00:00:00");
        // Leap day, and a moment before 1970.
        assert_eq!(LocalTime::from_unix_ms(1_709_164_800_000).text(), "2024-02-29 08:00:00");
        assert_eq!(LocalTime::from_unix_ms(-1).iso8601(), "1970-01-01T07:59:59.999+08:00");
    }

    #[test]
    fn formats_parse_from_their_names_and_name_zip_files() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
            assert!(f.file_extension().ends_with(".zip"));
            assert_eq!(f.content_type(), "application/zip");
        }
        assert_eq!(" XLSX ".parse::<Format>(), Ok(Format::Xlsx));
        assert!("xls".parse::<Format>().is_err());
        let meta = SnapshotMeta {
            territory: TerritoryPath::parse("xg/xn").expect("path"),
            as_of_ms: 1_700_000_000_000,
            as_of_seq: 42,
            generated_at_ms: 0,
            generated_by: "admin".into(),
            masked: true,
            photos: false,
        };
        assert_eq!(Format::Csv.file_name(&meta), "gridsync-xg-xn-20231115-061320-seq42.csv.zip");
    }
}
