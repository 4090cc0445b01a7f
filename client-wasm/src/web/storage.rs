//! IndexedDB behind the [`Storage`] trait. The app reads every entry once at
//! start and hands them over; each commit is passed, in order, to a JS
//! callback that writes the batch in one IndexedDB transaction and returns the
//! batch's number. IndexedDB runs transactions in the order they were created,
//! so later reads see every earlier write; the app waits for the transactions
//! to complete before it tells the person a record is saved, and reports a
//! failed one by its number (see `Phone::write_failed`).

use crate::storage::{Storage, StorageError, StoreOp};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

/// Storage whose writes go to IndexedDB through the app's `persist` callback.
pub struct IndexedDbStorage {
    /// Handed over once, when the replica opens (not kept twice in memory).
    initial: RefCell<Vec<(String, Vec<u8>)>>,
    persist: js_sys::Function,
    last_batch: f64,
}

impl IndexedDbStorage {
    /// From the entries read at start (`[key, Uint8Array]` pairs) and the write callback.
    pub fn new(entries: js_sys::Array, persist: js_sys::Function) -> Result<Self, JsError> {
        let mut initial = Vec::with_capacity(entries.length() as usize);
        for entry in entries.iter() {
            let pair = js_sys::Array::from(&entry);
            let key = pair.get(0).as_string().ok_or_else(|| JsError::new("stored key is not a string"))?;
            let value = js_sys::Uint8Array::new(&pair.get(1)).to_vec();
            initial.push((key, value));
        }
        Ok(Self { initial: RefCell::new(initial), persist, last_batch: -1.0 })
    }

    /// The same write callback over other entries read at start (a reload from disk).
    pub(crate) fn reopened(&self, entries: js_sys::Array) -> Result<Self, JsError> {
        Ok(Self { last_batch: self.last_batch, ..Self::new(entries, self.persist.clone())? })
    }

    /// The number the callback gave the last batch it accepted (-1 before any).
    pub(crate) fn last_batch(&self) -> f64 {
        self.last_batch
    }
}

impl Storage for IndexedDbStorage {
    fn load_all(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        Ok(self.initial.take())
    }

    fn commit(&mut self, ops: Vec<StoreOp>) -> Result<(), StorageError> {
        let batch = js_sys::Array::new();
        for op in ops {
            let pair = js_sys::Array::new();
            match op {
                StoreOp::Put { key, value } => {
                    pair.push(&JsValue::from_str(&key));
                    pair.push(&js_sys::Uint8Array::from(value.as_slice()));
                }
                StoreOp::Delete { key } => {
                    pair.push(&JsValue::from_str(&key));
                    pair.push(&JsValue::NULL);
                }
            }
            batch.push(&pair);
        }
        // The callback throws when it cannot start the write (e.g. after an
        // earlier write failed): its message, in Chinese, is for the person.
        let number = self.persist.call1(&JsValue::NULL, &batch).map_err(|e| {
            let message = e
                .as_string()
                .or_else(|| e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())))
                .unwrap_or_else(|| "IndexedDB write failed".into());
            StorageError::Host(message)
        })?;
        if let Some(n) = number.as_f64() {
            self.last_batch = n;
        }
        Ok(())
    }
}
