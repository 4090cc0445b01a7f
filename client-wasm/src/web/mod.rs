//! The phone app's API to the replica, via wasm-bindgen: a thin layer that
//! decodes JS values, calls the replica, and encodes results. Records cross
//! as plain JS objects shaped like the shared crate's serde types.

mod directory;
mod fields;
mod photos;
mod records;
mod storage;
mod sync;
mod views;

pub use storage::IndexedDbStorage;

use crate::replica::{Replica, ReplicaError};
use automerge::ChangeHash;
use gridsync_shared::DocId;
use gridsync_shared::protocol::DeviceRegistration;
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// The phone's replica, as the app sees it.
#[wasm_bindgen]
pub struct Phone {
    replica: Replica<IndexedDbStorage>,
    /// Edits whose IndexedDB write has not completed yet, oldest first: if
    /// the write fails (a full phone), they are taken back out of memory.
    unconfirmed: Vec<Unconfirmed>,
}

/// One edit waiting for its write: enough to take it back.
struct Unconfirmed {
    /// The number `persist` gave its batch.
    batch: f64,
    doc: DocId,
    /// The changes it made.
    changes: Vec<ChangeHash>,
    /// The document's heads before it; None for a new record.
    before: Option<Vec<ChangeHash>>,
}

/// What an edit started from (see [`Phone::journaled`]).
struct EditStart {
    batch: f64,
    before: Option<Vec<ChangeHash>>,
    outbox: Vec<ChangeHash>,
}

pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsError> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| JsError::new(&e.to_string()))
}

/// Reads sign-in's device registration `{device, token, actor, person, name,
/// role, territory}` by hand (the fields serde's derive took, others ignored),
/// without a serde-wasm-bindgen decoder for it in the wasm.
fn read_registration(value: &JsValue) -> Result<DeviceRegistration, String> {
    use directory::{parsed, role, text};
    if !value.is_object() {
        return Err("expected a device registration object".into());
    }
    let at = "registration";
    Ok(DeviceRegistration {
        device: parsed(value, at, "device")?,
        token: text(value, at, "token")?,
        actor: text(value, at, "actor")?,
        person: parsed(value, at, "person")?,
        name: text(value, at, "name")?,
        role: role(value, at)?,
        territory: parsed(value, at, "territory")?,
    })
}

pub(crate) fn js_err(e: ReplicaError) -> JsError {
    match e {
        // The app's own message for a refused write, as it gave it.
        ReplicaError::Storage(crate::storage::StorageError::Host(message)) => JsError::new(&message),
        e => JsError::new(&e.to_string()),
    }
}

#[wasm_bindgen]
impl Phone {
    /// Opens the replica from the entries read out of IndexedDB (an array of
    /// `[key, Uint8Array]`); `persist(ops)` is called with each batch of writes
    /// (`[key, Uint8Array | null]`, in order) and must queue them in IndexedDB.
    pub fn open(entries: js_sys::Array, persist: js_sys::Function) -> Result<Phone, JsError> {
        let storage = IndexedDbStorage::new(entries, persist)?;
        Ok(Phone { replica: Replica::open(storage).map_err(js_err)?, unconfirmed: Vec::new() })
    }

    /// Replaces the replica in memory with what storage holds (`entries` read
    /// again from IndexedDB), after a write failed: from then on memory shows
    /// nothing that was not saved. The write callback stays the same.
    pub fn reload(&mut self, entries: js_sys::Array) -> Result<(), JsError> {
        let storage = self.replica.storage().reopened(entries)?;
        self.replica = Replica::open(storage).map_err(js_err)?;
        self.unconfirmed.clear();
        Ok(())
    }

    /// The write numbered `batch` (and so every later one) failed: takes the
    /// edits written in them back out of memory, newest first, so the phone
    /// neither shows nor sends them. Returns how many were taken back. The
    /// app then reloads the replica from disk where it can (a sync's writes
    /// cannot be taken back one by one).
    #[wasm_bindgen(js_name = writeFailed)]
    pub fn write_failed(&mut self, batch: f64) -> usize {
        let mut undone = 0;
        while let Some(u) = self.unconfirmed.pop_if(|u| u.batch >= batch) {
            self.replica.forget_unsaved(u.doc, &u.changes, u.before.as_deref());
            undone += 1;
        }
        undone
    }

    /// The write numbered `batch` (and every earlier one) is on disk.
    #[wasm_bindgen(js_name = writeDone)]
    pub fn write_done(&mut self, batch: f64) {
        self.unconfirmed.retain(|u| u.batch > batch);
    }

    /// Keeps the device registration returned by sign-in.
    pub fn register(&mut self, registration: JsValue) -> Result<(), JsError> {
        let reg = read_registration(&registration).map_err(|e| JsError::new(&format!("invalid input: {e}")))?;
        self.replica.register(reg).map_err(js_err)
    }

