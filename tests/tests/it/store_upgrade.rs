//! A data directory written by the release before store layout 2 (every
//! record's document kept whole beside feed entries holding the same changes)
//! is upgraded in place on first start: every record reads the same, and a
//! phone's cursor from before the upgrade goes on from where it stood.
//!
//! The fixture `tests/fixtures/store-layout-1.tar.gz` was made by that release's
//! binary with [`make_layout_1_fixture`] (run by hand, see there).
//!
//! The upgrade also survives SIGKILL at any moment: the larger fixture
//! `store-layout-1-large.tar.gz` ([`make_large_layout_1_fixture`]) is upgraded
//! in batches of 4 by a server killed again and again until a start completes,
//! and must then serve exactly what an upgrade never killed serves.

use gridsync_shared::TerritoryPath;
use gridsync_shared::protocol::{DEFAULT_PAGE_BYTES, SyncRequest, SyncResponse, decode, encode};
use gridsync_shared::workflow::CaseStatus;
use gridsync_tests::Backend;
use gridsync_tests::phone::Phone;
use gridsync_tests::process::{COMMUNITY, CliPerson, ServerProcess, city_on, free_port, server_binary};
use gridsync_tests::stores::open_store;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const PASSWORD: &str = "password-123";

/// What the fixture's server held, as its phones saw it.
#[derive(Debug, Serialize, Deserialize)]
struct Expected {
    /// Every record of the community with its heads (hex), as a supervisor's phone received them.
    records: BTreeMap<String, Vec<String>>,
    /// A grid manager's device token, and its cursor (hex) after a sync midway.
    midway_token: String,
    midway_cursor: String,
    /// Records of grid g1 written after that cursor.
    after_midway: Vec<String>,
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/store-layout-1.tar.gz")
}

fn heads_of(phone: &Phone) -> BTreeMap<String, Vec<String>> {
    phone
        .replica
        .document_ids()
        .filter_map(|id| {
            let doc = phone.replica.document(id)?;
            Some((id.to_string(), doc.get_heads().iter().map(|h| h.to_string()).collect()))
        })
        .collect()
}

async fn raw_sync(url: &str, token: &str, cursor: Vec<u8>) -> SyncResponse {
    let body = encode(&SyncRequest { cursor: Some(cursor), push: Vec::new(), max_response_bytes: DEFAULT_PAGE_BYTES });
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/sync"))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("sync request");
    assert_eq!(resp.status().as_u16(), 200, "a cursor from before the upgrade is taken as it is");
    decode(&resp.bytes().await.expect("body")).expect("a sync response")
}

