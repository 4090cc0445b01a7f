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
    assert_eq!((n.records, n.photos), (3, 0), "the case, the visit and the household");
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

/// A JPEG-typed photo's bytes (its magic bytes, then filler) and what a record keeps of it.
fn photo(seed: u8) -> (Vec<u8>, gridsync_shared::photos::NewPhoto) {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..40_000u32).map(|i| (i % 251) as u8 ^ seed));
    let new = gridsync_shared::photos::NewPhoto {
        sha256: gridsync_server::photos::photo_hash(&bytes),
        size: bytes.len() as u64,
        mime: gridsync_shared::photos::PhotoType::Jpeg,
        taken_at: gridsync_tests::now_ms(),
        location: None,
        follow_up: None,
    };
    (bytes, new)
}

/// Uploads a photo in one chunk through `PUT /v1/photos/{sha256}`, as a phone does.
async fn upload(server: &TestServer, token: &str, bytes: &[u8], photo: &gridsync_shared::photos::NewPhoto) {
    let r = reqwest::Client::new()
        .put(format!("{}/v1/photos/{}", server.url, photo.sha256))
        .bearer_auth(token)
        .header("content-type", "image/jpeg")
        .header("x-photo-size", bytes.len().to_string())
        .header("x-upload-offset", "0")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("upload");
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    assert_eq!(status, 200, "upload refused: {body}");
    assert!(body.contains("\"stored\":true"), "{body}");
}

fn photo_name(p: &gridsync_shared::photos::NewPhoto) -> String {
    format!("photos/{}.jpg", p.sha256)
}

/// The rows of a CSV entry, each as header → decoded value.
fn csv_rows(zip: &[u8], name: &str) -> Vec<std::collections::HashMap<String, String>> {
    let bytes = entry(zip, name);
    let mut reader = csv::ReaderBuilder::new().from_reader(&bytes[3..]);
    let headers: Vec<String> = reader.headers().expect("headers").iter().map(str::to_string).collect();
    reader
        .records()
        .map(|r| headers.iter().cloned().zip(r.expect("row").iter().map(|c| decode_cell(c).into_owned())).collect())
        .collect()
}

fn entry_names(zip: &[u8]) -> Vec<String> {
    let archive = zip::ZipArchive::new(Cursor::new(zip)).expect("a zip archive");
    archive.file_names().map(|n| n.expect("an entry name").into_owned()).collect()
}

