//! Phones syncing through a network that cuts, truncates, delays, duplicates
//! and drops requests and responses, with edits between a failed request and
//! its retry: nothing is lost and nothing is duplicated.
//!
//! The phones take turns, so a run replays exactly from its seed
//! (`GRIDSYNC_PROXY_SEED`); `GRIDSYNC_FAULTY_EXCHANGES` sets the run's length.

use gridsync_shared::Role;
use gridsync_tests::chaos::{Worker, assert_no_problems, audit_store, check_converged, check_ledgers};
use gridsync_tests::proxy::{Fault, FaultPlan, FaultProxy, seed_from_env, size_from_env};
use gridsync_tests::server::CITY;
use gridsync_tests::{Phone, TestServer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

/// A phone signed in directly (sign-in is not what is tested) that then syncs through `proxy`.
async fn phone_behind(server: &TestServer, proxy: &FaultProxy, username: &str) -> Worker {
    let direct = server.phone_for(username).await;
    let registration = direct.replica.identity().cloned().expect("registered");
    Worker::new(username, Phone::registered(&proxy.url, registration).expect("phone"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_behind_a_faulty_network_lose_nothing_and_duplicate_nothing() {
    let exchanges = size_from_env("GRIDSYNC_FAULTY_EXCHANGES", 300);
    let seed = seed_from_env("GRIDSYNC_PROXY_SEED");
    let started = Instant::now();
    let server = TestServer::start().await;
    let (g1, g2) = (server.grid("g1"), server.grid("g2"));
    let community = g1.parent().expect("community");
    let proxy = FaultProxy::start(&server.url, seed, FaultPlan::default()).await;
    let mut workers = Vec::new();
    for (role, territory) in
        [(Role::FieldStaff, &g1), (Role::FieldStaff, &g1), (Role::FieldStaff, &g2), (Role::Supervisor, &community)]
    {
        let username = server.person(role, territory);
        workers.push(phone_behind(&server, &proxy, &username).await);
    }

    // Turns: a phone makes a few edits (often to the record whose push just
    // failed), then tries one exchange through the faulty network.
    let mut rng = StdRng::seed_from_u64(seed);
    let mut failed = 0;
    for _ in 0..exchanges {
        let w = &mut workers[rng.random_range(0..4)];
        for _ in 0..rng.random_range(0..=3) {
            w.random_edit(&mut rng);
        }
        if w.exchange().await.is_err() {
            failed += 1;
        }
    }
    let counts = proxy.counts();

    // Then the network heals: everyone pushes what waits, then pulls everything.
    proxy.set_faulty(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut problems = Vec::new();
    for _ in 0..2 {
        for w in &mut workers {
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
    println!("faulty network: {counts}");
    println!(
        "faulty network: {exchanges} exchanges tried, {failed} failed at the phone; {made} changes made, \
         {acknowledged} acknowledged, {rejections} refused; {} records, {} changes on the server; {:.1} s",
        audit.docs,
        audit.changes,
        started.elapsed().as_secs_f64()
    );

    problems.extend(audit.problems);
    let refs: Vec<&Worker> = workers.iter().collect();
    problems.extend(check_ledgers(&docs, &refs));
    for w in &workers {
        problems.extend(check_converged(&docs, server.store(), w));
    }
    assert!(counts.faulty() > exchanges as u64 / 4, "the proxy injected too few faults to test anything: {counts}");
    for fault in Fault::ALL {
        assert!(exchanges < 200 || counts.of(fault) > 0, "no exchange met {}: {counts}", fault.name());
    }
    assert_no_problems(&format!("behind a faulty network (seed {seed})"), &problems);
}
