//! The integration tests, one module per behaviour, built as one test binary
//! (one link instead of one per file: minutes off `./dev test` on two cores).
//! Each module starts the real server it needs (in process or the binary) on loopback.

mod admin_console;
mod app_files;
mod backup_restore;
mod city_import;
mod cli_snapshot;
mod concurrent_edits;
mod concurrent_moves;
mod connections;
mod convergence;
mod crash_loop;
mod deploy;
mod directory;
mod disk_full;
mod durability;
mod faulty_network;
mod feed_order;
mod field_day_interleavings;
mod first_run;
mod fuzz_http;
mod hostile_input;
mod https;
mod kept_records;
mod loadgen;
mod lost_responses;
mod metrics;
mod move_to_postgres;
mod overload;
mod people;
mod person_move;
mod photos;
mod postgres_store;
mod property;
mod reauthor;
mod references;
mod refused_work;
mod rejections;
mod reports;
mod retries_and_paging;
mod sign_in;
mod snapshots;
mod store_upgrade;
mod vacuum;
mod voiding;
mod watchdog;
