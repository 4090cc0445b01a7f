//! The rule for concurrent case moves, on documents alone: a pushed move is
//! judged against the case as its writer saw it (the change's dependencies),
//! never against a merge its writer had not seen — also when the push carries
//! later edits written after that merge. The merged standing settles the same
//! everywhere, and a move its writer truly could not make is still refused.

use automerge::transaction::{Transactable, Transaction};
use automerge::{ActorId, Automerge, ChangeHash, ObjType, ROOT, ReadDoc, ScalarValue};
use gridsync_shared::records::{CaseFields, CaseKind, Editor, NewRecord, new_record, read_record};
use gridsync_shared::rules::{PushVerdict, RejectReason, check_push};
use gridsync_shared::workflow::{CaseStatus, Standing, StatusMove, possible_moves, standing};
use gridsync_shared::{Author, PersonId, Record, Role, TerritoryPath};
use uuid::Uuid;

const T0: i64 = 1_767_225_600_000;

/// Someone with a phone: who they are and their device's actor.
struct Person {
    author: Author,
    actor: ActorId,
}

fn person(n: u8, role: Role, territory: &str) -> Person {
    Person {
        author: Author {
            person: PersonId(Uuid::from_u128(0x0195_f3a2_7c41_7d2e_9b1a_0000_0000_0000 + u128::from(n))),
            role,
            territory: TerritoryPath::parse(territory).expect("path"),
        },
        actor: ActorId::from(vec![0x20 + n; 16]),
    }
}

/// Grid managers A and B, supervisors C and D over their community.
fn crew() -> [Person; 4] {
    [
        person(0, Role::FieldStaff, "xg/xn/sh/dh/g1"),
        person(1, Role::FieldStaff, "xg/xn/sh/dh/g1"),
        person(2, Role::Supervisor, "xg/xn/sh/dh"),
        person(3, Role::Supervisor, "xg/xn/sh/dh"),
    ]
}

type Move = (StatusMove, CaseStatus);

