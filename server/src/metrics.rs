//! `GET /metrics`: the server's figures in the Prometheus text exposition
//! format (version 0.0.4), for the monitoring a city's IT department already
//! runs. Written by hand: a dozen series need no registry and no crate.
//!
//! Counters live in [`Metrics`], one per server (so servers in one process,
//! as in tests, count apart); the store's figures are read at each scrape,
//! except the document counts, a scan of every record's summary, which run in
//! the background at most every [`DOC_COUNT_TTL`] and are waited for at most
//! [`DOC_COUNT_WAIT`] (a cold count of 300,000 records took 12 s, a scrape
//! must not). Only loopback may read them unless a bearer token is configured
//! ([`MetricsAccess`]).

use crate::error::ApiError;
use crate::http::AppState;
use gridsync_shared::RecordKind;
use gridsync_shared::protocol::{PushOutcome, PushResult};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the sync latency histogram's buckets, in seconds: from a
/// poll (milliseconds) to the few seconds a sync may wait in the queue.
pub const SYNC_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How long a count of the stored documents is reused (counting is a scan).
pub const DOC_COUNT_TTL: Duration = Duration::from_secs(30);

/// How long a scrape waits for a new count of the documents before it shows
/// the previous one (none yet: no `gridsync_documents` samples).
pub const DOC_COUNT_WAIT: Duration = Duration::from_secs(1);

/// When the last successful backup finished, Unix ms (0: none since start).
static LAST_BACKUP_MS: AtomicI64 = AtomicI64::new(0);

/// Records that a full backup finished successfully at `unix_ms`; shown as
/// `gridsync_last_backup_timestamp_seconds`. An earlier time than one
/// already recorded is ignored.
pub fn backup_finished(unix_ms: i64) {
    LAST_BACKUP_MS.fetch_max(unix_ms, Ordering::Relaxed);
}

/// When the last successful backup recorded by [`backup_finished`] finished, Unix ms.
pub fn last_backup_ms() -> Option<i64> {
    Some(LAST_BACKUP_MS.load(Ordering::Relaxed)).filter(|&ms| ms > 0)
}

/// Marks an error response with its code (`busy`, `too_many_attempts`, ...),
/// so [`Metrics::answered`] can count it without parsing the body.
#[derive(Clone, Copy, Debug)]
pub struct ErrorCode(pub &'static str);

/// A histogram with fixed buckets: counts per bucket (not cumulative), their
/// sum in microseconds, and the count of observations.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        // One more bucket for +Inf.
        let buckets = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self { bounds, buckets, sum_us: AtomicU64::new(0), count: AtomicU64::new(0) }
    }

    fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let i = self.bounds.iter().position(|&b| seconds <= b).unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(took.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn write(&self, out: &mut Exposition, name: &str, help: &str) {
        out.header(name, help, "histogram");
        let mut cumulative = 0u64;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = self.bounds.get(i).map_or_else(|| "+Inf".to_string(), |b| format!("{b}"));
            out.sample(&format!("{name}_bucket"), &[("le", &le)], cumulative as f64);
        }
        out.sample(&format!("{name}_sum"), &[], self.sum_us.load(Ordering::Relaxed) as f64 / 1e6);
        // The count is the +Inf bucket, so the two never disagree within one scrape.
        out.sample(&format!("{name}_count"), &[], cumulative as f64);
    }
}

/// What one server has counted since it started.
#[derive(Debug)]
pub struct Metrics {
    syncs: Histogram,
    rejections: Mutex<BTreeMap<&'static str, u64>>,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    documents: Mutex<DocCount>,
    counted: tokio::sync::Notify,
}

/// The last count of documents per kind, when it was made, and whether a
/// count runs now.
#[derive(Debug, Default)]
struct DocCount {
    last: Option<(Instant, Vec<(RecordKind, u64)>)>,
    running: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            syncs: Histogram::new(&SYNC_BUCKETS),
            rejections: Mutex::default(),
            accepted: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            errors: Mutex::default(),
            documents: Mutex::default(),
            counted: tokio::sync::Notify::new(),
        }
    }
}

