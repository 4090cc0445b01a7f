//! Photos on the server: who may read or upload a photo — decided through the
//! records that reference it, with the records' own territory rule — and the
//! checks an upload passes before its body is read and once all its bytes are
//! there. The routes are in [`crate::http_photos`]; the bytes in the [`Store`].
//!
//! Uploads have a bound of their own ([`UploadGate`]), apart from the sync
//! gate: a flood of photos is refused with `Retry-After` while record syncs
//! keep their workers.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::{PhotoReferrer, Store, UploadAppend};
use gridsync_shared::photos::limits::{MAX_PHOTO_BYTES, MAX_UPLOAD_CHUNK};
use gridsync_shared::photos::{PhotoError, PhotoHash, PhotoType, check_photo_bytes, check_size};
use gridsync_shared::{Author, TerritoryPath};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A photo's name: the SHA-256 of its bytes.
pub fn photo_hash(bytes: &[u8]) -> PhotoHash {
    PhotoHash::from_digest(&Sha256::digest(bytes).into())
}

/// The answer to an upload's status and to each chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStatus {
    /// Whether the server has the photo (verified and durable).
    pub stored: bool,
    /// Bytes held: the photo's size once stored, else where the next chunk starts.
    pub received: u64,
}

/// The refusal for a photo the caller may not see or the server does not have.
fn not_found() -> ApiError {
    ApiError::PhotoNotFound("没有这张照片，或您无权查看 (no such photo, or not yours to see)".into())
}

/// Whether the caller may read a record of `grid`: the same rule as the pull.
fn may_read(caller: &Caller, grid: &TerritoryPath) -> bool {
    caller.person.territory.contains(grid)
}

/// The photo's type and bytes, if the server has it and the caller may read a
/// record that references it; else [`ApiError::PhotoNotFound`] either way.
pub fn readable_photo(store: &dyn Store, caller: &Caller, hash: &PhotoHash) -> Result<(PhotoType, Vec<u8>), ApiError> {
    if !store.photo_referrers(hash)?.iter().any(|r| may_read(caller, &r.grid)) {
        return Err(not_found());
    }
    store.photo(hash)?.ok_or_else(not_found)
}

/// Whether the caller may read a record that references the photo (for a
/// revalidation answered 304 without reading the bytes).
pub fn may_read_photo(store: &dyn Store, caller: &Caller, hash: &PhotoHash) -> Result<bool, ApiError> {
    Ok(store.photo_referrers(hash)?.iter().any(|r| may_read(caller, &r.grid)) && store.has_photo(hash)?)
}

/// The authors the caller may write as: their own territory, and the ones a
/// move left their device a grace period in (as for pushes).
fn writers(store: &dyn Store, caller: &Caller) -> Result<Vec<Author>, ApiError> {
    let author = caller.author();
    let mut out = vec![author.clone()];
    for t in store.device_grace(caller.device.id)? {
        out.push(Author { territory: t, ..author.clone() });
    }
    Ok(out)
}

/// The records referencing the photo that the caller may write.
fn writable_referrers(store: &dyn Store, caller: &Caller, hash: &PhotoHash) -> Result<Vec<PhotoReferrer>, ApiError> {
    let writers = writers(store, caller)?;
    Ok(store.photo_referrers(hash)?.into_iter().filter(|r| writers.iter().any(|w| w.covers(&r.grid))).collect())
}

fn not_referenced(detail: &str) -> ApiError {
    ApiError::PhotoNotReferenced(format!(
        "{detail}：请先同步引用这张照片的记录，再上传照片 (push the record that references this photo first)"
    ))
}

