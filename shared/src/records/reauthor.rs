//! Re-authoring: when a phone's device is replaced (signed in again, or its
//! old device revoked), its unsynced work is written again under the new
//! device's Automerge actor, on top of what the server holds, so it is pushed
//! in the person's name instead of being refused as someone else's.

use super::edit::{existing, write_case, write_household, write_promise, write_visit};
use super::*;
use crate::roles::Author;
use crate::rules;
use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{ActorId, Automerge, ObjType, ROOT, ReadDoc, ScalarValue};
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
        Record::Household(h) => write_household(&mut tx, &h.fields)?,
        Record::VisitLog(v) => write_visit(&mut tx, &v.fields)?,
        Record::Case(c) => {
            // Only the reporter and reviewers edit a case's fields.
            if c.meta.creator == author.person || author.role.reviews() || before.is_none() {
                write_case(&mut tx, &c.fields)?;
            }
            let (log, follow) = match &before {
                Some(Record::Case(b)) => {
                    (ids(b.status_log.iter().map(|e| e.id)), ids(b.follow_ups.iter().map(|f| f.id)))
                }
                _ => Default::default(),
            };
            let list = existing(&mut tx, "status_log", ObjType::List)?;
            for e in c.status_log.iter().filter(|e| mine(&e.by) && !log.contains(&e.id)) {
                let i = tx.length(&list);
                let entry = tx.insert_object(&list, i, ObjType::Map)?;
                tx.put(&entry, "id", e.id.to_string())?;
                tx.put(
                    &entry,
                    "kind",
                    if e.kind == crate::workflow::StatusMove::Advance { "advance" } else { "reopen" },
                )?;
                tx.put(&entry, "to", e.to.as_str())?;
                tx.put(&entry, "epoch", u64::from(e.epoch))?;
                tx.put(&entry, "by", e.by.to_string())?;
                tx.put(&entry, "at", ScalarValue::Timestamp(e.at))?;
                if let Some(reason) = &e.reason {
                    tx.put(&entry, "reason", reason.as_str())?;
                }
            }
            let list = existing(&mut tx, "follow_ups", ObjType::List)?;
            for f in c.follow_ups.iter().filter(|f| mine(&f.by) && !follow.contains(&f.id)) {
                let i = tx.length(&list);
                let entry = tx.insert_object(&list, i, ObjType::Map)?;
                tx.put(&entry, "id", f.id.to_string())?;
                tx.put(&entry, "by", f.by.to_string())?;
                tx.put(&entry, "at", ScalarValue::Timestamp(f.at))?;
                tx.put(&entry, "note", f.note.as_str())?;
                if let Some(s) = f.satisfaction {
                    tx.put(&entry, "satisfaction", s.as_str())?;
                }
            }
        }
        Record::Promise(p) => {
            if p.meta.creator == author.person || author.role.reviews() || before.is_none() {
                write_promise(&mut tx, &p.fields)?;
            }
            let had = match &before {
                Some(Record::Promise(b)) => ids(b.outcomes.iter().map(|o| o.id)),
                _ => HashSet::new(),
            };
            let list = existing(&mut tx, "outcomes", ObjType::List)?;
            for o in p.outcomes.iter().filter(|o| mine(&o.by) && !had.contains(&o.id)) {
                let i = tx.length(&list);
                let entry = tx.insert_object(&list, i, ObjType::Map)?;
                tx.put(&entry, "id", o.id.to_string())?;
                tx.put(&entry, "kept", o.kept)?;
                tx.put(&entry, "by", o.by.to_string())?;
                tx.put(&entry, "at", ScalarValue::Timestamp(o.at))?;
                tx.put(&entry, "note", o.note.as_str())?;
            }
        }
    }
    finish(tx, now);
    match base {
        Some(b) => rules::check_update(b, &doc, author)?,
        None => rules::check_new(&doc, author)?,
    };
    Ok(doc)
}

fn ids(it: impl Iterator<Item = uuid::Uuid>) -> HashSet<uuid::Uuid> {
    it.collect()
}

fn finish(tx: Transaction<'_>, now: i64) {
    tx.commit_with(CommitOptions::default().with_time(now));
}
