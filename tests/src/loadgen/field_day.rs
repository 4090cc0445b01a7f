//! "Field day": every phone records visit logs offline, then all of them come
//! back online at the same moment and sync until each holds every record of its
//! grid.

use super::measure::{Latency, own_stats, processes_stats, round};
use super::{City, LoadError, notes};
use crate::phone::Phone;
use gridsync_shared::records::NewRecord;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// The size of a field day.
#[derive(Clone, Copy, Debug)]
pub struct FieldDay {
    /// Phones (grid managers).
    pub phones: usize,
    /// Grids they are spread over.
    pub grids: usize,
    /// Visit logs each phone records offline.
    pub records: usize,
    /// Give up after this long.
    pub timeout: Duration,
}

/// A target from the issue, with whether this run met it.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// What is promised.
    pub target: String,
    /// What was measured.
    pub measured: f64,
    /// Whether the measurement meets it.
    pub met: bool,
}

/// Mean and maximum seconds over phones.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PerPhoneSeconds {
    /// Mean.
    pub mean: f64,
    /// Maximum.
    pub max: f64,
}

/// Mean and maximum over phones.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PerPhone {
    /// Mean.
    pub mean: f64,
    /// Maximum.
    pub max: u64,
}

/// What a field day measured (one JSON line).
#[derive(Clone, Debug, Serialize)]
pub struct FieldDayReport {
    /// Always "field-day".
    pub workload: &'static str,
    /// Phones.
    pub phones: usize,
    /// Grids.
    pub grids: usize,
    /// Visit logs per phone.
    pub records_per_phone: usize,
    /// Visit logs in all.
    pub records: usize,
    /// Record copies delivered to phones (each record goes to every other phone of its grid).
    pub deliveries: u64,
    /// From the moment all phones reconnect until the last holds its whole grid.
    pub wall_s: f64,
    /// Records pushed and merged per second of wall time.
    pub records_merged_per_s: f64,
    /// Server CPU (user + system) spent during the sync.
    pub server_cpu_s: f64,
    /// Server peak resident memory (VmHWM), MiB.
    pub server_peak_rss_mib: f64,
    /// Size of the server's data directory divided by records.
    pub disk_bytes_per_record: f64,
    /// Compressed request + response bytes, divided by records.
    pub wire_bytes_per_record: f64,
    /// Of which uploaded (the records themselves, gzip).
    pub wire_up_bytes_per_record: f64,
    /// Sync requests per phone until it held its whole grid (including polls
    /// while other phones had not pushed yet).
    pub round_trips_per_phone: PerPhone,
    /// Sync requests until a phone's own 100 offline records were all
    /// acknowledged (a phone back from a day offline).
    pub round_trips_to_push: PerPhone,
    /// Sync request latency as the phone saw it (send to last response byte;
    /// of the attempt that was answered, after any back-off).
    pub sync_latency: Latency,
    /// How long answered sync requests waited on the server before it started
    /// on them (its `Server-Timing: queue`).
    pub queue_wait: Latency,
    /// The longest any sync request waited for the server to start on it or
    /// to refuse it, as the server measured (`/healthz`), in ms.
    pub server_max_queue_wait_ms: u64,
    /// 503 `busy` answers with `Retry-After` (deliberate back-pressure).
    pub busy_503: u64,
    /// 429 answers with `Retry-After`.
    pub throttled_429: u64,
    /// Time phones spent backing off as told, per phone (mean and max, s).
    pub backoff_s: PerPhoneSeconds,
    /// Failed requests other than back-pressure (network errors, other
    /// statuses); each was retried after a pause.
    pub errors_other: u64,
    /// CPU the load generator itself used during the sync (phones' work).
    pub loadgen_cpu_s: f64,
    /// Time the phones took to record their visits offline (before the sync).
    pub offline_recording_s: f64,
    /// The targets that apply to this size.
    pub targets: Vec<Target>,
}

pub(super) struct PhoneRun {
    pub(super) phone: Phone,
    pub(super) latencies: Vec<Duration>,
    pub(super) round_trips: u64,
    rounds_to_push: u64,
    received: u64,
    queue_waits: Vec<Duration>,
    errors: u64,
}

