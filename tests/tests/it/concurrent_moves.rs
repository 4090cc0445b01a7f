//! Two phones move one case at once, through the real server: for every pair
//! of moves the workflow allows from one standing, both moves and every
//! follow-up survive, all converge, and the case settles where the workflow's
//! merge rule says — also when the second phone learned of the first move
//! before its own went up (a sync already on its way when it moved).

use gridsync_client::SyncReport;
use gridsync_shared::records::{FollowUp, Record};
use gridsync_shared::workflow::{CaseStatus, Standing, StatusMove, possible_moves, standing};
use gridsync_shared::{DocId, Role};
use gridsync_tests::{Phone, TestServer, assert_converged};

/// One status move: advance or reopen, and the step it goes to.
type Move = (StatusMove, CaseStatus);

/// Makes `mv` on `phone`, offline. A move to assigned (交办) hands the case to
/// the phone's own person.
fn make(phone: &mut Phone, case: DocId, mv: Move) {
    match mv {
        (StatusMove::Advance, to) => phone.advance(case, to).expect("a legal advance"),
        (StatusMove::Reopen, to) => {
            phone.edit(case, |e| e.reopen_case(to, "复核发现问题，退回重办")).map(|_| ()).expect("a legal reopen")
        }
    }
}

fn case_of(phone: &Phone, id: DocId) -> gridsync_shared::records::Case {
    match phone.replica.record(id) {
        Some(Record::Case(c)) => c,
        other => panic!("case {id} missing or not a case: {other:?}"),
    }
}

fn role_of(phone: &Phone) -> Role {
    phone.replica.identity().expect("signed in").role
}

fn no_refusals(who: &str, reports: &[SyncReport]) {
    let refused: Vec<_> = reports.iter().flat_map(|r| r.rejected.iter()).collect();
    assert!(refused.is_empty(), "{who}: both authors were entitled to their moves, yet: {refused:?}");
}

/// Where two concurrent moves from `at` (epoch 0) settle, by the workflow's
/// rule stated independently: a reopen opens epoch 1 and the lowest step any
/// reopen went back to counts (advances of epoch 0 no longer do); otherwise
/// the furthest step wins.
fn expected(at: CaseStatus, moves: [Move; 2]) -> Standing {
    let back = moves.iter().filter(|m| m.0 == StatusMove::Reopen).map(|m| m.1).min();
    match back {
        Some(to) => Standing { status: to, epoch: 1 },
        None => Standing { status: moves.iter().map(|m| m.1).fold(at, Ord::max), epoch: 0 },
    }
}

/// How the second phone's move meets the first's.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Meeting {
    /// Both offline; the second syncs after the first.
    Offline,
    /// The second phone moves while a sync is on its way: the response brings
    /// the first phone's move before its own has gone up, and its follow-up
    /// is written on the merged case.
    WhileSyncing,
}

/// One scenario: a case at `at`, the first phone's move, the second's.
struct Scenario {
    case: DocId,
    at: CaseStatus,
    moves: [Move; 2],
    meeting: Meeting,
    log_before: usize,
}

