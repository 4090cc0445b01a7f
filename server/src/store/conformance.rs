//! One behavioural suite for every store engine: each test below is a plain
//! function over `&dyn Store`, run against the sled store and against the
//! PostgreSQL store (on a throwaway server), so both keep the same promises.
//! Then the PostgreSQL store's own: concurrent writers on separate pools (as
//! two server processes) while readers page the feed.

use super::postgres::scratch::ScratchPostgres;
use super::*;
use automerge::transaction::Transactable;
use gridsync_shared::records::RecordSummary;
use std::sync::{Arc, Mutex, Weak};

/// One throwaway PostgreSQL shared by the tests running at the same time,
/// stopped when the last of them is done.
fn scratch() -> Arc<ScratchPostgres> {
    static SHARED: Mutex<Weak<ScratchPostgres>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(pg) = shared.upgrade() {
        return pg;
    }
    let pg = Arc::new(ScratchPostgres::start().expect("a throwaway PostgreSQL (needed: this test is not skipped)"));
    *shared = Arc::downgrade(&pg);
    pg
}

/// A PostgreSQL store on a new database; the server lives as long as the first.
fn pg_store() -> (Arc<ScratchPostgres>, PgStore) {
    let (pg, _, store) = pg_store_at();
    (pg, store)
}

/// As [`pg_store`], with the database's connection string.
fn pg_store_at() -> (Arc<ScratchPostgres>, String, PgStore) {
    let pg = scratch();
    let url = pg.create_database().expect("a database");
    let store = PgStore::open(&url).expect("open the PostgreSQL store");
    (pg, url, store)
}

/// Runs each named function against both stores, as `<name>::sled` and `<name>::postgres`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sled() {
                let dir = tempfile::tempdir().expect("tmp");
                let store = super::SledStore::open(dir.path()).expect("open");
                super::$name(&store);
            }
            #[test]
            fn postgres() {
                let (_pg, store) = super::pg_store();
                super::$name(&store);
            }
        }
    )*};
}

on_both_stores!(
    the_feed_is_in_commit_order_within_a_scope_and_pages_alike,
    a_record_reads_as_its_commits_with_heads_as_of_any_position,
    a_record_keeps_the_grid_it_was_created_in,
    a_whole_document_without_changes_replaces_what_was_held,
    records_are_listed_per_kind_in_id_order_with_their_rows_and_counted_per_grid,
    feed_positions_follow_server_time_and_never_go_back,
    people_devices_territories_and_the_audit_log_read_back_as_written,
    photos_uploads_and_the_photo_index_keep_their_promises,
    household_keys_and_import_runs_keep_their_promises,
    summaries_read_together_are_each_records_latest,
);

fn grid(s: &str) -> TerritoryPath {
    s.parse().expect("path")
}

fn doc_id(n: u8) -> DocId {
    DocId::from_bytes([n; 16])
}

fn write(doc: DocId, grid_path: &str, kind: RecordKind, changes: Vec<Vec<u8>>, heads: Vec<ChangeHash>) -> DocWrite {
    DocWrite {
        doc,
        grid: grid(grid_path),
        summary: RecordSummary { kind, household: None, at: 1 },
        bytes: Vec::new(),
        heads,
        device: DeviceId::from_bytes([1; 16]),
        changes,
        photos: Vec::new(),
        row: None,
    }
}

/// One Automerge change setting `tag` (a new actor each time).
fn change(tag: u8) -> Vec<u8> {
    let mut doc = automerge::AutoCommit::new();
    doc.put(automerge::ROOT, "tag", i64::from(tag)).expect("put");
    doc.get_changes(&[]).first().map(|c| c.raw_bytes().to_vec()).expect("a change")
}

/// A commit of one change to record `n`.
fn commit(store: &dyn Store, n: u8, grid_path: &str, at: i64) -> u64 {
    let w = write(doc_id(n), grid_path, RecordKind::VisitLog, vec![change(n)], vec![ChangeHash([n; 32])]);
    let seq = store.commit_doc(w, at).expect("commit");
    store.flush().expect("flush");
    seq
}

fn summaries_read_together_are_each_records_latest(store: &dyn Store) {
    let household = doc_id(9);
    for (n, kind) in [(1, RecordKind::VisitLog), (2, RecordKind::Case), (3, RecordKind::VisitLog)] {
        let mut w = write(doc_id(n), "a/b/c/d/g1", kind, vec![change(n)], vec![ChangeHash([n; 32])]);
        w.summary.at = i64::from(n);
        store.commit_doc(w, 1).expect("commit");
    }
    // A later commit of record 3 names a household: its summary is the latest.
    let mut w = write(doc_id(3), "a/b/c/d/g1", RecordKind::VisitLog, vec![change(30)], vec![ChangeHash([30; 32])]);
    w.summary = RecordSummary { kind: RecordKind::VisitLog, household: Some(household), at: 30 };
    store.commit_doc(w, 2).expect("commit");
    store.flush().expect("flush");
    let ids = [doc_id(3), doc_id(1), doc_id(7), doc_id(2)];
    let together = store.summaries(&ids).expect("summaries");
    assert_eq!(together.len(), 3, "an unknown record has no summary: {together:?}");
    for id in ids {
        assert_eq!(together.get(&id).cloned(), store.summary(id).expect("summary"), "record {id}");
    }
    assert_eq!(together.get(&doc_id(3)).and_then(|s| s.household), Some(household));
    assert!(store.summaries(&[]).expect("none asked").is_empty());
}

