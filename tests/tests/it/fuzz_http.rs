//! Hostile requests against every HTTP route of a real server on loopback, and
//! hostile lines against the admin socket: random methods, paths, headers
//! (lying lengths, garbage encodings, huge and duplicate headers, bad tokens)
//! and bodies (random bytes, mutated sync bodies, gzip bombs, broken JSON).
//! Never a 5xx but a deliberate 503 `busy`, the server answers `/healthz`
//! after every one, and a refused request stores nothing.
//! `PROPTEST_CASES` scales both properties.

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use gridsync_server::store::{SledStore, Store};
use gridsync_shared::protocol::{self, PushOutcome, SyncResponse};
use gridsync_shared::records::{CaseFields, CaseKind, NewRecord};
use gridsync_shared::{Role, TerritoryPath};
use gridsync_tests::TestServer;
use gridsync_tests::server::PASSWORD;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Cases per property: `PROPTEST_CASES` if set, else the CI size given.
fn config(ci_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(ci_cases);
    ProptestConfig { cases, failure_persistence: None, max_shrink_iters: 200, ..ProptestConfig::default() }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// The world the requests are aimed at.

/// What the generated requests refer to: tokens, ids and valid bodies.
struct World {
    addr: String,
    staff_token: String,
    admin_token: String,
    victim_username: String,
    victim_person: String,
    victim_device: String,
    /// Real sync requests of the staff phone (with records to push).
    sync_bodies: Vec<Vec<u8>>,
    /// Gzip of 40 MiB of zeros (about 40 KB).
    bomb: Vec<u8>,
}

/// Everything the store holds that a refused request must leave alone.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint {
    head_seq: u64,
    docs: usize,
    people: String,
    devices: String,
}

fn fingerprint(store: &dyn Store) -> Fingerprint {
    let city: TerritoryPath = "tc".parse().expect("path");
    let people = store.people().expect("people");
    let disabled: Vec<_> = people.iter().map(|p| store.person_disabled_at(p.id).expect("disabled")).collect();
    Fingerprint {
        head_seq: store.head_seq().expect("seq"),
        docs: store.docs_in_scope(&city, None, usize::MAX).expect("docs").len(),
        people: format!("{people:?} {disabled:?}"),
        devices: format!("{:?}", store.devices().expect("devices")),
    }
}

async fn world(server: &TestServer) -> World {
    let grid = server.grid("g1");
    let mut staff = server.phone_in(&grid).await;
    let admin = server.person(Role::Administrator, &"tc".parse().expect("city"));
    let admin = server.phone_for(&admin).await;
    let victim_username = server.person(Role::FieldStaff, &server.grid("g2"));
    let victim = server.phone_for(&victim_username).await;
    let person = server.store().person_by_username(&victim_username).expect("store").expect("victim");
    let device =
        server.store().devices().expect("devices").into_iter().find(|d| d.person == person.id).expect("device");
    // A synced record, then bodies that push more (valid requests to mutate).
    staff.record_visit("已同步的走访");
    staff.sync().await.expect("sync");
    let mut sync_bodies = vec![staff.replica.build_request()];
    staff.record_visit("待同步的走访记录");
    let case = CaseFields {
        kind: CaseKind::Hazard,
        title: "楼道灯损坏".into(),
        description: "3栋楼道灯不亮".into(),
        household: None,
        visit: None,
        due_at: None,
    };
    staff.create(&NewRecord::Case(case)).expect("case");
    sync_bodies.push(staff.replica.build_request());
    drop(victim);
    World {
        addr: server.addr().to_string(),
        staff_token: staff.token().to_string(),
        admin_token: admin.token().to_string(),
        victim_username,
        victim_person: person.id.to_string(),
        victim_device: device.id.to_string(),
        sync_bodies,
        bomb: gzip(&vec![0u8; 40 * 1024 * 1024]),
    }
}

// ---------------------------------------------------------------------------
// Requests as data.

#[derive(Clone, Debug)]
enum Auth {
    /// The token the route is meant for (none for open routes).
    Proper,
    None,
    Staff,
    Admin,
    Garbage(String),
    Basic,
    EmptyBearer,
    Huge,
    /// The staff token with its last character changed.
    Forged,
}

