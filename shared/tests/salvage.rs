//! After the server refuses a push, the phone keeps what was written with the
//! refused part: follow-ups, outcomes, photos and field edits are made again on
//! top of the server's copy without the decisions (status moves, voids), then
//! without the field edits, and each step leaves out something, so a record
//! the server keeps refusing ends in a roll-back.

use automerge::{ActorId, Automerge, ChangeHash};
use gridsync_shared::records::{Case, CaseFields, CaseKind, Editor, NewRecord, new_record, read_record, salvage};
use gridsync_shared::rules::{PushVerdict, check_push};
use gridsync_shared::workflow::{CaseStatus, Standing};
use gridsync_shared::{Author, PersonId, Record, Role, TerritoryPath};
use uuid::Uuid;

const T0: i64 = 1_767_225_600_000;

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
        actor: ActorId::from(vec![0x40 + n; 16]),
    }
}

fn grid_manager() -> Person {
    person(0, Role::FieldStaff, "xg/xn/sh/dh/g1")
}

fn supervisor() -> Person {
    person(2, Role::Supervisor, "xg/xn/sh/dh")
}

fn colleague() -> PersonId {
    person(1, Role::FieldStaff, "xg/xn/sh/dh/g1").author.person
}

fn fields(title: &str) -> CaseFields {
    CaseFields {
        kind: CaseKind::Hazard,
        title: title.into(),
        description: "3栋楼道灯不亮".into(),
        household: None,
        visit: None,
        due_at: None,
    }
}

/// A case reported by the grid manager and accepted by the supervisor: the server's copy.
fn accepted_case() -> Automerge {
    let gm = grid_manager();
    let grid = gm.author.territory.clone();
    let (_, mut doc) =
        new_record(gm.actor.clone(), &gm.author, &grid, T0, [7; 10], &NewRecord::Case(fields("楼道灯损坏")))
            .expect("new");
    edit(&mut doc, &supervisor(), T0 + 1, |e| {
        e.advance_case(CaseStatus::Accepted).expect("accept");
    });
    doc
}

