//! A household's members, keyed by member id so that two phones adding,
//! editing and removing members offline all merge: members live in the map
//! `members_by_id` (member id → the member's own map), each field of a member
//! merges on its own (names and numbers single-valued, tags a set).
//!
//! Households written before members had ids keep them in the list `members`;
//! they still read, each with the id of its map object (`<counter>@<actor>`,
//! the same on every replica), and are edited and removed in place. They are
//! not copied into the map: two phones copying at once would duplicate them,
//! and a phone still running the earlier app edits them where they are.

use super::edit::{EditError, put_set, put_str};
use super::*;
use crate::rules::{RejectReason, Rejection};
use automerge::transaction::{Transactable, Transaction};
use automerge::{ChangeHash, ObjId, ObjType, Prop, ROOT, ReadDoc, Value};

/// The root key of the members map.
pub(super) const MEMBERS_MAP: &str = "members_by_id";
/// The root key of the earlier members list.
pub(super) const MEMBERS_LIST: &str = "members";
/// The keys a member's map may hold.
pub(super) const MEMBER_KEYS: [&str; 5] = ["name", "relation", "id_number", "phone", "tags"];

/// What reading members asks of a document, as of some heads or now: the
/// member-reading code below is compiled once for both the document and an
/// open transaction (through `&dyn`), not once per kind of document.
trait Source {
    fn get(&self, obj: &ObjId, prop: Prop) -> Result<Option<(Value<'_>, ObjId)>, RecordError>;
    fn get_all(&self, obj: &ObjId, key: &str) -> Result<Vec<(Value<'_>, ObjId)>, RecordError>;
    fn keys(&self, obj: &ObjId) -> Vec<String>;
    fn length(&self, obj: &ObjId) -> usize;
}

/// A document read as of the heads given (or now, for None).
struct At<'a, D>(&'a D, Option<&'a [ChangeHash]>);

fn doc_err(e: automerge::AutomergeError) -> RecordError {
    RecordError::Document(e.to_string())
}

impl<D: ReadDoc> Source for At<'_, D> {
    fn get(&self, obj: &ObjId, prop: Prop) -> Result<Option<(Value<'_>, ObjId)>, RecordError> {
        match self.1 {
            Some(h) => self.0.get_at(obj, prop, h),
            None => self.0.get(obj, prop),
        }
        .map_err(doc_err)
    }
    fn get_all(&self, obj: &ObjId, key: &str) -> Result<Vec<(Value<'_>, ObjId)>, RecordError> {
        match self.1 {
            Some(h) => self.0.get_all_at(obj, key, h),
            None => self.0.get_all(obj, key),
        }
        .map_err(doc_err)
    }
    fn keys(&self, obj: &ObjId) -> Vec<String> {
        match self.1 {
            Some(h) => self.0.keys_at(obj, h).collect(),
            None => self.0.keys(obj).collect(),
        }
    }
    fn length(&self, obj: &ObjId) -> usize {
        self.1.map_or_else(|| self.0.length(obj), |h| self.0.length_at(obj, h))
    }
}

/// Every member's id and map object, as of `heads` (or now): the earlier
/// list's entries in order, then the map's members by id (ids are UUID v7, so
/// in the order they were added). Members of every concurrently made map are
/// included (two phones adding a household's first member at once, to a
/// household from before the map, each make one).
pub(super) fn member_objects<D: ReadDoc>(
    doc: &D,
    heads: Option<&[ChangeHash]>,
) -> Result<Vec<(String, ObjId)>, RecordError> {
    objects(&At(doc, heads))
}

fn objects(doc: &dyn Source) -> Result<Vec<(String, ObjId)>, RecordError> {
    let mut out = Vec::new();
    if let Some((v, list)) = doc.get(&ROOT, MEMBERS_LIST.into())? {
        if !matches!(v, Value::Object(ObjType::List)) {
            return Err(RecordError::WrongType { field: MEMBERS_LIST.into(), expected: "a list" });
        }
        let len = doc.length(&list);
        if len > limits::LIST_ENTRIES {
            return Err(RecordError::Invalid { field: MEMBERS_LIST.into(), problem: "too many members".into() });
        }
        for i in 0..len {
            match doc.get(&list, i.into())? {
                Some((Value::Object(ObjType::Map), id)) => out.push((id.to_string(), id)),
                _ => return Err(RecordError::WrongType { field: format!("members[{i}]"), expected: "a map" }),
            }
        }
    }
    let mut keyed = Vec::new();
    for (v, map) in doc.get_all(&ROOT, MEMBERS_MAP)? {
        if !matches!(v, Value::Object(ObjType::Map)) {
            return Err(RecordError::WrongType { field: MEMBERS_MAP.into(), expected: "a map" });
        }
        for key in doc.keys(&map) {
            if uuid::Uuid::parse_str(&key).is_err() {
                return Err(RecordError::Invalid {
                    field: format!("{MEMBERS_MAP}.{key}"),
                    problem: "not a member id".into(),
                });
            }
            match doc.get(&map, key.as_str().into())? {
                // Kept in id order as they come: no sort (a sort's code,
                // compiled for this one type, costs the phone's WebAssembly
                // more than these few insertions cost it time).
                Some((Value::Object(ObjType::Map), id)) => {
                    keyed.insert(keyed.partition_point(|(k, _): &(String, ObjId)| *k <= key), (key, id))
                }
                _ => return Err(RecordError::WrongType { field: format!("{MEMBERS_MAP}.{key}"), expected: "a map" }),
            }
        }
    }
    out.extend(keyed);
    if out.len() > limits::LIST_ENTRIES {
        return Err(RecordError::Invalid { field: MEMBERS_MAP.into(), problem: "too many members".into() });
    }
    Ok(out)
}

fn not_found(id: &str) -> EditError {
    EditError::Rejected(Rejection::new(RejectReason::InvalidRecord, format!("this household has no member {id}")))
}

/// The map object of member `id`, if the household has that member.
fn find(tx: &Transaction<'_>, id: &str) -> Result<Option<ObjId>, EditError> {
    Ok(member_objects(tx, None)?.into_iter().find(|(m, _)| m == id).map(|(_, obj)| obj))
}

/// A member's tags list inside its map, made if absent (members from before tags).
fn tags_list(tx: &mut Transaction<'_>, member: &ObjId) -> Result<ObjId, EditError> {
    match tx.get(member, "tags")? {
        Some((Value::Object(ObjType::List), id)) => Ok(id),
        Some(_) => Err(EditError::Record(RecordError::WrongType { field: "members.tags".into(), expected: "a list" })),
        None => Ok(tx.put_object(member, "tags", ObjType::List)?),
    }
}

/// Writes a member's fields into its map: only those that changed.
fn write_fields(tx: &mut Transaction<'_>, member: &ObjId, m: &Member) -> Result<(), EditError> {
    for (key, value) in [("name", &m.name), ("relation", &m.relation), ("id_number", &m.id_number), ("phone", &m.phone)]
    {
        let absent = tx.get(member, key)?.is_none();
        if !(absent && value.is_empty()) {
            put_str(tx, member, key, value)?;
        }
    }
    let current_tags = tx.get(member, "tags")?.is_some();
    if current_tags || !m.tags.is_empty() {
        let tags = tags_list(tx, member)?;
        put_set(tx, &tags, &m.tags)?;
    }
    Ok(())
}

/// A fresh member id: a UUID v7 at `now`, so members list in the order added.
/// `seq` (the number of members the household already has) fills the 12 bits
/// after the time, so members added in the same millisecond — a household
/// form saved with several new members — keep the order they were given.
pub(super) fn new_member_id(now: i64, seq: usize) -> String {
    let mut random = [0u8; 10];
    random.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..10]);
    let seq = seq.min(0xfff);
    random[0] = (seq >> 8) as u8; // the high nibble is the version's, set by the builder
    random[1] = seq as u8;
    uuid::Builder::from_unix_timestamp_millis(u64::try_from(now).unwrap_or(0), &random).into_uuid().to_string()
}