#[derive(Clone, Debug)]
enum Length {
    Correct,
    Absent,
    /// Declares fewer bytes than are sent.
    Smaller(usize),
    /// Declares more bytes than are sent (the rest never comes).
    Larger(u64),
    NotANumber,
    Negative,
    /// Two different Content-Length headers.
    Twice,
    /// Transfer-Encoding: chunked, well formed.
    Chunked,
    /// Transfer-Encoding: chunked, with a broken chunk.
    BadChunked,
}

#[derive(Clone, Debug)]
enum Extra {
    ContentEncoding(&'static str),
    AcceptEncoding(&'static str),
    ContentType(&'static str),
    Expect,
    /// One header with a value of this many bytes.
    Huge(usize),
    /// This many copies of one header.
    Many(usize),
    NonAscii,
}

/// Small damage to a byte string; positions are modulo its length.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    /// A varint claiming about 4 G (a length prefix, an enum index).
    Huge(usize),
}

#[derive(Clone, Debug)]
enum Body {
    Empty,
    Random(Vec<u8>),
    Sync(usize, Vec<Mutation>),
    GzipSync(usize, Vec<Mutation>),
    GzipBomb,
    NotGzip,
    SignIn(Vec<Mutation>, bool),
    Password(Vec<Mutation>),
    Json(String),
    Large(usize),
}

#[derive(Clone, Debug)]
struct Request {
    /// A method other than the route's own.
    method: Option<&'static str>,
    path: usize,
    query: Option<String>,
    version: &'static str,
    auth: Auth,
    length: Length,
    extras: Vec<Extra>,
    body: Body,
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "BREW", "get"];

/// Which token a route is meant for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anyone,
    Staff,
    Admin,
}

/// Every route (several times where it matters), with its method and whose token it wants.
fn paths(w: &World) -> Vec<(String, &'static str, Who)> {
    use Who::{Admin, Anyone, Staff};
    let random = uuid::Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0001);
    vec![
        ("/healthz".into(), "GET", Anyone),
        ("/v1/sync".into(), "POST", Staff),
        ("/v1/sync".into(), "POST", Staff),
        ("/v1/sync".into(), "POST", Staff),
        ("/v1/sync".into(), "POST", Staff),
        ("/v1/auth/sign-in".into(), "POST", Anyone),
        ("/v1/auth/sign-in".into(), "POST", Anyone),
        ("/v1/auth/password".into(), "POST", Staff),
        ("/v1/me".into(), "GET", Staff),
        (format!("/v1/admin/devices/{}/revoke", w.victim_device), "POST", Admin),
        (format!("/v1/admin/devices/{random}/revoke"), "POST", Admin),
        ("/v1/admin/devices/not-an-id/revoke".into(), "POST", Admin),
        ("/v1/admin/report".into(), "GET", Admin),
        ("/v1/admin/snapshot".into(), "GET", Admin),
        ("/v1/admin/audit".into(), "GET", Admin),
        ("/v1/admin/people".into(), "GET", Admin),
        (format!("/v1/admin/people/{}/disable", w.victim_person), "POST", Admin),
        (format!("/v1/admin/people/{}/enable", w.victim_person), "POST", Admin),
        (format!("/v1/admin/people/{}/reset-password", w.victim_person), "POST", Admin),
        (format!("/v1/admin/people/{random}/disable"), "POST", Admin),
        (format!("/v1/admin/people/{}/frobnicate", w.victim_person), "POST", Admin),
        ("/".into(), "GET", Anyone),
        ("/index.html".into(), "GET", Anyone),
        ("/sw.js".into(), "GET", Anyone),
        ("/../../../../etc/passwd".into(), "GET", Anyone),
        ("/%2e%2e/%2e%2e/etc/passwd".into(), "GET", Anyone),
        ("/%ff%fe".into(), "GET", Anyone),
        ("/v1".into(), "GET", Staff),
        ("/v1/sync/extra".into(), "POST", Staff),
        ("//v1//sync".into(), "POST", Staff),
        (format!("/{}", "a".repeat(5000)), "GET", Anyone),
        ("*".into(), "OPTIONS", Anyone),
        ("http://127.0.0.1/healthz".into(), "GET", Anyone),
    ]
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        12 => Just(Auth::Proper),
        2 => Just(Auth::Staff),
        2 => Just(Auth::Admin),
        2 => Just(Auth::None),
        1 => "[ -~]{0,40}".prop_map(Auth::Garbage),
        1 => Just(Auth::Basic),
        1 => Just(Auth::EmptyBearer),
        1 => Just(Auth::Huge),
        1 => Just(Auth::Forged),
    ]
}

