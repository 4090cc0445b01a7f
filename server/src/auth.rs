//! Who is asking: passwords (argon2id, hashed on a bounded pool), sign-in
//! with its throttle, device registration and replacement, and per-device
//! bearer tokens (`<device id>.<secret>`, only a SHA-256 of the secret stored,
//! compared in constant time).

mod pool;
mod throttle;

pub use pool::{HashPool, HashPoolLimits};
pub use throttle::{FailureOutcome, SignInPolicy, SignInThrottle, Thresholds, password_fingerprint, too_many_attempts};

use crate::error::{ApiError, SignedOutReason};
use crate::store::{Device, Person, Store};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gridsync_shared::protocol::DeviceRegistration;
use gridsync_shared::{Author, DeviceId, PersonId};
use rand::RngCore;
use rand_core06::OsRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The most characters a password may have.
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Active devices one person may have; signing in on an eleventh phone
/// revokes the one registered longest ago.
pub const MAX_ACTIVE_DEVICES: usize = 10;

/// The refusal for wrong credentials: one answer whether the username exists or not.
pub fn wrong_credentials() -> ApiError {
    ApiError::Unauthorized("用户名或密码错误 (wrong username or password)".into())
}

/// The refusal for a disabled person.
pub fn person_disabled() -> ApiError {
    ApiError::SignedOut {
        reason: SignedOutReason::PersonDisabled,
        message: "此账号已被停用，请联系管理员 (this account has been disabled)".into(),
    }
}

/// Checks a new password's length.
pub fn check_new_password(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(ApiError::BadRequest(format!(
            "密码至少需要 {MIN_PASSWORD_CHARS} 个字符 (password must have at least {MIN_PASSWORD_CHARS} characters)"
        )));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(ApiError::BadRequest(format!(
            "密码不能超过 {MAX_PASSWORD_CHARS} 个字符 (password longer than {MAX_PASSWORD_CHARS} characters)"
        )));
    }
    Ok(())
}

/// Hashes a password for storage (argon2id, random salt, PHC string).
/// Costs about 19 MB while it runs: servers call it on the [`HashPool`].
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))
}

/// Checks a password against a stored hash (on the [`HashPool`] in servers).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash of a password nobody has, so an unknown username costs the same time.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("no such person").unwrap_or_default())
}

/// The person `username` names if `password` is theirs; None for a wrong
/// password or an unknown username alike (which costs the same argon2 work).
/// Blocking and memory-hungry: run it on the [`HashPool`].
pub fn check_credentials(store: &dyn Store, username: &str, password: &str) -> Result<Option<Person>, ApiError> {
    let username = username.trim();
    // No one can have a longer name (see `admin::add_person`).
    let person = if username.len() > 64 { None } else { store.person_by_username(username)? };
    let ok = match &person {
        Some(p) => verify_password(password, &p.password_hash),
        None => {
            verify_password(password, dummy_hash());
            false
        }
    };
    Ok(person.filter(|_| ok))
}

/// A device revoked as a side effect of a sign-in, for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SideRevocation {
    /// The device.
    pub device: DeviceId,
    /// Why, in words for the audit log.
    pub why: &'static str,
}

/// Registers a device for a person who has just proved their password.
/// Refused if the person is disabled. The device the phone was before
/// (`replaces`), if it is this person's, is revoked; so are the oldest
/// beyond [`MAX_ACTIVE_DEVICES`]. Durable when it returns.
pub fn sign_in_device(
    store: &dyn Store,
    person: &Person,
    device_name: &str,
    replaces: Option<DeviceId>,
    now: i64,
) -> Result<(DeviceRegistration, Vec<SideRevocation>), ApiError> {
    if store.person_disabled_at(person.id)?.is_some() {
        return Err(person_disabled());
    }
    let name = device_name.trim();
    if name.chars().count() > 100 {
        return Err(ApiError::BadRequest("device name longer than 100 characters".into()));
    }
    let (device, token) = new_device(person, if name.is_empty() { "手机" } else { name }, now);
    store.put_device(&device)?;
    let mut revoked = Vec::new();
    if let Some(old) = replaces
        && let Some(mut d) = store.device(old)?
        && d.person == person.id
        && d.revoked_at.is_none()
    {
        // Another person's device id is ignored: nobody revokes what is not theirs.
        d.revoked_at = Some(now);
        store.put_device(&d)?;
        revoked.push(SideRevocation { device: old, why: "replaced by a new sign-in on the same phone" });
    }
    let mut active: Vec<Device> =
        devices_of(store, person.id)?.into_iter().filter(|d| d.revoked_at.is_none() && d.id != device.id).collect();
    active.sort_by_key(|d| (d.created_at, d.id));
    let excess = (active.len() + 1).saturating_sub(MAX_ACTIVE_DEVICES);
    for mut d in active.into_iter().take(excess) {
        d.revoked_at = Some(now);
        store.put_device(&d)?;
        revoked.push(SideRevocation { device: d.id, why: "more than 10 active devices: the oldest is revoked" });
    }
    store.flush()?;
    Ok((registration(&device, person, &token), revoked))
}

