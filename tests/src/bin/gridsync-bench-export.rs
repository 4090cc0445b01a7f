//! Export benchmark: fills a real sled store with N visit logs (default
//! 100,000) of realistic size, each committed with its flattened row
//! (`--no-rows`: without, so exports read every document), then writes a
//! snapshot in each format to a discarding writer, printing one JSON line per
//! format with seconds, records per second, CPU seconds, the process's peak
//! RSS during the export, the load average and the archive's size in bytes.
//! First it measures rows of 2,000 visit logs as
//! `gridsync_tests::loadgen::notes::visit` makes them (size and decode time,
//! against the JSON alone and the Automerge document).
//!
//! The fill builds documents on every core and commits them 1,000 at a time
//! (`Store::commit_docs`); it is not what is measured. `--keep DIR` fills a
//! store in `DIR` and keeps it; run again with the same `DIR`, N and rows, it
//! reuses that store, so exports can be measured again without a refill.
//!
//! `--formats csv,xlsx` exports only those formats.
//!
//! `cargo run --release -p gridsync-tests --bin gridsync-bench-export -- 100000 [--no-rows] [--keep DIR] [--formats csv,jsonl,xlsx]`

use gridsync_server::admin::add_territory;
use gridsync_server::snapshot::{SnapshotRequest, prepare};
use gridsync_server::store::{DocWrite, SledStore, Store};
use gridsync_shared::records::VisitFields;
use gridsync_shared::records::row::{decode_row, encode_row};
use gridsync_shared::records::{NewRecord, new_record, read_record};
use gridsync_shared::{Author, DeviceId, PersonId, Record, Role, TerritoryPath};
use rand::SeedableRng;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
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

/// What the command line asks for.
struct Args {
    /// Visit logs to fill the store with.
    n: u64,
    /// Commit each record with its flattened row.
    with_rows: bool,
    /// Fill into this directory and keep it (or reuse it if a fill of the
    /// same size and kind is there already).
    keep: Option<std::path::PathBuf>,
    /// The formats to export, in order (default: csv, jsonl, xlsx).
    formats: Vec<String>,
}

fn parse_args() -> Result<Args, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut out = Args { n: 100_000, with_rows: true, keep: None, formats: Vec::new() };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--no-rows" => out.with_rows = false,
            "--keep" => out.keep = Some(args.next().ok_or("--keep needs a directory")?.into()),
            "--formats" => {
                out.formats =
                    args.next().ok_or("--formats needs a list, e.g. csv,xlsx")?.split(',').map(str::to_string).collect()
            }
            _ if a.starts_with("--") => return Err(format!("unknown option {a}").into()),
            _ => out.n = a.parse()?,
        }
    }
    if out.formats.is_empty() {
        out.formats = ["csv", "jsonl", "xlsx"].map(str::to_string).to_vec();
    }
    Ok(out)
}

/// The load average over the last minute (Linux), to say how busy the machine was.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(-1.0)
}

/// The fill's batches: this many visit logs per `commit_docs`.
const FILL_BATCH: usize = 1_000;

/// Time each stage of the fill took, summed over the builder threads, in ns.
#[derive(Default)]
struct FillTimes {
    build: AtomicU64,
    row: AtomicU64,
    commit: AtomicU64,
}

/// Fills `store` with `n` visit logs across `grids`: the load generator's text
/// made in order on this thread (one seeded generator, so the same notes
/// every run), each document built, read, its row encoded and its batch
/// committed (`Store::commit_docs`, [`FILL_BATCH`] at a time) on one builder
/// thread per core.
fn fill(store: &SledStore, grids: &[TerritoryPath], n: u64, with_rows: bool) -> Result<(), Box<dyn std::error::Error>> {
    let workers = std::thread::available_parallelism().map_or(1, |c| c.get());
    let device = DeviceId(uuid::Uuid::new_v4());
    let times = FillTimes::default();
    let failed: Mutex<Option<String>> = Mutex::new(None);
    let t = Instant::now();
    let mut generate_ns = 0u64;
    std::thread::scope(|threads| -> Result<(), Box<dyn std::error::Error>> {
        let (batches, queue) = sync_channel::<Vec<(u64, VisitFields)>>(workers * 2);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..workers {
            let queue = Arc::clone(&queue);
            let (times, failed) = (&times, &failed);
            threads.spawn(move || {
                loop {
                    let batch = match queue.lock() {
                        Ok(q) => q.recv(),
                        Err(_) => return,
                    };
                    let Ok(batch) = batch else { return };
                    if let Err(e) = build_and_commit(store, grids, device, with_rows, batch, times) {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e.to_string());
                        }
                        return;
                    }
                }
            });
        }
        // Visit logs as the load generator writes them: 600–640 characters of
        // varied notes, two or three concerns.
        let mut rng = rand::rngs::StdRng::seed_from_u64(20261201);
        let mut i = 0;
        while i < n {
            let g = Instant::now();
            let end = (i + FILL_BATCH as u64).min(n);
            let batch: Vec<(u64, VisitFields)> = (i..end)
                .map(|i| (i, gridsync_tests::loadgen::notes::visit(&mut rng, 1_790_000_000_000 + i as i64)))
                .collect();
            generate_ns += g.elapsed().as_nanos() as u64;
            if batches.send(batch).is_err() {
                break; // every builder stopped: the failure is reported below
            }
            i = end;
            if i % 100_000 == 0 {
                eprintln!("filled {i} of {n} in {:.0} s (load {:.1})", t.elapsed().as_secs_f64(), load_average());
            }
        }
        Ok(())
    })?;
    if let Some(e) = failed.lock().map_err(|_| "a builder panicked")?.take() {
        return Err(e.into());
    }
    store.flush()?;
    let secs = t.elapsed().as_secs_f64();
    let ms = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e6 / n.max(1) as f64;
    println!(
        "{{\"bench\":\"fill\",\"records\":{n},\"rows\":{with_rows},\"builders\":{workers},\"seconds\":{secs:.1},\"records_per_second\":{:.0},\"load_average\":{:.1},\"ms_per_record\":{{\"notes\":{:.3},\"build\":{:.3},\"row\":{:.3},\"commit\":{:.3}}}}}",
        n as f64 / secs,
        load_average(),
        generate_ns as f64 / 1e6 / n.max(1) as f64,
        ms(&times.build),
        ms(&times.row),
        ms(&times.commit),
    );
    Ok(())
}

