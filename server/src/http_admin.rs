//! Administrators' downloads: consistent snapshots (streamed, in constant
//! memory) and the audit log, every download audited first; and the people of
//! their territory: list, disable, enable, reset a password (each audited).

use crate::auth::HashPool;
use crate::error::ApiError;
use crate::http::{AppState, blocking, caller, error_reply, now_ms};
use crate::snapshot::{self, SnapshotRequest};
use gridsync_shared::{PersonId, Role, TerritoryPath};
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
    /// Set to `true` to add every photo the records reference to the archive.
    pub photos: Option<bool>,
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
        photos: q.photos.unwrap_or(false),
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

fn json_reply<T: serde::Serialize>(body: &T) -> Response {
    warp::reply::json(body).into_response()
}

/// The people of the administrator's territory, with whether each is
/// disabled and how many active devices they have.
async fn people_route(state: AppState, authorization: Option<String>) -> Result<Response, ApiError> {
    let c = caller(&state, authorization).await?;
    if c.person.role != Role::Administrator {
        return Err(ApiError::Forbidden("only administrators may manage people".into()));
    }
    let scope = admin_scope(&c, None)?;
    let store = state.store.clone();
    let people = blocking(move || {
        let devices = store.devices()?;
        let mut out = Vec::new();
        for p in store.people()?.into_iter().filter(|p| scope.contains(&p.territory)) {
            let active = devices.iter().filter(|d| d.person == p.id && d.revoked_at.is_none()).count();
            out.push(serde_json::json!({
                "id": p.id, "username": p.username, "name": p.name, "role": p.role,
                "territory": p.territory, "disabled_at": store.person_disabled_at(p.id)?,
                "active_devices": active,
            }));
        }
        Ok(out)
    })
    .await?;
    Ok(json_reply(&people))
}

/// One action on one person: `disable`, `enable` or `reset-password`.
async fn person_action_route(
    state: AppState,
    id: String,
    action: String,
    authorization: Option<String>,
) -> Result<Response, ApiError> {
    let c = caller(&state, authorization).await?;
    if c.person.role != Role::Administrator {
        return Err(ApiError::Forbidden("only administrators may manage people".into()));
    }
    let id: PersonId = id.parse().map_err(|_| ApiError::BadRequest("not a person id".into()))?;
    let store = state.store.clone();
    let target = blocking(move || Ok(store.person(id)?)).await?;
    let target = target.ok_or_else(|| ApiError::NotFound(format!("no person {id}")))?;
    crate::admin::check_manages(Some(&c.person), &target)?;
    let actor = format!("person:{}", c.person.username);
    let store = state.store.clone();
    let body = match action.as_str() {
        "disable" => {
            let out = blocking(move || crate::admin::disable_person(store.as_ref(), Some(&c.person), &target, &actor))
                .await?;
            serde_json::json!({ "person": id, "disabled": true, "message": out })
        }
        "enable" => {
            let out =
                blocking(move || crate::admin::enable_person(store.as_ref(), Some(&c.person), &target, &actor)).await?;
            serde_json::json!({ "person": id, "disabled": false, "message": out })
        }
        "reset-password" => {
            let password = crate::admin::random_password();
            let hash = {
                let password = password.clone();
                HashPool::shared().run(move || crate::auth::hash_password(&password)).await??
            };
            let out =
                blocking(move || crate::admin::reset_password(store.as_ref(), Some(&c.person), &target, hash, &actor))
                    .await?;
            serde_json::json!({ "person": id, "password": password, "message": out })
        }
        other => return Err(ApiError::NotFound(format!("no person action {other:?}"))),
    };
    Ok(json_reply(&body))
}

/// `GET /v1/admin/snapshot`, `GET /v1/admin/audit`, `GET /v1/admin/people` and
/// `POST /v1/admin/people/{id}/{disable|enable|reset-password}`.
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
        .and(with_state.clone())
        .and(warp::query::<AuditQuery>())
        .and(auth)
        .then(|s, q, a| async move { audit_route(s, q, a).await.unwrap_or_else(|e| error_reply(&e)) });
    let people = warp::path!("v1" / "admin" / "people")
        .and(warp::get())
        .and(with_state.clone())
        .and(auth)
        .then(|s, a| async move { people_route(s, a).await.unwrap_or_else(|e| error_reply(&e)) });
    let person_action =
        warp::path!("v1" / "admin" / "people" / String / String).and(warp::post()).and(with_state).and(auth).then(
            |id, action, s, a| async move {
                person_action_route(s, id, action, a).await.unwrap_or_else(|e| error_reply(&e))
            },
        );
    snapshot.or(audit).unify().or(people).unify().or(person_action).unify()
}