impl Metrics {
    /// Counts a sync answered with 200, `took` from its arrival to its
    /// response (queue wait included), and its documents' push outcomes.
    pub fn sync_served(&self, took: Duration, results: &[PushResult]) {
        for r in results {
            match &r.outcome {
                PushOutcome::Accepted => bump(&self.accepted),
                PushOutcome::Duplicate => bump(&self.duplicates),
                PushOutcome::Rejected(rejection) => {
                    let mut map = self.rejections.lock().unwrap_or_else(|p| p.into_inner());
                    *map.entry(rejection.reason.code()).or_default() += 1;
                }
            }
        }
        self.syncs.observe(took);
    }

    /// Counts a response that carries an [`ErrorCode`].
    pub fn answered(&self, response: &Response) {
        if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>() {
            let mut map = self.errors.lock().unwrap_or_else(|p| p.into_inner());
            *map.entry(code).or_default() += 1;
        }
    }

    fn errors(&self, code: &str) -> u64 {
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).get(code).copied().unwrap_or(0)
    }

    /// The stored documents per kind: the last count if younger than
    /// [`DOC_COUNT_TTL`]; else a new count is started in the background
    /// (one at a time) and waited for at most [`DOC_COUNT_WAIT`], after which
    /// the previous count (if any) is shown and the new one serves later scrapes.
    async fn documents(self: &Arc<Self>, store: Arc<dyn crate::store::Store>) -> Option<Vec<(RecordKind, u64)>> {
        let counted = self.counted.notified();
        tokio::pin!(counted);
        counted.as_mut().enable();
        let start = {
            let mut count = self.documents.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, counts)) = &count.last
                && at.elapsed() < DOC_COUNT_TTL
            {
                return Some(counts.clone());
            }
            !std::mem::replace(&mut count.running, true)
        };
        if start {
            let metrics = self.clone();
            tokio::task::spawn_blocking(move || {
                let result = store.doc_counts();
                {
                    let mut count = metrics.documents.lock().unwrap_or_else(|p| p.into_inner());
                    count.running = false;
                    match result {
                        Ok(counts) => count.last = Some((Instant::now(), counts)),
                        Err(error) => tracing::warn!(%error, "could not count the stored documents for /metrics"),
                    }
                }
                metrics.counted.notify_waiters();
            });
        }
        let _ = tokio::time::timeout(DOC_COUNT_WAIT, counted).await;
        let count = self.documents.lock().unwrap_or_else(|p| p.into_inner());
        count.last.as_ref().map(|(_, counts)| counts.clone())
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// Who may read `/metrics`. The figures hold no personal data, but they tell
/// an outsider how busy the server is and how big the city's store: never
/// public by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Only clients on the loopback interface (a Prometheus on the same
    /// machine), and only requests not relayed by a proxy (`Forwarded` or
    /// `X-Forwarded-For` present): a reverse proxy on the same machine does
    /// not make `/metrics` public.
    #[default]
    Loopback,
    /// Any client that sends `Authorization: Bearer <token>`.
    Token(String),
}

impl MetricsAccess {
    /// `GRIDSYNC_METRICS_TOKEN` if set and not empty, else loopback only.
    pub fn from_env() -> Self {
        match std::env::var("GRIDSYNC_METRICS_TOKEN") {
            Ok(token) if !token.trim().is_empty() => MetricsAccess::Token(token.trim().to_string()),
            _ => MetricsAccess::Loopback,
        }
    }