fn length() -> impl Strategy<Value = Length> {
    prop_oneof![
        8 => Just(Length::Correct),
        1 => Just(Length::Absent),
        1 => (1usize..64).prop_map(Length::Smaller),
        1 => prop_oneof![Just(1u64), Just(1000), Just(8 * 1024 * 1024), Just(u64::MAX / 2)].prop_map(Length::Larger),
        1 => Just(Length::NotANumber),
        1 => Just(Length::Negative),
        1 => Just(Length::Twice),
        1 => Just(Length::Chunked),
        1 => Just(Length::BadChunked),
    ]
}

fn extra() -> impl Strategy<Value = Extra> {
    prop_oneof![
        3 => prop::sample::select(vec!["gzip", "identity", "br", "deflate", "gzip, gzip", "GZIP", "", "x\u{7f}"])
            .prop_map(Extra::ContentEncoding),
        2 => prop::sample::select(vec!["gzip", "br", "*", "gzip;q=0", ""]).prop_map(Extra::AcceptEncoding),
        1 => prop::sample::select(vec!["application/json", "text/plain", "multipart/form-data; boundary=x", ";;;"])
            .prop_map(Extra::ContentType),
        1 => Just(Extra::Expect),
        1 => prop_oneof![Just(1024usize), Just(16 * 1024), Just(200 * 1024)].prop_map(Extra::Huge),
        1 => prop_oneof![Just(2usize), Just(50), Just(300)].prop_map(Extra::Many),
        1 => Just(Extra::NonAscii),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..6)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        2 => any::<usize>().prop_map(Mutation::Huge),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop_oneof![1 => Just(vec![]), 3 => prop::collection::vec(mutation(), 1..4)]
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        1 => Just(Body::Empty),
        2 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Body::Random),
        6 => (any::<usize>(), mutations()).prop_map(|(i, m)| Body::Sync(i, m)),
        3 => (any::<usize>(), mutations()).prop_map(|(i, m)| Body::GzipSync(i, m)),
        1 => Just(Body::GzipBomb),
        1 => Just(Body::NotGzip),
        3 => (mutations(), prop::bool::weighted(0.2)).prop_map(|(m, right)| Body::SignIn(m, right)),
        1 => mutations().prop_map(Body::Password),
        2 => prop::sample::select(vec![
            "{", "[]", "null", "{\"username\": 3}", "{\"username\":\"a\",\"password\":\"b\",\"device_name\":\"c\",\"extra\":1}",
            "{\"username\":\"\\ud800\",\"password\":\"\",\"device_name\":\"\"}", "\u{feff}{}", "{\"a\":{\"a\":{\"a\":{\"a\":[[[[[[[[[[]]]]]]]]]]}}}}",
        ])
        .prop_map(|s| Body::Json(s.to_string())),
        1 => prop_oneof![Just(64 * 1024usize), Just(1024 * 1024), Just(9 * 1024 * 1024)].prop_map(Body::Large),
    ]
}

