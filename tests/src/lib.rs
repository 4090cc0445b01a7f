//! Test harness: a real gridsync server on loopback (in-process or as the real
//! binary), and phones that run the real client core over real HTTP.
//!
//! A test reads as its scenario: `let server = TestServer::start().await;`,
//! `let grid = server.grid("g1");`, `let mut phone = server.phone_in(&grid).await;`,
//! `phone.record_visit("...")`, `phone.sync().await`.

pub mod chaos;
pub mod loadgen;
pub mod phone;
pub mod process;
pub mod proxy;
pub mod server;
pub mod stores;
pub mod test_store;
pub mod watchdog;

pub use phone::{Phone, PhoneError, Transport, assert_converged};
pub use process::ServerProcess;
pub use server::{PASSWORD, TestServer};
pub use stores::Backend;
pub use watchdog::Watchdog;

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    gridsync_server::http::now_ms()
}