/// Runs a field day against `server_binary`; `data_dir` keeps the store.
pub async fn run(cfg: FieldDay, server_binary: &Path, data_dir: Option<&Path>) -> Result<FieldDayReport, LoadError> {
    let mut city = City::build(server_binary, cfg.phones, cfg.grids, data_dir).await?;
    let expected: Vec<usize> = (0..cfg.phones).map(|i| city.phones_in_grid_of(i) * cfg.records).collect();

    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(20261126);
    let yesterday = crate::now_ms() - 86_400_000;
    for (i, phone) in city.phones.iter_mut().enumerate() {
        for r in 0..cfg.records {
            let at = yesterday + (r as i64) * 300_000;
            phone
                .create(&NewRecord::VisitLog(notes::visit(&mut rng, at)))
                .map_err(|e| LoadError::Phone { phone: i, error: Box::new(e.into()) })?;
        }
    }
    let offline_recording_s = started.elapsed().as_secs_f64();

    let pids = city.server_pids()?;
    let before = processes_stats(&pids).unwrap_or_default();
    let own_before = own_stats().unwrap_or_default();
    let started = Instant::now();
    let deadline = started + cfg.timeout;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, phone) in std::mem::take(&mut city.phones).into_iter().enumerate() {
        tasks.spawn(bring_home(i, phone, expected[i], deadline));
    }
    let mut runs: Vec<(usize, PhoneRun)> = Vec::with_capacity(cfg.phones);
    while let Some(joined) = tasks.join_next().await {
        runs.push(joined.map_err(|e| LoadError::Setup(format!("phone task: {e}")))??);
    }
    let wall = started.elapsed().as_secs_f64();
    let after = processes_stats(&pids).unwrap_or_default();
    let mut server_max_queue_wait_ms = 0;
    for url in std::iter::once(&city.server).chain(&city.more_servers).map(|s| s.url.clone()) {
        let waited = server_figures(&url).await.and_then(|s| s["max_wait_ms"].as_u64()).unwrap_or(0);
        server_max_queue_wait_ms = server_max_queue_wait_ms.max(waited);
    }
    let own_after = own_stats().unwrap_or_default();
    runs.sort_by_key(|(i, _)| *i);
    check_grids_agree(&city, &runs)?;

    let records = cfg.phones * cfg.records;
    let n = runs.len().max(1) as f64;
    let per_phone = |f: &dyn Fn(&PhoneRun) -> u64| PerPhone {
        mean: round(runs.iter().map(|(_, r)| f(r) as f64).sum::<f64>() / n, 2),
        max: runs.iter().map(|(_, r)| f(r)).max().unwrap_or(0),
    };
    let mut latencies: Vec<Duration> = runs.iter().flat_map(|(_, r)| r.latencies.iter().copied()).collect();
    let up: u64 = runs.iter().map(|(_, r)| r.phone.transport.bytes_up).sum();
    let down: u64 = runs.iter().map(|(_, r)| r.phone.transport.bytes_down).sum();
    let disk = city.store_bytes();
    let peak_mib = after.peak_rss as f64 / (1024.0 * 1024.0);
    let round_trips_to_push = per_phone(&|r| r.rounds_to_push);

    let mut targets = vec![Target {
        target: format!("a phone back from a day offline with {} records pushes them in <= 2 round trips", cfg.records),
        measured: round_trips_to_push.max as f64,
        met: round_trips_to_push.max <= 2,
    }];
    if (cfg.phones, cfg.grids, cfg.records) == (50, 10, 100) {
        targets.push(Target {
            target: "50x10x100 converges in < 3 s".into(),
            measured: round(wall, 3),
            met: wall < 3.0,
        });
        targets.push(Target {
            target: "50x10x100 server peak RSS < 100 MB".into(),
            measured: round(peak_mib, 1),
            met: after.peak_rss < 100 * 1000 * 1000,
        });
    }
    if (cfg.phones, cfg.grids, cfg.records) == (1000, 100, 100) {
        targets.push(Target {
            target: "1000x100x100 converges in < 20 s".into(),
            measured: round(wall, 3),
            met: wall < 20.0,
        });
    }
    let errors_other: u64 = runs.iter().map(|(_, r)| r.errors).sum();
    targets.push(Target {
        target: "no sync request waits more than 5 s for the server to start on it (s)".into(),
        measured: round(server_max_queue_wait_ms as f64 / 1000.0, 3),
        met: server_max_queue_wait_ms < 5000,
    });
    targets.push(Target {
        target: "no errors other than deliberate back-pressure".into(),
        measured: errors_other as f64,
        met: errors_other == 0,
    });
    let mut queue_waits: Vec<Duration> = runs.iter().flat_map(|(_, r)| r.queue_waits.iter().copied()).collect();
    let backoffs: Vec<f64> = runs.iter().map(|(_, r)| r.phone.pressure.waited.as_secs_f64()).collect();

    let report = FieldDayReport {
        workload: "field-day",
        phones: cfg.phones,
        grids: cfg.grids,
        records_per_phone: cfg.records,
        records,
        deliveries: runs.iter().map(|(_, r)| r.received).sum(),
        wall_s: round(wall, 3),
        records_merged_per_s: round(records as f64 / wall, 1),
        server_cpu_s: round(after.cpu_s - before.cpu_s, 2),
        server_peak_rss_mib: round(peak_mib, 1),
        disk_bytes_per_record: round(disk as f64 / records as f64, 0),
        wire_bytes_per_record: round((up + down) as f64 / records as f64, 0),
        wire_up_bytes_per_record: round(up as f64 / records as f64, 0),
        round_trips_per_phone: per_phone(&|r| r.round_trips),
        round_trips_to_push,
        sync_latency: Latency::of(&mut latencies),
        queue_wait: Latency::of(&mut queue_waits),
        server_max_queue_wait_ms,
        busy_503: runs.iter().map(|(_, r)| r.phone.pressure.busy).sum(),
        throttled_429: runs.iter().map(|(_, r)| r.phone.pressure.throttled).sum(),
        backoff_s: PerPhoneSeconds {
            mean: round(backoffs.iter().sum::<f64>() / n, 2),
            max: round(backoffs.iter().copied().fold(0.0, f64::max), 2),
        },
        errors_other,
        loadgen_cpu_s: round(own_after.cpu_s - own_before.cpu_s, 2),
        offline_recording_s: round(offline_recording_s, 2),
        targets,
    };
    city.kill_servers().await;
    Ok(report)
}

