//! The rules every change must keep, checked by the server on each push and by
//! the phone before it keeps an edit: who may write what, where, and how.
//!
//! A pushed change is judged against the document *as its writer saw it* (the
//! change's dependencies), so two phones that moved a case concurrently are
//! both valid and settle on the furthest step, while a phone that moves a case
//! backwards without a reopen is refused.

use crate::ids::{DocId, PersonId};
use crate::photos;
use crate::records::{META_KEYS, Record, RecordError, RecordKind, RecordMeta, read_record};
use crate::roles::Author;
use crate::territory::TerritoryPath;
use crate::workflow::{CaseStatus, Standing, StatusEntry, StatusMove, standing};
use automerge::{ActorId, Automerge, Change, ChangeHash, ROOT, ReadDoc, Value};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use thiserror::Error;

/// Why a change to a record was refused; shown to the person on their phone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RejectReason {
    /// A change carries an Automerge actor that is not the sending device's.
    WrongActor,
    /// The record's grid is outside the writer's territory.
    OutsideTerritory,
    /// The writer's role does not allow this edit.
    NotPermitted,
    /// A fixed field (type, schema, grid, creator, creation time) was changed.
    FixedField,
    /// A case status moved backwards without a reopen.
    StatusBackwards,
    /// An existing entry, list or text was removed, altered or replaced.
    HistoryRewritten,
    /// The document after the change is not a valid record.
    InvalidRecord,
    /// The changes depend on changes the server does not have.
    MissingDependencies,
    /// The bytes are not Automerge changes.
    Malformed,
    /// The change or the document is larger than allowed.
    TooLarge,
}

impl RejectReason {
    /// A sentence in Chinese for the phone's screen.
    pub fn message_zh(self) -> &'static str {
        match self {
            RejectReason::WrongActor => "设备身份不符，不能以他人名义提交",
            RejectReason::OutsideTerritory => "记录不在您负责的网格范围内",
            RejectReason::NotPermitted => "您的角色无权进行此项操作",
            RejectReason::FixedField => "记录的类型、网格、创建人和创建时间不能修改",
            RejectReason::StatusBackwards => "事件状态不能倒退，如需退回请使用“重新办理”并说明原因",
            RejectReason::HistoryRewritten => "已有的跟进和处理记录不能删除或修改",
            RejectReason::InvalidRecord => "记录内容不完整或格式有误",
            RejectReason::MissingDependencies => "缺少之前的修改，请先同步",
            RejectReason::Malformed => "数据损坏，无法读取",
            RejectReason::TooLarge => "内容过大",
        }
    }

    /// A stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::WrongActor => "wrong_actor",
            RejectReason::OutsideTerritory => "outside_territory",
            RejectReason::NotPermitted => "not_permitted",
            RejectReason::FixedField => "fixed_field",
            RejectReason::StatusBackwards => "status_backwards",
            RejectReason::HistoryRewritten => "history_rewritten",
            RejectReason::InvalidRecord => "invalid_record",
            RejectReason::MissingDependencies => "missing_dependencies",
            RejectReason::Malformed => "malformed",
            RejectReason::TooLarge => "too_large",
        }
    }
}

/// A refused change: the reason, and a detail naming what exactly was wrong.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
#[error("{}: {detail}", reason.code())]
pub struct Rejection {
    /// The rule broken.
    pub reason: RejectReason,
    /// What exactly (field, entry, step).
    pub detail: String,
}

impl Rejection {
    /// A rejection for `reason` with a detail.
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self { reason, detail: detail.into() }
    }
}

impl From<RecordError> for Rejection {
    fn from(e: RecordError) -> Self {
        Rejection::new(RejectReason::InvalidRecord, e.to_string())
    }
}

type Checked<T> = Result<T, Rejection>;

/// Checks a newly created record: valid, created by `author`, in their territory.
pub fn check_new(after: &Automerge, author: &Author) -> Checked<Record> {
    let record = read_record(after)?;
    check_new_record(&record, author)?;
    Ok(record)
}

