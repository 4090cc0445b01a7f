//! The people lifecycle: an administrator disables and enables a person and
//! resets a password (over HTTP within their territory, and with the CLI on a
//! stopped or running server), everyone changes their own password, and a
//! phone can tell "sign in again" (`device_revoked`) from "your account is
//! disabled" (`person_disabled`). Every such action is audited.

use gridsync_shared::{Role, TerritoryPath};
use gridsync_tests::process::{ServerProcess, free_port, small_city};
use gridsync_tests::{PASSWORD, Phone, PhoneError, TestServer};
use serde_json::{Value, json};

async fn sign_in(url: &str, username: &str, password: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/auth/sign-in"))
        .json(&json!({ "username": username, "password": password, "device_name": "测试手机" }))
        .send()
        .await
        .expect("sign in");
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

async fn token(url: &str, username: &str, password: &str) -> String {
    let (status, body) = sign_in(url, username, password).await;
    assert_eq!(status, 200, "{username} signs in: {body}");
    body["token"].as_str().expect("token").to_string()
}

async fn post(url: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(format!("{url}{path}")).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("request");
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

async fn get(url: &str, path: &str, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new().get(format!("{url}{path}")).bearer_auth(token).send().await.expect("request");
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

fn person_id(server: &TestServer, username: &str) -> String {
    server.store().person_by_username(username).expect("store").expect("person").id.to_string()
}

fn audited(server: &TestServer, action: &str) -> Vec<String> {
    let entries = server.store().audit_after(0, usize::MAX).expect("audit");
    entries.into_iter().filter(|e| e.action == action).map(|e| format!("{} {}", e.actor, e.detail)).collect()
}

/// The error code of a phone's refused sync.
fn code(err: &PhoneError) -> String {
    match err {
        PhoneError::Status { status: 401, body } => {
            serde_json::from_str::<Value>(body).expect("JSON error")["error"].as_str().expect("code").to_string()
        }
        other => panic!("expected a 401, got {other}"),
    }
}

fn community(name: &str) -> TerritoryPath {
    format!("{}/{name}", gridsync_tests::server::CITY).parse().expect("community")
}

#[tokio::test]
async fn a_disabled_person_is_signed_out_on_every_phone_and_refused_at_sign_in_until_enabled() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let admin = server.person(Role::Administrator, &community("c1"));
    let admin_token = token(&server.url, &admin, PASSWORD).await;
    let staff = server.person(Role::FieldStaff, &grid);
    let mut first = server.phone_for(&staff).await;
    let mut second = server.phone_for(&staff).await;
    first.sync().await.expect("syncs before");
    let id = person_id(&server, &staff);

    let (status, body) = post(&server.url, &format!("/v1/admin/people/{id}/disable"), &admin_token, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["disabled"], true);
    for phone in [&mut first, &mut second] {
        let err = phone.sync().await.expect_err("a disabled person's phone is refused");
        assert_eq!(code(&err), "person_disabled", "the phone knows signing in again will not help");
    }
    let (status, body) = sign_in(&server.url, &staff, PASSWORD).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("person_disabled")), "{body}");
    assert!(body["message"].as_str().expect("message").contains("已被停用"), "{body}");
    // A wrong password does not learn that the account exists and is disabled.
    let (status, body) = sign_in(&server.url, &staff, "not the password").await;
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")), "{body}");

    let (status, people) = get(&server.url, "/v1/admin/people", &admin_token).await;
    assert_eq!(status, 200);
    let listed = people.as_array().expect("list").iter().find(|p| p["username"] == staff.as_str()).expect("listed");
    assert!(listed["disabled_at"].is_i64(), "{listed}");
    assert_eq!(listed["active_devices"], 0, "every device revoked");

    let (status, body) = post(&server.url, &format!("/v1/admin/people/{id}/enable"), &admin_token, None).await;
    assert_eq!(status, 200, "{body}");
    let err = first.sync().await.expect_err("the old devices stay revoked");
    assert_eq!(code(&err), "device_revoked", "now the phone is told to sign in again");
    let mut again = server.phone_for(&staff).await;
    again.sync().await.expect("signed in again after being enabled");

    assert_eq!(audited(&server, "person.disable").len(), 1);
    assert!(audited(&server, "person.disable")[0].starts_with(&format!("person:{admin} ")));
    assert!(audited(&server, "person.disable")[0].contains("2 devices revoked"));
    assert_eq!(audited(&server, "person.enable").len(), 1);
}

