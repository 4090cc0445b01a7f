//! The city import engine: a city's spreadsheets (网格划分表, 网格员名册,
//! 人口信息表) read row by row, checked with [`gridsync_shared::imports`], planned
//! (the dry run: every problem, what would be created, updated or left) and
//! applied. Runs are kept in the store and audited without personal data.

pub mod cli;
mod households;
mod people;
pub mod read;
mod sort;
pub mod templates;
mod territories;

use crate::auth::register_device;
use crate::error::ApiError;
use crate::store::{Device, HouseholdKey, HouseholdKeyEntry, Person, Store, StoreError};
use gridsync_shared::imports::{ImportKind, RowProblem};
use gridsync_shared::records::Record;
use gridsync_shared::territory::Level;
use gridsync_shared::{Author, DocId, Role, TerritoryPath};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use thiserror::Error;

/// Most problems a report lists (the total is counted beyond).
pub const MAX_LISTED_PROBLEMS: usize = 1_000;

/// Why an import could not run at all (a row's problems are in the report instead).
#[derive(Debug, Error)]
pub enum ImportError {
    /// The file cannot be read as CSV or XLSX.
    #[error("{0}")]
    File(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Not allowed, or not possible as asked.
    #[error("{0}")]
    Refused(String),
    /// Anything else inside the engine.
    #[error("{0}")]
    Internal(String),
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::File(m) => ApiError::BadRequest(m),
            ImportError::Store(e) => e.into(),
            ImportError::Refused(m) => ApiError::BadRequest(m),
            ImportError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<ApiError> for ImportError {
    fn from(e: ApiError) -> Self {
        ImportError::Internal(e.to_string())
    }
}

/// One problem as reports list it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Spreadsheet row (the header is 1).
    pub row: u64,
    /// Column header, or empty for the whole row.
    pub column: String,
    /// Why, in Chinese.
    pub reason: String,
}

/// What an import would do, or did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Data rows read (blank rows not counted).
    pub rows: u64,
    /// Territories, people or households created.
    pub create: u64,
    /// … updated.
    pub update: u64,
    /// … already as the file says.
    pub unchanged: u64,
}

/// The dry run's report (also kept for a confirmed run).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// At most [`MAX_LISTED_PROBLEMS`] problems, by row.
    pub problems: Vec<Problem>,
    /// Every problem counted.
    pub problems_total: u64,
    /// Headers the template does not know (ignored).
    pub unknown_columns: Vec<String>,
}

impl Report {
    fn problem(&mut self, p: RowProblem) {
        self.problems_total += 1;
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(Problem { row: p.row, column: p.column, reason: p.reason_zh });
        }
    }

    fn problems(&mut self, ps: Vec<RowProblem>) {
        for p in ps {
            self.problem(p);
        }
    }

    fn finish(&mut self) {
        self.problems.sort_by_key(|p| p.row);
    }
}

/// Where an import run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Checked, nothing written; waiting for confirmation.
    DryRun,
    /// Writing.
    Running,
    /// Written.
    Done,
    /// Stopped by an error (see `error`); what was written before stays.
    Failed,
}

/// Rows (or households) written so far of the total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Done so far.
    pub done: u64,
    /// Total.
    pub total: u64,
}

/// An import run as kept in the store and shown in the console's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRun {
    /// Its id.
    pub id: String,
    /// What it imports.
    pub kind: ImportKind,
    /// The file's name as uploaded.
    pub name: String,
    /// Who ran it (username, or `cli`).
    pub by: String,
    /// When it was checked, Unix ms.
    pub created_at: i64,
    /// The dry run's report.
    #[serde(flatten)]
    pub report: Report,
    /// Where it stands.
    pub status: Status,
    /// Progress of the writing.
    pub progress: Progress,
    /// Whether rows with problems were skipped (confirmed with `skip_problems`).
    pub skip_problems: bool,
    /// What the writing did, once done.
    pub outcome: Option<Counts>,
    /// Why it failed.
    pub error: Option<String>,
    /// Whether a people import's initial passwords wait to be downloaded (once).
    pub passwords_ready: bool,
    /// The territory of the administrator who ran it (None: the command line,
    /// the whole city): who else may see it.
    #[serde(default)]
    pub scope: Option<TerritoryPath>,
}

