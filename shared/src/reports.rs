//! The figures administrators report (see the domain notes: 排查矛盾隐患, 化解纠纷,
//! 承诺事项 and 践诺落实率, 群众满意率, 联系困难群众), per grid, per community and
//! for a whole territory, for any period, computed from the synced records.
//!
//! Pure functions, no I/O. Records are fed one at a time to a [`ReportBuilder`]
//! (so a server can stream a city's documents through it page by page); the
//! builder keeps per-grid counts, plus one small entry per household (to
//! count households *covered* by visits), never the records themselves.
//! Every figure is a sum over grids, so communities and the total are rolled
//! up from the grid rows, and every rate is computed from the summed counts.
//!
//! A period is half-open, `[from, to)` in Unix milliseconds. Times are the
//! ones the records carry (a visit's `visited_at`, a record's `created_at`, a
//! status move's or follow-up's `at`), written by the phone's clock.
//!
//! Photo evidence (有照片的走访 / 有照片的事件) counts the visit logs and the
//! cases of the period that reference at least one photo
//! ([`crate::records::Record::photos`]; a case's follow-ups' photos count for
//! the case), whether or not the photo's bytes have reached the server yet.
//!
//! A voided record (作废, [`crate::records::Record::voided`]) counts nowhere:
//! not as a household, a visit, a case, a follow-up or a promise, whenever it
//! was voided. The report's moment is the earlier of the period's end and
//! `now`: cases past their due date then are overdue, and only promises due
//! by then count towards 践诺落实率 ([`PROMISES_KEPT_RATE_NOTE`]).

use crate::ids::DocId;
use crate::records::{CaseKind, Record, Satisfaction};
use crate::territory::{Level, TerritoryPath};
use crate::workflow::{CaseStatus, StatusMove};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The household tag that marks needy residents (困难群众).
pub const NEEDY_TAG: &str = "困难群众";

/// What 践诺落实率 counts, in words for a report's reader (screens and exports
/// show it beside the rate).
pub const PROMISES_KEPT_RATE_NOTE: &str =
    "践诺落实率 = 已到期承诺中已践诺的比例；尚未到期的承诺不计入（既不算已践诺，也不算未践诺）";

/// A reporting period: `[from, to)` in Unix milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// First millisecond in the period.
    pub from: i64,
    /// First millisecond after the period.
    pub to: i64,
}

impl Period {
    /// The period `[from, to)`.
    pub fn new(from: i64, to: i64) -> Self {
        Self { from, to }
    }

    /// Whether `at` lies in the period.
    pub fn contains(&self, at: i64) -> bool {
        self.from <= at && at < self.to
    }
}

/// Cases found, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CasesByKind {
    /// 矛盾纠纷
    pub dispute: u64,
    /// 安全隐患
    pub hazard: u64,
    /// 信访
    pub petition: u64,
    /// 群众诉求
    pub request: u64,
}

impl CasesByKind {
    fn count(&mut self, kind: CaseKind) {
        match kind {
            CaseKind::Dispute => self.dispute += 1,
            CaseKind::Hazard => self.hazard += 1,
            CaseKind::Petition => self.petition += 1,
            CaseKind::Request => self.request += 1,
        }
    }

    fn add(&mut self, other: &CasesByKind) {
        self.dispute += other.dispute;
        self.hazard += other.hazard;
        self.petition += other.petition;
        self.request += other.request;
    }

    /// The count for one kind.
    pub fn get(&self, kind: CaseKind) -> u64 {
        match kind {
            CaseKind::Dispute => self.dispute,
            CaseKind::Hazard => self.hazard,
            CaseKind::Petition => self.petition,
            CaseKind::Request => self.request,
        }
    }
}

