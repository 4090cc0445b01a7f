//! Records as rows: the columns the CSV files and the XLSX worksheets share.
//!
//! Every row starts with the record's id, grid and the grid's name, creator
//! and the creator's name, and creation time (Beijing time); then come the
//! record's own fields, flattened for people: lists joined with `；`,
//! enumerations in Chinese, the household's head beside its id, a case's
//! current status computed from its log and its assignee (承办人), counts and the latest follow-up or
//! outcome with who wrote it, and whether the case or promise is overdue at
//! the snapshot's moment. Visit logs and cases then name their photos (照片:
//! `photos/<sha256>.<ext>` as the archive of a snapshot made with photos holds
//! them, a case's follow-ups' photos included) and count them (照片数). Every
//! row ends with whether the record was voided (作废), why, by whom and when: a
//! voided record stays in the snapshot, marked.

use super::SnapshotItem;
use super::names::Names;
use gridsync_shared::photos::{PhotoHash, PhotoRef, PhotoType};
use gridsync_shared::records::{Case, FollowUp, Household, Member, Promise, Record, VisitLog};
use gridsync_shared::{DocId, RecordKind};
use std::borrow::Cow;

/// Joins list entries in one cell.
pub const LIST_SEPARATOR: &str = "；";

/// Joins photo file names in the 照片 cell (ASCII, so scripts can split it).
pub const PHOTO_SEPARATOR: &str = ";";

/// Where a photo is in a snapshot archive: `photos/<sha256>.<ext>`.
pub fn photo_file_name(sha256: &PhotoHash, mime: PhotoType) -> String {
    format!("photos/{sha256}.{}", mime.ext())
}

/// The distinct photo files `photos` name, in the record's order (a photo
/// attached both to a case and to one of its follow-ups is one file).
pub fn photo_files(photos: &[PhotoRef]) -> Vec<String> {
    let mut files: Vec<String> = Vec::with_capacity(photos.len());
    for p in photos {
        let name = photo_file_name(&p.sha256, p.mime);
        if !files.contains(&name) {
            files.push(name);
        }
    }
    files
}

/// One cell of a row, typed so each format can show it best.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell<'a> {
    /// Nothing.
    Empty,
    /// Text.
    Text(Cow<'a, str>),
    /// An ID or phone number: text that must never be read as a number.
    Protected(&'a str),
    /// A moment, Unix milliseconds, shown in Beijing time.
    Time(i64),
    /// A count.
    Count(u64),
    /// A measurement (coordinates, accuracy).
    Number(f64),
}

impl<'a> Cell<'a> {
    fn text(s: &'a str) -> Self {
        if s.is_empty() { Cell::Empty } else { Cell::Text(Cow::Borrowed(s)) }
    }

    fn owned(s: String) -> Self {
        if s.is_empty() { Cell::Empty } else { Cell::Text(Cow::Owned(s)) }
    }

    fn id(id: Option<impl ToString>) -> Self {
        id.map_or(Cell::Empty, |id| Cell::Text(Cow::Owned(id.to_string())))
    }

    fn time(ms: Option<i64>) -> Self {
        ms.map_or(Cell::Empty, Cell::Time)
    }

    fn yes_no(b: Option<bool>) -> Self {
        b.map_or(Cell::Empty, |b| Cell::Text(Cow::Borrowed(if b { "是" } else { "否" })))
    }
}

/// Every table starts with these: the record, where, who made it and when.
const COMMON: [&str; 6] = ["记录编号", "网格", "网格名称", "创建人", "创建人姓名", "创建时间"];

/// Every table ends with these: whether the record was voided (作废), why, by whom and when.
const VOID: [&str; 4] = ["作废", "作废原因", "作废人", "作废时间"];

const HOUSEHOLD: [&str; 18] = [
    COMMON[0],
    COMMON[1],
    COMMON[2],
    COMMON[3],
    COMMON[4],
    COMMON[5],
    "地址",
    "户主",
    "户主电话",
    "户主身份证号",
    "家庭成员",
    "成员人数",
    "标签",
    "备注",
    VOID[0],
    VOID[1],
    VOID[2],
    VOID[3],
];

/// Visit logs and cases name their photo files, then count them.
const PHOTOS: [&str; 2] = ["照片", "照片数"];

const VISIT_LOG: [&str; 22] = [
    COMMON[0],
    COMMON[1],
    COMMON[2],
    COMMON[3],
    COMMON[4],
    COMMON[5],
    "走访住户",
    "住户户主",
    "走访时间",
    "走访类型",
    "纬度",
    "经度",
    "定位精度（米）",
    "走访情况",
    "群众诉求",
    "发现问题",
    PHOTOS[0],
    PHOTOS[1],
    VOID[0],
    VOID[1],
    VOID[2],
    VOID[3],
];

const CASE: [&str; 31] = [
    COMMON[0],
    COMMON[1],
    COMMON[2],
    COMMON[3],
    COMMON[4],
    COMMON[5],
    "事件类型",
    "标题",
    "描述",
    "涉及住户",
    "住户户主",
    "来源走访",
    "办结期限",
    "当前状态",
    "承办人",
    "承办人姓名",
    "重新办理次数",
    "是否逾期",
    "最近状态变更时间",
    "最近状态变更人",
    "跟进次数",
    "最新跟进时间",
    "最新跟进人",
    "最新跟进",
    "回访满意度",
    PHOTOS[0],
    PHOTOS[1],
    VOID[0],
    VOID[1],
    VOID[2],
    VOID[3],
];

const PROMISE: [&str; 19] = [
    COMMON[0],
    COMMON[1],
    COMMON[2],
    COMMON[3],
    COMMON[4],
    COMMON[5],
    "承诺内容",
    "涉及住户",
    "住户户主",
    "承诺期限",
    "践诺情况",
    "是否逾期",
    "结果记录数",
    "最新结果说明",
    "最新结果记录人",
    VOID[0],
    VOID[1],
    VOID[2],
    VOID[3],
];

/// The column headers of `kind`'s table, in order.
pub fn headers(kind: RecordKind) -> &'static [&'static str] {
    match kind {
        RecordKind::Household => &HOUSEHOLD,
        RecordKind::VisitLog => &VISIT_LOG,
        RecordKind::Case => &CASE,
        RecordKind::Promise => &PROMISE,
    }
}

