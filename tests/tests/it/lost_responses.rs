//! A response lost on a weak link never costs an edit: the server judges only
//! the pushed changes it does not already have, and the phone never drops
//! changes the server may hold. Every record type and edit kind is tried with
//! the response to its creation lost, and to an earlier edit lost, before one
//! more edit and a sync; then a property test drops responses at random.

use automerge::ReadDoc;
use gridsync_shared::records::{
    CaseFields, CaseKind, HouseholdFields, Member, NewRecord, PromiseFields, Record, RecordKind, VisitFields, VisitKind,
};
use gridsync_shared::workflow::CaseStatus;
use gridsync_shared::{DocId, TerritoryPath};
use gridsync_tests::{Phone, TestServer, assert_converged};
use proptest::prelude::*;

/// One kind of edit a person makes to a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Edit {
    HouseholdFields,
    HouseholdMember,
    VisitNotes,
    VisitConcern,
    CaseFields,
    CaseFollowUp,
    CaseAdvance,
    CaseReopen,
    PromiseOutcome,
}

impl Edit {
    const ALL: [Edit; 9] = [
        Edit::HouseholdFields,
        Edit::HouseholdMember,
        Edit::VisitNotes,
        Edit::VisitConcern,
        Edit::CaseFields,
        Edit::CaseFollowUp,
        Edit::CaseAdvance,
        Edit::CaseReopen,
        Edit::PromiseOutcome,
    ];

    fn kind(self) -> RecordKind {
        match self {
            Edit::HouseholdFields | Edit::HouseholdMember => RecordKind::Household,
            Edit::VisitNotes | Edit::VisitConcern => RecordKind::VisitLog,
            Edit::CaseFields | Edit::CaseFollowUp | Edit::CaseAdvance | Edit::CaseReopen => RecordKind::Case,
            Edit::PromiseOutcome => RecordKind::Promise,
        }
    }

    /// Reopening takes a supervisor; everything else is a grid manager's own work.
    fn needs_supervisor(self) -> bool {
        self == Edit::CaseReopen
    }
}

fn new_record(kind: RecordKind, n: usize) -> NewRecord {
    match kind {
        RecordKind::Household => NewRecord::Household(HouseholdFields {
            address: format!("东湖小区{n}栋"),
            head: "王建国".into(),
            ..HouseholdFields::default()
        }),
        RecordKind::VisitLog => NewRecord::VisitLog(VisitFields {
            visited_at: 1_700_000_000_000,
            kind: Some(VisitKind::Routine),
            notes: format!("第{n}次走访，老人身体尚可。"),
            ..VisitFields::default()
        }),
        RecordKind::Case => NewRecord::Case(CaseFields {
            kind: CaseKind::Hazard,
            title: format!("楼道堆放杂物{n}"),
            description: "三楼楼道堵塞消防通道".into(),
            household: None,
            visit: None,
            due_at: None,
        }),
        RecordKind::Promise => NewRecord::Promise(PromiseFields {
            content: format!("协调物业修路灯{n}"),
            household: None,
            due_at: 1_800_000_000_000,
        }),
    }
}

fn create(phone: &mut Phone, grid: &TerritoryPath, kind: RecordKind, n: usize) -> DocId {
    let now = phone.clock + 1;
    phone.clock = now;
    phone.replica.create(Some(grid), now, &new_record(kind, n)).expect("create")
}

