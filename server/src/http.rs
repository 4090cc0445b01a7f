//! The HTTP edge: warp routes that decode, call the function that does the
//! work, and encode. Errors become statuses in [`crate::error`] only.

use crate::auth::{self, Caller};
use crate::backpressure::{SyncGate, SyncLimits};
use crate::connections::{BodyTooSlow, ConnectionStats};
use crate::error::ApiError;
use crate::store::Store;
use crate::sync::{self, DocLocks};
use bytes::Bytes;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use gridsync_shared::protocol::{self, MAX_DECODED_BYTES, MAX_REQUEST_BYTES, SyncRequest};
use gridsync_shared::{DeviceId, Role};
use std::convert::Infallible;
use std::io::{Read, Write};
use std::sync::Arc;
use warp::http::{StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Where the phone app's files come from.
    pub app: crate::app::AppSource,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Per-document push locks.
    pub locks: Arc<DocLocks>,
    /// Syncs worked on at once (one per core) and their short queue: when a
    /// whole district comes back online together, the excess is told at once
    /// to retry later (503 with `Retry-After`), so no request waits long and
    /// memory stays bounded.
    pub sync_gate: Arc<SyncGate>,
    /// What the connection layer has done, for `/healthz`.
    pub edge: Arc<ConnectionStats>,
    /// Photo uploads in progress, bounded apart from the syncs.
    pub upload_gate: Arc<crate::photos::UploadGate>,
    /// What `/metrics` counts.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Who may read `/metrics`.
    pub metrics_access: crate::metrics::MetricsAccess,
}

impl AppState {
    /// State over `store`, serving the app from `app`, with default sync limits.
    pub fn new(store: Arc<dyn Store>, app: crate::app::AppSource) -> Self {
        Self::with_limits(store, app, SyncLimits::default(), Arc::new(ConnectionStats::default()))
    }

    /// State with these sync limits, reporting the connection layer's `edge` figures.
    pub fn with_limits(
        store: Arc<dyn Store>,
        app: crate::app::AppSource,
        sync: SyncLimits,
        edge: Arc<ConnectionStats>,
    ) -> Self {
        Self {
            app,
            store,
            locks: Arc::new(DocLocks::default()),
            sync_gate: Arc::new(SyncGate::new(sync)),
            edge,
            upload_gate: Arc::new(crate::photos::UploadGate::new(crate::photos::PhotoLimits::default())),
            metrics: Arc::default(),
            metrics_access: crate::metrics::MetricsAccess::default(),
        }
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn json_reply<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// The response for an error.
pub fn error_reply(e: &ApiError) -> Response {
    let (status, _) = e.status();
    if matches!(e, ApiError::Busy { .. }) {
        // Deliberate back-pressure, by the thousand in a reconnect storm: not an error.
        tracing::debug!(retry_after_s = ?e.retry_after_s(), "sync refused: busy");
    } else if status.is_server_error() {
        tracing::error!(error = %e, "request failed");
    }
    let mut reply = json_reply(status, &e.body());
    reply.extensions_mut().insert(crate::metrics::ErrorCode(e.status().1));
    if let Some(seconds) = e.retry_after_s() {
        reply.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    }
    reply
}

fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|e| error_reply(&e))
}

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(format!("worker failed: {e}")))?
}

pub(crate) async fn caller(state: &AppState, authorization: Option<String>) -> Result<Caller, ApiError> {
    let store = state.store.clone();
    blocking(move || {
        let c = auth::authenticate(store.as_ref(), authorization.as_deref())?;
        crate::http_admin::note_seen(store.as_ref(), c.device.id, now_ms(), None);
        Ok(c)
    })
    .await
}

/// Reads a request body, gunzipping it if it says so, refusing anything that
/// decompresses beyond the limit.
pub fn decode_body(body: &[u8], content_encoding: Option<&str>) -> Result<Vec<u8>, ApiError> {
    match content_encoding.map(str::trim) {
        None | Some("identity") => Ok(body.to_vec()),
        Some("gzip") => {
            let mut out = Vec::new();
            GzDecoder::new(body)
                .take(MAX_DECODED_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| ApiError::BadRequest(format!("body is not valid gzip: {e}")))?;
            if out.len() > MAX_DECODED_BYTES {
                return Err(ApiError::PayloadTooLarge(format!(
                    "body decompresses to more than {MAX_DECODED_BYTES} bytes"
                )));
            }
            Ok(out)
        }
        Some(other) => {
            Err(ApiError::UnsupportedMediaType(format!("content-encoding {other:?} is not supported; use gzip")))
        }
    }
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, ApiError> {
    let mut enc = GzEncoder::new(Vec::with_capacity(bytes.len() / 3 + 64), Compression::fast());
    enc.write_all(bytes).map_err(|e| ApiError::Internal(e.to_string()))?;
    enc.finish().map_err(|e| ApiError::Internal(e.to_string()))
}

/// Reads a request body of at most `limit` bytes as it arrives (no allocation
/// for what is only declared).
async fn read_body(
    body: impl futures_util::Stream<Item = Result<impl bytes::Buf, warp::Error>>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut out = bytes::BytesMut::new();
    futures_util::pin_mut!(body);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if let Some(slow) = err.downcast_ref::<BodyTooSlow>() {
                    return ApiError::RequestTimeout(slow.to_string());
                }
                source = err.source();
            }
            ApiError::BadRequest(format!("reading the request body: {e}"))
        })?;
        if out.len() + chunk.remaining() > limit {
            return Err(ApiError::PayloadTooLarge(format!("body larger than {limit} bytes")));
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            out.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    Ok(out.freeze())
}

