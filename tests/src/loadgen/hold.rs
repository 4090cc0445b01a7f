//! "Hold": a server holding a whole city's visit logs (a million by default)
//! while grid managers sync — a new phone downloading its whole grid, others
//! pushing a day's visits. Measures the server's memory with a full store.
//!
//! The store is filled directly (not through sync, which would take ~20 min of
//! CPU here): a few realistic visit logs are made per grid with the real
//! `new_record` and committed under fresh ids, so sizes, keys and feed entries
//! are those of real records.

use super::field_day::{PerPhone, Target, bring_home};
use super::measure::{Latency, processes_stats, round};
use super::{City, LoadError, notes};
use crate::phone::Phone;
use gridsync_server::store::{DocWrite, Store};
use gridsync_shared::records::{NewRecord, new_record, read_record};
use gridsync_shared::{Author, DocId};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// The shape of a hold run.
#[derive(Clone, Debug)]
pub struct Hold {
    /// Visit logs in the store before the server starts.
    pub records: usize,
    /// Grids they are spread over (one grid manager each).
    pub grids: usize,
    /// Phones that then sync: each downloads its whole grid and pushes `push` visit logs.
    pub syncing: usize,
    /// Visit logs each syncing phone pushes.
    pub push: usize,
    /// Keep the store in this (new) directory instead of a temporary one.
    pub keep_data: Option<std::path::PathBuf>,
    /// How long the server idles before its settled memory is read (jemalloc's
    /// background thread returns pages freed at start-up within its 10 s decay).
    pub settle: Duration,
}

/// What a hold run measured (one JSON line).
#[derive(Clone, Debug, Serialize)]
pub struct HoldReport {
    /// Always "hold".
    pub workload: &'static str,
    /// Visit logs in the store.
    pub records: usize,
    /// Grids.
    pub grids: usize,
    /// Seconds spent filling the store (not part of the measurement).
    pub fill_s: f64,
    /// Size of the data directory, MB.
    pub disk_mb: f64,
    /// Server resident memory 1 s after it answered, MiB.
    pub server_idle_rss_mib: f64,
    /// Server resident memory after idling [`Hold::settle`] more, MiB.
    pub server_settled_rss_mib: f64,
    /// Phones that synced.
    pub syncing_phones: usize,
    /// Records each of them downloaded.
    pub records_per_grid: usize,
    /// Time until every syncing phone held its whole grid and had pushed its visits.
    pub sync_wall_s: f64,
    /// Sync requests per phone.
    pub round_trips_per_phone: PerPhone,
    /// Sync request latency.
    pub sync_latency: Latency,
    /// Server CPU during the syncs.
    pub server_cpu_s: f64,
    /// Server peak resident memory (VmHWM) over its whole life, MiB.
    pub server_peak_rss_mib: f64,
    /// The target.
    pub targets: Vec<Target>,
}