fn query() -> impl Strategy<Value = Option<String>> {
    let pairs = prop::collection::vec(
        prop::sample::select(vec![
            "format=csv",
            "format=xlsx",
            "format=jsonl",
            "format=bundle",
            "format=zip",
            "territory=tc",
            "territory=tc/d1",
            "territory=xx",
            "territory=",
            "as_of=0",
            "as_of=-1",
            "as_of=99999999999999999999",
            "unmask=true",
            "unmask=maybe",
            "reason=%E6%A3%80%E6%9F%A5",
            "from=0",
            "to=9999999999999",
            "from=abc",
            "after=0",
            "after=-5",
            "x=1",
            "%ff=%fe",
            "format",
            "&&&",
            "reason=",
        ]),
        0..5,
    );
    prop::option::weighted(0.5, pairs.prop_map(|p| p.join("&")))
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop::option::weighted(0.15, prop::sample::select(METHODS.to_vec())),
        any::<usize>(),
        query(),
        prop_oneof![20 => Just("HTTP/1.1"), 2 => Just("HTTP/1.0"), 1 => Just("HTTP/9.9"), 1 => Just("HTTX/1.1")],
        auth(),
        length(),
        prop::collection::vec(extra(), 0..3),
        body(),
    )
        .prop_map(|(method, path, query, version, auth, length, extras, body)| Request {
            method,
            path,
            query,
            version,
            auth,
            length,
            extras,
            body,
        })
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

fn mutate(mut bytes: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        if bytes.is_empty() {
            break;
        }
        let n = bytes.len();
        match m {
            Mutation::Flip(i, b) => bytes[i % n] ^= 1 << b,
            Mutation::Set(i, v) => bytes[i % n] = *v,
            Mutation::Truncate(i) => bytes.truncate(i % n),
            Mutation::Insert(i, v) => {
                bytes.splice(i % n..i % n, v.iter().copied());
            }
            Mutation::Huge(i) => {
                bytes.splice(i % n..=i % n, varint(u64::from(u32::MAX)));
            }
        }
    }
    bytes
}

impl Request {
    /// The target, method and intended caller of this request.
    fn route(&self, w: &World) -> (String, &'static str, Who) {
        let paths = paths(w);
        let (path, method, who) = paths[self.path % paths.len()].clone();
        (path, self.method.unwrap_or(method), who)
    }

    fn body_bytes(&self, w: &World) -> Vec<u8> {
        match &self.body {
            Body::Empty => Vec::new(),
            Body::Random(b) => b.clone(),
            Body::Sync(i, m) => mutate(w.sync_bodies[i % w.sync_bodies.len()].clone(), m),
            Body::GzipSync(i, m) => gzip(&mutate(w.sync_bodies[i % w.sync_bodies.len()].clone(), m)),
            Body::GzipBomb => w.bomb.clone(),
            Body::NotGzip => b"\x1f\x8b\x08\x00garbage that is not deflate".to_vec(),
            Body::SignIn(m, right) => {
                let password = if *right { PASSWORD } else { "wrong password" };
                let json = serde_json::json!({
                    "username": w.victim_username, "password": password, "device_name": "模糊测试",
                });
                mutate(json.to_string().into_bytes(), m)
            }
            Body::Password(m) => {
                let json =
                    serde_json::json!({ "old_password": "not the password", "new_password": "new password 123" });
                mutate(json.to_string().into_bytes(), m)
            }
            Body::Json(s) => s.clone().into_bytes(),
            Body::Large(n) => vec![b'x'; *n],
        }
    }