/// First and longest wait between polls of a phone waiting for its grid.
const POLL_FIRST: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_millis(500);

/// One phone reconnecting: syncs until its records are pushed and it holds
/// `expected` records, polling briefly while its grid's other phones catch up.
pub(super) async fn bring_home(
    i: usize,
    mut phone: Phone,
    expected: usize,
    deadline: Instant,
) -> Result<(usize, PhoneRun), LoadError> {
    let fail = |error| LoadError::Phone { phone: i, error: Box::new(error) };
    let mut run = Tally::default();
    let mut pause = POLL_FIRST;
    loop {
        // Back-pressure (503/429 with Retry-After) is waited out inside
        // `sync_once`; anything else is counted, and retried after a pause
        // unless it keeps happening.
        let report = match phone.sync_once().await {
            Ok(report) => report,
            Err(e) => {
                run.errors += 1;
                eprintln!("phone {i}: {e:?} (retrying)");
                if run.errors > MAX_ERRORS || Instant::now() > deadline {
                    return Err(fail(e));
                }
                tokio::time::sleep(crate::phone::Backoff::delay(1)).await;
                continue;
            }
        };
        run.latencies.push(phone.last_request);
        run.queue_waits.extend(phone.last_queue_wait);
        run.round_trips += 1;
        run.received += report.received as u64;
        if !report.rejected.is_empty() {
            return Err(fail(crate::phone::PhoneError::Status {
                status: 0,
                body: format!("{} records rejected: {:?}", report.rejected.len(), report.rejected[0].1),
            }));
        }
        if run.rounds_to_push == 0 && phone.replica.pending_changes() == 0 {
            run.rounds_to_push = run.round_trips;
        }
        let held = phone.replica.document_ids().count();
        if !report.needs_another_round() {
            if held >= expected && run.rounds_to_push > 0 {
                break;
            }
            if Instant::now() > deadline {
                return Err(LoadError::Timeout(deadline.elapsed().as_secs_f64()));
            }
            // Poll again soon, backing off while nothing new arrives (as the app
            // does), so a thousand waiting phones do not drown the server.
            pause = if report.received > 0 { POLL_FIRST } else { (pause * 2).min(POLL_MAX) };
            tokio::time::sleep(pause).await;
        }
    }
    let Tally { latencies, round_trips, rounds_to_push, received, queue_waits, errors } = run;
    Ok((i, PhoneRun { phone, latencies, round_trips, rounds_to_push, received, queue_waits, errors }))
}

/// Failed requests (other than back-pressure) one phone tolerates before the run fails.
const MAX_ERRORS: u64 = 20;

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    round_trips: u64,
    rounds_to_push: u64,
    received: u64,
    queue_waits: Vec<Duration>,
    errors: u64,
}

/// The server's sync-queue figures from `/healthz` (the `sync` object).
pub async fn server_figures(url: &str) -> Option<serde_json::Value> {
    let health: serde_json::Value = reqwest::get(format!("{url}/healthz")).await.ok()?.json().await.ok()?;
    health.get("sync").cloned()
}

/// Every phone of a grid holds the same records.
fn check_grids_agree(city: &City, runs: &[(usize, PhoneRun)]) -> Result<(), LoadError> {
    let g = city.grids.len();
    for grid in 0..g {
        let mut first: Option<Vec<_>> = None;
        for (i, run) in runs.iter().filter(|(i, _)| i % g == grid) {
            let mut ids: Vec<_> = run.phone.replica.document_ids().collect();
            ids.sort();
            match &first {
                None => first = Some(ids),
                Some(f) if *f != ids => {
                    return Err(LoadError::Setup(format!("phone {i} holds other records than its grid's first phone")));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}
