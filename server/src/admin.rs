//! Administrative commands — territories, people, devices, the audit log — as
//! one set of functions over a [`Store`]. The CLI runs them directly on a
//! stopped server's data directory, or sends them to the running server over
//! its local admin socket; either way the same code runs and is audited.

use crate::auth::{check_new_password, hash_password, register_device, revoke_devices_of};
use crate::error::ApiError;
use crate::store::{Person, Store, Territory};
use clap::Subcommand;
use gridsync_shared::territory::Level;
use gridsync_shared::{DeviceId, PersonId, Role, TerritoryPath};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// How many territories a moved person's device may still push into (the
/// latest moves out); older ones end, so a never-syncing device holds little.
const MAX_GRACE_TERRITORIES: usize = 8;

/// An administrative command.
#[derive(Clone, Debug, Subcommand, Serialize, Deserialize)]
pub enum AdminCommand {
    /// Territories: city > district > sub-district > community > grid.
    #[command(subcommand)]
    Territory(TerritoryCommand),
    /// People who sign in.
    #[command(subcommand)]
    Person(PersonCommand),
    /// Registered devices (phones).
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Print the audit log.
    Audit {
        /// Only entries after this position.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

/// Territory commands.
#[derive(Clone, Debug, Subcommand, Serialize, Deserialize)]
pub enum TerritoryCommand {
    /// Add a territory node; its parent must exist (a city needs none).
    Add {
        /// Path, e.g. `xg/xn/cz/dh/g03` (a-z, 0-9, '-').
        path: String,
        /// Name, e.g. 第三网格.
        name: String,
    },
    /// List territory nodes.
    List,
}

/// Person commands.
#[derive(Clone, Debug, Subcommand, Serialize, Deserialize)]
pub enum PersonCommand {
    /// Add a person; prints their initial password once.
    Add {
        /// Sign-in name.
        #[arg(long)]
        username: String,
        /// Display name, e.g. 张伟.
        #[arg(long)]
        name: String,
        /// field_staff, supervisor or administrator.
        #[arg(long)]
        role: Role,
        /// Territory path they are responsible for (a grid for field staff).
        #[arg(long)]
        territory: String,
        /// Initial password (default: a random one, printed once).
        #[arg(long)]
        password: Option<String>,
    },
    /// Move a person to another territory (their phones follow at next sync).
    Move {
        /// Sign-in name.
        #[arg(long)]
        username: String,
        /// The new territory path.
        #[arg(long)]
        territory: String,
    },
    /// List people (with `disabled` for those who may not sign in).
    List,
    /// Disable a person: every device of theirs is revoked at once and
    /// sign-in is refused until `person enable`.
    Disable {
        /// Sign-in name.
        #[arg(long)]
        username: String,
    },
    /// Let a disabled person sign in again (their old devices stay revoked).
    Enable {
        /// Sign-in name.
        #[arg(long)]
        username: String,
    },
    /// Set a new password (printed once if not given); every device of
    /// theirs is revoked, so they sign in again with it.
    ResetPassword {
        /// Sign-in name.
        #[arg(long)]
        username: String,
        /// The new password (default: a random one, printed once).
        #[arg(long)]
        password: Option<String>,
    },
}

/// Device commands.
#[derive(Clone, Debug, Subcommand, Serialize, Deserialize)]
pub enum DeviceCommand {
    /// Register a device for a person and print its token once.
    Add {
        /// Whose device.
        #[arg(long)]
        username: String,
        /// A name for it.
        #[arg(long, default_value = "手机")]
        name: String,
    },
    /// List devices.
    List,
    /// Revoke a device: its token stops working at once.
    Revoke {
        /// The device id (see `device list`).
        id: DeviceId,
    },
}

fn now() -> i64 {
    crate::http::now_ms()
}

/// A readable random password (no look-alike characters).
pub fn random_password() -> String {
    const CHARS: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..12).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect()
}

/// Runs `command` on `store` as `actor` (who is recorded in the audit log);
/// returns the text to show.
pub fn execute(store: &dyn Store, command: AdminCommand, actor: &str) -> Result<String, ApiError> {
    let mut out = String::new();
    match command {
        AdminCommand::Territory(TerritoryCommand::Add { path, name }) => {
            let path = TerritoryPath::parse(&path).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            add_territory(store, &path, &name)?;
            store.append_audit_in(Some(&path), actor, "territory.add", &format!("{path} {name}"), now())?;
            let _ = writeln!(out, "added {} {path} {name}", path.level().name_zh());
        }
        AdminCommand::Territory(TerritoryCommand::List) => {
            for t in store.territories()? {
                let _ = writeln!(out, "{:<32} {:<8} {}", t.path.as_str(), t.path.level().name_zh(), t.name);
            }
        }
        AdminCommand::Person(PersonCommand::Add { username, name, role, territory, password }) => {
            let territory = TerritoryPath::parse(&territory).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let (password, shown) = match password {
                Some(p) => (p, false),
                None => (random_password(), true),
            };
            let person = add_person(store, &username, &name, role, &territory, &password)?;
            let detail = format!("{username} {role} {territory}");
            store.append_audit_in(Some(&territory), actor, "person.add", &detail, now())?;
            let _ = writeln!(
                out,
                "added {} {} ({}) in {territory}, id {}",
                role.name_zh(),
                person.name,
                username,
                person.id
            );
            if shown {
                let _ = writeln!(out, "initial password (shown once): {password}");
            }
        }
        AdminCommand::Person(PersonCommand::Move { username, territory }) => {
            let territory = TerritoryPath::parse(&territory).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let mut person = store
                .person_by_username(&username)?
                .ok_or_else(|| ApiError::NotFound(format!("no person with username {username:?}")))?;
            check_territory_fits(store, person.role, &territory)?;
            let from = std::mem::replace(&mut person.territory, territory.clone());
            store.put_person(&person)?;
            // Work the person's phones made before the move still goes up:
            // each active device may push into the territories it was moved
            // out of (all of them, if moved again before it synced) until it
            // syncs with nothing left to push.
            for device in store.devices()?.into_iter().filter(|d| d.person == person.id && d.revoked_at.is_none()) {
                let mut grace = store.device_grace(device.id)?;
                grace.retain(|t| *t != from && *t != territory);
                if from != territory {
                    grace.push(from.clone());
                }
                // Bounded: a device that never syncs keeps its last few moves.
                let excess = grace.len().saturating_sub(MAX_GRACE_TERRITORIES);
                grace.drain(..excess);
                store.set_device_grace(device.id, &grace)?;
            }
            store.flush()?;
            // For the administrators over both ends.
            let over_both = from.ancestors_and_self().into_iter().rev().find(|t| t.contains(&territory));
            let detail = format!("{username} {from} -> {territory}");
            store.append_audit_in(over_both.as_ref(), actor, "person.move", &detail, now())?;
            let _ = writeln!(out, "moved {username} from {from} to {territory}");
        }
        AdminCommand::Person(PersonCommand::List) => {
            for p in store.people()? {
                let state = if store.person_disabled_at(p.id)?.is_some() { " disabled" } else { "" };
                let _ = writeln!(
                    out,
                    "{:<16} {:<10} {:<14} {:<28} {}{state}",
                    p.username,
                    p.name,
                    p.role,
                    p.territory.as_str(),
                    p.id
                );
            }
        }
        AdminCommand::Person(PersonCommand::Disable { username }) => {
            let person = person_named(store, &username)?;
            let _ = writeln!(out, "{}", disable_person(store, None, &person, actor)?);
        }
        AdminCommand::Person(PersonCommand::Enable { username }) => {
            let person = person_named(store, &username)?;
            let _ = writeln!(out, "{}", enable_person(store, None, &person, actor)?);
        }
        AdminCommand::Person(PersonCommand::ResetPassword { username, password }) => {
            let person = person_named(store, &username)?;
            let (password, shown) = match password {
                Some(p) => (p, false),
                None => (random_password(), true),
            };
            check_new_password(&password)?;
            let hash = hash_password(&password)?;
            let _ = writeln!(out, "{}", reset_password(store, None, &person, hash, actor)?);
            if shown {
                let _ = writeln!(out, "new password (shown once): {password}");
            }
        }
        AdminCommand::Device(DeviceCommand::Add { username, name }) => {
            let person = store
                .person_by_username(&username)?
                .ok_or_else(|| ApiError::NotFound(format!("no person with username {username:?}")))?;
            let reg = register_device(store, &person, &name, now())?;
            let detail = format!("{} for {username}", reg.device);
            store.append_audit_in(Some(&person.territory), actor, "device.add", &detail, now())?;
            let _ = writeln!(out, "device {} for {username}\ntoken (shown once): {}", reg.device, reg.token);
        }
        AdminCommand::Device(DeviceCommand::List) => {
            let people = store.people()?;
            for d in store.devices()? {
                let who = people.iter().find(|p| p.id == d.person).map(|p| p.username.as_str()).unwrap_or("?");
                let state = if d.revoked_at.is_some() { "revoked" } else { "active" };
                let _ = writeln!(out, "{} {:<8} {:<16} {}", d.id, state, who, d.name);
            }
        }
        AdminCommand::Device(DeviceCommand::Revoke { id }) => {
            out = revoke_device(store, None, id, actor)?;
            out.push('\n');
        }
        AdminCommand::Audit { after } => {
            for e in store.audit_after(after, usize::MAX)? {
                let _ = writeln!(out, "{:>6} {} {:<20} {:<20} {}", e.seq, e.at, e.actor, e.action, e.detail);
            }
        }
    }
    Ok(out)
}

/// Adds a territory node after checking its parent exists.
pub fn add_territory(store: &dyn Store, path: &TerritoryPath, name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::BadRequest("请填写区域名称 (a territory needs a name)".into()));
    }
    if let Some(parent) = path.parent()
        && !store.territories()?.iter().any(|t| t.path == parent)
    {
        return Err(ApiError::BadRequest(format!(
            "上级区域 {parent} 不存在，请先添加 (parent territory {parent} does not exist; add it first)"
        )));
    }
    store.put_territory(&Territory { path: path.clone(), name: name.trim().to_string() })?;
    store.flush()?;
    Ok(())
}

