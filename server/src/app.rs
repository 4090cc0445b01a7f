//! Serves the phone app's files (pages, scripts, the service worker, and the
//! WebAssembly package built into `web/pkg/`), with precompressed brotli or
//! gzip variants when the browser accepts them, and the text files (scripts,
//! pages, styles) gzipped once per content in memory.
//!
//! The files come from a directory (`GRIDSYNC_APP_DIR`, or `./web` when
//! developing) or else from the copy compiled into the binary ([`WebApp`],
//! rust-embed): a release binary copied alone onto a server serves the whole
//! app. Debug builds read that copy from the source tree's `web/` instead, so
//! editing the app never rebuilds the server.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

/// The app's files compiled into release builds (`include_bytes!` of every
/// file under `web/` as it was at build time, `web/pkg/` included when
/// `scripts/build-wasm.sh` had built it). In debug builds rust-embed reads
/// the same files from the source tree when asked.
#[derive(rust_embed::Embed)]
#[folder = "../web/"]
pub struct WebApp;

/// The WebAssembly module the app cannot start without.
pub const WASM_PATH: &str = "pkg/gridsync_client_bg.wasm";

/// Where the app's files are read from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AppSource {
    /// A directory on disk: `GRIDSYNC_APP_DIR`, or `./web` when developing.
    Dir(PathBuf),
    /// The copy compiled into the binary ([`WebApp`]).
    Embedded,
}

impl std::fmt::Display for AppSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppSource::Dir(dir) => write!(f, "directory {}", dir.display()),
            AppSource::Embedded if cfg!(debug_assertions) => {
                write!(f, "built in (debug build: read from {})", source_tree_web().display())
            }
            AppSource::Embedded => write!(f, "built into the binary"),
        }
    }
}

/// The source tree's `web/` directory, as it was when this binary was built.
fn source_tree_web() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../web"))
}

impl AppSource {
    /// The source the server uses: `GRIDSYNC_APP_DIR` if set, else `./web`
    /// if it holds an `index.html` (running from a checkout), else the copy
    /// built into the binary.
    pub fn from_env() -> Self {
        if let Some(dir) = std::env::var_os("GRIDSYNC_APP_DIR") {
            return AppSource::Dir(PathBuf::from(dir));
        }
        let here = PathBuf::from("web");
        if here.join("index.html").exists() {
            return AppSource::Dir(here);
        }
        AppSource::Embedded
    }

    /// One file's bytes, by its path relative to the app's root (already
    /// checked not to leave it). Embedded files are borrowed, not copied.
    async fn read(&self, rel: &str) -> Option<Bytes> {
        match self {
            AppSource::Dir(dir) => tokio::fs::read(dir.join(rel)).await.ok().map(Bytes::from),
            AppSource::Embedded => match WebApp::get(rel)?.data {
                Cow::Borrowed(b) => Some(Bytes::from_static(b)),
                Cow::Owned(v) => Some(Bytes::from(v)),
            },
        }
    }

    /// Whether the app's WebAssembly package is there (without it the app
    /// cannot start, and `/` says so instead of serving a broken page).
    pub fn has_wasm(&self) -> bool {
        match self {
            AppSource::Dir(dir) => dir.join(WASM_PATH).is_file(),
            // A debug build reads the source tree, where the package may be built while it runs.
            AppSource::Embedded if cfg!(debug_assertions) => source_tree_web().join(WASM_PATH).is_file(),
            AppSource::Embedded => {
                static EMBEDDED: OnceLock<bool> = OnceLock::new();
                *EMBEDDED.get_or_init(|| WebApp::iter().any(|name| name == WASM_PATH))
            }
        }
    }

    /// The number of files the source holds.
    pub fn file_count(&self) -> usize {
        match self {
            AppSource::Dir(dir) => files_under(dir).len(),
            AppSource::Embedded => WebApp::iter().count(),
        }
    }

    /// A short hash of every file (relative names and contents), computed
    /// once per source: it versions the service worker's cache, so every new
    /// build replaces the phones' cached copy.
    pub fn build_id(&self) -> String {
        type Ids = Mutex<HashMap<AppSource, String>>;
        static IDS: OnceLock<Ids> = OnceLock::new();
        let ids = IDS.get_or_init(Ids::default);
        if let Some(id) = ids.lock().ok().and_then(|m| m.get(self).cloned()) {
            return id;
        }
        let mut hasher = Sha256::new();
        match self {
            AppSource::Dir(dir) => {
                for rel in files_under(dir) {
                    if let Ok(bytes) = std::fs::read(dir.join(&rel)) {
                        hasher.update(rel.as_bytes());
                        hasher.update(Sha256::digest(&bytes));
                    }
                }
            }
            AppSource::Embedded => {
                let mut names: Vec<_> = WebApp::iter().collect();
                names.sort();
                for name in names {
                    if let Some(file) = WebApp::get(&name) {
                        hasher.update(name.as_bytes());
                        hasher.update(file.metadata.sha256_hash());
                    }
                }
            }
        }
        let id = hex::encode(&hasher.finalize()[..8]);
        if let Ok(mut m) = ids.lock() {
            m.insert(self.clone(), id.clone());
        }
        id
    }
}

