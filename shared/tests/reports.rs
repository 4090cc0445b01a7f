//! The figures administrators report, computed from hand-made records: each
//! test builds documents with the real editor, reads them back as records,
//! and checks one definition of `gridsync_shared::reports`.

use automerge::{ActorId, Automerge};
use gridsync_shared::photos::{NewPhoto, PhotoHash, PhotoType};
use gridsync_shared::records::*;
use gridsync_shared::reports::{Period, Report, ReportBuilder, report};
use gridsync_shared::territory::Level;
use gridsync_shared::workflow::CaseStatus;
use gridsync_shared::{Author, DocId, PersonId, Role, TerritoryPath};

/// Start of the reported period; records are placed around it.
const FROM: i64 = 1_700_000_000_000;
/// End of the reported period (exclusive).
const TO: i64 = FROM + 1_000_000;
/// "Now" for overdue cases, well after the period.
const NOW: i64 = TO + 5_000_000;

fn path(s: &str) -> TerritoryPath {
    s.parse().expect("territory path")
}

const SUB: &str = "xg/xn/sh";
const G1: &str = "xg/xn/sh/dh/g1";
const G2: &str = "xg/xn/sh/dh/g2";
const G3: &str = "xg/xn/sh/xy/g3";

fn staff(grid: &str) -> Author {
    let n = grid.bytes().fold(7u128, |a, b| a * 31 + u128::from(b));
    Author { person: PersonId(uuid::Uuid::from_u128(n)), role: Role::FieldStaff, territory: path(grid) }
}

fn supervisor() -> Author {
    Author { person: PersonId(uuid::Uuid::from_u128(99)), role: Role::Supervisor, territory: path(SUB) }
}

/// Documents made with the real editor, in creation order.
#[derive(Default)]
struct World {
    docs: Vec<(DocId, Automerge)>,
}

impl World {
    fn create(&mut self, grid: &str, at: i64, new: NewRecord) -> usize {
        let n = self.docs.len() as u8;
        let (id, doc) = new_record(ActorId::random(), &staff(grid), &path(grid), at, [n; 10], &new).expect("create");
        self.docs.push((id, doc));
        self.docs.len() - 1
    }

