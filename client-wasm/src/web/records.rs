//! Reading and editing records from the app. Every edit goes through the
//! replica and the shared editor, so the app cannot make a change the server
//! would refuse for reasons the phone can know.

use super::{Phone, fields, to_js};
use crate::replica::summarize;
use gridsync_shared::records::{FieldConflict, FieldValue, Member, NewRecord, Satisfaction};
use gridsync_shared::workflow::{CaseStatus, StatusMove, possible_moves};
use gridsync_shared::{DocId, PersonId, Record, RecordKind, TerritoryPath};
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// A record as the app lists it.
#[derive(Serialize)]
pub(super) struct Listed<'a> {
    id: String,
    summary: String,
    /// For cases: the current step and its Chinese name.
    status: Option<&'static str>,
    status_name: Option<&'static str>,
    /// For cases: who the case is assigned to (交办), a person id, or `null`.
    assignee: Option<String>,
    /// `null`, or who voided the record (作废), when and why.
    voided: Option<Voided<'a>>,
    /// Single-valued fields changed by two people at once: `[{field, values}]`,
    /// the shown value first (choose one with `resolveConflict`).
    conflicts: &'a [FieldConflict],
    record: &'a Record,
}

/// A void as the app shows it.
#[derive(Serialize)]
struct Voided<'a> {
    by: String,
    at: i64,
    reason: &'a str,
}

pub(super) fn parse_id(id: &str) -> Result<DocId, JsError> {
    id.parse().map_err(|_| JsError::new("not a record id"))
}

pub(super) fn listed(id: DocId, record: &Record) -> Listed<'_> {
    let standing = match record {
        Record::Case(c) => Some(c.standing().status),
        _ => None,
    };
    Listed {
        id: id.to_string(),
        summary: summarize(record),
        status: standing.map(CaseStatus::as_str),
        status_name: standing.map(CaseStatus::name_zh),
        assignee: match record {
            Record::Case(c) => c.assignee().map(|p| p.to_string()),
            _ => None,
        },
        voided: record.voided().map(|v| Voided { by: v.by.to_string(), at: v.at, reason: &v.reason }),
        conflicts: record.conflicts(),
        record,
    }
}

/// A refused input, as the app sees it.
fn invalid(e: String) -> JsError {
    JsError::new(&format!("invalid input: {e}"))
}

/// Reads `{type, ...fields}` as the fields of that kind of record: the same
/// shapes serde's tagged `NewRecord` took (other keys ignored), without the
/// buffering a tagged enum's derive needs (~10 KB of WebAssembly).
fn new_record(new: JsValue) -> Result<NewRecord, JsError> {
    let kind = js_sys::Reflect::get(&new, &JsValue::from_str("type")).ok().and_then(|t| t.as_string());
    let Some(kind) = kind else { return Err(JsError::new("invalid input: missing field `type`")) };
    let kind: RecordKind = kind.parse().map_err(|e: String| JsError::new(&format!("invalid input: {e}")))?;
    Ok(match kind {
        RecordKind::Household => fields::household(&new).map(NewRecord::Household),
        RecordKind::VisitLog => fields::visit(&new).map(NewRecord::VisitLog),
        RecordKind::Case => fields::case(&new).map(NewRecord::Case),
        RecordKind::Promise => fields::promise(&new).map(NewRecord::Promise),
    }
    .map_err(invalid)?)
}

/// The fields `updateMember` changes; None leaves a field as it is.
struct MemberPatch {
    name: Option<String>,
    relation: Option<String>,
    id_number: Option<String>,
    phone: Option<String>,
    tags: Option<Vec<String>>,
}

