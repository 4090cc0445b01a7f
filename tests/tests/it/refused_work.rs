//! A push the server refuses loses only what it refused: the follow-ups,
//! photos and field edits written beside a refused decision (a 交办 to someone
//! disabled meanwhile) are kept by the phone and go up again without it —
//! through lost responses and edits made between retries.

use gridsync_shared::records::{Case, Record};
use gridsync_shared::workflow::CaseStatus;
use gridsync_shared::{DocId, PersonId};
use gridsync_tests::proxy::{seed_from_env, size_from_env};
use gridsync_tests::{Phone, TestServer, assert_converged};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};

fn case_of(phone: &Phone, id: DocId) -> Case {
    match phone.replica.record(id) {
        Some(Record::Case(c)) => c,
        other => panic!("case {id} missing or not a case: {other:?}"),
    }
}

/// The case as the server stores it.
fn stored_case(server: &TestServer, id: DocId) -> Case {
    let stored = server.store().load_doc(id).expect("load").expect("stored");
    let doc = automerge::Automerge::load(&stored.bytes).expect("loads");
    match gridsync_shared::records::read_record(&doc) {
        Ok(Record::Case(c)) => c,
        other => panic!("not a case: {other:?}"),
    }
}

/// Grid managers A and B (B is the one handed cases), supervisors C and D.
async fn crew() -> (TestServer, Vec<Phone>, PersonId) {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let community = grid.parent().expect("community");
    let a = server.phone_in(&grid).await;
    let b = server.phone_in(&grid).await;
    let c = server.supervisor_phone(&community).await;
    let d = server.supervisor_phone(&community).await;
    let b_person = b.replica.identity().expect("b").person;
    (server, vec![a, c, d], b_person)
}

fn set_disabled(server: &TestServer, person: PersonId, disabled: bool) {
    let p = server.store().person(person).expect("store").expect("person");
    if disabled {
        gridsync_server::admin::disable_person(server.store(), None, &p, "test").expect("disable");
    } else {
        gridsync_server::admin::enable_person(server.store(), None, &p, "test").expect("enable");
    }
}

#[tokio::test]
async fn a_refused_handover_keeps_the_follow_ups_written_with_it_and_everyone_receives_them() {
    let (server, mut phones, b) = crew().await;
    let grid = phones[0].grid();
    let case = phones[0].report_case("楼道灯损坏");
    phones[0].sync().await.expect("a syncs");
    phones[1].sync().await.expect("c syncs");
    phones[1].advance(case, CaseStatus::Accepted).expect("c accepts");
    phones[1].sync().await.expect("c syncs");

    // Supervisor C, offline: a follow-up, 交办 to B, another follow-up.
    phones[1].follow_up(case, "已电话联系报事人");
    phones[1].assign(case, b).expect("the phone cannot know B is being disabled");
    phones[1].follow_up(case, "明早安排到现场");
    set_disabled(&server, b, true);

    let reports = phones[1].sync().await.expect("c syncs");
    let refused: Vec<_> = reports.iter().flat_map(|r| r.rejected.iter()).collect();
    assert_eq!(refused.len(), 1, "the 交办 is refused once: {refused:?}");
    assert!(refused[0].1.detail.contains("disabled"), "a clear reason: {}", refused[0].1);
    assert_eq!(reports.iter().map(|r| r.salvaged).sum::<usize>(), 1);
    let shown: Vec<_> = phones[1].replica.rejections().collect();
    assert_eq!(shown.len(), 1, "the phone shows the refusal");
    assert_eq!(shown[0].kept.as_deref(), Some("2 条跟进记录"), "and says what it kept");
    assert_eq!(phones[1].replica.pending_changes(), 0, "the kept follow-ups went up in the same sync");

    let on_server = stored_case(&server, case);
    let notes: Vec<&str> = on_server.follow_ups.iter().map(|f| f.note.as_str()).collect();
    assert_eq!(notes, ["已电话联系报事人", "明早安排到现场"], "both follow-ups reached the server, once each");
    assert_eq!(on_server.assignee(), None, "the refused 交办 is not there");
    assert_eq!(on_server.standing().status, CaseStatus::Accepted);

    for p in phones.iter_mut() {
        p.sync().await.expect("sync");
    }
    let refs: Vec<&Phone> = phones.iter().collect();
    assert_converged(&server, &refs, &grid);
    assert_eq!(case_of(&phones[0], case).follow_ups.len(), 2, "the reporter sees them");

    // The refusal survives the app being closed, with what was kept.
    let c = phones.remove(1).reopen().expect("reopen");
    let shown: Vec<_> = c.replica.rejections().collect();
    assert_eq!(shown[0].kept.as_deref(), Some("2 条跟进记录"));
}

