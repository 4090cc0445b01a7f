//! One file to deploy: the server binary copied alone into an empty
//! directory, started there with no `GRIDSYNC_APP_DIR`, serves the whole
//! phone app (page, scripts, service worker, and the WebAssembly package with
//! its precompressed variants when it was built); `GRIDSYNC_APP_DIR` and a
//! `./web` beside the server still override the built-in copy; and an app
//! without its WebAssembly package says so at `/` instead of failing on the
//! phone.
//!
//! Release builds carry the files inside the binary; debug builds (these
//! tests' default) read the same files from the source tree at run time. Run
//! against a release binary with
//! `GRIDSYNC_SERVER_BIN=target/release/gridsync-server cargo test -p gridsync-tests --test it deploy::`.

use gridsync_tests::process::{free_port, server_binary};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The source tree's `web/`, which the binary was built from.
fn source_web() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

/// A server started from `cwd` with the binary copied there, its data in
/// `cwd/data`, and `GRIDSYNC_APP_DIR` set only if `app_dir` says so.
struct Deployed {
    url: String,
    _child: Child,
}

async fn start(cwd: &Path, app_dir: Option<&Path>) -> Deployed {
    let binary = cwd.join("gridsync-server");
    if !binary.exists() {
        std::fs::copy(server_binary(), &binary).expect("copy the server binary");
    }
    let port = free_port();
    let mut cmd = Command::new(&binary);
    cmd.current_dir(cwd)
        .env_remove("GRIDSYNC_APP_DIR")
        .env_remove("GRIDSYNC_DATA")
        .env_remove("GRIDSYNC_LISTEN")
        .env("GRIDSYNC_LOG", "warn")
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(dir) = app_dir {
        cmd.env("GRIDSYNC_APP_DIR", dir);
    }
    let child = cmd.spawn().expect("spawn the copied gridsync-server");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::get(format!("{url}/healthz")).await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "the copied gridsync-server did not come up in {}", cwd.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Deployed { url, _child: child }
}

async fn get(url: &str, accept_encoding: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = reqwest::Client::new().get(url).header("accept-encoding", accept_encoding).send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.expect("body").to_vec())
}

/// Asserts that `served` is the source tree's `web/<rel>`, saying which
/// file and how they differ (not every byte) when they do not.
fn assert_same(served: &[u8], rel: &str) {
    let on_disk = std::fs::read(source_web().join(rel)).unwrap_or_else(|e| panic!("web/{rel}: {e}"));
    assert!(
        served == on_disk.as_slice(),
        "web/{rel}: served {} bytes, the source tree has {} bytes; a release binary carries web/ as it was when it \
         was built: rebuild it (cargo build --release -p gridsync-server)",
        served.len(),
        on_disk.len()
    );
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn a_binary_copied_alone_into_an_empty_directory_serves_the_whole_app() {
    let empty = tempfile::tempdir().expect("temp dir");
    let server = start(empty.path(), None).await;
    let web = source_web();
    let wasm_built = web.join("pkg/gridsync_client_bg.wasm").exists();

    let (status, headers, body) = get(&format!("{}/", server.url), "identity").await;
    if wasm_built {
        assert_eq!(status, 200, "/ serves the app's page");
        assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
        assert_same(&body, "index.html");
    } else {
        eprintln!("web/pkg is not built (scripts/build-wasm.sh): checking the page that says so");
        assert_eq!(status, 503);
        let text = String::from_utf8(body).expect("utf-8");
        assert!(text.contains("web/pkg") && text.contains("scripts/build-wasm.sh"), "{text}");
    }

    for script in ["app.js", "sync.js", "db.js", "style.css", "manifest.webmanifest"] {
        let (status, headers, body) = get(&format!("{}/{script}", server.url), "identity").await;
        assert_eq!(status, 200, "{script}");
        assert_same(&body, script);
        assert!(!header(&headers, "x-gridsync-build").is_empty(), "{script} carries the build id");
    }
    let (status, headers, body) = get(&format!("{}/sw.js", server.url), "identity").await;
    assert_eq!(status, 200);
    let build = header(&headers, "x-gridsync-build").to_string();
    let sw = String::from_utf8(body).expect("utf-8");
    assert!(!sw.contains("__GRIDSYNC_BUILD__") && sw.contains(&build), "the service worker's build id is filled in");

    if wasm_built {
        let (status, headers, body) = get(&format!("{}/pkg/gridsync_client_bg.wasm", server.url), "gzip, br").await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "content-encoding"), "br", "the precompressed brotli variant");
        assert_eq!(header(&headers, "content-type"), "application/wasm");
        assert_same(&body, "pkg/gridsync_client_bg.wasm.br");
        let (status, _, body) = get(&format!("{}/pkg/gridsync_client_bg.wasm", server.url), "identity").await;
        assert_eq!(status, 200);
        assert!(body.starts_with(b"\0asm"), "a WebAssembly module");
        let (status, _, body) = get(&format!("{}/pkg/gridsync_client.js", server.url), "identity").await;
        assert_eq!(status, 200);
        assert_same(&body, "pkg/gridsync_client.js");
    }
    let (status, _, _) = get(&format!("{}/no-such-file.js", server.url), "identity").await;
    assert_eq!(status, 404);
    assert_eq!(std::fs::read_dir(empty.path()).expect("dir").count(), 2, "only the binary and its data directory");
}

