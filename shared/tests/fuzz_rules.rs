//! Hostile but well-formed Automerge changes against the shared rules: real
//! records (made and edited with the shared API) receive random raw operations
//! — puts and deletes at the root and in nested objects, replaced lists and
//! texts, list inserts, type changes, fixed fields set, marks and blocks, wrong
//! actors, forks behind the server, resends, missing changes — and
//! `rules::check_push` must never panic and must accept only a valid record with
//! its fixed fields and every existing entry unchanged, written within the
//! author's rights. `PROPTEST_CASES` scales every property here.

use automerge::marks::{ExpandMark, Mark};
use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{ActorId, Automerge, Change, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use gridsync_shared::records::{
    CaseFields, CaseKind, Editor, GeoPoint, HouseholdFields, Member, NewRecord, PromiseFields, Satisfaction,
    VisitFields, VisitKind, new_record, read_record,
};
use gridsync_shared::rules::{PushVerdict, RejectReason, Rejection, check_push, check_push_knowing};
use gridsync_shared::workflow::CaseStatus;
use gridsync_shared::{Author, PersonId, Record, Role, TerritoryPath};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use uuid::Uuid;

const T0: i64 = 1_767_225_600_000;
const GRID: &str = "xg/xn/sh/dh/g1";
const NEIGHBOUR_GRID: &str = "xg/xn/sh/dh/g2";
const FAR_GRID: &str = "xg/xn/sh/hp/g1";

fn path(s: &str) -> TerritoryPath {
    TerritoryPath::parse(s).expect("path")
}

/// Someone who signs in, with their device's actor.
struct Person {
    author: Author,
    actor: ActorId,
}

/// The people of the sample city. Index 0 creates every base record.
fn people() -> &'static [Person] {
    static PEOPLE: OnceLock<Vec<Person>> = OnceLock::new();
    PEOPLE.get_or_init(|| {
        let who = [
            (Role::FieldStaff, GRID),
            (Role::FieldStaff, GRID),
            (Role::FieldStaff, NEIGHBOUR_GRID),
            (Role::Supervisor, "xg/xn/sh/dh"),
            (Role::Administrator, "xg"),
            (Role::Supervisor, "xg/xn/sh/hp"),
        ];
        who.iter()
            .enumerate()
            .map(|(i, (role, territory))| Person {
                author: Author {
                    person: PersonId(Uuid::from_u128(0x0195_f3a2_7c41_7d2e_9b1a_0000_0000_0000 + i as u128)),
                    role: *role,
                    territory: path(territory),
                },
                actor: ActorId::from(vec![0x10 + i as u8; 16]),
            })
            .collect()
    })
}

fn creator() -> &'static Person {
    &people()[0]
}

fn supervisor() -> &'static Person {
    &people()[3]
}

/// An actor no device has.
fn stranger() -> ActorId {
    ActorId::from(vec![0xee; 16])
}

fn household_fields() -> HouseholdFields {
    HouseholdFields {
        address: "东湖路12号".into(),
        head: "陈桂英".into(),
        phone: "13807120011".into(),
        id_number: "420902194803150021".into(),
        members: vec![Member { name: "周丽".into(), relation: "女儿".into(), ..Member::default() }],
        tags: vec!["独居老人".into()],
        notes: "行动不便".into(),
    }
}

fn visit_fields() -> VisitFields {
    VisitFields {
        household: Some(gridsync_shared::DocId(Uuid::from_u128(7))),
        visited_at: T0,
        kind: Some(VisitKind::Routine),
        location: Some(GeoPoint { lat: 30.9, lon: 113.9, accuracy_m: Some(10.0) }),
        notes: "老人身体尚可".into(),
        concerns: vec!["楼道灯坏了".into()],
        findings: "无".into(),
    }
}

fn case_fields() -> CaseFields {
    CaseFields {
        kind: CaseKind::Hazard,
        title: "楼道灯损坏".into(),
        description: "3栋楼道灯不亮".into(),
        household: None,
        visit: None,
        due_at: Some(T0 + 86_400_000),
    }
}

fn promise_fields() -> PromiseFields {
    PromiseFields { content: "一周内修好".into(), household: None, due_at: T0 + 86_400_000 }
}

fn new_fields(kind: usize) -> NewRecord {
    match kind % 4 {
        0 => NewRecord::Household(household_fields()),
        1 => NewRecord::VisitLog(visit_fields()),
        2 => NewRecord::Case(case_fields()),
        _ => NewRecord::Promise(promise_fields()),
    }
}

/// Makes an edit as `p` on `doc` (switching the doc's actor to theirs).
fn edit_as(doc: &mut Automerge, p: &Person, at: i64, edit: &Edit) -> bool {
    doc.set_actor(p.actor.clone());
    apply_edit(&mut Editor::new(doc, &p.author, at), edit)
}

