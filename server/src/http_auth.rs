//! Signing in and who-am-I: `POST /v1/auth/sign-in` and `GET /v1/me`.
//! Routes stay thin; the work is in [`crate::auth`].

use crate::auth;
use crate::error::ApiError;
use crate::http::{AppState, blocking, caller, error_reply, now_ms};
use bytes::Bytes;
use gridsync_shared::protocol::SignInRequest;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

fn json_reply<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

async fn sign_in_route(state: AppState, body: Bytes) -> Result<Response, ApiError> {
    let req: SignInRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("sign-in body: {e}")))?;
    let store = state.store.clone();
    let reg = blocking(move || auth::sign_in(store.as_ref(), &req.username, &req.password, &req.device_name, now_ms()))
        .await?;
    tracing::info!(device = %reg.device, person = %reg.person, "device registered");
    Ok(json_reply(StatusCode::OK, &reg))
}

async fn me_route(state: AppState, authorization: Option<String>) -> Result<Response, ApiError> {
    let c = caller(&state, authorization).await?;
    Ok(json_reply(
        StatusCode::OK,
        &serde_json::json!({
            "device": c.device.id, "person": c.person.id, "name": c.person.name,
            "role": c.person.role, "territory": c.person.territory,
        }),
    ))
}

/// `POST /v1/auth/sign-in` and `GET /v1/me`.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let auth = warp::header::optional::<String>("authorization");
    let sign_in = warp::path!("v1" / "auth" / "sign-in")
        .and(warp::post())
        .and(warp::body::content_length_limit(16 * 1024))
        .and(with_state.clone())
        .and(warp::body::bytes())
        .then(|s, b| async move { sign_in_route(s, b).await.unwrap_or_else(|e| error_reply(&e)) });
    let me = warp::path!("v1" / "me")
        .and(warp::get())
        .and(with_state)
        .and(auth)
        .then(|s, a| async move { me_route(s, a).await.unwrap_or_else(|e| error_reply(&e)) });
    sign_in.or(me).unify()
}
