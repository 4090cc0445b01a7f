//! The directory of names (`GET /v1/directory`) on a real server: each person
//! sees the people and territories of their own subtree and the line above it,
//! nothing secret, with an ETag that stays until someone is added, moved or
//! disabled; and the phone keeps it offline.

use gridsync_server::admin::{AdminCommand, PersonCommand, add_territory, execute};
use gridsync_shared::directory::Directory;
use gridsync_shared::{Role, TerritoryPath};
use gridsync_tests::TestServer;
use gridsync_tests::server::CITY;
use serde_json::Value;

struct Answer {
    status: u16,
    etag: Option<String>,
    body: Option<Value>,
}

async fn directory(server: &TestServer, token: &str, etag: Option<&str>) -> Answer {
    let mut req = reqwest::Client::new().get(format!("{}/v1/directory", server.url)).bearer_auth(token);
    if let Some(tag) = etag {
        req = req.header("if-none-match", tag);
    }
    let resp = req.send().await.expect("directory answered");
    let status = resp.status().as_u16();
    let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_string);
    let text = resp.text().await.expect("body");
    let body = (!text.is_empty()).then(|| serde_json::from_str(&text).expect("JSON body"));
    Answer { status, etag, body }
}

fn territory(server: &TestServer, path: &str, name: &str) -> TerritoryPath {
    let path: TerritoryPath = format!("{CITY}/{path}").parse().expect("path");
    add_territory(server.store(), &path, name).expect("territory");
    path
}

fn id_of(server: &TestServer, username: &str) -> String {
    server.store().person_by_username(username).expect("store").expect("person").id.to_string()
}

fn admin(server: &TestServer, command: PersonCommand) {
    execute(server.store(), AdminCommand::Person(command), "cli").expect("admin command");
}

/// The listed people as `id -> (name, enabled)`.
fn people(body: &Value) -> std::collections::BTreeMap<String, (String, bool)> {
    body["people"]
        .as_array()
        .expect("people")
        .iter()
        .map(|p| {
            let id = p["id"].as_str().expect("id").to_string();
            (id, (p["name"].as_str().expect("name").to_string(), p["enabled"].as_bool().expect("enabled")))
        })
        .collect()
}

fn territory_paths(body: &Value) -> Vec<String> {
    body["territories"]
        .as_array()
        .expect("territories")
        .iter()
        .map(|t| t["path"].as_str().expect("path").into())
        .collect()
}

#[tokio::test]
async fn a_grid_manager_sees_their_grid_and_supervisors_by_name_and_a_change_replaces_the_etag() {
    let server = TestServer::start().await;
    territory(&server, "c1", "东湖社区");
    let g1 = territory(&server, "c1/g1", "第一网格");
    let g2 = territory(&server, "c1/g2", "第二网格");
    let c2 = territory(&server, "c2", "西湖社区");
    let c2g1 = territory(&server, "c2/g1", "西湖第一网格");
    let c1: TerritoryPath = format!("{CITY}/c1").parse().expect("path");

    let me = server.person(Role::FieldStaff, &g1);
    let colleague = server.person(Role::FieldStaff, &g1);
    let neighbour = server.person(Role::FieldStaff, &g2);
    let supervisor = server.person(Role::Supervisor, &c1);
    let other_supervisor = server.person(Role::Supervisor, &c2);
    let other_staff = server.person(Role::FieldStaff, &c2g1);
    admin(&server, PersonCommand::Disable { username: colleague.clone() });

    let phone = server.phone_for(&me).await;
    let first = directory(&server, phone.token(), None).await;
    assert_eq!(first.status, 200);
    let body = first.body.expect("a directory");
    let seen = people(&body);
    let want: Vec<String> = [&me, &colleague, &supervisor].iter().map(|u| id_of(&server, u)).collect();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), want_sorted, "own grid and the community's supervisor");
    for stranger in [&neighbour, &other_supervisor, &other_staff] {
        assert!(!seen.contains_key(&id_of(&server, stranger)), "{stranger} is outside the scope");
    }
    assert!(!seen[&id_of(&server, &colleague)].1, "a disabled person shows as disabled");
    assert!(seen[&id_of(&server, &me)].1);
    let mut paths = territory_paths(&body);
    paths.sort();
    assert_eq!(paths, ["tc", "tc/d1", "tc/d1/s1", "tc/d1/s1/c1", "tc/d1/s1/c1/g1"]);
    let grid = body["territories"].as_array().expect("list").iter().find(|t| t["path"] == g1.as_str()).expect("grid");
    assert_eq!(grid["name"], "第一网格");
    // Nothing secret: exactly these fields per person.
    for p in body["people"].as_array().expect("people") {
        let mut keys: Vec<&str> = p.as_object().expect("object").keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["enabled", "id", "name", "role", "territory"]);
    }
    let supervisor_entry = body["people"]
        .as_array()
        .expect("people")
        .iter()
        .find(|p| p["id"] == id_of(&server, &supervisor).as_str())
        .expect("supervisor");
    assert_eq!(
        (supervisor_entry["role"].as_str(), supervisor_entry["territory"].as_str()),
        (Some("supervisor"), Some(c1.as_str()))
    );

    // The same directory again: 304 with no body.
    let tag = first.etag.expect("an ETag");
    let again = directory(&server, phone.token(), Some(&tag)).await;
    assert_eq!((again.status, again.body.is_none(), again.etag.as_deref()), (304, true, Some(tag.as_str())));

    // Someone joins the grid: a new directory, a new ETag.
    let newcomer = server.person(Role::FieldStaff, &g1);
    let after_add = directory(&server, phone.token(), Some(&tag)).await;
    assert_eq!(after_add.status, 200);
    assert_ne!(after_add.etag.as_deref(), Some(tag.as_str()));
    assert!(people(&after_add.body.expect("body")).contains_key(&id_of(&server, &newcomer)));

    // The neighbour is moved into this grid: now listed.
    let tag = after_add.etag.expect("ETag");
    admin(&server, PersonCommand::Move { username: neighbour.clone(), territory: g1.as_str().into() });
    let after_move = directory(&server, phone.token(), Some(&tag)).await;
    assert_eq!(after_move.status, 200);
    assert!(people(&after_move.body.expect("body")).contains_key(&id_of(&server, &neighbour)));

    // The community's supervisor sees both grids of the community, not the other community.
    let boss = server.phone_for(&supervisor).await;
    let theirs = directory(&server, boss.token(), None).await.body.expect("body");
    let theirs = people(&theirs);
    for u in [&me, &colleague, &neighbour, &supervisor, &newcomer] {
        assert!(theirs.contains_key(&id_of(&server, u)), "{u} is in the supervisor's community");
    }
    assert!(!theirs.contains_key(&id_of(&server, &other_staff)));
    server.stop().await;
}

