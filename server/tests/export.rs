//! Snapshot files: every format is a zip whose manifest checks out, the CSV
//! parses back to exactly what was written, JSONL and the Automerge bundle
//! round-trip the records, the XLSX is a workbook, masking shows in every
//! format, names stand beside ids and voided records are marked, and memory
//! stays flat for a large snapshot.

use automerge::{ActorId, Automerge};
use gridsync_server::export::{
    self, ExportError, Format, MANIFEST_NAME, Manifest, SnapshotItem, SnapshotMeta, SnapshotSource, csv::decode_cell,
    names::Names,
};
use gridsync_shared::masking::mask_record;
use gridsync_shared::records::*;
use gridsync_shared::workflow::CaseStatus;
use gridsync_shared::{Author, PersonId, RecordKind, Role, TerritoryPath};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Cursor, Read};

const CREATED_AT: i64 = 1_700_000_000_000; // 2023-11-15 06:13:20 in Beijing
const AS_OF: i64 = 1_800_000_000_000;

const HEAD_ID: &str = "420902194803150021";
const HEAD_PHONE: &str = "13807120011";
const MEMBER_ID: &str = "42090219750102004X";
const MEMBER_PHONE: &str = "13907125566";

fn grid() -> TerritoryPath {
    "xg/xn/sh/dh/g1".parse().expect("grid")
}

fn staff() -> Author {
    Author { person: PersonId(uuid::Uuid::from_u128(7)), role: Role::FieldStaff, territory: grid() }
}

/// A record made and read back the way the server stores it.
fn make(seed: u8, new: NewRecord, edit: impl FnOnce(&mut Editor<'_>)) -> SnapshotItem {
    let author = staff();
    let (id, mut doc) = new_record(ActorId::random(), &author, &grid(), CREATED_AT, [seed; 10], &new).expect("create");
    edit(&mut Editor::new(&mut doc, &author, CREATED_AT + 60_000));
    SnapshotItem { id, record: read_record(&doc).expect("read"), automerge: doc.save() }
}

fn tricky_household() -> HouseholdFields {
    HouseholdFields {
        address: "东湖路12号, 3栋\"2单元\"\n401室".into(),
        head: "陈“桂英”".into(),
        phone: HEAD_PHONE.into(),
        id_number: HEAD_ID.into(),
        members: vec![
            Member {
                name: "周丽".into(),
                relation: "女儿".into(),
                id_number: MEMBER_ID.into(),
                phone: MEMBER_PHONE.into(),
                ..Member::default()
            },
            Member { name: "周小明".into(), relation: "外孙".into(), ..Member::default() },
        ],
        tags: vec!["独居老人".into(), "困难群众".into()],
        notes: "-行动不便，\r\n需每周探望；=SUM(A1:A3)".into(),
    }
}

fn odd_household() -> HouseholdFields {
    HouseholdFields {
        address: "0012".into(),
        head: "1234567890123456789012".into(),
        phone: "0712-2345678".into(),
        id_number: String::new(),
        members: Vec::new(),
        tags: vec!["0755".into(), "1/2".into()],
        notes: format!("+{}", "很长的备注，".repeat(60)),
    }
}

fn items() -> Vec<SnapshotItem> {
    vec![
        make(1, NewRecord::Household(tricky_household()), |_| {}),
        make(2, NewRecord::Household(odd_household()), |_| {}),
        make(
            3,
            NewRecord::VisitLog(VisitFields {
                household: None,
                visited_at: CREATED_AT,
                kind: Some(VisitKind::Care),
                location: Some(GeoPoint { lat: 30.92, lon: 113.91, accuracy_m: Some(12.5) }),
                notes: "老人说：\"药快吃完了\"\n已转告社区医生".into(),
                concerns: vec!["路灯坏了，晚上看不见".into(), "3-4".into()],
                findings: "@所有人 楼道有电动车充电".into(),
            }),
            |_| {},
        ),
        make(
            4,
            NewRecord::Case(CaseFields {
                kind: CaseKind::Hazard,
                title: "楼道堆物, 消防隐患".into(),
                description: "三楼楼道堆放纸箱，\n堵塞“安全出口”".into(),
                household: None,
                visit: None,
                due_at: Some(CREATED_AT + 86_400_000),
            }),
            |e| {
                e.advance_case(CaseStatus::InProgress).expect("advance");
                e.add_follow_up("已联系物业，“明天”清理, 电话13807120011", Some(Satisfaction::Basic)).expect("follow");
            },
        ),
        make(
            5,
            NewRecord::Promise(PromiseFields {
                content: "为独居老人安装紧急呼叫器（3台）".into(),
                household: None,
                due_at: CREATED_AT + 7 * 86_400_000,
            }),
            |e| {
                e.record_promise_outcome(true, "已安装, 老人满意").expect("outcome");
            },
        ),
    ]
}

struct Memory(Vec<SnapshotItem>);

impl SnapshotSource for Memory {
    fn items(&self, kind: RecordKind) -> Box<dyn Iterator<Item = Result<SnapshotItem, ExportError>> + '_> {
        Box::new(self.0.iter().filter(move |i| i.record.kind() == kind).cloned().map(Ok))
    }
}

