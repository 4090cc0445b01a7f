//! The phone app's files over HTTP: scripts and pages go out gzipped to a
//! browser that accepts it (a first visit on a slow link pays for every
//! byte), exactly the file's bytes once unpacked, revalidated by ETag.

use gridsync_tests::TestServer;
use std::io::Read;

async fn get(server: &TestServer, path: &str, accept: &str, etag: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{}{path}", server.url)).header("accept-encoding", accept);
    if let Some(tag) = etag {
        req = req.header("if-none-match", tag);
    }
    req.send().await.expect("request")
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("valid gzip");
    out
}

#[tokio::test]
async fn scripts_go_out_gzipped_to_a_browser_that_accepts_it_and_unpack_to_the_file() {
    let server = TestServer::start().await;
    let on_disk = std::fs::read(gridsync_server::app::default_app_dir().join("app.js")).expect("web/app.js");

    let r = get(&server, "/app.js", "gzip, deflate, br", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.headers()["vary"], "accept-encoding");
    let etag = r.headers()["etag"].to_str().expect("etag").to_string();
    let sent = r.bytes().await.expect("body");
    assert!(sent.len() * 2 < on_disk.len(), "gzip at least halves a script: {} of {}", sent.len(), on_disk.len());
    assert_eq!(gunzip(&sent), on_disk);

    // The same again is a 304 without a body; a browser without gzip gets the file as it is.
    let again = get(&server, "/app.js", "gzip", Some(&etag)).await;
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.expect("body").is_empty());
    let plain = get(&server, "/app.js", "identity", Some(&etag)).await;
    assert_eq!(plain.status(), 200, "another encoding is another ETag");
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.bytes().await.expect("body").as_ref(), on_disk.as_slice());
}

#[tokio::test]
async fn the_service_worker_is_gzipped_with_its_build_filled_in() {
    let server = TestServer::start().await;
    let r = get(&server, "/sw.js", "gzip", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let build = r.headers()["x-gridsync-build"].to_str().expect("build").to_string();
    let text = String::from_utf8(gunzip(&r.bytes().await.expect("body"))).expect("utf-8");
    assert!(!text.contains("__GRIDSYNC_BUILD__") && text.contains(&build), "the build is filled in before packing");
}
