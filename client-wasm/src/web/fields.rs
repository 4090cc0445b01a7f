//! Record fields read out of the app's JS objects by hand, exactly as serde's
//! derives took them through serde-wasm-bindgen (same keys, same defaults,
//! other keys ignored), without that decoder in the WebAssembly (~4 KB
//! brotli). A key whose value is `undefined` counts as absent; `null` is "no
//! value" for optional fields and refused for the others.

use gridsync_shared::records::{CaseFields, GeoPoint, HouseholdFields, Member, PromiseFields, VisitFields};
use js_sys::{Array, Reflect};
use wasm_bindgen::JsValue;

/// The value of `key`, or None when it is absent or undefined.
fn get(v: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(v, &JsValue::from_str(key)).ok().filter(|x| !x.is_undefined())
}

/// Like [`get`], `null` also being None (an `Option` field).
fn get_opt(v: &JsValue, key: &str) -> Option<JsValue> {
    get(v, key).filter(|x| !x.is_null())
}

fn required<T>(value: Option<T>, key: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("missing field `{key}`"))
}

fn object(v: &JsValue, what: &str) -> Result<(), String> {
    if v.is_object() && !Array::is_array(v) { Ok(()) } else { Err(format!("expected {what} (an object)")) }
}

fn as_text(x: JsValue, key: &str) -> Result<String, String> {
    x.as_string().ok_or_else(|| format!("`{key}`: expected text"))
}

fn as_integer(x: JsValue, key: &str) -> Result<i64, String> {
    const SAFE: f64 = 9_007_199_254_740_991.0;
    match x.as_f64() {
        Some(n) if n.fract() == 0.0 && n.abs() <= SAFE => Ok(n as i64),
        _ => Err(format!("`{key}`: expected a whole number")),
    }
}

fn as_number(x: JsValue, key: &str) -> Result<f64, String> {
    x.as_f64().ok_or_else(|| format!("`{key}`: expected a number"))
}

/// Parsed from text: an id, a kind.
fn as_parsed<T: std::str::FromStr<Err: std::fmt::Display>>(x: JsValue, key: &str) -> Result<T, String> {
    as_text(x, key)?.parse().map_err(|e| format!("`{key}`: {e}"))
}

fn as_list(x: JsValue, key: &str) -> Result<Array, String> {
    if Array::is_array(&x) { Ok(Array::from(&x)) } else { Err(format!("`{key}`: expected a list")) }
}

fn as_texts(x: JsValue, key: &str) -> Result<Vec<String>, String> {
    as_list(x, key)?.iter().map(|t| as_text(t, key)).collect()
}

fn text(v: &JsValue, key: &str) -> Result<Option<String>, String> {
    get(v, key).map(|x| as_text(x, key)).transpose()
}

fn texts(v: &JsValue, key: &str) -> Result<Option<Vec<String>>, String> {
    get(v, key).map(|x| as_texts(x, key)).transpose()
}

fn opt_parsed<T: std::str::FromStr<Err: std::fmt::Display>>(v: &JsValue, key: &str) -> Result<Option<T>, String> {
    get_opt(v, key).map(|x| as_parsed(x, key)).transpose()
}

/// `{lat, lon, accuracy_m?}`.
pub(super) fn geo_point(v: &JsValue) -> Result<GeoPoint, String> {
    object(v, "a position {lat, lon, accuracy_m}")?;
    Ok(GeoPoint {
        lat: as_number(required(get(v, "lat"), "lat")?, "lat")?,
        lon: as_number(required(get(v, "lon"), "lon")?, "lon")?,
        accuracy_m: get_opt(v, "accuracy_m").map(|x| as_number(x, "accuracy_m")).transpose()?,
    })
}

/// `{id, name, relation, id_number, phone, tags}`, each optional.
pub(super) fn member(v: &JsValue) -> Result<Member, String> {
    object(v, "a member")?;
    Ok(Member {
        id: text(v, "id")?.unwrap_or_default(),
        name: text(v, "name")?.unwrap_or_default(),
        relation: text(v, "relation")?.unwrap_or_default(),
        id_number: text(v, "id_number")?.unwrap_or_default(),
        phone: text(v, "phone")?.unwrap_or_default(),
        tags: texts(v, "tags")?.unwrap_or_default(),
    })
}

/// A household's fields, each optional.
pub(super) fn household(v: &JsValue) -> Result<HouseholdFields, String> {
    object(v, "a household's fields")?;
    let members = match get(v, "members") {
        None => Vec::new(),
        Some(x) => as_list(x, "members")?.iter().map(|m| member(&m)).collect::<Result<_, _>>()?,
    };
    Ok(HouseholdFields {
        address: text(v, "address")?.unwrap_or_default(),
        head: text(v, "head")?.unwrap_or_default(),
        phone: text(v, "phone")?.unwrap_or_default(),
        id_number: text(v, "id_number")?.unwrap_or_default(),
        members,
        tags: texts(v, "tags")?.unwrap_or_default(),
        notes: text(v, "notes")?.unwrap_or_default(),
    })
}

/// A visit log's fields, each optional.
pub(super) fn visit(v: &JsValue) -> Result<VisitFields, String> {
    object(v, "a visit log's fields")?;
    Ok(VisitFields {
        household: opt_parsed(v, "household")?,
        visited_at: get(v, "visited_at").map(|x| as_integer(x, "visited_at")).transpose()?.unwrap_or_default(),
        kind: opt_parsed(v, "kind")?,
        location: get_opt(v, "location").map(|x| geo_point(&x)).transpose()?,
        notes: text(v, "notes")?.unwrap_or_default(),
        concerns: texts(v, "concerns")?.unwrap_or_default(),
        findings: text(v, "findings")?.unwrap_or_default(),
    })
}

/// A case's fields: `kind`, `title` and `description` required.
pub(super) fn case(v: &JsValue) -> Result<CaseFields, String> {
    object(v, "a case's fields")?;
    Ok(CaseFields {
        kind: as_parsed(required(get(v, "kind"), "kind")?, "kind")?,
        title: required(text(v, "title")?, "title")?,
        description: required(text(v, "description")?, "description")?,
        household: opt_parsed(v, "household")?,
        visit: opt_parsed(v, "visit")?,
        due_at: get_opt(v, "due_at").map(|x| as_integer(x, "due_at")).transpose()?,
    })
}

/// A promise's fields: `content` and `due_at` required.
pub(super) fn promise(v: &JsValue) -> Result<PromiseFields, String> {
    object(v, "a promise's fields")?;
    Ok(PromiseFields {
        content: required(text(v, "content")?, "content")?,
        household: opt_parsed(v, "household")?,
        due_at: as_integer(required(get(v, "due_at"), "due_at")?, "due_at")?,
    })
}
