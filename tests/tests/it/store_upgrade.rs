//! A data directory written by the release before store layout 2 (every
//! record's document kept whole beside feed entries holding the same changes)
//! is upgraded in place on first start: every record reads the same, and a
//! phone's cursor from before the upgrade goes on from where it stood.
//!
//! The fixture `tests/fixtures/store-layout-1.tar.gz` was made by that release's
//! binary with [`make_layout_1_fixture`] (run by hand, see there).

use gridsync_shared::protocol::{DEFAULT_PAGE_BYTES, SyncRequest, SyncResponse, decode, encode};
use gridsync_shared::workflow::CaseStatus;
use gridsync_tests::phone::Phone;
use gridsync_tests::process::{CliPerson, ServerProcess, city, free_port};
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
    let server = ServerProcess::start(&data, free_port(), &[]).await;

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
    let visit = li.record_visit("升级后的第一次走访");
    let case = li
        .replica
        .records_of(Some(gridsync_shared::RecordKind::Case))
        .map(|(id, _)| id)
        .next()
        .expect("the fixture has a case");
    li.follow_up(case, "升级后继续跟进");
    li.sync().await.expect("sync");
    assert_eq!(li.replica.pending_changes(), 0, "accepted");
    sup.sync().await.expect("sync");
    assert!(sup.replica.holds(visit));
    assert_eq!(
        sup.replica.document(case).map(|d| d.get_heads()),
        li.replica.document(case).map(|d| d.get_heads()),
        "the follow-up arrived"
    );

    // A restart opens the upgraded store as it is.
    let server = server.restart().await;
    let mut fresh = Phone::sign_in(&server.url, "sup", PASSWORD).await.expect("sign in");
    fresh.sync().await.expect("sync");
    assert_eq!(heads_of(&fresh), heads_of(&sup));
}

/// Makes the fixture with a server binary of the release before layout 2:
/// `GRIDSYNC_SERVER_BIN=<that binary> cargo test -p gridsync-tests --test it store_upgrade::make_layout_1_fixture -- --ignored`
#[tokio::test]
#[ignore]
async fn make_layout_1_fixture() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let staff = |username, territory| CliPerson { username, password: PASSWORD, role: "field_staff", territory };
    city(
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
    let server = ServerProcess::start(&data, free_port(), &[]).await;
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