/// `GET /v1/photos/{sha256}/upload`: how much of the photo the server holds,
/// for a caller who may write a record that references it.
pub fn upload_status(store: &dyn Store, caller: &Caller, hash: &PhotoHash) -> Result<UploadStatus, ApiError> {
    let referrers = writable_referrers(store, caller, hash)?;
    let Some(first) = referrers.first() else {
        return Err(not_referenced("服务器上没有您可编辑的记录引用这张照片"));
    };
    if store.has_photo(hash)? {
        return Ok(UploadStatus { stored: true, received: first.size });
    }
    Ok(UploadStatus { stored: false, received: store.upload_received(hash)? })
}

/// One upload request's headers, parsed.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// The photo.
    pub hash: PhotoHash,
    /// Its type (`Content-Type`).
    pub mime: PhotoType,
    /// Its whole size (`X-Photo-Size`).
    pub size: u64,
    /// Where this chunk starts (`X-Upload-Offset`).
    pub offset: u64,
    /// This chunk's length (`Content-Length`).
    pub length: u64,
}

impl Chunk {
    /// Parses an upload's headers; each refusal names the header.
    pub fn parse(
        hash: &str,
        content_type: Option<&str>,
        size: Option<&str>,
        offset: Option<&str>,
        length: Option<&str>,
        content_encoding: Option<&str>,
    ) -> Result<Chunk, ApiError> {
        let hash = PhotoHash::parse(hash).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let mime = content_type
            .map(|c| c.split(';').next().unwrap_or_default())
            .and_then(PhotoType::from_mime)
            .ok_or_else(|| ApiError::UnsupportedMediaType(PhotoError::BadType.to_string()))?;
        if content_encoding.is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity")) {
            return Err(ApiError::UnsupportedMediaType(
                "照片上传不接受压缩编码 (photo uploads take no Content-Encoding)".into(),
            ));
        }
        let number = |v: Option<&str>, name: &str| -> Result<u64, ApiError> {
            v.and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(|| {
                ApiError::BadRequest(format!("缺少或无法识别 {name} 请求头 (missing or bad {name} header)"))
            })
        };
        let size = number(size, "X-Photo-Size")?;
        let offset = number(offset, "X-Upload-Offset")?;
        let length = number(length, "Content-Length")?;
        if size > MAX_PHOTO_BYTES {
            return Err(ApiError::PayloadTooLarge(format!(
                "照片太大：{size} 字节，最多 {MAX_PHOTO_BYTES} 字节 (a photo is at most {MAX_PHOTO_BYTES} bytes)"
            )));
        }
        check_size(size).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        if length > MAX_UPLOAD_CHUNK {
            return Err(ApiError::PayloadTooLarge(format!(
                "一次上传最多 {MAX_UPLOAD_CHUNK} 字节，请分段上传 (one upload request carries at most {MAX_UPLOAD_CHUNK} bytes)"
            )));
        }
        if offset.checked_add(length).is_none_or(|end| end > size) {
            return Err(ApiError::BadRequest(format!(
                "这一段超出了照片末尾：从 {offset} 起 {length} 字节，照片共 {size} 字节 (the chunk goes past the photo's end)"
            )));
        }
        Ok(Chunk { hash, mime, size, offset, length })
    }
}

/// What to do with an upload request once its headers passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admitted {
    /// The server already has the photo: answer at once, body unread.
    AlreadyStored(UploadStatus),
    /// Read the body and append it at the chunk's offset.
    ReadBody,
}

/// Everything checked before an upload's body is read: a record the caller
/// may write references the photo with this size and type, the photo is not
/// already stored, and the chunk starts where the bytes held end.
pub fn admit(store: &dyn Store, caller: &Caller, chunk: &Chunk) -> Result<Admitted, ApiError> {
    let referrers = writable_referrers(store, caller, &chunk.hash)?;
    if referrers.is_empty() {
        return Err(not_referenced("服务器上没有您可编辑的记录引用这张照片"));
    }
    if !referrers.iter().any(|r| r.size == chunk.size && r.mime == chunk.mime) {
        return Err(not_referenced(&format!(
            "记录中这张照片的大小或类型与上传的不符（上传：{} 字节 {}）",
            chunk.size,
            chunk.mime.as_mime()
        )));
    }
    if store.has_photo(&chunk.hash)? {
        return Ok(Admitted::AlreadyStored(UploadStatus { stored: true, received: chunk.size }));
    }
    let received = store.upload_received(&chunk.hash)?;
    if received != chunk.offset {
        return Err(ApiError::UploadOffset { received });
    }
    Ok(Admitted::ReadBody)
}