fn the_feed_is_in_commit_order_within_a_scope_and_pages_alike(store: &dyn Store) {
    let a = commit(store, 1, "a/b/c/d/g1", 10);
    let b = commit(store, 2, "a/b/c/d/g10", 11);
    let c = commit(store, 3, "a/b/c/e/g1", 12);
    let d = commit(store, 1, "a/b/c/d/g1", 13);
    assert!(a < b && b < c && c < d, "positions rise with each commit");
    assert_eq!(store.head_seq().expect("head"), d);
    let seqs = |scope: &str, after: u64| -> Vec<u64> {
        store.feed_after(&grid(scope), after, usize::MAX).expect("feed").iter().map(|e| e.seq).collect()
    };
    assert_eq!(seqs("a", 0), vec![a, b, c, d]);
    assert_eq!(seqs("a/b/c/d", 0), vec![a, b, d]);
    assert_eq!(seqs("a/b/c/d/g1", 0), vec![a, d], "g1 is not g10");
    assert_eq!(seqs("a/b/c/d", a), vec![b, d]);
    assert_eq!(seqs("a/b/c/e", d), Vec::<u64>::new());
    assert_eq!(seqs("z", 0), Vec::<u64>::new());
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store.feed_after(&grid("a/b/c"), after, 1).expect("page");
        let Some(last) = page.last() else { break };
        after = last.seq;
        paged.extend(page);
    }
    assert_eq!(paged, store.feed_after(&grid("a/b/c"), 0, 100).expect("feed"), "pages of one add up to the whole");
    let e = &paged[3];
    assert_eq!((e.doc, e.grid.as_str(), e.device), (doc_id(1), "a/b/c/d/g1", DeviceId::from_bytes([1; 16])));
    assert_eq!(e.changes.len(), 1);
    assert!(automerge::Change::from_bytes(e.changes[0].clone()).is_ok(), "the change as committed");
}

/// A document changed twice, as a phone would push it: (changes, heads) of each push.
fn two_pushes() -> Vec<(Vec<Vec<u8>>, Vec<ChangeHash>)> {
    let mut doc = automerge::AutoCommit::new();
    doc.put(automerge::ROOT, "note", "first").expect("put");
    let first: Vec<Vec<u8>> = doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
    let heads1 = doc.get_heads();
    doc.put(automerge::ROOT, "note", "second").expect("put");
    let second: Vec<Vec<u8>> = doc.get_changes(&heads1).iter().map(|c| c.raw_bytes().to_vec()).collect();
    vec![(first, heads1), (second, doc.get_heads())]
}

fn a_record_reads_as_its_commits_with_heads_as_of_any_position(store: &dyn Store) {
    let other = commit(store, 9, "a/b/c/d/g2", 1);
    let id = doc_id(5);
    let pushes = two_pushes();
    let mut seqs = Vec::new();
    for (changes, heads) in &pushes {
        seqs.push(
            store
                .commit_doc(write(id, "a/b/c/d/g1", RecordKind::Case, changes.clone(), heads.clone()), 2)
                .expect("commit"),
        );
    }
    store.flush().expect("flush");
    assert_eq!(store.doc_heads_at(id, other).expect("heads"), None, "not yet created then");
    assert_eq!(store.doc_heads_at(id, seqs[0]).expect("heads"), Some(pushes[0].1.clone()));
    assert_eq!(store.doc_heads_at(id, seqs[1] + 5).expect("heads"), Some(pushes[1].1.clone()));
    let stored = store.load_doc(id).expect("load").expect("held");
    assert_eq!((stored.grid.as_str(), stored.kind, stored.seq), ("a/b/c/d/g1", RecordKind::Case, seqs[1]));
    let loaded = automerge::Automerge::load(&stored.bytes).expect("the document loads");
    assert_eq!(loaded.get_heads(), pushes[1].1);
    assert_eq!(store.summary(id).expect("summary").map(|s| s.kind), Some(RecordKind::Case));
    assert_eq!(store.load_doc(doc_id(77)).expect("load"), None);
    assert_eq!(store.summary(doc_id(77)).expect("summary"), None);
    let listed = store.docs_in_scope(&grid("a/b/c/d/g1"), None, 10).expect("docs");
    assert_eq!(listed, vec![(id, stored)]);
}

fn a_record_keeps_the_grid_it_was_created_in(store: &dyn Store) {
    commit(store, 1, "a/b/c/d/g1", 1);
    let later = commit(store, 1, "a/b/c/d/g2", 2);
    let entry = store.feed_after(&grid("a"), later - 1, 10).expect("feed");
    assert_eq!(entry[0].grid.as_str(), "a/b/c/d/g1");
    assert!(store.docs_in_scope(&grid("a/b/c/d/g2"), None, 10).expect("docs").is_empty());
    assert_eq!(store.load_doc(doc_id(1)).expect("load").expect("held").grid.as_str(), "a/b/c/d/g1");
}

fn a_whole_document_without_changes_replaces_what_was_held(store: &dyn Store) {
    let id = doc_id(4);
    let pushes = two_pushes();
    store
        .commit_doc(write(id, "a/b/c/d/g1", RecordKind::Household, pushes[0].0.clone(), pushes[0].1.clone()), 1)
        .expect("commit");
    let mut whole = automerge::AutoCommit::new();
    whole.put(automerge::ROOT, "note", "replaced").expect("put");
    let mut w = write(id, "a/b/c/d/g1", RecordKind::Household, Vec::new(), whole.get_heads());
    w.bytes = whole.save();
    let seq = store.commit_doc(w, 2).expect("commit");
    store.flush().expect("flush");
    let stored = store.load_doc(id).expect("load").expect("held");
    assert_eq!(stored.seq, seq);
    assert_eq!(automerge::Automerge::load(&stored.bytes).expect("loads").get_heads(), whole.get_heads());
    let feed = store.feed_after(&grid("a"), 0, 10).expect("feed");
    assert_eq!(feed.len(), 2);
    assert!(feed[1].changes.is_empty(), "the replacing commit adds no changes to the feed");
    // A later push adds its changes after the new base.
    let heads = whole.get_heads();
    whole.put(automerge::ROOT, "more", 1).expect("put");
    let changes: Vec<Vec<u8>> = whole.get_changes(&heads).iter().map(|c| c.raw_bytes().to_vec()).collect();
    store.commit_doc(write(id, "a/b/c/d/g1", RecordKind::Household, changes, whole.get_heads()), 3).expect("commit");
    store.flush().expect("flush");
    let stored = store.load_doc(id).expect("load").expect("held");
    assert_eq!(automerge::Automerge::load(&stored.bytes).expect("loads").get_heads(), whole.get_heads());
}

