//! The queries the phone's screens run (a household's records, the newest
//! visits page by page, a diary's days): each returns the right records and
//! parses only those, read from the headers kept beside the stored documents.

use gridsync_client::{FileStorage, MemoryStorage, Replica, Storage, StoreOp};
use gridsync_shared::protocol::DeviceRegistration;
use gridsync_shared::records::{CaseFields, CaseKind, HouseholdFields, NewRecord, PromiseFields, VisitFields};
use gridsync_shared::{DeviceId, DocId, PersonId, Record, RecordKind, Role};
use std::path::Path;

fn registration(actor: &str) -> DeviceRegistration {
    DeviceRegistration {
        device: DeviceId(uuid::Uuid::new_v4()),
        token: "t".into(),
        actor: actor.into(),
        person: PersonId(uuid::Uuid::new_v4()),
        name: "李网格".into(),
        role: Role::FieldStaff,
        territory: "a/b/c/d/g1".parse().expect("grid"),
    }
}

fn household(head: &str) -> NewRecord {
    NewRecord::Household(HouseholdFields { head: head.into(), address: "东湖路12号".into(), ..Default::default() })
}

fn visit(household: Option<DocId>, at: i64, notes: &str) -> NewRecord {
    NewRecord::VisitLog(VisitFields { household, visited_at: at, notes: notes.into(), ..Default::default() })
}

fn case(household: DocId, title: &str) -> NewRecord {
    NewRecord::Case(CaseFields {
        kind: CaseKind::Hazard,
        title: title.into(),
        description: String::new(),
        household: Some(household),
        visit: None,
        due_at: None,
    })
}

fn promise(household: DocId, content: &str) -> NewRecord {
    NewRecord::Promise(PromiseFields { content: content.into(), household: Some(household), due_at: 5_000 })
}

/// The replica as the app finds it on opening: every record stored, none parsed.
fn reopened(dir: &Path) -> Replica<FileStorage> {
    Replica::open(FileStorage::open(dir).expect("files")).expect("reopen")
}

fn ids(records: impl IntoIterator<Item = (DocId, Record)>) -> Vec<DocId> {
    records.into_iter().map(|(id, _)| id).collect()
}

/// True if none of `all` but those in `read` was parsed, and each in `read` was.
fn parsed_only(r: &Replica<FileStorage>, all: &[DocId], read: &[DocId]) -> bool {
    all.iter().all(|id| (r.times_parsed(*id).expect("held") > 0) == read.contains(id))
}

#[test]
fn a_household_page_reads_that_households_visits_cases_and_promises_and_parses_no_other_record() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut r = Replica::open(FileStorage::open(dir.path()).expect("files")).expect("open");
    r.register(registration("0123456789abcdef0123456789abcdef")).expect("register");
    let chen = r.create(None, 1, &household("陈桂英")).expect("create");
    let wang = r.create(None, 1, &household("王建国")).expect("create");
    let mut all = vec![chen, wang];
    let mut chen_visits = Vec::new();
    for i in 0..3 {
        chen_visits.push(r.create(None, 10 + i, &visit(Some(chen), 100 + i, "陈家")).expect("create"));
        all.push(r.create(None, 10 + i, &visit(Some(wang), 200 + i, "王家")).expect("create"));
    }
    all.push(r.create(None, 20, &visit(None, 300, "未关联住户")).expect("create"));
    let chen_case = r.create(None, 30, &case(chen, "楼道杂物")).expect("create");
    all.push(r.create(None, 30, &case(wang, "噪音扰民")).expect("create"));
    let chen_promise = r.create(None, 40, &promise(chen, "修好楼道灯")).expect("create");
    all.extend(chen_visits.iter().copied().chain([chen_case, chen_promise]));
    drop(r);

    let r = reopened(dir.path());
    assert_eq!(ids(r.records_about(chen, Some(RecordKind::VisitLog))), chen_visits, "her visits, by id");
    assert!(parsed_only(&r, &all, &chen_visits), "no other record was parsed");
    assert_eq!(ids(r.records_about(chen, Some(RecordKind::Case))), vec![chen_case]);
    assert_eq!(ids(r.records_about(chen, Some(RecordKind::Promise))), vec![chen_promise]);
    let mut read = chen_visits.clone();
    read.extend([chen_case, chen_promise]);
    assert!(parsed_only(&r, &all, &read), "nor after her cases and promises");
    assert_eq!(ids(r.records_about(chen, None)).len(), 5, "all of hers, of every kind");
}

