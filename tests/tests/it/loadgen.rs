//! The load generator itself, at toy size: a field day converges with exact
//! counts, a steady run gets every offered change acknowledged, and a filled
//! store serves new phones their whole grid. (Its figures
//! at full size are in BENCHMARKS.md; nothing here checks speed.)

use gridsync_tests::loadgen::field_day::{self, FieldDay};
use gridsync_tests::loadgen::hold::{self, Hold};
use gridsync_tests::loadgen::steady::{self, Steady};
use gridsync_tests::process::server_binary;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_field_day_converges_and_reports_every_figure() {
    let cfg = FieldDay { phones: 6, grids: 2, records: 5, timeout: Duration::from_secs(120) };
    let report = field_day::run(cfg, &server_binary(), None).await.expect("field day");
    assert_eq!(report.records, 30);
    // Each record reaches the two other phones of its grid exactly once.
    assert_eq!(report.deliveries, 60, "{report:?}");
    assert_eq!(report.round_trips_to_push.max, 1, "5 records fit one request");
    assert!(report.server_cpu_s > 0.0 && report.server_peak_rss_mib > 1.0, "{report:?}");
    assert!(report.disk_bytes_per_record > 0.0 && report.wire_up_bytes_per_record > 100.0, "{report:?}");
    // One latency per request (the mean is rounded to two decimals).
    assert!((report.sync_latency.count as f64 - report.round_trips_per_phone.mean * 6.0).abs() < 0.1, "{report:?}");
    let line = serde_json::to_string(&report).expect("json");
    assert!(line.contains("\"workload\":\"field-day\"") && !line.contains('\n'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_run_gets_every_offered_change_acknowledged() {
    let cfg = Steady { phones: 4, grids: 1, cases: 2, rates: vec![20, 40], step: Duration::from_secs(1) };
    let report = steady::run(cfg, &server_binary()).await.expect("steady");
    let changes: Vec<u64> = report.steps.iter().map(|s| s.changes).collect();
    assert_eq!(changes, vec![20, 40], "{report:?}");
    for step in &report.steps {
        assert_eq!(step.change_latency.count as u64, step.changes);
        assert_eq!(step.request_latency.count as u64, step.requests);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_holding_a_filled_store_serves_new_phones_their_whole_grid() {
    let cfg = Hold { records: 200, grids: 4, syncing: 2, push: 3, keep_data: None, settle: Duration::ZERO };
    let report = hold::run(cfg, &server_binary()).await.expect("hold");
    assert_eq!((report.syncing_phones, report.records_per_grid), (2, 50));
    assert!(report.disk_mb > 0.0 && report.server_idle_rss_mib > 1.0, "{report:?}");
    assert!(report.server_peak_rss_mib >= report.server_idle_rss_mib, "{report:?}");
}