/// What the random run did, for its summary line.
#[derive(Default, Debug)]
struct Tally {
    follow_ups: usize,
    handovers: usize,
    refusals: usize,
    salvaged: usize,
    lost_responses: usize,
    toggles: usize,
}

#[tokio::test]
async fn refused_handovers_amid_lost_responses_and_edits_between_retries_lose_no_follow_up() {
    let seed = seed_from_env("GRIDSYNC_REFUSED_WORK_SEED");
    let steps = size_from_env("GRIDSYNC_REFUSED_WORK_STEPS", 300);
    let mut rng = StdRng::seed_from_u64(seed);
    let (server, mut phones, b) = crew().await;
    let grid = phones[0].grid();
    let mut cases = Vec::new();
    for i in 0..16 {
        cases.push(phones[0].report_case(&format!("事件{i}")));
    }
    phones[0].sync().await.expect("a syncs");
    for p in phones.iter_mut().skip(1) {
        p.sync().await.expect("supervisors sync");
    }
    // Every note written, by case: each must end on the server exactly once.
    let mut written: BTreeMap<DocId, Vec<String>> = BTreeMap::new();
    let mut tally = Tally::default();
    let mut disabled = false;
    let mut trace = Vec::new();
    // At least `steps` steps, and on until the phones kept refused work a few
    // times (a refusal with nothing written beside it keeps nothing).
    for step in 0.. {
        if step >= steps && tally.salvaged >= 5 || step >= steps * 10 {
            break;
        }
        let who = rng.random_range(0..phones.len());
        let case = cases[rng.random_range(0..cases.len())];
        match rng.random_range(0..100) {
            0..35 => {
                let note = format!("跟进{step}");
                phones[who].follow_up(case, &note);
                written.entry(case).or_default().push(note);
                tally.follow_ups += 1;
                trace.push(format!("{step}: phone {who} follows up {case}"));
            }
            35..60 if who > 0 => {
                let standing = case_of(&phones[who], case).standing();
                if standing.status == CaseStatus::Reported {
                    phones[who].advance(case, CaseStatus::Accepted).expect("accept");
                    trace.push(format!("{step}: phone {who} accepts {case}"));
                } else if standing.status == CaseStatus::Accepted && phones[who].assign(case, b).is_ok() {
                    tally.handovers += 1;
                    trace.push(format!("{step}: phone {who} hands {case} to B"));
                } else if standing.status == CaseStatus::Assigned
                    && phones[who].edit(case, |e| e.reopen_case(CaseStatus::Accepted, "交办对象有变，重新交办")).is_ok()
                {
                    trace.push(format!("{step}: phone {who} takes {case} back to accepted"));
                }
            }
            60..68 => {
                disabled = !disabled;
                set_disabled(&server, b, disabled);
                tally.toggles += 1;
                trace.push(format!("{step}: B {}", if disabled { "disabled" } else { "enabled" }));
            }
            68..80 => {
                phones[who].sync_losing_response().await.expect("the server answered");
                tally.lost_responses += 1;
                trace.push(format!("{step}: phone {who} syncs, response lost"));
            }
            _ => {
                let reports = phones[who].sync().await.expect("sync");
                tally.refusals += reports.iter().map(|r| r.rejected.len()).sum::<usize>();
                tally.salvaged += reports.iter().map(|r| r.salvaged).sum::<usize>();
                trace.push(format!("{step}: phone {who} syncs"));
            }
        }
    }
    for _ in 0..2 {
        for p in phones.iter_mut() {
            let reports = p.sync().await.expect("sync");
            tally.refusals += reports.iter().map(|r| r.rejected.len()).sum::<usize>();
            tally.salvaged += reports.iter().map(|r| r.salvaged).sum::<usize>();
        }
    }
    let context = || format!("seed {seed}, {tally:?}\n{}", trace.join("\n"));
    for p in &phones {
        assert_eq!(p.replica.pending_changes(), 0, "nothing waits on any phone\n{}", context());
    }
    for (case, notes) in &written {
        let on_server = stored_case(&server, *case);
        let mut stored: Vec<&str> = on_server.follow_ups.iter().map(|f| f.note.as_str()).collect();
        stored.sort();
        let mut expected: Vec<&str> = notes.iter().map(String::as_str).collect();
        expected.sort();
        assert_eq!(stored, expected, "case {case}: every follow-up written is stored once\n{}", context());
    }
    let refused: BTreeSet<DocId> = phones.iter().flat_map(|p| p.replica.rejections().map(|r| r.doc)).collect();
    assert!(refused.iter().all(|id| cases.contains(id)), "only cases were refused\n{}", context());
    let refs: Vec<&Phone> = phones.iter().collect();
    assert_converged(&server, &refs, &grid);
    assert!(tally.salvaged >= 5, "the run kept refused work a few times\n{}", context());
    println!("refused work: seed {seed}: {tally:?}");
}
