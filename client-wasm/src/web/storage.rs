//! IndexedDB behind the [`Storage`] trait. The app reads every entry once at
//! start and hands them over; each commit is passed, in order, to a JS
//! callback that writes the batch in one IndexedDB transaction. IndexedDB runs
//! transactions in the order they were created, so later reads see every
//! earlier write; the app waits for the transactions to complete before it
//! tells the person a record is saved.

use crate::storage::{Storage, StorageError, StoreOp};
use wasm_bindgen::prelude::*;

/// Storage whose writes go to IndexedDB through the app's `persist` callback.
pub struct IndexedDbStorage {
    initial: Vec<(String, Vec<u8>)>,
    persist: js_sys::Function,
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
        Ok(Self { initial, persist })
    }
}

impl Storage for IndexedDbStorage {
    fn load_all(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        Ok(self.initial.clone())
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
        self.persist
            .call1(&JsValue::NULL, &batch)
            .map(|_| ())
            .map_err(|e| StorageError::Host(e.as_string().unwrap_or_else(|| "IndexedDB write failed".into())))
    }
}
