//! The phone's records and everything that waits to be synced.
//!
//! Every edit goes through the shared crate's [`Editor`], so the phone refuses
//! what the server would refuse; each new change lands in the outbox and is
//! saved before the call returns. Documents from the server merge in; the
//! outbox empties only when the server acknowledges durably.

use crate::directory::{CHANGED_KEY, ChangeLog, DIRECTORY_KEY, KeptDirectory};
use crate::local_doc::LocalDoc;
use crate::storage::{Storage, StorageError, StoreOp};
use automerge::{ActorId, Automerge, ChangeHash, ReadDoc};
use gridsync_shared::protocol::{DeviceRegistration, ProtocolError};
use gridsync_shared::records::{
    EditError, Editor, NewRecord, Record, RecordKind, RecordSummary, new_record_with_id, read_record,
};
use gridsync_shared::rules::Rejection;
use gridsync_shared::{Author, DocId, TerritoryPath};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use thiserror::Error;

/// Why a replica operation failed; on error nothing was saved.
#[derive(Debug, Error)]
pub enum ReplicaError {
    /// The phone has no device registration yet.
    #[error("not signed in on this device")]
    NotSignedIn,
    /// No record with this id on the phone.
    #[error("no record {0} on this phone")]
    UnknownRecord(DocId),
    /// The edit breaks a rule.
    #[error(transparent)]
    Edit(#[from] EditError),
    /// Saving failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A sync response could not be decoded.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// Stored or received data is damaged.
    #[error("damaged data: {0}")]
    Corrupt(String),
    /// A grid was needed and none could be chosen.
    #[error("choose a grid: {0}")]
    NoGrid(String),
    /// A directory of names that cannot be kept (see `Replica::set_directory`).
    #[error("invalid directory: {0}")]
    Directory(#[from] gridsync_shared::directory::DirectoryError),
}

/// A record the server refused, kept so the phone can show why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RejectedRecord {
    /// Which record.
    pub doc: DocId,
    /// Its kind, if it could be read.
    pub kind: Option<RecordKind>,
    /// A short description (title, address, first words of notes).
    pub summary: String,
    /// The server's reason.
    pub rejection: Rejection,
    /// When the phone learned of it, Unix ms.
    pub at: i64,
    /// What of the refused work the phone kept and pushes again (see
    /// [`gridsync_shared::records::salvage`]), in words; `None` if all of it
    /// was rolled back. Stored under its own key (`kept/<id>`), so rejections
    /// saved before it existed still read.
    #[serde(skip)]
    pub kept: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Status {
    last_sync_at: Option<i64>,
}

/// The phone's offline replica over a [`Storage`].
pub struct Replica<S: Storage> {
    pub(crate) storage: S,
    pub(crate) identity: Option<DeviceRegistration>,
    pub(crate) docs: BTreeMap<DocId, LocalDoc>,
    pub(crate) outbox: BTreeMap<DocId, Vec<ChangeHash>>,
    /// The raw bytes of outbox changes made since the app opened, so a sync
    /// need not parse their documents (after a restart they are read from them).
    pub(crate) outbox_bytes: BTreeMap<ChangeHash, Vec<u8>>,
    pub(crate) in_flight: BTreeMap<DocId, Vec<ChangeHash>>,
    pub(crate) cursor: Option<Vec<u8>>,
    pub(crate) rejected: BTreeMap<DocId, RejectedRecord>,
    status: Status,
    /// Set when the person's territory changed while records outside the new
    /// one still had work waiting; they are dropped once it is acknowledged.
    pub(crate) scope_cleanup: bool,
    /// The names of people and territories in scope, and what others changed.
    pub(crate) directory: KeptDirectory,
    pub(crate) changed: ChangeLog,
    /// Set when the server said it was restored from a backup, until the
    /// outbox is empty: meanwhile a push refused for missing dependencies
    /// waits (see [`Replica::store_restored`]).
    pub(crate) restored: bool,
}

pub(crate) fn doc_key(id: &DocId) -> String {
    format!("doc/{id}")
}
pub(crate) fn outbox_key(id: &DocId) -> String {
    format!("outbox/{id}")
}
pub(crate) fn rejected_key(id: &DocId) -> String {
    format!("rejected/{id}")
}
pub(crate) fn kept_key(id: &DocId) -> String {
    format!("kept/{id}")
}

fn corrupt(what: impl std::fmt::Display) -> ReplicaError {
    ReplicaError::Corrupt(what.to_string())
}

impl<S: Storage> Replica<S> {
    /// Opens the replica kept in `storage` (empty storage gives an empty replica).
    pub fn open(storage: S) -> Result<Self, ReplicaError> {
        let mut r = Replica {
            storage,
            identity: None,
            docs: BTreeMap::new(),
            outbox: BTreeMap::new(),
            outbox_bytes: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            cursor: None,
            rejected: BTreeMap::new(),
            status: Status::default(),
            scope_cleanup: false,
            directory: Default::default(),
            changed: Default::default(),
            restored: false,
        };
        let mut outboxes = Vec::new();
        let mut stored_docs = Vec::new();
        let mut kept = Vec::new();
        for (key, value) in r.storage.load_all()? {
            match key.split_once('/') {
                None if key == "identity" => r.identity = Some(postcard::from_bytes(&value).map_err(corrupt)?),
                None if key == "cursor" => r.cursor = Some(value),
                None if key == "status" => r.status = postcard::from_bytes(&value).map_err(corrupt)?,
                None if key == "scope_cleanup" => r.scope_cleanup = true,
                None if key == crate::engine::RESTORED_KEY => r.restored = true,
                None if key == DIRECTORY_KEY => r.directory = KeptDirectory::load(&value),
                None if key == CHANGED_KEY => r.changed = ChangeLog::load(&value),
                Some(("doc", id)) => stored_docs.push((id.parse::<DocId>().map_err(corrupt)?, value)),
                Some(("outbox", id)) => outboxes.push((id.parse::<DocId>().map_err(corrupt)?, value)),
                Some(("rejected", id)) => {
                    let id: DocId = id.parse().map_err(corrupt)?;
                    r.rejected.insert(id, postcard::from_bytes(&value).map_err(corrupt)?);
                }
                Some(("kept", id)) => kept.push((id.parse::<DocId>().map_err(corrupt)?, value)),
                _ => {}
            }
        }
        for (id, value) in kept {
            if let Some(r) = r.rejected.get_mut(&id) {
                r.kept = Some(String::from_utf8_lossy(&value).into_owned());
            }
        }
        // Documents are parsed only when first needed (see `LocalDoc`).
        let actor = r.actor();
        for (id, value) in stored_docs {
            r.docs.insert(id, LocalDoc::stored(value, actor.clone())?);
        }
        // An outbox entry is written before its document; a hash the document
        // lacks (a crash between the two) is skipped when the request is built.
        for (id, value) in outboxes {
            let hashes: Vec<ChangeHash> = value.chunks_exact(32).filter_map(|c| ChangeHash::try_from(c).ok()).collect();
            if !hashes.is_empty() && r.docs.contains_key(&id) {
                r.outbox.insert(id, hashes);
            }
        }
        Ok(r)
    }

    /// Records the device registration the server gave at sign-in, and saves it.
    pub fn register(&mut self, registration: DeviceRegistration) -> Result<(), ReplicaError> {
        let actor = gridsync_shared::ids::actor_from_hex(&registration.actor)
            .ok_or_else(|| corrupt("server gave an invalid actor id"))?;
        let value = postcard::to_allocvec(&registration).map_err(corrupt)?;
        self.storage.commit(vec![StoreOp::Put { key: "identity".into(), value }])?;
        for doc in self.docs.values_mut() {
            doc.set_actor(&actor);
        }
        self.identity = Some(registration);
        Ok(())
    }

    /// Takes in where the person works now, as the server says (`GET /v1/me`):
    /// after a move to another territory, records outside the new one are
    /// dropped from the phone — each only once nothing of it waits to be
    /// pushed (the server takes a moved person's pending work into the previous
    /// territory). Returns how many records were dropped.
    pub fn update_territory(&mut self, territory: TerritoryPath) -> Result<usize, ReplicaError> {
        let Some(identity) = self.identity.as_mut() else { return Err(ReplicaError::NotSignedIn) };
        if identity.territory == territory && !self.scope_cleanup {
            return Ok(0);
        }
        identity.territory = territory;
        let value = postcard::to_allocvec(&*identity).map_err(corrupt)?;
        self.storage.commit(vec![StoreOp::Put { key: "identity".into(), value }])?;
        self.drop_out_of_scope()
    }

    /// Drops records outside the person's territory that have nothing waiting
    /// to be pushed; remembers whether some must wait for their acknowledgement.
    pub(crate) fn drop_out_of_scope(&mut self) -> Result<usize, ReplicaError> {
        let Some(territory) = self.identity.as_ref().map(|i| i.territory.clone()) else { return Ok(0) };
        let outside: Vec<DocId> = self
            .docs
            .iter()
            .filter(|(_, d)| d.record().is_some_and(|r| !territory.contains(&r.meta().grid)))
            .map(|(id, _)| *id)
            .collect();
        let (waiting, gone): (Vec<DocId>, Vec<DocId>) =
            outside.into_iter().partition(|id| self.outbox.contains_key(id));
        for id in &gone {
            self.docs.remove(id);
            self.rejected.remove(id);
        }
        self.save_docs(&gone, false)?;
        self.scope_cleanup = !waiting.is_empty();
        let mark = if self.scope_cleanup {
            StoreOp::Put { key: "scope_cleanup".into(), value: vec![1] }
        } else {
            StoreOp::Delete { key: "scope_cleanup".into() }
        };
        self.storage.commit(vec![mark])?;
        Ok(gone.len())
    }

    /// The device registration, if signed in.
    pub fn identity(&self) -> Option<&DeviceRegistration> {
        self.identity.as_ref()
    }

    pub(crate) fn actor(&self) -> Option<ActorId> {
        self.identity.as_ref().and_then(|i| gridsync_shared::ids::actor_from_hex(&i.actor))
    }

    fn author(&self) -> Result<(Author, ActorId), ReplicaError> {
        let id = self.identity.as_ref().ok_or(ReplicaError::NotSignedIn)?;
        let actor = self.actor().ok_or(ReplicaError::NotSignedIn)?;
        Ok((Author { person: id.person, role: id.role, territory: id.territory.clone() }, actor))
    }

    /// A fresh record id (UUID v7) for a record made at `now`: a form takes
    /// one when it opens and creates with it ([`Self::create_with_id`]).
    pub fn new_id(now: i64) -> DocId {
        let mut random = [0u8; 10];
        random.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..10]);
        DocId::new_v7(u64::try_from(now).unwrap_or(0), random)
    }