    /// The request's bytes, and whether the client stops sending after them
    /// (half-closes) because it promised more than it sends.
    fn bytes(&self, w: &World) -> (Vec<u8>, bool) {
        let (mut target, method, who) = self.route(w);
        if let Some(q) = &self.query {
            target = format!("{target}?{q}");
        }
        let body = self.body_bytes(w);
        let mut head = format!("{method} {target} {}\r\nHost: 127.0.0.1\r\nConnection: close\r\n", self.version);
        let auth = match (&self.auth, who) {
            (Auth::Proper, Who::Staff) => &Auth::Staff,
            (Auth::Proper, Who::Admin) => &Auth::Admin,
            (Auth::Proper, Who::Anyone) => &Auth::None,
            (other, _) => other,
        };
        match auth {
            Auth::Proper | Auth::None => {}
            Auth::Staff => head += &format!("Authorization: Bearer {}\r\n", w.staff_token),
            Auth::Admin => head += &format!("Authorization: Bearer {}\r\n", w.admin_token),
            Auth::Garbage(s) => head += &format!("Authorization: {s}\r\n"),
            Auth::Basic => head += "Authorization: Basic YWRtaW46YWRtaW4=\r\n",
            Auth::EmptyBearer => head += "Authorization: Bearer \r\n",
            Auth::Huge => head += &format!("Authorization: Bearer {}\r\n", "A".repeat(64 * 1024)),
            Auth::Forged => {
                let mut t = w.staff_token.clone();
                let last = if t.ends_with('a') { 'b' } else { 'a' };
                t.pop();
                t.push(last);
                head += &format!("Authorization: Bearer {t}\r\n");
            }
        }
        let mut bytes_head_extra = Vec::new();
        for e in &self.extras {
            match e {
                Extra::ContentEncoding(v) => head += &format!("Content-Encoding: {v}\r\n"),
                Extra::AcceptEncoding(v) => head += &format!("Accept-Encoding: {v}\r\n"),
                Extra::ContentType(v) => head += &format!("Content-Type: {v}\r\n"),
                Extra::Expect => head += "Expect: 100-continue\r\n",
                Extra::Huge(n) => head += &format!("X-Padding: {}\r\n", "p".repeat(*n)),
                Extra::Many(n) => {
                    for i in 0..*n {
                        head += &format!("X-Many: {i}\r\n");
                    }
                }
                Extra::NonAscii => bytes_head_extra.extend_from_slice(b"X-Bytes: \xff\xfe\x00\x01\r\n"),
            }
        }
        let mut half_close = false;
        let payload = match &self.length {
            Length::Correct => {
                head += &format!("Content-Length: {}\r\n", body.len());
                body
            }
            Length::Absent => body,
            Length::Smaller(n) => {
                head += &format!("Content-Length: {}\r\n", body.len().saturating_sub(*n));
                body
            }
            Length::Larger(n) => {
                head += &format!("Content-Length: {}\r\n", (body.len() as u64).saturating_add(*n));
                half_close = true;
                body
            }
            Length::NotANumber => {
                head += "Content-Length: lots\r\n";
                body
            }
            Length::Negative => {
                head += "Content-Length: -1\r\n";
                body
            }
            Length::Twice => {
                head += &format!("Content-Length: {}\r\nContent-Length: {}\r\n", body.len(), body.len() + 1);
                body
            }
            Length::Chunked | Length::BadChunked => {
                head += "Transfer-Encoding: chunked\r\n";
                let mut chunked = Vec::new();
                for piece in body.chunks(1000) {
                    chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    chunked.extend_from_slice(piece);
                    chunked.extend_from_slice(b"\r\n");
                }
                if matches!(self.length, Length::BadChunked) {
                    chunked.extend_from_slice(b"zz\r\nbroken");
                    half_close = true;
                } else {
                    chunked.extend_from_slice(b"0\r\n\r\n");
                }
                chunked
            }
        };
        let mut out = head.into_bytes();
        out.extend_from_slice(&bytes_head_extra);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&payload);
        (out, half_close)
    }
}

/// What came back on the connection.
#[derive(Debug)]
enum Answer {
    Status {
        code: u16,
        headers: String,
        body: Vec<u8>,
    },
    /// Closed or reset without a response (a malformed request may get none).
    NoResponse(String),
}

/// Sends raw bytes on a fresh connection and reads until the server closes it.
async fn exchange(addr: &str, bytes: &[u8], half_close: bool) -> Result<Answer, String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    // The server may answer (401, 413) and close before reading it all: a failed write is fine.
    let wrote = s.write_all(bytes).await;
    if half_close || wrote.is_err() {
        let _ = s.shutdown().await;
    }
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    received.extend_from_slice(&buf[..n]);
                    if received.len() > 256 * 1024 * 1024 {
                        return Err("an answer over 256 MiB".to_string());
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "no answer and no close within 20 s".to_string())?;
    // Interim answers (100 Continue) come before the real one.
    let mut received = &received[..];
    while received.starts_with(b"HTTP/1.1 1")
        && let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n")
    {
        received = &received[end + 4..];
    }
    let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(Answer::NoResponse(format!("{read:?}, {} bytes", received.len())));
    };
    let head = String::from_utf8_lossy(&received[..end]).to_string();
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("bad status line: {head}"))?;
    Ok(Answer::Status { code, headers: head, body: received[end + 4..].to_vec() })
}

