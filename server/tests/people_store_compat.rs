//! A data directory written before people could be disabled still opens: its
//! people and devices, encoded here byte by byte in the stored layout of that
//! release (postcard, which has no field names, so a new field would break
//! decoding), are read, sign in, authenticate, and can be disabled, enabled
//! and reset. The new state lives under keys of its own.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gridsync_server::admin::{AdminCommand, PersonCommand, execute};
use gridsync_server::auth::{authenticate, check_credentials, hash_password, sign_in_device};
use gridsync_server::error::ApiError;
use gridsync_server::store::{SledStore, Store};
use gridsync_shared::{DeviceId, PersonId, Role};
use sha2::{Digest, Sha256};

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn zigzag(out: &mut Vec<u8>, n: i64) {
    varint(out, ((n << 1) ^ (n >> 63)) as u64);
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// `Person { id, username, name, role, territory, password_hash, created_at }`.
fn old_person(id: [u8; 16], username: &str, role: u64, territory: &str, hash: &str) -> Vec<u8> {
    let mut v = Vec::new();
    bytes(&mut v, &id);
    bytes(&mut v, username.as_bytes());
    bytes(&mut v, "李四".as_bytes());
    varint(&mut v, role);
    bytes(&mut v, territory.as_bytes());
    bytes(&mut v, hash.as_bytes());
    zigzag(&mut v, 1_767_225_600_000);
    v
}

/// `Device { id, person, name, actor, token_hash, created_at, revoked_at }`.
fn old_device(id: [u8; 16], person: [u8; 16], token_hash: [u8; 32]) -> Vec<u8> {
    let mut v = Vec::new();
    bytes(&mut v, &id);
    bytes(&mut v, &person);
    bytes(&mut v, "旧手机".as_bytes());
    bytes(&mut v, &[7u8; 16]);
    v.extend_from_slice(&token_hash);
    zigzag(&mut v, 1_767_225_600_001);
    v.push(0); // revoked_at: None
    v
}

#[test]
fn a_store_written_with_the_old_person_and_device_layout_opens_and_its_people_can_be_disabled() {
    let dir = tempfile::tempdir().expect("tmp");
    let (person, device) = (*uuid::Uuid::new_v4().as_bytes(), *uuid::Uuid::new_v4().as_bytes());
    let secret = [42u8; 32];
    {
        let db = sled::open(dir.path()).expect("raw sled");
        let hash = hash_password("password-li").expect("hash");
        db.insert([b"p/".as_slice(), &person].concat(), old_person(person, "li", 0, "xg/xn/sh/dh/g1", &hash))
            .expect("person");
        db.insert(b"u/li".as_slice(), person.as_slice()).expect("username");
        db.insert([b"v/".as_slice(), &device].concat(), old_device(device, person, Sha256::digest(secret).into()))
            .expect("device");
        db.flush().expect("flush");
    }
    let store = SledStore::open(dir.path()).expect("the old store opens");
    let li = store.person_by_username("li").expect("read").expect("li is there");
    assert_eq!((li.id, li.name.as_str(), li.role), (PersonId::from_bytes(person), "李四", Role::FieldStaff));
    assert_eq!(li.territory.as_str(), "xg/xn/sh/dh/g1");
    assert_eq!(store.person_disabled_at(li.id).expect("read"), None, "nobody is disabled in an old store");
    let old = store.device(DeviceId::from_bytes(device)).expect("read").expect("the old device is there");
    assert_eq!((old.name.as_str(), old.revoked_at), ("旧手机", None));

    let header = format!("Bearer {}.{}", old.id, URL_SAFE_NO_PAD.encode(secret));
    assert_eq!(authenticate(&store, Some(&header)).expect("the old token works").person.id, li.id);
    let checked = check_credentials(&store, "li", "password-li").expect("check").expect("the old hash verifies");
    assert_eq!(checked.id, li.id);

    let person_cmd = |c: PersonCommand| execute(&store, AdminCommand::Person(c), "cli");
    person_cmd(PersonCommand::Disable { username: "li".into() }).expect("disable");
    let refused = authenticate(&store, Some(&header)).expect_err("disabled");
    assert_eq!(refused.status().1, "person_disabled");
    assert!(matches!(sign_in_device(&store, &li, "新手机", None, 1), Err(ApiError::SignedOut { .. })));
    person_cmd(PersonCommand::Enable { username: "li".into() }).expect("enable");
    assert_eq!(authenticate(&store, Some(&header)).expect_err("still revoked").status().1, "device_revoked");
    let (reg, _) = sign_in_device(&store, &li, "新手机", Some(old.id), 2).expect("sign in again");
    let out = person_cmd(PersonCommand::ResetPassword { username: "li".into(), password: Some("new-password".into()) })
        .expect("reset");
    assert!(out.contains("1 devices revoked"), "{out}");
    assert!(store.device(reg.device).expect("read").expect("device").revoked_at.is_some());
    drop(store);

    // And the store written now opens again, with everything in place.
    let store = SledStore::open(dir.path()).expect("reopens");
    assert!(check_credentials(&store, "li", "new-password").expect("check").is_some());
    assert_eq!(store.person_disabled_at(li.id).expect("read"), None);
}