/// Makes edit `edit` (its `n`th) to `id`; returns a marker the server's copy must show.
fn apply(phone: &mut Phone, id: DocId, edit: Edit, n: usize) -> String {
    let mark = format!("第{n}次修改");
    let m = mark.clone();
    let me = phone.replica.identity().expect("signed in").person;
    phone
        .edit(id, move |e| {
            let record = e.record()?;
            match (edit, record) {
                (Edit::HouseholdFields, Record::Household(h)) => {
                    let mut f = h.fields;
                    f.notes = m;
                    e.update_household(&f)
                }
                (Edit::HouseholdMember, Record::Household(h)) => {
                    let mut f = h.fields;
                    f.members.push(Member { name: m, relation: "子女".into(), ..Member::default() });
                    e.update_household(&f)
                }
                (Edit::VisitNotes, Record::VisitLog(v)) => {
                    let mut f = v.fields;
                    f.notes.push_str(&m);
                    e.update_visit(&f)
                }
                (Edit::VisitConcern, Record::VisitLog(v)) => {
                    let mut f = v.fields;
                    f.concerns.push(m);
                    e.update_visit(&f)
                }
                (Edit::CaseFields, Record::Case(c)) => {
                    let mut f = c.fields;
                    f.description = m;
                    e.update_case(&f)
                }
                (Edit::CaseFollowUp, Record::Case(_)) => e.add_follow_up(&m, None),
                (Edit::CaseAdvance, Record::Case(c)) => match c.standing().status {
                    s if s < CaseStatus::InProgress => e.advance_case(CaseStatus::InProgress),
                    s if s < CaseStatus::Resolved => e.advance_case(CaseStatus::Resolved),
                    _ => e.add_follow_up(&m, None),
                },
                (Edit::CaseReopen, Record::Case(c)) => {
                    if c.standing().status <= CaseStatus::Accepted {
                        e.assign_case(me)
                    } else {
                        e.reopen_case(CaseStatus::Accepted, &m)
                    }
                }
                (Edit::PromiseOutcome, Record::Promise(_)) => e.record_promise_outcome(n.is_multiple_of(2), &m),
                (edit, record) => panic!("{edit:?} does not apply to a {}", record.kind()),
            }
        })
        .expect("the edit is allowed");
    mark
}

/// Sends the phone's next request; the server handles it, but the response is lost.
async fn sync_with_response_lost(phone: &mut Phone) {
    let request = phone.replica.build_request();
    phone.post_sync(&request).await.expect("the request reaches the server");
}

/// Syncs until done and insists that nothing was refused.
async fn sync_clean(phone: &mut Phone) {
    for report in phone.sync().await.expect("sync") {
        assert!(report.rejected.is_empty(), "nothing may be refused: {:?}", report.rejected);
    }
    assert_eq!(phone.replica.pending_changes(), 0, "every change acknowledged");
}

/// Every change of `phone`'s copy of `id` is on the server.
fn server_has_everything_of(server: &TestServer, phone: &Phone, id: DocId) {
    let ours = phone.replica.document(id).expect("phone has the record");
    let theirs = server.document(id).expect("server has the record");
    for change in ours.get_changes(&[]) {
        assert!(theirs.get_change_by_hash(&change.hash()).is_some(), "record {id}: a change never reached the server");
    }
}

fn shows(server: &TestServer, id: DocId, edit: Edit, mark: &str) {
    let doc = server.document(id).expect("server has the record");
    let record = gridsync_shared::records::read_record(&doc).expect("valid record");
    let text = format!("{record:?}");
    match edit {
        Edit::CaseAdvance => {
            let Record::Case(c) = record else { panic!("not a case") };
            assert!(c.standing().status >= CaseStatus::InProgress, "the move reached the server: {c:?}");
        }
        Edit::CaseReopen => {
            let Record::Case(c) = record else { panic!("not a case") };
            assert!(!c.status_log.is_empty(), "the supervisor's moves reached the server: {c:?}");
        }
        Edit::PromiseOutcome => {
            let Record::Promise(p) = record else { panic!("not a promise") };
            assert!(!p.outcomes.is_empty(), "the outcome reached the server");
        }
        _ => assert!(text.contains(mark), "the server's copy shows {mark:?}: {text}"),
    }
}

async fn phone_for(server: &TestServer, grid: &TerritoryPath, edit: Edit) -> Phone {
    if edit.needs_supervisor() {
        server.supervisor_phone(&grid.parent().expect("community")).await
    } else {
        server.phone_in(grid).await
    }
}