/// Fills a store with `cfg.records` visit logs, starts the server on it and
/// lets `cfg.syncing` phones sync.
pub async fn run(cfg: Hold, server_binary: &Path) -> Result<HoldReport, LoadError> {
    if cfg.syncing > cfg.grids {
        return Err(LoadError::Setup("at most one syncing phone per grid".into()));
    }
    let started = Instant::now();
    let fill = |store: &dyn Store,
                grids: &[gridsync_shared::TerritoryPath],
                regs: &[gridsync_shared::protocol::DeviceRegistration]| {
        let mut rng = StdRng::seed_from_u64(7);
        let setup = |e: String| LoadError::Setup(e);
        // Eight different visit logs per grid, each written by that grid's manager.
        let mut templates = Vec::with_capacity(grids.len());
        for reg in regs.iter().take(grids.len()) {
            let author = Author { person: reg.person, role: reg.role, territory: reg.territory.clone() };
            let actor = gridsync_shared::ids::actor_from_hex(&reg.actor).ok_or_else(|| setup("actor".into()))?;
            let mut docs = Vec::with_capacity(8);
            for t in 0..8 {
                let at = crate::now_ms() - 86_400_000 + t * 60_000;
                let new = NewRecord::VisitLog(notes::visit(&mut rng, at));
                let (_, doc) = new_record(actor.clone(), &author, &reg.territory, at, [0; 10], &new)
                    .map_err(|e| setup(e.to_string()))?;
                let record = read_record(&doc).map_err(|e| setup(e.to_string()))?;
                let row = gridsync_shared::records::row::encode_row(&record);
                let changes: Vec<Vec<u8>> = doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
                docs.push((doc.save(), doc.get_heads(), record.summary(), changes, row));
            }
            templates.push((reg.device, reg.territory.clone(), docs));
        }
        let now = crate::now_ms();
        for i in 0..cfg.records {
            let (device, grid, docs) = &templates[i % templates.len()];
            let (bytes, heads, summary, changes, row) = &docs[(i / templates.len()) % docs.len()];
            let mut random = [0u8; 10];
            random.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..10]);
            let write = DocWrite {
                doc: DocId::new_v7(u64::try_from(now).unwrap_or(0), random),
                grid: grid.clone(),
                summary: *summary,
                bytes: bytes.clone(),
                heads: heads.clone(),
                device: *device,
                changes: changes.clone(),
                photos: Vec::new(),
                row: Some(row.clone()),
            };
            store.commit_doc(write, now).map_err(|e| setup(e.to_string()))?;
            if (i + 1) % 100_000 == 0 {
                eprintln!("filled {} visit logs in {:.0} s", i + 1, started.elapsed().as_secs_f64());
            }
        }
        Ok(())
    };
    // One registered phone per grid; the fill's records are theirs, as if
    // written on earlier days and since lost with an old phone, so syncing
    // starts from nothing.
    let mut city = City::build_filled(server_binary, cfg.grids, cfg.grids, cfg.keep_data.as_deref(), fill).await?;
    let fill_s = started.elapsed().as_secs_f64();
    let pids = city.server_pids()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = processes_stats(&pids).unwrap_or_default();
    tokio::time::sleep(cfg.settle).await;
    let settled = processes_stats(&pids).unwrap_or_default();
    let disk = city.store_bytes();

    let per_grid = cfg.records / cfg.grids;
    let mut rng = StdRng::seed_from_u64(8);
    let mut phones: Vec<Phone> = std::mem::take(&mut city.phones).into_iter().take(cfg.syncing).collect();
    for (i, phone) in phones.iter_mut().enumerate() {
        for r in 0..cfg.push {
            let at = crate::now_ms() - 3_600_000 + r as i64 * 1_000;
            phone
                .create(&NewRecord::VisitLog(notes::visit(&mut rng, at)))
                .map_err(|e| LoadError::Phone { phone: i, error: Box::new(e.into()) })?;
        }
    }
    let before = processes_stats(&pids).unwrap_or_default();
    let t = Instant::now();
    let deadline = t + Duration::from_secs(3600);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, phone) in phones.into_iter().enumerate() {
        // A phone with no cursor starts from the grid's snapshot: every record
        // of its grid, then its own pushes.
        tasks.spawn(bring_home(i, phone, per_grid + cfg.push, deadline));
    }
    let mut runs = Vec::new();
    while let Some(j) = tasks.join_next().await {
        runs.push(j.map_err(|e| LoadError::Setup(e.to_string()))??);
    }
    let wall = t.elapsed().as_secs_f64();
    let after = processes_stats(&pids).unwrap_or_default();
    let n = runs.len().max(1) as f64;
    let mut latencies: Vec<Duration> = runs.iter().flat_map(|(_, r)| r.latencies.iter().copied()).collect();
    let peak_mib = after.peak_rss as f64 / (1024.0 * 1024.0);
    let report = HoldReport {
        workload: "hold",
        records: cfg.records,
        grids: cfg.grids,
        fill_s: round(fill_s, 1),
        disk_mb: round(disk as f64 / 1e6, 0),
        server_idle_rss_mib: round(idle.rss as f64 / (1024.0 * 1024.0), 1),
        server_settled_rss_mib: round(settled.rss as f64 / (1024.0 * 1024.0), 1),
        syncing_phones: runs.len(),
        records_per_grid: per_grid,
        sync_wall_s: round(wall, 2),
        round_trips_per_phone: PerPhone {
            mean: round(runs.iter().map(|(_, r)| r.round_trips as f64).sum::<f64>() / n, 2),
            max: runs.iter().map(|(_, r)| r.round_trips).max().unwrap_or(0),
        },
        sync_latency: Latency::of(&mut latencies),
        server_cpu_s: round(after.cpu_s - before.cpu_s, 2),
        server_peak_rss_mib: round(peak_mib, 1),
        targets: vec![
            Target {
                target: format!("the server holds {} visit logs with peak RSS < 512 MB", cfg.records),
                measured: round(peak_mib, 1),
                met: after.peak_rss < 512 * 1000 * 1000,
            },
            Target {
                target: "RSS 1 s after the server answers < 256 MB".into(),
                measured: round(idle.rss as f64 / (1024.0 * 1024.0), 1),
                met: idle.rss < 256 * 1000 * 1000,
            },
            Target {
                target: format!("RSS after idling {} s more < 256 MB", cfg.settle.as_secs()),
                measured: round(settled.rss as f64 / (1024.0 * 1024.0), 1),
                met: settled.rss < 256 * 1000 * 1000,
            },
            Target {
                target: format!("peak RSS while {} phones download their grids < 384 MB", cfg.syncing),
                measured: round(peak_mib, 1),
                met: after.peak_rss < 384 * 1000 * 1000,
            },
        ],
    };
    city.kill_servers().await;
    Ok(report)
}
