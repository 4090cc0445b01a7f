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
