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
