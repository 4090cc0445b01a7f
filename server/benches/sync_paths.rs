//! The server's hot paths over a real sled store in a temporary directory: one
//! pushed follow-up validated and committed by `sync::sync`, and its parts apart
//! (the shared rules with `save()` and their Automerge steps, loading the stored
//! document, the sled commit and its fsync); and one pull page of visit logs,
//! from the feed and from the snapshot.

use automerge::{ActorId, Automerge, Change, ReadDoc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gridsync_server::auth::Caller;
use gridsync_server::store::{Device, DocWrite, Person, SledStore, Store};
use gridsync_server::sync::{DocLocks, sync};
use gridsync_shared::protocol::{DEFAULT_PAGE_BYTES, DocPush, PushOutcome, SyncRequest, SyncResponse};
use gridsync_shared::records::{
    CaseFields, CaseKind, Editor, GeoPoint, HouseholdFields, NewRecord, VisitFields, VisitKind, new_record, read_record,
};
use gridsync_shared::rules::{PushVerdict, check_push};
use gridsync_shared::workflow::CaseStatus;
use gridsync_shared::{Author, DeviceId, DocId, PersonId, Role, TerritoryPath};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hint::black_box;
use uuid::Uuid;

const GRID: &str = "xg/xn/sh/dh/g01";
const NOW: i64 = 1_760_000_000_000;
/// Follow-ups a case starts with; after `ROTATE_AFTER` more, the benchmark moves
/// on to a fresh case, so the document measured stays the same size.
const SEED_FOLLOW_UPS: usize = 3;
const ROTATE_AFTER: usize = 8;

/// Chinese field notes of `chars` characters, varied by `seed`.
fn notes(seed: usize, chars: usize) -> String {
    const PHRASES: [&str; 8] = [
        "今天上午走访了独居老人王秀英家，",
        "老人身体状况良好，血压比较稳定，",
        "反映楼道照明不足，晚上出行不便，",
        "已联系物业尽快更换损坏的灯泡。",
        "邻居反映三楼住户装修噪音扰民，",
        "经调解双方同意晚上八点后停止施工，",
        "提醒家属注意燃气使用安全并检查软管，",
        "下周将再次回访了解问题落实情况。",
    ];
    (0..).map(|i| PHRASES[(seed + i * 3) % PHRASES.len()]).flat_map(str::chars).take(chars).collect()
}

/// A field staff member of the grid with one registered device.
struct Staff {
    caller: Caller,
    author: Author,
    actor: ActorId,
}

fn staff(username: &str) -> Staff {
    let grid: TerritoryPath = GRID.parse().expect("grid path");
    let actor = ActorId::random();
    let person = Person {
        id: PersonId(Uuid::new_v4()),
        username: username.into(),
        name: "李网格".into(),
        role: Role::FieldStaff,
        territory: grid,
        password_hash: String::new(),
        created_at: NOW,
    };
    let device = Device {
        id: DeviceId(Uuid::new_v4()),
        person: person.id,
        name: "李网格的手机".into(),
        actor: actor.to_bytes().to_vec(),
        token_hash: [0; 32],
        created_at: NOW,
        revoked_at: None,
    };
    let caller = Caller { device, person };
    Staff { author: caller.author(), caller, actor }
}

/// A sled store in a temporary directory, served by the real `sync`.
struct Server {
    store: SledStore,
    locks: DocLocks,
    _dir: tempfile::TempDir,
}

impl Server {
    fn new() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        Server { store: SledStore::open(dir.path()).expect("open sled"), locks: DocLocks::default(), _dir: dir }
    }

    fn sync(&self, who: &Staff, cursor: Option<Vec<u8>>, push: Vec<DocPush>) -> SyncResponse {
        let request = SyncRequest { cursor, push, max_response_bytes: DEFAULT_PAGE_BYTES };
        sync(&self.store, &self.locks, &who.caller, request, NOW).expect("sync")
    }

    /// Pushes and checks that every document was accepted; returns the new cursor.
    fn push_accepted(&self, who: &Staff, cursor: Option<Vec<u8>>, push: Vec<DocPush>) -> Vec<u8> {
        let response = self.sync(who, cursor, push);
        for r in &response.results {
            assert_eq!(r.outcome, PushOutcome::Accepted, "push of {} refused", r.doc);
        }
        response.cursor
    }
}