/// Reads `updateMember`'s fields by hand, as serde's derive with
/// `deny_unknown_fields` did: an object whose keys are among `name`,
/// `relation`, `id_number`, `phone` (text) and `tags` (a list of text), each
/// absent, null or undefined for "unchanged"; any other key is refused.
fn member_patch(value: &JsValue) -> Result<MemberPatch, String> {
    const KEYS: [&str; 5] = ["name", "relation", "id_number", "phone", "tags"];
    let Some(object) = value.dyn_ref::<js_sys::Object>().filter(|_| !js_sys::Array::is_array(value)) else {
        return Err("expected an object of member fields".into());
    };
    for key in js_sys::Object::keys(object).iter() {
        let key = key.as_string().unwrap_or_default();
        if !KEYS.contains(&key.as_str()) {
            return Err(format!(
                "unknown field `{key}`, expected one of `name`, `relation`, `id_number`, `phone`, `tags`"
            ));
        }
    }
    let get = |key: &str| {
        js_sys::Reflect::get(value, &JsValue::from_str(key)).ok().filter(|v| !v.is_null() && !v.is_undefined())
    };
    let text = |key: &str| match get(key) {
        None => Ok(None),
        Some(v) => v.as_string().map(Some).ok_or_else(|| format!("`{key}`: expected text")),
    };
    let tags = match get("tags") {
        None => None,
        Some(v) if js_sys::Array::is_array(&v) => Some(
            js_sys::Array::from(&v)
                .iter()
                .map(|t| t.as_string().ok_or_else(|| "`tags`: expected a list of text".to_string()))
                .collect::<Result<Vec<String>, String>>()?,
        ),
        Some(_) => return Err("`tags`: expected a list of text".into()),
    };
    Ok(MemberPatch {
        name: text("name")?,
        relation: text("relation")?,
        id_number: text("id_number")?,
        phone: text("phone")?,
        tags,
    })
}

#[wasm_bindgen]
impl Phone {
    /// Every record, or those of one kind (`household`, `visit_log`, `case`,
    /// `promise`), newest first.
    pub fn records(&self, kind: Option<String>) -> Result<JsValue, JsError> {
        let kind = kind.map(|k| k.parse::<gridsync_shared::RecordKind>().map_err(|e| JsError::new(&e))).transpose()?;
        let all: Vec<(DocId, Record)> = self.replica.records_of(kind).collect();
        let out: Vec<Listed> = all.iter().rev().map(|(id, r)| listed(*id, r)).collect();
        to_js(&out)
    }

    /// `{household id: last visit time (ms)}` for every visited household,
    /// without parsing the visit logs.
    #[wasm_bindgen(js_name = lastVisits)]
    pub fn last_visits(&self) -> Result<JsValue, JsError> {
        // Built directly (in id order, as before): no map serializer in the wasm.
        let out = js_sys::Object::new();
        for (household, at) in self.replica.last_visits() {
            js_sys::Reflect::set(&out, &JsValue::from_str(&household.to_string()), &JsValue::from_f64(at as f64))
                .map_err(|_| JsError::new("lastVisits: could not build the result"))?;
        }
        Ok(out.into())
    }

    /// `[[visit log id, visit time (ms)], ...]` for every visit log, without
    /// parsing them: a day's screen reads only that day's visits.
    #[wasm_bindgen(js_name = visitTimes)]
    pub fn visit_times(&self) -> Result<JsValue, JsError> {
        let times: Vec<(String, f64)> =
            self.replica.visit_times().map(|(id, at)| (id.to_string(), at as f64)).collect();
        to_js(&times)
    }

    /// One record, or null.
    pub fn record(&self, id: &str) -> Result<JsValue, JsError> {
        let id = parse_id(id)?;
        match self.replica.record(id) {
            Some(r) => to_js(&listed(id, &r)),
            None => Ok(JsValue::NULL),
        }
    }

    /// A fresh record id (UUID v7) for a form to keep from the moment it
    /// opens and pass to [`Phone::create`], so a repeated submit updates the
    /// same record. `now` (Unix ms) defaults to the phone's clock.
    #[wasm_bindgen(js_name = newId)]
    pub fn new_id(&self, now: Option<f64>) -> String {
        let now = now.unwrap_or_else(js_sys::Date::now);
        crate::replica::Replica::<super::IndexedDbStorage>::new_id(now as i64).to_string()
    }

    /// Creates a record from `{type: "household" | "visit_log" | "case" |
    /// "promise", ...fields}` in `grid` (or the person's own grid); returns its
    /// id. With `id` (from [`Phone::new_id`]), creating again with the same id
    /// writes the fields over that same record instead of making a second one.
    pub fn create(
        &mut self,
        new: JsValue,
        grid: Option<String>,
        now: f64,
        id: Option<String>,
    ) -> Result<String, JsError> {
        let new = new_record(new)?;
        let grid = grid.map(|g| g.parse::<TerritoryPath>().map_err(|e| JsError::new(&e.to_string()))).transpose()?;
        let now = now as i64;
        let id = match id.filter(|s| !s.is_empty()) {
            None => return self.journaled_create(|r| r.create(grid.as_ref(), now, &new)).map(|id| id.to_string()),
            Some(id) => parse_id(&id)?,
        };
        if self.replica.holds(id) {
            self.journaled(id, |r| r.create_with_id(id, grid.as_ref(), now, &new))?;
        } else {
            self.journaled_create(|r| r.create_with_id(id, grid.as_ref(), now, &new))?;
        }
        Ok(id.to_string())
    }