/// The records every case starts from, each with a history, saved.
fn bases() -> &'static [Vec<u8>] {
    static BASES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    BASES.get_or_init(|| {
        let make = |kind: usize, random: u8| {
            new_record(creator().actor.clone(), &creator().author, &path(GRID), T0, [random; 10], &new_fields(kind))
                .expect("base record")
                .1
        };
        let (sup, me) = (supervisor(), creator());
        let mut household = make(0, 1);
        assert!(edit_as(&mut household, me, T0 + 1, &Edit::HouseholdNotes("行动不便，需每周探望".into())));
        let mut visit = make(1, 2);
        assert!(edit_as(&mut visit, me, T0 + 1, &Edit::VisitNotes("老人身体尚可。已提醒用电安全。".into())));
        let mut case = make(2, 3);
        assert!(edit_as(&mut case, sup, T0 + 1, &Edit::Advance(1)));
        assert!(edit_as(&mut case, sup, T0 + 2, &Edit::Advance(2)));
        assert!(edit_as(&mut case, me, T0 + 3, &Edit::Advance(3)));
        assert!(edit_as(&mut case, me, T0 + 4, &Edit::FollowUp("已联系物业".into(), None)));
        assert!(edit_as(&mut case, sup, T0 + 5, &Edit::FollowUp("请尽快处理".into(), Some(1))));
        let mut reopened = case.fork();
        assert!(edit_as(&mut reopened, me, T0 + 6, &Edit::Advance(4)));
        assert!(edit_as(&mut reopened, sup, T0 + 7, &Edit::Reopen(3, "居民反映灯仍不亮".into())));
        let mut promise = make(3, 4);
        assert!(edit_as(&mut promise, me, T0 + 1, &Edit::Outcome(false)));
        assert!(edit_as(&mut promise, sup, T0 + 2, &Edit::Outcome(true)));
        [household, visit, case, reopened, promise].iter_mut().map(|d| d.save()).collect()
    })
}

// ---------------------------------------------------------------------------
// What a hostile phone does, as data proptest can generate and shrink.

/// Strings that mean something to the schema, so random puts often look right.
fn string_pool() -> &'static [String] {
    static POOL: OnceLock<Vec<String>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut pool: Vec<String> = [
            "",
            "household",
            "visit_log",
            "case",
            "promise",
            "routine",
            "return_visit",
            "screening",
            "care",
            "dispute",
            "hazard",
            "petition",
            "request",
            "advance",
            "reopen",
            "reported",
            "accepted",
            "assigned",
            "in_progress",
            "resolved",
            "verified",
            "closed",
            "satisfied",
            "basic",
            "dissatisfied",
            GRID,
            NEIGHBOUR_GRID,
            FAR_GRID,
            "xg/xn/sh/dh",
            "XG/bad",
            "陈桂英",
            "楼道灯损坏",
            "一周内修好",
            "行动不便",
            "00000000-0000-0000-0000-000000000000",
            "not-a-uuid",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        pool.extend(people().iter().map(|p| p.author.person.to_string()));
        pool.push("长".repeat(201));
        pool.push("长".repeat(1_001));
        pool
    })
}

/// Keys of every schema, and some no schema has.
const KEYS: &[&str] = &[
    "type",
    "schema",
    "grid",
    "creator",
    "created_at",
    "address",
    "head",
    "phone",
    "id_number",
    "members",
    "tags",
    "notes",
    "household",
    "visited_at",
    "kind",
    "location",
    "concerns",
    "findings",
    "title",
    "description",
    "visit",
    "due_at",
    "status_log",
    "follow_ups",
    "content",
    "outcomes",
    "lat",
    "lon",
    "accuracy_m",
    "id",
    "by",
    "at",
    "note",
    "satisfaction",
    "to",
    "epoch",
    "reason",
    "kept",
    "name",
    "relation",
    "voids",
    "members_by_id",
    "assignee",
    "salary",
    "",
];

#[derive(Clone, Debug)]
enum Val {
    Str(usize),
    Random(String),
    Int(i64),
    Uint(u64),
    F64(f64),
    Ts(i64),
    Bool(bool),
    Null,
    Bytes(Vec<u8>),
    Counter(i64),
}

impl Val {
    fn scalar(&self) -> ScalarValue {
        let pool = string_pool();
        match self {
            Val::Str(i) => ScalarValue::Str(pool[i % pool.len()].as_str().into()),
            Val::Random(s) => ScalarValue::Str(s.as_str().into()),
            Val::Int(v) => ScalarValue::Int(*v),
            Val::Uint(v) => ScalarValue::Uint(*v),
            Val::F64(v) => ScalarValue::F64(*v),
            Val::Ts(v) => ScalarValue::Timestamp(*v),
            Val::Bool(v) => ScalarValue::Boolean(*v),
            Val::Null => ScalarValue::Null,
            Val::Bytes(v) => ScalarValue::Bytes(v.clone()),
            Val::Counter(v) => ScalarValue::counter(*v),
        }
    }
}

#[derive(Clone, Debug)]
enum Kind {
    Map,
    List,
    Text,
}

impl Kind {
    fn obj_type(&self) -> ObjType {
        match self {
            Kind::Map => ObjType::Map,
            Kind::List => ObjType::List,
            Kind::Text => ObjType::Text,
        }
    }
}

/// A map inserted into a list: usually shaped like one of the schema's entries.
#[derive(Clone, Debug)]
enum Entry {
    FollowUp { mine: bool, reuse_id: bool, satisfaction: Option<usize> },
    Status { reopen: bool, to: usize, epoch: u64, mine: bool, reason: bool, reuse_id: bool },
    Outcome { kept: bool, mine: bool, reuse_id: bool },
    Member,
    Raw(Vec<(usize, Val)>),
}

/// One raw operation; object and position picks are taken modulo what exists.
#[derive(Clone, Debug)]
enum Raw {
    PutRoot(usize, Val),
    DeleteRoot(usize),
    ObjectRoot(usize, Kind),
    PutIn(usize, usize, Val),
    ObjectIn(usize, usize, Kind),
    DeleteIn(usize, usize),
    Insert(usize, usize, Val),
    InsertEntry(usize, usize, Entry),
    DeleteAt(usize, usize),
    SetAt(usize, usize, Val),
    Splice(usize, usize, usize, String),
    Increment(usize, usize, i64),
    Mark(usize, usize, usize),
    Block(usize, usize),
    /// Puts a value and then puts back what was there (or deletes it): no
    /// change as the writer sees the document, but new operations that may win
    /// over concurrent ones in the merge.
    PutBack(Option<usize>, usize, Val),
    /// Puts back every plain value at the root, as a naive client that writes
    /// every field on each save would.
    RewriteAll(Val),
}

