//! Back-pressure for syncs: a few syncs are worked on at once (one per core),
//! a short bounded queue waits for them, and everything beyond is told at once
//! to come back later (503 `busy` with a jittered `Retry-After`) instead of
//! waiting in a queue no phone's network would sit through.
//!
//! `Retry-After` works like appointments: each refusal is given the next free
//! moment after the queue ahead and the refusals before it, spaced by the
//! measured time one sync takes per worker, with ±25 % jitter; so a storm of a
//! thousand phones is spread over about the time the server needs for them.

use crate::error::ApiError;
use rand::Rng;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// How much sync work is accepted at once.
#[derive(Clone, Debug)]
pub struct SyncLimits {
    /// Syncs worked on at once.
    pub workers: usize,
    /// Requests that may wait for a worker; more are refused.
    pub max_waiting: usize,
    /// A request is refused when the queue ahead of it would, at the measured
    /// pace, take longer than this.
    pub target_wait: Duration,
    /// No request waits longer than this for a worker: it is refused instead.
    pub max_wait: Duration,
    /// The longest `Retry-After` given.
    pub max_retry_after: Duration,
}

impl Default for SyncLimits {
    /// One worker per core (at least 2), eight waiting per worker, a 1 s
    /// target and 3 s at most in the queue, Retry-After at most 2 minutes.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2);
        Self {
            workers: cores,
            max_waiting: 8 * cores,
            target_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(3),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// What the gate has done since start (for `/healthz` and the load generator).
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SyncFigures {
    /// Syncs worked on now.
    pub working: usize,
    /// Requests waiting for a worker now.
    pub waiting: usize,
    /// Syncs started since start.
    pub started: u64,
    /// Requests refused with 503 `busy`.
    pub refused: u64,
    /// Longest time any request waited, from its arrival until a worker took it
    /// up or it was refused, in ms.
    pub max_wait_ms: u64,
    /// Sum of waits of started syncs, in ms (mean = this / started).
    pub total_wait_ms: u64,
    /// The measured time one sync holds a worker (moving average), in ms.
    pub service_ms: f64,
}

/// Admits syncs to a worker, or refuses them with a `Retry-After`.
pub struct SyncGate {
    limits: SyncLimits,
    workers: Semaphore,
    waiting: AtomicUsize,
    /// Moving average of the time a sync holds a worker, in microseconds.
    service_us: AtomicU64,
    /// The next free appointment handed to a refused request.
    next_appointment: Mutex<Instant>,
    started: AtomicU64,
    refused: AtomicU64,
    max_wait_us: AtomicU64,
    total_wait_us: AtomicU64,
}

/// A worker taken for one sync; measures how long it is held.
pub struct Worker<'a> {
    gate: &'a SyncGate,
    _permit: SemaphorePermit<'a>,
    since: Instant,
    /// How long the request waited for it, from its arrival.
    pub waited: Duration,
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        let took = self.since.elapsed().as_micros().min(u64::MAX as u128) as u64;
        // An exponential moving average over about the last 16 syncs.
        let _ = self.gate.service_us.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
            Some(if old == 0 { took } else { (old * 15 + took) / 16 })
        });
    }
}

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The sentence for a refused sync, in Chinese and English.
pub const BUSY_MESSAGE: &str = "服务器正忙，稍后会自动重试，已记录的内容不会丢失。The server is busy; the phone retries by itself and nothing recorded is lost.";

