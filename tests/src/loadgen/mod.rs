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

/// The `gridsync-server` binary next to the running executable (both built
/// by the same `cargo build`).
pub fn sibling_server_binary() -> Result<PathBuf, LoadError> {
    let exe = std::env::current_exe().map_err(|e| LoadError::Setup(e.to_string()))?;
    let dir = exe.parent().ok_or_else(|| LoadError::Setup("executable has no directory".into()))?;
    // A test executable lives one level deeper, in target/<profile>/deps.
    for candidate in [dir.join("gridsync-server"), dir.join("..").join("gridsync-server")] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(LoadError::NoServer(dir.join("gridsync-server")))
}