/// The rules a new record must keep once read (the strict reader has checked
/// every field): created by `author`, in their territory, every entry their
/// own. [`check_new`] applies them to the record it reads from a document;
/// a bulk import ([`crate::records::new_imported_household`]) to the record it
/// wrote, where the reader would read back exactly what was written.
pub fn check_new_record(record: &Record, author: &Author) -> Checked<()> {
    let meta = record.meta();
    if meta.creator != author.person {
        return Err(Rejection::new(RejectReason::NotPermitted, "a record's creator must be the person creating it"));
    }
    check_territory(meta, author)?;
    check_entries(None, record, author)
}

/// Checks an edit of an existing record, from `before` to `after` as the writer made it.
pub fn check_update(before: &Automerge, after: &Automerge, author: &Author) -> Checked<Record> {
    check_update_from(before, read_record(before)?, after, author)
}

/// [`check_update`] with `old`, the record `before` holds, already read.
fn check_update_from(before: &Automerge, old: Record, after: &Automerge, author: &Author) -> Checked<Record> {
    // Fixed fields are compared as stored, before the new version is parsed: a
    // changed `type` would otherwise read as a malformed record of the other kind.
    for key in META_KEYS {
        let value = |doc: &Automerge| doc.get(ROOT, key).ok().flatten().map(|(v, _)| v.to_string());
        if value(before) != value(after) {
            return Err(Rejection::new(RejectReason::FixedField, format!("fixed field `{key}` cannot change")));
        }
    }
    let new = read_record(after)?;
    if old.meta() != new.meta() {
        return Err(Rejection::new(RejectReason::FixedField, fixed_field_changed(old.meta(), new.meta())));
    }
    check_territory(new.meta(), author)?;
    for key in before.keys(ROOT) {
        if let Ok(Some((Value::Object(_), old_id))) = before.get(ROOT, key.as_str()) {
            match after.get(ROOT, key.as_str()) {
                Ok(Some((Value::Object(_), new_id))) if new_id == old_id => {}
                _ => {
                    return Err(Rejection::new(
                        RejectReason::HistoryRewritten,
                        format!("`{key}` was replaced or removed"),
                    ));
                }
            }
        }
    }
    check_field_rights(&old, &new, author)?;
    check_entries(Some(&old), &new, author)?;
    Ok(new)
}

/// Refuses a change of a record's editable fields by someone who may not edit
/// them (a visit log is its writer's; a case or promise its creator's and
/// reviewers'; a household anyone's in the grid).
fn check_field_rights(old: &Record, new: &Record, author: &Author) -> Checked<()> {
    // Choosing between concurrent values (a conflict resolved) is an edit too.
    let fields_changed = old.conflicts() != new.conflicts()
        || match (old, new) {
            (Record::Household(a), Record::Household(b)) => a.fields != b.fields,
            (Record::VisitLog(a), Record::VisitLog(b)) => a.fields != b.fields,
            (Record::Case(a), Record::Case(b)) => a.fields != b.fields,
            (Record::Promise(a), Record::Promise(b)) => a.fields != b.fields,
            _ => true,
        };
    if !fields_changed {
        return Ok(());
    }
    if may_edit_fields(new, author) {
        Ok(())
    } else {
        Err(Rejection::new(RejectReason::NotPermitted, format!("only the creator may edit this {}", new.kind())))
    }
}

/// Whether `author` may edit `record`'s editable fields.
fn may_edit_fields(record: &Record, author: &Author) -> bool {
    let own = record.meta().creator == author.person;
    match record {
        Record::Household(_) => true,
        Record::VisitLog(_) => own,
        Record::Case(_) | Record::Promise(_) => own || author.role.reviews(),
    }
}

/// Whether `author` may void (作废) `record`: its creator, or a supervisor or
/// administrator (the territory is checked for every edit).
pub fn may_void(record: &Record, author: &Author) -> bool {
    record.meta().creator == author.person || author.role.reviews()
}

