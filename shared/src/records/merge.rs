//! How each editable field merges when two people change it at once, and the
//! concurrent values of single-valued fields that a record shows until someone
//! chooses one ([`FieldConflict`]). One table ([`merge_rule`]) for every record
//! kind; the reader lists conflicts from it and the editor resolves them.
//!
//! Automerge keeps every concurrent value written at a map key (the one it
//! shows is picked by operation id, not by anyone's choice); a field is *in
//! conflict* while those values differ. Writing a value at that key replaces
//! them all, which is what choosing one does.

use super::edit::existing;
use super::*;
use crate::rules::{RejectReason, Rejection};
use automerge::transaction::{Transactable, Transaction};
use automerge::{Automerge, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};

/// How a field merges when it was changed on two phones at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeRule {
    /// Long text, edited by diff: both edits are kept, interleaved.
    Text,
    /// A set of tags: additions and removals from both sides are kept.
    Set,
    /// An ordered list of short entries, edited by diff: both sides' added and
    /// removed entries are kept.
    List,
    /// One value must win: concurrent different values are all kept and the
    /// record lists them as a [`FieldConflict`] until someone writes one.
    Single,
    /// Members, keyed by id: each member's own fields merge by these same rules.
    Members,
}

/// The merge rule of an editable field of a record kind (`None`: not an
/// editable field). Member fields are `name`, `relation`, `id_number`, `phone`
/// (single) and `tags` (set), under `members`.
pub fn merge_rule(kind: RecordKind, field: &str) -> Option<MergeRule> {
    use MergeRule::*;
    let rule = match (kind, field) {
        (RecordKind::Household, "address" | "head" | "phone" | "id_number") => Single,
        (RecordKind::Household, "notes") => Text,
        (RecordKind::Household, "tags") => Set,
        (RecordKind::Household, "members") => Members,
        (RecordKind::VisitLog, "household" | "visited_at" | "kind" | "location") => Single,
        (RecordKind::VisitLog, "notes" | "findings") => Text,
        (RecordKind::VisitLog, "concerns") => List,
        (RecordKind::Case, "kind" | "title" | "household" | "visit" | "due_at") => Single,
        (RecordKind::Case, "description") => Text,
        (RecordKind::Promise, "content" | "household" | "due_at") => Single,
        _ => return None,
    };
    Some(rule)
}

/// The merge rule of a member's field.
pub fn member_merge_rule(field: &str) -> Option<MergeRule> {
    match field {
        "name" | "relation" | "id_number" | "phone" => Some(MergeRule::Single),
        "tags" => Some(MergeRule::Set),
        _ => None,
    }
}

/// The single-valued root fields of a record kind, in the order conflicts list them.
pub fn single_valued_fields(kind: RecordKind) -> &'static [&'static str] {
    match kind {
        RecordKind::Household => &["address", "head", "phone", "id_number"],
        RecordKind::VisitLog => &["household", "visited_at", "kind", "location"],
        RecordKind::Case => &["kind", "title", "household", "visit", "due_at"],
        RecordKind::Promise => &["content", "household", "due_at"],
    }
}

/// One value of a single-valued field: text (also ids and kinds), a time or
/// number, a GPS position, or no value. In JSON: a string, a number, an
/// object `{lat, lon, accuracy_m}` or `null`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// Text, an id or a kind's stable name.
    Text(String),
    /// A time (Unix ms) or other integer.
    Number(i64),
    /// A GPS position.
    Point(GeoPoint),
    /// No value.
    Empty,
}

/// A single-valued field that two people changed at once: every competing
/// value, the one the record shows now first. Writing any value resolves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldConflict {
    /// The field: a root field's name (`title`, `due_at`, `location`...), or
    /// `members.<member id>.<field>` for a member's field.
    pub field: String,
    /// The competing values (at least two, all different), the shown one first.
    pub values: Vec<FieldValue>,
}

fn scalar_value(s: &ScalarValue) -> Option<FieldValue> {
    match s {
        ScalarValue::Str(t) => Some(FieldValue::Text(t.to_string())),
        ScalarValue::Int(i) | ScalarValue::Timestamp(i) => Some(FieldValue::Number(*i)),
        ScalarValue::Uint(u) => i64::try_from(*u).ok().map(FieldValue::Number),
        ScalarValue::Null => Some(FieldValue::Empty),
        _ => None,
    }
}

/// Distinct values, the shown (last written) one first; a conflict only if two or more.
fn conflict_of(field: String, mut values: Vec<FieldValue>) -> Option<FieldConflict> {
    values.reverse();
    let mut distinct: Vec<FieldValue> = Vec::with_capacity(values.len());
    for v in values {
        if !distinct.contains(&v) {
            distinct.push(v);
        }
    }
    (distinct.len() > 1).then_some(FieldConflict { field, values: distinct })
}

/// Reads conflicts from a document, as of `heads` or now.
pub(super) struct ConflictReader<'a> {
    pub(super) doc: &'a Automerge,
    pub(super) heads: Option<&'a [ChangeHash]>,
}