#[tokio::test]
async fn a_snapshot_with_photos_holds_a_cases_two_photos_as_of_its_moment_listed_in_the_manifest_and_named_in_the_csv()
{
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let ((own, own_ref), (follow, follow_ref), (_, never_ref), (later, later_ref)) =
        (photo(1), photo(2), photo(3), photo(4));
    let case = phone.report_case("消防通道堵塞");
    phone.edit(case, |e| e.add_photos(std::slice::from_ref(&own_ref))).expect("the case's photo");
    phone
        .edit(case, |e| e.add_follow_up_with_photos("物业已清理", None, std::slice::from_ref(&follow_ref)))
        .expect("a follow-up's photo");
    let visit = phone.record_visit("楼道堆放纸箱");
    phone.edit(visit, |e| e.add_photos(std::slice::from_ref(&never_ref))).expect("a photo never uploaded");
    phone.sync().await.expect("sync");
    upload(&server, phone.token(), &own, &own_ref).await;
    upload(&server, phone.token(), &follow, &follow_ref).await;
    let moment = gridsync_tests::now_ms();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // After the snapshot's moment: a second follow-up photo, uploaded too.
    phone
        .edit(case, |e| e.add_follow_up_with_photos("复查", None, std::slice::from_ref(&later_ref)))
        .expect("a later photo");
    phone.sync().await.expect("sync");
    upload(&server, phone.token(), &later, &later_ref).await;
    let admin = admin(&server).await;

    let (status, zip) = download(&server, admin.token(), &format!("format=csv&photos=true&as_of={moment}")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&zip));
    let photos: Vec<String> = entry_names(&zip).into_iter().filter(|n| n.starts_with("photos/")).collect();
    let mut want = vec![photo_name(&own_ref), photo_name(&follow_ref)];
    want.sort();
    assert_eq!(photos, want, "both of the case's photos, and not the one added after the moment");
    assert_eq!(entry(&zip, &photo_name(&own_ref)), own, "the photo's own bytes");
    assert_eq!(entry(&zip, &photo_name(&follow_ref)), follow);
    let m = manifest(&zip);
    for (bytes, p) in [(&own, &own_ref), (&follow, &follow_ref)] {
        let listed = m["files"].as_array().expect("files").iter().find(|f| f["name"] == photo_name(p)).expect("listed");
        assert_eq!(listed["size"], bytes.len() as u64);
        assert_eq!(listed["sha256"], gridsync_server::photos::photo_hash(bytes).as_str());
        assert_eq!(listed["sha256"], p.sha256.as_str());
    }
    assert_eq!(
        m["photos"],
        serde_json::json!({"referenced": 3, "included": 2, "missing": 1, "bytes": own.len() + follow.len()})
    );
    let missing = &m["missing_photos"][0];
    assert_eq!(
        (missing["name"].as_str(), missing["reason"].as_str()),
        (Some(photo_name(&never_ref).as_str()), Some("not_uploaded"))
    );
    assert_eq!(missing["referenced_by"], visit.to_string());

    let cases = csv_rows(&zip, "cases.csv");
    assert_eq!(cases[0]["照片"], format!("{};{}", photo_name(&own_ref), photo_name(&follow_ref)));
    assert_eq!(cases[0]["照片数"], "2");
    assert_eq!(csv_rows(&zip, "visit_logs.csv")[0]["照片"], photo_name(&never_ref), "named even though not uploaded");

    // Now, and without photos=true: no photo files; the rows still name the three photos of the case.
    let (status, zip) = download(&server, admin.token(), "format=csv").await;
    assert_eq!(status, 200);
    assert!(entry_names(&zip).iter().all(|n| !n.starts_with("photos/")), "{:?}", entry_names(&zip));
    assert!(manifest(&zip).get("photos").is_none());
    let cases = csv_rows(&zip, "cases.csv");
    assert_eq!(cases[0]["照片数"], "3");
    assert!(cases[0]["照片"].ends_with(&photo_name(&later_ref)));
    let audit: Vec<_> = server.store().audit_after(0, 100).expect("audit");
    assert_eq!(
        audit.iter().filter(|e| e.detail.contains("photos=true")).count(),
        1,
        "the audit log says which had photos"
    );
}

#[tokio::test]
async fn a_bundle_with_photos_rebuilds_the_photos_too_and_a_damaged_photo_is_refused() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let (bytes, p) = photo(9);
    let (_, not_uploaded) = photo(10);
    let case = phone.report_case("墙体开裂");
    phone.edit(case, |e| e.add_photos(&[p.clone(), not_uploaded.clone()])).expect("photos");
    phone.sync().await.expect("sync");
    upload(&server, phone.token(), &bytes, &p).await;
    let admin = admin(&server).await;
    let (status, zip) =
        download(&server, admin.token(), "format=bundle&unmask=true&reason=%E5%A4%87%E4%BB%BD&photos=true").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&zip));

    let dir = tempfile::tempdir().expect("tmp");
    let fresh = SledStore::open(dir.path()).expect("empty store");
    let n = gridsync_server::snapshot::import_bundle(&fresh, Cursor::new(zip.clone()), 1).expect("import");
    assert_eq!((n.records, n.photos), (1, 1));
    let (mime, stored) = fresh.photo(&p.sha256).expect("read").expect("the photo is in the rebuilt store");
    assert_eq!((mime, stored), (p.mime, bytes.clone()));
    assert!(!fresh.has_photo(&not_uploaded.sha256).expect("read"), "what was never uploaded is still missing");
    assert_eq!(fresh.photo_referrers(&p.sha256).expect("index").len(), 1, "and the record references it");

    // The same bundle with the photo's bytes altered (a valid zip whose entry is not what its name says): refused.
    let mut source = zip::ZipArchive::new(Cursor::new(zip)).expect("zip");
    let mut rewritten = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..source.len() {
        let mut e = source.by_index(i).expect("entry");
        let name = e.name().expect("name").into_owned();
        let mut body = Vec::new();
        e.read_to_end(&mut body).expect("read");
        if name.starts_with("photos/") {
            body[1_000] ^= 0xFF;
        }
        rewritten.start_file(name, zip::write::SimpleFileOptions::default()).expect("entry");
        std::io::Write::write_all(&mut rewritten, &body).expect("write");
    }
    let damaged = rewritten.finish().expect("zip").into_inner();
    let dir = tempfile::tempdir().expect("tmp");
    let fresh = SledStore::open(dir.path()).expect("empty store");
    let refused = gridsync_server::snapshot::import_bundle(&fresh, Cursor::new(damaged), 1);
    assert!(refused.as_ref().is_err_and(|e| e.to_string().contains("hash")), "{refused:?}");
    assert!(!fresh.has_photo(&p.sha256).expect("read"));
}

