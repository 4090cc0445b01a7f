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
    let Record::Household(mut h) = read_record(&doc).expect("read") else { panic!("kind") };
    assert!(uuid::Uuid::parse_str(&h.fields.members[0].id).is_ok(), "a new member is given an id");
    h.fields.members[0].id.clear();
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

fn other_staff() -> Author {
    Author { person: PersonId(uuid::Uuid::from_u128(3)), role: Role::FieldStaff, territory: grid() }
}

fn supervisor_over(territory: &str) -> Author {
    Author {
        person: PersonId(uuid::Uuid::from_u128(4)),
        role: Role::Supervisor,
        territory: territory.parse().expect("p"),
    }
}

#[test]
fn a_record_is_voided_by_its_creator_or_a_supervisor_over_its_grid_with_a_reason() {
    let visit = NewRecord::VisitLog(VisitFields { visited_at: 1, notes: "重复".into(), ..VisitFields::default() });
    let (_, doc) = new_record(ActorId::random(), &staff(), &grid(), 1, [6; 10], &visit).expect("create");
    assert_eq!(read_record(&doc).expect("read").voided(), None);

    let mut by_creator = doc.fork();
    Editor::new(&mut by_creator, &staff(), 2).void_record("重复录入").expect("the creator voids");
    let record = read_record(&by_creator).expect("a voided record still reads");
    let void = record.voided().expect("voided");
    assert_eq!((void.by, void.at, void.reason.as_str()), (staff().person, 2, "重复录入"));

    let mut by_supervisor = doc.fork();
    Editor::new(&mut by_supervisor, &supervisor_over("xg/xn/sh"), 2).void_record("户号填错").expect("a supervisor");

    let mut by_other = doc.fork();
    let err = Editor::new(&mut by_other, &other_staff(), 2).void_record("不是我的").expect_err("another grid manager");
    assert!(err.to_string().contains("not_permitted"), "{err}");
    let err =
        Editor::new(&mut by_other, &supervisor_over("xg/xn/other"), 2).void_record("别处").expect_err("elsewhere");
    assert!(err.to_string().contains("outside_territory"), "{err}");
    let err = Editor::new(&mut by_other, &staff(), 2).void_record("  ").expect_err("no reason");
    assert!(err.to_string().contains("invalid_record"), "{err}");
    assert_eq!(read_record(&by_other).expect("read").voided(), None, "refused voids changed nothing");
}

#[test]
fn void_entries_are_never_removed_or_altered() {
    let visit = NewRecord::VisitLog(VisitFields { visited_at: 1, ..VisitFields::default() });
    let (_, mut doc) = new_record(ActorId::random(), &staff(), &grid(), 1, [7; 10], &visit).expect("create");
    Editor::new(&mut doc, &staff(), 2).void_record("重复录入").expect("void");
    let before = doc.fork();
    for tamper in [
        |tx: &mut automerge::transaction::Transaction<'_>, list: &automerge::ObjId| tx.delete(list, 0),
        |tx: &mut automerge::transaction::Transaction<'_>, list: &automerge::ObjId| {
            let Some((_, entry)) = automerge::ReadDoc::get(tx, list, 0)? else { unreachable!() };
            tx.put(&entry, "reason", "改了")
        },
    ] {
        let mut after = before.fork();
        let Some((_, list)) = automerge::ReadDoc::get(&after, ROOT, "voids").expect("get") else { panic!("voids") };
        after.transact::<_, _, automerge::AutomergeError>(|tx| tamper(tx, &list)).expect("tamper");
        let err = gridsync_shared::rules::check_update(&before, &after, &staff()).expect_err("history");
        assert_eq!(err.reason, gridsync_shared::rules::RejectReason::HistoryRewritten, "{err}");
    }
}

#[test]
fn a_record_from_before_voids_is_voided_and_two_concurrent_first_voids_both_survive() {
    let visit = NewRecord::VisitLog(VisitFields { visited_at: 1, ..VisitFields::default() });
    let (_, mut doc) = new_record(ActorId::random(), &staff(), &grid(), 1, [8; 10], &visit).expect("create");
    // The previous schema had no `voids` list.
    doc.transact::<_, _, automerge::AutomergeError>(|tx| tx.delete(ROOT, "voids")).expect("old shape");
    assert!(read_record(&doc).expect("an old document reads").voids().is_empty());
    let mut other = doc.fork();
    other.set_actor(ActorId::random());
    Editor::new(&mut doc, &staff(), 2).void_record("重复录入").expect("void on one phone");
    Editor::new(&mut other, &supervisor_over("xg"), 3).void_record("核实为重复").expect("and on another");
    doc.merge(&mut other).expect("merge");
    let record = read_record(&doc).expect("read");
    assert_eq!(record.voids().len(), 2, "both first voids survive the merge");
    assert_eq!(record.voided().map(|v| v.at), Some(2), "the earliest counts");
}

