//! Full backups of the store, and restoring one into an empty data directory:
//! the file format, `gridsync-server backup` (on a stopped server, or through
//! a running one's admin socket) and `gridsync-server restore`.
//!
//! A backup holds every tree of the store, entry by entry (tree, key, value),
//! so a tree added later is never forgotten: records with their feed, heads,
//! summaries and indexes, people with their password hashes, devices and
//! their last-seen times, territories, the audit log, counters, household
//! keys, import runs (with an import's not yet downloaded passwords file),
//! photos and the chunks of unfinished uploads. The engine makes it consistent
//! as of one moment while the server serves ([`Store::backup`]).
//!
//! # Format (version 1)
//!
//! ```text
//! file  = "GRIDSYNC-BACKUP\n" (16 bytes) + format version (u16 LE) + gzip(body)
//! body  = 'H' len(u32 LE) JSON header            {format, created_at, server_version, engine}
//!         items…
//!         'E' len JSON end                        {facts: feed head, audit head, epoch, trees…, items}
//!         SHA-256 of every body byte before it    (32 bytes)
//! item  = 'T' tree(u16) len name                  names tree number `tree` (before its first entry)
//!       | 'P' tree(u16) len key len value         the key holds the value
//!       | 'D' tree(u16) len key                   the key is absent
//! ```
//!
//! Items apply in order, a later one for the same key winning: the copy made
//! while writers went on comes first, the keys written meanwhile after it.
//! A file without its end, with a wrong checksum, or with bytes after the end
//! is refused before anything is kept.

use crate::store::{SledStore, Store, StoreEpoch, StoreError};
use flate2::Compression;
use flate2::bufread::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 16] = b"GRIDSYNC-BACKUP\n";
/// The format this server writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Items between two progress reports.
const PROGRESS_EVERY: u64 = 1_024;

/// Where an engine puts a backup's items, in the order they must be applied.
pub trait BackupSink {
    /// One entry of tree `tree`: `key` holds `value`, or is absent (None).
    fn item(&mut self, tree: &[u8], key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError>;
}

/// What an engine reports of a backup it made.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupFacts {
    /// The feed's head sequence at the backup's moment.
    pub head_seq: u64,
    /// The audit log's last position at that moment.
    pub audit_seq: u64,
    /// The store's epoch then (None: the original one, never restored).
    pub epoch: Option<[u8; 16]>,
    /// How many restores the store had been through.
    pub epochs: u64,
    /// Each tree's name and the entries of its first copy.
    pub trees: Vec<(String, u64)>,
    /// Keys copied again because they were written during the copy.
    pub recopied: u64,
    /// How long writers were held at the moment, in ms.
    pub gate_held_ms: f64,
    /// How long the whole copy took, in ms.
    pub elapsed_ms: f64,
}

/// A finished backup, remembered by the store (for monitoring).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupMark {
    /// When it finished, Unix ms.
    pub at: i64,
    /// The feed position it holds.
    pub head_seq: u64,
}

/// A backup file's header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupHeader {
    /// The format version (also before the compressed body).
    pub format: u16,
    /// When the backup started, Unix ms.
    pub created_at: i64,
    /// The gridsync-server version that wrote it.
    pub server_version: String,
    /// The store engine and its layout: "sled-0.34, every tree by name".
    pub engine: String,
}

/// A backup file's end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupEnd {
    /// What the engine reported.
    pub facts: BackupFacts,
    /// Items in the file (`P` and `D`).
    pub items: u64,
}

