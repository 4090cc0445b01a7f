//! A record flattened into one row of bytes, kept by the server beside its
//! document at each commit so that exports and reports read records without
//! parsing Automerge.
//!
//! A row is a version byte ([`ROW_VERSION`]), the record's kind as one byte,
//! then the record's fields as JSON (the record's own serde shape, without the
//! `type` tag: the kind byte carries it), compressed with raw deflate. The
//! version byte lets the encoding change later: [`decode_row`] names a version
//! it does not read instead of misreading it, and a reader then falls back to
//! the document. Every field round-trips exactly (positions included: JSON
//! numbers are parsed to the same `f64`). A record that cannot be written as
//! JSON (a position that is not a number) gets an empty row, which
//! [`decode_row`] refuses, so readers use its document instead.

use super::{Case, FieldValue, GeoPoint, Household, Promise, Record, RecordKind, VisitLog};
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use std::io::Read;
use thiserror::Error;

#[cfg(feature = "packed-rows")]
pub mod packed;

/// The row encoding this build writes (and the only one it reads).
pub const ROW_VERSION: u8 = 1;

/// The deflate level rows are written at: the default (6). Measured on 2,000
/// loadgen visit logs of ~640 characters: 1,241 bytes a row at 6 against
/// 1,541 at 1 (the JSON alone: 2,168), decoding in ~12 µs either way.
const LEVEL: u32 = 6;

/// Why a row could not be read as a record. The record's document is the
/// truth: a reader that gets this reads the document instead.
#[derive(Debug, Error)]
pub enum RowError {
    /// No bytes (also what a record that could not be encoded gets).
    #[error("the row is empty")]
    Empty,
    /// Written by another version of the encoding.
    #[error("row encoding version {0} is not one this build reads (it reads {ROW_VERSION})")]
    Version(u8),
    /// The kind byte names no record kind.
    #[error("row kind byte {0} names no record kind")]
    Kind(u8),
    /// The compressed fields are damaged.
    #[error("the row's compressed fields are damaged: {0}")]
    Inflate(#[from] std::io::Error),
    /// A row packed against its commit's changes, read without them or with
    /// changes it was not packed against.
    #[error("the row was kept against its commit's changes, which are {0}")]
    Changes(&'static str),
    /// The fields are not a record of the row's kind.
    #[error("the row's fields are not a {kind} record: {error}")]
    Fields {
        /// The kind the row names.
        kind: RecordKind,
        /// What is wrong.
        error: serde_json::Error,
    },
    /// The fields name another kind than the kind byte.
    #[error("the row is marked {row} but holds a {fields} record")]
    KindMismatch {
        /// The kind byte's kind.
        row: RecordKind,
        /// The kind its fields name.
        fields: RecordKind,
    },
}

fn kind_byte(kind: RecordKind) -> u8 {
    match kind {
        RecordKind::Household => 0,
        RecordKind::VisitLog => 1,
        RecordKind::Case => 2,
        RecordKind::Promise => 3,
    }
}

fn byte_kind(byte: u8) -> Result<RecordKind, RowError> {
    match byte {
        0 => Ok(RecordKind::Household),
        1 => Ok(RecordKind::VisitLog),
        2 => Ok(RecordKind::Case),
        3 => Ok(RecordKind::Promise),
        other => Err(RowError::Kind(other)),
    }
}

/// The row of `record`, for [`decode_row`]. Empty (which [`decode_row`]
/// refuses) only if the record cannot be written as JSON: a non-finite
/// position, which no valid document holds.
pub fn encode_row(record: &Record) -> Vec<u8> {
    thread_local! {
        /// This thread's encoder, reset for each row: a new one allocates and
        /// clears its tables (a third of a bulk import's row encoding).
        static ENCODER: std::cell::RefCell<Option<DeflateEncoder<Vec<u8>>>> = const { std::cell::RefCell::new(None) };
    }
    let out = vec![ROW_VERSION, kind_byte(record.kind())];
    let encoded = ENCODER.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let mut deflate = slot.take().unwrap_or_else(|| DeflateEncoder::new(Vec::new(), Compression::new(LEVEL)));
        // A reset starts a new stream, as a new encoder would.
        deflate.reset(out).ok()?;
        let written = match record {
            Record::Household(r) => serde_json::to_writer(&mut deflate, r),
            Record::VisitLog(r) => serde_json::to_writer(&mut deflate, r),
            Record::Case(r) => serde_json::to_writer(&mut deflate, r),
            Record::Promise(r) => serde_json::to_writer(&mut deflate, r),
        };
        let out = deflate.reset(Vec::new()).ok();
        *slot = Some(deflate);
        written.ok().and(out)
    });
    match encoded {
        Some(out) if positions_finite(record) => out,
        _ => Vec::new(),
    }
}

