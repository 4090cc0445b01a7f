//! A grid manager moved to another grid loses no work: what their phone made
//! before the move still goes up into the previous grid, then the phone drops
//! the old grid's records and holds the new grid's — and after that the old
//! grid is closed to them.

use gridsync_server::admin::{AdminCommand, PersonCommand, execute};
use gridsync_shared::Record;
use gridsync_shared::protocol::{DocPush, PushOutcome};
use gridsync_shared::records::{Editor, read_record};
use gridsync_shared::rules::RejectReason;
use gridsync_shared::{Author, DocId, Role, TerritoryPath};
use gridsync_tests::{Phone, TestServer, assert_converged};

fn move_person(server: &TestServer, username: &str, to: &TerritoryPath) {
    let command =
        AdminCommand::Person(PersonCommand::Move { username: username.into(), territory: to.as_str().into() });
    execute(server.store(), command, "cli").expect("move");
}

fn follow_ups(server: &TestServer, case: DocId) -> usize {
    match read_record(&server.document(case).expect("case")) {
        Ok(Record::Case(c)) => c.follow_ups.len(),
        other => panic!("not a case: {other:?}"),
    }
}

async fn clean_sync(phone: &mut Phone) {
    for r in phone.sync().await.expect("sync") {
        assert!(r.rejected.is_empty(), "nothing refused: {:?}", r.rejected);
    }
}

#[tokio::test]
async fn work_made_before_a_move_reaches_the_old_grid_and_then_the_phone_holds_only_the_new_grid() {
    for learns_of_move_first in [false, true] {
        let server = TestServer::start().await;
        let (old, new) = (server.grid("g1"), server.grid("g2"));
        let mut there = server.phone_in(&new).await;
        there.record_visit("新网格原有的走访");
        clean_sync(&mut there).await;

        let username = server.person(Role::FieldStaff, &old);
        let mut phone = server.phone_for(&username).await;
        let case = phone.report_case("下水道堵塞");
        clean_sync(&mut phone).await;

        // Offline: more work in the old grid; meanwhile the person is moved.
        phone.follow_up(case, "已联系疏通");
        let visit = phone.record_visit("移交前最后一次走访");
        move_person(&server, &username, &new);
        if learns_of_move_first {
            assert_eq!(phone.refresh_territory().await.expect("me"), 0, "records with work waiting stay");
        }

        clean_sync(&mut phone).await;
        assert_eq!(follow_ups(&server, case), 1, "the follow-up made before the move reached the old grid");
        assert!(server.document(visit).is_some(), "the visit made before the move reached the old grid");

        phone.refresh_territory().await.expect("me");
        clean_sync(&mut phone).await;
        assert!(phone.replica.document(case).is_none() && phone.replica.document(visit).is_none(), "old grid dropped");
        assert_converged(&server, &[&phone, &there], &new);

        // Pending work is done: the old grid is closed to this person now.
        let push = follow_up_as_if_still_in(&phone, &server, &old, case);
        let response = phone.push_raw(vec![push]).await.expect("answered");
        assert!(
            matches!(&response.results[0].outcome, PushOutcome::Rejected(r) if r.reason == RejectReason::OutsideTerritory),
            "{:?}",
            response.results[0].outcome
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_person_moved_twice_before_syncing_still_gets_the_work_of_both_earlier_grids_up() {
    let server = TestServer::start().await;
    let (first, second, third) = (server.grid("g1"), server.grid("g2"), server.grid("g3"));
    let username = server.person(Role::FieldStaff, &first);
    let mut phone = server.phone_for(&username).await;
    let case = phone.report_case("楼道堆放杂物");
    clean_sync(&mut phone).await;

    // Offline all along: work in the first grid, then two moves in a row.
    phone.follow_up(case, "已通知住户清理");
    let visit = phone.record_visit("第一网格的最后一次走访");
    move_person(&server, &username, &second);
    move_person(&server, &username, &third);

    clean_sync(&mut phone).await;
    assert_eq!(follow_ups(&server, case), 1, "the follow-up reached the first grid");
    assert!(server.document(visit).is_some(), "the visit reached the first grid");
    phone.refresh_territory().await.expect("me");
    clean_sync(&mut phone).await;
    assert!(phone.replica.document(case).is_none(), "the first grid left the phone");
    server.stop().await;
}

/// A follow-up to `case` written with the moved phone's own actor, as a
/// tampered app still counting itself in the old grid would write it.
fn follow_up_as_if_still_in(phone: &Phone, server: &TestServer, old: &TerritoryPath, case: DocId) -> DocPush {
    let identity = phone.replica.identity().expect("signed in").clone();
    let actor = gridsync_shared::ids::actor_from_hex(&identity.actor).expect("actor");
    let mut doc = server.document(case).expect("case").fork().with_actor(actor);
    let before = doc.get_heads();
    let author = Author { person: identity.person, role: identity.role, territory: old.clone() };
    Editor::new(&mut doc, &author, gridsync_tests::now_ms()).add_follow_up("迁出以后的跟进", None).expect("edit");
    DocPush { doc: case, changes: doc.get_changes(&before).iter().map(|c| c.raw_bytes().to_vec()).collect() }
}
