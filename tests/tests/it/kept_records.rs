//! A server keeps the record each push left, to judge the next push to it
//! without reading the document again. Another server process on the same
//! store may have changed the record meanwhile: the push is still judged on
//! the record as stored, never on the one kept.

use gridsync_server::Limits;
use gridsync_server::store::{SledStore, Store};
use gridsync_shared::Role;
use gridsync_shared::records::Record;
use gridsync_tests::{Phone, TestServer};
use std::sync::Arc;

/// Syncs `phone` and returns every refusal the server gave.
async fn refusals(phone: &mut Phone) -> Vec<String> {
    let reports = phone.sync().await.expect("sync");
    reports.iter().flat_map(|r| r.rejected.iter().map(|x| format!("{x:?}"))).collect()
}

#[tokio::test]
async fn a_push_is_judged_on_the_record_as_stored_after_another_server_changed_it_not_on_the_record_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path().join("data")).expect("open store"));
    let one = TestServer::start_on(store.clone(), Limits::default(), Some(dir)).await;
    let two = TestServer::start_on(store, Limits::default(), None).await;
    let grid = one.grid("g1");
    let (creator, other) = (one.person(Role::FieldStaff, &grid), one.person(Role::FieldStaff, &grid));
    let mut a = one.phone_for(&creator).await;
    let mut b = one.phone_for(&other).await;
    let mut supervisor = two.supervisor_phone(&grid.parent().expect("a community")).await;

    // Server one keeps the case as its creator's follow-up left it.
    let case = a.report_case("楼道堆放杂物");
    assert!(refusals(&mut a).await.is_empty());
    a.follow_up(case, "已通知物业");
    assert!(refusals(&mut a).await.is_empty());

    // The supervisor retitles it through server two.
    assert!(refusals(&mut supervisor).await.is_empty());
    supervisor
        .edit(case, |e| {
            let Record::Case(c) = e.record()? else { panic!("a case") };
            let mut fields = c.fields;
            fields.title = "楼道堆放杂物（消防通道）".into();
            e.update_case(&fields)
        })
        .expect("retitle");
    assert!(refusals(&mut supervisor).await.is_empty());

    // Another grid manager, who may follow the case up but not edit its
    // fields, follows up the retitled case through server one. Judged on the
    // record server one kept (the old title), the push would look like a
    // title change by someone who may not make it.
    assert!(refusals(&mut b).await.is_empty());
    b.follow_up(case, "物业已清理");
    assert_eq!(refusals(&mut b).await, Vec::<String>::new(), "a follow-up on the case as stored is accepted");
    assert!(refusals(&mut a).await.is_empty());
    let Some(Record::Case(c)) = a.replica.record(case) else { panic!("the creator holds the case") };
    assert_eq!(c.fields.title, "楼道堆放杂物（消防通道）");
    assert_eq!(c.follow_ups.len(), 2);
}