/// An edit through the shared API, as the phone app makes them.
#[derive(Clone, Debug)]
enum Edit {
    FollowUp(String, Option<usize>),
    Advance(usize),
    Reopen(usize, String),
    Outcome(bool),
    HouseholdNotes(String),
    VisitNotes(String),
    VisitWithoutLocation,
    CaseTitle(String),
}

fn apply_edit(e: &mut Editor<'_>, edit: &Edit) -> bool {
    let status = |i: usize| CaseStatus::ALL[i % CaseStatus::ALL.len()];
    let satisfaction = |i: usize| [Satisfaction::Satisfied, Satisfaction::Basic, Satisfaction::Dissatisfied][i % 3];
    let result = match (edit, e.record()) {
        (_, Err(_)) => return false,
        (Edit::FollowUp(note, s), _) => e.add_follow_up(note, s.map(satisfaction)),
        // 交办 names an assignee: here the creator, who works in the grid.
        (Edit::Advance(to), _) if status(*to) == CaseStatus::Assigned => e.assign_case(creator().author.person),
        (Edit::Advance(to), _) => e.advance_case(status(*to)),
        (Edit::Reopen(to, reason), _) => e.reopen_case(status(*to), reason),
        (Edit::Outcome(kept), _) => e.record_promise_outcome(*kept, "回访"),
        (Edit::HouseholdNotes(notes), Ok(Record::Household(h))) => {
            e.update_household(&HouseholdFields { notes: notes.clone(), ..h.fields })
        }
        (Edit::VisitNotes(notes), Ok(Record::VisitLog(v))) => {
            e.update_visit(&VisitFields { notes: notes.clone(), ..v.fields })
        }
        (Edit::VisitWithoutLocation, Ok(Record::VisitLog(v))) => {
            e.update_visit(&VisitFields { location: None, ..v.fields })
        }
        (Edit::CaseTitle(title), Ok(Record::Case(c))) => {
            e.update_case(&CaseFields { title: title.clone(), ..c.fields })
        }
        _ => return false,
    };
    result.is_ok()
}

/// The edit made to a record of another kind: its nearest equivalent.
fn fit(edit: &Edit, record: &Record) -> Edit {
    let text = match edit {
        Edit::FollowUp(t, _)
        | Edit::Reopen(_, t)
        | Edit::HouseholdNotes(t)
        | Edit::VisitNotes(t)
        | Edit::CaseTitle(t) => t.clone(),
        Edit::Advance(_) | Edit::Outcome(_) | Edit::VisitWithoutLocation => "改".to_string(),
    };
    match (record, edit) {
        (Record::Household(_), _) => Edit::HouseholdNotes(text),
        (Record::VisitLog(_), Edit::VisitWithoutLocation) => Edit::VisitWithoutLocation,
        (Record::VisitLog(_), _) => Edit::VisitNotes(text),
        (Record::Case(_), Edit::FollowUp(..) | Edit::Advance(_) | Edit::Reopen(..) | Edit::CaseTitle(_)) => {
            edit.clone()
        }
        (Record::Case(_), _) => Edit::FollowUp(text, None),
        (Record::Promise(_), Edit::Outcome(kept)) => Edit::Outcome(*kept),
        (Record::Promise(_), _) => Edit::Outcome(text.len() % 2 == 0),
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// Raw operations in one change, by the device (or by an actor not its own).
    Raw { ops: Vec<Raw>, wrong_actor: bool },
    /// An edit through the shared API, by the device.
    Edit(Edit),
}

/// Every object of a document below the root, with its type.
fn objects(doc: &Automerge) -> Vec<(ObjId, ObjType)> {
    let mut out = Vec::new();
    let mut stack = vec![ROOT];
    while let Some(obj) = stack.pop() {
        let children: Vec<(Value<'_>, ObjId)> = match doc.object_type(&obj) {
            Ok(ObjType::Map | ObjType::Table) => {
                doc.keys(&obj).filter_map(|k| doc.get(&obj, k.as_str()).ok().flatten()).collect()
            }
            Ok(ObjType::List) => (0..doc.length(&obj)).filter_map(|i| doc.get(&obj, i).ok().flatten()).collect(),
            _ => Vec::new(),
        };
        for (v, id) in children {
            if let Value::Object(t) = v {
                out.push((id.clone(), t));
                stack.push(id);
            }
        }
    }
    out
}

fn pick<'a>(objs: &'a [(ObjId, ObjType)], i: usize, want: &[ObjType]) -> Option<&'a ObjId> {
    let of: Vec<&ObjId> = objs.iter().filter(|(_, t)| want.contains(t)).map(|(o, _)| o).collect();
    if of.is_empty() { None } else { Some(of[i % of.len()]) }
}

fn key(i: usize) -> &'static str {
    KEYS[i % KEYS.len()]
}

/// Ids of entries the document already has, to reuse (a duplicate id is hostile).
fn entry_ids(doc: &Automerge) -> Vec<String> {
    match read_record(doc) {
        Ok(r) => entry_authors(&r).into_iter().map(|((_, id), _)| id.to_string()).collect(),
        Err(_) => Vec::new(),
    }
}