/// Adds member `m` under `id` (a UUID) to the members map, made if absent.
pub(super) fn add(tx: &mut Transaction<'_>, id: &str, m: &Member) -> Result<(), EditError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(EditError::Rejected(Rejection::new(
            RejectReason::InvalidRecord,
            format!("a new member's id must be a UUID, not {id:?}"),
        )));
    }
    let map = super::edit::existing(tx, MEMBERS_MAP, ObjType::Map)?;
    let member = tx.put_object(&map, id, ObjType::Map)?;
    tx.put_object(&member, "tags", ObjType::List)?;
    write_fields(tx, &member, m)
}

/// Writes member `id`'s fields (all of them, as given).
pub(super) fn update(tx: &mut Transaction<'_>, id: &str, m: &Member) -> Result<(), EditError> {
    let member = find(tx, id)?.ok_or_else(|| not_found(id))?;
    write_fields(tx, &member, m)
}

/// Removes member `id` (from the map, or from the earlier list).
pub(super) fn remove(tx: &mut Transaction<'_>, id: &str) -> Result<(), EditError> {
    if let Some((Value::Object(ObjType::List), list)) = tx.get(ROOT, MEMBERS_LIST)? {
        for i in 0..tx.length(&list) {
            if let Some((_, obj)) = tx.get(&list, i)?
                && obj.to_string() == id
            {
                tx.delete(&list, i)?;
                return Ok(());
            }
        }
    }
    for (v, map) in tx.get_all(ROOT, MEMBERS_MAP)? {
        if matches!(v, Value::Object(ObjType::Map)) && tx.get(&map, id)?.is_some() {
            tx.delete(&map, id)?;
            return Ok(());
        }
    }
    Err(not_found(id))
}