fn fixed_field_changed(a: &RecordMeta, b: &RecordMeta) -> String {
    let field = if a.kind != b.kind {
        "type"
    } else if a.schema != b.schema {
        "schema"
    } else if a.grid != b.grid {
        "grid"
    } else if a.creator != b.creator {
        "creator"
    } else {
        "created_at"
    };
    format!("fixed field `{field}` cannot change")
}

fn check_territory(meta: &RecordMeta, author: &Author) -> Checked<()> {
    if author.covers(&meta.grid) {
        Ok(())
    } else {
        Err(Rejection::new(
            RejectReason::OutsideTerritory,
            format!("grid {} is outside {}", meta.grid, author.territory),
        ))
    }
}

/// Entries already present must be kept unchanged; new ones must be the author's own.
fn appended<'a, T: PartialEq>(
    old: &[T],
    new: &'a [T],
    id: impl Fn(&T) -> uuid::Uuid,
    what: &str,
) -> Checked<Vec<&'a T>> {
    let by_id: std::collections::HashMap<uuid::Uuid, &T> = new.iter().map(|n| (id(n), n)).collect();
    for o in old {
        match by_id.get(&id(o)) {
            Some(n) if *n == o => {}
            _ => {
                return Err(Rejection::new(RejectReason::HistoryRewritten, format!("a {what} was removed or altered")));
            }
        }
    }
    if by_id.len() != new.len() {
        return Err(Rejection::new(RejectReason::InvalidRecord, format!("two {what}s share one id")));
    }
    let old_ids: HashSet<uuid::Uuid> = old.iter().map(&id).collect();
    Ok(new.iter().filter(|n| !old_ids.contains(&id(n))).collect())
}

fn check_entries(old: Option<&Record>, new: &Record, author: &Author) -> Checked<()> {
    let not_yours = || Rejection::new(RejectReason::NotPermitted, "entries can only be added in your own name");
    let old_voids = old.map(Record::voids).unwrap_or_default();
    for v in appended(old_voids, new.voids(), |v| v.id, "void entry")? {
        if v.by != author.person {
            return Err(not_yours());
        }
        if !may_void(new, author) {
            return Err(Rejection::new(
                RejectReason::NotPermitted,
                "only the record's creator or a supervisor or administrator over its grid may void it",
            ));
        }
        if v.reason.trim().is_empty() {
            return Err(Rejection::new(RejectReason::InvalidRecord, "voiding a record needs a reason"));
        }
    }
    check_photos(old, new, author)?;
    match new {
        Record::Case(case) => {
            let (old_follow, old_log) = match old {
                Some(Record::Case(c)) => (c.follow_ups.as_slice(), c.status_log.as_slice()),
                _ => (&[][..], &[][..]),
            };
            for f in appended(old_follow, &case.follow_ups, |f| f.id, "follow-up")? {
                if f.by != author.person {
                    return Err(not_yours());
                }
            }
            let mut added = appended(old_log, &case.status_log, |e| e.id, "status move")?;
            added.sort_by_key(|e| (e.epoch, e.kind == StatusMove::Advance, e.to));
            let mut log: Vec<StatusEntry> = old_log.to_vec();
            for entry in added {
                if entry.by != author.person {
                    return Err(not_yours());
                }
                check_move(standing(&log), entry, author)?;
                log.push(entry.clone());
            }
        }
        Record::Promise(p) => {
            let old_outcomes = match old {
                Some(Record::Promise(o)) => o.outcomes.as_slice(),
                _ => &[][..],
            };
            for o in appended(old_outcomes, &p.outcomes, |o| o.id, "promise outcome")? {
                if o.by != author.person {
                    return Err(not_yours());
                }
                if p.meta.creator != author.person && !author.role.reviews() {
                    return Err(Rejection::new(
                        RejectReason::NotPermitted,
                        "only the promise's maker or a supervisor records its outcome",
                    ));
                }
            }
        }
        Record::Household(_) | Record::VisitLog(_) => {}
    }
    Ok(())
}

