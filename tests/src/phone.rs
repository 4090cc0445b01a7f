//! A simulated phone: the real client core (`gridsync-client`) over real HTTP,
//! with gzip both ways, as the browser app does it.

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use gridsync_client::{MemoryStorage, Replica, ReplicaError, SyncReport};
use gridsync_shared::protocol::{DeviceRegistration, SignInRequest};
use gridsync_shared::records::{
    CaseFields, CaseKind, EditError, Editor, NewRecord, Satisfaction, VisitFields, VisitKind,
};
use gridsync_shared::workflow::CaseStatus;
use gridsync_shared::{DocId, TerritoryPath};
use std::io::{Read, Write};
use thiserror::Error;

/// Why a phone's call failed.
#[derive(Debug, Error)]
pub enum PhoneError {
    /// The network call failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered with an error status.
    #[error("server said {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Body text.
        body: String,
    },
    /// The replica refused.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    /// Compression failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The server refused for now with `Retry-After` (503 busy, 429 throttled).
    #[error("server said {status}, retry after {retry_after_s} s: {body}")]
    Busy {
        /// HTTP status (503 or 429).
        status: u16,
        /// Seconds the server asked to wait.
        retry_after_s: u32,
        /// Body text.
        body: String,
    },
}

/// How a phone waits when the server asks it to (`Retry-After`).
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// Retries of one request at most before its refusal is returned.
    pub max_retries: u32,
    /// Stop retrying once this much time was spent waiting for one request.
    pub give_up_after: std::time::Duration,
}

impl Backoff {
    /// Never retry: a refusal is returned at once (to see it in a test).
    pub fn never() -> Self {
        Self { max_retries: 0, give_up_after: std::time::Duration::ZERO }
    }

    /// How long to wait after being told `retry_after_s`: that, stretched by a
    /// random 0-25 % so that phones refused together do not return together
    /// (the server already spreads its answers).
    pub fn delay(retry_after_s: u32) -> std::time::Duration {
        use rand::Rng;
        let base = f64::from(retry_after_s.max(1));
        std::time::Duration::from_secs_f64(base * rand::rng().random_range(1.0..1.25))
    }
}

impl Default for Backoff {
    /// Up to 100 retries or 30 minutes of waiting for one request.
    fn default() -> Self {
        Self { max_retries: 100, give_up_after: std::time::Duration::from_secs(1800) }
    }
}

/// What the server's back-pressure cost this phone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    /// 503 answers with `Retry-After` (server busy).
    pub busy: u64,
    /// 429 answers with `Retry-After`.
    pub throttled: u64,
    /// Time spent waiting before retrying.
    pub waited: std::time::Duration,
}

/// How long the phone keeps an idle connection for reuse: less than the
/// server's idle timeout.
const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(20);

/// Counts of what crossed the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transport {
    /// Sync requests sent.
    pub round_trips: u64,
    /// Compressed bytes sent.
    pub bytes_up: u64,
    /// Compressed bytes received.
    pub bytes_down: u64,
}

/// A phone running the real client core.
pub struct Phone {
    /// The replica, exactly as on a phone.
    pub replica: Replica<MemoryStorage>,
    url: String,
    token: String,
    http: reqwest::Client,
    /// What this phone has sent and received.
    pub transport: Transport,
    /// The phone's clock (Unix ms); tests may move it.
    pub clock: i64,
    /// How long the last sync request took, from sending it to its response's last byte.
    pub last_request: std::time::Duration,
    /// How long the last answered sync request waited on the server before
    /// work on it started (its `Server-Timing: queue`), if the server said.
    pub last_queue_wait: Option<std::time::Duration>,
    /// How `sync` and `sync_once` wait when the server asks them to.
    pub backoff: Backoff,
    /// What back-pressure has cost this phone so far.
    pub pressure: Pressure,
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes)?;
    e.finish()
}

fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

