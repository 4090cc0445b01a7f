//! `gridsync-server vacuum --into`: a stopped store rewritten into a new data
//! directory is the same store — a server started on the copy serves every
//! phone from where it stood, with nothing downloaded again — and the original
//! directory is left as it was.

use gridsync_tests::phone::Phone;
use gridsync_tests::process::{CliPerson, ServerProcess, city, free_port};
use std::collections::BTreeSet;

const PASSWORD: &str = "password-123";

fn records_of(phone: &Phone) -> BTreeSet<String> {
    phone.replica.document_ids().map(|d| d.to_string()).collect()
}

#[tokio::test]
async fn a_vacuumed_copy_serves_every_phone_from_where_it_stood() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, copy) = (tmp.path().join("data"), tmp.path().join("data.vacuumed"));
    let staff = |username| CliPerson { username, password: PASSWORD, role: "field_staff", territory: "g1" };
    city(&data, &["g1"], &[staff("li"), staff("wang")]).await;
    let port = free_port();
    let server = ServerProcess::start(&data, port, &[]).await;
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

    let out = ServerProcess::cli(&data, &["vacuum", "--into", copy.to_str().expect("path")]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("checked") && stdout.contains("mv "), "{stdout}");
    assert_eq!(std::fs::read(data.join("db")).expect("still there"), original, "the original is left as it was");

    let server = ServerProcess::start(&copy, port, &[]).await;
    let late = li.record_visit("换目录之后的走访");
    li.sync().await.expect("li syncs on the copy");
    let reports = wang.sync().await.expect("wang syncs on the copy");
    let received: usize = reports.iter().map(|r| r.received).sum();
    assert_eq!(received, 1, "only the visit written since: nothing again");
    assert!(records_of(&wang).contains(&late.to_string()));
    assert_eq!(records_of(&wang), records_of(&li));

    let out = ServerProcess::cli(&data, &["vacuum", "--into", copy.to_str().expect("path")]).await;
    assert!(!out.status.success(), "a copy in use, or a directory holding anything, is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    drop(server);
}