/// The phone's copy of `base`, edited offline by `p`.
fn offline(base: &Automerge, p: &Person, f: impl FnOnce(&mut Editor<'_>)) -> Automerge {
    let mut doc = base.fork();
    edit(&mut doc, p, T0 + 10, f);
    doc
}

fn edit(doc: &mut Automerge, p: &Person, at: i64, f: impl FnOnce(&mut Editor<'_>)) {
    doc.set_actor(p.actor.clone());
    f(&mut Editor::new(doc, &p.author, at));
}

fn case(doc: &Automerge) -> Case {
    match read_record(doc) {
        Ok(Record::Case(c)) => c,
        other => panic!("not a case: {other:?}"),
    }
}

/// The server accepts what the salvage made, pushed on top of `base`.
fn accepted(base: &Automerge, remade: &Automerge, p: &Person) -> Automerge {
    let since: Vec<ChangeHash> = base.get_heads();
    match check_push(Some(base), remade.get_changes(&since), &p.actor, &p.author) {
        Ok(PushVerdict::Accept { merged, .. }) => *merged,
        other => panic!("the kept work is a valid push: {other:?}"),
    }
}

#[test]
fn a_refused_handover_keeps_the_follow_ups_written_before_and_after_it() {
    let c = supervisor();
    let base = accepted_case();
    let local = offline(&base, &c, |e| {
        e.add_follow_up("已电话联系报事人", None).expect("follow-up");
        e.assign_case(colleague()).expect("交办");
        e.add_follow_up("明早到现场查看", None).expect("follow-up");
    });
    let written = case(&local);
    let remade = salvage(&read_record(&local).expect("record"), Some(&base), c.actor.clone(), &c.author, T0 + 20)
        .expect("salvage")
        .expect("something to keep");
    assert_eq!((remade.carried.follow_ups, remade.carried.moves, remade.carried.fields), (2, 0, false));
    assert_eq!(remade.carried.describe_zh(), "2 条跟进记录");

    let server = accepted(&base, &remade.doc, &c);
    let kept = case(&server);
    assert_eq!(kept.follow_ups, written.follow_ups, "both follow-ups, with their own ids, words and times");
    assert_eq!(kept.standing(), Standing { status: CaseStatus::Accepted, epoch: 0 }, "the 交办 is left out");
    assert_eq!(kept.assignee(), None);
}

#[test]
fn a_refused_move_with_nothing_written_beside_it_leaves_nothing_to_keep() {
    let c = supervisor();
    let base = accepted_case();
    let local = offline(&base, &c, |e| {
        e.assign_case(colleague()).expect("交办");
    });
    let kept = salvage(&read_record(&local).expect("record"), Some(&base), c.actor.clone(), &c.author, T0 + 20)
        .expect("salvage");
    assert!(kept.is_none(), "only the refused move was pending: roll back");
}

#[test]
fn refused_again_the_field_edits_go_next_and_then_everything_is_rolled_back() {
    let c = supervisor();
    let base = accepted_case();
    let local = offline(&base, &c, |e| {
        e.update_case(&fields("楼道灯与电梯故障")).expect("retitle");
        e.add_follow_up("电梯也有异响", None).expect("follow-up");
        e.advance_case(CaseStatus::InProgress).expect("move on");
    });
    let salvage_of = |doc: &Automerge| {
        salvage(&read_record(doc).expect("record"), Some(&base), c.actor.clone(), &c.author, T0 + 20).expect("salvage")
    };

    let first = salvage_of(&local).expect("first: without the move");
    assert_eq!((first.carried.fields, first.carried.follow_ups, first.carried.moves), (true, 1, 0));
    assert_eq!(case(&first.doc).fields.title, "楼道灯与电梯故障");
    assert_eq!(case(&first.doc).standing().status, CaseStatus::Accepted);

    // The server refuses that too: the phone now holds base + the first salvage.
    let second = salvage_of(&first.doc).expect("second: only the follow-up");
    assert_eq!((second.carried.fields, second.carried.follow_ups), (false, 1));
    assert_eq!(case(&second.doc).fields.title, "楼道灯损坏", "the server's title");
    assert_eq!(case(&second.doc).follow_ups.len(), 1);
    accepted(&base, &second.doc, &c);

    assert!(salvage_of(&second.doc).is_none(), "refused a third time: nothing left to leave out");
}

#[test]
fn a_new_case_reported_with_a_refused_handover_is_kept_without_it() {
    let c = supervisor();
    let grid = grid_manager().author.territory.clone();
    let (_, mut local) =
        new_record(c.actor.clone(), &c.author, &grid, T0, [9; 10], &NewRecord::Case(fields("井盖缺失"))).expect("new");
    edit(&mut local, &c, T0 + 1, |e| {
        e.advance_case(CaseStatus::Accepted).expect("accept");
        e.add_follow_up("已设置警示标志", None).expect("follow-up");
        e.assign_case(colleague()).expect("交办");
    });
    let remade = salvage(&read_record(&local).expect("record"), None, c.actor.clone(), &c.author, T0 + 20)
        .expect("salvage")
        .expect("the case is kept");
    let kept = case(&remade.doc);
    assert_eq!(kept.fields.title, "井盖缺失");
    assert_eq!(kept.follow_ups.len(), 1);
    assert_eq!(kept.standing().status, CaseStatus::Reported, "every move left out, to be made again");
    match check_push(None, remade.doc.get_changes(&[]), &c.actor, &c.author) {
        Ok(PushVerdict::Accept { .. }) => {}
        other => panic!("a new record the server takes: {other:?}"),
    }
}

#[test]
fn a_refused_visit_log_has_no_decision_to_leave_out_and_is_rolled_back() {
    let gm = grid_manager();
    let grid = gm.author.territory.clone();
    let visit =
        gridsync_shared::records::VisitFields { notes: "入户走访".into(), visited_at: T0, ..Default::default() };
    let (_, local) =
        new_record(gm.actor.clone(), &gm.author, &grid, T0, [3; 10], &NewRecord::VisitLog(visit)).expect("new");
    let kept =
        salvage(&read_record(&local).expect("record"), None, gm.actor.clone(), &gm.author, T0 + 20).expect("salvage");
    assert!(kept.is_none());
}