/// Why a backup or a restore failed.
#[derive(Debug, Error)]
pub enum BackupError {
    /// Reading or writing a file failed.
    #[error("{0}")]
    Io(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file does not start like a backup.
    #[error("{0} is not a gridsync backup (it does not start with a backup's first bytes); nothing was restored")]
    NotABackup(String),
    /// Written by a newer server.
    #[error(
        "the backup is in format {0}; this gridsync-server reads format {FORMAT_VERSION}: restore it with a newer one"
    )]
    NewerFormat(u16),
    /// The file ends before the backup's end.
    #[error(
        "the backup is incomplete: it ends after {0} bytes of content, before its end (the backup did not finish, or the file was cut short); nothing was restored"
    )]
    Truncated(u64),
    /// The bytes are damaged.
    #[error("the backup is damaged ({0}); nothing was restored")]
    Corrupt(String),
    /// The target data directory holds something.
    #[error(
        "{0} is not empty: restore only into an empty or absent data directory, or an empty database (nothing was changed)"
    )]
    NotEmpty(String),
    /// The backup was made from another kind of store (its engine, and where it restores).
    #[error("the backup was made by a store of another kind ({0}): restore it into {1}; nothing was restored")]
    OtherEngine(String, &'static str),
    /// A server runs on the target data directory.
    #[error(
        "a gridsync-server is running on {0}: stop it, and restore into an empty or absent data directory (nothing was changed)"
    )]
    Running(String),
}

fn io_err(what: impl std::fmt::Display, e: std::io::Error) -> BackupError {
    BackupError::Io(format!("{what}: {e}"))
}

fn sink_err(e: std::io::Error) -> StoreError {
    StoreError::Engine(format!("writing the backup: {e}"))
}

/// Writes the backup format into `W`.
pub struct BackupWriter<'p, W: Write> {
    gz: GzEncoder<W>,
    hash: Sha256,
    trees: Vec<Vec<u8>>,
    items: u64,
    progress: &'p mut dyn FnMut(u64),
}

impl<'p, W: Write> BackupWriter<'p, W> {
    /// Starts a backup file with `header`; `progress` hears the items written so far.
    pub fn new(mut out: W, header: &BackupHeader, progress: &'p mut dyn FnMut(u64)) -> std::io::Result<Self> {
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        let mut w = Self {
            gz: GzEncoder::new(out, Compression::fast()),
            hash: Sha256::new(),
            trees: Vec::new(),
            items: 0,
            progress,
        };
        let json = serde_json::to_vec(header).map_err(std::io::Error::other)?;
        w.put(b"H")?;
        w.put_bytes(&json)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.gz.write_all(bytes)
    }

    fn put_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("an entry over 4 GiB"))?;
        self.put(&len.to_le_bytes())?;
        self.put(bytes)
    }

    fn tree_number(&mut self, name: &[u8]) -> std::io::Result<u16> {
        if let Some(i) = self.trees.iter().position(|t| t.as_slice() == name) {
            return Ok(i as u16);
        }
        let i = u16::try_from(self.trees.len()).map_err(|_| std::io::Error::other("more than 65,535 trees"))?;
        self.trees.push(name.to_vec());
        self.put(b"T")?;
        self.put(&i.to_le_bytes())?;
        self.put_bytes(name)?;
        Ok(i)
    }

    /// Ends the file: the end record, the checksum, the gzip trailer.
    pub fn finish(mut self, facts: &BackupFacts) -> std::io::Result<(W, BackupEnd)> {
        let end = BackupEnd { facts: facts.clone(), items: self.items };
        let json = serde_json::to_vec(&end).map_err(std::io::Error::other)?;
        self.put(b"E")?;
        self.put_bytes(&json)?;
        let digest = self.hash.clone().finalize();
        self.gz.write_all(&digest)?;
        (self.progress)(self.items);
        Ok((self.gz.finish()?, end))
    }
}

impl<W: Write> BackupSink for BackupWriter<'_, W> {
    fn item(&mut self, tree: &[u8], key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
        let t = self.tree_number(tree).map_err(sink_err)?;
        (|| {
            self.put(if value.is_some() { b"P" } else { b"D" })?;
            self.put(&t.to_le_bytes())?;
            self.put_bytes(key)?;
            if let Some(v) = value {
                self.put_bytes(v)?;
            }
            Ok(())
        })()
        .map_err(sink_err)?;
        self.items += 1;
        if self.items.is_multiple_of(PROGRESS_EVERY) {
            (self.progress)(self.items);
        }
        Ok(())
    }
}

/// One entry read back: tree name, key, value (None: absent).
pub type BackupItem = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

