//! Photos as evidence: a record keeps one append-only reference per photo;
//! concurrent additions from two phones both survive; the shared rules check
//! who attaches what, how many and how large; a photo's bytes must be the image
//! its record names.

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ROOT, ReadDoc};
use gridsync_shared::photos::{NewPhoto, PhotoError, PhotoHash, PhotoType, check_photo_bytes, limits};
use gridsync_shared::records::*;
use gridsync_shared::rules::{RejectReason, check_update};
use gridsync_shared::{Author, PersonId, Role, TerritoryPath};

fn grid() -> TerritoryPath {
    "xg/xn/sh/dh/g1".parse().expect("grid")
}

fn person(n: u128, role: Role) -> Author {
    Author { person: PersonId(uuid::Uuid::from_u128(n)), role, territory: grid() }
}

fn wang() -> Author {
    person(1, Role::FieldStaff)
}

fn li() -> Author {
    person(2, Role::FieldStaff)
}

fn supervisor() -> Author {
    Author { territory: "xg/xn/sh/dh".parse().expect("community"), ..person(3, Role::Supervisor) }
}

fn photo(n: u8) -> NewPhoto {
    NewPhoto {
        sha256: PhotoHash::from_digest(&[n; 32]),
        size: 200_000 + u64::from(n),
        mime: PhotoType::Jpeg,
        taken_at: 1_700_000_000_000,
        location: None,
        follow_up: None,
    }
}

fn visit_by(author: &Author) -> Automerge {
    let fields =
        VisitFields { visited_at: 1_700_000_000_000, notes: "楼道堆放杂物".into(), ..VisitFields::default() };
    new_record(ActorId::random(), author, &grid(), 1_700_000_000_000, [7; 10], &NewRecord::VisitLog(fields))
        .expect("visit")
        .1
}

fn case_by(author: &Author) -> Automerge {
    let fields = CaseFields {
        kind: CaseKind::Hazard,
        title: "消防通道堵塞".into(),
        description: "三单元楼道堆放电动车".into(),
        household: None,
        visit: None,
        due_at: None,
    };
    new_record(ActorId::random(), author, &grid(), 1_700_000_000_000, [8; 10], &NewRecord::Case(fields))
        .expect("case")
        .1
}

fn photos_of(doc: &Automerge) -> Vec<gridsync_shared::photos::PhotoRef> {
    read_record(doc).expect("read").photos().to_vec()
}

#[test]
fn a_photo_reference_reads_back_as_attached_with_its_position() {
    let mut doc = visit_by(&wang());
    let with_gps = NewPhoto {
        location: Some(GeoPoint { lat: 30.5, lon: 114.3, accuracy_m: Some(8.0) }),
        mime: PhotoType::Webp,
        ..photo(1)
    };
    Editor::new(&mut doc, &wang(), 5).add_photos(&[with_gps.clone(), photo(2)]).expect("attach");
    let photos = photos_of(&doc);
    assert_eq!(photos.len(), 2);
    let p = &photos[0];
    assert_eq!(
        (&p.sha256, p.size, p.mime, p.taken_at),
        (&with_gps.sha256, with_gps.size, PhotoType::Webp, with_gps.taken_at)
    );
    assert_eq!(p.location, with_gps.location);
    assert_eq!((p.by, p.at, p.follow_up), (wang().person, 5, None));
    assert_eq!(photos[1].location, None);
}

#[test]
fn attaching_the_same_photo_again_adds_nothing() {
    let mut doc = visit_by(&wang());
    Editor::new(&mut doc, &wang(), 5).add_photos(&[photo(1), photo(1)]).expect("attach");
    let again = Editor::new(&mut doc, &wang(), 6).add_photos(&[photo(1)]).expect("again");
    assert_eq!(again, None, "a repeated submit makes no change");
    assert_eq!(photos_of(&doc).len(), 1);
}

#[test]
fn photos_added_on_two_phones_at_once_both_survive_the_merge() {
    let mut a = case_by(&wang());
    let mut b = a.fork().with_actor(ActorId::random());
    Editor::new(&mut a, &wang(), 5).add_photos(&[photo(1)]).expect("phone a");
    Editor::new(&mut b, &supervisor(), 5).add_photos(&[photo(2)]).expect("phone b");
    a.merge(&mut b).expect("merge");
    let mut hashes: Vec<_> = photos_of(&a).into_iter().map(|p| p.sha256).collect();
    hashes.sort();
    assert_eq!(hashes, vec![photo(1).sha256, photo(2).sha256]);
}

#[test]
fn a_follow_up_carries_its_own_photos_written_by_its_writer() {
    let mut doc = case_by(&wang());
    let id = Editor::new(&mut doc, &li(), 5)
        .add_follow_up_with_photos("已清理一半", None, &[photo(1), photo(2)])
        .expect("li's follow-up with photos");
    let photos = photos_of(&doc);
    assert_eq!(photos.len(), 2);
    assert!(photos.iter().all(|p| p.follow_up == Some(id) && p.by == li().person));
    // Li may not attach photos to the case itself (only its reporter and reviewers edit it),
    let refused = Editor::new(&mut doc, &li(), 6).add_photos(&[photo(3)]).expect_err("not li's case");
    assert!(matches!(refused, EditError::Rejected(r) if r.reason == RejectReason::NotPermitted));
    // nor Wang to Li's follow-up, nor anyone to a follow-up the case does not have.
    let to_lis = NewPhoto { follow_up: Some(id), ..photo(4) };
    let refused = Editor::new(&mut doc, &wang(), 6).add_photos(&[to_lis]).expect_err("not wang's follow-up");
    assert!(matches!(refused, EditError::Rejected(r) if r.reason == RejectReason::NotPermitted));
    let nowhere = NewPhoto { follow_up: Some(uuid::Uuid::from_u128(99)), ..photo(5) };
    let refused = Editor::new(&mut doc, &wang(), 6).add_photos(&[nowhere]).expect_err("no such follow-up");
    assert!(matches!(refused, EditError::Rejected(r) if r.reason == RejectReason::InvalidRecord));
    assert_eq!(photos_of(&doc).len(), 2, "nothing refused was kept");
}