/// Adds a person after checking the territory exists and fits the role.
pub fn add_person(
    store: &dyn Store,
    username: &str,
    name: &str,
    role: Role,
    territory: &TerritoryPath,
    password: &str,
) -> Result<Person, ApiError> {
    let username = username.trim();
    if username.is_empty() || username.len() > 64 || username.chars().any(char::is_whitespace) {
        return Err(ApiError::BadRequest(
            "登录名须为 1-64 个字符且不含空格 (username must be 1-64 characters without spaces)".into(),
        ));
    }
    check_new_password(password)?;
    check_territory_fits(store, role, territory)?;
    if store.person_by_username(username)?.is_some() {
        return Err(ApiError::Conflict(format!("登录名 {username:?} 已被使用 (username {username:?} is taken)")));
    }
    let person = Person {
        id: PersonId(uuid::Uuid::new_v4()),
        username: username.to_string(),
        name: name.trim().to_string(),
        role,
        territory: territory.clone(),
        password_hash: hash_password(password)?,
        created_at: now(),
    };
    store.put_person(&person)?;
    store.flush()?;
    Ok(person)
}

/// Checks that `territory` exists and suits `role`.
fn check_territory_fits(store: &dyn Store, role: Role, territory: &TerritoryPath) -> Result<(), ApiError> {
    if !store.territories()?.iter().any(|t| &t.path == territory) {
        return Err(ApiError::BadRequest(format!(
            "区域 {territory} 不存在，请先添加 (territory {territory} does not exist; add it first)"
        )));
    }
    match (role, territory.level()) {
        (Role::FieldStaff, Level::Grid) => Ok(()),
        (Role::FieldStaff, _) => {
            Err(ApiError::BadRequest("网格员只能负责一个网格 (field staff are responsible for one grid)".into()))
        }
        (Role::Supervisor, Level::Grid) => Err(ApiError::BadRequest(
            "负责人须负责社区或以上区域 (a supervisor is responsible for a community or above)".into(),
        )),
        _ => Ok(()),
    }
}