/// The figures for one territory over one period. Each record counts in the
/// territory of its own grid (`meta.grid`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// 住户数: households in the territory created before the period's end
    /// (`created_at < to`): the stock of households as of `to`.
    pub households: u64,
    /// 困难群众户数: of those households, the ones tagged 困难群众.
    pub needy_households: u64,
    /// 走访覆盖户数: of those households, the ones with at least one visit log
    /// in the period (`visited_at` in `[from, to)`) whose `household` is this
    /// household. Counted in the household's territory.
    pub households_covered: u64,
    /// 联系困难群众户数: of the households covered, the ones tagged 困难群众.
    pub needy_households_covered: u64,
    /// 走访次数: visit logs with `visited_at` in the period.
    pub visits: u64,
    /// 有照片的走访: of the visit logs in the period (`visits`), the ones that
    /// reference at least one photo.
    #[serde(default)]
    pub visits_with_photos: u64,
    /// 发现事件（分类）: cases with `created_at` in the period, by kind.
    pub cases_found_by_kind: CasesByKind,
    /// 发现事件合计 (排查矛盾隐患): cases with `created_at` in the period.
    pub cases_found: u64,
    /// 有照片的事件: of the cases found in the period (`cases_found`), the ones
    /// that reference at least one photo, on the case itself or on one of its
    /// follow-ups (whenever the follow-up was written).
    #[serde(default)]
    pub cases_with_photos: u64,
    /// 办结事件 (化解): cases (found in any period) whose status log has an
    /// `advance` entry to resolved or a later step with its `at` in the period,
    /// and whose current standing is still resolved or later. Each case counts
    /// once, however many such entries it has.
    pub cases_resolved: u64,
    /// 办结率: `cases_resolved / cases_found`, capped at 1 (cases resolved in a
    /// period may include older cases, so the counts can exceed the cases
    /// found); `None` when no case was found.
    pub resolution_rate: Option<f64>,
    /// 超期未办结: cases (found in any period) with a `due_at` before
    /// `min(to, now)` whose current standing is before resolved.
    pub overdue_cases: u64,
    /// 承诺事项: promises with `created_at` in the period.
    pub promises_made: u64,
    /// 到期承诺数: of the promises made in the period, the ones already due at
    /// the report's moment (`due_at` before the earlier of `to` and `now`).
    /// Promises not yet due are neither kept nor not kept: they count only here
    /// in `promises_made`.
    pub promises_due: u64,
    /// 践诺数: of the promises due (`promises_due`), the ones whose latest
    /// recorded outcome ([`crate::records::Promise::kept`]) is kept.
    pub promises_kept: u64,
    /// 践诺落实率: `promises_kept / promises_due` — only promises already due
    /// count (see [`PROMISES_KEPT_RATE_NOTE`]); `None` when none is due.
    pub promises_kept_rate: Option<f64>,
    /// 回访评价数: follow-ups on cases (found in any period) with `at` in the
    /// period that record residents' satisfaction.
    pub rated_follow_ups: u64,
    /// 满意数: of those, the ones rated 满意 or 基本满意.
    pub satisfied_follow_ups: u64,
    /// 群众满意率: `satisfied_follow_ups / rated_follow_ups`; `None` when no
    /// follow-up in the period was rated.
    pub satisfaction_rate: Option<f64>,
}

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64).min(1.0))
}

impl Figures {
    fn add(&mut self, o: &Figures) {
        self.households += o.households;
        self.needy_households += o.needy_households;
        self.households_covered += o.households_covered;
        self.needy_households_covered += o.needy_households_covered;
        self.visits += o.visits;
        self.visits_with_photos += o.visits_with_photos;
        self.cases_found_by_kind.add(&o.cases_found_by_kind);
        self.cases_found += o.cases_found;
        self.cases_with_photos += o.cases_with_photos;
        self.cases_resolved += o.cases_resolved;
        self.overdue_cases += o.overdue_cases;
        self.promises_made += o.promises_made;
        self.promises_due += o.promises_due;
        self.promises_kept += o.promises_kept;
        self.rated_follow_ups += o.rated_follow_ups;
        self.satisfied_follow_ups += o.satisfied_follow_ups;
    }

    fn with_rates(mut self) -> Self {
        self.resolution_rate = rate(self.cases_resolved, self.cases_found);
        self.promises_kept_rate = rate(self.promises_kept, self.promises_due);
        self.satisfaction_rate = rate(self.satisfied_follow_ups, self.rated_follow_ups);
        self
    }
}

/// One line of a report: a territory and its figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The territory.
    pub territory: TerritoryPath,
    /// Its level (grid, community, or the scope's own level for the total).
    pub level: Level,
    /// Its name (e.g. 东湖社区), when the caller supplied one.
    pub name: Option<String>,
    /// The figures.
    pub figures: Figures,
}

/// The figures for a territory over a period, per grid, per community and in total.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The territory reported on.
    pub scope: TerritoryPath,
    /// The period, `[from, to)` in Unix ms.
    pub period: Period,
    /// The moment the report was computed for (Unix ms); overdue counts use
    /// `min(to, now)`.
    pub now: i64,
    /// Communities and grids strictly inside the scope, in path order: each
    /// community directly followed by its grids.
    pub rows: Vec<Row>,
    /// The whole scope.
    pub total: Row,
    /// Documents the caller could not read as records (not counted anywhere).
    pub unreadable_records: u64,
}

/// Per-grid counts and the household index, fed one record at a time.
#[derive(Debug)]
pub struct ReportBuilder {
    scope: TerritoryPath,
    period: Period,
    now: i64,
    /// Figures per grid, without rates.
    grids: BTreeMap<TerritoryPath, Figures>,
    /// Communities that must have a row even without records.
    communities: BTreeMap<TerritoryPath, Figures>,
    names: HashMap<TerritoryPath, String>,
    /// Households counted (created before `to`): their grid and needy flag.
    households: HashMap<DocId, (TerritoryPath, bool)>,
    /// Households with a visit log in the period.
    visited: HashSet<DocId>,
    unreadable: u64,
}

