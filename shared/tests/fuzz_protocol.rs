//! Hostile input against the sync protocol's decoder: arbitrary bytes, and
//! valid encodings mutated (bit flips, truncations, extensions, insertions,
//! length prefixes made huge) never panic and never allocate much more than
//! their own size. `PROPTEST_CASES` scales every property here.

use gridsync_shared::DocId;
use gridsync_shared::protocol::{
    self, DocBody, DocPush, DocUpdate, MAGIC, PROTOCOL_VERSION, PushOutcome, PushResult, SyncRequest, SyncResponse,
};
use gridsync_shared::records::{RecordKind, RecordSummary};
use gridsync_shared::rules::{RejectReason, Rejection};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Counts the bytes allocated by the current thread while tracking is on, so
/// that each decode's peak allocation is measured without other tests' noise.
struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static CURRENT: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(by: usize) {
    let _ = TRACKING.try_with(|on| {
        if on.get() {
            let now = CURRENT.with(|c| {
                c.set(c.get() + by);
                c.get()
            });
            PEAK.with(|p| p.set(p.get().max(now)));
        }
    });
}

fn shrank(by: usize) {
    let _ = TRACKING.try_with(|on| {
        if on.get() {
            CURRENT.with(|c| c.set(c.get().saturating_sub(by)));
        }
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same layout as the caller gave.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        // SAFETY: the pointer came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same layout as the caller gave.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size);
        shrank(layout.size());
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the most bytes this thread held at once meanwhile.
fn peak_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    CURRENT.with(|c| c.set(0));
    PEAK.with(|p| p.set(0));
    TRACKING.with(|t| t.set(true));
    let out = f();
    TRACKING.with(|t| t.set(false));
    (out, PEAK.with(Cell::get))
}

/// What decoding `len` bytes may allocate at most: the decoded values (a byte
/// string costs its 24-byte `Vec` for each byte of input at worst) plus a few MiB.
fn allocation_bound(len: usize) -> usize {
    4 * 1024 * 1024 + 64 * len
}

/// Cases per property: `PROPTEST_CASES` if set, else the CI size given.
fn config(ci_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(ci_cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Every value of a unit-variant enum, found by decoding each postcard variant
/// index in turn, so a variant added later is fuzzed without editing this file.
fn every_variant<T: DeserializeOwned>() -> Vec<T> {
    (0u8..=127).map_while(|i| postcard::from_bytes::<T>(&[i]).ok()).collect()
}

/// Decodes `bytes` as both messages, checking the properties every input must keep.
/// Returns whether each decoded.
fn decode_both(bytes: &[u8]) -> (bool, bool) {
    fn one<T: DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug>(bytes: &[u8]) -> bool {
        let (decoded, peak) = peak_allocation(|| protocol::decode::<T>(bytes));
        assert!(
            peak <= allocation_bound(bytes.len()),
            "decoding {} bytes allocated {peak} bytes: {}",
            bytes.len(),
            hex::encode(bytes)
        );
        match decoded {
            Ok(value) => {
                let again = protocol::encode(&value);
                assert_eq!(
                    protocol::decode::<T>(&again).as_ref(),
                    Ok(&value),
                    "a decoded message re-encodes to itself"
                );
                true
            }
            Err(_) => false,
        }
    }
    (one::<SyncRequest>(bytes), one::<SyncResponse>(bytes))
}

fn doc_id() -> impl Strategy<Value = DocId> {
    any::<u128>().prop_map(|n| DocId(uuid::Uuid::from_u128(n)))
}

fn byte_strings(max: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 0..max)
}

fn request() -> impl Strategy<Value = SyncRequest> {
    (
        prop::option::of(prop::collection::vec(any::<u8>(), 0..24)),
        prop::collection::vec((doc_id(), byte_strings(4)).prop_map(|(doc, changes)| DocPush { doc, changes }), 0..4),
        any::<u32>(),
    )
        .prop_map(|(cursor, push, max_response_bytes)| SyncRequest { cursor, push, max_response_bytes })
}

fn outcome() -> impl Strategy<Value = PushOutcome> {
    let reasons = every_variant::<RejectReason>();
    prop_oneof![
        Just(PushOutcome::Accepted),
        Just(PushOutcome::Duplicate),
        (prop::sample::select(reasons), ".{0,12}")
            .prop_map(|(reason, detail)| PushOutcome::Rejected(Rejection { reason, detail })),
    ]
}

fn update() -> impl Strategy<Value = DocUpdate> {
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64).prop_map(DocBody::Snapshot),
        byte_strings(4).prop_map(DocBody::Changes),
    ];
    let summary = prop::option::of(
        (prop::sample::select(RecordKind::ALL.to_vec()), prop::option::of(doc_id()), any::<i64>())
            .prop_map(|(kind, household, at)| RecordSummary { kind, household, at }),
    );
    (doc_id(), body, summary).prop_map(|(doc, body, summary)| DocUpdate { doc, body, summary })
}

fn response() -> impl Strategy<Value = SyncResponse> {
    (
        prop::collection::vec((doc_id(), outcome()).prop_map(|(doc, outcome)| PushResult { doc, outcome }), 0..4),
        prop::collection::vec(update(), 0..4),
        prop::collection::vec(any::<u8>(), 0..24),
        any::<bool>(),
    )
        .prop_map(|(results, updates, cursor, more)| SyncResponse { results, updates, cursor, more })
}

/// A valid encoding of either message.
fn valid_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![request().prop_map(|r| protocol::encode(&r)), response().prop_map(|r| protocol::encode(&r))]
}

