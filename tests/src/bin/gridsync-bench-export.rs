//! Export benchmark: fills a real sled store with N visit logs (default
//! 100,000) of realistic size, then writes a snapshot in each format to a
//! discarding writer, printing one JSON line per format with records per
//! second and the process's peak RSS during the export.
//!
//! `cargo run --release -p gridsync-tests --bin gridsync-bench-export -- 100000`

use gridsync_server::admin::add_territory;
use gridsync_server::snapshot::{SnapshotRequest, prepare};
use gridsync_server::store::{DocWrite, SledStore, Store};
use gridsync_shared::records::{GeoPoint, NewRecord, VisitFields, VisitKind, new_record};
use gridsync_shared::{Author, DeviceId, PersonId, Role, TerritoryPath};
use std::time::Instant;

/// Peak resident set size of this process so far, in KiB (Linux).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the peak RSS counter so the next reading covers only what follows (Linux).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(dir.path())?;
    let grids: Vec<TerritoryPath> = {
        let mut out = Vec::new();
        for (p, name) in [("bc", "市"), ("bc/d1", "区"), ("bc/d1/s1", "街道")] {
            add_territory(&store, &p.parse()?, name)?;
        }
        for c in 0..10 {
            let community: TerritoryPath = format!("bc/d1/s1/c{c}").parse()?;
            add_territory(&store, &community, "社区")?;
            for g in 0..10 {
                let grid = community.child(&format!("g{g}"))?;
                add_territory(&store, &grid, "网格")?;
                out.push(grid);
            }
        }
        out
    };
    let notes = "走访独居老人陈桂英，身体状况良好，子女每周探望一次。反映小区东门路灯不亮、楼道堆放杂物，\
                 夜间出入不便，已记录并转物业处理。另了解到三楼住户家中漏水，影响楼下住户，双方曾有争执，需跟进调解。"
        .repeat(4);
    let t = Instant::now();
    let device = DeviceId(uuid::Uuid::new_v4());
    for i in 0..n {
        let grid = &grids[(i as usize) % grids.len()];
        let author = Author {
            person: PersonId(uuid::Uuid::from_u128(i as u128 % 1000)),
            role: Role::FieldStaff,
            territory: grid.clone(),
        };
        let fields = VisitFields {
            visited_at: 1_790_000_000_000 + i as i64,
            kind: Some(VisitKind::Routine),
            location: Some(GeoPoint { lat: 30.92, lon: 113.91, accuracy_m: Some(12.0) }),
            notes: notes.clone(),
            concerns: vec!["路灯不亮".into(), "楼道杂物".into(), "邻里漏水纠纷".into()],
            ..Default::default()
        };
        let mut random = [0u8; 10];
        random.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..10]);
        let (id, doc) = new_record(
            automerge::ActorId::random(),
            &author,
            grid,
            1_790_000_000_000,
            random,
            &NewRecord::VisitLog(fields),
        )?;
        store.commit_doc(
            DocWrite {
                doc: id,
                grid: grid.clone(),
                summary: gridsync_shared::records::read_record(&doc)?.summary(),
                bytes: doc.save(),
                heads: doc.get_heads(),
                device,
                changes: doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect(),
                photos: Vec::new(),
                row: None,
            },
            1_790_000_000_000,
        )?;
    }
    store.flush()?;
    let disk = store.stats()?.disk_bytes;
    eprintln!("filled {n} visit logs in {:.1} s ({} MB on disk)", t.elapsed().as_secs_f64(), disk / 1_000_000);

    for format in ["csv", "jsonl", "xlsx"] {
        reset_peak_rss();
        let before = peak_rss_kib();
        let t = Instant::now();
        let req = SnapshotRequest {
            format: format.into(),
            territory: None,
            as_of: None,
            unmask: false,
            reason: None,
            photos: false,
        };
        let prepared = prepare(&store, &req, "bench")?;
        let mut sink = std::io::sink();
        let manifest = prepared.write(&store, &mut sink, &mut |_| {})?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{{\"bench\":\"export\",\"format\":\"{format}\",\"records\":{},\"seconds\":{secs:.2},\"records_per_second\":{:.0},\"peak_rss_mib\":{:.1},\"rss_before_mib\":{:.1}}}",
            manifest.counts.total(),
            manifest.counts.total() as f64 / secs,
            peak_rss_kib() as f64 / 1024.0,
            before as f64 / 1024.0
        );
    }
    Ok(())
}
