//! Administrators' snapshots: consistent as of one moment while phones keep
//! syncing, in files that read back exactly, masked by default, audited, and
//! a bundle from which an empty server rebuilds the same documents.

use gridsync_server::export::csv::decode_cell;
use gridsync_server::store::{SledStore, Store};
use gridsync_shared::records::{HouseholdFields, Member, NewRecord, read_record_at};
use gridsync_shared::{Record, Role, TerritoryPath};
use gridsync_tests::{Phone, TestServer};
use std::io::{Cursor, Read};

/// An administrator's bearer token over the whole test city.
async fn admin(server: &TestServer) -> Phone {
    let city: TerritoryPath = gridsync_tests::server::CITY.parse().expect("city");
    let username = server.person(Role::Administrator, &city);
    server.phone_for(&username).await
}

async fn download(server: &TestServer, token: &str, query: &str) -> (u16, Vec<u8>) {
    let r = reqwest::Client::new()
        .get(format!("{}/v1/admin/snapshot?{query}", server.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.bytes().await.expect("body").to_vec())
}

fn entry(zip: &[u8], name: &str) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).expect("a zip archive");
    let mut file = archive.by_name(name).unwrap_or_else(|_| panic!("{name} in the archive"));
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).expect("read entry");
    bytes
}

fn manifest(zip: &[u8]) -> serde_json::Value {
    serde_json::from_slice(&entry(zip, "manifest.json")).expect("manifest is JSON")
}

fn tricky_household() -> HouseholdFields {
    HouseholdFields {
        address: "东湖路12号,3栋\"2单元\"\n401室，“幸福”小区".into(),
        head: "陈桂英".into(),
        phone: "013807120011".into(),
        id_number: "420902194803150021".into(),
        members: vec![Member { name: "周丽".into(), relation: "女儿".into(), ..Member::default() }],
        tags: vec!["独居老人".into(), "困难群众".into()],
        notes: "=SUM(A1) 不是公式；\r\n第二行".into(),
    }
}

#[tokio::test]
async fn a_snapshot_taken_while_phones_sync_holds_exactly_the_changes_up_to_its_moment() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut a = server.phone_in(&grid).await;
    let case = a.report_case("小区东门积水");
    for i in 0..20 {
        a.record_visit(&format!("第{i}户走访"));
    }
    a.sync().await.expect("sync");
    let admin = admin(&server).await;

    // Phone B keeps syncing new visits and follow-ups while the export runs.
    let mut b = server.phone_in(&grid).await;
    b.sync().await.expect("sync");
    let busy = tokio::spawn(async move {
        for i in 0..15 {
            b.record_visit(&format!("导出期间的走访{i}"));
            b.follow_up(case, &format!("导出期间的跟进{i}"));
            b.sync().await.expect("sync during export");
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let (status, zip) = download(&server, admin.token(), "format=jsonl").await;
    assert_eq!(status, 200);
    busy.await.expect("phone B");

    let seq = manifest(&zip)["as_of_seq"].as_u64().expect("as_of_seq");
    assert!(seq < server.store().head_seq().expect("head"), "phones kept writing after the snapshot's moment");
    // What the snapshot must hold, worked out independently from the store's history.
    let mut expected = std::collections::BTreeMap::new();
    for (id, stored) in server.store().docs_in_scope(&grid, None, usize::MAX).expect("docs") {
        if let Some(heads) = server.store().doc_heads_at(id, seq).expect("heads") {
            let doc = automerge::Automerge::load(&stored.bytes).expect("doc");
            let record = read_record_at(&doc, &heads).expect("record");
            expected.insert(id.to_string(), serde_json::to_value(&record).expect("json"));
        }
    }
    let mut got = std::collections::BTreeMap::new();
    for file in ["households.jsonl", "visit_logs.jsonl", "cases.jsonl", "promises.jsonl"] {
        for line in String::from_utf8(entry(&zip, file)).expect("utf-8").lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            got.insert(v["id"].as_str().expect("id").to_string(), v["record"].clone());
        }
    }
    assert_eq!(got.len(), expected.len(), "exactly the records that existed at the snapshot's moment");
    assert_eq!(got, expected, "each record exactly as it was at that moment");
    let counts = &manifest(&zip)["counts"];
    assert_eq!(counts["case"], 1);
    assert_eq!(counts["visit_log"].as_u64().expect("n") as usize, expected.len() - 1);
}

#[tokio::test]
async fn a_bundle_loaded_into_an_empty_server_gives_identical_documents() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let case = phone.report_case("屋顶漏水");
    phone.follow_up(case, "已联系维修");
    phone.record_visit("例行走访");
    let now = phone.clock + 1;
    phone.replica.create(None, now, &NewRecord::Household(tricky_household())).expect("household");
    phone.sync().await.expect("sync");
    let admin = admin(&server).await;

    let (status, zip) = download(&server, admin.token(), "format=bundle").await;
    assert_eq!(status, 400, "a bundle holds records in full: it needs an explicit unmasked request");
    let (status, zip_ok) =
        download(&server, admin.token(), "format=bundle&unmask=true&reason=%E5%A4%87%E4%BB%BD").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&zip));

    let dir = tempfile::tempdir().expect("tmp");
    let fresh = SledStore::open(dir.path()).expect("empty store");
    let n = gridsync_server::snapshot::import_bundle(&fresh, Cursor::new(zip_ok), 1).expect("import");
    assert_eq!(n, 3, "the case, the visit and the household");
    for id in server.doc_ids(&grid) {
        let original = server.document(id).expect("original");
        let rebuilt =
            automerge::Automerge::load(&fresh.load_doc(id).expect("load").expect("imported").bytes).expect("doc");
        let (mut a, mut b) = (original.get_heads(), rebuilt.get_heads());
        a.sort();
        b.sort();
        assert_eq!(a, b, "same history");
        assert_eq!(original.hydrate(None), rebuilt.hydrate(None), "same content");
    }
}

