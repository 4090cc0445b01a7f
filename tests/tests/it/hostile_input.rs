//! Input from the network is hostile until validated: malformed, truncated,
//! oversized or wrongly encoded bodies get a clear 4xx and store nothing.

use flate2::Compression;
use flate2::write::GzEncoder;
use gridsync_shared::protocol::{self, SyncRequest};
use gridsync_tests::TestServer;
use std::io::Write;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

#[tokio::test]
async fn malformed_truncated_and_oversized_bodies_get_a_clear_4xx_and_store_nothing() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    phone.record_visit("待同步的记录");
    let valid = phone.replica.build_request();
    let seq = server.store().head_seq().expect("seq");

    let mut wrong_version = valid.clone();
    wrong_version[4] = 99;
    let mut trailing = valid.clone();
    trailing.extend_from_slice(b"extra");
    // (what, body, content-encoding, expected status, what the message mentions)
    type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("garbage", b"hello, server".to_vec(), None, 400, "magic"),
        ("empty", Vec::new(), None, 400, "content-length"),
        ("truncated", valid[..valid.len() / 2].to_vec(), None, 400, "malformed"),
        ("trailing bytes", trailing, None, 400, "trailing"),
        ("future version", wrong_version, None, 400, "version"),
        ("not really gzip", valid.clone(), Some("gzip"), 400, "gzip"),
        ("unknown encoding", valid.clone(), Some("br"), 415, "gzip"),
        ("over the wire limit", vec![0u8; protocol::MAX_REQUEST_BYTES as usize + 1], None, 413, "limit"),
        ("a gzip bomb", gzip(&vec![0u8; protocol::MAX_DECODED_BYTES + 1024]), Some("gzip"), 413, "decompresses"),
    ];
    for (what, body, encoding, status, says) in cases {
        let (got, text) = phone.post_raw(body, encoding).await;
        assert_eq!(got, status, "{what}: {text}");
        assert!(text.to_lowercase().contains(says), "{what}: the error says what is wrong: {text}");
        assert!(text.starts_with('{'), "{what}: errors are JSON: {text}");
    }

    // Too many documents in one push is refused as a whole.
    let many = SyncRequest {
        cursor: None,
        push: (0..protocol::MAX_PUSH_DOCS + 1)
            .map(|i| protocol::DocPush { doc: gridsync_shared::DocId::new_v7(i as u64, [0; 10]), changes: vec![] })
            .collect(),
        max_response_bytes: 1,
    };
    let (got, text) = phone.post_raw(protocol::encode(&many), None).await;
    assert_eq!(got, 413, "{text}");

    // Bytes that decode but are not Automerge changes: rejected per document.
    let junk = SyncRequest {
        cursor: None,
        push: vec![protocol::DocPush {
            doc: gridsync_shared::DocId::new_v7(1, [1; 10]),
            changes: vec![b"not a change".to_vec()],
        }],
        max_response_bytes: 0,
    };
    let response = phone.post_sync(&protocol::encode(&junk)).await.expect("answered");
    let decoded: protocol::SyncResponse = protocol::decode(&response).expect("decodes");
    assert!(
        matches!(&decoded.results[0].outcome, protocol::PushOutcome::Rejected(r) if r.reason == gridsync_shared::rules::RejectReason::Malformed)
    );

    // A cursor the server never issued.
    let forged = SyncRequest { cursor: Some(vec![0xff; 7]), push: vec![], max_response_bytes: 0 };
    let (got, text) = phone.post_raw(protocol::encode(&forged), None).await;
    assert_eq!(got, 400, "{text}");
    assert!(text.contains("cursor"));

    // No token, or a made-up one.
    let anonymous =
        reqwest::Client::new().post(format!("{}/v1/sync", server.url)).body(valid.clone()).send().await.expect("send");
    assert_eq!(anonymous.status().as_u16(), 401);

    assert_eq!(server.store().head_seq().expect("seq"), seq, "nothing was stored");
    assert!(server.doc_ids(&grid).is_empty());
    // And the phone's real request still goes through afterwards.
    let reports = phone.sync().await.expect("sync");
    assert_eq!(reports[0].acknowledged, 1);
}

#[tokio::test]
async fn a_malformed_sign_in_is_a_clear_400_and_a_wrong_password_a_401() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let username = server.person(gridsync_shared::Role::FieldStaff, &grid);
    let http = reqwest::Client::new();
    let url = format!("{}/v1/auth/sign-in", server.url);
    let r = http.post(&url).body("{\"username\": 3}").send().await.expect("send");
    assert_eq!(r.status().as_u16(), 400);
    let r = http
        .post(&url)
        .json(&serde_json::json!({"username": username, "password": "wrong password", "device_name": "x"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .post(&url)
        .json(&serde_json::json!({"username": username, "password": "x", "device_name": "x", "extra": 1}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 400, "unknown fields are refused");
    assert!(server.store().devices().expect("devices").is_empty(), "no device was registered");
}