fn meta(masked: bool) -> SnapshotMeta {
    SnapshotMeta {
        territory: "xg/xn".parse().expect("territory"),
        as_of_ms: AS_OF,
        as_of_seq: 42,
        generated_at_ms: AS_OF + 5_000,
        generated_by: "admin".into(),
        masked,
        photos: false,
    }
}

fn snapshot(format: Format, source: &dyn SnapshotSource, masked: bool) -> (Vec<u8>, Manifest) {
    let mut out = Vec::new();
    let manifest = export::write_snapshot(&mut out, format, &meta(masked), source, &mut |_| {}).expect("snapshot");
    (out, manifest)
}

/// Every entry of a zip, in archive order, decompressed.
fn entries(zip_bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(zip_bytes)).expect("a zip archive");
    (0..zip.len())
        .map(|i| {
            let mut entry = zip.by_index(i).expect("entry");
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("read entry");
            (entry.name().expect("entry name").into_owned(), bytes)
        })
        .collect()
}

fn entry<'a>(all: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &all.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no entry {name}")).1
}

/// A CSV file parsed back: headers, and each row as header → decoded value.
fn parse_csv(bytes: &[u8]) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let body = bytes.strip_prefix(export::csv::BOM).expect("UTF-8 BOM");
    let mut reader = csv::ReaderBuilder::new().from_reader(body);
    let headers: Vec<String> = reader.headers().expect("headers").iter().map(str::to_string).collect();
    let rows = reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            assert_eq!(r.len(), headers.len(), "every row has every column");
            headers.iter().cloned().zip(r.iter().map(|c| decode_cell(c).into_owned())).collect()
        })
        .collect();
    (headers, rows)
}

#[test]
fn csv_parses_back_to_exactly_the_values_written() {
    let source = Memory(items());
    let (zip, manifest) = snapshot(Format::Csv, &source, false);
    let all = entries(&zip);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["households.csv", "visit_logs.csv", "cases.csv", "promises.csv", MANIFEST_NAME]);
    assert_eq!(manifest.counts.total(), 5);

    let raw = entry(&all, "households.csv");
    assert!(raw.starts_with(b"\xEF\xBB\xBF\xE8\xAE\xB0\xE5\xBD\x95\xE7\xBC\x96\xE5\x8F\xB7,"), "BOM, then 记录编号");
    let text = std::str::from_utf8(raw).expect("UTF-8");
    assert!(text.split('\n').next().is_some_and(|l| l.ends_with('\r')), "CRLF line ends");
    assert!(text.contains(&format!("\"=\"\"{HEAD_ID}\"\"\"")), "ID numbers are text formulas: {text}");

    let (headers, rows) = parse_csv(raw);
    assert_eq!(headers, export::table::headers(RecordKind::Household));
    assert_eq!(rows.len(), 2);
    for (row, fields) in rows.iter().zip([tricky_household(), odd_household()]) {
        assert_eq!(row["网格"], "xg/xn/sh/dh/g1");
        assert_eq!(row["创建人"], staff().person.to_string());
        assert_eq!(row["创建时间"], "2023-11-15 06:13:20");
        assert_eq!(row["地址"], fields.address);
        assert_eq!(row["户主"], fields.head);
        assert_eq!(row["户主电话"], fields.phone);
        assert_eq!(row["户主身份证号"], fields.id_number);
        assert_eq!(row["标签"], fields.tags.join("；"));
        assert_eq!(row["备注"], fields.notes);
        assert_eq!(row["成员人数"], fields.members.len().to_string());
        let members: Vec<String> = fields.members.iter().map(export::table::member_text).collect();
        assert_eq!(row["家庭成员"], members.join("；"));
    }
    assert_eq!(rows[0]["家庭成员"], format!("周丽（女儿，身份证号 {MEMBER_ID}，电话 {MEMBER_PHONE}）；周小明（外孙）"));

    let (_, visits) = parse_csv(entry(&all, "visit_logs.csv"));
    assert_eq!(visits[0]["走访情况"], "老人说：\"药快吃完了\"\n已转告社区医生");
    assert_eq!(visits[0]["群众诉求"], "路灯坏了，晚上看不见；3-4");
    assert_eq!(visits[0]["发现问题"], "@所有人 楼道有电动车充电");
    assert_eq!(visits[0]["走访类型"], "关爱帮扶");
    assert_eq!((visits[0]["纬度"].as_str(), visits[0]["定位精度（米）"].as_str()), ("30.92", "12.5"));

    let (_, cases) = parse_csv(entry(&all, "cases.csv"));
    assert_eq!(cases[0]["标题"], "楼道堆物, 消防隐患");
    assert_eq!(cases[0]["描述"], "三楼楼道堆放纸箱，\n堵塞“安全出口”");
    assert_eq!(cases[0]["当前状态"], CaseStatus::InProgress.name_zh());
    assert_eq!(cases[0]["是否逾期"], "是", "due a day after creation, still in progress at the snapshot");
    assert_eq!(cases[0]["跟进次数"], "1");
    assert_eq!(cases[0]["最新跟进"], "已联系物业，“明天”清理, 电话13807120011");
    assert_eq!(cases[0]["最新跟进时间"], "2023-11-15 06:14:20");
    assert_eq!(cases[0]["回访满意度"], "基本满意");

    let (_, promises) = parse_csv(entry(&all, "promises.csv"));
    assert_eq!(promises[0]["承诺内容"], "为独居老人安装紧急呼叫器（3台）");
    assert_eq!(promises[0]["践诺情况"], "已践诺");
    assert_eq!(promises[0]["是否逾期"], "否");
    assert_eq!(promises[0]["最新结果说明"], "已安装, 老人满意");
}