#[tokio::test]
async fn an_administrator_manages_only_other_people_inside_their_territory() {
    let server = TestServer::start().await;
    let (g1, g2) = (server.grid_in("c1", "g1"), server.grid_in("c2", "g2"));
    let admin = server.person(Role::Administrator, &community("c1"));
    let admin_token = token(&server.url, &admin, PASSWORD).await;
    let inside = server.person(Role::FieldStaff, &g1);
    let outside = server.person(Role::FieldStaff, &g2);
    let supervisor = server.person(Role::Supervisor, &community("c1"));
    let supervisor_token = token(&server.url, &supervisor, PASSWORD).await;
    let staff_token = token(&server.url, &inside, PASSWORD).await;

    for action in ["disable", "enable", "reset-password"] {
        let path = format!("/v1/admin/people/{}/{action}", person_id(&server, &outside));
        assert_eq!(post(&server.url, &path, &admin_token, None).await.0, 403, "{action} outside the territory");
        let path = format!("/v1/admin/people/{}/{action}", person_id(&server, &admin));
        assert_eq!(post(&server.url, &path, &admin_token, None).await.0, 403, "{action} on oneself");
        let path = format!("/v1/admin/people/{}/{action}", person_id(&server, &inside));
        assert_eq!(post(&server.url, &path, &supervisor_token, None).await.0, 403, "{action} by a supervisor");
        assert_eq!(post(&server.url, &path, &staff_token, None).await.0, 403, "{action} by field staff");
    }
    let path = format!("/v1/admin/people/{}/promote", person_id(&server, &inside));
    assert_eq!(post(&server.url, &path, &admin_token, None).await.0, 404, "no such action");
    assert_eq!(get(&server.url, "/v1/admin/people", &staff_token).await.0, 403);
    let (_, people) = get(&server.url, "/v1/admin/people", &admin_token).await;
    let names: Vec<&str> = people.as_array().expect("list").iter().filter_map(|p| p["username"].as_str()).collect();
    assert!(names.contains(&inside.as_str()) && !names.contains(&outside.as_str()), "{names:?}");
    assert!(audited(&server, "person.disable").is_empty(), "nothing was done");
}

#[tokio::test]
async fn a_password_reset_revokes_every_device_and_only_the_new_password_works() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let admin = server.person(Role::Administrator, &community("c1"));
    let admin_token = token(&server.url, &admin, PASSWORD).await;
    let staff = server.person(Role::FieldStaff, &grid);
    let mut phone = server.phone_for(&staff).await;

    let path = format!("/v1/admin/people/{}/reset-password", person_id(&server, &staff));
    let (status, body) = post(&server.url, &path, &admin_token, None).await;
    assert_eq!(status, 200, "{body}");
    let new_password = body["password"].as_str().expect("the new password, shown once").to_string();
    assert!(new_password.chars().count() >= 8);

    let err = phone.sync().await.expect_err("the device is revoked");
    assert_eq!(code(&err), "device_revoked");
    assert_eq!(sign_in(&server.url, &staff, PASSWORD).await.0, 401, "the old password no longer works");
    let mut phone = Phone::sign_in(&server.url, &staff, &new_password).await.expect("the new password works");
    phone.sync().await.expect("sync");
    let entries = audited(&server, "person.reset_password");
    assert_eq!(entries.len(), 1);
    assert!(!entries[0].contains(&new_password), "the password itself is never in the audit log");
}

