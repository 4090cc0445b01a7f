//! Photo routes: `GET /v1/photos/{sha256}` (the bytes, cached for good),
//! `GET /v1/photos/{sha256}/upload` (how much the server holds) and
//! `PUT /v1/photos/{sha256}` (one chunk). Thin: the rules are in [`crate::photos`].

use crate::error::ApiError;
use crate::http::{AppState, blocking, caller, error_reply};
use crate::http_directory::none_match;
use crate::photos::{self, Admitted, Chunk, UploadStatus};
use bytes::{Buf, BytesMut};
use gridsync_shared::photos::PhotoHash;
use warp::http::StatusCode;
use warp::http::header::{self, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Reply};

/// A photo never changes under its name: caches keep it for a year.
const IMMUTABLE: &str = "private, max-age=31536000, immutable";

fn parse_hash(hash: &str) -> Result<PhotoHash, ApiError> {
    PhotoHash::parse(hash).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn status_reply(status: &UploadStatus) -> Response {
    let mut r = warp::reply::json(status).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /v1/photos/{sha256}`: 200 with the bytes, or 304 when `If-None-Match`
/// names it; 404 `photo_not_found` alike for a photo the server lacks and
/// one the caller may not see.
async fn get_route(
    state: AppState,
    hash: String,
    authorization: Option<String>,
    if_none_match: Option<String>,
) -> Result<Response, ApiError> {
    let c = caller(&state, authorization).await?;
    let hash = parse_hash(&hash)?;
    let tag = format!("\"{hash}\"");
    let store = state.store.clone();
    if if_none_match.as_deref().is_some_and(|inm| none_match(inm, &tag)) {
        let h = hash.clone();
        if blocking(move || photos::may_read_photo(store.as_ref(), &c, &h)).await? {
            let mut r = Response::new(Vec::new().into());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            set_cache_headers(&mut r, &tag);
            return Ok(r);
        }
        return Err(ApiError::PhotoNotFound("没有这张照片，或您无权查看 (no such photo, or not yours to see)".into()));
    }
    let (mime, bytes) = blocking(move || photos::readable_photo(store.as_ref(), &c, &hash)).await?;
    let mut r = Response::new(bytes.into());
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(mime.as_mime()));
    set_cache_headers(&mut r, &tag);
    Ok(r)
}

fn set_cache_headers(r: &mut Response, tag: &str) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(header::VARY, HeaderValue::from_static("authorization"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// `GET /v1/photos/{sha256}/upload`: `{"stored", "received"}`.
async fn status_route(state: AppState, hash: String, authorization: Option<String>) -> Result<Response, ApiError> {
    let c = caller(&state, authorization).await?;
    let hash = parse_hash(&hash)?;
    let store = state.store.clone();
    let status = blocking(move || photos::upload_status(store.as_ref(), &c, &hash)).await?;
    Ok(status_reply(&status))
}

/// The headers of an upload request.
struct UploadHeaders {
    authorization: Option<String>,
    content_type: Option<String>,
    size: Option<String>,
    offset: Option<String>,
    length: Option<String>,
    encoding: Option<String>,
}

/// `PUT /v1/photos/{sha256}`: one chunk. Everything is checked before a byte
/// of the body is read; what arrived of a body cut short is kept.
async fn put_route(
    state: AppState,
    hash: String,
    h: UploadHeaders,
    body: impl futures_util::Stream<Item = Result<impl Buf, warp::Error>>,
) -> Result<Response, ApiError> {
    let c = caller(&state, h.authorization).await?;
    let chunk = Chunk::parse(
        &hash,
        h.content_type.as_deref(),
        h.size.as_deref(),
        h.offset.as_deref(),
        h.length.as_deref(),
        h.encoding.as_deref(),
    )?;
    let store = state.store.clone();
    let (checked, caller_chunk) = (chunk.clone(), c);
    match blocking(move || photos::admit(store.as_ref(), &caller_chunk, &checked)).await? {
        Admitted::AlreadyStored(status) => return Ok(status_reply(&status)),
        Admitted::ReadBody => {}
    }
    let _slot = state.upload_gate.enter()?;
    let (bytes, cut) = read_chunk(body, chunk.length as usize).await;
    if let Some(e) = &cut {
        tracing::info!(photo = %chunk.hash, offset = chunk.offset, kept = bytes.len(), error = %e, "photo upload cut short");
    }
    let store = state.store.clone();
    let (appended, kept) = (chunk.clone(), bytes.len());
    let result = blocking(move || photos::accept_chunk(store.as_ref(), &appended, &bytes)).await;
    match cut {
        // The client is probably gone; what arrived is kept either way.
        Some(e) => {
            if let Err(stored) = result {
                tracing::warn!(photo = %chunk.hash, kept, error = %stored, "keeping a cut-off chunk failed");
            }
            Err(e)
        }
        None => result.map(|s| status_reply(&s)),
    }
}

/// Reads a body of at most `limit` bytes; on a failure part way (a cut
/// connection, a body too slow) returns what arrived with the error.
async fn read_chunk(
    body: impl futures_util::Stream<Item = Result<impl Buf, warp::Error>>,
    limit: usize,
) -> (Vec<u8>, Option<ApiError>) {
    use futures_util::StreamExt;
    let mut out = BytesMut::with_capacity(limit);
    futures_util::pin_mut!(body);
    while let Some(piece) = body.next().await {
        let mut piece = match piece {
            Ok(p) => p,
            Err(e) => {
                let mut slow = None;
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
                while let Some(err) = source {
                    if let Some(s) = err.downcast_ref::<crate::connections::BodyTooSlow>() {
                        slow = Some(s.to_string());
                    }
                    source = err.source();
                }
                let err = match slow {
                    Some(s) => ApiError::RequestTimeout(s),
                    None => ApiError::BadRequest(format!("照片数据未传完 (the upload was cut short): {e}")),
                };
                return (out.to_vec(), Some(err));
            }
        };
        if out.len() + piece.remaining() > limit {
            let n = limit - out.len();
            out.extend_from_slice(&piece.copy_to_bytes(n));
            let err = ApiError::PayloadTooLarge(format!("请求体超过 Content-Length ({limit} bytes)"));
            return (out.to_vec(), Some(err));
        }
        while piece.has_remaining() {
            let part = piece.chunk();
            let n = part.len();
            out.extend_from_slice(part);
            piece.advance(n);
        }
    }
    (out.to_vec(), None)
}

/// The photo routes.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let auth = warp::header::optional::<String>("authorization");
    let get = warp::path!("v1" / "photos" / String)
        .and(warp::get())
        .and(with_state.clone())
        .and(auth)
        .and(warp::header::optional::<String>("if-none-match"))
        .then(|hash, s, a, inm| async move { get_route(s, hash, a, inm).await.unwrap_or_else(|e| error_reply(&e)) });
    let status = warp::path!("v1" / "photos" / String / "upload")
        .and(warp::get())
        .and(with_state.clone())
        .and(auth)
        .then(|hash, s, a| async move { status_route(s, hash, a).await.unwrap_or_else(|e| error_reply(&e)) });
    let headers = auth
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<String>("x-photo-size"))
        .and(warp::header::optional::<String>("x-upload-offset"))
        .and(warp::header::optional::<String>("content-length"))
        .and(warp::header::optional::<String>("content-encoding"))
        .map(|authorization, content_type, size, offset, length, encoding| UploadHeaders {
            authorization,
            content_type,
            size,
            offset,
            length,
            encoding,
        });
    let put = warp::path!("v1" / "photos" / String)
        .and(warp::put())
        .and(with_state)
        .and(headers)
        // The body unread: the handler checks everything first.
        .and(warp::body::stream())
        .then(|hash, s, h, b| async move { put_route(s, hash, h, b).await.unwrap_or_else(|e| error_reply(&e)) });
    get.or(status).unify().or(put).unify()
}
