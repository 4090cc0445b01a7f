//! The records grid staff keep — households, visit logs, cases, promises — and
//! how each maps onto one Automerge document.
//!
//! A document's root holds the fixed fields (`type`, `schema`, `grid`,
//! `creator`, `created_at`), then the record's own fields. Free text is
//! Automerge text (merges character by character); follow-ups, status moves and
//! promise outcomes are append-only lists of entries with their own ids, so every
//! entry from every phone survives a merge; so are photo references
//! ([`crate::photos::PhotoRef`]). [`read`] parses a document strictly
//! (unknown fields and wrong types are errors); [`edit`] makes every change a
//! phone can make.

mod edit;
mod members;
mod merge;
mod read;
mod remake;
pub mod row;

pub use edit::{EditError, Editor, new_household_in_one_batch, new_imported_household, new_record, new_record_with_id};
pub use merge::{FieldConflict, FieldValue, MergeRule, member_merge_rule, merge_rule, single_valued_fields};
pub use read::{META_KEYS, RecordError, read_record, read_record_at};
pub use remake::{Carried, Carry, Remade, reauthor, remake, salvage};

use crate::ids::{DocId, PersonId};
use crate::photos::PhotoRef;
use crate::territory::TerritoryPath;
use crate::workflow::{Standing, StatusEntry, standing};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u64 = 1;

/// Size limits for record content; larger input is rejected, not truncated.
pub mod limits {
    /// Longest free text (notes, descriptions), in characters.
    pub const TEXT_CHARS: usize = 20_000;
    /// Longest short field (names, addresses, titles), in characters.
    pub const SHORT_CHARS: usize = 200;
    /// Longest phone or ID number (a household's, a member's), in characters.
    pub const NUMBER_CHARS: usize = 40;
    /// Most entries in any list (members, follow-ups, status moves...).
    pub const LIST_ENTRIES: usize = 2_000;
}

/// Which kind of record a document holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// 住户
    Household,
    /// 走访记录 / 民情日记
    VisitLog,
    /// 事件: dispute, hazard, petition or request
    Case,
    /// 承诺事项
    Promise,
}

impl RecordKind {
    /// Every kind, in a stable order.
    pub const ALL: [RecordKind; 4] =
        [RecordKind::Household, RecordKind::VisitLog, RecordKind::Case, RecordKind::Promise];

    /// Stable text form stored in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Household => "household",
            RecordKind::VisitLog => "visit_log",
            RecordKind::Case => "case",
            RecordKind::Promise => "promise",
        }
    }

    /// The kind's name in Chinese.
    pub fn name_zh(self) -> &'static str {
        match self {
            RecordKind::Household => "住户",
            RecordKind::VisitLog => "走访记录",
            RecordKind::Case => "事件",
            RecordKind::Promise => "承诺事项",
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| format!("unknown record type {s:?}"))
    }
}

/// The fields every record has, fixed at creation and never changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMeta {
    /// What kind of record.
    #[serde(rename = "type")]
    pub kind: RecordKind,
    /// Schema version it was written with.
    pub schema: u64,
    /// The grid it belongs to.
    pub grid: TerritoryPath,
    /// Who created it.
    pub creator: PersonId,
    /// When, in Unix milliseconds by the creator's clock.
    pub created_at: i64,
}

/// A kind of household visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitKind {
    /// 日常走访
    Routine,
    /// 回访
    ReturnVisit,
    /// 矛盾纠纷/隐患排查
    Screening,
    /// 关爱帮扶 (needy, elderly living alone...)
    Care,
}

/// A kind of case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// 矛盾纠纷
    Dispute,
    /// 安全隐患
    Hazard,
    /// 信访
    Petition,
    /// 群众诉求
    Request,
}

/// Residents' satisfaction recorded on a return visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Satisfaction {
    /// 满意
    Satisfied,
    /// 基本满意
    Basic,
    /// 不满意
    Dissatisfied,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal, $zh:literal;)* }) => {
        impl $t {
            /// Every value, in a stable order.
            pub const ALL: &'static [$t] = &[$(<$t>::$v),*];
            /// Stable text form stored in documents.
            pub fn as_str(self) -> &'static str { match self { $(<$t>::$v => $s),* } }
            /// The name staff use.
            pub fn name_zh(self) -> &'static str { match self { $(<$t>::$v => $zh),* } }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($s => Ok(<$t>::$v),)* other => Err(format!("unknown value {other:?}")) }
            }
        }
    };
}

text_enum!(VisitKind {
    Routine => "routine", "日常走访";
    ReturnVisit => "return_visit", "回访";
    Screening => "screening", "排查";
    Care => "care", "关爱帮扶";
});
text_enum!(CaseKind {
    Dispute => "dispute", "矛盾纠纷";
    Hazard => "hazard", "安全隐患";
    Petition => "petition", "信访";
    Request => "request", "群众诉求";
});
text_enum!(Satisfaction {
    Satisfied => "satisfied", "满意";
    Basic => "basic", "基本满意";
    Dissatisfied => "dissatisfied", "不满意";
});