impl ReportBuilder {
    /// A builder for `scope` over `period`, with `now` (Unix ms) for overdue cases.
    pub fn new(scope: TerritoryPath, period: Period, now: i64) -> Self {
        Self {
            scope,
            period,
            now,
            grids: BTreeMap::new(),
            communities: BTreeMap::new(),
            names: HashMap::new(),
            households: HashMap::new(),
            visited: HashSet::new(),
            unreadable: 0,
        }
    }

    /// Names a territory, and gives it a row (all zeros if no record is in
    /// it) when it is a grid or a community strictly inside the scope. Other
    /// territories are ignored, except the scope itself, whose name goes on
    /// the total.
    pub fn territory(&mut self, path: &TerritoryPath, name: &str) {
        if !self.scope.contains(path) {
            return;
        }
        if path != &self.scope {
            match path.level() {
                Level::Grid => {
                    self.grids.entry(path.clone()).or_default();
                }
                Level::Community => {
                    self.communities.entry(path.clone()).or_default();
                }
                _ => {}
            }
        }
        if !name.is_empty() {
            self.names.insert(path.clone(), name.to_string());
        }
    }

    /// Notes a document that could not be read as a record; it counts nowhere
    /// but the report says how many there were.
    pub fn unreadable(&mut self) {
        self.unreadable += 1;
    }

    /// Counts one record, identified by its document id (visit logs name the
    /// household they were to by its id). Each record must be added once;
    /// records outside the scope, and voided records, are ignored.
    pub fn add(&mut self, id: DocId, record: &Record) {
        let grid = &record.meta().grid;
        if !self.scope.contains(grid) || record.voided().is_some() {
            return;
        }
        let period = self.period;
        let moment = self.period.to.min(self.now);
        let overdue_before = moment;
        let f = self.grids.entry(grid.clone()).or_default();
        match record {
            Record::Household(h) => {
                if h.meta.created_at < period.to {
                    let needy = h.fields.tags.iter().any(|t| t.trim() == NEEDY_TAG);
                    f.households += 1;
                    f.needy_households += u64::from(needy);
                    self.households.insert(id, (grid.clone(), needy));
                }
            }
            Record::VisitLog(v) => {
                if period.contains(v.fields.visited_at) {
                    f.visits += 1;
                    f.visits_with_photos += u64::from(!v.photos.is_empty());
                    if let Some(household) = v.fields.household {
                        self.visited.insert(household);
                    }
                }
            }
            Record::Case(c) => {
                if period.contains(c.meta.created_at) {
                    f.cases_found += 1;
                    f.cases_found_by_kind.count(c.fields.kind);
                    f.cases_with_photos += u64::from(!c.photos.is_empty());
                }
                let status = c.standing().status;
                let resolved_in_period = c
                    .status_log
                    .iter()
                    .any(|e| e.kind == StatusMove::Advance && e.to >= CaseStatus::Resolved && period.contains(e.at));
                if resolved_in_period && status.is_resolved() {
                    f.cases_resolved += 1;
                }
                if c.fields.due_at.is_some_and(|due| due < overdue_before) && !status.is_resolved() {
                    f.overdue_cases += 1;
                }
                for rated in c.follow_ups.iter().filter(|u| period.contains(u.at)).filter_map(|u| u.satisfaction) {
                    f.rated_follow_ups += 1;
                    if matches!(rated, Satisfaction::Satisfied | Satisfaction::Basic) {
                        f.satisfied_follow_ups += 1;
                    }
                }
            }
            Record::Promise(p) => {
                if period.contains(p.meta.created_at) {
                    f.promises_made += 1;
                    if p.fields.due_at < moment {
                        f.promises_due += 1;
                        if p.kept() == Some(true) {
                            f.promises_kept += 1;
                        }
                    }
                }
            }
        }
    }