// ---------------------------------------------------------------------------
// Snapshots read from the rows the store keeps beside each document.

use gridsync_server::export::{Format, SnapshotMeta, write_snapshot};
use gridsync_server::snapshot::{StoreSnapshot, with_pool};
use gridsync_server::store::DocWrite;
use gridsync_shared::records::row::encode_row;
use gridsync_shared::records::{CaseFields, CaseKind, Editor, PromiseFields, VisitFields, new_record, read_record};
use gridsync_shared::{Author, DeviceId, DocId, PersonId};
use gridsync_tests::test_store::{Listing, TestStore};
use std::sync::Arc;

fn author(grid: &TerritoryPath) -> Author {
    Author { person: PersonId(uuid::Uuid::from_u128(7)), role: Role::Supervisor, territory: grid.clone() }
}

/// Commits `doc` (every change so far) as record `id`, with its row.
fn commit(store: &dyn Store, id: DocId, doc: &automerge::Automerge, at: i64) -> u64 {
    let record = read_record(doc).expect("a valid record");
    let seq = store
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
                row: Some(encode_row(&record)),
            },
            at,
        )
        .expect("commit");
    store.flush().expect("flush");
    seq
}

/// A store with a household (phone and ID number), visit logs, a case and a
/// promise, some of them changed after the returned feed position, and one
/// visit log created after it.
fn store_changed_after_its_moment(dir: &std::path::Path) -> (SledStore, TerritoryPath, u64) {
    let store = SledStore::open(dir).expect("store");
    let city: TerritoryPath = "rc".parse().expect("path");
    let mut path = city.clone();
    gridsync_server::admin::add_territory(&store, &path, "市").expect("territory");
    for (part, name) in [("d", "区"), ("s", "街道"), ("c", "社区"), ("g", "网格")] {
        path = path.child(part).expect("path");
        gridsync_server::admin::add_territory(&store, &path, name).expect("territory");
    }
    let grid = path;
    let who = author(&grid);
    let make = |seed: u8, new: NewRecord| {
        new_record(automerge::ActorId::random(), &who, &grid, 1_000, [seed; 10], &new).expect("record")
    };
    let (household, mut h) = make(1, NewRecord::Household(tricky_household()));
    let mut visits: Vec<_> = (0..5)
        .map(|i| {
            make(
                10 + i,
                NewRecord::VisitLog(VisitFields {
                    household: Some(household),
                    visited_at: 2_000 + i64::from(i),
                    notes: format!("第{i}次走访，电话13807120011"),
                    concerns: vec!["路灯不亮".into()],
                    ..VisitFields::default()
                }),
            )
        })
        .collect();
    let case_fields = CaseFields {
        kind: CaseKind::Hazard,
        title: "楼道堆物".into(),
        description: "三楼".into(),
        household: Some(household),
        visit: None,
        due_at: Some(9_000),
    };
    let (case, mut c) = make(2, NewRecord::Case(case_fields));
    Editor::new(&mut c, &who, 3_000).add_follow_up("已到现场", None).expect("follow-up");
    let (promise, p) =
        make(3, NewRecord::Promise(PromiseFields { content: "修路灯".into(), household: None, due_at: 5_000 }));
    commit(&store, household, &h, 1_000);
    for (id, doc) in &visits {
        commit(&store, *id, doc, 1_000);
    }
    commit(&store, case, &c, 1_000);
    let moment = commit(&store, promise, &p, 1_000);

    // After the moment: the head's name changes, the case is followed up
    // again, a visit is voided, and a new visit is logged.
    let mut later = tricky_household();
    later.head = "陈桂兰（改名后）".into();
    Editor::new(&mut h, &who, 4_000).update_household(&later).expect("edit");
    commit(&store, household, &h, 4_000);
    Editor::new(&mut c, &who, 4_000).add_follow_up("导出之后的跟进", None).expect("follow-up");
    commit(&store, case, &c, 4_000);
    let (voided, v) = &mut visits[0];
    Editor::new(v, &who, 4_000).void_record("重复录入").expect("void");
    commit(&store, *voided, v, 4_000);
    let (new_visit, n) = make(20, NewRecord::VisitLog(VisitFields { visited_at: 4_000, ..VisitFields::default() }));
    commit(&store, new_visit, &n, 4_000);
    (store, city, moment)
}