/// A GPS position, if the phone had one.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    /// Degrees north, -90..=90.
    pub lat: f64,
    /// Degrees east, -180..=180.
    pub lon: f64,
    /// Accuracy radius in metres, if known.
    pub accuracy_m: Option<f64>,
}

/// A member of a household.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Member {
    /// The member's id within the household, stable on every phone (empty for
    /// a member not yet added: adding gives one). Members added since ids
    /// exist have a UUID; members of households from before have the id of
    /// their entry (`<counter>@<actor>`).
    pub id: String,
    /// 姓名
    pub name: String,
    /// 与户主关系
    pub relation: String,
    /// 身份证号 (personal information: masked in exports by default)
    pub id_number: String,
    /// 联系电话 (personal information)
    pub phone: String,
    /// Tags such as 残疾人, 低保 (a set: concurrent additions and removals merge).
    pub tags: Vec<String>,
}

/// A household's editable fields.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HouseholdFields {
    /// 地址
    pub address: String,
    /// 户主姓名
    pub head: String,
    /// 户主电话 (personal information)
    pub phone: String,
    /// 户主身份证号 (personal information)
    pub id_number: String,
    /// 家庭成员, each with its id (added, edited and removed one by one:
    /// [`Editor::add_member`], [`Editor::update_member`], [`Editor::remove_member`]).
    pub members: Vec<Member>,
    /// Tags such as 困难群众, 独居老人, 残疾人.
    pub tags: Vec<String>,
    /// Free notes (merged as text).
    pub notes: String,
}

/// A visit log's fields.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VisitFields {
    /// The household visited, if the visit was to one.
    pub household: Option<DocId>,
    /// When the visit happened, Unix milliseconds.
    pub visited_at: i64,
    /// Kind of visit.
    pub kind: Option<VisitKind>,
    /// Where, if GPS was available.
    pub location: Option<GeoPoint>,
    /// 走访情况 (merged as text).
    pub notes: String,
    /// 群众诉求: residents' concerns, one per entry.
    pub concerns: Vec<String>,
    /// 发现问题 (merged as text).
    pub findings: String,
}

/// A case's editable fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseFields {
    /// Dispute, hazard, petition or request.
    pub kind: CaseKind,
    /// A one-line title.
    pub title: String,
    /// What was found (merged as text).
    pub description: String,
    /// The household concerned, if any.
    pub household: Option<DocId>,
    /// The visit it was found on, if any.
    pub visit: Option<DocId>,
    /// When it should be resolved by, Unix milliseconds; past it, the case is overdue.
    pub due_at: Option<i64>,
}

/// A dated note on a case; return visits carry the residents' satisfaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    /// Unique per entry.
    pub id: Uuid,
    /// Who wrote it.
    pub by: PersonId,
    /// When, Unix milliseconds.
    pub at: i64,
    /// The note.
    pub note: String,
    /// Residents' satisfaction, on a return visit.
    pub satisfaction: Option<Satisfaction>,
}

/// A promise's editable fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromiseFields {
    /// What was promised.
    pub content: String,
    /// To which household, if any.
    pub household: Option<DocId>,
    /// By when, Unix milliseconds.
    pub due_at: i64,
}

/// A recorded outcome of a promise: kept or not kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromiseOutcome {
    /// Unique per entry.
    pub id: Uuid,
    /// Kept (践诺) or not.
    pub kept: bool,
    /// Who recorded it.
    pub by: PersonId,
    /// When, Unix milliseconds.
    pub at: i64,
    /// A note.
    pub note: String,
}

/// A void (作废): the record was made by mistake (a duplicate, the wrong
/// household...). Entries are appended, never edited or removed, so a voided
/// record stays readable and in history; it no longer counts in reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoidEntry {
    /// Unique per entry.
    pub id: Uuid,
    /// Who voided it: the record's creator, or a supervisor or administrator over its grid.
    pub by: PersonId,
    /// When, Unix milliseconds.
    pub at: i64,
    /// Why (required).
    pub reason: String,
}

/// A household record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Household {
    /// Fixed fields.
    pub meta: RecordMeta,
    /// Editable fields.
    pub fields: HouseholdFields,
    /// Every void entry (作废), in document order; empty unless voided.
    pub voids: Vec<VoidEntry>,
    /// Single-valued fields changed by two people at once, with every value.
    pub conflicts: Vec<FieldConflict>,
}

/// A visit log record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VisitLog {
    /// Fixed fields.
    pub meta: RecordMeta,
    /// Editable fields.
    pub fields: VisitFields,
    /// Every photo attached, in document order.
    pub photos: Vec<PhotoRef>,
    /// Every void entry (作废), in document order; empty unless voided.
    pub voids: Vec<VoidEntry>,
    /// Single-valued fields changed by two people at once, with every value.
    pub conflicts: Vec<FieldConflict>,
}

