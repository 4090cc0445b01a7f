//! Where a replica keeps its state between runs: a key-value store written in
//! ordered batches. Memory and files here; IndexedDB in the browser.
//!
//! Keys are `identity`, `cursor`, `status`, `doc/<id>`, `outbox/<id>` and
//! `rejected/<id>`. A batch's operations are applied in order, each atomically,
//! and the replica orders them so that a crash between two never loses a
//! change it has reported as saved.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// One write to storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The bytes.
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: String,
    },
}

/// A storage failure: the operation may not have been saved.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The file system refused.
    #[error("storage I/O failed at {path}: {source}")]
    Io {
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The host's store (e.g. IndexedDB) refused.
    #[error("storage failed: {0}")]
    Host(String),
}

/// A durable key-value store for one replica.
pub trait Storage {
    /// Every stored key with its value.
    fn load_all(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError>;
    /// Applies `ops` in order; returns only once they are durable.
    fn commit(&mut self, ops: Vec<StoreOp>) -> Result<(), StorageError>;
}

/// Storage in memory: for tests and simulated phones. Clones share nothing.
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    entries: BTreeMap<String, Vec<u8>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Total bytes held, keys and values.
    pub fn size_bytes(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

impl Storage for MemoryStorage {
    fn load_all(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        Ok(self.entries.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    fn commit(&mut self, ops: Vec<StoreOp>) -> Result<(), StorageError> {
        for op in ops {
            match op {
                StoreOp::Put { key, value } => {
                    self.entries.insert(key, value);
                }
                StoreOp::Delete { key } => {
                    self.entries.remove(&key);
                }
            }
        }
        Ok(())
    }
}

/// Storage in a directory, one file per key, each replaced atomically
/// (write to a temporary file, fsync, rename).
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
}

impl FileStorage {
    /// Opens (creating if needed) a store in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|source| io_err(&dir, source))?;
        Ok(Self { dir })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.bin", key.replace('/', "~")))
    }
}

fn io_err(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io { path: path.display().to_string(), source }
}

impl Storage for FileStorage {
    fn load_all(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| io_err(&self.dir, e))? {
            let entry = entry.map_err(|e| io_err(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(key) = name.strip_suffix(".bin") {
                let value = fs::read(entry.path()).map_err(|e| io_err(&entry.path(), e))?;
                out.push((key.replace('~', "/"), value));
            }
        }
        out.sort();
        Ok(out)
    }

    fn commit(&mut self, ops: Vec<StoreOp>) -> Result<(), StorageError> {
        for op in ops {
            match op {
                StoreOp::Put { key, value } => {
                    let path = self.path(&key);
                    let tmp = path.with_extension("tmp");
                    let mut f = fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
                    f.write_all(&value).map_err(|e| io_err(&tmp, e))?;
                    f.sync_all().map_err(|e| io_err(&tmp, e))?;
                    fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
                }
                StoreOp::Delete { key } => {
                    let path = self.path(&key);
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err(&path, e)),
                    }
                }
            }
        }
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}
