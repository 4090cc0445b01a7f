//! The server's edge: one accept loop for HTTP and HTTPS that caps open
//! connections and gives every connection a deadline, so that no client, slow
//! or idle, holds a socket (a file descriptor, a task, buffers) without one.
//!
//! Each connection is watched by its own task: an idle keep-alive connection
//! is closed after [`ConnectionLimits::idle_timeout`], a request head that is
//! not complete [`ConnectionLimits::header_timeout`] after its first byte closes
//! the connection (slowloris), a request body must keep up an average of
//! [`ConnectionLimits::body_min_rate`] after a grace period (slow body), and a
//! response the client stops reading is abandoned after
//! [`ConnectionLimits::send_timeout`]. Over [`ConnectionLimits::max_connections`]
//! a new connection is accepted and closed at once (see [`serve`] for why).

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use warp::Filter;

/// Deadlines and the cap on open connections. Every field has a default meant
/// for phones on weak mobile networks; tests use small values.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Open connections at most (HTTP and HTTPS together); more are closed on accept.
    pub max_connections: usize,
    /// From a request's first byte (or a TLS connection's start) until its
    /// head is complete.
    pub header_timeout: Duration,
    /// A keep-alive connection with no request in flight and no bytes moving is
    /// closed after this long.
    pub idle_timeout: Duration,
    /// A request body may start slowly for this long ...
    pub body_grace: Duration,
    /// ... and must then have arrived at this average rate, in bytes per second.
    pub body_min_rate: u64,
    /// A response that cannot be written (the client does not read) for this
    /// long is abandoned and the connection closed.
    pub send_timeout: Duration,
    /// On shutdown, connections get this long to finish their requests.
    pub shutdown_grace: Duration,
}

/// File descriptors kept free of connections for the store, the admin socket,
/// logs and the process's own needs (a sled store opens a handful).
const FD_RESERVE_MIN: u64 = 256;

/// Connections at most, whatever the file limit: each idle connection costs a
/// task, a watchdog timer and hyper's buffers (~10-20 KiB), so this bounds
/// what idle sockets can cost at a few hundred MiB.
const CONNECTIONS_CEILING: u64 = 16_384;

