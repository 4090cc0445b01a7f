//! Two gridsync servers on one PostgreSQL database (issue 15), whatever store
//! the rest of the suite runs on: phones signed in to either one see each
//! other's work, and a case edited through both at once converges; two real
//! server processes with no load balancer, one killed mid-sync and its phones
//! moved to the other, lose nothing and converge. The database is a fresh one
//! on the test process's throwaway PostgreSQL ([`gridsync_tests::stores`]).

use gridsync_server::Limits;
use gridsync_server::store::PgStore;
use gridsync_shared::{Record, Role};
use gridsync_tests::chaos::{Worker, assert_no_problems, audit_store, check_converged, check_ledgers};
use gridsync_tests::process::{COMMUNITY, CliPerson, ServerProcess, city_on, free_port};
use gridsync_tests::proxy::seed_from_env;
use gridsync_tests::stores::{Database, open_store};
use gridsync_tests::{Backend, Phone, TestServer, assert_converged};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The PostgreSQL store at `url`, opened off the async workers (its client blocks).
async fn open(url: String) -> Arc<PgStore> {
    let store = tokio::task::spawn_blocking(move || PgStore::open(&url)).await.expect("join");
    Arc::new(store.expect("open the PostgreSQL store"))
}

/// Syncs `phone`, which breaks no rule.
async fn sync_clean(phone: &mut Phone) {
    let reports = phone.sync().await.expect("sync");
    assert!(reports.iter().all(|r| r.rejected.is_empty()), "nothing here breaks a rule: {reports:?}");
}

// Multi-threaded: the harness reads the store from the test's task, which the
// PostgreSQL store allows only where the worker can be handed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_on_two_servers_sharing_one_database_converge_on_a_case_edited_through_both() {
    let database = Database::create();
    let one = TestServer::start_on(open(database.url.clone()).await, Limits::default(), None).await;
    let two = TestServer::start_on(open(database.url.clone()).await, Limits::default(), None).await;
    let grid = one.grid("g1");
    let (user_a, user_b) = (one.person(Role::FieldStaff, &grid), one.person(Role::FieldStaff, &grid));
    let mut a = one.phone_for(&user_a).await;
    let mut b = two.phone_for(&user_b).await;

    let case = a.report_case("楼道堆放杂物引发邻里纠纷");
    a.sync().await.expect("a syncs with server one");
    b.sync().await.expect("b syncs with server two");
    assert!(b.replica.record(case).is_some(), "b hears through server two of the case pushed to server one");

    a.follow_up(case, "已与三楼住户沟通");
    b.follow_up(case, "四楼住户反映消防通道被堵");
    sync_clean(&mut a).await;
    sync_clean(&mut b).await;
    sync_clean(&mut a).await;
    let phones: [&Phone; 2] = [&a, &b];
    assert_converged(&one, &phones, &grid);
    assert_converged(&two, &phones, &grid);
    let Some(Record::Case(merged)) = a.replica.record(case) else { panic!("case missing") };
    assert_eq!(merged.follow_ups.len(), 2, "both follow-ups survive, one pushed through each server");
}

const PASSWORD: &str = "two-processes-password";

/// Two grid managers in each of g1, g2 and g3 (one of each grid on each
/// process) and a supervisor over the community; g3's edit a case through
/// both processes at once first.
const PEOPLE: [CliPerson<'static>; 7] = [
    CliPerson { username: "li", password: PASSWORD, role: "field_staff", territory: "g1" },
    CliPerson { username: "wang", password: PASSWORD, role: "field_staff", territory: "g1" },
    CliPerson { username: "zhang", password: PASSWORD, role: "field_staff", territory: "g2" },
    CliPerson { username: "liu", password: PASSWORD, role: "field_staff", territory: "g2" },
    CliPerson { username: "zhuren", password: PASSWORD, role: "supervisor", territory: "" },
    CliPerson { username: "zhao", password: PASSWORD, role: "field_staff", territory: "g3" },
    CliPerson { username: "qian", password: PASSWORD, role: "field_staff", territory: "g3" },
];

/// Who starts on process A (the one killed); the rest are on B.
const ON_A: [&str; 3] = ["li", "zhang", "zhao"];