impl ImportRun {
    /// Keeps the run in the store.
    pub fn save(&self, store: &dyn Store) -> Result<(), ImportError> {
        let json = serde_json::to_vec(self).map_err(|e| ImportError::Internal(e.to_string()))?;
        store.put_import_run(&self.id, self.created_at, &json)?;
        Ok(())
    }

    /// A kept run by id.
    pub fn load(store: &dyn Store, id: &str) -> Result<Option<ImportRun>, ImportError> {
        store
            .import_run(id)?
            .map(|b| serde_json::from_slice(&b).map_err(|e| ImportError::Internal(e.to_string())))
            .transpose()
    }

    /// Kept runs, newest first.
    pub fn history(store: &dyn Store, limit: usize) -> Result<Vec<ImportRun>, ImportError> {
        store
            .import_runs(limit)?
            .iter()
            .map(|b| serde_json::from_slice(b).map_err(|e| ImportError::Internal(e.to_string())))
            .collect()
    }
}

/// Who imports: an administrator (their territory bounds every row), or the
/// command line on the server machine acting as one.
#[derive(Clone, Debug)]
pub struct Importer {
    /// The administrator households are written by (required for households).
    pub admin: Option<Person>,
    /// Name in the audit log.
    pub actor: String,
}

impl Importer {
    /// The territory the rows must fall in (None: the whole city).
    pub fn scope(&self) -> Option<&TerritoryPath> {
        self.admin.as_ref().map(|a| &a.territory)
    }

    fn in_scope(&self, path: &TerritoryPath) -> bool {
        self.scope().is_none_or(|s| s.contains(path))
    }

    /// The administrator the command line imports as: `username`, or the
    /// administrator nearest the city's root.
    pub fn for_cli(store: &dyn Store, username: Option<&str>) -> Result<Importer, ImportError> {
        let admin = match username {
            Some(u) => Some(
                store
                    .person_by_username(u)?
                    .filter(|p| p.role == Role::Administrator)
                    .ok_or_else(|| ImportError::Refused(format!("没有名为 {u} 的管理员")))?,
            ),
            None => store
                .people()?
                .into_iter()
                .filter(|p| p.role == Role::Administrator)
                .min_by_key(|p| (p.territory.as_str().split('/').count(), p.created_at)),
        };
        Ok(Importer { admin, actor: "cli".into() })
    }
}

/// What to do with the checked rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Check only: nothing is written.
    DryRun,
    /// Write; refuse if any row has a problem.
    Apply,
    /// Write the rows without problems; skip the others.
    ApplySkippingProblems,
}

impl Mode {
    fn writes(self) -> bool {
        self != Mode::DryRun
    }
}

/// What [`run`] found and did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The report (for a write: what the rows said before writing).
    pub report: Report,
    /// What was written (zero for a dry run).
    pub written: Counts,
    /// A people import's initial passwords, as CSV (登录名,姓名,初始密码); empty otherwise.
    pub passwords_csv: Vec<u8>,
}

/// Called with (done, total) while writing.
pub type ProgressFn<'a> = dyn FnMut(u64, u64) + Send + 'a;

/// Checks (and with a writing `mode`, imports) the file at `path` as `kind`.
/// A write with problems in `Mode::Apply` writes nothing and returns the report.
pub fn run(
    store: &dyn Store,
    who: &Importer,
    kind: ImportKind,
    path: &Path,
    mode: Mode,
    progress: &mut ProgressFn<'_>,
) -> Result<Outcome, ImportError> {
    let now = crate::http::now_ms();
    let outcome = match kind {
        ImportKind::Territories => territories::run(store, who, path, mode, now, progress)?,
        ImportKind::People => people::run(store, who, path, mode, now, progress)?,
        ImportKind::Households => households::run(store, who, path, mode, now, progress)?,
    };
    Ok(outcome)
}

/// Whether a dry run's report lets `mode` write.
fn may_write(report: &Report, mode: Mode) -> bool {
    mode == Mode::ApplySkippingProblems || report.problems_total == 0
}

/// The territories by path, and by their names joined with `/` (from below the
/// city, and from the city): how 所属区域 / 所属网格 cells are resolved.
struct Territories {
    by_path: HashMap<TerritoryPath, String>,
    by_names: HashMap<String, TerritoryPath>,
}