fn write_entry(
    tx: &mut Transaction<'_>,
    list: &ObjId,
    at: usize,
    entry: &Entry,
    me: &Person,
    ids: &[String],
    n: u64,
) -> Result<(), automerge::AutomergeError> {
    let m = tx.insert_object(list, at, ObjType::Map)?;
    let other = people()[3].author.person;
    let by = |mine: bool| if mine { me.author.person.to_string() } else { other.to_string() };
    let id = |reuse: bool| match (reuse, ids.first()) {
        (true, Some(existing)) => existing.clone(),
        _ => Uuid::from_u128(0xabcd_0000_0000_4000_8000_0000_0000_0000 | u128::from(n)).to_string(),
    };
    match entry {
        Entry::FollowUp { mine, reuse_id, satisfaction } => {
            tx.put(&m, "id", id(*reuse_id))?;
            tx.put(&m, "by", by(*mine))?;
            tx.put(&m, "at", ScalarValue::Timestamp(T0 + 50))?;
            tx.put(&m, "note", "补充")?;
            if let Some(s) = satisfaction {
                tx.put(&m, "satisfaction", ["satisfied", "basic", "dissatisfied", "great"][s % 4])?;
            }
        }
        Entry::Status { reopen, to, epoch, mine, reason, reuse_id } => {
            tx.put(&m, "id", id(*reuse_id))?;
            tx.put(&m, "kind", if *reopen { "reopen" } else { "advance" })?;
            tx.put(&m, "to", CaseStatus::ALL[to % CaseStatus::ALL.len()].as_str())?;
            tx.put(&m, "epoch", *epoch)?;
            tx.put(&m, "by", by(*mine))?;
            tx.put(&m, "at", ScalarValue::Timestamp(T0 + 50))?;
            if *reason {
                tx.put(&m, "reason", "复查")?;
            }
        }
        Entry::Outcome { kept, mine, reuse_id } => {
            tx.put(&m, "id", id(*reuse_id))?;
            tx.put(&m, "kept", *kept)?;
            tx.put(&m, "by", by(*mine))?;
            tx.put(&m, "at", ScalarValue::Timestamp(T0 + 50))?;
            tx.put(&m, "note", "已办")?;
        }
        Entry::Member => {
            tx.put(&m, "name", "李四")?;
            tx.put(&m, "relation", "儿子")?;
        }
        Entry::Raw(fields) => {
            for (k, v) in fields {
                tx.put(&m, key(*k), v.scalar())?;
            }
        }
    }
    Ok(())
}

/// Applies one raw operation; Automerge refusing it (a bad index, a wrong
/// object type) just means the operation is not made.
fn apply_raw(tx: &mut Transaction<'_>, op: &Raw, objs: &[(ObjId, ObjType)], me: &Person, ids: &[String], n: u64) {
    use ObjType::{List, Map, Text};
    let len = |tx: &Transaction<'_>, o: &ObjId| tx.length(o);
    let _ = match op {
        Raw::PutRoot(k, v) => tx.put(ROOT, key(*k), v.scalar()),
        Raw::DeleteRoot(k) => tx.delete(ROOT, key(*k)),
        Raw::ObjectRoot(k, kind) => tx.put_object(ROOT, key(*k), kind.obj_type()).map(|_| ()),
        Raw::PutIn(o, k, v) => match pick(objs, *o, &[Map]) {
            Some(obj) => tx.put(obj, key(*k), v.scalar()),
            None => Ok(()),
        },
        Raw::ObjectIn(o, k, kind) => match pick(objs, *o, &[Map]) {
            Some(obj) => tx.put_object(obj, key(*k), kind.obj_type()).map(|_| ()),
            None => Ok(()),
        },
        Raw::DeleteIn(o, k) => match pick(objs, *o, &[Map]) {
            Some(obj) => tx.delete(obj, key(*k)),
            None => Ok(()),
        },
        Raw::Insert(o, i, v) => match pick(objs, *o, &[List]) {
            Some(obj) => {
                let at = i % (len(tx, obj) + 1);
                tx.insert(obj, at, v.scalar())
            }
            None => Ok(()),
        },
        Raw::InsertEntry(o, i, entry) => match pick(objs, *o, &[List]) {
            Some(obj) => {
                let at = i % (len(tx, obj) + 1);
                write_entry(tx, obj, at, entry, me, ids, n)
            }
            None => Ok(()),
        },
        Raw::DeleteAt(o, i) => match pick(objs, *o, &[List, Text]) {
            Some(obj) if len(tx, obj) > 0 => {
                let at = i % len(tx, obj);
                tx.delete(obj, at)
            }
            _ => Ok(()),
        },
        Raw::SetAt(o, i, v) => match pick(objs, *o, &[List]) {
            Some(obj) if len(tx, obj) > 0 => {
                let at = i % len(tx, obj);
                tx.put(obj, at, v.scalar())
            }
            _ => Ok(()),
        },
        Raw::Splice(o, i, del, text) => match pick(objs, *o, &[Text]) {
            Some(obj) => {
                let l = len(tx, obj);
                let at = i % (l + 1);
                let del = (*del).min(l - at) as isize;
                tx.splice_text(obj, at, del, text)
            }
            None => Ok(()),
        },
        Raw::Increment(o, k, by) => match pick(objs, *o, &[Map]) {
            Some(obj) => tx.increment(obj, key(*k), *by),
            None => tx.increment(ROOT, key(*k), *by),
        },
        Raw::Mark(o, start, width) => match pick(objs, *o, &[Text]) {
            Some(obj) if len(tx, obj) > 0 => {
                let l = len(tx, obj);
                let start = start % l;
                let end = (start + width % 4 + 1).min(l);
                tx.mark(obj, Mark::new("bold".into(), true, start, end), ExpandMark::None)
            }
            _ => Ok(()),
        },
        Raw::Block(o, i) => match pick(objs, *o, &[Text]) {
            Some(obj) => {
                let at = i % (len(tx, obj) + 1);
                tx.split_block(obj, at).map(|_| ())
            }
            None => Ok(()),
        },
        Raw::RewriteAll(v) => {
            let keys: Vec<String> = tx.keys(ROOT).collect();
            keys.iter().try_for_each(|k| put_back(tx, &ROOT, k, v))
        }
        Raw::PutBack(o, k, v) => {
            let obj = match o {
                None => Some(&ROOT),
                Some(o) => pick(objs, *o, &[Map]),
            };
            match obj {
                Some(obj) => {
                    // Usually a key the object has, so the put-back meets real values.
                    let keys: Vec<String> = tx.keys(obj).collect();
                    let key =
                        if keys.is_empty() || k % 4 == 0 { key(*k).to_string() } else { keys[k % keys.len()].clone() };
                    put_back(tx, obj, &key, v)
                }
                None => Ok(()),
            }
        }
    };
}