#[test]
fn the_manifest_lists_every_other_entry_with_its_size_and_sha256() {
    let source = Memory(items());
    for format in Format::ALL {
        let (zip, returned) = snapshot(format, &source, false);
        let all = entries(&zip);
        let (last, manifest_bytes) = all.last().expect("entries");
        assert_eq!(last, MANIFEST_NAME, "{format}: the manifest comes last");
        let manifest: Manifest = serde_json::from_slice(manifest_bytes).expect("manifest JSON");
        let mut kept = manifest.clone();
        kept.files.retain(|f| !f.name.starts_with("records/"));
        assert_eq!(kept, returned, "{format}: the archive's manifest is the one returned, less per-record entries");
        assert_eq!(manifest.format, format);
        assert_eq!(manifest.as_of, "2027-01-15T16:00:00.000+08:00");
        assert_eq!((manifest.as_of_ms, manifest.as_of_seq), (AS_OF, 42));
        assert_eq!(manifest.generated_by, "admin");
        assert_eq!(manifest.territory.as_str(), "xg/xn");
        assert!(!manifest.masked);
        let counts = &manifest.counts;
        assert_eq!((counts.household, counts.visit_log, counts.case, counts.promise), (2, 1, 1, 1), "{format}");
        let others = &all[..all.len() - 1];
        assert_eq!(manifest.files.len(), others.len(), "{format}");
        for (file, (name, bytes)) in manifest.files.iter().zip(others) {
            assert_eq!(&file.name, name);
            assert_eq!(file.size, bytes.len() as u64, "{name}");
            assert_eq!(file.sha256, hex::encode(Sha256::digest(bytes)), "{name}");
        }
    }
}

#[test]
fn jsonl_lines_deserialize_to_the_same_records() {
    let items = items();
    let (zip, _) = snapshot(Format::Jsonl, &Memory(items.clone()), false);
    let all = entries(&zip);
    let mut read_back = Vec::new();
    for name in ["households.jsonl", "visit_logs.jsonl", "cases.jsonl", "promises.jsonl"] {
        let text = std::str::from_utf8(entry(&all, name)).expect("UTF-8");
        assert!(text.is_empty() || text.ends_with('\n'));
        for line in text.lines() {
            #[derive(serde::Deserialize)]
            struct Line {
                id: gridsync_shared::DocId,
                record: Record,
            }
            let line: Line = serde_json::from_str(line).expect("a JSON object per line");
            read_back.push((line.id, line.record));
        }
    }
    let expected: Vec<_> = items.into_iter().map(|i| (i.id, i.record)).collect();
    assert_eq!(read_back, expected);
}

#[test]
fn bundle_documents_load_and_read_back_to_the_same_records() {
    let items = items();
    let (zip, manifest) = snapshot(Format::Bundle, &Memory(items.clone()), false);
    let all = entries(&zip);
    assert_eq!(all.len(), items.len() + 1);
    for item in &items {
        let bytes = entry(&all, &format!("records/{}.automerge", item.id));
        assert_eq!(bytes, item.automerge.as_slice());
        let doc = Automerge::load(bytes).expect("an Automerge document");
        assert_eq!(read_record(&doc).expect("a record"), item.record);
    }
    assert_eq!(manifest.counts.total(), items.len() as u64);
}

#[test]
fn xlsx_is_a_workbook_with_one_sheet_per_record_type() {
    let (zip, manifest) = snapshot(Format::Xlsx, &Memory(items()), false);
    let all = entries(&zip);
    assert_eq!(manifest.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["snapshot.xlsx"]);
    let book = entries(entry(&all, "snapshot.xlsx"));
    let sheet1 = std::str::from_utf8(entry(&book, "xl/worksheets/sheet1.xml")).expect("UTF-8");
    for n in 2..=4 {
        entry(&book, &format!("xl/worksheets/sheet{n}.xml"));
    }
    let workbook = std::str::from_utf8(entry(&book, "xl/workbook.xml")).expect("UTF-8");
    for name in ["住户", "走访记录", "事件", "承诺事项"] {
        assert!(workbook.contains(&format!("name=\"{name}\"")), "{workbook}");
    }
    assert!(sheet1.contains("户主身份证号"));
    assert!(sheet1.contains(&format!("<t>{HEAD_ID}</t>")), "ID numbers are strings: {sheet1}");
    assert!(!sheet1.contains(&format!("<v>{HEAD_ID}</v>")), "never numbers");
}

