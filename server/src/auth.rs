//! Who is asking: passwords (argon2id), device registration and per-device
//! bearer tokens (`<device id>.<secret>`, only a SHA-256 of the secret stored,
//! compared in constant time).

use crate::error::ApiError;
use crate::store::{Device, Person, Store};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gridsync_shared::protocol::DeviceRegistration;
use gridsync_shared::{Author, DeviceId};
use rand::RngCore;
use rand_core06::OsRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Hashes a password for storage (argon2id, random salt, PHC string).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))
}

/// Checks a password against a stored hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash of a password nobody has, so an unknown username costs the same time.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("no such person").unwrap_or_default())
}

/// Signs a person in and registers a new device for them, with a fresh token
/// and a fresh Automerge actor. Wrong credentials give one error for both cases.
pub fn sign_in(
    store: &dyn Store,
    username: &str,
    password: &str,
    device_name: &str,
    now: i64,
) -> Result<DeviceRegistration, ApiError> {
    let person = store.person_by_username(username.trim())?;
    let ok = match &person {
        Some(p) => verify_password(password, &p.password_hash),
        None => {
            verify_password(password, dummy_hash());
            false
        }
    };
    let person = match person {
        Some(p) if ok => p,
        _ => return Err(ApiError::Unauthorized("用户名或密码错误 (wrong username or password)".into())),
    };
    let name = device_name.trim();
    if name.chars().count() > 100 {
        return Err(ApiError::BadRequest("device name longer than 100 characters".into()));
    }
    register_device(store, &person, if name.is_empty() { "手机" } else { name }, now)
}

/// Registers a device for `person` and returns its one-time token.
pub fn register_device(
    store: &dyn Store,
    person: &Person,
    name: &str,
    now: i64,
) -> Result<DeviceRegistration, ApiError> {
    let mut rng = rand::rng();
    let mut actor = [0u8; 16];
    rng.fill_bytes(&mut actor);
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let id = DeviceId(uuid::Uuid::new_v4());
    let device = Device {
        id,
        person: person.id,
        name: name.to_string(),
        actor: actor.to_vec(),
        token_hash: Sha256::digest(secret).into(),
        created_at: now,
        revoked_at: None,
    };
    store.put_device(&device)?;
    store.flush()?;
    Ok(DeviceRegistration {
        device: id,
        token: format!("{id}.{}", URL_SAFE_NO_PAD.encode(secret)),
        actor: hex::encode(actor),
        person: person.id,
        name: person.name.clone(),
        role: person.role,
        territory: person.territory.clone(),
    })
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

/// Checks an `Authorization` header value and returns the caller.
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
    if device.revoked_at.is_some() {
        return Err(unauthorized("this device has been revoked (设备已被注销)"));
    }
    let person = store.person(device.person)?.ok_or_else(|| unauthorized("this device's person no longer exists"))?;
    Ok(Caller { device, person })
}
