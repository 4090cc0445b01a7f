//! Test vectors for people writing another client: sample sync messages as
//! hex with their meaning field by field, and sample record documents, all made
//! from the real types (docs/protocol.md explains them).
//!
//! The committed files in `shared/tests/vectors/` must equal what this test
//! generates, so a change to the protocol or the record schemas fails here until
//! the vectors are regenerated with
//! `GRIDSYNC_WRITE_VECTORS=1 cargo test -p gridsync-shared --test protocol_vectors`.
//! Each message is also encoded a second time by a small reference encoder
//! written from the rules in docs/protocol.md (not by postcard), and the two
//! must agree byte for byte: the documented rules are the real ones.

use automerge::{ActorId, Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use gridsync_shared::protocol::{
    self, DEFAULT_PAGE_BYTES, DocBody, DocPush, DocUpdate, MAGIC, MAX_CHANGE_BYTES, MAX_DECODED_BYTES, MAX_PUSH_DOCS,
    MAX_REQUEST_BYTES, PAGE_BYTES_RANGE, PROTOCOL_VERSION, PUSH_BUDGET_BYTES, PushOutcome, PushResult, SyncRequest,
    SyncResponse,
};
use gridsync_shared::records::{
    CaseFields, CaseKind, Editor, GeoPoint, HouseholdFields, Member, NewRecord, PromiseFields, RecordKind,
    RecordSummary, SCHEMA_VERSION, Satisfaction, VisitFields, VisitKind, new_record, read_record,
};
use gridsync_shared::rules::{RejectReason, Rejection};
use gridsync_shared::workflow::CaseStatus;
use gridsync_shared::{Author, DocId, PersonId, Record, Role, TerritoryPath};
use serde::de::DeserializeOwned;
use serde_json::{Value as Json, json};
use std::path::PathBuf;
use uuid::Uuid;

// ---------------------------------------------------------------------------
// A reference encoder, written from docs/protocol.md, that notes what each
// byte means as it writes it.

/// Bytes written so far, with one note per field.
struct Wire {
    bytes: Vec<u8>,
    fields: Vec<Json>,
}

fn varint_bytes(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(low);
            return out;
        }
        out.push(low | 0x80);
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

impl Wire {
    /// Starts a body with the framing: magic bytes and version.
    fn body() -> Self {
        let mut w = Wire { bytes: Vec::new(), fields: Vec::new() };
        w.raw("magic", &MAGIC, "the ASCII bytes \"GSYN\"");
        w.raw(
            "version",
            &PROTOCOL_VERSION.to_le_bytes(),
            format!("protocol version {PROTOCOL_VERSION}, u16 little-endian"),
        );
        w
    }

    fn raw(&mut self, field: &str, bytes: &[u8], means: impl Into<String>) {
        self.bytes.extend_from_slice(bytes);
        self.fields.push(json!({ "field": field, "hex": hex::encode(bytes), "means": means.into() }));
    }

    fn varint(&mut self, field: &str, v: u64, means: impl Into<String>) {
        self.raw(field, &varint_bytes(v), means);
    }

    fn len(&mut self, field: &str, n: usize, of: &str) {
        self.varint(field, n as u64, format!("{n} {of} follow (length, varint)"));
    }

    fn i64(&mut self, field: &str, v: i64) {
        self.varint(field, zigzag(v), format!("i64 {v} (zigzag, then varint)"));
    }

    fn option(&mut self, field: &str, present: bool) {
        self.raw(
            field,
            &[u8::from(present)],
            if present { "Option: 01 = Some, the value follows" } else { "Option: 00 = None" },
        );
    }

    fn bool(&mut self, field: &str, b: bool) {
        self.raw(field, &[u8::from(b)], format!("bool {b}"));
    }

    fn variant(&mut self, field: &str, index: u32, name: &str) {
        self.varint(field, u64::from(index), format!("enum variant {index} = {name} (varint)"));
    }

    fn bytes(&mut self, field: &str, b: &[u8], what: &str) {
        self.len(&format!("{field}.len"), b.len(), "bytes");
        self.raw(field, b, what);
    }

    fn string(&mut self, field: &str, s: &str) {
        self.len(&format!("{field}.len"), s.len(), "bytes of UTF-8");
        self.raw(field, s.as_bytes(), format!("UTF-8 text {s:?}"));
    }

    fn uuid(&mut self, field: &str, u: &Uuid) {
        let mut b = vec![0x10];
        b.extend_from_slice(u.as_bytes());
        self.raw(field, &b, format!("uuid {u}: length 16 (10), then its 16 bytes"));
    }
}

/// Variant indices, by hand in declaration order: a variant added or moved
/// breaks the build or the byte comparison below.
fn reason_index(r: RejectReason) -> u32 {
    match r {
        RejectReason::WrongActor => 0,
        RejectReason::OutsideTerritory => 1,
        RejectReason::NotPermitted => 2,
        RejectReason::FixedField => 3,
        RejectReason::StatusBackwards => 4,
        RejectReason::HistoryRewritten => 5,
        RejectReason::InvalidRecord => 6,
        RejectReason::MissingDependencies => 7,
        RejectReason::Malformed => 8,
        RejectReason::TooLarge => 9,
    }
}

fn kind_index(k: RecordKind) -> u32 {
    match k {
        RecordKind::Household => 0,
        RecordKind::VisitLog => 1,
        RecordKind::Case => 2,
        RecordKind::Promise => 3,
    }
}

fn encode_request(r: &SyncRequest) -> Wire {
    let SyncRequest { cursor, push, max_response_bytes } = r;
    let mut w = Wire::body();
    w.option("cursor", cursor.is_some());
    if let Some(c) = cursor {
        w.bytes("cursor", c, "the cursor from the last response, as received");
    }
    w.len("push.len", push.len(), "DocPush entries");
    for (i, p) in push.iter().enumerate() {
        let DocPush { doc, changes } = p;
        w.uuid(&format!("push[{i}].doc"), &doc.0);
        w.len(&format!("push[{i}].changes.len"), changes.len(), "changes");
        for (j, c) in changes.iter().enumerate() {
            w.bytes(&format!("push[{i}].changes[{j}]"), c, "one raw Automerge change");
        }
    }
    w.varint("max_response_bytes", u64::from(*max_response_bytes), format!("u32 {max_response_bytes} (varint)"));
    w
}

fn encode_response(r: &SyncResponse) -> Wire {
    let SyncResponse { results, updates, cursor, more } = r;
    let mut w = Wire::body();
    w.len("results.len", results.len(), "PushResult entries");
    for (i, PushResult { doc, outcome }) in results.iter().enumerate() {
        let f = format!("results[{i}]");
        w.uuid(&format!("{f}.doc"), &doc.0);
        match outcome {
            PushOutcome::Accepted => w.variant(&format!("{f}.outcome"), 0, "Accepted"),
            PushOutcome::Duplicate => w.variant(&format!("{f}.outcome"), 1, "Duplicate"),
            PushOutcome::Rejected(Rejection { reason, detail }) => {
                w.variant(&format!("{f}.outcome"), 2, "Rejected (a Rejection follows)");
                w.variant(&format!("{f}.outcome.reason"), reason_index(*reason), &format!("{reason:?}"));
                w.string(&format!("{f}.outcome.detail"), detail);
            }
        }
    }
    w.len("updates.len", updates.len(), "DocUpdate entries");
    for (i, DocUpdate { doc, body, summary }) in updates.iter().enumerate() {
        let f = format!("updates[{i}]");
        w.uuid(&format!("{f}.doc"), &doc.0);
        match body {
            DocBody::Snapshot(bytes) => {
                w.variant(&format!("{f}.body"), 0, "Snapshot (bytes follow)");
                w.bytes(&format!("{f}.body.snapshot"), bytes, "a saved Automerge document");
            }
            DocBody::Changes(changes) => {
                w.variant(&format!("{f}.body"), 1, "Changes (a list of byte strings follows)");
                w.len(&format!("{f}.body.changes.len"), changes.len(), "changes");
                for (j, c) in changes.iter().enumerate() {
                    w.bytes(&format!("{f}.body.changes[{j}]"), c, "one raw Automerge change");
                }
            }
        }
        w.option(&format!("{f}.summary"), summary.is_some());
        if let Some(RecordSummary { kind, household, at }) = summary {
            w.variant(&format!("{f}.summary.kind"), kind_index(*kind), &format!("RecordKind {kind:?}"));
            w.option(&format!("{f}.summary.household"), household.is_some());
            if let Some(h) = household {
                w.uuid(&format!("{f}.summary.household"), &h.0);
            }
            w.i64(&format!("{f}.summary.at"), *at);
        }
    }
    w.bytes("cursor", cursor, "the new cursor: opaque, send it back next time");
    w.bool("more", *more);
    w
}

// ---------------------------------------------------------------------------
// Meanings as plain JSON: uuids as text, byte strings as hex.

fn request_json(r: &SyncRequest) -> Json {
    json!({
        "cursor": r.cursor.as_ref().map(hex::encode),
        "push": r.push.iter().map(|p| json!({
            "doc": p.doc.to_string(),
            "changes": p.changes.iter().map(hex::encode).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "max_response_bytes": r.max_response_bytes,
    })
}

fn response_json(r: &SyncResponse) -> Json {
    json!({
        "results": r.results.iter().map(|p| json!({
            "doc": p.doc.to_string(),
            "outcome": match &p.outcome {
                PushOutcome::Accepted => json!("Accepted"),
                PushOutcome::Duplicate => json!("Duplicate"),
                PushOutcome::Rejected(j) => json!({"Rejected": {"reason": format!("{:?}", j.reason), "detail": j.detail}}),
            },
        })).collect::<Vec<_>>(),
        "updates": r.updates.iter().map(|u| json!({
            "doc": u.doc.to_string(),
            "body": match &u.body {
                DocBody::Snapshot(b) => json!({"Snapshot": hex::encode(b)}),
                DocBody::Changes(c) => json!({"Changes": c.iter().map(hex::encode).collect::<Vec<_>>()}),
            },
            "summary": u.summary.map(|s| json!({
                "kind": format!("{:?}", s.kind),
                "household": s.household.map(|h| h.to_string()),
                "at": s.at,
            })),
        })).collect::<Vec<_>>(),
        "cursor": hex::encode(&r.cursor),
        "more": r.more,
    })
}

// ---------------------------------------------------------------------------
// The sample city, people and records: fixed, so the vectors never change by chance.

const NOW: i64 = 1_767_225_600_000; // 2026-01-01 00:00:00 UTC

fn grid() -> TerritoryPath {
    TerritoryPath::parse("xg/xn/sh/dh/g1").expect("grid")
}

fn staff() -> Author {
    Author { person: PersonId(uuid("0195f3a2-7c41-7d2e-9b1a-3c5d7e9f1a2b")), role: Role::FieldStaff, territory: grid() }
}

fn supervisor() -> Author {
    Author {
        person: PersonId(uuid("0195f3a2-7c41-7d2e-9b1a-3c5d7e9f1a2c")),
        role: Role::Supervisor,
        territory: TerritoryPath::parse("xg/xn/sh/dh").expect("community"),
    }
}

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).expect("uuid")
}

/// The staff phone's Automerge actor, as the server would assign it at sign-in.
fn staff_actor() -> ActorId {
    ActorId::from(hex::decode("5a1f0c3e9b7d4e2a8c6b1d0f3e5a7c9b").expect("hex"))
}

fn supervisor_actor() -> ActorId {
    ActorId::from(hex::decode("7b2e4d6f8a0c1e3f5a7b9c0d2e4f6a8b").expect("hex"))
}

fn household_fields() -> HouseholdFields {
    HouseholdFields {
        address: "东湖路12号3栋401".into(),
        head: "陈桂英".into(),
        phone: "13807120011".into(),
        id_number: "420902194803150021".into(),
        members: vec![Member {
            name: "周丽".into(),
            relation: "女儿".into(),
            phone: "13907120022".into(),
            // A member form fixes its member's id as a record form does (else a new UUID v7 is made).
            id: "019b71b4-4c00-7000-8000-00000000e001".into(),
            tags: vec!["低保".into()],
            ..Member::default()
        }],
        tags: vec!["独居老人".into()],
        notes: "行动不便".into(),
    }
}

fn make(author: &Author, actor: ActorId, at: i64, random: u8, new: &NewRecord) -> (DocId, Automerge) {
    new_record(actor, author, &grid(), at, [random; 10], new).expect("a valid new record")
}

fn household() -> (DocId, Automerge) {
    make(&staff(), staff_actor(), NOW - 86_400_000, 1, &NewRecord::Household(household_fields()))
}

fn visit_log(household: DocId) -> (DocId, Automerge) {
    let fields = VisitFields {
        household: Some(household),
        visited_at: NOW - 3_600_000,
        kind: Some(VisitKind::Routine),
        location: Some(GeoPoint { lat: 30.9245, lon: 113.9168, accuracy_m: Some(12.0) }),
        notes: "老人身体尚可".into(),
        concerns: vec!["楼道灯坏了".into()],
        findings: String::new(),
    };
    make(&staff(), staff_actor(), NOW, 2, &NewRecord::VisitLog(fields))
}

fn case(household: DocId) -> (DocId, Automerge) {
    let fields = CaseFields {
        kind: CaseKind::Hazard,
        title: "楼道灯损坏".into(),
        description: "3栋2单元楼道灯不亮".into(),
        household: Some(household),
        visit: None,
        due_at: Some(NOW + 7 * 86_400_000),
    };
    let (id, mut doc) = make(&staff(), staff_actor(), NOW, 3, &NewRecord::Case(fields));
    let author = supervisor();
    doc.set_actor(supervisor_actor());
    Editor::new(&mut doc, &author, NOW + 60_000).advance_case(CaseStatus::Accepted).expect("accept");
    doc.set_actor(staff_actor());
    let author = staff();
    Editor::new(&mut doc, &author, NOW + 120_000)
        .add_follow_up("已联系物业", Some(Satisfaction::Satisfied))
        .expect("follow");
    (id, doc)
}

fn promise(household: DocId) -> (DocId, Automerge) {
    let fields =
        PromiseFields {
            content: "一周内修好楼道灯".into(), household: Some(household), due_at: NOW + 7 * 86_400_000
        };
    let (id, mut doc) = make(&staff(), staff_actor(), NOW, 4, &NewRecord::Promise(fields));
    let author = staff();
    Editor::new(&mut doc, &author, NOW + 86_400_000).record_promise_outcome(true, "已修好").expect("outcome");
    (id, doc)
}

fn changes_of(doc: &Automerge) -> Vec<Vec<u8>> {
    doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect()
}

// ---------------------------------------------------------------------------
// Documents as typed JSON: every value with its Automerge type.

fn scalar_json(s: &ScalarValue) -> Json {
    match s {
        ScalarValue::Str(v) => json!({ "str": v.to_string() }),
        ScalarValue::Int(v) => json!({ "int": v }),
        ScalarValue::Uint(v) => json!({ "uint": v }),
        ScalarValue::F64(v) => json!({ "f64": v }),
        ScalarValue::Timestamp(v) => json!({ "timestamp": v }),
        ScalarValue::Boolean(v) => json!({ "boolean": v }),
        ScalarValue::Null => json!({ "null": null }),
        ScalarValue::Counter(_) | ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } => {
            panic!("records never hold {s:?}")
        }
    }
}

fn value_json(doc: &Automerge, value: Value<'_>, id: ObjId) -> Json {
    match value {
        Value::Scalar(s) => scalar_json(&s),
        Value::Object(ObjType::Text) => json!({ "text": doc.text(&id).expect("text") }),
        Value::Object(ObjType::List) => json!({ "list": (0..doc.length(&id)).map(|i| {
            let (v, child) = doc.get(&id, i).expect("read").expect("item");
            value_json(doc, v, child)
        }).collect::<Vec<_>>() }),
        Value::Object(ObjType::Map | ObjType::Table) => json!({ "map": map_json(doc, &id) }),
    }
}

fn map_json(doc: &Automerge, obj: &ObjId) -> serde_json::Map<String, Json> {
    doc.keys(obj)
        .map(|k| {
            let (v, child) = doc.get(obj, k.as_str()).expect("read").expect("key");
            (k.clone(), value_json(doc, v, child))
        })
        .collect()
}

/// Entry ids are random v4 uuids; in the vectors they become fixed ones.
fn with_fixed_entry_ids(doc: &Automerge, mut text: String) -> String {
    let record = read_record(doc).expect("record");
    let ids: Vec<Uuid> = match &record {
        Record::Case(c) => c.status_log.iter().map(|e| e.id).chain(c.follow_ups.iter().map(|f| f.id)).collect(),
        Record::Promise(p) => p.outcomes.iter().map(|o| o.id).collect(),
        _ => vec![],
    };
    for (i, id) in ids.iter().enumerate() {
        let fixed = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | (i as u128 + 1));
        text = text.replace(&id.to_string(), &fixed.to_string());
    }
    text
}

