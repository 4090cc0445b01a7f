//! An acknowledged change survives the server process dying: the real
//! `gridsync-server` binary is killed (SIGKILL, no shutdown) and started again.

use gridsync_tests::Phone;
use gridsync_tests::process::{ServerProcess, free_port, small_city};

#[tokio::test]
async fn every_acknowledged_change_survives_a_killed_and_restarted_server() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    small_city(&data, &[("li", "password-li"), ("wang", "password-wang")]).await;

    let port = free_port();
    let server = ServerProcess::start(&data, port, &[]).await;
    let mut phone = Phone::sign_in(&server.url, "li", "password-li").await.expect("sign in");
    let mut acknowledged = Vec::new();
    for i in 0..50 {
        acknowledged.push(phone.record_visit(&format!("第{i}次走访")));
        if i % 10 == 9 {
            let reports = phone.sync().await.expect("sync");
            assert!(reports.iter().all(|r| r.rejected.is_empty()));
        }
    }
    assert_eq!(phone.replica.pending_changes(), 0, "all 50 acknowledged");
    let case = phone.report_case("屋顶漏水");
    phone.follow_up(case, "已联系维修");
    phone.sync().await.expect("sync");
    acknowledged.push(case);

    server.kill().await;
    let server = ServerProcess::start(&data, port, &[]).await;

    let mut other = Phone::sign_in(&server.url, "wang", "password-wang").await.expect("sign in after restart");
    other.sync().await.expect("sync after restart");
    for id in &acknowledged {
        assert!(other.replica.document(*id).is_some(), "acknowledged record {id} lost in the crash");
    }
    let Some(gridsync_shared::Record::Case(c)) = other.replica.record(case) else { panic!("case") };
    assert_eq!(c.follow_ups.len(), 1);
    // The original phone keeps syncing against the restarted server as if nothing happened.
    phone.record_visit("重启后的走访");
    phone.sync().await.expect("sync");
    other.sync().await.expect("sync");
    assert_eq!(phone.replica.document_ids().count(), other.replica.document_ids().count());
    server.kill().await;
}

#[tokio::test]
async fn the_admin_cli_revokes_a_device_while_the_server_runs() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let port = free_port();
    let server = ServerProcess::start(&data, port, &["--demo"]).await;
    // The demo printed passwords we did not capture: add a person through the running server's admin socket.
    let out = ServerProcess::cli(
        &data,
        &[
            "person",
            "add",
            "--username",
            "zhao",
            "--name",
            "赵网格",
            "--role",
            "field_staff",
            "--territory",
            "demo/cq/cn/dh/g01",
            "--password",
            "password-zhao",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut phone = Phone::sign_in(&server.url, "zhao", "password-zhao").await.expect("sign in");
    phone.sync().await.expect("sync");
    assert!(phone.replica.document_ids().count() > 0, "demo households arrive");

    let device = phone.replica.identity().expect("identity").device.to_string();
    let out = ServerProcess::cli(&data, &["device", "revoke", &device]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    phone.record_visit("被注销后的记录");
    let err = phone.sync().await.expect_err("a revoked device is refused");
    assert!(err.to_string().contains("401"), "{err}");
    let audit = ServerProcess::cli(&data, &["audit"]).await;
    assert!(String::from_utf8_lossy(&audit.stdout).contains("device.revoke"));
    server.kill().await;
}
