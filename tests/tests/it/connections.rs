//! Connections under control: idle, slow-header and slow-body connections are
//! closed by the server on their deadlines while a phone keeps syncing; over
//! the cap a connection is closed at once; an unauthenticated request that
//! declares a large body is refused before a byte of it is read.

use gridsync_server::Limits;
use gridsync_server::connections::ConnectionLimits;
use gridsync_tests::TestServer;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short deadlines, so that the test sees them pass.
fn short_deadlines(max_connections: usize) -> Limits {
    Limits {
        connections: ConnectionLimits {
            max_connections,
            header_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(2),
            body_grace: Duration::from_secs(1),
            body_min_rate: 1000,
            send_timeout: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(1),
        },
        ..Limits::default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Connects and sends nothing.
    Idle,
    /// Sends a request head one line every 300 ms, never finishing it.
    SlowHeader,
    /// Sends a complete, authenticated head declaring 100 kB, then 10 bytes every 300 ms.
    SlowBody,
}

/// One hostile connection: returns how long the server took to close it
/// (None if it was still open after `give_up`).
async fn hostile(addr: String, kind: Kind, token: String, give_up: Duration) -> Option<Duration> {
    let mut tcp = match TcpStream::connect(&addr).await {
        Ok(t) => t,
        Err(e) => panic!("connect failed: {e}"),
    };
    let opened = Instant::now();
    match kind {
        Kind::Idle => {}
        Kind::SlowHeader => tcp.write_all(b"POST /v1/sync HTTP/1.1\r\n").await.ok()?,
        Kind::SlowBody => {
            let head = format!(
                "POST /v1/sync HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/x-gridsync\r\nContent-Length: 100000\r\n\r\n"
            );
            tcp.write_all(head.as_bytes()).await.ok()?;
        }
    }
    let mut buf = [0u8; 4096];
    let mut line = 0u32;
    loop {
        if opened.elapsed() > give_up {
            return None;
        }
        tokio::select! {
            read = tcp.read(&mut buf) => match read {
                // The server closed (or answered and then closed): done.
                Ok(0) | Err(_) => return Some(opened.elapsed()),
                Ok(_) => continue,
            },
            _ = tokio::time::sleep(Duration::from_millis(300)) => {
                let more: Vec<u8> = match kind {
                    Kind::Idle => continue,
                    Kind::SlowHeader => format!("X-Slow-{line}: 1\r\n").into_bytes(),
                    Kind::SlowBody => vec![b'x'; 10],
                };
                line += 1;
                if tcp.write_all(&more).await.is_err() {
                    return Some(opened.elapsed());
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_and_slow_connections_are_closed_while_a_phone_keeps_syncing() {
    // The server and the hostile clients share this process: two descriptors each.
    let fds = gridsync_server::connections::raise_fd_limit().unwrap_or(1024);
    let n = 1000usize.min((fds as usize).saturating_sub(200) / 2);
    println!("open-file limit {fds}: {n} hostile connections");
    let server = TestServer::start_with(short_deadlines(4000)).await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    phone.record_visit("开始之前");
    phone.sync().await.expect("first sync");
    let token = phone.token().to_string();

    let kinds = [Kind::Idle, Kind::SlowHeader, Kind::SlowBody];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let kind = kinds[i % 3];
        let (addr, token) = (server.addr().to_string(), token.clone());
        tasks.spawn(async move { (kind, hostile(addr, kind, token, Duration::from_secs(12)).await) });
        if i % 100 == 99 {
            // Connect in bursts of 100, not all in one instant: a client whose
            // handshake the kernel dropped on a full accept queue and that then
            // sends nothing would never learn it (the server never had it).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Meanwhile the phone records and syncs, again and again.
    let mut latencies = Vec::new();
    let started = Instant::now();
    let mut during_open = 0;
    while started.elapsed() < Duration::from_secs(6) {
        phone.record_visit("走访：一切正常");
        let t = Instant::now();
        phone.sync().await.expect("a sync during the flood succeeds");
        latencies.push(t.elapsed());
        // The first deadline (1 s grace for slow bodies) has not passed yet.
        during_open += usize::from(started.elapsed() < Duration::from_millis(900));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(phone.replica.pending_changes(), 0, "every visit was acknowledged");

    let mut closed = std::collections::HashMap::<&str, Vec<Duration>>::new();
    let mut still_open = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("hostile task") {
            (kind, Some(after)) => closed.entry(kind_name(kind)).or_default().push(after),
            (_, None) => still_open += 1,
        }
    }
    latencies.sort();
    println!(
        "phone: {} syncs during the flood ({} while all {n} were open), p50 {:?}, max {:?}",
        latencies.len(),
        during_open,
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    for (kind, times) in &mut closed {
        times.sort();
        println!(
            "{kind}: {} closed by the server, median after {:?}, last after {:?}",
            times.len(),
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }
    assert_eq!(still_open, 0, "every idle or slow connection is closed by the server");
    // Deadlines of 2 s (idle, header) and 1 s grace + 1000 B/s (body): closed after them, not before.
    for (kind, times) in &closed {
        assert!(times[0] >= Duration::from_millis(900), "{kind} closed too early: {:?}", times[0]);
    }
    // A generous sanity bound on a loaded 2-core machine, not a latency target.
    assert!(latencies.iter().all(|l| *l < Duration::from_secs(5)), "a sync took more than 5 s: {latencies:?}");

    let health: serde_json::Value =
        reqwest::get(format!("{}/healthz", server.url)).await.expect("healthz").json().await.expect("json");
    println!("connections: {}", health["connections"]);
    let c = &health["connections"];
    assert!(c["closed_idle"].as_u64().unwrap_or(0) >= (n / 3) as u64);
    assert!(c["closed_slow_header"].as_u64().unwrap_or(0) >= (n / 3) as u64);
    assert!(c["closed_slow_body"].as_u64().unwrap_or(0) >= (n / 3) as u64);
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Idle => "idle",
        Kind::SlowHeader => "slow header",
        Kind::SlowBody => "slow body",
    }
}

#[tokio::test]
async fn over_the_cap_a_connection_is_closed_at_once_and_served_again_once_idle_ones_time_out() {
    let server = TestServer::start_with(short_deadlines(20)).await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    // Fill the cap with idle connections.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(server.addr()).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(server.addr()).await.expect("the kernel still accepts");
    let t = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(1), extra.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "a connection over the cap is closed at once: {read:?}");
    println!("over the cap: closed after {:?}", t.elapsed());

    // The idle ones time out (2 s); then the phone is served.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    phone.record_visit("上限之后");
    phone.sync().await.expect("served once idle connections were closed");
    let health: serde_json::Value =
        reqwest::get(format!("{}/healthz", server.url)).await.expect("healthz").json().await.expect("json");
    assert!(health["connections"]["refused"].as_u64().unwrap_or(0) >= 1, "{}", health["connections"]);
    drop(idle);
}

#[tokio::test]
async fn an_unauthenticated_request_declaring_8_mb_is_refused_before_its_body_is_read() {
    let server = TestServer::start().await;
    for auth in ["", "Authorization: Bearer 00000000-0000-0000-0000-000000000000.bad\r\n"] {
        let mut tcp = TcpStream::connect(server.addr()).await.expect("connect");
        let head = format!(
            "POST /v1/sync HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/x-gridsync\r\n\
             Content-Length: {}\r\n\r\nonly a few bytes",
            server.addr(),
            8 * 1024 * 1024
        );
        let t = Instant::now();
        tcp.write_all(head.as_bytes()).await.expect("send head");
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        // The rest of the 8 MB never comes: only an answer that did not wait for it arrives.
        let read = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        answer.extend_from_slice(&buf[..n]);
                        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
        })
        .await;
        assert!(read.is_ok(), "no answer within 3 s: the server waited for the body");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 401"), "expected 401, got {text:?}");
        println!("401 after {:?} ({})", t.elapsed(), if auth.is_empty() { "no token" } else { "bad token" });
    }
}

#[tokio::test]
async fn a_body_too_slow_to_finish_is_answered_408_with_a_reason_in_chinese() {
    let server = TestServer::start_with(short_deadlines(100)).await;
    let grid = server.grid("g1");
    let phone = server.phone_in(&grid).await;
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut tcp = TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /v1/sync HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/x-gridsync\r\nContent-Length: 100000\r\n\r\n",
        phone.token()
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    let mut answer = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        tokio::select! {
            read = tcp.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            _ = tokio::time::sleep(Duration::from_millis(300)) => {
                if tcp.write_all(&[b'x'; 10]).await.is_err() {
                    break;
                }
            }
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout") && answer.contains("请求数据传输过慢"), "{answer}");
}
