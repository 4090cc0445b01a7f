//! The sync service: one request in, one response out, over a [`Store`].
//!
//! Each pushed document is judged on its own with the shared rules (actor,
//! territory, role, merge rules, as its writer saw it) and committed, then
//! everything is flushed before any acknowledgement leaves. The pull walks the
//! caller's territory: a new phone gets compacted documents, then the change
//! feed from where that snapshot stood; pages are bounded by bytes.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::{DocWrite, Store};
use automerge::ReadDoc;
use gridsync_shared::protocol::{
    DocBody, DocUpdate, MAX_CHANGE_BYTES, MAX_PUSH_DOCS, PAGE_BYTES_RANGE, PushOutcome, PushResult, SyncRequest,
    SyncResponse,
};
use gridsync_shared::records::{Record, RecordKind, read_record};
use gridsync_shared::rules::{
    PushVerdict, RejectReason, Rejection, check_assignee, check_new_id, check_push_knowing, check_reference,
    new_assignees, references,
};
use gridsync_shared::{Author, DeviceId, DocId, TerritoryPath};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// Where a phone stands, as the server encodes it inside the opaque cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Position {
    /// Sending compacted documents as of feed position `upto`, after document `after`.
    Snapshot { upto: u64, after: Option<DocId> },
    /// Sending feed entries after `after`.
    Feed { after: u64 },
}

/// The opaque cursor: where the phone stands, in which store epoch (None:
/// the store's original one). A cursor from before epochs existed has no
/// epoch field and was issued in the original epoch: it decodes as such.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    scope: TerritoryPath,
    position: Position,
    epoch: Option<[u8; 16]>,
}

/// A cursor as issued before store epochs.
#[derive(Deserialize)]
struct CursorWithoutEpoch {
    scope: TerritoryPath,
    position: Position,
}

impl Cursor {
    fn decode(bytes: &[u8]) -> Result<Self, ApiError> {
        let bad = || ApiError::BadRequest("the sync cursor is not one this server issued".into());
        if let Ok((c, [])) = postcard::take_from_bytes::<Cursor>(bytes) {
            return Ok(c);
        }
        match postcard::take_from_bytes::<CursorWithoutEpoch>(bytes) {
            Ok((c, [])) => Ok(Cursor { scope: c.scope, position: c.position, epoch: None }),
            _ => Err(bad()),
        }
    }
}

impl Position {
    /// The feed position the phone has seen up to.
    fn seq(&self) -> u64 {
        match self {
            Position::Snapshot { upto, .. } => *upto,
            Position::Feed { after } => *after,
        }
    }
}

/// Where a phone whose cursor is from an earlier store epoch (or beyond the
/// store's head) goes on from, with the store's current epoch; None when its
/// cursor is current. Such a phone also sends all its own changes again:
/// changes the server acknowledged after the restored backup was taken are
/// gone from it, though the phone holds them. Its position is kept where it
/// survived every restore since its epoch; an epoch the store never had (a
/// backup restored over another branch) starts again from a snapshot.
fn restored_position(
    cursor: &Cursor,
    epochs: &[crate::store::StoreEpoch],
    head: u64,
) -> Option<(Position, Option<[u8; 16]>)> {
    let current = epochs.last().map(|e| e.id);
    if cursor.epoch == current {
        // Same epoch: a position beyond the head means the store lost entries
        // (a data directory copied back by hand); the entries up to the head stand.
        return (cursor.position.seq() > head).then_some((Position::Feed { after: head }, current));
    }
    let later = match cursor.epoch {
        None => Some(epochs),
        Some(id) => epochs.iter().position(|e| e.id == id).map(|i| &epochs[i + 1..]),
    };
    let Some(limit) = later.and_then(|l| l.iter().map(|e| e.base_seq).min()) else {
        return Some((Position::Snapshot { upto: head, after: None }, current));
    };
    let limit = limit.min(head);
    let position = match cursor.position.clone() {
        Position::Feed { after } => Position::Feed { after: after.min(limit) },
        Position::Snapshot { upto, after } => Position::Snapshot { upto: upto.min(limit), after },
    };
    Some((position, current))
}

/// Striped locks so that two pushes to one document never interleave. Each
/// stripe also keeps the records its last pushes left ([`LastRecords`]), so
/// that the next push to one of them need not read the document to judge it.
pub struct DocLocks {
    stripes: Vec<Mutex<LastRecords>>,
}

impl Default for DocLocks {
    fn default() -> Self {
        Self { stripes: (0..256).map(|_| Mutex::new(LastRecords::default())).collect() }
    }
}

