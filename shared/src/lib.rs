//! gridsync's shared core: what the phone and the server must agree on, defined once.
//!
//! Every household, visit log, case and promise is one Automerge document. This
//! crate says how each record maps onto its document, which changes are allowed
//! (by whom, where, and how records merge), and what the sync messages are. It does
//! no I/O and compiles for native targets and for `wasm32-unknown-unknown`.
//!
//! # Layout
//!
//! - [`ids`]: identifiers of records, people and devices, and their Automerge actors.
//! - [`territory`]: the territory tree (city > district > sub-district > community > grid).
//! - [`roles`]: field staff, supervisors and administrators, and who may do what.
//! - [`workflow`]: a case's status steps and how concurrent moves settle.
//! - [`records`]: the record types, reading them from documents and editing them.
//! - [`rules`]: the validation the server runs on every pushed change.
//! - [`protocol`]: the sync request and response, and their binary encoding.
//! - [`reports`]: the figures administrators report, per grid, community and territory.
//! - [`masking`]: masking of residents' ID and phone numbers in exports and screens.
//! - [`directory`]: the names of people and territories in a person's scope.
//! - [`photos`]: photos as evidence: references in records, and what a photo's bytes must be.
//! - [`imports`]: the city's spreadsheets: template columns and row checks for bulk imports.

pub mod directory;
pub mod ids;
pub mod imports;
pub mod masking;
pub mod photos;
pub mod protocol;
pub mod records;
pub mod reports;
pub mod roles;
pub mod rules;
pub mod territory;
pub mod workflow;

pub use ids::{DeviceId, DocId, PersonId};
pub use records::{Record, RecordKind};
pub use roles::{Author, Role};
pub use territory::TerritoryPath;