#[tokio::test]
async fn the_directory_needs_a_valid_token() {
    let server = TestServer::start().await;
    let resp = reqwest::get(format!("{}/v1/directory", server.url)).await.expect("answered");
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.expect("JSON error");
    assert_eq!(body["error"], "unauthorized");
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/directory", server.url))
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status().as_u16(), 401);
    server.stop().await;
}

/// Fetches the phone's directory as the app does (with its ETag) and keeps it;
/// returns whether it changed.
async fn refresh_directory(server: &TestServer, phone: &mut gridsync_tests::Phone) -> bool {
    let etag = phone.replica.directory_etag().map(str::to_string);
    let answer = directory(server, phone.token(), etag.as_deref()).await;
    match answer.status {
        304 => false,
        200 => {
            let body: Directory = serde_json::from_value(answer.body.expect("body")).expect("a directory");
            phone.replica.set_directory(body, answer.etag).expect("kept")
        }
        other => panic!("directory answered {other}"),
    }
}

#[tokio::test]
async fn the_phone_keeps_the_directory_across_a_reload_and_shows_names_with_fallbacks() {
    let server = TestServer::start().await;
    territory(&server, "c1", "东湖社区");
    let grid = territory(&server, "c1/g1", "第一网格");
    let me = server.person(Role::FieldStaff, &grid);
    let mut phone = server.phone_for(&me).await;
    let my_id = id_of(&server, &me);
    assert_eq!(phone.replica.person_label(&my_id), &my_id[..8], "before the directory: the start of the id");
    assert_eq!(phone.replica.territory_label(grid.as_str()), grid.as_str(), "before the directory: the path");

    assert!(refresh_directory(&server, &mut phone).await, "the first directory is news");
    assert!(!refresh_directory(&server, &mut phone).await, "304: nothing changed");
    let mut phone = phone.reopen().expect("reopened");
    assert_eq!(phone.replica.person_label(&my_id), server.store().person_by_username(&me).expect("s").expect("p").name);
    assert_eq!(phone.replica.territory_label(grid.as_str()), "第一网格");
    assert_eq!(phone.replica.territory_label("tc/d1/s1/c9"), "tc/d1/s1/c9", "an unknown territory shows its path");
    assert!(phone.replica.directory_etag().is_some(), "the ETag survives the reload too");

    // A directory that breaks the rules is refused and the kept one stays.
    let kept = phone.replica.directory().cloned().expect("kept");
    let mut bad = kept.clone();
    bad.people.push(bad.people[0].clone());
    let err = phone.replica.set_directory(bad, Some("\"x\"".into())).expect_err("a duplicate person is refused");
    assert!(err.to_string().contains("listed twice"), "{err}");
    assert_eq!(phone.replica.directory(), Some(&kept));
    assert_ne!(phone.replica.directory_etag(), Some("\"x\""));

    // A newcomer in the grid: the next refresh brings a changed directory.
    let newcomer = server.person(Role::FieldStaff, &grid);
    assert!(refresh_directory(&server, &mut phone).await);
    assert_ne!(phone.replica.person_label(&id_of(&server, &newcomer)), &id_of(&server, &newcomer)[..8]);
    server.stop().await;
}