fn records_are_listed_per_kind_in_id_order_with_their_rows_and_counted_per_grid(store: &dyn Store) {
    let mut w = write(doc_id(3), "a/b/c/d/g1", RecordKind::VisitLog, vec![change(3)], Vec::new());
    w.row = Some(b"row three".to_vec());
    store.commit_doc(w, 1).expect("commit");
    let one = store
        .commit_doc(write(doc_id(1), "a/b/c/d/g2", RecordKind::VisitLog, vec![change(1)], Vec::new()), 1)
        .expect("commit");
    store.commit_doc(write(doc_id(2), "a/b/c/d/g1", RecordKind::Case, vec![change(2)], Vec::new()), 1).expect("commit");
    store
        .commit_doc(write(doc_id(4), "a/b/c/e/g1", RecordKind::VisitLog, vec![change(4)], Vec::new()), 1)
        .expect("commit");
    store.flush().expect("flush");
    let scope = grid("a/b/c/d");
    let listed = store.records_in_scope(&scope, RecordKind::VisitLog, None, 10).expect("list");
    let ids: Vec<DocId> = listed.iter().map(|l| l.id).collect();
    assert_eq!(ids, vec![doc_id(1), doc_id(3)]);
    assert_eq!(listed[1].row.as_deref(), Some(&b"row three"[..]));
    assert_eq!(store.records_in_scope(&scope, RecordKind::VisitLog, Some(doc_id(1)), 10).expect("list").len(), 1);
    let docs: Vec<DocId> = store.docs_in_scope(&scope, None, 2).expect("docs").into_iter().map(|(id, _)| id).collect();
    assert_eq!(docs, vec![doc_id(1), doc_id(2)], "id order, at most the limit");
    let in_grid = |after: Option<u8>| -> Vec<DocId> {
        let g1 = grid("a/b/c/d/g1");
        store.docs_in_scope(&g1, after.map(doc_id), 10).expect("docs").into_iter().map(|(id, _)| id).collect()
    };
    assert_eq!(
        (in_grid(None), in_grid(Some(2)), in_grid(Some(3))),
        (vec![doc_id(2), doc_id(3)], vec![doc_id(3)], vec![])
    );
    let visits_in_grid = |after: Option<u8>| -> Vec<DocId> {
        let g1 = grid("a/b/c/d/g1");
        let listed = store.records_in_scope(&g1, RecordKind::VisitLog, after.map(doc_id), 10).expect("list");
        listed.into_iter().map(|l| l.id).collect()
    };
    assert_eq!(
        (visits_in_grid(None), visits_in_grid(Some(2)), visits_in_grid(Some(3))),
        (vec![doc_id(3)], vec![doc_id(3)], vec![])
    );
    let want = vec![
        (grid("a/b/c/d/g1"), RecordKind::VisitLog, 1),
        (grid("a/b/c/d/g1"), RecordKind::Case, 1),
        (grid("a/b/c/d/g2"), RecordKind::VisitLog, 1),
    ];
    assert_eq!(store.record_counts_by_grid(&scope).expect("counts"), want);
    // Rows: those without one are listed until given one for their last commit.
    let rowless = store.records_without_rows(None, 10).expect("rowless");
    assert_eq!(rowless.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![doc_id(1), doc_id(2), doc_id(4)]);
    assert!(
        !store.set_row(doc_id(1), one + 100, b"stale".to_vec()).expect("set"),
        "a row of another commit is refused"
    );
    assert!(store.set_row(doc_id(1), one, b"now".to_vec()).expect("set"));
    assert_eq!(store.records_without_rows(None, 10).expect("rowless").len(), 2);
}

fn feed_positions_follow_server_time_and_never_go_back(store: &dyn Store) {
    assert_eq!(store.seq_at(1_000).expect("seq_at"), 0, "an empty feed");
    let a = commit(store, 1, "a/b/c/d/g1", 1_000);
    let b = commit(store, 2, "a/b/c/d/g1", 2_000);
    // The clock stepped back: the entry's time does not.
    let c = commit(store, 3, "a/b/c/d/g1", 1_500);
    let feed = store.feed_after(&grid("a"), 0, 10).expect("feed");
    assert_eq!(feed.iter().map(|e| e.at).collect::<Vec<_>>(), vec![1_000, 2_000, 2_000]);
    assert_eq!(store.seq_at(999).expect("seq_at"), 0);
    assert_eq!(store.seq_at(1_000).expect("seq_at"), a);
    assert_eq!(store.seq_at(1_999).expect("seq_at"), a);
    assert_eq!(store.seq_at(2_000).expect("seq_at"), c);
    assert!(b < c);
    assert_eq!(store.stats().expect("stats").head_seq, c);
}