impl Phone {
    /// Signs in over HTTP and registers this phone as a new device.
    pub async fn sign_in(url: &str, username: &str, password: &str) -> Result<Phone, PhoneError> {
        let resp = reqwest::Client::new()
            .post(format!("{url}/v1/auth/sign-in"))
            .json(&SignInRequest {
                username: username.into(),
                password: password.into(),
                device_name: "测试手机".into(),
                replaces: None,
            })
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(PhoneError::Status { status: resp.status().as_u16(), body: resp.text().await? });
        }
        let reg: DeviceRegistration = resp.json().await?;
        Self::registered(url, reg)
    }

    /// A new phone holding a registration made elsewhere (the load generator
    /// registers thousands of devices straight into the store).
    pub fn registered(url: &str, reg: DeviceRegistration) -> Result<Phone, PhoneError> {
        let mut replica = Replica::open(MemoryStorage::new())?;
        let token = reg.token.clone();
        replica.register(reg)?;
        // Idle connections are dropped before the server's idle timeout (30 s)
        // would close them, so a request never goes out on a connection the
        // server is closing at that moment.
        let http = reqwest::Client::builder().pool_idle_timeout(POOL_IDLE).build()?;
        Ok(Phone {
            replica,
            url: url.into(),
            token,
            http,
            transport: Transport::default(),
            clock: crate::now_ms(),
            last_request: std::time::Duration::ZERO,
            last_queue_wait: None,
            backoff: Backoff::default(),
            pressure: Pressure::default(),
        })
    }

    /// Creates any record, offline, at the phone's clock.
    pub fn create(&mut self, new: &NewRecord) -> Result<DocId, ReplicaError> {
        let now = self.tick();
        self.replica.create(None, now, new)
    }

    /// Creates a record with the id its form chose when it opened, offline,
    /// at the phone's clock; the same id again updates that record.
    pub fn create_with_id(&mut self, id: DocId, new: &NewRecord) -> Result<DocId, ReplicaError> {
        let now = self.tick();
        self.replica.create_with_id(id, None, now, new)
    }

    /// Sends the next sync request and loses its response (the server acted on
    /// it; the phone never hears back).
    pub async fn sync_losing_response(&mut self) -> Result<(), PhoneError> {
        let request = self.replica.build_request();
        self.post_sync_patiently(&request).await.map(|_| ())
    }

    /// The same phone's storage reopened, as after the app was closed.
    pub fn reopen(self) -> Result<Phone, PhoneError> {
        let storage = self.replica.storage().clone();
        Ok(Phone { replica: Replica::open(storage)?, ..self })
    }

    /// Points this phone at another server, keeping its replica, cursor and
    /// token: as when its server process dies and another serves the same store.
    pub fn move_to(&mut self, url: &str) {
        self.url = url.into();
    }

    /// The device's bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The phone's own grid.
    pub fn grid(&self) -> TerritoryPath {
        self.replica.identity().map(|i| i.territory.clone()).unwrap_or_else(|| "x".parse().expect("path"))
    }

    fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    /// Posts raw (uncompressed) request bytes once; returns the decompressed
    /// response. A refusal with `Retry-After` is [`PhoneError::Busy`].
    pub async fn post_sync(&mut self, body: &[u8]) -> Result<Vec<u8>, PhoneError> {
        let compressed = gzip(body)?;
        self.transport.round_trips += 1;
        self.transport.bytes_up += compressed.len() as u64;
        let sent = std::time::Instant::now();
        let resp = self
            .http
            .post(format!("{}/v1/sync", self.url))
            .bearer_auth(&self.token)
            .header("content-encoding", "gzip")
            .header("accept-encoding", "gzip")
            .header("content-type", "application/x-gridsync")
            .header("x-pending-changes", self.replica.pending_changes())
            .body(compressed)
            .send()
            .await?;
        let status = resp.status();
        let gz = resp.headers().get("content-encoding").is_some_and(|v| v == "gzip");
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()?.trim().parse::<u32>().ok());
        let queue_wait = resp.headers().get("server-timing").and_then(|v| queue_wait(v.to_str().ok()?));
        let bytes = resp.bytes().await?;
        self.last_request = sent.elapsed();
        self.transport.bytes_down += bytes.len() as u64;
        if !status.is_success() {
            let body = String::from_utf8_lossy(&bytes).into();
            return Err(match retry_after {
                Some(retry_after_s) => PhoneError::Busy { status: status.as_u16(), retry_after_s, body },
                None => PhoneError::Status { status: status.as_u16(), body },
            });
        }
        self.last_queue_wait = queue_wait;
        Ok(if gz { gunzip(&bytes)? } else { bytes.to_vec() })
    }

    /// Posts a sync request, waiting and sending it again while the server
    /// refuses it with `Retry-After` (as [`Phone::backoff`] allows).
    pub async fn post_sync_patiently(&mut self, body: &[u8]) -> Result<Vec<u8>, PhoneError> {
        let started = std::time::Instant::now();
        let mut retries = 0;
        loop {
            match self.post_sync(body).await {
                Err(PhoneError::Busy { status, retry_after_s, .. })
                    if retries < self.backoff.max_retries && started.elapsed() < self.backoff.give_up_after =>
                {
                    retries += 1;
                    if status == 429 {
                        self.pressure.throttled += 1;
                    } else {
                        self.pressure.busy += 1;
                    }
                    let wait = Backoff::delay(retry_after_s);
                    self.pressure.waited += wait;
                    tokio::time::sleep(wait).await;
                }
                Err(e @ PhoneError::Busy { status, .. }) => {
                    if status == 429 {
                        self.pressure.throttled += 1;
                    } else {
                        self.pressure.busy += 1;
                    }
                    return Err(e);
                }
                other => return other,
            }
        }
    }

    /// One request/response exchange (retried while the server says it is
    /// busy; and, when the server says it was restored from a backup, sent
    /// again after the replica took that in, as the app does).
    pub async fn sync_once(&mut self) -> Result<SyncReport, PhoneError> {
        let request = self.replica.build_request();
        let response = match self.post_sync_patiently(&request).await {
            Err(PhoneError::Status { status: 409, body }) if restored_cursor(&body).is_some() => {
                let cursor = restored_cursor(&body).unwrap_or_default();
                self.replica.store_restored(&cursor)?;
                let request = self.replica.build_request();
                self.post_sync_patiently(&request).await?
            }
            other => other?,
        };
        let now = self.tick();
        Ok(self.replica.apply_response(&response, now)?)
    }

    /// Syncs until nothing waits on either side; returns every round's report.
    pub async fn sync(&mut self) -> Result<Vec<SyncReport>, PhoneError> {
        let mut reports = Vec::new();
        loop {
            let report = self.sync_once().await?;
            let again = report.needs_another_round();
            reports.push(report);
            if !again || reports.len() > 10_000 {
                return Ok(reports);
            }
        }
    }

    /// Records a visit in the phone's grid, offline.
    pub fn record_visit(&mut self, notes: &str) -> DocId {
        let now = self.tick();
        let fields = VisitFields {
            visited_at: now,
            kind: Some(VisitKind::Routine),
            notes: notes.into(),
            concerns: vec!["路灯不亮".into()],
            ..VisitFields::default()
        };
        self.replica.create(None, now, &NewRecord::VisitLog(fields)).expect("record visit")
    }

    /// Reports a case in the phone's grid, offline.
    pub fn report_case(&mut self, title: &str) -> DocId {
        let now = self.tick();
        let fields = CaseFields {
            kind: CaseKind::Dispute,
            title: title.into(),
            description: String::new(),
            household: None,
            visit: None,
            due_at: None,
        };
        self.replica.create(None, now, &NewRecord::Case(fields)).expect("report case")
    }

    /// Any edit through the shared editor, offline.
    pub fn edit<T>(
        &mut self,
        id: DocId,
        f: impl FnOnce(&mut Editor<'_>) -> Result<T, EditError>,
    ) -> Result<T, ReplicaError> {
        let now = self.tick();
        self.replica.edit(id, now, f)
    }

    /// Adds a follow-up to a case, offline.
    pub fn follow_up(&mut self, case: DocId, note: &str) {
        self.edit(case, |e| e.add_follow_up(note, Some(Satisfaction::Satisfied))).expect("follow-up");
    }

    /// Moves a case forward, offline; a move to assigned (交办) assigns it to
    /// this phone's own person (use [`Phone::assign`] to name someone else).
    pub fn advance(&mut self, case: DocId, to: CaseStatus) -> Result<(), ReplicaError> {
        if to == CaseStatus::Assigned {
            let me = self.replica.identity().ok_or(ReplicaError::NotSignedIn)?.person;
            return self.assign(case, me);
        }
        self.edit(case, |e| e.advance_case(to)).map(|_| ())
    }

    /// Assigns a case (交办) to `assignee`, offline.
    pub fn assign(&mut self, case: DocId, assignee: gridsync_shared::PersonId) -> Result<(), ReplicaError> {
        self.edit(case, |e| e.assign_case(assignee)).map(|_| ())
    }
}