/// Reads a backup file, checking it as it goes: an iterator of its items that
/// ends (None) only after the end record and the checksum proved the file
/// whole; on a problem it yields one error and keeps it in [`Self::failure`].
pub struct BackupReader<R: Read> {
    gz: GzDecoder<BufReader<R>>,
    hash: Sha256,
    consumed: u64,
    trees: Vec<Vec<u8>>,
    /// The file's header.
    pub header: BackupHeader,
    /// The file's end, once read and checked.
    pub end: Option<BackupEnd>,
    failure: Option<BackupError>,
    items: u64,
}

impl<R: Read> BackupReader<R> {
    /// Reads the magic bytes, the format version and the header.
    pub fn new(mut input: R, name: &str) -> Result<Self, BackupError> {
        let mut magic = [0u8; 18];
        let mut got = 0;
        while got < magic.len() {
            match input.read(&mut magic[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(name, e)),
            }
        }
        if got < 16 || &magic[..16] != MAGIC {
            return Err(BackupError::NotABackup(name.into()));
        }
        if got < 18 {
            return Err(BackupError::Truncated(0));
        }
        let version = u16::from_le_bytes([magic[16], magic[17]]);
        if version > FORMAT_VERSION || version == 0 {
            return Err(BackupError::NewerFormat(version));
        }
        let mut r = Self {
            gz: GzDecoder::new(BufReader::new(input)),
            hash: Sha256::new(),
            consumed: 0,
            trees: Vec::new(),
            header: BackupHeader { format: 0, created_at: 0, server_version: String::new(), engine: String::new() },
            end: None,
            failure: None,
            items: 0,
        };
        if r.take_n(1)? != b"H" {
            return Err(BackupError::Corrupt("no header".into()));
        }
        let json = r.take_bytes()?;
        r.header = serde_json::from_slice(&json).map_err(|e| BackupError::Corrupt(format!("header: {e}")))?;
        Ok(r)
    }

    /// The error that ended the items, if one did.
    pub fn failure(&mut self) -> Option<BackupError> {
        self.failure.take()
    }

    /// Items read so far.
    pub fn items(&self) -> u64 {
        self.items
    }

    fn read_into(&mut self, buf: &mut [u8]) -> Result<(), BackupError> {
        self.gz.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => BackupError::Truncated(self.consumed),
            _ => BackupError::Corrupt(e.to_string()),
        })?;
        self.consumed += buf.len() as u64;
        Ok(())
    }

    fn take_n(&mut self, n: usize) -> Result<Vec<u8>, BackupError> {
        let mut buf = vec![0u8; n];
        self.read_into(&mut buf)?;
        self.hash.update(&buf);
        Ok(buf)
    }

    fn take_u16(&mut self) -> Result<u16, BackupError> {
        let b = self.take_n(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn take_bytes(&mut self) -> Result<Vec<u8>, BackupError> {
        let b = self.take_n(4)?;
        let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        // Read in steps, so a damaged length cannot ask for gigabytes up front.
        let mut out = Vec::with_capacity(len.min(1 << 20));
        let mut chunk = vec![0u8; len.min(1 << 16)];
        while out.len() < len {
            let n = (len - out.len()).min(chunk.len());
            self.read_into(&mut chunk[..n])?;
            self.hash.update(&chunk[..n]);
            out.extend_from_slice(&chunk[..n]);
        }
        Ok(out)
    }

    fn tree(&self, n: u16) -> Result<Vec<u8>, BackupError> {
        self.trees
            .get(n as usize)
            .cloned()
            .ok_or_else(|| BackupError::Corrupt(format!("an entry of undeclared tree {n}")))
    }

    fn next_item(&mut self) -> Result<Option<BackupItem>, BackupError> {
        loop {
            let tag = self.take_n(1)?;
            match tag[0] {
                b'T' => {
                    let n = self.take_u16()?;
                    let name = self.take_bytes()?;
                    if n as usize != self.trees.len() {
                        return Err(BackupError::Corrupt(format!("tree {n} declared out of order")));
                    }
                    self.trees.push(name);
                }
                b'P' => {
                    let n = self.take_u16()?;
                    let tree = self.tree(n)?;
                    let (k, v) = (self.take_bytes()?, self.take_bytes()?);
                    self.items += 1;
                    return Ok(Some((tree, k, Some(v))));
                }
                b'D' => {
                    let n = self.take_u16()?;
                    let tree = self.tree(n)?;
                    let k = self.take_bytes()?;
                    self.items += 1;
                    return Ok(Some((tree, k, None)));
                }
                b'E' => {
                    let json = self.take_bytes()?;
                    let expected = self.hash.clone().finalize();
                    let mut digest = [0u8; 32];
                    self.read_into(&mut digest)?;
                    if digest.as_slice() != expected.as_slice() {
                        return Err(BackupError::Corrupt("checksum mismatch".into()));
                    }
                    let end: BackupEnd =
                        serde_json::from_slice(&json).map_err(|e| BackupError::Corrupt(format!("end: {e}")))?;
                    if end.items != self.items {
                        return Err(BackupError::Corrupt(format!("{} items, the end says {}", self.items, end.items)));
                    }
                    // Nothing may follow; reading on also checks gzip's own trailer (CRC, length).
                    let mut more = [0u8; 1];
                    match self.gz.read(&mut more) {
                        Ok(0) => {}
                        Ok(_) => return Err(BackupError::Corrupt("bytes after the backup's end".into())),
                        Err(e) => return Err(BackupError::Corrupt(e.to_string())),
                    }
                    // Nor after the compressed stream.
                    match self.gz.get_mut().fill_buf() {
                        Ok([]) => {}
                        Ok(_) => return Err(BackupError::Corrupt("bytes after the backup's end".into())),
                        Err(e) => return Err(BackupError::Corrupt(e.to_string())),
                    }
                    self.end = Some(end);
                    return Ok(None);
                }
                other => return Err(BackupError::Corrupt(format!("unknown entry tag {other:#04x}"))),
            }
        }
    }
}

impl<R: Read> Iterator for BackupReader<R> {
    type Item = Result<BackupItem, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.end.is_some() || self.failure.is_some() {
            return None;
        }
        match self.next_item() {
            Ok(item) => item.map(Ok),
            Err(e) => {
                let shown = StoreError::Corrupt(e.to_string());
                self.failure = Some(e);
                Some(Err(shown))
            }
        }
    }
}