#[tokio::test]
async fn an_edit_after_a_lost_response_to_the_records_creation_reaches_the_server_for_every_edit_kind() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut neighbour = server.phone_in(&grid).await;
    for (n, edit) in Edit::ALL.into_iter().enumerate() {
        let mut phone = phone_for(&server, &grid, edit).await;
        let id = create(&mut phone, &grid, edit.kind(), n);
        sync_with_response_lost(&mut phone).await;
        assert!(server.document(id).is_some(), "{edit:?}: the server stored the record");

        let mark = apply(&mut phone, id, edit, n);
        sync_clean(&mut phone).await;
        shows(&server, id, edit, &mark);
        server_has_everything_of(&server, &phone, id);

        // And the record stays editable: a further edit goes through too.
        let mark = apply(&mut phone, id, edit, n + 100);
        sync_clean(&mut phone).await;
        shows(&server, id, edit, &mark);
        sync_clean(&mut neighbour).await;
        assert_converged(&server, &[&phone, &neighbour], &grid);
    }
}

#[tokio::test]
async fn an_edit_after_a_lost_response_to_an_earlier_edit_reaches_the_server_for_every_edit_kind() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut neighbour = server.phone_in(&grid).await;
    for (n, edit) in Edit::ALL.into_iter().enumerate() {
        let mut phone = phone_for(&server, &grid, edit).await;
        let id = create(&mut phone, &grid, edit.kind(), n);
        sync_clean(&mut phone).await;

        apply(&mut phone, id, edit, n);
        sync_with_response_lost(&mut phone).await;
        // Twice over: the second response is lost as well, with another edit between.
        apply(&mut phone, id, edit, n + 100);
        sync_with_response_lost(&mut phone).await;
        let last = apply(&mut phone, id, edit, n + 200);
        sync_clean(&mut phone).await;
        shows(&server, id, edit, &last);
        server_has_everything_of(&server, &phone, id);
        sync_clean(&mut neighbour).await;
        assert_converged(&server, &[&phone, &neighbour], &grid);
    }
}

#[tokio::test]
async fn a_refused_edit_after_a_lost_response_costs_only_itself() {
    // The creation's response is lost; then the phone is tricked into a push the
    // server refuses (the record's grid rewritten by a tampered app). The phone
    // must keep the creation the server holds and drop only the refused change.
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let case = phone.report_case("井盖缺失");
    sync_with_response_lost(&mut phone).await;

    let other_grid = server.grid("g2");
    let doc = phone.replica.document(case).expect("case").clone();
    let actor =
        gridsync_shared::ids::actor_from_hex(&phone.replica.identity().expect("signed in").actor).expect("actor");
    let mut tampered = doc.fork().with_actor(actor);
    {
        use automerge::transaction::Transactable;
        let mut tx = tampered.transaction();
        tx.put(automerge::ROOT, "grid", other_grid.as_str()).expect("put");
        tx.commit();
    }
    let bad: Vec<Vec<u8>> = tampered.get_changes(&doc.get_heads()).iter().map(|c| c.raw_bytes().to_vec()).collect();
    let mut all: Vec<Vec<u8>> = doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
    all.extend(bad);
    let response =
        phone.push_raw(vec![gridsync_shared::protocol::DocPush { doc: case, changes: all }]).await.expect("answered");
    let outcome = &response.results[0].outcome;
    assert!(
        matches!(outcome, gridsync_shared::protocol::PushOutcome::Rejected(r) if r.reason == gridsync_shared::rules::RejectReason::FixedField),
        "the rewritten grid is refused, not the creation the server already has: {outcome:?}"
    );
    assert!(
        response.updates.iter().any(|u| u.doc == case),
        "a refusal comes with the server's copy of the record, so the phone can keep what the server holds"
    );

    // The phone's own sync: its outbox still holds the creation; all is well.
    phone.follow_up(case, "已通知物业处理");
    sync_clean(&mut phone).await;
    let Some(Record::Case(c)) = phone.replica.record(case) else { panic!("the phone kept the case") };
    assert_eq!(c.follow_ups.len(), 1);
    server_has_everything_of(&server, &phone, case);
}

