//! Moving from the embedded store to PostgreSQL: phones sync against a sled
//! server, the server stops, `gridsync-server move-to` copies its data
//! directory into an empty database, a server on the database starts at the
//! same address, and the same phones (same device tokens, same sync cursors)
//! go on: nobody signs in again, nothing is downloaded again, nothing is lost
//! or received twice, and a snapshot is the one taken before the move.

use gridsync_server::store::postgres::scratch::ScratchPostgres;
use gridsync_server::store::{PgStore, SledStore, Store};
use gridsync_shared::{DocId, TerritoryPath};
use gridsync_tests::process::{CliPerson, ServerProcess, city_on, free_port};
use gridsync_tests::{Backend, Phone};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

const PASSWORD: &str = "password-123";

fn root() -> TerritoryPath {
    "xg".parse().expect("path")
}

/// A valid resident ID number (GB 11643 check digit).
fn resident_id(n: u32) -> String {
    let base = format!("42090219800101{n:03}");
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = base.chars().zip(weights).map(|(c, w)| c.to_digit(10).unwrap_or(0) * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{base}{check}")
}

/// Runs `f` on a thread of its own: the PostgreSQL client blocks, which no async task may.
fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("the thread finished"))
}

/// The files of a snapshot archive but its manifest (which names when it was taken).
fn archive_files(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).expect("archive")).expect("a zip");
    let mut files = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).expect("entry");
        let name = f.name().expect("a name").to_string();
        if name.contains("manifest") {
            continue;
        }
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).expect("read");
        files.push((name, bytes));
    }
    files
}

/// The CLI on `data`, with exactly these arguments: the source is a sled
/// directory and the target named by `--store`, whichever store the suite runs on.
async fn run_cli(data: &Path, args: &[&str]) -> std::process::Output {
    ServerProcess::cli_on(Backend::Sled, data, args).await
}