/// One way of damaging a body; positions are taken modulo its length.
#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(usize, u8),
    SetByte(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    /// Overwrites one byte with a varint of an enormous value (a length prefix
    /// claiming gigabytes, an enum index far out of range).
    HugeVarint(usize, u64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let huge = prop::sample::select(vec![
        u64::from(u32::MAX),
        u64::from(u32::MAX) + 1,
        1 << 28,
        1 << 35,
        u64::MAX,
        u64::MAX >> 1,
        0x7f,
        0x80,
    ]);
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::SetByte(i, v)),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => (any::<usize>(), 1usize..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        3 => (any::<usize>(), huge).prop_map(|(i, v)| Mutation::HugeVarint(i, v)),
    ]
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        let at = |i: usize| i % bytes.len();
        match m {
            Mutation::FlipBit(i, b) => {
                let i = at(*i);
                bytes[i] ^= 1 << b;
            }
            Mutation::SetByte(i, v) => {
                let i = at(*i);
                bytes[i] = *v;
            }
            Mutation::Insert(i, v) => {
                let i = at(*i);
                bytes.splice(i..i, v.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let i = at(*i);
                let end = (i + n).min(bytes.len());
                bytes.drain(i..end);
            }
            Mutation::HugeVarint(i, v) => {
                let i = at(*i);
                bytes.splice(i..=i, varint(*v));
            }
        }
    }
    bytes
}

/// The framing header, so random bytes reach the postcard decoder.
fn header() -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    h
}