#[tokio::test]
async fn two_lost_responses_in_a_row_then_an_edit_store_every_follow_up_once() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let case = phone.report_case("噪音扰民");
    sync_with_response_lost(&mut phone).await;
    phone.follow_up(case, "第一次跟进");
    sync_with_response_lost(&mut phone).await;
    phone.follow_up(case, "第二次跟进");
    sync_clean(&mut phone).await;
    let doc = server.document(case).expect("server has the case");
    let Ok(Record::Case(c)) = gridsync_shared::records::read_record(&doc) else { panic!("a case") };
    assert_eq!(c.follow_ups.len(), 2, "both follow-ups are on the server, each once");
    assert_eq!(server.doc_ids(&grid), vec![case], "the case exists once");
    let mut other = server.phone_in(&grid).await;
    sync_clean(&mut other).await;
    assert_converged(&server, &[&phone, &other], &grid);
}

// ---- property: random drops between random edits ----

#[derive(Clone, Debug)]
enum Step {
    /// Phone `who` creates a record of the kind of this edit, or makes the edit to its latest such record.
    Work(usize, Edit),
    /// Phone `who` syncs normally.
    Sync(usize),
    /// Phone `who`'s request reaches the server, its response is lost.
    LoseResponse(usize),
    /// Phone `who` builds a request that never reaches the server.
    LoseRequest(usize),
}

fn step() -> impl Strategy<Value = Step> {
    let edit = (0..Edit::ALL.len()).prop_map(|i| Edit::ALL[i]);
    prop_oneof![
        6 => (0..3usize, edit).prop_map(|(w, e)| Step::Work(w, e)),
        2 => (0..3usize).prop_map(Step::Sync),
        3 => (0..3usize).prop_map(Step::LoseResponse),
        1 => (0..3usize).prop_map(Step::LoseRequest),
    ]
}

async fn run(steps: Vec<Step>) {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phones = [
        server.phone_in(&grid).await,
        server.phone_in(&grid).await,
        server.supervisor_phone(&grid.parent().expect("community")).await,
    ];
    // Each phone's latest record of each kind, and every change it ever made.
    let mut latest: Vec<std::collections::HashMap<RecordKind, DocId>> = vec![Default::default(); 3];
    let mut made: Vec<(usize, DocId, automerge::ChangeHash)> = Vec::new();
    for (n, s) in steps.into_iter().enumerate() {
        match s {
            Step::Work(who, edit) => {
                let who = if edit.needs_supervisor() { 2 } else { who };
                let phone = &mut phones[who];
                let id = match latest[who].get(&edit.kind()) {
                    Some(id) if n % 4 != 0 => {
                        apply(phone, *id, edit, n);
                        *id
                    }
                    _ => {
                        let id = create(phone, &grid, edit.kind(), n);
                        latest[who].insert(edit.kind(), id);
                        id
                    }
                };
                for h in phone.replica.document(id).expect("doc").get_heads() {
                    made.push((who, id, h));
                }
            }
            Step::Sync(who) => sync_clean(&mut phones[who]).await,
            Step::LoseResponse(who) => sync_with_response_lost(&mut phones[who]).await,
            Step::LoseRequest(who) => {
                let _never_sent = phones[who].replica.build_request();
            }
        }
    }
    for _ in 0..2 {
        for p in phones.iter_mut() {
            sync_clean(p).await;
        }
    }
    for (who, id, hash) in made {
        let doc = server.document(id).unwrap_or_else(|| panic!("phone {who}'s record {id} never reached the server"));
        assert!(doc.get_change_by_hash(&hash).is_some(), "phone {who}'s edit to {id} was lost");
    }
    let refs: Vec<&Phone> = phones.iter().collect();
    assert_converged(&server, &refs, &grid);
    server.stop().await;
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("GRIDSYNC_LOST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(16),
        ..ProptestConfig::default()
    })]

    #[test]
    fn responses_lost_at_random_between_random_edits_never_lose_an_edit(steps in prop::collection::vec(step(), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(run(steps));
    }
}