/// The stem of `kind`'s file names: `households`, `visit_logs`, `cases`, `promises`.
pub fn file_stem(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Household => "households",
        RecordKind::VisitLog => "visit_logs",
        RecordKind::Case => "cases",
        RecordKind::Promise => "promises",
    }
}

/// One member as one list entry: `周丽（女儿，身份证号 420902…，电话 139…）`.
pub fn member_text(m: &Member) -> String {
    let details: Vec<String> = [
        (!m.relation.is_empty()).then(|| m.relation.clone()),
        (!m.id_number.is_empty()).then(|| format!("身份证号 {}", m.id_number)),
        (!m.phone.is_empty()).then(|| format!("电话 {}", m.phone)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if details.is_empty() { m.name.clone() } else { format!("{}（{}）", m.name, details.join("，")) }
}

/// The row of `item`, with one cell per header; `as_of_ms` decides what is
/// overdue, `names` gives the names written beside ids.
pub fn row<'a>(item: &'a SnapshotItem, as_of_ms: i64, names: &'a Names) -> Vec<Cell<'a>> {
    let meta = item.record.meta();
    let mut cells = vec![
        Cell::owned(item.id.to_string()),
        Cell::text(meta.grid.as_str()),
        names.territory(&meta.grid).map_or(Cell::Empty, Cell::text),
        Cell::owned(meta.creator.to_string()),
        names.person(meta.creator).map_or(Cell::Empty, Cell::text),
        Cell::Time(meta.created_at),
    ];
    match &item.record {
        Record::Household(h) => household(h, &mut cells),
        Record::VisitLog(v) => visit(v, names, &mut cells),
        Record::Case(c) => case(c, as_of_ms, names, &mut cells),
        Record::Promise(p) => promise(p, as_of_ms, names, &mut cells),
    }
    if matches!(item.record, Record::VisitLog(_) | Record::Case(_)) {
        let files = photo_files(item.record.photos());
        cells.extend([Cell::owned(files.join(PHOTO_SEPARATOR)), Cell::Count(files.len() as u64)]);
    }
    let voided = item.record.voided();
    cells.extend([
        Cell::yes_no(Some(voided.is_some())),
        voided.map_or(Cell::Empty, |v| Cell::text(&v.reason)),
        voided.map_or(Cell::Empty, |v| Cell::owned(names.person_or_id(v.by))),
        Cell::time(voided.map(|v| v.at)),
    ]);
    cells
}

/// The head of `household`, as the snapshot shows it.
fn head<'a>(household: Option<DocId>, names: &Names) -> Cell<'a> {
    household.and_then(|h| names.head(h)).map_or(Cell::Empty, Cell::owned)
}

fn household<'a>(h: &'a Household, cells: &mut Vec<Cell<'a>>) {
    let f = &h.fields;
    let members: Vec<String> = f.members.iter().map(member_text).collect();
    cells.extend([
        Cell::text(&f.address),
        Cell::text(&f.head),
        Cell::Protected(&f.phone),
        Cell::Protected(&f.id_number),
        Cell::owned(members.join(LIST_SEPARATOR)),
        Cell::Count(f.members.len() as u64),
        Cell::owned(f.tags.join(LIST_SEPARATOR)),
        Cell::text(&f.notes),
    ]);
}

fn visit<'a>(v: &'a VisitLog, names: &Names, cells: &mut Vec<Cell<'a>>) {
    let f = &v.fields;
    let number = |n: Option<f64>| n.map_or(Cell::Empty, Cell::Number);
    cells.extend([
        Cell::id(f.household),
        head(f.household, names),
        Cell::Time(f.visited_at),
        f.kind.map_or(Cell::Empty, |k| Cell::text(k.name_zh())),
        number(f.location.map(|l| l.lat)),
        number(f.location.map(|l| l.lon)),
        number(f.location.and_then(|l| l.accuracy_m)),
        Cell::text(&f.notes),
        Cell::owned(f.concerns.join(LIST_SEPARATOR)),
        Cell::text(&f.findings),
    ]);
}

