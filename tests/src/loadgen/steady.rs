//! "Steady": phones syncing small edits (a follow-up, a status change) as they
//! happen, at a set total rate, stepped up until the server falls behind.
//!
//! The edits are made beforehand with the real replica; during a step each
//! phone sends the ones that have come due in one sync request and applies the
//! response with the real engine, so the machine's CPU goes to the server.

use super::field_day::{Target, bring_home};
use super::measure::{Latency, processes_stats, round};
use super::{City, LoadError};
use crate::phone::{Phone, PhoneError};
use gridsync_shared::DocId;
use gridsync_shared::protocol::{self, DocPush, PushOutcome, SyncRequest, SyncResponse};
use gridsync_shared::records::{CaseFields, CaseKind, NewRecord, Satisfaction};
use gridsync_shared::workflow::CaseStatus;
use serde::Serialize;
use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The shape of a steady run.
#[derive(Clone, Debug)]
pub struct Steady {
    /// Phones.
    pub phones: usize,
    /// Grids they are spread over.
    pub grids: usize,
    /// Open cases each phone works on.
    pub cases: usize,
    /// Total edit rates to try, changes per second, in order.
    pub rates: Vec<u32>,
    /// How long each rate is held.
    pub step: Duration,
}

/// What one rate step measured.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    /// The rate asked for, changes per second.
    pub offered_per_s: u32,
    /// Changes acknowledged per second (until the last was acknowledged).
    pub acknowledged_per_s: f64,
    /// Changes made.
    pub changes: u64,
    /// Sync requests sent.
    pub requests: u64,
    /// Sync request latency (send to last response byte).
    pub request_latency: Latency,
    /// From an edit being made to the server acknowledging it (queueing included).
    pub change_latency: Latency,
    /// Server CPU used by the step, as a share of one core.
    pub server_cpu_share: f64,
    /// Sync requests refused with 503 `busy` and `Retry-After` (and sent again after it).
    pub busy_503: u64,
}

/// What a steady run measured (one JSON line).
#[derive(Clone, Debug, Serialize)]
pub struct SteadyReport {
    /// Always "steady".
    pub workload: &'static str,
    /// Phones.
    pub phones: usize,
    /// Grids.
    pub grids: usize,
    /// Cases in all.
    pub cases: usize,
    /// Seconds each rate was held.
    pub step_s: f64,
    /// One entry per rate.
    pub steps: Vec<StepReport>,
    /// The highest offered rate whose request p99 stayed within 100 ms, if any.
    pub sustained_rate_p99_under_100ms: Option<u32>,
    /// The first offered rate whose request p99 passed 100 ms, if any did.
    pub rate_where_p99_passes_100ms: Option<u32>,
    /// Server peak resident memory, MiB.
    pub server_peak_rss_mib: f64,
    /// The target, if 2,000/s was among the rates.
    pub targets: Vec<Target>,
}

const FOLLOW_UPS: &[&str] = &[
    "已电话回访，居民表示问题已初步解决。",
    "联系物业上门查看，约定明天维修。",
    "再次入户了解情况，双方同意调解。",
    "已上报街道相关科室，等待回复。",
];

/// A phone's part in a steady run: its cases, how far each has moved, and the
/// edits it has made but not yet sent.
struct Worker {
    index: usize,
    phone: Phone,
    cases: Vec<(DocId, u8)>,
    edits: u64,
    ready: VecDeque<DocPush>,
}

impl Worker {
    /// Makes `n` edits now, with the real replica, and keeps each one's change
    /// to send when its moment comes.
    fn prepare(&mut self, n: usize) -> Result<(), LoadError> {
        for _ in 0..n {
            let slot = self.edits as usize % self.cases.len();
            let doc = self.cases[slot].0;
            let before = self.phone.replica.document(doc).map(|d| d.get_heads()).unwrap_or_default();
            self.edit()?;
            let changes = self
                .phone
                .replica
                .document(doc)
                .map(|d| d.get_changes(&before).iter().map(|c| c.raw_bytes().to_vec()).collect())
                .unwrap_or_default();
            self.ready.push_back(DocPush { doc, changes });
        }
        Ok(())
    }

    /// One small edit: mostly follow-ups, every fourth a status change while
    /// the case can still move forward.
    fn edit(&mut self) -> Result<(), LoadError> {
        let n = self.edits as usize;
        self.edits += 1;
        let slot = n % self.cases.len();
        let (case, moved) = self.cases[slot];
        let result = if n.is_multiple_of(4) && moved < 2 {
            self.cases[slot].1 += 1;
            let to = if moved == 0 { CaseStatus::InProgress } else { CaseStatus::Resolved };
            self.phone.edit(case, |e| e.advance_case(to)).map(|_| ())
        } else {
            let note = FOLLOW_UPS[n % FOLLOW_UPS.len()];
            self.phone.edit(case, |e| e.add_follow_up(note, Some(Satisfaction::Satisfied))).map(|_| ())
        };
        result.map_err(|e| LoadError::Phone { phone: self.index, error: Box::new(e.into()) })
    }
}