/// Runs pairs of legal moves from every step for the phones `first` and
/// `second` (indexes into `phones`): every move of the second phone against
/// every move of the first that `firsts` keeps, met in every way;
/// `phones[2]` is the supervisor who brings each case to its step beforehand.
async fn pairs_of_moves(
    server: &TestServer,
    phones: &mut [Phone],
    first: usize,
    second: usize,
    firsts: fn(Vec<Move>) -> Vec<Move>,
) -> usize {
    let grid = phones[0].grid();
    let (r1, r2) = (role_of(&phones[first]), role_of(&phones[second]));
    let mut scenarios = Vec::new();
    for at in CaseStatus::ALL {
        let start = Standing { status: at, epoch: 0 };
        for m1 in firsts(possible_moves(start, r1)) {
            for m2 in possible_moves(start, r2) {
                for meeting in [Meeting::Offline, Meeting::WhileSyncing] {
                    let case = phones[0].report_case(&format!("{at}: {m1:?} 与 {m2:?} 同时 ({meeting:?})"));
                    scenarios.push(Scenario { case, at, moves: [m1, m2], meeting, log_before: 0 });
                }
            }
        }
    }
    phones[0].sync().await.expect("reporter syncs");
    // The supervisor brings each case to its step; everyone hears of it.
    phones[2].sync().await.expect("supervisor syncs");
    for s in &scenarios {
        if s.at != CaseStatus::Reported {
            phones[2].advance(s.case, s.at).expect("supervisor moves the case to its step");
        }
    }
    phones[2].sync().await.expect("supervisor syncs the moves");
    for p in phones.iter_mut() {
        p.sync().await.expect("sync");
    }
    for s in &mut scenarios {
        s.log_before = case_of(&phones[second], s.case).status_log.len();
        assert_eq!(case_of(&phones[first], s.case).standing(), Standing { status: s.at, epoch: 0 });
    }

    // The first phone moves and writes a follow-up, offline, and syncs.
    for s in &scenarios {
        make(&mut phones[first], s.case, s.moves[0]);
        phones[first].follow_up(s.case, "第一部手机的跟进");
    }
    let reports = phones[first].sync().await.expect("first syncs");
    no_refusals("first phone", &reports);

    // The second phone: offline moves, then a follow-up; for `WhileSyncing`
    // its moves are made while a request is on its way, whose response brings
    // the first phone's moves, and the follow-up comes after that merge.
    for s in scenarios.iter().filter(|s| s.meeting == Meeting::Offline) {
        make(&mut phones[second], s.case, s.moves[1]);
        phones[second].follow_up(s.case, "第二部手机的跟进");
    }
    // One response page holds every case's news.
    let on_its_way = phones[second].replica.build_request_with_page(gridsync_shared::protocol::PAGE_BYTES_RANGE.1);
    for s in scenarios.iter().filter(|s| s.meeting == Meeting::WhileSyncing) {
        make(&mut phones[second], s.case, s.moves[1]);
    }
    let response = phones[second].post_sync(&on_its_way).await.expect("the request on its way");
    phones[second].clock += 1;
    let now = phones[second].clock;
    let report = phones[second].replica.apply_response(&response, now).expect("response applies");
    assert!(!report.more, "one page");
    no_refusals("second phone, the sync on its way", std::slice::from_ref(&report));
    for s in scenarios.iter().filter(|s| s.meeting == Meeting::WhileSyncing) {
        assert_eq!(case_of(&phones[second], s.case).status_log.len(), s.log_before + 2, "both moves on the phone");
        phones[second].follow_up(s.case, "第二部手机的跟进");
    }
    let reports = phones[second].sync().await.expect("second syncs");
    no_refusals("second phone", &reports);

    for p in phones.iter_mut() {
        let reports = p.sync().await.expect("everyone syncs again");
        no_refusals("a final sync", &reports);
        assert_eq!(p.replica.pending_changes(), 0, "every change acknowledged");
    }
    let refs: Vec<&Phone> = phones.iter().collect();
    assert_converged(server, &refs, &grid);

    for s in &scenarios {
        let on_server = match server.document(s.case).map(|d| gridsync_shared::records::read_record(&d)) {
            Some(Ok(Record::Case(c))) => c,
            other => panic!("case {} on the server: {other:?}", s.case),
        };
        let what = format!("from {} with {:?} then {:?} ({:?})", s.at, s.moves[0], s.moves[1], s.meeting);
        let notes: Vec<&str> = on_server.follow_ups.iter().map(|f: &FollowUp| f.note.as_str()).collect();
        assert!(
            notes.contains(&"第一部手机的跟进") && notes.contains(&"第二部手机的跟进"),
            "{what}: a follow-up was lost: {notes:?}"
        );
        assert_eq!(on_server.status_log.len(), s.log_before + 2, "{what}: both moves kept");
        assert_eq!(on_server.standing(), standing(&on_server.status_log));
        assert_eq!(on_server.standing(), expected(s.at, s.moves), "{what}: settles by the workflow's rule");
        for p in phones.iter() {
            assert_eq!(case_of(p, s.case).standing(), on_server.standing(), "{what}: every replica agrees");
        }
    }
    scenarios.len()
}

fn every(moves: Vec<Move>) -> Vec<Move> {
    moves
}