/// Writes the members a whole household's fields list: a member with a known
/// id is updated; one without an id is added, unless a member with the very
/// same details is there (a form submitted twice); one with an unknown id is
/// added under that id if it is a UUID (it came from another phone's copy)
/// and otherwise skipped (an earlier-list member removed meanwhile). Members
/// missing from the list are kept: only [`remove`] removes, so a form that
/// does not show members never drops them.
pub(super) fn write_all(tx: &mut Transaction<'_>, members: &[Member], now: i64) -> Result<(), EditError> {
    for m in members {
        if !m.id.is_empty() {
            match find(tx, &m.id)? {
                Some(obj) => write_fields(tx, &obj, m)?,
                None if uuid::Uuid::parse_str(&m.id).is_ok() => add(tx, &m.id, m)?,
                None => {}
            }
            continue;
        }
        let same = |had: &Member| {
            (&had.name, &had.relation, &had.id_number, &had.phone) == (&m.name, &m.relation, &m.id_number, &m.phone)
        };
        let had = read_all(tx, None)?;
        if !had.iter().any(|(_, had)| same(had)) {
            add(tx, &new_member_id(now, had.len()), m)?;
        }
    }
    Ok(())
}

/// Reads every member with its id, as of `heads` (or now).
pub(super) fn read_all<D: ReadDoc>(doc: &D, heads: Option<&[ChangeHash]>) -> Result<Vec<(ObjId, Member)>, RecordError> {
    read_members(&At(doc, heads))
}

fn read_members(doc: &dyn Source) -> Result<Vec<(ObjId, Member)>, RecordError> {
    objects(doc)?.into_iter().map(|(id, obj)| read_one(doc, &id, &obj).map(|m| (obj, m))).collect()
}

fn read_one(doc: &dyn Source, id: &str, obj: &ObjId) -> Result<Member, RecordError> {
    let field = |key: &str| format!("members.{id}.{key}");
    if let Some(k) = doc.keys(obj).iter().find(|k| !MEMBER_KEYS.contains(&k.as_str())) {
        return Err(RecordError::UnknownField(field(k)));
    }
    let text = |key: &str, max: usize| -> Result<String, RecordError> {
        match doc.get(obj, key.into())? {
            None => Ok(String::new()),
            Some((Value::Scalar(s), _)) if s.is_null() => Ok(String::new()),
            Some((Value::Scalar(s), _)) => match s.as_ref() {
                automerge::ScalarValue::Str(t) if t.chars().count() <= max => Ok(t.to_string()),
                automerge::ScalarValue::Str(_) => {
                    Err(RecordError::Invalid { field: field(key), problem: format!("longer than {max} characters") })
                }
                _ => Err(RecordError::WrongType { field: field(key), expected: "text" }),
            },
            Some(_) => Err(RecordError::WrongType { field: field(key), expected: "text" }),
        }
    };
    // Tags from every concurrently made list (a member from before tags), each once.
    let mut tags: Vec<String> = Vec::new();
    for (v, list) in doc.get_all(obj, "tags")? {
        if !matches!(v, Value::Object(ObjType::List)) {
            return Err(RecordError::WrongType { field: field("tags"), expected: "a list" });
        }
        for i in 0..doc.length(&list).min(limits::LIST_ENTRIES) {
            match doc.get(&list, i.into())? {
                Some((Value::Scalar(s), _)) => match s.as_ref() {
                    automerge::ScalarValue::Str(t) if t.chars().count() <= limits::SHORT_CHARS => {
                        if !tags.iter().any(|x| x == t.as_str()) {
                            tags.push(t.to_string());
                        }
                    }
                    _ => return Err(RecordError::WrongType { field: field("tags"), expected: "short text" }),
                },
                _ => return Err(RecordError::WrongType { field: field("tags"), expected: "short text" }),
            }
        }
    }
    Ok(Member {
        id: id.to_string(),
        name: text("name", limits::SHORT_CHARS)?,
        relation: text("relation", limits::SHORT_CHARS)?,
        id_number: text("id_number", limits::NUMBER_CHARS)?,
        phone: text("phone", limits::NUMBER_CHARS)?,
        tags,
    })
}

/// Writes the chosen value of a member's single-valued field, named
/// `<member id>.<field>`, replacing every concurrent value.
pub(super) fn write_chosen(tx: &mut Transaction<'_>, field: &str, value: &FieldValue) -> Result<(), EditError> {
    let bad = |why: String| EditError::Rejected(Rejection::new(RejectReason::InvalidRecord, why));
    let Some((id, key)) = field.rsplit_once('.') else { return Err(bad(format!("no member field `{field}`"))) };
    if member_merge_rule(key) != Some(MergeRule::Single) {
        return Err(bad(format!("`{key}` is not a single-valued field of a member")));
    }
    let member = find(tx, id)?.ok_or_else(|| not_found(id))?;
    match value {
        FieldValue::Text(t) => {
            tx.put(&member, key, t.as_str())?;
        }
        FieldValue::Empty => super::merge::clear_key(tx, &member, key)?,
        _ => return Err(bad(format!("a member's `{key}` is text"))),
    }
    Ok(())
}
