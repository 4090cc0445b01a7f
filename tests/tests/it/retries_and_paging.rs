//! Syncs survive the network: a lost response is retried without duplicates or
//! losses, a phone back from a long time offline catches up in bounded pages,
//! and a new phone starts from compacted documents.

use gridsync_shared::protocol::{self, DocBody, PAGE_BYTES_RANGE, SyncRequest, SyncResponse};
use gridsync_tests::{TestServer, assert_converged};

#[tokio::test]
async fn a_lost_response_then_the_same_request_retried_duplicates_nothing_and_loses_nothing() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let mut other = server.phone_in(&grid).await;
    other.record_visit("邻居的走访记录");
    other.sync().await.expect("other syncs");

    let visit = phone.record_visit("三楼王阿姨反映楼道灯坏了");
    let case = phone.report_case("楼道灯损坏");
    let request = phone.replica.build_request();

    // The server stores the push, but the response never reaches the phone.
    let _lost = phone.post_sync(&request).await.expect("first attempt reaches the server");
    let seq_after_first = server.store().head_seq().expect("seq");
    assert_eq!(phone.replica.pending_changes(), 2, "unacknowledged changes stay in the outbox");

    // The phone retries the very same bytes.
    let response = phone.post_sync(&request).await.expect("retry");
    let decoded: SyncResponse = protocol::decode(&response).expect("decodes");
    assert!(decoded.results.iter().all(|r| r.outcome == protocol::PushOutcome::Duplicate), "{decoded:?}");
    let report = phone.replica.apply_response(&response, 1).expect("apply");
    assert_eq!(report.acknowledged, 2);
    assert_eq!(phone.replica.pending_changes(), 0);
    assert_eq!(server.store().head_seq().expect("seq"), seq_after_first, "the retry appended nothing to the feed");

    let ids = server.doc_ids(&grid);
    assert_eq!(ids.len(), 3, "the neighbour's visit, our visit and our case — once each");
    assert!(ids.contains(&visit) && ids.contains(&case));
    let feed = server.store().feed_after(&grid, 0, usize::MAX).expect("feed");
    assert_eq!(feed.iter().filter(|e| e.doc == visit).count(), 1, "one feed entry for the visit");
    assert_eq!(phone.replica.document_ids().count(), 3, "the neighbour's visit arrived too");

    phone.sync().await.expect("sync");
    other.sync().await.expect("sync");
    assert_converged(&server, &[&phone, &other], &grid);
}

#[tokio::test]
async fn a_phone_offline_for_5000_changes_catches_up_in_several_bounded_pages() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut busy = server.phone_in(&grid).await;
    let mut away = server.phone_in(&grid).await;
    away.sync().await.expect("away syncs once, then goes offline");

    for i in 0..5_000 {
        busy.record_visit(&format!("第{i}户走访：家中老人身体健康，子女在外务工，反映小区停车难。"));
    }
    let pushes = busy.sync().await.expect("busy pushes");
    assert!(pushes.len() > 1, "5,000 changes are pushed in several bounded requests, not one");
    assert_eq!(busy.replica.pending_changes(), 0);

    // The returning phone asks for small pages and gets exactly that many bytes per page.
    let page = PAGE_BYTES_RANGE.0 * 16;
    let mut pages = 0;
    loop {
        let request = away.replica.build_request_with_page(page);
        let response = away.post_sync(&request).await.expect("page");
        let decoded: SyncResponse = protocol::decode(&response).expect("decodes");
        let payload: usize = decoded.updates.iter().map(|u| u.body.len()).sum();
        let largest = decoded.updates.iter().map(|u| u.body.len()).max().unwrap_or(0);
        assert!(payload <= page as usize + largest, "page of {payload} bytes exceeds the asked {page}");
        assert!(decoded.updates.iter().all(|u| matches!(u.body, DocBody::Changes(_))), "a known phone gets changes");
        let report = away.replica.apply_response(&response, 1).expect("apply");
        pages += 1;
        if !report.more {
            break;
        }
    }
    assert!(pages >= 5, "5,000 visit logs took {pages} pages");
    assert_eq!(away.replica.document_ids().count(), 5_000);
    assert_converged(&server, &[&away, &busy], &grid);

    // A new phone in the grid starts from compacted documents, not from the change history.
    let mut fresh = server.phone_in(&grid).await;
    let request = protocol::encode(&SyncRequest { cursor: None, push: vec![], max_response_bytes: page });
    let first: SyncResponse = protocol::decode(&fresh.post_sync(&request).await.expect("first page")).expect("decodes");
    assert!(!first.updates.is_empty());
    assert!(first.updates.iter().all(|u| matches!(u.body, DocBody::Snapshot(_))), "a new phone gets saved documents");
    let reports = fresh.sync().await.expect("fresh catches up");
    assert_eq!(fresh.replica.document_ids().count(), 5_000);
    let received: usize = reports.iter().map(|r| r.received).sum();
    assert_eq!(received, 5_000, "each record is sent once across the snapshot's pages");
    assert_converged(&server, &[&fresh], &grid);
}
