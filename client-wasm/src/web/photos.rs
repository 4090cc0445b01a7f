//! Attaching photos to records from the app: `addPhotos`, and
//! `addFollowUpWithPhotos`. The bytes stay in the app's IndexedDB and go up on
//! their own; a record keeps only references, checked by the shared rules.

use super::Phone;
use super::records::parse_id;
use gridsync_shared::photos::{NewPhoto, PhotoHash, PhotoType};
use gridsync_shared::records::{GeoPoint, Satisfaction};
use js_sys::{Array, Reflect};
use wasm_bindgen::prelude::*;

fn field(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn number(obj: &JsValue, key: &str) -> Result<f64, JsError> {
    field(obj, key)
        .as_f64()
        .filter(|n| n.is_finite())
        .ok_or_else(|| JsError::new(&format!("photo: `{key}` must be a number")))
}

fn text(obj: &JsValue, key: &str) -> Result<String, JsError> {
    field(obj, key).as_string().ok_or_else(|| JsError::new(&format!("photo: `{key}` must be text")))
}

/// Reads `{sha256, size, mime, takenAt, location?: {lat, lon, accuracy_m?}, followUp?}`.
fn new_photo(obj: &JsValue) -> Result<NewPhoto, JsError> {
    let sha256 = PhotoHash::parse(&text(obj, "sha256")?).map_err(|e| JsError::new(&e.to_string()))?;
    let mime = PhotoType::from_mime(&text(obj, "mime")?).ok_or_else(|| JsError::new("photo: only JPEG or WebP"))?;
    let size = number(obj, "size")?;
    if size < 0.0 || size.fract() != 0.0 {
        return Err(JsError::new("photo: `size` must be a whole number of bytes"));
    }
    let location = match field(obj, "location") {
        l if l.is_null() || l.is_undefined() => None,
        l => Some(GeoPoint {
            lat: number(&l, "lat")?,
            lon: number(&l, "lon")?,
            accuracy_m: field(&l, "accuracy_m").as_f64(),
        }),
    };
    let follow_up = match field(obj, "followUp").as_string() {
        Some(s) if !s.is_empty() => Some(s.parse().map_err(|_| JsError::new("photo: `followUp` is not an id"))?),
        _ => None,
    };
    Ok(NewPhoto { sha256, size: size as u64, mime, taken_at: number(obj, "takenAt")? as i64, location, follow_up })
}

fn new_photos(photos: &Array) -> Result<Vec<NewPhoto>, JsError> {
    photos.iter().map(|p| new_photo(&p)).collect()
}

#[wasm_bindgen]
impl Phone {
    /// Attaches photos `[{sha256, size, mime, takenAt, location?, followUp?}]`
    /// to a visit log or a case (with `followUp`, to that follow-up), in one
    /// change. A photo already attached there is not attached again. Anything
    /// the rules refuse (more than 9, too large, not yours to attach) throws
    /// and changes nothing.
    #[wasm_bindgen(js_name = addPhotos)]
    pub fn add_photos(&mut self, id: &str, photos: Array, now: f64) -> Result<(), JsError> {
        let id = parse_id(id)?;
        let photos = new_photos(&photos)?;
        self.journaled(id, |r| r.edit(id, now as i64, |e| e.add_photos(&photos))).map(|_| ())
    }

    /// Adds a follow-up to a case together with its photos (as `addPhotos`
    /// takes them, without `followUp`), in one change; returns the follow-up's id.
    #[wasm_bindgen(js_name = addFollowUpWithPhotos)]
    pub fn add_follow_up_with_photos(
        &mut self,
        id: &str,
        note: &str,
        satisfaction: Option<String>,
        photos: Array,
        now: f64,
    ) -> Result<String, JsError> {
        let id = parse_id(id)?;
        let satisfaction = satisfaction
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<Satisfaction>().map_err(|e| JsError::new(&e)))
            .transpose()?;
        let photos = new_photos(&photos)?;
        self.journaled(id, |r| r.edit(id, now as i64, |e| e.add_follow_up_with_photos(note, satisfaction, &photos)))
            .map(|f| f.to_string())
    }
}