/// Every record id a phone holds.
fn held(phone: &Phone) -> BTreeSet<DocId> {
    phone.replica.document_ids().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_of_a_sled_server_continue_on_postgresql_after_move_to_without_signing_in_or_downloading_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let person = |username, territory| CliPerson { username, password: PASSWORD, role: "field_staff", territory };
    let admin = CliPerson { username: "admin", password: PASSWORD, role: "administrator", territory: "" };
    let zhou = CliPerson { username: "zhou", password: PASSWORD, role: "supervisor", territory: "" };
    city_on(
        Backend::Sled,
        &data,
        &["g1", "g2"],
        &[admin, zhou, person("li", "g1"), person("wang", "g1"), person("zhao", "g2")],
    )
    .await;
    // A city import: an import run and household keys to carry over.
    let ledger = dir.path().join("人口信息表.csv");
    let rows = [
        "户号,所属网格,地址,姓名,与户主关系,身份证号,联系电话,标签,备注".to_string(),
        format!(",xg/xn/sh/dh/g1,东湖路1号,李秀英,户主,{},13800138000,独居老人,", resident_id(1)),
        format!(",xg/xn/sh/dh/g2,东湖路2号,王强,户主,{},,,", resident_id(2)),
    ];
    std::fs::write(&ledger, rows.join("\r\n")).expect("write ledger");
    let out = run_cli(&data, &["import-city", "households", ledger.to_str().expect("path")]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    // A day on the sled server.
    let port = free_port();
    let server = ServerProcess::start_on(Backend::Sled, &data, port, &[]).await;
    let mut li = Phone::sign_in(&server.url, "li", PASSWORD).await.expect("sign in");
    let mut wang = Phone::sign_in(&server.url, "wang", PASSWORD).await.expect("sign in");
    let mut zhao = Phone::sign_in(&server.url, "zhao", PASSWORD).await.expect("sign in");
    let case = li.report_case("楼道堵塞");
    for i in 0..10 {
        li.record_visit(&format!("李的第{i}次走访"));
        wang.record_visit(&format!("王的第{i}次走访"));
        zhao.record_visit(&format!("赵的第{i}次走访"));
    }
    for phone in [&mut li, &mut wang, &mut zhao] {
        phone.sync().await.expect("sync");
    }
    li.sync().await.expect("sync");
    wang.follow_up(case, "已到现场查看");
    wang.sync().await.expect("sync");
    li.sync().await.expect("sync");
    // Zhao's last visits go up; wang syncs no more (his cursor stays behind
    // them); li records one offline (pending when the server stops).
    zhao.record_visit("赵停机前的走访");
    zhao.sync().await.expect("sync");
    let offline = li.record_visit("李停机时未上传的走访");
    let (li_before, wang_before) = (held(&li), held(&wang));
    assert_eq!(li_before.len(), wang_before.len() + 1, "li holds wang's grid and his own offline visit");
    server.kill().await;

    // The snapshot before the move, from the stopped data directory.
    let before = dir.path().join("before.zip");
    let out = run_cli(&data, &["snapshot", "--format", "jsonl", "--out", before.to_str().expect("path")]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let pg = blocking(ScratchPostgres::start).expect("a throwaway PostgreSQL (needed: this test is not skipped)");
    let (url, taken) = blocking(|| (pg.create_database().expect("db"), pg.create_database().expect("db")));

    // A database holding anything is refused, and left as it was.
    let out = run_cli(&data, &["--store", &taken, "territory", "add", "wh", "武汉市"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run_cli(&data, &["--store", &taken, "move-to"]).await;
    assert!(!out.status.success(), "a non-empty database is refused");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("not empty") && said.contains("nothing was changed"), "{said}");
    let left = blocking(|| PgStore::open(&taken).expect("open").territories().expect("territories"));
    assert_eq!(left.len(), 1, "the refused database holds only what it held");

    // The move.
    let out = run_cli(&data, &["--store", &url, "move-to"]).await;
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    println!("{said}");

    // Everything the sled store answers, the database answers the same.
    let sled = SledStore::open(&data).expect("the sled store is free");
    let (head, feed, docs) = blocking(|| {
        let moved = PgStore::open(&url).expect("open");
        assert_eq!(moved.head_seq().expect("head"), sled.head_seq().expect("head"));
        let feed = sled.feed_after(&root(), 0, usize::MAX).expect("feed");
        assert_eq!(moved.feed_after(&root(), 0, usize::MAX).expect("feed"), feed, "every entry at its position");
        let docs = sled.docs_in_scope(&root(), None, usize::MAX).expect("docs");
        assert_eq!(moved.docs_in_scope(&root(), None, usize::MAX).expect("docs"), docs);
        assert_eq!(moved.devices().expect("devices"), sled.devices().expect("devices"), "with their tokens");
        assert_eq!(moved.people().expect("people"), sled.people().expect("people"), "with their passwords");
        assert_eq!(moved.import_runs(10).expect("runs"), sled.import_runs(10).expect("runs"));
        let mut audit = moved.audit_after(0, usize::MAX).expect("audit");
        let last = audit.pop().expect("the move is audited");
        assert_eq!(last.action, "store.move");
        assert_eq!(audit, sled.audit_after(0, usize::MAX).expect("audit"), "the audit log comes along");
        (sled.head_seq().expect("head"), feed.len(), docs.len())
    });
    drop(sled);
    assert_eq!(feed as u64, head, "the feed was gap-free");

    // The snapshot after the move, from the database: the same archive.
    let after = dir.path().join("after.zip");
    let out =
        run_cli(&data, &["--store", &url, "snapshot", "--format", "jsonl", "--out", after.to_str().expect("path")])
            .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(archive_files(&after), archive_files(&before), "the snapshot is the one taken before the move");

    // A server on the database at the same address; the same phones go on.
    let served = dir.path().join("served");
    let server = ServerProcess::start_on(Backend::Sled, &served, port, &["--store", &url]).await;
    let pushed = li.sync().await.expect("li continues with the same token and cursor");
    assert_eq!(pushed.iter().map(|r| r.acknowledged).sum::<usize>(), 1, "li's offline visit goes up");
    assert_eq!(pushed.iter().map(|r| r.received).sum::<usize>(), 0, "and li receives nothing again");
    let caught_up = wang.sync().await.expect("wang continues");
    // Wang missed only li's offline visit (his cursor already passed the rest).
    assert_eq!(caught_up.iter().map(|r| r.received).sum::<usize>(), 1, "wang receives what he missed, once");
    assert_eq!(held(&wang), held(&li));
    assert!(held(&li).contains(&offline));
    let again = zhao.sync().await.expect("zhao continues");
    assert_eq!(again.iter().map(|r| r.received).sum::<usize>(), 0, "zhao's grid had nothing new");

    // Work goes on through the database.
    let late = wang.record_visit("迁移之后的走访");
    wang.sync().await.expect("sync");
    let got = li.sync().await.expect("sync");
    assert_eq!(got.iter().map(|r| r.received).sum::<usize>(), 1);
    assert!(held(&li).contains(&late));

    // A supervisor signing in on the database sees every record.
    let mut supervisor = Phone::sign_in(&server.url, "zhou", PASSWORD).await.expect("sign in");
    supervisor.sync().await.expect("sync");
    let everything = held(&supervisor);
    assert_eq!(everything.len(), docs + 2, "every record moved, li's offline visit and the one after");
    assert!(held(&li).is_subset(&everything) && held(&zhao).is_subset(&everything));
    let moved = blocking(|| PgStore::open(&url).expect("open").head_seq().expect("head"));
    assert_eq!(moved, head + 2, "two commits after the move, at the next positions");
    server.kill().await;
}