/// New photo references must be the author's own, by someone who may edit
/// the record's fields (a follow-up's photos: that follow-up's author), of a
/// size a photo may have, on a follow-up the case has, at most
/// [`photos::limits::MAX_PHOTOS`] per attachment; old ones stay as they were.
fn check_photos(old: Option<&Record>, new: &Record, author: &Author) -> Checked<()> {
    let old_photos = old.map(Record::photos).unwrap_or_default();
    let added = appended(old_photos, new.photos(), |p| p.id, "photo")?;
    for p in &added {
        if p.by != author.person {
            return Err(Rejection::new(RejectReason::NotPermitted, "entries can only be added in your own name"));
        }
        photos::check_size(p.size).map_err(|e| Rejection::new(RejectReason::InvalidRecord, e.to_string()))?;
        let allowed = match (new, p.follow_up) {
            (_, None) => may_edit_fields(new, author),
            (Record::Case(c), Some(f)) => match c.follow_ups.iter().find(|x| x.id == f) {
                Some(follow_up) => follow_up.by == author.person,
                None => {
                    return Err(Rejection::new(
                        RejectReason::InvalidRecord,
                        "a photo names a follow-up the case lacks",
                    ));
                }
            },
            (_, Some(_)) => {
                return Err(Rejection::new(RejectReason::InvalidRecord, "only a case's follow-ups carry photos"));
            }
        };
        if !allowed {
            return Err(Rejection::new(
                RejectReason::NotPermitted,
                "photos are added by whoever may edit the record, or to a follow-up by its writer",
            ));
        }
        let same_place = new.photos().iter().filter(|q| q.follow_up == p.follow_up).count();
        if same_place > photos::limits::MAX_PHOTOS {
            return Err(Rejection::new(
                RejectReason::TooLarge,
                format!("at most {} photos per record or follow-up", photos::limits::MAX_PHOTOS),
            ));
        }
    }
    Ok(())
}

/// Checks one status move against where the case stood for its writer.
fn check_move(at: Standing, entry: &StatusEntry, author: &Author) -> Checked<()> {
    let assigns = entry.kind == StatusMove::Advance && entry.to == CaseStatus::Assigned;
    match (assigns, entry.assignee) {
        (true, None) => {
            return Err(Rejection::new(RejectReason::InvalidRecord, "交办 (a move to assigned) names its assignee"));
        }
        (false, Some(_)) if entry.to != CaseStatus::Assigned => {
            return Err(Rejection::new(RejectReason::InvalidRecord, "only a move to assigned names an assignee"));
        }
        _ => {}
    }
    match entry.kind {
        StatusMove::Advance => {
            if entry.epoch != at.epoch || entry.to <= at.status {
                return Err(Rejection::new(
                    RejectReason::StatusBackwards,
                    format!("case stands at {}; moving to {} needs a reopen", at.status, entry.to),
                ));
            }
            if !author.role.may_advance_to(entry.to) {
                return Err(Rejection::new(
                    RejectReason::NotPermitted,
                    format!("a {} cannot move a case to {}", author.role, entry.to),
                ));
            }
        }
        StatusMove::Reopen => {
            if !author.role.may_reopen() {
                return Err(Rejection::new(
                    RejectReason::NotPermitted,
                    format!("a {} cannot reopen a case", author.role),
                ));
            }
            if entry.epoch != at.epoch + 1 || entry.to >= at.status {
                return Err(Rejection::new(
                    RejectReason::InvalidRecord,
                    format!("a reopen from {} must go back to an earlier step in epoch {}", at.status, at.epoch + 1),
                ));
            }
            if entry.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
                return Err(Rejection::new(RejectReason::InvalidRecord, "a reopen needs a reason"));
            }
        }
    }
    Ok(())
}

