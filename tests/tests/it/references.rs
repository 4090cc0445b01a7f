//! A record may reference only records that exist, of the right kind, in a
//! grid its author may write to; a new record's id must be a UUID v7. A refusal
//! stores nothing, and a household and the visit naming it, made offline
//! together, always go up in an order the server accepts.

use gridsync_shared::DocId;
use gridsync_shared::protocol::{DocPush, PushOutcome};
use gridsync_shared::records::{HouseholdFields, NewRecord, VisitFields};
use gridsync_shared::rules::RejectReason;
use gridsync_tests::{Phone, TestServer};

fn household(name: &str) -> NewRecord {
    NewRecord::Household(HouseholdFields { address: format!("{name}家"), head: name.into(), ..Default::default() })
}

fn visit_to(household: DocId) -> NewRecord {
    NewRecord::VisitLog(VisitFields {
        household: Some(household),
        visited_at: 1_700_000_000_000,
        notes: "入户走访".into(),
        ..Default::default()
    })
}

/// The phone's whole history of `id`, as a push under another id if given.
fn push_of(phone: &Phone, id: DocId, as_id: Option<DocId>) -> DocPush {
    let doc = phone.replica.document(id).expect("on the phone");
    DocPush { doc: as_id.unwrap_or(id), changes: doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect() }
}

fn rejection(outcome: &PushOutcome) -> RejectReason {
    match outcome {
        PushOutcome::Rejected(r) => r.reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_visit_log_naming_another_grids_household_is_refused_and_nothing_stored() {
    let server = TestServer::start().await;
    let (g1, g2) = (server.grid("g1"), server.grid("g2"));
    let mut there = server.phone_in(&g2).await;
    let theirs = there.create(&household("李四")).expect("household");
    there.sync().await.expect("sync");

    let mut here = server.phone_in(&g1).await;
    let visit = here.create(&visit_to(theirs)).expect("the phone does not hold the household, but a tampered app may");
    let seq = server.store().head_seq().expect("seq");
    let response = here.push_raw(vec![push_of(&here, visit, None)]).await.expect("answered");
    assert_eq!(rejection(&response.results[0].outcome), RejectReason::OutsideTerritory);
    assert_eq!(server.store().head_seq().expect("seq"), seq, "nothing stored");
    assert!(server.document(visit).is_none());
}

#[tokio::test]
async fn a_visit_log_naming_a_household_that_does_not_exist_or_is_not_a_household_is_refused() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let made_up = DocId::new_v7(1_700_000_000_000, [7; 10]);
    let visit = phone.create(&visit_to(made_up)).expect("visit");
    let case = phone.report_case("占道经营");
    phone.sync().await.expect("the case goes up; the visit is refused");
    assert!(server.document(visit).is_none(), "a visit to a household nobody has is not stored");
    let refused: Vec<_> = phone.replica.rejections().map(|r| (r.doc, r.rejection.reason)).collect();
    assert_eq!(refused, vec![(visit, RejectReason::InvalidRecord)]);

    let wrong_kind = phone.create(&visit_to(case)).expect("visit naming a case as household");
    let response = phone.push_raw(vec![push_of(&phone, wrong_kind, None)]).await.expect("answered");
    assert_eq!(rejection(&response.results[0].outcome), RejectReason::InvalidRecord);
}

#[tokio::test]
async fn a_new_record_under_the_nil_id_or_a_non_v7_id_is_refused() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let visit = phone.record_visit("正常的走访");
    for id in [DocId(uuid::Uuid::nil()), DocId(uuid::Uuid::new_v4())] {
        let response = phone.push_raw(vec![push_of(&phone, visit, Some(id))]).await.expect("answered");
        assert_eq!(rejection(&response.results[0].outcome), RejectReason::InvalidRecord, "id {id}");
        assert!(server.document(id).is_none());
    }
}

#[tokio::test]
async fn a_household_and_a_visit_naming_it_made_offline_go_up_together_even_when_the_clock_ran_backwards() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let home = phone.create(&household("王五")).expect("household");
    // The phone's clock jumps back an hour: the visit's id sorts before the household's.
    phone.clock -= 3_600_000;
    let visit = phone.create(&visit_to(home)).expect("visit");
    assert!(visit < home, "the visit's time-ordered id sorts first");
    let reports = phone.sync().await.expect("sync");
    assert!(reports.iter().all(|r| r.rejected.is_empty()), "{reports:?}");
    assert!(server.document(home).is_some() && server.document(visit).is_some());
}

#[tokio::test]
async fn a_case_is_assigned_only_to_an_enabled_person_whose_territory_holds_its_grid() {
    use gridsync_shared::records::Record;
    use gridsync_shared::workflow::CaseStatus;
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let elsewhere = server.grid("g2");
    let mut staff = server.phone_in(&grid).await;
    let mut supervisor = server.supervisor_phone(&grid.parent().expect("community")).await;
    let person = |username: &str| server.store().person_by_username(username).expect("store").expect("person").id;
    let colleague = person(&server.person(gridsync_shared::Role::FieldStaff, &grid));
    let other_grid = person(&server.person(gridsync_shared::Role::FieldStaff, &elsewhere));
    let gone = person(&server.person(gridsync_shared::Role::FieldStaff, &grid));
    server.store().set_person_disabled(gone, Some(1)).expect("disable");
    let nobody = gridsync_shared::PersonId(uuid::Uuid::new_v4());
    let case = staff.report_case("楼道堆放杂物");
    staff.sync().await.expect("sync");
    supervisor.sync().await.expect("sync");

    let refused = supervisor.edit(case, |e| e.advance_case(CaseStatus::Assigned));
    assert!(refused.is_err(), "交办 without an assignee is refused on the phone already");
    for (assignee, reason) in [
        (other_grid, RejectReason::OutsideTerritory),
        (nobody, RejectReason::InvalidRecord),
        (gone, RejectReason::InvalidRecord),
    ] {
        supervisor.assign(case, assignee).expect("the phone cannot know");
        let reports = supervisor.sync().await.expect("sync");
        let refused: Vec<_> = reports.iter().flat_map(|r| r.rejected.iter()).collect();
        assert_eq!(refused.len(), 1, "{assignee}: {refused:?}");
        assert_eq!(refused[0].1.reason, reason, "{assignee}: {}", refused[0].1.detail);
        let Some(Record::Case(c)) = supervisor.replica.record(case) else { panic!("case") };
        assert_eq!((c.standing().status, c.assignee()), (CaseStatus::Reported, None), "taken back");
    }
    supervisor.assign(case, colleague).expect("assign");
    supervisor.sync().await.expect("sync");
    staff.sync().await.expect("sync");
    let server_case = gridsync_shared::records::read_record(&server.document(case).expect("doc")).expect("read");
    let Record::Case(c) = server_case else { panic!("case") };
    assert_eq!((c.standing().status, c.assignee()), (CaseStatus::Assigned, Some(colleague)));
    let Some(Record::Case(c)) = staff.replica.record(case) else { panic!("case") };
    assert_eq!(c.assignee(), Some(colleague), "the grid's phones see who it was handed to");
}
