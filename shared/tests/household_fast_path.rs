//! The bulk import's fast path (`new_imported_household`: the household checked
//! on its fields, not read back) against the full path (`new_household_in_one_batch`:
//! the document read back and checked with `rules::check_new`), over generated
//! households good and bad: the same verdict (and reason), the same record.

use automerge::{ActorId, Automerge};
use gridsync_shared::records::*;
use gridsync_shared::rules::check_new;
use gridsync_shared::{Author, DocId, PersonId, Role, TerritoryPath};
use proptest::prelude::*;

const NOW: i64 = 1_760_000_000_000;
/// Member ids given by the caller (another phone's copy, an earlier import).
const GIVEN: [&str; 4] = [
    "0190f000-0000-7000-8000-000000000001",
    "0190f000-0000-7000-8000-000000000002",
    "0190F000-0000-7000-8000-000000000003",
    "0190f000000070008000000000000004",
];

fn admin() -> Author {
    Author { person: PersonId(uuid::Uuid::from_u128(7)), role: Role::Administrator, territory: path("xg") }
}

fn staff() -> Author {
    Author { person: PersonId(uuid::Uuid::from_u128(8)), role: Role::FieldStaff, territory: path("xg/xn/sh/dh/g1") }
}

fn path(s: &str) -> TerritoryPath {
    s.parse().expect("a territory path")
}

/// `n` characters cycling through `chars` (one, two, three and four UTF-8 bytes each).
fn chars(n: usize, chars: &str) -> String {
    chars.chars().cycle().take(n).collect()
}

/// Text around `limit`: empty, short, exactly at the limit, one over.
fn text(limit: usize) -> impl Strategy<Value = String> {
    let len = prop_oneof![4 => 0..6usize, 1 => Just(limit), 1 => Just(limit + 1)];
    (len, prop::sample::select(vec!["a", "路a", "陈🏠", "1\n\"x"])).prop_map(|(n, c)| chars(n, c))
}

fn tags() -> impl Strategy<Value = Vec<String>> {
    let tag = prop_oneof![
        3 => prop::sample::select(vec!["低保", "独居老人", "残疾人", ""]).prop_map(String::from),
        1 => text(limits::SHORT_CHARS),
    ];
    prop::collection::vec(tag, 0..4)
}

fn member() -> impl Strategy<Value = Member> {
    let id = prop_oneof![
        3 => Just(String::new()),
        2 => prop::sample::select(GIVEN.to_vec()).prop_map(String::from),
        1 => Just("7@abc".to_string()),
    ];
    let name = prop_oneof![3 => prop::sample::select(vec!["周丽", "陈桂英", ""]).prop_map(String::from), 1 => text(limits::SHORT_CHARS)];
    let number = prop_oneof![3 => Just("420902194803150021".to_string()), 1 => text(limits::NUMBER_CHARS)];
    (id, name, text(limits::SHORT_CHARS), number.clone(), number, tags())
        .prop_map(|(id, name, relation, id_number, phone, tags)| Member { id, name, relation, id_number, phone, tags })
}

fn fields() -> impl Strategy<Value = HouseholdFields> {
    (
        text(limits::SHORT_CHARS),
        text(limits::SHORT_CHARS),
        text(limits::NUMBER_CHARS),
        text(limits::NUMBER_CHARS),
        prop::collection::vec(member(), 0..5),
        tags(),
        text(limits::TEXT_CHARS),
    )
        .prop_map(|(address, head, phone, id_number, members, tags, notes)| HouseholdFields {
            address,
            head,
            phone,
            id_number,
            members,
            tags,
            notes,
        })
}

/// A grid of the administrator's, a community (not a grid), a grid outside both authors' territory.
fn grid() -> impl Strategy<Value = TerritoryPath> {
    prop::sample::select(vec!["xg/xn/sh/dh/g1", "xg/xn/sh/dh/g2", "xg/xn/sh/dh", "wh/x/y/z/g1"]).prop_map(path)
}

/// The record with the member ids made at random (different on each build) blanked.
fn without_made_ids(record: &Record) -> Record {
    let mut record = record.clone();
    if let Record::Household(h) = &mut record {
        for m in &mut h.fields.members {
            if !GIVEN.contains(&m.id.as_str()) {
                m.id.clear();
            }
        }
    }
    record
}

/// A message with the member ids made at random (UUIDs v7 at `NOW`) masked.
fn without_made_id(message: &str) -> String {
    let made = &DocId::new_v7(NOW as u64, [0; 10]).to_string()[..14];
    let mut out = message.to_string();
    while let Some(at) = out.find(made) {
        out.replace_range(at..(at + 36).min(out.len()), "<made>");
    }
    out
}

