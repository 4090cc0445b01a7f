//! Two gridsync servers on one PostgreSQL database (issue 15): phones signed
//! in to either one see each other's work, and a case edited through both at
//! once converges. The database is a throwaway one started for the test.

use gridsync_server::Limits;
use gridsync_server::store::PgStore;
use gridsync_server::store::postgres::scratch::ScratchPostgres;
use gridsync_shared::{Record, Role};
use gridsync_tests::{Phone, TestServer, assert_converged};
use std::sync::Arc;

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
    let (_pg, url) = tokio::task::spawn_blocking(|| {
        let pg = ScratchPostgres::start().expect("a throwaway PostgreSQL (needed: this test is not skipped)");
        let url = pg.create_database().expect("a database");
        (pg, url)
    })
    .await
    .expect("join");
    let one = TestServer::start_on(open(url.clone()).await, Limits::default(), None).await;
    let two = TestServer::start_on(open(url).await, Limits::default(), None).await;
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
