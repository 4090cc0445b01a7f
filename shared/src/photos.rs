//! Photos as evidence: what a record keeps of a photo, and what a photo's bytes
//! must be. The bytes travel and are stored apart from the records (content-
//! addressed by SHA-256); a record holds one append-only [`PhotoRef`] per photo,
//! so concurrent additions from two phones both survive and documents stay small.

use crate::ids::PersonId;
use crate::records::GeoPoint;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;
use uuid::Uuid;

/// Limits on photos, the same on phone and server.
pub mod limits {
    /// Most photos per attachment: a visit log, a case, or one follow-up of a case.
    pub const MAX_PHOTOS: usize = 9;
    /// Largest photo, in bytes, after the phone has scaled and re-encoded it
    /// (phones aim at 300 KB or less).
    pub const MAX_PHOTO_BYTES: u64 = 1_048_576;
    /// Most photo bytes one upload request may carry.
    pub const MAX_UPLOAD_CHUNK: u64 = 262_144;
}

/// A photo's SHA-256, as 64 lowercase hexadecimal digits: its name everywhere.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhotoHash(String);

impl PhotoHash {
    /// Accepts exactly 64 hexadecimal digits (upper case is lowered).
    pub fn parse(s: &str) -> Result<Self, PhotoError> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(PhotoHash(s.to_ascii_lowercase()))
        } else {
            Err(PhotoError::BadHash)
        }
    }

    /// The hash of the SHA-256 digest `digest`.
    pub fn from_digest(digest: &[u8; 32]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in digest {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        PhotoHash(s)
    }

    /// The 64 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhotoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PhotoHash {
    type Err = PhotoError;
    fn from_str(s: &str) -> Result<Self, PhotoError> {
        PhotoHash::parse(s)
    }
}

impl TryFrom<String> for PhotoHash {
    type Error = PhotoError;
    fn try_from(s: String) -> Result<Self, PhotoError> {
        PhotoHash::parse(&s)
    }
}

impl From<PhotoHash> for String {
    fn from(h: PhotoHash) -> String {
        h.0
    }
}

/// The image types a photo may be: what phones encode to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PhotoType {
    /// image/jpeg
    #[serde(rename = "image/jpeg")]
    Jpeg,
    /// image/webp
    #[serde(rename = "image/webp")]
    Webp,
}

impl PhotoType {
    /// The media type, as sent in `Content-Type` and stored in records.
    pub fn as_mime(self) -> &'static str {
        match self {
            PhotoType::Jpeg => "image/jpeg",
            PhotoType::Webp => "image/webp",
        }
    }

    /// The file extension used in snapshots (`photos/<sha256>.<ext>`).
    pub fn ext(self) -> &'static str {
        match self {
            PhotoType::Jpeg => "jpg",
            PhotoType::Webp => "webp",
        }
    }

    /// The type named by a media type, if it is one photos may be.
    pub fn from_mime(mime: &str) -> Option<Self> {
        match mime.trim().to_ascii_lowercase().as_str() {
            "image/jpeg" => Some(PhotoType::Jpeg),
            "image/webp" => Some(PhotoType::Webp),
            _ => None,
        }
    }

    /// The type the bytes really are, by their magic bytes (never a file name).
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(PhotoType::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(PhotoType::Webp)
        } else {
            None
        }
    }
}

impl FromStr for PhotoType {
    type Err = PhotoError;
    fn from_str(s: &str) -> Result<Self, PhotoError> {
        PhotoType::from_mime(s).ok_or(PhotoError::BadType)
    }
}

/// Why a photo or a reference to one is refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PhotoError {
    /// Not 64 hexadecimal digits.
    #[error("照片编号应为 64 位十六进制 SHA-256 (a photo's id is its SHA-256 as 64 hex digits)")]
    BadHash,
    /// Not a JPEG or WebP image.
    #[error("只能上传 JPEG 或 WebP 照片 (only JPEG or WebP photos)")]
    BadType,
    /// Empty, or larger than [`limits::MAX_PHOTO_BYTES`].
    #[error("照片大小应在 1 字节到 1 MB 之间 (a photo is 1 byte to 1 MiB)")]
    BadSize,
    /// The bytes are not as many as the record says.
    #[error("照片大小与记录不符：记录为 {expected} 字节，收到 {got} 字节 (size differs from the record)")]
    SizeMismatch {
        /// What the record says.
        expected: u64,
        /// What arrived.
        got: u64,
    },
    /// The bytes are not an image of the type the record says.
    #[error("照片内容不是记录所说的 {0} 图片 (the bytes are not the image type the record names)")]
    NotThatType(&'static str),
    /// The bytes' SHA-256 is not the one the record names.
    #[error("照片内容与编号不符，可能在传输中损坏 (the bytes do not match their SHA-256)")]
    HashMismatch,
}

/// A photo kept with a record: an append-only entry, never changed or removed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhotoRef {
    /// Unique per entry.
    pub id: Uuid,
    /// The photo's bytes, by their SHA-256.
    pub sha256: PhotoHash,
    /// Its size in bytes.
    pub size: u64,
    /// JPEG or WebP.
    pub mime: PhotoType,
    /// When it was taken (or picked), Unix milliseconds by the phone's clock.
    pub taken_at: i64,
    /// Where, if the grid manager lets photos carry a position.
    pub location: Option<GeoPoint>,
    /// Who attached it.
    pub by: PersonId,
    /// When it was attached, Unix milliseconds.
    pub at: i64,
    /// The case follow-up it belongs to; `None`: the record itself.
    pub follow_up: Option<Uuid>,
}

/// A photo a phone attaches to a record (see `Editor::add_photo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewPhoto {
    /// The photo's SHA-256.
    pub sha256: PhotoHash,
    /// Its size in bytes.
    pub size: u64,
    /// JPEG or WebP.
    pub mime: PhotoType,
    /// When it was taken, Unix milliseconds.
    pub taken_at: i64,
    /// Where, if allowed.
    #[serde(default)]
    pub location: Option<GeoPoint>,
    /// The case follow-up it belongs to, if any.
    #[serde(default)]
    pub follow_up: Option<Uuid>,
}

/// Checks that a size is one a photo may have.
pub fn check_size(size: u64) -> Result<(), PhotoError> {
    if (1..=limits::MAX_PHOTO_BYTES).contains(&size) { Ok(()) } else { Err(PhotoError::BadSize) }
}

/// Checks a photo's bytes against what its record says: the size, and that the
/// bytes really are an image of that type. The SHA-256 is the caller's to
/// check ([`PhotoError::HashMismatch`]): this crate computes no hashes.
pub fn check_photo_bytes(bytes: &[u8], size: u64, mime: PhotoType) -> Result<(), PhotoError> {
    check_size(size)?;
    let got = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if got != size {
        return Err(PhotoError::SizeMismatch { expected: size, got });
    }
    if PhotoType::sniff(bytes) != Some(mime) {
        return Err(PhotoError::NotThatType(mime.as_mime()));
    }
    Ok(())
}