fn put_back(tx: &mut Transaction<'_>, obj: &ObjId, key: &str, v: &Val) -> Result<(), automerge::AutomergeError> {
    match tx.get(obj, key)? {
        Some((Value::Scalar(old), _)) => {
            let old = old.into_owned();
            let other = if v.scalar() == old { ScalarValue::Str("别的".into()) } else { v.scalar() };
            tx.put(obj, key, other)?;
            tx.put(obj, key, old)
        }
        Some((Value::Object(_), _)) => Ok(()),
        None => {
            tx.put(obj, key, v.scalar())?;
            tx.delete(obj, key)
        }
    }
}

/// Runs the phone's steps on `doc` as device `me`; returns how many steps made a change.
fn run_steps(doc: &mut Automerge, me: &Person, steps: &[Step], clock: &mut i64) {
    for (n, step) in steps.iter().enumerate() {
        *clock += 1_000;
        match step {
            Step::Edit(edit) => {
                if let Ok(record) = read_record(doc) {
                    edit_as(doc, me, *clock, &fit(edit, &record));
                }
            }
            Step::Raw { ops, wrong_actor } => {
                doc.set_actor(if *wrong_actor { stranger() } else { me.actor.clone() });
                let objs = objects(doc);
                let ids = entry_ids(doc);
                let mut tx = doc.transaction();
                for (i, op) in ops.iter().enumerate() {
                    apply_raw(&mut tx, op, &objs, me, &ids, (n * 16 + i) as u64);
                }
                tx.commit_with(CommitOptions::default().with_time(*clock));
                doc.set_actor(me.actor.clone());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Strategies.

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        6 => any::<usize>().prop_map(Val::Str),
        1 => ".{0,6}".prop_map(Val::Random),
        2 => prop_oneof![Just(0i64), Just(1), Just(-1), Just(T0), Just(i64::MIN), any::<i64>()].prop_map(Val::Int),
        1 => prop_oneof![Just(0u64), Just(1), Just(u64::MAX), any::<u64>()].prop_map(Val::Uint),
        1 => prop_oneof![Just(0.0f64), Just(30.5), Just(f64::NAN), Just(f64::INFINITY), Just(1e300), any::<f64>()]
            .prop_map(Val::F64),
        2 => prop_oneof![Just(T0), Just(T0 + 86_400_000), any::<i64>()].prop_map(Val::Ts),
        1 => any::<bool>().prop_map(Val::Bool),
        1 => Just(Val::Null),
        1 => prop::collection::vec(any::<u8>(), 0..4).prop_map(Val::Bytes),
        1 => any::<i64>().prop_map(Val::Counter),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Map), Just(Kind::List), Just(Kind::Text)]
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        3 => (prop::bool::weighted(0.85), prop::bool::weighted(0.1), prop::option::of(0usize..4))
            .prop_map(|(mine, reuse_id, satisfaction)| Entry::FollowUp { mine, reuse_id, satisfaction }),
        3 => (
            prop::bool::weighted(0.3),
            0usize..7,
            prop_oneof![Just(0u64), Just(1), Just(2), Just(u64::MAX)],
            prop::bool::weighted(0.85),
            any::<bool>(),
            prop::bool::weighted(0.1)
        )
            .prop_map(|(reopen, to, epoch, mine, reason, reuse_id)| Entry::Status {
                reopen,
                to,
                epoch,
                mine,
                reason,
                reuse_id
            }),
        2 => (any::<bool>(), prop::bool::weighted(0.85), prop::bool::weighted(0.1))
            .prop_map(|(kept, mine, reuse_id)| Entry::Outcome { kept, mine, reuse_id }),
        1 => Just(Entry::Member),
        1 => prop::collection::vec((any::<usize>(), val()), 0..4).prop_map(Entry::Raw),
    ]
}

