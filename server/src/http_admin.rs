//! Administrators' downloads: consistent snapshots (streamed, in constant
//! memory) and the audit log, every download audited first; and the people of
//! their territory: list, disable, enable, reset a password (each audited);
//! and the administration console's routes (territory tree with counts,
//! people search, add and move, devices, the audit log filtered and as CSV).

use crate::auth::HashPool;
use crate::error::ApiError;
use crate::http::{AppState, blocking, caller, error_reply, now_ms};
use crate::snapshot::{self, SnapshotRequest};
use crate::store::{DeviceSeen, Store};
use gridsync_shared::{DeviceId, PersonId, Role, TerritoryPath};
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
        return Err(ApiError::Forbidden(
            "只有管理员可以下载数据和审计日志 (only administrators may download snapshots and audit logs)".into(),
        ));
    }
    let scope = match territory {
        None | Some("") => c.person.territory.clone(),
        Some(t) => TerritoryPath::parse(t).map_err(|e| ApiError::BadRequest(e.to_string()))?,
    };
    if !c.person.territory.contains(&scope) {
        return Err(ApiError::Forbidden(format!(
            "{scope} 不在您管理的区域 {} 之内 (outside your territory)",
            c.person.territory
        )));
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
        store.append_audit_in(
            Some(&c.person.territory),
            &actor,
            "audit.download",
            &format!("after={}", q.after.unwrap_or(0)),
            now_ms(),
        )?;
        let entries = store.audit_after(q.after.unwrap_or(0), usize::MAX)?;
        let mut out = Vec::new();
        for e in entries.into_iter().filter(|e| e.visible_to(&c.person)) {
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
        return Err(ApiError::Forbidden("只有管理员可以管理人员 (only administrators may manage people)".into()));
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
        return Err(ApiError::Forbidden("只有管理员可以管理人员 (only administrators may manage people)".into()));
    }
    let id: PersonId = id.parse().map_err(|_| ApiError::BadRequest("人员编号不正确 (not a person id)".into()))?;
    let store = state.store.clone();
    let target = blocking(move || Ok(store.person(id)?)).await?;
    let target = target.ok_or_else(|| ApiError::NotFound(format!("没有这个人员 {id} (no such person)")))?;
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
        other => return Err(ApiError::NotFound(format!("没有这个操作 {other:?} (no such person action)"))),
    };
    Ok(json_reply(&body))
}

/// `GET /v1/admin/snapshot`, `GET /v1/admin/audit`, `GET /v1/admin/people` and
/// `POST /v1/admin/people/{id}/{disable|enable|reset-password}`.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let console = console_routes(state.clone());
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
    console.or(snapshot).unify().or(audit).unify().or(people).unify().or(person_action).unify()
}

// ------------------------------------------------------------------ console
// The administration console's routes: the territory tree with counts, adding
// and renaming territories, people search, adding and moving people, devices
// with when each was last seen, and the audit log filtered and as CSV. Each
// action goes through the same functions as the CLI (`crate::admin`), so the
// same rules hold and the same audit lines are written.

/// How often at most a device's "last seen" is written to the store: the
/// exact moment is kept in memory, the store holds it to within a minute, so
/// a restart forgets at most the last minute and a busy phone costs one small
/// write a minute, not one per request. A change in what the device holds
/// unsent is written at once (an administrator about to revoke it must know).
const SEEN_WRITE_EVERY_MS: i64 = 60_000;

/// A device's last request as this process knows it, and what the store holds.
#[derive(Clone, Copy)]
struct Seen {
    now: DeviceSeen,
    stored: Option<DeviceSeen>,
}

fn seen_map() -> &'static std::sync::Mutex<std::collections::HashMap<DeviceId, Seen>> {
    static SEEN: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<DeviceId, Seen>>> =
        std::sync::OnceLock::new();
    SEEN.get_or_init(Default::default)
}