#[tokio::test]
async fn a_phone_sees_what_others_changed_since_it_last_looked_but_not_its_own_edits() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut a = server.phone_in(&grid).await;
    let mut b = server.phone_in(&grid).await;
    let before_any = a.record_visit("开始前的走访");
    a.sync().await.expect("sync");
    b.sync().await.expect("first sync");
    assert!(b.replica.changed_since(0).is_empty(), "the first download of the grid is not news");
    let own = b.record_visit("我自己的走访");
    b.sync().await.expect("sync");

    let looked = b.clock;
    let visit = a.record_visit("A 的新走访");
    let case = a.report_case("A 上报的事件");
    a.sync().await.expect("sync");
    b.sync().await.expect("sync");
    let seen: Vec<_> = b.replica.changed_since(looked).into_iter().map(|(id, _)| id).collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.contains(&visit) && seen.contains(&case));
    assert!(!seen.contains(&own) && !seen.contains(&before_any));

    // A follows the case up; B's own follow-up on it afterwards is not news to B.
    let looked = b.clock;
    a.follow_up(case, "已联系双方");
    a.sync().await.expect("sync");
    b.sync().await.expect("sync");
    let since = b.replica.changed_since(looked);
    assert_eq!(since.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![case], "only the case, newest first");
    let looked = b.clock;
    b.follow_up(case, "我也去看了");
    b.sync().await.expect("sync");
    b.sync().await.expect("sync again");
    assert!(b.replica.changed_since(looked).is_empty(), "B's own follow-up is not someone else's change");
    let newest_first: Vec<i64> = b.replica.changed_since(0).into_iter().map(|(_, at)| at).collect();
    assert!(newest_first.windows(2).all(|w| w[0] >= w[1]), "{newest_first:?}");

    // A, in turn, sees B's follow-up; and B's log survives a reload.
    let a_looked = a.clock;
    a.sync().await.expect("sync");
    assert_eq!(a.replica.changed_since(a_looked).into_iter().map(|(id, _)| id).collect::<Vec<_>>(), vec![case]);
    let all = b.replica.changed_since(0);
    let b = b.reopen().expect("reopened");
    assert_eq!(b.replica.changed_since(0), all);
    server.stop().await;
}

#[tokio::test]
async fn a_snapshot_on_a_real_server_names_the_creator_the_grid_and_the_household_head() {
    use gridsync_shared::records::{HouseholdFields, NewRecord, VisitFields};
    let server = TestServer::start().await;
    territory(&server, "c1", "东湖社区");
    let grid = territory(&server, "c1/g1", "第一网格");
    let me = server.person(Role::FieldStaff, &grid);
    let mut phone = server.phone_for(&me).await;
    let now = phone.clock + 1;
    let head =
        HouseholdFields { head: "陈桂英".into(), address: "东湖路12号".into(), ..HouseholdFields::default() };
    let household = phone.replica.create(None, now, &NewRecord::Household(head)).expect("household");
    let visit =
        VisitFields { household: Some(household), visited_at: now, notes: "例行走访".into(), ..Default::default() };
    phone.replica.create(None, now + 1, &NewRecord::VisitLog(visit)).expect("visit");
    phone.sync().await.expect("sync");

    let request = gridsync_server::snapshot::SnapshotRequest {
        format: "csv".into(),
        territory: Some(grid.as_str().into()),
        as_of: None,
        unmask: false,
        reason: None,
        photos: false,
    };
    let prepared = gridsync_server::snapshot::prepare(server.store(), &request, "cli").expect("prepared");
    let mut zip = Vec::new();
    prepared.write(server.store(), &mut zip, &mut |_| {}).expect("written");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("zip");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("visit_logs.csv").expect("visit logs"), &mut text)
        .expect("read");
    let mut reader = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers = reader.headers().expect("headers").clone();
    let row = reader.records().next().expect("a row").expect("row");
    let cell = |name: &str| row[headers.iter().position(|h| h == name).expect("column")].to_string();
    let name = server.store().person_by_username(&me).expect("store").expect("person").name;
    assert_eq!((cell("创建人姓名"), cell("网格名称"), cell("住户户主")), (name, "第一网格".into(), "陈桂英".into()));
    assert_eq!(cell("作废"), "否");
    server.stop().await;
}
