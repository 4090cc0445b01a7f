//! A fault-injecting HTTP/1.1 proxy on loopback, between phones and a server:
//! each exchange (one request, one response, one connection) is passed
//! through or hit by one fault — cut, truncated, delayed, duplicated, dropped.
//!
//! Faults are drawn from a seeded RNG in the order connections are accepted,
//! so a run whose phones sync one at a time replays exactly from its seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to one exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Request and response pass unchanged.
    Pass,
    /// Both pass, each after a random delay (request direction, response direction).
    Delay,
    /// The request is dropped: a random strict prefix of it (possibly nothing)
    /// reaches the server, then both connections close.
    CutRequest,
    /// The whole request reaches the server, then both connections close at
    /// once, while the server may still be working on it.
    CutAfterRequest,
    /// The server answers in full, and the answer never reaches the phone.
    DropResponse,
    /// The connection breaks part way through the response (headers or body).
    CutResponse,
    /// The response arrives with valid framing but a shortened body (its
    /// `Content-Length` rewritten to match).
    TruncateResponse,
    /// The request reaches the server twice, on two connections (one after the
    /// other or both at once); the phone gets one of the two answers.
    Duplicate,
}

impl Fault {
    /// Every fault, in a fixed order (the index into [`FaultCounts`]).
    pub const ALL: [Fault; 8] = [
        Fault::Pass,
        Fault::Delay,
        Fault::CutRequest,
        Fault::CutAfterRequest,
        Fault::DropResponse,
        Fault::CutResponse,
        Fault::TruncateResponse,
        Fault::Duplicate,
    ];

    fn index(self) -> usize {
        Self::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }

    /// A short stable name, for printed figures.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Pass => "pass",
            Fault::Delay => "delay",
            Fault::CutRequest => "cut_request",
            Fault::CutAfterRequest => "cut_after_request",
            Fault::DropResponse => "drop_response",
            Fault::CutResponse => "cut_response",
            Fault::TruncateResponse => "truncate_response",
            Fault::Duplicate => "duplicate",
        }
    }
}

/// How often each fault is chosen, and how long delays last.
#[derive(Clone, Debug)]
pub struct FaultPlan {
    /// Relative weight of each fault, in [`Fault::ALL`] order.
    pub weights: [u32; 8],
    /// The longest delay a [`Fault::Delay`] adds in each direction.
    pub max_delay: Duration,
}

impl Default for FaultPlan {
    /// Four exchanges in ten pass untouched; the rest are spread over the faults,
    /// with lost responses (drop, cut, truncate) the most common, as on a weak cell.
    fn default() -> Self {
        FaultPlan { weights: [40, 8, 8, 8, 12, 8, 8, 8], max_delay: Duration::from_millis(300) }
    }
}

/// How many exchanges met each fault, and what else the proxy saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Exchanges per fault, in [`Fault::ALL`] order.
    pub by_fault: [u64; 8],
    /// Connections that closed before a whole request arrived (the phone gave up).
    pub incomplete_requests: u64,
    /// Requests sent to the server (a duplicate counts twice).
    pub upstream_requests: u64,
    /// Exchanges where the server could not be reached or broke off.
    pub upstream_failures: u64,
}

impl FaultCounts {
    /// Exchanges that met `fault`.
    pub fn of(&self, fault: Fault) -> u64 {
        self.by_fault[fault.index()]
    }

    /// Every exchange the proxy handled.
    pub fn exchanges(&self) -> u64 {
        self.by_fault.iter().sum()
    }

    /// Exchanges hit by a fault other than [`Fault::Pass`].
    pub fn faulty(&self) -> u64 {
        self.exchanges() - self.of(Fault::Pass)
    }
}

impl fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} exchanges, {} faulty:", self.exchanges(), self.faulty())?;
        for fault in Fault::ALL {
            write!(f, " {}={}", fault.name(), self.of(fault))?;
        }
        write!(
            f,
            "; upstream requests {}, upstream failures {}, incomplete requests {}",
            self.upstream_requests, self.upstream_failures, self.incomplete_requests
        )
    }
}

#[derive(Default)]
struct Counters {
    by_fault: [AtomicU64; 8],
    incomplete_requests: AtomicU64,
    upstream_requests: AtomicU64,
    upstream_failures: AtomicU64,
}

struct Shared {
    upstream: SocketAddr,
    plan: FaultPlan,
    rng: Mutex<StdRng>,
    faulty: AtomicBool,
    counters: Counters,
}

