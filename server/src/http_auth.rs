//! Signing in, who-am-I and changing one's password: `POST /v1/auth/sign-in`,
//! `GET /v1/me`, `POST /v1/auth/password`. Every password check passes the
//! throttle first and runs on the bounded hashing pool; the work is in [`crate::auth`].

use crate::auth::{
    self, HashPool, SignInPolicy, SignInThrottle, check_credentials, check_new_password, hash_password,
    password_fingerprint, verify_password,
};
use crate::error::ApiError;
use crate::http::{AppState, blocking, caller, error_reply, now_ms};
use bytes::Bytes;
use gridsync_shared::protocol::{ChangePasswordRequest, SignInRequest};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

fn json_reply<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("{what} body: {e}")))
}

/// Counts a failed password check and audits a lockout it starts.
async fn count_failure(
    state: &AppState,
    throttle: &SignInThrottle,
    username: &str,
    password: u64,
    ip: Option<IpAddr>,
    what: &str,
) {
    let outcome = throttle.failed(username, password, ip, Instant::now());
    tracing::warn!(
        username,
        address = ?ip,
        username_failures = outcome.username_failures,
        address_failures = outcome.address_failures,
        "{what} failed: wrong password"
    );
    if let Some(lockout) = outcome.lockout {
        let store = state.store.clone();
        let detail = format!("{what}: {lockout}");
        let audited = blocking(move || Ok(store.append_audit("sign-in", "sign_in.lockout", &detail, now_ms())?)).await;
        if let Err(e) = audited {
            tracing::error!(error = %e, "could not audit a sign-in lockout");
        }
    }
}