/// Writes a backup of `store` to `out`, audited as made by `actor` (the entry
/// is in the backup itself); `label` names where it goes. Remembers it in the store.
pub fn write_backup(
    store: &dyn Store,
    out: &mut dyn Write,
    label: &str,
    actor: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<BackupEnd, BackupError> {
    write_backup_of(store, SLED_ENGINE, out, label, actor, progress)
}

/// What a sled backup's header names as its engine.
const SLED_ENGINE: &str = "sled-0.34; every tree, entry by entry";

/// As [`write_backup`], for a store whose backups name `engine` in their header.
pub(crate) fn write_backup_of(
    store: &dyn Store,
    engine: &str,
    out: &mut dyn Write,
    label: &str,
    actor: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<BackupEnd, BackupError> {
    let created_at = crate::http::now_ms();
    store.append_audit(actor, "store.backup", &format!("full backup to {label}"), created_at)?;
    let header = BackupHeader {
        format: FORMAT_VERSION,
        created_at,
        server_version: env!("CARGO_PKG_VERSION").into(),
        engine: engine.into(),
    };
    let mut writer = BackupWriter::new(out, &header, progress).map_err(|e| io_err("writing the backup", e))?;
    let facts = store.backup(&mut writer)?;
    let (out, end) = writer.finish(&facts).map_err(|e| io_err("writing the backup", e))?;
    out.flush().map_err(|e| io_err("writing the backup", e))?;
    let mark = BackupMark { at: crate::http::now_ms(), head_seq: facts.head_seq };
    store.note_backup(&mark)?;
    crate::metrics::backup_finished(mark.at);
    Ok(end)
}

/// Reads a whole backup file and checks it (end, checksum); its header and end.
pub fn verify(path: &Path) -> Result<(BackupHeader, BackupEnd), BackupError> {
    let f = std::fs::File::open(path).map_err(|e| io_err(path.display(), e))?;
    let mut r = BackupReader::new(f, &path.display().to_string())?;
    for item in r.by_ref() {
        if item.is_err() {
            break;
        }
    }
    if let Some(e) = r.failure() {
        return Err(e);
    }
    let end = r.end.clone().ok_or(BackupError::Truncated(r.consumed))?;
    Ok((r.header, end))
}

/// What a restore did.
#[derive(Clone, Debug)]
pub struct RestoreOutcome {
    /// The backup's header.
    pub header: BackupHeader,
    /// The backup's end.
    pub end: BackupEnd,
    /// The restored store's new epoch.
    pub epoch: StoreEpoch,
}

/// Why a data directory cannot take a restore (None: it can).
fn refuse_target(data: &Path) -> Result<(), BackupError> {
    let shown = data.display().to_string();
    match std::fs::read_dir(data) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(&shown, e)),
        Ok(mut entries) => {
            if entries.next().is_none() {
                return Ok(());
            }
            #[cfg(unix)]
            if std::os::unix::net::UnixStream::connect(crate::admin_socket_path(data)).is_ok() {
                return Err(BackupError::Running(shown));
            }
            Err(BackupError::NotEmpty(shown))
        }
    }
}