/// Whether every position the record holds is finite (JSON writes a
/// non-finite number as `null`, which would not read back).
fn positions_finite(record: &Record) -> bool {
    let finite = |p: &GeoPoint| p.lat.is_finite() && p.lon.is_finite() && p.accuracy_m.is_none_or(f64::is_finite);
    let own = match record {
        Record::VisitLog(v) => v.fields.location.as_ref(),
        _ => None,
    };
    let conflicts = record.conflicts().iter().flat_map(|c| c.values.iter()).filter_map(|v| match v {
        FieldValue::Point(p) => Some(p),
        _ => None,
    });
    own.into_iter().chain(record.photos().iter().filter_map(|p| p.location.as_ref())).chain(conflicts).all(finite)
}

/// The record a row of [`encode_row`] holds, exactly as it was encoded; also
/// a row a store kept packed against its commit's changes and handed out with
/// them ([`packed::with_changes`]).
pub fn decode_row(bytes: &[u8]) -> Result<Record, RowError> {
    let (&version, rest) = bytes.split_first().ok_or(RowError::Empty)?;
    let (kind, json) = match version {
        ROW_VERSION => {
            let (&kind, deflated) = rest.split_first().ok_or(RowError::Empty)?;
            let mut json = Vec::with_capacity(deflated.len() * 3);
            DeflateDecoder::new(deflated).read_to_end(&mut json)?;
            (byte_kind(kind)?, json)
        }
        #[cfg(feature = "packed-rows")]
        packed::WITH_CHANGES => packed::fields(rest)?,
        #[cfg(feature = "packed-rows")]
        packed::AT_REST => return Err(RowError::Changes("missing")),
        other => return Err(RowError::Version(other)),
    };
    record_of(kind, &json)
}

