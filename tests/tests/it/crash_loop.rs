//! The real `gridsync-server` binary killed with SIGKILL at random moments —
//! mid-request, mid-flush, idle — and restarted on the same store (its data
//! directory, or its PostgreSQL database), while phones running the real
//! client core edit and sync without pause. On PostgreSQL the phones then
//! move to another server process on the same database, cursors and all.
//!
//! CI runs 60 kills; `GRIDSYNC_KILLS=200` runs the long version
//! (`GRIDSYNC_CRASH_SEED` sets the seed of the edits and kill delays; the
//! interleaving with the server's timing differs from run to run).

use gridsync_server::store::SledStore;
use gridsync_tests::chaos::{Worker, assert_no_problems, audit_store, check_converged, check_ledgers};
use gridsync_tests::process::{COMMUNITY, CliPerson, ServerProcess, city, free_port};
use gridsync_tests::proxy::{seed_from_env, size_from_env};
use gridsync_tests::stores::open_store;
use gridsync_tests::{Backend, Phone, Watchdog};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PASSWORD: &str = "crash-loop-password";

/// Two field staff sharing grid g1, one each in g2 and g3, and a supervisor over the community.
const PEOPLE: [CliPerson<'static>; 5] = [
    CliPerson { username: "li", password: PASSWORD, role: "field_staff", territory: "g1" },
    CliPerson { username: "wang", password: PASSWORD, role: "field_staff", territory: "g1" },
    CliPerson { username: "zhang", password: PASSWORD, role: "field_staff", territory: "g2" },
    CliPerson { username: "liu", password: PASSWORD, role: "field_staff", territory: "g3" },
    CliPerson { username: "zhuren", password: PASSWORD, role: "supervisor", territory: "" },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_changes_survive_random_sigkills_and_no_edit_is_lost() {
    let kills = size_from_env("GRIDSYNC_KILLS", 60);
    let seed = seed_from_env("GRIDSYNC_CRASH_SEED");
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let backend = Backend::from_env();
    // 15 s alone on this 2-core machine; far more means a hang, named by its phase.
    let watchdog = Watchdog::arm("crash_loop::acknowledged_changes_survive_random_sigkills", Duration::from_secs(600));

    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    city(&data, &["g1", "g2", "g3"], &PEOPLE).await;
    let mut server = ServerProcess::start(&data, free_port(), &[]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let in_flight = Arc::new(AtomicU64::new(0));
    let requests_sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for person in PEOPLE {
        let phone = Phone::sign_in(&server.url, person.username, PASSWORD).await.expect("sign in");
        let mut worker = Worker::new(person.username, phone);
        let mut rng = StdRng::seed_from_u64(rng.random());
        let (stop, in_flight, requests_sent) = (stop.clone(), in_flight.clone(), requests_sent.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if rng.random_bool(0.02) {
                    worker = worker.reopen_app();
                }
                for _ in 0..rng.random_range(1..=3) {
                    worker.random_edit(&mut rng);
                }
                in_flight.fetch_add(1, Ordering::SeqCst);
                requests_sent.fetch_add(1, Ordering::SeqCst);
                let result = worker.exchange().await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let pause = if result.is_ok() { rng.random_range(0..20) } else { rng.random_range(20..80) };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            worker
        }));
    }

    // Kill at random moments. Half the kills come at a random time after the
    // server came up (requests starting, being judged, flushed, answered, or
    // idle gaps); the other half come a few milliseconds after a request was
    // sent, where a request is most often being judged, flushed or answered.
    let mut mid_request = 0;
    for k in 0..kills {
        watchdog.phase(format!("kill {k} of {kills}: waiting for a moment to kill"));
        if rng.random_bool(0.5) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..400))).await;
        } else {
            // The phones send a request every few tens of ms; a minute without one
            // means every phone is stuck waiting on a live server.
            let (sent, since) = (requests_sent.load(Ordering::SeqCst), Instant::now());
            while requests_sent.load(Ordering::SeqCst) == sent {
                assert!(
                    since.elapsed() < Duration::from_secs(60),
                    "no phone sent a request for 60 s ({} in flight): the server stopped answering",
                    in_flight.load(Ordering::SeqCst)
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(Duration::from_micros(rng.random_range(0..20_000))).await;
        }
        if in_flight.load(Ordering::SeqCst) > 0 {
            mid_request += 1;
        }
        watchdog.phase(format!("kill {k} of {kills}: killing and restarting the server"));
        server = server.restart().await;
    }
    watchdog.phase("waiting for the phones to stop");
    stop.store(true, Ordering::SeqCst);
    let mut workers = Vec::new();
    for task in tasks {
        workers.push(task.await.expect("worker task"));
    }
    watchdog.phase("the quiet round and the audit");

    // A quiet round: everyone pushes what waits, then everyone pulls everything.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut problems = Vec::new();
    for _ in 0..2 {
        for w in &mut workers {
            if let Err(e) = w.settle(deadline).await {
                problems.push(e);
            }
        }
    }
    server.kill().await;

    let store = open_store(backend, &data);
    let root = COMMUNITY.parse().expect("community path");
    let (audit, docs) = audit_store(store.as_ref(), &root);
    let requests: u64 = workers.iter().map(|w| w.ledger.exchanges_ok + w.ledger.exchanges_failed).sum();
    let failed: u64 = workers.iter().map(|w| w.ledger.exchanges_failed).sum();
    let made: usize = workers.iter().map(|w| w.ledger.changes_made()).sum();
    let acknowledged: usize = workers.iter().map(|w| w.ledger.changes_acknowledged()).sum();
    let rejections: usize = workers.iter().map(|w| w.ledger.rejections.len()).sum();
    println!(
        "crash loop: {kills} SIGKILLs ({mid_request} with a sync request in flight), {requests} sync requests \
         ({failed} failed), {made} changes made, {acknowledged} acknowledged, {rejections} refused; \
         store ({backend:?}): {} records, {} changes, {} feed entries; {:.1} s",
        audit.docs,
        audit.changes,
        audit.feed_entries,
        started.elapsed().as_secs_f64()
    );

    problems.extend(audit.problems);
    let refs: Vec<&Worker> = workers.iter().collect();
    problems.extend(check_ledgers(&docs, &refs));
    for w in &workers {
        problems.extend(check_converged(&docs, store.as_ref(), w));
    }
    assert!(kills == 0 || acknowledged > 0, "the phones got nothing acknowledged: the loop tested nothing");
    // A killed server breaks its connections at once: a request left unanswered was kept by a live one.
    let unanswered: u64 = workers.iter().map(|w| w.ledger.unanswered).sum();
    assert_eq!(unanswered, 0, "{unanswered} sync requests got no answer from a running server");
    assert_no_problems(&format!("after {kills} SIGKILLs (seed {seed})"), &problems);
    if backend == Backend::Postgres {
        drop(store);
        watchdog.phase("the phones moving to another server process");
        continue_on_another_process(&dir, &data, &mut workers).await;
    }
}