impl DocLocks {
    fn lock(&self, id: &DocId) -> std::sync::MutexGuard<'_, LastRecords> {
        let b = id.as_bytes();
        let i = (b[15] as usize) ^ ((b[14] as usize) << 1);
        self.stripes[i % self.stripes.len()].lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Records as the pushes of one lock stripe left them, each with the heads of
/// the document it was read from. A record is only ever handed out for a
/// document with exactly those heads (the same changes, so the same record,
/// whichever server process wrote them); the oldest go first past
/// [`LAST_RECORDS_BYTES`].
#[derive(Default)]
pub struct LastRecords {
    kept: std::collections::VecDeque<LastRecord>,
    bytes: usize,
}

struct LastRecord {
    doc: DocId,
    heads: Vec<automerge::ChangeHash>,
    record: Record,
    bytes: usize,
}

/// Roughly how much memory one stripe's kept records may take (256 stripes:
/// 32 MiB at most in all).
const LAST_RECORDS_BYTES: usize = 128 * 1024;

impl LastRecords {
    /// The record of `doc` as read at `heads`, if kept.
    fn get(&self, doc: DocId, heads: &[automerge::ChangeHash]) -> Option<&Record> {
        self.kept.iter().find(|k| k.doc == doc && k.heads == heads).map(|k| &k.record)
    }

    /// Keeps `record`, read from `doc` at `heads`; `size` estimates its memory.
    fn keep(&mut self, doc: DocId, heads: Vec<automerge::ChangeHash>, record: Record, size: usize) {
        if let Some(i) = self.kept.iter().position(|k| k.doc == doc)
            && let Some(old) = self.kept.remove(i)
        {
            self.bytes -= old.bytes;
        }
        if size > LAST_RECORDS_BYTES {
            return;
        }
        while self.bytes + size > LAST_RECORDS_BYTES {
            match self.kept.pop_front() {
                Some(old) => self.bytes -= old.bytes,
                None => break,
            }
        }
        self.bytes += size;
        self.kept.push_back(LastRecord { doc, heads, record, bytes: size });
    }
}

/// Serves one sync request for `caller` at server time `now` (Unix ms).
pub fn sync(
    store: &dyn Store,
    locks: &DocLocks,
    caller: &Caller,
    request: SyncRequest,
    now: i64,
) -> Result<SyncResponse, ApiError> {
    if request.push.len() > MAX_PUSH_DOCS {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} documents pushed; at most {MAX_PUSH_DOCS} per request",
            request.push.len()
        )));
    }
    let scope = caller.person.territory.clone();
    let epochs = store.epochs()?;
    let epoch = epochs.last().map(|e| e.id);
    let position = match &request.cursor {
        None => None,
        Some(bytes) => {
            let c = Cursor::decode(bytes)?;
            if let Some((position, epoch)) = restored_position(&c, &epochs, store.head_seq()?) {
                let fresh = Cursor { scope: c.scope, position, epoch };
                let cursor = postcard::to_allocvec(&fresh).map_err(|e| ApiError::Internal(e.to_string()))?;
                return Err(ApiError::StoreRestored { cursor });
            }
            // A person moved to another territory starts again from a snapshot.
            (c.scope == scope).then_some(c.position)
        }
    };
    let position = match position {
        Some(p) => p,
        None => Position::Snapshot { upto: store.head_seq()?, after: None },
    };

    let author = caller.author();
    let actor = caller.actor();
    // A person moved to another territory: this device's pending work in the
    // previous one still goes up, until it syncs with nothing left to push.
    let grace = store.device_grace(caller.device.id)?;
    if !grace.is_empty() && request.push.is_empty() {
        store.set_device_grace(caller.device.id, &[])?;
    }
    // The most recent previous territory first.
    let grace: Vec<Author> = if request.push.is_empty() {
        Vec::new()
    } else {
        grace.into_iter().rev().map(|t| Author { territory: t, ..author.clone() }).collect()
    };
    let mut results = Vec::with_capacity(request.push.len());
    let mut held = Vec::new();
    let mut wrote = false;
    for push in request.push {
        let doc = push.doc;
        let retry = (!grace.is_empty()).then(|| push.clone());
        let mut result = push_one(store, locks, caller, &author, &actor, push, now);
        if let Some(push) = retry {
            for previous in &grace {
                match &result {
                    Err(Failure::Rejected(r)) if r.reason == RejectReason::OutsideTerritory => {
                        result = push_one(store, locks, caller, previous, &actor, push.clone(), now);
                    }
                    _ => break,
                }
            }
        }
        let outcome = match result {
            Ok(o) => o,
            Err(Failure::Rejected(r)) => {
                tracing::info!(%doc, device = %caller.device.id, reason = r.reason.code(), detail = %r.detail, "push rejected");
                held.extend(server_copy(store, &scope, doc)?);
                PushOutcome::Rejected(r)
            }
            Err(Failure::Api(e)) => {
                // The store failed part way: nothing is acknowledged. Documents
                // committed before the failure may be kept; a retry finds them
                // `Duplicate`, so the phone's outbox stays the truth.
                return Err(e);
            }
        };
        wrote |= outcome == PushOutcome::Accepted;
        results.push(PushResult { doc, outcome });
    }
    if wrote {
        store.flush()?;
    }

    let budget = request.max_response_bytes.clamp(PAGE_BYTES_RANGE.0, PAGE_BYTES_RANGE.1) as usize;
    // An administrator over a sub-district or more works online: no records
    // go down. The cursor stays at the start of a snapshot of now, so if the
    // person's role or territory changes the device still gets everything.
    let (pulled, position, more) = if gridsync_shared::roles::keeps_replica(caller.person.role, &scope) {
        pull(store, &scope, position, budget, caller.device.id)?
    } else {
        (Vec::new(), Position::Snapshot { upto: store.head_seq()?, after: None }, false)
    };
    let mut updates = held;
    updates.extend(pulled);
    let cursor =
        postcard::to_allocvec(&Cursor { scope, position, epoch }).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(SyncResponse { results, updates, cursor, more })
}