    /// Whether the phone holds a record with this id (without parsing it).
    pub fn holds(&self, id: DocId) -> bool {
        self.docs.contains_key(&id)
    }

    /// Creates a record with a fresh id in `grid` (or the person's own grid
    /// when they have one) and saves it with its change in the outbox.
    pub fn create(&mut self, grid: Option<&TerritoryPath>, now: i64, new: &NewRecord) -> Result<DocId, ReplicaError> {
        self.create_with_id(Self::new_id(now), grid, now, new)
    }

    /// Creates the record `id` (a UUID v7 the form chose when it opened), or,
    /// if the phone already holds it (the form was submitted before, whether
    /// or not that reached the server), writes `new`'s editable fields over
    /// that same record: a repeated submit never makes a second record.
    pub fn create_with_id(
        &mut self,
        id: DocId,
        grid: Option<&TerritoryPath>,
        now: i64,
        new: &NewRecord,
    ) -> Result<DocId, ReplicaError> {
        if self.docs.contains_key(&id) {
            self.edit(id, now, |e| e.update_fields(new))?;
            return Ok(id);
        }
        let (author, actor) = self.author()?;
        let grid = match grid {
            Some(g) => g.clone(),
            None if author.territory.is_grid() => author.territory.clone(),
            None => return Err(ReplicaError::NoGrid(format!("{} covers several grids", author.territory))),
        };
        let doc = new_record_with_id(id, actor, &author, &grid, now, new)?;
        let hashes = doc.get_heads();
        let mut made = Vec::new();
        for change in doc.get_changes(&[]) {
            made.push(change.hash());
            self.outbox_bytes.insert(change.hash(), change.raw_bytes().to_vec());
        }
        self.docs.insert(id, LocalDoc::new(doc));
        self.outbox.entry(id).or_default().extend(hashes);
        if let Err(e) = self.save_docs(&[id], false) {
            self.forget_unsaved(id, &made, None);
            return Err(e);
        }
        Ok(id)
    }

