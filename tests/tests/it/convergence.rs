//! Phones that worked offline on the same records end, after syncing in any
//! order, with identical documents — and nothing anyone wrote is lost.

use gridsync_shared::Record;
use gridsync_shared::workflow::CaseStatus;
use gridsync_tests::{Phone, TestServer, assert_converged};

/// Three phones on one case: two field staff and their supervisor.
struct Scene {
    server: TestServer,
    phones: Vec<Phone>,
    case: gridsync_shared::DocId,
}

async fn three_phones_share_a_case() -> Scene {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let community = grid.parent().expect("community");
    let mut a = server.phone_in(&grid).await;
    let mut b = server.phone_in(&grid).await;
    let mut c = server.supervisor_phone(&community).await;
    let case = a.report_case("楼道堆放杂物引发邻里纠纷");
    a.sync().await.expect("a syncs");
    b.sync().await.expect("b syncs");
    c.sync().await.expect("c syncs");
    Scene { server, phones: vec![a, b, c], case }
}

#[tokio::test]
async fn three_offline_phones_editing_one_case_converge_in_every_sync_order() {
    let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    for order in orders {
        let Scene { server, mut phones, case } = three_phones_share_a_case().await;
        let grid = phones[0].grid();

        // All offline now. Each edits the description, adds a follow-up, moves the case, logs a visit.
        phones[0]
            .edit(case, |e| {
                let Record::Case(c) = e.record()? else { panic!("not a case") };
                let mut f = c.fields;
                f.description = "三楼住户在楼道堆放纸箱。".into();
                e.update_case(&f)
            })
            .expect("a edits description");
        phones[0].follow_up(case, "已与三楼住户沟通，同意本周清理");
        phones[0].advance(case, CaseStatus::InProgress).expect("a: in progress");
        phones[0].record_visit("走访三楼住户，了解堆放原因");

        phones[1].follow_up(case, "四楼住户反映消防通道被堵");
        phones[1].advance(case, CaseStatus::Resolved).expect("b: resolved");
        phones[1].record_visit("回访四楼住户");

        phones[2].follow_up(case, "社区已协调物业协助清运");
        phones[2].advance(case, CaseStatus::Assigned).expect("c: assigned");
        let visit_grid = grid.clone();
        let now = phones[2].clock + 1;
        phones[2]
            .replica
            .create(
                Some(&visit_grid),
                now,
                &gridsync_shared::records::NewRecord::VisitLog(gridsync_shared::records::VisitFields {
                    visited_at: now,
                    notes: "负责人现场查看".into(),
                    ..Default::default()
                }),
            )
            .expect("c logs a visit");

        // Sync in this order, then once more each so everyone hears of everything.
        for &i in order.iter().chain(order.iter()) {
            let reports = phones[i].sync().await.expect("sync");
            assert!(reports.iter().all(|r| r.rejected.is_empty()), "nothing here breaks a rule: {reports:?}");
        }

        let refs: Vec<&Phone> = phones.iter().collect();
        assert_converged(&server, &refs, &grid);
        let Some(Record::Case(merged)) = phones[0].replica.record(case) else { panic!("case missing") };
        assert_eq!(merged.follow_ups.len(), 3, "order {order:?}: every follow-up survives");
        assert_eq!(merged.standing().status, CaseStatus::Resolved, "order {order:?}: furthest step wins");
        assert!(merged.fields.description.contains("纸箱"), "order {order:?}: text edit kept");
        assert_eq!(server.doc_ids(&grid).len(), 4, "order {order:?}: the case and three visit logs");
        for p in &phones {
            assert_eq!(p.replica.pending_changes(), 0);
        }
    }
}