proptest! {
    #![proptest_config(config(10_000))]

    #[test]
    fn arbitrary_bytes_never_panic_and_allocate_little(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_both(&bytes);
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_header_never_panic_and_allocate_little(
        bytes in prop::collection::vec(any::<u8>(), 0..256)
    ) {
        let mut body = header();
        body.extend_from_slice(&bytes);
        decode_both(&body);
    }

    #[test]
    fn valid_messages_round_trip_exactly(req in request(), resp in response()) {
        let bytes = protocol::encode(&req);
        prop_assert_eq!(protocol::decode::<SyncRequest>(&bytes), Ok(req));
        let bytes = protocol::encode(&resp);
        prop_assert_eq!(protocol::decode::<SyncResponse>(&bytes), Ok(resp));
    }

    #[test]
    fn mutated_valid_messages_never_panic_and_allocate_little(
        body in valid_body(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        decode_both(&mutate(body, &mutations));
    }

    #[test]
    fn every_truncation_and_every_extension_of_a_valid_message_is_refused(
        req in request(),
        resp in response(),
        cut in any::<usize>(),
        extra in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        fn refused<T: DeserializeOwned + std::fmt::Debug>(body: &[u8], cut: usize, extra: &[u8]) {
            let cut = cut % body.len();
            assert!(protocol::decode::<T>(&body[..cut]).is_err(), "a strict prefix never decodes");
            let longer = [body, extra].concat();
            assert!(
                matches!(protocol::decode::<T>(&longer), Err(protocol::ProtocolError::TrailingBytes(n)) if n == extra.len()),
                "trailing bytes are refused and counted"
            );
        }
        refused::<SyncRequest>(&protocol::encode(&req), cut, &extra);
        refused::<SyncResponse>(&protocol::encode(&resp), cut, &extra);
    }
}

/// Small bodies whose one length prefix claims about 4 GB (or more), at every
/// place a length can stand in either message.
fn huge_claims() -> Vec<(&'static str, Vec<u8>)> {
    let four_gb = varint(u64::from(u32::MAX));
    let beyond = varint(u64::MAX);
    let uuid = {
        let mut u = vec![0x10];
        u.extend_from_slice(&[7; 16]);
        u
    };
    let with = |parts: &[&[u8]]| -> Vec<u8> {
        let mut b = header();
        for p in parts {
            b.extend_from_slice(p);
        }
        b.resize(b.len().max(20), 0);
        b
    };
    vec![
        ("request: cursor of 4 GB", with(&[&[1], &four_gb])),
        ("request: 4 G documents pushed", with(&[&[0], &four_gb])),
        ("request: 2^64 documents pushed", with(&[&[0], &beyond])),
        ("request: uuid of 4 GB", with(&[&[0, 1], &four_gb])),
        ("request: 4 G changes in one push", with(&[&[0, 1], &uuid, &four_gb])),
        ("request: one change of 4 GB", with(&[&[0, 1], &uuid, &[1], &four_gb])),
        ("response: 4 G results", with(&[&four_gb])),
        ("response: rejection detail of 4 GB", with(&[&[1], &uuid, &[2, 0], &four_gb])),
        ("response: 4 G updates", with(&[&[0], &four_gb])),
        ("response: snapshot of 4 GB", with(&[&[0, 1], &uuid, &[0], &four_gb])),
        ("response: 4 G changes in an update", with(&[&[0, 1], &uuid, &[1], &four_gb])),
        ("response: cursor of 4 GB", with(&[&[0, 0], &four_gb])),
    ]
}

#[test]
fn a_20_byte_body_claiming_a_4_gb_vec_returns_error_not_panic_and_fast() {
    for (what, body) in huge_claims() {
        assert!(body.len() <= 32, "{what}: {} bytes", body.len());
        let started = Instant::now();
        let (request, request_peak) = peak_allocation(|| protocol::decode::<SyncRequest>(&body));
        let (response, response_peak) = peak_allocation(|| protocol::decode::<SyncResponse>(&body));
        let elapsed = started.elapsed();
        if what.starts_with("request") {
            assert!(request.is_err(), "{what}: refused");
        } else {
            assert!(response.is_err(), "{what}: refused");
        }
        // A generous sanity bound: the real figure is microseconds.
        assert!(elapsed < Duration::from_secs(1), "{what}: took {elapsed:?}");
        assert!(request_peak.max(response_peak) < 64 * 1024, "{what}: allocated {request_peak}/{response_peak} bytes");
    }
}

#[test]
fn the_allocation_counter_sees_allocations() {
    let (v, peak) = peak_allocation(|| vec![0u8; 100_000]);
    assert_eq!(v.len(), 100_000);
    assert!(peak >= 100_000, "{peak}");
}