fn raw() -> impl Strategy<Value = Raw> {
    let i = || any::<usize>();
    prop_oneof![
        4 => (i(), val()).prop_map(|(k, v)| Raw::PutRoot(k, v)),
        1 => i().prop_map(Raw::DeleteRoot),
        1 => (i(), kind()).prop_map(|(k, t)| Raw::ObjectRoot(k, t)),
        3 => (i(), i(), val()).prop_map(|(o, k, v)| Raw::PutIn(o, k, v)),
        1 => (i(), i(), kind()).prop_map(|(o, k, t)| Raw::ObjectIn(o, k, t)),
        1 => (i(), i()).prop_map(|(o, k)| Raw::DeleteIn(o, k)),
        2 => (i(), i(), val()).prop_map(|(o, at, v)| Raw::Insert(o, at, v)),
        5 => (i(), i(), entry()).prop_map(|(o, at, e)| Raw::InsertEntry(o, at, e)),
        1 => (i(), i()).prop_map(|(o, at)| Raw::DeleteAt(o, at)),
        1 => (i(), i(), val()).prop_map(|(o, at, v)| Raw::SetAt(o, at, v)),
        3 => (i(), i(), 0usize..4, ".{0,6}").prop_map(|(o, at, d, t)| Raw::Splice(o, at, d, t)),
        1 => (i(), i(), any::<i64>()).prop_map(|(o, k, by)| Raw::Increment(o, k, by)),
        1 => (i(), i(), i()).prop_map(|(o, s, w)| Raw::Mark(o, s, w)),
        1 => (i(), i()).prop_map(|(o, at)| Raw::Block(o, at)),
        3 => (prop::option::of(i()), i(), val()).prop_map(|(o, k, v)| Raw::PutBack(o, k, v)),
        1 => val().prop_map(Raw::RewriteAll),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (".{0,8}", prop::option::of(0usize..3)).prop_map(|(n, s)| Edit::FollowUp(n, s)),
        3 => (0usize..7).prop_map(Edit::Advance),
        1 => (0usize..7, ".{0,4}").prop_map(|(to, r)| Edit::Reopen(to, r)),
        2 => any::<bool>().prop_map(Edit::Outcome),
        2 => ".{0,12}".prop_map(Edit::HouseholdNotes),
        2 => ".{0,12}".prop_map(Edit::VisitNotes),
        1 => Just(Edit::VisitWithoutLocation),
        2 => ".{1,12}".prop_map(Edit::CaseTitle),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (prop::collection::vec(raw(), 1..4), prop::bool::weighted(0.08))
            .prop_map(|(ops, wrong_actor)| Step::Raw { ops, wrong_actor }),
        3 => edit().prop_map(Step::Edit),
    ]
}

/// A hostile push to a record the server holds.
#[derive(Clone, Debug)]
struct Update {
    base: usize,
    author: usize,
    /// How many of the server's latest changes the phone had not seen when it edited.
    behind: usize,
    /// An edit the server received from someone else after the phone's fork.
    concurrent: Option<(usize, Edit)>,
    steps: Vec<Step>,
    /// Also resend the device's changes the server already has (a lost response).
    resend: bool,
    /// Leave one of the new changes out.
    drop: Option<usize>,
    /// Rotate the pushed changes out of causal order.
    rotate: usize,
}

fn update() -> impl Strategy<Value = Update> {
    (
        0usize..5,
        prop_oneof![4 => Just(0usize), 4 => Just(1usize), 1 => 2usize..6],
        prop_oneof![3 => Just(0usize), 1 => 1usize..4],
        prop::option::weighted(
            0.4,
            (
                prop_oneof![Just(1usize), Just(3usize), Just(0usize)],
                prop_oneof![edit(), ".{1,8}".prop_map(Edit::CaseTitle)],
            ),
        ),
        prop::collection::vec(step(), 1..4),
        prop::bool::weighted(0.2),
        prop::option::weighted(0.05, any::<usize>()),
        prop_oneof![5 => Just(0usize), 1 => any::<usize>()],
    )
        .prop_map(|(base, author, behind, concurrent, steps, resend, drop, rotate)| Update {
            base,
            author,
            behind,
            concurrent,
            steps,
            resend,
            drop,
            rotate,
        })
}

/// A hostile push creating a record: made with the real encoder, but possibly
/// in someone else's name or grid, then edited at random.
#[derive(Clone, Debug)]
struct Creation {
    kind: usize,
    author: usize,
    claimed: usize,
    grid: usize,
    steps: Vec<Step>,
    rotate: usize,
}

fn creation() -> impl Strategy<Value = Creation> {
    (
        0usize..4,
        prop_oneof![3 => Just(0usize), 1 => 1usize..6],
        prop_oneof![4 => Just(None), 1 => (0usize..6).prop_map(Some)],
        prop_oneof![4 => Just(0usize), 1 => 1usize..3],
        prop::collection::vec(step(), 0..3),
        prop_oneof![5 => Just(0usize), 1 => any::<usize>()],
    )
        .prop_map(|(kind, author, claimed, grid, steps, rotate)| Creation {
            kind,
            author,
            claimed: claimed.unwrap_or(author),
            grid,
            steps,
            rotate,
        })
}

// ---------------------------------------------------------------------------
// What every verdict must respect.

/// Every append-only entry, by its list and id, as text to compare.
fn entries(r: &Record) -> HashMap<(&'static str, Uuid), String> {
    let mut out = HashMap::new();
    match r {
        Record::Case(c) => {
            out.extend(c.status_log.iter().map(|e| (("status_log", e.id), format!("{e:?}"))));
            out.extend(c.follow_ups.iter().map(|f| (("follow_ups", f.id), format!("{f:?}"))));
        }
        Record::Promise(p) => out.extend(p.outcomes.iter().map(|o| (("outcomes", o.id), format!("{o:?}")))),
        _ => {}
    }
    out.extend(r.voids().iter().map(|v| (("voids", v.id), format!("{v:?}"))));
    out
}