/// Restores the backup `file` into `data`, which must be absent or empty
/// (a running server's is neither). The store is built beside it and moved
/// into place only once the whole file proved sound, so a refused file
/// changes nothing. The restore starts a new store epoch and is audited
/// (in the restored log) as done by `who`.
pub fn restore(
    file: &Path,
    data: &Path,
    who: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<RestoreOutcome, BackupError> {
    refuse_target(data)?;
    let f = std::fs::File::open(file).map_err(|e| io_err(file.display(), e))?;
    let mut reader = BackupReader::new(f, &file.display().to_string())?;
    if reader.header.engine == crate::store::postgres::backup::ENGINE {
        return Err(BackupError::OtherEngine(
            reader.header.engine.clone(),
            "an empty PostgreSQL database (restore with --store)",
        ));
    }
    let name = data.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
    let building = data.with_file_name(format!(".{name}.restoring"));
    if building.exists() {
        // What an interrupted restore left: never a store anyone served.
        std::fs::remove_dir_all(&building).map_err(|e| io_err(building.display(), e))?;
    }
    std::fs::create_dir_all(&building).map_err(|e| io_err(building.display(), e))?;
    let result = (|| {
        let at = crate::http::now_ms();
        let mut counted = CountingItems { inner: &mut reader, n: 0, progress };
        let restored = SledStore::restore_into(&building, &mut counted, at);
        if let Some(e) = reader.failure() {
            return Err(e);
        }
        let (store, epoch) = restored?;
        let end = reader.end.clone().ok_or(BackupError::Truncated(reader.consumed))?;
        let detail = format!(
            "restored from {} (made {} by gridsync-server {}; feed position {}, audit position {}); new store epoch {}",
            file.display(),
            crate::export::LocalTime::from_unix_ms(reader.header.created_at).iso8601(),
            reader.header.server_version,
            end.facts.head_seq,
            end.facts.audit_seq,
            hex::encode(epoch.id)
        );
        store.append_audit(who, "store.restore", &detail, at)?;
        store.flush()?;
        drop(store);
        Ok((end, epoch))
    })();
    let (end, epoch) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&building);
            return Err(e);
        }
    };
    if data.exists() {
        std::fs::remove_dir(data).map_err(|e| io_err(data.display(), e))?;
    }
    std::fs::rename(&building, data).map_err(|e| io_err(data.display(), e))?;
    Ok(RestoreOutcome { header: reader.header, end, epoch })
}

/// Passes items on, reporting how many went by.
struct CountingItems<'a, 'p, R: Read> {
    inner: &'a mut BackupReader<R>,
    n: u64,
    progress: &'p mut dyn FnMut(u64),
}

impl<R: Read> Iterator for CountingItems<'_, '_, R> {
    type Item = Result<BackupItem, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next();
        self.n += 1;
        if self.n.is_multiple_of(PROGRESS_EVERY) {
            (self.progress)(self.n);
        }
        item
    }
}

/// A backup asked of a running server's admin socket.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackupRequest {
    /// Where the CLI writes it (for the audit log).
    pub label: String,
}

/// Streams chunks to the admin socket's writer task.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = std::mem::take(&mut self.buf);
            self.tx.blocking_send(chunk).map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        }
        Ok(())
    }
}

