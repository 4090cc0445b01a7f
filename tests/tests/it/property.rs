//! Property: whatever phones do offline, and in whatever order they sync, all
//! phones and the server end in one state — and no follow-up is lost.

use gridsync_shared::Record;
use gridsync_shared::workflow::CaseStatus;
use gridsync_tests::{TestServer, assert_converged};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    RecordVisit,
    FollowUp,
    EditDescription(String),
    Advance(usize),
    Reopen(usize),
    Sync,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::RecordVisit),
        3 => Just(Op::FollowUp),
        2 => "[一-龥a-z ]{0,12}".prop_map(Op::EditDescription),
        3 => (0..CaseStatus::ALL.len()).prop_map(Op::Advance),
        1 => (0..CaseStatus::ALL.len()).prop_map(Op::Reopen),
        4 => Just(Op::Sync),
    ]
}

async fn run(ops: Vec<(usize, Op)>) {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phones = [
        server.phone_in(&grid).await,
        server.phone_in(&grid).await,
        server.supervisor_phone(&grid.parent().expect("community")).await,
    ];
    let case = phones[0].report_case("井盖缺失");
    for p in phones.iter_mut() {
        p.sync().await.expect("initial sync");
    }

    let mut follow_ups = 0;
    for (who, op) in ops {
        let phone = &mut phones[who];
        match op {
            Op::RecordVisit => {
                phone.replica.create(Some(&grid), phone.clock, &visit()).expect("visit");
            }
            Op::FollowUp => {
                phone.follow_up(case, &format!("跟进 {follow_ups}"));
                follow_ups += 1;
            }
            Op::EditDescription(text) => {
                let edited = phone.edit(case, |e| {
                    let Record::Case(c) = e.record()? else { panic!("not a case") };
                    let mut f = c.fields;
                    f.description = text;
                    e.update_case(&f)
                });
                // Phone 1 is field staff who did not report the case: only the reporter and supervisors edit it.
                match (who, &edited) {
                    (1, Ok(Some(_))) => panic!("field staff edited a case they did not report"),
                    (1, _) => {}
                    (_, Err(e)) => panic!("the reporter or a supervisor could not edit: {e}"),
                    _ => {}
                }
            }
            // Moves the phone's own rules refuse (backwards, not its role) are simply not made.
            Op::Advance(step) => {
                let _ = phone.advance(case, CaseStatus::ALL[step]);
            }
            Op::Reopen(step) => {
                let _ = phone.edit(case, |e| e.reopen_case(CaseStatus::ALL[step], "复查未通过"));
            }
            Op::Sync => {
                let reports = phone.sync().await.expect("sync");
                assert!(reports.iter().all(|r| r.rejected.is_empty()), "valid edits are never rejected: {reports:?}");
            }
        }
    }
    for _ in 0..2 {
        for p in phones.iter_mut() {
            let reports = p.sync().await.expect("final sync");
            assert!(reports.iter().all(|r| r.rejected.is_empty()), "valid edits are never rejected: {reports:?}");
        }
    }
    let refs: Vec<_> = phones.iter().collect();
    assert_converged(&server, &refs, &grid);
    let Some(Record::Case(c)) = phones[1].replica.record(case) else { panic!("case missing") };
    assert_eq!(c.follow_ups.len(), follow_ups, "every follow-up survives");
    server.stop().await;
}

fn visit() -> gridsync_shared::records::NewRecord {
    gridsync_shared::records::NewRecord::VisitLog(gridsync_shared::records::VisitFields {
        visited_at: 1,
        notes: "例行走访".into(),
        ..Default::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_offline_edits_and_sync_orders_always_converge(ops in prop::collection::vec((0..3usize, op()), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(run(ops));
    }
}