impl SyncGate {
    /// A gate with these limits.
    pub fn new(limits: SyncLimits) -> Self {
        let workers = limits.workers.max(1);
        Self {
            workers: Semaphore::new(workers),
            limits: SyncLimits { workers, ..limits },
            waiting: AtomicUsize::new(0),
            service_us: AtomicU64::new(0),
            next_appointment: Mutex::new(Instant::now()),
            started: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            max_wait_us: AtomicU64::new(0),
            total_wait_us: AtomicU64::new(0),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &SyncLimits {
        &self.limits
    }

    /// Takes a worker for a request that arrived at `arrived`: at once if one
    /// is free, after a short bounded wait if the queue is short, or refuses
    /// with [`ApiError::Busy`] carrying a `Retry-After`.
    pub async fn enter(&self, arrived: Instant) -> Result<Worker<'_>, ApiError> {
        if self.waiting.load(Ordering::Acquire) == 0
            && let Ok(permit) = self.workers.try_acquire()
        {
            return Ok(self.started(permit, arrived));
        }
        let ahead = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        let per_worker = self.service_time() / self.limits.workers as u32;
        let expected = per_worker * (ahead as u32 + 1);
        if ahead >= self.limits.max_waiting || expected > self.limits.target_wait {
            return Err(self.refuse(arrived, ahead));
        }
        let left = self.limits.max_wait.saturating_sub(arrived.elapsed());
        match tokio::time::timeout(left, self.workers.acquire()).await {
            Ok(Ok(permit)) => Ok(self.started(permit, arrived)),
            Ok(Err(_closed)) => Err(ApiError::Internal("the sync workers are closed".into())),
            Err(_late) => Err(self.refuse(arrived, self.waiting.load(Ordering::Acquire))),
        }
    }

    fn started<'a>(&'a self, permit: SemaphorePermit<'a>, arrived: Instant) -> Worker<'a> {
        let waited = arrived.elapsed();
        self.note_wait(waited);
        self.started.fetch_add(1, Ordering::Relaxed);
        self.total_wait_us.fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        Worker { gate: self, _permit: permit, since: Instant::now(), waited }
    }

    fn note_wait(&self, waited: Duration) {
        self.max_wait_us.fetch_max(waited.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// The measured time one sync holds a worker (50 ms before any was measured).
    fn service_time(&self) -> Duration {
        match self.service_us.load(Ordering::Relaxed) {
            0 => Duration::from_millis(50),
            us => Duration::from_micros(us),
        }
    }

    /// A refusal with the next appointment as its `Retry-After`.
    fn refuse(&self, arrived: Instant, queued: usize) -> ApiError {
        self.note_wait(arrived.elapsed());
        self.refused.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let per_worker = self.service_time() / self.limits.workers as u32;
        let busy = self.limits.workers - self.workers.available_permits().min(self.limits.workers);
        let queue_clears = now + per_worker * (queued + busy) as u32;
        let horizon = now + self.limits.max_retry_after;
        let at = {
            let mut next = self.next_appointment.lock().unwrap_or_else(|p| p.into_inner());
            let at = (*next).max(queue_clears).min(horizon);
            *next = (at + per_worker).min(horizon);
            at
        };
        let base = at.saturating_duration_since(now).as_secs_f64();
        let jittered = base * rand::rng().random_range(0.75..1.25);
        let max = self.limits.max_retry_after.as_secs().max(1) as f64;
        let retry_after_s = jittered.ceil().clamp(1.0, max) as u32;
        ApiError::Busy { message: BUSY_MESSAGE.into(), retry_after_s }
    }

    /// The figures now.
    pub fn figures(&self) -> SyncFigures {
        SyncFigures {
            working: self.limits.workers - self.workers.available_permits().min(self.limits.workers),
            waiting: self.waiting.load(Ordering::Relaxed),
            started: self.started.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            max_wait_ms: self.max_wait_us.load(Ordering::Relaxed) / 1000,
            total_wait_ms: self.total_wait_us.load(Ordering::Relaxed) / 1000,
            service_ms: self.service_us.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> SyncLimits {
        SyncLimits {
            workers: 1,
            max_waiting: 2,
            target_wait: Duration::from_secs(10),
            max_wait: Duration::from_millis(300),
            max_retry_after: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_with_a_retry_after_that_grows() {
        let gate = SyncGate::new(tiny());
        let _working = gate.enter(Instant::now()).await.expect("a free worker");
        let (a, b) = (gate.enter(Instant::now()), gate.enter(Instant::now()));
        tokio::pin!(a, b);
        // Two wait in the queue ...
        assert!(futures_util::poll!(a.as_mut()).is_pending());
        assert!(futures_util::poll!(b.as_mut()).is_pending());
        // ... and the rest are refused at once, each told to come back later than the one before.
        let mut retries = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            match gate.enter(Instant::now()).await {
                Err(ApiError::Busy { retry_after_s, .. }) => retries.push(retry_after_s),
                _ => panic!("expected busy"),
            }
            assert!(t.elapsed() < Duration::from_millis(50));
        }
        let first: u32 = retries[..20].iter().sum();
        let last: u32 = retries[180..].iter().sum();
        assert!(last > first, "Retry-After grows with the refusals: {retries:?}");
        assert_eq!(gate.figures().refused, 200);
    }

    #[tokio::test]
    async fn a_request_waits_no_longer_than_the_bound() {
        let gate = SyncGate::new(tiny());
        let _working = gate.enter(Instant::now()).await.expect("a free worker");
        let t = Instant::now();
        let r = gate.enter(Instant::now()).await;
        assert!(matches!(r, Err(ApiError::Busy { .. })));
        assert!(t.elapsed() >= Duration::from_millis(300) && t.elapsed() < Duration::from_secs(2));
    }
}