fn people_devices_territories_and_the_audit_log_read_back_as_written(store: &dyn Store) {
    store.put_territory(&Territory { path: grid("a/b"), name: "东湖".into() }).expect("territory");
    store.put_territory(&Territory { path: grid("a"), name: "市".into() }).expect("territory");
    store.put_territory(&Territory { path: grid("a/b"), name: "东湖社区".into() }).expect("rename");
    let names: Vec<(String, String)> =
        store.territories().expect("list").into_iter().map(|t| (t.path.as_str().to_string(), t.name)).collect();
    assert_eq!(names, vec![("a".into(), "市".into()), ("a/b".into(), "东湖社区".into())]);

    let person = |n: u8, username: &str| Person {
        id: PersonId::from_bytes([n; 16]),
        username: username.into(),
        name: "王芳".into(),
        role: Role::Supervisor,
        territory: grid("a/b"),
        password_hash: "$argon2id$x".into(),
        created_at: 7,
    };
    store.put_person(&person(2, "wang")).expect("person");
    store.put_person(&person(1, "li")).expect("person");
    assert!(matches!(store.put_person(&person(3, "wang")), Err(StoreError::Conflict(_))), "a taken username");
    let mut renamed = person(2, "wangfang");
    renamed.role = Role::Administrator;
    store.put_person(&renamed).expect("rename");
    assert_eq!(store.person_by_username("wangfang").expect("get"), Some(renamed.clone()));
    assert_eq!(store.person(PersonId::from_bytes([2; 16])).expect("get"), Some(renamed.clone()));
    assert_eq!(store.people().expect("people"), vec![person(1, "li"), renamed.clone()]);
    assert_eq!(store.person_disabled_at(renamed.id).expect("disabled"), None);
    store.set_person_disabled(renamed.id, Some(99)).expect("disable");
    assert_eq!(store.person_disabled_at(renamed.id).expect("disabled"), Some(99));
    store.set_person_disabled(renamed.id, None).expect("enable");
    assert_eq!(store.person_disabled_at(renamed.id).expect("disabled"), None);

    let device = Device {
        id: DeviceId::from_bytes([5; 16]),
        person: renamed.id,
        name: "手机".into(),
        actor: vec![9; 16],
        token_hash: [8; 32],
        created_at: 3,
        revoked_at: None,
    };
    store.put_device(&device).expect("device");
    let revoked = Device { revoked_at: Some(4), ..device.clone() };
    store.put_device(&revoked).expect("revoke");
    assert_eq!(store.device(device.id).expect("get"), Some(revoked.clone()));
    assert_eq!(store.devices().expect("devices"), vec![revoked]);
    assert_eq!(store.device(DeviceId::from_bytes([6; 16])).expect("get"), None);
    assert!(store.device_grace(device.id).expect("grace").is_empty());
    store.set_device_grace(device.id, &[grid("a/b"), grid("a/c")]).expect("grace");
    assert_eq!(store.device_grace(device.id).expect("grace"), vec![grid("a/b"), grid("a/c")]);
    store.set_device_grace(device.id, &[]).expect("end grace");
    assert!(store.device_grace(device.id).expect("grace").is_empty());
    store.note_device_seen(device.id, DeviceSeen { at: 5, pending: Some(3) }).expect("seen");
    store.note_device_seen(device.id, DeviceSeen { at: 6, pending: None }).expect("seen");
    assert_eq!(store.device_seen(device.id).expect("seen"), Some(DeviceSeen { at: 6, pending: None }));

    let first = store.append_audit("cli", "person.add", "li", 10).expect("audit");
    let second = store.append_audit_in(Some(&grid("a/b")), "admin", "device.revoke", "手机", 11).expect("audit");
    assert!(first < second);
    let log = store.audit_after(0, 10).expect("log");
    assert_eq!(log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), vec!["person.add", "device.revoke"]);
    assert_eq!(
        log.iter().map(|e| e.territory.clone()).collect::<Vec<_>>(),
        vec![None, Some(grid("a/b"))],
        "each entry keeps the territory it concerns"
    );
    assert_eq!(store.audit_after(first, 10).expect("log").len(), 1);
    assert_eq!(store.audit_after(0, 1).expect("log").len(), 1);
}

fn photos_uploads_and_the_photo_index_keep_their_promises(store: &dyn Store) {
    use gridsync_shared::photos::PhotoRef;
    let hash = |n: u8| PhotoHash::from_digest(&[n; 32]);
    let h = hash(1);
    assert_eq!(store.upload_received(&h).expect("received"), 0);
    assert_eq!(store.append_upload(&h, 0, &[1; 100]).expect("append"), UploadAppend::Appended { received: 100 });
    assert_eq!(store.append_upload(&h, 50, &[9; 10]).expect("append"), UploadAppend::WrongOffset { received: 100 });
    assert_eq!(store.append_upload(&h, 100, &[2; 150]).expect("append"), UploadAppend::Appended { received: 250 });
    let held = store.upload_bytes(&h).expect("bytes");
    assert_eq!((held.len(), held[99], held[100]), (250, 1, 2));
    store.finish_upload(&h, PhotoType::Jpeg, &held).expect("finish");
    assert!(store.has_photo(&h).expect("has"));
    assert_eq!(store.photo(&h).expect("photo"), Some((PhotoType::Jpeg, held)));
    assert_eq!(store.upload_received(&h).expect("received"), 0);
    let other = hash(2);
    store.append_upload(&other, 0, &[5; 10]).expect("append");
    store.discard_upload(&other).expect("discard");
    assert_eq!(store.upload_received(&other).expect("received"), 0);
    assert!(!store.has_photo(&other).expect("has"));
    assert_eq!(store.photo(&other).expect("photo"), None);

    let with_photos = |doc: DocId, g: &str, photos: Vec<PhotoRef>| {
        let mut w = write(doc, g, RecordKind::VisitLog, vec![change(1)], Vec::new());
        w.photos = photos;
        store.commit_doc(w, 1).expect("commit");
    };
    let (d1, d2) = (doc_id(1), doc_id(2));
    with_photos(d1, "c/g1", vec![photo_ref(&h, 10, PhotoType::Jpeg), photo_ref(&h, 10, PhotoType::Jpeg)]);
    with_photos(d2, "c/g2", vec![photo_ref(&h, 10, PhotoType::Jpeg), photo_ref(&other, 3, PhotoType::Webp)]);
    with_photos(d2, "c/g3", vec![photo_ref(&h, 10, PhotoType::Jpeg), photo_ref(&h, 11, PhotoType::Webp)]);
    let seen: Vec<(DocId, String, u64, PhotoType)> = store
        .photo_referrers(&h)
        .expect("referrers")
        .into_iter()
        .map(|r| (r.doc, r.grid.as_str().to_string(), r.size, r.mime))
        .collect();
    assert_eq!(
        seen,
        vec![
            (d1, "c/g1".into(), 10, PhotoType::Jpeg),
            (d2, "c/g3".into(), 10, PhotoType::Jpeg),
            (d2, "c/g3".into(), 11, PhotoType::Webp)
        ]
    );
    assert_eq!(store.photo_referrers(&other).expect("referrers").len(), 1);
    assert!(store.photo_referrers(&hash(7)).expect("referrers").is_empty());
}