    fn edit<T>(&mut self, i: usize, author: &Author, at: i64, f: impl FnOnce(&mut Editor<'_>) -> Result<T, EditError>) {
        let doc = &mut self.docs[i].1;
        let mut editor = Editor::new(doc, author, at);
        f(&mut editor).expect("edit");
    }

    fn id(&self, i: usize) -> DocId {
        self.docs[i].0
    }

    fn household(&mut self, grid: &str, at: i64, needy: bool) -> usize {
        let tags = if needy { vec!["独居老人".into(), "困难群众".into()] } else { vec!["独居老人".into()] };
        let fields =
            HouseholdFields { address: "东湖路1号".into(), head: "陈桂英".into(), tags, ..Default::default() };
        self.create(grid, at, NewRecord::Household(fields))
    }

    fn visit(&mut self, grid: &str, at: i64, household: Option<usize>) -> usize {
        let fields = VisitFields {
            household: household.map(|h| self.id(h)),
            visited_at: at,
            kind: Some(VisitKind::Routine),
            ..Default::default()
        };
        // A visit log may be written a while after the visit itself.
        self.create(grid, at + 10, NewRecord::VisitLog(fields))
    }

    fn case(&mut self, grid: &str, at: i64, kind: CaseKind, due_at: Option<i64>) -> usize {
        let fields = CaseFields {
            kind,
            title: "楼道堆放杂物".into(),
            description: String::new(),
            household: None,
            visit: None,
            due_at,
        };
        self.create(grid, at, NewRecord::Case(fields))
    }

    fn promise(&mut self, grid: &str, at: i64) -> usize {
        self.promise_due(grid, at, at + 1_000)
    }

    fn promise_due(&mut self, grid: &str, at: i64, due_at: i64) -> usize {
        let fields = PromiseFields { content: "修好路灯".into(), household: None, due_at };
        self.create(grid, at, NewRecord::Promise(fields))
    }

    fn void(&mut self, i: usize, author: &Author, at: i64) {
        self.edit(i, author, at, |e| e.void_record("重复录入"));
    }

    fn records(&self) -> Vec<(DocId, Record)> {
        self.docs.iter().map(|(id, doc)| (*id, read_record(doc).expect("read"))).collect()
    }

    fn report(&self, scope: &str) -> Report {
        let records = self.records();
        report(records.iter().map(|(id, r)| (*id, r)), &path(scope), Period::new(FROM, TO), NOW)
    }
}

#[test]
fn households_are_the_stock_before_the_end_and_covered_means_visited_in_the_period() {
    let mut w = World::default();
    let h1 = w.household(G1, FROM - 500, true);
    let h2 = w.household(G1, FROM + 100, false);
    let h3 = w.household(G1, TO, true); // created at the end: not yet in the stock
    let h4 = w.household(G1, FROM - 400, true);
    let h5 = w.household(G1, FROM - 300, false);
    w.visit(G1, FROM + 1, Some(h1));
    w.visit(G1, FROM + 2, Some(h1)); // a second visit covers no second household
    w.visit(G1, FROM - 1, Some(h2)); // before the period
    w.visit(G1, TO, Some(h4)); // at the end: outside the half-open period
    w.visit(G1, FROM + 3, None); // a visit to no household still counts as a visit
    w.visit(G1, FROM + 4, Some(h3)); // h3 is not in the stock, so it is not covered
    w.visit(G2, FROM + 5, Some(h5)); // counted as a visit of g2, coverage of g1

    let r = w.report(SUB);
    let g1 = &r.row(&path(G1)).expect("g1 row").figures;
    assert_eq!((g1.households, g1.needy_households), (4, 2));
    assert_eq!((g1.households_covered, g1.needy_households_covered), (2, 1));
    assert_eq!(g1.visits, 4);
    let g2 = &r.row(&path(G2)).expect("g2 row").figures;
    assert_eq!((g2.visits, g2.households, g2.households_covered), (1, 0, 0));
    assert_eq!((r.total.figures.households_covered, r.total.figures.visits), (2, 5));
}

#[test]
fn cases_found_are_the_ones_created_in_the_period_counted_by_kind() {
    let mut w = World::default();
    w.case(G1, FROM, CaseKind::Dispute, None);
    w.case(G1, FROM + 1, CaseKind::Dispute, None);
    w.case(G1, FROM + 2, CaseKind::Hazard, None);
    w.case(G1, FROM + 3, CaseKind::Petition, None);
    w.case(G1, FROM + 4, CaseKind::Request, None);
    w.case(G1, FROM - 1, CaseKind::Hazard, None);
    w.case(G1, TO, CaseKind::Petition, None);

    let f = w.report(SUB).total.figures;
    assert_eq!(f.cases_found, 5);
    let k = f.cases_found_by_kind;
    assert_eq!((k.dispute, k.hazard, k.petition, k.request), (2, 1, 1, 1));
    assert_eq!(k.get(CaseKind::Dispute), 2);
}

#[test]
fn a_case_counts_as_resolved_once_when_it_reached_resolved_in_the_period_and_still_stands_there() {
    let mut w = World::default();
    let staff = staff(G1);
    let sup = supervisor();
    // Resolved, verified and closed in the period: one resolved case, not three.
    let a = w.case(G1, FROM - 900, CaseKind::Dispute, None);
    w.edit(a, &staff, FROM + 10, |e| e.advance_case(CaseStatus::Resolved));
    w.edit(a, &sup, FROM + 20, |e| e.advance_case(CaseStatus::Verified));
    w.edit(a, &sup, FROM + 30, |e| e.advance_case(CaseStatus::Closed));
    // Resolved before the period: not this period's work.
    let b = w.case(G1, FROM - 800, CaseKind::Dispute, None);
    w.edit(b, &staff, FROM - 10, |e| e.advance_case(CaseStatus::Resolved));
    // Resolved in the period, then reopened: it does not stand resolved.
    let c = w.case(G1, FROM + 1, CaseKind::Hazard, None);
    w.edit(c, &staff, FROM + 10, |e| e.advance_case(CaseStatus::Resolved));
    w.edit(c, &sup, FROM + 20, |e| e.reopen_case(CaseStatus::InProgress, "群众反映未解决"));
    // Resolved before, reopened, and resolved again in the period: counted.
    let d = w.case(G1, FROM - 700, CaseKind::Petition, None);
    w.edit(d, &staff, FROM - 50, |e| e.advance_case(CaseStatus::Resolved));
    w.edit(d, &sup, FROM - 40, |e| e.reopen_case(CaseStatus::InProgress, "复核未通过"));
    w.edit(d, &staff, FROM + 40, |e| e.advance_case(CaseStatus::Resolved));
    // Only in progress.
    let e = w.case(G1, FROM + 2, CaseKind::Request, None);
    w.edit(e, &staff, FROM + 10, |ed| ed.advance_case(CaseStatus::InProgress));
    // Resolved after the period.
    let f = w.case(G1, FROM + 3, CaseKind::Request, None);
    w.edit(f, &staff, TO + 1, |ed| ed.advance_case(CaseStatus::Resolved));

    // Closed before the period and reopened back to resolved in it: a reopen
    // is not a resolution.
    let g = w.case(G1, FROM - 600, CaseKind::Dispute, None);
    w.edit(g, &staff, FROM - 30, |ed| ed.advance_case(CaseStatus::Resolved));
    w.edit(g, &sup, FROM - 20, |ed| ed.advance_case(CaseStatus::Closed));
    w.edit(g, &sup, FROM + 50, |ed| ed.reopen_case(CaseStatus::Resolved, "核查材料不全"));

    let figures = w.report(SUB).total.figures;
    assert_eq!(figures.cases_resolved, 2, "cases a and d");
    assert_eq!(figures.cases_found, 3, "cases c, e and f were created in the period");
    let rate = figures.resolution_rate.expect("a rate");
    assert!((rate - 2.0 / 3.0).abs() < 1e-12, "{rate}");
}

#[test]
fn overdue_cases_are_past_due_before_the_earlier_of_the_end_and_now_and_not_yet_resolved() {
    let mut w = World::default();
    let staff = staff(G1);
    w.case(G1, FROM - 100, CaseKind::Hazard, Some(FROM + 5)); // overdue
    w.case(G1, FROM - 100, CaseKind::Hazard, Some(FROM - 5)); // overdue since before the period
    w.case(G1, FROM - 100, CaseKind::Hazard, Some(TO)); // due at the end: not yet overdue
    w.case(G1, FROM - 100, CaseKind::Hazard, None); // no due date
    let resolved = w.case(G1, FROM - 100, CaseKind::Hazard, Some(FROM + 5));
    w.edit(resolved, &staff, TO + 10, |e| e.advance_case(CaseStatus::Resolved));
    let in_progress = w.case(G1, FROM - 100, CaseKind::Hazard, Some(FROM + 6));
    w.edit(in_progress, &staff, FROM + 1, |e| e.advance_case(CaseStatus::InProgress));
    assert_eq!(w.report(SUB).total.figures.overdue_cases, 3);

    // A period that has not ended yet: "now" is the bound, not its end.
    let records = w.records();
    let early_now = FROM + 6;
    let r = report(records.iter().map(|(id, r)| (*id, r)), &path(SUB), Period::new(FROM, TO), early_now);
    assert_eq!(r.total.figures.overdue_cases, 2, "due FROM+6 is not before now = FROM+6");
}

#[test]
fn promises_kept_are_the_promises_made_in_the_period_whose_latest_outcome_is_kept() {
    let mut w = World::default();
    let staff = staff(G1);
    let kept = w.promise(G1, FROM + 1);
    w.edit(kept, &staff, FROM + 10, |e| e.record_promise_outcome(true, "已修好"));
    let kept_late = w.promise(G1, FROM + 2); // kept after the period: still a kept promise made in it
    w.edit(kept_late, &staff, TO + 10, |e| e.record_promise_outcome(true, "已修好"));
    let broken_after_kept = w.promise(G1, FROM + 3);
    w.edit(broken_after_kept, &staff, FROM + 10, |e| e.record_promise_outcome(true, "已修好"));
    w.edit(broken_after_kept, &staff, FROM + 20, |e| e.record_promise_outcome(false, "又坏了"));
    w.promise(G1, FROM + 4); // no outcome yet
    let older = w.promise(G1, FROM - 1); // made before the period
    w.edit(older, &staff, FROM + 10, |e| e.record_promise_outcome(true, "已办"));

    let f = w.report(SUB).total.figures;
    assert_eq!((f.promises_made, f.promises_due, f.promises_kept), (4, 4, 2));
    assert_eq!(f.promises_kept_rate, Some(0.5));
}

#[test]
fn promises_not_yet_due_at_the_reports_moment_are_neither_kept_nor_not_kept() {
    let mut w = World::default();
    let staff = staff(G1);
    let due = w.promise_due(G1, FROM + 1, FROM + 100);
    w.edit(due, &staff, FROM + 50, |e| e.record_promise_outcome(true, "已修好"));
    w.promise_due(G1, FROM + 2, FROM + 200); // due, not kept
    // Due after the period's end: not yet due for this period's report, even
    // when it was already kept (or given up) early.
    let early = w.promise_due(G1, FROM + 3, TO + 100);
    w.edit(early, &staff, FROM + 60, |e| e.record_promise_outcome(true, "提前办好"));
    w.promise_due(G1, FROM + 4, TO + 200);
    let f = w.report(SUB).total.figures;
    assert_eq!((f.promises_made, f.promises_due, f.promises_kept), (4, 2, 1));
    assert_eq!(f.promises_kept_rate, Some(0.5), "1 kept of the 2 due, not 2 of 4");

    // Asked for a period still running, the moment is now: what is due by now counts.
    let records = w.records();
    let running = report(records.iter().map(|(id, r)| (*id, r)), &path(SUB), Period::new(FROM, NOW), FROM + 150);
    let f = running.total.figures;
    assert_eq!((f.promises_made, f.promises_due, f.promises_kept), (4, 1, 1));
    assert_eq!(f.promises_kept_rate, Some(1.0));
}

#[test]
fn voided_records_count_nowhere_and_a_duplicate_voided_puts_the_rates_right() {
    let mut w = World::default();
    let staff = staff(G1);
    // Two cases and two promises were real; one of each was saved twice by a double tap.
    let resolved = w.case(G1, FROM + 1, CaseKind::Dispute, None);
    w.edit(resolved, &staff, FROM + 5, |e| e.advance_case(CaseStatus::Resolved));
    let open = w.case(G1, FROM + 2, CaseKind::Dispute, None);
    let open_twice = w.case(G1, FROM + 2, CaseKind::Dispute, None);
    let kept = w.promise(G1, FROM + 1);
    w.edit(kept, &staff, FROM + 5, |e| e.record_promise_outcome(true, "已修好"));
    w.promise(G1, FROM + 2);
    let promise_twice = w.promise(G1, FROM + 2);
    let household = w.household(G1, FROM - 10, true);
    let household_twice = w.household(G1, FROM - 10, true);
    let visit_twice = w.visit(G1, FROM + 3, Some(household_twice));
    let rated = w.case(G1, FROM - 50, CaseKind::Hazard, None);
    w.edit(rated, &staff, FROM + 4, |e| e.add_follow_up("回访", Some(Satisfaction::Dissatisfied)));
    let _ = (open, household);

    let f = w.report(SUB).total.figures;
    assert_eq!((f.cases_found, f.cases_resolved), (3, 1));
    assert_eq!(gridsync_shared::reports::percent(f.resolution_rate), "33.3%");
    assert_eq!(gridsync_shared::reports::percent(f.promises_kept_rate), "33.3%");
    assert_eq!((f.households, f.households_covered, f.visits, f.rated_follow_ups), (2, 1, 1, 1));

    let sup = supervisor();
    w.void(open_twice, &staff, FROM + 20);
    w.void(promise_twice, &sup, TO + 20); // voided after the period: still counts nowhere
    w.void(household_twice, &staff, FROM + 20);
    w.void(visit_twice, &staff, FROM + 20);
    w.void(rated, &sup, FROM + 20);
    let f = w.report(SUB).total.figures;
    assert_eq!((f.cases_found, f.cases_resolved), (2, 1));
    assert_eq!(gridsync_shared::reports::percent(f.resolution_rate), "50.0%");
    assert_eq!((f.promises_made, f.promises_kept), (2, 1));
    assert_eq!(gridsync_shared::reports::percent(f.promises_kept_rate), "50.0%");
    assert_eq!((f.households, f.households_covered, f.visits, f.rated_follow_ups), (1, 0, 0, 0));
    assert_eq!(f.satisfaction_rate, None);
    // Voided records stay readable, with who voided them and why.
    let records = w.records();
    let (_, r) = records.iter().find(|(id, _)| *id == w.id(promise_twice)).expect("still there");
    let void = r.voided().expect("voided");
    assert_eq!((void.by, void.reason.as_str()), (sup.person, "重复录入"));
}

/// A photo reference to attach (only the reference: reports never look at bytes).
fn photo(n: u8) -> NewPhoto {
    NewPhoto {
        sha256: PhotoHash::parse(&format!("{n:02x}").repeat(32)).expect("hash"),
        size: 1_000,
        mime: PhotoType::Jpeg,
        taken_at: FROM,
        location: None,
        follow_up: None,
    }
}

#[test]
fn photo_evidence_counts_visits_and_cases_of_the_period_with_a_photo_even_one_only_on_a_follow_up() {
    let mut w = World::default();
    let staff1 = staff(G1);
    let staff2 = staff(G2);
    // Visits in the period: two with photos (one with two photos), one without.
    let v1 = w.visit(G1, FROM + 1, None);
    w.edit(v1, &staff1, FROM + 20, |e| e.add_photos(&[photo(1), photo(2)]));
    let v2 = w.visit(G2, FROM + 2, None);
    w.edit(v2, &staff2, FROM + 20, |e| e.add_photos(&[photo(3)]));
    w.visit(G1, FROM + 3, None);
    // Outside the period, or voided: not counted, photos or not.
    let before = w.visit(G1, FROM - 5, None);
    w.edit(before, &staff1, FROM + 20, |e| e.add_photos(&[photo(4)]));
    let voided = w.visit(G1, FROM + 4, None);
    w.edit(voided, &staff1, FROM + 20, |e| e.add_photos(&[photo(5)]));
    w.void(voided, &staff1, FROM + 30);
    // Cases found in the period: one with a photo on the case, one with a
    // photo only on a follow-up, one without any.
    let c1 = w.case(G1, FROM + 5, CaseKind::Hazard, None);
    w.edit(c1, &staff1, FROM + 20, |e| e.add_photos(&[photo(6)]));
    let c2 = w.case(G1, FROM + 6, CaseKind::Dispute, None);
    w.edit(c2, &staff1, FROM + 20, |e| e.add_follow_up_with_photos("现场已清理", None, &[photo(7)]));
    let c3 = w.case(G2, FROM + 7, CaseKind::Request, None);
    w.edit(c3, &staff2, FROM + 20, |e| e.add_follow_up("已联系物业", None).map(|_| ()));
    // A case of an earlier period with photos is not this period's evidence.
    let old = w.case(G1, FROM - 9, CaseKind::Hazard, None);
    w.edit(old, &staff1, FROM + 20, |e| e.add_photos(&[photo(8)]));

    let r = w.report(SUB);
    let g1 = &r.row(&path(G1)).expect("g1").figures;
    assert_eq!((g1.visits, g1.visits_with_photos), (2, 1));
    assert_eq!((g1.cases_found, g1.cases_with_photos), (2, 2), "a follow-up's photo is the case's evidence");
    let g2 = &r.row(&path(G2)).expect("g2").figures;
    assert_eq!((g2.visits, g2.visits_with_photos, g2.cases_found, g2.cases_with_photos), (1, 1, 1, 0));
    let community = &r.row(&path("xg/xn/sh/dh")).expect("community").figures;
    assert_eq!((community.visits_with_photos, community.cases_with_photos), (2, 2));
    assert_eq!((r.total.figures.visits_with_photos, r.total.figures.cases_with_photos), (2, 2));

    let csv = r.to_csv();
    let header = csv.trim_start_matches('\u{feff}').split("\r\n").next().expect("header").to_string();
    let column = |name: &str| header.split(',').position(|h| h == name).unwrap_or_else(|| panic!("{name}: {header}"));
    let total = csv.trim_end().rsplit("\r\n").next().expect("total").to_string();
    let cells: Vec<&str> = total.split(',').collect();
    assert_eq!(column("有照片的走访"), column("走访次数") + 1);
    assert_eq!(column("有照片的事件"), column("发现事件合计") + 1);
    assert_eq!((cells[column("有照片的走访")], cells[column("有照片的事件")]), ("2", "2"), "{total}");
}

#[test]
fn figures_written_before_photo_evidence_existed_still_read() {
    let mut w = World::default();
    w.visit(G1, FROM + 1, None);
    let mut old = serde_json::to_value(w.report(SUB).total.figures).expect("json");
    let map = old.as_object_mut().expect("object");
    map.remove("visits_with_photos");
    map.remove("cases_with_photos");
    let read: gridsync_shared::reports::Figures = serde_json::from_value(old).expect("old figures read");
    assert_eq!((read.visits, read.visits_with_photos, read.cases_with_photos), (1, 0, 0));
}

#[test]
fn satisfaction_counts_rated_follow_ups_in_the_period_and_basic_counts_as_satisfied() {
    let mut w = World::default();
    let staff = staff(G1);
    let old_case = w.case(G1, FROM - 1_000, CaseKind::Request, None);
    w.edit(old_case, &staff, FROM + 1, |e| e.add_follow_up("回访", Some(Satisfaction::Satisfied)));
    w.edit(old_case, &staff, FROM + 2, |e| e.add_follow_up("回访", Some(Satisfaction::Basic)));
    w.edit(old_case, &staff, FROM + 3, |e| e.add_follow_up("回访", Some(Satisfaction::Dissatisfied)));
    w.edit(old_case, &staff, FROM + 4, |e| e.add_follow_up("进展：已联系物业", None)); // not a rating
    w.edit(old_case, &staff, FROM - 1, |e| e.add_follow_up("回访", Some(Satisfaction::Dissatisfied))); // before
    let c = w.case(G2, FROM + 5, CaseKind::Request, None);
    w.edit(c, &self::staff(G2), FROM + 6, |e| e.add_follow_up("回访", Some(Satisfaction::Satisfied)));

    let r = w.report(SUB);
    let f = &r.total.figures;
    assert_eq!((f.rated_follow_ups, f.satisfied_follow_ups), (4, 3));
    assert_eq!(f.satisfaction_rate, Some(0.75));
    let g1 = &r.row(&path(G1)).expect("g1").figures;
    assert_eq!((g1.rated_follow_ups, g1.satisfied_follow_ups), (3, 2));
}

#[test]
fn rows_are_communities_each_followed_by_its_grids_rolled_up_into_the_total() {
    let mut w = World::default();
    w.visit(G1, FROM + 1, None);
    w.visit(G2, FROM + 1, None);
    w.visit(G2, FROM + 2, None);
    w.visit(G3, FROM + 1, None);
    w.case(G3, FROM + 1, CaseKind::Hazard, None);
    let records = w.records();
    let mut b = ReportBuilder::new(path(SUB), Period::new(FROM, TO), NOW);
    b.territory(&path(SUB), "沙湖街道");
    b.territory(&path("xg/xn/sh/dh"), "东湖社区");
    b.territory(&path("xg/xn/sh/dh/g9"), "东湖九网格"); // no records: a row of zeros
    b.territory(&path("xg/xn/other/c/g1"), "外区网格"); // outside the scope: ignored
    for (id, r) in &records {
        b.add(*id, r);
    }
    let r = b.finish();

    let order: Vec<(&str, Level)> = r.rows.iter().map(|row| (row.territory.as_str(), row.level)).collect();
    assert_eq!(
        order,
        [
            ("xg/xn/sh/dh", Level::Community),
            (G1, Level::Grid),
            (G2, Level::Grid),
            ("xg/xn/sh/dh/g9", Level::Grid),
            ("xg/xn/sh/xy", Level::Community),
            (G3, Level::Grid),
        ]
    );
    let visits = |p: &str| r.row(&path(p)).expect("row").figures.visits;
    assert_eq!((visits("xg/xn/sh/dh"), visits("xg/xn/sh/xy"), visits("xg/xn/sh/dh/g9")), (3, 1, 0));
    assert_eq!(r.total.figures.visits, 4);
    assert_eq!((r.total.territory.as_str(), r.total.level), (SUB, Level::SubDistrict));
    assert_eq!(r.total.name.as_deref(), Some("沙湖街道"));
    assert_eq!(r.row(&path("xg/xn/sh/dh")).and_then(|row| row.name.as_deref()), Some("东湖社区"));
    assert_eq!(r.row(&path("xg/xn/sh/xy")).and_then(|row| row.name.clone()), None);
}

#[test]
fn a_community_scope_has_only_grid_rows_and_a_grid_scope_only_the_total() {
    let mut w = World::default();
    w.visit(G1, FROM + 1, None);
    w.visit(G2, FROM + 1, None);
    w.visit(G3, FROM + 1, None);
    let community = w.report("xg/xn/sh/dh");
    let paths: Vec<&str> = community.rows.iter().map(|r| r.territory.as_str()).collect();
    assert_eq!(paths, [G1, G2]);
    assert_eq!((community.total.level, community.total.figures.visits), (Level::Community, 2));
    let grid = w.report(G3);
    assert!(grid.rows.is_empty());
    assert_eq!((grid.total.level, grid.total.figures.visits), (Level::Grid, 1));
}

#[test]
fn records_outside_the_scope_count_nowhere() {
    let mut w = World::default();
    w.visit("xg/xn/sh/dh/g1", FROM + 1, None);
    w.visit("xg/xn/zz/dh/g1", FROM + 1, None);
    let r = w.report(SUB);
    assert_eq!(r.total.figures.visits, 1);
    assert!(r.rows.iter().all(|row| path(SUB).contains(&row.territory)));
}

#[test]
fn rates_are_none_without_a_denominator_and_never_above_one() {
    let mut w = World::default();
    let staff = staff(G1);
    // Two older cases resolved in the period, one case found in it.
    for _ in 0..2 {
        let c = w.case(G1, FROM - 100, CaseKind::Dispute, None);
        w.edit(c, &staff, FROM + 1, |e| e.advance_case(CaseStatus::Resolved));
    }
    w.case(G1, FROM + 1, CaseKind::Dispute, None);
    let f = w.report(SUB).total.figures;
    assert_eq!((f.cases_resolved, f.cases_found), (2, 1));
    assert_eq!(f.resolution_rate, Some(1.0));
    assert_eq!((f.promises_kept_rate, f.satisfaction_rate), (None, None));

    let empty = World::default().report(SUB);
    assert_eq!(empty.total.figures.resolution_rate, None);
    assert!(empty.rows.is_empty());
}

#[test]
fn csv_has_a_bom_chinese_headers_percentages_and_quotes_awkward_names() {
    let mut w = World::default();
    let staff = staff(G1);
    for kept in [true, true, false] {
        let p = w.promise(G1, FROM + 1);
        w.edit(p, &staff, FROM + 2, |e| e.record_promise_outcome(kept, ""));
    }
    let records = w.records();
    let mut b = ReportBuilder::new(path(SUB), Period::new(FROM, TO), NOW);
    b.territory(&path(G1), "东湖\"一\"网格, 北区\n新");
    b.territory(&path("xg/xn/sh/dh"), "=HYPERLINK(\"x\")");
    for (id, r) in &records {
        b.add(*id, r);
    }
    let csv = b.finish().to_csv();

    assert!(csv.starts_with('\u{feff}'), "UTF-8 byte-order mark for Excel and WPS");
    let body = csv.trim_start_matches('\u{feff}');
    let header = body.split("\r\n").next().expect("header");
    assert!(
        header.starts_with("区域,名称,层级,住户数,困难群众户数,走访覆盖户数,联系困难群众户数,走访次数"),
        "{header}"
    );
    assert!(header.ends_with("承诺事项,到期承诺数,践诺数,践诺落实率,回访评价数,满意数,群众满意率"), "{header}");
    assert!(body.contains("\"东湖\"\"一\"\"网格, 北区\n新\""), "quoted, quotes doubled:\n{body}");
    assert!(body.contains("\"'=HYPERLINK(\"\"x\"\")\""), "a formula is written as text:\n{body}");
    let total = body.trim_end().rsplit("\r\n").next().expect("total line");
    assert!(total.starts_with("xg/xn/sh,,合计（街道/乡镇）,"), "{total}");
    assert!(total.contains(",3,3,2,66.7%,"), "3 made, 3 due, 2 kept, 66.7%: {total}");
    assert!(total.ends_with(",0,0,"), "no satisfaction rate without ratings: {total}");
    let columns = header.split(',').count();
    assert_eq!(total.split(',').count(), columns);
}