fn document_json(doc: &Automerge) -> Json {
    let both = json!({
        "root": map_json(doc, &ROOT),
        "record": serde_json::to_value(read_record(doc).expect("record")).expect("json"),
    });
    let text = with_fixed_entry_ids(doc, both.to_string());
    serde_json::from_str(&text).expect("json")
}

// ---------------------------------------------------------------------------
// The vector files.

/// Every variant of a unit-variant enum with its postcard index, found by decoding.
fn variants<T: DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
    (0u8..=127).map_while(|i| postcard::from_bytes::<T>(&[i]).ok()).map(|v| format!("{v:?}")).collect()
}

fn message(name: &str, about: &str, ty: &str, wire: Wire, real: Vec<u8>, value: Json) -> Json {
    assert_eq!(hex::encode(&wire.bytes), hex::encode(&real), "{name}: the documented rules give the real bytes");
    json!({ "name": name, "about": about, "type": ty, "value": value, "hex": hex::encode(real), "fields": wire.fields })
}

fn primitives() -> Json {
    let mut out = Vec::new();
    let mut add = |ty: &str, value: Json, bytes: Vec<u8>, reference: Vec<u8>| {
        assert_eq!(bytes, reference, "{ty} {value}: documented rule");
        out.push(json!({ "type": ty, "value": value, "hex": hex::encode(bytes) }));
    };
    for v in [0u32, 1, 127, 128, 300, 16_384, DEFAULT_PAGE_BYTES, u32::MAX] {
        add("u32", json!(v), postcard::to_allocvec(&v).expect("enc"), varint_bytes(u64::from(v)));
    }
    for v in [0i64, -1, 1, -64, 64, NOW, i64::MIN, i64::MAX] {
        add("i64", json!(v), postcard::to_allocvec(&v).expect("enc"), varint_bytes(zigzag(v)));
    }
    for v in [false, true] {
        add("bool", json!(v), postcard::to_allocvec(&v).expect("enc"), vec![u8::from(v)]);
    }
    add("Option<u32>", json!(null), postcard::to_allocvec(&None::<u32>).expect("enc"), vec![0]);
    add("Option<u32>", json!(300), postcard::to_allocvec(&Some(300u32)).expect("enc"), vec![1, 0xac, 0x02]);
    let text = "网格";
    add("string", json!(text), postcard::to_allocvec(text).expect("enc"), [&[6u8][..], text.as_bytes()].concat());
    let id = uuid("0195f3a2-7c41-7d2e-9b1a-3c5d7e9f1a2b");
    add(
        "uuid",
        json!(id.to_string()),
        postcard::to_allocvec(&DocId(id)).expect("enc"),
        [&[16u8][..], id.as_bytes()].concat(),
    );
    add(
        "bytes",
        json!("010203"),
        postcard::to_allocvec(&serde_bytes::Bytes::new(&[1, 2, 3])).expect("enc"),
        vec![3, 1, 2, 3],
    );
    Json::Array(out)
}