/// Notes that `device` made an authenticated request at `now` (called by
/// [`crate::http::caller`] for every request, and by the sync route with
/// `pending`: the changes the phone still holds unsent after that sync, if it
/// said). Kept durably as [`SEEN_WRITE_EVERY_MS`] says; a failed write only
/// logs (a full disk must not refuse a sync for the sake of a timestamp).
pub fn note_seen(store: &dyn Store, device: DeviceId, now: i64, pending: Option<u64>) {
    let write = match seen_map().lock() {
        Ok(mut m) => {
            let e = m.entry(device).or_insert(Seen { now: DeviceSeen { at: now, pending: None }, stored: None });
            e.now.at = e.now.at.max(now);
            if pending.is_some() {
                e.now.pending = pending;
            }
            let due = match e.stored {
                None => true,
                Some(s) => now.saturating_sub(s.at) >= SEEN_WRITE_EVERY_MS || s.pending != e.now.pending,
            };
            if due {
                e.stored = Some(e.now);
            }
            due.then_some(e.now)
        }
        Err(_) => None,
    };
    if let Some(seen) = write
        && let Err(e) = store.note_device_seen(device, seen)
    {
        tracing::warn!(%device, error = %e, "could not record when the device was last seen");
    }
}

/// When `device` was last seen and what it held unsent: as this process
/// knows it, else as the store recorded it.
fn last_seen(store: &dyn Store, device: DeviceId) -> Option<DeviceSeen> {
    let here = seen_map().lock().ok().and_then(|m| m.get(&device).map(|s| s.now));
    let stored = store.device_seen(device).ok().flatten();
    match (here, stored) {
        (Some(h), Some(s)) if s.at > h.at => Some(s),
        (Some(h), _) => Some(h),
        (None, s) => s,
    }
}

/// The signed-in caller, who must be an administrator: anyone else is
/// refused (in Chinese). Every console and import route starts here.
pub(crate) async fn console_caller(
    state: &AppState,
    authorization: Option<String>,
) -> Result<crate::auth::Caller, ApiError> {
    let c = caller(state, authorization).await?;
    if c.person.role != Role::Administrator {
        return Err(ApiError::Forbidden("只有管理员可以使用管理控制台 (administrators only)".into()));
    }
    Ok(c)
}

/// Parses a territory path and checks it lies within the administrator's territory.
fn within(c: &crate::auth::Caller, path: &str) -> Result<TerritoryPath, ApiError> {
    let path = TerritoryPath::parse(path.trim())
        .map_err(|e| ApiError::BadRequest(format!("区域编码不正确：{e} (bad territory path)")))?;
    if !c.person.territory.contains(&path) {
        return Err(ApiError::Forbidden(format!(
            "{path} 不在您管理的区域 {} 之内 (outside your territory)",
            c.person.territory
        )));
    }
    Ok(path)
}

/// Counts for one node of the territory tree, its descendants included.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct NodeCounts {
    /// People whose territory is this node or inside it.
    pub people: u64,
    /// Household documents in its grids (voided ones included: the kind is read from the index, not the document).
    pub households: u64,
    /// Visit log documents in its grids (voided ones included, as above).
    pub visit_logs: u64,
    /// Cases not voided whose status is before 已办结 (read from each case's
    /// row where kept, else from its document).
    pub open_cases: u64,
}

/// One territory of the tree, with counts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TreeNode {
    /// Its path.
    pub path: TerritoryPath,
    /// Its name.
    pub name: String,
    /// 市 / 区县 / 街道 / 社区 / 网格.
    pub level: &'static str,
    /// Its counts.
    #[serde(flatten)]
    pub counts: NodeCounts,
}

/// Whether `record` counts as an open case in the tree: a case not voided
/// whose status is before 已办结 ([`CaseStatus::is_resolved`]).
///
/// [`CaseStatus::is_resolved`]: gridsync_shared::workflow::CaseStatus::is_resolved
fn is_open_case(record: &gridsync_shared::Record) -> bool {
    match record {
        gridsync_shared::Record::Case(c) => record.voided().is_none() && !c.standing().status.is_resolved(),
        _ => false,
    }
}

/// Whether the case `id` is open, read from its document (for a case whose
/// row is not kept or does not decode); None, with a warning, if it cannot be read.
fn case_open_from_document(
    store: &dyn crate::store::Store,
    id: gridsync_shared::DocId,
) -> Result<Option<bool>, ApiError> {
    let Some(doc) = store.load_doc(id)? else {
        tracing::warn!(doc = %id, "case listed but not stored: left out of the territory counts");
        return Ok(None);
    };
    let record = automerge::Automerge::load(&doc.bytes)
        .map_err(|e| e.to_string())
        .and_then(|d| gridsync_shared::records::read_record(&d).map_err(|e| e.to_string()));
    match record {
        Ok(r) => Ok(Some(is_open_case(&r))),
        Err(error) => {
            tracing::warn!(doc = %id, %error, "case left out of the territory counts");
            Ok(None)
        }
    }
}