fn household_keys_and_import_runs_keep_their_promises(store: &dyn Store) {
    let key = |n: u8, doc: u8, replace: bool| HouseholdKey {
        key: [n; 32],
        entry: HouseholdKeyEntry { doc: doc_id(doc), digest: replace.then_some([doc; 32]) },
        replace,
    };
    let w = |doc: u8| write(doc_id(doc), "a/b/c/d/g1", RecordKind::Household, vec![change(doc)], Vec::new());
    store.commit_doc_with_keys(w(1), 1, &[key(1, 1, true), key(2, 1, false)]).expect("commit");
    store.commit_docs(vec![(w(2), vec![key(2, 2, false)]), (w(3), vec![key(1, 3, true)])], 2).expect("batch");
    assert_eq!(
        store.household_key(&[2; 32]).expect("key").map(|e| e.doc),
        Some(doc_id(1)),
        "the first keeps an added key"
    );
    assert_eq!(
        store.household_key(&[1; 32]).expect("key"),
        Some(HouseholdKeyEntry { doc: doc_id(3), digest: Some([3; 32]) }),
        "an import's key replaces"
    );
    assert_eq!(store.household_key(&[9; 32]).expect("key"), None);
    store.flush().expect("flush");
    assert_eq!(store.feed_after(&grid("a"), 0, 10).expect("feed").len(), 3, "a batch is one commit per document");

    store.put_import_run("r1", 5, b"{\"run\":1}").expect("run");
    store.put_import_run("r2", 6, b"{\"run\":2}").expect("run");
    assert_eq!(store.import_run("r1").expect("run"), Some(b"{\"run\":1}".to_vec()));
    assert_eq!(store.import_runs(10).expect("runs"), vec![b"{\"run\":2}".to_vec(), b"{\"run\":1}".to_vec()]);
    assert_eq!(store.import_runs(1).expect("runs").len(), 1);
    store.put_import_secret("r1", b"passwords").expect("secret");
    assert_eq!(store.take_import_secret("r1").expect("take"), Some(b"passwords".to_vec()));
    assert_eq!(store.take_import_secret("r1").expect("take"), None, "taken once");
    let person = PersonId::from_bytes([4; 16]);
    assert_eq!(store.import_device(person).expect("device"), None);
    store.set_import_device(person, DeviceId::from_bytes([5; 16])).expect("device");
    assert_eq!(store.import_device(person).expect("device"), Some(DeviceId::from_bytes([5; 16])));
}

/// Many writers on two pools of their own (as two server processes on one
/// database) commit while readers on both page the whole feed: each reader
/// must see every position exactly once, in order (the feed is gap-free), and
/// at the end every committed record. A feed whose positions became visible
/// out of commit order would let a reader's cursor pass an entry still to come.
#[test]
fn readers_paging_while_two_processes_write_miss_and_repeat_no_entry() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const WRITERS_PER_PROCESS: usize = 4;
    const COMMITS_PER_WRITER: usize = 60;
    const READERS_PER_PROCESS: usize = 2;
    let pg = scratch();
    let url = pg.create_database().expect("a database");
    let processes = [
        Arc::new(PgStore::open_with(&url, WRITERS_PER_PROCESS + READERS_PER_PROCESS).expect("open")),
        Arc::new(PgStore::open_with(&url, WRITERS_PER_PROCESS + READERS_PER_PROCESS).expect("open")),
    ];
    let done = Arc::new(AtomicBool::new(false));
    let pages_while_writing = Arc::new(AtomicUsize::new(0));
    let root = grid("a");
    let readers: Vec<_> = processes
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), READERS_PER_PROCESS))
        .enumerate()
        .map(|(r, store)| {
            let (done, pages, root) = (done.clone(), pages_while_writing.clone(), root.clone());
            std::thread::spawn(move || -> Vec<DocId> {
                let mut seen = Vec::new();
                let mut cursor = 0u64;
                loop {
                    // Read `done` before the page: a page read after every writer finished is the last word.
                    let finished = done.load(Ordering::Acquire);
                    let page = store.feed_after(&root, cursor, 7 + r).expect("a page");
                    if !finished && !page.is_empty() {
                        pages.fetch_add(1, Ordering::Relaxed);
                    }
                    for e in &page {
                        assert_eq!(
                            e.seq,
                            cursor + 1,
                            "reader {r} at {cursor} was handed {}: an entry missed or repeated",
                            e.seq
                        );
                        cursor = e.seq;
                        seen.push(e.doc);
                    }
                    if finished && page.is_empty() {
                        return seen;
                    }
                }
            })
        })
        .collect();
    let started = std::time::Instant::now();
    let calls = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = processes
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), WRITERS_PER_PROCESS))
        .enumerate()
        .map(|(w, store)| {
            let calls = calls.clone();
            std::thread::spawn(move || -> Vec<(u64, DocId)> {
                let mut mine = Vec::new();
                let mut i = 0;
                while i < COMMITS_PER_WRITER {
                    calls.fetch_add(1, Ordering::Relaxed);
                    let new = |k: usize| {
                        let doc = DocId(uuid::Uuid::new_v4());
                        let g = format!("a/b/c/d/g{}", (w + k) % 3);
                        (write(doc, &g, RecordKind::VisitLog, vec![change(w as u8)], Vec::new()), Vec::new())
                    };
                    if i % 10 == 9 {
                        // A batch takes several positions at once.
                        let batch: Vec<_> = (0..3).map(new).collect();
                        let docs: Vec<DocId> = batch.iter().map(|(w, _)| w.doc).collect();
                        let last = store.commit_docs(batch, 1).expect("commit a batch");
                        mine.extend(docs.into_iter().enumerate().map(|(k, d)| (last - 2 + k as u64, d)));
                        i += 3;
                    } else {
                        let (w, _) = new(0);
                        let doc = w.doc;
                        mine.push((store.commit_doc(w, 1).expect("commit"), doc));
                        i += 1;
                    }
                }
                mine
            })
        })
        .collect();
    let mut committed: Vec<(u64, DocId)> = writers.into_iter().flat_map(|w| w.join().expect("a writer")).collect();
    let elapsed = started.elapsed();
    done.store(true, Ordering::Release);
    committed.sort();
    let n = committed.len();
    eprintln!(
        "{n} records committed by {} writers on two pools in {:.2} s: {:.0} per second",
        2 * WRITERS_PER_PROCESS,
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(committed.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (1..=n as u64).collect::<Vec<_>>(), "gap-free");
    let want: Vec<DocId> = committed.into_iter().map(|(_, d)| d).collect();
    for (r, reader) in readers.into_iter().enumerate() {
        assert_eq!(reader.join().expect("a reader"), want, "reader {r} saw every record once, in commit order");
    }
    assert!(pages_while_writing.load(Ordering::Relaxed) > 0, "the readers paged while the writers wrote");
    // Each process gathers its writers' concurrent commits into shared transactions (group commit).
    let counts: Vec<_> = processes.iter().map(|p| p.group_counts()).collect();
    eprintln!("group commit: {counts:?}");
    let grouped: u64 = counts.iter().map(|c| c.commits).sum();
    assert_eq!(grouped, calls.load(Ordering::Relaxed) as u64, "every commit call went through a group");
    for (p, c) in counts.iter().enumerate() {
        assert!(c.groups < c.commits, "process {p}: {WRITERS_PER_PROCESS} concurrent writers shared no transaction");
    }
}

