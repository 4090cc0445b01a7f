//! The city imports over HTTP, for administrators and within their territory:
//! templates, an upload that is checked at once (the dry run: nothing is
//! written), a confirmation that imports in the background with progress, the
//! initial passwords of a people import (downloadable once), and the history.

use crate::error::ApiError;
use crate::http::{AppState, blocking, error_reply};
use crate::imports::{self, ImportRun, Importer, Status};
use bytes::Buf;
use futures_util::{Stream, StreamExt};
use gridsync_shared::imports::ImportKind;
use serde::Deserialize;
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Reply};

/// The largest file an upload may be (a city's 人口信息表 of 300,000
/// households as XLSX is about 30 MiB).
pub const MAX_IMPORT_BYTES: u64 = 64 * 1024 * 1024;
/// Runs the history lists at most.
const HISTORY: usize = 200;

/// How long an uploaded file waits for its confirmation; older ones are
/// removed (the dry run stays in the history; confirming it then asks for the file again).
const UPLOAD_KEPT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// Why a run left `running` by a server that stopped is marked failed.
pub const INTERRUPTED: &str = "服务器在导入过程中停止，导入中断；已写入的保留。重新上传同一文件导入即可补全（不会重复） (interrupted by a server stop)";

/// Where uploaded files wait for their confirmation (removed once imported).
fn upload_dir() -> PathBuf {
    std::env::temp_dir().join("gridsync-imports")
}

/// Removes uploads older than [`UPLOAD_KEPT`]; returns how many.
fn remove_stale_uploads() -> usize {
    let Ok(entries) = std::fs::read_dir(upload_dir()) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > UPLOAD_KEPT);
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// What a starting server does for imports: a run some earlier process left
/// `running` (it stopped mid-write) is marked failed with [`INTERRUPTED`] —
/// what it wrote stays, and importing the same file again completes it,
/// since imports are idempotent — and uploads older than a day are removed.
/// Nothing runs yet in this process, so every `running` run is interrupted.
pub fn on_start(store: &dyn crate::store::Store) -> Result<(), imports::ImportError> {
    for mut run in ImportRun::history(store, usize::MAX)? {
        if run.status == Status::Running {
            run.status = Status::Failed;
            run.error = Some(INTERRUPTED.into());
            run.save(store)?;
            tracing::warn!(import = %run.id, "an import was interrupted by a server stop; marked failed");
        }
    }
    let removed = remove_stale_uploads();
    if removed > 0 {
        tracing::info!(removed, "removed uploads that waited more than a day for confirmation");
    }
    Ok(())
}

fn upload_path(id: &str) -> PathBuf {
    upload_dir().join(id)
}

/// Runs being written in this process: a second confirmation is refused.
fn running() -> &'static Mutex<HashSet<String>> {
    static RUNNING: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    RUNNING.get_or_init(Default::default)
}

/// The caller, who must be an administrator.
async fn admin(state: &AppState, authorization: Option<String>) -> Result<crate::auth::Caller, ApiError> {
    crate::http_admin::console_caller(state, authorization).await
}

fn importer(c: &crate::auth::Caller) -> Importer {
    Importer { admin: Some(c.person.clone()), actor: format!("person:{}", c.person.username) }
}

/// Whether `c` may see `run`: it was made within their territory.
fn visible(c: &crate::auth::Caller, run: &ImportRun) -> bool {
    match &run.scope {
        Some(scope) => c.person.territory.contains(scope),
        None => c.person.territory.parent().is_none(),
    }
}

async fn load_visible(state: &AppState, c: &crate::auth::Caller, id: String) -> Result<ImportRun, ApiError> {
    let store = state.store.clone();
    let run = blocking(move || Ok(ImportRun::load(store.as_ref(), &id)?)).await?;
    match run {
        Some(run) if visible(c, &run) => Ok(run),
        _ => Err(ApiError::NotFound("没有这条导入记录 (no such import)".into())),
    }
}

