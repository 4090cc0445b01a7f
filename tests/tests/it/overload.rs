//! Back-pressure: many phones at once against a server with one worker and a
//! tiny queue get quick 503s with `Retry-After`, back off with jitter, and all
//! converge with nothing lost.

use gridsync_server::Limits;
use gridsync_server::backpressure::SyncLimits;
use gridsync_tests::phone::{Backoff, PhoneError};
use gridsync_tests::{Phone, TestServer, assert_converged};
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn tiny_queue() -> Limits {
    Limits {
        sync: SyncLimits {
            workers: 1,
            max_waiting: 2,
            target_wait: Duration::from_millis(200),
            max_wait: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(4),
        },
        ..Limits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_phones_gets_quick_503s_with_retry_after_backs_off_and_converges_with_nothing_lost() {
    let server = TestServer::start_with(tiny_queue()).await;
    let grids: Vec<_> = (1..=3).map(|g| server.grid(&format!("g{g}"))).collect();
    let mut phones = Vec::new();
    for i in 0..30 {
        phones.push(server.phone_in(&grids[i % grids.len()]).await);
    }
    let mut recorded = HashSet::new();
    for (i, phone) in phones.iter_mut().enumerate() {
        for k in 0..10 {
            recorded.insert(phone.record_visit(&format!("手机{i}的第{k}次走访")));
        }
    }

    // Everyone at once, each sending its request once: the excess is refused at once.
    let mut storm = tokio::task::JoinSet::new();
    for mut phone in phones {
        storm.spawn(async move {
            let request = phone.replica.build_request();
            let sent = Instant::now();
            let result = phone.post_sync(&request).await;
            let took = sent.elapsed();
            if let Ok(bytes) = &result {
                let now = phone.clock + 1;
                phone.replica.apply_response(bytes, now).expect("apply");
            }
            (phone, took, result.map(|_| ()))
        });
    }
    let (mut phones, mut served, mut refused) = (Vec::new(), 0, Vec::new());
    while let Some(joined) = storm.join_next().await {
        let (phone, took, result) = joined.expect("phone task");
        match result {
            Ok(()) => served += 1,
            Err(PhoneError::Busy { status: 503, retry_after_s, body }) => {
                assert!(retry_after_s >= 1, "Retry-After is at least a second");
                assert!(body.contains("busy") && body.contains("服务器正忙"), "a clear busy body: {body}");
                refused.push((took, retry_after_s));
            }
            Err(e) => panic!("only back-pressure may refuse a sync: {e}"),
        }
        phones.push(phone);
    }
    refused.sort();
    println!(
        "storm of 30: {served} served, {} refused; refusal after {:?} (median) .. {:?} (max); Retry-After {:?}",
        refused.len(),
        refused.get(refused.len() / 2).map(|r| r.0),
        refused.last().map(|r| r.0),
        refused.iter().map(|r| r.1).collect::<Vec<_>>()
    );
    assert!(!refused.is_empty(), "one worker and a queue of two cannot take 30 at once");
    assert!(served >= 1, "the first ones are served");
    // The bound on waiting is 1 s; most refusals come at once (a generous bound for a loaded machine).
    assert!(refused.iter().all(|r| r.0 < Duration::from_secs(3)), "refusals are quick: {refused:?}");
    // (That Retry-After grows with the refusals is the gate's own unit test.)

    // Now every phone syncs as a phone does: backing off as told, until its work is acknowledged ...
    let mut round = tokio::task::JoinSet::new();
    for mut phone in phones {
        round.spawn(async move {
            phone.sync().await.expect("a sync that honours Retry-After gets through");
            phone
        });
    }
    let mut phones: Vec<Phone> = Vec::new();
    while let Some(p) = round.join_next().await {
        phones.push(p.expect("phone task"));
    }
    // ... and once more, to take in what the others pushed after it.
    let mut round = tokio::task::JoinSet::new();
    for mut phone in phones {
        round.spawn(async move {
            phone.sync().await.expect("pull");
            phone
        });
    }
    let mut phones: Vec<Phone> = Vec::new();
    while let Some(p) = round.join_next().await {
        phones.push(p.expect("phone task"));
    }
    let busy: u64 = phones.iter().map(|p| p.pressure.busy).sum();
    let waited: Duration = phones.iter().map(|p| p.pressure.waited).sum();
    println!("while converging: {busy} more 503s, {waited:?} spent backing off in all");

    let on_server: HashSet<_> = grids.iter().flat_map(|g| server.doc_ids(g)).collect();
    assert_eq!(on_server, recorded, "every visit recorded on every phone is on the server, and nothing else");
    for grid in &grids {
        let of_grid: Vec<&Phone> = phones.iter().filter(|p| p.grid() == *grid).collect();
        assert_converged(&server, &of_grid, grid);
    }
    assert!(phones.iter().all(|p| p.replica.pending_changes() == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_will_not_wait_sees_the_503_and_one_that_waits_gets_through() {
    let server = TestServer::start_with(Limits {
        sync: SyncLimits {
            workers: 1,
            max_waiting: 0,
            target_wait: Duration::ZERO,
            max_wait: Duration::ZERO,
            max_retry_after: Duration::from_secs(1),
        },
        ..Limits::default()
    })
    .await;
    let grid = server.grid("g1");
    let mut phones = Vec::new();
    for _ in 0..8 {
        let mut phone = server.phone_in(&grid).await;
        phone.backoff = Backoff::never();
        for k in 0..5 {
            phone.record_visit(&format!("不等待{k}"));
        }
        phones.push(phone);
    }
    // Eight at once on one worker with no queue: some are refused and say so.
    let mut set = tokio::task::JoinSet::new();
    for mut phone in phones {
        set.spawn(async move {
            let r = phone.sync_once().await.map(|_| ());
            (phone, r)
        });
    }
    let mut phones = Vec::new();
    let mut refused = 0;
    while let Some(joined) = set.join_next().await {
        let (phone, r) = joined.expect("task");
        match r {
            Ok(()) => {}
            Err(PhoneError::Busy { status: 503, .. }) => refused += 1,
            Err(e) => panic!("only back-pressure may refuse: {e}"),
        }
        phones.push(phone);
    }
    println!("{refused} of 8 refused when not waiting");
    assert!(refused > 0, "one worker, no queue, eight at once");
    assert_eq!(phones.iter().map(|p| p.pressure.busy).sum::<u64>(), refused, "each refusal is counted");
    // The same phones, now waiting as told, all get through.
    let mut set = tokio::task::JoinSet::new();
    for mut phone in phones {
        phone.backoff = Backoff::default();
        set.spawn(async move { phone.sync().await.map(|_| ()) });
    }
    while let Some(joined) = set.join_next().await {
        joined.expect("task").expect("a phone that waits as told gets through");
    }
    assert_eq!(server.doc_ids(&grid).len(), 40);
}