fn person_named(store: &dyn Store, username: &str) -> Result<Person, ApiError> {
    store
        .person_by_username(username)?
        .ok_or_else(|| ApiError::NotFound(format!("no person with username {username:?}")))
}

/// Checks that an administrator (`by`; None for the command line on the
/// server machine) may manage `person`: someone else, inside their territory.
pub fn check_manages(by: Option<&Person>, person: &Person) -> Result<(), ApiError> {
    let Some(admin) = by else { return Ok(()) };
    if admin.role != Role::Administrator {
        return Err(ApiError::Forbidden("只有管理员可以管理人员 (only administrators may manage people)".into()));
    }
    if admin.id == person.id {
        return Err(ApiError::Forbidden(
            "不能对自己的账号这样操作；修改自己的密码请用“修改密码” (not on your own account)".into(),
        ));
    }
    if !admin.territory.contains(&person.territory) {
        return Err(ApiError::Forbidden(format!(
            "{} 不在您管理的区域 {} 之内 ({} is outside your territory)",
            person.username, admin.territory, person.username
        )));
    }
    Ok(())
}

/// Disables a person: sign-in is refused and every device of theirs is
/// revoked, durably, then audited. Doing it again revokes any device left.
pub fn disable_person(
    store: &dyn Store,
    by: Option<&Person>,
    person: &Person,
    actor: &str,
) -> Result<String, ApiError> {
    check_manages(by, person)?;
    let at = now();
    if store.person_disabled_at(person.id)?.is_none() {
        store.set_person_disabled(person.id, Some(at))?;
    }
    let revoked = revoke_devices_of(store, person.id, None, at)?;
    store.flush()?;
    let detail = format!("{} ({}): {} devices revoked", person.username, person.id, revoked.len());
    store.append_audit_in(Some(&person.territory), actor, "person.disable", &detail, at)?;
    Ok(format!("disabled {}; {} devices revoked", person.username, revoked.len()))
}