fn all_text(format: Format, zip: &[u8]) -> String {
    let mut text = String::new();
    for (name, bytes) in entries(zip) {
        let inner =
            if format == Format::Xlsx && name.ends_with(".xlsx") { entries(&bytes) } else { vec![(name, bytes)] };
        for (_, bytes) in inner {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

#[test]
fn masked_records_hide_id_and_phone_numbers_in_every_format() {
    let masked: Vec<SnapshotItem> = items()
        .into_iter()
        .map(|mut i| {
            mask_record(&mut i.record);
            i
        })
        .collect();
    let source = Memory(masked);
    for format in [Format::Csv, Format::Xlsx, Format::Jsonl] {
        let (zip, manifest) = snapshot(format, &source, true);
        assert!(manifest.masked);
        let text = all_text(format, &zip);
        for secret in [HEAD_ID, HEAD_PHONE, MEMBER_ID, MEMBER_PHONE] {
            assert!(!text.contains(secret), "{format} shows {secret}");
        }
        for shown in ["420902********0021", "138****0011", "420902********004X", "139****5566"] {
            assert!(text.contains(shown), "{format} lacks the masked {shown}");
        }
    }
    let refused = export::write_snapshot(Vec::new(), Format::Bundle, &meta(true), &source, &mut |_| {});
    assert!(
        matches!(refused, Err(ExportError::MaskedBundle)),
        "documents keep their history, so a bundle cannot be masked"
    );
}

#[test]
fn progress_counts_every_record_written() {
    let source = Memory(items());
    for format in Format::ALL {
        let mut seen = Vec::new();
        export::write_snapshot(std::io::sink(), format, &meta(false), &source, &mut |n| seen.push(n))
            .expect("snapshot");
        assert_eq!(seen, (1..=5).collect::<Vec<u64>>(), "{format}");
    }
}

#[test]
fn a_record_of_another_kind_or_a_source_error_stops_the_snapshot() {
    struct Wrong(SnapshotItem);
    impl SnapshotSource for Wrong {
        fn items(&self, _: RecordKind) -> Box<dyn Iterator<Item = Result<SnapshotItem, ExportError>> + '_> {
            Box::new(std::iter::once(Ok(self.0.clone())))
        }
    }
    struct Failing;
    impl SnapshotSource for Failing {
        fn items(&self, _: RecordKind) -> Box<dyn Iterator<Item = Result<SnapshotItem, ExportError>> + '_> {
            Box::new(std::iter::once(Err(ExportError::Source("disk on fire".into()))))
        }
    }
    let case = items().remove(3);
    for format in Format::ALL {
        let wrong = export::write_snapshot(std::io::sink(), format, &meta(false), &Wrong(case.clone()), &mut |_| {});
        assert!(
            matches!(
                wrong,
                Err(ExportError::WrongKind { expected: RecordKind::Household, found: RecordKind::Case, .. })
            ),
            "{format}: {wrong:?}"
        );
        let failed = export::write_snapshot(std::io::sink(), format, &meta(false), &Failing, &mut |_| {});
        assert!(matches!(failed, Err(ExportError::Source(ref m)) if m == "disk on fire"), "{format}: {failed:?}");
    }
}

#[test]
fn an_empty_territory_still_gets_every_file_and_a_manifest() {
    for format in Format::ALL {
        let (zip, manifest) = snapshot(format, &Memory(Vec::new()), false);
        assert_eq!(manifest.counts.total(), 0);
        assert_eq!(entries(&zip).last().map(|(n, _)| n.as_str()), Some(MANIFEST_NAME));
    }
    let (zip, _) = snapshot(Format::Csv, &Memory(Vec::new()), false);
    let (headers, rows) = parse_csv(entry(&entries(&zip), "cases.csv"));
    assert_eq!((headers.len(), rows.len()), (export::table::headers(RecordKind::Case).len(), 0));
}

/// 200,000 generated records, never held together, through every format.
struct Generated {
    count: u64,
    template: SnapshotItem,
}

impl SnapshotSource for Generated {
    fn items(&self, kind: RecordKind) -> Box<dyn Iterator<Item = Result<SnapshotItem, ExportError>> + '_> {
        if kind != RecordKind::Household {
            return Box::new(std::iter::empty());
        }
        Box::new((0..self.count).map(move |n| {
            let mut item = self.template.clone();
            item.id = gridsync_shared::DocId(uuid::Uuid::from_u128(u128::from(n) + 1));
            if let Record::Household(h) = &mut item.record {
                h.fields.address = format!("东湖路{n}号");
                h.fields.notes = format!("第{n}户，走访正常");
            }
            Ok(item)
        }))
    }
}

/// Peak resident memory of this process so far, in KiB (Linux).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Counts bytes on their way to nowhere.
struct CountingSink(u64);

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
#[ignore = "large: run with --release -- --ignored --nocapture --test-threads=1"]
fn two_hundred_thousand_records_stream_through_every_format_in_flat_memory() {
    let template = make(9, NewRecord::Household(tricky_household()), |_| {});
    let warm = Generated { count: 1_000, template: template.clone() };
    let big = Generated { count: 200_000, template };
    for format in Format::ALL {
        export::write_snapshot(std::io::sink(), format, &meta(false), &warm, &mut |_| {}).expect("warm-up");
    }
    for format in Format::ALL {
        let before = peak_rss_kib();
        let started = std::time::Instant::now();
        let mut out = CountingSink(0);
        let manifest = export::write_snapshot(&mut out, format, &meta(false), &big, &mut |_| {}).expect("snapshot");
        let secs = started.elapsed().as_secs_f64();
        let after = peak_rss_kib();
        // The kernel's RSS counters are approximate: a peak may read a little lower later.
        let grew = after.saturating_sub(before);
        assert_eq!(manifest.counts.household, 200_000);
        let unzipped: u64 = manifest.files.iter().map(|f| f.size).sum();
        println!(
            "{format:>6}: 200000 records in {secs:.1} s ({:.0} records/s), {:.1} MiB zipped ({:.1} MiB in listed entries), peak RSS {} -> {} KiB (+{} KiB)",
            200_000.0 / secs,
            out.0 as f64 / 1_048_576.0,
            unzipped as f64 / 1_048_576.0,
            before,
            after,
            grew
        );
        assert!(grew < 32 * 1024, "{format}: memory grew by {grew} KiB");
    }
}