/// Every file under `dir`, as sorted relative paths with `/` separators.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The app directory of a checkout: `GRIDSYNC_APP_DIR`, else `./web`, else
/// the `web/` directory of the source tree the binary was built in. For
/// tests and tools that read the app's files themselves; the server serves
/// from [`AppSource::from_env`].
pub fn default_app_dir() -> PathBuf {
    match AppSource::from_env() {
        AppSource::Dir(dir) => dir,
        AppSource::Embedded => source_tree_web(),
    }
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

/// The file's path relative to the app's root for a request path, or None if
/// it would leave the root.
fn resolve(tail: &str) -> Option<String> {
    let rel = if tail.is_empty() { "index.html" } else { tail };
    if Path::new(rel).components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(rel.to_string())
}

/// The page `/` answers when the app's WebAssembly package is missing (a
/// server built before `scripts/build-wasm.sh` ran): what is wrong and how to
/// fix it, instead of an app that fails on a phone with no explanation.
const MISSING_WASM_PAGE: &str = "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>网格通：应用不完整</title></head>\
<body style=\"font-family: sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em\">\
<h1>网格通暂时无法使用</h1>\
<p>服务器上的手机应用不完整：缺少 WebAssembly 程序包（web/pkg/）。请联系系统管理员。</p>\
<p lang=\"en\">The phone app's WebAssembly package (web/pkg/) is missing from this server. Build it with \
<code>scripts/build-wasm.sh</code>, then rebuild the server (<code>./dev release</code>) so the binary carries it, \
or point <code>GRIDSYNC_APP_DIR</code> at a <code>web/</code> directory that has it.</p>\
</body></html>\n";

fn missing_wasm() -> Response {
    let mut r = Response::new(MISSING_WASM_PAGE.into());
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Serves one app file. `accept_encoding` picks a precompressed variant.
/// Every answer carries a strong `ETag` (a hash of the bytes sent) and the
/// build id (`x-gridsync-build`, the BUILD of sw.js): the service worker
/// revalidates its install against the HTTP cache (a matching `If-None-Match`
/// gets a body-less 304) and refuses a file from another build. Without the
/// WebAssembly package, `/` answers 503 with a page saying so.
pub async fn serve_file(
    source: AppSource,
    tail: String,
    accept_encoding: Option<String>,
    if_none_match: Option<String>,
) -> Response {
    let not_found = || {
        let mut r = Response::new("not found".into());
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    };
    let Some(rel) = resolve(&tail) else { return not_found() };
    if rel == "index.html" && !source.has_wasm() {
        return missing_wasm();
    }
    let path = PathBuf::from(&rel);
    let accepts =
        |enc: &str| accept_encoding.as_deref().is_some_and(|a| a.split(',').any(|e| e.trim().starts_with(enc)));
    let mut candidates: Vec<(String, Option<&'static str>)> = Vec::new();
    if accepts("br") {
        candidates.push((format!("{rel}.br"), Some("br")));
    }
    if accepts("gzip") {
        candidates.push((format!("{rel}.gz"), Some("gzip")));
    }
    candidates.push((rel.clone(), None));
    for (file, mut encoding) in candidates {
        if let Some(mut bytes) = source.read(&file).await {
            let build = {
                let source = source.clone();
                tokio::task::spawn_blocking(move || source.build_id()).await.unwrap_or_else(|_| "0".into())
            };
            if tail == "sw.js" && encoding.is_none() {
                bytes = String::from_utf8_lossy(&bytes).replace("__GRIDSYNC_BUILD__", &build).into_bytes().into();
            }
            if encoding.is_none()
                && accepts("gzip")
                && compressible(&path)
                && bytes.len() > 1024
                && let Some(packed) = gzipped(&path, &bytes).await
            {
                bytes = Bytes::from(packed.as_ref().clone());
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
            if let Ok(v) = HeaderValue::from_str(&build) {
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
