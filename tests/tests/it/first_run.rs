//! The README's first run for an administrator, step by step with the real
//! binary and the example files in `docs/city-example/`: an empty store, the
//! city and its first administrator, then territories, people and households
//! imported (dry run first), and a grid manager who signs in with the initial
//! password and has their households. If the README's commands or the example
//! files drift from what the server accepts, this fails.

use gridsync_shared::records::RecordKind;
use gridsync_tests::Phone;
use gridsync_tests::process::{ServerProcess, free_port};
use std::path::{Path, PathBuf};

fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/city-example").join(name);
    assert!(path.exists(), "{} is missing", path.display());
    path.to_str().expect("utf-8 path").to_string()
}

/// Runs one README command on `data` and returns its stdout; fails the test if it fails.
async fn run(data: &Path, args: &[&str]) -> String {
    let out = ServerProcess::cli(data, args).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_first_run_takes_an_empty_store_to_a_city_whose_grid_managers_have_their_households() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("gridsync-data");
    let passwords = dir.path().join("初始密码.csv");

    // 1. The city and its first administrator.
    run(&data, &["territory", "add", "xg", "孝感市"]).await;
    run(
        &data,
        &["person", "add", "--username", "admin", "--name", "管理员", "--role", "administrator", "--territory", "xg"],
    )
    .await;

    // 2. Each file is checked by a dry run, then imported; the server runs meanwhile.
    let server = ServerProcess::start(&data, free_port(), &[]).await;
    for (kind, file) in
        [("territories", "网格划分表.csv"), ("people", "网格员名册.csv"), ("households", "人口信息表.csv")]
    {
        let dry = run(&data, &["import-city", kind, &example(file), "--dry-run"]).await;
        assert!(dry.contains("问题 0 处") && !dry.contains("已导入"), "{kind}: no problems, nothing written: {dry}");
        let file = example(file);
        let mut args = vec!["import-city", kind, &file];
        let pw = passwords.to_str().expect("path").to_string();
        if kind == "people" {
            args.extend(["--passwords-out", &pw]);
        }
        let done = run(&data, &args).await;
        assert!(done.contains("已导入"), "{kind}: {done}");
    }
    let tree = run(&data, &["territory", "list"]).await;
    assert!(tree.contains("东湖社区") && tree.contains("西湖社区"), "{tree}");

    // 3. A grid manager signs in with the password from the file and has the grid's households.
    let csv = std::fs::read_to_string(&passwords).expect("the passwords file");
    let password = csv
        .lines()
        .find(|l| l.contains("zhangwei"))
        .and_then(|l| l.rsplit(',').next())
        .expect("zhangwei's initial password")
        .to_string();
    let mut phone = Phone::sign_in(&server.url, "zhangwei", &password).await.expect("zhangwei signs in");
    phone.sync().await.expect("sync");
    assert_eq!(phone.grid().as_str(), "xg/xn/sy/dh/g01");
    assert_eq!(phone.replica.records_of(Some(RecordKind::Household)).count(), 2, "第一网格 has DH-0001 and DH-0002");

    // 4. Importing the same files again changes nothing.
    let again = run(&data, &["import-city", "households", &example("人口信息表.csv")]).await;
    assert!(again.contains("新建 0，更新 0"), "{again}");
    server.kill().await;
}