/// The server's copy of a record whose push was refused, if the caller may
/// read it: the phone drops what was refused and keeps exactly what the server
/// holds, including its own earlier changes whose acknowledgement was lost.
fn server_copy(store: &dyn Store, scope: &TerritoryPath, id: DocId) -> Result<Option<DocUpdate>, ApiError> {
    match store.load_doc(id)? {
        Some(doc) if scope.contains(&doc.grid) => {
            Ok(Some(DocUpdate { doc: id, body: DocBody::Snapshot(doc.bytes), summary: store.summary(id)? }))
        }
        _ => Ok(None),
    }
}

enum Failure {
    Rejected(Rejection),
    Api(ApiError),
}

impl From<Rejection> for Failure {
    fn from(r: Rejection) -> Self {
        Failure::Rejected(r)
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Self {
        Failure::Api(e.into())
    }
}

fn push_one(
    store: &dyn Store,
    locks: &DocLocks,
    caller: &Caller,
    author: &Author,
    actor: &automerge::ActorId,
    push: gridsync_shared::protocol::DocPush,
    now: i64,
) -> Result<PushOutcome, Failure> {
    if let Some(big) = push.changes.iter().find(|c| c.len() > MAX_CHANGE_BYTES) {
        return Err(Rejection::new(
            RejectReason::TooLarge,
            format!("a change of {} bytes; at most {MAX_CHANGE_BYTES}", big.len()),
        )
        .into());
    }
    let changes = push
        .changes
        .into_iter()
        .map(gridsync_shared::protocol::parse_change)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Rejection::new(RejectReason::Malformed, e.to_string()))?;

    let mut last = locks.lock(&push.doc);
    let stored = store.load_doc(push.doc)?;
    let current =
        match &stored {
            Some(s) => Some(automerge::Automerge::load(&s.bytes).map_err(|e| {
                Failure::Api(ApiError::Internal(format!("stored document {} unreadable: {e}", push.doc)))
            })?),
            None => None,
        };
    if stored.is_none() {
        check_new_id(&push.doc)?;
    }
    let new_changes: Vec<Vec<u8>> = changes
        .iter()
        .filter(|c| current.as_ref().is_none_or(|d| d.get_change_by_hash(&c.hash()).is_none()))
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    let known = current.as_ref().and_then(|doc| last.get(push.doc, &doc.get_heads()));
    match check_push_knowing(current.as_ref().map(|doc| (doc, known)), changes, actor, author)? {
        PushVerdict::Duplicate => Ok(PushOutcome::Duplicate),
        PushVerdict::Accept { merged, record } => {
            check_references_in_store(store, &record, author, push.doc, stored.is_some())?;
            check_assignees_in_store(store, current.as_ref(), &record)?;
            // A household's head ID number is indexed with it, so an import finds it.
            let keys = crate::imports::commit_keys(push.doc, &record);
            let row = gridsync_shared::records::row::encode_row(&record);
            let row_len = row.len();
            let heads = merged.get_heads();
            store.commit_doc_with_keys(
                DocWrite {
                    doc: push.doc,
                    grid: record.meta().grid.clone(),
                    summary: record.summary(),
                    // The store keeps the changes; a whole document only stands in for none.
                    bytes: if new_changes.is_empty() { merged.save() } else { Vec::new() },
                    heads: heads.clone(),
                    device: caller.device.id,
                    changes: new_changes,
                    photos: record.photos().to_vec(),
                    row: Some(row),
                },
                now,
                &keys,
            )?;
            // A row is its record's fields deflated: a few times smaller than the record.
            last.keep(push.doc, heads, *record, row_len * 4);
            Ok(PushOutcome::Accepted)
        }
    }
}