#[derive(Default)]
struct StepTally {
    changes: u64,
    requests: u64,
    request_latency: Vec<Duration>,
    change_latency: Vec<Duration>,
    last_ack: Option<Instant>,
    busy: u64,
}

/// Runs the steady workload against `server_binary`.
pub async fn run(cfg: Steady, server_binary: &Path) -> Result<SteadyReport, LoadError> {
    let mut city = City::build(server_binary, cfg.phones, cfg.grids, None).await?;
    let expected: Vec<usize> = (0..cfg.phones).map(|i| city.phones_in_grid_of(i) * cfg.cases).collect();
    let now = crate::now_ms();
    let mut workers = Vec::with_capacity(cfg.phones);
    for (index, mut phone) in std::mem::take(&mut city.phones).into_iter().enumerate() {
        let mut cases = Vec::with_capacity(cfg.cases);
        for c in 0..cfg.cases {
            let fields = CaseFields {
                kind: CaseKind::Hazard,
                title: format!("楼道电动车充电隐患 {c}"),
                description: "三单元一楼楼道内有电动车充电，存在火灾隐患。".into(),
                household: None,
                visit: None,
                due_at: Some(now + 7 * 86_400_000),
            };
            let id = phone
                .create(&NewRecord::Case(fields))
                .map_err(|e| LoadError::Phone { phone: index, error: Box::new(e.into()) })?;
            cases.push((id, 0));
        }
        workers.push(Worker { index, phone, cases, edits: 0, ready: VecDeque::new() });
    }
    // Everybody syncs once so each phone holds its grid's cases.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut setup = tokio::task::JoinSet::new();
    for w in workers {
        let expect = expected[w.index];
        setup.spawn(async move {
            let Worker { index, phone, cases, edits, ready } = w;
            let (_, run) = bring_home(index, phone, expect, deadline).await?;
            Ok::<_, LoadError>(Worker { index, phone: run.phone, cases, edits, ready })
        });
    }
    let mut workers = Vec::with_capacity(cfg.phones);
    while let Some(j) = setup.join_next().await {
        workers.push(j.map_err(|e| LoadError::Setup(e.to_string()))??);
    }
    workers.sort_by_key(|w| w.index);

    // Every edit of the run is made now, so that during the steps this machine's
    // CPU goes to the server, not to phones' editing (real phones edit on their own).
    let total: f64 = cfg.rates.iter().map(|r| f64::from(*r) * cfg.step.as_secs_f64()).sum();
    let per_phone = (total / cfg.phones as f64).ceil() as usize + 1;
    let mut prepared = tokio::task::JoinSet::new();
    for mut w in workers {
        prepared.spawn_blocking(move || w.prepare(per_phone).map(|()| w));
    }
    let mut workers = Vec::with_capacity(cfg.phones);
    while let Some(j) = prepared.join_next().await {
        workers.push(j.map_err(|e| LoadError::Setup(e.to_string()))??);
    }
    workers.sort_by_key(|w| w.index);

    let pids = city.server_pids()?;
    let mut steps = Vec::new();
    for &rate in &cfg.rates {
        let (step, back) = run_step(workers, rate, cfg.step, &pids).await?;
        workers = back;
        steps.push(step);
    }
    let peak = processes_stats(&pids).map(|s| s.peak_rss).unwrap_or(0) as f64 / (1024.0 * 1024.0);
    let passes = steps.iter().find(|s| s.request_latency.p99_ms > 100.0).map(|s| s.offered_per_s);
    let sustained = steps
        .iter()
        .filter(|s| s.request_latency.p99_ms <= 100.0)
        .map(|s| s.offered_per_s)
        .filter(|r| passes.is_none_or(|p| *r < p))
        .max();
    let targets = steps
        .iter()
        .filter(|s| s.offered_per_s == 2000)
        .map(|s| Target {
            target: "steady p99 < 50 ms at 2,000 changes/s".into(),
            measured: s.request_latency.p99_ms,
            met: s.request_latency.p99_ms < 50.0 && s.acknowledged_per_s >= 1900.0,
        })
        .collect();
    city.kill_servers().await;
    Ok(SteadyReport {
        workload: "steady",
        phones: cfg.phones,
        grids: cfg.grids,
        cases: cfg.phones * cfg.cases,
        step_s: cfg.step.as_secs_f64(),
        steps,
        sustained_rate_p99_under_100ms: sustained,
        rate_where_p99_passes_100ms: passes,
        server_peak_rss_mib: round(peak, 1),
        targets,
    })
}

