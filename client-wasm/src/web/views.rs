//! View queries the phone's screens run on every keystroke or page: answered
//! here so that a grid of thousands of households stays fast. The household
//! index (pickers, the household list) is cached per document and rebuilt only
//! for documents whose stored bytes changed; the app keeps it across restarts.

use super::records::{Listed, listed, parse_id};
use super::{Phone, to_js};
use gridsync_shared::{DocId, Record, RecordKind};
use js_sys::{Array, Reflect};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::HashMap;
use wasm_bindgen::prelude::*;

/// One household as lists and pickers show and search it.
#[derive(Debug, Serialize)]
struct HouseholdRow {
    id: String,
    grid: String,
    head: String,
    address: String,
    phone: String,
    /// Members' names.
    members: Vec<String>,
    /// Members' phone numbers (for searching by a phone's last digits).
    member_phones: Vec<String>,
    tags: Vec<String>,
    /// True once the household is voided (作废).
    voided: bool,
}

impl HouseholdRow {
    fn of(id: DocId, record: &Record) -> Option<Self> {
        let Record::Household(h) = record else { return None };
        let f = &h.fields;
        Some(HouseholdRow {
            id: id.to_string(),
            grid: h.meta.grid.to_string(),
            head: f.head.clone(),
            address: f.address.clone(),
            phone: f.phone.clone(),
            members: f.members.iter().map(|m| m.name.clone()).collect(),
            member_phones: f.members.iter().map(|m| m.phone.clone()).filter(|p| !p.is_empty()).collect(),
            tags: f.tags.clone(),
            voided: record.voided().is_some(),
        })
    }
}

/// The cached rows, each with the fingerprint of the stored bytes it was read from.
#[derive(Default)]
struct Index {
    rows: HashMap<DocId, (u64, HouseholdRow)>,
}

thread_local! {
    // The browser runs the replica on one thread; one phone per page.
    static INDEX: RefCell<Index> = RefCell::new(Index::default());
}

/// A fast 64-bit fingerprint of a document's stored bytes (not cryptographic:
/// it only tells whether a cached row may be stale).
fn fingerprint(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h.rotate_left(5) ^ word).wrapping_mul(K);
    }
    for &b in chunks.remainder() {
        h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
    }
    h
}

/// What [`Phone::household_index`] answers.
#[derive(Serialize)]
struct IndexAnswer<'a> {
    rows: Vec<&'a HouseholdRow>,
    /// True if any row was read again or dropped (the app then saves the index).
    changed: bool,
}

/// The saved form of the index: `[id, fingerprint (hex), row]`.
type SavedRow<'a> = (String, String, &'a HouseholdRow);

/// Reads one saved entry `[id, fingerprint (hex), row]` back, or None if any
/// part of it is missing or of the wrong type. Read by hand rather than by a
/// serde visitor: this runs once per start and the visitor cost ~8 KB of wasm.
fn saved_row(entry: &JsValue) -> Option<(DocId, u64, HouseholdRow)> {
    let entry = entry.dyn_ref::<Array>()?;
    let id = entry.get(0).as_string()?.parse::<DocId>().ok()?;
    let fp = u64::from_str_radix(&entry.get(1).as_string()?, 16).ok()?;
    let row = entry.get(2);
    if !row.is_object() {
        return None;
    }
    let field = |name: &str| Reflect::get(&row, &JsValue::from_str(name)).ok();
    let text = |name: &str| field(name)?.as_string();
    let texts = |name: &str| -> Option<Vec<String>> {
        field(name)?.dyn_ref::<Array>()?.iter().map(|v| v.as_string()).collect()
    };
    let row = HouseholdRow {
        id: text("id")?,
        grid: text("grid")?,
        head: text("head")?,
        address: text("address")?,
        phone: text("phone")?,
        members: texts("members")?,
        member_phones: texts("member_phones")?,
        tags: texts("tags")?,
        voided: field("voided")?.as_bool()?,
    };
    Some((id, fp, row))
}

fn parse_kind(kind: &str) -> Result<RecordKind, JsError> {
    kind.parse().map_err(|e: String| JsError::new(&e))
}

fn listed_all<'a>(records: impl Iterator<Item = &'a (DocId, Record)>) -> Vec<Listed<'a>> {
    records.map(|(id, r)| listed(*id, r)).collect()
}

