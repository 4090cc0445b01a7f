//! The administration console's routes against a real server: the territory
//! tree with counts, adding and renaming territories, people search, adding
//! and moving people, devices with when each was last seen, and the audit log
//! filtered and as CSV. Each is refused to non-administrators and outside the
//! administrator's territory, and each action writes its audit line.

use gridsync_shared::records::{CaseFields, CaseKind, HouseholdFields, NewRecord};
use gridsync_shared::{Role, TerritoryPath};
use gridsync_tests::server::CITY;
use gridsync_tests::{PASSWORD, TestServer};
use serde_json::{Value, json};

async fn token(url: &str, username: &str, password: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/auth/sign-in"))
        .json(&json!({ "username": username, "password": password, "device_name": "测试电脑" }))
        .send()
        .await
        .expect("sign in");
    assert_eq!(resp.status().as_u16(), 200, "{username} signs in");
    let body: Value = resp.json().await.expect("json");
    body["token"].as_str().expect("token").to_string()
}

async fn post(url: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    let resp =
        reqwest::Client::new().post(format!("{url}{path}")).bearer_auth(token).json(&body).send().await.expect("post");
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

async fn get(url: &str, path: &str, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new().get(format!("{url}{path}")).bearer_auth(token).send().await.expect("get");
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

fn audited(server: &TestServer, action: &str) -> Vec<String> {
    let entries = server.store().audit_after(0, usize::MAX).expect("audit");
    entries.into_iter().filter(|e| e.action == action).map(|e| format!("{} {}", e.actor, e.detail)).collect()
}

fn community(name: &str) -> TerritoryPath {
    format!("{CITY}/{name}").parse().expect("community")
}

fn household(head: &str) -> NewRecord {
    NewRecord::Household(HouseholdFields {
        address: "东湖路12号".into(),
        head: head.into(),
        phone: "13807120011".into(),
        id_number: String::new(),
        tags: vec![],
        notes: String::new(),
        members: vec![],
    })
}

#[tokio::test]
async fn the_territory_tree_counts_people_households_and_open_cases_of_each_node_with_its_descendants() {
    let server = TestServer::start().await;
    let (g1, g2) = (server.grid_in("c1", "g1"), server.grid_in("c1", "g2"));
    let admin = server.person(Role::Administrator, &community("c1"));
    let admin_token = token(&server.url, &admin, PASSWORD).await;
    let staff = server.person(Role::FieldStaff, &g1);
    server.person(Role::FieldStaff, &g2);
    let mut phone = server.phone_for(&staff).await;
    let h = phone.create(&household("周建国")).expect("household");
    phone.create(&household("李梅")).expect("household");
    phone
        .create(&NewRecord::Case(CaseFields {
            kind: CaseKind::Hazard,
            title: "楼道堆放杂物".into(),
            description: String::new(),
            household: Some(h),
            visit: None,
            due_at: None,
        }))
        .expect("case");
    phone.sync().await.expect("sync");

    let (status, body) = get(&server.url, "/v1/admin/territories", &admin_token).await;
    assert_eq!(status, 200, "{body}");
    let node = |path: &TerritoryPath| {
        body["nodes"].as_array().expect("nodes").iter().find(|n| n["path"] == path.as_str()).cloned().expect("node")
    };
    let (c1, n1, n2) = (node(&community("c1")), node(&g1), node(&g2));
    assert_eq!(
        (n1["people"].as_u64(), n1["households"].as_u64(), n1["open_cases"].as_u64()),
        (Some(1), Some(2), Some(1))
    );
    assert_eq!((n2["people"].as_u64(), n2["households"].as_u64()), (Some(1), Some(0)));
    assert_eq!((c1["people"].as_u64(), c1["households"].as_u64()), (Some(3), Some(2)), "the community sums its grids");
    assert_eq!(c1["level"], "社区/村");
    let (status, names) = get(&server.url, "/v1/admin/territories?counts=false", &admin_token).await;
    assert_eq!(status, 200, "{names}");
    assert_eq!(names["nodes"].as_array().map(Vec::len), body["nodes"].as_array().map(Vec::len), "the same nodes");
    assert_eq!(names["nodes"][0]["households"], 0, "names only, no pass over the records: {names}");
    assert!(
        !body["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .any(|n| !community("c1").contains(&n["path"].as_str().expect("p").parse().expect("path"))),
        "only the administrator's territory: {body}"
    );
}

#[tokio::test]
async fn an_administrator_adds_and_renames_territories_adds_searches_and_moves_people_and_each_is_audited() {
    let server = TestServer::start().await;
    let g1 = server.grid_in("c1", "g1");
    let admin = server.person(Role::Administrator, &community("c1"));
    let admin_token = token(&server.url, &admin, PASSWORD).await;

    let g9 = format!("{}/g9", community("c1"));
    let (status, body) =
        post(&server.url, "/v1/admin/territories", &admin_token, json!({ "path": g9, "name": "第九网格" })).await;
    assert_eq!((status, &body["renamed"]), (200, &json!(false)), "{body}");
    let (status, body) =
        post(&server.url, "/v1/admin/territories", &admin_token, json!({ "path": g9, "name": "东湖第九网格" })).await;
    assert_eq!((status, &body["renamed"]), (200, &json!(true)), "{body}");
    assert!(server.store().territories().expect("t").iter().any(|t| t.path.as_str() == g9 && t.name == "东湖第九网格"));
    let (status, body) = post(
        &server.url,
        "/v1/admin/territories",
        &admin_token,
        json!({ "path": format!("{}/g1/x", community("c1")), "name": "x" }),
    )
    .await;
    assert_eq!(status, 400, "a grid has no children: {body}");

    let (status, body) = post(
        &server.url,
        "/v1/admin/people",
        &admin_token,
        json!({ "username": "wangfang", "name": "王芳", "role": "field_staff", "territory": g1.as_str() }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let password = body["password"].as_str().expect("initial password shown once").to_string();
    let id = body["person"]["id"].as_str().expect("id").to_string();
    let wangfang = token(&server.url, "wangfang", &password).await; // the initial password signs in
    let (status, _) = get(&server.url, "/v1/directory", &wangfang).await;
    assert_eq!(status, 200, "the new phone's first request: seen now");

    let (status, body) = get(&server.url, "/v1/admin/people/search?q=王芳", &admin_token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 1, "{body}");
    assert!(body["people"][0]["last_seen"].is_i64(), "signed in just now: {body}");
    let (_, body) = get(&server.url, "/v1/admin/people/search?limit=1&offset=1", &admin_token).await;
    assert_eq!((body["total"].as_u64(), body["people"].as_array().map(Vec::len)), (Some(2), Some(1)), "paged: {body}");

    let (status, body) =
        post(&server.url, &format!("/v1/admin/people/{id}/move"), &admin_token, json!({ "territory": g9 })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.store().person_by_username("wangfang").expect("s").expect("p").territory.as_str(), g9);
    let (status, body) = post(
        &server.url,
        &format!("/v1/admin/people/{id}/move"),
        &admin_token,
        json!({ "territory": community("c1").as_str() }),
    )
    .await;
    assert_eq!(status, 400, "field staff belong to a grid: {body}");

    let (status, body) = get(&server.url, "/v1/admin/devices", &admin_token).await;
    assert_eq!(status, 200, "{body}");
    let dev = body["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .find(|d| d["username"] == "wangfang")
        .cloned()
        .expect("device");
    assert!(dev["last_seen"].is_i64() && dev["pending_changes"].is_null(), "{dev}");

    assert_eq!(audited(&server, "territory.add").len(), 1);
    assert_eq!(audited(&server, "territory.rename").len(), 1);
    assert!(audited(&server, "person.add")[0].starts_with(&format!("person:{admin} wangfang")));
    assert!(!audited(&server, "person.add")[0].contains(&password), "the password is never audited");
    assert!(audited(&server, "person.move")[0].contains(&format!("-> {g9}")));

    let (status, body) =
        get(&server.url, &format!("/v1/admin/audit/search?action=person.&actor={admin}"), &admin_token).await;
    assert_eq!(status, 200, "{body}");
    let actions: Vec<_> =
        body["entries"].as_array().expect("entries").iter().map(|e| e["action"].as_str().unwrap_or("")).collect();
    assert_eq!(actions, ["person.move", "person.add"], "newest first, filtered by action");
    let (_, body) = get(&server.url, "/v1/admin/audit/search?action=person.&limit=1", &admin_token).await;
    assert!(body["next_before"].is_u64(), "a next page: {body}");

    let resp = reqwest::Client::new()
        .get(format!("{}/v1/admin/audit.csv?action=territory.", server.url))
        .bearer_auth(&admin_token)
        .send()
        .await
        .expect("csv");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str().expect("ct").starts_with("text/csv"));
    let csv = resp.text().await.expect("text");
    assert!(csv.starts_with("\u{feff}序号,时间(UTC),操作人,操作,详情,区域\n"), "{csv}");
    assert_eq!(csv.lines().count(), 3, "header + add + rename: {csv}");
    assert!(csv.contains("territory.rename"));
    assert_eq!(audited(&server, "audit.download").len(), 1, "the download is audited");
}

#[tokio::test]
async fn the_console_refuses_non_administrators_and_anything_outside_the_administrators_territory() {
    let server = TestServer::start().await;
    let (g1, g2) = (server.grid_in("c1", "g1"), server.grid_in("c2", "g2"));
    let admin = server.person(Role::Administrator, &community("c1"));
    let admin_token = token(&server.url, &admin, PASSWORD).await;
    let supervisor = server.person(Role::Supervisor, &community("c1"));
    let supervisor_token = token(&server.url, &supervisor, PASSWORD).await;
    let staff = server.person(Role::FieldStaff, &g1);
    let staff_token = token(&server.url, &staff, PASSWORD).await;
    let outsider = server.person(Role::FieldStaff, &g2);
    let outsider_id = server.store().person_by_username(&outsider).expect("s").expect("p").id.to_string();
    let inside_id = server.store().person_by_username(&staff).expect("s").expect("p").id.to_string();
    let before = server.store().audit_after(0, usize::MAX).expect("audit").len();

    for t in [&supervisor_token, &staff_token] {
        for path in ["/v1/admin/territories", "/v1/admin/people/search", "/v1/admin/devices", "/v1/admin/audit/search"]
        {
            let (status, body) = get(&server.url, path, t).await;
            assert_eq!(status, 403, "{path}: {body}");
            assert!(body["message"].as_str().expect("message").contains("管理员"), "a Chinese reason: {body}");
        }
        let resp = reqwest::Client::new()
            .get(format!("{}/v1/admin/audit.csv", server.url))
            .bearer_auth(t)
            .send()
            .await
            .expect("csv");
        assert_eq!(resp.status().as_u16(), 403);
        let (status, _) = post(
            &server.url,
            "/v1/admin/territories",
            t,
            json!({ "path": format!("{}/g7", community("c1")), "name": "x" }),
        )
        .await;
        assert_eq!(status, 403);
        let (status, _) = post(
            &server.url,
            "/v1/admin/people",
            t,
            json!({ "username": "x1", "name": "x", "role": "field_staff", "territory": g1.as_str() }),
        )
        .await;
        assert_eq!(status, 403);
        let (status, _) =
            post(&server.url, &format!("/v1/admin/people/{inside_id}/move"), t, json!({ "territory": g1.as_str() }))
                .await;
        assert_eq!(status, 403);
    }
    // Another territory: refused, in Chinese.
    let (status, body) = post(
        &server.url,
        "/v1/admin/territories",
        &admin_token,
        json!({ "path": format!("{}/g8", community("c2")), "name": "x" }),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().expect("m").contains("不在您管理的区域"), "{body}");
    let (status, _) = post(
        &server.url,
        "/v1/admin/people",
        &admin_token,
        json!({ "username": "x2", "name": "x", "role": "field_staff", "territory": g2.as_str() }),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post(
        &server.url,
        &format!("/v1/admin/people/{outsider_id}/move"),
        &admin_token,
        json!({ "territory": g1.as_str() }),
    )
    .await;
    assert_eq!(status, 403, "moving someone from another territory in");
    let (status, _) = post(
        &server.url,
        &format!("/v1/admin/people/{inside_id}/move"),
        &admin_token,
        json!({ "territory": g2.as_str() }),
    )
    .await;
    assert_eq!(status, 403, "moving someone out to another territory");
    let (status, _) =
        get(&server.url, &format!("/v1/admin/people/search?territory={}", community("c2")), &admin_token).await;
    assert_eq!(status, 403);
    let (_, body) = get(&server.url, "/v1/admin/people/search", &admin_token).await;
    assert!(!body["people"].as_array().expect("people").iter().any(|p| p["username"] == outsider.as_str()), "{body}");
    let (_, body) = get(&server.url, "/v1/admin/devices", &admin_token).await;
    assert!(!body["devices"].as_array().expect("devices").iter().any(|d| d["username"] == outsider.as_str()), "{body}");

    assert_eq!(
        server.store().audit_after(0, usize::MAX).expect("audit").len(),
        before,
        "nothing refused is audited as done"
    );
    assert!(
        server.store().person_by_username("x1").expect("s").is_none()
            && server.store().person_by_username("x2").expect("s").is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_devices_last_seen_and_unsent_changes_are_kept_in_the_store_and_outlive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = TestServer::start_in(&data, gridsync_server::Limits::default()).await;
    let g1 = server.grid_in("c1", "g1");
    let admin = server.person(Role::Administrator, &community("c1"));
    let admin_token = token(&server.url, &admin, PASSWORD).await;
    let staff = server.person(Role::FieldStaff, &g1);
    let before = gridsync_server::http::now_ms();
    let mut phone = server.phone_for(&staff).await;
    phone.sync().await.expect("sync");
    let (status, body) = get(&server.url, "/v1/admin/devices", &admin_token).await;
    assert_eq!(status, 200, "{body}");
    let dev = body["devices"].as_array().expect("devices").iter().find(|d| d["username"] == staff.as_str()).cloned();
    let dev = dev.expect("the phone's device is listed");
    let id: gridsync_shared::DeviceId = serde_json::from_value(dev["id"].clone()).expect("device id");
    let stored = server.store().device_seen(id).expect("read").expect("written at the first request").at;
    assert!(stored >= before && dev["last_seen"].as_i64().expect("last seen") >= stored, "{dev}");

    // More requests within the minute: the console shows the newest, the store is not rewritten.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    phone.sync().await.expect("sync");
    let again = server.store().device_seen(id).expect("read").map(|s| s.at);
    assert_eq!(again, Some(stored), "throttled to once a minute");
    let (_, body) = get(&server.url, "/v1/admin/people/search?q=", &admin_token).await;
    let person = body["people"].as_array().expect("people").iter().find(|p| p["username"] == staff.as_str()).cloned();
    assert!(person.expect("listed")["last_seen"].as_i64().expect("last sync") > stored, "{body}");

    // What a phone holds unsent is shown per device, and written at once when it changes.
    assert_eq!(dev["pending_changes"], 0, "the phone's outbox was empty after its sync: {dev}");
    phone.record_visit("入户走访");
    phone.record_visit("再次走访");
    let mut request: gridsync_shared::protocol::SyncRequest =
        gridsync_shared::protocol::decode(&phone.replica.build_request()).expect("request");
    assert_eq!(request.push.len(), 2);
    request.push.truncate(1);
    phone.post_sync(&gridsync_shared::protocol::encode(&request)).await.expect("a sync carrying one of the visits");
    let (_, body) = get(&server.url, "/v1/admin/devices", &admin_token).await;
    let dev = body["devices"].as_array().expect("devices").iter().find(|d| d["id"] == dev["id"]).cloned();
    assert_eq!(dev.expect("listed")["pending_changes"], 1, "one visit still waits on the phone");
    let now = server.store().device_seen(id).expect("read").expect("kept");
    assert_eq!(now.pending, Some(1), "a changed count is written at once");

    server.stop().await;
    use gridsync_server::store::Store;
    let reopened = gridsync_server::store::SledStore::open(&data).expect("reopen");
    let kept = reopened.device_seen(id).expect("read").expect("kept across a restart");
    assert_eq!((kept.at, kept.pending), (now.at, Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_over_a_sub_district_or_more_is_sent_no_records_but_what_they_write_goes_up() {
    let server = TestServer::start().await;
    let g1 = server.grid_in("c1", "g1");
    let mut field = server.phone_for(&server.person(Role::FieldStaff, &g1)).await;
    field.create(&household("周建国")).expect("household");
    field.create(&household("李梅")).expect("household");
    field.sync().await.expect("sync");

    // The city's administrator: nothing comes down, however often they sync.
    let city: TerritoryPath = gridsync_tests::server::CITY.parse().expect("city");
    let mut city_admin = server.phone_for(&server.person(Role::Administrator, &city)).await;
    city_admin.sync().await.expect("sync");
    city_admin.sync().await.expect("sync again");
    assert_eq!(city_admin.replica.records().count(), 0, "a city's records are not sent to a device");
    assert!(city_admin.transport.bytes_down < 4_000, "{} bytes down", city_admin.transport.bytes_down);
    // What they write still goes up and reaches the grid.
    let theirs = city_admin.replica.create(Some(&g1), city_admin.clock, &household("王芳")).expect("household");
    let reports = city_admin.sync().await.expect("sync");
    assert!(reports.iter().all(|r| r.rejected.is_empty()), "{reports:?}");
    field.sync().await.expect("sync");
    assert!(field.replica.holds(theirs), "the grid manager has the administrator's household");

    // A community's administrator keeps the community's records, like its supervisor.
    let mut community_admin = server.phone_for(&server.person(Role::Administrator, &community("c1"))).await;
    community_admin.sync().await.expect("sync");
    assert_eq!(community_admin.replica.records().count(), 3);
}

// The territory tree's counts at a city's size: households and visit logs
// from the store's per-grid record lists, open cases from their rows, and
// documents only for cases without a row that decodes.

use gridsync_server::http_admin::territory_tree;
use gridsync_server::store::{DocWrite, SledStore, Store};
use gridsync_shared::records::row::encode_row;
use gridsync_shared::records::{Editor, VisitFields, new_record, read_record};
use gridsync_shared::workflow::CaseStatus;
use gridsync_shared::{Author, DeviceId, DocId, PersonId, Record, RecordKind};
use gridsync_tests::test_store::{Listing, TestStore};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The row a record is committed with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RowKept {
    /// Its flattened row, as the server commits it today.
    Yes,
    /// None: a record committed before rows were kept, not yet backfilled.
    No,
    /// Bytes that do not decode (a row of an encoding this build does not read).
    Damaged,
}

/// Commits `doc` (every change so far) as record `id`; returns its feed position.
fn commit_record(store: &dyn Store, id: DocId, doc: &automerge::Automerge, row: RowKept) -> u64 {
    let record = read_record(doc).expect("a valid record");
    let row = match row {
        RowKept::Yes => Some(encode_row(&record)),
        RowKept::No => None,
        RowKept::Damaged => Some(vec![9, 2, 0xff]),
    };
    store
        .commit_doc(
            DocWrite {
                doc: id,
                grid: record.meta().grid.clone(),
                summary: record.summary(),
                bytes: doc.save(),
                heads: doc.get_heads(),
                device: DeviceId(uuid::Uuid::nil()),
                changes: doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect(),
                photos: record.photos().to_vec(),
                row,
            },
            1_000,
        )
        .expect("commit")
}

/// What each case of [`city_store`] is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CaseIs {
    Open,
    Resolved,
    Voided,
}

/// A case in `grid` as a supervisor there leaves it.
fn case_doc(grid: &TerritoryPath, seed: u8, is: CaseIs) -> (DocId, automerge::Automerge) {
    let who = Author { person: PersonId(uuid::Uuid::from_u128(7)), role: Role::Supervisor, territory: grid.clone() };
    let fields = CaseFields {
        kind: CaseKind::Hazard,
        title: format!("楼道堆物{seed}"),
        description: String::new(),
        household: None,
        visit: None,
        due_at: None,
    };
    let (id, mut doc) =
        new_record(automerge::ActorId::random(), &who, grid, 1_000, [seed; 10], &NewRecord::Case(fields))
            .expect("case");
    let mut editor = Editor::new(&mut doc, &who, 2_000);
    match is {
        CaseIs::Open => editor.advance_case(CaseStatus::InProgress).map(|_| ()),
        CaseIs::Resolved => editor.advance_case(CaseStatus::Resolved).map(|_| ()),
        CaseIs::Voided => editor.void_record("重复上报").map(|_| ()),
    }
    .expect("edit");
    (id, doc)
}

/// A record of another kind in `grid`.
fn other_doc(grid: &TerritoryPath, seed: u8, new: &NewRecord) -> (DocId, automerge::Automerge) {
    let who = Author { person: PersonId(uuid::Uuid::from_u128(7)), role: Role::Supervisor, territory: grid.clone() };
    new_record(automerge::ActorId::random(), &who, grid, 1_000, [seed; 10], new).expect("record")
}

fn visit(n: usize) -> NewRecord {
    NewRecord::VisitLog(VisitFields { visited_at: 2_000, notes: format!("第{n}次走访"), ..VisitFields::default() })
}

/// Adds the territory path's every level, names made up.
fn territories(store: &dyn Store, grid: &TerritoryPath) {
    for path in grid.ancestors_and_self() {
        if !store.territories().expect("territories").iter().any(|t| t.path == path) {
            gridsync_server::admin::add_territory(store, &path, &format!("{path}的名称")).expect("territory");
        }
    }
}

/// A city of three grids in two communities: households, visit logs and
/// cases (open, resolved, voided), some cases without rows or with rows that
/// do not decode. Returns the cases committed without a readable row, with
/// their feed positions.
fn city_store(store: &SledStore) -> Vec<(DocId, u64, automerge::Automerge)> {
    let g1: TerritoryPath = "tc/d/s/c1/g1".parse().expect("grid");
    let g2: TerritoryPath = "tc/d/s/c1/g2".parse().expect("grid");
    let g3: TerritoryPath = "tc/d/s/c2/g3".parse().expect("grid");
    for g in [&g1, &g2, &g3] {
        territories(store, g);
    }
    let mut seed = 0u8;
    let mut next = || {
        seed += 1;
        seed
    };
    let mut rowless = Vec::new();
    let mut put = |grid: &TerritoryPath, n: usize, new: &dyn Fn(usize) -> NewRecord, row: RowKept| {
        for i in 0..n {
            let (id, doc) = other_doc(grid, next(), &new(i));
            commit_record(store, id, &doc, row);
        }
    };
    put(&g1, 3, &|i| household(&format!("住户{i}")), RowKept::Yes);
    put(&g1, 4, &visit, RowKept::Yes);
    put(&g2, 1, &|i| household(&format!("住户{i}")), RowKept::No);
    put(&g2, 2, &visit, RowKept::No);
    put(&g3, 5, &visit, RowKept::Yes);
    let mut seed = 100u8;
    for (grid, is, row) in [
        (&g1, CaseIs::Open, RowKept::Yes),
        (&g1, CaseIs::Open, RowKept::Yes),
        (&g1, CaseIs::Resolved, RowKept::Yes),
        (&g1, CaseIs::Voided, RowKept::Yes),
        (&g2, CaseIs::Open, RowKept::No),
        (&g2, CaseIs::Resolved, RowKept::No),
        (&g2, CaseIs::Voided, RowKept::No),
        (&g2, CaseIs::Open, RowKept::Damaged),
        (&g2, CaseIs::Open, RowKept::Yes),
        (&g3, CaseIs::Resolved, RowKept::Damaged),
        (&g3, CaseIs::Open, RowKept::Yes),
    ] {
        seed += 1;
        let (id, doc) = case_doc(grid, seed, is);
        let seq = commit_record(store, id, &doc, row);
        if row != RowKept::Yes {
            rowless.push((id, seq, doc));
        }
    }
    store.flush().expect("flush");
    rowless
}

/// Counts per node as the tree computed them before it read record lists and
/// rows: every document of the scope loaded, each case's document read.
fn counts_from_documents(store: &dyn Store, scope: &TerritoryPath) -> BTreeMap<TerritoryPath, [u64; 3]> {
    let mut exact: BTreeMap<TerritoryPath, [u64; 3]> = BTreeMap::new();
    let mut after = None;
    loop {
        let page = store.docs_in_scope(scope, after, 500).expect("docs");
        let Some((last, _)) = page.last() else { break };
        after = Some(*last);
        for (_, doc) in &page {
            let n = exact.entry(doc.grid.clone()).or_default();
            match doc.kind {
                RecordKind::Household => n[0] += 1,
                RecordKind::VisitLog => n[1] += 1,
                RecordKind::Case => {
                    let record = read_record(&automerge::Automerge::load(&doc.bytes).expect("load")).expect("read");
                    if let Record::Case(c) = &record
                        && record.voided().is_none()
                        && c.standing().status < CaseStatus::Resolved
                    {
                        n[2] += 1;
                    }
                }
                RecordKind::Promise => {}
            }
        }
        if page.len() < 500 {
            break;
        }
    }
    let mut out: BTreeMap<TerritoryPath, [u64; 3]> = BTreeMap::new();
    for t in store.territories().expect("territories").into_iter().filter(|t| scope.contains(&t.path)) {
        let mut sum = [0; 3];
        for (grid, n) in &exact {
            if t.path.contains(grid) {
                for i in 0..3 {
                    sum[i] += n[i];
                }
            }
        }
        out.insert(t.path, sum);
    }
    out
}

/// The tree's household, visit log and open case counts per node.
fn tree_counts(store: &dyn Store, scope: &TerritoryPath) -> BTreeMap<TerritoryPath, [u64; 3]> {
    territory_tree(store, scope)
        .expect("tree")
        .into_iter()
        .map(|n| (n.path, [n.counts.households, n.counts.visit_logs, n.counts.open_cases]))
        .collect()
}

#[test]
fn the_territory_trees_counts_from_record_lists_and_case_rows_are_those_read_from_every_document() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(SledStore::open(dir.path()).expect("store"));
    city_store(&store);
    let plain = TestStore::over(store.clone()).listing(Listing::FromDocuments);
    let city: TerritoryPath = "tc".parse().expect("city");
    let want = counts_from_documents(&*store, &city);
    let p = |s: &str| -> TerritoryPath { s.parse().expect("path") };
    assert_eq!(want[&p("tc/d/s/c1/g1")], [3, 4, 2], "g1: the open cases, not the resolved or voided one");
    assert_eq!(want[&p("tc/d/s/c1/g2")], [1, 2, 3]);
    assert_eq!(want[&p("tc/d/s/c2/g3")], [0, 5, 1]);
    assert_eq!(want[&city], [4, 11, 6]);

    assert_eq!(tree_counts(&*store, &city), want, "the sled store: record lists and rows");
    assert_eq!(tree_counts(&plain, &city), want, "a store with neither: documents");
    let c1 = p("tc/d/s/c1");
    let within: BTreeMap<_, _> = want.iter().filter(|(k, _)| c1.contains(k)).map(|(k, v)| (k.clone(), *v)).collect();
    assert_eq!(tree_counts(&*store, &c1), within, "a community's administrator");
    assert_eq!(tree_counts(&plain, &c1), within);
}

#[test]
fn the_territory_tree_loads_documents_only_for_cases_without_a_row_that_decodes() {
    let dir = tempfile::tempdir().expect("dir");
    let sled = Arc::new(SledStore::open(dir.path()).expect("store"));
    let rowless = city_store(&sled);
    let store = TestStore::over(sled.clone());
    let city: TerritoryPath = "tc".parse().expect("city");
    let want = counts_from_documents(&*sled, &city);

    assert_eq!(tree_counts(&store, &city), want);
    assert_eq!(store.take_loaded(), rowless.len(), "only the cases without a readable row are loaded, one each");
    // The rows backfilled (as the server does in the background for an upgraded store).
    for (id, seq, doc) in &rowless {
        let row = encode_row(&read_record(doc).expect("record"));
        assert!(sled.set_row(*id, *seq, row).expect("set row"), "the row is kept");
    }
    assert_eq!(tree_counts(&store, &city), want);
    assert_eq!(store.take_loaded(), 0, "no document is loaded when every case has its row");
}

/// The figure for the tree at a city's size: 100,000 visit logs and 1,000
/// cases (with rows) in 100 grids, the tree before (every document loaded)
/// and after (record lists and rows), each on a freshly opened store, then
/// again warm. Run: `cargo test --release -p gridsync-tests --test it --
/// --ignored --nocapture territory_tree_time`.
#[test]
#[ignore]
fn territory_tree_time_at_100_000_visit_logs_in_100_grids() {
    let dir = tempfile::tempdir().expect("dir");
    let city: TerritoryPath = "tc".parse().expect("city");
    let started = std::time::Instant::now();
    {
        let store = SledStore::open(dir.path()).expect("store");
        let note: String = "走访住户，了解家中老人身体状况和用水用电情况，".chars().cycle().take(600).collect();
        let mut n: u128 = 0;
        for g in 0..100u8 {
            let grid: TerritoryPath = format!("tc/d/s/c{}/g{}", g / 10, g % 10).parse().expect("grid");
            territories(&store, &grid);
            let new =
                NewRecord::VisitLog(VisitFields { visited_at: 2_000, notes: note.clone(), ..VisitFields::default() });
            let (_, visit) = other_doc(&grid, g, &new);
            let record = read_record(&visit).expect("visit");
            let row = encode_row(&record);
            let changes: Vec<Vec<u8>> = visit.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
            let mut writes = Vec::new();
            for _ in 0..1_000 {
                n += 1;
                let write = DocWrite {
                    doc: DocId(uuid::Uuid::from_u128(n)),
                    grid: grid.clone(),
                    summary: record.summary(),
                    bytes: Vec::new(),
                    heads: visit.get_heads(),
                    device: DeviceId(uuid::Uuid::nil()),
                    changes: changes.clone(),
                    photos: Vec::new(),
                    row: Some(row.clone()),
                };
                writes.push((write, Vec::new()));
            }
            store.commit_docs(writes, 1_000).expect("commit");
            for c in 0..10u8 {
                let is = [CaseIs::Open, CaseIs::Resolved, CaseIs::Voided][usize::from(c % 3)];
                let (_, doc) = case_doc(&grid, c.wrapping_mul(100).wrapping_add(g), is);
                n += 1;
                let record = read_record(&doc).expect("case");
                let write = DocWrite {
                    doc: DocId(uuid::Uuid::from_u128(n)),
                    grid: grid.clone(),
                    summary: record.summary(),
                    bytes: Vec::new(),
                    heads: doc.get_heads(),
                    device: DeviceId(uuid::Uuid::nil()),
                    changes: doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect(),
                    photos: Vec::new(),
                    row: Some(encode_row(&record)),
                };
                store.commit_doc(write, 1_000).expect("commit");
            }
        }
        store.flush().expect("flush");
    }
    println!("filled 100,000 visit logs and 1,000 cases in 100 grids in {:?}", started.elapsed());
    let timed = |what: &str, f: &dyn Fn(&SledStore) -> BTreeMap<TerritoryPath, [u64; 3]>| {
        let store = SledStore::open(dir.path()).expect("store");
        let t = std::time::Instant::now();
        let cold = f(&store);
        let cold_t = t.elapsed();
        let t = std::time::Instant::now();
        let warm = f(&store);
        println!("{what}: {cold_t:?} on a freshly opened store, {:?} again", t.elapsed());
        assert_eq!(cold, warm);
        cold
    };
    let after = timed("tree (record lists and rows)", &|s| tree_counts(s, &city));
    let before = timed("before (every document loaded)", &|s| counts_from_documents(s, &city));
    assert_eq!(after, before);
    assert_eq!(after[&city], [0, 100_000, 400], "visit logs and open cases (4 of every 10 per grid)");
}

/// The audit log as `token`'s administrator reads it through each of its three
/// routes (search, CSV, JSON lines): the details of the entries, one list each.
async fn audit_as_read_by(url: &str, token: &str) -> [Vec<String>; 3] {
    let (status, body) = get(url, "/v1/admin/audit/search?limit=1000", token).await;
    assert_eq!(status, 200, "{body}");
    let search = body["entries"].as_array().expect("entries").iter().map(|e| e["detail"].to_string()).collect();
    let csv = reqwest::Client::new()
        .get(format!("{url}/v1/admin/audit.csv"))
        .bearer_auth(token)
        .send()
        .await
        .expect("csv")
        .text()
        .await
        .expect("csv text");
    let csv = csv.lines().skip(1).map(str::to_string).collect();
    let jsonl = reqwest::Client::new()
        .get(format!("{url}/v1/admin/audit"))
        .bearer_auth(token)
        .send()
        .await
        .expect("jsonl")
        .text()
        .await
        .expect("jsonl text");
    let jsonl = jsonl.lines().map(str::to_string).collect();
    [search, csv, jsonl]
}

#[tokio::test]
async fn an_administrator_reads_the_audit_entries_of_their_territory_and_their_own_and_no_others() {
    let server = TestServer::start().await;
    let (g1, g2) = (server.grid_in("c1", "g1"), server.grid_in("c2", "g2"));
    // The whole city, above the test server's sub-district.
    let city: TerritoryPath = CITY.split('/').next().expect("city").parse().expect("city");
    let (admin1, admin2) =
        (server.person(Role::Administrator, &community("c1")), server.person(Role::Administrator, &community("c2")));
    let city_admin = server.person(Role::Administrator, &city);
    let (staff1, staff2) = (server.person(Role::FieldStaff, &g1), server.person(Role::FieldStaff, &g2));
    let id_of = |username: &str| server.store().person_by_username(username).expect("s").expect("p").id.to_string();
    let (token1, token2) = (token(&server.url, &admin1, PASSWORD).await, token(&server.url, &admin2, PASSWORD).await);
    let city_token = token(&server.url, &city_admin, PASSWORD).await;

    let (status, _) =
        post(&server.url, &format!("/v1/admin/people/{}/disable", id_of(&staff1)), &token1, json!({})).await;
    assert_eq!(status, 200);
    let (status, _) =
        post(&server.url, &format!("/v1/admin/people/{}/disable", id_of(&staff2)), &token2, json!({})).await;
    assert_eq!(status, 200);
    // About the whole store, as a backup or a restore is.
    server.store().append_audit("cli", "store.backup", "full backup to 备份一号", 1).expect("audit");

    let sees = |lines: &[String], who: &str| lines.iter().any(|l| l.contains(who));
    for (i, lines) in audit_as_read_by(&server.url, &token1).await.iter().enumerate() {
        assert!(sees(lines, &staff1), "route {i}: admin of c1 sees the disabling in c1: {lines:?}");
        assert!(!sees(lines, &staff2), "route {i}: admin of c1 does not see c2's: {lines:?}");
        assert!(!sees(lines, "备份一号"), "route {i}: nor the store's own entries: {lines:?}");
    }
    for (i, lines) in audit_as_read_by(&server.url, &token2).await.iter().enumerate() {
        assert!(sees(lines, &staff2) && !sees(lines, &staff1), "route {i}: admin of c2: {lines:?}");
        assert!(!sees(lines, &admin1), "route {i}: nor c1's administrator's own reading: {lines:?}");
    }
    for (i, lines) in audit_as_read_by(&server.url, &city_token).await.iter().enumerate() {
        assert!(
            sees(lines, &staff1) && sees(lines, &staff2),
            "route {i}: the city's administrator sees both: {lines:?}"
        );
        assert!(sees(lines, "备份一号"), "route {i}: and the store's own entries: {lines:?}");
    }
}
