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
use automerge::{ChangeHash, ObjId, ObjType, ROOT, ReadDoc, Value};

/// The root key of the members map.
pub(super) const MEMBERS_MAP: &str = "members_by_id";
/// The root key of the earlier members list.
pub(super) const MEMBERS_LIST: &str = "members";
/// The keys a member's map may hold.
pub(super) const MEMBER_KEYS: [&str; 5] = ["name", "relation", "id_number", "phone", "tags"];

/// Every member's id and map object, as of `heads` (or now): the earlier
/// list's entries in order, then the map's members by id (ids are UUID v7, so
/// in the order they were added). Members of every concurrently made map are
/// included (two phones adding a household's first member at once, to a
/// household from before the map, each make one).
pub(super) fn member_objects<D: ReadDoc>(
    doc: &D,
    heads: Option<&[ChangeHash]>,
) -> Result<Vec<(String, ObjId)>, RecordError> {
    let err = |e: automerge::AutomergeError| RecordError::Document(e.to_string());
    let all = |obj: &ObjId, key: &str| match heads {
        Some(h) => doc.get_all_at(obj, key, h),
        None => doc.get_all(obj, key),
    };
    let mut out = Vec::new();
    match heads {
        Some(h) => doc.get_at(ROOT, MEMBERS_LIST, h),
        None => doc.get(ROOT, MEMBERS_LIST),
    }
    .map_err(err)?
    .map(|(v, list)| {
        if !matches!(v, Value::Object(ObjType::List)) {
            return Err(RecordError::WrongType { field: MEMBERS_LIST.into(), expected: "a list" });
        }
        let len = heads.map_or_else(|| doc.length(&list), |h| doc.length_at(&list, h));
        if len > limits::LIST_ENTRIES {
            return Err(RecordError::Invalid { field: MEMBERS_LIST.into(), problem: "too many members".into() });
        }
        for i in 0..len {
            let item = match heads {
                Some(h) => doc.get_at(&list, i, h),
                None => doc.get(&list, i),
            }
            .map_err(err)?;
            match item {
                Some((Value::Object(ObjType::Map), id)) => out.push((id.to_string(), id)),
                _ => return Err(RecordError::WrongType { field: format!("members[{i}]"), expected: "a map" }),
            }
        }
        Ok(())
    })
    .transpose()?;
    let mut keyed = Vec::new();
    for (v, map) in all(&ROOT, MEMBERS_MAP).map_err(err)? {
        if !matches!(v, Value::Object(ObjType::Map)) {
            return Err(RecordError::WrongType { field: MEMBERS_MAP.into(), expected: "a map" });
        }
        let keys: Vec<String> = match heads {
            Some(h) => doc.keys_at(&map, h).collect(),
            None => doc.keys(&map).collect(),
        };
        for key in keys {
            if uuid::Uuid::parse_str(&key).is_err() {
                return Err(RecordError::Invalid {
                    field: format!("{MEMBERS_MAP}.{key}"),
                    problem: "not a member id".into(),
                });
            }
            let item = match heads {
                Some(h) => doc.get_at(&map, key.as_str(), h),
                None => doc.get(&map, key.as_str()),
            }
            .map_err(err)?;
            match item {
                Some((Value::Object(ObjType::Map), id)) => keyed.push((key, id)),
                _ => return Err(RecordError::WrongType { field: format!("{MEMBERS_MAP}.{key}"), expected: "a map" }),
            }
        }
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
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
pub(super) fn new_member_id(now: i64) -> String {
    let mut random = [0u8; 10];
    random.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..10]);
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
        let present = read_all(tx, None)?.iter().any(|(_, had)| same(had));
        if !present {
            add(tx, &new_member_id(now), m)?;
        }
    }
    Ok(())
}

/// Reads every member with its id, as of `heads` (or now).
pub(super) fn read_all<D: ReadDoc>(doc: &D, heads: Option<&[ChangeHash]>) -> Result<Vec<(ObjId, Member)>, RecordError> {
    member_objects(doc, heads)?.into_iter().map(|(id, obj)| read_one(doc, heads, &id, &obj).map(|m| (obj, m))).collect()
}

fn read_one<D: ReadDoc>(doc: &D, heads: Option<&[ChangeHash]>, id: &str, obj: &ObjId) -> Result<Member, RecordError> {
    let err = |e: automerge::AutomergeError| RecordError::Document(e.to_string());
    let field = |key: &str| format!("members.{id}.{key}");
    let keys: Vec<String> = match heads {
        Some(h) => doc.keys_at(obj, h).collect(),
        None => doc.keys(obj).collect(),
    };
    if let Some(k) = keys.iter().find(|k| !MEMBER_KEYS.contains(&k.as_str())) {
        return Err(RecordError::UnknownField(field(k)));
    }
    let text = |key: &str, max: usize| -> Result<String, RecordError> {
        let got = match heads {
            Some(h) => doc.get_at(obj, key, h),
            None => doc.get(obj, key),
        }
        .map_err(err)?;
        match got {
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
    let lists = match heads {
        Some(h) => doc.get_all_at(obj, "tags", h),
        None => doc.get_all(obj, "tags"),
    }
    .map_err(err)?;
    for (v, list) in lists {
        if !matches!(v, Value::Object(ObjType::List)) {
            return Err(RecordError::WrongType { field: field("tags"), expected: "a list" });
        }
        let len = heads.map_or_else(|| doc.length(&list), |h| doc.length_at(&list, h));
        for i in 0..len.min(limits::LIST_ENTRIES) {
            let item = match heads {
                Some(h) => doc.get_at(&list, i, h),
                None => doc.get(&list, i),
            }
            .map_err(err)?;
            match item {
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
        id_number: text("id_number", 40)?,
        phone: text("phone", 40)?,
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
