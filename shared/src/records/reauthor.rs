//! Re-authoring: when a phone's device is replaced (signed in again, or its
//! old device revoked), its unsynced work is written again under the new
//! device's Automerge actor, on top of what the server holds, so it is pushed
//! in the person's name instead of being refused as someone else's.

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
    let mut doc = match base {
        Some(b) => b.fork().with_actor(actor),
        None => Automerge::new().with_actor(actor),
    };
    let before = match base {
        Some(b) => Some(read_record(b)?),
        None => None,
    };
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
            write_household(&mut tx, &h.fields, now)?
        }
        Record::VisitLog(v) => write_visit(&mut tx, &v.fields)?,
        Record::Case(c) => {
            // Only the reporter and reviewers edit a case's fields.
            if c.meta.creator == author.person || author.role.reviews() || before.is_none() {
                write_case(&mut tx, &c.fields)?;
            }
            let (log, follow): (HashSet<_>, HashSet<_>) = match &before {
                Some(Record::Case(b)) => {
                    (b.status_log.iter().map(|e| e.id).collect(), b.follow_ups.iter().map(|f| f.id).collect())
                }
                _ => Default::default(),
            };
            existing(&mut tx, "status_log", ObjType::List)?;
            for e in c.status_log.iter().filter(|e| mine(&e.by) && !log.contains(&e.id)) {
                append_status_entry(&mut tx, e)?;
            }
            existing(&mut tx, "follow_ups", ObjType::List)?;
            for f in c.follow_ups.iter().filter(|f| mine(&f.by) && !follow.contains(&f.id)) {
                append_follow_up(&mut tx, f)?;
            }
        }
        Record::Promise(p) => {
            if p.meta.creator == author.person || author.role.reviews() || before.is_none() {
                write_promise(&mut tx, &p.fields)?;
            }
            let had: HashSet<_> = match &before {
                Some(Record::Promise(b)) => b.outcomes.iter().map(|o| o.id).collect(),
                _ => HashSet::new(),
            };
            existing(&mut tx, "outcomes", ObjType::List)?;
            for o in p.outcomes.iter().filter(|o| mine(&o.by) && !had.contains(&o.id)) {
                append_outcome(&mut tx, o)?;
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
    }
    let voided: HashSet<_> = before.iter().flat_map(|b| b.voids().iter().map(|v| v.id)).collect();
    let voids: Vec<&VoidEntry> = local.voids().iter().filter(|v| mine(&v.by) && !voided.contains(&v.id)).collect();
    if before.is_none() || !voids.is_empty() {
        existing(&mut tx, "voids", ObjType::List)?;
    }
    for v in voids {
        append_void(&mut tx, v)?;
    }
    tx.commit_with(CommitOptions::default().with_time(now));
    match base {
        Some(b) => rules::check_update(b, &doc, author)?,
        None => rules::check_new(&doc, author)?,
    };
    Ok(doc)
}
