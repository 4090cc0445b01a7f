//! Group commit: the commits that callers of one process make while another
//! of its commits is running are gathered and run as the next transaction
//! together, so that one slot of the feed counter and one WAL flush serve
//! them all. The caller that finds no group running leads the next one; a
//! caller alone commits at once, with no added wait.

use super::super::StoreError;
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

/// Callers' jobs of type `J`, gathered into groups run one at a time.
pub(super) struct Gather<J> {
    state: Mutex<State<J>>,
    finished: Condvar,
    /// At most this much work (as [`Gather::submit`]'s `size` counts it) per group, beyond its first job.
    max_size: usize,
}

struct State<J> {
    /// Jobs waiting for a group, in arrival order, with their tickets and sizes.
    queue: Vec<(u64, J, usize)>,
    /// Whether a group is running.
    leading: bool,
    /// Results of run jobs not yet collected by their callers, by ticket.
    results: HashMap<u64, Result<u64, StoreError>>,
    next_ticket: u64,
    groups: u64,
    jobs: u64,
}

/// How many groups ran and how many jobs they held, since the store opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCounts {
    /// Transactions run for commits.
    pub groups: u64,
    /// Commits those transactions held.
    pub commits: u64,
}

impl<J> Gather<J> {
    /// A gatherer whose groups hold at most `max_size` of work beyond their first job.
    pub fn new(max_size: usize) -> Self {
        Self {
            state: Mutex::new(State {
                queue: Vec::new(),
                leading: false,
                results: HashMap::new(),
                next_ticket: 0,
                groups: 0,
                jobs: 0,
            }),
            finished: Condvar::new(),
            max_size,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<J>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `job` (of `size` units of work) in the next group and returns its
    /// result. `run` gets a group's jobs in arrival order and returns one
    /// result per job, in the same order; it is called by whichever caller
    /// leads that group, so every caller must pass an equivalent `run`.
    /// Blocks: call from a plain thread or tokio's blocking context.
    pub fn submit(
        &self,
        job: J,
        size: usize,
        run: impl Fn(Vec<J>) -> Vec<Result<u64, StoreError>>,
    ) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push((ticket, job, size));
        loop {
            if let Some(result) = state.results.remove(&ticket) {
                return result;
            }
            if !state.leading {
                state.leading = true;
                let (tickets, jobs) = take_group(&mut state.queue, self.max_size);
                drop(state);
                // Should `run` panic, the group's callers get an error and the next group can start.
                let mut lead = Lead { gather: self, tickets, done: false };
                let results = run(jobs);
                lead.finish(results);
                state = self.lock();
                continue;
            }
            state = self.finished.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// How many groups have run and how many jobs they held.
    pub fn counts(&self) -> GroupCounts {
        let state = self.lock();
        GroupCounts { groups: state.groups, commits: state.jobs }
    }
}

/// The first queued job, and those after it while they fit in `max_size`.
fn take_group<J>(queue: &mut Vec<(u64, J, usize)>, max_size: usize) -> (Vec<u64>, Vec<J>) {
    let mut total = 0;
    let mut count = 0;
    for (_, _, size) in queue.iter() {
        if count > 0 && total + size > max_size {
            break;
        }
        total += size;
        count += 1;
    }
    queue.drain(..count).map(|(ticket, job, _)| (ticket, job)).unzip()
}

/// The running group's leader: hands out its results, or errors should it unwind.
struct Lead<'a, J> {
    gather: &'a Gather<J>,
    tickets: Vec<u64>,
    done: bool,
}

impl<J> Lead<'_, J> {
    fn finish(&mut self, results: Vec<Result<u64, StoreError>>) {
        let mut state = self.gather.lock();
        state.groups += 1;
        state.jobs += self.tickets.len() as u64;
        let mut results = results.into_iter();
        for ticket in self.tickets.drain(..) {
            let result = results
                .next()
                .unwrap_or_else(|| Err(StoreError::Engine("a group commit gave fewer results than jobs".into())));
            state.results.insert(ticket, result);
        }
        state.leading = false;
        self.done = true;
        drop(state);
        self.gather.finished.notify_all();
    }
}

impl<J> Drop for Lead<'_, J> {
    fn drop(&mut self) {
        if !self.done {
            let n = self.tickets.len();
            self.finish((0..n).map(|_| Err(StoreError::Engine("a group commit failed unexpectedly".into()))).collect());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A gatherer whose "transaction" takes 5 ms and fails the jobs named 13.
    fn slow_run(jobs: Vec<u64>) -> Vec<Result<u64, StoreError>> {
        std::thread::sleep(Duration::from_millis(5));
        jobs.into_iter().map(|j| if j == 13 { Err(StoreError::Conflict(format!("job {j}"))) } else { Ok(j) }).collect()
    }

    #[test]
    fn concurrent_jobs_share_groups_and_each_caller_gets_its_own_result() {
        let gather = Arc::new(Gather::new(64));
        let threads: Vec<_> = (0..32u64)
            .map(|j| {
                let gather = gather.clone();
                std::thread::spawn(move || gather.submit(j, 1, slow_run))
            })
            .collect();
        for (j, t) in threads.into_iter().enumerate() {
            let result = t.join().expect("no panic");
            if j == 13 {
                assert!(matches!(result, Err(StoreError::Conflict(ref m)) if m == "job 13"), "{result:?}");
            } else {
                assert_eq!(result.ok(), Some(j as u64), "caller {j} gets its own job's result");
            }
        }
        let counts = gather.counts();
        assert_eq!(counts.commits, 32);
        assert!(counts.groups < 32, "32 callers at once were gathered into fewer groups: {counts:?}");
    }

    #[test]
    fn a_caller_alone_runs_at_once_in_a_group_of_its_own() {
        let gather = Gather::new(64);
        assert_eq!(gather.submit(7, 1, slow_run).ok(), Some(7));
        assert_eq!(gather.submit(8, 1, slow_run).ok(), Some(8));
        assert_eq!(gather.counts(), GroupCounts { groups: 2, commits: 2 });
    }

    #[test]
    fn a_group_holds_no_more_than_its_size_beyond_the_first_job() {
        let mut queue: Vec<(u64, &str, usize)> = vec![(0, "a", 100), (1, "b", 3), (2, "c", 2)];
        let (tickets, _) = take_group(&mut queue, 4);
        assert_eq!(tickets, vec![0], "a first job larger than the limit still runs, alone");
        let (tickets, _) = take_group(&mut queue, 5);
        assert_eq!(tickets, vec![1, 2]);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_run_that_panics_fails_its_group_and_the_next_group_still_runs() {
        let gather = Arc::new(Gather::new(64));
        let calls = Arc::new(AtomicUsize::new(0));
        let panicking = {
            let (gather, calls) = (gather.clone(), calls.clone());
            std::thread::spawn(move || {
                gather.submit(1, 1, |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    panic!("the transaction's code panicked")
                })
            })
        };
        assert!(panicking.join().is_err(), "the leader's panic reaches the leader");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(gather.submit(2, 1, slow_run).ok(), Some(2), "a later caller leads a new group");
    }
}
