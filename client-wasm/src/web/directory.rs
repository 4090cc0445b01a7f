//! The directory of names and the "changed by others" list, for the app:
//! `setDirectory`, `directory`, `directoryEtag`, `personName`,
//! `territoryName` (with fallbacks), `knownPersonName`, `knownTerritoryName`
//! (undefined when not listed), `changedSince`.

use super::{Phone, js_err, to_js};
use gridsync_shared::Role;
use gridsync_shared::directory::{Directory, DirectoryPerson, DirectoryTerritory};
use serde::Serialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
impl Phone {
    /// Keeps the directory `GET /v1/directory` answered (the parsed object,
    /// or its JSON text) with the answer's `ETag`, in IndexedDB. Returns true
    /// if it differs from the one kept before (the app then redraws names).
    /// Anything that is not a valid directory throws a clear error and
    /// changes nothing.
    #[wasm_bindgen(js_name = setDirectory)]
    pub fn set_directory(&mut self, directory: JsValue, etag: Option<String>) -> Result<bool, JsError> {
        let value = match directory.as_string() {
            Some(text) => {
                js_sys::JSON::parse(&text).map_err(|_| JsError::new("invalid directory: the text is not JSON"))?
            }
            None => directory,
        };
        let directory = read_directory(&value).map_err(|e| JsError::new(&format!("invalid directory: {e}")))?;
        self.replica.set_directory(directory, etag).map_err(js_err)
    }

    /// The kept directory, `{people: [{id, name, role, territory, enabled}],
    /// territories: [{path, name}]}`, or null before the first one arrived.
    pub fn directory(&self) -> Result<JsValue, JsError> {
        to_js(&self.replica.directory())
    }

    /// The kept directory's `ETag` (for `If-None-Match`), or undefined.
    #[wasm_bindgen(js_name = directoryEtag)]
    pub fn directory_etag(&self) -> Option<String> {
        self.replica.directory_etag().map(str::to_string)
    }

    /// A person's name, or the first eight characters of their id when the
    /// directory does not list them.
    #[wasm_bindgen(js_name = personName)]
    pub fn person_name(&self, id: &str) -> String {
        self.replica.person_label(id)
    }

    /// A territory's name (e.g. 第一网格), or its path when not listed.
    #[wasm_bindgen(js_name = territoryName)]
    pub fn territory_name(&self, path: &str) -> String {
        self.replica.territory_label(path)
    }

    /// A person's name if the directory lists them, else undefined (for a
    /// screen that words an unknown person its own way).
    #[wasm_bindgen(js_name = knownPersonName)]
    pub fn known_person_name(&self, id: &str) -> Option<String> {
        id.parse().ok().and_then(|id| self.replica.person_name(id)).map(str::to_string)
    }

    /// A territory's name if the directory lists it, else undefined.
    #[wasm_bindgen(js_name = knownTerritoryName)]
    pub fn known_territory_name(&self, path: &str) -> Option<String> {
        path.parse().ok().and_then(|p| self.replica.territory_name(&p)).map(str::to_string)
    }

    /// Records others changed (not this phone's own edits) whose changes
    /// arrived after `since` (Unix ms, this phone's clock): `[{id, at, kind}]`,
    /// newest first; at most the last 2,000 records are remembered.
    #[wasm_bindgen(js_name = changedSince)]
    pub fn changed_since(&self, since: f64) -> Result<JsValue, JsError> {
        #[derive(Serialize)]
        struct Changed {
            id: String,
            at: i64,
            kind: Option<&'static str>,
        }
        let out: Vec<Changed> = self
            .replica
            .changed_since(since as i64)
            .into_iter()
            .map(|(id, at)| Changed { id: id.to_string(), at, kind: self.replica.kind_of(id).map(|k| k.as_str()) })
            .collect();
        to_js(&out)
    }
}

/// Reads a directory out of the parsed JSON by hand, field by field (serde's
/// derive through serde-wasm-bindgen cost the phone's WebAssembly ~8 KB raw).
/// Accepts what the derive accepted: an object whose `people` are
/// `{id, name, role, territory, enabled}` and whose `territories` are
/// `{path, name}`, other fields ignored. The error names the entry and field.
fn read_directory(value: &JsValue) -> Result<Directory, String> {
    if !value.is_object() {
        return Err("expected an object {people, territories}".into());
    }
    let people = entries(value, "people", |p, at| {
        // Exactly the roles' JSON names (Role::as_str), as serde's derive took them.
        let role = role(p, at)?;
        let enabled =
            field(p, at, "enabled")?.as_bool().ok_or_else(|| format!("{at}.enabled: expected true or false"))?;
        Ok(DirectoryPerson {
            id: parsed(p, at, "id")?,
            name: text(p, at, "name")?,
            role,
            territory: parsed(p, at, "territory")?,
            enabled,
        })
    })?;
    let territories = entries(value, "territories", |t, at| {
        Ok(DirectoryTerritory { path: parsed(t, at, "path")?, name: text(t, at, "name")? })
    })?;
    Ok(Directory { people, territories })
}

/// The entries of the list `key`, each an object read by `read` (given the
/// entry and its name for messages, e.g. `people[3]`).
fn entries<T>(
    value: &JsValue,
    key: &str,
    read: impl Fn(&JsValue, &str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let list = js_sys::Reflect::get(value, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED);
    if !js_sys::Array::is_array(&list) {
        return Err(format!("`{key}` must be a list"));
    }
    let list = js_sys::Array::from(&list);
    let mut out = Vec::with_capacity(list.length() as usize);
    for (i, entry) in list.iter().enumerate() {
        let at = format!("{key}[{i}]");
        if !entry.is_object() {
            return Err(format!("every entry of `{key}` must be an object ({at} is not)"));
        }
        out.push(read(&entry, &at)?);
    }
    Ok(out)
}

/// Field `role` of `entry`: exactly the roles' JSON names (Role::as_str), as
/// serde's derive took them.
pub(super) fn role(entry: &JsValue, at: &str) -> Result<Role, String> {
    let role = text(entry, at, "role")?;
    [Role::FieldStaff, Role::Supervisor, Role::Administrator]
        .into_iter()
        .find(|r| r.as_str() == role)
        .ok_or_else(|| format!("{at}.role: unknown role {role:?}"))
}

/// Field `key` of `entry`, which must be present.
pub(super) fn field(entry: &JsValue, at: &str, key: &str) -> Result<JsValue, String> {
    match js_sys::Reflect::get(entry, &JsValue::from_str(key)) {
        Ok(v) if !v.is_undefined() => Ok(v),
        _ => Err(format!("{at}: missing field `{key}`")),
    }
}

/// Text field `key` of `entry`.
pub(super) fn text(entry: &JsValue, at: &str, key: &str) -> Result<String, String> {
    field(entry, at, key)?.as_string().ok_or_else(|| format!("{at}.{key}: expected text"))
}

/// Text field `key` of `entry`, parsed (an id or a territory path).
pub(super) fn parsed<T: std::str::FromStr<Err: std::fmt::Display>>(
    entry: &JsValue,
    at: &str,
    key: &str,
) -> Result<T, String> {
    text(entry, at, key)?.parse().map_err(|e| format!("{at}.{key}: {e}"))
}