impl Territories {
    fn load(store: &dyn Store) -> Result<Self, ImportError> {
        let all = store.territories()?;
        let by_path: HashMap<TerritoryPath, String> = all.into_iter().map(|t| (t.path, t.name)).collect();
        let mut by_names = HashMap::new();
        for path in by_path.keys() {
            let names: Option<Vec<&str>> =
                path.ancestors_and_self().iter().map(|p| by_path.get(p).map(String::as_str)).collect();
            if let Some(names) = names {
                by_names.insert(names.join("/"), path.clone());
                if names.len() > 1 {
                    by_names.insert(names[1..].join("/"), path.clone());
                }
            }
        }
        Ok(Self { by_path, by_names })
    }

    /// Resolves a cell: a path, or names joined with `/` (spaces ignored).
    fn resolve(&self, cell: &str) -> Option<TerritoryPath> {
        let cell = cell.trim();
        if let Ok(p) = TerritoryPath::parse(cell)
            && self.by_path.contains_key(&p)
        {
            return Some(p);
        }
        let names: Vec<&str> = cell.split(['/', '／']).map(str::trim).collect();
        self.by_names.get(&names.join("/")).cloned()
    }
}

/// Checks a resolved territory for a row: known, in the importer's scope and (for a grid column) a grid.
fn territory_problem(
    who: &Importer,
    found: Option<&TerritoryPath>,
    grid: bool,
    row: u64,
    column: &str,
) -> Option<RowProblem> {
    let reason = match found {
        None if grid => "未知网格：请先导入网格划分表，或检查网格路径/名称",
        None => "未知区域：请先导入网格划分表，或检查区域路径/名称",
        Some(p) if grid && p.level() != Level::Grid => "这里应填写网格（第五级），不是上级区域",
        Some(p) if !who.in_scope(p) => "不在您管辖的区域内",
        Some(_) => return None,
    };
    Some(RowProblem::new(row, column, reason))
}

/// SHA-256 of a household key text (`no:<户号>` or `id:<ID number>`).
pub fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The device an administrator's imports write with: made once, revoked from
/// the start (its token is never handed out), named 批量导入.
fn import_device(store: &dyn Store, admin: &Person, now: i64) -> Result<Device, ImportError> {
    if let Some(id) = store.import_device(admin.id)?
        && let Some(d) = store.device(id)?
    {
        return Ok(d);
    }
    let reg = register_device(store, admin, "批量导入", now)?;
    let mut device = store.device(reg.device)?.ok_or_else(|| ImportError::Internal("import device vanished".into()))?;
    device.revoked_at = Some(now);
    store.put_device(&device)?;
    store.set_import_device(admin.id, device.id)?;
    store.flush()?;
    Ok(device)
}

fn author_of(admin: &Person) -> Author {
    Author { person: admin.id, role: admin.role, territory: admin.territory.clone() }
}

/// The household keys a committed record indexes: its head's ID number, for
/// every household (so a re-import finds a household a phone created).
pub(crate) fn head_key(id_number: &str) -> Option<[u8; 32]> {
    let v: String = id_number.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    (!v.is_empty()).then(|| key_hash(&format!("id:{v}")))
}

