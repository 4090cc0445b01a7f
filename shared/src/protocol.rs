//! The sync protocol's messages and their binary encoding.
//!
//! One exchange is one HTTP request/response: the phone sends its cursor and
//! the changes it has not had acknowledged (`SyncRequest`); the server answers
//! with a verdict per pushed document, the changes the phone lacks from its
//! territory's change feed, a new cursor, and whether more pages wait
//! (`SyncResponse`). Bodies are `GSYN`, a little-endian `u16` version, then
//! postcard; HTTP compresses them with gzip.
//!
//! ```
//! use gridsync_shared::protocol::*;
//! let request = SyncRequest { cursor: None, push: vec![], max_response_bytes: DEFAULT_PAGE_BYTES };
//! let bytes = encode(&request);
//! assert_eq!(decode::<SyncRequest>(&bytes).unwrap(), request);
//! assert!(decode::<SyncRequest>(&bytes[..bytes.len() - 1]).is_err());
//! ```

use crate::ids::{DeviceId, DocId, PersonId};
use crate::records::RecordSummary;
use crate::roles::Role;
use crate::rules::Rejection;
use crate::territory::TerritoryPath;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use thiserror::Error;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 2;
/// The first bytes of every sync body.
pub const MAGIC: [u8; 4] = *b"GSYN";
/// Response page size a phone asks for unless it says otherwise.
pub const DEFAULT_PAGE_BYTES: u32 = 256 * 1024;
/// Smallest and largest page size the server will honour.
pub const PAGE_BYTES_RANGE: (u32, u32) = (4 * 1024, 4 * 1024 * 1024);
/// Largest request body on the wire (compressed).
pub const MAX_REQUEST_BYTES: u64 = 8 * 1024 * 1024;
/// Largest request body once decompressed.
pub const MAX_DECODED_BYTES: usize = 32 * 1024 * 1024;
/// Most documents pushed in one request.
pub const MAX_PUSH_DOCS: usize = 2_000;
/// Largest single Automerge change.
pub const MAX_CHANGE_BYTES: usize = 1024 * 1024;
/// Push bytes a phone puts in one request; the rest waits for the next.
pub const PUSH_BUDGET_BYTES: usize = 1024 * 1024;

/// A phone's sync request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// Where the phone stands in its territory's change feed; `None` on first sync.
    #[serde(with = "serde_bytes")]
    pub cursor: Option<Vec<u8>>,
    /// The phone's unacknowledged changes, per document.
    pub push: Vec<DocPush>,
    /// How many bytes of documents the phone wants in this response at most.
    pub max_response_bytes: u32,
}

/// Changes to one document, made on the pushing device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocPush {
    /// The record.
    pub doc: DocId,
    /// Raw Automerge changes, each as `Change::raw_bytes`, in causal order.
    #[serde(with = "byte_strings")]
    pub changes: Vec<Vec<u8>>,
}

/// The server's answer to one sync request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// One verdict per pushed document, in request order.
    pub results: Vec<PushResult>,
    /// Documents the phone lacks, in feed order.
    pub updates: Vec<DocUpdate>,
    /// The cursor to send next time (opaque to the phone).
    #[serde(with = "serde_bytes")]
    pub cursor: Vec<u8>,
    /// True if more updates wait: sync again at once with the new cursor.
    pub more: bool,
}

/// The verdict on one pushed document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResult {
    /// The record.
    pub doc: DocId,
    /// Accepted, already had, or rejected with a reason.
    pub outcome: PushOutcome,
}

/// What became of one document's pushed changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PushOutcome {
    /// Stored durably; the phone may forget them from its outbox.
    Accepted,
    /// The server already had every change (a retry): also durable.
    Duplicate,
    /// Refused; nothing of it was stored.
    Rejected(Rejection),
}

/// A document the phone lacks, whole or as the changes since its cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocUpdate {
    /// The record.
    pub doc: DocId,
    /// Its content.
    pub body: DocBody,
    /// Its kind, household and time, so the phone can list it unparsed
    /// (absent for documents stored before the server kept summaries).
    pub summary: Option<RecordSummary>,
}

