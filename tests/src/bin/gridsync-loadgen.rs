//! `gridsync-loadgen`: simulated phones (the real client core) against the real
//! `gridsync-server` binary over loopback; prints one JSON line of figures.
//!
//!   gridsync-loadgen field-day --phones 50 --grids 10 --records 100
//!   gridsync-loadgen steady --phones 100 --grids 10 --rates 250,500,1000,2000
//!   gridsync-loadgen --store scratch --servers 2 field-day   (PostgreSQL, two servers)

use clap::{Parser, Subcommand};
use gridsync_tests::loadgen::city::Deployment;
use gridsync_tests::loadgen::field_day::{self, FieldDay};
use gridsync_tests::loadgen::hold::{self, Hold};
use gridsync_tests::loadgen::steady::{self, Steady};
use gridsync_tests::loadgen::{LoadError, sibling_server_binary};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "gridsync-loadgen",
    about = "Load the gridsync server with simulated phones and print the figures as JSON"
)]
struct Cli {
    /// The server binary to start (default: gridsync-server beside this program).
    #[arg(long, global = true)]
    server_bin: Option<PathBuf>,
    /// Run the servers on PostgreSQL: an address of an empty database, or
    /// `scratch` for a throwaway PostgreSQL started for the run (initdb on a
    /// temporary directory). Unset: the embedded sled store.
    #[arg(long, global = true, env = "GRIDSYNC_STORE")]
    store: Option<String>,
    /// Server processes sharing the PostgreSQL store; phones are spread across them.
    #[arg(long, global = true, default_value_t = 1)]
    servers: usize,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// Phones record visit logs offline, then all reconnect at once and sync until converged.
    FieldDay {
        /// Phones (grid managers).
        #[arg(long, default_value_t = 50)]
        phones: usize,
        /// Grids the phones are spread over.
        #[arg(long, default_value_t = 10)]
        grids: usize,
        /// Visit logs each phone records offline.
        #[arg(long, default_value_t = 100)]
        records: usize,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 1800)]
        timeout_s: u64,
        /// Keep the server's store in this (new) directory instead of a temporary one.
        #[arg(long)]
        keep_data: Option<PathBuf>,
    },
    /// A server holding a city's visit logs while new phones download their grids.
    Hold {
        /// Visit logs in the store.
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
        /// Grids.
        #[arg(long, default_value_t = 100)]
        grids: usize,
        /// Phones that sync (each downloads its whole grid).
        #[arg(long, default_value_t = 10)]
        syncing: usize,
        /// Visit logs each syncing phone pushes.
        #[arg(long, default_value_t = 100)]
        push: usize,
        /// Keep the server's store in this (new) directory instead of a temporary one.
        #[arg(long)]
        keep_data: Option<PathBuf>,
        /// Seconds the server idles after the first reading before its settled RSS is read.
        #[arg(long, default_value_t = 20)]
        settle_s: u64,
    },
    /// Phones sync small edits continuously at each rate in turn.
    Steady {
        /// Phones.
        #[arg(long, default_value_t = 100)]
        phones: usize,
        /// Grids.
        #[arg(long, default_value_t = 10)]
        grids: usize,
        /// Open cases per phone.
        #[arg(long, default_value_t = 5)]
        cases: usize,
        /// Total changes per second to offer, in order.
        #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000,3000")]
        rates: Vec<u32>,
        /// Seconds to hold each rate.
        #[arg(long, default_value_t = 5)]
        step_s: u64,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("gridsync-loadgen: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(cli: Cli) -> Result<String, LoadError> {
    let server = match cli.server_bin {
        Some(p) if p.exists() => p,
        Some(p) => return Err(LoadError::NoServer(p)),
        None => sibling_server_binary()?,
    };
    if cli.servers == 0 || (cli.servers > 1 && cli.store.is_none()) {
        return Err(LoadError::Setup("--servers above 1 needs --store (PostgreSQL)".into()));
    }
    Deployment::set(Deployment { store: cli.store.filter(|s| !s.is_empty()), servers: cli.servers });
    match cli.workload {
        Workload::FieldDay { phones, grids, records, timeout_s, keep_data } => {
            let cfg = FieldDay { phones, grids, records, timeout: Duration::from_secs(timeout_s) };
            Ok(line(&field_day::run(cfg, &server, keep_data.as_deref()).await?))
        }
        Workload::Hold { records, grids, syncing, push, keep_data, settle_s } => {
            let settle = std::time::Duration::from_secs(settle_s);
            Ok(line(&hold::run(Hold { records, grids, syncing, push, keep_data, settle }, &server).await?))
        }
        Workload::Steady { phones, grids, cases, rates, step_s } => {
            if rates.is_empty() || cases == 0 {
                return Err(LoadError::Setup("need at least one rate and one case per phone".into()));
            }
            let cfg = Steady { phones, grids, cases, rates, step: Duration::from_secs(step_s) };
            Ok(line(&steady::run(cfg, &server).await?))
        }
    }
}

/// A report as one JSON line.
fn line(report: &impl serde::Serialize) -> String {
    serde_json::to_string(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