impl Phone {
    /// Sends hand-made pushes (bypassing the replica's own checks), as a
    /// tampered or buggy client would, and returns the server's answer.
    pub async fn push_raw(
        &mut self,
        push: Vec<gridsync_shared::protocol::DocPush>,
    ) -> Result<gridsync_shared::protocol::SyncResponse, PhoneError> {
        let request = gridsync_shared::protocol::SyncRequest {
            cursor: None,
            push,
            max_response_bytes: gridsync_shared::protocol::DEFAULT_PAGE_BYTES,
        };
        let bytes = self.post_sync(&gridsync_shared::protocol::encode(&request)).await?;
        gridsync_shared::protocol::decode(&bytes)
            .map_err(|e| PhoneError::Status { status: 0, body: format!("undecodable response: {e}") })
    }

    /// Posts arbitrary bytes to /v1/sync with the given content-encoding;
    /// returns the status and body text.
    pub async fn post_raw(&self, body: Vec<u8>, content_encoding: Option<&str>) -> (u16, String) {
        let mut req = self.http.post(format!("{}/v1/sync", self.url)).bearer_auth(&self.token).body(body);
        if let Some(ce) = content_encoding {
            req = req.header("content-encoding", ce);
        }
        match req.send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }
}

/// The cursor of a 409 `store_restored` answer's body, if it is one.
fn restored_cursor(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    (v["error"] == "store_restored").then(|| v["cursor"].as_str().map(String::from))?
}