fn supervisor() -> Author {
    Author {
        person: PersonId(uuid::Uuid::from_u128(8)),
        role: Role::Supervisor,
        territory: "xg/xn/sh/dh".parse().expect("community"),
    }
}

/// A source that also knows people's and territories' names.
struct Named(Vec<SnapshotItem>);

impl SnapshotSource for Named {
    fn items(&self, kind: RecordKind) -> Box<dyn Iterator<Item = Result<SnapshotItem, ExportError>> + '_> {
        Box::new(self.0.iter().filter(move |i| i.record.kind() == kind).cloned().map(Ok))
    }

    fn names(&self) -> Result<Names, ExportError> {
        Ok(Names::new(
            [(staff().person, "王网格".to_string()), (supervisor().person, "李主任".to_string())],
            [(grid(), "东湖第一网格".to_string())],
        ))
    }
}

/// A household, and a visit, case and promise naming it (the case followed up
/// and moved by the supervisor, the promise's outcome by the supervisor too),
/// and a visit voided by its author.
fn named_items() -> Vec<SnapshotItem> {
    let household = make(11, NewRecord::Household(tricky_household()), |_| {});
    let h = Some(household.id);
    let visit = VisitFields {
        household: h,
        visited_at: CREATED_AT,
        kind: Some(VisitKind::Routine),
        notes: "例行走访".into(),
        ..VisitFields::default()
    };
    let by_supervisor = |seed: u8, new: NewRecord, edit: &dyn Fn(&mut Editor<'_>)| {
        let author = staff();
        let (id, mut doc) =
            new_record(ActorId::random(), &author, &grid(), CREATED_AT, [seed; 10], &new).expect("create");
        let boss = supervisor();
        edit(&mut Editor::new(&mut doc, &boss, CREATED_AT + 120_000));
        SnapshotItem { id, record: read_record(&doc).expect("read"), automerge: doc.save() }
    };
    vec![
        household,
        make(12, NewRecord::VisitLog(visit.clone()), |_| {}),
        make(13, NewRecord::VisitLog(VisitFields { notes: "重复的走访".into(), ..visit }), |e| {
            e.void_record("重复录入").expect("void");
        }),
        by_supervisor(
            14,
            NewRecord::Case(CaseFields {
                kind: CaseKind::Dispute,
                title: "邻里漏水纠纷".into(),
                description: String::new(),
                household: h,
                visit: None,
                due_at: None,
            }),
            &|e| {
                e.advance_case(CaseStatus::Accepted).expect("accept");
                e.assign_case(staff().person).expect("assign");
                e.add_follow_up("已上门调解", None).expect("follow-up");
            },
        ),
        by_supervisor(
            15,
            NewRecord::Promise(PromiseFields { content: "修好路灯".into(), household: h, due_at: CREATED_AT }),
            &|e| {
                e.record_promise_outcome(true, "已修好").expect("outcome");
            },
        ),
    ]
}

#[test]
fn names_stand_beside_ids_and_voided_records_are_marked_in_csv_and_xlsx() {
    let source = Named(named_items());
    let household = source.0[0].id.to_string();
    let (zip, _) = snapshot(Format::Csv, &source, false);
    let all = entries(&zip);
    let (_, households) = parse_csv(entry(&all, "households.csv"));
    let (_, visits) = parse_csv(entry(&all, "visit_logs.csv"));
    let (_, cases) = parse_csv(entry(&all, "cases.csv"));
    let (_, promises) = parse_csv(entry(&all, "promises.csv"));
    for row in households.iter().chain(&visits).chain(&cases).chain(&promises) {
        assert_eq!((row["网格"].as_str(), row["网格名称"].as_str()), (grid().as_str(), "东湖第一网格"));
        assert_eq!((row["创建人"].clone(), row["创建人姓名"].as_str()), (staff().person.to_string(), "王网格"));
    }
    for row in visits.iter().chain(&cases).chain(&promises) {
        assert_eq!(
            (row.get("走访住户").or(row.get("涉及住户")), row["住户户主"].as_str()),
            (Some(&household), "陈“桂英”")
        );
    }
    assert_eq!(households[0]["作废"], "否");
    let (kept, voided): (Vec<_>, Vec<_>) = visits.iter().partition(|v| v["作废"] == "否");
    assert_eq!((kept.len(), voided.len()), (1, 1), "a voided record stays in the snapshot, marked");
    assert_eq!((voided[0]["作废原因"].as_str(), voided[0]["作废人"].as_str()), ("重复录入", "王网格"));
    assert_eq!(voided[0]["作废时间"], "2023-11-15 06:14:20");
    assert_eq!((kept[0]["作废原因"].as_str(), kept[0]["作废人"].as_str()), ("", ""));
    assert_eq!((cases[0]["最新跟进人"].as_str(), cases[0]["最近状态变更人"].as_str()), ("李主任", "李主任"));
    assert_eq!(promises[0]["最新结果记录人"], "李主任");
    assert_eq!((cases[0]["承办人"].clone(), cases[0]["承办人姓名"].as_str()), (staff().person.to_string(), "王网格"));
    assert_eq!(cases[0]["当前状态"], CaseStatus::Assigned.name_zh());

    // The same in the workbook.
    let (zip, _) = snapshot(Format::Xlsx, &source, false);
    let book = entries(entry(&entries(&zip), "snapshot.xlsx"));
    let visits_sheet = std::str::from_utf8(entry(&book, "xl/worksheets/sheet2.xml")).expect("UTF-8");
    for text in ["网格名称", "东湖第一网格", "创建人姓名", "王网格", "住户户主", "陈“桂英”", "作废原因", "重复录入"]
    {
        assert!(visits_sheet.contains(&format!("<t>{text}</t>")), "{text} in the visit logs sheet");
    }
    let cases_sheet = std::str::from_utf8(entry(&book, "xl/worksheets/sheet3.xml")).expect("UTF-8");
    for text in ["李主任", "最新跟进人", "承办人姓名", "王网格"] {
        assert!(cases_sheet.contains(&format!("<t>{text}</t>")), "{text} in the cases sheet");
    }

    // A person the source does not know: the name column is empty beside the
    // id, and a column that stands alone shows the id.
    let (zip, _) = snapshot(Format::Csv, &Memory(named_items()), false);
    let all = entries(&zip);
    let (_, cases) = parse_csv(entry(&all, "cases.csv"));
    assert_eq!(cases[0]["创建人姓名"], "");
    assert_eq!(cases[0]["最新跟进人"], supervisor().person.to_string());
}

