//! The directory of names and the "changed by others" list, for the app:
//! `setDirectory`, `directory`, `directoryEtag`, `personName`,
//! `territoryName` (with fallbacks), `knownPersonName`, `knownTerritoryName`
//! (undefined when not listed), `changedSince`.

use super::{Phone, js_err, to_js};
use gridsync_shared::directory::Directory;
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
        check_shape(&value)?;
        let directory: Directory =
            serde_wasm_bindgen::from_value(value).map_err(|e| JsError::new(&format!("invalid directory: {e}")))?;
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

/// Checks the outline serde cannot word well: an object whose `people` and
/// `territories` are lists of objects.
fn check_shape(value: &JsValue) -> Result<(), JsError> {
    if !value.is_object() {
        return Err(JsError::new("invalid directory: expected an object {people, territories}"));
    }
    for field in ["people", "territories"] {
        let list = js_sys::Reflect::get(value, &JsValue::from_str(field)).unwrap_or(JsValue::UNDEFINED);
        if !js_sys::Array::is_array(&list) {
            return Err(JsError::new(&format!("invalid directory: `{field}` must be a list")));
        }
        if js_sys::Array::from(&list).iter().any(|entry| !entry.is_object()) {
            return Err(JsError::new(&format!("invalid directory: every entry of `{field}` must be an object")));
        }
    }
    Ok(())
}
