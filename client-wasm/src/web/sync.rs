//! Sync through the app: it posts the bytes of `buildRequest()` and hands the
//! answer to `applyResponse()`.

use super::{Phone, js_err, to_js};
use serde::Serialize;
use wasm_bindgen::prelude::*;

#[derive(Serialize)]
struct Report {
    acknowledged: usize,
    rejected: usize,
    received: usize,
    more: bool,
    pending: usize,
    again: bool,
}

#[wasm_bindgen]
impl Phone {
    /// The next sync request's body (uncompressed).
    #[wasm_bindgen(js_name = buildRequest)]
    pub fn build_request(&mut self) -> Vec<u8> {
        self.replica.build_request()
    }

    /// Applies a sync response body (already decompressed by the browser).
    /// Returns `{acknowledged, rejected, received, more, pending, again}`;
    /// `again` means: sync once more right away.
    #[wasm_bindgen(js_name = applyResponse)]
    pub fn apply_response(&mut self, body: &[u8], now: f64) -> Result<JsValue, JsError> {
        let r = self.replica.apply_response(body, now as i64).map_err(js_err)?;
        to_js(&Report {
            acknowledged: r.acknowledged,
            rejected: r.rejected.len(),
            received: r.received,
            more: r.more,
            pending: r.pending,
            again: r.needs_another_round(),
        })
    }

    /// The server answered a sync with 409 `store_restored`: give it the
    /// answer's `cursor` (base64). Every change this device made waits to be
    /// sent again, and sync goes on from that cursor. Returns the changes waiting.
    #[wasm_bindgen(js_name = storeRestored)]
    pub fn store_restored(&mut self, cursor: &str) -> Result<usize, JsError> {
        self.replica.store_restored(cursor).map_err(js_err)
    }
}