/// `POST /v1/sync`. The caller is authenticated before a byte of the body is
/// read (an unauthenticated request declaring 8 MB costs nothing), the body is
/// read before the sync queue is asked (a refused phone learns it from a
/// response it can read, not a reset), and a sync waits at most a few seconds
/// for a worker or is refused with `Retry-After`.
async fn sync_route(
    state: AppState,
    authorization: Option<String>,
    content_encoding: Option<String>,
    accept_encoding: Option<String>,
    pending_changes: Option<String>,
    body: impl futures_util::Stream<Item = Result<impl bytes::Buf, warp::Error>>,
) -> Result<Response, ApiError> {
    let arrived = std::time::Instant::now();
    let caller = caller(&state, authorization).await?;
    let device = caller.device.id;
    let body = read_body(body, MAX_REQUEST_BYTES as usize).await?;
    let worker = state.sync_gate.enter(arrived, body.len()).await?;
    let waited = worker.waited;
    let raw = decode_body(&body, content_encoding.as_deref())?;
    let request: SyncRequest = protocol::decode(&raw).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // What the phone holds unsent after this sync: what it said it held,
    // less what this request carried (acknowledged, or refused and rolled back).
    let carried: u64 = request.push.iter().map(|p| p.changes.len() as u64).sum();
    let pending = pending_changes.and_then(|h| h.trim().parse::<u64>().ok()).map(|n| n.saturating_sub(carried));
    let store = state.store.clone();
    let locks = state.locks.clone();
    let response = blocking(move || {
        let response = sync::sync(store.as_ref(), &locks, &caller, request, now_ms())?;
        if pending.is_some() {
            crate::http_admin::note_seen(store.as_ref(), device, now_ms(), pending);
        }
        Ok(response)
    })
    .await?;
    let encoded = protocol::encode(&response);
    let wants_gzip = accept_encoding.is_some_and(|a| a.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut reply = if wants_gzip {
        let mut r = Response::new(gzip(&encoded)?.into());
        r.headers_mut().insert(header::CONTENT_ENCODING, header::HeaderValue::from_static("gzip"));
        r
    } else {
        Response::new(encoded.into())
    };
    reply.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/x-gridsync"));
    reply.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    drop(worker);
    // How long the request waited before the server started on it, for the
    // load generator and the browser's network panel.
    let timing = format!("queue;dur={:.1}", waited.as_secs_f64() * 1000.0);
    if let Ok(v) = header::HeaderValue::from_str(&timing) {
        reply.headers_mut().insert("server-timing", v);
    }
    state.metrics.sync_served(arrived.elapsed(), &response.results);
    Ok(reply)
}

/// `GET /healthz`: 200 `ok` while the store can write (a cheap probe, at
/// most once a second), else 503 `degraded` with the reason; with the sync
/// queue's and the connection layer's figures.
async fn health_route(state: AppState) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let (writable, head_seq) = blocking(move || {
        let writable = store.check_writable();
        Ok((writable, store.head_seq().ok()))
    })
    .await?;
    let mut body = serde_json::json!({
        "status": "ok", "version": env!("CARGO_PKG_VERSION"), "head_seq": head_seq,
        "sync": state.sync_gate.figures(), "connections": state.edge.figures(),
    });
    let status = match writable {
        Ok(()) => StatusCode::OK,
        Err(e) => {
            body["status"] = "degraded".into();
            body["reason"] = e.to_string().into();
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    Ok(json_reply(status, &body))
}

async fn revoke_route(state: AppState, id: String, authorization: Option<String>) -> Result<Response, ApiError> {
    let c = caller(&state, authorization).await?;
    if c.person.role != Role::Administrator {
        return Err(ApiError::Forbidden("only administrators may revoke devices".into()));
    }
    let id: DeviceId = id.parse().map_err(|_| ApiError::BadRequest("not a device id".into()))?;
    let store = state.store.clone();
    let actor = format!("person:{}", c.person.username);
    let out = blocking(move || crate::admin::revoke_device(store.as_ref(), Some(&c.person), id, &actor)).await?;
    Ok(json_reply(StatusCode::OK, &serde_json::json!({ "revoked": id, "message": out })))
}

async fn report_route(
    state: AppState,
    params: Vec<(String, String)>,
    auth: Option<String>,
) -> Result<Response, ApiError> {
    let c = caller(&state, auth).await?;
    let now = now_ms();
    let q = crate::reports::ReportQuery::for_person(&c.person, &params, now)?;
    let (store, actor, format) = (state.store.clone(), format!("person:{}", c.person.username), q.format);
    let report = blocking(move || {
        store.append_audit_in(Some(&q.scope), &actor, "report.download", &q.describe(), now)?;
        crate::reports::report(store.as_ref(), &q.scope, q.from, q.to, now)
    })
    .await?;
    crate::reports::reply(&report, format)
}

/// Every route of the server.
pub fn routes(state: AppState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let with_state = {
        let state = state.clone();
        warp::any().map(move || state.clone())
    };
    let auth = warp::header::optional::<String>("authorization");

    let health = warp::path!("healthz")
        .and(warp::get())
        .and(with_state.clone())
        .then(|s| async move { respond(health_route(s).await) });
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state.clone())
        .and(crate::connections::peer_addr())
        .and(auth)
        .and(warp::header::optional::<String>("forwarded"))
        .and(warp::header::optional::<String>("x-forwarded-for"))
        .then(|s, peer, a, fwd: Option<String>, xff: Option<String>| async move {
            respond(crate::metrics::route(s, peer, a, fwd.is_some() || xff.is_some()).await)
        });
    let sync = warp::path!("v1" / "sync")
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_REQUEST_BYTES))
        .and(with_state.clone())
        .and(auth)
        .and(warp::header::optional::<String>("content-encoding"))
        .and(warp::header::optional::<String>("accept-encoding"))
        .and(warp::header::optional::<String>("x-pending-changes"))
        // The body unread: the handler authenticates first.
        .and(warp::body::stream())
        .then(|s, a, ce, ae, pc, b| async move { respond(sync_route(s, a, ce, ae, pc, b).await) });
    let revoke = warp::path!("v1" / "admin" / "devices" / String / "revoke")
        .and(warp::post())
        .and(with_state.clone())
        .and(auth)
        .then(|id, s, a| async move { respond(revoke_route(s, id, a).await) });
    let report = warp::path!("v1" / "admin" / "report")
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::<Vec<(String, String)>>())
        .and(auth)
        .then(|s, q, a| async move { respond(report_route(s, q, a).await) });

    let app = warp::get()
        .and(warp::path::tail())
        .and(warp::header::optional::<String>("accept-encoding"))
        .and(warp::header::optional::<String>("if-none-match"))
        .and(with_state.clone())
        .then(|tail: warp::path::Tail, ae, inm, s: AppState| async move {
            let tail = tail.as_str().to_string();
            if tail == "v1" || tail.starts_with("v1/") {
                return error_reply(&ApiError::NotFound("no such endpoint".into()));
            }
            crate::app::serve_file(s.app.clone(), tail, ae, inm).await
        });

    let counted = state.metrics.clone();
    health
        .or(metrics)
        .unify()
        .or(sync)
        .unify()
        .or(crate::http_auth::routes(state.clone()))
        .unify()
        .or(crate::http_directory::routes(state.clone()))
        .unify()
        .or(revoke)
        .unify()
        .or(crate::http_admin::routes(state.clone()))
        .unify()
        .or(report)
        .unify()
        .or(crate::http_photos::routes(state.clone()))
        .unify()
        .or(crate::http_imports::routes(state.clone()))
        .unify()
        .or(app)
        .unify()
        .recover(recover)
        .unify()
        .map(move |reply: Response| {
            counted.answered(&reply);
            reply
        })
        .with(warp::log::custom(|info| {
            tracing::info!(
                method = %info.method(), path = info.path(), status = info.status().as_u16(),
                ms = info.elapsed().as_secs_f64() * 1000.0, "request"
            )
        }))
}

/// Turns warp's own rejections (no route, wrong method, body limits) into our errors.
async fn recover(r: Rejection) -> Result<Response, Infallible> {
    let e = if r.is_not_found() {
        ApiError::NotFound("no such endpoint".into())
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge(format!("body larger than the limit ({MAX_REQUEST_BYTES} bytes for sync)"))
    } else if r.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::BadRequest("a Content-Length header is required".into())
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        return Ok(json_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            &serde_json::json!({"error": "method_not_allowed", "message": "method not allowed"}),
        ));
    } else if let Some(e) = r.find::<warp::reject::InvalidHeader>() {
        ApiError::BadRequest(e.to_string())
    } else {
        ApiError::BadRequest(format!("{r:?}"))
    };
    Ok(error_reply(&e))
}