/// The territories within `scope`, in path order, each with counts of itself
/// and everything inside it. Households and visit logs are counted from the
/// store's per-grid record counts ([`crate::store::Store::record_counts_by_grid`]);
/// open cases from each case's flattened row, a page at a time per grid
/// holding cases, and from its document only where it has no row that
/// decodes. No document is loaded when every case has its row.
pub fn territory_tree(store: &dyn crate::store::Store, scope: &TerritoryPath) -> Result<Vec<TreeNode>, ApiError> {
    use gridsync_shared::RecordKind;
    use std::collections::BTreeMap;
    let mut exact: BTreeMap<TerritoryPath, NodeCounts> = BTreeMap::new();
    for p in store.people()?.into_iter().filter(|p| scope.contains(&p.territory)) {
        exact.entry(p.territory).or_default().people += 1;
    }
    let mut with_cases = Vec::new();
    for (grid, kind, n) in store.record_counts_by_grid(scope)? {
        let counts = exact.entry(grid.clone()).or_default();
        match kind {
            RecordKind::Household => counts.households += n,
            RecordKind::VisitLog => counts.visit_logs += n,
            RecordKind::Case => with_cases.push(grid),
            RecordKind::Promise => {}
        }
    }
    for grid in with_cases {
        let mut open = 0;
        let mut after = None;
        loop {
            let page = store.records_in_scope(&grid, RecordKind::Case, after, crate::reports::PAGE)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for listing in &page {
                let from_row = match listing.row.as_deref().map(gridsync_shared::records::row::decode_row) {
                    Some(Ok(record)) => Some(is_open_case(&record)),
                    Some(Err(error)) => {
                        tracing::debug!(doc = %listing.id, %error, "case row unreadable: counted from its document");
                        None
                    }
                    None => None,
                };
                let is_open = match from_row {
                    Some(o) => Some(o),
                    None => case_open_from_document(store, listing.id)?,
                };
                if is_open == Some(true) {
                    open += 1;
                }
            }
            if page.len() < crate::reports::PAGE {
                break;
            }
        }
        exact.entry(grid).or_default().open_cases += open;
    }
    let mut nodes: Vec<TreeNode> = store
        .territories()?
        .into_iter()
        .filter(|t| scope.contains(&t.path))
        .map(|t| TreeNode {
            level: t.path.level().name_zh(),
            path: t.path,
            name: t.name,
            counts: NodeCounts::default(),
        })
        .collect();
    nodes.sort_by(|a, b| a.path.cmp(&b.path));
    let index: BTreeMap<TerritoryPath, usize> = nodes.iter().enumerate().map(|(i, n)| (n.path.clone(), i)).collect();
    for (path, c) in exact {
        for a in path.ancestors_and_self() {
            if let Some(&i) = index.get(&a) {
                let n = &mut nodes[i].counts;
                n.people += c.people;
                n.households += c.households;
                n.visit_logs += c.visit_logs;
                n.open_cases += c.open_cases;
            }
        }
    }
    Ok(nodes)
}

/// Query of `GET /v1/admin/territories`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeQuery {
    /// `false` for the names only (no pass over the documents: for pickers).
    pub counts: Option<bool>,
}

async fn territories_route(state: AppState, q: TreeQuery, authorization: Option<String>) -> Result<Response, ApiError> {
    let c = console_caller(&state, authorization).await?;
    let scope = c.person.territory.clone();
    let store = state.store.clone();
    let started = std::time::Instant::now();
    let nodes = if q.counts.unwrap_or(true) {
        blocking(move || territory_tree(store.as_ref(), &scope)).await?
    } else {
        blocking(move || {
            let mut nodes: Vec<TreeNode> = store
                .territories()?
                .into_iter()
                .filter(|t| scope.contains(&t.path))
                .map(|t| TreeNode {
                    level: t.path.level().name_zh(),
                    path: t.path,
                    name: t.name,
                    counts: NodeCounts::default(),
                })
                .collect();
            nodes.sort_by(|a, b| a.path.cmp(&b.path));
            Ok(nodes)
        })
        .await?
    };
    let ms = started.elapsed().as_millis() as u64;
    Ok(json_reply(&serde_json::json!({ "scope": c.person.territory, "nodes": nodes, "computed_ms": ms })))
}