fn protocol_vectors() -> Json {
    let (household_id, household_doc) = household();
    let (visit_id, visit_doc) = visit_log(household_id);
    let (case_id, _) = case(household_id);
    let (promise_id, _) = promise(household_id);
    let cursor = hex::decode("0e78672f786e2f73682f64682f6731000000000000002a").expect("hex");
    let next_cursor = hex::decode("0e78672f786e2f73682f64682f6731010000000000002b").expect("hex");
    let mut messages = Vec::new();

    let first = SyncRequest { cursor: None, push: vec![], max_response_bytes: DEFAULT_PAGE_BYTES };
    messages.push(message(
        "first_sync",
        "A new phone's first request: no cursor, nothing to push, the default page size.",
        "SyncRequest",
        encode_request(&first),
        protocol::encode(&first),
        request_json(&first),
    ));

    let push = SyncRequest {
        cursor: Some(cursor.clone()),
        push: vec![DocPush { doc: visit_id, changes: changes_of(&visit_doc) }],
        max_response_bytes: DEFAULT_PAGE_BYTES,
    };
    messages.push(message(
        "push_new_visit_log",
        "A phone pushes the visit log of records.json `new_visit_log` (one change), with the cursor it got last time.",
        "SyncRequest",
        encode_request(&push),
        protocol::encode(&push),
        request_json(&push),
    ));

    let accepted = SyncResponse {
        results: vec![PushResult { doc: visit_id, outcome: PushOutcome::Accepted }],
        updates: vec![DocUpdate {
            doc: household_id,
            body: DocBody::Changes(changes_of(&household_doc)),
            summary: Some(read_record(&household_doc).expect("record").summary()),
        }],
        cursor: next_cursor.clone(),
        more: false,
    };
    messages.push(message(
        "accepted_with_an_update",
        "The answer to push_new_visit_log: the visit log is stored; a household another phone made arrives as changes.",
        "SyncResponse",
        encode_response(&accepted),
        protocol::encode(&accepted),
        response_json(&accepted),
    ));

    let mixed = SyncResponse {
        results: vec![
            PushResult { doc: case_id, outcome: PushOutcome::Duplicate },
            PushResult {
                doc: promise_id,
                outcome: PushOutcome::Rejected(Rejection::new(
                    RejectReason::FixedField,
                    "fixed field `grid` cannot change",
                )),
            },
        ],
        updates: vec![DocUpdate { doc: visit_id, body: DocBody::Snapshot(visit_doc.save()), summary: None }],
        cursor: next_cursor,
        more: true,
    };
    messages.push(message(
        "duplicate_rejected_and_a_snapshot_page",
        "A retried push already stored (Duplicate), one refused with its reason, a whole document as a snapshot without a summary, and more pages waiting.",
        "SyncResponse",
        encode_response(&mixed),
        protocol::encode(&mixed),
        response_json(&mixed),
    ));

    json!({
        "about": "gridsync sync protocol test vectors: each message's bytes as hex, what they mean as JSON (uuids as text, byte strings as hex), and the same bytes split field by field. See docs/protocol.md.",
        "regenerate": "GRIDSYNC_WRITE_VECTORS=1 cargo test -p gridsync-shared --test protocol_vectors",
        "protocol_version": PROTOCOL_VERSION,
        "magic_hex": hex::encode(MAGIC),
        "limits": {
            "max_request_bytes": MAX_REQUEST_BYTES,
            "max_decoded_bytes": MAX_DECODED_BYTES,
            "max_push_docs": MAX_PUSH_DOCS,
            "max_change_bytes": MAX_CHANGE_BYTES,
            "push_budget_bytes": PUSH_BUDGET_BYTES,
            "default_page_bytes": DEFAULT_PAGE_BYTES,
            "page_bytes_range": [PAGE_BYTES_RANGE.0, PAGE_BYTES_RANGE.1],
        },
        "enums": {
            "PushOutcome": data_variants(
                vec![
                    PushOutcome::Accepted,
                    PushOutcome::Duplicate,
                    PushOutcome::Rejected(Rejection::new(RejectReason::WrongActor, "")),
                ],
                outcome_name,
            ),
            "RejectReason": variants::<RejectReason>(),
            "DocBody": data_variants(vec![DocBody::Snapshot(vec![]), DocBody::Changes(vec![])], body_name),
            "RecordKind": variants::<RecordKind>(),
        },
        "primitives": primitives(),
        "messages": messages,
    })
}