    /// Replaces a record's editable fields (text merges by diff).
    pub fn update(&mut self, id: &str, fields: JsValue, now: f64) -> Result<(), JsError> {
        let id = parse_id(id)?;
        let kind = self.replica.record(id).map(|r| r.kind()).ok_or_else(|| JsError::new("no such record"))?;
        use gridsync_shared::RecordKind as K;
        match kind {
            K::Household => {
                let f = fields::household(&fields).map_err(invalid)?;
                self.journaled(id, |r| r.edit(id, now as i64, |e| e.update_household(&f)))
            }
            K::VisitLog => {
                let f = fields::visit(&fields).map_err(invalid)?;
                self.journaled(id, |r| r.edit(id, now as i64, |e| e.update_visit(&f)))
            }
            K::Case => {
                let f = fields::case(&fields).map_err(invalid)?;
                self.journaled(id, |r| r.edit(id, now as i64, |e| e.update_case(&f)))
            }
            K::Promise => {
                let f = fields::promise(&fields).map_err(invalid)?;
                self.journaled(id, |r| r.edit(id, now as i64, |e| e.update_promise(&f)))
            }
        }
        .map(|_| ())
    }

    /// Adds a follow-up to a case; `satisfaction` is `satisfied`, `basic` or `dissatisfied` on a return visit.
    #[wasm_bindgen(js_name = addFollowUp)]
    pub fn add_follow_up(
        &mut self,
        id: &str,
        note: &str,
        satisfaction: Option<String>,
        now: f64,
    ) -> Result<(), JsError> {
        let id = parse_id(id)?;
        let satisfaction = satisfaction
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<Satisfaction>().map_err(|e| JsError::new(&e)))
            .transpose()?;
        self.journaled(id, |r| r.edit(id, now as i64, |e| e.add_follow_up(note, satisfaction))).map(|_| ())
    }

    /// The moves this person may make on a case now: `[{kind, to, name}]`.
    #[wasm_bindgen(js_name = caseMoves)]
    pub fn case_moves(&self, id: &str) -> Result<JsValue, JsError> {
        #[derive(Serialize)]
        struct Move {
            kind: &'static str,
            to: &'static str,
            name: &'static str,
            /// True for 交办: `moveCase` must name the assignee.
            needs_assignee: bool,
        }
        let id = parse_id(id)?;
        let Some(Record::Case(case)) = self.replica.record(id) else { return Err(JsError::new("not a case")) };
        let role = self.replica.identity().map(|i| i.role).ok_or_else(|| JsError::new("not signed in"))?;
        let moves: Vec<Move> = possible_moves(case.standing(), role)
            .into_iter()
            .map(|(kind, to)| Move {
                kind: if kind == StatusMove::Advance { "advance" } else { "reopen" },
                to: to.as_str(),
                name: to.name_zh(),
                needs_assignee: kind == StatusMove::Advance && to == CaseStatus::Assigned,
            })
            .collect();
        to_js(&moves)
    }

    /// Moves a case forward to `to`; the move to `assigned` (交办) names the
    /// person it is handed to (`assignee`, a person id from the directory).
    #[wasm_bindgen(js_name = moveCase)]
    pub fn move_case(&mut self, id: &str, to: &str, now: f64, assignee: Option<String>) -> Result<(), JsError> {
        let id = parse_id(id)?;
        let to: CaseStatus = to.parse().map_err(|e: String| JsError::new(&e))?;
        let assignee = assignee
            .filter(|a| !a.is_empty())
            .map(|a| a.parse::<PersonId>().map_err(|_| JsError::new("not a person id")))
            .transpose()?;
        match (to, assignee) {
            (CaseStatus::Assigned, Some(person)) => {
                self.journaled(id, |r| r.edit(id, now as i64, |e| e.assign_case(person))).map(|_| ())
            }
            (CaseStatus::Assigned, None) => Err(JsError::new("交办需要选择承办人")),
            (_, Some(_)) => Err(JsError::new("only 交办 names an assignee")),
            (_, None) => self.journaled(id, |r| r.edit(id, now as i64, |e| e.advance_case(to))).map(|_| ()),
        }
    }

    /// Reopens a case back to `to`, with a reason.
    #[wasm_bindgen(js_name = reopenCase)]
    pub fn reopen_case(&mut self, id: &str, to: &str, reason: &str, now: f64) -> Result<(), JsError> {
        let id = parse_id(id)?;
        let to: CaseStatus = to.parse().map_err(|e: String| JsError::new(&e))?;
        self.journaled(id, |r| r.edit(id, now as i64, |e| e.reopen_case(to, reason))).map(|_| ())
    }

    /// Voids (作废) any record, with a reason (required): its creator, or a
    /// supervisor or administrator over its grid, may. It stays readable.
    #[wasm_bindgen(js_name = "void")]
    pub fn void_record(&mut self, id: &str, reason: &str, now: f64) -> Result<(), JsError> {
        let id = parse_id(id)?;
        self.journaled(id, |r| r.edit(id, now as i64, |e| e.void_record(reason))).map(|_| ())
    }

    /// Chooses `value` for a field in conflict (a `conflicts[].field` of the
    /// listed record): a string, a number (times in Unix ms), `{lat, lon,
    /// accuracy_m}` for `location`, or null for no value. The conflict is gone
    /// on every phone once this edit has synced.
    #[wasm_bindgen(js_name = resolveConflict)]
    pub fn resolve_conflict(&mut self, id: &str, field: &str, value: JsValue, now: f64) -> Result<(), JsError> {
        let id = parse_id(id)?;
        let value = if value.is_null() || value.is_undefined() {
            FieldValue::Empty
        } else if let Some(text) = value.as_string() {
            FieldValue::Text(text)
        } else if let Some(n) = value.as_f64() {
            FieldValue::Number(n as i64)
        } else {
            FieldValue::Point(fields::geo_point(&value).map_err(invalid)?)
        };
        self.journaled(id, |r| r.edit(id, now as i64, |e| e.resolve_conflict(field, &value))).map(|_| ())
    }

    /// Adds a member `{name, relation, id_number, phone, tags, id?}` to a
    /// household; returns the member's id. With an `id` (e.g. fixed when the
    /// member form opened) adding again updates that member instead.
    #[wasm_bindgen(js_name = addMember)]
    pub fn add_member(&mut self, household: &str, member: JsValue, now: f64) -> Result<String, JsError> {
        let id = parse_id(household)?;
        let member = fields::member(&member).map_err(invalid)?;
        self.journaled(id, |r| r.edit(id, now as i64, |e| e.add_member(&member)))
    }

    /// Changes a member's fields: `fields` holds any of `name`, `relation`,
    /// `id_number`, `phone`, `tags`; the others stay as they are.
    #[wasm_bindgen(js_name = updateMember)]
    pub fn update_member(&mut self, household: &str, member: &str, fields: JsValue, now: f64) -> Result<(), JsError> {
        let id = parse_id(household)?;
        let patch = member_patch(&fields).map_err(|e| JsError::new(&format!("invalid input: {e}")))?;
        let Some(Record::Household(h)) = self.replica.record(id) else { return Err(JsError::new("not a household")) };
        let current = h.fields.members.into_iter().find(|m| m.id == member);
        let current = current.ok_or_else(|| JsError::new("no such member in this household"))?;
        let changed = Member {
            name: patch.name.unwrap_or(current.name),
            relation: patch.relation.unwrap_or(current.relation),
            id_number: patch.id_number.unwrap_or(current.id_number),
            phone: patch.phone.unwrap_or(current.phone),
            tags: patch.tags.unwrap_or(current.tags),
            id: current.id,
        };
        self.journaled(id, |r| r.edit(id, now as i64, |e| e.update_member(member, &changed))).map(|_| ())
    }

    /// Removes a member from a household.
    #[wasm_bindgen(js_name = removeMember)]
    pub fn remove_member(&mut self, household: &str, member: &str, now: f64) -> Result<(), JsError> {
        let id = parse_id(household)?;
        self.journaled(id, |r| r.edit(id, now as i64, |e| e.remove_member(member))).map(|_| ())
    }

    /// Records whether a promise was kept.
    #[wasm_bindgen(js_name = recordPromiseOutcome)]
    pub fn record_promise_outcome(&mut self, id: &str, kept: bool, note: &str, now: f64) -> Result<(), JsError> {
        let id = parse_id(id)?;
        self.journaled(id, |r| r.edit(id, now as i64, |e| e.record_promise_outcome(kept, note))).map(|_| ())
    }
}
