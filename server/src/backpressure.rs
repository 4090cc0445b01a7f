//! Back-pressure for syncs: a few syncs are worked on at once (one per core),
//! a short bounded queue waits for them, and everything beyond is told at once
//! to come back later (503 `busy` with a jittered `Retry-After`) instead of
//! waiting in a queue no phone's network would sit through.
//!
//! The wait ahead is predicted from what is queued: a sync's cost is learned
//! as a fixed part plus a part per KiB of request (a poll costs milliseconds, a
//! day's hundred visit logs a few hundred), so a queue of pushes is not mistaken
//! for a queue of polls. `Retry-After` works like appointments: each refusal
//! is given the next free moment after the queue ahead and the refusals before
//! it, each booking its own predicted cost, with ±25 % jitter; so a storm of a
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
    /// One worker per core (at least 2), sixteen waiting per worker, a 2 s
    /// target and 4 s at most in the queue (under the 5 s any phone should
    /// wait), Retry-After at most 2 minutes.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2);
        Self {
            workers: cores,
            max_waiting: 16 * cores,
            target_wait: Duration::from_secs(2),
            max_wait: Duration::from_secs(4),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl SyncLimits {
    /// For a store across the network (PostgreSQL): a sync spends much of its
    /// time waiting on the database, not on a core, so four workers per core
    /// keep the cores busy (and give the store's group commit more to gather).
    pub fn for_networked_store() -> Self {
        let local = Self::default();
        Self { workers: local.workers * 4, ..local }
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
    /// The learned cost of a sync: its fixed part, in ms ...
    pub cost_base_ms: f64,
    /// ... and its part per KiB of request body, in ms.
    pub cost_per_kib_ms: f64,
}

/// Admits syncs to a worker, or refuses them with a `Retry-After`.
pub struct SyncGate {
    limits: SyncLimits,
    workers: Semaphore,
    waiting: AtomicUsize,
    /// Predicted work of the requests waiting, and of those being worked on, in µs.
    queued_us: AtomicU64,
    working_us: AtomicU64,
    /// Learned cost: fixed part (from small requests) and part per KiB, in µs (moving averages).
    base_us: AtomicU64,
    per_kib_us: AtomicU64,
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
    bytes: usize,
    predicted_us: u64,
    /// How long the request waited for it, from its arrival.
    pub waited: Duration,
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        self.gate.working_us.fetch_sub(self.predicted_us, Ordering::AcqRel);
        self.gate.learn(self.bytes, self.since.elapsed());
    }
}

/// A request counted in the queue (and its predicted work) until dropped.
struct Waiting<'a> {
    gate: &'a SyncGate,
    predicted_us: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.gate.waiting.fetch_sub(1, Ordering::AcqRel);
        self.gate.queued_us.fetch_sub(self.predicted_us, Ordering::AcqRel);
    }
}

/// Requests below this size teach the fixed part of the cost; larger ones the part per KiB.
const SMALL_REQUEST: usize = 2048;
/// Before anything was measured: 5 ms, plus 5 ms per KiB.
const FIRST_BASE_US: u64 = 5_000;
const FIRST_PER_KIB_US: u64 = 5_000;