/// The body of a response, decompressed if it says gzip (and not chunked).
fn response_body(headers: &str, body: &[u8]) -> Vec<u8> {
    let lower = headers.to_ascii_lowercase();
    let body = if lower.contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_vec() };
    if lower.contains("content-encoding: gzip") {
        let mut out = Vec::new();
        if GzDecoder::new(&body[..]).read_to_end(&mut out).is_ok() {
            return out;
        }
    }
    body
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&body[..line_end]).trim(), 16).unwrap_or(0);
        if size == 0 || body.len() < line_end + 2 + size {
            break;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[(line_end + 4 + size).min(body.len())..];
    }
    out
}

async fn healthy(addr: &str) -> Result<(), String> {
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    match exchange(addr, request, false).await? {
        Answer::Status { code: 200, .. } => Ok(()),
        other => Err(format!("/healthz answered {other:?}")),
    }
}

/// Sends one generated request and checks everything the server must keep.
async fn check_request(server: &TestServer, w: &World, r: &Request) -> Result<u16, String> {
    let before = fingerprint(server.store());
    let (bytes, half_close) = r.bytes(w);
    let answer = exchange(&w.addr, &bytes, half_close).await?;
    let after = fingerprint(server.store());
    let code = match &answer {
        Answer::Status { code, headers, body } => {
            let text = String::from_utf8_lossy(&response_body(headers, body)).to_string();
            if *code >= 500 {
                let busy = *code == 503 && text.contains("\"busy\"");
                let unsupported_version = *code == 505 && !r.version.starts_with("HTTP/1.");
                // Before the WebAssembly package is built (plain `cargo test`), the app's page
                // says so with a 503: a deployment fault, not the request's.
                let app_not_built = *code == 503
                    && text.contains("web/pkg/")
                    && !std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../web/pkg/gridsync_client_bg.wasm")
                        .exists();
                if !busy && !unsupported_version && !app_not_built {
                    return Err(format!("a {code} answer: {headers}\n{text}"));
                }
            }
            if (400..500).contains(code) && before != after {
                return Err(format!("a {code} request changed the store: {before:?} -> {after:?}\n{text}"));
            }
            let (path, method, _) = r.route(w);
            let is_sync = path == "/v1/sync" && method == "POST";
            if *code == 200 && is_sync {
                let decoded = protocol::decode::<SyncResponse>(&response_body(headers, body))
                    .map_err(|e| format!("a 200 sync answer that does not decode: {e}"))?;
                let accepted = decoded.results.iter().filter(|p| matches!(p.outcome, PushOutcome::Accepted)).count();
                if after.docs > before.docs + accepted {
                    return Err(format!("{} documents stored but {accepted} accepted", after.docs - before.docs));
                }
                if accepted == 0 && after.head_seq != before.head_seq {
                    return Err("nothing accepted, yet the feed moved".into());
                }
            }
            *code
        }
        Answer::NoResponse(why) => {
            if before != after {
                return Err(format!("a request answered by no response ({why}) changed the store"));
            }
            0
        }
    };
    healthy(&w.addr).await?;
    Ok(code)
}

#[test]
fn hostile_requests_to_every_route_never_get_a_5xx_and_a_refused_one_stores_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let server = rt.block_on(TestServer::start());
    let w = rt.block_on(world(&server));
    let tally = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    let mut runner = TestRunner::new(config(1_500));
    let started = std::time::Instant::now();
    let result = runner.run(&request(), |r| {
        let code = rt.block_on(check_request(&server, &w, &r)).map_err(|e| {
            let (bytes, _) = r.bytes(&w);
            let shown = if bytes.len() > 2048 { format!("{}…", hex(&bytes[..2048])) } else { hex(&bytes) };
            TestCaseError::fail(format!("{e}\nrequest bytes: {shown}"))
        })?;
        *tally.lock().expect("tally").entry(code).or_insert(0) += 1;
        Ok(())
    });
    let tally = tally.into_inner().expect("tally");
    eprintln!("answers by status (0 = no response): {tally:?} in {:.1} s", started.elapsed().as_secs_f64());
    if let Err(e) = result {
        panic!("{e}");
    }
    let refused: u32 = tally.iter().filter(|(c, _)| (400..500).contains(*c)).map(|(_, n)| n).sum();
    let served: u32 = tally.iter().filter(|(c, _)| (200..300).contains(*c)).map(|(_, n)| n).sum();
    assert!(refused > 0 && served > 0, "the requests reach both sides: {tally:?}");
    rt.block_on(server.stop());
}