fn new_device(person: &Person, name: &str, now: i64) -> (Device, [u8; 32]) {
    let mut rng = rand::rng();
    let mut actor = [0u8; 16];
    rng.fill_bytes(&mut actor);
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let device = Device {
        id: DeviceId(uuid::Uuid::new_v4()),
        person: person.id,
        name: name.to_string(),
        actor: actor.to_vec(),
        token_hash: Sha256::digest(secret).into(),
        created_at: now,
        revoked_at: None,
    };
    (device, secret)
}

fn registration(device: &Device, person: &Person, secret: &[u8; 32]) -> DeviceRegistration {
    DeviceRegistration {
        device: device.id,
        token: format!("{}.{}", device.id, URL_SAFE_NO_PAD.encode(secret)),
        actor: hex::encode(&device.actor),
        person: person.id,
        name: person.name.clone(),
        role: person.role,
        territory: person.territory.clone(),
    }
}

/// Registers a device for `person` and returns its one-time token (the
/// administrator's `device add`, the demo and the load generator: no cap).
pub fn register_device(
    store: &dyn Store,
    person: &Person,
    name: &str,
    now: i64,
) -> Result<DeviceRegistration, ApiError> {
    let (device, secret) = new_device(person, name, now);
    store.put_device(&device)?;
    store.flush()?;
    Ok(registration(&device, person, &secret))
}

/// Every device of `person`, revoked or not.
pub fn devices_of(store: &dyn Store, person: PersonId) -> Result<Vec<Device>, ApiError> {
    Ok(store.devices()?.into_iter().filter(|d| d.person == person).collect())
}

/// Revokes every active device of `person` except `keep`; returns those
/// revoked. Not yet durable: the caller flushes.
pub fn revoke_devices_of(
    store: &dyn Store,
    person: PersonId,
    keep: Option<DeviceId>,
    now: i64,
) -> Result<Vec<DeviceId>, ApiError> {
    let mut revoked = Vec::new();
    for mut d in devices_of(store, person)? {
        if d.revoked_at.is_none() && Some(d.id) != keep {
            d.revoked_at = Some(now);
            store.put_device(&d)?;
            revoked.push(d.id);
        }
    }
    Ok(revoked)
}

/// A request's verified caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The device.
    pub device: Device,
    /// Its person.
    pub person: Person,
}

impl Caller {
    /// The caller as the shared rules see them.
    pub fn author(&self) -> Author {
        Author { person: self.person.id, role: self.person.role, territory: self.person.territory.clone() }
    }

    /// The device's Automerge actor.
    pub fn actor(&self) -> automerge::ActorId {
        automerge::ActorId::from(self.device.actor.as_slice())
    }
}

/// Checks an `Authorization` header value and returns the caller. A token
/// that was valid once answers `person_disabled` if its person is disabled,
/// else `device_revoked` if its device was revoked or replaced.
pub fn authenticate(store: &dyn Store, header: Option<&str>) -> Result<Caller, ApiError> {
    let unauthorized = |m: &str| ApiError::Unauthorized(m.to_string());
    let token = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("missing bearer token: sign in first"))?;
    let (id, secret) = token.trim().split_once('.').ok_or_else(|| unauthorized("malformed token"))?;
    let id: DeviceId = id.parse().map_err(|_| unauthorized("malformed token"))?;
    let secret = URL_SAFE_NO_PAD.decode(secret).map_err(|_| unauthorized("malformed token"))?;
    let device = store.device(id)?.ok_or_else(|| unauthorized("unknown device: sign in again"))?;
    let presented: [u8; 32] = Sha256::digest(&secret).into();
    if !bool::from(presented.ct_eq(&device.token_hash)) {
        return Err(unauthorized("invalid token"));
    }
    if store.person_disabled_at(device.person)?.is_some() {
        return Err(person_disabled());
    }
    if device.revoked_at.is_some() {
        return Err(ApiError::SignedOut {
            reason: SignedOutReason::DeviceRevoked,
            message: "此设备的登录已失效（设备被注销、被新的登录替换或密码已修改），请重新登录 \
                      (this device has been revoked or replaced: sign in again)"
                .into(),
        });
    }
    let person = store.person(device.person)?.ok_or_else(|| unauthorized("this device's person no longer exists"))?;
    Ok(Caller { device, person })
}
