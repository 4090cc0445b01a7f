//! Re-making a phone's unsynced work as new changes on top of the server's copy
//! of a record: when its device was replaced (signed in again, or its old
//! device revoked), so the work is pushed in the person's name instead of being
//! refused as someone else's; and when the server refused a push, so the
//! follow-ups, outcomes and photos written with a refused decision (a 交办 to
//! someone disabled meanwhile, a move the case no longer allows) are kept.

use super::edit::{
    append_follow_up, append_outcome, append_photo, append_status_entry, append_void, existing, write_case,
    write_household, write_promise, write_visit,
};
use super::*;
use crate::roles::Author;
use crate::rules;
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ObjType, ROOT, ScalarValue};
use std::collections::HashSet;

/// How much of a phone's unacknowledged work a re-make carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carry {
    /// Everything: fields, entries, status moves and voids.
    Everything,
    /// Fields, follow-ups, outcomes and photos, without the decisions (status
    /// moves and voids), which depend on where the record stands.
    AllButDecisions,
    /// Only what was written into the record's lists: follow-ups, outcomes and photos.
    EntriesOnly,
}

/// What a re-make wrote on top of the server's copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Carried {
    /// The record's own fields differed and were written.
    pub fields: bool,
    /// Follow-ups appended.
    pub follow_ups: usize,
    /// Promise outcomes appended.
    pub outcomes: usize,
    /// Photos attached.
    pub photos: usize,
    /// Status moves appended.
    pub moves: usize,
    /// Void entries appended.
    pub voids: usize,
}

impl Carried {
    /// Whether nothing at all was carried.
    pub fn is_empty(&self) -> bool {
        *self == Carried::default()
    }

