//! Phones syncing through a network that cuts, truncates, delays, duplicates
//! and drops requests and responses, with edits between a failed request and
//! its retry: nothing is lost and nothing is duplicated.
//!
//! In the first test the phones take turns, so a run replays exactly from its
//! seed (`GRIDSYNC_PROXY_SEED`); in the second they sync at the same time, so
//! pushes to one case race each other under faults. `GRIDSYNC_FAULTY_EXCHANGES`
//! sets each run's length.

use gridsync_shared::Role;
use gridsync_tests::chaos::{Worker, assert_no_problems, audit_store, check_converged, check_ledgers};
use gridsync_tests::proxy::{Fault, FaultPlan, FaultProxy, seed_from_env, size_from_env};
use gridsync_tests::server::CITY;
use gridsync_tests::{Phone, TestServer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

/// Field staff sharing grid g1, one in g2, and a supervisor over their
/// community, each syncing through a new fault-injecting proxy.
async fn team(server: &TestServer, seed: u64) -> (FaultProxy, Vec<Worker>) {
    let (g1, g2) = (server.grid("g1"), server.grid("g2"));
    let community = g1.parent().expect("community");
    let proxy = FaultProxy::start(&server.url, seed, FaultPlan::default()).await;
    let mut workers = Vec::new();
    for (role, territory) in
        [(Role::FieldStaff, &g1), (Role::FieldStaff, &g1), (Role::FieldStaff, &g2), (Role::Supervisor, &community)]
    {
        let username = server.person(role, territory);
        workers.push(phone_behind(server, &proxy, &username).await);
    }
    (proxy, workers)
}

/// Heals the network, lets everyone push what waits and pull everything, and
/// holds the server and every phone to the ledgers; prints the figures.
async fn heal_and_check(server: &TestServer, proxy: &FaultProxy, workers: &mut [Worker], what: &str, started: Instant) {
    let counts = proxy.counts();
    let failed: u64 = workers.iter().map(|w| w.ledger.exchanges_failed).sum();
    let tried: u64 = workers.iter().map(|w| w.ledger.exchanges_ok).sum::<u64>() + failed;
    proxy.set_faulty(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut problems = Vec::new();
    for _ in 0..2 {
        for w in workers.iter_mut() {
            if let Err(e) = w.settle(deadline).await {
                problems.push(e);
            }
        }
    }

    let scope = CITY.parse().expect("city");
    let (audit, docs) = audit_store(server.store(), &scope);
    let made: usize = workers.iter().map(|w| w.ledger.changes_made()).sum();
    let acknowledged: usize = workers.iter().map(|w| w.ledger.changes_acknowledged()).sum();
    let rejections: usize = workers.iter().map(|w| w.ledger.rejections.len()).sum();
    println!("{what}: {counts}");
    println!(
        "{what}: {tried} exchanges tried, {failed} failed at the phone; {made} changes made, \
         {acknowledged} acknowledged, {rejections} refused; {} records, {} changes on the server; {:.1} s",
        audit.docs,
        audit.changes,
        started.elapsed().as_secs_f64()
    );

    problems.extend(audit.problems);
    let refs: Vec<&Worker> = workers.iter().collect();
    problems.extend(check_ledgers(&docs, &refs));
    for w in workers.iter() {
        problems.extend(check_converged(&docs, server.store(), w));
    }
    assert!(counts.faulty() > tried / 4, "the proxy injected too few faults to test anything: {counts}");
    for fault in Fault::ALL {
        assert!(tried < 200 || counts.of(fault) > 0, "no exchange met {}: {counts}", fault.name());
    }
    assert_no_problems(&format!("{what} (seed {})", proxy.seed), &problems);
}

/// A phone signed in directly (sign-in is not what is tested) that then syncs through `proxy`.
async fn phone_behind(server: &TestServer, proxy: &FaultProxy, username: &str) -> Worker {
    let direct = server.phone_for(username).await;
    let registration = direct.replica.identity().cloned().expect("registered");
    Worker::new(username, Phone::registered(&proxy.url, registration).expect("phone"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_taking_turns_behind_a_faulty_network_lose_nothing_and_duplicate_nothing() {
    let exchanges = size_from_env("GRIDSYNC_FAULTY_EXCHANGES", 300);
    let seed = seed_from_env("GRIDSYNC_PROXY_SEED");
    let started = Instant::now();
    let server = TestServer::start().await;
    let (proxy, mut workers) = team(&server, seed).await;

    // Turns: a phone makes a few edits (often to the record whose push just
    // failed), then tries one exchange through the faulty network.
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..exchanges {
        let i = rng.random_range(0..4);
        if rng.random_bool(0.02) {
            let w = workers.remove(i);
            workers.insert(i, w.reopen_app());
        }
        let w = &mut workers[i];
        for _ in 0..rng.random_range(0..=3) {
            w.random_edit(&mut rng);
        }
        let _ = w.exchange().await;
    }
    heal_and_check(&server, &proxy, &mut workers, "faulty network, taking turns", started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_syncing_at_once_behind_a_faulty_network_lose_nothing_and_duplicate_nothing() {
    let exchanges = size_from_env("GRIDSYNC_FAULTY_EXCHANGES", 300);
    let seed = seed_from_env("GRIDSYNC_PROXY_SEED");
    let started = Instant::now();
    let server = TestServer::start().await;
    let (proxy, workers) = team(&server, seed).await;

    let mut tasks = Vec::new();
    for (i, mut w) in workers.into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(seed ^ (i as u64 + 1));
        let turns = exchanges / 4;
        tasks.push(tokio::spawn(async move {
            for _ in 0..turns {
                if rng.random_bool(0.02) {
                    w = w.reopen_app();
                }
                for _ in 0..rng.random_range(0..=3) {
                    w.random_edit(&mut rng);
                }
                let _ = w.exchange().await;
            }
            w
        }));
    }
    let mut workers = Vec::new();
    for task in tasks {
        workers.push(task.await.expect("phone task"));
    }
    heal_and_check(&server, &proxy, &mut workers, "faulty network, at once", started).await;
}
