//! Administrators' downloads: consistent snapshots (streamed, in constant
//! memory) and the audit log. Every download is itself audited first.

use crate::error::ApiError;
use crate::http::{AppState, blocking, caller, error_reply, now_ms};
use crate::snapshot::{self, SnapshotRequest};
use gridsync_shared::{Role, TerritoryPath};
use serde::Deserialize;
use warp::http::{HeaderValue, header};
use warp::reply::Response;
use warp::{Filter, Reply};

/// Query of `GET /v1/admin/snapshot`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotQuery {
    /// `csv`, `xlsx`, `jsonl` or `bundle`.
    pub format: String,
    /// Territory path (default: the administrator's).
    pub territory: Option<String>,
    /// Server time in Unix ms the snapshot is as of (default: now).
    pub as_of: Option<i64>,
    /// Set to `true` to export ID and phone numbers unmasked; needs `reason`.
    pub unmask: Option<bool>,
    /// Why the unmasked export is needed (recorded in the audit log).
    pub reason: Option<String>,
}

/// Checks the caller is an administrator and the territory is theirs.
fn admin_scope(c: &crate::auth::Caller, territory: Option<&str>) -> Result<TerritoryPath, ApiError> {
    if c.person.role != Role::Administrator {
        return Err(ApiError::Forbidden("only administrators may download snapshots and audit logs".into()));
    }
    let scope = match territory {
        None | Some("") => c.person.territory.clone(),
        Some(t) => TerritoryPath::parse(t).map_err(|e| ApiError::BadRequest(e.to_string()))?,
    };
    if !c.person.territory.contains(&scope) {
        return Err(ApiError::Forbidden(format!("{scope} is outside your territory {}", c.person.territory)));
    }
    Ok(scope)
}

async fn snapshot_route(
    state: AppState,
    q: SnapshotQuery,
    authorization: Option<String>,
) -> Result<Response, ApiError> {
    let c = caller(&state, authorization).await?;
    let scope = admin_scope(&c, q.territory.as_deref())?;
    let req = SnapshotRequest {
        format: q.format.clone(),
        territory: Some(scope.to_string()),
        as_of: q.as_of,
        unmask: q.unmask.unwrap_or(false),
        reason: q.reason,
    };
    let store = state.store.clone();
    let actor = format!("person:{}", c.person.username);
    let prepared = {
        let store = store.clone();
        blocking(move || snapshot::prepare(store.as_ref(), &req, &actor)).await?
    };
    let seq = prepared.seq();
    let mut rx = snapshot::spawn_export(store, prepared);
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut r = warp::reply::stream(stream).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    let name = format!("attachment; filename=\"gridsync-snapshot-{seq}-{}.zip\"", q.format);
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Query of `GET /v1/admin/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only entries after this position.
    pub after: Option<u64>,
}

async fn audit_route(state: AppState, q: AuditQuery, authorization: Option<String>) -> Result<Response, ApiError> {
    let c = caller(&state, authorization).await?;
    admin_scope(&c, None)?;
    let store = state.store.clone();
    let actor = format!("person:{}", c.person.username);
    let lines = blocking(move || {
        store.append_audit(&actor, "audit.download", &format!("after={}", q.after.unwrap_or(0)), now_ms())?;
        let entries = store.audit_after(q.after.unwrap_or(0), usize::MAX)?;
        let mut out = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut out, &e).map_err(|e| ApiError::Internal(e.to_string()))?;
            out.push(b'\n');
        }
        Ok(out)
    })
    .await?;
    let mut r = Response::new(lines.into());
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson; charset=utf-8"));
    r.headers_mut()
        .insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"gridsync-audit.jsonl\""));
    Ok(r)
}

/// `GET /v1/admin/snapshot` and `GET /v1/admin/audit`.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let auth = warp::header::optional::<String>("authorization");
    let snapshot = warp::path!("v1" / "admin" / "snapshot")
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::<SnapshotQuery>())
        .and(auth)
        .then(|s, q, a| async move { snapshot_route(s, q, a).await.unwrap_or_else(|e| error_reply(&e)) });
    let audit = warp::path!("v1" / "admin" / "audit")
        .and(warp::get())
        .and(with_state)
        .and(warp::query::<AuditQuery>())
        .and(auth)
        .then(|s, q, a| async move { audit_route(s, q, a).await.unwrap_or_else(|e| error_reply(&e)) });
    snapshot.or(audit).unify()
}