/// A small app directory: a page with `marker`, a service worker, and a
/// WebAssembly module unless `with_wasm` is false.
fn small_app(dir: &Path, marker: &str, with_wasm: bool) {
    std::fs::create_dir_all(dir.join("pkg")).expect("mkdir");
    std::fs::write(dir.join("index.html"), format!("<!doctype html><title>{marker}</title>")).expect("write");
    std::fs::write(dir.join("sw.js"), "const BUILD = '__GRIDSYNC_BUILD__';").expect("write");
    if with_wasm {
        std::fs::write(dir.join("pkg/gridsync_client_bg.wasm"), b"\0asm\x01\0\0\0").expect("write");
    }
}

#[tokio::test]
async fn gridsync_app_dir_and_a_web_directory_beside_the_server_override_the_built_in_app() {
    // GRIDSYNC_APP_DIR names another copy of the app.
    let cwd = tempfile::tempdir().expect("temp dir");
    let other = tempfile::tempdir().expect("temp dir");
    small_app(other.path(), "另一个副本", true);
    let server = start(cwd.path(), Some(other.path())).await;
    let (status, _, body) = get(&format!("{}/", server.url), "identity").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("另一个副本"));
    let (status, _, _) = get(&format!("{}/app.js", server.url), "identity").await;
    assert_eq!(status, 404, "only that copy is served, not the built-in one");

    // Without its WebAssembly package the app says so at /, and how to fix it.
    std::fs::remove_file(other.path().join("pkg/gridsync_client_bg.wasm")).expect("rm");
    let (status, headers, body) = get(&format!("{}/", server.url), "identity").await;
    assert_eq!(status, 503);
    assert_eq!(header(&headers, "cache-control"), "no-store", "never kept by a service worker");
    let text = String::from_utf8(body).expect("utf-8");
    assert!(text.contains("网格通暂时无法使用") && text.contains("WebAssembly"), "{text}");
    assert!(text.contains("scripts/build-wasm.sh") && text.contains("GRIDSYNC_APP_DIR"), "{text}");

    // A ./web beside the server (a checkout) is served when no GRIDSYNC_APP_DIR is set.
    let checkout = tempfile::tempdir().expect("temp dir");
    small_app(&checkout.path().join("web"), "开发中的副本", true);
    let server = start(checkout.path(), None).await;
    let (status, _, body) = get(&format!("{}/", server.url), "identity").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("开发中的副本"));
    let (_, headers, body) = get(&format!("{}/sw.js", server.url), "identity").await;
    let build = header(&headers, "x-gridsync-build");
    assert!(String::from_utf8_lossy(&body).contains(build) && !build.is_empty(), "the build id of this copy");
}