    /// What was kept, in words for the person whose push was refused, e.g.
    /// "2 条跟进记录、1 张照片".
    pub fn describe_zh(&self) -> String {
        let mut parts = Vec::new();
        if self.fields {
            parts.push("记录内容的修改".to_string());
        }
        for (n, what) in [(self.follow_ups, "条跟进记录"), (self.outcomes, "条承诺结果"), (self.photos, "张照片")]
        {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        for (n, what) in [(self.moves, "项状态变更"), (self.voids, "项作废")] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        parts.join("、")
    }
}

/// A record re-made: the server's copy with the new changes, and what they carry.
#[derive(Debug)]
pub struct Remade {
    /// The base with the new changes (actor: the one given).
    pub doc: Automerge,
    /// What the new changes wrote.
    pub carried: Carried,
}

/// Makes `local` (the record as the phone holds it, written partly by an
/// earlier device of `author`) again as changes by `actor` on top of `base`,
/// the server's copy (`None` if the server has none). Fields are written as the
/// phone has them (text by diff); entries (follow-ups, status moves, outcomes)
/// of `author` that the base lacks are appended with their own ids, times and
/// reasons. Returns the base with the new changes, checked with the same rules
/// as any edit; nothing is returned if the result would be refused.
pub fn reauthor(
    local: &Record,
    base: Option<&Automerge>,
    actor: ActorId,
    author: &Author,
    now: i64,
) -> Result<Automerge, EditError> {
    remake(local, base, actor, author, now, Carry::Everything).map(|r| r.doc)
}

/// After the server refused a push to `local`'s record, keeps what can be kept:
/// re-makes the author's unacknowledged work on top of `base` (the server's
/// copy, sent with the refusal) without the part most likely refused — first
/// without the decisions (status moves, voids), then also without field edits.
/// A level is tried only if it leaves out something `local` holds beyond the
/// base, so a re-made push the server refuses again ends, at the latest after
/// two more, in a plain roll-back. `None`: nothing worth keeping, or no level
/// passes the rules the phone can check.
pub fn salvage(
    local: &Record,
    base: Option<&Automerge>,
    actor: ActorId,
    author: &Author,
    now: i64,
) -> Result<Option<Remade>, EditError> {
    let before = match base {
        Some(b) => Some(read_record(b)?),
        None => None,
    };
    let pending = pending_work(local, before.as_ref(), author);
    let mut levels = Vec::new();
    if pending.moves + pending.voids > 0 {
        levels.push(Carry::AllButDecisions);
    }
    if pending.fields && before.is_some() {
        levels.push(Carry::EntriesOnly);
    }
    for carry in levels {
        match remake(local, base, actor.clone(), author, now, carry) {
            Ok(remade)
                if remade.carried.follow_ups + remade.carried.outcomes + remade.carried.photos > 0
                    || remade.carried.fields =>
            {
                return Ok(Some(remade));
            }
            Ok(_) | Err(EditError::Rejected(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// What `local` holds beyond `before` in `author`'s name (fields: whether they differ).
fn pending_work(local: &Record, before: Option<&Record>, author: &Author) -> Carried {
    let mine = |by: &crate::PersonId| *by == author.person;
    let new_ids = |ours: Vec<(uuid::Uuid, bool)>, theirs: HashSet<uuid::Uuid>| {
        ours.into_iter().filter(|(id, by_me)| *by_me && !theirs.contains(id)).count()
    };
    let photos = new_ids(
        local.photos().iter().map(|p| (p.id, mine(&p.by))).collect(),
        before.iter().flat_map(|b| b.photos().iter().map(|p| p.id)).collect(),
    );
    let voids = new_ids(
        local.voids().iter().map(|v| (v.id, mine(&v.by))).collect(),
        before.iter().flat_map(|b| b.voids().iter().map(|v| v.id)).collect(),
    );
    let mut pending = Carried { photos, voids, ..Carried::default() };
    match (local, before) {
        (Record::Household(l), Some(Record::Household(b))) => pending.fields = l.fields != b.fields,
        (Record::VisitLog(l), Some(Record::VisitLog(b))) => pending.fields = l.fields != b.fields,
        (Record::Case(l), Some(Record::Case(b))) => {
            pending.fields = l.fields != b.fields;
            pending.moves = new_ids(
                l.status_log.iter().map(|e| (e.id, mine(&e.by))).collect(),
                b.status_log.iter().map(|e| e.id).collect(),
            );
            pending.follow_ups = new_ids(
                l.follow_ups.iter().map(|f| (f.id, mine(&f.by))).collect(),
                b.follow_ups.iter().map(|f| f.id).collect(),
            );
        }
        (Record::Case(l), None) => {
            pending.fields = true;
            pending.moves = l.status_log.iter().filter(|e| mine(&e.by)).count();
            pending.follow_ups = l.follow_ups.iter().filter(|f| mine(&f.by)).count();
        }
        (Record::Promise(l), Some(Record::Promise(b))) => {
            pending.fields = l.fields != b.fields;
            pending.outcomes = new_ids(
                l.outcomes.iter().map(|o| (o.id, mine(&o.by))).collect(),
                b.outcomes.iter().map(|o| o.id).collect(),
            );
        }
        _ => pending.fields = true,
    }
    pending
}

/// Makes `local` again as changes by `actor` on top of `base`, carrying what
/// `carry` says of `author`'s work that the base lacks; checked with the same
/// rules as any edit.
pub fn remake(
    local: &Record,
    base: Option<&Automerge>,
    actor: ActorId,
    author: &Author,
    now: i64,
    carry: Carry,
) -> Result<Remade, EditError> {
    let mut doc = match base {
        Some(b) => b.fork().with_actor(actor),
        None => Automerge::new().with_actor(actor),
    };
    let before = match base {
        Some(b) => Some(read_record(b)?),
        None => None,
    };
    let pending = pending_work(local, before.as_ref(), author);
    let decisions = carry == Carry::Everything;
    let fields = carry != Carry::EntriesOnly || before.is_none();
    let mut carried = Carried::default();
    let mut tx = doc.transaction();
    if before.is_none() {
        let meta = local.meta();
        tx.put(ROOT, "type", meta.kind.as_str())?;
        tx.put(ROOT, "schema", meta.schema)?;
        tx.put(ROOT, "grid", meta.grid.as_str())?;
        tx.put(ROOT, "creator", meta.creator.to_string())?;
        tx.put(ROOT, "created_at", ScalarValue::Timestamp(meta.created_at))?;
    }
    let mine = |by: &crate::PersonId| *by == author.person;
    match local {
        Record::Household(h) => {
            if before.is_none() {
                tx.put_object(ROOT, "members_by_id", ObjType::Map)?;
            }
            if fields {
                write_household(&mut tx, &h.fields, now)?;
                carried.fields = pending.fields;
            }
        }
        Record::VisitLog(v) => {
            if fields {
                write_visit(&mut tx, &v.fields)?;
                carried.fields = pending.fields;
            }
        }
        Record::Case(c) => {
            // Only the reporter and reviewers edit a case's fields.
            if fields && (c.meta.creator == author.person || author.role.reviews() || before.is_none()) {
                write_case(&mut tx, &c.fields)?;
                carried.fields = pending.fields;
            }
            let (log, follow): (HashSet<_>, HashSet<_>) = match &before {
                Some(Record::Case(b)) => {
                    (b.status_log.iter().map(|e| e.id).collect(), b.follow_ups.iter().map(|f| f.id).collect())
                }
                _ => Default::default(),
            };
            existing(&mut tx, "status_log", ObjType::List)?;
            for e in c.status_log.iter().filter(|e| decisions && mine(&e.by) && !log.contains(&e.id)) {
                append_status_entry(&mut tx, e)?;
                carried.moves += 1;
            }
            existing(&mut tx, "follow_ups", ObjType::List)?;
            for f in c.follow_ups.iter().filter(|f| mine(&f.by) && !follow.contains(&f.id)) {
                append_follow_up(&mut tx, f)?;
                carried.follow_ups += 1;
            }
        }
        Record::Promise(p) => {
            if fields && (p.meta.creator == author.person || author.role.reviews() || before.is_none()) {
                write_promise(&mut tx, &p.fields)?;
                carried.fields = pending.fields;
            }
            let had: HashSet<_> = match &before {
                Some(Record::Promise(b)) => b.outcomes.iter().map(|o| o.id).collect(),
                _ => HashSet::new(),
            };
            existing(&mut tx, "outcomes", ObjType::List)?;
            for o in p.outcomes.iter().filter(|o| mine(&o.by) && !had.contains(&o.id)) {
                append_outcome(&mut tx, o)?;
                carried.outcomes += 1;
            }
        }
    }
    let had: HashSet<_> = before.iter().flat_map(|b| b.photos().iter().map(|p| p.id)).collect();
    let photos: Vec<&PhotoRef> = local.photos().iter().filter(|p| mine(&p.by) && !had.contains(&p.id)).collect();
    if !photos.is_empty() || (before.is_none() && matches!(local.kind(), RecordKind::VisitLog | RecordKind::Case)) {
        existing(&mut tx, "photos", ObjType::List)?;
    }
    for p in photos {
        append_photo(&mut tx, p)?;
        carried.photos += 1;
    }
    let voided: HashSet<_> = before.iter().flat_map(|b| b.voids().iter().map(|v| v.id)).collect();
    let voids: Vec<&VoidEntry> =
        local.voids().iter().filter(|v| decisions && mine(&v.by) && !voided.contains(&v.id)).collect();
    if before.is_none() || !voids.is_empty() {
        existing(&mut tx, "voids", ObjType::List)?;
    }
    for v in voids {
        append_void(&mut tx, v)?;
        carried.voids += 1;
    }
    tx.commit_with(CommitOptions::default().with_time(now));
    match base {
        Some(b) => rules::check_update(b, &doc, author)?,
        None => rules::check_new(&doc, author)?,
    };
    Ok(Remade { doc, carried })
}