/// The blocking client would panic wherever a tokio runtime is entered: the
/// store works from an async task on either kind of runtime, and from the
/// blocking pool of a current-thread one (a server under `#[tokio::test]`),
/// and is dropped inside a task without a panic.
#[test]
fn called_from_async_tasks_or_the_blocking_pool_on_either_runtime_it_works_and_drops_cleanly() {
    let (_pg, store) = pg_store();
    let store = Arc::new(store);
    let current = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    assert_eq!(current.block_on(async { store.head_seq() }).expect("in a task"), 0);
    let blocking = store.clone();
    let on_pool = current.block_on(async { tokio::task::spawn_blocking(move || blocking.head_seq()).await });
    assert_eq!(on_pool.expect("join").expect("on the blocking pool"), 0);
    let threaded = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().expect("a runtime");
    let in_task = threaded.block_on(async { tokio::spawn(async move { store.head_seq() }).await.expect("join") });
    assert_eq!(in_task.expect("in a task, the store dropped there"), 0);
}

/// Several servers started at once on one empty database all open it, the
/// schema made once (PostgreSQL may fail all but one racing `CREATE TABLE`).
#[test]
fn servers_opening_one_empty_database_at_once_all_start() {
    let pg = scratch();
    let url = pg.create_database().expect("a database");
    let openers: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::open(&url).map(|s| s.head_seq()))
        })
        .collect();
    for o in openers {
        assert_eq!(o.join().expect("join").expect("opened").expect("head"), 0);
    }
}

/// After the database restarts (as after a failover), every pooled
/// connection is dead: the next reads and writes go through on new ones,
/// and nothing written before is lost.
#[test]
fn after_the_database_restarts_reads_and_writes_go_on_with_new_connections() {
    let pg = Arc::new(ScratchPostgres::start().expect("a throwaway PostgreSQL of its own (it is restarted)"));
    let url = pg.create_database().expect("a database");
    let store = PgStore::open_with(&url, 4).expect("open");
    // Four connections in the pool, all idle.
    std::thread::scope(|s| {
        for n in 0..4 {
            let store = &store;
            s.spawn(move || commit(store, n + 1, "a/b/c/d/g1", 1));
        }
    });
    pg.restart().expect("restart");
    for n in 5..10 {
        assert_eq!(commit(&store, n, "a/b/c/d/g1", 2), u64::from(n), "a write right after the restart");
        assert_eq!(store.head_seq().expect("a read right after the restart"), u64::from(n));
    }
    assert_eq!(store.feed_after(&grid("a"), 0, 100).expect("feed").len(), 9);
}

/// A server process killed in the middle of a commit (here its database
/// session, while it waits for the feed's counter) leaves nothing half
/// applied: its transaction is rolled back, and the store runs it again on a
/// new connection, so the push lands exactly once, under the next position.
#[test]
fn a_commit_whose_session_is_killed_midway_lands_exactly_once() {
    let (_pg, url, store) = pg_store_at();
    let mut holder = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
    let mut hold = holder.transaction().expect("begin");
    hold.execute("SELECT seq FROM feed_counter WHERE id = 1 FOR UPDATE", &[]).expect("hold the counter");
    let store = Arc::new(store);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut w = write(doc_id(1), "a/b/c/d/g1", RecordKind::Household, vec![change(1)], Vec::new());
            w.photos = Vec::new();
            let keys = vec![HouseholdKey {
                key: [7; 32],
                entry: HouseholdKeyEntry { doc: doc_id(1), digest: None },
                replace: true,
            }];
            store.commit_doc_with_keys(w, 1, &keys)
        })
    };
    let mut admin = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
    let killed = (0..200)
        .find_map(|_| {
            let row = admin
                .query_one(
                    "SELECT COALESCE(SUM(CASE WHEN pg_terminate_backend(pid) THEN 1 ELSE 0 END), 0)::BIGINT FROM pg_stat_activity \
                     WHERE query LIKE 'UPDATE feed_counter%' AND wait_event_type = 'Lock'",
                    &[],
                )
                .expect("terminate");
            let n: i64 = row.get(0);
            if n == 0 {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            (n > 0).then_some(n)
        })
        .expect("the writer waited for the counter, and was killed there");
    assert_eq!(killed, 1);
    hold.rollback().expect("release the counter");
    let seq = writer.join().expect("join").expect("the push lands, run again on a new connection");
    assert_eq!(seq, 1, "the killed attempt took no position");
    assert_eq!(store.feed_after(&grid("a"), 0, 10).expect("feed").len(), 1, "exactly once");
    assert_eq!(store.household_key(&[7; 32]).expect("key").map(|e| e.doc), Some(doc_id(1)));
}