/// Body of `POST /v1/admin/territories`: add a node, or rename a known one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerritoryBody {
    /// Its path, e.g. `xg/xn/cz/dh/g03`.
    pub path: String,
    /// Its (new) name.
    pub name: String,
}

async fn territory_put_route(
    state: AppState,
    body: TerritoryBody,
    authorization: Option<String>,
) -> Result<Response, ApiError> {
    let c = console_caller(&state, authorization).await?;
    let path = within(&c, &body.path)?;
    if body.name.trim().is_empty() {
        return Err(ApiError::BadRequest("请填写区域名称 (a territory needs a name)".into()));
    }
    let actor = format!("person:{}", c.person.username);
    let store = state.store.clone();
    let reply_name = body.name.trim().to_string();
    let reply_path = path.to_string();
    let (renamed, message) = blocking(move || {
        let known = store.territories()?.into_iter().find(|t| t.path == path);
        if let Some(parent) = path.parent()
            && known.is_none()
            && !store.territories()?.iter().any(|t| t.path == parent)
        {
            return Err(ApiError::BadRequest(format!("上级区域 {parent} 不存在，请先添加上级区域 (parent missing)")));
        }
        match known {
            Some(old) => {
                crate::admin::add_territory(store.as_ref(), &path, &body.name)?;
                let detail = format!("{path} {} -> {}", old.name, body.name.trim());
                store.append_audit_in(Some(&path), &actor, "territory.rename", &detail, now_ms())?;
                Ok((true, format!("renamed {path} to {}", body.name.trim())))
            }
            None => {
                let cmd = crate::admin::AdminCommand::Territory(crate::admin::TerritoryCommand::Add {
                    path: path.to_string(),
                    name: body.name.clone(),
                });
                Ok((false, crate::admin::execute(store.as_ref(), cmd, &actor)?.trim().to_string()))
            }
        }
    })
    .await?;
    Ok(json_reply(
        &serde_json::json!({ "path": reply_path, "name": reply_name, "renamed": renamed, "message": message }),
    ))
}

/// Query of `GET /v1/admin/people/search`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeopleSearch {
    /// Part of a name or username (empty: everyone).
    pub q: Option<String>,
    /// Only people in this territory or inside it.
    pub territory: Option<String>,
    /// Rows to skip.
    pub offset: Option<usize>,
    /// Rows per page (default 50, at most 200).
    pub limit: Option<usize>,
}

async fn people_search_route(
    state: AppState,
    q: PeopleSearch,
    authorization: Option<String>,
) -> Result<Response, ApiError> {
    let c = console_caller(&state, authorization).await?;
    let scope = match q.territory.as_deref().map(str::trim) {
        None | Some("") => c.person.territory.clone(),
        Some(t) => within(&c, t)?,
    };
    let needle = q.q.unwrap_or_default().trim().to_lowercase();
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let store = state.store.clone();
    let body = blocking(move || {
        let devices = store.devices()?;
        let mut found: Vec<_> = store
            .people()?
            .into_iter()
            .filter(|p| scope.contains(&p.territory))
            .filter(|p| {
                needle.is_empty()
                    || p.name.to_lowercase().contains(&needle)
                    || p.username.to_lowercase().contains(&needle)
                    || p.territory.as_str().contains(&needle)
            })
            .collect();
        found.sort_by(|a, b| (a.territory.as_str(), &a.username).cmp(&(b.territory.as_str(), &b.username)));
        let total = found.len();
        let mut out = Vec::new();
        for p in found.into_iter().skip(offset).take(limit) {
            let mine: Vec<_> = devices.iter().filter(|d| d.person == p.id).collect();
            let active = mine.iter().filter(|d| d.revoked_at.is_none()).count();
            let seen = mine.iter().filter_map(|d| last_seen(store.as_ref(), d.id).map(|s| s.at)).max();
            out.push(serde_json::json!({
                "id": p.id, "username": p.username, "name": p.name, "role": p.role,
                "territory": p.territory, "disabled_at": store.person_disabled_at(p.id)?,
                "active_devices": active, "last_seen": seen,
            }));
        }
        Ok(serde_json::json!({ "total": total, "offset": offset, "limit": limit, "people": out }))
    })
    .await?;
    Ok(json_reply(&body))
}