    /// Whether this request may read the metrics.
    pub fn check(
        &self,
        peer: Option<SocketAddr>,
        authorization: Option<&str>,
        forwarded: bool,
    ) -> Result<(), ApiError> {
        match self {
            MetricsAccess::Loopback => {
                let local = peer.is_some_and(|p| p.ip().is_loopback() || is_mapped_loopback(p));
                if local && !forwarded {
                    Ok(())
                } else {
                    Err(ApiError::Forbidden(
                        "/metrics answers only on the loopback interface; set GRIDSYNC_METRICS_TOKEN to read it \
                         from elsewhere with a bearer token"
                            .into(),
                    ))
                }
            }
            MetricsAccess::Token(token) => {
                use subtle::ConstantTimeEq;
                let given = authorization.and_then(|a| a.strip_prefix("Bearer ")).map(str::trim).unwrap_or("");
                let same: bool = given.as_bytes().ct_eq(token.as_bytes()).into();
                if same {
                    Ok(())
                } else {
                    Err(ApiError::Unauthorized("/metrics needs Authorization: Bearer <GRIDSYNC_METRICS_TOKEN>".into()))
                }
            }
        }
    }
}

fn is_mapped_loopback(p: SocketAddr) -> bool {
    match p.ip() {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        std::net::IpAddr::V4(_) => false,
    }
}

/// The text being written: `# HELP`, `# TYPE` and sample lines.
struct Exposition(String);

impl Exposition {
    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                let _ = write!(self.0, "{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn single(&mut self, name: &str, help: &str, kind: &str, value: f64) {
        self.header(name, help, kind);
        self.sample(name, &[], value);
    }
}

/// The exposition text for `state` now.
pub async fn render(state: &AppState) -> Result<String, ApiError> {
    let store = state.store.clone();
    let (disk_bytes, head_seq) =
        crate::http::blocking(move || Ok((store.stats()?.disk_bytes, store.head_seq()?))).await?;
    let documents = state.metrics.documents(state.store.clone()).await.unwrap_or_default();
    let m = &state.metrics;
    let mut out = Exposition(String::with_capacity(4096));
    out.header("gridsync_build_info", "The running server's version (always 1).", "gauge");
    out.sample("gridsync_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);

    out.single(
        "gridsync_syncs_total",
        "Syncs (POST /v1/sync) answered with 200 since the server started.",
        "counter",
        m.syncs.count.load(Ordering::Relaxed) as f64,
    );
    m.syncs.write(
        &mut out,
        "gridsync_sync_duration_seconds",
        "Time from a sync's arrival to its response, queue wait included, of syncs answered with 200.",
    );
    out.header(
        "gridsync_pushed_documents_total",
        "Documents pushed in syncs, by outcome: accepted (new changes stored) or duplicate (already held).",
        "counter",
    );
    out.sample(
        "gridsync_pushed_documents_total",
        &[("outcome", "accepted")],
        m.accepted.load(Ordering::Relaxed) as f64,
    );
    out.sample(
        "gridsync_pushed_documents_total",
        &[("outcome", "duplicate")],
        m.duplicates.load(Ordering::Relaxed) as f64,
    );
    out.header(
        "gridsync_push_rejections_total",
        "Pushed documents refused by the record rules, by reason (the code phones receive).",
        "counter",
    );
    for (reason, n) in m.rejections.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        out.sample("gridsync_push_rejections_total", &[("reason", reason)], *n as f64);
    }
    out.single(
        "gridsync_busy_responses_total",
        "Requests answered 503 busy with Retry-After (back-pressure: the sync queue, the sign-in hashing pool, uploads).",
        "counter",
        m.errors("busy") as f64,
    );
    out.single(
        "gridsync_sync_busy_total",
        "Syncs refused 503 busy by the sync queue (part of gridsync_busy_responses_total).",
        "counter",
        state.sync_gate.figures().refused as f64,
    );
    out.single(
        "gridsync_sign_in_throttled_total",
        "Sign-ins refused 429 too_many_attempts (too many failures for the username or the address).",
        "counter",
        m.errors("too_many_attempts") as f64,
    );
    let sync = state.sync_gate.figures();
    out.single("gridsync_syncs_in_progress", "Syncs being worked on now.", "gauge", sync.working as f64);
    out.single("gridsync_syncs_waiting", "Syncs waiting for a worker now.", "gauge", sync.waiting as f64);
    let edge = state.edge.figures();
    out.single("gridsync_open_connections", "Client connections open now (HTTP and HTTPS).", "gauge", edge.open as f64);
    out.single(
        "gridsync_connections_refused_total",
        "Connections closed on accept because the connection cap was reached.",
        "counter",
        edge.refused as f64,
    );
    out.single("gridsync_store_size_bytes", "Bytes the store's files take on disk.", "gauge", disk_bytes as f64);
    out.single(
        "gridsync_feed_head",
        "The change feed's durable head: the position of the last change stored.",
        "gauge",
        head_seq as f64,
    );
    out.header(
        "gridsync_documents",
        "Records stored, by kind (counted in the background, at most every 30 s).",
        "gauge",
    );
    for (kind, n) in &documents {
        out.sample("gridsync_documents", &[("kind", kind.as_str())], *n as f64);
    }
    out.single(
        "gridsync_last_backup_timestamp_seconds",
        "When the last successful full backup finished, Unix seconds (0: none since the server started).",
        "gauge",
        last_backup_ms().unwrap_or(0) as f64 / 1000.0,
    );
    Ok(out.0)
}

