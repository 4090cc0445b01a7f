//! `gridsync-server snapshot` writes the same archive against a running
//! server (through its admin socket) and against a stopped server's data directory.

use gridsync_tests::Phone;
use gridsync_tests::process::{ServerProcess, free_port, small_city};
use std::io::Read;

fn manifest(path: &std::path::Path) -> serde_json::Value {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).expect("archive")).expect("zip");
    let mut text = String::new();
    zip.by_name("manifest.json").expect("manifest").read_to_string(&mut text).expect("read");
    serde_json::from_str(&text).expect("json")
}

#[tokio::test]
async fn the_cli_snapshot_works_against_a_running_and_a_stopped_server() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    small_city(&data, &[("li", "password-li")]).await;
    let server = ServerProcess::start(&data, free_port(), &[]).await;
    let mut phone = Phone::sign_in(&server.url, "li", "password-li").await.expect("sign in");
    for i in 0..30 {
        phone.record_visit(&format!("走访{i}"));
    }
    phone.sync().await.expect("sync");

    let running = dir.path().join("running.zip");
    let out =
        ServerProcess::cli(&data, &["snapshot", "--format", "jsonl", "--out", running.to_str().expect("path")]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(manifest(&running)["counts"]["visit_log"], 30);

    let no_reason = ServerProcess::cli(&data, &["snapshot", "--format", "bundle", "--out", "/tmp/x.zip"]).await;
    assert!(!no_reason.status.success(), "a bundle needs --unmask and a reason");

    server.kill().await;
    let stopped = dir.path().join("stopped.zip");
    let out =
        ServerProcess::cli(&data, &["snapshot", "--format", "csv", "--out", stopped.to_str().expect("path")]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = manifest(&stopped);
    assert_eq!(m["counts"]["visit_log"], 30);
    assert_eq!(m["masked"], true);
    let audit = ServerProcess::cli(&data, &["audit"]).await;
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert_eq!(audit.matches("snapshot.export").count(), 2, "{audit}");
}

/// Every entry of the archive at `path` whose name starts with `photos/`, with its bytes.
fn photo_entries(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).expect("archive")).expect("zip");
    let names: Vec<String> =
        zip.file_names().map(|n| n.expect("name").into_owned()).filter(|n| n.starts_with("photos/")).collect();
    names
        .into_iter()
        .map(|name| {
            let mut bytes = Vec::new();
            zip.by_name(&name).expect("entry").read_to_end(&mut bytes).expect("read");
            (name, bytes)
        })
        .collect()
}

#[tokio::test]
async fn the_cli_snapshot_with_photos_holds_the_uploaded_photos_against_a_running_and_a_stopped_server() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    small_city(&data, &[("li", "password-li")]).await;
    let server = ServerProcess::start(&data, free_port(), &[]).await;
    let mut phone = Phone::sign_in(&server.url, "li", "password-li").await.expect("sign in");
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..20_000u32).map(|i| (i % 253) as u8));
    let photo = gridsync_shared::photos::NewPhoto {
        sha256: gridsync_server::photos::photo_hash(&bytes),
        size: bytes.len() as u64,
        mime: gridsync_shared::photos::PhotoType::Jpeg,
        taken_at: gridsync_tests::now_ms(),
        location: None,
        follow_up: None,
    };
    let visit = phone.record_visit("楼道堆物");
    phone.edit(visit, |e| e.add_photos(std::slice::from_ref(&photo))).expect("photo");
    phone.sync().await.expect("sync");
    let uploaded = reqwest::Client::new()
        .put(format!("{}/v1/photos/{}", server.url, photo.sha256))
        .bearer_auth(phone.token())
        .header("content-type", "image/jpeg")
        .header("x-photo-size", bytes.len().to_string())
        .header("x-upload-offset", "0")
        .body(bytes.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(uploaded.status(), 200);
    let name = format!("photos/{}.jpg", photo.sha256);

    let running = dir.path().join("running.zip");
    let args = ["snapshot", "--format", "xlsx", "--photos", "--out", running.to_str().expect("path")];
    let out = ServerProcess::cli(&data, &args).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(photo_entries(&running), [(name.clone(), bytes.clone())], "through the admin socket");
    assert_eq!(manifest(&running)["photos"]["included"], 1);

    server.kill().await;
    let stopped = dir.path().join("stopped.zip");
    let args = ["snapshot", "--format", "csv", "--photos", "--out", stopped.to_str().expect("path")];
    let out = ServerProcess::cli(&data, &args).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(photo_entries(&stopped), [(name.clone(), bytes)], "from the data directory");
    let without = dir.path().join("without.zip");
    let out =
        ServerProcess::cli(&data, &["snapshot", "--format", "csv", "--out", without.to_str().expect("path")]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(photo_entries(&without).is_empty());
    assert!(manifest(&without).get("photos").is_none());
}
