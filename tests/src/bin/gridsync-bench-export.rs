//! Export benchmark: fills a real sled store with N visit logs (default
//! 100,000) of realistic size, each committed with its flattened row
//! (`--no-rows`: without, so exports read every document), then writes a
//! snapshot in each format to a discarding writer, printing one JSON line per
//! format with seconds, records per second, CPU seconds and the process's peak
//! RSS during the export. First it measures rows of 2,000 visit logs as
//! `gridsync_tests::loadgen::notes::visit` makes them (size and decode time,
//! against the JSON alone and the Automerge document).
//!
//! `cargo run --release -p gridsync-tests --bin gridsync-bench-export -- 100000 [--no-rows]`

use gridsync_server::admin::add_territory;
use gridsync_server::snapshot::{SnapshotRequest, prepare};
use gridsync_server::store::{DocWrite, SledStore, Store};
use gridsync_shared::records::row::{decode_row, encode_row};
use gridsync_shared::records::{NewRecord, new_record, read_record};
use gridsync_shared::{Author, DeviceId, PersonId, Record, Role, TerritoryPath};
use rand::SeedableRng;
use std::io::Write;
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

/// User plus system CPU seconds this process has used (Linux).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which may hold spaces, inside parentheses).
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0 // utime, stime (fields 14 and 15), in USER_HZ = 100
}