    /// Edits a record with the shared [`Editor`]; the new change is saved in the outbox.
    pub fn edit<T>(
        &mut self,
        id: DocId,
        now: i64,
        f: impl FnOnce(&mut Editor<'_>) -> Result<T, EditError>,
    ) -> Result<T, ReplicaError> {
        let (author, _) = self.author()?;
        let doc = self.docs.get_mut(&id).ok_or(ReplicaError::UnknownRecord(id))?.get_mut()?;
        let before = doc.get_heads();
        let result = f(&mut Editor::new(doc, &author, now))?;
        self.edit_done(id, &before)?;
        Ok(result)
    }

    /// The part of [`Self::edit`] after the editor ran: queues the new changes
    /// for the server and saves the document, or takes them back if the save
    /// fails. Not generic, so the wasm build holds it once rather than once
    /// per kind of edit.
    #[inline(never)]
    fn edit_done(&mut self, id: DocId, before: &[ChangeHash]) -> Result<(), ReplicaError> {
        let Some(doc) = self.docs.get_mut(&id) else { return Err(ReplicaError::UnknownRecord(id)) };
        let doc = doc.get_mut()?;
        let added: Vec<ChangeHash> = doc.get_changes(before).iter().map(|c| c.hash()).collect();
        for change in doc.get_changes(before) {
            self.outbox_bytes.insert(change.hash(), change.raw_bytes().to_vec());
        }
        if !added.is_empty() {
            self.outbox.entry(id).or_default().extend(added.iter().copied());
            if let Err(e) = self.save_docs(&[id], false) {
                self.forget_unsaved(id, &added, Some(before));
                return Err(e);
            }
        }
        Ok(())
    }

    /// After a failed save, takes the unsaved changes back out of memory, so
    /// that the phone never shows or sends what its storage does not hold:
    /// `before` is the document's heads before them (None: a new document).
    pub(crate) fn forget_unsaved(&mut self, id: DocId, unsaved: &[ChangeHash], before: Option<&[ChangeHash]>) {
        for h in unsaved {
            self.outbox_bytes.remove(h);
        }
        if let Some(outbox) = self.outbox.get_mut(&id) {
            outbox.retain(|h| !unsaved.contains(h));
            if outbox.is_empty() {
                self.outbox.remove(&id);
            }
        }
        let Some(heads) = before else {
            self.docs.remove(&id);
            return;
        };
        let restored = self.docs.get(&id).and_then(LocalDoc::get).and_then(|d| d.fork_at(heads).ok());
        if let Some(mut doc) = restored {
            if let Some(actor) = self.actor() {
                doc.set_actor(actor);
            }
            let mut local = LocalDoc::new(doc);
            local.encode();
            local.unload();
            self.docs.insert(id, local);
        }
    }

    /// Saves documents (outbox first, then the document), optionally with the cursor.
    pub(crate) fn save_docs(&mut self, ids: &[DocId], with_cursor: bool) -> Result<(), ReplicaError> {
        let mut ops = Vec::with_capacity(ids.len() * 2 + 2);
        for id in ids {
            match self.outbox.get(id) {
                Some(hashes) if !hashes.is_empty() => {
                    ops.push(StoreOp::Put { key: outbox_key(id), value: hashes.iter().flat_map(|h| h.0).collect() })
                }
                _ => ops.push(StoreOp::Delete { key: outbox_key(id) }),
            }
            match self.docs.get_mut(id) {
                Some(doc) => {
                    ops.push(StoreOp::Put { key: doc_key(id), value: doc.encode() });
                    // Memory holds bytes, not parsed documents: a parsed visit log
                    // takes a hundred times its saved size.
                    doc.unload();
                }
                None => ops.push(StoreOp::Delete { key: doc_key(id) }),
            }
            match self.rejected.get(id) {
                Some(r) => {
                    ops.push(StoreOp::Put { key: rejected_key(id), value: postcard::to_allocvec(r).map_err(corrupt)? })
                }
                None => ops.push(StoreOp::Delete { key: rejected_key(id) }),
            }
            match self.rejected.get(id).and_then(|r| r.kept.as_ref()) {
                Some(kept) => ops.push(StoreOp::Put { key: kept_key(id), value: kept.as_bytes().to_vec() }),
                None => ops.push(StoreOp::Delete { key: kept_key(id) }),
            }
        }
        if with_cursor {
            if let Some(c) = &self.cursor {
                ops.push(StoreOp::Put { key: "cursor".into(), value: c.clone() });
            }
            ops.push(StoreOp::Put {
                key: "status".into(),
                value: postcard::to_allocvec(&self.status).map_err(corrupt)?,
            });
            ops.extend(self.changed.take_op());
        }
        self.storage.commit(ops)?;
        Ok(())
    }

    pub(crate) fn mark_synced(&mut self, now: i64) {
        self.status.last_sync_at = Some(now);
    }

    /// One record as it reads now.
    pub fn record(&self, id: DocId) -> Option<Record> {
        self.docs.get(&id).and_then(LocalDoc::record)
    }

    /// Every readable record on the phone, by id (ids are time-ordered).
    pub fn records(&self) -> impl Iterator<Item = (DocId, Record)> + '_ {
        self.records_of(None)
    }