fn attachment(body: Vec<u8>, content_type: &'static str, name: &str) -> Response {
    let mut r = Response::new(body.into());
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // RFC 5987: the Chinese file name percent-encoded, with an ASCII fallback.
    let encoded: String = name
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'.' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"import\"; filename*=UTF-8''{encoded}")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn template_route(state: AppState, file: String, authorization: Option<String>) -> Result<Response, ApiError> {
    admin(&state, authorization).await?;
    let (kind, ext) = file.rsplit_once('.').ok_or_else(|| ApiError::NotFound("no such template".into()))?;
    let kind = ImportKind::parse(kind).ok_or_else(|| ApiError::NotFound("no such template".into()))?;
    let name = imports::templates::file_name(kind, ext);
    match ext {
        "xlsx" => {
            let bytes = imports::templates::xlsx(kind)?;
            Ok(attachment(bytes, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", &name))
        }
        "csv" => Ok(attachment(imports::templates::csv(kind), "text/csv; charset=utf-8", &name)),
        _ => Err(ApiError::NotFound("no such template".into())),
    }
}

/// Query of `POST /v1/admin/imports`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// `territories`, `people` or `households`.
    pub kind: String,
    /// The file's name, for the history.
    pub name: Option<String>,
}

/// Copies the body into `path`, refusing more than [`MAX_IMPORT_BYTES`].
async fn save_body(
    path: &std::path::Path,
    mut body: impl Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
) -> Result<(), ApiError> {
    let mut file = std::fs::File::create(path).map_err(|e| ApiError::Internal(format!("upload file: {e}")))?;
    let mut total = 0u64;
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| ApiError::BadRequest(format!("upload broke off: {e}")))?;
        while chunk.has_remaining() {
            let part = chunk.chunk();
            total += part.len() as u64;
            if total > MAX_IMPORT_BYTES {
                return Err(ApiError::PayloadTooLarge(format!(
                    "文件超过 {} MiB (file larger than the limit)",
                    MAX_IMPORT_BYTES / 1024 / 1024
                )));
            }
            file.write_all(part).map_err(|e| ApiError::Internal(format!("upload file: {e}")))?;
            let n = part.len();
            chunk.advance(n);
        }
    }
    file.sync_all().map_err(|e| ApiError::Internal(format!("upload file: {e}")))?;
    if total == 0 {
        return Err(ApiError::BadRequest("文件是空的 (empty file)".into()));
    }
    Ok(())
}