/// A photo's bytes (magic bytes of its type, then filler) and what a record keeps of it.
fn photo_bytes(seed: u8, mime: gridsync_shared::photos::PhotoType) -> Vec<u8> {
    let mut bytes = match mime {
        gridsync_shared::photos::PhotoType::Jpeg => vec![0xFF, 0xD8, 0xFF, 0xE0],
        gridsync_shared::photos::PhotoType::Webp => b"RIFF\0\0\0\0WEBP".to_vec(),
    };
    bytes.extend((0..3_000u32).map(|i| (i as u8).wrapping_mul(seed)));
    bytes
}

fn new_photo(bytes: &[u8], mime: gridsync_shared::photos::PhotoType) -> gridsync_shared::photos::NewPhoto {
    gridsync_shared::photos::NewPhoto {
        sha256: gridsync_shared::photos::PhotoHash::parse(&hex::encode(Sha256::digest(bytes))).expect("hash"),
        size: bytes.len() as u64,
        mime,
        taken_at: CREATED_AT,
        location: None,
        follow_up: None,
    }
}

/// Records with photos, and the photo store a source answers from.
struct WithPhotos {
    items: Vec<SnapshotItem>,
    stored: HashMap<String, (gridsync_shared::photos::PhotoType, Vec<u8>)>,
}

impl SnapshotSource for WithPhotos {
    fn items(&self, kind: RecordKind) -> Box<dyn Iterator<Item = Result<SnapshotItem, ExportError>> + '_> {
        Box::new(self.items.iter().filter(move |i| i.record.kind() == kind).cloned().map(Ok))
    }

    fn photo(
        &self,
        hash: &gridsync_shared::photos::PhotoHash,
    ) -> Result<Option<(gridsync_shared::photos::PhotoType, Vec<u8>)>, ExportError> {
        Ok(self.stored.get(hash.as_str()).cloned())
    }
}

/// Photos a (JPEG) and b (WebP) stored; c referenced, never uploaded; d
/// stored, but its stored bytes are damaged. A visit shows a and c, a case a
/// on itself and b on a follow-up, a voided visit d.
struct PhotoWorld {
    source: WithPhotos,
    a: Vec<u8>,
    b: Vec<u8>,
    names: [String; 4],
}

fn photo_world() -> PhotoWorld {
    use gridsync_shared::photos::PhotoType::{Jpeg, Webp};
    let (a, b, c, d) = (photo_bytes(3, Jpeg), photo_bytes(5, Webp), photo_bytes(7, Jpeg), photo_bytes(9, Jpeg));
    let (pa, pb, pc, pd) = (new_photo(&a, Jpeg), new_photo(&b, Webp), new_photo(&c, Jpeg), new_photo(&d, Jpeg));
    let visit = VisitFields { visited_at: CREATED_AT, notes: "楼道堆物".into(), ..VisitFields::default() };
    let case = CaseFields {
        kind: CaseKind::Hazard,
        title: "消防通道堵塞".into(),
        description: String::new(),
        household: None,
        visit: None,
        due_at: None,
    };
    let items = vec![
        make(21, NewRecord::Household(odd_household()), |_| {}),
        make(22, NewRecord::VisitLog(visit.clone()), |e| {
            e.add_photos(&[pa.clone(), pc.clone()]).expect("photos");
        }),
        make(23, NewRecord::Case(case), |e| {
            e.add_photos(std::slice::from_ref(&pa)).expect("photo");
            e.add_follow_up_with_photos("已清理", None, std::slice::from_ref(&pb)).expect("follow-up photo");
        }),
        make(24, NewRecord::VisitLog(visit), |e| {
            e.add_photos(std::slice::from_ref(&pd)).expect("photo");
            e.void_record("重复录入").expect("void");
        }),
    ];
    let name = |p: &gridsync_shared::photos::NewPhoto| export::table::photo_file_name(&p.sha256, p.mime);
    let mut damaged = d.clone();
    damaged[100] ^= 1;
    let stored = HashMap::from([
        (pa.sha256.to_string(), (Jpeg, a.clone())),
        (pb.sha256.to_string(), (Webp, b.clone())),
        (pd.sha256.to_string(), (Jpeg, damaged)),
    ]);
    PhotoWorld { source: WithPhotos { items, stored }, a, b, names: [name(&pa), name(&pb), name(&pc), name(&pd)] }
}

