//! The server refuses, per document and with a reason, every change that breaks
//! a rule — and such a refusal stores nothing.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, ROOT, ReadDoc};
use gridsync_shared::protocol::{DocPush, PushOutcome, SyncResponse};
use gridsync_shared::records::{NewRecord, VisitFields, new_record};
use gridsync_shared::rules::RejectReason;
use gridsync_shared::workflow::CaseStatus;
use gridsync_shared::{Author, DocId};
use gridsync_tests::{Phone, TestServer};

/// A change to `id` made on a copy of the phone's document, with the phone's
/// actor unless `actor` says otherwise, bypassing the phone's own checks.
fn tampered(
    phone: &Phone,
    id: DocId,
    actor: Option<ActorId>,
    f: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
) -> DocPush {
    let doc = phone.replica.document(id).expect("doc on phone");
    let mut fork = doc.fork();
    fork.set_actor(actor.unwrap_or_else(|| doc.get_actor().clone()));
    let before = fork.get_heads();
    let mut tx = fork.transaction();
    f(&mut tx);
    tx.commit_with(CommitOptions::default());
    DocPush { doc: id, changes: fork.get_changes(&before).iter().map(|c| c.raw_bytes().to_vec()).collect() }
}

fn only_rejection(response: &SyncResponse) -> RejectReason {
    assert_eq!(response.results.len(), 1);
    match &response.results[0].outcome {
        PushOutcome::Rejected(r) => {
            assert!(!r.detail.is_empty(), "a rejection says what was wrong");
            r.reason
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// The store's state, to check a refusal changed nothing.
fn fingerprint(server: &TestServer, id: Option<DocId>) -> (u64, Option<Vec<u8>>) {
    let seq = server.store().head_seq().expect("seq");
    (seq, id.and_then(|id| server.store().load_doc(id).expect("load").map(|d| d.bytes)))
}

#[tokio::test]
async fn a_change_carrying_someone_elses_actor_is_rejected_and_nothing_stored() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut victim = server.phone_in(&grid).await;
    let mut forger = server.phone_in(&grid).await;
    let visit = forger.record_visit("冒名的走访");
    let victim_actor: ActorId = victim.replica.identity().expect("id").actor.parse().expect("actor");
    let push = tampered(&forger, visit, Some(victim_actor.clone()), |tx| {
        tx.put(ROOT, "visited_at", automerge::ScalarValue::Timestamp(5)).expect("put");
    });
    // Also try a brand-new record written entirely under the victim's actor.
    let author = Author {
        person: forger.replica.identity().expect("id").person,
        role: gridsync_shared::Role::FieldStaff,
        territory: grid.clone(),
    };
    let (forged_id, forged) =
        new_record(victim_actor, &author, &grid, 1, [7; 10], &NewRecord::VisitLog(VisitFields::default()))
            .expect("doc");
    let before = fingerprint(&server, Some(forged_id));
    let response = forger
        .push_raw(vec![DocPush {
            doc: forged_id,
            changes: forged.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect(),
        }])
        .await
        .expect("push");
    assert_eq!(only_rejection(&response), RejectReason::WrongActor);
    assert_eq!(fingerprint(&server, Some(forged_id)), before, "nothing stored");
    assert!(push.changes.len() == 1);
    victim.sync().await.expect("victim unaffected");
}

#[tokio::test]
async fn a_record_written_outside_the_devices_grid_is_rejected() {
    let server = TestServer::start().await;
    let home = server.grid("g1");
    let elsewhere = server.grid("g2");
    let mut phone = server.phone_in(&home).await;
    let id = phone.replica.identity().expect("id").clone();
    // A tampered client claims the other grid for a record of its own.
    let claimed = Author { person: id.person, role: id.role, territory: elsewhere.clone() };
    let actor: ActorId = id.actor.parse().expect("actor");
    let (doc_id, doc) =
        new_record(actor, &claimed, &elsewhere, 1, [9; 10], &NewRecord::VisitLog(VisitFields::default())).expect("doc");
    let before = fingerprint(&server, Some(doc_id));
    let response = phone
        .push_raw(vec![DocPush {
            doc: doc_id,
            changes: doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect(),
        }])
        .await
        .expect("push");
    assert_eq!(only_rejection(&response), RejectReason::OutsideTerritory);
    assert_eq!(fingerprint(&server, Some(doc_id)), before);
    assert!(server.doc_ids(&elsewhere).is_empty());
}

#[tokio::test]
async fn a_change_to_a_fixed_field_is_rejected() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let visit = phone.record_visit("正常的走访");
    phone.sync().await.expect("sync");
    for (field, value) in
        [("grid", "tc/d1/s1/c1/g2"), ("creator", "00000000-0000-0000-0000-000000000001"), ("type", "case")]
    {
        let push = tampered(&phone, visit, None, |tx| {
            tx.put(ROOT, field, value).expect("put");
        });
        let before = fingerprint(&server, Some(visit));
        let response = phone.push_raw(vec![push]).await.expect("push");
        assert_eq!(only_rejection(&response), RejectReason::FixedField, "changing `{field}`");
        assert_eq!(fingerprint(&server, Some(visit)), before, "changing `{field}` stored nothing");
    }
    let push = tampered(&phone, visit, None, |tx| {
        tx.put(ROOT, "created_at", automerge::ScalarValue::Timestamp(0)).expect("put");
    });
    assert_eq!(only_rejection(&phone.push_raw(vec![push]).await.expect("push")), RejectReason::FixedField);
}

#[tokio::test]
async fn a_case_status_jumping_backwards_without_a_reopen_is_rejected() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let case = phone.report_case("占道经营");
    phone.advance(case, CaseStatus::Resolved).expect("resolved");
    phone.sync().await.expect("sync");
    // The phone's own rules refuse it...
    assert!(phone.advance(case, CaseStatus::InProgress).is_err());
    // ...and so does the server when a tampered client sends it anyway.
    let person = phone.replica.identity().expect("id").person.to_string();
    let push = tampered(&phone, case, None, |tx| {
        let (_, log) = tx.get(ROOT, "status_log").expect("get").expect("log");
        let i = tx.length(&log);
        let e = tx.insert_object(&log, i, automerge::ObjType::Map).expect("entry");
        tx.put(&e, "id", uuid::Uuid::new_v4().to_string()).expect("id");
        tx.put(&e, "kind", "advance").expect("kind");
        tx.put(&e, "to", "in_progress").expect("to");
        tx.put(&e, "epoch", 0u64).expect("epoch");
        tx.put(&e, "by", person.as_str()).expect("by");
        tx.put(&e, "at", automerge::ScalarValue::Timestamp(1)).expect("at");
    });
    let before = fingerprint(&server, Some(case));
    let response = phone.push_raw(vec![push]).await.expect("push");
    assert_eq!(only_rejection(&response), RejectReason::StatusBackwards);
    assert_eq!(fingerprint(&server, Some(case)), before);

    // A supervisor's explicit reopen with a reason is the way back, and it is accepted.
    let mut supervisor = server.supervisor_phone(&grid.parent().expect("community")).await;
    supervisor.sync().await.expect("sync");
    supervisor.edit(case, |e| e.reopen_case(CaseStatus::InProgress, "回访发现问题未解决")).expect("reopen");
    let reports = supervisor.sync().await.expect("sync");
    assert!(reports.iter().all(|r| r.rejected.is_empty()));
    phone.sync().await.expect("sync");
    let Some(gridsync_shared::Record::Case(c)) = phone.replica.record(case) else { panic!("case") };
    assert_eq!(c.standing().status, CaseStatus::InProgress);
    assert_eq!(c.standing().epoch, 1);
}

