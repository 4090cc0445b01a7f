//! A save the storage refuses (a full phone, an I/O error) leaves the replica as
//! it was: the record or edit is not shown, not counted as waiting and not sent,
//! so memory never holds what storage does not — and saving works again later.

use gridsync_client::{MemoryStorage, Replica, ReplicaError, Storage, StorageError, StoreOp};
use gridsync_shared::protocol::{self, DeviceRegistration, SyncRequest};
use gridsync_shared::records::{CaseFields, CaseKind, NewRecord, VisitFields};
use gridsync_shared::{DeviceId, DocId, PersonId, Record, Role};
use std::cell::Cell;
use std::rc::Rc;

/// Memory storage that refuses every commit while its switch is on, like a
/// browser whose storage quota is used up.
struct Full {
    inner: MemoryStorage,
    full: Rc<Cell<bool>>,
}

impl Storage for Full {
    fn load_all(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.inner.load_all()
    }

    fn commit(&mut self, ops: Vec<StoreOp>) -> Result<(), StorageError> {
        if self.full.get() {
            return Err(StorageError::Host("QuotaExceededError".into()));
        }
        self.inner.commit(ops)
    }
}

fn phone() -> (Replica<Full>, Rc<Cell<bool>>) {
    let full = Rc::new(Cell::new(false));
    let mut r = Replica::open(Full { inner: MemoryStorage::new(), full: full.clone() }).expect("open");
    r.register(DeviceRegistration {
        device: DeviceId(uuid::Uuid::new_v4()),
        token: "t".into(),
        actor: "0123456789abcdef0123456789abcdef".into(),
        person: PersonId(uuid::Uuid::new_v4()),
        name: "李网格".into(),
        role: Role::FieldStaff,
        territory: "a/b/c/d/g1".parse().expect("grid"),
    })
    .expect("register");
    (r, full)
}

fn visit(notes: &str) -> NewRecord {
    NewRecord::VisitLog(VisitFields { visited_at: 1, notes: notes.into(), ..Default::default() })
}

fn case(title: &str) -> NewRecord {
    NewRecord::Case(CaseFields {
        kind: CaseKind::Hazard,
        title: title.into(),
        description: "楼道灯不亮".into(),
        household: None,
        visit: None,
        due_at: None,
    })
}

fn follow_ups(r: &Replica<Full>, id: DocId) -> Vec<String> {
    match r.record(id) {
        Some(Record::Case(c)) => c.follow_ups.iter().map(|f| f.note.clone()).collect(),
        other => panic!("not a case: {other:?}"),
    }
}

/// What the replica would push now: (record, number of changes).
fn pushed(r: &mut Replica<Full>) -> Vec<(DocId, usize)> {
    let request: SyncRequest = protocol::decode(&r.build_request()).expect("request");
    request.push.iter().map(|p| (p.doc, p.changes.len())).collect()
}

/// Everything the replica shows, as reopened from what its storage holds.
fn reopened(r: &Replica<Full>) -> (Vec<(DocId, Record)>, usize) {
    let copy = Full { inner: r.storage().inner.clone(), full: Rc::new(Cell::new(false)) };
    let again = Replica::open(copy).expect("reopen");
    (again.records().collect(), again.pending_changes())
}

#[test]
fn a_new_record_that_cannot_be_saved_is_not_kept_shown_or_sent() {
    let (mut r, full) = phone();
    let kept = r.create(None, 1, &visit("已保存的走访")).expect("create");
    full.set(true);
    let err = r.create(None, 2, &visit("存储已满时写的走访")).expect_err("storage is full");
    assert!(matches!(err, ReplicaError::Storage(_)), "{err}");
    assert_eq!(r.records().count(), 1, "the unsaved record is not listed");
    assert_eq!(r.pending_changes(), 1, "nor counted as waiting");
    assert_eq!(pushed(&mut r), vec![(kept, 1)], "nor sent");

    full.set(false);
    let later = r.create(None, 3, &visit("清理空间后重写的走访")).expect("saving works again");
    assert_eq!(r.pending_changes(), 2);
    let (records, pending) = reopened(&r);
    assert_eq!(records.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![kept, later]);
    assert_eq!(pending, 2, "memory and storage agree");
}

#[test]
fn an_edit_that_cannot_be_saved_leaves_the_record_as_it_was() {
    let (mut r, full) = phone();
    let id = r.create(None, 1, &case("楼道灯损坏")).expect("create");
    r.edit(id, 2, |e| e.add_follow_up("已联系物业", None)).expect("follow-up");
    full.set(true);
    let err = r.edit(id, 3, |e| e.add_follow_up("存储已满时的跟进", None)).expect_err("storage is full");
    assert!(matches!(err, ReplicaError::Storage(_)), "{err}");
    assert_eq!(follow_ups(&r, id), vec!["已联系物业"], "the unsaved follow-up is gone from memory");
    assert_eq!(r.pending_changes(), 2);
    assert_eq!(pushed(&mut r), vec![(id, 2)], "and is not sent");

    // A second failed edit on the same record, then the storage works again.
    assert!(r.edit(id, 4, |e| e.add_follow_up("又一次失败", None)).is_err());
    full.set(false);
    r.edit(id, 5, |e| e.add_follow_up("物业已派人维修", None)).expect("saving works again");
    assert_eq!(follow_ups(&r, id), vec!["已联系物业", "物业已派人维修"]);
    let (records, pending) = reopened(&r);
    assert_eq!(pending, 3);
    let Some((_, Record::Case(c))) = records.into_iter().find(|(d, _)| *d == id) else { panic!("case lost") };
    let notes: Vec<_> = c.follow_ups.iter().map(|f| f.note.as_str()).collect();
    assert_eq!(notes, vec!["已联系物业", "物业已派人维修"], "memory and storage agree");
}