#[test]
fn recent_pages_visits_newest_first_by_visit_time_and_parses_only_each_page() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut r = Replica::open(FileStorage::open(dir.path()).expect("files")).expect("open");
    r.register(registration("0123456789abcdef0123456789abcdef")).expect("register");
    // Made in one order, visited in another: the list goes by visit time.
    let times = [500, 100, 400, 400, 200, 300];
    let made: Vec<DocId> = (0..times.len())
        .map(|i| r.create(None, 1 + i as i64, &visit(None, times[i], "走访")).expect("create"))
        .collect();
    let home = r.create(None, 1, &household("陈桂英")).expect("create");
    drop(r);

    let r = reopened(dir.path());
    let (page, more) = r.recent(RecordKind::VisitLog, None, 3);
    // 500, then the two at 400 (the later id first).
    assert_eq!(ids(page), vec![made[0], made[3], made[2]]);
    assert!(more);
    let mut all = made.clone();
    all.push(home);
    assert!(parsed_only(&r, &all, &[made[0], made[3], made[2]]), "only the page was parsed");

    let (page, more) = r.recent(RecordKind::VisitLog, Some(400), 3);
    assert_eq!(ids(page), vec![made[5], made[4], made[1]], "the next page: before 400");
    assert!(!more, "nothing older");
    let (page, more) = r.recent(RecordKind::VisitLog, None, 10);
    assert_eq!((page.len(), more), (6, false), "a page larger than the list holds it all");
    assert_eq!(r.times_parsed(home), Some(0), "a household is never parsed for a list of visits");
}

#[test]
fn a_diarys_days_parse_only_the_visits_made_on_them_oldest_first() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut r = Replica::open(FileStorage::open(dir.path()).expect("files")).expect("open");
    r.register(registration("0123456789abcdef0123456789abcdef")).expect("register");
    const DAY: i64 = 86_400_000;
    let late = r.create(None, 1, &visit(None, 2 * DAY + 5, "第三天下午")).expect("create");
    let early = r.create(None, 1, &visit(None, 2 * DAY + 1, "第三天上午")).expect("create");
    let before = r.create(None, 1, &visit(None, DAY - 1, "第一天夜里")).expect("create");
    let after = r.create(None, 1, &visit(None, 3 * DAY, "第四天零点")).expect("create");
    drop(r);

    let r = reopened(dir.path());
    let day = r.records_between(RecordKind::VisitLog, 2 * DAY, 3 * DAY);
    assert_eq!(ids(day), vec![early, late], "that day's visits, in the order they were made");
    assert!(parsed_only(&r, &[late, early, before, after], &[early, late]), "other days stay unparsed");
    assert!(r.records_between(RecordKind::Case, 0, 4 * DAY).is_empty(), "no case on those days");
}

#[test]
fn a_record_stored_without_kind_or_time_in_its_header_is_still_found_by_every_query() {
    // A visit log whose stored header is empty (damaged, or written when the
    // phone could not yet read the document): the phone parses it to learn
    // where it belongs.
    let mut other = Replica::open(MemoryStorage::new()).expect("open");
    other.register(registration("fedcba9876543210fedcba9876543210")).expect("register");
    let home = DocId(uuid::Uuid::now_v7());
    let id = other.create(None, 1, &visit(Some(home), 700, "旧格式")).expect("create");
    // The stored form: format 1, the header's length (u16 LE), an empty header, the document.
    let mut value = vec![1, 3, 0, 0, 0, 0];
    value.extend(other.document(id).expect("doc").save());
    let dir = tempfile::tempdir().expect("tmp");
    let mut files = FileStorage::open(dir.path()).expect("files");
    files.commit(vec![StoreOp::Put { key: format!("doc/{id}"), value }]).expect("store");
    drop(files);

    let r = reopened(dir.path());
    assert_eq!(ids(r.records_about(home, Some(RecordKind::VisitLog))), vec![id], "on its household's page");
    assert_eq!(ids(r.recent(RecordKind::VisitLog, None, 5).0), vec![id], "in the list of visits");
    assert_eq!(ids(r.records_between(RecordKind::VisitLog, 700, 701)), vec![id], "on its day");
    assert_eq!(r.visit_times().collect::<Vec<_>>(), vec![(id, 700)], "with its time");
    assert_eq!(ids(r.records_of(Some(RecordKind::VisitLog))), vec![id], "among the visit logs");
}
