//! The phone app's API to the replica, via wasm-bindgen: a thin layer that
//! decodes JS values, calls the replica, and encodes results. Records cross
//! as plain JS objects shaped like the shared crate's serde types.

mod records;
mod storage;
mod sync;

pub use storage::IndexedDbStorage;

use crate::replica::{Replica, ReplicaError};
use gridsync_shared::protocol::DeviceRegistration;
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// The phone's replica, as the app sees it.
#[wasm_bindgen]
pub struct Phone {
    replica: Replica<IndexedDbStorage>,
}

pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsError> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| JsError::new(&e.to_string()))
}

pub(crate) fn from_js<T: serde::de::DeserializeOwned>(value: JsValue) -> Result<T, JsError> {
    serde_wasm_bindgen::from_value(value).map_err(|e| JsError::new(&format!("invalid input: {e}")))
}

pub(crate) fn js_err(e: ReplicaError) -> JsError {
    JsError::new(&e.to_string())
}

#[wasm_bindgen]
impl Phone {
    /// Opens the replica from the entries read out of IndexedDB (an array of
    /// `[key, Uint8Array]`); `persist(ops)` is called with each batch of writes
    /// (`[key, Uint8Array | null]`, in order) and must queue them in IndexedDB.
    pub fn open(entries: js_sys::Array, persist: js_sys::Function) -> Result<Phone, JsError> {
        let storage = IndexedDbStorage::new(entries, persist)?;
        Ok(Phone { replica: Replica::open(storage).map_err(js_err)? })
    }

    /// Keeps the device registration returned by sign-in.
    pub fn register(&mut self, registration: JsValue) -> Result<(), JsError> {
        let reg: DeviceRegistration = from_js(registration)?;
        self.replica.register(reg).map_err(js_err)
    }

    /// The device registration (with token), or null before sign-in.
    pub fn identity(&self) -> Result<JsValue, JsError> {
        to_js(&self.replica.identity())
    }

    /// How many local changes wait for the server.
    #[wasm_bindgen(js_name = pendingChanges)]
    pub fn pending_changes(&self) -> usize {
        self.replica.pending_changes()
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
