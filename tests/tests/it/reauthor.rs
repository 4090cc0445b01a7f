//! A phone that signs in again after its device was revoked keeps its unsynced
//! work: what the old device wrote and the server never acknowledged is written
//! again under the new device's actor and pushed, not refused and rolled back.

use gridsync_server::admin::revoke_device;
use gridsync_shared::Record;
use gridsync_shared::records::read_record;
use gridsync_tests::{PASSWORD, TestServer, assert_converged};

fn device_of(phone: &gridsync_tests::Phone) -> gridsync_shared::DeviceId {
    phone.replica.identity().expect("signed in").device
}

#[tokio::test]
async fn work_left_unsynced_by_a_revoked_device_is_pushed_under_the_new_device_after_signing_in_again() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let username = server.person(gridsync_shared::Role::FieldStaff, &grid);
    let mut phone = server.phone_for(&username).await;
    let case = phone.report_case("小区路灯损坏");
    phone.sync().await.expect("first sync");

    // Offline: a follow-up and a new visit; the push's response is lost.
    phone.follow_up(case, "已联系物业");
    let first_visit = phone.record_visit("上午走访独居老人");
    let request = phone.replica.build_request();
    phone.post_sync(&request).await.expect("reaches the server");
    // More work, never sent.
    phone.follow_up(case, "物业已派人维修");
    let second_visit = phone.record_visit("下午回访，路灯已修好");

    // The device is revoked meanwhile (say, by an administrator by mistake).
    revoke_device(server.store(), None, device_of(&phone), "cli").expect("revoke");
    let refused = phone.sync().await.expect_err("a revoked device cannot sync");
    assert!(matches!(refused, gridsync_tests::PhoneError::Status { status: 401, .. }), "{refused}");

    let old_device = device_of(&phone);
    phone.sign_in_again(&username, PASSWORD).await.expect("sign in again");
    assert_ne!(device_of(&phone), old_device);
    let reports = phone.sync().await.expect("sync under the new device");
    assert!(reports.iter().all(|r| r.rejected.is_empty()), "nothing refused: {reports:?}");
    assert!(reports.iter().any(|r| r.reauthored > 0), "the old device's unsynced work was written again");
    assert_eq!(phone.replica.pending_changes(), 0);

    let doc = server.document(case).expect("case on the server");
    let Ok(Record::Case(c)) = read_record(&doc) else { panic!("a case") };
    let notes: Vec<&str> = c.follow_ups.iter().map(|f| f.note.as_str()).collect();
    assert_eq!(notes.len(), 2, "each follow-up once: {notes:?}");
    assert!(notes.contains(&"已联系物业") && notes.contains(&"物业已派人维修"), "{notes:?}");
    assert_eq!(server.doc_ids(&grid).len(), 3, "the case and two visits, each once");
    for visit in [first_visit, second_visit] {
        assert!(server.document(visit).is_some(), "visit {visit} reached the server");
    }

    let mut other = server.phone_in(&grid).await;
    other.sync().await.expect("other");
    phone.sync().await.expect("again");
    assert_converged(&server, &[&phone, &other], &grid);
}

#[tokio::test]
async fn a_record_never_synced_by_a_revoked_device_is_created_under_the_new_device() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let username = server.person(gridsync_shared::Role::FieldStaff, &grid);
    let mut phone = server.phone_for(&username).await;
    let case = phone.report_case("楼道堆物");
    phone.follow_up(case, "已劝导住户清理");
    revoke_device(server.store(), None, device_of(&phone), "cli").expect("revoke");
    phone.sign_in_again(&username, PASSWORD).await.expect("sign in again");
    let reports = phone.sync().await.expect("sync");
    assert!(reports.iter().all(|r| r.rejected.is_empty()), "{reports:?}");
    let doc = server.document(case).expect("the case reached the server");
    let Ok(Record::Case(c)) = read_record(&doc) else { panic!("a case") };
    assert_eq!(c.fields.title, "楼道堆物");
    assert_eq!(c.follow_ups.len(), 1);
    let mut other = server.phone_in(&grid).await;
    other.sync().await.expect("other");
    assert_converged(&server, &[&phone, &other], &grid);
}

#[tokio::test]
async fn signing_in_again_on_the_same_phone_replaces_its_device_and_keeps_its_unsynced_work() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let username = server.person(gridsync_shared::Role::FieldStaff, &grid);
    let mut phone = server.phone_for(&username).await;
    let visit = phone.record_visit("签到前写的走访");
    let old_device = device_of(&phone);
    phone.sign_in_again(&username, PASSWORD).await.expect("sign in again");
    let devices: Vec<_> =
        server.store().devices().expect("devices").into_iter().filter(|d| d.revoked_at.is_none()).collect();
    assert_eq!(devices.len(), 1, "the new sign-in replaced the phone's previous device");
    assert_ne!(devices[0].id, old_device);
    let reports = phone.sync().await.expect("sync");
    assert!(reports.iter().all(|r| r.rejected.is_empty()), "{reports:?}");
    assert!(server.document(visit).is_some(), "the visit written before signing in again reached the server");
}