fn a_case() -> CaseFields {
    CaseFields {
        kind: CaseKind::Dispute,
        title: "楼道堆放杂物".into(),
        description: String::new(),
        household: None,
        visit: None,
        due_at: Some(10),
    }
}

#[test]
fn a_title_changed_on_two_phones_at_once_shows_both_values_until_someone_chooses() {
    let (_, mut a) =
        new_record(ActorId::random(), &staff(), &grid(), 1, [9; 10], &NewRecord::Case(a_case())).expect("create");
    let mut b = a.fork();
    b.set_actor(ActorId::random());
    let sup = supervisor_over("xg/xn/sh");
    Editor::new(&mut a, &staff(), 2)
        .update_case(&CaseFields { title: "楼道堆放纸箱".into(), due_at: Some(20), ..a_case() })
        .expect("a");
    Editor::new(&mut b, &sup, 3)
        .update_case(&CaseFields { title: "消防通道堵塞".into(), due_at: Some(30), ..a_case() })
        .expect("b");
    a.merge(&mut b).expect("merge");
    let record = read_record(&a).expect("read");
    let fields: Vec<&str> = record.conflicts().iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["title", "due_at"]);
    let Record::Case(c) = &record else { panic!() };
    let title = &record.conflicts()[0];
    assert_eq!(title.values[0], FieldValue::Text(c.fields.title.clone()), "the shown value first");
    assert!(title.values.contains(&FieldValue::Text("楼道堆放纸箱".into())));
    assert!(title.values.contains(&FieldValue::Text("消防通道堵塞".into())));

    // An unrelated edit leaves the conflict for a person to decide.
    Editor::new(&mut a, &staff(), 4)
        .update_case(&CaseFields { description: "三楼".into(), ..c.fields.clone() })
        .expect("edit");
    assert_eq!(read_record(&a).expect("read").conflicts().len(), 2);
    // Someone who may not edit the case cannot choose either.
    let err = Editor::new(&mut a, &other_staff(), 5)
        .resolve_conflict("title", &FieldValue::Text("楼道堆放纸箱".into()))
        .expect_err("not theirs");
    assert!(err.to_string().contains("not_permitted"), "{err}");
    // Choosing the value already shown still resolves it.
    let shown = title.values[0].clone();
    Editor::new(&mut a, &staff(), 6).resolve_conflict("title", &shown).expect("choose");
    Editor::new(&mut a, &staff(), 7).resolve_conflict("due_at", &FieldValue::Number(30)).expect("choose");
    let record = read_record(&a).expect("read");
    assert!(record.conflicts().is_empty(), "{:?}", record.conflicts());
    let Record::Case(c) = record else { panic!() };
    assert_eq!((c.fields.title, c.fields.due_at), (shown_text(&shown), Some(30)));
    let err = Editor::new(&mut a, &staff(), 8).resolve_conflict("title", &FieldValue::Empty).expect_err("required");
    assert!(err.to_string().contains("invalid_record"), "{err}");
    let err = Editor::new(&mut a, &staff(), 8).resolve_conflict("description", &FieldValue::Empty).expect_err("text");
    assert!(err.to_string().contains("invalid_record"), "{err}");
}