// ---------------------------------------------------------------------------
// The admin socket.

/// Valid admin socket lines (as the CLI sends them), for mutation.
fn admin_lines() -> Vec<String> {
    [
        r#"{"Admin":{"Territory":"List"}}"#,
        r#"{"Admin":{"Territory":{"Add":{"path":"tc/d1/s1/c9","name":"模糊社区"}}}}"#,
        r#"{"Admin":{"Territory":{"Add":{"path":"zz/bad/parent","name":"x"}}}}"#,
        r#"{"Admin":{"Person":"List"}}"#,
        r#"{"Admin":{"Person":{"Add":{"username":"fuzz","name":"模糊","role":"field_staff","territory":"tc/d1/s1/c1/g1","password":"fuzz password"}}}}"#,
        r#"{"Admin":{"Person":{"Add":{"username":"fuzz2","name":"x","role":"field_staff","territory":"tc","password":null}}}}"#,
        r#"{"Admin":{"Person":{"Move":{"username":"nobody","territory":"tc/d1"}}}}"#,
        r#"{"Admin":{"Person":{"Disable":{"username":"nobody"}}}}"#,
        r#"{"Admin":{"Device":"List"}}"#,
        r#"{"Admin":{"Device":{"Add":{"username":"nobody","name":"手机"}}}}"#,
        r#"{"Admin":{"Device":{"Revoke":{"id":"01950000-0000-7000-8000-000000000001"}}}}"#,
        r#"{"Admin":{"Audit":{"after":0}}}"#,
        r#"{"Snapshot":{"format":"jsonl","territory":null,"as_of":null,"unmask":false,"reason":null}}"#,
        r#"{"Snapshot":{"format":"zip","territory":"tc","as_of":-1,"unmask":true,"reason":null}}"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[derive(Clone, Debug)]
enum Line {
    Valid(usize, Vec<Mutation>),
    Random(Vec<u8>),
    /// No newline: the client closes after the bytes.
    Unterminated(usize, Vec<Mutation>),
    Long(usize),
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        6 => (any::<usize>(), mutations()).prop_map(|(i, m)| Line::Valid(i, m)),
        2 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Line::Random),
        1 => (any::<usize>(), mutations()).prop_map(|(i, m)| Line::Unterminated(i, m)),
        1 => prop_oneof![Just(10_000usize), Just(1_000_000)].prop_map(Line::Long),
    ]
}

fn admin_fingerprint(store: &dyn Store) -> String {
    let territories = store.territories().expect("territories");
    format!("{territories:?} {:?}", fingerprint(store))
}

async fn admin_exchange(path: &std::path::Path, bytes: &[u8]) -> Result<Option<String>, String> {
    let stream = tokio::net::UnixStream::connect(path).await.map_err(|e| format!("connect: {e}"))?;
    let (read, mut write) = stream.into_split();
    let _ = write.write_all(bytes).await;
    let _ = write.shutdown().await;
    let mut answer = String::new();
    let mut reader = BufReader::new(read);
    match tokio::time::timeout(Duration::from_secs(20), reader.read_line(&mut answer)).await {
        Err(_) => Err("no answer within 20 s".into()),
        Ok(Err(e)) => Ok(Some(format!("read error: {e}"))),
        Ok(Ok(0)) => Ok(None),
        Ok(Ok(_)) => {
            // Drain a snapshot's archive, if one follows.
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut rest)).await;
            Ok(Some(answer))
        }
    }
}

