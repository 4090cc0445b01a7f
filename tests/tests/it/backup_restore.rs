//! A full backup taken while phones push, restored into an empty data
//! directory: the backup is the store at one moment (nothing half-applied),
//! and after the restore the phones continue — they send again what the
//! server lost, from where they were, without downloading everything again.
//! A damaged, cut-short or foreign file is refused and changes nothing.

use automerge::{Automerge, ReadDoc};
use gridsync_server::backup::{self, BackupError};
use gridsync_server::store::{SledStore, Store};
use gridsync_shared::photos::{PhotoHash, PhotoType};
use gridsync_shared::records::read_record;
use gridsync_shared::{DocId, TerritoryPath};
use gridsync_tests::Backend;
use gridsync_tests::Phone;
use gridsync_tests::process::{CliPerson, ServerProcess, city_on, free_port};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A valid resident ID number (GB 11643 check digit).
fn resident_id(n: u32) -> String {
    let base = format!("42090219800101{n:03}");
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = base.chars().zip(weights).map(|(c, w)| c.to_digit(10).unwrap_or(0) * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{base}{check}")
}

fn root() -> TerritoryPath {
    "xg".parse().expect("path")
}

/// Every record a phone holds, with its heads and content.
fn holdings(phone: &Phone) -> BTreeMap<DocId, (Vec<automerge::ChangeHash>, automerge::hydrate::Value)> {
    phone
        .replica
        .document_ids()
        .map(|id| {
            let doc = phone.replica.document(id).expect("readable");
            let mut heads = doc.get_heads();
            heads.sort();
            (id, (heads, doc.hydrate(None)))
        })
        .collect()
}

/// Checks that `restored` is `original` as of feed position `seq`, and that
/// each of its documents agrees with its feed entries, heads and summary.
fn assert_is_the_store_at(restored: &dyn Store, original: &dyn Store, seq: u64, root: &TerritoryPath) {
    let feed = restored.feed_after(root, 0, usize::MAX).expect("feed");
    let expected: Vec<_> =
        original.feed_after(root, 0, usize::MAX).expect("feed").into_iter().filter(|e| e.seq <= seq).collect();
    assert_eq!(feed, expected, "the restored feed is the original's up to position {seq}, nothing more");
    assert_eq!(restored.head_seq().expect("head"), seq);
    let mut by_doc: BTreeMap<DocId, Automerge> = BTreeMap::new();
    for entry in &feed {
        let doc = by_doc.entry(entry.doc).or_default();
        let changes = entry.changes.iter().map(|c| automerge::Change::from_bytes(c.clone()).expect("change"));
        doc.apply_changes(changes).expect("apply");
    }
    let docs = restored.docs_in_scope(root, None, usize::MAX).expect("docs");
    assert_eq!(docs.len(), by_doc.len(), "every document has feed entries and every entry a document");
    for (id, stored) in docs {
        let doc = Automerge::load(&stored.bytes).expect("loads");
        let mut heads = doc.get_heads();
        heads.sort();
        let mut from_feed = by_doc[&id].get_heads();
        from_feed.sort();
        assert_eq!(heads, from_feed, "{id}: the document is exactly its feed entries");
        let mut at = restored.doc_heads_at(id, seq).expect("heads").expect("heads known");
        at.sort();
        assert_eq!(heads, at, "{id}: the heads index agrees");
        let mut then = original.doc_heads_at(id, seq).expect("heads").expect("existed");
        then.sort();
        assert_eq!(heads, then, "{id}: as the original held it at position {seq}");
        let summary = read_record(&doc).expect("a valid record").summary();
        assert_eq!(restored.summary(id).expect("summary"), Some(summary), "{id}: the summary agrees");
    }
}

/// Opens a sled store this process has just closed (a restore built it, or a
/// server was stopped): sled's flusher thread lets go of the directory's lock
/// a moment after the last handle drops, so `Locked` is retried for up to 10 s.
fn open_when_released(dir: &std::path::Path) -> SledStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match SledStore::open(dir) {
            Err(gridsync_server::store::StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.expect("open"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_phones_push_restores_and_the_phones_continue_without_starting_over() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let person = |username, role| CliPerson { username, password: "password-123", role, territory: "g1" };
    let admin = CliPerson { username: "admin", password: "password-123", role: "administrator", territory: "" };
    city_on(
        Backend::Sled,
        &data,
        &["g1"],
        &[admin, person("li", "field_staff"), person("wang", "field_staff"), person("zhao", "field_staff")],
    )
    .await;
    // A city import, so there is an import run to keep.
    let ledger = dir.path().join("人口信息表.csv");
    let rows = [
        "户号,所属网格,地址,姓名,与户主关系,身份证号,联系电话,标签,备注".to_string(),
        format!(",xg/xn/sh/dh/g1,东湖路1号,李秀英,户主,{},13800138000,独居老人,", resident_id(1)),
        format!(",xg/xn/sh/dh/g1,东湖路2号,王强,户主,{},,,", resident_id(2)),
    ];
    std::fs::write(&ledger, rows.join("\r\n")).expect("write ledger");
    let out =
        ServerProcess::cli_on(Backend::Sled, &data, &["import-city", "households", ledger.to_str().expect("path")])
            .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    let port = free_port();
    let server = ServerProcess::start_on(Backend::Sled, &data, port, &[]).await;
    let mut li = Phone::sign_in(&server.url, "li", "password-123").await.expect("sign in");
    let mut wang = Phone::sign_in(&server.url, "wang", "password-123").await.expect("sign in");
    for i in 0..15 {
        li.record_visit(&format!("李的第{i}次走访"));
        wang.record_visit(&format!("王的第{i}次走访"));
    }
    li.sync().await.expect("sync");
    wang.sync().await.expect("sync");
    li.sync().await.expect("sync");

    // The backup runs through the running server while both phones keep pushing.
    let stop = Arc::new(AtomicBool::new(false));
    let push = |mut phone: Phone, tag: &'static str| {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Acquire) || n < 3 {
                let id = phone.record_visit(&format!("{tag}备份时的走访{n}"));
                phone.sync().await.expect("sync while the backup runs");
                assert_eq!(phone.replica.pending_changes(), 0);
                acknowledged.push((id, std::time::Instant::now()));
                n += 1;
                tokio::time::sleep(std::time::Duration::from_millis(15)).await;
            }
            (phone, acknowledged)
        })
    };
    let (li_task, wang_task) = (push(li, "李"), push(wang, "王"));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let file = dir.path().join("gridsync.backup");
    let started = std::time::Instant::now();
    let out = ServerProcess::cli_on(Backend::Sled, &data, &["backup", "--out", file.to_str().expect("path")]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stop.store(true, Ordering::Release);
    let (mut li, li_acked) = li_task.await.expect("li");
    let (mut wang, wang_acked) = wang_task.await.expect("wang");
    println!("{stdout}");
    let position: u64 = stdout
        .split("feed position ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("the backup names its feed position");

    // After the backup: work the server acknowledges, then loses in the restore.
    // Wang's follow-up builds on li's new case: it cannot go up before the case does.
    let case = li.report_case("楼道堵塞");
    li.follow_up(case, "已通知物业");
    let late_visit = li.record_visit("备份之后的走访");
    li.sync().await.expect("sync");
    wang.sync().await.expect("sync");
    wang.follow_up(case, "已到现场查看");
    wang.sync().await.expect("sync");
    assert_eq!((li.replica.pending_changes(), wang.replica.pending_changes()), (0, 0), "all acknowledged");
    server.kill().await;

    // Restore: refused into the old (non-empty) directory; done into an empty one.
    let refused = ServerProcess::cli_on(Backend::Sled, &data, &["restore", file.to_str().expect("path")]).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not empty"), "{refused:?}");
    let restored = dir.path().join("restored");
    let out = ServerProcess::cli_on(Backend::Sled, &restored, &["restore", file.to_str().expect("path")]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The backup is the store at one moment: checked on a second restore of the same file.
    let in_backup = {
        let check = dir.path().join("check");
        backup::restore(&file, &check, "test", &mut |_| {}).expect("restore again");
        let (copy, original) = (open_when_released(&check), open_when_released(&data));
        assert_is_the_store_at(&copy, &original, position, &root());
        let held: std::collections::HashSet<DocId> =
            copy.docs_in_scope(&root(), None, usize::MAX).expect("docs").into_iter().map(|(id, _)| id).collect();
        let before_backup = li_acked.iter().chain(&wang_acked).filter(|(_, at)| *at < started).count();
        for (id, _) in li_acked.iter().chain(&wang_acked).filter(|(_, at)| *at < started) {
            assert!(held.contains(id), "{id}, acknowledged before the backup began, is in it");
        }
        assert!(!held.contains(&case) && !held.contains(&late_visit), "work after the backup is not in it");
        println!(
            "backup at feed position {position}: {} visits pushed while it ran, {before_backup} acknowledged before it began",
            li_acked.len() + wang_acked.len()
        );
        held.len()
    };

    let server = ServerProcess::start_on(Backend::Sled, &restored, port, &[]).await;
    let running = ServerProcess::cli_on(Backend::Sled, &restored, &["restore", file.to_str().expect("path")]).await;
    assert!(String::from_utf8_lossy(&running.stderr).contains("running"), "{running:?}");

    // The phones' tokens still work; wang syncs first: its follow-up waits for li's case.
    let received = |reports: &[gridsync_client::SyncReport]| reports.iter().map(|r| r.received).sum::<usize>();
    let mut downloads = Vec::new();
    let reports = wang.sync().await.expect("wang syncs after the restore");
    assert!(reports.iter().all(|r| r.rejected.is_empty()), "nothing refused: {reports:?}");
    assert!(wang.replica.pending_changes() > 0, "the follow-up waits for the case it builds on");
    downloads.push(received(&reports));
    let reports = li.sync().await.expect("li syncs after the restore");
    assert!(reports.iter().all(|r| r.rejected.is_empty()), "nothing refused: {reports:?}");
    downloads.push(received(&reports));
    let reports = wang.sync().await.expect("wang syncs again");
    assert!(reports.iter().all(|r| r.rejected.is_empty()), "nothing refused: {reports:?}");
    downloads.push(received(&reports));
    assert_eq!(wang.replica.pending_changes(), 0, "the follow-up went up once the case was back");
    let reports = li.sync().await.expect("li syncs again");
    downloads.push(received(&reports));

    // A phone that signs in now gets everything: the same records as the others.
    let mut zhao = Phone::sign_in(&server.url, "zhao", "password-123").await.expect("sign in after the restore");
    zhao.sync().await.expect("sync");
    let total = zhao.replica.document_ids().count();
    println!(
        "after the restore: {total} records ({in_backup} in the backup); the old phones received {downloads:?} records in their syncs"
    );
    assert!(
        downloads.iter().all(|&n| n * 2 < in_backup),
        "no phone downloaded its territory again: {downloads:?} of {in_backup}"
    );
    let all = holdings(&zhao);
    assert_eq!(holdings(&li), all, "li converged");
    assert_eq!(holdings(&wang), all, "wang converged");
    for (id, _) in li_acked.iter().chain(&wang_acked) {
        assert!(all.contains_key(id), "{id} acknowledged while the backup ran is on the server");
    }
    let Some(gridsync_shared::Record::Case(c)) = zhao.replica.record(case) else { panic!("the case is back") };
    assert_eq!(c.follow_ups.len(), 2, "both follow-ups are back");
    assert!(all.contains_key(&late_visit));

    // The audit log and the import history came through, with the restore recorded.
    let audit = ServerProcess::cli_on(Backend::Sled, &restored, &["audit"]).await;
    let audit = String::from_utf8_lossy(&audit.stdout).to_string();
    for action in ["person.add", "import", "store.backup", "store.restore"] {
        assert!(audit.contains(action), "{action} in the audit log:\n{audit}");
    }
    server.kill().await;
    let store = open_when_released(&restored);
    assert_eq!(store.import_runs(10).expect("runs").len(), 1, "the import run came through");
    assert_eq!(store.epochs().expect("epochs").len(), 1, "one restore, one new epoch");
    for (id, (heads, _)) in &all {
        let doc = Automerge::load(&store.load_doc(*id).expect("load").expect("held").bytes).expect("loads");
        let mut h = doc.get_heads();
        h.sort();
        assert_eq!(&h, heads, "{id}: the server holds what the phones hold");
    }
}

fn photo_hash(n: u8) -> PhotoHash {
    PhotoHash::from_digest(&[n; 32])
}

/// A store with people, territories, an audit log, a photo and an upload under
/// way, backed up into bytes.
fn small_backup(dir: &Path) -> Vec<u8> {
    let store = SledStore::open(dir.join("source")).expect("open");
    gridsync_server::admin::add_territory(&store, &"xg".parse().expect("path"), "孝感市").expect("territory");
    gridsync_server::admin::add_person(
        &store,
        "admin",
        "管理员",
        gridsync_shared::Role::Administrator,
        &"xg".parse().expect("path"),
        "password-123",
    )
    .expect("person");
    for i in 0..200 {
        store.append_audit("cli", "test.entry", &format!("第{i}条"), i).expect("audit");
    }
    // A stored photo and an upload half done.
    let photo = [&[0xFF, 0xD8, 0xFF][..], &[7u8; 5_000]].concat();
    store.finish_upload(&photo_hash(1), PhotoType::Jpeg, &photo).expect("photo");
    store.append_upload(&photo_hash(2), 0, &[9u8; 1_000]).expect("upload");
    let mut bytes = Vec::new();
    backup::write_backup(&store, &mut bytes, "memory", "cli", &mut |_| {}).expect("backup");
    bytes
}

#[test]
fn a_damaged_cut_short_or_foreign_backup_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = small_backup(dir.path());
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    };
    let target = dir.path().join("target");
    let refused = |file: &Path| {
        let e =
            backup::restore(file, &target, "test", &mut |_| {}).map(|_| ()).expect_err(&format!("{file:?} refused"));
        assert!(!target.exists(), "nothing was created for {e}");
        assert!(!dir.path().join(".target.restoring").exists(), "nothing left beside it for {e}");
        e
    };
    for cut in [good.len() - 1, good.len() - 40, good.len() / 2, 20] {
        let e = refused(&write("cut", &good[..cut]));
        assert!(matches!(e, BackupError::Truncated(_) | BackupError::Corrupt(_)), "cut at {cut}: {e}");
        assert!(e.to_string().contains("nothing was restored"), "{e}");
    }
    let e = refused(&write("cut", &good[..good.len() / 2]));
    assert!(e.to_string().contains("incomplete"), "a file cut in half says so: {e}");
    for at in [30, good.len() / 3, good.len() / 2, good.len() - 10] {
        let mut damaged = good.clone();
        damaged[at] ^= 0x5a;
        let e = refused(&write("damaged", &damaged));
        assert!(e.to_string().contains("nothing was restored"), "byte {at}: {e}");
    }
    let e = refused(&write("foreign", b"PK\x03\x04 a zip archive, not a backup"));
    assert!(matches!(e, BackupError::NotABackup(_)), "{e}");
    let mut appended = good.clone();
    appended.extend_from_slice(b"more");
    refused(&write("appended", &appended));

    // A non-empty directory is refused and left as it was.
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::write(target.join("notes.txt"), "keep me").expect("write");
    let e = backup::restore(&write("good", &good), &target, "test", &mut |_| {}).expect_err("not empty");
    assert!(matches!(e, BackupError::NotEmpty(_)), "{e}");
    assert_eq!(std::fs::read_to_string(target.join("notes.txt")).expect("kept"), "keep me");
    std::fs::remove_dir_all(&target).expect("rm");

    // The good file restores: people (with their password hash), territories,
    // the audit log with the backup and the restore in it, a new epoch.
    let done = backup::restore(&write("good", &good), &target, "tester", &mut |_| {}).expect("restore");
    let store = open_when_released(&target);
    let source = open_when_released(&dir.path().join("source"));
    assert_eq!(store.people().expect("people"), source.people().expect("people"));
    assert_eq!(store.territories().expect("territories"), source.territories().expect("territories"));
    let audit = store.audit_after(0, usize::MAX).expect("audit");
    assert_eq!(audit.len(), 202, "200 entries, the backup's own, and the restore");
    assert_eq!(audit[200].action, "store.backup");
    assert_eq!((audit[201].action.as_str(), audit[201].actor.as_str()), ("store.restore", "tester"));
    assert_eq!(store.epochs().expect("epochs"), vec![done.epoch]);
    assert_eq!(store.photo(&photo_hash(1)).expect("photo"), source.photo(&photo_hash(1)).expect("photo"));
    assert_eq!(store.upload_received(&photo_hash(2)).expect("upload"), 1_000, "the upload resumes where it was");
}