impl ConnectionLimits {
    /// Limits for a process allowed `fd_limit` open files: connections get all
    /// but a reserve of max(256, an eighth), at most 16,384 and at least 32.
    pub fn for_fd_limit(fd_limit: u64) -> Self {
        let reserve = FD_RESERVE_MIN.max(fd_limit / 8);
        let max = fd_limit.saturating_sub(reserve).clamp(32, CONNECTIONS_CEILING);
        Self {
            max_connections: max as usize,
            header_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(30),
            body_grace: Duration::from_secs(20),
            body_min_rate: 1024,
            send_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl Default for ConnectionLimits {
    /// Limits for this process's current file limit.
    fn default() -> Self {
        Self::for_fd_limit(fd_limit().map(|(soft, _)| soft).unwrap_or(1024))
    }
}

/// The process's open-file limit (soft, hard), where the system says.
///
/// Straight from libc (already in the build through tokio) rather than a
/// wrapper crate: two calls, on the Unix systems this server runs on.
#[cfg(unix)]
#[allow(clippy::useless_conversion)] // rlim_t is u64 on Linux and macOS, not everywhere
pub fn fd_limit() -> Option<(u64, u64)> {
    let (soft, hard) = raw_fd_limit()?;
    Some((u64::from(soft), u64::from(hard)))
}

#[cfg(unix)]
fn raw_fd_limit() -> Option<(libc::rlim_t, libc::rlim_t)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own and reads nothing else.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    ok.then_some((lim.rlim_cur, lim.rlim_max))
}

/// The process's open-file limit: unknown off Unix.
#[cfg(not(unix))]
pub fn fd_limit() -> Option<(u64, u64)> {
    None
}

/// Raises the soft open-file limit to the hard limit where the system allows
/// (an unlimited hard limit is taken as 1,048,576, and macOS refuses more
/// than its own per-process maximum, which leaves the soft limit as it was);
/// returns the soft limit now in force.
#[cfg(unix)]
#[allow(clippy::useless_conversion)] // rlim_t is u64 on Linux and macOS, not everywhere
pub fn raise_fd_limit() -> Option<u64> {
    let (soft, hard) = raw_fd_limit()?;
    let target: libc::rlim_t = if hard == libc::RLIM_INFINITY { 1 << 20 } else { hard };
    if soft >= target {
        return Some(u64::from(soft));
    }
    let lim = libc::rlimit { rlim_cur: target, rlim_max: hard };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        let e = std::io::Error::last_os_error();
        tracing::warn!(error = %e, soft = u64::from(soft), hard = u64::from(hard), "could not raise the open-file limit");
        return Some(u64::from(soft));
    }
    fd_limit().map(|(soft, _)| soft)
}

/// Raising the open-file limit: not done off Unix.
#[cfg(not(unix))]
pub fn raise_fd_limit() -> Option<u64> {
    None
}

/// Connections the kernel may hold completed but not yet accepted (capped by
/// the system's `somaxconn`, 4,096 on current Linux): a whole district
/// reconnecting at once must not overflow it, or phones' handshakes are dropped.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with a [`LISTEN_BACKLOG`]-deep accept queue
/// (`TcpListener::bind` gives 1,024).
pub fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The client's address, put into every request's extensions by [`serve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// A warp filter giving the client's address. (`warp::addr::remote()` only
/// works under `warp::serve`, which this server does not use.)
pub fn peer_addr() -> impl Filter<Extract = (Option<SocketAddr>,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<PeerAddr>().map(|p: Option<PeerAddr>| p.map(|p| p.0))
}

/// What the edge has done since start, for `/healthz` and tests.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    open: AtomicUsize,
    accepted: AtomicU64,
    refused: AtomicU64,
    closed_idle: AtomicU64,
    closed_slow_header: AtomicU64,
    closed_slow_body: AtomicU64,
    closed_not_reading: AtomicU64,
}

/// A snapshot of [`ConnectionStats`].
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ConnectionFigures {
    /// Connections open now.
    pub open: usize,
    /// Connections accepted and served since start.
    pub accepted: u64,
    /// Connections closed on accept because `max_connections` were open.
    pub refused: u64,
    /// Keep-alive connections closed after the idle timeout.
    pub closed_idle: u64,
    /// Connections closed because a request head (or TLS handshake) was too slow.
    pub closed_slow_header: u64,
    /// Requests whose body arrived too slowly.
    pub closed_slow_body: u64,
    /// Connections closed because the client stopped reading its response.
    pub closed_not_reading: u64,
}

impl ConnectionStats {
    /// The figures now.
    pub fn figures(&self) -> ConnectionFigures {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ConnectionFigures {
            open: self.open.load(Ordering::Relaxed),
            accepted: l(&self.accepted),
            refused: l(&self.refused),
            closed_idle: l(&self.closed_idle),
            closed_slow_header: l(&self.closed_slow_header),
            closed_slow_body: l(&self.closed_slow_body),
            closed_not_reading: l(&self.closed_not_reading),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// Milliseconds since the process's first use of this clock (0 means "never").
fn clock_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// What one connection's watchdog needs to know, updated by its I/O and its requests.
#[derive(Debug)]
struct ConnState {
    /// Requests whose response has not been fully handed to the connection.
    in_flight: AtomicUsize,
    /// When the connection last became idle (no request in flight).
    idle_since: AtomicU64,
    /// When the first byte of a request head arrived (0: none pending).
    head_since: AtomicU64,
    /// When a write last had to wait for the client (0: not waiting).
    write_blocked_since: AtomicU64,
}

impl ConnState {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(clock_ms()),
            head_since: AtomicU64::new(0),
            write_blocked_since: AtomicU64::new(0),
        }
    }

    fn read_progress(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.head_since.compare_exchange(0, clock_ms(), Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
    }

    fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(clock_ms(), Ordering::Release);
            self.head_since.store(0, Ordering::Release);
        }
    }

    /// Why this connection must be closed now, if it must.
    fn expired(&self, limits: &ConnectionLimits) -> Option<Expiry> {
        let now = clock_ms();
        let older = |since: u64, limit: Duration| since != 0 && now.saturating_sub(since) > limit.as_millis() as u64;
        let blocked = self.write_blocked_since.load(Ordering::Acquire);
        if older(blocked, limits.send_timeout) {
            return Some(Expiry::NotReading);
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head = self.head_since.load(Ordering::Acquire);
        if head != 0 {
            return older(head, limits.header_timeout).then_some(Expiry::SlowHeader);
        }
        older(self.idle_since.load(Ordering::Acquire), limits.idle_timeout).then_some(Expiry::Idle)
    }
}

#[derive(Clone, Copy, Debug)]
enum Expiry {
    Idle,
    SlowHeader,
    NotReading,
}

/// A TCP stream that tells its connection's watchdog when bytes move.
struct Watched {
    inner: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.read_progress();
        }
        r
    }
}

impl Watched {
    fn wrote<T>(&self, r: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        match &r {
            Poll::Pending => {
                let _ =
                    self.state.write_blocked_since.compare_exchange(0, clock_ms(), Ordering::AcqRel, Ordering::Relaxed);
            }
            Poll::Ready(_) => self.state.write_blocked_since.store(0, Ordering::Release),
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.wrote(r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body arrived too slowly (below [`ConnectionLimits::body_min_rate`]).
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body arrived too slowly ({received} bytes in {elapsed_s:.0} s); 请求数据传输过慢，请在网络较好时重试"
)]
pub struct BodyTooSlow {
    /// Bytes received before giving up.
    pub received: u64,
    /// Seconds since the body was first read.
    pub elapsed_s: f64,
}

/// A request body that fails with [`BodyTooSlow`] once its average rate since
/// it was first read falls below the minimum after the grace period. The clock
/// starts when the handler first reads it, so a request refused before its body
/// is read (no credentials) never waits for it.
pub struct TimedBody {
    inner: Incoming,
    started: Option<Instant>,
    received: u64,
    grace: Duration,
    min_rate: u64,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    stats: Arc<ConnectionStats>,
}

impl TimedBody {
    fn deadline(&self, started: Instant) -> Instant {
        let rate = self.min_rate.max(1);
        started + self.grace + Duration::from_millis(self.received.saturating_mul(1000) / rate)
    }
}

impl Body for TimedBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let started = *self.started.get_or_insert_with(Instant::now);
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = self.deadline(started);
                let timer = match self.timer.as_mut() {
                    Some(t) => {
                        if t.deadline() != deadline.into() {
                            t.as_mut().reset(deadline.into());
                        }
                        t
                    }
                    None => self.timer.insert(Box::pin(tokio::time::sleep_until(deadline.into()))),
                };
                if timer.as_mut().poll(cx).is_ready() {
                    bump(&self.stats.closed_slow_body);
                    let e = BodyTooSlow { received: self.received, elapsed_s: started.elapsed().as_secs_f64() };
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that tells the watchdog when the response is done with
/// (written, or dropped with its connection).
pub struct TrackedBody<B> {
    inner: B,
    state: Arc<ConnState>,
}

impl<B> Drop for TrackedBody<B> {
    fn drop(&mut self) {
        self.state.request_finished();
    }
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Counts a request as in flight until its response body is done with, even
/// if the handler's future is dropped before it answers.
struct InFlight(Option<Arc<ConnState>>);

impl InFlight {
    fn into_body<B>(mut self, inner: B) -> TrackedBody<B> {
        let state = self.0.take().unwrap_or_else(|| Arc::new(ConnState::new()));
        TrackedBody { inner, state }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.request_finished();
        }
    }
}

/// The service each connection runs: the routes, given requests whose bodies
/// are timed and that carry the client's address.
pub trait Routes:
    tower_service::Service<
        warp::http::Request<TimedBody>,
        Response = warp::reply::Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S> Routes for S where
    S: tower_service::Service<
            warp::http::Request<TimedBody>,
            Response = warp::reply::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// Serves `routes` on `listener` (over TLS with `tls`) until `shutdown`
/// completes, then lets open connections finish for `shutdown_grace`.
///
/// Over the cap a new connection is accepted and closed at once rather than
/// answered 503: that costs no read, no write and no TLS handshake (a flood is
/// exactly when those cost most), it frees the kernel's accept queue instead of
/// leaving connections to time out there, and both clients treat a dropped
/// connection as "network unavailable" and back off with jitter. A 503 would
/// need the request read first (else the unread bytes turn the close into a
/// reset that may swallow the 503) and, under TLS, a full handshake.
pub async fn serve<S: Routes>(
    listener: tokio::net::TcpListener,
    tls: Option<TlsAcceptor>,
    routes: S,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limits = Arc::new(limits);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(true);
    let builder = Arc::new(builder);
    let mut last_refusal_log: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (or another transient failure):
                    // wait a little instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            bump(&stats.refused);
            drop(tcp);
            if last_refusal_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                last_refusal_log = Some(Instant::now());
                tracing::warn!(max = limits.max_connections, "connection cap reached: closing new connections");
            }
            continue;
        };
        bump(&stats.accepted);
        let _ = tcp.set_nodelay(true);
        let (limits, stats, builder, tls, routes) =
            (limits.clone(), stats.clone(), builder.clone(), tls.clone(), routes.clone());
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            stats.open.fetch_add(1, Ordering::Relaxed);
            let state = Arc::new(ConnState::new());
            let io = Watched { inner: tcp, state: state.clone() };
            let service =
                ConnService { routes, peer, state: state.clone(), limits: limits.clone(), stats: stats.clone() };
            match tls {
                None => watch(builder.serve_connection(TokioIo::new(io), service), &state, &limits, &stats, stop).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await;
                    match handshake {
                        Ok(Ok(tls)) => {
                            state.idle_since.store(clock_ms(), Ordering::Release);
                            let conn = builder.serve_connection(TokioIo::new(tls), service);
                            watch(conn, &state, &limits, &stats, stop).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => {
                            bump(&stats.closed_slow_header);
                            tracing::debug!(%peer, "TLS handshake too slow");
                        }
                    }
                }
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it ends: wait for all of them, a while.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.shutdown_grace, slots.acquire_many(all)).await;
}

/// Runs one connection until it ends, closing it when its watchdog says so.
async fn watch<C, E>(
    conn: C,
    state: &ConnState,
    limits: &ConnectionLimits,
    stats: &ConnectionStats,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    C: Future<Output = Result<(), E>> + GracefulShutdown,
    E: std::fmt::Display,
{
    tokio::pin!(conn);
    let shortest = limits.header_timeout.min(limits.idle_timeout).min(limits.send_timeout);
    let tick = (shortest / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut stopping = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep(tick) => {
                if let Some(why) = state.expired(limits) {
                    match why {
                        Expiry::Idle => bump(&stats.closed_idle),
                        Expiry::SlowHeader => bump(&stats.closed_slow_header),
                        Expiry::NotReading => bump(&stats.closed_not_reading),
                    }
                    tracing::debug!(reason = ?why, "closing connection");
                    return;
                }
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A connection future that can be asked to finish its requests and close.
trait GracefulShutdown {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> GracefulShutdown for auto::Connection<'_, I, S, TokioExecutor>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        auto::Connection::graceful_shutdown(self)
    }
}

/// Per connection: wraps each request's body, marks the request in flight, and
/// tags it with the client's address.
#[derive(Clone)]
struct ConnService<S> {
    routes: S,
    peer: SocketAddr,
    state: Arc<ConnState>,
    limits: Arc<ConnectionLimits>,
    stats: Arc<ConnectionStats>,
}

/// Names the body type of a response (warp's own is not nameable).
pub trait ResponseBody {
    /// The body type.
    type Body;
}

impl<B> ResponseBody for warp::http::Response<B> {
    type Body = B;
}

type WarpBody = <warp::reply::Response as ResponseBody>::Body;

impl<S: Routes> hyper::service::Service<warp::http::Request<Incoming>> for ConnService<S> {
    type Response = warp::http::Response<TrackedBody<WarpBody>>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: warp::http::Request<Incoming>) -> Self::Future {
        self.state.request_started();
        let in_flight = InFlight(Some(self.state.clone()));
        let mut req = req.map(|inner| TimedBody {
            inner,
            started: None,
            received: 0,
            grace: self.limits.body_grace,
            min_rate: self.limits.body_min_rate,
            timer: None,
            stats: self.stats.clone(),
        });
        req.extensions_mut().insert(PeerAddr(self.peer));
        let mut routes = self.routes.clone();
        let fut = tower_service::Service::call(&mut routes, req);
        Box::pin(async move {
            let response = fut.await?;
            Ok(response.map(|b| in_flight.into_body(b)))
        })
    }
}