/// Body of `POST /v1/admin/people`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPersonBody {
    /// Sign-in name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// `field_staff`, `supervisor` or `administrator`.
    pub role: Role,
    /// The territory they are responsible for.
    pub territory: String,
}

async fn person_add_route(
    state: AppState,
    body: NewPersonBody,
    authorization: Option<String>,
) -> Result<Response, ApiError> {
    let c = console_caller(&state, authorization).await?;
    let territory = within(&c, &body.territory)?;
    if body.name.trim().is_empty() {
        return Err(ApiError::BadRequest("请填写姓名 (a name is needed)".into()));
    }
    let password = crate::admin::random_password();
    let actor = format!("person:{}", c.person.username);
    let store = state.store.clone();
    let cmd = crate::admin::AdminCommand::Person(crate::admin::PersonCommand::Add {
        username: body.username.trim().to_string(),
        name: body.name.clone(),
        role: body.role,
        territory: territory.to_string(),
        password: Some(password.clone()),
    });
    let username = body.username.trim().to_string();
    let person = blocking(move || {
        crate::admin::execute(store.as_ref(), cmd, &actor)?;
        store.person_by_username(&username)?.ok_or_else(|| ApiError::Internal("person not found after adding".into()))
    })
    .await?;
    Ok(json_reply(&serde_json::json!({
        "person": { "id": person.id, "username": person.username, "name": person.name, "role": person.role, "territory": person.territory },
        "password": password,
    })))
}

/// Body of `POST /v1/admin/people/{id}/move`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// The new territory.
    pub territory: String,
}

async fn person_move_route(
    state: AppState,
    id: String,
    body: MoveBody,
    authorization: Option<String>,
) -> Result<Response, ApiError> {
    let c = console_caller(&state, authorization).await?;
    let id: PersonId = id.parse().map_err(|_| ApiError::BadRequest("人员编号不正确 (not a person id)".into()))?;
    let territory = within(&c, &body.territory)?;
    let store = state.store.clone();
    let target = blocking(move || Ok(store.person(id)?)).await?;
    let target = target.ok_or_else(|| ApiError::NotFound(format!("没有这个人员 {id} (no such person)")))?;
    crate::admin::check_manages(Some(&c.person), &target)?;
    let actor = format!("person:{}", c.person.username);
    let store = state.store.clone();
    let cmd = crate::admin::AdminCommand::Person(crate::admin::PersonCommand::Move {
        username: target.username.clone(),
        territory: territory.to_string(),
    });
    let message = blocking(move || crate::admin::execute(store.as_ref(), cmd, &actor)).await?;
    Ok(json_reply(&serde_json::json!({ "person": id, "territory": territory, "message": message.trim() })))
}

/// Query of `GET /v1/admin/devices`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    /// Only this person's devices.
    pub person: Option<String>,
    /// Include revoked devices (default: no).
    pub revoked: Option<bool>,
    /// Rows to skip.
    pub offset: Option<usize>,
    /// Rows per page (default 100, at most 500).
    pub limit: Option<usize>,
}