fn shown_text(v: &FieldValue) -> String {
    match v {
        FieldValue::Text(t) => t.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn two_positions_set_at_once_are_a_conflict_of_whole_positions() {
    let visit = VisitFields { visited_at: 1, notes: "走访".into(), ..VisitFields::default() };
    let (_, mut a) = new_record(ActorId::random(), &staff(), &grid(), 1, [10; 10], &NewRecord::VisitLog(visit.clone()))
        .expect("create");
    let mut b = a.fork();
    b.set_actor(ActorId::random());
    let here = GeoPoint { lat: 30.59, lon: 114.31, accuracy_m: Some(12.0) };
    let there = GeoPoint { lat: 30.60, lon: 114.30, accuracy_m: None };
    Editor::new(&mut a, &staff(), 2).update_visit(&VisitFields { location: Some(here), ..visit.clone() }).expect("a");
    Editor::new(&mut b, &staff(), 2).update_visit(&VisitFields { location: Some(there), ..visit.clone() }).expect("b");
    a.merge(&mut b).expect("merge");
    let record = read_record(&a).expect("read");
    let [conflict] = record.conflicts() else { panic!("{:?}", record.conflicts()) };
    assert_eq!(conflict.field, "location");
    let mut values = conflict.values.clone();
    values.sort_by(|x, y| format!("{x:?}").cmp(&format!("{y:?}")));
    assert_eq!(values, [FieldValue::Point(here), FieldValue::Point(there)]);
    Editor::new(&mut a, &staff(), 3).resolve_conflict("location", &FieldValue::Point(there)).expect("choose");
    let Record::VisitLog(v) = read_record(&a).expect("read") else { panic!() };
    assert!(v.conflicts.is_empty());
    assert_eq!(v.fields.location, Some(there));
}

fn members_of(doc: &Automerge) -> Vec<Member> {
    let Record::Household(h) = read_record(doc).expect("read") else { panic!("household") };
    h.fields.members
}

fn member(name: &str, relation: &str) -> Member {
    Member { name: name.into(), relation: relation.into(), ..Member::default() }
}

#[test]
fn members_edited_on_two_phones_at_once_merge_per_member_and_per_field() {
    let (_, mut a) = new_record(ActorId::random(), &staff(), &grid(), 1, [11; 10], &NewRecord::Household(household()))
        .expect("create");
    let daughter = members_of(&a)[0].id.clone();
    let son = Editor::new(&mut a, &staff(), 2).add_member(&member("周强", "儿子")).expect("add");
    let mut b = a.fork();
    b.set_actor(ActorId::random());
    let other = other_staff();
    // Phone A: the daughter's phone number and a tag; a grandson added.
    let mut d = members_of(&a)[0].clone();
    d.phone = "13907120022".into();
    d.tags.push("低保".into());
    Editor::new(&mut a, &staff(), 3).update_member(&daughter, &d).expect("a edits");
    let grandson = Editor::new(&mut a, &staff(), 3).add_member(&member("周小明", "外孙")).expect("a adds");
    // Phone B, at once: the daughter's ID number and another tag; the son removed.
    let mut d = members_of(&b)[0].clone();
    d.id_number = "420902197501020048".into();
    d.tags.push("残疾人".into());
    Editor::new(&mut b, &other, 3).update_member(&daughter, &d).expect("b edits");
    Editor::new(&mut b, &other, 3).remove_member(&son).expect("b removes");
    a.merge(&mut b).expect("merge");

    let members = members_of(&a);
    let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [daughter.as_str(), grandson.as_str()], "the son removed, the grandson added");
    let d = &members[0];
    assert_eq!((d.phone.as_str(), d.id_number.as_str()), ("13907120022", "420902197501020048"), "both fields");
    // Both tags kept; their order is Automerge's (by actor), the same on every replica.
    let mut tags = d.tags.clone();
    tags.sort();
    assert_eq!(tags, ["低保", "残疾人"]);
    assert!(read_record(&a).expect("read").conflicts().is_empty());

    // The same field of the same member on both phones: a conflict, until chosen.
    let mut b = a.fork();
    b.set_actor(ActorId::random());
    let renamed = |doc: &mut Automerge, author: &Author, name: &str| {
        let m = Member { name: name.into(), ..members_of(doc)[1].clone() };
        Editor::new(doc, author, 4).update_member(&grandson, &m).expect("rename");
    };
    renamed(&mut a, &staff(), "周晓明");
    renamed(&mut b, &other, "周小鸣");
    a.merge(&mut b).expect("merge");
    let record = read_record(&a).expect("read");
    let [c] = record.conflicts() else { panic!("{:?}", record.conflicts()) };
    assert_eq!(c.field, format!("members.{grandson}.name"));
    assert!(
        c.values.contains(&FieldValue::Text("周晓明".into())) && c.values.contains(&FieldValue::Text("周小鸣".into()))
    );
    Editor::new(&mut a, &staff(), 5).resolve_conflict(&c.field, &FieldValue::Text("周晓明".into())).expect("choose");
    assert!(read_record(&a).expect("read").conflicts().is_empty());
    assert_eq!(members_of(&a)[1].name, "周晓明");
}

#[test]
fn a_household_with_the_earlier_members_list_still_reads_and_its_members_are_edited_in_place() {
    let (_, mut doc) =
        new_record(ActorId::random(), &staff(), &grid(), 1, [12; 10], &NewRecord::Household(household()))
            .expect("create");
    // Written as the previous schema did: `members` a list of maps, no `members_by_id`.
    doc.transact::<_, _, automerge::AutomergeError>(|tx| {
        tx.delete(ROOT, "members_by_id")?;
        let list = tx.put_object(ROOT, "members", automerge::ObjType::List)?;
        for (i, (name, relation)) in [("周丽", "女儿"), ("周强", "儿子")].into_iter().enumerate() {
            let m = tx.insert_object(&list, i, automerge::ObjType::Map)?;
            for (k, v) in [("name", name), ("relation", relation), ("id_number", ""), ("phone", "")] {
                tx.put(&m, k, v)?;
            }
        }
        Ok(())
    })
    .expect("old shape");
    let old = members_of(&doc);
    assert_eq!(old.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["周丽", "周强"]);
    let mut b = doc.fork();
    b.set_actor(ActorId::random());
    // One phone edits the daughter and adds a member; the other edits the son at once.
    let d = Member { phone: "13907120022".into(), tags: vec!["低保".into()], ..old[0].clone() };
    Editor::new(&mut doc, &staff(), 2).update_member(&old[0].id, &d).expect("edit in place");
    Editor::new(&mut doc, &staff(), 2).add_member(&member("周小明", "外孙")).expect("first keyed member");
    let s = Member { tags: vec!["残疾人".into()], ..old[1].clone() };
    Editor::new(&mut b, &other_staff(), 2).update_member(&old[1].id, &s).expect("edit in place");
    Editor::new(&mut b, &other_staff(), 2).add_member(&member("周小红", "孙女")).expect("and another phone's first");
    doc.merge(&mut b).expect("merge");
    let members = members_of(&doc);
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names.len(), 4, "no member lost: {names:?}");
    assert!(names.starts_with(&["周丽", "周强"]) && names.contains(&"周小明") && names.contains(&"周小红"));
    assert_eq!((members[0].phone.as_str(), members[0].tags.as_slice()), ("13907120022", &["低保".to_string()][..]));
    assert_eq!(members[1].tags, ["残疾人"]);
    Editor::new(&mut doc, &staff(), 3).remove_member(&old[1].id).expect("remove an earlier member");
    assert_eq!(members_of(&doc).len(), 3);
}