#[tokio::test]
async fn removing_a_follow_up_is_rejected() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let case = phone.report_case("噪音扰民");
    phone.follow_up(case, "已提醒");
    phone.sync().await.expect("sync");
    let push = tampered(&phone, case, None, |tx| {
        let (_, list) = tx.get(ROOT, "follow_ups").expect("get").expect("list");
        tx.delete(&list, 0usize).expect("delete");
    });
    let response = phone.push_raw(vec![push]).await.expect("push");
    assert_eq!(only_rejection(&response), RejectReason::HistoryRewritten);
}

#[tokio::test]
async fn a_revoked_token_is_refused_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    phone.sync().await.expect("sync");
    let device = phone.replica.identity().expect("id").device;
    gridsync_server::admin::revoke_device(server.store(), None, device, "test").expect("revoke");

    phone.record_visit("注销后写的记录");
    let before = fingerprint(&server, None);
    let err = phone.sync().await.expect_err("refused");
    assert!(err.to_string().contains("401") && err.to_string().contains("revoked"), "{err}");
    assert_eq!(fingerprint(&server, None), before);
    assert_eq!(phone.replica.pending_changes(), 1, "the phone keeps its unsent record");
}

/// A change whose bytes were damaged (one byte of its text flipped, or of its
/// checksum) still parses, but no document holding it could ever be loaded
/// again: it is refused as malformed, stores nothing, and the record stays
/// editable. The HTTP fuzzer found records left unreadable this way.
#[tokio::test]
async fn a_change_with_damaged_bytes_is_refused_and_the_record_stays_editable() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let visit = phone.record_visit("正常的走访");
    phone.sync().await.expect("sync");
    let honest = tampered(&phone, visit, None, |tx| {
        let (_, notes) = tx.get(ROOT, "notes").expect("get").expect("the visit's notes");
        tx.splice_text(&notes, 0, 0, "补充：住户反映楼道灯不亮。").expect("splice");
    });
    for at in [5, honest.changes[0].len() - 3] {
        let mut push = honest.clone();
        push.changes[0][at] ^= 0x20;
        let before = fingerprint(&server, Some(visit));
        let response = phone.push_raw(vec![push]).await.expect("push");
        assert_eq!(only_rejection(&response), RejectReason::Malformed, "byte {at} damaged");
        assert_eq!(fingerprint(&server, Some(visit)), before, "byte {at} damaged: nothing stored");
    }
    let response = phone.push_raw(vec![honest]).await.expect("push");
    assert_eq!(response.results[0].outcome, PushOutcome::Accepted, "the record stays editable");
    let stored = server.store().load_doc(visit).expect("load").expect("the record");
    assert!(automerge::Automerge::load(&stored.bytes).is_ok(), "and loads");
}