async fn upload_route(
    state: AppState,
    q: UploadQuery,
    authorization: Option<String>,
    length: Option<u64>,
    body: impl Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
) -> Result<Response, ApiError> {
    let c = admin(&state, authorization).await?;
    let kind = ImportKind::parse(&q.kind)
        .ok_or_else(|| ApiError::BadRequest("kind must be territories, people or households".into()))?;
    if length.is_some_and(|l| l > MAX_IMPORT_BYTES) {
        return Err(ApiError::PayloadTooLarge(format!(
            "文件超过 {} MiB (file larger than the limit)",
            MAX_IMPORT_BYTES / 1024 / 1024
        )));
    }
    std::fs::create_dir_all(upload_dir()).map_err(|e| ApiError::Internal(format!("upload directory: {e}")))?;
    remove_stale_uploads();
    let tmp = upload_dir().join(format!("upload-{}", uuid::Uuid::new_v4().simple()));
    if let Err(e) = save_body(&tmp, body).await {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let store = state.store.clone();
    let who = importer(&c);
    let name = q.name.unwrap_or_else(|| format!("{}.xlsx", kind.name_zh()));
    let checked = tmp.clone();
    let run = blocking(move || Ok(imports::dry_run(store.as_ref(), &who, kind, &checked, &name)?)).await;
    match run {
        Ok(run) => {
            // Kept for the confirmation under the run's id.
            std::fs::rename(&tmp, upload_path(&run.id)).map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(warp::reply::json(&run).into_response())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

async fn get_route(state: AppState, id: String, authorization: Option<String>) -> Result<Response, ApiError> {
    let c = admin(&state, authorization).await?;
    let run = load_visible(&state, &c, id).await?;
    Ok(warp::reply::json(&run).into_response())
}

async fn history_route(state: AppState, authorization: Option<String>) -> Result<Response, ApiError> {
    let c = admin(&state, authorization).await?;
    let store = state.store.clone();
    let runs = blocking(move || Ok(ImportRun::history(store.as_ref(), HISTORY)?)).await?;
    let runs: Vec<ImportRun> = runs.into_iter().filter(|r| visible(&c, r)).collect();
    Ok(warp::reply::json(&runs).into_response())
}

/// Query of `POST /v1/admin/imports/{id}/confirm`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmQuery {
    /// Import the rows without problems and skip the others (default: a file
    /// with problems is refused).
    pub skip_problems: Option<bool>,
}

async fn confirm_route(
    state: AppState,
    id: String,
    q: ConfirmQuery,
    authorization: Option<String>,
) -> Result<Response, ApiError> {
    let c = admin(&state, authorization).await?;
    let mut run = load_visible(&state, &c, id).await?;
    let skip = q.skip_problems.unwrap_or(false);
    if run.status != Status::DryRun {
        return Err(ApiError::Conflict("这次导入已确认过；请重新上传文件 (already confirmed)".into()));
    }
    if run.report.problems_total > 0 && !skip {
        return Err(ApiError::BadRequest(format!(
            "文件有{}处问题：请修正后重新上传，或选择只导入没有问题的行 (skip_problems=true)",
            run.report.problems_total
        )));
    }
    let path = upload_path(&run.id);
    if !path.exists() {
        return Err(ApiError::Conflict("上传的文件已不在服务器上（服务器重启过？）；请重新上传".into()));
    }
    if !running().lock().unwrap_or_else(|p| p.into_inner()).insert(run.id.clone()) {
        return Err(ApiError::Conflict("这次导入正在进行 (already running)".into()));
    }
    run.status = Status::Running;
    let store = state.store.clone();
    let who = importer(&c);
    let started = run.clone();
    tokio::task::spawn_blocking(move || {
        let id = run.id.clone();
        let result = imports::apply(store.as_ref(), &who, &mut run, &path, skip, &mut |_, _| {});
        if let Err(e) = result {
            tracing::warn!(import = %id, error = %e, "import failed");
        }
        let _ = std::fs::remove_file(&path);
        running().lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    });
    Ok(warp::reply::with_status(warp::reply::json(&started), StatusCode::ACCEPTED).into_response())
}

async fn passwords_route(state: AppState, id: String, authorization: Option<String>) -> Result<Response, ApiError> {
    let c = admin(&state, authorization).await?;
    let mut run = load_visible(&state, &c, id).await?;
    let store = state.store.clone();
    let actor = format!("person:{}", c.person.username);
    let csv = blocking(move || {
        let csv = store.take_import_secret(&run.id)?;
        if csv.is_some() {
            run.passwords_ready = false;
            run.save(store.as_ref())?;
            // Only that it was downloaded, never what.
            let territory = run.scope.clone().unwrap_or_else(|| c.person.territory.clone());
            store.append_audit_in(
                Some(&territory),
                &actor,
                "import.passwords_download",
                &run.id,
                crate::http::now_ms(),
            )?;
        }
        Ok(csv)
    })
    .await?;
    let csv = csv.ok_or_else(|| ApiError::NotFound("初始密码只能下载一次，已下载过或没有新人员".into()))?;
    let mut body = vec![0xEF, 0xBB, 0xBF];
    body.extend_from_slice(&csv);
    Ok(attachment(body, "text/csv; charset=utf-8", "初始密码.csv"))
}

/// `GET /v1/admin/imports/templates/{kind}.{xlsx|csv}`, `POST /v1/admin/imports`,
/// `GET /v1/admin/imports`, `GET /v1/admin/imports/{id}`,
/// `POST /v1/admin/imports/{id}/confirm` and `GET /v1/admin/imports/{id}/passwords.csv`.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let auth = warp::header::optional::<String>("authorization");
    let template = warp::path!("v1" / "admin" / "imports" / "templates" / String)
        .and(warp::get())
        .and(with_state.clone())
        .and(auth)
        .then(|f, s, a| async move { template_route(s, f, a).await.unwrap_or_else(|e| error_reply(&e)) });
    let upload = warp::path!("v1" / "admin" / "imports")
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::query::<UploadQuery>())
        .and(auth)
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .then(|s, q, a, l, b| async move {
            upload_route(s, q, a, l, Box::pin(b)).await.unwrap_or_else(|e| error_reply(&e))
        });
    let history = warp::path!("v1" / "admin" / "imports")
        .and(warp::get())
        .and(with_state.clone())
        .and(auth)
        .then(|s, a| async move { history_route(s, a).await.unwrap_or_else(|e| error_reply(&e)) });
    let get = warp::path!("v1" / "admin" / "imports" / String)
        .and(warp::get())
        .and(with_state.clone())
        .and(auth)
        .then(|id, s, a| async move { get_route(s, id, a).await.unwrap_or_else(|e| error_reply(&e)) });
    let confirm = warp::path!("v1" / "admin" / "imports" / String / "confirm")
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::query::<ConfirmQuery>())
        .and(auth)
        .then(|id, s, q, a| async move { confirm_route(s, id, q, a).await.unwrap_or_else(|e| error_reply(&e)) });
    let passwords = warp::path!("v1" / "admin" / "imports" / String / "passwords.csv")
        .and(warp::get())
        .and(with_state)
        .and(auth)
        .then(|id, s, a| async move { passwords_route(s, id, a).await.unwrap_or_else(|e| error_reply(&e)) });
    template.or(upload).unify().or(history).unify().or(get).unify().or(confirm).unify().or(passwords).unify()
}
