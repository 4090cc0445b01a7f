//! Duplicates: a record form submitted twice makes one record, on the phone
//! and on the server, however the submits and syncs interleave; and a record
//! made by mistake is voided (作废) with a reason, by its creator or by a
//! supervisor or administrator over its grid, never by another grid manager;
//! a voided record stays readable but counts in no report.

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc, ScalarValue};
use gridsync_shared::protocol::{DocPush, PushOutcome};
use gridsync_shared::records::{NewRecord, PromiseFields, Record, VisitFields, VisitKind};
use gridsync_shared::rules::RejectReason;
use gridsync_shared::workflow::CaseStatus;
use gridsync_shared::{DocId, Role};
use gridsync_tests::server::CITY;
use gridsync_tests::{Phone, TestServer, now_ms};
use serde_json::Value;

fn visit(notes: &str, at: i64) -> NewRecord {
    NewRecord::VisitLog(VisitFields {
        visited_at: at,
        kind: Some(VisitKind::Routine),
        notes: notes.into(),
        ..VisitFields::default()
    })
}

fn new_id(phone: &Phone) -> gridsync_shared::DocId {
    gridsync_client::Replica::<gridsync_client::MemoryStorage>::new_id(phone.clock)
}

#[tokio::test]
async fn a_form_submitted_twice_offline_makes_one_record_on_the_phone_and_the_server() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let id = new_id(&phone);
    let at = phone.clock;
    phone.create_with_id(id, &visit("走访陈桂英家", at)).expect("first tap");
    phone.create_with_id(id, &visit("走访陈桂英家", at)).expect("second tap");
    phone.sync().await.expect("sync");
    assert_eq!(phone.replica.records().count(), 1);
    assert_eq!(server.doc_ids(&grid), vec![id], "the server holds one record");
    assert_eq!(phone.replica.rejections().count(), 0);
}

#[tokio::test]
async fn a_form_submitted_again_after_a_lost_response_or_a_sync_updates_the_same_record() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let id = new_id(&phone);
    let at = phone.clock;
    phone.create_with_id(id, &visit("走访", at)).expect("submit");
    phone.sync_losing_response().await.expect("the server stored it; the answer was lost");
    assert_eq!(server.doc_ids(&grid), vec![id]);
    phone.create_with_id(id, &visit("走访", at)).expect("submitted again, nothing new");
    phone.create_with_id(id, &visit("走访，老人身体良好", at)).expect("and once more with more text");
    phone.sync().await.expect("sync");
    assert_eq!(phone.replica.rejections().count(), 0, "no 'already exists' refusal");
    phone.create_with_id(id, &visit("走访，老人身体良好", at)).expect("after the sync");
    phone.sync().await.expect("sync");
    assert_eq!(server.doc_ids(&grid), vec![id], "still one record on the server");
    assert_eq!(phone.replica.records().count(), 1);
    let Some(Record::VisitLog(v)) = phone.replica.record(id) else { panic!("visit") };
    assert_eq!(v.fields.notes, "走访，老人身体良好");
    let other = server.phone_in(&grid).await;
    let mut other = other;
    other.sync().await.expect("a second phone syncs");
    assert_eq!(other.replica.records().count(), 1);
    gridsync_tests::phone::assert_converged(&server, &[&phone, &other], &grid);
}

fn promise(due_at: i64) -> NewRecord {
    NewRecord::Promise(PromiseFields { content: "一周内修复路灯".into(), household: None, due_at })
}

/// The server's copy of a record, read.
fn on_server(server: &TestServer, id: DocId) -> Record {
    gridsync_shared::records::read_record(&server.document(id).expect("on the server")).expect("reads")
}

#[tokio::test]
async fn a_record_is_voided_by_its_creator_or_a_supervisor_and_the_void_reaches_everyone() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut staff = server.phone_in(&grid).await;
    let mut supervisor = server.supervisor_phone(&grid.parent().expect("community")).await;
    let mine = staff.report_case("楼道堆放杂物");
    let twice = staff.report_case("楼道堆放杂物");
    staff.sync().await.expect("sync");
    staff.edit(twice, |e| e.void_record("重复上报")).expect("the creator voids");
    staff.sync().await.expect("sync");
    supervisor.sync().await.expect("sync");
    supervisor.edit(mine, |e| e.void_record("经核实不属于本网格事项")).expect("a supervisor voids");
    supervisor.sync().await.expect("sync");
    staff.sync().await.expect("sync");
    assert_eq!(staff.replica.rejections().count() + supervisor.replica.rejections().count(), 0);
    for (id, by, reason) in [
        (twice, staff.replica.identity().expect("id").person, "重复上报"),
        (mine, supervisor.replica.identity().expect("id").person, "经核实不属于本网格事项"),
    ] {
        let record = on_server(&server, id);
        let void = record.voided().expect("voided on the server");
        assert_eq!((void.by, void.reason.as_str()), (by, reason));
        assert!(staff.replica.record(id).expect("still on the phone").voided().is_some(), "and on the phone");
    }
    gridsync_tests::phone::assert_converged(&server, &[&staff, &supervisor], &grid);
}