/// A case record, with its workflow log and follow-ups.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Fixed fields.
    pub meta: RecordMeta,
    /// Editable fields.
    pub fields: CaseFields,
    /// Every status move, in document order.
    pub status_log: Vec<StatusEntry>,
    /// Every follow-up, in document order.
    pub follow_ups: Vec<FollowUp>,
    /// Every photo attached, to the case or to one of its follow-ups, in document order.
    pub photos: Vec<PhotoRef>,
    /// Every void entry (作废), in document order; empty unless voided.
    pub voids: Vec<VoidEntry>,
    /// Single-valued fields changed by two people at once, with every value.
    pub conflicts: Vec<FieldConflict>,
}

impl Case {
    /// The case's current step and epoch.
    pub fn standing(&self) -> Standing {
        standing(&self.status_log)
    }

    /// Who the case is assigned to (交办), see [`crate::workflow::assignee`].
    pub fn assignee(&self) -> Option<PersonId> {
        crate::workflow::assignee(&self.status_log)
    }
}

/// A promise record, with its recorded outcomes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Promise {
    /// Fixed fields.
    pub meta: RecordMeta,
    /// Editable fields.
    pub fields: PromiseFields,
    /// Every recorded outcome.
    pub outcomes: Vec<PromiseOutcome>,
    /// Every void entry (作废), in document order; empty unless voided.
    pub voids: Vec<VoidEntry>,
    /// Single-valued fields changed by two people at once, with every value.
    pub conflicts: Vec<FieldConflict>,
}

impl Promise {
    /// The latest recorded outcome (by time, then id), if any: `Some(true)` kept.
    pub fn kept(&self) -> Option<bool> {
        self.outcomes.iter().max_by_key(|o| (o.at, o.id)).map(|o| o.kept)
    }
}

/// Any record, as read from its document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// 住户
    Household(Household),
    /// 走访记录
    VisitLog(VisitLog),
    /// 事件
    Case(Case),
    /// 承诺事项
    Promise(Promise),
}

impl Record {
    /// The fixed fields.
    pub fn meta(&self) -> &RecordMeta {
        match self {
            Record::Household(r) => &r.meta,
            Record::VisitLog(r) => &r.meta,
            Record::Case(r) => &r.meta,
            Record::Promise(r) => &r.meta,
        }
    }

    /// Which kind of record this is.
    pub fn kind(&self) -> RecordKind {
        self.meta().kind
    }

    /// Every void entry (作废) of the record, in document order.
    pub fn voids(&self) -> &[VoidEntry] {
        match self {
            Record::Household(r) => &r.voids,
            Record::VisitLog(r) => &r.voids,
            Record::Case(r) => &r.voids,
            Record::Promise(r) => &r.voids,
        }
    }

    /// Every photo attached to the record (visit logs and cases; none on
    /// households and promises), in document order.
    pub fn photos(&self) -> &[PhotoRef] {
        match self {
            Record::VisitLog(r) => &r.photos,
            Record::Case(r) => &r.photos,
            Record::Household(_) | Record::Promise(_) => &[],
        }
    }

    /// The single-valued fields that two people changed at once and nobody
    /// has chosen between yet, each with every competing value ([`merge_rule`]).
    pub fn conflicts(&self) -> &[FieldConflict] {
        match self {
            Record::Household(r) => &r.conflicts,
            Record::VisitLog(r) => &r.conflicts,
            Record::Case(r) => &r.conflicts,
            Record::Promise(r) => &r.conflicts,
        }
    }

    /// The void that counts, if the record is voided: the earliest entry (by
    /// time, then id), so every replica names the same one. A voided record
    /// stays readable and in history, and counts in no report or list of work.
    pub fn voided(&self) -> Option<&VoidEntry> {
        self.voids().iter().min_by_key(|v| (v.at, v.id))
    }

    /// What lists need to know of this record without its document.
    pub fn summary(&self) -> RecordSummary {
        let (household, at) = match self {
            Record::Household(_) => (None, self.meta().created_at),
            Record::VisitLog(v) => (v.fields.household, v.fields.visited_at),
            Record::Case(c) => (c.fields.household, self.meta().created_at),
            Record::Promise(p) => (p.fields.household, self.meta().created_at),
        };
        RecordSummary { kind: self.kind(), household, at }
    }
}

/// A record's kind, household and time: enough for a phone to list and sort
/// records it has not parsed. The server sends it with each document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSummary {
    /// Which kind of record.
    pub kind: RecordKind,
    /// The household it concerns, if any.
    pub household: Option<DocId>,
    /// When it happened: the visit time for a visit log, else creation, Unix ms.
    pub at: i64,
}

/// The fields a new record starts with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NewRecord {
    /// A household.
    Household(HouseholdFields),
    /// A visit log.
    VisitLog(VisitFields),
    /// A case, starting as reported.
    Case(CaseFields),
    /// A promise, starting pending.
    Promise(PromiseFields),
}

impl NewRecord {
    /// Which kind of record this creates.
    pub fn kind(&self) -> RecordKind {
        match self {
            NewRecord::Household(_) => RecordKind::Household,
            NewRecord::VisitLog(_) => RecordKind::VisitLog,
            NewRecord::Case(_) => RecordKind::Case,
            NewRecord::Promise(_) => RecordKind::Promise,
        }
    }
}