/// Household keys for a commit of `record` (empty unless a household with a head's ID number).
pub fn commit_keys(doc: DocId, record: &Record) -> Vec<HouseholdKey> {
    match record {
        Record::Household(h) => head_key(&h.fields.id_number)
            .map(|key| HouseholdKey { key, entry: HouseholdKeyEntry { doc, digest: None }, replace: false })
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// A new run's id: a UUID v7 (runs sort by time).
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// One line for the audit log: counts only, never a row's contents.
fn audit_detail(run: &ImportRun, written: Option<&Counts>) -> String {
    let c = written.unwrap_or(&run.report.counts);
    format!(
        "{} {} {:?}: rows {}, created {}, updated {}, unchanged {}, problems {}",
        run.id,
        run.kind.as_str(),
        run.name,
        c.rows,
        c.create,
        c.update,
        c.unchanged,
        run.report.problems_total
    )
}

/// Checks the file and keeps the run as a dry run (nothing else is written); audited.
pub fn dry_run(
    store: &dyn Store,
    who: &Importer,
    kind: ImportKind,
    path: &Path,
    name: &str,
) -> Result<ImportRun, ImportError> {
    let outcome = run(store, who, kind, path, Mode::DryRun, &mut |_, _| {})?;
    let run = ImportRun {
        id: new_run_id(),
        kind,
        name: name.to_string(),
        by: who.actor.clone(),
        created_at: crate::http::now_ms(),
        report: outcome.report,
        status: Status::DryRun,
        progress: Progress::default(),
        skip_problems: false,
        outcome: None,
        error: None,
        passwords_ready: false,
        scope: who.scope().cloned(),
    };
    run.save(store)?;
    store.append_audit_in(
        who.scope(),
        &who.actor,
        "import.dry_run",
        &audit_detail(&run, None),
        crate::http::now_ms(),
    )?;
    Ok(run)
}

/// Imports the file for `run` (its dry run): refused if the file has problems
/// and `skip_problems` is not set. Progress and the end are kept in the run;
/// a people import's passwords are kept once for download. Audited.
pub fn apply(
    store: &dyn Store,
    who: &Importer,
    run: &mut ImportRun,
    path: &Path,
    skip_problems: bool,
    progress: &mut ProgressFn<'_>,
) -> Result<Outcome, ImportError> {
    let mode = if skip_problems { Mode::ApplySkippingProblems } else { Mode::Apply };
    run.status = Status::Running;
    run.skip_problems = skip_problems;
    run.save(store)?;
    let mut last_saved = std::time::Instant::now();
    let kind = run.kind;
    let result = {
        let mut on_progress = |done: u64, total: u64| {
            progress(done, total);
            run.progress = Progress { done, total };
            if last_saved.elapsed() > std::time::Duration::from_millis(500) {
                last_saved = std::time::Instant::now();
                let _ = run.save(store);
            }
        };
        self::run(store, who, kind, path, mode, &mut on_progress)
    };
    match result {
        Ok(outcome) if !may_write(&outcome.report, mode) => {
            run.report = outcome.report.clone();
            run.status = Status::Failed;
            run.error = Some(format!("文件有{}处问题，未导入；请修正后重新上传", outcome.report.problems_total));
            run.save(store)?;
            let detail = audit_detail(run, None);
            store.append_audit_in(who.scope(), &who.actor, "import.refused", &detail, crate::http::now_ms())?;
            Ok(outcome)
        }
        Ok(outcome) => {
            run.report = outcome.report.clone();
            run.status = Status::Done;
            run.outcome = Some(outcome.written.clone());
            if !outcome.passwords_csv.is_empty() && outcome.written.create > 0 {
                store.put_import_secret(&run.id, &outcome.passwords_csv)?;
                run.passwords_ready = true;
            }
            run.save(store)?;
            store.append_audit_in(
                who.scope(),
                &who.actor,
                "import.apply",
                &audit_detail(run, Some(&outcome.written)),
                crate::http::now_ms(),
            )?;
            Ok(outcome)
        }
        Err(e) => {
            run.status = Status::Failed;
            run.error = Some(e.to_string());
            run.save(store)?;
            let detail = format!("{}: {e}", run.id);
            store.append_audit_in(who.scope(), &who.actor, "import.failed", &detail, crate::http::now_ms())?;
            Err(e)
        }
    }
}

/// The report as text for the command line: counts, then each problem.
pub fn report_text(kind: ImportKind, report: &Report, written: Option<&Counts>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let c = &report.counts;
    let _ = writeln!(
        out,
        "{}：{} 行；将新建 {}，更新 {}，不变 {}；问题 {} 处",
        kind.name_zh(),
        c.rows,
        c.create,
        c.update,
        c.unchanged,
        report.problems_total
    );
    if !report.unknown_columns.is_empty() {
        let _ = writeln!(out, "未识别的列（已忽略）：{}", report.unknown_columns.join("、"));
    }
    for p in &report.problems {
        let _ = writeln!(out, "  第{}行 {}：{}", p.row, if p.column.is_empty() { "整行" } else { &p.column }, p.reason);
    }
    if report.problems_total > report.problems.len() as u64 {
        let _ = writeln!(out, "  ……另有 {} 处问题未列出", report.problems_total - report.problems.len() as u64);
    }
    if let Some(w) = written {
        let _ = writeln!(out, "已导入：新建 {}，更新 {}，不变 {}", w.create, w.update, w.unchanged);
    }
    out
}