/// The archive of `store` as of `seq` in `format`, made with fixed times.
fn export(store: &dyn Store, city: &TerritoryPath, seq: u64, format: Format, masked: bool) -> Vec<u8> {
    let meta = SnapshotMeta {
        territory: city.clone(),
        as_of_ms: 1_500,
        as_of_seq: seq,
        generated_at_ms: 1_795_608_000_000,
        generated_by: "test".into(),
        masked,
        photos: false,
    };
    let mut out = Vec::new();
    with_pool(|pool| {
        let source =
            StoreSnapshot::new(store, city.clone(), seq, masked).with_documents(format == Format::Bundle).on(pool);
        write_snapshot(&mut out, format, &meta, &source, &mut |_| {})
    })
    .expect("snapshot written");
    out
}

#[test]
fn a_snapshot_read_from_rows_holds_exactly_the_records_as_of_its_moment_in_the_same_bytes_as_one_read_from_documents() {
    let dir = tempfile::tempdir().expect("dir");
    let (inner, city, moment) = store_changed_after_its_moment(dir.path());
    let mut store = TestStore::over(Arc::new(inner)).listing(Listing::RowsFromDocuments);

    let from_rows = export(&store, &city, moment, Format::Jsonl, false);
    assert_eq!(
        store.take_loaded(),
        4,
        "only the three records changed after the moment and the one created after it are read from documents"
    );
    let households = String::from_utf8(entry(&from_rows, "households.jsonl")).expect("utf-8");
    assert!(households.contains("陈桂英") && !households.contains("改名后"), "{households}");
    let cases = String::from_utf8(entry(&from_rows, "cases.jsonl")).expect("utf-8");
    assert!(cases.contains("已到现场") && !cases.contains("导出之后"), "{cases}");
    let visits = String::from_utf8(entry(&from_rows, "visit_logs.jsonl")).expect("utf-8");
    assert_eq!(visits.lines().count(), 5, "the visit logged after the moment is not in it");
    assert!(!visits.contains("重复录入"), "the void came after the moment");
    assert_eq!(manifest(&from_rows)["counts"]["visit_log"], 5);

    for (format, masked) in [
        (Format::Csv, true),
        (Format::Csv, false),
        (Format::Jsonl, true),
        (Format::Xlsx, true),
        (Format::Bundle, false),
    ] {
        store.set_listing(Listing::RowsFromDocuments);
        let rows = export(&store, &city, moment, format, masked);
        assert_eq!(export(&store, &city, moment, format, masked), rows, "{format} twice: the same bytes");
        store.set_listing(Listing::FromDocuments);
        let documents = export(&store, &city, moment, format, masked);
        assert_eq!(rows, documents, "{format} masked={masked}: from rows as from documents");
        store.set_listing(Listing::DamagedRows);
        assert_eq!(export(&store, &city, moment, format, masked), documents, "{format}: damaged rows");
    }
}

#[test]
fn a_masked_snapshot_read_from_rows_masks_phone_and_id_numbers() {
    let dir = tempfile::tempdir().expect("dir");
    let (inner, city, moment) = store_changed_after_its_moment(dir.path());
    let store = TestStore::over(Arc::new(inner)).listing(Listing::RowsFromDocuments);
    let unmasked = export(&store, &city, moment, Format::Csv, false);
    let masked = export(&store, &city, moment, Format::Csv, true);
    assert_eq!(store.take_loaded(), 2 * 4, "read from rows");
    let text = |zip: &[u8], name: &str| String::from_utf8(entry(zip, name)).expect("utf-8");
    for name in ["households.csv", "visit_logs.csv"] {
        assert!(text(&unmasked, name).contains("13807120011"), "{name} unmasked holds the number");
        assert!(!text(&masked, name).contains("13807120011"), "{name} masked does not");
    }
    assert!(!text(&masked, "households.csv").contains("420902194803150021"));
}