/// Serves a backup on the admin socket: one reply line, then the file's bytes
/// until EOF (a backup that fails part way ends early: the CLI finds no end).
pub async fn serve_backup(store: Arc<dyn Store>, req: BackupRequest, mut write: tokio::net::unix::OwnedWriteHalf) {
    use tokio::io::AsyncWriteExt;
    let mut line =
        serde_json::to_vec(&crate::AdminReply { ok: true, output: "backup starting".into() }).unwrap_or_default();
    line.push(b'\n');
    if write.write_all(&line).await.is_err() {
        return;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let task = tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter { tx, buf: Vec::new() };
        write_backup(store.as_ref(), &mut out, &req.label, "cli", &mut |_| {})
    });
    while let Some(chunk) = rx.recv().await {
        if write.write_all(&chunk).await.is_err() {
            break;
        }
    }
    drop(rx);
    match task.await {
        Ok(Ok(end)) => tracing::info!(
            head_seq = end.facts.head_seq,
            items = end.items,
            recopied = end.facts.recopied,
            gate_held_ms = end.facts.gate_held_ms,
            "backup written to the admin socket"
        ),
        Ok(Err(e)) => tracing::error!(error = %e, "backup failed"),
        Err(e) => tracing::error!(error = %e, "backup task failed"),
    }
}

/// Asks a running server for a backup over its admin socket, copying the
/// bytes into `out` and reporting the bytes received so far.
pub async fn fetch_backup(
    socket: &Path,
    req: &BackupRequest,
    out: &mut (dyn Write + Send),
    progress: &mut (dyn FnMut(u64) + Send),
) -> std::io::Result<Result<(), String>> {
    crate::fetch_over_socket(socket, &crate::SocketRequest::Backup(req.clone()), out, progress).await
}