async fn sign_in_route(
    state: AppState,
    throttle: Arc<SignInThrottle>,
    addr: Option<SocketAddr>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: SignInRequest = json_body(&body, "sign-in")?;
    let username = req.username.trim().to_string();
    let ip = addr.map(|a| a.ip());
    // Failures against a password since reset (by an administrator or the
    // person) no longer count: the new password works at once.
    let password = {
        let (store, username) = (state.store.clone(), username.clone());
        blocking(move || Ok(store.person_by_username(&username)?.map(|p| p.password_hash))).await?
    };
    let password = password_fingerprint(password.as_deref());
    throttle.password_is(&username, password);
    throttle.check(&username, ip, Instant::now())?;
    let person = {
        let (store, username, password) = (state.store.clone(), username.clone(), req.password);
        HashPool::shared().run(move || check_credentials(store.as_ref(), &username, &password)).await??
    };
    let Some(person) = person else {
        count_failure(&state, &throttle, &username, password, ip, "sign-in").await;
        return Err(auth::wrong_credentials());
    };
    throttle.succeeded(&username);
    let store = state.store.clone();
    let (reg, revoked) = blocking(move || {
        let now = now_ms();
        let (reg, revoked) = auth::sign_in_device(store.as_ref(), &person, &req.device_name, req.replaces, now)?;
        let actor = format!("person:{}", person.username);
        for r in &revoked {
            let detail = format!("{} of {}: {}; new device {}", r.device, person.username, r.why, reg.device);
            store.append_audit_in(Some(&person.territory), &actor, "device.revoke", &detail, now)?;
        }
        Ok((reg, revoked))
    })
    .await?;
    tracing::info!(device = %reg.device, person = %reg.person, revoked = revoked.len(), "device registered");
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

/// Changes the caller's password. The person's other devices are revoked:
/// one changes a password because someone else may know it, and those are
/// the devices to cut off; the person's own other phone signs in again with
/// the new password and pushes its unsynced work under its new device.
async fn password_route(
    state: AppState,
    throttle: Arc<SignInThrottle>,
    addr: Option<SocketAddr>,
    authorization: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = caller(&state, authorization).await?;
    let req: ChangePasswordRequest = json_body(&body, "password change")?;
    check_new_password(&req.new_password)?;
    if req.new_password == req.old_password {
        return Err(ApiError::BadRequest("新密码不能与原密码相同 (the new password is the old one)".into()));
    }
    let ip = addr.map(|a| a.ip());
    let username = c.person.username.clone();
    // A stolen token must not become a way to guess the password at leisure.
    let password = password_fingerprint(Some(&c.person.password_hash));
    throttle.password_is(&username, password);
    throttle.check(&username, ip, Instant::now())?;
    let old_hash = c.person.password_hash.clone();
    let new_hash = HashPool::shared()
        .run(move || match verify_password(&req.old_password, &old_hash) {
            true => hash_password(&req.new_password).map(Some),
            false => Ok(None),
        })
        .await??;
    let Some(new_hash) = new_hash else {
        count_failure(&state, &throttle, &username, password, ip, "password change").await;
        return Err(ApiError::Forbidden("原密码不正确 (the old password is wrong)".into()));
    };
    throttle.succeeded(&username);
    let store = state.store.clone();
    let revoked = blocking(move || {
        let mut person =
            store.person(c.person.id)?.ok_or_else(|| ApiError::NotFound("this person no longer exists".into()))?;
        if person.password_hash != c.person.password_hash {
            return Err(ApiError::Conflict(
                "密码刚刚被修改过，请重新登录后再试 (the password changed meanwhile)".into(),
            ));
        }
        person.password_hash = new_hash;
        store.put_person(&person)?;
        let now = now_ms();
        let revoked = auth::revoke_devices_of(store.as_ref(), person.id, Some(c.device.id), now)?;
        store.flush()?;
        let detail = format!("{} ({}): {} other devices revoked", person.username, person.id, revoked.len());
        let actor = format!("person:{}", person.username);
        store.append_audit_in(Some(&person.territory), &actor, "person.change_password", &detail, now)?;
        Ok(revoked.len())
    })
    .await?;
    Ok(json_reply(
        StatusCode::OK,
        &serde_json::json!({
            "message": if revoked > 0 { "密码已修改；其他设备需要用新密码重新登录" } else { "密码已修改" },
            "revoked_devices": revoked,
        }),
    ))
}

/// The client's address: from the connection layer, or from warp's own server.
fn client_addr() -> impl Filter<Extract = (Option<SocketAddr>,), Error = std::convert::Infallible> + Clone {
    crate::connections::peer_addr().and(warp::addr::remote()).map(|a: Option<SocketAddr>, b| a.or(b))
}

/// `POST /v1/auth/sign-in`, `GET /v1/me` and `POST /v1/auth/password`, with
/// one sign-in throttle (settings from [`SignInPolicy::from_env`]).
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let throttle = Arc::new(SignInThrottle::new(SignInPolicy::from_env()));
    let with_state = warp::any().map(move || state.clone());
    let with_throttle = warp::any().map(move || throttle.clone());
    let auth = warp::header::optional::<String>("authorization");
    let sign_in = warp::path!("v1" / "auth" / "sign-in")
        .and(warp::post())
        .and(warp::body::content_length_limit(16 * 1024))
        .and(with_state.clone())
        .and(with_throttle.clone())
        .and(client_addr())
        .and(warp::body::bytes())
        .then(|s, t, a, b| async move { sign_in_route(s, t, a, b).await.unwrap_or_else(|e| error_reply(&e)) });
    let password = warp::path!("v1" / "auth" / "password")
        .and(warp::post())
        .and(warp::body::content_length_limit(16 * 1024))
        .and(with_state.clone())
        .and(with_throttle)
        .and(client_addr())
        .and(auth)
        .and(warp::body::bytes())
        .then(|s, t, ad, a, b| async move { password_route(s, t, ad, a, b).await.unwrap_or_else(|e| error_reply(&e)) });
    let me = warp::path!("v1" / "me")
        .and(warp::get())
        .and(with_state)
        .and(auth)
        .then(|s, a| async move { me_route(s, a).await.unwrap_or_else(|e| error_reply(&e)) });
    sign_in.or(me).unify().or(password).unify()
}