/// Rows of `gridsync_tests::loadgen::notes::visit` visit logs: mean sizes and
/// decode times of the row, of its JSON alone and of the Automerge document.
fn measure_rows() -> Result<(), Box<dyn std::error::Error>> {
    const N: usize = 2_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261130);
    let grid: TerritoryPath = "bc/d1/s1/c0/g0".parse()?;
    let author = Author { person: PersonId(uuid::Uuid::from_u128(1)), role: Role::FieldStaff, territory: grid.clone() };
    let mut docs = Vec::with_capacity(N);
    for i in 0..N {
        let fields = gridsync_tests::loadgen::notes::visit(&mut rng, 1_790_000_000_000 + i as i64);
        let (_, doc) = new_record(
            automerge::ActorId::random(),
            &author,
            &grid,
            1_790_000_000_000,
            [7; 10],
            &NewRecord::VisitLog(fields),
        )?;
        docs.push(doc.save());
    }
    let records: Vec<Record> = docs
        .iter()
        .map(|d| {
            automerge::Automerge::load(d)
                .map_err(|e| e.to_string())
                .and_then(|d| read_record(&d).map_err(|e| e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let chars: usize = records
        .iter()
        .map(|r| match r {
            Record::VisitLog(v) => v.fields.notes.chars().count(),
            _ => 0,
        })
        .sum();
    let t = Instant::now();
    let rows: Vec<Vec<u8>> = records.iter().map(encode_row).collect();
    let encode_us = t.elapsed().as_secs_f64() * 1e6 / N as f64;
    let t = Instant::now();
    for row in &rows {
        std::hint::black_box(decode_row(row)?);
    }
    let decode_us = t.elapsed().as_secs_f64() * 1e6 / N as f64;
    let json: Vec<Vec<u8>> = records.iter().map(serde_json::to_vec).collect::<Result<_, _>>()?;
    let t = Instant::now();
    for j in &json {
        std::hint::black_box(serde_json::from_slice::<Record>(j)?);
    }
    let json_decode_us = t.elapsed().as_secs_f64() * 1e6 / N as f64;
    let deflate6: usize = json
        .iter()
        .map(|j| {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(j).and_then(|()| e.finish()).map(|b| b.len() + 2)
        })
        .sum::<Result<usize, _>>()?;
    let t = Instant::now();
    for d in &docs {
        let doc = automerge::Automerge::load(d)?;
        std::hint::black_box(read_record(&doc)?);
    }
    let automerge_us = t.elapsed().as_secs_f64() * 1e6 / N as f64;
    let mean = |total: usize| total as f64 / N as f64;
    println!(
        "{{\"bench\":\"rows\",\"visit_logs\":{N},\"notes_chars\":{:.0},\"row_bytes\":{:.0},\"row_bytes_max\":{},\"row_encode_us\":{encode_us:.1},\"row_decode_us\":{decode_us:.1},\"json_bytes\":{:.0},\"json_decode_us\":{json_decode_us:.1},\"json_deflate6_bytes\":{:.0},\"automerge_bytes\":{:.0},\"automerge_load_read_us\":{automerge_us:.1}}}",
        mean(chars),
        mean(rows.iter().map(Vec::len).sum()),
        rows.iter().map(Vec::len).max().unwrap_or(0),
        mean(json.iter().map(Vec::len).sum()),
        mean(deflate6),
        mean(docs.iter().map(Vec::len).sum()),
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let with_rows = !args.iter().any(|a| a == "--no-rows");
    let n: u64 = args.iter().find(|a| !a.starts_with("--")).map(|a| a.parse()).transpose()?.unwrap_or(100_000);
    measure_rows()?;
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
    // Visit logs as the load generator writes them: 600–640 characters of
    // varied notes, two or three concerns.
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261201);
    let t = Instant::now();
    let device = DeviceId(uuid::Uuid::new_v4());
    for i in 0..n {
        let grid = &grids[(i as usize) % grids.len()];
        let author = Author {
            person: PersonId(uuid::Uuid::from_u128(i as u128 % 1000)),
            role: Role::FieldStaff,
            territory: grid.clone(),
        };
        let fields = gridsync_tests::loadgen::notes::visit(&mut rng, 1_790_000_000_000 + i as i64);
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
        let record = read_record(&doc)?;
        store.commit_doc(
            DocWrite {
                doc: id,
                grid: grid.clone(),
                summary: record.summary(),
                bytes: doc.save(),
                heads: doc.get_heads(),
                device,
                changes: doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect(),
                photos: Vec::new(),
                row: with_rows.then(|| encode_row(&record)),
            },
            1_790_000_000_000,
        )?;
    }
    store.flush()?;
    let disk = store.stats()?.disk_bytes;
    eprintln!(
        "filled {n} visit logs {} in {:.1} s ({} MB on disk)",
        if with_rows { "with rows" } else { "without rows" },
        t.elapsed().as_secs_f64(),
        disk / 1_000_000
    );
    // Where the bytes go: each key prefix's keys and bytes, against the disk.
    let prefixes = store.bytes_by_prefix()?;
    let stored: u64 = prefixes.iter().map(|p| p.key_bytes + p.value_bytes).sum();
    for p in &prefixes {
        println!(
            "{{\"bench\":\"store-bytes\",\"prefix\":\"{}\",\"keys\":{},\"key_bytes\":{},\"value_bytes\":{},\"bytes_per_record\":{:.0}}}",
            p.prefix,
            p.keys,
            p.key_bytes,
            p.value_bytes,
            (p.key_bytes + p.value_bytes) as f64 / n.max(1) as f64
        );
    }
    println!(
        "{{\"bench\":\"store-bytes\",\"keys_and_values_per_record\":{:.0},\"disk_per_record\":{:.0},\"sled_overhead\":{:.2}}}",
        stored as f64 / n.max(1) as f64,
        disk as f64 / n.max(1) as f64,
        disk as f64 / stored.max(1) as f64
    );

    for format in ["csv", "jsonl", "xlsx"] {
        reset_peak_rss();
        let before = peak_rss_kib();
        let cpu = cpu_seconds();
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
        let cpu = cpu_seconds() - cpu;
        println!(
            "{{\"bench\":\"export\",\"format\":\"{format}\",\"rows\":{with_rows},\"cores\":{},\"records\":{},\"seconds\":{secs:.2},\"cpu_seconds\":{cpu:.1},\"records_per_second\":{:.0},\"peak_rss_mib\":{:.1},\"rss_before_mib\":{:.1}}}",
            std::thread::available_parallelism().map_or(1, |c| c.get()),
            manifest.counts.total(),
            manifest.counts.total() as f64 / secs,
            peak_rss_kib() as f64 / 1024.0,
            before as f64 / 1024.0
        );
    }
    Ok(())
}