/// The nearest and furthest move forward, and the nearest and furthest reopen.
fn ends(moves: Vec<Move>) -> Vec<Move> {
    let mut kept = Vec::new();
    for kind in [StatusMove::Advance, StatusMove::Reopen] {
        let of_kind: Vec<Move> = moves.iter().copied().filter(|m| m.0 == kind).collect();
        kept.extend(of_kind.first());
        kept.extend(of_kind.last().filter(|_| of_kind.len() > 1));
    }
    kept
}

/// Four people in one grid: grid managers A (who reports every case) and B,
/// supervisors C (who brings cases to their step) and D over the community.
async fn crew() -> (TestServer, Vec<Phone>) {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let community = grid.parent().expect("community");
    let a = server.phone_in(&grid).await;
    let b = server.phone_in(&grid).await;
    let c = server.supervisor_phone(&community).await;
    let d = server.supervisor_phone(&community).await;
    (server, vec![a, b, c, d])
}

#[tokio::test]
async fn a_grid_manager_and_a_supervisor_moving_one_case_at_once_both_keep_their_work() {
    let (server, mut phones) = crew().await;
    let n = pairs_of_moves(&server, &mut phones, 0, 2, every).await;
    let m = pairs_of_moves(&server, &mut phones, 2, 0, every).await;
    assert!(n > 30 && m > 30, "{n} and {m} scenarios");
}

#[tokio::test]
async fn two_grid_managers_moving_one_case_at_once_both_keep_their_work() {
    let (server, mut phones) = crew().await;
    let n = pairs_of_moves(&server, &mut phones, 0, 1, every).await;
    assert!(n > 10, "{n} scenarios");
}

#[tokio::test]
async fn two_supervisors_moving_one_case_at_once_both_keep_their_work() {
    let (server, mut phones) = crew().await;
    // Every move of the second supervisor against the first's nearest and
    // furthest move each way (shared/tests/concurrent_moves.rs judges every
    // pair on documents alone): seconds, not a minute.
    let n = pairs_of_moves(&server, &mut phones, 2, 3, ends).await;
    assert!(n > 100, "{n} scenarios");
}

#[tokio::test]
async fn a_concurrent_move_the_server_refuses_is_refused_with_its_reason_and_the_other_phones_move_stays() {
    // Supervisor C hands a case (交办) to grid manager B while B is being
    // disabled; grid manager A meanwhile moves the same case on. Only C's
    // move is refused, with the reason; A's move and everything acknowledged
    // before stay, and all converge.
    let (server, mut phones) = crew().await;
    let grid = phones[0].grid();
    let case = phones[0].report_case("路灯损坏");
    phones[0].sync().await.expect("a syncs");
    phones[2].sync().await.expect("c syncs");
    phones[2].advance(case, CaseStatus::Accepted).expect("c accepts");
    phones[2].follow_up(case, "已受理，待交办");
    phones[2].sync().await.expect("c syncs");
    phones[0].sync().await.expect("a syncs");

    let b = phones[1].replica.identity().expect("b").person;
    phones[2].assign(case, b).expect("the phone cannot know B is being disabled");
    phones[0].advance(case, CaseStatus::InProgress).expect("a moves on");
    phones[0].sync().await.expect("a syncs");
    let person = server.store().person(b).expect("store").expect("person");
    gridsync_server::admin::disable_person(server.store(), None, &person, "test").expect("disable b");

    let reports = phones[2].sync().await.expect("c syncs");
    let refused: Vec<_> = reports.iter().flat_map(|r| r.rejected.iter()).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, case);
    assert!(refused[0].1.detail.contains("disabled"), "a clear reason: {}", refused[0].1);
    assert_eq!(phones[2].replica.rejections().count(), 1, "the phone shows the refusal");

    phones.remove(1);
    for p in phones.iter_mut() {
        p.sync().await.expect("sync");
    }
    let refs: Vec<&Phone> = phones.iter().collect();
    assert_converged(&server, &refs, &grid);
    let c = case_of(&phones[1], case);
    assert_eq!(c.standing(), Standing { status: CaseStatus::InProgress, epoch: 0 }, "A's move stays");
    assert_eq!(c.follow_ups.len(), 1, "the acknowledged follow-up stays");
    assert_eq!(c.assignee(), None, "the refused 交办 is gone");
}