#[test]
fn rows_name_their_photo_files_and_count_them_in_csv_xlsx_and_jsonl() {
    let w = photo_world();
    let [a, b, c, d] = &w.names;
    assert!(a.starts_with("photos/") && a.ends_with(".jpg") && b.ends_with(".webp"), "{a} {b}");
    let (zip, manifest) = snapshot(Format::Csv, &w.source, false);
    let all = entries(&zip);
    assert!(all.iter().all(|(n, _)| !n.starts_with("photos/")), "without photos, no photo files");
    assert_eq!((manifest.photos, manifest.missing_photos.len()), (None, 0));
    let manifest_text = std::str::from_utf8(entry(&all, MANIFEST_NAME)).expect("UTF-8");
    assert!(!manifest_text.contains("photos"), "the manifest is as before: {manifest_text}");

    let (headers, households) = parse_csv(entry(&all, "households.csv"));
    assert!(!headers.iter().any(|h| h.starts_with("照片")) && households.len() == 1, "households have no photos");
    let (headers, visits) = parse_csv(entry(&all, "visit_logs.csv"));
    let at = |name: &str| headers.iter().position(|h| h == name).expect(name);
    assert_eq!((at("照片") + 1, at("照片数") + 1), (at("照片数"), at("作废")), "before the voided columns");
    assert_eq!((visits[0]["照片"].clone(), visits[0]["照片数"].as_str()), (format!("{a};{c}"), "2"));
    assert_eq!((visits[1]["照片"].as_str(), visits[1]["作废"].as_str()), (d.as_str(), "是"), "voided, still named");
    let (_, cases) = parse_csv(entry(&all, "cases.csv"));
    assert_eq!(cases[0]["照片"], format!("{a};{b}"), "the case's own photo and its follow-up's");
    assert_eq!(cases[0]["照片数"], "2");
    let (_, promises) = parse_csv(entry(&all, "promises.csv"));
    assert!(!promises.first().is_some_and(|p| p.contains_key("照片")));

    let (zip, _) = snapshot(Format::Xlsx, &w.source, false);
    let book = entries(entry(&entries(&zip), "snapshot.xlsx"));
    let cases_sheet = std::str::from_utf8(entry(&book, "xl/worksheets/sheet3.xml")).expect("UTF-8");
    assert!(cases_sheet.contains(&format!("<t>{a};{b}</t>")) && cases_sheet.contains("<t>照片数</t>"));

    let (zip, _) = snapshot(Format::Jsonl, &w.source, false);
    let all = entries(&zip);
    let line: serde_json::Value =
        serde_json::from_slice(entry(&all, "cases.jsonl").split(|b| *b == b'\n').next().expect("line")).expect("JSON");
    assert_eq!(line["photo_files"], serde_json::json!([a, b]));
    let household: serde_json::Value =
        serde_json::from_slice(entry(&all, "households.jsonl").split(|b| *b == b'\n').next().expect("line"))
            .expect("JSON");
    assert!(household.get("photo_files").is_none());
}