/// Who wrote each append-only entry, by its list and id.
fn entry_authors(r: &Record) -> Vec<((&'static str, Uuid), PersonId)> {
    match r {
        Record::Case(c) => c
            .status_log
            .iter()
            .map(|e| (("status_log", e.id), e.by))
            .chain(c.follow_ups.iter().map(|f| (("follow_ups", f.id), f.by)))
            .collect(),
        Record::Promise(p) => p.outcomes.iter().map(|o| (("outcomes", o.id), o.by)).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .chain(r.voids().iter().map(|v| (("voids", v.id), v.by)))
    .collect()
}

fn same_fields(a: &Record, b: &Record) -> bool {
    match (a, b) {
        (Record::Household(x), Record::Household(y)) => x.fields == y.fields,
        (Record::VisitLog(x), Record::VisitLog(y)) => x.fields == y.fields,
        (Record::Case(x), Record::Case(y)) => x.fields == y.fields,
        (Record::Promise(x), Record::Promise(y)) => x.fields == y.fields,
        _ => false,
    }
}

fn may_edit_fields(r: &Record, author: &Author) -> bool {
    let own = r.meta().creator == author.person;
    match r {
        Record::Household(_) => true,
        Record::VisitLog(_) => own,
        Record::Case(_) | Record::Promise(_) => own || author.role.reviews(),
    }
}

/// What became of one generated push, for the tally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Outcome {
    Accepted,
    Duplicate,
    Rejected(RejectReason),
    NothingToPush,
}

/// Checks a verdict on `pushed` against the server's `current` document.
fn check_verdict(
    current: Option<&Automerge>,
    pushed: &[Change],
    me: &Person,
    verdict: Result<PushVerdict, Rejection>,
) -> Result<Outcome, TestCaseError> {
    let held = |h: &ChangeHash| current.is_some_and(|d| d.get_change_by_hash(h).is_some());
    let new: Vec<&Change> = pushed.iter().filter(|c| !held(&c.hash())).collect();
    let foreign = new.iter().any(|c| c.actor_id() != &me.actor);
    match verdict {
        Err(rejection) => {
            if foreign {
                prop_assert_eq!(rejection.reason, RejectReason::WrongActor, "{}", rejection);
            }
            Ok(Outcome::Rejected(rejection.reason))
        }
        Ok(PushVerdict::Duplicate) => {
            prop_assert!(current.is_some(), "a new document cannot be a duplicate");
            prop_assert!(new.is_empty(), "Duplicate only when the server holds every pushed change");
            Ok(Outcome::Duplicate)
        }
        Ok(PushVerdict::Accept { merged, record }) => {
            prop_assert!(!foreign, "accepted a change by another actor");
            prop_assert!(!new.is_empty(), "accepted a push of nothing new");
            let reread = read_record(&merged);
            prop_assert_eq!(reread.as_ref(), Ok(&*record), "the merged document reads as the verdict's record");
            let author = &me.author;
            prop_assert!(author.covers(&record.meta().grid), "accepted outside the author's territory");
            for c in pushed {
                prop_assert!(merged.get_change_by_hash(&c.hash()).is_some(), "a pushed change is in the merge");
            }
            let before = match current {
                None => {
                    prop_assert_eq!(record.meta().creator, author.person, "a new record is created in one's own name");
                    None
                }
                Some(doc) => {
                    for c in doc.get_changes(&[]) {
                        prop_assert!(merged.get_change_by_hash(&c.hash()).is_some(), "the server's changes are kept");
                    }
                    Some(read_record(doc).expect("the server's record is valid"))
                }
            };
            let old_entries = before.as_ref().map(entries).unwrap_or_default();
            let new_entries = entries(&record);
            for (id, old) in &old_entries {
                prop_assert_eq!(new_entries.get(id), Some(old), "an existing entry was removed or altered");
            }
            for (id, by) in entry_authors(&record) {
                if !old_entries.contains_key(&id) {
                    prop_assert_eq!(by, author.person, "a new entry names someone else");
                }
            }
            if let Some(before) = &before {
                prop_assert_eq!(record.meta(), before.meta(), "a fixed field changed");
                if !same_fields(before, &record) {
                    prop_assert!(
                        may_edit_fields(&record, author),
                        "{:?} changed the fields of another's {}: {:?} -> {:?}",
                        author.role,
                        record.kind(),
                        before,
                        record
                    );
                }
            }
            Ok(Outcome::Accepted)
        }
    }
}

fn rotate(mut changes: Vec<Change>, by: usize) -> Vec<Change> {
    if !changes.is_empty() {
        let n = by % changes.len();
        changes.rotate_left(n);
    }
    changes
}

fn run_update(u: &Update) -> Result<Outcome, TestCaseError> {
    let me = &people()[u.author];
    let mut server = Automerge::load(&bases()[u.base]).expect("base loads");
    let history = server.get_changes(&[]);
    let behind = u.behind.min(history.len() - 1);
    let seen = [history[history.len() - 1 - behind].hash()];
    let mut phone = server.fork_at(&seen).expect("fork");
    phone.set_actor(me.actor.clone());
    let mut clock = T0 + 100_000;
    if let Some((who, edit)) = &u.concurrent {
        clock += 1_000;
        let record = read_record(&server).expect("the server's record is valid");
        edit_as(&mut server, &people()[*who], clock, &fit(edit, &record));
    }
    run_steps(&mut phone, me, &u.steps, &mut clock);
    let mut pushed = phone.get_changes(&seen);
    if let Some(i) = u.drop
        && pushed.len() > 1
    {
        pushed.remove(i % pushed.len());
    }
    if u.resend {
        pushed.extend(server.get_changes(&[]).into_iter().filter(|c| c.actor_id() == &me.actor));
    }
    if pushed.is_empty() {
        return Ok(Outcome::NothingToPush);
    }
    let pushed = rotate(pushed, u.rotate);
    let verdict = check_push(Some(&server), pushed.clone(), &me.actor, &me.author);
    // A server that kept the record its last push left judges without reading
    // the document again: the verdict must be the same.
    let known = read_record(&server).expect("the server's record is valid");
    let knowing = check_push_knowing(Some((&server, Some(&known))), pushed.clone(), &me.actor, &me.author);
    prop_assert!(
        same_verdict(&verdict, &knowing),
        "judged with the record kept and with it read, a push gets different verdicts"
    );
    check_verdict(Some(&server), &pushed, me, verdict)
}

/// Whether two verdicts agree: both refuse for the same reason, both find
/// only duplicates, or both accept the same merge and the same record.
fn same_verdict(a: &Result<PushVerdict, Rejection>, b: &Result<PushVerdict, Rejection>) -> bool {
    match (a, b) {
        (Err(x), Err(y)) => x == y,
        (Ok(PushVerdict::Duplicate), Ok(PushVerdict::Duplicate)) => true,
        (Ok(PushVerdict::Accept { merged: m1, record: r1 }), Ok(PushVerdict::Accept { merged: m2, record: r2 })) => {
            m1.get_heads() == m2.get_heads() && r1 == r2
        }
        _ => false,
    }
}

fn run_creation(c: &Creation) -> Result<Outcome, TestCaseError> {
    let me = &people()[c.author];
    let grid = path([GRID, NEIGHBOUR_GRID, FAR_GRID][c.grid % 3]);
    let claimed = Author { person: people()[c.claimed].author.person, role: Role::FieldStaff, territory: grid.clone() };
    let (_, mut phone) = new_record(me.actor.clone(), &claimed, &grid, T0, [9; 10], &new_fields(c.kind))
        .expect("the real encoder makes any record for its claimed author");
    let mut clock = T0;
    run_steps(&mut phone, me, &c.steps, &mut clock);
    let pushed = rotate(phone.get_changes(&[]), c.rotate);
    let verdict = check_push(None, pushed.clone(), &me.actor, &me.author);
    check_verdict(None, &pushed, me, verdict)
}

/// Cases per property: `PROPTEST_CASES` if set, else the CI size given.
fn config(ci_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(ci_cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Runs `property` on `config(ci_cases)` generated values (shrinking any
/// failure, panics included) and returns how often each outcome came up.
fn tally<S: Strategy>(
    ci_cases: u32,
    strategy: S,
    property: impl Fn(&S::Value) -> Result<Outcome, TestCaseError>,
) -> HashMap<Outcome, u32> {
    let counts = std::cell::RefCell::new(HashMap::new());
    let mut runner = proptest::test_runner::TestRunner::new(config(ci_cases));
    let result = runner.run(&strategy, |v| {
        let outcome = property(&v)?;
        *counts.borrow_mut().entry(outcome).or_insert(0) += 1;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let counts = counts.into_inner();
    let mut shown: Vec<_> = counts.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
    shown.sort();
    eprintln!("outcomes: {}", shown.join(", "));
    counts
}

fn share(counts: &HashMap<Outcome, u32>, which: impl Fn(&Outcome) -> bool) -> f64 {
    let total: u32 = counts.values().sum();
    f64::from(counts.iter().filter(|(k, _)| which(k)).map(|(_, v)| *v).sum::<u32>()) / f64::from(total.max(1))
}

#[test]
fn random_changes_to_existing_records_never_panic_and_are_accepted_only_when_every_rule_holds() {
    let counts = tally(2_000, update(), run_update);
    // The generator must reach both sides of the rules, or this test proves little.
    assert!(share(&counts, |o| *o == Outcome::Accepted) > 0.1, "{counts:?}");
    assert!(share(&counts, |o| matches!(o, Outcome::Rejected(_))) > 0.1, "{counts:?}");
}

#[test]
fn random_new_records_never_panic_and_are_accepted_only_when_every_rule_holds() {
    let counts = tally(1_000, creation(), run_creation);
    assert!(share(&counts, |o| *o == Outcome::Accepted) > 0.1, "{counts:?}");
    assert!(share(&counts, |o| matches!(o, Outcome::Rejected(_))) > 0.1, "{counts:?}");
}

#[test]
fn the_base_records_are_valid_and_hold_entries_by_several_people() {
    for bytes in bases() {
        let doc = Automerge::load(bytes).expect("loads");
        let record = read_record(&doc).expect("valid");
        let authors: HashSet<PersonId> = entry_authors(&record).into_iter().map(|(_, by)| by).collect();
        if matches!(record, Record::Case(_) | Record::Promise(_)) {
            assert!(authors.len() >= 2, "{authors:?}");
        }
    }
}

#[test]
fn a_field_staff_cannot_overwrite_a_supervisors_concurrent_title_by_putting_back_the_title_it_saw() {
    let staff2 = &people()[1];
    let mut server = Automerge::load(&bases()[2]).expect("a case made by someone else");
    let seen = server.get_heads();
    let mut phone = server.fork_at(&seen).expect("fork");
    phone.set_actor(staff2.actor.clone());
    assert!(edit_as(&mut server, supervisor(), T0 + 10_000, &Edit::CaseTitle("楼道灯已换新".into())));
    // A follow-up (which anyone may add) makes the phone's later operations win ties in the merge.
    assert!(edit_as(&mut phone, staff2, T0 + 10_000, &Edit::FollowUp("我也去看了".into(), None)));
    let mut tx = phone.transaction();
    tx.put(ROOT, "title", "随便").expect("put");
    tx.put(ROOT, "title", "楼道灯损坏").expect("put back");
    tx.commit();
    let pushed = phone.get_changes(&seen);
    match check_push(Some(&server), pushed, &staff2.actor, &staff2.author) {
        Ok(PushVerdict::Accept { record, .. }) => {
            let Record::Case(case) = *record else { panic!("a case") };
            assert_eq!(case.fields.title, "楼道灯已换新", "the supervisor's title was overwritten by field staff");
        }
        Ok(PushVerdict::Duplicate) => panic!("new changes are not a duplicate"),
        Err(rejection) => assert_eq!(rejection.reason, RejectReason::NotPermitted, "{rejection}"),
    }
}
