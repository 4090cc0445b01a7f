//! `GET /v1/directory`: the names of the people and territories in the
//! caller's scope ([`gridsync_shared::directory::in_scope`]), so phones show
//! who and where in words. Nothing secret: no username, password hash or phone.
//!
//! The answer carries a strong `ETag` (a hash of its bytes); a phone asking
//! again with `If-None-Match` gets `304 Not Modified` while nothing changed.

use crate::error::ApiError;
use crate::http::{AppState, blocking, caller, error_reply};
use crate::store::{Person, Store};
use gridsync_shared::directory::{Directory, DirectoryPerson, DirectoryTerritory, in_scope};
use sha2::{Digest, Sha256};
use warp::Filter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

/// The directory `viewer` may see: people and territory nodes in their scope,
/// people ordered by territory then name, territories by path.
pub fn directory_for(store: &dyn Store, viewer: &Person) -> Result<Directory, ApiError> {
    let scope = &viewer.territory;
    let mut people = Vec::new();
    for p in store.people()? {
        if !in_scope(scope, &p.territory) {
            continue;
        }
        let enabled = store.person_disabled_at(p.id)?.is_none();
        people.push(DirectoryPerson { id: p.id, name: p.name, role: p.role, territory: p.territory, enabled });
    }
    people.sort_by(|a, b| (&a.territory, &a.name, a.id).cmp(&(&b.territory, &b.name, b.id)));
    let territories = store
        .territories()?
        .into_iter()
        .filter(|t| in_scope(scope, &t.path))
        .map(|t| DirectoryTerritory { path: t.path, name: t.name })
        .collect();
    Ok(Directory { people, territories })
}

/// The strong entity tag of a directory's JSON bytes: a quoted SHA-256 prefix.
pub fn etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// Whether an `If-None-Match` header value names `tag` (or is `*`). Weak
/// forms (`W/"..."`) match too, as RFC 9110 asks for this header.
pub fn none_match(if_none_match: &str, tag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
}

async fn directory_route(
    state: AppState,
    authorization: Option<String>,
    if_none_match: Option<String>,
) -> Result<Response, ApiError> {
    let c = caller(&state, authorization).await?;
    let store = state.store.clone();
    let directory = blocking(move || directory_for(store.as_ref(), &c.person)).await?;
    let body = serde_json::to_vec(&directory).map_err(|e| ApiError::Internal(e.to_string()))?;
    let tag = etag(&body);
    let mut reply = if if_none_match.is_some_and(|v| none_match(&v, &tag)) {
        let mut r = Response::new(Vec::new().into());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(body.into());
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    };
    let h = reply.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    // Phones ask again after each sync; the answer depends on who asks.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("authorization"));
    Ok(reply)
}

/// `GET /v1/directory` (bearer token, like `/v1/me`).
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    warp::path!("v1" / "directory")
        .and(warp::get())
        .and(with_state)
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("if-none-match"))
        .then(|s, a, inm| async move { directory_route(s, a, inm).await.unwrap_or_else(|e| error_reply(&e)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_names_the_tag_in_a_list_weakly_or_as_a_star() {
        let tag = etag(b"{}");
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34);
        assert!(none_match(&tag, &tag));
        assert!(none_match(&format!("\"x\", W/{tag}"), &tag));
        assert!(none_match("*", &tag));
        assert!(!none_match("\"x\"", &tag));
        assert_ne!(etag(b"{}"), etag(b"[]"));
    }
}
