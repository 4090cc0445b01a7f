//! Photos in the sled store: blobs in the tree `photos` (`<sha256 hex>` →
//! a type byte and the bytes), unfinished uploads in the tree `photo_uploads`
//! (`<sha256 hex><offset, 8 bytes big-endian>` → the chunk that starts there),
//! and the index `pr/<sha256 hex><doc>` in the main tree, written in each
//! commit's batch. New trees and a new prefix only: stores made before photos open unchanged.

use super::*;

/// The tree of stored photos.
const PHOTOS: &str = "photos";
/// The tree of unfinished uploads, chunk by chunk.
const UPLOADS: &str = "photo_uploads";
/// The photo index's prefix in the main tree.
const INDEX: &[u8] = b"pr/";

/// How a photo's type is kept: one byte of our own, independent of any enum's order.
fn type_byte(mime: PhotoType) -> u8 {
    match mime {
        PhotoType::Jpeg => 1,
        PhotoType::Webp => 2,
    }
}

fn type_of(byte: u8) -> Result<PhotoType, StoreError> {
    match byte {
        1 => Ok(PhotoType::Jpeg),
        2 => Ok(PhotoType::Webp),
        other => Err(StoreError::Corrupt(format!("photo type byte {other}"))),
    }
}

/// One record's entry in the photo index: its grid and the (size, type) pairs it names the photo with.
#[derive(Serialize, Deserialize)]
struct IndexValue {
    grid: String,
    claims: Vec<(u64, u8)>,
}

fn index_prefix(hash: &PhotoHash) -> Vec<u8> {
    key(INDEX, &[hash.as_str().as_bytes()])
}

/// A key and its value, to insert.
type Entry = (Vec<u8>, Vec<u8>);

/// The index entries a commit of `doc` writes for `photos` (every photo of
/// the merged record: entries are only ever added, and the grid is the latest).
pub(super) fn index_entries(doc: DocId, grid: &TerritoryPath, photos: &[PhotoRef]) -> Result<Vec<Entry>, StoreError> {
    let mut by_hash: std::collections::BTreeMap<&str, Vec<(u64, u8)>> = Default::default();
    for p in photos {
        let claims = by_hash.entry(p.sha256.as_str()).or_default();
        let claim = (p.size, type_byte(p.mime));
        if !claims.contains(&claim) {
            claims.push(claim);
        }
    }
    by_hash
        .into_iter()
        .map(|(hash, claims)| {
            let k = key(INDEX, &[hash.as_bytes(), doc.as_bytes()]);
            Ok((k, enc(&IndexValue { grid: grid.as_str().to_string(), claims })?))
        })
        .collect()
}

fn chunk_key(hash: &PhotoHash, offset: u64) -> Vec<u8> {
    key(hash.as_str().as_bytes(), &[&offset.to_be_bytes()])
}

/// The chunks of an upload, in offset order, as (offset, bytes).
fn chunks(uploads: &sled::Tree, hash: &PhotoHash) -> Result<Vec<(u64, sled::IVec)>, StoreError> {
    let prefix = hash.as_str().as_bytes();
    uploads
        .scan_prefix(prefix)
        .map(|kv| {
            let (k, v) = kv.map_err(engine)?;
            let offset = k[prefix.len()..]
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("photo upload key".into()))?;
            Ok((offset, v))
        })
        .collect()
}

/// How many bytes the chunks hold from offset 0 without a gap.
fn contiguous(chunks: &[(u64, sled::IVec)]) -> u64 {
    let mut end = 0u64;
    for (offset, bytes) in chunks {
        if *offset != end {
            break;
        }
        end += bytes.len() as u64;
    }
    end
}

impl SledStore {
    fn tree(db: &sled::Db, name: &str) -> Result<sled::Tree, StoreError> {
        db.open_tree(name).map_err(engine)
    }

    fn uploads_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn photo_blob(&self, hash: &PhotoHash) -> Result<Option<(PhotoType, Vec<u8>)>, StoreError> {
        let db = self.db()?;
        match Self::tree(&db, PHOTOS)?.get(hash.as_str()).map_err(engine)? {
            None => Ok(None),
            Some(v) => {
                let (&t, bytes) = v.split_first().ok_or_else(|| StoreError::Corrupt("empty photo".into()))?;
                Ok(Some((type_of(t)?, bytes.to_vec())))
            }
        }
    }

    pub(super) fn photo_stored(&self, hash: &PhotoHash) -> Result<bool, StoreError> {
        let db = self.db()?;
        Self::tree(&db, PHOTOS)?.contains_key(hash.as_str()).map_err(engine)
    }