/// How a document travels to a phone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DocBody {
    /// The compacted document (`Automerge::save`), for a phone that has none of it.
    Snapshot(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Raw changes the phone lacks.
    Changes(#[serde(with = "byte_strings")] Vec<Vec<u8>>),
}

/// Serde for lists of byte strings: each as one length-prefixed block rather
/// than a sequence of single bytes (same postcard wire form, far faster).
pub mod byte_strings {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    /// Serialises each entry as bytes.
    pub fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|b| Bytes::new(b)))
    }

    /// Deserialises a list written by [`serialize`] (or as plain byte sequences).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Ok(Vec::<ByteBuf>::deserialize(d)?.into_iter().map(ByteBuf::into_vec).collect())
    }
}

impl DocBody {
    /// Payload size in bytes.
    pub fn len(&self) -> usize {
        match self {
            DocBody::Snapshot(b) => b.len(),
            DocBody::Changes(c) => c.iter().map(Vec::len).sum(),
        }
    }

    /// True if it carries nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Signing in on a phone: the person's credentials and a name for the device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    /// 用户名
    pub username: String,
    /// 密码
    pub password: String,
    /// A name for this device, e.g. "张三的手机".
    pub device_name: String,
    /// The device this phone was registered as before, if any: when it is
    /// the same person's, it is revoked as this sign-in registers its
    /// successor, so signing in again never piles up devices. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<DeviceId>,
}

/// Changing one's own password (`POST /v1/auth/password`, signed in).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// 原密码
    pub old_password: String,
    /// 新密码: at least 8 characters.
    pub new_password: String,
}

/// A registered device: its token and the Automerge actor it must write with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRegistration {
    /// The device.
    pub device: DeviceId,
    /// Bearer token for this device alone; shown once.
    pub token: String,
    /// The device's Automerge actor id, hex.
    pub actor: String,
    /// The person signed in.
    pub person: PersonId,
    /// Their display name.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// Their territory.
    pub territory: TerritoryPath,
}

/// Why a sync body could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// Does not start with `GSYN`.
    #[error("not a gridsync sync body (bad magic bytes)")]
    BadMagic,
    /// A version this build does not speak.
    #[error("protocol version {0} is not supported (this server speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u16),
    /// Truncated, or wrong types inside.
    #[error("malformed sync body: {0}")]
    Malformed(String),
    /// Bytes left over after the message.
    #[error("malformed sync body: {0} unexpected trailing bytes")]
    TrailingBytes(usize),
}

/// Why bytes sent as an Automerge change are not one.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChangeError {
    /// Automerge could not parse them.
    #[error("not an Automerge change: {0}")]
    Unparsable(String),
    /// They parse, but the checksum in their header is not their hash's:
    /// damaged bytes, which a document holding them could never be loaded from.
    #[error("an Automerge change whose checksum does not match its contents")]
    BadChecksum,
}

/// Parses one change as sent over the wire, checking what Automerge's own
/// parsing leaves to document loading: that its header's checksum is the
/// first four bytes of its hash. Both ends take changes only through this,
/// so a stored document always loads.
pub fn parse_change(bytes: Vec<u8>) -> Result<automerge::Change, ChangeError> {
    let change = automerge::Change::from_bytes(bytes).map_err(|e| ChangeError::Unparsable(e.to_string()))?;
    // A change chunk: 4 magic bytes, then its 4-byte checksum.
    match change.raw_bytes().get(4..8) {
        Some(checksum) if checksum == &change.hash().0[..4] => Ok(change),
        _ => Err(ChangeError::BadChecksum),
    }
}

/// Encodes a message with the magic bytes and version.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    // Serialising plain structs into a Vec cannot fail.
    postcard::to_extend(message, out).unwrap_or_default()
}

/// Decodes a message, refusing wrong magic, versions, truncation and trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ProtocolError> {
    let rest = bytes.strip_prefix(&MAGIC).ok_or(ProtocolError::BadMagic)?;
    let (version, rest) = rest.split_at_checked(2).ok_or(ProtocolError::Malformed("truncated header".into()))?;
    let version = u16::from_le_bytes([version[0], version[1]]);
    if version != PROTOCOL_VERSION {
        return Err(ProtocolError::UnsupportedVersion(version));
    }
    let (message, left) = postcard::take_from_bytes(rest).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    if !left.is_empty() {
        return Err(ProtocolError::TrailingBytes(left.len()));
    }
    Ok(message)
}