    /// Takes in the territory the server says the person works in now
    /// (`GET /v1/me`): after a move, records outside it leave the phone once
    /// nothing of them waits to be pushed. Returns how many left.
    #[wasm_bindgen(js_name = updateTerritory)]
    pub fn update_territory(&mut self, territory: &str) -> Result<usize, JsError> {
        let territory =
            territory.parse().map_err(|e: gridsync_shared::territory::TerritoryError| JsError::new(&e.to_string()))?;
        self.replica.update_territory(territory).map_err(js_err)
    }

    /// The device registration (with token), or null before sign-in.
    pub fn identity(&self) -> Result<JsValue, JsError> {
        to_js(&self.replica.identity())
    }

    /// Whether this device keeps its person's territory's records offline
    /// (the shared rule `roles::keeps_replica`): false for an administrator
    /// over a sub-district or more, whose app works online.
    #[wasm_bindgen(js_name = keepsReplica)]
    pub fn keeps_replica(&self) -> bool {
        self.replica.identity().is_none_or(|r| gridsync_shared::roles::keeps_replica(r.role, &r.territory))
    }

    /// How many local changes wait for the server.
    #[wasm_bindgen(js_name = pendingChanges)]
    pub fn pending_changes(&self) -> usize {
        self.replica.pending_changes()
    }

    /// How many records have changes waiting for the server (a record edited
    /// three times counts once): what the app calls 待同步.
    #[wasm_bindgen(js_name = pendingRecords)]
    pub fn pending_records(&self) -> usize {
        self.replica.outbox().filter(|(_, changes)| !changes.is_empty()).count()
    }

    /// When the last sync succeeded (Unix ms), or undefined.
    #[wasm_bindgen(js_name = lastSyncAt)]
    pub fn last_sync_at(&self) -> Option<f64> {
        self.replica.last_sync_at().map(|t| t as f64)
    }

    /// Records the server refused, each with its reason in Chinese.
    pub fn rejections(&self) -> Result<JsValue, JsError> {
        #[derive(Serialize)]
        struct Shown<'a> {
            doc: String,
            summary: &'a str,
            reason: &'static str,
            message: &'static str,
            detail: &'a str,
            at: i64,
            kept: Option<&'a str>,
        }
        let shown: Vec<Shown> = self
            .replica
            .rejections()
            .map(|r| Shown {
                doc: r.doc.to_string(),
                summary: &r.summary,
                reason: r.rejection.reason.code(),
                message: r.rejection.reason.message_zh(),
                detail: &r.rejection.detail,
                at: r.at,
                kept: r.kept.as_deref(),
            })
            .collect();
        to_js(&shown)
    }

    /// Forgets a rejection once the person has seen it.
    #[wasm_bindgen(js_name = dismissRejection)]
    pub fn dismiss_rejection(&mut self, id: &str) -> Result<(), JsError> {
        let id = id.parse().map_err(|_| JsError::new("not a record id"))?;
        self.replica.dismiss_rejection(id).map_err(js_err)
    }
}

impl Phone {
    /// Notes what an edit of `doc` (None: a new record) starts from.
    fn edit_start(&self, doc: Option<DocId>) -> EditStart {
        EditStart {
            batch: self.replica.storage().last_batch(),
            before: doc.and_then(|id| self.replica.document(id)).map(|d| d.get_heads()),
            outbox: doc.and_then(|id| self.replica.outbox.get(&id)).cloned().unwrap_or_default(),
        }
    }

    /// After a successful edit of `doc`: if it wrote a batch, remembers how to
    /// take it back until the write is known to be on disk.
    fn edit_done(&mut self, doc: DocId, start: EditStart) {
        let batch = self.replica.storage().last_batch();
        if batch == start.batch {
            return;
        }
        let changes: Vec<ChangeHash> = self
            .replica
            .outbox
            .get(&doc)
            .map(|now| now.iter().filter(|h| !start.outbox.contains(h)).copied().collect())
            .unwrap_or_default();
        self.unconfirmed.push(Unconfirmed { batch, doc, changes, before: start.before });
    }

    /// Runs an edit of an existing record, journaled (see [`Phone::write_failed`]).
    pub(crate) fn journaled<T>(
        &mut self,
        doc: DocId,
        f: impl FnOnce(&mut Replica<IndexedDbStorage>) -> Result<T, ReplicaError>,
    ) -> Result<T, JsError> {
        let start = self.edit_start(Some(doc));
        let out = f(&mut self.replica).map_err(js_err)?;
        self.edit_done(doc, start);
        Ok(out)
    }

    /// Runs the creation of a record, journaled (see [`Phone::write_failed`]).
    pub(crate) fn journaled_create(
        &mut self,
        f: impl FnOnce(&mut Replica<IndexedDbStorage>) -> Result<DocId, ReplicaError>,
    ) -> Result<DocId, JsError> {
        let start = self.edit_start(None);
        let id = f(&mut self.replica).map_err(js_err)?;
        self.edit_done(id, start);
        Ok(id)
    }
}