fn all_changes(doc: &Automerge) -> Vec<Vec<u8>> {
    doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect()
}

/// A case as its reporting phone holds it: a description, a move to in progress
/// and a few follow-ups.
struct PhoneCase {
    id: DocId,
    doc: Automerge,
    added: usize,
}

impl PhoneCase {
    fn new(who: &Staff, seed: usize) -> PhoneCase {
        let grid: TerritoryPath = GRID.parse().expect("grid path");
        let fields = CaseFields {
            kind: CaseKind::Hazard,
            title: "三号楼楼道灯损坏".into(),
            description: notes(seed, 200),
            household: None,
            visit: None,
            due_at: Some(NOW + 7 * 86_400_000),
        };
        let random = Uuid::new_v4().as_bytes()[..10].try_into().expect("10 bytes");
        let (id, mut doc) =
            new_record(who.actor.clone(), &who.author, &grid, NOW, random, &NewRecord::Case(fields)).expect("new case");
        let mut editor = Editor::new(&mut doc, &who.author, NOW + 1);
        editor.advance_case(CaseStatus::InProgress).expect("advance");
        for i in 0..SEED_FOLLOW_UPS {
            editor.add_follow_up(&notes(seed + i, 80), None).expect("follow-up");
        }
        PhoneCase { id, doc, added: 0 }
    }

    /// Writes one more follow-up with the shared editor; returns its change.
    fn follow_up(&mut self, who: &Staff) -> Change {
        self.added += 1;
        let now = NOW + 10 + self.added as i64;
        let hash = Editor::new(&mut self.doc, &who.author, now)
            .add_follow_up(&notes(self.added, 80), None)
            .expect("follow-up")
            .expect("a new change");
        self.doc.get_change_by_hash(&hash).expect("change just made")
    }
}

/// Builds one new follow-up change per call, on the same case until it has had
/// `ROTATE_AFTER`, then on a fresh case, which `start` makes known to the server.
struct FollowUps<'a> {
    who: &'a Staff,
    case: PhoneCase,
    seed: usize,
    start: Box<dyn FnMut(&PhoneCase) + 'a>,
}

impl<'a> FollowUps<'a> {
    fn new(who: &'a Staff, mut start: Box<dyn FnMut(&PhoneCase) + 'a>) -> Self {
        let case = PhoneCase::new(who, 0);
        start(&case);
        FollowUps { who, case, seed: 0, start }
    }

    fn next(&mut self) -> (DocId, Change) {
        if self.case.added >= ROTATE_AFTER {
            self.seed += 1;
            self.case = PhoneCase::new(self.who, self.seed);
            (self.start)(&self.case);
        }
        (self.case.id, self.case.follow_up(self.who))
    }
}