/// Appends a chunk's bytes (all of them, or what arrived before a cut); when
/// the photo is complete, verifies it (size, magic bytes, SHA-256) and stores
/// it durably. A photo that fails verification is discarded and refused with
/// [`ApiError::PhotoInvalid`].
pub fn accept_chunk(store: &dyn Store, chunk: &Chunk, bytes: &[u8]) -> Result<UploadStatus, ApiError> {
    // Another request may have finished the photo while this body arrived.
    let stored = UploadStatus { stored: true, received: chunk.size };
    if store.has_photo(&chunk.hash)? {
        return Ok(stored);
    }
    let received = match store.append_upload(&chunk.hash, chunk.offset, bytes)? {
        UploadAppend::Appended { received } => received,
        // Another request finished the photo meanwhile: it is stored, whatever this chunk held.
        UploadAppend::WrongOffset { .. } if store.has_photo(&chunk.hash)? => return Ok(stored),
        UploadAppend::WrongOffset { received } => return Err(ApiError::UploadOffset { received }),
    };
    if received < chunk.size {
        return Ok(UploadStatus { stored: false, received });
    }
    let started = std::time::Instant::now();
    let all = store.upload_bytes(&chunk.hash)?;
    let verified = check_photo_bytes(&all, chunk.size, chunk.mime)
        .and_then(|()| if photo_hash(&all) == chunk.hash { Ok(()) } else { Err(PhotoError::HashMismatch) });
    if let Err(e) = verified {
        store.discard_upload(&chunk.hash)?;
        tracing::warn!(photo = %chunk.hash, size = chunk.size, error = %e, "photo refused and discarded");
        return Err(ApiError::PhotoInvalid(e));
    }
    store.finish_upload(&chunk.hash, chunk.mime, &all)?;
    tracing::info!(
        photo = %chunk.hash, size = chunk.size, mime = chunk.mime.as_mime(),
        ms = started.elapsed().as_secs_f64() * 1000.0, "photo stored"
    );
    Ok(UploadStatus { stored: true, received: chunk.size })
}

/// How many photo uploads the server takes at once.
#[derive(Clone, Debug)]
pub struct PhotoLimits {
    /// Upload requests in progress at once (reading a body of at most
    /// `MAX_UPLOAD_CHUNK` bytes, or writing it); more are refused at once.
    pub uploads: usize,
    /// The `Retry-After` given to a refused upload, in seconds.
    pub retry_after_s: u32,
}

impl Default for PhotoLimits {
    /// Four uploads per core (at least 8): at most a few MiB of chunks in
    /// memory, and never more photo work than the cores can take beside syncs.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self { uploads: (4 * cores).max(8), retry_after_s: 3 }
    }
}

/// Upload requests in progress, bounded apart from the sync gate.
pub struct UploadGate {
    slots: Arc<Semaphore>,
    limits: PhotoLimits,
}

/// The sentence for a refused upload.
pub const UPLOAD_BUSY_MESSAGE: &str =
    "照片上传的人较多，稍后会自动继续，照片不会丢失。Too many photo uploads at once; the phone resumes by itself.";

impl UploadGate {
    /// A gate with these limits.
    pub fn new(limits: PhotoLimits) -> Self {
        Self { slots: Arc::new(Semaphore::new(limits.uploads.max(1))), limits }
    }