/// What the server should do with a pushed set of changes to one document.
#[derive(Debug)]
pub enum PushVerdict {
    /// Every change is already in the document: acknowledge, store nothing.
    Duplicate,
    /// Valid: the merged document to store, and the record it now holds.
    Accept {
        /// The server's document with the pushed changes merged in.
        merged: Box<Automerge>,
        /// The record as it reads after the merge.
        record: Box<Record>,
    },
}

/// Judges changes pushed by a device (whose actor is `actor`, acting as `author`)
/// against the server's copy of the document (`None` if the server has none yet).
/// Only the changes the server does not have are judged (the rest are
/// duplicates); each of those must be the device's own. Each run of changes
/// written one after another is checked as its writer saw the document — at
/// the run's dependencies, never at a merge it did not see — so moves two
/// phones made concurrently from one standing are both valid; the merged
/// result must still be a valid record (its standing settles by
/// [`crate::workflow::standing`]).
pub fn check_push(
    current: Option<&Automerge>,
    changes: Vec<Change>,
    actor: &ActorId,
    author: &Author,
) -> Checked<PushVerdict> {
    check_push_knowing(current.map(|doc| (doc, None)), changes, actor, author)
}

/// [`check_push`], given the record the current document holds when the
/// caller has it already (read at the same heads, e.g. kept from the last
/// push): the verdict is the same, without reading the document again.
pub fn check_push_knowing(
    current: Option<(&Automerge, Option<&Record>)>,
    changes: Vec<Change>,
    actor: &ActorId,
    author: &Author,
) -> Checked<PushVerdict> {
    let (current, known) = match current {
        Some((doc, known)) => (Some(doc), known),
        None => (None, None),
    };
    if changes.is_empty() {
        return Err(Rejection::new(RejectReason::Malformed, "no changes"));
    }
    // Changes the server already has are duplicates, whatever comes with them:
    // a phone whose last response was lost resends them beside its newer edits,
    // and only the newer ones are judged.
    let mut seen = HashSet::new();
    let changes: Vec<Change> = changes
        .into_iter()
        .filter(|c| current.is_none_or(|doc| doc.get_change_by_hash(&c.hash()).is_none()) && seen.insert(c.hash()))
        .collect();
    if changes.is_empty() {
        return Ok(PushVerdict::Duplicate);
    }
    if let Some(c) = changes.iter().find(|c| c.actor_id() != actor) {
        return Err(Rejection::new(
            RejectReason::WrongActor,
            format!("change by actor {} but this device is {}", c.actor_id(), actor),
        ));
    }
    // Each run of changes is judged against the document as its writer saw
    // it: the state at the run's dependencies, with the earlier runs of this
    // push. A phone that merged someone's concurrent move before its own move
    // went up wrote its move on the case as it stood before that merge, and
    // its later follow-up on the merged case: each is judged where it was made.
    let mut state: Option<Automerge> = None;
    let mut last_record = None;
    let mut concurrent = false;
    for run in linear_runs(causal_order(changes)) {
        let now = state.as_ref().or(current);
        let mut deps = run.first().map(|c| c.deps().to_vec()).unwrap_or_default();
        deps.sort();
        let forked;
        let (before, at_heads) = match now {
            None if deps.is_empty() => (None, true),
            None => return Err(Rejection::new(RejectReason::MissingDependencies, "document unknown to the server")),
            Some(_) if deps.is_empty() => {
                return Err(Rejection::new(RejectReason::FixedField, "a record with this id already exists"));
            }
            Some(doc) => {
                if let Some(missing) = deps.iter().find(|h| doc.get_change_by_hash(h).is_none()) {
                    return Err(Rejection::new(
                        RejectReason::MissingDependencies,
                        format!("depends on unknown change {missing}"),
                    ));
                }
                // Every head among the dependencies: the writer saw all of it.
                if doc.get_heads().iter().all(|h| deps.binary_search(h).is_ok()) {
                    (Some(doc), true)
                } else {
                    forked = doc
                        .fork_at(&deps)
                        .map_err(|e| Rejection::new(RejectReason::MissingDependencies, e.to_string()))?;
                    (Some(&forked), false)
                }
            }
        };
        let mut after = before.map_or_else(Automerge::new, Automerge::fork);
        after.apply_changes(run.iter().cloned()).map_err(|e| Rejection::new(RejectReason::Malformed, e.to_string()))?;
        if !after.get_missing_deps(&[]).is_empty() {
            return Err(Rejection::new(RejectReason::MissingDependencies, "changes depend on changes not sent"));
        }
        // The record `before` holds, when it is already read: the current
        // document's from the caller, or the last run's result.
        let before_record = match (&state, at_heads) {
            (None, true) => known.cloned(),
            (Some(_), true) => last_record.clone(),
            _ => None,
        };
        let record = match (before, before_record) {
            (None, _) => check_new(&after, author)?,
            (Some(b), Some(old)) => check_update_from(b, old, &after, author)?,
            (Some(b), None) => check_update(b, &after, author)?,
        };
        if at_heads {
            // Written on the latest state: the judged result is the merge.
            state = Some(after);
            last_record = Some(record);
        } else {
            let mut next = now.map_or_else(Automerge::new, Automerge::fork);
            next.apply_changes(run).map_err(|e| Rejection::new(RejectReason::Malformed, e.to_string()))?;
            state = Some(next);
            last_record = None;
            concurrent = true;
        }
    }
    let Some(merged) = state else { return Err(Rejection::new(RejectReason::Malformed, "no changes")) };
    let record = match last_record {
        Some(record) => record,
        None => read_record(&merged)?,
    };
    if let Some(doc) = current.filter(|_| concurrent) {
        // Judged as its writer saw the document, an edit may restore a
        // field's value and so look like no edit at all — yet its new put
        // can win the merge over someone else's concurrent value. Whoever
        // may not edit the fields must leave them as the server has them.
        if !may_edit_fields(&record, author) {
            let old = match known {
                Some(old) => old.clone(),
                None => read_record(doc)?,
            };
            check_field_rights(&old, &record, author)?;
        }
    }
    Ok(PushVerdict::Accept { merged: Box::new(merged), record: Box::new(record) })
}