fn validate_and_apply_one_change(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_and_apply_one_change");
    let who = staff("li");

    // The whole server path: decode, load the stored case, the rules, merge,
    // save, the sled commit and the fsync before the acknowledgement, and an
    // empty pull (the phone's own entry is skipped).
    {
        let server = Server::new();
        let cursor = RefCell::new(server.push_accepted(&who, None, vec![]));
        let mut changes = FollowUps::new(
            &who,
            Box::new(|case| {
                let push = vec![DocPush { doc: case.id, changes: all_changes(&case.doc) }];
                let next = server.push_accepted(&who, Some(cursor.borrow().clone()), push);
                *cursor.borrow_mut() = next;
            }),
        );
        group.bench_function("sync_sled", |b| {
            b.iter_batched(
                || {
                    let (doc, change) = changes.next();
                    DocPush { doc, changes: vec![change.raw_bytes().to_vec()] }
                },
                |push| {
                    let response = server.sync(&who, Some(cursor.borrow().clone()), vec![push]);
                    assert_eq!(response.results[0].outcome, PushOutcome::Accepted, "follow-up refused");
                    assert!(response.updates.is_empty(), "nothing to pull");
                    *cursor.borrow_mut() = response.cursor;
                },
                BatchSize::SmallInput,
            )
        });
    }

    // The shared rules alone, with the `save()` the commit needs: no store.
    {
        let docs: RefCell<HashMap<DocId, Automerge>> = RefCell::default();
        let mut changes = FollowUps::new(
            &who,
            Box::new(|case| {
                let mut server_doc = Automerge::new();
                server_doc.apply_changes(case.doc.get_changes(&[])).expect("apply");
                docs.borrow_mut().insert(case.id, server_doc);
            }),
        );
        group.bench_function("rules_check_push_and_save", |b| {
            b.iter_batched(
                || changes.next(),
                |(id, change)| {
                    let mut docs = docs.borrow_mut();
                    let current = docs.get_mut(&id).expect("server copy");
                    let verdict = check_push(Some(current), vec![change], &who.actor, &who.author).expect("valid");
                    let PushVerdict::Accept { merged, .. } = verdict else { panic!("not a duplicate") };
                    let bytes = merged.save();
                    *current = *merged;
                    bytes
                },
                BatchSize::SmallInput,
            )
        });
    }

    // Loading the stored document, which `sync` does before the rules, and the
    // steps inside `check_push` on their own: `get_change_by_hash` for each
    // pushed change (twice, and once more in `sync`), one `fork_at`, two `fork`s
    // and two `apply_changes`, three `read_record`s, then the merged `save()`.
    // The case has as many follow-ups as `sync_sled`'s does on average.
    {
        let mut case = PhoneCase::new(&who, 1);
        for _ in 0..ROTATE_AFTER / 2 {
            case.follow_up(&who);
        }
        let doc = case.doc.clone();
        let bytes = doc.save();
        let heads = doc.get_heads();
        let change = case.follow_up(&who);
        group.bench_function("automerge_load_stored_case", |b| {
            b.iter(|| Automerge::load(black_box(&bytes)).expect("load"))
        });
        group.bench_function("parts/automerge_get_change_by_hash", |b| {
            b.iter(|| doc.get_change_by_hash(black_box(&heads[0])).expect("a head"))
        });
        group
            .bench_function("parts/automerge_fork_at", |b| b.iter(|| doc.fork_at(black_box(&heads)).expect("fork_at")));
        group.bench_function("parts/automerge_fork", |b| b.iter(|| black_box(&doc).fork()));
        group.bench_function("parts/automerge_apply_one_change", |b| {
            b.iter_batched(
                || (doc.fork(), change.clone()),
                |(mut d, c)| {
                    d.apply_changes([c]).expect("apply");
                    d
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function("parts/read_record", |b| b.iter(|| read_record(black_box(&doc)).expect("read record")));
        group.bench_function("parts/automerge_save", |b| b.iter(|| black_box(&doc).save()));
    }

    // The sled commit (document, heads, feed entry and its index) without and
    // with the fsync; writes are prepared with the rules outside the timing.
    for flush in [false, true] {
        let server = Server::new();
        let docs: RefCell<HashMap<DocId, Automerge>> = RefCell::default();
        let seq = Cell::new(0u64);
        let write = |id: DocId, current: Option<&Automerge>, changes: Vec<Change>| -> (DocWrite, Automerge) {
            let raw = changes.iter().map(|c| c.raw_bytes().to_vec()).collect();
            let verdict = check_push(current, changes, &who.actor, &who.author).expect("valid");
            let PushVerdict::Accept { merged, record } = verdict else { panic!("not a duplicate") };
            let write = DocWrite {
                doc: id,
                grid: record.meta().grid.clone(),
                summary: record.summary(),
                bytes: merged.save(),
                heads: merged.get_heads(),
                device: who.caller.device.id,
                changes: raw,
                photos: record.photos().to_vec(),
                row: None,
            };
            (write, *merged)
        };
        let mut changes = FollowUps::new(
            &who,
            Box::new(|case| {
                let (w, merged) = write(case.id, None, case.doc.get_changes(&[]));
                seq.set(server.store.commit_doc(w, NOW).expect("commit"));
                docs.borrow_mut().insert(case.id, merged);
            }),
        );
        let name = if flush { "sled_commit_doc_and_flush" } else { "sled_commit_doc" };
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let (id, change) = changes.next();
                    let mut docs = docs.borrow_mut();
                    let current = docs.get_mut(&id).expect("server copy");
                    let (w, merged) = write(id, Some(current), vec![change]);
                    *current = merged;
                    w
                },
                |w| {
                    seq.set(server.store.commit_doc(w, NOW).expect("commit"));
                    if flush {
                        server.store.flush().expect("flush");
                    }
                },
                BatchSize::SmallInput,
            )
        });
        assert!(seq.get() > 0);
    }
    group.finish();
}