/// Names of an enum whose variants carry data, in index order, from one probe
/// value per variant (`name` matches exhaustively, so a new variant breaks the build).
fn data_variants<T: serde::Serialize>(probes: Vec<T>, name: fn(&T) -> &'static str) -> Vec<String> {
    let mut indexed: Vec<(u8, &'static str)> =
        probes.iter().map(|p| (postcard::to_allocvec(p).expect("enc")[0], name(p))).collect();
    indexed.sort();
    for (i, (index, n)) in indexed.iter().enumerate() {
        assert_eq!(usize::from(*index), i, "{n}: variants are numbered 0, 1, 2... in declaration order");
    }
    indexed.into_iter().map(|(_, n)| n.to_string()).collect()
}

fn outcome_name(o: &PushOutcome) -> &'static str {
    match o {
        PushOutcome::Accepted => "Accepted",
        PushOutcome::Duplicate => "Duplicate",
        PushOutcome::Rejected(_) => "Rejected",
    }
}

fn body_name(b: &DocBody) -> &'static str {
    match b {
        DocBody::Snapshot(_) => "Snapshot",
        DocBody::Changes(_) => "Changes",
    }
}

fn records_vectors() -> Json {
    let (household_id, household_doc) = household();
    let (visit_id, visit_doc) = visit_log(household_id);
    let (_, case_doc) = case(household_id);
    let (_, promise_doc) = promise(household_id);
    let changes = visit_doc.get_changes(&[]);
    assert_eq!(changes.len(), 1, "a new record is one change");
    let change = &changes[0];
    json!({
        "about": "gridsync record documents: a new visit log's Automerge change as hex, and one document of each kind with every root field's Automerge type (str, int, uint, f64, timestamp, boolean; text, list, map objects) and the record it reads as. Entry ids (random v4 uuids) are replaced by fixed ones. See docs/protocol.md.",
        "regenerate": "GRIDSYNC_WRITE_VECTORS=1 cargo test -p gridsync-shared --test protocol_vectors",
        "schema_version": SCHEMA_VERSION,
        "people": {
            "staff": { "person": staff().person.to_string(), "role": "field_staff", "territory": grid().to_string(), "actor": staff_actor().to_hex_string() },
            "supervisor": { "person": supervisor().person.to_string(), "role": "supervisor", "territory": supervisor().territory.to_string(), "actor": supervisor_actor().to_hex_string() },
        },
        "new_visit_log": {
            "about": "What a phone pushes when a grid manager saves a new visit log: one Automerge change by the device's actor, with no dependencies, creating every field. Load it with any Automerge implementation (e.g. applyChanges / loadIncremental) and it reads as `document`.",
            "doc": visit_id.to_string(),
            "change_hex": hex::encode(change.raw_bytes()),
            "hash": change.hash().to_string(),
            "actor": change.actor_id().to_hex_string(),
            "seq": change.seq(),
            "start_op": change.start_op().get(),
            "time": change.timestamp(),
            "deps": change.deps().iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            "document": document_json(&visit_doc),
        },
        "documents": {
            "household": document_json(&household_doc),
            "visit_log": document_json(&visit_doc),
            "case": document_json(&case_doc),
            "promise": document_json(&promise_doc),
        },
    })
}

