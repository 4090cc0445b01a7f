//! The replica on its own, sans-IO: what it saves, what it sends, and what it
//! does with a verdict — no server needed.

use gridsync_client::{FileStorage, MemoryStorage, Replica, Storage};
use gridsync_shared::protocol::{self, DeviceRegistration, PushOutcome, PushResult, SyncRequest, SyncResponse};
use gridsync_shared::records::{NewRecord, VisitFields};
use gridsync_shared::rules::{RejectReason, Rejection};
use gridsync_shared::{DeviceId, PersonId, Role};

fn registration() -> DeviceRegistration {
    DeviceRegistration {
        device: DeviceId(uuid::Uuid::new_v4()),
        token: "t".into(),
        actor: "0123456789abcdef0123456789abcdef".into(),
        person: PersonId(uuid::Uuid::new_v4()),
        name: "李网格".into(),
        role: Role::FieldStaff,
        territory: "a/b/c/d/g1".parse().expect("grid"),
    }
}

fn phone<S: Storage>(storage: S) -> Replica<S> {
    let mut r = Replica::open(storage).expect("open");
    r.register(registration()).expect("register");
    r
}

fn visit(notes: &str) -> NewRecord {
    NewRecord::VisitLog(VisitFields { visited_at: 1, notes: notes.into(), ..Default::default() })
}

fn respond(results: Vec<PushResult>) -> Vec<u8> {
    protocol::encode(&SyncResponse { results, updates: vec![], cursor: vec![1, 2, 3], more: false })
}

#[test]
fn records_outbox_and_cursor_survive_closing_and_reopening_the_app() {
    let dir = tempfile::tempdir().expect("tmp");
    let id = {
        let mut r = phone(FileStorage::open(dir.path()).expect("files"));
        let id = r.create(None, 10, &visit("独居老人陈桂英，身体尚可")).expect("create");
        r.apply_response(&respond(vec![]), 11).expect("apply");
        id
    };
    let r = Replica::open(FileStorage::open(dir.path()).expect("files")).expect("reopen");
    assert!(r.identity().is_some());
    assert_eq!(r.pending_changes(), 1, "the unsynced visit is still waiting");
    let Some(gridsync_shared::Record::VisitLog(v)) = r.record(id) else { panic!("visit lost") };
    assert_eq!(v.fields.notes, "独居老人陈桂英，身体尚可");
    assert_eq!(r.last_sync_at(), Some(11));
}

#[test]
fn an_acknowledged_push_leaves_the_outbox_but_edits_made_meanwhile_stay() {
    let mut r = phone(MemoryStorage::new());
    let id = r.create(None, 1, &visit("第一次")).expect("create");
    let request: SyncRequest = protocol::decode(&r.build_request()).expect("request");
    assert_eq!(request.push.len(), 1);
    assert_eq!(request.cursor, None);
    // While the request is in flight, the visit is edited again.
    r.edit(id, 2, |e| {
        let gridsync_shared::Record::VisitLog(v) = e.record()? else { panic!() };
        let mut f = v.fields;
        f.notes.push_str("，补充");
        e.update_visit(&f)
    })
    .expect("edit");
    assert_eq!(r.pending_changes(), 2);
    let report =
        r.apply_response(&respond(vec![PushResult { doc: id, outcome: PushOutcome::Accepted }]), 3).expect("apply");
    assert_eq!(report.acknowledged, 1);
    assert_eq!(r.pending_changes(), 1, "only what was sent is acknowledged");
    let next: SyncRequest = protocol::decode(&r.build_request()).expect("request");
    assert_eq!(next.cursor, Some(vec![1, 2, 3]), "the cursor advanced");
    assert_eq!(next.push[0].changes.len(), 1);
}