/// Lets a disabled person sign in again; their devices stay revoked.
pub fn enable_person(store: &dyn Store, by: Option<&Person>, person: &Person, actor: &str) -> Result<String, ApiError> {
    check_manages(by, person)?;
    store.set_person_disabled(person.id, None)?;
    store.flush()?;
    let detail = format!("{} ({})", person.username, person.id);
    store.append_audit_in(Some(&person.territory), actor, "person.enable", &detail, now())?;
    Ok(format!("enabled {}: they may sign in again", person.username))
}

/// Sets a person's password to `password_hash` and revokes every device of
/// theirs (a reset means the old password was forgotten or is known to
/// someone else), durably, then audited. The password itself is never logged.
pub fn reset_password(
    store: &dyn Store,
    by: Option<&Person>,
    person: &Person,
    password_hash: String,
    actor: &str,
) -> Result<String, ApiError> {
    check_manages(by, person)?;
    let mut updated = store.person(person.id)?.ok_or_else(|| ApiError::NotFound(format!("no person {}", person.id)))?;
    updated.password_hash = password_hash;
    store.put_person(&updated)?;
    let at = now();
    let revoked = revoke_devices_of(store, person.id, None, at)?;
    store.flush()?;
    let detail = format!("{} ({}): {} devices revoked", person.username, person.id, revoked.len());
    store.append_audit_in(Some(&person.territory), actor, "person.reset_password", &detail, at)?;
    Ok(format!("password of {} reset; {} devices revoked", person.username, revoked.len()))
}

/// Revokes a device; an administrator (`by`) may only revoke devices of
/// people inside their territory.
pub fn revoke_device(store: &dyn Store, by: Option<&Person>, id: DeviceId, actor: &str) -> Result<String, ApiError> {
    let mut device = store.device(id)?.ok_or_else(|| ApiError::NotFound(format!("no device {id}")))?;
    let owner = store.person(device.person)?;
    if let Some(admin) = by
        && !owner.as_ref().is_some_and(|o| admin.territory.contains(&o.territory))
    {
        return Err(ApiError::Forbidden("that device belongs to someone outside your territory".into()));
    }
    if device.revoked_at.is_none() {
        device.revoked_at = Some(now());
        store.put_device(&device)?;
        store.flush()?;
    }
    let territory = owner.map(|o| o.territory);
    store.append_audit_in(territory.as_ref(), actor, "device.revoke", &id.to_string(), now())?;
    Ok(format!("device {id} revoked"))
}