/// Fills a store with some of everything it keeps: records in two cities (one
/// without a territory), photos, an unfinished upload, household keys, import
/// runs and a secret, a disabled person, a device in its grace.
fn fill_with_everything(store: &dyn Store) {
    people_devices_territories_and_the_audit_log_read_back_as_written(store);
    // Records: a case of two real pushes, visit logs, households with keys.
    commit(store, 9, "a/b/c/d/g2", 1);
    for (changes, heads) in two_pushes() {
        store.commit_doc(write(doc_id(5), "a/b/c/d/g1", RecordKind::Case, changes, heads), 2).expect("commit");
    }
    let key = |n: u8, doc: u8, replace: bool| HouseholdKey {
        key: [n; 32],
        entry: HouseholdKeyEntry { doc: doc_id(doc), digest: replace.then_some([doc; 32]) },
        replace,
    };
    let household = |doc: u8| write(doc_id(doc), "a/b/c/d/g1", RecordKind::Household, vec![change(doc)], Vec::new());
    store.commit_doc_with_keys(household(1), 3, &[key(1, 1, true), key(2, 1, false)]).expect("commit");
    store
        .commit_docs(vec![(household(2), vec![key(2, 2, false)]), (household(3), vec![key(1, 3, true)])], 4)
        .expect("batch");
    // A photo, referenced by a record in a city without a territory.
    let h1 = PhotoHash::from_digest(&[1; 32]);
    store.append_upload(&h1, 0, &[1; 100]).expect("append");
    store.finish_upload(&h1, PhotoType::Jpeg, &[1; 100]).expect("finish");
    let mut w = write(doc_id(30), "c/g1", RecordKind::VisitLog, vec![change(30)], Vec::new());
    w.photos =
        vec![photo_ref(&h1, 100, PhotoType::Jpeg), photo_ref(&PhotoHash::from_digest(&[2; 32]), 3, PhotoType::Webp)];
    store.commit_doc(w, 5).expect("commit");
    store.put_import_run("r1", 5, b"{\"run\":1}").expect("run");
    store.put_import_run("r2", 6, b"{\"run\":2}").expect("run");
    store.set_import_device(PersonId::from_bytes([1; 16]), DeviceId::from_bytes([5; 16])).expect("device");
    let unfinished = PhotoHash::from_digest(&[3; 32]);
    store.append_upload(&unfinished, 0, &[7; 40]).expect("append");
    store.put_import_secret("r2", b"initial passwords").expect("secret");
    let wang = PersonId::from_bytes([2; 16]);
    store.set_person_disabled(wang, Some(1234)).expect("disable");
    store.set_device_grace(DeviceId::from_bytes([5; 16]), &[grid("a/b")]).expect("grace");
    store.flush().expect("flush");
}

/// Everything `a` and `b` answer through the trait, compared: territories,
/// people (disabled, import devices), devices (grace, last seen), the feed under `cities` with each entry's heads, every record's
/// document and summary, photos and their index, household keys, import runs.
fn assert_same_contents(a: &dyn Store, b: &dyn Store, cities: &[&str], photos: &[PhotoHash], keys: &[[u8; 32]]) {
    assert_eq!(a.territories().expect("a"), b.territories().expect("b"));
    let people = a.people().expect("a");
    assert_eq!(people, b.people().expect("b"));
    for p in &people {
        assert_eq!(a.person_disabled_at(p.id).expect("a"), b.person_disabled_at(p.id).expect("b"));
        assert_eq!(a.import_device(p.id).expect("a"), b.import_device(p.id).expect("b"));
    }
    let devices = a.devices().expect("a");
    assert_eq!(devices, b.devices().expect("b"));
    for d in &devices {
        assert_eq!(a.device_grace(d.id).expect("a"), b.device_grace(d.id).expect("b"));
        assert_eq!(a.device_seen(d.id).expect("a"), b.device_seen(d.id).expect("b"));
    }
    assert_eq!(a.head_seq().expect("a"), b.head_seq().expect("b"));
    for city in cities {
        let feed = a.feed_after(&grid(city), 0, 10_000).expect("a");
        assert!(!feed.is_empty(), "{city} has a feed");
        assert_eq!(feed, b.feed_after(&grid(city), 0, 10_000).expect("b"), "the feed of {city}");
        for e in &feed {
            assert_eq!(a.doc_heads_at(e.doc, e.seq).expect("a"), b.doc_heads_at(e.doc, e.seq).expect("b"));
            assert_eq!(a.summary(e.doc).expect("a"), b.summary(e.doc).expect("b"));
        }
        let docs = a.docs_in_scope(&grid(city), None, 10_000).expect("a");
        assert_eq!(docs, b.docs_in_scope(&grid(city), None, 10_000).expect("b"), "the records of {city}");
        for (id, doc) in &docs {
            assert_eq!(Some(doc), b.load_doc(*id).expect("b").as_ref());
        }
    }
    for h in photos {
        assert_eq!(a.photo(h).expect("a"), b.photo(h).expect("b"));
        assert_eq!(a.photo_referrers(h).expect("a"), b.photo_referrers(h).expect("b"));
        assert_eq!(a.upload_bytes(h).expect("a"), b.upload_bytes(h).expect("b"));
    }
    for k in keys {
        assert_eq!(a.household_key(k).expect("a"), b.household_key(k).expect("b"));
    }
    assert_eq!(a.import_runs(100).expect("a"), b.import_runs(100).expect("b"));
}