/// A server whose grid holds one synced household with tricky text, the phone that
/// made it, and an administrator.
async fn server_with_a_tricky_household() -> (TestServer, Phone, Phone) {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let now = phone.clock + 1;
    phone.replica.create(None, now, &NewRecord::Household(tricky_household())).expect("household");
    phone.sync().await.expect("sync");
    let admin = admin(&server).await;
    (server, phone, admin)
}

#[tokio::test]
async fn the_csv_snapshot_parses_back_with_its_bom_and_every_tricky_chinese_string() {
    let (server, phone, admin) = server_with_a_tricky_household().await;

    let (status, zip) = download(&server, admin.token(), "format=csv&unmask=true&reason=%E6%A0%B8%E5%AF%B9").await;
    assert_eq!(status, 200);
    let bytes = entry(&zip, "households.csv");
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF".as_slice()).expect("UTF-8 with a BOM");
    let mut reader = csv::Reader::from_reader(text);
    let headers = reader.headers().expect("headers").clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap_or_else(|| panic!("column {name}"));
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().expect("rows");
    assert_eq!(rows.len(), 1);
    let want = tricky_household();
    assert_eq!(decode_cell(&rows[0][col("地址")]), want.address);
    assert_eq!(decode_cell(&rows[0][col("户主")]), want.head);
    assert_eq!(decode_cell(&rows[0][col("户主电话")]), want.phone, "leading zero kept");
    assert_eq!(decode_cell(&rows[0][col("户主身份证号")]), want.id_number, "18 digits kept as text");
    let Some(Record::Household(_)) = phone.replica.records().next().map(|(_, r)| r) else { panic!("household") };
}

#[tokio::test]
async fn exports_are_masked_by_default_and_each_one_is_in_the_audit_log() {
    let (server, _phone, admin) = server_with_a_tricky_household().await;

    let (_, masked) = download(&server, admin.token(), "format=csv").await;
    let text = String::from_utf8(entry(&masked, "households.csv")).expect("utf-8");
    assert!(!text.contains("420902194803150021") && !text.contains("13807120011"), "masked by default: {text}");
    assert!(text.contains("420902********0021"), "{text}");
    assert_eq!(manifest(&masked)["masked"], true);

    let (status, _) = download(&server, admin.token(), "format=csv&unmask=true").await;
    assert_eq!(status, 400, "unmasking needs a reason");
    let (_, full) =
        download(&server, admin.token(), "format=xlsx&unmask=true&reason=%E4%B8%8A%E7%BA%A7%E6%A0%B8%E6%9F%A5").await;
    assert_eq!(manifest(&full)["masked"], false);

    let audit = reqwest::Client::new()
        .get(format!("{}/v1/admin/audit", server.url))
        .bearer_auth(admin.token())
        .send()
        .await
        .expect("audit")
        .text()
        .await
        .expect("text");
    let exports: Vec<&str> = audit.lines().filter(|l| l.contains("snapshot.export")).collect();
    assert_eq!(exports.len(), 2, "each export that ran is recorded: {audit}");
    assert!(exports[0].contains("masked=true") && exports[1].contains("masked=false"));
    assert!(exports[1].contains("上级核查"), "the reason is recorded");
}

#[tokio::test]
async fn field_staff_and_supervisors_get_403_from_the_admin_routes() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let staff = server.phone_in(&grid).await;
    let supervisor = server.supervisor_phone(&grid.parent().expect("community")).await;
    for phone in [&staff, &supervisor] {
        for path in ["snapshot?format=csv", "audit"] {
            let r = reqwest::Client::new()
                .get(format!("{}/v1/admin/{path}", server.url))
                .bearer_auth(phone.token())
                .send()
                .await
                .expect("request");
            assert_eq!(r.status().as_u16(), 403, "{path}");
        }
    }
    let anonymous = reqwest::get(format!("{}/v1/admin/audit", server.url)).await.expect("request");
    assert_eq!(anonymous.status().as_u16(), 401);
}