/// The pushed changes in causal order: each after the pushed changes it
/// depends on (a phone sends them so; a tampered request may not).
fn causal_order(changes: Vec<Change>) -> Vec<Change> {
    let index: std::collections::HashMap<ChangeHash, usize> =
        changes.iter().enumerate().map(|(i, c)| (c.hash(), i)).collect();
    // 0: not reached, 1: waiting for its dependencies, 2: placed.
    let mut mark = vec![0u8; changes.len()];
    let mut order = Vec::with_capacity(changes.len());
    for start in 0..changes.len() {
        if mark[start] != 0 {
            continue;
        }
        mark[start] = 1;
        let mut stack = vec![start];
        while let Some(&i) = stack.last() {
            let waiting = changes[i].deps().iter().filter_map(|d| index.get(d).copied()).find(|&j| mark[j] == 0);
            match waiting {
                Some(j) => {
                    mark[j] = 1;
                    stack.push(j);
                }
                None => {
                    stack.pop();
                    mark[i] = 2;
                    order.push(i);
                }
            }
        }
    }
    let mut slots: Vec<Option<Change>> = changes.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Splits changes in causal order into runs written one after another with
/// nothing merged in between: a change whose only dependency is the change
/// before it continues that run; any other starts a new one.
fn linear_runs(changes: Vec<Change>) -> Vec<Vec<Change>> {
    let mut runs: Vec<Vec<Change>> = Vec::new();
    for change in changes {
        let continues = match (runs.last().and_then(|r| r.last()), change.deps()) {
            (Some(previous), [dep]) => *dep == previous.hash(),
            _ => false,
        };
        match runs.last_mut() {
            Some(run) if continues => run.push(change),
            _ => runs.push(vec![change]),
        }
    }
    runs
}

/// What a record references: another record's id and the kind it must be.
pub fn references(record: &Record) -> Vec<(DocId, RecordKind)> {
    let mut refs = Vec::new();
    let household = match record {
        Record::Household(_) => None,
        Record::VisitLog(v) => v.fields.household,
        Record::Case(c) => {
            if let Some(visit) = c.fields.visit {
                refs.push((visit, RecordKind::VisitLog));
            }
            c.fields.household
        }
        Record::Promise(p) => p.fields.household,
    };
    if let Some(h) = household {
        refs.insert(0, (h, RecordKind::Household));
    }
    refs
}

/// Checks one reference of a record (see [`references`]) to record `id`, which
/// must be a `kind`: it must exist (`found` gives the kind and grid of the
/// record the checker holds under that id) and lie in a grid `author` may
/// write to — a visit log cannot name another grid's household.
pub fn check_reference(
    id: DocId,
    kind: RecordKind,
    found: Option<(RecordKind, &TerritoryPath)>,
    author: &Author,
) -> Checked<()> {
    match found {
        None => Err(Rejection::new(
            RejectReason::InvalidRecord,
            format!("the referenced {} {id} does not exist", kind.as_str()),
        )),
        Some((found, _)) if found != kind => Err(Rejection::new(
            RejectReason::InvalidRecord,
            format!("{id} is a {}, not a {}", found.as_str(), kind.as_str()),
        )),
        Some((_, grid)) if !author.covers(grid) => Err(Rejection::new(
            RejectReason::OutsideTerritory,
            format!("the referenced {} {id} is in grid {grid}, outside {}", kind.as_str(), author.territory),
        )),
        Some(_) => Ok(()),
    }
}

/// The assignments (交办) a push adds to a case: each new status entry that
/// names an assignee, with that assignee. `old` is the case before the push
/// (`None` for a new record). The server checks each one with [`check_assignee`].
pub fn new_assignees(old: Option<&Record>, new: &Record) -> Vec<PersonId> {
    let Record::Case(case) = new else { return Vec::new() };
    let had: HashSet<uuid::Uuid> = match old {
        Some(Record::Case(c)) => c.status_log.iter().map(|e| e.id).collect(),
        _ => HashSet::new(),
    };
    case.status_log.iter().filter(|e| !had.contains(&e.id)).filter_map(|e| e.assignee).collect()
}

/// Checks the assignee of a case assigned (交办) in `grid`: a person the
/// checker knows (`found`: their territory and whether they are enabled),
/// enabled, whose territory holds the case's grid. Only the server can
/// know this; a phone offline checks only that an assignee is named.
pub fn check_assignee(assignee: PersonId, found: Option<(&TerritoryPath, bool)>, grid: &TerritoryPath) -> Checked<()> {
    match found {
        None => Err(Rejection::new(RejectReason::InvalidRecord, format!("the assignee {assignee} does not exist"))),
        Some((_, false)) => Err(Rejection::new(
            RejectReason::InvalidRecord,
            format!("the assignee {assignee} is disabled and cannot take a case"),
        )),
        Some((territory, true)) if !territory.contains(grid) => Err(Rejection::new(
            RejectReason::OutsideTerritory,
            format!("the assignee {assignee} works in {territory}, which does not hold grid {grid}"),
        )),
        Some(_) => Ok(()),
    }
}

/// Checks a new record's id: a well-formed UUID v7 (RFC 9562 variant), as
/// phones make them; the nil id and other versions are refused.
pub fn check_new_id(id: &DocId) -> Checked<()> {
    let uuid = id.0;
    if uuid.get_version_num() == 7 && uuid.get_variant() == uuid::Variant::RFC4122 {
        Ok(())
    } else {
        Err(Rejection::new(RejectReason::InvalidRecord, format!("record id {uuid} is not a UUID v7")))
    }
}