/// The killed server's phones move to another server process on the same
/// PostgreSQL database (its own data directory and port) and go on from their
/// cursors: a phone already at the head receives nothing on its first sync
/// there (its cursor was understood, not started over), a new visit reaches
/// every phone that should see it, and all converge with the database.
async fn continue_on_another_process(dir: &tempfile::TempDir, data: &std::path::Path, workers: &mut [Worker]) {
    let other = ServerProcess::start_beside(data, &dir.path().join("other"), free_port()).await;
    for w in workers.iter_mut() {
        w.phone.move_to(&other.url);
        let report = w.exchange().await.unwrap_or_else(|e| panic!("{}: first sync on another process: {e}", w.name));
        assert_eq!(report.received, 0, "{}: its cursor from the killed process was not continued", w.name);
    }
    let visit = workers[0].phone.record_visit("换了一台服务器后的走访");
    let deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..2 {
        for w in workers.iter_mut() {
            w.settle(deadline).await.unwrap_or_else(|e| panic!("on another process: {e}"));
        }
    }
    let store = open_store(Backend::Postgres, data);
    let (audit, docs) = audit_store(store.as_ref(), &COMMUNITY.parse().expect("community path"));
    let mut problems = audit.problems;
    assert!(docs.contains_key(&visit), "the visit pushed to the other process is in the database");
    for w in workers.iter() {
        problems.extend(check_converged(&docs, store.as_ref(), w));
    }
    assert_no_problems("after moving to another server process on the same database", &problems);
    other.kill().await;
}

/// Set in the child process of the test below: the store directory to commit into before aborting.
const CHILD_ENV: &str = "GRIDSYNC_CRASH_CHILD_STORE";

/// One visit-log document committed to `store` as a push would commit it; returns its feed position.
fn commit_one(store: &SledStore) -> u64 {
    use automerge::transaction::Transactable;
    use gridsync_server::store::{DocWrite, Store};
    let mut doc = automerge::Automerge::new();
    let mut tx = doc.transaction();
    tx.put(automerge::ROOT, "type", "visit_log").expect("put");
    tx.commit();
    let changes = doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
    let write = DocWrite {
        doc: gridsync_shared::DocId(uuid::Uuid::now_v7()),
        grid: format!("{COMMUNITY}/g1").parse().expect("grid"),
        summary: gridsync_shared::records::RecordSummary {
            kind: gridsync_shared::RecordKind::VisitLog,
            household: None,
            at: 0,
        },
        heads: doc.get_heads(),
        bytes: doc.save(),
        device: gridsync_shared::DeviceId(uuid::Uuid::new_v4()),
        changes,
        photos: Vec::new(),
        row: None,
    };
    store.commit_doc(write, gridsync_tests::now_ms()).expect("commit")
}

/// A position of the change feed that a reader (another phone's pull) has
/// seen must never go to a different entry, or a phone whose cursor passed it
/// never receives that entry. Here the process dies after a commit was read
/// but before it was flushed, as SIGKILL can do between one phone's commit
/// and its flush while another phone pulls; the crash loop found this after
/// ~1,000 kills (a supervisor's phone missing a record, another it could not load).
#[test]
fn a_feed_position_seen_before_a_crash_is_never_handed_out_again() {
    use gridsync_server::store::Store;
    let root = COMMUNITY.parse().expect("community path");
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let store = SledStore::open(&dir).expect("open store");
        commit_one(&store);
        let seen = store.feed_after(&root, 0, usize::MAX).expect("feed").last().map_or(0, |e| e.seq);
        println!("seen={seen}");
        std::process::abort();
    }
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    // A first, flushed commit, so that the crash loses only what follows it.
    {
        let store = SledStore::open(&data).expect("open store");
        commit_one(&store);
        store.flush().expect("flush");
    }
    // This test's name as the harness knows it: its module path within the test binary.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let name = format!("{module}::a_feed_position_seen_before_a_crash_is_never_handed_out_again");
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", name.as_str(), "--nocapture"])
        .env(CHILD_ENV, &data)
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("seen="))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("the child did not report: {stdout}"));
    assert!(!out.status.success(), "the child was meant to abort");

    let store = SledStore::open(&data).expect("reopen after the crash");
    let next = commit_one(&store);
    assert!(
        next > seen,
        "feed position {seen} was read before the crash; after it, position {next} went to another record, \
         so a phone whose cursor had reached {seen} never receives that record"
    );
}