#[tokio::test]
async fn another_grid_manager_voiding_a_record_is_refused_by_the_server() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut author = server.phone_in(&grid).await;
    let mut other = server.phone_in(&grid).await;
    let id = author.report_case("占道经营");
    author.sync().await.expect("sync");
    other.sync().await.expect("sync");
    let refused = other.edit(id, |e| e.void_record("我觉得重复了"));
    assert!(refused.is_err(), "the phone already refuses it");

    // A tampered phone writes the void entry itself and pushes it.
    let identity = other.replica.identity().expect("signed in").clone();
    let doc = other.replica.document(id).expect("doc");
    let mut forged = doc.fork();
    forged.set_actor(gridsync_shared::ids::actor_from_hex(&identity.actor).expect("actor"));
    forged
        .transact::<_, _, automerge::AutomergeError>(|tx| {
            let list = match tx.get(ROOT, "voids")? {
                Some((_, list)) => list,
                None => tx.put_object(ROOT, "voids", ObjType::List)?,
            };
            let entry = tx.insert_object(&list, 0, ObjType::Map)?;
            tx.put(&entry, "id", uuid::Uuid::new_v4().to_string())?;
            tx.put(&entry, "by", identity.person.to_string())?;
            tx.put(&entry, "at", ScalarValue::Timestamp(now_ms()))?;
            tx.put(&entry, "reason", "我觉得重复了")?;
            Ok(())
        })
        .expect("forge");
    let changes = forged.get_changes(&doc.get_heads()).iter().map(|c| c.raw_bytes().to_vec()).collect();
    let response = other.push_raw(vec![DocPush { doc: id, changes }]).await.expect("push");
    match &response.results[0].outcome {
        PushOutcome::Rejected(r) => assert_eq!(r.reason, RejectReason::NotPermitted, "{r:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(on_server(&server, id).voided().is_none(), "nothing was stored");
}

/// The report's total figures for `grid`'s community, as an administrator downloads them.
async fn report(server: &TestServer, token: &str, from: i64, to: i64) -> Value {
    let url = format!("{}/v1/admin/report?from={from}&to={to}", server.url);
    let resp = reqwest::Client::new().get(url).bearer_auth(token).send().await.expect("report");
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.expect("json");
    report["total"]["figures"].clone()
}

#[tokio::test]
async fn voiding_the_duplicates_puts_the_reports_rates_right() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut staff = server.phone_in(&grid).await;
    let admin = server.person(Role::Administrator, &CITY.parse().expect("city"));
    let admin = server.phone_for(&admin).await;
    let from = now_ms() - 3_600_000;
    // Two cases, one resolved; two promises already due, one kept; each of the
    // open ones saved twice (before saves were idempotent).
    let resolved = staff.report_case("路灯不亮");
    staff.advance(resolved, CaseStatus::Resolved).expect("resolve");
    let open = staff.report_case("井盖缺失");
    let open_twice = staff.report_case("井盖缺失");
    let due = now_ms() - 60_000;
    let kept = staff.create(&promise(due)).expect("promise");
    staff.edit(kept, |e| e.record_promise_outcome(true, "已修复")).expect("kept");
    let _not_kept = staff.create(&promise(due)).expect("promise");
    let not_kept_twice = staff.create(&promise(due)).expect("promise");
    // And one promise not yet due: counts as made, not as kept or not kept.
    staff.create(&promise(now_ms() + 7 * 86_400_000)).expect("promise");
    staff.sync().await.expect("sync");
    let _ = open;
    let to = now_ms() + 86_400_000;

    let before = report(&server, admin.token(), from, to).await;
    assert_eq!((before["cases_found"].as_u64(), before["cases_resolved"].as_u64()), (Some(3), Some(1)));
    assert_eq!(gridsync_shared::reports::percent(before["resolution_rate"].as_f64()), "33.3%");
    assert_eq!((before["promises_made"].as_u64(), before["promises_due"].as_u64()), (Some(4), Some(3)));
    assert_eq!(gridsync_shared::reports::percent(before["promises_kept_rate"].as_f64()), "33.3%");

    staff.edit(open_twice, |e| e.void_record("重复上报")).expect("void");
    staff.edit(not_kept_twice, |e| e.void_record("重复录入")).expect("void");
    staff.sync().await.expect("sync");
    let after = report(&server, admin.token(), from, to).await;
    assert_eq!((after["cases_found"].as_u64(), after["cases_resolved"].as_u64()), (Some(2), Some(1)));
    assert_eq!(gridsync_shared::reports::percent(after["resolution_rate"].as_f64()), "50.0%");
    assert_eq!((after["promises_made"].as_u64(), after["promises_due"].as_u64()), (Some(3), Some(2)));
    assert_eq!(gridsync_shared::reports::percent(after["promises_kept_rate"].as_f64()), "50.0%");
}