#[test]
fn a_rejected_record_is_taken_back_and_its_reason_kept_for_the_screen() {
    let mut r = phone(MemoryStorage::new());
    let kept = r.create(None, 1, &visit("正常记录")).expect("create");
    let refused = r.create(None, 2, &visit("被退回的记录")).expect("create");
    r.build_request();
    let rejection = Rejection::new(RejectReason::OutsideTerritory, "grid moved");
    let report = r
        .apply_response(
            &respond(vec![
                PushResult { doc: kept, outcome: PushOutcome::Accepted },
                PushResult { doc: refused, outcome: PushOutcome::Rejected(rejection.clone()) },
            ]),
            3,
        )
        .expect("apply");
    assert_eq!(report.rejected, vec![(refused, rejection)]);
    assert!(r.record(refused).is_none(), "a refused new record is taken back");
    assert!(r.record(kept).is_some());
    assert_eq!(r.pending_changes(), 0, "nothing refused is sent again");
    let shown: Vec<_> = r.rejections().collect();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].rejection.reason, RejectReason::OutsideTerritory);
    assert!(shown[0].summary.contains("被退回的记录"));
    assert!(!shown[0].rejection.reason.message_zh().is_empty());
}

#[test]
fn a_damaged_response_changes_nothing() {
    let mut r = phone(MemoryStorage::new());
    r.create(None, 1, &visit("x")).expect("create");
    r.build_request();
    let good = respond(vec![]);
    assert!(r.apply_response(&good[..good.len() - 2], 2).is_err());
    assert_eq!(r.pending_changes(), 1);
    assert_eq!(r.last_sync_at(), None);
}

/// A record made on `me`'s other phone, with its changes as the server would
/// relay them (one list per sync of that phone).
fn made_elsewhere(
    me: &DeviceRegistration,
) -> (gridsync_shared::DocId, Vec<Vec<Vec<u8>>>, gridsync_shared::records::RecordSummary) {
    let mut other = Replica::open(MemoryStorage::new()).expect("open");
    other.register(DeviceRegistration { actor: "fedcba9876543210fedcba9876543210".into(), ..me.clone() }).expect("reg");
    let id = other.create(None, 1, &visit("入户走访，")).expect("create");
    let first: Vec<Vec<u8>> =
        other.document(id).expect("doc").get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
    let heads = other.document(id).expect("doc").get_heads();
    other
        .edit(id, 2, |e| {
            e.update_visit(&VisitFields {
                visited_at: 1,
                notes: "入户走访，老人身体良好。".into(),
                ..Default::default()
            })
        })
        .expect("edit");
    let second = other.document(id).expect("doc").get_changes(&heads).iter().map(|c| c.raw_bytes().to_vec()).collect();
    let summary = other.record(id).expect("record").summary();
    (id, vec![first, second], summary)
}

fn relay(
    doc: gridsync_shared::DocId,
    changes: Vec<Vec<u8>>,
    summary: gridsync_shared::records::RecordSummary,
) -> Vec<u8> {
    let body = protocol::DocBody::Changes(changes);
    protocol::encode(&SyncResponse {
        results: vec![],
        updates: vec![protocol::DocUpdate { doc, body, summary: Some(summary) }],
        cursor: vec![7],
        more: false,
    })
}

#[test]
fn records_from_the_server_are_listed_unparsed_and_read_back_whole_after_reopening() {
    let dir = tempfile::tempdir().expect("dir");
    let me = registration();
    let mut r = Replica::open(FileStorage::open(dir.path()).expect("files")).expect("open");
    r.register(me.clone()).expect("register");
    let (id, syncs, summary) = made_elsewhere(&me);
    for (i, changes) in syncs.into_iter().enumerate() {
        r.build_request();
        r.apply_response(&relay(id, changes, summary), 10 + i as i64).expect("apply");
    }
    assert_eq!(r.records_of(Some(gridsync_shared::RecordKind::VisitLog)).count(), 1);
    let Some(gridsync_shared::Record::VisitLog(v)) = r.record(id) else { panic!("visit log missing") };
    assert_eq!(v.fields.notes, "入户走访，老人身体良好。", "both relayed changes are kept");

    let mut reopened = Replica::open(FileStorage::open(dir.path()).expect("files")).expect("reopen");
    let Some(gridsync_shared::Record::VisitLog(v)) = reopened.record(id) else { panic!("lost on reopen") };
    assert_eq!(v.fields.notes, "入户走访，老人身体良好。");
    // An edit to a record that arrived unparsed is written as this phone.
    reopened
        .edit(id, 20, |e| {
            e.update_visit(&VisitFields { visited_at: 1, notes: "已回访。".into(), ..Default::default() })
        })
        .expect("edit");
    let doc = reopened.document(id).expect("doc");
    let mine = doc.get_changes(&[]).iter().filter(|c| c.actor_id().to_hex_string() == me.actor).count();
    assert_eq!(mine, 1, "the phone's own edit carries its own actor");
}