fn latest(follow_ups: &[FollowUp], with_satisfaction: bool) -> Option<&FollowUp> {
    follow_ups.iter().filter(|f| !with_satisfaction || f.satisfaction.is_some()).max_by_key(|f| (f.at, f.id))
}

fn case<'a>(c: &'a Case, as_of_ms: i64, names: &Names, cells: &mut Vec<Cell<'a>>) {
    let f = &c.fields;
    let standing = c.standing();
    let overdue = f.due_at.map(|due| due < as_of_ms && !standing.status.is_resolved());
    let last = latest(&c.follow_ups, false);
    let last_move = c.status_log.iter().max_by_key(|e| (e.at, e.id));
    let assignee = c.assignee();
    cells.extend([
        Cell::text(f.kind.name_zh()),
        Cell::text(&f.title),
        Cell::text(&f.description),
        Cell::id(f.household),
        head(f.household, names),
        Cell::id(f.visit),
        Cell::time(f.due_at),
        Cell::text(standing.status.name_zh()),
        Cell::id(assignee),
        assignee.and_then(|a| names.person(a)).map_or(Cell::Empty, |n| Cell::owned(n.to_string())),
        Cell::Count(u64::from(standing.epoch)),
        Cell::yes_no(overdue),
        Cell::time(last_move.map(|e| e.at)),
        last_move.map_or(Cell::Empty, |e| Cell::owned(names.person_or_id(e.by))),
        Cell::Count(c.follow_ups.len() as u64),
        Cell::time(last.map(|l| l.at)),
        last.map_or(Cell::Empty, |l| Cell::owned(names.person_or_id(l.by))),
        last.map_or(Cell::Empty, |l| Cell::text(&l.note)),
        latest(&c.follow_ups, true).and_then(|l| l.satisfaction).map_or(Cell::Empty, |s| Cell::text(s.name_zh())),
    ]);
}

fn promise<'a>(p: &'a Promise, as_of_ms: i64, names: &Names, cells: &mut Vec<Cell<'a>>) {
    let f = &p.fields;
    let kept = p.kept();
    let last = p.outcomes.iter().max_by_key(|o| (o.at, o.id));
    cells.extend([
        Cell::text(&f.content),
        Cell::id(f.household),
        head(f.household, names),
        Cell::Time(f.due_at),
        Cell::text(match kept {
            Some(true) => "已践诺",
            Some(false) => "未践诺",
            None => "待落实",
        }),
        Cell::yes_no(Some(kept.is_none() && f.due_at < as_of_ms)),
        Cell::Count(p.outcomes.len() as u64),
        last.map_or(Cell::Empty, |o| Cell::text(&o.note)),
        last.map_or(Cell::Empty, |o| Cell::owned(names.person_or_id(o.by))),
    ]);
}