/// `GET /metrics`, for whoever [`MetricsAccess`] lets in.
pub async fn route(
    state: AppState,
    peer: Option<SocketAddr>,
    authorization: Option<String>,
    forwarded: bool,
) -> Result<Response, ApiError> {
    state.metrics_access.check(peer, authorization.as_deref(), forwarded)?;
    let text = render(&state).await?;
    let mut r = Response::new(text.into());
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_by_default_and_not_through_a_proxy() {
        let access = MetricsAccess::Loopback;
        let local: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().expect("addr");
        let remote: SocketAddr = "192.0.2.7:5000".parse().expect("addr");
        assert!(access.check(Some(local), None, false).is_ok());
        assert!(access.check(Some(mapped), None, false).is_ok());
        assert!(access.check(Some(remote), None, false).is_err());
        assert!(access.check(Some(local), None, true).is_err(), "a proxy on the same machine relays others");
        assert!(access.check(None, None, false).is_err());
    }

    #[test]
    fn a_token_lets_in_only_who_sends_it() {
        let access = MetricsAccess::Token("s3cret".into());
        let remote: SocketAddr = "192.0.2.7:5000".parse().expect("addr");
        assert!(access.check(Some(remote), Some("Bearer s3cret"), true).is_ok());
        assert!(access.check(Some(remote), Some("Bearer s3cre"), false).is_err());
        assert!(access.check(Some(remote), None, false).is_err());
        let local: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        assert!(access.check(Some(local), None, false).is_err(), "with a token, loopback needs it too");
    }

    #[test]
    fn the_histogram_is_cumulative_and_its_count_is_the_inf_bucket() {
        let h = Histogram::new(&SYNC_BUCKETS);
        for ms in [1, 7, 7, 300, 60_000] {
            h.observe(Duration::from_millis(ms));
        }
        let mut out = Exposition(String::new());
        h.write(&mut out, "x_seconds", "help");
        assert!(out.0.contains("x_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(out.0.contains("x_seconds_bucket{le=\"0.01\"} 3\n"));
        assert!(out.0.contains("x_seconds_bucket{le=\"0.5\"} 4\n"));
        assert!(out.0.contains("x_seconds_bucket{le=\"30\"} 4\n"));
        assert!(out.0.contains("x_seconds_bucket{le=\"+Inf\"} 5\n"));
        assert!(out.0.contains("x_seconds_count 5\n"));
        assert!(out.0.contains("x_seconds_sum 60.315\n"));
    }

    #[test]
    fn a_backup_time_only_moves_forward() {
        backup_finished(2_000_000);
        backup_finished(1_000_000);
        assert!(last_backup_ms().is_some_and(|ms| ms >= 2_000_000));
    }
}