impl ConflictReader<'_> {
    fn all(&self, obj: &ObjId, key: &str) -> Vec<(Value<'_>, ObjId)> {
        match self.heads {
            Some(h) => self.doc.get_all_at(obj, key, h),
            None => self.doc.get_all(obj, key),
        }
        .unwrap_or_default()
    }

    /// The conflict at a scalar field of `obj`, if its concurrent values differ.
    pub(super) fn scalar(&self, obj: &ObjId, key: &str, field: String) -> Option<FieldConflict> {
        let all = self.all(obj, key);
        if all.len() < 2 {
            return None;
        }
        let values = all
            .iter()
            .filter_map(|(v, _)| match v {
                Value::Scalar(s) => scalar_value(s.as_ref()),
                Value::Object(_) => None,
            })
            .collect();
        conflict_of(field, values)
    }

    /// The conflict at a visit's `location`: the positions written at once,
    /// each put together from one writer's latitude, longitude and accuracy.
    pub(super) fn location(&self, root: &ObjId) -> Option<FieldConflict> {
        let maps: Vec<ObjId> = self
            .all(root, "location")
            .into_iter()
            .filter_map(|(v, id)| matches!(v, Value::Object(ObjType::Map)).then_some(id))
            .collect();
        let mut values = Vec::new();
        // The shown map is the last; an emptied earlier map competes with nothing.
        for (i, map) in maps.iter().enumerate() {
            let points = self.points(map);
            if points.is_empty() && i + 1 == maps.len() && maps.len() > 1 {
                values.push(FieldValue::Empty);
            }
            values.extend(points.into_iter().map(FieldValue::Point));
        }
        conflict_of("location".into(), values)
    }

    /// The positions in one location map, oldest write first.
    fn points(&self, map: &ObjId) -> Vec<GeoPoint> {
        let number = |v: &Value<'_>| match v {
            Value::Scalar(s) => match s.as_ref() {
                ScalarValue::F64(f) => Some(*f),
                ScalarValue::Int(i) => Some(*i as f64),
                _ => None,
            },
            Value::Object(_) => None,
        };
        let writer = |id: &ObjId| match id {
            ObjId::Id(_, actor, _) => Some(actor.clone()),
            ObjId::Root => None,
        };
        let lats = self.all(map, "lat");
        let lons = self.all(map, "lon");
        let accs = self.all(map, "accuracy_m");
        let (Some((last_lat, _)), Some((last_lon, _))) = (lats.last(), lons.last()) else { return Vec::new() };
        let (last_lat, last_lon) = (number(last_lat), number(last_lon));
        let mut points = Vec::new();
        for (lat, id) in &lats {
            let who = writer(id);
            let lon = lons.iter().rev().find(|(_, l)| writer(l) == who).and_then(|(v, _)| number(v)).or(last_lon);
            let accuracy_m = accs.iter().rev().find(|(_, a)| writer(a) == who).and_then(|(v, _)| number(v));
            if let (Some(lat), Some(lon)) = (number(lat), lon) {
                points.push(GeoPoint { lat, lon, accuracy_m });
            }
        }
        // A longitude written alone (its writer kept the latitude) competes too.
        for (lon, id) in &lons {
            let who = writer(id);
            if !lats.iter().any(|(_, l)| writer(l) == who)
                && let (Some(lat), Some(lon)) = (last_lat, number(lon))
            {
                let accuracy_m = accs.iter().rev().find(|(_, a)| writer(a) == who).and_then(|(v, _)| number(v));
                points.push(GeoPoint { lat, lon, accuracy_m });
            }
        }
        points
    }
}

/// Writes `value` as the chosen value of the single-valued `field` of
/// `record` (the document as it reads before), replacing every concurrent
/// value: this resolves a [`FieldConflict`]. The written record is checked by
/// the rules afterwards like any edit (a required field cannot be emptied).
pub(super) fn write_chosen(
    tx: &mut Transaction<'_>,
    record: &Record,
    field: &str,
    value: &FieldValue,
) -> Result<(), EditError> {
    let bad = |why: String| EditError::Rejected(Rejection::new(RejectReason::InvalidRecord, why));
    if let Some(rest) = field.strip_prefix("members.") {
        return super::members::write_chosen(tx, rest, value);
    }
    if merge_rule(record.kind(), field) != Some(MergeRule::Single) {
        return Err(bad(format!("`{field}` is not a single-valued field of a {}", record.kind())));
    }
    let time = matches!(field, "visited_at" | "due_at");
    match value {
        FieldValue::Point(p) if field == "location" => {
            let loc = existing(tx, "location", ObjType::Map)?;
            for other in location_maps(tx)?.into_iter().filter(|m| *m != loc) {
                clear_location(tx, &other)?;
            }
            tx.put(&loc, "lat", p.lat)?;
            tx.put(&loc, "lon", p.lon)?;
            match p.accuracy_m {
                Some(a) => tx.put(&loc, "accuracy_m", a)?,
                None => clear_key(tx, &loc, "accuracy_m")?,
            }
        }
        FieldValue::Empty if field == "location" => {
            for map in location_maps(tx)? {
                clear_location(tx, &map)?;
            }
        }
        FieldValue::Number(n) if time => tx.put(ROOT, field, ScalarValue::Timestamp(*n))?,
        FieldValue::Text(t) if !time && field != "location" => tx.put(ROOT, field, t.as_str())?,
        FieldValue::Empty => clear_key(tx, &ROOT, field)?,
        _ => return Err(bad(format!("`{field}` does not take that kind of value"))),
    }
    Ok(())
}

/// Deletes `key` of `obj` (every concurrent value of it), if present.
pub(super) fn clear_key(tx: &mut Transaction<'_>, obj: &ObjId, key: &str) -> Result<(), EditError> {
    if !tx.get_all(obj, key)?.is_empty() {
        tx.delete(obj, key)?;
    }
    Ok(())
}

fn location_maps(tx: &Transaction<'_>) -> Result<Vec<ObjId>, EditError> {
    Ok(tx
        .get_all(ROOT, "location")?
        .into_iter()
        .filter_map(|(v, id)| matches!(v, Value::Object(ObjType::Map)).then_some(id))
        .collect())
}

fn clear_location(tx: &mut Transaction<'_>, map: &ObjId) -> Result<(), EditError> {
    for key in ["lat", "lon", "accuracy_m"] {
        clear_key(tx, map, key)?;
    }
    Ok(())
}