#[tokio::test]
async fn changing_ones_own_password_keeps_this_phone_and_signs_out_the_others() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let staff = server.person(Role::FieldStaff, &grid);
    let mut this = server.phone_for(&staff).await;
    let mut other = server.phone_for(&staff).await;
    let change = |old: &str, new: &str| json!({ "old_password": old, "new_password": new });

    let (status, body) = post(&server.url, "/v1/auth/password", this.token(), Some(change(PASSWORD, "short"))).await;
    assert_eq!(status, 400, "too short: {body}");
    assert!(body["message"].as_str().expect("message").contains("至少需要 8 个字符"));
    let (status, _) = post(&server.url, "/v1/auth/password", this.token(), Some(change(PASSWORD, PASSWORD))).await;
    assert_eq!(status, 400, "the same password");
    let (status, body) =
        post(&server.url, "/v1/auth/password", this.token(), Some(json!({ "new_password": "x1234567" }))).await;
    assert_eq!(status, 400, "the old password is required: {body}");
    let (status, body) =
        post(&server.url, "/v1/auth/password", this.token(), Some(change("not it at all", "新的密码 2026"))).await;
    assert_eq!(status, 403, "the old password is wrong: {body}");
    let (status, _) = post(&server.url, "/v1/auth/password", "nobody.token", Some(change(PASSWORD, "x12345678"))).await;
    assert_eq!(status, 401, "signed in only");

    let (status, body) =
        post(&server.url, "/v1/auth/password", this.token(), Some(change(PASSWORD, "新的密码 2026"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked_devices"], 1);
    this.record_visit("改密码后的走访");
    this.sync().await.expect("this phone stays signed in");
    let err = other.sync().await.expect_err("the other phone is signed out");
    assert_eq!(code(&err), "device_revoked");
    assert_eq!(sign_in(&server.url, &staff, PASSWORD).await.0, 401, "the old password no longer works");
    assert_eq!(sign_in(&server.url, &staff, "新的密码 2026").await.0, 200);
    assert_eq!(audited(&server, "person.change_password").len(), 1);
}

#[tokio::test]
async fn guessing_the_old_password_with_a_signed_in_phone_is_throttled() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let staff = server.person(Role::FieldStaff, &grid);
    let phone = server.phone_for(&staff).await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let body = json!({ "old_password": format!("guess-{i}"), "new_password": "x12345678" });
        statuses.push(post(&server.url, "/v1/auth/password", phone.token(), Some(body)).await.0);
    }
    assert_eq!(&statuses[..5], &[403; 5], "{statuses:?}");
    assert_eq!(statuses[7], 429, "then throttled like sign-in: {statuses:?}");
}

#[tokio::test]
async fn the_cli_disables_enables_and_resets_passwords_on_a_stopped_and_on_a_running_server() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    small_city(&data, &[("li", "password-li")]).await;
    let run = |args: &'static [&'static str]| {
        let data = data.clone();
        async move {
            let out = ServerProcess::cli(&data, args).await;
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };

    // Stopped: the CLI opens the data directory.
    assert!(run(&["person", "disable", "--username", "li"]).await.contains("disabled li"));
    assert!(run(&["person", "list"]).await.lines().any(|l| l.starts_with("li ") && l.ends_with("disabled")));
    let server = ServerProcess::start(&data, free_port(), &[]).await;
    let (status, body) = sign_in(&server.url, "li", "password-li").await;
    assert_eq!((status, body["error"].as_str()), (401, Some("person_disabled")), "{body}");

    // Running: the same commands go through the admin socket.
    assert!(run(&["person", "enable", "--username", "li"]).await.contains("enabled li"));
    let mut phone = Phone::sign_in(&server.url, "li", "password-li").await.expect("enabled");
    phone.sync().await.expect("sync");
    let out = run(&["person", "reset-password", "--username", "li"]).await;
    assert!(out.contains("1 devices revoked"), "{out}");
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix("new password (shown once): "))
        .expect("the new password is printed once")
        .to_string();
    let err = phone.sync().await.expect_err("revoked by the reset");
    assert_eq!(code(&err), "device_revoked");
    assert_eq!(sign_in(&server.url, "li", "password-li").await.0, 401);
    assert_eq!(sign_in(&server.url, "li", &password).await.0, 200);
    let out = ServerProcess::cli(&data, &["person", "reset-password", "--username", "li", "--password", "short"]).await;
    assert!(!out.status.success(), "a short password is refused");

    let audit = run(&["audit"]).await;
    for action in ["person.disable", "person.enable", "person.reset_password"] {
        assert!(audit.contains(action), "{action} audited: {audit}");
    }
    server.kill().await;
}