async fn devices_route(state: AppState, q: DeviceQuery, authorization: Option<String>) -> Result<Response, ApiError> {
    let c = console_caller(&state, authorization).await?;
    let only: Option<PersonId> = match q.person.as_deref() {
        None | Some("") => None,
        Some(p) => Some(p.parse().map_err(|_| ApiError::BadRequest("人员编号不正确 (not a person id)".into()))?),
    };
    let scope = c.person.territory.clone();
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let with_revoked = q.revoked.unwrap_or(false);
    let store = state.store.clone();
    let body = blocking(move || {
        let people: std::collections::HashMap<PersonId, crate::store::Person> =
            store.people()?.into_iter().filter(|p| scope.contains(&p.territory)).map(|p| (p.id, p)).collect();
        let rows: Vec<_> = store
            .devices()?
            .into_iter()
            .filter(|d| people.contains_key(&d.person))
            .filter(|d| only.is_none_or(|p| p == d.person))
            .filter(|d| with_revoked || d.revoked_at.is_none())
            .collect();
        let mut rows: Vec<_> = rows.into_iter().map(|d| (last_seen(store.as_ref(), d.id), d)).collect();
        rows.sort_by_key(|(seen, d)| std::cmp::Reverse(seen.map_or(d.created_at, |s| s.at)));
        let total = rows.len();
        let out: Vec<_> = rows
            .into_iter()
            .skip(offset)
            .take(limit)
            .filter_map(|(seen, d)| {
                let p = people.get(&d.person)?;
                Some(serde_json::json!({
                    "id": d.id, "name": d.name, "person": p.id, "username": p.username, "person_name": p.name,
                    "territory": p.territory, "created_at": d.created_at, "revoked_at": d.revoked_at,
                    "last_seen": seen.map(|s| s.at),
                    // What the phone said it still held unsent after its last
                    // sync (null: it never said, e.g. an outside client).
                    "pending_changes": seen.and_then(|s| s.pending),
                }))
            })
            .collect();
        Ok(serde_json::json!({ "total": total, "offset": offset, "limit": limit, "devices": out }))
    })
    .await?;
    Ok(json_reply(&body))
}

/// Query of `GET /v1/admin/audit/search` and `GET /v1/admin/audit.csv`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// Part of the actor (e.g. a username).
    pub actor: Option<String>,
    /// Start of the action (e.g. `person.` or `person.disable`).
    pub action: Option<String>,
    /// From this time, Unix ms.
    pub from: Option<i64>,
    /// Before this time, Unix ms.
    pub to: Option<i64>,
    /// Only entries before this position (paging newest first).
    pub before: Option<u64>,
    /// Rows per page (default 100, at most 1,000; the CSV has every match).
    pub limit: Option<usize>,
}

impl AuditFilter {
    fn keeps(&self, e: &crate::store::AuditEntry) -> bool {
        self.actor.as_deref().map(str::trim).is_none_or(|a| a.is_empty() || e.actor.contains(a))
            && self.action.as_deref().map(str::trim).is_none_or(|a| a.is_empty() || e.action.starts_with(a))
            && self.from.is_none_or(|f| e.at >= f)
            && self.to.is_none_or(|t| e.at < t)
            && self.before.is_none_or(|b| e.seq < b)
    }
}

/// The audit entries `admin` may read ([`crate::store::AuditEntry::visible_to`])
/// that match `f`, newest first, at most `limit`; and whether more match.
/// Reads the log a page at a time.
fn audit_matching(
    store: &dyn crate::store::Store,
    admin: &crate::store::Person,
    f: &AuditFilter,
    limit: usize,
) -> Result<(Vec<crate::store::AuditEntry>, bool), ApiError> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_after(after, 1000)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        let n = page.len();
        all.extend(page.into_iter().filter(|e| f.keeps(e) && e.visible_to(admin)));
        if n < 1000 {
            break;
        }
    }
    all.reverse();
    let more = all.len() > limit;
    all.truncate(limit);
    Ok((all, more))
}

async fn audit_search_route(
    state: AppState,
    f: AuditFilter,
    authorization: Option<String>,
) -> Result<Response, ApiError> {
    let c = console_caller(&state, authorization).await?;
    let limit = f.limit.unwrap_or(100).clamp(1, 1000);
    let store = state.store.clone();
    let (entries, more) = blocking(move || audit_matching(store.as_ref(), &c.person, &f, limit)).await?;
    let next_before = if more { entries.last().map(|e| e.seq) } else { None };
    Ok(json_reply(&serde_json::json!({ "entries": entries, "next_before": next_before })))
}

/// A CSV field, quoted when it needs to be, with a leading `=+-@` defused so
/// a spreadsheet does not run it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

