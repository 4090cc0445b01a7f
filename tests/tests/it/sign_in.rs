//! Sign-in under attack, against the real `gridsync-server` binary (so its
//! memory can be read from /proc): failed attempts are slowed and then locked
//! out per username and per address, with a Chinese message and `Retry-After`;
//! password hashing runs on a small bounded pool, so a flood of sign-ins costs
//! bounded memory and a syncing phone stays fast; and signing in again from
//! the same phone replaces its device instead of piling devices up.

use gridsync_server::admin::{add_person, add_territory};
use gridsync_shared::Role;
use gridsync_tests::process::{free_port, server_binary};
use gridsync_tests::stores::{open_store, store_args};
use gridsync_tests::{Backend, PASSWORD, Phone, TestServer};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const GRID: &str = "xg/xn/sh/dh/g1";

/// The real binary on a fresh store holding `people` (field staff of one
/// grid, password [`PASSWORD`]), with `env` set (the throttle's settings).
struct Server {
    url: String,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(people: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("tmp");
        let data = dir.path().join("data");
        city(&data, people);
        let port = free_port();
        let child = tokio::process::Command::new(server_binary())
            .arg("--data")
            .arg(&data)
            .args(store_args(Backend::from_env(), &data))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn gridsync-server");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !reqwest::get(format!("{url}/healthz")).await.is_ok_and(|r| r.status().is_success()) {
            assert!(Instant::now() < deadline, "gridsync-server did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Server { url, child, _dir: dir }
    }

    /// `(VmRSS, VmHWM)` of the server process in MiB: now, and its peak so far.
    fn memory_mib(&self) -> (u64, u64) {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kb| kb / 1024)
                .expect("field in /proc status")
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

/// The territories and `people` in the store under test for `data`.
fn city(data: &Path, people: &[&str]) {
    let store = open_store(Backend::from_env(), data);
    let store = store.as_ref();
    let mut path = String::new();
    for (part, name) in GRID.split('/').zip(["孝感市", "孝南区", "书院街道", "东湖社区", "第一网格"])
    {
        path = if path.is_empty() { part.to_string() } else { format!("{path}/{part}") };
        add_territory(store, &path.parse().expect("path"), name).expect("territory");
    }
    for username in people {
        add_person(store, username, username, Role::FieldStaff, &GRID.parse().expect("grid"), PASSWORD)
            .expect("person");
    }
    store.flush().expect("flush");
}

/// What one sign-in attempt got.
struct Answer {
    status: u16,
    retry_after: Option<u32>,
    body: serde_json::Value,
}

async fn attempt(http: &reqwest::Client, url: &str, username: &str, password: &str) -> Answer {
    let resp = http
        .post(format!("{url}/v1/auth/sign-in"))
        .json(&serde_json::json!({ "username": username, "password": password, "device_name": "测试手机" }))
        .send()
        .await
        .expect("sign-in request");
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    Answer { status, retry_after, body }
}

fn assert_throttled(a: &Answer) {
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(a.body["error"], "too_many_attempts");
    let message = a.body["message"].as_str().expect("message");
    assert!(message.starts_with("登录失败次数过多，请 ") && message.ends_with("后再试"), "{message}");
    let header = a.retry_after.expect("Retry-After header");
    assert!(header >= 1);
    assert_eq!(a.body["retry_after_s"], header, "the body says the same wait as the header");
}

#[tokio::test]
async fn three_hundred_wrong_passwords_are_throttled_and_the_right_one_works_once_the_lockout_ends() {
    let server = Server::start(
        &["li"],
        &[
            ("GRIDSYNC_SIGNIN_USER_LIMITS", "5,10"),
            ("GRIDSYNC_SIGNIN_ADDR_LIMITS", "1000,2000"),
            ("GRIDSYNC_SIGNIN_DELAY_MS", "20"),
            ("GRIDSYNC_SIGNIN_LOCKOUT_S", "2"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let (mut wrong, mut throttled) = (0, 0);
    let mut last = None;
    for i in 0..300 {
        let a = attempt(&http, &server.url, "li", &format!("guess-{i}")).await;
        match a.status {
            401 => wrong += 1,
            429 => {
                assert_throttled(&a);
                throttled += 1;
            }
            other => panic!("attempt {i}: unexpected {other}: {}", a.body),
        }
        last = Some(a);
    }
    println!("300 wrong passwords: {wrong} checked (401), {throttled} refused unchecked (429)");
    assert!(wrong <= 10, "at most the lockout threshold is ever checked: {wrong}");
    assert!(throttled >= 290, "{throttled}");
    assert_throttled(last.as_ref().expect("answers"));

    // Locked out: even the right password is refused, without being checked.
    let a = attempt(&http, &server.url, "li", PASSWORD).await;
    assert_throttled(&a);
    let wait = a.retry_after.expect("Retry-After");
    assert!(wait <= 2, "the configured lockout: {wait}");

    tokio::time::sleep(Duration::from_secs(u64::from(wait)) + Duration::from_millis(200)).await;
    let a = attempt(&http, &server.url, "li", PASSWORD).await;
    assert_eq!(a.status, 200, "the right password after the lockout: {}", a.body);
    // The success forgot the failures: a typo now is an ordinary 401.
    let a = attempt(&http, &server.url, "li", "typo").await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.body["error"], "unauthorized");
}

#[tokio::test]
async fn a_password_reset_by_an_administrator_works_at_once_for_a_locked_out_person() {
    let limits = [("GRIDSYNC_SIGNIN_USER_LIMITS", "2,4"), ("GRIDSYNC_SIGNIN_ADDR_LIMITS", "1000,2000")];
    let server = Server::start(&["li"], &[limits[0], limits[1], ("GRIDSYNC_SIGNIN_DELAY_MS", "1")]).await;
    let http = reqwest::Client::new();
    for i in 0..20 {
        attempt(&http, &server.url, "li", &format!("guess-{i}")).await;
    }
    assert_throttled(&attempt(&http, &server.url, "li", PASSWORD).await);

    // The person calls the administrator, who resets the password (through
    // the running server's admin socket).
    let data = server._dir.path().join("data");
    let out = std::process::Command::new(server_binary())
        .arg("--data")
        .arg(&data)
        .args(store_args(Backend::from_env(), &data))
        .args(["person", "reset-password", "--username", "li", "--password", "new-password-9"])
        .output()
        .expect("run the CLI");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let a = attempt(&http, &server.url, "li", "new-password-9").await;
    assert_eq!(a.status, 200, "the new password works at once: {}", a.body);
    // Guessing starts again from nothing, and is throttled again.
    let mut answers = Vec::new();
    for i in 0..6 {
        answers.push(attempt(&http, &server.url, "li", &format!("again-{i}")).await.status);
    }
    assert_eq!(answers[0], 401);
    assert!(answers.contains(&429), "{answers:?}");
}

#[tokio::test]
async fn an_address_guessing_at_many_usernames_is_locked_out_whatever_the_username() {
    let server = Server::start(
        &["li"],
        &[
            ("GRIDSYNC_SIGNIN_USER_LIMITS", "5,10"),
            ("GRIDSYNC_SIGNIN_ADDR_LIMITS", "3,6"),
            ("GRIDSYNC_SIGNIN_DELAY_MS", "1"),
            ("GRIDSYNC_SIGNIN_LOCKOUT_S", "600"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let mut checked = 0;
    for i in 0..40 {
        let a = attempt(&http, &server.url, &format!("user{i}"), "123456").await;
        if a.status == 401 {
            checked += 1;
        } else {
            assert_throttled(&a);
        }
    }
    assert!(checked <= 6, "one address is locked out after 6 failures: {checked}");
    let a = attempt(&http, &server.url, "li", PASSWORD).await;
    assert_throttled(&a);
    assert!(a.body["message"].as_str().expect("message").contains("分钟"), "a long wait in minutes: {}", a.body);
    assert!(a.retry_after.expect("Retry-After") > 500);
}

#[tokio::test]
async fn a_flood_of_sign_ins_costs_bounded_memory_and_a_syncing_phone_stays_fast() {
    // The throttle is set out of the way: this is the hashing pool's test.
    let server = Server::start(
        &["li"],
        &[("GRIDSYNC_SIGNIN_USER_LIMITS", "1000000,1000000"), ("GRIDSYNC_SIGNIN_ADDR_LIMITS", "1000000,1000000")],
    )
    .await;
    let mut phone = Phone::sign_in(&server.url, "li", PASSWORD).await.expect("sign in");
    phone.sync().await.expect("first sync");
    let mut idle = Vec::new();
    for i in 0..20 {
        phone.record_visit(&format!("平时走访{i}"));
        let started = Instant::now();
        phone.sync().await.expect("sync");
        idle.push(started.elapsed());
    }
    let (rss_before, _) = server.memory_mib();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let (url, stop) = (server.url.clone(), stop.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut waves, mut checked, mut busy) = (0u32, 0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut wave = tokio::task::JoinSet::new();
                for i in 0..150 {
                    let (http, url) = (http.clone(), url.clone());
                    wave.spawn(async move { attempt(&http, &url, "nobody-here", &format!("wrong-{i}")).await });
                }
                while let Some(a) = wave.join_next().await {
                    let a = a.expect("attempt task");
                    match a.status {
                        401 => checked += 1,
                        503 => {
                            assert_eq!(a.body["error"], "busy");
                            assert!(a.retry_after.is_some(), "503 carries Retry-After");
                            busy += 1;
                        }
                        other => panic!("unexpected {other}: {}", a.body),
                    }
                }
                waves += 1;
            }
            (waves, checked, busy)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut flooded = Vec::new();
    for i in 0..30 {
        phone.record_visit(&format!("攻击期间走访{i}"));
        let started = Instant::now();
        phone.sync().await.expect("sync during the flood");
        flooded.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (waves, checked, busy) = flood.await.expect("flood");
    let (rss_after, peak) = server.memory_mib();

    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let stats = |v: &mut Vec<Duration>| {
        v.sort();
        (ms(&v[v.len() / 2]), ms(&v[v.len() - 1]))
    };
    let ((idle_p50, idle_max), (flood_p50, flood_max)) = (stats(&mut idle), stats(&mut flooded));
    println!(
        "sign-in flood: {waves} waves of 150 concurrent wrong passwords, {checked} checked (401), {busy} refused at once (503)"
    );
    println!("server memory: {rss_before} MiB before, {rss_after} MiB after, peak {peak} MiB");
    println!(
        "phone sync: idle p50 {idle_p50:.1} ms max {idle_max:.1} ms; during the flood p50 {flood_p50:.1} ms max {flood_max:.1} ms"
    );
    assert!(busy > 0, "the pool refused the excess");
    assert_eq!(phone.replica.pending_changes(), 0, "every visit reached the server");
    // Sanity bounds only (the unbounded server reached 2.97 GB and 4.3 s).
    assert!(peak < 500, "server peak memory {peak} MiB");
    assert!(flood_max < 3000.0, "a sync took {flood_max:.0} ms during the flood");
}

async fn sign_in_replacing(
    url: &str,
    username: &str,
    replaces: Option<gridsync_shared::DeviceId>,
) -> serde_json::Value {
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/auth/sign-in"))
        .json(&serde_json::json!({
            "username": username, "password": PASSWORD, "device_name": "同一部手机", "replaces": replaces,
        }))
        .send()
        .await
        .expect("sign in");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("registration")
}

async fn me(url: &str, token: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new().get(format!("{url}/v1/me")).bearer_auth(token).send().await.expect("me");
    (resp.status().as_u16(), resp.json().await.unwrap_or(serde_json::Value::Null))
}

fn active_devices(server: &TestServer, username: &str) -> Vec<gridsync_server::store::Device> {
    let person = server.store().person_by_username(username).expect("store").expect("person");
    gridsync_server::auth::devices_of(server.store(), person.id)
        .expect("devices")
        .into_iter()
        .filter(|d| d.revoked_at.is_none())
        .collect()
}

#[tokio::test]
async fn a_hundred_sign_ins_from_the_same_phone_leave_one_active_device() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let username = server.person(Role::FieldStaff, &grid);
    let first = sign_in_replacing(&server.url, &username, None).await;
    let mut previous = first.clone();
    for _ in 0..100 {
        let replaces = serde_json::from_value(previous["device"].clone()).expect("device id");
        previous = sign_in_replacing(&server.url, &username, Some(replaces)).await;
    }
    let active = active_devices(&server, &username);
    assert_eq!(active.len(), 1, "one active device");
    assert_eq!(serde_json::json!(active[0].id), previous["device"]);
    let (status, body) = me(&server.url, first["token"].as_str().expect("token")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "device_revoked", "a replaced device is told to sign in again: {body}");
    let (status, _) = me(&server.url, previous["token"].as_str().expect("token")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_device_named_as_replaced_that_belongs_to_someone_else_stays_signed_in() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let (mine, theirs) = (server.person(Role::FieldStaff, &grid), server.person(Role::FieldStaff, &grid));
    let victim = sign_in_replacing(&server.url, &theirs, None).await;
    let replaces = serde_json::from_value(victim["device"].clone()).expect("device id");
    sign_in_replacing(&server.url, &mine, Some(replaces)).await;
    let (status, _) = me(&server.url, victim["token"].as_str().expect("token")).await;
    assert_eq!(status, 200, "nobody revokes what is not theirs");
}

#[tokio::test]
async fn beyond_ten_active_devices_the_oldest_is_revoked() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let username = server.person(Role::FieldStaff, &grid);
    let mut tokens = Vec::new();
    for _ in 0..12 {
        let reg = sign_in_replacing(&server.url, &username, None).await;
        tokens.push(reg["token"].as_str().expect("token").to_string());
        // Registration times are milliseconds: keep them apart so "oldest" is exact.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert_eq!(active_devices(&server, &username).len(), gridsync_server::auth::MAX_ACTIVE_DEVICES);
    for (i, token) in tokens.iter().enumerate() {
        let (status, body) = me(&server.url, token).await;
        if i < 2 {
            assert_eq!((status, body["error"].as_str()), (401, Some("device_revoked")), "device {i}");
        } else {
            assert_eq!(status, 200, "device {i}: {body}");
        }
    }
    let audit = server.store().audit_after(0, usize::MAX).expect("audit");
    assert_eq!(audit.iter().filter(|e| e.action == "device.revoke").count(), 2, "each revocation audited");
}