#[test]
fn saving_a_household_form_again_does_not_add_its_members_twice() {
    let (_, mut doc) =
        new_record(ActorId::random(), &staff(), &grid(), 1, [13; 10], &NewRecord::Household(household()))
            .expect("create");
    Editor::new(&mut doc, &staff(), 2).update_fields(&NewRecord::Household(household())).expect("repeat");
    assert_eq!(members_of(&doc).len(), 1);
    let mut fields = household();
    fields.members.clear();
    Editor::new(&mut doc, &staff(), 3).update_household(&fields).expect("a form without members");
    assert_eq!(members_of(&doc).len(), 1, "members are removed only one by one");
}

#[test]
fn assigning_a_case_names_the_assignee_and_a_move_to_assigned_without_one_is_refused() {
    let (_, mut doc) =
        new_record(ActorId::random(), &staff(), &grid(), 1, [14; 10], &NewRecord::Case(a_case())).expect("create");
    let sup = supervisor_over("xg/xn/sh");
    let err = Editor::new(&mut doc, &sup, 2).advance_case(CaseStatus::Assigned).expect_err("no assignee");
    assert!(err.to_string().contains("invalid_record"), "{err}");
    Editor::new(&mut doc, &sup, 3).assign_case(staff().person).expect("assign");
    let Record::Case(c) = read_record(&doc).expect("read") else { panic!() };
    assert_eq!((c.standing().status, c.assignee()), (CaseStatus::Assigned, Some(staff().person)));
    assert_eq!(c.status_log[0].assignee, Some(staff().person));
    // Reopened back before assigned: nobody holds it until it is assigned again.
    Editor::new(&mut doc, &sup, 4).reopen_case(CaseStatus::Accepted, "需重新交办").expect("reopen");
    let Record::Case(c) = read_record(&doc).expect("read") else { panic!() };
    assert_eq!(c.assignee(), None);
    Editor::new(&mut doc, &sup, 5).assign_case(other_staff().person).expect("assign again");
    let Record::Case(c) = read_record(&doc).expect("read") else { panic!() };
    assert_eq!(c.assignee(), Some(other_staff().person));
}

#[test]
fn members_saved_together_or_added_in_the_same_millisecond_keep_the_order_given() {
    let names = ["周丽", "周强", "周小明", "周小红", "王芳"];
    for _ in 0..40 {
        let mut fields = household();
        fields.members = names.iter().map(|n| member(n, "家人")).collect();
        let (_, mut doc) = new_record(ActorId::random(), &staff(), &grid(), 7, [12; 10], &NewRecord::Household(fields))
            .expect("create");
        for extra in ["李梅", "李华"] {
            Editor::new(&mut doc, &staff(), 7).add_member(&member(extra, "租户")).expect("add in the same ms");
        }
        let read: Vec<String> = members_of(&doc).into_iter().map(|m| m.name).collect();
        assert_eq!(read, ["周丽", "周强", "周小明", "周小红", "王芳", "李梅", "李华"]);
    }
}