/// A sled store filled by the behaviours above (records in two cities, one
/// without a territory, photos, an unfinished upload, household keys, import
/// runs and a secret, a disabled person, a device in its grace) is moved into
/// an empty PostgreSQL database: everything reads back the same, the next
/// commit takes the next position on both, and a second move is refused
/// without changing anything.
#[test]
fn a_sled_store_moved_into_postgresql_reads_back_the_same_and_goes_on_from_its_feed_position() {
    let dir = tempfile::tempdir().expect("tmp");
    let sled = SledStore::open(dir.path()).expect("open");
    fill_with_everything(&sled);

    let (_pg, pg) = pg_store();
    let moved = pg.move_in(&sled, &mut |_, _| {}).expect("move");
    assert_eq!((moved.people, moved.devices, moved.photos, moved.uploads), (2, 1, 1, 1));
    assert_eq!((moved.household_keys, moved.import_runs), (2, 2));
    let photos: Vec<PhotoHash> = [1, 2, 3].map(|n| PhotoHash::from_digest(&[n; 32])).to_vec();
    let keys = [[1; 32], [2; 32], [9; 32]];
    assert_same_contents(&sled, &pg, &["a", "c"], &photos, &keys);
    assert_eq!(sled.audit_after(0, 10_000).expect("sled"), pg.audit_after(0, 10_000).expect("pg"));
    assert_eq!(sled.epochs().expect("sled"), pg.epochs().expect("pg"));
    assert_eq!(pg.take_import_secret("r2").expect("take"), Some(b"initial passwords".to_vec()));

    let again = pg.move_in(&sled, &mut |_, _| {});
    assert!(matches!(again, Err(postgres::MoveError::NotEmpty(_))), "a second move is refused: {again:?}");
    assert_eq!(pg.head_seq().expect("head"), sled.head_seq().expect("head"), "and changes nothing");

    let head = sled.head_seq().expect("head");
    assert_eq!(commit(&pg, 40, "a/b/c/d/g1", 100), head + 1, "the next commit goes on from the feed position");
    assert_eq!(commit(&sled, 40, "a/b/c/d/g1", 100), head + 1);
    let after = |store: &dyn Store| -> Vec<(u64, DocId)> {
        store.feed_after(&grid("a"), head, 10).expect("feed").into_iter().map(|e| (e.seq, e.doc)).collect()
    };
    assert_eq!(after(&pg), vec![(head + 1, doc_id(40))], "a cursor at the old head gets only the new entry");
    assert_eq!(after(&pg), after(&sled));
}

/// A backup of a PostgreSQL store (the same file format as sled's) restores
/// into an empty database as the store it was taken of, with a new epoch and
/// the restore audited; it is refused by a non-empty database, by a sled data
/// directory, and when damaged (keeping nothing); a sled backup is refused by PostgreSQL.
#[test]
fn a_postgresql_backup_restores_into_an_empty_database_as_the_store_it_was_taken_of() {
    use crate::backup::{BackupError, BackupReader};
    let (pg, original) = pg_store();
    fill_with_everything(&original);
    let mut file = Vec::new();
    let engine = postgres::backup::ENGINE;
    let end =
        crate::backup::write_backup_of(&original, engine, &mut file, "test", "test", &mut |_| {}).expect("backup");
    assert_eq!(end.facts.head_seq, original.head_seq().expect("head"));
    assert!(end.facts.trees.iter().any(|(t, n)| t == "pg/feed" && *n > 0), "{:?}", end.facts.trees);
    let head = original.head_seq().expect("head");

    let restored = PgStore::open(&pg.create_database().expect("db")).expect("open");
    let mut reader = BackupReader::new(file.as_slice(), "test").expect("a backup");
    let epoch = restored.restore_backup(&mut reader, "test", "from memory", 60, &mut |_| {}).expect("restore");
    assert_eq!(epoch.base_seq, head);
    assert_eq!(restored.epochs().expect("epochs"), vec![epoch], "a new epoch begins");
    let photos: Vec<PhotoHash> = [1, 2, 3].map(|n| PhotoHash::from_digest(&[n; 32])).to_vec();
    let keys = [[1; 32], [2; 32], [9; 32]];
    assert_same_contents(&restored, &original, &["a", "c"], &photos, &keys);
    let mut audit = restored.audit_after(0, 100).expect("audit");
    assert_eq!(audit.pop().map(|e| e.action), Some("store.restore".into()));
    assert_eq!(audit.pop().map(|e| e.action), Some("store.backup".into()), "the backup's own entry is in it");
    assert_eq!(restored.take_import_secret("r2").expect("take"), Some(b"initial passwords".to_vec()));
    assert_eq!(commit(&restored, 42, "a/b/c/d/g1", 70), head + 1, "positions go on from the backup's");
    assert_eq!(commit(&original, 42, "a/b/c/d/g1", 70), head + 1);

    // Refused: into a non-empty database, into a sled data directory, and a damaged file.
    let mut reader = BackupReader::new(file.as_slice(), "test").expect("a backup");
    let again = restored.restore_backup(&mut reader, "test", "again", 80, &mut |_| {});
    assert!(matches!(again, Err(BackupError::NotEmpty(_))), "{again:?}");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("pg.backup");
    std::fs::write(&path, &file).expect("write");
    let into_sled = crate::backup::restore(&path, &dir.path().join("data"), "test", &mut |_| {});
    assert!(matches!(into_sled, Err(BackupError::OtherEngine(..))), "{into_sled:?}");
    let empty = PgStore::open(&pg.create_database().expect("db")).expect("open");
    let cut = &file[..file.len() - 40];
    let damaged =
        BackupReader::new(cut, "test").and_then(|mut r| empty.restore_backup(&mut r, "t", "d", 1, &mut |_| {}));
    assert!(damaged.is_err(), "a cut-short file is refused");
    assert_eq!((empty.head_seq().expect("head"), empty.people().expect("people").len()), (0, 0), "and keeps nothing");
    let sled = SledStore::open(dir.path().join("sled")).expect("open");
    fill_with_everything(&sled);
    let mut sled_file = Vec::new();
    crate::backup::write_backup(&sled, &mut sled_file, "test", "test", &mut |_| {}).expect("backup");
    let mut reader = BackupReader::new(sled_file.as_slice(), "test").expect("a backup");
    let sled_into_pg = empty.restore_backup(&mut reader, "test", "sled", 1, &mut |_| {});
    assert!(matches!(sled_into_pg, Err(BackupError::OtherEngine(..))), "{sled_into_pg:?}");
}

/// A reference to photo `h` as a record would hold it.
fn photo_ref(h: &PhotoHash, size: u64, mime: PhotoType) -> PhotoRef {
    PhotoRef {
        id: uuid::Uuid::new_v4(),
        sha256: h.clone(),
        size,
        mime,
        taken_at: 1,
        location: None,
        by: PersonId(uuid::Uuid::nil()),
        at: 1,
        follow_up: None,
    }
}