/// Builds one batch's documents (and rows), then commits them in one `commit_docs`.
fn build_and_commit(
    store: &SledStore,
    grids: &[TerritoryPath],
    device: DeviceId,
    with_rows: bool,
    batch: Vec<(u64, VisitFields)>,
    times: &FillTimes,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut writes = Vec::with_capacity(batch.len());
    for (i, fields) in batch {
        let t = Instant::now();
        let grid = &grids[(i as usize) % grids.len()];
        let author = Author {
            person: PersonId(uuid::Uuid::from_u128(i as u128 % 1000)),
            role: Role::FieldStaff,
            territory: grid.clone(),
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
        let changes: Vec<Vec<u8>> = doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
        let t2 = Instant::now();
        times.build.fetch_add((t2 - t).as_nanos() as u64, Ordering::Relaxed);
        let record = read_record(&doc)?;
        let row = with_rows.then(|| encode_row(&record));
        times.row.fetch_add(t2.elapsed().as_nanos() as u64, Ordering::Relaxed);
        writes.push((
            DocWrite {
                doc: id,
                grid: grid.clone(),
                summary: record.summary(),
                // The store keeps the changes; the saved document is needed only without them.
                bytes: Vec::new(),
                heads: doc.get_heads(),
                device,
                changes,
                photos: Vec::new(),
                row,
            },
            Vec::new(),
        ));
    }
    let t = Instant::now();
    store.commit_docs(writes, 1_790_000_000_000)?;
    times.commit.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    Ok(())
}

/// The marker a kept fill leaves beside its store: what it holds.
fn fill_marker(n: u64, with_rows: bool) -> String {
    format!("{{\"records\":{n},\"rows\":{with_rows}}}\n")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let (n, with_rows) = (args.n, args.with_rows);
    measure_rows()?;
    let temp = tempfile::tempdir()?;
    let (store_dir, marker) = match &args.keep {
        Some(dir) => (dir.join("store"), Some(dir.join("filled.json"))),
        None => (temp.path().join("store"), None),
    };
    let reuse = match &marker {
        Some(m) if m.exists() => {
            let held = std::fs::read_to_string(m)?;
            if held != fill_marker(n, with_rows) {
                return Err(format!(
                    "{} holds a fill of {} (asked: {})",
                    m.display(),
                    held.trim(),
                    fill_marker(n, with_rows).trim()
                )
                .into());
            }
            true
        }
        Some(_) if store_dir.exists() => {
            return Err(format!("{} exists but its fill did not finish: remove it", store_dir.display()).into());
        }
        _ => false,
    };
    let t = Instant::now();
    let store = SledStore::open(&store_dir)?;
    if reuse {
        eprintln!("reusing the fill in {} (opened in {:.1} s)", store_dir.display(), t.elapsed().as_secs_f64());
    } else {
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
        fill(&store, &grids, n, with_rows)?;
        if let Some(m) = &marker {
            std::fs::write(m, fill_marker(n, with_rows))?;
        }
    }
    let disk = store.stats()?.disk_bytes;
    eprintln!(
        "{n} visit logs {} ({} MB on disk)",
        if with_rows { "with rows" } else { "without rows" },
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

    for format in &args.formats {
        reset_peak_rss();
        let before = peak_rss_kib();
        let cpu = cpu_seconds();
        let t = Instant::now();
        let req = SnapshotRequest {
            format: format.clone(),
            territory: None,
            as_of: None,
            unmask: false,
            reason: None,
            photos: false,
        };
        let prepared = prepare(&store, &req, "bench")?;
        let mut sink = CountingSink(0);
        let manifest = prepared.write(&store, &mut sink, &mut |_| {})?;
        let secs = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu;
        println!(
            "{{\"bench\":\"export\",\"format\":\"{format}\",\"rows\":{with_rows},\"cores\":{},\"records\":{},\"seconds\":{secs:.2},\"cpu_seconds\":{cpu:.1},\"records_per_second\":{:.0},\"peak_rss_mib\":{:.1},\"rss_before_mib\":{:.1},\"load_average\":{:.1},\"bytes\":{}}}",
            std::thread::available_parallelism().map_or(1, |c| c.get()),
            manifest.counts.total(),
            manifest.counts.total() as f64 / secs,
            peak_rss_kib() as f64 / 1024.0,
            before as f64 / 1024.0,
            load_average(),
            sink.0
        );
    }
    Ok(())
}

/// A writer that keeps nothing and counts the bytes it is given.
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
