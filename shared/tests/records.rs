//! Records map onto Automerge documents and back; documents that are not
//! valid records are refused with the field that is wrong.

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ROOT};
use gridsync_shared::records::*;
use gridsync_shared::workflow::CaseStatus;
use gridsync_shared::{Author, PersonId, Role, TerritoryPath};

fn grid() -> TerritoryPath {
    "xg/xn/sh/dh/g1".parse().expect("grid")
}

fn staff() -> Author {
    Author { person: PersonId(uuid::Uuid::from_u128(1)), role: Role::FieldStaff, territory: grid() }
}

fn household() -> HouseholdFields {
    HouseholdFields {
        address: "东湖路12号, 3栋\"2单元\"\n401".into(),
        head: "陈桂英".into(),
        phone: "13807120011".into(),
        id_number: "420902194803150021".into(),
        members: vec![Member { name: "周丽".into(), relation: "女儿".into(), ..Member::default() }],
        tags: vec!["独居老人".into(), "困难群众".into()],
        notes: "行动不便，需每周探望".into(),
    }
}

#[test]
fn a_household_reads_back_exactly_as_written() {
    let (_, doc) = new_record(
        ActorId::random(),
        &staff(),
        &grid(),
        1_700_000_000_000,
        [1; 10],
        &NewRecord::Household(household()),
    )
    .expect("create");
    let Record::Household(h) = read_record(&doc).expect("read") else { panic!("kind") };
    assert_eq!(h.fields, household());
    assert_eq!(h.meta.grid, grid());
    assert_eq!(h.meta.creator, staff().person);
    assert_eq!(h.meta.schema, SCHEMA_VERSION);
}

#[test]
fn concurrent_text_edits_both_survive_a_merge() {
    let (_, mut a) = new_record(ActorId::random(), &staff(), &grid(), 1, [2; 10], &NewRecord::Household(household()))
        .expect("create");
    let mut b = a.fork();
    let author = staff();
    let edit = |doc: &mut Automerge, notes: &str| {
        let Record::Household(h) = read_record(doc).expect("read") else { panic!() };
        let mut f = h.fields;
        f.notes = notes.into();
        Editor::new(doc, &author, 2).update_household(&f).expect("edit");
    };
    edit(&mut a, "行动不便，需每周探望；已申请低保");
    edit(&mut b, "老人耳背，行动不便，需每周探望");
    a.merge(&mut b).expect("merge");
    let Record::Household(h) = read_record(&a).expect("read") else { panic!() };
    assert!(h.fields.notes.contains("已申请低保") && h.fields.notes.contains("耳背"), "{}", h.fields.notes);
}

#[test]
fn unknown_fields_and_wrong_types_are_named_in_the_error() {
    let (_, doc) = new_record(ActorId::random(), &staff(), &grid(), 1, [3; 10], &NewRecord::Household(household()))
        .expect("create");
    let mut extra = doc.fork();
    extra.transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, "salary", 5).map(|_| ())).expect("put");
    assert_eq!(read_record(&extra), Err(RecordError::UnknownField("salary".into())));
    let mut wrong = doc.fork();
    wrong.transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, "address", 12).map(|_| ())).expect("put");
    assert!(matches!(read_record(&wrong), Err(RecordError::WrongType { field, .. }) if field == "address"));
    assert!(read_record(&Automerge::new()).is_err(), "an empty document is not a record");
}

#[test]
fn field_staff_cannot_accept_a_case_but_a_supervisor_can() {
    let case = CaseFields {
        kind: CaseKind::Hazard,
        title: "燃气管道老化".into(),
        description: String::new(),
        household: None,
        visit: None,
        due_at: None,
    };
    let (_, mut doc) =
        new_record(ActorId::random(), &staff(), &grid(), 1, [4; 10], &NewRecord::Case(case)).expect("create");
    let err = Editor::new(&mut doc, &staff(), 2).advance_case(CaseStatus::Accepted).expect_err("field staff");
    assert!(err.to_string().contains("not_permitted"), "{err}");
    let supervisor = Author {
        person: PersonId(uuid::Uuid::from_u128(2)),
        role: Role::Supervisor,
        territory: "xg/xn/sh".parse().expect("p"),
    };
    Editor::new(&mut doc, &supervisor, 3).advance_case(CaseStatus::Accepted).expect("supervisor accepts");
    let Record::Case(c) = read_record(&doc).expect("read") else { panic!() };
    assert_eq!(c.standing().status, CaseStatus::Accepted);
}

#[test]
fn a_record_outside_the_authors_grid_cannot_be_created() {
    let other: TerritoryPath = "xg/xn/sh/dh/g2".parse().expect("grid");
    let err = new_record(ActorId::random(), &staff(), &other, 1, [5; 10], &NewRecord::Household(household()))
        .expect_err("outside");
    assert!(err.to_string().contains("outside_territory"), "{err}");
}

#[test]
fn a_visits_gps_position_can_be_removed_and_set_again() {
    let fields = VisitFields {
        visited_at: 1,
        notes: "走访".into(),
        location: Some(GeoPoint { lat: 30.59, lon: 114.31, accuracy_m: Some(12.0) }),
        ..VisitFields::default()
    };
    let (_, mut doc) =
        new_record(ActorId::random(), &staff(), &grid(), 1, [3; 10], &NewRecord::VisitLog(fields.clone()))
            .expect("create");
    let author = staff();
    let cleared = VisitFields { location: None, ..fields.clone() };
    Editor::new(&mut doc, &author, 2).update_visit(&cleared).expect("the position is removed");
    let Record::VisitLog(v) = read_record(&doc).expect("read") else { panic!("kind") };
    assert_eq!(v.fields.location, None);
    Editor::new(&mut doc, &author, 3).update_visit(&fields).expect("and set again");
    let Record::VisitLog(v) = read_record(&doc).expect("read") else { panic!("kind") };
    assert_eq!(v.fields.location, fields.location);
}