    /// Every readable record of one kind (or all), by id; documents of other
    /// kinds are not even parsed (unless stored without a header).
    pub fn records_of(&self, kind: Option<RecordKind>) -> impl Iterator<Item = (DocId, Record)> + '_ {
        self.summaries()
            .filter(move |(_, _, s)| kind.is_none_or(|k| k == s.kind))
            .filter_map(|(id, d, _)| d.record().map(|r| (id, r)))
    }

    /// Each record's id with its kind, household and time, from what the phone
    /// knows without parsing (the few documents stored without that header
    /// are parsed to learn it; damaged ones are left out).
    fn summaries(&self) -> impl Iterator<Item = (DocId, &LocalDoc, RecordSummary)> + '_ {
        self.docs.iter().filter_map(|(id, d)| d.summary().map(|s| (*id, d, s)))
    }

    /// Every visit log's id and visit time (Unix ms), from what the phone
    /// knows without parsing the documents: day views parse only their day's.
    pub fn visit_times(&self) -> impl Iterator<Item = (DocId, i64)> + '_ {
        self.summaries().filter(|(_, _, s)| s.kind == RecordKind::VisitLog).map(|(id, _, s)| (id, s.at))
    }

    /// For each household, when it was last visited (Unix ms), from the visit
    /// logs on the phone — without parsing them.
    pub fn last_visits(&self) -> BTreeMap<DocId, i64> {
        let mut last = BTreeMap::new();
        for (_, _, s) in self.summaries() {
            if let (RecordKind::VisitLog, Some(household)) = (s.kind, s.household) {
                let e = last.entry(household).or_insert(s.at);
                *e = (*e).max(s.at);
            }
        }
        last
    }

    /// The records of one kind (or all) about one household, by id: only
    /// those are parsed (a household page with thousands of visits elsewhere).
    pub fn records_about(
        &self,
        household: DocId,
        kind: Option<RecordKind>,
    ) -> impl Iterator<Item = (DocId, Record)> + '_ {
        self.summaries()
            .filter(move |(_, _, s)| s.household == Some(household) && kind.is_none_or(|k| k == s.kind))
            .filter_map(|(id, d, _)| d.record().map(|r| (id, r)))
    }

    /// The records of one kind whose time passes `keep`, oldest first (ties
    /// by id), not yet parsed.
    fn timed(&self, kind: RecordKind, keep: impl Fn(i64) -> bool) -> Vec<(i64, DocId, &LocalDoc)> {
        let times: Vec<(i64, DocId, &LocalDoc)> =
            self.summaries().filter(|(_, _, s)| s.kind == kind && keep(s.at)).map(|(id, d, s)| (s.at, id, d)).collect();
        crate::order::sorted_by_key(times, |(at, id, _)| {
            let mut k = [0u8; 28];
            k[..8].copy_from_slice(&crate::order::i64_key(*at));
            k[8..24].copy_from_slice(id.0.as_bytes());
            k
        })
    }

    /// A page of records of one kind, newest first by their time (a visit
    /// log's visit time, else creation; ties by id): the `limit` newest with a
    /// time before `before` (any time when None), and whether older ones
    /// remain. Only the page's records are parsed.
    pub fn recent(&self, kind: RecordKind, before: Option<i64>, limit: usize) -> (Vec<(DocId, Record)>, bool) {
        let times = self.timed(kind, |at| before.is_none_or(|b| at < b));
        let more = times.len() > limit;
        let page = times.into_iter().rev().take(limit).filter_map(|(_, id, d)| d.record().map(|r| (id, r))).collect();
        (page, more)
    }

    /// The records of one kind whose time (as in [`Self::recent`]) falls in
    /// `from..to` (Unix ms), oldest first: a diary's days parse only their own.
    pub fn records_between(&self, kind: RecordKind, from: i64, to: i64) -> Vec<(DocId, Record)> {
        let times = self.timed(kind, |at| (from..to).contains(&at));
        times.into_iter().filter_map(|(_, id, d)| d.record().map(|r| (id, r))).collect()
    }

    /// How many times a record's stored bytes have been parsed since the app
    /// opened (None if the phone does not hold it): shows which records a
    /// screen's query read.
    pub fn times_parsed(&self, id: DocId) -> Option<u32> {
        self.docs.get(&id).map(LocalDoc::parses)
    }

    /// The Automerge document of a record (for comparisons and exports); it
    /// stays parsed until the record is next saved.
    pub fn document(&self, id: DocId) -> Option<&Automerge> {
        self.docs.get(&id).and_then(LocalDoc::get)
    }

    /// Ids of every document on the phone.
    pub fn document_ids(&self) -> impl Iterator<Item = DocId> + '_ {
        self.docs.keys().copied()
    }

    /// How many local changes wait for the server's acknowledgement.
    pub fn pending_changes(&self) -> usize {
        self.outbox.values().map(Vec::len).sum()
    }

    /// The changes (by hash) that wait for the server's acknowledgement, per
    /// record; a change absent from here was acknowledged as durable (or never made).
    pub fn outbox(&self) -> impl Iterator<Item = (DocId, &[ChangeHash])> + '_ {
        self.outbox.iter().map(|(id, hashes)| (*id, hashes.as_slice()))
    }

    /// Records the server refused, with reasons.
    pub fn rejections(&self) -> impl Iterator<Item = &RejectedRecord> {
        self.rejected.values()
    }

    /// Forgets a shown rejection.
    pub fn dismiss_rejection(&mut self, id: DocId) -> Result<(), ReplicaError> {
        if self.rejected.remove(&id).is_some() {
            self.storage
                .commit(vec![StoreOp::Delete { key: rejected_key(&id) }, StoreOp::Delete { key: kept_key(&id) }])?;
        }
        Ok(())
    }

    /// Where this phone stands in its territory's feed (opaque, from the server).
    pub fn cursor(&self) -> Option<&[u8]> {
        self.cursor.as_deref()
    }

    /// When the last sync completed, Unix ms.
    pub fn last_sync_at(&self) -> Option<i64> {
        self.status.last_sync_at
    }

    /// The storage underneath (for inspection in tests and benchmarks).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Writes the phone's unacknowledged work on `id` again under this device's
    /// actor, on top of `server_copy` (the server's saved document, if it has
    /// one), after the server refused it as written by another device — the
    /// phone's earlier device, before it signed in again. Returns false, changing
    /// nothing, if the refused changes are not from an earlier device of this
    /// phone or the work cannot be re-made within the rules (then it is rolled back).
    pub(crate) fn reauthor(&mut self, id: DocId, server_copy: Option<&[u8]>, now: i64) -> Result<bool, ReplicaError> {
        let (author, actor) = self.author()?;
        let Some(local) = self.docs.get(&id).and_then(LocalDoc::get) else { return Ok(false) };
        let waiting = self.outbox.get(&id).map(Vec::as_slice).unwrap_or_default();
        let earlier_device = waiting.iter().filter_map(|h| local.get_change_by_hash(h)).any(|c| c.actor_id() != &actor);
        if !earlier_device {
            return Ok(false);
        }
        let Ok(record) = read_record(local) else { return Ok(false) };
        let base = match server_copy {
            Some(bytes) => Some(Automerge::load(bytes).map_err(corrupt)?),
            None => None,
        };
        let Ok(fresh) = gridsync_shared::records::reauthor(&record, base.as_ref(), actor, &author, now) else {
            return Ok(false);
        };
        self.rejected.remove(&id);
        self.replace_unsent(id, fresh, base.as_ref());
        Ok(true)
    }

    /// Makes `remade` (made on top of `base`, the server's copy) the phone's
    /// document `id`, its changes since `base` the record's whole outbox.
    fn replace_unsent(&mut self, id: DocId, remade: Automerge, base: Option<&Automerge>) {
        let since = base.map(Automerge::get_heads).unwrap_or_default();
        let mut hashes = Vec::new();
        for change in remade.get_changes(&since) {
            hashes.push(change.hash());
            self.outbox_bytes.insert(change.hash(), change.raw_bytes().to_vec());
        }
        for h in self.outbox.remove(&id).unwrap_or_default() {
            self.outbox_bytes.remove(&h);
        }
        if !hashes.is_empty() {
            self.outbox.insert(id, hashes);
        }
        self.in_flight.remove(&id);
        self.docs.insert(id, LocalDoc::new(remade));
    }

    /// After the server refused the push to `id`, keeps what of the phone's
    /// unacknowledged work can be kept: re-made on top of `server_copy` (the
    /// server's saved document sent with the refusal, if it has one) without
    /// the decisions, or also without field edits (see
    /// [`gridsync_shared::records::salvage`]); the re-made changes replace the
    /// record's outbox and go up next. Returns what was kept, or `None`,
    /// changing nothing, when nothing can be.
    pub(crate) fn salvage(
        &mut self,
        id: DocId,
        server_copy: Option<&[u8]>,
        now: i64,
    ) -> Result<Option<gridsync_shared::records::Carried>, ReplicaError> {
        let (author, actor) = self.author()?;
        let Some(local) = self.docs.get(&id).and_then(LocalDoc::get) else { return Ok(None) };
        let Ok(record) = read_record(local) else { return Ok(None) };
        let base = match server_copy {
            Some(bytes) => Some(Automerge::load(bytes).map_err(corrupt)?),
            None => None,
        };
        let Ok(Some(remade)) = gridsync_shared::records::salvage(&record, base.as_ref(), actor, &author, now) else {
            return Ok(None);
        };
        self.replace_unsent(id, remade.doc, base.as_ref());
        Ok(Some(remade.carried))
    }

    /// Drops the changes to `id` that the server refused (those sent in the
    /// last request, and any made on top of them), keeping every other change
    /// in the outbox; returns a summary of what was refused. The server sends
    /// its own copy with a refusal, which is merged in afterwards, so changes it
    /// holds (an earlier push whose acknowledgement was lost) come back.
    pub(crate) fn roll_back(&mut self, id: DocId) -> Result<String, ReplicaError> {
        let outbox = self.outbox.remove(&id).unwrap_or_default();
        let refused: HashSet<ChangeHash> = match self.in_flight.remove(&id) {
            Some(sent) => sent.into_iter().collect(),
            None => outbox.iter().copied().collect(),
        };
        let Some(doc) = self.docs.get(&id).and_then(LocalDoc::get) else {
            self.outbox_bytes.retain(|h, _| !refused.contains(h));
            return Ok(String::new());
        };
        let summary = read_record(doc).map(|r| summarize(&r)).unwrap_or_default();
        let mut dropped = refused;
        let keep: Vec<_> = doc
            .get_changes(&[])
            .into_iter()
            .filter(|c| {
                let gone = dropped.contains(&c.hash()) || c.deps().iter().any(|d| dropped.contains(d));
                if gone {
                    dropped.insert(c.hash());
                }
                !gone
            })
            .collect();
        self.outbox_bytes.retain(|h, _| !dropped.contains(h));
        let still_waiting: Vec<ChangeHash> = outbox.into_iter().filter(|h| !dropped.contains(h)).collect();
        if !still_waiting.is_empty() {
            self.outbox.insert(id, still_waiting);
        }
        if keep.is_empty() {
            self.docs.remove(&id);
        } else {
            let mut fresh = Automerge::new();
            if let Some(actor) = self.actor() {
                fresh.set_actor(actor);
            }
            fresh.apply_changes(keep).map_err(corrupt)?;
            self.docs.insert(id, LocalDoc::new(fresh));
        }
        Ok(summary)
    }
}

/// A one-line description of a record for lists and rejection notices.
pub fn summarize(record: &Record) -> String {
    let text = match record {
        Record::Household(h) => format!("{} {}", h.fields.head, h.fields.address),
        Record::VisitLog(v) => v.fields.notes.chars().take(30).collect(),
        Record::Case(c) => c.fields.title.clone(),
        Record::Promise(p) => p.fields.content.chars().take(30).collect(),
    };
    format!("{}：{}", record.kind().name_zh(), text.trim())
}
