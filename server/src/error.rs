//! The server's one error type and the one place errors become HTTP statuses.

use crate::store::StoreError;
use serde::Serialize;
use thiserror::Error;
use warp::http::StatusCode;

/// Everything a request can fail with.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The request is malformed (bad bytes, wrong types, unknown fields).
    #[error("{0}")]
    BadRequest(String),
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials that were good and are no longer: 401 with a code of its
    /// own, so a phone can tell "sign in again" (`device_revoked`) from "this
    /// account is disabled" (`person_disabled`).
    #[error("{message}")]
    SignedOut {
        /// Which of the two.
        reason: SignedOutReason,
        /// A sentence for people, in Chinese.
        message: String,
    },
    /// Valid credentials, but the role or territory does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing at this address.
    #[error("{0}")]
    NotFound(String),
    /// Already exists.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than allowed.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body arrived too slowly: try again on a better connection.
    #[error("{0}")]
    RequestTimeout(String),
    /// A body encoding the server does not accept.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// More work arrived than the server can start on soon: try again after
    /// `retry_after_s` seconds (503 with `Retry-After`).
    #[error("{message}")]
    Busy {
        /// A sentence for people.
        message: String,
        /// Seconds the client should wait before retrying.
        retry_after_s: u32,
    },
    /// Too many failed attempts (sign-in): wait `retry_after_s` seconds
    /// (429 with `Retry-After`).
    #[error("{message}")]
    TooManyAttempts {
        /// A sentence for people, in Chinese, naming the time to wait.
        message: String,
        /// Seconds to wait before the next attempt.
        retry_after_s: u32,
    },
    /// No such photo, or none the caller may see (the same answer, so a
    /// photo's existence does not leak): 404 `photo_not_found`.
    #[error("{0}")]
    PhotoNotFound(String),
    /// No record the caller may write references this photo with this size
    /// and type: push the record first (409 `photo_not_referenced`).
    #[error("{0}")]
    PhotoNotReferenced(String),
    /// An upload chunk that does not start where the bytes held end: resume
    /// at `received` (409 `upload_offset`, with `received` in the body).
    #[error("上传位置不对：服务器已收到 {received} 字节，请从这里继续 (resume the upload at byte {received})")]
    UploadOffset {
        /// Bytes the server holds of this upload.
        received: u64,
    },
    /// The photo's bytes failed verification (size, type, SHA-256); the
    /// upload was discarded (422 `photo_invalid`).
    #[error("照片未保存：{0}")]
    PhotoInvalid(#[from] gridsync_shared::photos::PhotoError),
    /// The phone's sync cursor is from before the store was restored from a
    /// backup (or beyond what the store holds): the phone resends all its own
    /// changes and goes on from `cursor` (409 `store_restored`, with `cursor`
    /// in base64 in the body). Nothing of the request was done.
    #[error(
        "服务器已从备份恢复，本机的修改将重新上传。The server was restored from a backup: send every change this device made again, and continue from the cursor given."
    )]
    StoreRestored {
        /// The cursor to continue from.
        cursor: Vec<u8>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or an unexpected failure.
    #[error("{0}")]
    Internal(String),
}

/// Why a once-valid device may no longer act.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignedOutReason {
    /// The device was revoked or replaced (by an administrator, by a newer
    /// sign-in on the same phone, by a password change): sign in again.
    DeviceRevoked,
    /// The person was disabled by an administrator: signing in will not help.
    PersonDisabled,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// A stable code, e.g. `bad_request`.
    pub error: &'static str,
    /// A sentence for people.
    pub message: String,
    /// For `busy` and `too_many_attempts`: seconds to wait (also the `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u32>,
    /// For `upload_offset`: the bytes of the upload the server holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
    /// For `store_restored`: the sync cursor to continue from, in base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl ApiError {
    /// The HTTP status and stable code for this error.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::SignedOut { reason: SignedOutReason::DeviceRevoked, .. } => {
                (StatusCode::UNAUTHORIZED, "device_revoked")
            }
            ApiError::SignedOut { reason: SignedOutReason::PersonDisabled, .. } => {
                (StatusCode::UNAUTHORIZED, "person_disabled")
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            ApiError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::TooManyAttempts { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            ApiError::PhotoNotFound(_) => (StatusCode::NOT_FOUND, "photo_not_found"),
            ApiError::PhotoNotReferenced(_) => (StatusCode::CONFLICT, "photo_not_referenced"),
            ApiError::UploadOffset { .. } => (StatusCode::CONFLICT, "upload_offset"),
            ApiError::PhotoInvalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "photo_invalid"),
            ApiError::StoreRestored { .. } => (StatusCode::CONFLICT, "store_restored"),
            ApiError::Store(StoreError::Conflict(_)) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// Seconds a client should wait before retrying, sent as `Retry-After`.
    pub fn retry_after_s(&self) -> Option<u32> {
        match self {
            ApiError::Busy { retry_after_s, .. } | ApiError::TooManyAttempts { retry_after_s, .. } => {
                Some(*retry_after_s)
            }
            _ => None,
        }
    }

    /// The response body.
    pub fn body(&self) -> ErrorBody {
        let received = match self {
            ApiError::UploadOffset { received } => Some(*received),
            _ => None,
        };
        let cursor = match self {
            ApiError::StoreRestored { cursor } => {
                Some(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, cursor))
            }
            _ => None,
        };
        ErrorBody {
            error: self.status().1,
            message: self.to_string(),
            retry_after_s: self.retry_after_s(),
            received,
            cursor,
        }
    }
}

impl warp::reject::Reject for ApiError {}
