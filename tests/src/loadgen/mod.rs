//! The load generator behind `gridsync-loadgen`: many phones running the real
//! client core against the real server binary over loopback, and the figures
//! that say how far one server goes.

pub mod city;
pub mod field_day;
pub mod hold;
pub mod measure;
pub mod notes;
pub mod steady;

pub use city::City;

use std::path::PathBuf;
use thiserror::Error;

/// Why a load run could not finish.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The city could not be set up.
    #[error("setup: {0}")]
    Setup(String),
    /// A phone's sync failed.
    #[error("phone {phone}: {error}")]
    Phone {
        /// Which phone.
        phone: usize,
        /// What went wrong.
        error: Box<crate::phone::PhoneError>,
    },
    /// The phones did not converge in time.
    #[error("not converged after {0:.0} s")]
    Timeout(f64),
    /// The server binary is missing.
    #[error("no server binary at {0}: build it with `cargo build --release -p gridsync-server`")]
    NoServer(PathBuf),
}

/// The `gridsync-server` binary built alongside the running executable (by
/// the same `cargo build`); never builds one, so a release load run cannot
/// silently measure a debug server.
pub fn sibling_server_binary() -> Result<PathBuf, LoadError> {
    crate::process::built_server_binary().ok_or_else(|| LoadError::NoServer(PathBuf::from("gridsync-server")))
}