#[test]
fn a_snapshot_with_photos_holds_each_referenced_photo_once_and_lists_the_missing_ones_in_every_format() {
    let w = photo_world();
    let [a, b, c, d] = &w.names;
    let mut with_photos = meta(false);
    with_photos.photos = true;
    for format in Format::ALL {
        let mut zip = Vec::new();
        let returned =
            export::write_snapshot(&mut zip, format, &with_photos, &w.source, &mut |_| {}).expect("snapshot");
        let all = entries(&zip);
        let photos: Vec<&(String, Vec<u8>)> = all.iter().filter(|(n, _)| n.starts_with("photos/")).collect();
        let names: Vec<&str> = photos.iter().map(|(n, _)| n.as_str()).collect();
        let mut want = vec![a.as_str(), b.as_str()];
        want.sort();
        assert_eq!(names, want, "{format}: a and b, each once; c not uploaded, d damaged");
        assert_eq!(entry(&all, a), w.a.as_slice(), "{format}: the photo's own bytes");
        assert_eq!(entry(&all, b), w.b.as_slice(), "{format}");
        assert_eq!(all.last().map(|(n, _)| n.as_str()), Some(MANIFEST_NAME), "{format}: the manifest stays last");

        let manifest: Manifest = serde_json::from_slice(entry(&all, MANIFEST_NAME)).expect("manifest");
        for (name, bytes) in &photos {
            let file = manifest.files.iter().find(|f| &f.name == name).expect("listed");
            let hash = name.strip_prefix("photos/").and_then(|n| n.split('.').next()).expect("photos/<sha256>.<ext>");
            assert_eq!((file.size, file.sha256.as_str()), (bytes.len() as u64, hash), "{format}: named by its hash");
            assert_eq!(file.sha256, hex::encode(Sha256::digest(bytes)));
        }
        let counts = manifest.photos.expect("photo counts");
        assert_eq!((counts.referenced, counts.included, counts.missing), (4, 2, 2), "{format}");
        assert_eq!(counts.bytes, (w.a.len() + w.b.len()) as u64);
        let missing: Vec<(&str, export::MissingReason)> =
            manifest.missing_photos.iter().map(|m| (m.name.as_str(), m.reason)).collect();
        let mut want =
            vec![(c.as_str(), export::MissingReason::NotUploaded), (d.as_str(), export::MissingReason::HashMismatch)];
        want.sort_by_key(|(name, _)| *name);
        assert_eq!(missing, want, "{format}");
        let c_entry = manifest.missing_photos.iter().find(|m| &m.name == c).expect("c");
        assert_eq!((c_entry.size, c_entry.referenced_by), (3_004, w.source.items[1].id));
        // The returned manifest keeps the counts but not the per-photo entries.
        assert_eq!((returned.photos, returned.missing_photos.len()), (Some(counts), 2));
        assert!(returned.files.iter().all(|f| !f.name.starts_with("photos/")));
    }
}

/// Incompressible photo-like bytes (JPEG magic, then xorshift noise) for photo `n`.
fn noise_photo(n: u64, len: usize) -> Vec<u8> {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    while bytes.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// `count` visit logs, each with its own photo of `len` bytes, made on demand
/// from a template (the photo's bytes regenerated when asked for).
struct GeneratedPhotos {
    template: SnapshotItem,
    hashes: Vec<gridsync_shared::photos::PhotoHash>,
    index: HashMap<gridsync_shared::photos::PhotoHash, u64>,
    len: usize,
}

impl SnapshotSource for GeneratedPhotos {
    fn items(&self, kind: RecordKind) -> Box<dyn Iterator<Item = Result<SnapshotItem, ExportError>> + '_> {
        if kind != RecordKind::VisitLog {
            return Box::new(std::iter::empty());
        }
        Box::new(self.hashes.iter().map(|hash| {
            let mut item = self.template.clone();
            if let Record::VisitLog(v) = &mut item.record {
                v.photos[0].sha256 = hash.clone();
            }
            Ok(item)
        }))
    }

    fn photo(
        &self,
        hash: &gridsync_shared::photos::PhotoHash,
    ) -> Result<Option<(gridsync_shared::photos::PhotoType, Vec<u8>)>, ExportError> {
        Ok(self.index.get(hash).map(|n| (gridsync_shared::photos::PhotoType::Jpeg, noise_photo(*n, self.len))))
    }
}

#[test]
#[ignore = "large: run with --release -- --ignored --nocapture --test-threads=1"]
fn a_thousand_300_kb_photos_stream_into_the_archive_one_at_a_time_in_flat_memory() {
    const COUNT: u64 = 1_000;
    const LEN: usize = 300 * 1024;
    let hashes: Vec<_> = (0..COUNT)
        .map(|n| gridsync_shared::photos::PhotoHash::parse(&hex::encode(Sha256::digest(noise_photo(n, LEN)))))
        .collect::<Result<_, _>>()
        .expect("hashes");
    let index = hashes.iter().cloned().zip(0..).collect();
    let first = new_photo(&noise_photo(0, LEN), gridsync_shared::photos::PhotoType::Jpeg);
    let visit = VisitFields { visited_at: CREATED_AT, notes: "楼道堆物".into(), ..VisitFields::default() };
    let template = make(31, NewRecord::VisitLog(visit), |e| {
        e.add_photos(&[first]).expect("photo");
    });
    let source = GeneratedPhotos { template, hashes, index, len: LEN };
    let mut with_photos = meta(false);
    with_photos.photos = true;
    export::write_snapshot(std::io::sink(), Format::Csv, &with_photos, &source, &mut |_| {}).expect("warm-up");
    for (label, m) in [("without photos", meta(false)), ("with photos", with_photos)] {
        let before = peak_rss_kib();
        let started = std::time::Instant::now();
        let mut out = CountingSink(0);
        let manifest = export::write_snapshot(&mut out, Format::Csv, &m, &source, &mut |_| {}).expect("snapshot");
        let secs = started.elapsed().as_secs_f64();
        let grew = peak_rss_kib().saturating_sub(before);
        println!(
            "csv {label}: {COUNT} visit logs, {:?} photos, in {secs:.2} s, {:.1} MiB archive, peak RSS +{grew} KiB",
            manifest.photos.map(|p| p.included),
            out.0 as f64 / 1_048_576.0
        );
        if m.photos {
            assert_eq!(manifest.photos.map(|p| p.included), Some(COUNT));
            assert!(out.0 > COUNT * LEN as u64 && out.0 < COUNT * LEN as u64 * 101 / 100, "stored, ~no overhead");
        }
        assert!(grew < 32 * 1024, "{label}: memory grew by {grew} KiB");
    }
}