// ---------------------------------------------------------------------------
// The tests.

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("vectors")
}

fn check_or_write(name: &str, value: &Json) {
    let path = vectors_dir().join(name);
    let text = serde_json::to_string_pretty(value).expect("json") + "\n";
    if std::env::var_os("GRIDSYNC_WRITE_VECTORS").is_some() {
        std::fs::create_dir_all(vectors_dir()).expect("vectors dir");
        std::fs::write(&path, text).expect("write vectors");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default().replace("\r\n", "\n");
    assert!(
        committed == text,
        "{} differs from what the current types produce; if the protocol or a schema changed on purpose, run \
         `GRIDSYNC_WRITE_VECTORS=1 cargo test -p gridsync-shared --test protocol_vectors` and update docs/protocol.md",
        path.display()
    );
}

#[test]
fn the_committed_protocol_vectors_are_what_the_current_types_encode() {
    check_or_write("protocol.json", &protocol_vectors());
}

#[test]
fn the_committed_record_vectors_are_what_the_current_records_hold() {
    check_or_write("records.json", &records_vectors());
}

#[test]
fn every_committed_message_decodes_and_its_fields_add_up_to_its_bytes() {
    let text = std::fs::read_to_string(vectors_dir().join("protocol.json")).expect("protocol.json");
    let file: Json = serde_json::from_str(&text).expect("json");
    let messages = file["messages"].as_array().expect("messages");
    assert!(messages.len() >= 4);
    for m in messages {
        let bytes = hex::decode(m["hex"].as_str().expect("hex")).expect("hex");
        let joined: String =
            m["fields"].as_array().expect("fields").iter().map(|f| f["hex"].as_str().expect("hex")).collect();
        assert_eq!(joined, m["hex"].as_str().expect("hex"), "{}: the fields cover every byte in order", m["name"]);
        let meaning = match m["type"].as_str() {
            Some("SyncRequest") => request_json(&protocol::decode::<SyncRequest>(&bytes).expect("decodes")),
            Some("SyncResponse") => response_json(&protocol::decode::<SyncResponse>(&bytes).expect("decodes")),
            other => panic!("unknown type {other:?}"),
        };
        assert_eq!(meaning, m["value"], "{}: the bytes mean what the file says", m["name"]);
    }
}

#[test]
fn the_sample_visit_log_change_loads_into_an_empty_document_as_the_record_shown() {
    let text = std::fs::read_to_string(vectors_dir().join("records.json")).expect("records.json");
    let file: Json = serde_json::from_str(&text).expect("json");
    let sample = &file["new_visit_log"];
    let bytes = hex::decode(sample["change_hex"].as_str().expect("hex")).expect("hex");
    let change = automerge::Change::from_bytes(bytes).expect("an Automerge change");
    assert_eq!(change.actor_id().to_hex_string(), sample["actor"].as_str().expect("actor"));
    let mut doc = Automerge::new();
    doc.apply_changes([change]).expect("applies");
    let record = read_record(&doc).expect("a valid record");
    assert_eq!(serde_json::to_value(&record).expect("json"), sample["document"]["record"]);
    assert_eq!(Json::Object(map_json(&doc, &ROOT)), sample["document"]["root"]);
    let Record::VisitLog(v) = record else { panic!("a visit log") };
    assert_eq!(v.meta.creator, staff().person);
}

// ---------------------------------------------------------------------------
// Documents of the earlier schema (`vectors/earlier/records.json`, the record
// vectors as committed before voids, conflicts, keyed members and assignees):
// they must still read, as the same record plus the newer, empty parts.

/// Writes a typed-JSON value (as `value_json` describes it) into `obj` at `prop`.
fn write_json(tx: &mut automerge::transaction::Transaction<'_>, obj: &ObjId, prop: automerge::Prop, v: &Json) {
    use automerge::transaction::Transactable;
    let (ty, inner) = v.as_object().and_then(|o| o.iter().next()).expect("typed value");
    let put_scalar = |tx: &mut automerge::transaction::Transaction<'_>, s: ScalarValue| match &prop {
        automerge::Prop::Map(k) => tx.put(obj, k.as_str(), s),
        automerge::Prop::Seq(i) => tx.insert(obj, *i, s),
    };
    let put_object = |tx: &mut automerge::transaction::Transaction<'_>, t: ObjType| match &prop {
        automerge::Prop::Map(k) => tx.put_object(obj, k.as_str(), t),
        automerge::Prop::Seq(i) => tx.insert_object(obj, *i, t),
    };
    match ty.as_str() {
        "str" => put_scalar(tx, ScalarValue::Str(inner.as_str().expect("str").into())).expect("put"),
        "int" => put_scalar(tx, ScalarValue::Int(inner.as_i64().expect("int"))).expect("put"),
        "uint" => put_scalar(tx, ScalarValue::Uint(inner.as_u64().expect("uint"))).expect("put"),
        "f64" => put_scalar(tx, ScalarValue::F64(inner.as_f64().expect("f64"))).expect("put"),
        "timestamp" => put_scalar(tx, ScalarValue::Timestamp(inner.as_i64().expect("ts"))).expect("put"),
        "boolean" => put_scalar(tx, ScalarValue::Boolean(inner.as_bool().expect("bool"))).expect("put"),
        "text" => {
            let id = put_object(tx, ObjType::Text).expect("text");
            tx.splice_text(&id, 0, 0, inner.as_str().expect("text")).expect("splice");
        }
        "list" => {
            let id = put_object(tx, ObjType::List).expect("list");
            for (i, item) in inner.as_array().expect("list").iter().enumerate() {
                write_json(tx, &id, automerge::Prop::Seq(i), item);
            }
        }
        "map" => {
            let id = put_object(tx, ObjType::Map).expect("map");
            for (k, item) in inner.as_object().expect("map") {
                write_json(tx, &id, automerge::Prop::Map(k.clone()), item);
            }
        }
        other => panic!("unknown type {other}"),
    }
}

