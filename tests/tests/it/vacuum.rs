//! `gridsync-server vacuum --into`: a stopped store rewritten into a new data
//! directory is the same store — a server started on the copy serves every
//! phone from where it stood, with nothing downloaded again — and the original
//! directory is left as it was. A vacuum killed at any moment leaves the
//! original as it was and no store under the target's name.

use gridsync_tests::Backend;
use gridsync_tests::phone::Phone;
use gridsync_tests::process::{COMMUNITY, CliPerson, ServerProcess, city_on, free_port, server_binary};
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

const PASSWORD: &str = "password-123";

/// Every record the sled store in `dir` holds (opened here: no server runs on it).
fn stored_records(dir: &Path) -> BTreeSet<String> {
    let store = gridsync_server::store::SledStore::open(dir).expect("open the store");
    let city: gridsync_shared::TerritoryPath = COMMUNITY.parse().expect("path");
    let ids = gridsync_server::store::Store::docs_in_scope(&store, &city, None, usize::MAX).expect("records");
    ids.into_iter().map(|(id, _)| id.to_string()).collect()
}

fn records_of(phone: &Phone) -> BTreeSet<String> {
    phone.replica.document_ids().map(|d| d.to_string()).collect()
}

#[tokio::test]
async fn a_vacuumed_copy_serves_every_phone_from_where_it_stood() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, copy) = (tmp.path().join("data"), tmp.path().join("data.vacuumed"));
    let staff = |username| CliPerson { username, password: PASSWORD, role: "field_staff", territory: "g1" };
    city_on(Backend::Sled, &data, &["g1"], &[staff("li"), staff("wang")]).await;
    let port = free_port();
    let server = ServerProcess::start_on(Backend::Sled, &data, port, &[]).await;
    let mut li = Phone::sign_in(&server.url, "li", PASSWORD).await.expect("sign in");
    let mut wang = Phone::sign_in(&server.url, "wang", PASSWORD).await.expect("sign in");
    for i in 0..40 {
        li.record_visit(&format!("第{i}次走访：老人身体健康，家中整洁。"));
        li.sync().await.expect("sync");
    }
    wang.sync().await.expect("sync");
    assert_eq!(records_of(&wang).len(), 40);
    drop(server);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let original = std::fs::read(data.join("db")).expect("the original's file");

    let out = ServerProcess::cli_on(Backend::Sled, &data, &["vacuum", "--into", copy.to_str().expect("path")]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("checked") && stdout.contains("mv "), "{stdout}");
    assert_eq!(std::fs::read(data.join("db")).expect("still there"), original, "the original is left as it was");

    let server = ServerProcess::start_on(Backend::Sled, &copy, port, &[]).await;
    let late = li.record_visit("换目录之后的走访");
    li.sync().await.expect("li syncs on the copy");
    let reports = wang.sync().await.expect("wang syncs on the copy");
    let received: usize = reports.iter().map(|r| r.received).sum();
    assert_eq!(received, 1, "only the visit written since: nothing again");
    assert!(records_of(&wang).contains(&late.to_string()));
    assert_eq!(records_of(&wang), records_of(&li));

    let out = ServerProcess::cli_on(Backend::Sled, &data, &["vacuum", "--into", copy.to_str().expect("path")]).await;
    assert!(!out.status.success(), "a copy in use, or a directory holding anything, is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    drop(server);
}

/// A vacuum of `data` into `into`, one entry per batch (many batches, so that
/// a kill lands between two), as a child process.
fn vacuum_process(data: &Path, into: &Path) -> tokio::process::Child {
    tokio::process::Command::new(server_binary())
        .arg("--data")
        .arg(data)
        .args(["vacuum", "--into"])
        .arg(into)
        .env("GRIDSYNC_VACUUM_BATCH", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn gridsync-server vacuum")
}

#[tokio::test]
async fn a_vacuum_killed_at_any_moment_leaves_the_original_as_it_was_and_no_store_under_the_targets_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, copy) = (tmp.path().join("data"), tmp.path().join("data.vacuumed"));
    let partial = tmp.path().join("data.vacuumed.vacuum-partial");
    let staff = |username| CliPerson { username, password: PASSWORD, role: "field_staff", territory: "g1" };
    city_on(Backend::Sled, &data, &["g1"], &[staff("li"), staff("wang")]).await;
    let port = free_port();
    let server = ServerProcess::start_on(Backend::Sled, &data, port, &[]).await;
    let mut li = Phone::sign_in(&server.url, "li", PASSWORD).await.expect("sign in");
    for i in 0..300 {
        li.record_visit(&format!("第{i}次走访：老人身体健康，家中整洁。"));
    }
    li.sync().await.expect("sync");
    drop(server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let original = std::fs::read(data.join("db")).expect("the original's file");

    // How long a vacuum takes when nothing stops it (its copy then removed).
    let started = Instant::now();
    assert!(vacuum_process(&data, &copy).wait().await.expect("vacuum").success());
    let whole = started.elapsed();
    std::fs::remove_dir_all(&copy).expect("remove the first copy");

    let seed: u64 =
        std::env::var("GRIDSYNC_VACUUM_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("a whole vacuum takes {} ms; kill seed {seed} (GRIDSYNC_VACUUM_KILL_SEED replays it)", whole.as_millis());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut landed = 0;
    for attempt in 0..40 {
        if landed >= 6 {
            break;
        }
        let mut child = vacuum_process(&data, &copy);
        tokio::time::sleep(Duration::from_micros(rng.random_range(0..whole.as_micros().max(1) as u64))).await;
        let _ = child.start_kill();
        if child.wait().await.expect("wait").success() {
            // It ended before the kill: a whole, checked copy. Start again from nothing.
            assert!(copy.exists() && !partial.exists(), "attempt {attempt}: a finished vacuum leaves its copy only");
            std::fs::remove_dir_all(&copy).expect("remove the copy");
            continue;
        }
        if copy.exists() && !partial.exists() {
            // Killed after its last step, the rename that names the finished
            // copy, but before it exited: the copy must be whole.
            assert_eq!(stored_records(&copy), stored_records(&data), "attempt {attempt}: a named copy lacks records");
            std::fs::remove_dir_all(&copy).expect("remove the copy");
            continue;
        }
        assert!(!copy.exists(), "attempt {attempt}: killed part way, yet a store bears the target's name");
        if partial.exists() {
            landed += 1;
        }
        // Opening a store, sled may lengthen its file with zeros (as any start
        // does, and a clean close undoes); not a byte of the original changes.
        let now = std::fs::read(data.join("db")).expect("still there");
        let (kept, added) = now.split_at(original.len().min(now.len()));
        assert!(
            kept == original.as_slice() && added.iter().all(|b| *b == 0),
            "attempt {attempt}: the original changed ({} bytes, now {})",
            original.len(),
            now.len()
        );
    }
    assert!(landed > 0, "no kill landed while the copy was being written (a whole vacuum: {whole:?})");
    println!("{landed} kills landed part way through a copy");

    // The next vacuum replaces the partial copy and serves every record.
    let out = ServerProcess::cli_on(Backend::Sled, &data, &["vacuum", "--into", copy.to_str().expect("path")]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!partial.exists());
    let server = ServerProcess::start_on(Backend::Sled, &copy, port, &[]).await;
    let mut wang = Phone::sign_in(&server.url, "wang", PASSWORD).await.expect("sign in");
    wang.sync().await.expect("sync on the copy");
    assert_eq!(records_of(&wang), records_of(&li), "every record, from the copy");
    drop(server);
}