/// What [`Phone::recent`] answers.
#[derive(Serialize)]
struct Page<'a> {
    records: Vec<Listed<'a>>,
    /// True if older records remain (ask again with `before`).
    more: bool,
}

#[wasm_bindgen]
impl Phone {
    /// The records about one household (`kind`: `visit_log`, `case`,
    /// `promise`, or all when absent), newest first, as [`Phone::records`]
    /// lists them; only these are parsed.
    #[wasm_bindgen(js_name = recordsOf)]
    pub fn records_of(&self, household: &str, kind: Option<String>) -> Result<JsValue, JsError> {
        let kind = kind.as_deref().map(parse_kind).transpose()?;
        let all: Vec<(DocId, Record)> = self.replica.records_about(parse_id(household)?, kind).collect();
        to_js(&listed_all(all.iter().rev()))
    }

    /// `{records, more}`: the `limit` newest records of `kind` by their time
    /// (a visit's time, else creation) before `before` (Unix ms; any time when
    /// absent), newest first, and whether older ones remain. Only the page is parsed.
    pub fn recent(&self, kind: &str, limit: u32, before: Option<f64>) -> Result<JsValue, JsError> {
        let (page, more) = self.replica.recent(parse_kind(kind)?, before.map(|b| b as i64), limit as usize);
        to_js(&Page { records: listed_all(page.iter()), more })
    }

    /// The records of `kind` whose time (as in [`Phone::recent`]) falls in
    /// `from..to` (Unix ms), oldest first: a diary's days parse only their own.
    pub fn between(&self, kind: &str, from: f64, to: f64) -> Result<JsValue, JsError> {
        let all = self.replica.records_between(parse_kind(kind)?, from as i64, to as i64);
        to_js(&listed_all(all.iter()))
    }

    /// Every household on the phone as a small row `{id, grid, head, address,
    /// phone, members, member_phones, tags, voided}`, newest first, and whether
    /// the index changed. Only households whose stored bytes changed since the
    /// last call (or the seed) are read again.
    #[wasm_bindgen(js_name = householdIndex)]
    pub fn household_index(&mut self) -> Result<JsValue, JsError> {
        INDEX.with_borrow_mut(|index| {
            let mut changed = false;
            let mut seen = Vec::new();
            for (id, doc) in self.replica.docs.iter_mut() {
                if doc.kind() != Some(RecordKind::Household) {
                    continue;
                }
                let fp = fingerprint(&doc.encode());
                seen.push(*id);
                if index.rows.get(id).is_some_and(|(f, _)| *f == fp) {
                    continue;
                }
                match doc.record().and_then(|r| HouseholdRow::of(*id, &r)) {
                    Some(row) => {
                        index.rows.insert(*id, (fp, row));
                    }
                    None => {
                        index.rows.remove(id);
                    }
                }
                changed = true;
            }
            let before = index.rows.len();
            // `seen` is in id order (the documents' map): searched, not hashed.
            index.rows.retain(|id, _| seen.binary_search(id).is_ok());
            changed |= index.rows.len() != before;
            let rows = seen.iter().rev().filter_map(|id| index.rows.get(id).map(|(_, r)| r)).collect();
            to_js(&IndexAnswer { rows, changed })
        })
    }

    /// The index as the app saves it between runs (localStorage).
    #[wasm_bindgen(js_name = householdIndexState)]
    pub fn household_index_state(&self) -> Result<JsValue, JsError> {
        INDEX.with_borrow(|index| {
            let saved: Vec<SavedRow> =
                index.rows.iter().map(|(id, (fp, row))| (id.to_string(), format!("{fp:016x}"), row)).collect();
            to_js(&saved)
        })
    }

    /// Takes in an index saved by an earlier run; rows whose document has
    /// changed since are read again at the next [`Phone::household_index`].
    /// Anything but a list is refused; malformed entries are skipped.
    #[wasm_bindgen(js_name = seedHouseholdIndex)]
    pub fn seed_household_index(&mut self, saved: JsValue) -> Result<usize, JsError> {
        let saved =
            saved.dyn_into::<Array>().map_err(|_| JsError::new("invalid input: the saved index is not a list"))?;
        INDEX.with_borrow_mut(|index| {
            let mut taken = 0;
            for (id, fp, row) in saved.iter().filter_map(|entry| saved_row(&entry)) {
                index.rows.entry(id).or_insert_with(|| {
                    taken += 1;
                    (fp, row)
                });
            }
            Ok(taken)
        })
    }
}
