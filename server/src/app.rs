//! Serves the phone app's files (the `web/` directory: pages, scripts, the
//! service worker, and the WebAssembly package built into `web/pkg/`), with
//! precompressed brotli or gzip variants when the browser accepts them.

use std::path::{Component, Path, PathBuf};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

/// Where the app's files are: `GRIDSYNC_APP_DIR`, else `./web`, else the
/// `web/` directory of the source tree the binary was built in.
pub fn default_app_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GRIDSYNC_APP_DIR") {
        return PathBuf::from(dir);
    }
    let here = PathBuf::from("web");
    if here.join("index.html").exists() {
        return here;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../web"))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "webmanifest" => "application/manifest+json",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// The file for a request path, or None if it escapes the directory.
fn resolve(dir: &Path, tail: &str) -> Option<PathBuf> {
    let rel = if tail.is_empty() { "index.html" } else { tail };
    let rel = Path::new(rel);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(dir.join(rel))
}

/// Serves one app file. `accept_encoding` picks a precompressed variant.
pub async fn serve_file(dir: PathBuf, tail: String, accept_encoding: Option<String>) -> Response {
    let not_found = || {
        let mut r = Response::new("not found".into());
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    };
    let Some(path) = resolve(&dir, &tail) else { return not_found() };
    let accepts =
        |enc: &str| accept_encoding.as_deref().is_some_and(|a| a.split(',').any(|e| e.trim().starts_with(enc)));
    let mut candidates: Vec<(PathBuf, Option<&'static str>)> = Vec::new();
    if accepts("br") {
        candidates.push((PathBuf::from(format!("{}.br", path.display())), Some("br")));
    }
    if accepts("gzip") {
        candidates.push((PathBuf::from(format!("{}.gz", path.display())), Some("gzip")));
    }
    candidates.push((path.clone(), None));
    for (file, encoding) in candidates {
        if let Ok(bytes) = tokio::fs::read(&file).await {
            let mut r = Response::new(bytes.into());
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&path)));
            if let Some(enc) = encoding {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
            }
            h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
            // The service worker keeps the app offline; the network copy is always revalidated.
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            if tail == "sw.js" {
                h.insert("service-worker-allowed", HeaderValue::from_static("/"));
            }
            return r;
        }
    }
    not_found()
}