#[test]
fn at_most_nine_photos_per_record_and_per_follow_up() {
    let mut doc = case_by(&wang());
    let nine: Vec<NewPhoto> = (1..=9).map(photo).collect();
    Editor::new(&mut doc, &wang(), 5).add_photos(&nine).expect("nine");
    let refused = Editor::new(&mut doc, &wang(), 6).add_photos(&[photo(10)]).expect_err("a tenth");
    assert!(matches!(refused, EditError::Rejected(r) if r.reason == RejectReason::TooLarge));
    let follow_nine: Vec<NewPhoto> = (11..=19).map(photo).collect();
    Editor::new(&mut doc, &wang(), 7)
        .add_follow_up_with_photos("跟进", None, &follow_nine)
        .expect("a follow-up's own nine");
    assert_eq!(photos_of(&doc).len(), 18);
}

#[test]
fn a_photo_of_no_bytes_or_over_the_limit_is_refused() {
    let mut doc = visit_by(&wang());
    for size in [0, limits::MAX_PHOTO_BYTES + 1] {
        let refused = Editor::new(&mut doc, &wang(), 5).add_photos(&[NewPhoto { size, ..photo(1) }]).expect_err("size");
        assert!(matches!(refused, EditError::Rejected(r) if r.reason == RejectReason::InvalidRecord), "size {size}");
    }
    assert!(photos_of(&doc).is_empty());
}

#[test]
fn a_photo_reference_can_be_neither_altered_nor_removed() {
    let mut doc = visit_by(&wang());
    Editor::new(&mut doc, &wang(), 5).add_photos(&[photo(1)]).expect("attach");
    let (_, photos) = doc.get(ROOT, "photos").expect("get").expect("photos list");
    let (_, entry) = doc.get(&photos, 0).expect("get").expect("entry");
    let mut altered = doc.fork();
    altered.transact::<_, _, automerge::AutomergeError>(|tx| tx.put(&entry, "size", 5u64).map(|_| ())).expect("alter");
    let refused = check_update(&doc, &altered, &wang()).expect_err("altered");
    assert_eq!(refused.reason, RejectReason::HistoryRewritten);
    let mut removed = doc.fork();
    removed.transact::<_, _, automerge::AutomergeError>(|tx| tx.delete(&photos, 0)).expect("remove");
    let refused = check_update(&doc, &removed, &wang()).expect_err("removed");
    assert_eq!(refused.reason, RejectReason::HistoryRewritten);
}

#[test]
fn a_record_made_before_photos_reads_with_none_and_takes_its_first() {
    // A visit log as earlier builds wrote it: no `photos` list.
    let mut doc = visit_by(&wang());
    doc.transact::<_, _, automerge::AutomergeError>(|tx| tx.delete(ROOT, "photos")).expect("old shape");
    assert!(photos_of(&doc).is_empty());
    Editor::new(&mut doc, &wang(), 5).add_photos(&[photo(1)]).expect("first photo");
    assert_eq!(photos_of(&doc).len(), 1);
}

#[test]
fn a_photo_must_be_the_image_its_record_names() {
    let jpeg = [&[0xFF, 0xD8, 0xFF, 0xE0][..], &[0; 60]].concat();
    let webp = [&b"RIFF"[..], &[0; 4], b"WEBPVP8 ", &[0; 48]].concat();
    let png = [&b"\x89PNG\r\n\x1a\n"[..], &[0; 56]].concat();
    assert_eq!(check_photo_bytes(&jpeg, 64, PhotoType::Jpeg), Ok(()));
    assert_eq!(check_photo_bytes(&webp, 64, PhotoType::Webp), Ok(()));
    assert_eq!(check_photo_bytes(&png, 64, PhotoType::Jpeg), Err(PhotoError::NotThatType("image/jpeg")));
    assert_eq!(check_photo_bytes(&webp, 64, PhotoType::Jpeg), Err(PhotoError::NotThatType("image/jpeg")));
    assert_eq!(check_photo_bytes(&jpeg, 65, PhotoType::Jpeg), Err(PhotoError::SizeMismatch { expected: 65, got: 64 }));
    assert_eq!(check_photo_bytes(&[], 0, PhotoType::Jpeg), Err(PhotoError::BadSize));
    assert_eq!(PhotoType::from_mime("IMAGE/JPEG"), Some(PhotoType::Jpeg));
    assert_eq!(PhotoType::from_mime("image/png"), None);
}

#[test]
fn a_photo_hash_is_64_hex_digits() {
    let h = PhotoHash::from_digest(&[0xAB; 32]);
    assert_eq!(h.as_str(), "ab".repeat(32));
    assert_eq!(PhotoHash::parse(&"AB".repeat(32)), Ok(h));
    for bad in ["", "ab", &"g".repeat(64), &"a".repeat(65), "../../etc/passwd"] {
        assert_eq!(PhotoHash::parse(bad), Err(PhotoError::BadHash), "{bad:?}");
    }
}