#[tokio::test]
async fn the_cli_backs_up_a_stopped_store_and_refuses_a_cut_short_backup_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tmp");
    small_backup(dir.path());
    let stopped = dir.path().join("stopped.backup");
    let out = ServerProcess::cli_on(
        Backend::Sled,
        &dir.path().join("source"),
        &["backup", "--out", stopped.to_str().expect("path")],
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&stopped).expect("written").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only its owner may read a backup");
    }
    let copy = dir.path().join("copy");
    let out = ServerProcess::cli_on(Backend::Sled, &copy, &["restore", stopped.to_str().expect("path")]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let audit = ServerProcess::cli_on(Backend::Sled, &copy, &["audit"]).await;
    assert!(String::from_utf8_lossy(&audit.stdout).contains("store.restore"));
    let good = std::fs::read(&stopped).expect("read");
    let file = dir.path().join("cut.backup");
    std::fs::write(&file, &good[..good.len() / 2]).expect("write");
    let target = dir.path().join("data");
    let out = ServerProcess::cli_on(Backend::Sled, &target, &["restore", file.to_str().expect("path")]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("incomplete") && stderr.contains("nothing was restored"), "{stderr}");
    assert!(!target.exists());
}

#[tokio::test]
async fn a_cursor_issued_before_store_epochs_still_syncs() {
    let server = gridsync_tests::TestServer::start_sled().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    phone.record_visit("走访");
    phone.sync().await.expect("sync");
    // A cursor of the original epoch ends with `None` (one zero byte); without it, it is the old layout.
    let cursor = phone.replica.cursor().expect("cursor").to_vec();
    assert_eq!(cursor.last(), Some(&0));
    let old = cursor[..cursor.len() - 1].to_vec();
    let request =
        gridsync_shared::protocol::SyncRequest { cursor: Some(old), push: Vec::new(), max_response_bytes: 65_536 };
    let body = phone.post_sync(&gridsync_shared::protocol::encode(&request)).await.expect("an old cursor is accepted");
    let response: gridsync_shared::protocol::SyncResponse = gridsync_shared::protocol::decode(&body).expect("decode");
    assert!(response.updates.is_empty(), "it still stands where it stood");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_taken_while_phones_push_are_each_the_store_at_one_moment() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Arc::new(SledStore::open(dir.path().join("data")).expect("open"));
    let server = gridsync_tests::TestServer::start_on(store.clone(), gridsync_server::Limits::default(), None).await;
    let grid = server.grid("g1");
    let mut phones = Vec::new();
    for _ in 0..4 {
        let mut phone = server.phone_in(&grid).await;
        for i in 0..10 {
            phone.record_visit(&format!("走访{i}"));
        }
        phone.sync().await.expect("sync");
        phones.push(phone);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = phones
        .into_iter()
        .enumerate()
        .map(|(p, mut phone)| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let case = phone.report_case(&format!("第{p}台手机的事件"));
                let mut acknowledged = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    let id = if n % 2 == 0 {
                        phone.record_visit(&format!("备份时的走访{n}"))
                    } else {
                        phone.follow_up(case, &format!("跟进{n}"));
                        case
                    };
                    phone.sync().await.expect("sync");
                    let heads = phone.replica.document(id).expect("held").get_heads();
                    acknowledged.push((id, heads, std::time::Instant::now()));
                    n += 1;
                }
                acknowledged
            })
        })
        .collect();
    let live = store.clone();
    let backups = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let mut out = Vec::new();
        while out.len() < 5
            || (started.elapsed() < std::time::Duration::from_secs(3)
                && !out.iter().any(|(_, _, e): &(_, _, backup::BackupEnd)| e.facts.recopied > 0))
        {
            let began = std::time::Instant::now();
            let mut bytes = Vec::new();
            let end = backup::write_backup(live.as_ref(), &mut bytes, "memory", "test", &mut |_| {}).expect("backup");
            out.push((began, bytes, end));
            std::thread::sleep(std::time::Duration::from_millis(7));
        }
        out
    })
    .await
    .expect("backups");
    stop.store(true, Ordering::Release);
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await.expect("phone"));
    }
    let scope: TerritoryPath = gridsync_tests::server::CITY.split('/').next().expect("city").parse().expect("path");
    let mut recopied = 0;
    let mut gate_ms: f64 = 0.0;
    for (k, (began, bytes, end)) in backups.iter().enumerate() {
        let file = dir.path().join(format!("b{k}"));
        std::fs::write(&file, bytes).expect("write");
        let target = dir.path().join(format!("r{k}"));
        backup::restore(&file, &target, "test", &mut |_| {}).expect("restore");
        let restored = open_when_released(&target);
        assert_is_the_store_at(&restored, store.as_ref(), end.facts.head_seq, &scope);
        for (id, heads, at) in acknowledged.iter().filter(|(_, _, at)| at < began) {
            let doc = restored.load_doc(*id).expect("load").expect("acknowledged before the backup began: in it");
            let doc = Automerge::load(&doc.bytes).expect("loads");
            assert!(
                heads.iter().all(|h| doc.get_change_by_hash(h).is_some()),
                "{id} acknowledged at {at:?}: all of it"
            );
        }
        recopied += end.facts.recopied;
        gate_ms = gate_ms.max(end.facts.gate_held_ms);
    }
    println!(
        "{} backups while 4 phones pushed {} edits: {recopied} keys copied again, writers held at most {gate_ms:.1} ms",
        backups.len(),
        acknowledged.len()
    );
    assert!(recopied > 0, "some backup overlapped with writes");
    server.stop().await;
}
