//! A watchdog for long randomized tests: should a test run far past its
//! expected time (a hang somewhere), it says where the test was and ends the
//! test process with a failure, instead of letting CI wait out its timeout.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Ends the process if not dropped within its limit; [`Watchdog::phase`] names
/// the step the test is in, for the message.
pub struct Watchdog {
    shared: Arc<(Mutex<State>, std::sync::Condvar)>,
}

struct State {
    phase: String,
    disarmed: bool,
}

impl Watchdog {
    /// Arms a watchdog for the test `test`: if it is still armed after
    /// `limit`, the test process prints the test's last phase and exits with
    /// status 101 (a failed test), the server processes it started killed and
    /// its exit handlers run (the throwaway PostgreSQL is stopped). `GRIDSYNC_WATCHDOG_S` overrides the limit.
    pub fn arm(test: &str, limit: Duration) -> Watchdog {
        let limit =
            std::env::var("GRIDSYNC_WATCHDOG_S").ok().and_then(|s| s.parse().ok()).map_or(limit, Duration::from_secs);
        let shared =
            Arc::new((Mutex::new(State { phase: "starting".into(), disarmed: false }), std::sync::Condvar::new()));
        let watched = shared.clone();
        let test = test.to_string();
        std::thread::spawn(move || {
            let (state, cv) = &*watched;
            let deadline = Instant::now() + limit;
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            while !s.disarmed {
                let now = Instant::now();
                if now >= deadline {
                    // Straight to stderr: the test harness would keep `eprintln!` in its capture, lost at exit.
                    let _ = writeln!(
                        std::io::stderr(),
                        "\nWATCHDOG: test {test} still running after {} s (a hang?); it was at: {}. \
                         Ending the test process.",
                        limit.as_secs(),
                        s.phase
                    );
                    // Exit handlers that hang (a lock a hung thread holds) must not keep it alive:
                    // an abort then, and the throwaway PostgreSQL's watcher cleans up.
                    std::thread::spawn(|| {
                        std::thread::sleep(Duration::from_secs(20));
                        std::process::abort();
                    });
                    // `exit` runs no destructors: the servers it started would outlive it.
                    crate::process::kill_running_servers();
                    std::process::exit(101);
                }
                s = cv.wait_timeout(s, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
            }
        });
        Watchdog { shared }
    }

    /// Names the step the test is in now.
    pub fn phase(&self, phase: impl Into<String>) {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner()).phase = phase.into();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner()).disarmed = true;
        self.shared.1.notify_all();
    }
}