#[test]
fn a_damaged_change_from_the_server_is_refused_and_nothing_is_kept() {
    let mut r = phone(MemoryStorage::new());
    let (id, _, summary) = made_elsewhere(&registration());
    r.build_request();
    assert!(r.apply_response(&relay(id, vec![vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3]], summary), 5).is_err());
    assert_eq!(r.document_ids().count(), 0);
    assert_eq!(r.last_sync_at(), None);
}

#[test]
fn a_form_submitted_twice_with_its_id_makes_one_record_and_the_second_submit_updates_it() {
    let mut r = phone(MemoryStorage::new());
    let id = Replica::<MemoryStorage>::new_id(1);
    assert_eq!(r.create_with_id(id, None, 1, &visit("入户走访")).expect("first submit"), id);
    assert_eq!(r.create_with_id(id, None, 2, &visit("入户走访")).expect("double tap"), id);
    assert_eq!(r.records().count(), 1, "one record, however often save is tapped");
    assert_eq!(r.pending_changes(), 1, "an identical repeat writes nothing");
    // The first submit reached the server (its answer was lost or not): the
    // form, still open, is submitted again with more text.
    r.build_request();
    r.apply_response(&respond(vec![PushResult { doc: id, outcome: PushOutcome::Accepted }]), 3).expect("ack");
    r.create_with_id(id, None, 4, &visit("入户走访，老人身体良好")).expect("submit after sync");
    assert_eq!(r.records().count(), 1);
    let Some(gridsync_shared::Record::VisitLog(v)) = r.record(id) else { panic!("visit") };
    assert_eq!(v.fields.notes, "入户走访，老人身体良好", "the same record took the new text");
    assert_eq!(r.pending_changes(), 1, "the repeat is an edit of that record");
}

#[test]
fn a_chosen_id_must_be_a_uuid_v7_and_a_repeat_must_be_the_same_kind() {
    let mut r = phone(MemoryStorage::new());
    let v4 = gridsync_shared::DocId(uuid::Uuid::new_v4());
    assert!(r.create_with_id(v4, None, 1, &visit("x")).is_err(), "not a v7 id");
    assert_eq!(r.records().count(), 0);
    let id = Replica::<MemoryStorage>::new_id(1);
    r.create_with_id(id, None, 1, &visit("x")).expect("create");
    let case = NewRecord::Case(gridsync_shared::records::CaseFields {
        kind: gridsync_shared::records::CaseKind::Hazard,
        title: "t".into(),
        description: String::new(),
        household: None,
        visit: None,
        due_at: None,
    });
    assert!(r.create_with_id(id, None, 2, &case).is_err(), "a visit log cannot become a case");
    assert_eq!(r.records().count(), 1);
}

#[test]
fn visit_times_list_every_visit_log_with_its_time_without_parsing_after_reopening() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, b) = {
        let mut r = phone(FileStorage::open(dir.path()).expect("files"));
        let at = |t: i64, notes: &str| {
            NewRecord::VisitLog(VisitFields { visited_at: t, notes: notes.into(), ..Default::default() })
        };
        let a = r.create(None, 10, &at(1_000, "上午走访")).expect("create");
        let b = r.create(None, 10, &at(2_000, "下午走访")).expect("create");
        // A household beside them is not a visit (whether or not an empty one is accepted).
        let _ = r.create(None, 10, &NewRecord::Household(Default::default()));
        (a, b)
    };
    let r = Replica::open(FileStorage::open(dir.path()).expect("files")).expect("reopen");
    let mut times: Vec<(gridsync_shared::DocId, i64)> = r.visit_times().collect();
    times.sort_by_key(|t| t.1);
    assert_eq!(times, vec![(a, 1_000), (b, 2_000)], "only visit logs, each with its visit time");
}