async fn audit_csv_route(state: AppState, f: AuditFilter, authorization: Option<String>) -> Result<Response, ApiError> {
    let c = console_caller(&state, authorization).await?;
    let store = state.store.clone();
    let actor = format!("person:{}", c.person.username);
    let csv = blocking(move || {
        let detail = format!(
            "csv actor={} action={} from={} to={}",
            f.actor.as_deref().unwrap_or(""),
            f.action.as_deref().unwrap_or(""),
            f.from.map(|v| v.to_string()).unwrap_or_default(),
            f.to.map(|v| v.to_string()).unwrap_or_default()
        );
        store.append_audit_in(Some(&c.person.territory), &actor, "audit.download", &detail, now_ms())?;
        let (entries, _) = audit_matching(store.as_ref(), &c.person, &f, usize::MAX - 1)?;
        let mut out = String::from("\u{feff}序号,时间(UTC),操作人,操作,详情,区域\n");
        for e in entries {
            let at = chrono_like(e.at);
            out.push_str(&format!(
                "{},{},{},{},{},{}\n",
                e.seq,
                at,
                csv_field(&e.actor),
                csv_field(&e.action),
                csv_field(&e.detail),
                csv_field(e.territory.as_ref().map_or("", |t| t.as_str()))
            ));
        }
        Ok(out)
    })
    .await?;
    let mut r = Response::new(csv.into());
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    r.headers_mut()
        .insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"gridsync-audit.csv\""));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Unix ms as `YYYY-MM-DD HH:MM:SS` (UTC), without a date library.
fn chrono_like(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A JSON body of at most 64 KiB.
fn json_body<T: serde::de::DeserializeOwned + Send>() -> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(64 * 1024).and(warp::body::json())
}

/// The console's routes: `GET /v1/admin/territories[?counts=false]`, `POST /v1/admin/territories`,
/// `GET /v1/admin/people/search`, `POST /v1/admin/people`,
/// `POST /v1/admin/people/{id}/move`, `GET /v1/admin/devices`,
/// `GET /v1/admin/audit/search` and `GET /v1/admin/audit.csv`.
fn console_routes(state: AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let auth = warp::header::optional::<String>("authorization");
    let tree = warp::path!("v1" / "admin" / "territories")
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::<TreeQuery>())
        .and(auth)
        .then(|s, q, a| async move { territories_route(s, q, a).await.unwrap_or_else(|e| error_reply(&e)) });
    let territory_put = warp::path!("v1" / "admin" / "territories")
        .and(warp::post())
        .and(with_state.clone())
        .and(json_body())
        .and(auth)
        .then(|s, b, a| async move { territory_put_route(s, b, a).await.unwrap_or_else(|e| error_reply(&e)) });
    let search = warp::path!("v1" / "admin" / "people" / "search")
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::<PeopleSearch>())
        .and(auth)
        .then(|s, q, a| async move { people_search_route(s, q, a).await.unwrap_or_else(|e| error_reply(&e)) });
    let add = warp::path!("v1" / "admin" / "people")
        .and(warp::post())
        .and(with_state.clone())
        .and(json_body())
        .and(auth)
        .then(|s, b, a| async move { person_add_route(s, b, a).await.unwrap_or_else(|e| error_reply(&e)) });
    let mv = warp::path!("v1" / "admin" / "people" / String / "move")
        .and(warp::post())
        .and(with_state.clone())
        .and(json_body())
        .and(auth)
        .then(|id, s, b, a| async move { person_move_route(s, id, b, a).await.unwrap_or_else(|e| error_reply(&e)) });
    let devices = warp::path!("v1" / "admin" / "devices")
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::<DeviceQuery>())
        .and(auth)
        .then(|s, q, a| async move { devices_route(s, q, a).await.unwrap_or_else(|e| error_reply(&e)) });
    let audit_search = warp::path!("v1" / "admin" / "audit" / "search")
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::<AuditFilter>())
        .and(auth)
        .then(|s, q, a| async move { audit_search_route(s, q, a).await.unwrap_or_else(|e| error_reply(&e)) });
    let audit_csv = warp::path!("v1" / "admin" / "audit.csv")
        .and(warp::get())
        .and(with_state)
        .and(warp::query::<AuditFilter>())
        .and(auth)
        .then(|s, q, a| async move { audit_csv_route(s, q, a).await.unwrap_or_else(|e| error_reply(&e)) });
    tree.or(territory_put)
        .unify()
        .or(search)
        .unify()
        .or(add)
        .unify()
        .or(mv)
        .unify()
        .or(devices)
        .unify()
        .or(audit_search)
        .unify()
        .or(audit_csv)
        .unify()
}