/// The record whose fields `json` holds, of `kind`.
fn record_of(kind: RecordKind, json: &[u8]) -> Result<Record, RowError> {
    let fields = |error| RowError::Fields { kind, error };
    let record = match kind {
        RecordKind::Household => Record::Household(serde_json::from_slice::<Household>(json).map_err(fields)?),
        RecordKind::VisitLog => Record::VisitLog(serde_json::from_slice::<VisitLog>(json).map_err(fields)?),
        RecordKind::Case => Record::Case(serde_json::from_slice::<Case>(json).map_err(fields)?),
        RecordKind::Promise => Record::Promise(serde_json::from_slice::<Promise>(json).map_err(fields)?),
    };
    if record.kind() != kind {
        return Err(RowError::KindMismatch { row: kind, fields: record.kind() });
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::photos::{NewPhoto, PhotoHash, PhotoRef, PhotoType};
    use crate::records::Editor;
    use crate::records::{
        CaseFields, CaseKind, FieldConflict, FollowUp, HouseholdFields, Member, NewRecord, PromiseFields,
        PromiseOutcome, RecordMeta, SCHEMA_VERSION, Satisfaction, VisitFields, VisitKind, VoidEntry, new_record,
        read_record,
    };
    use crate::workflow::{CaseStatus, StatusEntry, StatusMove};
    use crate::{Author, DocId, PersonId, Role, TerritoryPath};
    use automerge::ActorId;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn assert_round_trips(record: &Record) {
        let row = encode_row(record);
        let back = decode_row(&row).unwrap_or_else(|e| panic!("{e}: {record:?}"));
        assert_eq!(&back, record);
        assert_eq!(encode_row(&back), row, "the same record encodes to the same bytes");
    }

    fn grid() -> TerritoryPath {
        "xg/xn/sh/dh/g1".parse().expect("grid")
    }

    fn author(n: u128, role: Role) -> Author {
        Author { person: PersonId(Uuid::from_u128(n)), role, territory: grid() }
    }

    fn photo(n: u8, follow_up: Option<Uuid>) -> NewPhoto {
        NewPhoto {
            sha256: PhotoHash::from_digest(&[n; 32]),
            size: 1000 + u64::from(n),
            mime: PhotoType::Jpeg,
            taken_at: 1_700_000_000_000,
            location: Some(GeoPoint { lat: 30.123_456_789, lon: 114.987_654_321, accuracy_m: Some(7.5) }),
            follow_up,
        }
    }

    /// Records as documents make them: a household with members and a
    /// concurrent change of its head, a visit log with photos and a position,
    /// a case moved, assigned, reopened, followed up (with photos), voided, a
    /// promise with outcomes.
    fn documents() -> Vec<Record> {
        let staff = author(1, Role::FieldStaff);
        let boss = author(2, Role::Supervisor);
        let household = HouseholdFields {
            address: "东湖路12号, 3栋\"2单元\"\n401".into(),
            head: "陈桂英".into(),
            phone: "13807120011".into(),
            id_number: "420902194803150021".into(),
            members: vec![
                Member {
                    name: "周丽".into(),
                    relation: "女儿".into(),
                    tags: vec!["残疾人".into()],
                    ..Member::default()
                },
                Member { name: "周强".into(), relation: "儿子".into(), phone: "139".into(), ..Member::default() },
            ],
            tags: vec!["独居老人".into(), "困难群众".into()],
            notes: "行动不便，需每周探望 😀\t\u{0}".into(),
        };
        let (_, mut h) =
            new_record(ActorId::random(), &staff, &grid(), 1, [1; 10], &NewRecord::Household(household.clone()))
                .expect("household");
        let mut other = h.fork();
        let mut edited = household.clone();
        edited.head = "陈桂兰".into();
        Editor::new(&mut h, &staff, 2).update_household(&edited).expect("edit");
        edited.head = "陈贵英".into();
        Editor::new(&mut other, &boss, 3).update_household(&edited).expect("edit");
        h.merge(&mut other).expect("merge");

        let visit = VisitFields {
            household: Some(DocId(Uuid::from_u128(9))),
            visited_at: 1_700_000_000_123,
            kind: Some(VisitKind::Care),
            location: Some(GeoPoint { lat: -0.1, lon: 179.999_999_999_9, accuracy_m: None }),
            notes: "走访".repeat(300),
            concerns: vec!["路灯不亮".into(), "".into()],
            findings: "漏水".into(),
        };
        let (_, mut v) =
            new_record(ActorId::random(), &staff, &grid(), 1, [2; 10], &NewRecord::VisitLog(visit)).expect("visit");
        Editor::new(&mut v, &staff, 2).add_photos(&[photo(1, None), photo(2, None)]).expect("photos");
        Editor::new(&mut v, &staff, 3).void_record("重复录入").expect("void");

        let case = CaseFields {
            kind: CaseKind::Hazard,
            title: "楼道堆物".into(),
            description: "三楼楼道堆放杂物".into(),
            household: Some(DocId(Uuid::from_u128(9))),
            visit: None,
            due_at: Some(1_800_000_000_000),
        };
        let (_, mut c) =
            new_record(ActorId::random(), &staff, &grid(), 1, [3; 10], &NewRecord::Case(case)).expect("case");
        let mut e = Editor::new(&mut c, &boss, 2);
        e.advance_case(CaseStatus::Accepted).expect("accept");
        e.assign_case(PersonId(Uuid::from_u128(1))).expect("assign");
        e.advance_case(CaseStatus::Resolved).expect("resolve");
        e.reopen_case(CaseStatus::InProgress, "未处理完").expect("reopen");
        e.add_follow_up("已回访", Some(Satisfaction::Basic)).expect("follow-up");
        e.add_follow_up_with_photos("现场照片", None, &[photo(3, None)]).expect("follow-up with photos");

        let promise = PromiseFields { content: "修路灯".into(), household: None, due_at: 5 };
        let (_, mut p) =
            new_record(ActorId::random(), &staff, &grid(), 1, [4; 10], &NewRecord::Promise(promise)).expect("promise");
        Editor::new(&mut p, &staff, 2).record_promise_outcome(false, "未到货").expect("outcome");
        Editor::new(&mut p, &staff, 3).record_promise_outcome(true, "已修好").expect("outcome");

        [h, v, c, p].iter().map(|d| read_record(d).expect("read")).collect()
    }

    #[test]
    fn every_kind_made_as_a_document_round_trips_exactly() {
        let records = documents();
        let Record::Household(h) = &records[0] else { panic!("kind") };
        assert_eq!(h.fields.members.len(), 2);
        assert_eq!(h.conflicts.len(), 1, "the concurrent change of the head is a conflict");
        let Record::VisitLog(v) = &records[1] else { panic!("kind") };
        assert_eq!((v.photos.len(), v.voids.len()), (2, 1));
        let Record::Case(c) = &records[2] else { panic!("kind") };
        assert_eq!((c.follow_ups.len(), c.photos.len(), c.status_log.len()), (2, 1, 4));
        let Record::Promise(p) = &records[3] else { panic!("kind") };
        assert_eq!(p.outcomes.len(), 2);
        for record in &records {
            assert_round_trips(record);
        }
    }

    #[test]
    fn damaged_rows_and_rows_of_another_version_are_refused() {
        let row = encode_row(&documents()[1]);
        assert!(matches!(decode_row(&[]), Err(RowError::Empty)));
        assert!(matches!(decode_row(&[ROW_VERSION]), Err(RowError::Empty)));
        let mut other = row.clone();
        other[0] = 0xee; // a version no build reads
        assert!(matches!(decode_row(&other), Err(RowError::Version(0xee))));
        let mut other = row.clone();
        other[1] = 9;
        assert!(matches!(decode_row(&other), Err(RowError::Kind(9))));
        let mut other = row.clone();
        other[1] = 0; // a visit log's fields marked as a household
        let err = decode_row(&other).expect_err("marked as another kind");
        assert!(
            matches!(err, RowError::KindMismatch { row: RecordKind::Household, fields: RecordKind::VisitLog }),
            "{err}"
        );
        other[1] = 2; // ... as a case: its fields are not a case's
        assert!(matches!(decode_row(&other), Err(RowError::Fields { kind: RecordKind::Case, .. })));
        let cut = &row[..row.len() / 2];
        assert!(decode_row(cut).is_err(), "a truncated row");
    }

    #[test]
    fn a_record_with_a_position_that_is_not_a_number_gets_an_empty_row() {
        let Record::VisitLog(mut v) = documents().swap_remove(1) else { panic!("kind") };
        v.fields.location = Some(GeoPoint { lat: 1.0, lon: 2.0, accuracy_m: Some(f64::INFINITY) });
        assert!(matches!(decode_row(&encode_row(&Record::VisitLog(v.clone()))), Err(RowError::Empty)));
        v.fields.location = None;
        v.photos[0].location = Some(GeoPoint { lat: f64::NAN, lon: 2.0, accuracy_m: None });
        assert!(encode_row(&Record::VisitLog(v)).is_empty());
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![".{0,12}", "[东湖路号栋单元走访记录，。\"\\\\\n]{0,40}", Just(String::new())]
    }

    fn uuid() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    fn person() -> impl Strategy<Value = PersonId> {
        uuid().prop_map(PersonId)
    }

    fn doc() -> impl Strategy<Value = Option<DocId>> {
        proptest::option::of(uuid().prop_map(DocId))
    }

    fn finite() -> impl Strategy<Value = f64> {
        any::<f64>().prop_filter("finite", |f| f.is_finite())
    }

    fn point() -> impl Strategy<Value = GeoPoint> {
        (finite(), finite(), proptest::option::of(finite())).prop_map(|(lat, lon, accuracy_m)| GeoPoint {
            lat,
            lon,
            accuracy_m,
        })
    }

    fn meta(kind: RecordKind) -> impl Strategy<Value = RecordMeta> {
        (any::<u64>(), prop_oneof![Just("xg"), Just("xg/xn/sh/dh/g1")], person(), any::<i64>()).prop_map(
            move |(schema, grid, creator, created_at)| RecordMeta {
                kind,
                schema: schema % 3 + SCHEMA_VERSION - 1,
                grid: grid.parse().expect("grid"),
                creator,
                created_at,
            },
        )
    }

    fn voids() -> impl Strategy<Value = Vec<VoidEntry>> {
        vec((uuid(), person(), any::<i64>(), text()), 0..3)
            .prop_map(|v| v.into_iter().map(|(id, by, at, reason)| VoidEntry { id, by, at, reason }).collect())
    }

    fn conflicts() -> impl Strategy<Value = Vec<FieldConflict>> {
        let value = prop_oneof![
            text().prop_map(FieldValue::Text),
            any::<i64>().prop_map(FieldValue::Number),
            point().prop_map(FieldValue::Point),
            Just(FieldValue::Empty),
        ];
        vec((text(), vec(value, 0..4)), 0..3)
            .prop_map(|v| v.into_iter().map(|(field, values)| FieldConflict { field, values }).collect())
    }

    fn photos() -> impl Strategy<Value = Vec<PhotoRef>> {
        let one = (
            uuid(),
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<bool>(),
            any::<i64>(),
            proptest::option::of(point()),
            person(),
            any::<i64>(),
            proptest::option::of(uuid()),
        )
            .prop_map(|(id, hash, size, webp, taken_at, location, by, at, follow_up)| PhotoRef {
                id,
                sha256: PhotoHash::from_digest(&hash),
                size,
                mime: if webp { PhotoType::Webp } else { PhotoType::Jpeg },
                taken_at,
                location,
                by,
                at,
                follow_up,
            });
        vec(one, 0..3)
    }

    fn household() -> impl Strategy<Value = Record> {
        let member = (text(), text(), text(), text(), text(), vec(text(), 0..3)).prop_map(
            |(id, name, relation, id_number, phone, tags)| Member { id, name, relation, id_number, phone, tags },
        );
        let fields = (text(), text(), text(), text(), vec(member, 0..4), vec(text(), 0..3), text()).prop_map(
            |(address, head, phone, id_number, members, tags, notes)| HouseholdFields {
                address,
                head,
                phone,
                id_number,
                members,
                tags,
                notes,
            },
        );
        (meta(RecordKind::Household), fields, voids(), conflicts()).prop_map(|(meta, fields, voids, conflicts)| {
            Record::Household(Household { meta, fields, voids, conflicts })
        })
    }

    fn visit_log() -> impl Strategy<Value = Record> {
        let kind = proptest::option::of(proptest::sample::select(VisitKind::ALL));
        let fields = (doc(), any::<i64>(), kind, proptest::option::of(point()), text(), vec(text(), 0..4), text())
            .prop_map(|(household, visited_at, kind, location, notes, concerns, findings)| VisitFields {
                household,
                visited_at,
                kind,
                location,
                notes,
                concerns,
                findings,
            });
        (meta(RecordKind::VisitLog), fields, photos(), voids(), conflicts()).prop_map(
            |(meta, fields, photos, voids, conflicts)| {
                Record::VisitLog(VisitLog { meta, fields, photos, voids, conflicts })
            },
        )
    }

    fn case() -> impl Strategy<Value = Record> {
        let fields =
            (proptest::sample::select(CaseKind::ALL), text(), text(), doc(), doc(), proptest::option::of(any::<i64>()))
                .prop_map(|(kind, title, description, household, visit, due_at)| CaseFields {
                    kind,
                    title,
                    description,
                    household,
                    visit,
                    due_at,
                });
        let status = (
            uuid(),
            any::<bool>(),
            proptest::sample::select(CaseStatus::ALL.to_vec()),
            any::<u32>(),
            person(),
            any::<i64>(),
            proptest::option::of(text()),
            proptest::option::of(person()),
        )
            .prop_map(|(id, reopen, to, epoch, by, at, reason, assignee)| StatusEntry {
                id,
                kind: if reopen { StatusMove::Reopen } else { StatusMove::Advance },
                to,
                epoch,
                by,
                at,
                reason,
                assignee,
            });
        let satisfaction = proptest::option::of(proptest::sample::select(Satisfaction::ALL));
        let follow_up = (uuid(), person(), any::<i64>(), text(), satisfaction)
            .prop_map(|(id, by, at, note, satisfaction)| FollowUp { id, by, at, note, satisfaction });
        (meta(RecordKind::Case), fields, vec(status, 0..4), vec(follow_up, 0..3), photos(), voids(), conflicts())
            .prop_map(|(meta, fields, status_log, follow_ups, photos, voids, conflicts)| {
                Record::Case(Case { meta, fields, status_log, follow_ups, photos, voids, conflicts })
            })
    }

    fn promise() -> impl Strategy<Value = Record> {
        let fields = (text(), doc(), any::<i64>()).prop_map(|(content, household, due_at)| PromiseFields {
            content,
            household,
            due_at,
        });
        let outcome = (uuid(), any::<bool>(), person(), any::<i64>(), text())
            .prop_map(|(id, kept, by, at, note)| PromiseOutcome { id, kept, by, at, note });
        (meta(RecordKind::Promise), fields, vec(outcome, 0..3), voids(), conflicts()).prop_map(
            |(meta, fields, outcomes, voids, conflicts)| {
                Record::Promise(Promise { meta, fields, outcomes, voids, conflicts })
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn any_record_of_any_kind_round_trips_exactly(record in prop_oneof![household(), visit_log(), case(), promise()]) {
            assert_round_trips(&record);
        }
    }
}