/// A realistic visit log: ~600 characters of notes, concerns, a GPS fix.
fn visit_log(seed: usize, household: DocId) -> NewRecord {
    NewRecord::VisitLog(VisitFields {
        household: Some(household),
        visited_at: NOW - seed as i64 * 60_000,
        kind: Some(VisitKind::Routine),
        location: Some(GeoPoint { lat: 30.5928 + seed as f64 * 1e-5, lon: 114.3055, accuracy_m: Some(12.0) }),
        notes: notes(seed, 600),
        concerns: vec!["楼道灯不亮".into(), "小区门口占道经营".into(), "希望增加老年助餐点".into()][..2 + seed % 2]
            .to_vec(),
        findings: notes(seed + 5, 40),
    })
}

fn build_sync_response(c: &mut Criterion) {
    const VISITS: usize = 2_000;
    let mut group = c.benchmark_group("build_sync_response");
    let (writer, reader) = (staff("wang"), staff("li"));
    let server = Server::new();
    let grid: TerritoryPath = GRID.parse().expect("grid path");
    // The reader's cursor while the store is empty stands at the start of the feed.
    let start_of_feed = server.push_accepted(&reader, None, vec![]);
    let random = Uuid::new_v4().as_bytes()[..10].try_into().expect("10 bytes");
    let fields = HouseholdFields {
        address: "东湖社区3栋2单元301".into(), head: "王建国".into(), ..Default::default()
    };
    let (household, am) =
        new_record(writer.actor.clone(), &writer.author, &grid, NOW - 2, random, &NewRecord::Household(fields))
            .expect("new household");
    let mut cursor = server.push_accepted(&writer, None, vec![DocPush { doc: household, changes: all_changes(&am) }]);
    for chunk in (0..VISITS).collect::<Vec<_>>().chunks(200) {
        let push = chunk
            .iter()
            .map(|&i| {
                let random = Uuid::new_v4().as_bytes()[..10].try_into().expect("10 bytes");
                let (doc, am) =
                    new_record(writer.actor.clone(), &writer.author, &grid, NOW - 1, random, &visit_log(i, household))
                        .expect("new visit log");
                DocPush { doc, changes: all_changes(&am) }
            })
            .collect();
        cursor = server.push_accepted(&writer, Some(cursor), push);
    }
    for (name, from) in [("feed_page_from_start", Some(start_of_feed)), ("snapshot_page_no_cursor", None)] {
        let page = server.sync(&reader, from.clone(), vec![]);
        let bytes: usize = page.updates.iter().map(|u| u.body.len()).sum();
        eprintln!(
            "{name}: {} of {VISITS} visit logs, {} KiB of documents, more: {}",
            page.updates.len(),
            bytes / 1024,
            page.more
        );
        group.bench_function(name, |b| {
            b.iter_batched(|| from.clone(), |cursor| server.sync(&reader, cursor, vec![]), BatchSize::SmallInput)
        });
    }
    group.finish();
}

criterion_group!(benches, validate_and_apply_one_change, build_sync_response);
criterion_main!(benches);