/// A running fault-injecting proxy; it stops when dropped.
pub struct FaultProxy {
    /// Base URL phones use instead of the server's, e.g. `http://127.0.0.1:40999`.
    pub url: String,
    /// The seed its faults are drawn from.
    pub seed: u64,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// The seed named by environment variable `var`, or a fresh one; printed
/// either way so that a failing run can be replayed with `var=<seed>`.
pub fn seed_from_env(var: &str) -> u64 {
    let seed = std::env::var(var).ok().and_then(|s| s.trim().parse().ok()).unwrap_or_else(rand::random);
    println!("seed: {var}={seed}");
    seed
}

/// The number in environment variable `var`, or `default`.
pub fn size_from_env(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(default)
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` in front of the server at `upstream`
    /// (a base URL such as `http://127.0.0.1:8080`), injecting faults per `plan`
    /// from an RNG seeded with `seed`.
    pub async fn start(upstream: &str, seed: u64, plan: FaultPlan) -> FaultProxy {
        let addr: SocketAddr =
            upstream.trim_start_matches("http://").trim_end_matches('/').parse().expect("upstream is http://ip:port");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy addr"));
        let shared = Arc::new(Shared {
            upstream: addr,
            plan,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            faulty: AtomicBool::new(true),
            counters: Counters::default(),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        FaultProxy { url, seed, shared, task }
    }

    /// Turns faults on or off; off, every exchange passes (still one per connection).
    pub fn set_faulty(&self, on: bool) {
        self.shared.faulty.store(on, Ordering::SeqCst);
    }

    /// What the proxy has done so far.
    pub fn counts(&self) -> FaultCounts {
        let c = &self.shared.counters;
        let mut by_fault = [0; 8];
        for (n, a) in by_fault.iter_mut().zip(&c.by_fault) {
            *n = a.load(Ordering::SeqCst);
        }
        FaultCounts {
            by_fault,
            incomplete_requests: c.incomplete_requests.load(Ordering::SeqCst),
            upstream_requests: c.upstream_requests.load(Ordering::SeqCst),
            upstream_failures: c.upstream_failures.load(Ordering::SeqCst),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((downstream, _)) = listener.accept().await else { continue };
        // Drawn in accept order, so the sequence of faults follows the seed.
        let (fault, conn_seed) = {
            let mut rng = shared.rng.lock().unwrap_or_else(|p| p.into_inner());
            let fault = pick(&mut rng, &shared.plan.weights);
            (fault, rng.random::<u64>())
        };
        let fault = if shared.faulty.load(Ordering::SeqCst) { fault } else { Fault::Pass };
        tokio::spawn(handle(downstream, shared.clone(), fault, StdRng::seed_from_u64(conn_seed)));
    }
}

fn pick(rng: &mut StdRng, weights: &[u32; 8]) -> Fault {
    let total: u32 = weights.iter().sum();
    if total == 0 {
        return Fault::Pass;
    }
    let mut x = rng.random_range(0..total);
    for (fault, w) in Fault::ALL.iter().zip(weights) {
        if x < *w {
            return *fault;
        }
        x -= w;
    }
    Fault::Pass
}

const MAX_HEAD: usize = 64 * 1024;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads until the end of an HTTP head (`\r\n\r\n`); returns where the body starts.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Option<usize> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = r.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The head's `Content-Length`, if it has one.
fn content_length(head: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(head).lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok()).flatten()
    })
}

/// The head with any `Connection`/`Keep-Alive` header replaced by
/// `Connection: close` (and `Content-Length` set to `length`, if given).
fn rewrite_head(head: &[u8], length: Option<usize>) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let name = line.split_once(':').map(|(n, _)| n.trim().to_ascii_lowercase());
        match name.as_deref() {
            Some("connection" | "keep-alive") => continue,
            Some("content-length") if length.is_some() => continue,
            _ => {}
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    if let Some(n) = length {
        out.push_str(&format!("Content-Length: {n}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// Reads one whole request (head and `Content-Length` body) from the phone.
async fn read_request(downstream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let body_at = read_head(downstream, &mut buf).await?;
    let head = &buf[..body_at];
    let chunked = String::from_utf8_lossy(head).to_ascii_lowercase().contains("transfer-encoding: chunked");
    if chunked {
        // The phones send bodies of known length; a chunked one is not expected.
        return None;
    }
    let length = content_length(head).unwrap_or(0);
    let mut body = buf[body_at..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; (length - body.len()).min(64 * 1024)];
        let n = downstream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let mut request = rewrite_head(&buf[..body_at], None);
    request.extend_from_slice(&body);
    Some(request)
}

/// Sends `request` to the server on a fresh connection and reads its whole
/// answer (the server closes after it, the request saying `Connection: close`).
async fn round_trip(shared: &Shared, request: &[u8]) -> Option<Vec<u8>> {
    shared.counters.upstream_requests.fetch_add(1, Ordering::SeqCst);
    let exchange = async {
        let mut upstream = TcpStream::connect(shared.upstream).await?;
        upstream.write_all(request).await?;
        let mut response = Vec::new();
        upstream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    match tokio::time::timeout(UPSTREAM_TIMEOUT, exchange).await {
        Ok(Ok(response)) if !response.is_empty() => Some(response),
        _ => {
            shared.counters.upstream_failures.fetch_add(1, Ordering::SeqCst);
            None
        }
    }
}

/// The response as the phone should see it: `Connection: close`, and the body
/// cut to `keep` bytes with a matching `Content-Length` if given.
fn reframe(response: &[u8], keep: Option<usize>) -> Vec<u8> {
    let Some(body_at) = response.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) else {
        return response.to_vec();
    };
    let body = &response[body_at..];
    let body = &body[..keep.unwrap_or(body.len()).min(body.len())];
    let mut out = rewrite_head(&response[..body_at], keep.map(|_| body.len()));
    out.extend_from_slice(body);
    out
}

async fn handle(mut downstream: TcpStream, shared: Arc<Shared>, fault: Fault, mut rng: StdRng) {
    let Some(request) = read_request(&mut downstream).await else {
        shared.counters.incomplete_requests.fetch_add(1, Ordering::SeqCst);
        return;
    };
    shared.counters.by_fault[fault.index()].fetch_add(1, Ordering::SeqCst);
    let delay = |rng: &mut StdRng| {
        let max = shared.plan.max_delay.as_millis().max(1) as u64;
        Duration::from_millis(rng.random_range(0..=max))
    };
    let response = match fault {
        Fault::Pass => round_trip(&shared, &request).await.map(|r| reframe(&r, None)),
        Fault::Delay => {
            tokio::time::sleep(delay(&mut rng)).await;
            let response = round_trip(&shared, &request).await;
            tokio::time::sleep(delay(&mut rng)).await;
            response.map(|r| reframe(&r, None))
        }
        Fault::CutRequest => {
            let keep = rng.random_range(0..request.len());
            shared.counters.upstream_requests.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut upstream) = TcpStream::connect(shared.upstream).await {
                let _ = upstream.write_all(&request[..keep]).await;
                let _ = upstream.shutdown().await;
            }
            None
        }
        Fault::CutAfterRequest => {
            shared.counters.upstream_requests.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut upstream) = TcpStream::connect(shared.upstream).await {
                let _ = upstream.write_all(&request).await;
            }
            None
        }
        Fault::DropResponse => {
            let _ = round_trip(&shared, &request).await;
            None
        }
        Fault::CutResponse => round_trip(&shared, &request).await.map(|r| {
            let r = reframe(&r, None);
            let keep = rng.random_range(0..r.len());
            r[..keep].to_vec()
        }),
        Fault::TruncateResponse => round_trip(&shared, &request).await.map(|r| {
            let body = r.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |i| r.len() - i - 4);
            let keep = if body == 0 { 0 } else { rng.random_range(0..body) };
            reframe(&r, Some(keep))
        }),
        Fault::Duplicate => {
            let (first, second) = if rng.random_bool(0.5) {
                tokio::join!(round_trip(&shared, &request), round_trip(&shared, &request))
            } else {
                let first = round_trip(&shared, &request).await;
                (first, round_trip(&shared, &request).await)
            };
            let chosen = if rng.random_bool(0.5) { first } else { second };
            chosen.map(|r| reframe(&r, None))
        }
    };
    if let Some(bytes) = response {
        let _ = downstream.write_all(&bytes).await;
        let _ = downstream.flush().await;
    }
    let _ = downstream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_head_closes_the_connection_and_keeps_other_headers() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: keep-alive\r\nx-a: b\r\n\r\n";
        let out = String::from_utf8(rewrite_head(head, Some(4))).expect("utf8");
        assert_eq!(out, "HTTP/1.1 200 OK\r\nx-a: b\r\nContent-Length: 4\r\nConnection: close\r\n\r\n");
        assert_eq!(content_length(out.as_bytes()), Some(4));
    }

    #[test]
    fn a_truncated_response_keeps_valid_framing_around_a_shorter_body() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabcdef";
        let out = reframe(r, Some(2));
        assert!(
            out.ends_with(b"Content-Length: 2\r\nConnection: close\r\n\r\nab"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let plan = FaultPlan::default();
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50).map(|_| pick(&mut rng, &plan.weights)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert!(draw(7).iter().any(|f| *f != Fault::Pass));
    }
}