/// Creates a file only its owner may read (a backup holds password hashes).
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn spinner(template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// `gridsync-server backup --out FILE`: from the data directory, or through
/// the running server's admin socket; written beside `out` and moved there
/// once read back whole. Returns the text to print.
pub async fn backup_command(data: &Path, out: &Path) -> Result<String, String> {
    if !data.join("db").exists() {
        return Err(format!("no gridsync store in {} (use --data)", data.display()));
    }
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let label = out.display().to_string();
    let result = async {
        let mut file =
            std::io::BufWriter::new(create_private(&partial).map_err(|e| format!("{}: {e}", partial.display()))?);
        match SledStore::open(data) {
            Ok(store) => {
                let bar = spinner("{spinner} {pos} entries copied ({elapsed})");
                let b = bar.clone();
                let label = label.clone();
                let task = tokio::task::spawn_blocking(move || {
                    write_backup(&store, &mut file, &label, "cli", &mut |n| b.set_position(n))
                        .map_err(|e| e.to_string())
                });
                task.await.map_err(|e| e.to_string())??;
                bar.finish_and_clear();
            }
            Err(StoreError::Locked(_)) => {
                let bar = spinner("{spinner} {bytes} received from the running server ({elapsed})");
                let b = bar.clone();
                let mut progress = move |n: u64| b.set_position(n);
                let req = BackupRequest { label: label.clone() };
                fetch_backup(&crate::admin_socket_path(data), &req, &mut file, &mut progress).await.map_err(
                    |e| format!("the store is in use but the running server's admin socket did not answer: {e}"),
                )??;
                file.flush().map_err(|e| e.to_string())?;
                bar.finish_and_clear();
            }
            Err(e) => return Err(e.to_string()),
        }
        let (_, end) = verify(&partial).map_err(|e| match e {
            BackupError::Truncated(_) => "the backup broke off before its end; see the server's log".to_string(),
            e => e.to_string(),
        })?;
        std::fs::rename(&partial, out).map_err(|e| format!("{}: {e}", out.display()))?;
        Ok(end)
    }
    .await;
    let end = match result {
        Ok(end) => end,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    let f = &end.facts;
    Ok(format!(
        "backup written to {} ({} bytes): {} entries in {} trees, feed position {}, audit position {}; consistent as of one moment ({} keys written during the copy were copied again; writers waited {:.1} ms)\n",
        out.display(),
        size,
        end.items,
        f.trees.len(),
        f.head_seq,
        f.audit_seq,
        f.recopied,
        f.gate_held_ms
    ))
}

/// `gridsync-server restore FILE`: into the (absent or empty) data directory.
pub fn restore_command(data: &Path, file: &Path) -> Result<String, String> {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let who = format!("cli ({user})");
    let bar = spinner("{spinner} {pos} entries restored ({elapsed})");
    let b = bar.clone();
    let outcome = restore(file, data, &who, &mut |n| b.set_position(n)).map_err(|e| e.to_string());
    bar.finish_and_clear();
    let o = outcome?;
    Ok(format!(
        "restored {} entries from {} into {}: feed position {}, new store epoch {}.\n\
         Phones continue syncing: each is told the store was restored, sends its own changes again, and goes on from feed position {}.\n",
        o.end.items,
        file.display(),
        data.display(),
        o.end.facts.head_seq,
        hex::encode(o.epoch.id),
        o.epoch.base_seq
    ))
}

/// `gridsync-server --store URL backup --out FILE`: the PostgreSQL database
/// as of one moment (a read-only REPEATABLE READ transaction; servers go on
/// writing), in the same file format as a sled store's backup; written beside
/// `out` and moved there once read back whole. Returns the text to print.
pub async fn backup_command_postgres(url: String, out: &Path) -> Result<String, String> {
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let label = out.display().to_string();
    let bar = spinner("{spinner} {pos} rows copied ({elapsed})");
    let b = bar.clone();
    let target = partial.clone();
    let task = tokio::task::spawn_blocking(move || {
        let store = crate::store::PgStore::open(&url).map_err(|e| e.to_string())?;
        let mut file =
            std::io::BufWriter::new(create_private(&target).map_err(|e| format!("{}: {e}", target.display()))?);
        let engine = crate::store::postgres::backup::ENGINE;
        write_backup_of(&store, engine, &mut file, &label, "cli", &mut |n| b.set_position(n)).map_err(|e| e.to_string())
    });
    let written = task.await.map_err(|e| e.to_string()).and_then(|r| r);
    bar.finish_and_clear();
    let end = match written.and_then(|_| verify(&partial).map_err(|e| e.to_string())) {
        Ok((_, end)) => end,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, out).map_err(|e| format!("{}: {e}", out.display()))?;
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    let f = &end.facts;
    Ok(format!(
        "backup written to {} ({} bytes): {} rows of {} tables, feed position {}, audit position {}; consistent as of one moment (one read-only transaction, {:.0} ms)\n",
        out.display(),
        size,
        end.items,
        f.trees.len(),
        f.head_seq,
        f.audit_seq,
        f.elapsed_ms
    ))
}

/// `gridsync-server --store URL restore FILE`: a PostgreSQL backup into an
/// empty database, in one transaction (a refused or damaged file keeps nothing).
pub async fn restore_command_postgres(url: String, file: &Path) -> Result<String, String> {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let who = format!("cli ({user})");
    let bar = spinner("{spinner} {pos} rows restored ({elapsed})");
    let b = bar.clone();
    let path = file.to_path_buf();
    let task = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut reader = BackupReader::new(f, &path.display().to_string()).map_err(|e| e.to_string())?;
        let store = crate::store::PgStore::open(&url).map_err(|e| e.to_string())?;
        let detail = format!(
            "restored from {} (made {} by gridsync-server {})",
            path.display(),
            crate::export::LocalTime::from_unix_ms(reader.header.created_at).iso8601(),
            reader.header.server_version
        );
        let epoch = store
            .restore_backup(&mut reader, &who, &detail, crate::http::now_ms(), &mut |n| b.set_position(n))
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((reader.items(), epoch))
    });
    let done = task.await.map_err(|e| e.to_string()).and_then(|r| r);
    bar.finish_and_clear();
    let (items, epoch) = done?;
    Ok(format!(
        "restored {items} rows from {} into the PostgreSQL database: feed position {}, new store epoch {}.\n\
         Phones continue syncing: each is told the store was restored, sends its own changes again, and goes on from feed position {}.\n",
        file.display(),
        epoch.base_seq,
        hex::encode(epoch.id),
        epoch.base_seq
    ))
}