    /// Rolls the grids up into communities and the total, and computes the rates.
    pub fn finish(mut self) -> Report {
        for (household, (grid, needy)) in &self.households {
            if self.visited.contains(household)
                && let Some(f) = self.grids.get_mut(grid)
            {
                f.households_covered += 1;
                f.needy_households_covered += u64::from(*needy);
            }
        }
        let mut total = Figures::default();
        let mut communities = std::mem::take(&mut self.communities);
        for (grid, f) in &self.grids {
            total.add(f);
            if let Some(community) = grid.parent().filter(|c| c != &self.scope && self.scope.contains(c)) {
                communities.entry(community).or_default().add(f);
            }
        }
        let row = |path: &TerritoryPath, figures: Figures| Row {
            territory: path.clone(),
            level: path.level(),
            name: self.names.get(path).cloned(),
            figures: figures.with_rates(),
        };
        // Path order puts each community just before its grids.
        let mut rows: Vec<Row> = communities.into_iter().map(|(p, f)| row(&p, f)).collect();
        rows.extend(self.grids.iter().filter(|(p, _)| *p != &self.scope).map(|(p, f)| row(p, f.clone())));
        rows.sort_by(|a, b| a.territory.cmp(&b.territory));
        Report {
            total: row(&self.scope, total),
            scope: self.scope.clone(),
            period: self.period,
            now: self.now,
            rows,
            unreadable_records: self.unreadable,
        }
    }
}

/// Computes a report from `(document id, record)` pairs in one call.
pub fn report<'a>(
    records: impl IntoIterator<Item = (DocId, &'a Record)>,
    scope: &TerritoryPath,
    period: Period,
    now: i64,
) -> Report {
    let mut builder = ReportBuilder::new(scope.clone(), period, now);
    for (id, record) in records {
        builder.add(id, record);
    }
    builder.finish()
}

/// How one CSV cell is written from a row's figures.
type Cell = fn(&Figures) -> String;

/// The CSV columns, in order: a Chinese header and how to write the cell.
const COLUMNS: &[(&str, Cell)] = &[
    ("住户数", |f| f.households.to_string()),
    ("困难群众户数", |f| f.needy_households.to_string()),
    ("走访覆盖户数", |f| f.households_covered.to_string()),
    ("联系困难群众户数", |f| f.needy_households_covered.to_string()),
    ("走访次数", |f| f.visits.to_string()),
    ("有照片的走访", |f| f.visits_with_photos.to_string()),
    ("矛盾纠纷", |f| f.cases_found_by_kind.dispute.to_string()),
    ("安全隐患", |f| f.cases_found_by_kind.hazard.to_string()),
    ("信访", |f| f.cases_found_by_kind.petition.to_string()),
    ("群众诉求", |f| f.cases_found_by_kind.request.to_string()),
    ("发现事件合计", |f| f.cases_found.to_string()),
    ("有照片的事件", |f| f.cases_with_photos.to_string()),
    ("办结事件", |f| f.cases_resolved.to_string()),
    ("办结率", |f| percent(f.resolution_rate)),
    ("超期未办结", |f| f.overdue_cases.to_string()),
    ("承诺事项", |f| f.promises_made.to_string()),
    ("到期承诺数", |f| f.promises_due.to_string()),
    ("践诺数", |f| f.promises_kept.to_string()),
    ("践诺落实率", |f| percent(f.promises_kept_rate)),
    ("回访评价数", |f| f.rated_follow_ups.to_string()),
    ("满意数", |f| f.satisfied_follow_ups.to_string()),
    ("群众满意率", |f| percent(f.satisfaction_rate)),
];

/// A rate as a percentage with one decimal (`93.7%`); empty when there is none.
pub fn percent(rate: Option<f64>) -> String {
    rate.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_default()
}

/// One CSV cell: quoted when it holds a comma, quote or line break (quotes
/// doubled); text a spreadsheet would take for a formula is prefixed with `'`.
fn cell(out: &mut String, value: &str) {
    let formula = value.starts_with(['=', '+', '-', '@']);
    let value = if formula { format!("'{value}") } else { value.to_string() };
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&value);
    }
}

impl Report {
    /// The report as CSV for Excel and WPS: UTF-8 with a byte-order mark,
    /// Chinese headers, CRLF line ends, one line per row and the total last;
    /// rates as percentages with one decimal, empty where there is no rate.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("\u{feff}");
        let mut line = |cells: Vec<String>| {
            for (i, c) in cells.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                cell(&mut out, c);
            }
            out.push_str("\r\n");
        };
        let header = ["区域", "名称", "层级"].into_iter().chain(COLUMNS.iter().map(|(h, _)| *h));
        line(header.map(str::to_string).collect());
        let total = std::iter::once((&self.total, true));
        for (row, is_total) in self.rows.iter().map(|r| (r, false)).chain(total) {
            let level =
                if is_total { format!("合计（{}）", row.level.name_zh()) } else { row.level.name_zh().to_string() };
            let mut cells = vec![row.territory.to_string(), row.name.clone().unwrap_or_default(), level];
            cells.extend(COLUMNS.iter().map(|(_, value)| value(&row.figures)));
            line(cells);
        }
        out
    }

    /// The row for a territory (the total when it is the scope).
    pub fn row(&self, territory: &TerritoryPath) -> Option<&Row> {
        if territory == &self.scope {
            return Some(&self.total);
        }
        self.rows.iter().find(|r| &r.territory == territory)
    }
}
