//! The phone's offline replica of its territory's records, and its sync engine.
//!
//! Everything here is plain Rust over bytes: the replica keeps documents, the
//! outbox of unacknowledged changes and the sync cursor; the engine builds a
//! sync request and applies a response, and the caller moves the bytes (fetch in
//! the browser, an HTTP client in tests). The same code runs natively, so the
//! tests simulate many phones with exactly what a phone runs.
//!
//! # Layout
//!
//! - [`storage`]: the storage trait, with in-memory and on-disk implementations.
//! - [`replica`]: the local records, edits, and what waits to be synced.
//! - [`engine`]: building sync requests and applying responses (sans-IO).
//! - [`directory`]: the names of people and territories kept offline, and which
//!   records others changed.
//! - `web` (wasm32 only): the wasm-bindgen API the phone app calls, and the
//!   IndexedDB-backed storage.

mod chunks;
pub mod directory;
pub mod engine;
mod local_doc;
mod order;
pub mod replica;
pub mod storage;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use engine::SyncReport;
pub use replica::{RejectedRecord, Replica, ReplicaError};
pub use storage::{FileStorage, MemoryStorage, Storage, StorageError, StoreOp};