/// Edits `doc` as `p` with the shared editor (the phone's own checks).
fn edit(doc: &mut Automerge, p: &Person, at: i64, f: impl FnOnce(&mut Editor<'_>)) {
    doc.set_actor(p.actor.clone());
    f(&mut Editor::new(doc, &p.author, at));
}

fn make(doc: &mut Automerge, p: &Person, at: i64, mv: Move) {
    let me = p.author.person;
    edit(doc, p, at, |e| {
        match mv {
            (StatusMove::Advance, CaseStatus::Assigned) => e.assign_case(me),
            (StatusMove::Advance, to) => e.advance_case(to),
            (StatusMove::Reopen, to) => e.reopen_case(to, "复核发现问题"),
        }
        .expect("a move this person may make here");
    });
}

fn follow_up(doc: &mut Automerge, p: &Person, at: i64, note: &str) {
    edit(doc, p, at, |e| {
        e.add_follow_up(note, None).expect("anyone in the grid may follow up");
    });
}

fn case(doc: &Automerge) -> gridsync_shared::records::Case {
    match read_record(doc) {
        Ok(Record::Case(c)) => c,
        other => panic!("not a case: {other:?}"),
    }
}

/// A case reported by A and moved by supervisor C to `at` (epoch 0).
fn case_at(crew: &[Person; 4], at: CaseStatus) -> Automerge {
    let fields = CaseFields {
        kind: CaseKind::Hazard,
        title: "楼道灯损坏".into(),
        description: "3栋楼道灯不亮".into(),
        household: None,
        visit: None,
        due_at: None,
    };
    let grid = crew[0].author.territory.clone();
    let (_, mut doc) =
        new_record(crew[0].actor.clone(), &crew[0].author, &grid, T0, [7; 10], &NewRecord::Case(fields)).expect("new");
    if at != CaseStatus::Reported {
        make(&mut doc, &crew[2], T0 + 1, (StatusMove::Advance, at));
    }
    doc
}

/// Pushes `doc`'s changes since `since` as `p` to the server's `server` copy;
/// on acceptance the server's copy becomes the merge.
fn push(server: &mut Automerge, doc: &Automerge, since: &[ChangeHash], p: &Person) -> Result<(), RejectReason> {
    match check_push(Some(server), doc.get_changes(since), &p.actor, &p.author) {
        Ok(PushVerdict::Accept { merged, .. }) => {
            *server = *merged;
            Ok(())
        }
        Ok(PushVerdict::Duplicate) => panic!("new changes are no duplicate"),
        Err(rejection) => Err(rejection.reason),
    }
}

/// Where two concurrent moves from `at` settle, by the workflow's rule stated
/// independently: any reopen opens epoch 1 at the lowest step reopened to;
/// otherwise the furthest step wins.
fn expected(at: CaseStatus, moves: [Move; 2]) -> Standing {
    match moves.iter().filter(|m| m.0 == StatusMove::Reopen).map(|m| m.1).min() {
        Some(to) => Standing { status: to, epoch: 1 },
        None => Standing { status: moves.iter().map(|m| m.1).fold(at, Ord::max), epoch: 0 },
    }
}

/// Every pair of moves two of the crew may make from every step: the first
/// pushes its move; the second made its move on the same standing, then merged
/// the first's (`merge_first`) or not, wrote a follow-up, and pushes both.
fn every_pair(first: &Person, second: &Person, merge_first: bool) -> usize {
    let crew = crew();
    let mut n = 0;
    for at in CaseStatus::ALL {
        let start = Standing { status: at, epoch: 0 };
        for m1 in possible_moves(start, first.author.role) {
            for m2 in possible_moves(start, second.author.role) {
                let mut server = case_at(&crew, at);
                let seen = server.get_heads();
                let mut one = server.fork();
                let mut two = server.fork();
                make(&mut one, first, T0 + 10, m1);
                push(&mut server, &one, &seen, first).expect("the first move is accepted");
                make(&mut two, second, T0 + 11, m2);
                if merge_first {
                    two.merge(&mut server.clone()).expect("merge");
                }
                follow_up(&mut two, second, T0 + 12, "第二部手机的跟进");
                let what = format!("from {at}: {m1:?} then {m2:?}, merged first: {merge_first}");
                push(&mut server, &two, &seen, second).unwrap_or_else(|r| panic!("{what}: refused as {r:?}"));
                let merged = case(&server);
                assert_eq!(merged.follow_ups.len(), 1, "{what}: the follow-up kept");
                assert_eq!(merged.standing(), expected(at, [m1, m2]), "{what}");
                // Whichever order the changes arrive in, every replica settles the same.
                let mut other_way = two.fork();
                other_way.merge(&mut one.clone()).expect("merge");
                assert_eq!(case(&other_way).standing(), merged.standing(), "{what}");
                n += 1;
            }
        }
    }
    n
}

#[test]
fn concurrent_moves_from_one_standing_are_all_accepted_and_settle_by_the_workflow_rule() {
    // (Two supervisors are covered by the next test, which also merges.)
    let crew = crew();
    let pairs = [(0, 1), (0, 2), (2, 0)];
    let mut n = 0;
    for (a, b) in pairs {
        n += every_pair(&crew[a], &crew[b], false);
    }
    assert!(n > 90, "{n} pairs");
}

#[test]
fn a_move_pushed_with_edits_made_after_merging_a_concurrent_move_is_judged_where_it_was_made() {
    let crew = crew();
    let pairs = [(0, 1), (0, 2), (2, 0), (2, 3)];
    let mut n = 0;
    for (a, b) in pairs {
        n += every_pair(&crew[a], &crew[b], true);
    }
    assert!(n > 300, "{n} pairs");
}

#[test]
fn a_second_move_made_on_the_merged_case_is_judged_on_the_merged_case() {
    // A moves to resolved; C (not yet knowing) accepts; after merging A's
    // move C verifies it: C's push holds a move judged at 已上报 and one
    // judged at 已办结, both right where they were made.
    let crew = crew();
    let mut server = case_at(&crew, CaseStatus::Reported);
    let seen = server.get_heads();
    let mut a = server.fork();
    let mut c = server.fork();
    make(&mut a, &crew[0], T0 + 10, (StatusMove::Advance, CaseStatus::Resolved));
    push(&mut server, &a, &seen, &crew[0]).expect("A's move");
    make(&mut c, &crew[2], T0 + 11, (StatusMove::Advance, CaseStatus::Accepted));
    c.merge(&mut server.clone()).expect("merge");
    make(&mut c, &crew[2], T0 + 12, (StatusMove::Advance, CaseStatus::Verified));
    push(&mut server, &c, &seen, &crew[2]).expect("both of C's moves are accepted");
    let merged = case(&server);
    assert_eq!(merged.status_log.len(), 3);
    assert_eq!(merged.standing(), Standing { status: CaseStatus::Verified, epoch: 0 });
    assert_eq!(merged.standing(), standing(&merged.status_log));
}

/// Appends a status entry as `p` without the editor's checks (a tampered
/// phone), in epoch 0.
fn raw_advance(doc: &mut Automerge, p: &Person, at: i64, to: CaseStatus) {
    doc.set_actor(p.actor.clone());
    let mut tx: Transaction<'_> = doc.transaction();
    let Some((_, list)) = tx.get(ROOT, "status_log").expect("read") else { panic!("no status log") };
    let i = tx.length(&list);
    let entry = tx.insert_object(&list, i, ObjType::Map).expect("insert");
    tx.put(&entry, "id", Uuid::new_v4().to_string()).expect("put");
    tx.put(&entry, "kind", "advance").expect("put");
    tx.put(&entry, "to", to.as_str()).expect("put");
    tx.put(&entry, "epoch", 0u64).expect("put");
    tx.put(&entry, "by", p.author.person.to_string()).expect("put");
    tx.put(&entry, "at", ScalarValue::Timestamp(at)).expect("put");
    tx.commit();
}

#[test]
fn a_move_backwards_from_the_merged_standing_its_writer_saw_is_still_refused() {
    // B merged A's move to resolved, then (a tampered phone) moves the case
    // back to in progress without a reopen: B saw 已办结, so it is backwards.
    let crew = crew();
    let mut server = case_at(&crew, CaseStatus::Accepted);
    let seen = server.get_heads();
    let mut a = server.fork();
    let mut b = server.fork();
    make(&mut a, &crew[0], T0 + 10, (StatusMove::Advance, CaseStatus::Resolved));
    push(&mut server, &a, &seen, &crew[0]).expect("A's move");
    follow_up(&mut b, &crew[1], T0 + 11, "先写的跟进");
    b.merge(&mut server.clone()).expect("merge");
    raw_advance(&mut b, &crew[1], T0 + 12, CaseStatus::InProgress);
    assert_eq!(push(&mut server, &b, &seen, &crew[1]), Err(RejectReason::StatusBackwards));
    assert_eq!(case(&server).status_log.len(), 2, "nothing of the refused push stored");
}

#[test]
fn a_move_its_writers_role_may_not_make_is_refused_even_when_concurrent() {
    let crew = crew();
    let mut server = case_at(&crew, CaseStatus::Accepted);
    let seen = server.get_heads();
    let mut c = server.fork();
    let mut b = server.fork();
    make(&mut c, &crew[2], T0 + 10, (StatusMove::Advance, CaseStatus::Assigned));
    push(&mut server, &c, &seen, &crew[2]).expect("C's move");
    raw_advance(&mut b, &crew[1], T0 + 11, CaseStatus::Closed);
    b.merge(&mut server.clone()).expect("merge");
    follow_up(&mut b, &crew[1], T0 + 12, "后写的跟进");
    assert_eq!(push(&mut server, &b, &seen, &crew[1]), Err(RejectReason::NotPermitted));
}

#[test]
fn a_push_sent_out_of_order_is_judged_the_same() {
    let crew = crew();
    let mut server = case_at(&crew, CaseStatus::Reported);
    let seen = server.get_heads();
    let mut a = server.fork();
    let mut c = server.fork();
    make(&mut a, &crew[0], T0 + 10, (StatusMove::Advance, CaseStatus::InProgress));
    push(&mut server, &a, &seen, &crew[0]).expect("A's move");
    make(&mut c, &crew[2], T0 + 11, (StatusMove::Advance, CaseStatus::Accepted));
    c.merge(&mut server.clone()).expect("merge");
    follow_up(&mut c, &crew[2], T0 + 12, "跟进");
    make(&mut c, &crew[2], T0 + 13, (StatusMove::Advance, CaseStatus::Resolved));
    let mut changes = c.get_changes(&seen);
    changes.retain(|ch| ch.actor_id() == &crew[2].actor);
    changes.reverse();
    match check_push(Some(&server), changes, &crew[2].actor, &crew[2].author) {
        Ok(PushVerdict::Accept { record, .. }) => {
            let Record::Case(merged) = *record else { panic!("a case") };
            assert_eq!(merged.standing().status, CaseStatus::Resolved);
            assert_eq!(merged.follow_ups.len(), 1);
        }
        other => panic!("refused: {other:?}"),
    }
}