/// Builds `fields` both ways and checks that they agree; returns whether they accepted.
fn same_verdict_and_record(id: DocId, author: &Author, grid: &TerritoryPath, fields: &HouseholdFields) -> bool {
    let actor = ActorId::from(&[3u8; 16][..]);
    let full = new_household_in_one_batch(id, actor.clone(), author, grid, NOW, fields);
    let fast = new_imported_household(id, actor, author, grid, NOW, fields);
    match (full, fast) {
        (Err(full), Err(fast)) => {
            assert_eq!(without_made_id(&full.to_string()), without_made_id(&fast.to_string()), "the same reason");
            false
        }
        (Ok((_, full)), Ok((doc, fast))) => {
            // The record returned is what the strict reader reads from the document
            // and from its stored bytes, and the full rules accept that document.
            assert_eq!(read_record(&doc).expect("the strict reader reads it"), fast);
            let stored = Automerge::load(&doc.save()).expect("the saved bytes load");
            assert_eq!(read_record(&stored).expect("read after a round trip"), fast);
            assert_eq!(check_new(&stored, author).expect("the full rules accept it"), fast);
            assert_eq!(doc.get_changes(&[]).len(), 1, "one change, as a new record from a phone");
            // The same record as the full path's (member ids made at random aside).
            assert_eq!(without_made_ids(&fast), without_made_ids(&full));
            true
        }
        (full, fast) => panic!("the two paths disagree: full {:?}, fast {:?}", full.err(), fast.err()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn the_fast_path_accepts_exactly_what_the_full_path_accepts_with_the_same_record(
        f in fields(),
        grid in grid(),
        by_admin in any::<bool>(),
        v7 in prop::sample::select(vec![true, true, true, false]),
    ) {
        let id = if v7 { DocId::new_v7(NOW as u64, [9; 10]) } else { DocId(uuid::Uuid::new_v4()) };
        let author = if by_admin { admin() } else { staff() };
        same_verdict_and_record(id, &author, &grid, &f);
    }
}

fn good() -> HouseholdFields {
    HouseholdFields {
        address: "东湖路12号".into(),
        head: "陈桂英".into(),
        phone: "13807120011".into(),
        id_number: "420902194803150021".into(),
        members: vec![Member { name: "陈桂英".into(), relation: "户主".into(), ..Member::default() }],
        tags: vec!["独居老人".into()],
        notes: String::new(),
    }
}

fn v7() -> DocId {
    DocId::new_v7(NOW as u64, [9; 10])
}

#[test]
fn every_field_one_over_its_limit_is_refused_by_both_paths_and_at_its_limit_accepted() {
    let grid = path("xg/xn/sh/dh/g1");
    type Set = fn(&mut HouseholdFields, String);
    let cases: [(Set, usize); 11] = [
        (|f, v| f.address = v, limits::SHORT_CHARS),
        (|f, v| f.head = v, limits::SHORT_CHARS),
        (|f, v| f.phone = v, limits::NUMBER_CHARS),
        (|f, v| f.id_number = v, limits::NUMBER_CHARS),
        (|f, v| f.notes = v, limits::TEXT_CHARS),
        (|f, v| f.tags = vec![v], limits::SHORT_CHARS),
        (|f, v| f.members[0].name = v, limits::SHORT_CHARS),
        (|f, v| f.members[0].relation = v, limits::SHORT_CHARS),
        (|f, v| f.members[0].id_number = v, limits::NUMBER_CHARS),
        (|f, v| f.members[0].phone = v, limits::NUMBER_CHARS),
        (|f, v| f.members[0].tags = vec![v], limits::SHORT_CHARS),
    ];
    for (i, (set, limit)) in cases.into_iter().enumerate() {
        for c in ["a", "陈🏠"] {
            let mut at = good();
            set(&mut at, chars(limit, c));
            assert!(same_verdict_and_record(v7(), &admin(), &grid, &at), "case {i}: at the limit");
            let mut over = good();
            set(&mut over, chars(limit + 1, c));
            assert!(!same_verdict_and_record(v7(), &admin(), &grid, &over), "case {i}: one over");
        }
    }
}

#[test]
fn lists_at_and_over_the_entry_limit_get_the_same_verdict_and_record() {
    let grid = path("xg/xn/sh/dh/g1");
    let many = |n: usize| (0..n).map(|i| format!("标签{i}")).collect::<Vec<_>>();
    let mut tags = good();
    tags.tags = many(limits::LIST_ENTRIES);
    assert!(same_verdict_and_record(v7(), &admin(), &grid, &tags));
    tags.tags = many(limits::LIST_ENTRIES + 1);
    assert!(!same_verdict_and_record(v7(), &admin(), &grid, &tags));
    // Repeated tags count once.
    tags.tags = [many(limits::LIST_ENTRIES), many(10)].concat();
    assert!(same_verdict_and_record(v7(), &admin(), &grid, &tags));
    // A member's tags beyond the limit: the reader keeps the first ones; both paths agree.
    let mut member_tags = good();
    member_tags.members[0].tags = many(limits::LIST_ENTRIES + 1);
    same_verdict_and_record(v7(), &admin(), &grid, &member_tags);
    let mut members = good();
    let member = |i: usize| Member { name: format!("成员{i}"), ..Member::default() };
    members.members = (0..limits::LIST_ENTRIES).map(member).collect();
    assert!(same_verdict_and_record(v7(), &admin(), &grid, &members));
    members.members.push(member(limits::LIST_ENTRIES));
    assert!(!same_verdict_and_record(v7(), &admin(), &grid, &members));
}