/// The `queue` duration of a `Server-Timing` header (`queue;dur=12.5`).
fn queue_wait(header: &str) -> Option<std::time::Duration> {
    header.split(',').find_map(|metric| {
        let mut parts = metric.split(';').map(str::trim);
        if parts.next()? != "queue" {
            return None;
        }
        let ms: f64 = parts.find_map(|p| p.strip_prefix("dur="))?.parse().ok()?;
        Some(std::time::Duration::from_secs_f64(ms.max(0.0) / 1000.0))
    })
}

/// Asserts that every phone and the server hold identical documents for every
/// record in `scope`: same change history (heads) and same content.
pub fn assert_converged(server: &crate::TestServer, phones: &[&Phone], scope: &TerritoryPath) {
    let mut ids = server.doc_ids(scope);
    ids.sort();
    for phone in phones {
        let mut phone_ids: Vec<DocId> = phone.replica.document_ids().collect();
        phone_ids.sort();
        assert_eq!(phone_ids, ids, "phone holds a different set of records than the server");
        for id in &ids {
            let server_doc = server.document(*id).expect("server doc");
            let phone_doc = phone.replica.document(*id).expect("phone doc");
            let mut a = server_doc.get_heads();
            let mut b = phone_doc.get_heads();
            a.sort();
            b.sort();
            assert_eq!(a, b, "record {id}: phone and server have different histories");
            assert_eq!(server_doc.hydrate(None), phone_doc.hydrate(None), "record {id}: different content");
        }
    }
}

impl Phone {
    /// Signs this phone in again as `username` (after its device was revoked or
    /// replaced): a new device registration and token that replaces the
    /// phone's previous device, keeping the phone's records and its unsynced work.
    pub async fn sign_in_again(&mut self, username: &str, password: &str) -> Result<(), PhoneError> {
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/auth/sign-in", self.url))
            .json(&serde_json::json!({
                "username": username, "password": password, "device_name": "测试手机",
                "replaces": self.replica.identity().map(|i| i.device),
            }))
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(PhoneError::Status { status: resp.status().as_u16(), body: resp.text().await? });
        }
        let reg: DeviceRegistration = resp.json().await?;
        self.token = reg.token.clone();
        self.replica.register(reg)?;
        Ok(())
    }

    /// Asks the server who this device belongs to now (`GET /v1/me`) and hands
    /// the person's territory to the replica (after a move, records outside
    /// it leave the phone once their work is pushed); returns how many left.
    pub async fn refresh_territory(&mut self) -> Result<usize, PhoneError> {
        let resp = self.http.get(format!("{}/v1/me", self.url)).bearer_auth(&self.token).send().await?;
        if !resp.status().is_success() {
            return Err(PhoneError::Status { status: resp.status().as_u16(), body: resp.text().await? });
        }
        let me: serde_json::Value = resp.json().await?;
        let territory = me["territory"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| PhoneError::Status { status: 200, body: format!("no territory in {me}") })?;
        Ok(self.replica.update_territory(territory)?)
    }
}
