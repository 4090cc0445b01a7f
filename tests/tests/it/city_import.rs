//! A city moves in: territories, people and households imported from GBK CSV
//! and XLSX files over HTTP (dry run first, then confirmed) and from the
//! command line on a stopped and a running server; re-imports change nothing,
//! an updated file merges with a phone's offline edit, and the phones of an
//! imported grid receive their households in bounded pages.

use gridsync_shared::Role;
use gridsync_shared::records::{Household, NewRecord, Record, RecordKind};
use gridsync_tests::Phone;
use gridsync_tests::process::{CliPerson, ServerProcess, city, free_port};
use gridsync_tests::server::{PASSWORD, TestServer};
use serde_json::Value;
use std::time::Duration;

/// A valid ID number: `first17` and its GB 11643 check character, computed here from the standard's weights.
fn idn(first17: &str) -> String {
    let weights = [7u32, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17.chars().zip(weights).map(|(c, w)| c.to_digit(10).expect("digit") * w).sum();
    format!("{first17}{}", "10X98765432".chars().nth((sum % 11) as usize).expect("check"))
}

/// The ID number of resident `n` (distinct, valid, born 1950–1999).
fn resident_id(n: usize) -> String {
    idn(&format!("420902{}{:02}{:02}{:03}", 1950 + n % 50, 1 + n % 12, 1 + n % 28, n % 1000))
}

fn rows(v: &[&[&str]]) -> Vec<Vec<String>> {
    v.iter().map(|r| r.iter().map(|c| c.to_string()).collect()).collect()
}

fn gbk_csv(rows: &[Vec<String>]) -> Vec<u8> {
    let text: String = rows.iter().map(|r| r.join(",") + "\r\n").collect();
    let (bytes, _, bad) = encoding_rs::GBK.encode(&text);
    assert!(!bad, "every character has a GBK code");
    assert!(std::str::from_utf8(&bytes).is_err(), "the file really is GBK, not UTF-8");
    bytes.into_owned()
}

fn xlsx(rows: &[Vec<String>]) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            sheet.write_string(r as u32, c as u16, cell).expect("cell");
        }
    }
    book.save_to_buffer().expect("xlsx")
}

const TERRITORY_HEADER: &[&str] =
    &["区县编码", "区县名称", "街道编码", "街道名称", "社区编码", "社区名称", "网格编码", "网格名称"];
const PEOPLE_HEADER: &[&str] = &["姓名", "登录名", "角色", "所属区域", "手机号"];
const HOUSEHOLD_HEADER: &[&str] =
    &["户号", "所属网格", "地址", "姓名", "与户主关系", "身份证号", "联系电话", "标签", "备注"];

/// An administrator's HTTP client.
struct Admin {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Admin {
    async fn sign_in(url: &str, username: &str) -> Admin {
        let phone = Phone::sign_in(url, username, PASSWORD).await.expect("admin signs in");
        Admin { url: url.into(), token: phone.token().to_string(), http: reqwest::Client::new() }
    }