/// An exponential moving average over about the last 16 samples.
fn ewma(cell: &AtomicU64, sample: u64) {
    let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| Some((old * 15 + sample) / 16));
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
            queued_us: AtomicU64::new(0),
            working_us: AtomicU64::new(0),
            base_us: AtomicU64::new(FIRST_BASE_US),
            per_kib_us: AtomicU64::new(FIRST_PER_KIB_US),
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

    /// Takes a worker for a request of `bytes` bytes that arrived at
    /// `arrived`: at once if one is free, after a short bounded wait if the
    /// work queued ahead is short, or refuses with [`ApiError::Busy`] carrying
    /// a `Retry-After`.
    pub async fn enter(&self, arrived: Instant, bytes: usize) -> Result<Worker<'_>, ApiError> {
        let predicted_us = self.predict_us(bytes);
        if self.waiting.load(Ordering::Acquire) == 0
            && let Ok(permit) = self.workers.try_acquire()
        {
            return Ok(self.started(permit, arrived, bytes, predicted_us));
        }
        let ahead = self.waiting.fetch_add(1, Ordering::AcqRel);
        let ahead_us = self.queued_us.fetch_add(predicted_us, Ordering::AcqRel);
        let waiting = Waiting { gate: self, predicted_us };
        let expected = self.wait_for_us(ahead_us);
        if ahead >= self.limits.max_waiting || expected > self.limits.target_wait {
            drop(waiting);
            return Err(self.refuse(arrived, predicted_us));
        }
        let left = self.limits.max_wait.saturating_sub(arrived.elapsed());
        let acquired = tokio::time::timeout(left, self.workers.acquire()).await;
        drop(waiting);
        match acquired {
            Ok(Ok(permit)) => Ok(self.started(permit, arrived, bytes, predicted_us)),
            Ok(Err(_closed)) => Err(ApiError::Internal("the sync workers are closed".into())),
            Err(_late) => Err(self.refuse(arrived, predicted_us)),
        }
    }

    /// How long work of `queued_us` waiting ahead takes the workers, with half
    /// of what they are working on now still to do.
    fn wait_for_us(&self, queued_us: u64) -> Duration {
        let working = self.working_us.load(Ordering::Acquire) / 2;
        Duration::from_micros((queued_us + working) / self.limits.workers as u64)
    }

    fn predict_us(&self, bytes: usize) -> u64 {
        let base = self.base_us.load(Ordering::Relaxed);
        let per_kib = self.per_kib_us.load(Ordering::Relaxed);
        base + per_kib * bytes as u64 / 1024
    }

    fn learn(&self, bytes: usize, took: Duration) {
        let took = took.as_micros().min(u64::MAX as u128) as u64;
        if bytes < SMALL_REQUEST {
            ewma(&self.base_us, took);
        } else {
            let beyond = took.saturating_sub(self.base_us.load(Ordering::Relaxed));
            ewma(&self.per_kib_us, beyond * 1024 / bytes as u64);
        }
    }

    fn started<'a>(
        &'a self,
        permit: SemaphorePermit<'a>,
        arrived: Instant,
        bytes: usize,
        predicted_us: u64,
    ) -> Worker<'a> {
        let waited = arrived.elapsed();
        self.note_wait(waited);
        self.started.fetch_add(1, Ordering::Relaxed);
        self.total_wait_us.fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        self.working_us.fetch_add(predicted_us, Ordering::AcqRel);
        Worker { gate: self, _permit: permit, since: Instant::now(), bytes, predicted_us, waited }
    }

    fn note_wait(&self, waited: Duration) {
        self.max_wait_us.fetch_max(waited.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// A refusal with the next appointment as its `Retry-After`; the
    /// appointment books this request's predicted cost.
    fn refuse(&self, arrived: Instant, predicted_us: u64) -> ApiError {
        self.note_wait(arrived.elapsed());
        self.refused.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let queue_clears = now + self.wait_for_us(self.queued_us.load(Ordering::Acquire));
        let booked = Duration::from_micros(predicted_us / self.limits.workers as u64);
        let horizon = now + self.limits.max_retry_after;
        let at = {
            let mut next = self.next_appointment.lock().unwrap_or_else(|p| p.into_inner());
            let at = (*next).max(queue_clears).min(horizon);
            *next = (at + booked).min(horizon);
            at
        };
        // Whole seconds, rounded to the nearest rather than up: a phone back a
        // little early finds room in the queue, one back late leaves a worker idle.
        let base = at.saturating_duration_since(now).as_secs_f64();
        let jittered = base * rand::rng().random_range(0.75..1.25);
        let max = self.limits.max_retry_after.as_secs().max(1) as f64;
        let retry_after_s = jittered.round().clamp(1.0, max) as u32;
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
            cost_base_ms: self.base_us.load(Ordering::Relaxed) as f64 / 1000.0,
            cost_per_kib_ms: self.per_kib_us.load(Ordering::Relaxed) as f64 / 1000.0,
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
        let _working = gate.enter(Instant::now(), 100 * 1024).await.expect("a free worker");
        let (a, b) = (gate.enter(Instant::now(), 100 * 1024), gate.enter(Instant::now(), 100 * 1024));
        tokio::pin!(a, b);
        // Two wait in the queue ...
        assert!(futures_util::poll!(a.as_mut()).is_pending());
        assert!(futures_util::poll!(b.as_mut()).is_pending());
        // ... and the rest are refused at once, each told to come back later than the one before.
        let mut retries = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            match gate.enter(Instant::now(), 100 * 1024).await {
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
        let _working = gate.enter(Instant::now(), 100 * 1024).await.expect("a free worker");
        let t = Instant::now();
        let r = gate.enter(Instant::now(), 100 * 1024).await;
        assert!(matches!(r, Err(ApiError::Busy { .. })));
        assert!(t.elapsed() >= Duration::from_millis(300) && t.elapsed() < Duration::from_secs(2));
    }
}