    pub(super) fn referrers(&self, hash: &PhotoHash) -> Result<Vec<PhotoReferrer>, StoreError> {
        let db = self.db()?;
        let prefix = index_prefix(hash);
        let mut out = Vec::new();
        for kv in db.scan_prefix(&prefix) {
            let (k, v) = kv.map_err(engine)?;
            let id: [u8; 16] = k[prefix.len()..].try_into().map_err(|_| StoreError::Corrupt("photo index".into()))?;
            let value: IndexValue = dec(&v)?;
            let grid =
                TerritoryPath::parse(&value.grid).map_err(|e| StoreError::Corrupt(format!("photo index grid: {e}")))?;
            for (size, t) in value.claims {
                out.push(PhotoReferrer { doc: DocId::from_bytes(id), grid: grid.clone(), size, mime: type_of(t)? });
            }
        }
        Ok(out)
    }

    pub(super) fn upload_held(&self, hash: &PhotoHash) -> Result<u64, StoreError> {
        let db = self.db()?;
        Ok(contiguous(&chunks(&Self::tree(&db, UPLOADS)?, hash)?))
    }

    pub(super) fn upload_append(
        &self,
        hash: &PhotoHash,
        offset: u64,
        bytes: &[u8],
    ) -> Result<UploadAppend, StoreError> {
        let appended = {
            let _u = self.uploads_lock();
            self.write_op(|db| {
                let uploads = Self::tree(db, UPLOADS)?;
                let held = chunks(&uploads, hash)?;
                let received = contiguous(&held);
                if offset != received {
                    return Ok(UploadAppend::WrongOffset { received });
                }
                if bytes.is_empty() {
                    return Ok(UploadAppend::Appended { received });
                }
                // Chunks past a gap (a crash lost the one before them) are stale: dropped with this append.
                let mut b = sled::Batch::default();
                for (stale, _) in held.iter().filter(|(o, _)| *o >= offset) {
                    b.remove(chunk_key(hash, *stale));
                }
                b.insert(chunk_key(hash, offset), bytes);
                uploads.apply_batch(b).map_err(unwritable)?;
                Ok(UploadAppend::Appended { received: received + bytes.len() as u64 })
            })?
        };
        if matches!(appended, UploadAppend::Appended { .. }) && !bytes.is_empty() {
            // Outside the upload lock: one flush serves appends made meanwhile too.
            self.write_op(|db| db.flush().map(|_| ()).map_err(unwritable))?;
        }
        Ok(appended)
    }

    pub(super) fn upload_assembled(&self, hash: &PhotoHash) -> Result<Vec<u8>, StoreError> {
        let db = self.db()?;
        let held = chunks(&Self::tree(&db, UPLOADS)?, hash)?;
        let end = contiguous(&held);
        let mut out = Vec::with_capacity(end as usize);
        for (offset, bytes) in held {
            if offset != out.len() as u64 {
                break;
            }
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    pub(super) fn upload_finish(&self, hash: &PhotoHash, mime: PhotoType, bytes: &[u8]) -> Result<(), StoreError> {
        use sled::Transactional;
        let _u = self.uploads_lock();
        self.write_op(|db| {
            let (photos, uploads) = (Self::tree(db, PHOTOS)?, Self::tree(db, UPLOADS)?);
            let stale: Vec<Vec<u8>> = chunks(&uploads, hash)?.into_iter().map(|(o, _)| chunk_key(hash, o)).collect();
            let mut value = Vec::with_capacity(bytes.len() + 1);
            value.push(type_byte(mime));
            value.extend_from_slice(bytes);
            // The blob and the end of its upload in one transaction: never a photo lost between the two.
            (&photos, &uploads)
                .transaction(|(p, u)| {
                    p.insert(hash.as_str().as_bytes(), value.as_slice())?;
                    for k in &stale {
                        u.remove(k.as_slice())?;
                    }
                    Ok(())
                })
                .map_err(|e: sled::transaction::TransactionError<()>| match e {
                    sled::transaction::TransactionError::Storage(e) => unwritable(e),
                    sled::transaction::TransactionError::Abort(()) => StoreError::Engine("photo write aborted".into()),
                })?;
            db.flush().map_err(unwritable)?;
            Ok(())
        })
    }

    pub(super) fn upload_discard(&self, hash: &PhotoHash) -> Result<(), StoreError> {
        let _u = self.uploads_lock();
        self.write_op(|db| {
            let uploads = Self::tree(db, UPLOADS)?;
            let mut b = sled::Batch::default();
            for (offset, _) in chunks(&uploads, hash)? {
                b.remove(chunk_key(hash, offset));
            }
            uploads.apply_batch(b).map_err(unwritable)?;
            db.flush().map(|_| ()).map_err(unwritable)
        })
    }
}