/// Syncs until nothing waits, through whichever process the phone is on.
async fn sync_through(phone: &mut Phone, who: &str) {
    let reports = phone.sync().await.unwrap_or_else(|e| panic!("{who} syncs: {e}"));
    assert!(reports.iter().all(|r| r.rejected.is_empty()), "{who}: nothing here breaks a rule: {reports:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_database_serve_phones_on_both_and_one_killed_mid_sync_hands_its_phones_to_the_other()
 {
    let seed = seed_from_env("GRIDSYNC_TWO_PROCESSES_SEED");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tmp");
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    city_on(Backend::Postgres, &data_a, &["g1", "g2", "g3"], &PEOPLE).await;
    // Two processes, each with its own data directory (admin socket) and port, one database.
    let a = ServerProcess::start_on(Backend::Postgres, &data_a, free_port(), &[]).await;
    let b = ServerProcess::start_beside(&data_a, &data_b, free_port()).await;

    // A case edited through both processes at once, by g3's grid managers.
    let sign_in = |who: &'static str| {
        let url = if ON_A.contains(&who) { a.url.clone() } else { b.url.clone() };
        async move { Worker::new(who, Phone::sign_in(&url, who, PASSWORD).await.expect("sign in")) }
    };
    let (mut zhao, mut qian) = (sign_in("zhao").await, sign_in("qian").await);
    let case = zhao.phone.report_case("井盖缺失，夜间有行人跌倒风险");
    sync_through(&mut zhao.phone, "zhao").await;
    sync_through(&mut qian.phone, "qian").await;
    assert!(qian.phone.replica.record(case).is_some(), "qian hears through B of the case pushed to A");
    zhao.phone.follow_up(case, "已设置警示锥");
    qian.phone.follow_up(case, "已报市政维修");
    let (za, qb) = tokio::join!(zhao.phone.sync(), qian.phone.sync());
    za.expect("zhao's follow-up through A");
    qb.expect("qian's follow-up through B");
    sync_through(&mut zhao.phone, "zhao").await;
    sync_through(&mut qian.phone, "qian").await;
    for w in [&zhao, &qian] {
        let Some(Record::Case(c)) = w.phone.replica.record(case) else { panic!("{}: case missing", w.name) };
        assert_eq!(c.follow_ups.len(), 2, "{}: both follow-ups, one through each process", w.name);
    }
    let heads = |w: &Worker| w.phone.replica.document(case).map(|d| d.get_heads());
    assert_eq!(heads(&zhao), heads(&qian), "the case edited through both processes converged");
    // Into their ledgers, which the checks below hold the database to.
    zhao.ledger.created.insert(case);
    *zhao.ledger.follow_ups.entry(case).or_default() += 1;
    *qian.ledger.follow_ups.entry(case).or_default() += 1;

    // Phones spread across both processes, editing and syncing without pause.
    let a_down = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (a_sent, a_in_flight) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let moved = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for person in &PEOPLE[..5] {
        workers.push(sign_in(person.username).await);
    }
    workers.extend([zhao, qian]);
    let mut tasks = Vec::new();
    for mut worker in workers {
        let on_a = ON_A.contains(&worker.name.as_str());
        let mut rng = StdRng::seed_from_u64(rng.random());
        let (b_url, a_down, stop) = (b.url.clone(), a_down.clone(), stop.clone());
        let (a_sent, a_in_flight, moved) = (a_sent.clone(), a_in_flight.clone(), moved.clone());
        tasks.push(tokio::spawn(async move {
            let mut on_a = on_a;
            while !stop.load(Ordering::SeqCst) {
                if on_a && a_down.load(Ordering::SeqCst) {
                    // Its server is gone: the phone is pointed at the other one.
                    worker.phone.move_to(&b_url);
                    on_a = false;
                    moved.fetch_add(1, Ordering::SeqCst);
                }
                for _ in 0..rng.random_range(1..=3) {
                    worker.random_edit(&mut rng);
                }
                if on_a {
                    a_sent.fetch_add(1, Ordering::SeqCst);
                    a_in_flight.fetch_add(1, Ordering::SeqCst);
                }
                let result = worker.exchange().await;
                if on_a {
                    a_in_flight.fetch_sub(1, Ordering::SeqCst);
                }
                let pause = if result.is_ok() { rng.random_range(0..20) } else { rng.random_range(20..80) };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            worker
        }));
    }

    // After a while, A is killed a few milliseconds after one of its phones sent a request.
    tokio::time::sleep(Duration::from_millis(rng.random_range(1_000..2_000))).await;
    let sent = a_sent.load(Ordering::SeqCst);
    while a_sent.load(Ordering::SeqCst) == sent {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_micros(rng.random_range(0..20_000))).await;
    let mid_sync = a_in_flight.load(Ordering::SeqCst) > 0;
    a.kill().await;
    a_down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut workers = Vec::new();
    for task in tasks {
        workers.push(task.await.expect("worker task"));
    }
    assert_eq!(moved.load(Ordering::SeqCst), ON_A.len() as u64, "every phone of A moved to B");

    // A quiet round through B: everyone pushes what waits, then pulls everything.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut problems = Vec::new();
    for _ in 0..2 {
        for w in &mut workers {
            if let Err(e) = w.settle(deadline).await {
                problems.push(e);
            }
        }
    }
    b.kill().await;

    let store = open_store(Backend::Postgres, &data_a);
    let (audit, docs) = audit_store(store.as_ref(), &COMMUNITY.parse().expect("community path"));
    let acknowledged: usize = workers.iter().map(|w| w.ledger.changes_acknowledged()).sum();
    println!(
        "two processes: A killed {} a sync; {} records, {} changes, {} feed entries in the database; \
         {acknowledged} changes acknowledged (seed {seed})",
        if mid_sync { "during" } else { "between" },
        audit.docs,
        audit.changes,
        audit.feed_entries
    );
    problems.extend(audit.problems);
    for w in &workers {
        problems.extend(check_converged(&docs, store.as_ref(), w));
    }
    let refs: Vec<&Worker> = workers.iter().collect();
    problems.extend(check_ledgers(&docs, &refs));
    assert!(acknowledged > 0, "the phones got nothing acknowledged: the test tested nothing");
    assert_no_problems(&format!("two processes, one killed (seed {seed})"), &problems);
}