#[test]
fn hostile_lines_on_the_admin_socket_are_refused_and_store_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(SledStore::open(dir.path().join("data")).expect("store"));
    for (path, name) in
        [("tc", "测试市"), ("tc/d1", "区"), ("tc/d1/s1", "街道"), ("tc/d1/s1/c1", "社区"), ("tc/d1/s1/c1/g1", "网格")]
    {
        gridsync_server::admin::add_territory(store.as_ref(), &path.parse().expect("path"), name).expect("territory");
    }
    let socket = dir.path().join("admin.sock");
    let dyn_store: Arc<dyn Store> = store.clone();
    rt.spawn(gridsync_server::serve_admin_socket(socket.clone(), dyn_store));
    rt.block_on(async {
        while tokio::net::UnixStream::connect(&socket).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let lines = admin_lines();
    let tally = std::sync::Mutex::new(std::collections::BTreeMap::<&str, u32>::new());
    let mut runner = TestRunner::new(config(400));
    let result = runner.run(&line(), |l| {
        let (bytes, terminated) = match &l {
            Line::Valid(i, m) => (mutate(lines[i % lines.len()].clone().into_bytes(), m), true),
            Line::Random(b) => (b.clone(), true),
            Line::Unterminated(i, m) => (mutate(lines[i % lines.len()].clone().into_bytes(), m), false),
            Line::Long(n) => (vec![b'{'; *n], true),
        };
        let mut sent = bytes.clone();
        if terminated {
            sent.push(b'\n');
        }
        let before = admin_fingerprint(store.as_ref());
        let answer = rt.block_on(admin_exchange(&socket, &sent)).map_err(TestCaseError::fail)?;
        let after = admin_fingerprint(store.as_ref());
        let kind = match answer.as_deref().map(serde_json::from_str::<gridsync_server::AdminReply>) {
            None => "closed",
            Some(Ok(reply)) if reply.ok => "ok",
            Some(Ok(_)) => {
                prop_assert_eq!(
                    &before,
                    &after,
                    "a refused command changed the store: {:?}",
                    String::from_utf8_lossy(&bytes)
                );
                "refused"
            }
            Some(Err(e)) => {
                return Err(TestCaseError::fail(format!("an answer that is not a reply ({e}): {answer:?}")));
            }
        };
        if kind == "closed" {
            prop_assert_eq!(&before, &after, "a connection closed without answer changed the store");
        }
        let alive = rt
            .block_on(admin_exchange(&socket, b"{\"Admin\":{\"Territory\":\"List\"}}\n"))
            .map_err(TestCaseError::fail)?;
        prop_assert!(alive.is_some_and(|a| a.contains("\"ok\":true")), "the socket still answers");
        *tally.lock().expect("tally").entry(kind).or_insert(0) += 1;
        Ok(())
    });
    let tally = tally.into_inner().expect("tally");
    eprintln!("admin socket answers: {tally:?}");
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(tally.get("refused").is_some_and(|n| *n > 0) && tally.get("ok").is_some_and(|n| *n > 0), "{tally:?}");
}

#[test]
fn an_endless_line_on_the_admin_socket_is_cut_off_and_refused() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path().join("data")).expect("store"));
    let socket = dir.path().join("admin.sock");
    rt.spawn(gridsync_server::serve_admin_socket(socket.clone(), store));
    rt.block_on(async {
        while tokio::net::UnixStream::connect(&socket).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // 16 MiB with no newline: the server stops reading at its bound and answers.
        let answer = admin_exchange(&socket, &vec![b'{'; 16 << 20]).await.expect("an answer");
        let reply: gridsync_server::AdminReply =
            serde_json::from_str(answer.as_deref().expect("a reply")).expect("a reply line");
        assert!(!reply.ok && reply.output.contains("longer than"), "{}", reply.output);
        let alive = admin_exchange(&socket, b"{\"Admin\":{\"Territory\":\"List\"}}\n").await.expect("answer");
        assert!(alive.is_some_and(|a| a.contains("\"ok\":true")), "the socket still answers");
    });
}
