//! Strict reading of a record from its document: every field checked for
//! presence and type, unknown fields and oversized content rejected.

use super::*;
use crate::workflow::{CaseStatus, StatusMove};
use automerge::{Automerge, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use thiserror::Error;

/// Why a document is not a valid record.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// A required field is absent.
    #[error("field `{0}` is missing")]
    Missing(String),
    /// A field holds the wrong type of value.
    #[error("field `{field}` should be {expected}")]
    WrongType {
        /// Which field.
        field: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// A field this schema does not have.
    #[error("unknown field `{0}`")]
    UnknownField(String),
    /// A value outside what the field allows.
    #[error("field `{field}`: {problem}")]
    Invalid {
        /// Which field.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// Written by a newer schema than this build understands.
    #[error("schema version {0} is newer than this build's {SCHEMA_VERSION}")]
    NewerSchema(u64),
    /// The document could not be read at all.
    #[error("document cannot be read: {0}")]
    Document(String),
}

type R<T> = Result<T, RecordError>;

fn invalid(field: &str, problem: impl Into<String>) -> RecordError {
    RecordError::Invalid { field: field.to_string(), problem: problem.into() }
}

/// A cursor over one map object of a document, reading as of `heads` (or now).
struct Obj<'a> {
    doc: &'a Automerge,
    obj: ObjId,
    path: String,
    heads: Option<&'a [ChangeHash]>,
}

impl<'a> Obj<'a> {
    fn field(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_string() } else { format!("{}.{key}", self.path) }
    }

    fn get(&self, key: &str) -> R<Option<(Value<'a>, ObjId)>> {
        let got = match self.heads {
            Some(h) => self.doc.get_at(&self.obj, key, h),
            None => self.doc.get(&self.obj, key),
        };
        got.map_err(|e| RecordError::Document(e.to_string()))
    }

    fn keys(&self) -> Vec<String> {
        match self.heads {
            Some(h) => self.doc.keys_at(&self.obj, h).collect(),
            None => self.doc.keys(&self.obj).collect(),
        }
    }

    fn only_keys(&self, allowed: &[&str]) -> R<()> {
        match self.keys().into_iter().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(RecordError::UnknownField(self.field(&k))),
            None => Ok(()),
        }
    }

    fn scalar(&self, key: &str) -> R<Option<ScalarValue>> {
        match self.get(key)? {
            None => Ok(None),
            Some((Value::Scalar(s), _)) if s.is_null() => Ok(None),
            Some((Value::Scalar(s), _)) => Ok(Some(s.into_owned())),
            Some((Value::Object(_), _)) => {
                Err(RecordError::WrongType { field: self.field(key), expected: "a plain value" })
            }
        }
    }

    fn opt_str(&self, key: &str, max_chars: usize) -> R<Option<String>> {
        match self.scalar(key)? {
            None => Ok(None),
            Some(ScalarValue::Str(s)) => {
                if s.chars().count() > max_chars {
                    return Err(invalid(&self.field(key), format!("longer than {max_chars} characters")));
                }
                Ok(Some(s.to_string()))
            }
            Some(_) => Err(RecordError::WrongType { field: self.field(key), expected: "text" }),
        }
    }

    fn str(&self, key: &str, max_chars: usize) -> R<String> {
        self.opt_str(key, max_chars)?.ok_or_else(|| RecordError::Missing(self.field(key)))
    }

    fn opt_i64(&self, key: &str) -> R<Option<i64>> {
        match self.scalar(key)? {
            None => Ok(None),
            Some(ScalarValue::Int(i) | ScalarValue::Timestamp(i)) => Ok(Some(i)),
            Some(ScalarValue::Uint(u)) => {
                i64::try_from(u).map(Some).map_err(|_| invalid(&self.field(key), "out of range"))
            }
            Some(_) => Err(RecordError::WrongType { field: self.field(key), expected: "an integer" }),
        }
    }

    fn i64(&self, key: &str) -> R<i64> {
        self.opt_i64(key)?.ok_or_else(|| RecordError::Missing(self.field(key)))
    }

    fn opt_f64(&self, key: &str) -> R<Option<f64>> {
        match self.scalar(key)? {
            None => Ok(None),
            Some(ScalarValue::F64(f)) if f.is_finite() => Ok(Some(f)),
            Some(ScalarValue::Int(i)) => Ok(Some(i as f64)),
            Some(_) => Err(RecordError::WrongType { field: self.field(key), expected: "a number" }),
        }
    }

    fn opt_bool(&self, key: &str) -> R<Option<bool>> {
        match self.scalar(key)? {
            None => Ok(None),
            Some(ScalarValue::Boolean(b)) => Ok(Some(b)),
            Some(_) => Err(RecordError::WrongType { field: self.field(key), expected: "true or false" }),
        }
    }

    fn parsed<T: FromStr>(&self, key: &str) -> R<Option<T>> {
        match self.opt_str(key, limits::SHORT_CHARS)? {
            None => Ok(None),
            Some(s) => {
                s.parse().map(Some).map_err(|_| invalid(&self.field(key), format!("{s:?} is not an accepted value")))
            }
        }
    }

    fn required<T: FromStr>(&self, key: &str) -> R<T> {
        self.parsed(key)?.ok_or_else(|| RecordError::Missing(self.field(key)))
    }

    fn object(&self, key: &str, want: ObjType, expected: &'static str) -> R<Option<ObjId>> {
        match self.get(key)? {
            None => Ok(None),
            Some((Value::Object(t), id)) if t == want => Ok(Some(id)),
            Some(_) => Err(RecordError::WrongType { field: self.field(key), expected }),
        }
    }

    fn text(&self, key: &str) -> R<String> {
        let Some(id) = self.object(key, ObjType::Text, "a text object")? else {
            return Ok(String::new());
        };
        let text = match self.heads {
            Some(h) => self.doc.text_at(&id, h),
            None => self.doc.text(&id),
        }
        .map_err(|e| RecordError::Document(e.to_string()))?;
        if text.chars().count() > limits::TEXT_CHARS {
            return Err(invalid(&self.field(key), format!("longer than {} characters", limits::TEXT_CHARS)));
        }
        Ok(text)
    }

    fn list_len(&self, list: &ObjId) -> usize {
        match self.heads {
            Some(h) => self.doc.length_at(list, h),
            None => self.doc.length(list),
        }
    }

    fn list_get(&self, list: &ObjId, i: usize) -> R<Option<(Value<'a>, ObjId)>> {
        match self.heads {
            Some(h) => self.doc.get_at(list, i, h),
            None => self.doc.get(list, i),
        }
        .map_err(|e| RecordError::Document(e.to_string()))
    }

    fn list_of<T>(&self, key: &str, mut each: impl FnMut(ListItem<'_, 'a>) -> R<T>) -> R<Vec<T>> {
        let Some(list) = self.object(key, ObjType::List, "a list")? else {
            return Ok(Vec::new());
        };
        let len = self.list_len(&list);
        if len > limits::LIST_ENTRIES {
            return Err(invalid(&self.field(key), format!("more than {} entries", limits::LIST_ENTRIES)));
        }
        (0..len)
            .map(|i| {
                let value = self.list_get(&list, i)?;
                each(ListItem { parent: self, field: format!("{}[{i}]", self.field(key)), value })
            })
            .collect()
    }

    fn strings(&self, key: &str) -> R<Vec<String>> {
        self.list_of(key, |item| match item.value {
            Some((Value::Scalar(s), _)) => match s.as_ref() {
                ScalarValue::Str(s) if s.chars().count() <= limits::SHORT_CHARS => Ok(s.to_string()),
                ScalarValue::Str(_) => Err(invalid(&item.field, "too long")),
                _ => Err(RecordError::WrongType { field: item.field, expected: "text" }),
            },
            _ => Err(RecordError::WrongType { field: item.field, expected: "text" }),
        })
    }

    /// A set of tags: each once, in first-seen order (two phones adding the
    /// same tag at once leave it twice in the list).
    fn tags(&self, key: &str) -> R<Vec<String>> {
        // Pairwise, as members' tags are: a record has a few tags, and a hash
        // set of strings would cost the phone's WebAssembly more code than this
        // costs it time.
        let mut tags = Vec::new();
        for t in self.strings(key)? {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        Ok(tags)
    }

    fn maps<T>(&self, key: &str, mut each: impl FnMut(&Obj<'a>) -> R<T>) -> R<Vec<T>> {
        self.list_of(key, |item| match item.value {
            Some((Value::Object(ObjType::Map), id)) => {
                each(&Obj { doc: self.doc, obj: id, path: item.field, heads: self.heads })
            }
            _ => Err(RecordError::WrongType { field: item.field, expected: "a map" }),
        })
    }

    /// Every object of type `want` at `key`: usually one, but two phones that
    /// created the same object concurrently (say, the first void of a record
    /// made before `voids` existed) leave both, and each holds real entries.
    fn all_objects(&self, key: &str, want: ObjType, expected: &'static str) -> R<Vec<ObjId>> {
        let all = match self.heads {
            Some(h) => self.doc.get_all_at(&self.obj, key, h),
            None => self.doc.get_all(&self.obj, key),
        }
        .map_err(|e| RecordError::Document(e.to_string()))?;
        all.into_iter()
            .map(|(value, id)| match value {
                Value::Object(t) if t == want => Ok(id),
                _ => Err(RecordError::WrongType { field: self.field(key), expected }),
            })
            .collect()
    }

    /// The map entries of every list at `key` (see [`Self::all_objects`]), in order.
    fn maps_in_all<T>(&self, key: &str, mut each: impl FnMut(&Obj<'a>) -> R<T>) -> R<Vec<T>> {
        let mut out = Vec::new();
        for list in self.all_objects(key, ObjType::List, "a list")? {
            let len = self.list_len(&list);
            if out.len() + len > limits::LIST_ENTRIES {
                return Err(invalid(&self.field(key), format!("more than {} entries", limits::LIST_ENTRIES)));
            }
            for i in 0..len {
                let field = format!("{}[{i}]", self.field(key));
                match self.list_get(&list, i)? {
                    Some((Value::Object(ObjType::Map), id)) => {
                        out.push(each(&Obj { doc: self.doc, obj: id, path: field, heads: self.heads })?)
                    }
                    _ => return Err(RecordError::WrongType { field, expected: "a map" }),
                }
            }
        }
        Ok(out)
    }

    /// The record's void entries (作废), from every `voids` list.
    fn voids(&self) -> R<Vec<VoidEntry>> {
        self.maps_in_all("voids", |v| {
            v.only_keys(&["id", "by", "at", "reason"])?;
            Ok(VoidEntry {
                id: v.uuid("id")?,
                by: v.person("by")?,
                at: v.i64("at")?,
                reason: v.str("reason", limits::SHORT_CHARS * 5)?,
            })
        })
    }

    /// The record's photo references, from every `photos` list.
    fn photos(&self) -> R<Vec<PhotoRef>> {
        self.maps_in_all("photos", |p| {
            p.only_keys(&[
                "id",
                "sha256",
                "size",
                "mime",
                "taken_at",
                "lat",
                "lon",
                "accuracy_m",
                "by",
                "at",
                "follow_up",
            ])?;
            let size = u64::try_from(p.i64("size")?).map_err(|_| invalid(&p.field("size"), "negative"))?;
            let location = match (p.opt_f64("lat")?, p.opt_f64("lon")?) {
                (None, None) => None,
                (Some(lat), Some(lon)) => Some(geo_point(&p.field("lat"), lat, lon, p.opt_f64("accuracy_m")?)?),
                _ => return Err(invalid(&p.field("lat"), "a position needs both latitude and longitude")),
            };
            Ok(PhotoRef {
                id: p.uuid("id")?,
                sha256: p.required("sha256")?,
                size,
                mime: p.required("mime")?,
                taken_at: p.i64("taken_at")?,
                location,
                by: p.person("by")?,
                at: p.i64("at")?,
                follow_up: p.parsed::<Uuid>("follow_up")?,
            })
        })
    }

    fn map(&self, key: &str) -> R<Option<Obj<'a>>> {
        Ok(self.object(key, ObjType::Map, "a map")?.map(|id| Obj {
            doc: self.doc,
            obj: id,
            path: self.field(key),
            heads: self.heads,
        }))
    }

    fn opt_doc_id(&self, key: &str) -> R<Option<DocId>> {
        self.parsed::<DocId>(key)
    }

    fn uuid(&self, key: &str) -> R<Uuid> {
        let s = self.str(key, 64)?;
        Uuid::parse_str(&s).map_err(|_| invalid(&self.field(key), "not a UUID"))
    }

    fn person(&self, key: &str) -> R<PersonId> {
        self.uuid(key).map(PersonId)
    }
}

struct ListItem<'o, 'a> {
    #[allow(dead_code)]
    parent: &'o Obj<'a>,
    field: String,
    value: Option<(Value<'a>, ObjId)>,
}

/// A position, if its latitude and longitude are in range.
fn geo_point(field: &str, lat: f64, lon: f64, accuracy_m: Option<f64>) -> R<GeoPoint> {
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(invalid(field, "latitude or longitude out of range"));
    }
    Ok(GeoPoint { lat, lon, accuracy_m })
}

/// Root fields every record has, fixed at creation.
pub const META_KEYS: [&str; 5] = ["type", "schema", "grid", "creator", "created_at"];

/// Reads the record a document holds now. Errors say which field is wrong and how.
pub fn read_record(doc: &Automerge) -> Result<Record, RecordError> {
    read(Obj { doc, obj: ROOT, path: String::new(), heads: None })
}

/// Reads the record as it was at `heads` (for consistent snapshots).
pub fn read_record_at(doc: &Automerge, heads: &[ChangeHash]) -> Result<Record, RecordError> {
    read(Obj { doc, obj: ROOT, path: String::new(), heads: Some(heads) })
}

fn read(root: Obj<'_>) -> R<Record> {
    let kind: RecordKind = root.required("type")?;
    let schema = root.i64("schema")?;
    let schema = u64::try_from(schema).map_err(|_| invalid("schema", "negative"))?;
    if schema > SCHEMA_VERSION {
        return Err(RecordError::NewerSchema(schema));
    }
    let grid_text = root.str("grid", 200)?;
    let grid = TerritoryPath::parse(&grid_text).map_err(|e| invalid("grid", e.to_string()))?;
    if !grid.is_grid() {
        return Err(invalid("grid", "records belong to a grid (five levels deep)"));
    }
    let meta = RecordMeta { kind, schema, grid, creator: root.person("creator")?, created_at: root.i64("created_at")? };
    let with_meta = |own: &[&'static str]| -> Vec<&'static str> { META_KEYS.iter().chain(own).copied().collect() };
    let record = match kind {
        RecordKind::Household => {
            root.only_keys(&with_meta(&[
                "address",
                "head",
                "phone",
                "id_number",
                "members",
                "members_by_id",
                "tags",
                "notes",
                "voids",
            ]))?;
            Record::Household(Household {
                meta,
                fields: HouseholdFields {
                    address: root.opt_str("address", limits::SHORT_CHARS)?.unwrap_or_default(),
                    head: root.opt_str("head", limits::SHORT_CHARS)?.unwrap_or_default(),
                    phone: root.opt_str("phone", limits::NUMBER_CHARS)?.unwrap_or_default(),
                    id_number: root.opt_str("id_number", limits::NUMBER_CHARS)?.unwrap_or_default(),
                    members: members::read_all(root.doc, root.heads)?.into_iter().map(|(_, m)| m).collect(),
                    tags: root.tags("tags")?,
                    notes: root.text("notes")?,
                },
                voids: root.voids()?,
                conflicts: Vec::new(),
            })
        }
        RecordKind::VisitLog => {
            root.only_keys(&with_meta(&[
                "household",
                "visited_at",
                "kind",
                "location",
                "notes",
                "concerns",
                "findings",
                "voids",
                "photos",
            ]))?;
            let location = match root.map("location")? {
                None => None,
                // A location removed later is an emptied map (the map itself is never removed).
                Some(loc) if loc.opt_f64("lat")?.is_none() && loc.opt_f64("lon")?.is_none() => {
                    loc.only_keys(&["accuracy_m"])?;
                    None
                }
                Some(loc) => {
                    loc.only_keys(&["lat", "lon", "accuracy_m"])?;
                    let lat = loc.opt_f64("lat")?.ok_or_else(|| RecordError::Missing(loc.field("lat")))?;
                    let lon = loc.opt_f64("lon")?.ok_or_else(|| RecordError::Missing(loc.field("lon")))?;
                    Some(geo_point("location", lat, lon, loc.opt_f64("accuracy_m")?)?)
                }
            };
            Record::VisitLog(VisitLog {
                meta,
                fields: VisitFields {
                    household: root.opt_doc_id("household")?,
                    visited_at: root.i64("visited_at")?,
                    kind: root.parsed("kind")?,
                    location,
                    notes: root.text("notes")?,
                    concerns: root.strings("concerns")?,
                    findings: root.text("findings")?,
                },
                photos: root.photos()?,
                voids: root.voids()?,
                conflicts: Vec::new(),
            })
        }
        RecordKind::Case => {
            root.only_keys(&with_meta(&[
                "kind",
                "title",
                "description",
                "household",
                "visit",
                "due_at",
                "status_log",
                "follow_ups",
                "voids",
                "photos",
            ]))?;
            Record::Case(Case {
                meta,
                fields: CaseFields {
                    kind: root.required("kind")?,
                    title: root.str("title", limits::SHORT_CHARS)?,
                    description: root.text("description")?,
                    household: root.opt_doc_id("household")?,
                    visit: root.opt_doc_id("visit")?,
                    due_at: root.opt_i64("due_at")?,
                },
                status_log: root.maps("status_log", |e| {
                    e.only_keys(&["id", "kind", "to", "epoch", "by", "at", "reason", "assignee"])?;
                    let epoch = e.i64("epoch")?;
                    Ok(StatusEntry {
                        id: e.uuid("id")?,
                        kind: match e.str("kind", 16)?.as_str() {
                            "advance" => StatusMove::Advance,
                            "reopen" => StatusMove::Reopen,
                            other => {
                                return Err(invalid(&e.field("kind"), format!("{other:?} is not advance or reopen")));
                            }
                        },
                        to: e.required::<CaseStatus>("to")?,
                        epoch: u32::try_from(epoch).map_err(|_| invalid(&e.field("epoch"), "out of range"))?,
                        by: e.person("by")?,
                        at: e.i64("at")?,
                        reason: e.opt_str("reason", limits::SHORT_CHARS * 5)?,
                        assignee: e.parsed::<Uuid>("assignee")?.map(PersonId),
                    })
                })?,
                follow_ups: root.maps("follow_ups", |f| {
                    f.only_keys(&["id", "by", "at", "note", "satisfaction"])?;
                    Ok(FollowUp {
                        id: f.uuid("id")?,
                        by: f.person("by")?,
                        at: f.i64("at")?,
                        note: f.opt_str("note", limits::TEXT_CHARS)?.unwrap_or_default(),
                        satisfaction: f.parsed("satisfaction")?,
                    })
                })?,
                photos: root.photos()?,
                voids: root.voids()?,
                conflicts: Vec::new(),
            })
        }
        RecordKind::Promise => {
            root.only_keys(&with_meta(&["content", "household", "due_at", "outcomes", "voids"]))?;
            Record::Promise(Promise {
                meta,
                fields: PromiseFields {
                    content: root.str("content", limits::SHORT_CHARS * 5)?,
                    household: root.opt_doc_id("household")?,
                    due_at: root.i64("due_at")?,
                },
                outcomes: root.maps("outcomes", |o| {
                    o.only_keys(&["id", "kept", "by", "at", "note"])?;
                    Ok(PromiseOutcome {
                        id: o.uuid("id")?,
                        kept: o.opt_bool("kept")?.ok_or_else(|| RecordError::Missing(o.field("kept")))?,
                        by: o.person("by")?,
                        at: o.i64("at")?,
                        note: o.opt_str("note", limits::SHORT_CHARS * 5)?.unwrap_or_default(),
                    })
                })?,
                voids: root.voids()?,
                conflicts: Vec::new(),
            })
        }
    };
    let mut record = record;
    let conflicts = conflicts(&root, kind);
    match &mut record {
        Record::Household(r) => r.conflicts = conflicts,
        Record::VisitLog(r) => r.conflicts = conflicts,
        Record::Case(r) => r.conflicts = conflicts,
        Record::Promise(r) => r.conflicts = conflicts,
    }
    Ok(record)
}

/// The conflicts of a record's single-valued fields (see [`merge_rule`]).
fn conflicts(root: &Obj<'_>, kind: RecordKind) -> Vec<FieldConflict> {
    let reader = merge::ConflictReader { doc: root.doc, heads: root.heads };
    let mut out: Vec<FieldConflict> = single_valued_fields(kind)
        .iter()
        .filter_map(|&field| match field {
            "location" => reader.location(&root.obj),
            _ => reader.scalar(&root.obj, field, field.to_string()),
        })
        .collect();
    if kind == RecordKind::Household {
        for (id, obj) in members::member_objects(root.doc, root.heads).unwrap_or_default() {
            for key in ["name", "relation", "id_number", "phone"] {
                out.extend(reader.scalar(&obj, key, format!("members.{id}.{key}")));
            }
        }
    }
    out
}
