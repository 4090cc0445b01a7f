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

#[cfg(test)]
mod tests {
    use super::*;
    use gridsync_shared::photos::PhotoRef;
    use gridsync_shared::{DeviceId, PersonId, RecordKind};

    fn hash(n: u8) -> PhotoHash {
        PhotoHash::from_digest(&[n; 32])
    }

    fn photo_ref(h: &PhotoHash, size: u64, mime: PhotoType) -> PhotoRef {
        PhotoRef {
            id: uuid::Uuid::new_v4(),
            sha256: h.clone(),
            size,
            mime,
            taken_at: 1,
            location: None,
            by: PersonId(uuid::Uuid::nil()),
            at: 1,
            follow_up: None,
        }
    }

    fn commit(store: &SledStore, doc: DocId, grid: &str, photos: Vec<PhotoRef>) {
        let write = DocWrite {
            doc,
            grid: grid.parse().expect("grid"),
            summary: RecordSummary { kind: RecordKind::VisitLog, household: None, at: 1 },
            bytes: Vec::new(),
            heads: Vec::new(),
            device: DeviceId(uuid::Uuid::nil()),
            changes: Vec::new(),
            photos,
            row: None,
        };
        store.commit_doc(write, 1).expect("commit");
    }

    #[test]
    fn an_upload_appends_only_where_the_held_bytes_end_and_survives_reopening() {
        let dir = tempfile::tempdir().expect("tmp");
        let h = hash(1);
        {
            let store = SledStore::open(dir.path()).expect("open");
            assert_eq!(store.upload_received(&h).expect("received"), 0);
            assert_eq!(
                store.append_upload(&h, 0, &[1; 100]).expect("append"),
                UploadAppend::Appended { received: 100 }
            );
            assert_eq!(
                store.append_upload(&h, 50, &[9; 10]).expect("append"),
                UploadAppend::WrongOffset { received: 100 }
            );
            assert_eq!(
                store.append_upload(&h, 100, &[2; 150]).expect("append"),
                UploadAppend::Appended { received: 250 }
            );
        }
        let store = SledStore::open(dir.path()).expect("reopen");
        assert_eq!(store.upload_received(&h).expect("received"), 250);
        let held = store.upload_bytes(&h).expect("bytes");
        assert_eq!((held.len(), held[99], held[100]), (250, 1, 2));
    }

    #[test]
    fn chunks_beyond_a_gap_do_not_count_and_are_replaced_by_the_next_append() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        let h = hash(2);
        store.append_upload(&h, 0, &[1; 100]).expect("append");
        // A chunk at 200 whose predecessor was lost (as a crash before a flush could leave it).
        let uploads = SledStore::tree(&store.db().expect("db"), UPLOADS).expect("tree");
        uploads.insert(chunk_key(&h, 200), vec![7u8; 50]).expect("insert");
        assert_eq!(store.upload_received(&h).expect("received"), 100);
        assert_eq!(store.append_upload(&h, 100, &[3; 100]).expect("append"), UploadAppend::Appended { received: 200 });
        assert_eq!(store.upload_received(&h).expect("received"), 200, "the stale chunk at 200 was dropped");
        assert_eq!(store.upload_bytes(&h).expect("bytes"), [[1u8; 100], [3u8; 100]].concat());
    }

    #[test]
    fn finishing_stores_the_photo_and_drops_its_chunks_and_discarding_drops_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        let (a, b) = (hash(3), hash(4));
        store.append_upload(&a, 0, &[0xFF, 0xD8, 0xFF, 1]).expect("append");
        store.finish_upload(&a, PhotoType::Jpeg, &[0xFF, 0xD8, 0xFF, 1]).expect("finish");
        assert!(store.has_photo(&a).expect("has"));
        assert_eq!(store.photo(&a).expect("photo"), Some((PhotoType::Jpeg, vec![0xFF, 0xD8, 0xFF, 1])));
        assert_eq!(store.upload_received(&a).expect("received"), 0);
        store.append_upload(&b, 0, &[5; 10]).expect("append");
        store.discard_upload(&b).expect("discard");
        assert_eq!(store.upload_received(&b).expect("received"), 0);
        assert!(!store.has_photo(&b).expect("has"));
        assert_eq!(store.photo(&b).expect("photo"), None);
    }

    #[test]
    fn the_index_names_each_referring_record_once_per_size_and_type_with_its_latest_grid() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        let (h, other) = (hash(5), hash(6));
        let (d1, d2) = (DocId::from_bytes([1; 16]), DocId::from_bytes([2; 16]));
        commit(&store, d1, "c/g1", vec![photo_ref(&h, 10, PhotoType::Jpeg), photo_ref(&h, 10, PhotoType::Jpeg)]);
        commit(&store, d2, "c/g2", vec![photo_ref(&h, 10, PhotoType::Jpeg), photo_ref(&other, 3, PhotoType::Webp)]);
        commit(&store, d2, "c/g3", vec![photo_ref(&h, 10, PhotoType::Jpeg), photo_ref(&h, 11, PhotoType::Webp)]);
        let refs = store.photo_referrers(&h).expect("referrers");
        let seen: Vec<(DocId, &str, u64, PhotoType)> =
            refs.iter().map(|r| (r.doc, r.grid.as_str(), r.size, r.mime)).collect();
        assert_eq!(
            seen,
            vec![
                (d1, "c/g1", 10, PhotoType::Jpeg),
                (d2, "c/g3", 10, PhotoType::Jpeg),
                (d2, "c/g3", 11, PhotoType::Webp)
            ]
        );
        assert_eq!(store.photo_referrers(&other).expect("referrers").len(), 1);
        assert!(store.photo_referrers(&hash(7)).expect("referrers").is_empty());
    }
}