    async fn upload(&self, kind: &str, name: &str, body: Vec<u8>) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/v1/admin/imports?kind={kind}&name={name}", self.url))
            .bearer_auth(&self.token)
            .body(body)
            .send()
            .await
            .expect("upload");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let resp = self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.token).send().await.expect("get");
        (resp.status().as_u16(), resp.bytes().await.expect("body").to_vec())
    }

    async fn confirm(&self, id: &str, skip: bool) -> (u16, Value) {
        let q = if skip { "?skip_problems=true" } else { "" };
        let resp = self
            .http
            .post(format!("{}/v1/admin/imports/{id}/confirm{q}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("confirm");
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the run is done (or failed) and returns it.
    async fn wait(&self, id: &str) -> Value {
        for _ in 0..600 {
            let (status, body) = self.get(&format!("/v1/admin/imports/{id}")).await;
            assert_eq!(status, 200);
            let run: Value = serde_json::from_slice(&body).expect("json");
            if run["status"] == "done" || run["status"] == "failed" {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("import {id} did not finish");
    }

    /// Dry run, then confirm and wait: the finished run.
    async fn import(&self, kind: &str, name: &str, body: Vec<u8>) -> Value {
        let (status, dry) = self.upload(kind, name, body).await;
        assert_eq!(status, 200, "{dry}");
        assert_eq!(dry["problems_total"], 0, "{dry}");
        let id = dry["id"].as_str().expect("id").to_string();
        let (status, started) = self.confirm(&id, false).await;
        assert_eq!(status, 202, "{started}");
        let run = self.wait(&id).await;
        assert_eq!(run["status"], "done", "{run}");
        run
    }
}

fn households_in(server: &TestServer, grid: &gridsync_shared::TerritoryPath) -> Vec<Household> {
    server
        .doc_ids(grid)
        .into_iter()
        .filter_map(|id| server.document(id))
        .filter_map(|d| match gridsync_shared::records::read_record(&d).expect("record") {
            Record::Household(h) => Some(h),
            _ => None,
        })
        .collect()
}

/// The territories of `tc/xn/sh/dh` with grids g1 and g2, as an XLSX file.
fn territory_file() -> Vec<u8> {
    let mut r = rows(&[TERRITORY_HEADER]);
    r.extend(rows(&[
        &["xn", "孝南区", "sh", "书院街道", "dh", "东湖社区", "g1", "第一网格"],
        &["xn", "孝南区", "sh", "书院街道", "dh", "东湖社区", "g2", "第二网格"],
    ]));
    xlsx(&r)
}

#[tokio::test]
async fn a_dry_run_lists_every_problem_writes_nothing_and_a_confirmed_gbk_and_xlsx_import_writes() {
    let server = TestServer::start().await;
    let admin_name = server.person(Role::Administrator, &"tc".parse().expect("path"));
    let admin = Admin::sign_in(&server.url, &admin_name).await;

    // Templates, in both formats.
    let (status, template) = admin.get("/v1/admin/imports/templates/households.xlsx").await;
    assert_eq!((status, &template[..2]), (200, &b"PK"[..]));
    let (status, template) = admin.get("/v1/admin/imports/templates/people.csv").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8(template).expect("utf-8").contains("登录名"));

    // Territories from XLSX: the dry run writes nothing; the confirmation writes the five new nodes.
    let before = server.store().territories().expect("territories").len();
    let (status, dry) = admin.upload("territories", "网格划分表.xlsx", territory_file()).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!((dry["create"].as_u64(), dry["status"].as_str()), (Some(5), Some("dry_run")), "{dry}");
    assert_eq!(server.store().territories().expect("territories").len(), before, "a dry run writes nothing");
    let id = dry["id"].as_str().expect("id");
    assert_eq!(admin.confirm(id, false).await.0, 202);
    assert_eq!(admin.wait(id).await["outcome"]["create"], 5);
    assert_eq!(server.store().territories().expect("territories").len(), before + 5);

    // People from GBK CSV: a bad row is reported by row, column and reason; confirming is refused.
    let mut people = rows(&[PEOPLE_HEADER]);
    people.extend(rows(&[
        &["张伟", "zhangwei", "网格员", "tc/xn/sh/dh/g1", "13800138000"],
        &["李娜", "lina", "网格员", "孝南区/书院街道/东湖社区/第二网格", ""],
        &["王五", "wangwu", "队长", "tc/xn/sh/dh/g9", "12345"],
    ]));
    let (status, dry) = admin.upload("people", "名册.csv", gbk_csv(&people)).await;
    assert_eq!(status, 200, "{dry}");
    let problems: Vec<(u64, String)> = dry["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| (p["row"].as_u64().expect("row"), p["column"].as_str().expect("column").to_string()))
        .collect();
    assert_eq!(problems, [(4, "角色".to_string()), (4, "手机号".to_string())], "{dry}");
    assert!(dry["problems"][0]["reason"].as_str().expect("reason").contains("角色应为"));
    let id = dry["id"].as_str().expect("id");
    assert_eq!(admin.confirm(id, false).await.0, 400, "a file with problems is not imported");
    assert!(server.store().person_by_username("zhangwei").expect("person").is_none());
    // The fixed file imports; the passwords file signs people in, once.
    people.pop();
    let run = admin.import("people", "名册.csv", gbk_csv(&people)).await;
    assert_eq!((run["outcome"]["create"].as_u64(), run["passwords_ready"].as_bool()), (Some(2), Some(true)));
    let id = run["id"].as_str().expect("id");
    let (status, csv) = admin.get(&format!("/v1/admin/imports/{id}/passwords.csv")).await;
    assert_eq!(status, 200);
    let csv = String::from_utf8(csv).expect("utf-8");
    let line = csv.lines().find(|l| l.starts_with("zhangwei,")).expect("zhangwei's line");
    let password = line.rsplit(',').next().expect("password");
    Phone::sign_in(&server.url, "zhangwei", password).await.expect("the initial password signs in");
    assert_eq!(admin.get(&format!("/v1/admin/imports/{id}/passwords.csv")).await.0, 404, "downloadable once");
    let audit = server.store().audit_after(0, usize::MAX).expect("audit");
    assert!(audit.iter().all(|e| !e.detail.contains(password)), "no password in the audit log");
    assert!(audit.iter().any(|e| e.action == "import.apply"));

    // Households from XLSX with a checksum error: reported, then imported without that row when asked.
    let g1: gridsync_shared::TerritoryPath = "tc/xn/sh/dh/g1".parse().expect("path");
    let bad = {
        let good = resident_id(7);
        let last = if good.ends_with('1') { '2' } else { '1' };
        format!("{}{last}", &good[..17])
    };
    let mut hh = rows(&[HOUSEHOLD_HEADER]);
    hh.push(
        rows(&[&["", "tc/xn/sh/dh/g1", "东湖路1号", "李秀英", "户主", &resident_id(1), "13800138000", "独居老人", ""]])
            [0]
        .clone(),
    );
    hh.push(rows(&[&["", "tc/xn/sh/dh/g1", "", "王强", "子女", &resident_id(2), "", "", ""]])[0].clone());
    hh.push(rows(&[&["", "tc/xn/sh/dh/g1", "东湖路2号", "赵四", "户主", &bad, "", "", ""]])[0].clone());
    let (status, dry) = admin.upload("households", "人口信息表.xlsx", xlsx(&hh)).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        (dry["problems"][0]["row"].as_u64(), dry["problems"][0]["column"].as_str()),
        (Some(4), Some("身份证号"))
    );
    assert!(!dry.to_string().contains(&bad), "the report does not quote the ID number");
    assert!(households_in(&server, &g1).is_empty(), "a dry run writes nothing");
    let id = dry["id"].as_str().expect("id");
    assert_eq!(admin.confirm(id, true).await.0, 202);
    let run = admin.wait(id).await;
    assert_eq!(run["outcome"]["create"], 1, "{run}");
    let households = households_in(&server, &g1);
    assert_eq!(households.len(), 1);
    assert_eq!(households[0].fields.members.len(), 2);
    assert_eq!(households[0].fields.tags, ["独居老人"]);

    // Households from GBK CSV, keyed by 户号.
    let mut hh2 = rows(&[HOUSEHOLD_HEADER]);
    hh2.extend(rows(&[
        &[
            "DH-0001",
            "孝南区/书院街道/东湖社区/第二网格",
            "东湖路9号",
            "钱六",
            "户主",
            "",
            "0712-2345678",
            "低保、残疾人",
            "需关注",
        ],
        &["DH-0001", "tc/xn/sh/dh/g2", "", "钱小六", "子女", &resident_id(3), "", "", ""],
    ]));
    let run = admin.import("households", "户籍.csv", gbk_csv(&hh2)).await;
    assert_eq!(run["outcome"]["create"], 1, "{run}");
    let g2 = households_in(&server, &"tc/xn/sh/dh/g2".parse().expect("path"));
    assert_eq!(g2[0].fields.tags, ["低保", "残疾人"]);
    let (status, history) = admin.get("/v1/admin/imports").await;
    assert_eq!(status, 200);
    let history: Vec<Value> = serde_json::from_slice(&history).expect("json");
    assert!(history.len() >= 5 && history[0]["name"] == "户籍.csv", "newest first");
    server.stop().await;
}

/// 600 households of two residents in grid g1 (户号 HH-n), the first `changed` with a new address.
fn ledger(n: usize, changed: usize) -> Vec<Vec<String>> {
    let mut out = rows(&[HOUSEHOLD_HEADER]);
    for i in 0..n {
        let address = if i < changed { format!("新华路{i}号") } else { format!("东湖路{i}号") };
        out.push(vec![
            format!("HH-{i}"),
            "tc/xn/sh/dh/g1".into(),
            address,
            format!("户主{i}"),
            "户主".into(),
            resident_id(2 * i),
            "13800138000".into(),
            String::new(),
            String::new(),
        ]);
        out.push(vec![
            format!("HH-{i}"),
            "tc/xn/sh/dh/g1".into(),
            String::new(),
            format!("成员{i}"),
            "配偶".into(),
            resident_id(2 * i + 1),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    out
}

#[tokio::test]
async fn re_import_changes_nothing_an_update_merges_with_a_phone_edit_and_phones_page_their_households() {
    let server = TestServer::start().await;
    let admin_name = server.person(Role::Administrator, &"tc".parse().expect("path"));
    let admin = Admin::sign_in(&server.url, &admin_name).await;
    admin.import("territories", "t.xlsx", territory_file()).await;
    let g1: gridsync_shared::TerritoryPath = "tc/xn/sh/dh/g1".parse().expect("path");

    // A household a grid manager added on the phone before the import: found by its head's ID number.
    let mut phone = server.phone_in(&g1).await;
    let own_id = idn("42090219880808123");
    let fields = gridsync_shared::records::HouseholdFields {
        address: "东湖路88号".into(),
        head: "孙八".into(),
        id_number: own_id.clone(),
        ..Default::default()
    };
    let phone_made = phone.create(&NewRecord::Household(fields)).expect("create");
    phone.sync().await.expect("sync");

    let n = 600;
    let mut file = ledger(n, 0);
    file.push(
        rows(&[&["", "tc/xn/sh/dh/g1", "东湖路88号", "孙八", "户主", &own_id, "13900139000", "", ""]])[0].clone(),
    );
    let run = admin.import("households", "ledger.xlsx", xlsx(&file)).await;
    assert_eq!((run["create"].as_u64(), run["update"].as_u64()), (Some(n as u64), Some(1)), "{run}");

    // The grid's phone receives every household in bounded pages.
    let rounds = phone.sync().await.expect("sync");
    assert!(rounds.len() >= 2, "{} households came in more than one page", n);
    assert_eq!(phone.replica.records_of(Some(RecordKind::Household)).count(), n + 1);
    let Some(Record::Household(mine)) = phone.replica.record(phone_made) else { panic!("household") };
    assert_eq!(mine.fields.phone, "13900139000", "the import updated the phone's household");

    // The same file again: nothing created or updated, no new feed entries.
    let head = server.store().head_seq().expect("seq");
    let run = admin.import("households", "ledger.xlsx", xlsx(&file)).await;
    assert_eq!((run["outcome"]["create"].as_u64(), run["outcome"]["update"].as_u64()), (Some(0), Some(0)), "{run}");
    assert_eq!(server.store().head_seq().expect("seq"), head, "a re-import writes no change");

    // A phone edits a household offline while an updated file changes its address.
    let (target, _) = phone
        .replica
        .records_of(Some(RecordKind::Household))
        .find(|(_, r)| matches!(r, Record::Household(h) if h.fields.head == "户主0"))
        .expect("household 0");
    phone
        .edit(target, |e| {
            let Ok(Record::Household(h)) = e.record() else { panic!("household") };
            let mut f = h.fields.clone();
            f.notes = "电话回访：独居".into();
            f.tags.push("重点关注".into());
            e.update_household(&f)
        })
        .expect("edit");
    let run = admin.import("households", "ledger-2.xlsx", xlsx(&ledger(n, 1))).await;
    assert_eq!((run["outcome"]["create"].as_u64(), run["outcome"]["update"].as_u64()), (Some(0), Some(1)), "{run}");
    phone.sync().await.expect("sync");
    let Some(Record::Household(h)) = phone.replica.record(target) else { panic!("household") };
    assert_eq!(h.fields.address, "新华路0号", "the import's change arrived");
    assert_eq!(h.fields.notes, "电话回访：独居", "the phone's edit survived");
    assert!(h.fields.tags.contains(&"重点关注".to_string()));
    let server_copy = households_in(&server, &g1).into_iter().find(|h| h.fields.head == "户主0").expect("server copy");
    assert_eq!(
        (server_copy.fields.address.as_str(), server_copy.fields.notes.as_str()),
        ("新华路0号", "电话回访：独居")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_non_administrator_or_another_territorys_administrator_is_refused() {
    let server = TestServer::start().await;
    let city_admin = Admin::sign_in(&server.url, &server.person(Role::Administrator, &"tc".parse().expect("p"))).await;
    let run = city_admin.import("territories", "t.xlsx", territory_file()).await;
    let g1: gridsync_shared::TerritoryPath = "tc/xn/sh/dh/g1".parse().expect("path");

    let staff = Admin::sign_in(&server.url, &server.person(Role::FieldStaff, &g1)).await;
    assert_eq!(staff.upload("territories", "t.xlsx", territory_file()).await.0, 403);
    assert_eq!(staff.get("/v1/admin/imports").await.0, 403);

    // An administrator of another district: rows outside it are problems, others' runs are not theirs.
    let other = server.person(Role::Administrator, &"tc/d1".parse().expect("path"));
    let other = Admin::sign_in(&server.url, &other).await;
    let mut hh = rows(&[HOUSEHOLD_HEADER]);
    hh.extend(rows(&[&["", "tc/xn/sh/dh/g1", "东湖路1号", "李秀英", "户主", &resident_id(1), "", "", ""]]));
    let (status, dry) = other.upload("households", "hh.csv", gbk_csv(&hh)).await;
    assert_eq!(status, 200);
    assert_eq!(dry["problems"][0]["reason"], "不在您管辖的区域内", "{dry}");
    let id = dry["id"].as_str().expect("id");
    assert_eq!(other.confirm(id, false).await.0, 400);
    let (status, _) = other.confirm(id, true).await;
    assert_eq!(status, 202);
    other.wait(id).await;
    assert!(households_in(&server, &g1).is_empty(), "nothing written outside their territory");
    let theirs = run["id"].as_str().expect("id");
    assert_eq!(other.get(&format!("/v1/admin/imports/{theirs}")).await.0, 404);
    server.stop().await;
}

#[tokio::test]
async fn the_cli_imports_on_a_stopped_and_a_running_server() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let admin = CliPerson { username: "admin", password: "password-admin", role: "administrator", territory: "" };
    city(&data, &["g1"], &[admin]).await;
    let file = |name: &str, bytes: Vec<u8>| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path.to_str().expect("path").to_string()
    };
    let mut hh = rows(&[HOUSEHOLD_HEADER]);
    hh.extend(rows(&[
        &["", "xg/xn/sh/dh/g1", "东湖路1号", "李秀英", "户主", &resident_id(1), "13800138000", "", ""],
        &["", "xg/xn/sh/dh/g1", "", "王强", "子女", &resident_id(2), "", "", ""],
        &["", "xg/xn/sh/dh/g9", "东湖路2号", "赵四", "户主", &resident_id(3), "", "", ""],
    ]));
    let hh_file = file("hh.csv", gbk_csv(&hh));

    // Stopped: the dry run reports the unknown grid and writes nothing; the fixed file imports.
    let out = ServerProcess::cli(&data, &["import-city", "households", &hh_file, "--dry-run"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && stdout.contains("第4行 所属网格：未知网格"), "{stdout}");
    hh.pop();
    let hh_file = file("hh.csv", gbk_csv(&hh));
    let out = ServerProcess::cli(&data, &["import-city", "households", &hh_file]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("已导入：新建 1"), "{stdout}");

    // Running: the same file through the admin socket changes nothing; people get a passwords file.
    let server = ServerProcess::start(&data, free_port(), &[]).await;
    let out = ServerProcess::cli(&data, &["import-city", "households", &hh_file]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("已导入：新建 0，更新 0，不变 1"), "{stdout}");
    let mut people = rows(&[PEOPLE_HEADER]);
    people.extend(rows(&[&["张伟", "zhangwei", "网格员", "xg/xn/sh/dh/g1", ""]]));
    let people_file = file("people.xlsx", xlsx(&people));
    let passwords = dir.path().join("passwords.csv");
    let pw = passwords.to_str().expect("path");
    let refused = ServerProcess::cli(&data, &["import-city", "people", &people_file]).await;
    assert!(!refused.status.success(), "a people import needs --passwords-out");
    let out = ServerProcess::cli(&data, &["import-city", "people", &people_file, "--passwords-out", pw]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(&passwords).expect("passwords file");
    let password = csv.lines().nth(1).and_then(|l| l.rsplit(',').next()).expect("password").to_string();
    let mut phone = Phone::sign_in(&server.url, "zhangwei", &password).await.expect("signs in");
    phone.sync().await.expect("sync");
    assert_eq!(phone.replica.records_of(Some(RecordKind::Household)).count(), 1);
    let audit = ServerProcess::cli(&data, &["audit"]).await;
    assert!(!String::from_utf8_lossy(&audit.stdout).contains(&password), "no password in the audit log");
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_a_stopped_server_left_running_is_marked_interrupted_at_start_and_old_uploads_are_removed() {
    use gridsync_server::imports::{ImportRun, Status};
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let server = TestServer::start_in(&data, gridsync_server::Limits::default()).await;
    let admin_name = server.person(Role::Administrator, &"tc".parse().expect("path"));
    let admin = Admin::sign_in(&server.url, &admin_name).await;
    let (status, dry) = admin.upload("territories", "网格划分表.xlsx", territory_file()).await;
    assert_eq!(status, 200, "{dry}");
    let id = dry["id"].as_str().expect("id").to_string();
    // The server stops while the run is being written.
    let mut run = ImportRun::load(server.store(), &id).expect("load").expect("kept");
    run.status = Status::Running;
    run.save(server.store()).expect("save");
    server.stop().await;
    // An upload that waited two days for its confirmation, and a fresh one.
    let uploads = std::env::temp_dir().join("gridsync-imports");
    std::fs::create_dir_all(&uploads).expect("upload dir");
    let (old, fresh) = (uploads.join(format!("test-old-{id}")), uploads.join(format!("test-fresh-{id}")));
    for f in [&old, &fresh] {
        std::fs::write(f, b"x").expect("write");
    }
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(48 * 3600);
    std::fs::File::options().write(true).open(&old).expect("open").set_modified(two_days_ago).expect("mtime");

    let server = TestServer::start_in(&data, gridsync_server::Limits::default()).await;
    let admin = Admin::sign_in(&server.url, &admin_name).await;
    let (status, body) = admin.get(&format!("/v1/admin/imports/{id}")).await;
    let run: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!((status, run["status"].as_str()), (200, Some("failed")), "{run}");
    assert_eq!(run["error"].as_str(), Some(gridsync_server::http_imports::INTERRUPTED));
    assert!(!old.exists() && fresh.exists(), "only uploads older than a day are removed");
    let _ = std::fs::remove_file(&fresh);
}