/// `writer` records a visit and follows up a case of the fixture; both are
/// accepted and reach `reader`.
async fn writing_goes_on(writer: &mut Phone, reader: &mut Phone, visit_note: &str, follow_up: &str) {
    let visit = writer.record_visit(visit_note);
    let case = writer
        .replica
        .records_of(Some(gridsync_shared::RecordKind::Case))
        .map(|(id, _)| id)
        .next()
        .expect("the fixture has a case");
    writer.follow_up(case, follow_up);
    writer.sync().await.expect("sync");
    assert_eq!(writer.replica.pending_changes(), 0, "accepted");
    reader.sync().await.expect("sync");
    assert!(reader.replica.holds(visit));
    assert_eq!(
        reader.replica.document(case).map(|d| d.get_heads()),
        writer.replica.document(case).map(|d| d.get_heads()),
        "the follow-up arrived"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

/// The fixture unpacked into a fresh directory: (its parent, the data directory, what it held).
fn unpack() -> (tempfile::TempDir, PathBuf, Expected) {
    let tmp = tempfile::tempdir().expect("tmp");
    let out =
        std::process::Command::new("tar").arg("-xzf").arg(fixture()).arg("-C").arg(tmp.path()).output().expect("tar");
    assert!(out.status.success(), "unpacking the fixture: {}", String::from_utf8_lossy(&out.stderr));
    let expected: Expected =
        serde_json::from_slice(&std::fs::read(tmp.path().join("expected.json")).expect("expected.json")).expect("json");
    let data = tmp.path().join("data");
    (tmp, data, expected)
}

#[tokio::test]
async fn a_layout_1_store_is_upgraded_in_place_and_reads_the_same() {
    let (_tmp, data, expected) = unpack();
    let server = ServerProcess::start_on(Backend::Sled, &data, free_port(), &[]).await;

    // Every record, with the same history, to a phone starting from nothing.
    let mut sup = Phone::sign_in(&server.url, "sup", PASSWORD).await.expect("sign in");
    sup.sync().await.expect("sync");
    assert_eq!(heads_of(&sup), expected.records, "every record reads as before the upgrade");

    // A cursor issued before the upgrade: only what came after it, no start over.
    let token = expected.midway_token.clone();
    let resp = raw_sync(&server.url, &token, unhex(&expected.midway_cursor)).await;
    let mut sent: Vec<String> = resp.updates.iter().map(|u| u.doc.to_string()).collect();
    sent.sort();
    sent.dedup();
    let mut want = expected.after_midway.clone();
    want.sort();
    assert_eq!(sent, want, "the phone receives exactly what was written after its cursor");
    assert!(!resp.more);

    // Writing goes on: a new visit and a follow-up of a long-edited case reach another phone.
    let mut li = Phone::sign_in(&server.url, "li", PASSWORD).await.expect("sign in");
    li.sync().await.expect("sync");
    writing_goes_on(&mut li, &mut sup, "升级后的第一次走访", "升级后继续跟进").await;

    // A restart opens the upgraded store as it is.
    let server = server.restart().await;
    let mut fresh = Phone::sign_in(&server.url, "sup", PASSWORD).await.expect("sign in");
    fresh.sync().await.expect("sync");
    assert_eq!(heads_of(&fresh), heads_of(&sup));

    // The audit log of that release (entries without a territory) reads on, as
    // about the whole store, and new entries with territories go after it.
    server.kill().await;
    let store = open_store(Backend::Sled, &data);
    let before = store.audit_after(0, usize::MAX).expect("the old audit log reads");
    assert!(before.iter().any(|e| e.action == "person.add"), "the fixture's CLI wrote entries: {before:?}");
    assert!(before.iter().all(|e| e.territory.is_none()), "old entries concern the whole store: {before:?}");
    let g1 = TerritoryPath::parse(&format!("{COMMUNITY}/g1")).expect("path");
    let seq = store.append_audit_in(Some(&g1), "cli", "person.enable", "li", 1).expect("append");
    let after = store.audit_after(0, usize::MAX).expect("the audit log reads");
    assert_eq!(&after[..before.len()], &before[..]);
    assert_eq!((after.last().map(|e| e.seq), after.last().and_then(|e| e.territory.clone())), (Some(seq), Some(g1)));
}

/// Makes the fixture with a server binary of the release before layout 2:
/// `GRIDSYNC_SERVER_BIN=<that binary> cargo test -p gridsync-tests --test it store_upgrade::make_layout_1_fixture -- --ignored`
#[tokio::test]
#[ignore]
async fn make_layout_1_fixture() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let staff = |username, territory| CliPerson { username, password: PASSWORD, role: "field_staff", territory };
    city_on(
        Backend::Sled,
        &data,
        &["g1", "g2"],
        &[
            staff("li", "g1"),
            staff("wang", "g1"),
            staff("zhao", "g2"),
            CliPerson { username: "sup", password: PASSWORD, role: "supervisor", territory: "" },
        ],
    )
    .await;
    let server = ServerProcess::start_on(Backend::Sled, &data, free_port(), &[]).await;
    let mut li = Phone::sign_in(&server.url, "li", PASSWORD).await.expect("sign in");
    let mut wang = Phone::sign_in(&server.url, "wang", PASSWORD).await.expect("sign in");
    let mut zhao = Phone::sign_in(&server.url, "zhao", PASSWORD).await.expect("sign in");
    for i in 0..3 {
        li.record_visit(&format!("第{i}次走访：老人身体健康，家中整洁。"));
        zhao.record_visit(&format!("第二网格第{i}次走访。"));
    }
    // A case edited many times, each edit synced on its own (one commit each).
    let case = li.report_case("楼道堆放杂物，存在消防隐患");
    li.sync().await.expect("sync");
    for i in 0..12 {
        li.follow_up(case, &format!("第{i}次跟进：已联系物业。"));
        li.sync().await.expect("sync");
    }
    li.advance(case, CaseStatus::InProgress).ok();
    li.sync().await.expect("sync");
    zhao.sync().await.expect("sync");
    wang.sync().await.expect("sync");
    let midway_cursor = hex(wang.replica.cursor().expect("a cursor"));
    // After the midway cursor: a new visit, and two more follow-ups.
    let late = li.record_visit("之后的走访");
    li.follow_up(case, "之后的跟进一");
    li.sync().await.expect("sync");
    li.follow_up(case, "之后的跟进二");
    li.sync().await.expect("sync");
    zhao.record_visit("第二网格之后的走访");
    zhao.sync().await.expect("sync");
    let mut sup = Phone::sign_in(&server.url, "sup", PASSWORD).await.expect("sign in");
    sup.sync().await.expect("sync");
    let expected = Expected {
        records: heads_of(&sup),
        midway_token: wang.token().to_string(),
        midway_cursor,
        after_midway: vec![late.to_string(), case.to_string()],
    };
    drop(server);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    std::fs::write(tmp.path().join("expected.json"), serde_json::to_vec_pretty(&expected).expect("json"))
        .expect("write");
    let out = std::process::Command::new("tar")
        .arg("-czf")
        .arg(fixture())
        .arg("-C")
        .arg(tmp.path())
        .arg("data")
        .arg("expected.json")
        .output()
        .expect("tar");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// What the large fixture's server held, as its phones saw it.
#[derive(Debug, Serialize, Deserialize)]
struct ExpectedLarge {
    /// Every record of the community with its heads (hex), as a supervisor's phone received them.
    records: BTreeMap<String, Vec<String>>,
    /// A supervisor's device token and its cursor (hex) after the first few records:
    /// nearly the whole feed lies after it.
    early_token: String,
    early_cursor: String,
    /// A grid manager's (g1) device token and cursor (hex) midway.
    midway_token: String,
    midway_cursor: String,
}

fn large_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/store-layout-1-large.tar.gz")
}

/// Visits each grid manager records in the large fixture.
const LARGE_VISITS_PER_GRID: usize = 180;
/// Cases each grid manager reports in the large fixture, each followed up
/// [`LARGE_FOLLOW_UPS`] times, every follow-up round synced on its own.
const LARGE_CASES_PER_GRID: usize = 12;
const LARGE_FOLLOW_UPS: usize = 5;

/// Makes the large fixture (4 grids, 720 visit logs, 48 cases of 6
/// commits each: about 1,000 feed entries; the tar.gz stays under 1 MB) with a server binary of the release before layout 2:
/// `GRIDSYNC_SERVER_BIN=<that binary> cargo test -p gridsync-tests --test it store_upgrade::make_large_layout_1_fixture -- --ignored`
#[tokio::test]
#[ignore]
async fn make_large_layout_1_fixture() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let grids = ["g1", "g2", "g3", "g4"];
    let staff = |username, territory| CliPerson { username, password: PASSWORD, role: "field_staff", territory };
    city_on(
        Backend::Sled,
        &data,
        &grids,
        &[
            staff("s1", "g1"),
            staff("s2", "g2"),
            staff("s3", "g3"),
            staff("s4", "g4"),
            staff("w1", "g1"),
            CliPerson { username: "sup", password: PASSWORD, role: "supervisor", territory: "" },
        ],
    )
    .await;
    let server = ServerProcess::start_on(Backend::Sled, &data, free_port(), &[]).await;
    let mut phones = Vec::new();
    for name in ["s1", "s2", "s3", "s4"] {
        phones.push(Phone::sign_in(&server.url, name, PASSWORD).await.expect("sign in"));
    }
    let mut w1 = Phone::sign_in(&server.url, "w1", PASSWORD).await.expect("sign in");
    let mut early = Phone::sign_in(&server.url, "sup", PASSWORD).await.expect("sign in");
    for i in 0..3 {
        phones[0].record_visit(&format!("最早的走访{i}"));
    }
    phones[0].sync().await.expect("sync");
    early.sync().await.expect("sync");
    let early_cursor = hex(early.replica.cursor().expect("a cursor"));
    let mut midway_cursor = String::new();
    let rounds = 6;
    for round in 0..rounds {
        for (g, phone) in phones.iter_mut().enumerate() {
            for i in 0..LARGE_VISITS_PER_GRID / rounds {
                phone.record_visit(&format!("第{g}网格第{round}轮第{i}户走访，老人身体健康。"));
            }
            phone.sync().await.expect("sync");
        }
        if round == rounds / 2 {
            w1.sync().await.expect("sync");
            midway_cursor = hex(w1.replica.cursor().expect("a cursor"));
        }
    }
    let mut cases = Vec::new();
    for (g, phone) in phones.iter_mut().enumerate() {
        let ids: Vec<_> =
            (0..LARGE_CASES_PER_GRID).map(|i| phone.report_case(&format!("第{g}网格第{i}件：楼道堆物"))).collect();
        phone.sync().await.expect("sync");
        cases.push(ids);
    }
    for round in 0..LARGE_FOLLOW_UPS {
        for (phone, ids) in phones.iter_mut().zip(&cases) {
            for case in ids {
                phone.follow_up(*case, &format!("第{round}次跟进"));
            }
            phone.sync().await.expect("sync");
        }
    }
    let mut sup = Phone::sign_in(&server.url, "sup", PASSWORD).await.expect("sign in");
    sup.sync().await.expect("sync");
    let expected = ExpectedLarge {
        records: heads_of(&sup),
        early_token: early.token().to_string(),
        early_cursor,
        midway_token: w1.token().to_string(),
        midway_cursor,
    };
    assert_eq!(expected.records.len(), grids.len() * (LARGE_VISITS_PER_GRID + LARGE_CASES_PER_GRID) + 3);
    drop(server);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    std::fs::write(tmp.path().join("expected.json"), serde_json::to_vec(&expected).expect("json")).expect("write");
    let out = std::process::Command::new("tar")
        .arg("-czf")
        .arg(large_fixture())
        .arg("-C")
        .arg(tmp.path())
        .arg("data")
        .arg("expected.json")
        .output()
        .expect("tar");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The large fixture unpacked into a fresh directory: (its parent, the data directory, what it held).
fn unpack_large() -> (tempfile::TempDir, PathBuf, ExpectedLarge) {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(large_fixture())
        .arg("-C")
        .arg(tmp.path())
        .output()
        .expect("tar");
    assert!(out.status.success(), "unpacking the fixture: {}", String::from_utf8_lossy(&out.stderr));
    let expected: ExpectedLarge =
        serde_json::from_slice(&std::fs::read(tmp.path().join("expected.json")).expect("expected.json")).expect("json");
    let data = tmp.path().join("data");
    (tmp, data, expected)
}

/// Records (or feed entries) per upgrade batch in the kill test: many
/// batches, so that a kill lands between two of them.
const KILL_TEST_BATCH: &str = "4";
/// After this many kills the upgrade is let finish (a bound on the test's time).
const MAX_KILLS: usize = 40;

/// What a server under test said on stderr (its JSON log lines), as far as the kill test cares.
#[derive(Debug)]
enum Said {
    /// The upgrade starts, from this progress (`Records([])`: nothing done yet).
    Upgrading { progress: String },
    /// A batch of records or feed entries was committed.
    Batch,
    /// The upgrade finished, taking this long.
    Upgraded { seconds: f64 },
    /// The server listens.
    Listening,
    /// An error, or a line that is not JSON (a failed start prints its reason so).
    Failed(String),
}

/// A `gridsync-server serve` whose log the test reads line by line.
struct Logged {
    child: tokio::process::Child,
    said: tokio::sync::mpsc::UnboundedReceiver<Said>,
    url: String,
    /// Batches it logged, whether it logged the end of the upgrade, whether
    /// it listens, and the errors it printed (as read so far).
    batches: usize,
    upgraded: bool,
    listens: bool,
    errors: Vec<String>,
}

impl Logged {
    /// Starts the server on `data` with small upgrade batches, each logged.
    fn start(data: &Path, port: u16) -> Logged {
        let mut child = tokio::process::Command::new(server_binary())
            .arg("--data")
            .arg(data)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("GRIDSYNC_LOG", "info,gridsync_server::store::sled_store::migrate=debug")
            .env("GRIDSYNC_LOG_FORMAT", "json")
            .env("GRIDSYNC_UPGRADE_BATCH", KILL_TEST_BATCH)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn gridsync-server");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, said) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    let _ = tx.send(Said::Failed(line));
                    continue;
                };
                let fields = &v["fields"];
                let message = fields["message"].as_str().unwrap_or_default();
                let said = if message.starts_with("upgrading the store") {
                    Said::Upgrading { progress: fields["progress"].as_str().unwrap_or_default().to_string() }
                } else if message.starts_with("upgrade batch") {
                    Said::Batch
                } else if message.starts_with("the store is in layout") {
                    Said::Upgraded { seconds: fields["seconds"].as_f64().unwrap_or_default() }
                } else if message.starts_with("gridsync-server listening") {
                    Said::Listening
                } else if v["level"].as_str() == Some("ERROR") {
                    Said::Failed(line)
                } else {
                    continue;
                };
                let _ = tx.send(said);
            }
        });
        Logged {
            child,
            said,
            url: format!("http://127.0.0.1:{port}"),
            batches: 0,
            upgraded: false,
            listens: false,
            errors: Vec::new(),
        }
    }

    /// The next thing it says, waiting at most 60 s; None once it has exited.
    async fn next(&mut self) -> Option<Said> {
        let said = tokio::time::timeout(std::time::Duration::from_secs(60), self.said.recv())
            .await
            .expect("the server said nothing for 60 s");
        self.note(said.as_ref());
        said
    }

    fn note(&mut self, said: Option<&Said>) {
        match said {
            Some(Said::Batch) => self.batches += 1,
            Some(Said::Upgraded { .. }) => self.upgraded = true,
            Some(Said::Listening) => self.listens = true,
            Some(Said::Failed(line)) => self.errors.push(line.clone()),
            _ => {}
        }
    }

    /// Reads what it has said so far, without waiting, and fails the test
    /// if it exited on its own (a start that fails is not a kill landing).
    fn catch_up(&mut self) {
        while let Ok(said) = self.said.try_recv() {
            self.note(Some(&said));
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the server exited on its own during the upgrade ({status}): {:?}", self.errors);
        }
    }

    /// Waits until it listens, and returns how long its upgrade took (if it upgraded).
    async fn listening(&mut self) -> Option<f64> {
        let mut took = None;
        loop {
            let Some(said) = self.next().await else { panic!("the server exited before listening: {:?}", self.errors) };
            match said {
                Said::Upgraded { seconds } => took = Some(seconds),
                Said::Listening => return took,
                _ => {}
            }
        }
    }

    /// SIGKILL, then everything it said before dying: (batches committed, whether it finished the upgrade).
    async fn kill(mut self) -> (usize, bool) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        while self.next().await.is_some() {}
        (self.batches, self.upgraded)
    }
}

