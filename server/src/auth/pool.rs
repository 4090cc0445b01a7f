//! Password hashing on a small bounded pool. Each argon2 verification holds
//! about 19 MB for its duration, so a flood of sign-ins must not run them all
//! at once: at most `workers` run (on the blocking threads), at most `queue`
//! more wait briefly, and the rest are told at once to retry (503 `Busy` with
//! `Retry-After`). Memory stays bounded and the other cores stay free for syncs.

use crate::error::ApiError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The pool's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashPoolLimits {
    /// Hashings at once.
    pub workers: usize,
    /// Attempts that may wait for a worker; beyond them, 503 at once.
    pub queue: usize,
    /// The longest an attempt waits for a worker before it gets 503.
    pub max_wait: Duration,
}

impl Default for HashPoolLimits {
    /// Half the cores (at least one), so a flood of sign-ins leaves the other
    /// half to syncs; eight waiting per worker, for two seconds at most.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let workers = cores.div_ceil(2).max(1);
        Self { workers, queue: 8 * workers, max_wait: Duration::from_secs(2) }
    }
}

impl HashPoolLimits {
    /// The defaults, changed by `GRIDSYNC_HASH_WORKERS` and `GRIDSYNC_HASH_QUEUE` where set.
    pub fn from_env() -> Self {
        let d = Self::default();
        let read = |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse::<usize>().ok());
        Self {
            workers: read("GRIDSYNC_HASH_WORKERS").map_or(d.workers, |n| n.max(1)),
            queue: read("GRIDSYNC_HASH_QUEUE").unwrap_or(d.queue),
            max_wait: d.max_wait,
        }
    }
}

/// A bounded pool for password hashing and verification.
pub struct HashPool {
    limits: HashPoolLimits,
    /// Workers plus queue: who may be in the pool at all.
    admitted: Arc<Semaphore>,
    /// Workers: who may hash now.
    running: Arc<Semaphore>,
}

fn busy() -> ApiError {
    ApiError::Busy {
        message: "服务器正忙，请稍后再试登录 (too many sign-ins at once)".into(), retry_after_s: 1
    }
}

impl HashPool {
    /// A pool of this size.
    pub fn new(limits: HashPoolLimits) -> Self {
        Self {
            limits,
            admitted: Arc::new(Semaphore::new(limits.workers + limits.queue)),
            running: Arc::new(Semaphore::new(limits.workers)),
        }
    }

    /// The process's pool, sized from the environment on first use: hashing
    /// competes for the machine's cores and memory, which all servers in a
    /// process share.
    pub fn shared() -> &'static HashPool {
        static POOL: std::sync::OnceLock<HashPool> = std::sync::OnceLock::new();
        POOL.get_or_init(|| HashPool::new(HashPoolLimits::from_env()))
    }

    /// Its size.
    pub fn limits(&self) -> HashPoolLimits {
        self.limits
    }

    /// Runs `work` (hashing) on a blocking thread once a worker is free; 503
    /// `Busy` at once if the queue is full, or after `max_wait` without a worker.
    /// The permits travel with the work, so a client that hangs up does not
    /// free a worker whose hashing still runs.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let admitted = self.admitted.clone().try_acquire_owned().map_err(|_| busy())?;
        let running = match tokio::time::timeout(self.limits.max_wait, self.running.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => return Err(busy()),
        };
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            work()
        })
        .await
        .map_err(|e| ApiError::Internal(format!("hashing worker failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_the_workers_and_the_queue_attempts_are_refused_at_once() {
        let pool = Arc::new(HashPool::new(HashPoolLimits { workers: 1, queue: 1, max_wait: Duration::from_secs(5) }));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(std::sync::Mutex::new(wait));
        let running = {
            let (pool, wait) = (pool.clone(), wait.clone());
            tokio::spawn(async move { pool.run(move || wait.lock().map(|w| w.recv()).is_ok()).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let queued = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| true).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        let refused = pool.run(|| true).await;
        assert!(matches!(refused, Err(ApiError::Busy { .. })), "the third attempt is refused");
        assert!(started.elapsed() < Duration::from_secs(1), "at once");
        release.send(()).expect("release");
        assert!(running.await.expect("join").expect("ran"));
        assert!(queued.await.expect("join").expect("the queued attempt ran"));
    }
}