/// Checks what the record references (its household, its visit) against the
/// store, with the shared rule. A household reference the stored version
/// already had is not checked again, so records from before the rule stay editable.
fn check_references_in_store(
    store: &dyn Store,
    record: &Record,
    author: &Author,
    id: DocId,
    existed: bool,
) -> Result<(), Failure> {
    let already = if existed { store.summary(id)?.and_then(|s| s.household) } else { None };
    for (rid, kind) in references(record) {
        if kind == RecordKind::Household && Some(rid) == already {
            continue;
        }
        let found = store.load_doc(rid)?;
        check_reference(rid, kind, found.as_ref().map(|d| (d.kind, &d.grid)), author)?;
    }
    Ok(())
}

/// Checks each assignee a push newly names on a case (交办) against the
/// store, with the shared rule: an existing, enabled person whose territory
/// holds the case's grid (a phone offline cannot know that).
fn check_assignees_in_store(
    store: &dyn Store,
    current: Option<&automerge::Automerge>,
    record: &Record,
) -> Result<(), Failure> {
    if new_assignees(None, record).is_empty() {
        return Ok(());
    }
    let old = current.map(read_record).transpose().map_err(Rejection::from)?;
    for person in new_assignees(old.as_ref(), record) {
        let found = store.person(person)?;
        let enabled = found.is_some() && store.person_disabled_at(person)?.is_none();
        check_assignee(person, found.as_ref().map(|p| (&p.territory, enabled)), &record.meta().grid)?;
    }
    Ok(())
}

/// Fills one response page of at most `budget` bytes (always at least one item).
fn pull(
    store: &dyn Store,
    scope: &TerritoryPath,
    mut position: Position,
    budget: usize,
    own: DeviceId,
) -> Result<(Vec<DocUpdate>, Position, bool), ApiError> {
    let mut updates: Vec<DocUpdate> = Vec::new();
    let mut used = 0usize;
    let fits = |used: usize, size: usize| used == 0 || used + size <= budget;
    loop {
        match position {
            Position::Snapshot { upto, after } => {
                let docs = store.docs_in_scope(scope, after, 64)?;
                if docs.is_empty() {
                    position = Position::Feed { after: upto };
                    continue;
                }
                let ids: Vec<DocId> = docs.iter().map(|(id, _)| *id).collect();
                let mut summaries = store.summaries(&ids)?;
                for (id, doc) in docs {
                    // A record created after the snapshot's moment comes through the
                    // feed (and not at all to the phone that pushed it).
                    if doc.seq > upto && store.doc_heads_at(id, upto)?.is_none() {
                        position = Position::Snapshot { upto, after: Some(id) };
                        continue;
                    }
                    if !fits(used, doc.bytes.len()) {
                        // Resume after the last record sent, not from this batch's start.
                        return Ok((updates, position, true));
                    }
                    used += doc.bytes.len();
                    let summary = summaries.remove(&id);
                    updates.push(DocUpdate { doc: id, body: DocBody::Snapshot(doc.bytes), summary });
                    position = Position::Snapshot { upto, after: Some(id) };
                }
            }
            Position::Feed { after } => {
                let entries = store.feed_after(scope, after, 256)?;
                if entries.is_empty() {
                    return Ok((updates, Position::Feed { after }, false));
                }
                let mut ids: Vec<DocId> = entries.iter().filter(|e| e.device != own).map(|e| e.doc).collect();
                ids.sort_unstable();
                ids.dedup();
                let summaries = store.summaries(&ids)?;
                let mut at = after;
                for entry in entries {
                    if entry.device != own {
                        let size: usize = entry.changes.iter().map(Vec::len).sum();
                        if !fits(used, size) {
                            return Ok((updates, Position::Feed { after: at }, true));
                        }
                        used += size;
                        match updates.last_mut() {
                            Some(DocUpdate { doc, body: DocBody::Changes(c), .. }) if *doc == entry.doc => {
                                c.extend(entry.changes)
                            }
                            _ => {
                                let summary = summaries.get(&entry.doc).cloned();
                                updates.push(DocUpdate {
                                    doc: entry.doc,
                                    body: DocBody::Changes(entry.changes),
                                    summary,
                                })
                            }
                        }
                    }
                    at = entry.seq;
                }
                position = Position::Feed { after: at };
            }
        }
    }
}