/// Every update a phone at `cursor` receives, page after page, until nothing more waits.
async fn whole_feed(url: &str, token: &str, cursor: &str) -> Vec<gridsync_shared::protocol::DocUpdate> {
    let mut cursor = unhex(cursor);
    let mut updates = Vec::new();
    for _ in 0..10_000 {
        let resp = raw_sync(url, token, cursor).await;
        updates.extend(resp.updates);
        if !resp.more {
            return updates;
        }
        cursor = resp.cursor;
    }
    panic!("the feed never ended");
}

/// What a server shows of the upgraded store: every record's heads to a new
/// supervisor's phone, and the whole feed after each cursor from before the upgrade.
async fn what_it_serves(
    url: &str,
    expected: &ExpectedLarge,
) -> (BTreeMap<String, Vec<String>>, Vec<gridsync_shared::protocol::DocUpdate>, Vec<gridsync_shared::protocol::DocUpdate>)
{
    let early = whole_feed(url, &expected.early_token, &expected.early_cursor).await;
    let midway = whole_feed(url, &expected.midway_token, &expected.midway_cursor).await;
    let mut sup = Phone::sign_in(url, "sup", PASSWORD).await.expect("sign in");
    sup.sync().await.expect("sync");
    (heads_of(&sup), early, midway)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_killed_again_and_again_ends_as_an_upgrade_never_killed() {
    use rand::{Rng, SeedableRng};
    let seed = gridsync_tests::proxy::seed_from_env("GRIDSYNC_UPGRADE_KILL_SEED");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = std::time::Instant::now();

    // The upgrade never killed: what it serves, and how long it takes.
    let (_ref_tmp, ref_data, expected) = unpack_large();
    let mut reference = Logged::start(&ref_data, free_port());
    let took = reference.listening().await.expect("the fixture is upgraded on first start");
    let (ref_heads, ref_early, ref_midway) = what_it_serves(&reference.url, &expected).await;
    reference.kill().await;
    assert_eq!(ref_heads, expected.records, "every record reads as before the upgrade");
    assert!(ref_early.len() >= expected.records.len() - 3, "the early cursor sees nearly every record");
    assert!(!ref_midway.is_empty());

    // The same store, killed at random moments while it upgrades, until a start completes.
    let (_tmp, data, _) = unpack_large();
    let port = free_port();
    // Kills within the first quarter of a whole upgrade's time: each start gets
    // a little further, so it takes many starts to finish.
    let window_ms = ((took * 1000.0) as u64 / 4).max(10);
    let (mut mid_way, mut before_first_batch, mut after_upgrade) = (0, 0, 0);
    let mut kills = 0;
    let mut last_kill: Option<(u64, usize, bool)> = None;
    let done = loop {
        let mut server = Logged::start(&data, port);
        // Where this start resumes tells where the previous kill landed.
        let resumed = loop {
            match server.next().await {
                Some(Said::Upgrading { progress }) => break Some(progress),
                Some(Said::Listening) => break None,
                Some(_) => {}
                None => panic!("the server exited on its own while opening the store: {:?}", server.errors),
            }
        };
        if let Some((delay, batches, upgraded)) = last_kill {
            let landed = match &resumed {
                Some(p) if p == "Records([])" => {
                    before_first_batch += 1;
                    "before any batch reached the disk".to_string()
                }
                Some(p) => {
                    mid_way += 1;
                    let p = if p.len() > 40 { format!("{}…", &p[..40]) } else { p.clone() };
                    format!("mid-way: resumed from {p}")
                }
                None => {
                    after_upgrade += 1;
                    "after the upgrade".to_string()
                }
            };
            let finished = if upgraded { " (it had logged the end of the upgrade)" } else { "" };
            println!("kill {kills}: {delay} ms after the upgrade began, {batches} batches logged{finished}: {landed}");
        }
        if resumed.is_none() {
            break server;
        }
        if kills == MAX_KILLS {
            server.listening().await;
            break server;
        }
        let delay = rng.random_range(0..window_ms);
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        server.catch_up();
        if server.listens {
            println!("start {}: the upgrade completed within {delay} ms", kills + 1);
            break server;
        }
        let (batches, upgraded) = server.kill().await;
        kills += 1;
        last_kill = Some((delay, batches, upgraded));
    };
    println!(
        "{kills} kills: {mid_way} mid-way through the upgrade, {before_first_batch} before its first batch was durable, \
         {after_upgrade} after it; reference upgrade {took:.2} s; {:.1} s so far",
        started.elapsed().as_secs_f64()
    );
    assert!(mid_way > 0, "no kill landed mid-way through the upgrade: the test proved nothing (seed {seed})");

    // It serves exactly what the upgrade never killed serves.
    let (heads, early, midway) = what_it_serves(&done.url, &expected).await;
    assert_eq!(heads, ref_heads, "a new phone receives the same records with the same heads");
    assert!(early == ref_early, "the whole feed after an early cursor is the same, entry by entry");
    assert!(midway == ref_midway, "the whole feed after a midway cursor is the same, entry by entry");

    // Writing goes on.
    let mut s1 = Phone::sign_in(&done.url, "s1", PASSWORD).await.expect("sign in");
    s1.sync().await.expect("sync");
    let mut sup = Phone::sign_in(&done.url, "sup", PASSWORD).await.expect("sign in");
    writing_goes_on(&mut s1, &mut sup, "升级被打断多次之后的走访", "升级之后继续跟进").await;

    // A restart reads the same.
    done.kill().await;
    let server = ServerProcess::start_on(Backend::Sled, &data, port, &[]).await;
    let mut fresh = Phone::sign_in(&server.url, "sup", PASSWORD).await.expect("sign in");
    fresh.sync().await.expect("sync");
    assert_eq!(heads_of(&fresh), heads_of(&sup), "a restart reads the same");
    println!("took {:.1} s", started.elapsed().as_secs_f64());
}