/// Whether every key and item of `old` is in `new` with the same value.
fn holds_all_of(new: &Json, old: &Json) -> bool {
    match (new, old) {
        (Json::Object(n), Json::Object(o)) => o.iter().all(|(k, v)| n.get(k).is_some_and(|nv| holds_all_of(nv, v))),
        (Json::Array(n), Json::Array(o)) => n.len() == o.len() && n.iter().zip(o).all(|(a, b)| holds_all_of(a, b)),
        (n, o) => n == o,
    }
}

#[test]
fn documents_of_the_earlier_schema_still_read_as_the_records_they_were() {
    let text = std::fs::read_to_string(vectors_dir().join("earlier").join("records.json")).expect("earlier vectors");
    let file: Json = serde_json::from_str(&text).expect("json");
    for (kind, sample) in file["documents"].as_object().expect("documents") {
        let mut doc = Automerge::new();
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            for (k, v) in sample["root"].as_object().expect("root") {
                write_json(tx, &ROOT, automerge::Prop::Map(k.clone()), v);
            }
            Ok(())
        })
        .expect("build");
        let record = read_record(&doc).unwrap_or_else(|e| panic!("the earlier {kind} no longer reads: {e}"));
        assert!(record.voided().is_none());
        let now = serde_json::to_value(&record).expect("json");
        assert!(
            holds_all_of(&now, &sample["record"]),
            "{kind} reads differently now:\n{now}\nwas\n{}",
            sample["record"]
        );
    }
    // And the earlier sample change itself.
    let sample = &file["new_visit_log"];
    let change = automerge::Change::from_bytes(hex::decode(sample["change_hex"].as_str().expect("hex")).expect("hex"))
        .expect("change");
    let mut doc = Automerge::new();
    doc.apply_changes([change]).expect("applies");
    let now = serde_json::to_value(read_record(&doc).expect("reads")).expect("json");
    assert!(holds_all_of(&now, &sample["document"]["record"]));
}
