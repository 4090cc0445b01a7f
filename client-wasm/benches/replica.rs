//! The phone's hot paths, natively, over `MemoryStorage`: recording one visit log
//! (the shared rules, the document's save and the storage batch), and applying one
//! sync response holding 100 others' visit logs, as changes and as snapshots, with
//! the server's record summaries (kept unparsed) and without (parsed at once).

use automerge::ActorId;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gridsync_client::{MemoryStorage, Replica};
use gridsync_shared::protocol::{self, DeviceRegistration, DocBody, DocUpdate, SyncResponse};
use gridsync_shared::records::{GeoPoint, NewRecord, VisitFields, VisitKind, new_record, read_record};
use gridsync_shared::{Author, DeviceId, DocId, PersonId, Role, TerritoryPath};
use std::hint::black_box;
use uuid::Uuid;

const GRID: &str = "xg/xn/sh/dh/g01";
const NOW: i64 = 1_760_000_000_000;

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

/// A realistic visit log: ~600 characters of notes, concerns, a GPS fix.
fn visit_log(seed: usize) -> NewRecord {
    NewRecord::VisitLog(VisitFields {
        household: Some(DocId(Uuid::new_v4())),
        visited_at: NOW - seed as i64 * 60_000,
        kind: Some(VisitKind::Routine),
        location: Some(GeoPoint { lat: 30.5928 + seed as f64 * 1e-5, lon: 114.3055, accuracy_m: Some(12.0) }),
        notes: notes(seed, 600),
        concerns: vec!["楼道灯不亮".into(), "小区门口占道经营".into(), "希望增加老年助餐点".into()][..2 + seed % 2]
            .to_vec(),
        findings: notes(seed + 5, 40),
    })
}

/// A field staff member's registration, as the server would give it at sign-in.
fn registration() -> DeviceRegistration {
    DeviceRegistration {
        device: DeviceId(Uuid::new_v4()),
        token: "device.secret".into(),
        actor: ActorId::random().to_hex_string(),
        person: PersonId(Uuid::new_v4()),
        name: "李网格".into(),
        role: Role::FieldStaff,
        territory: GRID.parse().expect("grid path"),
    }
}

fn phone() -> Replica<MemoryStorage> {
    let mut replica = Replica::open(MemoryStorage::new()).expect("open replica");
    replica.register(registration()).expect("register");
    replica
}

fn phone_creates_a_visit_log(c: &mut Criterion) {
    let mut replica = phone();
    let visit = visit_log(1);
    let mut now = NOW;
    c.bench_function("phone_creates_a_visit_log", |b| {
        b.iter(|| {
            now += 1;
            replica.create(None, now, black_box(&visit)).expect("create visit log")
        })
    });
}

/// One response page from the server: 100 visit logs by another phone of the
/// grid, with or without the summaries that let the phone keep them unparsed.
fn page_of_visit_logs(snapshots: bool, summaries: bool) -> Vec<u8> {
    let grid: TerritoryPath = GRID.parse().expect("grid path");
    let author = Author { person: PersonId(Uuid::new_v4()), role: Role::FieldStaff, territory: grid.clone() };
    let actor = ActorId::random();
    let updates = (0..100)
        .map(|i| {
            let random = Uuid::new_v4().as_bytes()[..10].try_into().expect("10 bytes");
            let (doc, am) =
                new_record(actor.clone(), &author, &grid, NOW - 1, random, &visit_log(i)).expect("new visit log");
            let summary = summaries.then(|| read_record(&am).expect("a visit log").summary());
            let body = if snapshots {
                DocBody::Snapshot(am.save())
            } else {
                DocBody::Changes(am.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect())
            };
            DocUpdate { doc, body, summary }
        })
        .collect();
    protocol::encode(&SyncResponse { results: vec![], updates, cursor: vec![1, 2, 3], more: true })
}

fn phone_applies_a_page_of_visit_logs(c: &mut Criterion) {
    let mut group = c.benchmark_group("phone_applies_a_page_of_visit_logs");
    for (name, snapshots, summaries) in [
        ("changes", false, true),
        ("snapshots", true, true),
        ("changes_without_summaries", false, false),
        ("snapshots_without_summaries", true, false),
    ] {
        let page = page_of_visit_logs(snapshots, summaries);
        eprintln!("{name}: a page of 100 visit logs is {} KiB", page.len() / 1024);
        group.bench_function(name, |b| {
            b.iter_batched(
                phone,
                |mut replica| {
                    let report = replica.apply_response(black_box(&page), NOW).expect("apply page");
                    assert_eq!(report.received, 100);
                    replica
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, phone_creates_a_visit_log, phone_applies_a_page_of_visit_logs);
criterion_main!(benches);