    /// A slot for one upload request, or [`ApiError::Busy`] at once.
    pub fn enter(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.slots.clone().try_acquire_owned().map_err(|_| ApiError::Busy {
            message: UPLOAD_BUSY_MESSAGE.into(),
            retry_after_s: self.limits.retry_after_s.max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    fn jpeg(n: usize) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF];
        b.resize(n, 3);
        b
    }

    fn chunk_of(bytes: &[u8], offset: u64, length: u64) -> Chunk {
        Chunk { hash: photo_hash(bytes), mime: PhotoType::Jpeg, size: bytes.len() as u64, offset, length }
    }

    #[test]
    fn a_chunk_of_a_photo_stored_meanwhile_is_answered_stored_and_appends_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        let bytes = jpeg(1000);
        // Two requests passed the checks at offset 0; the first completes the photo.
        let first = accept_chunk(&store, &chunk_of(&bytes, 0, 1000), &bytes).expect("first");
        assert_eq!(first, UploadStatus { stored: true, received: 1000 });
        let late = accept_chunk(&store, &chunk_of(&bytes, 0, 500), &bytes[..500]).expect("late");
        assert_eq!(late, UploadStatus { stored: true, received: 1000 });
        assert_eq!(store.upload_received(&photo_hash(&bytes)).expect("received"), 0);
    }

    #[test]
    fn a_completed_upload_whose_bytes_fail_is_discarded_with_the_reason() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(dir.path()).expect("open");
        let bytes = jpeg(1000);
        let mut named = chunk_of(&bytes, 0, 600);
        named.mime = PhotoType::Webp;
        assert_eq!(
            accept_chunk(&store, &named, &bytes[..600]).expect("part"),
            UploadStatus { stored: false, received: 600 }
        );
        let last = Chunk { offset: 600, length: 400, ..named };
        let refused = accept_chunk(&store, &last, &bytes[600..]);
        assert!(matches!(refused, Err(ApiError::PhotoInvalid(PhotoError::NotThatType("image/webp")))), "{refused:?}");
        assert_eq!(store.upload_received(&photo_hash(&bytes)).expect("received"), 0);
        assert!(!store.has_photo(&photo_hash(&bytes)).expect("has"));
    }

    #[test]
    fn upload_headers_are_refused_with_the_header_named_before_any_body() {
        let h = photo_hash(b"x").to_string();
        let parse = |ct: Option<&str>, size: Option<&str>, off: Option<&str>, len: Option<&str>| {
            Chunk::parse(&h, ct, size, off, len, None)
        };
        assert!(parse(Some("image/jpeg"), Some("1000"), Some("0"), Some("1000")).is_ok());
        assert!(matches!(
            parse(Some("image/png"), Some("1000"), Some("0"), Some("10")),
            Err(ApiError::UnsupportedMediaType(_))
        ));
        assert!(
            matches!(parse(Some("image/jpeg"), None, Some("0"), Some("10")), Err(ApiError::BadRequest(m)) if m.contains("X-Photo-Size"))
        );
        assert!(matches!(
            parse(Some("image/jpeg"), Some("2000000"), Some("0"), Some("10")),
            Err(ApiError::PayloadTooLarge(_))
        ));
        assert!(matches!(
            parse(Some("image/jpeg"), Some("1000000"), Some("0"), Some("300000")),
            Err(ApiError::PayloadTooLarge(_))
        ));
        assert!(matches!(
            parse(Some("image/jpeg"), Some("1000"), Some("900"), Some("200")),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(parse(Some("image/jpeg"), Some("0"), Some("0"), Some("0")), Err(ApiError::BadRequest(_))));
        assert!(matches!(
            Chunk::parse("abc", Some("image/jpeg"), Some("1"), Some("0"), Some("1"), None),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            Chunk::parse(&h, Some("image/jpeg"), Some("1"), Some("0"), Some("1"), Some("gzip")),
            Err(ApiError::UnsupportedMediaType(_))
        ));
    }
}
