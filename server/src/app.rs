//! Serves the phone app's files (the `web/` directory: pages, scripts, the
//! service worker, and the WebAssembly package built into `web/pkg/`), with
//! precompressed brotli or gzip variants when the browser accepts them, and
//! the text files (scripts, pages, styles) gzipped once per content in memory.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
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

/// True for the text files worth compressing (a first visit over a slow link
/// downloads ~250 KB of scripts, a third of that gzipped).
fn compressible(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("html" | "js" | "mjs" | "css" | "webmanifest" | "json" | "svg")
    )
}

/// `bytes` gzipped, from a cache keyed by the path and a hash of the content
/// (so an edited file is compressed again, never served stale); None if
/// compressing fails (the file then goes out as it is).
async fn gzipped(path: &Path, bytes: &[u8]) -> Option<Arc<Vec<u8>>> {
    type Cache = Mutex<HashMap<(PathBuf, [u8; 32]), Arc<Vec<u8>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    let key = (path.to_path_buf(), <[u8; 32]>::from(Sha256::digest(bytes)));
    if let Some(hit) = cache.lock().ok()?.get(&key) {
        return Some(hit.clone());
    }
    let raw = bytes.to_vec();
    let packed = tokio::task::spawn_blocking(move || {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&raw).ok()?;
        gz.finish().ok()
    })
    .await
    .ok()??;
    let packed = Arc::new(packed);
    let mut cache = cache.lock().ok()?;
    // The app is a few dozen files; a directory edited over and over in
    // development must not grow the cache without bound.
    if cache.len() >= 256 {
        cache.clear();
    }
    cache.insert(key, packed.clone());
    Some(packed)
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

/// A short hash of every file under the app directory (names and contents),
/// computed once: it versions the service worker's cache.
fn build_id(dir: &Path) -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        fn walk(dir: &Path, hasher: &mut Sha256) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for path in paths {
                if path.is_dir() {
                    walk(&path, hasher);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    hasher.update(path.to_string_lossy().as_bytes());
                    hasher.update(&bytes);
                }
            }
        }
        let mut hasher = Sha256::new();
        walk(dir, &mut hasher);
        hex::encode(&hasher.finalize()[..8])
    })
}

/// Serves one app file. `accept_encoding` picks a precompressed variant.
/// Every answer carries a strong `ETag` (a hash of the bytes sent) and the
/// build id (`x-gridsync-build`, the BUILD of sw.js): the service worker
/// revalidates its install against the HTTP cache (a matching `If-None-Match`
/// gets a body-less 304) and refuses a file from another build.
pub async fn serve_file(
    dir: PathBuf,
    tail: String,
    accept_encoding: Option<String>,
    if_none_match: Option<String>,
) -> Response {
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
    for (file, mut encoding) in candidates {
        if let Ok(mut bytes) = tokio::fs::read(&file).await {
            let build = {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || build_id(&dir)).await.unwrap_or("0")
            };
            if tail == "sw.js" && encoding.is_none() {
                bytes = String::from_utf8_lossy(&bytes).replace("__GRIDSYNC_BUILD__", build).into_bytes();
            }
            if encoding.is_none()
                && accepts("gzip")
                && compressible(&path)
                && bytes.len() > 1024
                && let Some(packed) = gzipped(&path, &bytes).await
            {
                bytes = packed.as_ref().clone();
                encoding = Some("gzip");
            }
            let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..12]));
            let unchanged = if_none_match.as_deref().is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
            let mut r = if unchanged {
                let mut r = Response::new(Vec::<u8>::new().into());
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                r
            } else {
                Response::new(bytes.into())
            };
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&path)));
            if let Some(enc) = encoding {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
            }
            if let Ok(v) = HeaderValue::from_str(&etag) {
                h.insert(header::ETAG, v);
            }
            if let Ok(v) = HeaderValue::from_str(build) {
                h.insert("x-gridsync-build", v);
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