/// Holds `rate` changes per second for `length`, spread round-robin over the
/// phones; each phone syncs whatever it has made as soon as its last sync is done.
async fn run_step(
    workers: Vec<Worker>,
    rate: u32,
    length: Duration,
    pids: &[u32],
) -> Result<(StepReport, Vec<Worker>), LoadError> {
    let before = processes_stats(pids).unwrap_or_default();
    let started = Instant::now();
    let mut senders = Vec::with_capacity(workers.len());
    let mut tasks = tokio::task::JoinSet::new();
    for w in workers {
        let (tx, rx) = mpsc::unbounded_channel::<Instant>();
        senders.push(tx);
        tasks.spawn(work(w, rx));
    }
    let total = (rate as f64 * length.as_secs_f64()).round() as u64;
    let mut sent = 0u64;
    while sent < total {
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while sent < due {
            let phone = (sent as usize) % senders.len();
            // A closed channel means that phone failed; its error comes back from the join.
            let _ = senders[phone].send(Instant::now());
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    drop(senders);
    let mut tally = StepTally::default();
    let mut workers = Vec::new();
    while let Some(j) = tasks.join_next().await {
        let (w, t) = j.map_err(|e| LoadError::Setup(e.to_string()))??;
        workers.push(w);
        tally.changes += t.changes;
        tally.requests += t.requests;
        tally.request_latency.extend(t.request_latency);
        tally.change_latency.extend(t.change_latency);
        tally.last_ack = tally.last_ack.max(t.last_ack);
        tally.busy += t.busy;
    }
    workers.sort_by_key(|w| w.index);
    let after = processes_stats(pids).unwrap_or_default();
    let busy = tally.last_ack.map_or(length, |t| t.duration_since(started)).max(length);
    Ok((
        StepReport {
            offered_per_s: rate,
            acknowledged_per_s: round(tally.changes as f64 / busy.as_secs_f64(), 1),
            changes: tally.changes,
            requests: tally.requests,
            request_latency: Latency::of(&mut tally.request_latency),
            change_latency: Latency::of(&mut tally.change_latency),
            server_cpu_share: round((after.cpu_s - before.cpu_s) / busy.as_secs_f64(), 2),
            busy_503: tally.busy,
        },
        workers,
    ))
}

/// A phone in a step: waits for edits, makes every one that is due, syncs them.
async fn work(mut w: Worker, mut rx: mpsc::UnboundedReceiver<Instant>) -> Result<(Worker, StepTally), LoadError> {
    let mut t = StepTally::default();
    while let Some(first) = rx.recv().await {
        let mut made = vec![first];
        while let Ok(more) = rx.try_recv() {
            made.push(more);
        }
        let mut push: Vec<DocPush> = Vec::new();
        for _ in &made {
            let Some(next) = w.ready.pop_front() else { break };
            match push.iter_mut().find(|p| p.doc == next.doc) {
                Some(p) => p.changes.extend(next.changes),
                None => push.push(next),
            }
        }
        let mut push = Some(push);
        loop {
            let request = protocol::encode(&SyncRequest {
                cursor: w.phone.replica.cursor().map(<[u8]>::to_vec),
                push: push.take().unwrap_or_default(),
                max_response_bytes: protocol::DEFAULT_PAGE_BYTES,
            });
            let busy_before = w.phone.pressure.busy;
            let response = w
                .phone
                .post_sync_patiently(&request)
                .await
                .map_err(|error| LoadError::Phone { phone: w.index, error: Box::new(error) })?;
            t.request_latency.push(w.phone.last_request);
            t.requests += 1;
            t.busy += w.phone.pressure.busy - busy_before;
            let report = w
                .phone
                .replica
                .apply_response(&response, crate::now_ms())
                .map_err(|e| LoadError::Phone { phone: w.index, error: Box::new(PhoneError::from(e)) })?;
            let verdicts: SyncResponse = protocol::decode(&response).map_err(|e| LoadError::Phone {
                phone: w.index,
                error: Box::new(PhoneError::Status { status: 0, body: e.to_string() }),
            })?;
            if let Some(r) = verdicts.results.iter().find(|r| !matches!(r.outcome, PushOutcome::Accepted)) {
                return Err(LoadError::Phone {
                    phone: w.index,
                    error: Box::new(PhoneError::Status { status: 0, body: format!("edit not accepted: {r:?}") }),
                });
            }
            if !report.rejected.is_empty() {
                return Err(LoadError::Phone {
                    phone: w.index,
                    error: Box::new(PhoneError::Status {
                        status: 0,
                        body: format!("edit rejected: {:?}", report.rejected[0].1),
                    }),
                });
            }
            if !report.more {
                break;
            }
        }
        let acked = Instant::now();
        t.last_ack = Some(acked);
        t.changes += made.len() as u64;
        t.change_latency.extend(made.iter().map(|m| acked.duration_since(*m)));
    }
    Ok((w, t))
}
