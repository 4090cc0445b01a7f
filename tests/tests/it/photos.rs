//! Photos over HTTP against a real server on loopback: chunked, resumable,
//! idempotent uploads checked before their bodies are read; verified bytes
//! stored durably before they are acknowledged; served only to those who may
//! read a record that references them; and record syncs that never wait behind photos.

use gridsync_server::Limits;
use gridsync_server::backpressure::SyncLimits;
use gridsync_server::photos::{PhotoLimits, photo_hash};
use gridsync_shared::DocId;
use gridsync_shared::photos::{NewPhoto, PhotoHash, PhotoType};
use gridsync_tests::phone::Backoff;
use gridsync_tests::process::{ServerProcess, free_port, small_city};
use gridsync_tests::server::CITY;
use gridsync_tests::{Phone, TestServer};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes that start like a JPEG (the magic the server sniffs), then noise from `seed`.
fn jpeg(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE0];
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    out.truncate(len);
    out
}

/// Bytes that are a PNG by their magic.
fn png(len: usize) -> Vec<u8> {
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    out.resize(len, 7);
    out
}

/// Attaches a photo of `bytes` named `mime` to `doc` on the phone and pushes it.
async fn attach(phone: &mut Phone, doc: DocId, bytes: &[u8], mime: PhotoType) -> PhotoHash {
    let hash = photo_hash(bytes);
    let photo = NewPhoto {
        sha256: hash.clone(),
        size: bytes.len() as u64,
        mime,
        taken_at: phone.clock,
        location: None,
        follow_up: None,
    };
    phone.edit(doc, |e| e.add_photos(&[photo])).expect("attach photo");
    let reports = phone.sync().await.expect("sync");
    assert!(reports.iter().all(|r| r.rejected.is_empty()), "the photo's record is accepted: {reports:?}");
    hash
}

/// One `PUT /v1/photos/{hash}` chunk; the status and the JSON answer.
async fn put(
    url: &str,
    token: &str,
    hash: &PhotoHash,
    mime: &str,
    size: u64,
    offset: u64,
    chunk: &[u8],
) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .put(format!("{url}/v1/photos/{hash}"))
        .bearer_auth(token)
        .header("content-type", mime)
        .header("x-photo-size", size.to_string())
        .header("x-upload-offset", offset.to_string())
        .body(chunk.to_vec())
        .send()
        .await
        .expect("put");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Uploads `bytes` in chunks of `chunk` bytes from `from`, as a phone does; the last answer.
async fn upload_from(url: &str, token: &str, bytes: &[u8], mime: &str, chunk: usize, from: usize) -> (u16, Value) {
    let hash = photo_hash(bytes);
    let mut offset = from;
    loop {
        let end = (offset + chunk).min(bytes.len());
        let (status, body) = put(url, token, &hash, mime, bytes.len() as u64, offset as u64, &bytes[offset..end]).await;
        if status != 200 || body["stored"] == true {
            return (status, body);
        }
        assert_eq!(body["received"], end as u64, "each chunk is acknowledged with the bytes held");
        offset = end;
    }
}

async fn upload(url: &str, token: &str, bytes: &[u8], mime: &str, chunk: usize) -> (u16, Value) {
    upload_from(url, token, bytes, mime, chunk, 0).await
}

/// `GET /v1/photos/{hash}/upload`.
async fn upload_status(url: &str, token: &str, hash: &PhotoHash) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{url}/v1/photos/{hash}/upload"))
        .bearer_auth(token)
        .send()
        .await
        .expect("status");
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

/// `GET /v1/photos/{hash}`: the response.
async fn download(url: &str, token: &str, hash: &PhotoHash) -> reqwest::Response {
    reqwest::Client::new().get(format!("{url}/v1/photos/{hash}")).bearer_auth(token).send().await.expect("get")
}

/// The head of a PUT written by hand, for bodies that are cut or never sent.
fn raw_put_head(addr: &str, token: &str, hash: &PhotoHash, size: u64, offset: u64, length: u64) -> String {
    format!(
        "PUT /v1/photos/{hash} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: image/jpeg\r\nX-Photo-Size: {size}\r\nX-Upload-Offset: {offset}\r\n\
         Content-Length: {length}\r\n\r\n"
    )
}

/// Reads one response from a raw connection until its JSON body is complete (or 5 s pass).
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut piece = [0u8; 4096];
    while Instant::now() < deadline {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((_, body)) = text.split_once("\r\n\r\n")
            && body.trim_end().ends_with('}')
        {
            return text;
        }
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut piece)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&piece[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&buf).to_string()
}

/// Waits until the server holds `want` bytes of the upload (a cut request is handled a moment after the cut).
async fn wait_for_received(url: &str, token: &str, hash: &PhotoHash, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = upload_status(url, token, hash).await;
        assert_eq!(status, 200, "{body}");
        let received = body["received"].as_u64().expect("received");
        if received == want || Instant::now() > deadline {
            return received;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_photo_uploaded_in_chunks_is_stored_and_served_with_an_immutable_etag_and_a_304() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let visit = phone.record_visit("楼道堆物");
    let bytes = jpeg(250_000, 1);
    let hash = attach(&mut phone, visit, &bytes, PhotoType::Jpeg).await;
    let (url, token) = (server.url.clone(), phone.token().to_string());

    assert_eq!(upload_status(&url, &token, &hash).await, (200, serde_json::json!({"stored": false, "received": 0})));
    // A chunk that does not start where the held bytes end is told where to resume.
    let (status, body) = put(&url, &token, &hash, "image/jpeg", 250_000, 1000, &bytes[1000..2000]).await;
    assert_eq!((status, body["error"].as_str(), body["received"].as_u64()), (409, Some("upload_offset"), Some(0)));

    let started = Instant::now();
    let (status, body) = upload(&url, &token, &bytes, "image/jpeg", 100_000).await;
    let took = started.elapsed();
    assert_eq!((status, body), (200, serde_json::json!({"stored": true, "received": 250_000})));
    eprintln!("250 KB in three chunks over loopback: {took:?}");
    assert!(server.store().has_photo(&hash).expect("store"));
    assert_eq!(upload_status(&url, &token, &hash).await.1, serde_json::json!({"stored": true, "received": 250_000}));

    let resp = download(&url, &token, &hash).await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "image/jpeg");
    assert_eq!(h["etag"].to_str().expect("etag"), format!("\"{hash}\""));
    assert_eq!(h["cache-control"], "private, max-age=31536000, immutable");
    assert_eq!(resp.bytes().await.expect("bytes").as_ref(), bytes.as_slice());

    let again = reqwest::Client::new()
        .get(format!("{url}/v1/photos/{hash}"))
        .bearer_auth(&token)
        .header("if-none-match", format!("\"{hash}\""))
        .send()
        .await
        .expect("revalidate");
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.expect("body").is_empty());
}

#[tokio::test]
async fn a_300_kb_photo_cut_off_at_80_percent_continues_from_the_servers_received() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let case = phone.report_case("地下室墙体开裂");
    let bytes = jpeg(300 * 1024, 2);
    let hash = attach(&mut phone, case, &bytes, PhotoType::Jpeg).await;
    let (url, token) = (server.url.clone(), phone.token().to_string());
    let size = bytes.len() as u64;
    let cut = bytes.len() * 8 / 10;

    // The first chunk (256 KiB declared) loses its connection after 80 % of the photo.
    let started = Instant::now();
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let head = raw_put_head(server.addr(), &token, &hash, size, 0, 262_144);
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&bytes[..cut]).await.expect("80 %");
    stream.flush().await.expect("flush");
    drop(stream);

    let received = wait_for_received(&url, &token, &hash, cut as u64).await;
    assert_eq!(received, cut as u64, "the server kept every byte that arrived before the cut");
    assert!(!server.store().has_photo(&hash).expect("store"));

    // The phone resumes from there: only the last 20 % cross the network again.
    let (status, body) = upload_from(&url, &token, &bytes, "image/jpeg", 262_144, received as usize).await;
    assert_eq!((status, body), (200, serde_json::json!({"stored": true, "received": size})));
    eprintln!("300 KB photo, cut at 80 % and resumed, over loopback: {:?}", started.elapsed());
    let served = download(&url, &token, &hash).await.bytes().await.expect("bytes");
    assert_eq!(served.as_ref(), bytes.as_slice(), "the resumed photo is whole");
}

#[tokio::test]
async fn a_second_upload_of_a_stored_photo_is_answered_stored_without_its_body() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let visit = phone.record_visit("消防通道堵塞");
    let bytes = jpeg(200_000, 3);
    let hash = attach(&mut phone, visit, &bytes, PhotoType::Jpeg).await;
    assert_eq!(upload(&server.url, phone.token(), &bytes, "image/jpeg", 262_144).await.0, 200);

    // A phone in another grid photographed the same thing (the same bytes) on its own record.
    let other_grid = server.grid("g2");
    let mut other = server.phone_in(&other_grid).await;
    let its_visit = other.record_visit("同一处堵塞");
    assert_eq!(attach(&mut other, its_visit, &bytes, PhotoType::Jpeg).await, hash);

    // Its upload declares the whole body and sends none of it: the answer comes at once.
    for token in [phone.token(), other.token()] {
        let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
        let head = raw_put_head(server.addr(), token, &hash, 200_000, 0, 200_000);
        stream.write_all(head.as_bytes()).await.expect("head");
        let answer = read_response(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains(r#"{"stored":true,"received":200000}"#), "{answer}");
    }
    assert_eq!(server.store().upload_received(&hash).expect("store"), 0, "nothing was appended");
}

#[tokio::test]
async fn a_photo_no_record_the_caller_may_write_references_is_refused_409_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let bytes = jpeg(50_000, 4);
    let hash = photo_hash(&bytes);
    let (url, token) = (server.url.clone(), phone.token().to_string());

    // Nobody references it yet: push the record first.
    let (status, body) = put(&url, &token, &hash, "image/jpeg", 50_000, 0, &bytes).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("photo_not_referenced")), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("请先同步")), "{body}");
    assert_eq!(upload_status(&url, &token, &hash).await.0, 409);

    // A record in another grid references it: still not this phone's to upload.
    let other_grid = server.grid("g2");
    let mut other = server.phone_in(&other_grid).await;
    let visit = other.record_visit("别的网格");
    attach(&mut other, visit, &bytes, PhotoType::Jpeg).await;
    let (status, body) = put(&url, &token, &hash, "image/jpeg", 50_000, 0, &bytes).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("photo_not_referenced")));

    // Its own record names it with another size: refused too.
    let own = phone.record_visit("本网格");
    attach(&mut phone, own, &bytes, PhotoType::Jpeg).await;
    let (status, body) = put(&url, &token, &hash, "image/jpeg", 49_999, 0, &bytes[..49_999]).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("photo_not_referenced")));
    assert!(!server.store().has_photo(&hash).expect("store"));
    assert_eq!(server.store().upload_received(&hash).expect("store"), 0);
}

#[tokio::test]
async fn a_wrong_hash_png_bytes_named_jpeg_and_a_too_large_photo_are_refused_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let visit = phone.record_visit("三张有问题的照片");
    let (url, token) = (server.url.clone(), phone.token().to_string());

    // Bytes that are not the ones the record names (same size, same type, another SHA-256).
    let named = jpeg(120_000, 5);
    let hash = attach(&mut phone, visit, &named, PhotoType::Jpeg).await;
    let impostor = jpeg(120_000, 6);
    let (status, body) = put(&url, &token, &hash, "image/jpeg", 120_000, 0, &impostor).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("photo_invalid")), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("编号不符")), "{body}");
    assert!(!server.store().has_photo(&hash).expect("store"));
    assert_eq!(server.store().upload_received(&hash).expect("store"), 0, "the bad upload was discarded");
    // The right bytes still go up afterwards.
    assert_eq!(upload(&url, &token, &named, "image/jpeg", 262_144).await.0, 200);

    // A PNG named JPEG: its hash is right, its magic bytes are not.
    let not_jpeg = png(80_000);
    let png_hash = attach(&mut phone, visit, &not_jpeg, PhotoType::Jpeg).await;
    let (status, body) = upload(&url, &token, &not_jpeg, "image/jpeg", 50_000).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("photo_invalid")), "{body}");
    assert!(!server.store().has_photo(&png_hash).expect("store"));
    assert_eq!(server.store().upload_received(&png_hash).expect("store"), 0);
    // Named as a type photos may not be at all.
    let (status, _) = put(&url, &token, &png_hash, "image/png", 80_000, 0, &not_jpeg).await;
    assert_eq!(status, 415);

    // Larger than a photo may be, or a chunk larger than a request may carry: refused before the body.
    let big = jpeg(2 * 1024 * 1024, 7);
    let big_hash = photo_hash(&big);
    let (status, body) = put(&url, &token, &big_hash, "image/jpeg", big.len() as u64, 0, &big[..100]).await;
    assert_eq!((status, body["error"].as_str()), (413, Some("payload_too_large")), "{body}");
    let fits = jpeg(900_000, 8);
    let fits_hash = attach(&mut phone, visit, &fits, PhotoType::Jpeg).await;
    let (status, _) = put(&url, &token, &fits_hash, "image/jpeg", 900_000, 0, &fits[..300_000]).await;
    assert_eq!(status, 413);
    assert!(!server.store().has_photo(&big_hash).expect("store"));
    assert_eq!(server.store().upload_received(&fits_hash).expect("store"), 0);
}

#[tokio::test]
async fn a_person_from_another_grid_gets_404_while_a_supervisor_over_the_grid_gets_the_photo() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let mut phone = server.phone_in(&grid).await;
    let case = phone.report_case("邻里纠纷现场");
    let bytes = jpeg(60_000, 9);
    let hash = attach(&mut phone, case, &bytes, PhotoType::Jpeg).await;
    assert_eq!(upload(&server.url, phone.token(), &bytes, "image/jpeg", 262_144).await.0, 200);

    let stranger = server.phone_in(&server.grid_in("c2", "g1")).await;
    let refused = download(&server.url, stranger.token(), &hash).await;
    assert_eq!(refused.status(), 404);
    let refused: Value = refused.json().await.expect("json");
    // The same answer as for a photo nobody has: no existence leak.
    let missing = download(&server.url, stranger.token(), &photo_hash(b"nobody has this")).await;
    let missing: Value = missing.json().await.expect("json");
    assert_eq!(refused, missing);
    assert_eq!(refused["error"], "photo_not_found");
    // Revalidating with the right tag reveals nothing either.
    let revalidate = reqwest::Client::new()
        .get(format!("{}/v1/photos/{hash}", server.url))
        .bearer_auth(stranger.token())
        .header("if-none-match", format!("\"{hash}\""))
        .send()
        .await
        .expect("get");
    assert_eq!(revalidate.status(), 404);
    // Without a token, nothing.
    let anonymous = reqwest::get(format!("{}/v1/photos/{hash}", server.url)).await.expect("get");
    assert_eq!(anonymous.status(), 401);

    let community = format!("{CITY}/c1").parse().expect("community");
    let supervisor = server.supervisor_phone(&community).await;
    let seen = download(&server.url, supervisor.token(), &hash).await;
    assert_eq!(seen.status(), 200);
    assert_eq!(seen.bytes().await.expect("bytes").as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn a_photo_acknowledged_before_a_sigkill_is_served_after_the_restart_and_a_partial_upload_resumes() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    small_city(&data, &[("li", "password-li")]).await;
    let server = ServerProcess::start(&data, free_port(), &[]).await;
    let mut phone = Phone::sign_in(&server.url, "li", "password-li").await.expect("sign in");
    let visit = phone.record_visit("拍照后服务器断电");
    let whole = jpeg(300_000, 10);
    let half = jpeg(400_000, 11);
    let hash = attach(&mut phone, visit, &whole, PhotoType::Jpeg).await;
    let half_hash = attach(&mut phone, visit, &half, PhotoType::Jpeg).await;
    let (status, body) = put(&server.url, phone.token(), &half_hash, "image/jpeg", 400_000, 0, &half[..200_000]).await;
    assert_eq!((status, body["received"].as_u64()), (200, Some(200_000)));
    // The last thing before the kill: the photo's acknowledgement.
    let (status, body) = upload(&server.url, phone.token(), &whole, "image/jpeg", 262_144).await;
    assert_eq!((status, body["stored"].as_bool()), (200, Some(true)));

    let server = server.restart().await;
    let resp = download(&server.url, phone.token(), &hash).await;
    assert_eq!(resp.status(), 200, "an acknowledged photo survives SIGKILL");
    assert_eq!(resp.bytes().await.expect("bytes").as_ref(), whole.as_slice());
    assert_eq!(upload_status(&server.url, phone.token(), &half_hash).await.1["received"], 200_000);
    let (status, body) = upload_from(&server.url, phone.token(), &half, "image/jpeg", 262_144, 200_000).await;
    assert_eq!((status, body["stored"].as_bool()), (200, Some(true)));
    assert_eq!(download(&server.url, phone.token(), &half_hash).await.bytes().await.expect("b").as_ref(), half);
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_syncs_keep_going_while_photos_upload_and_a_flood_of_uploads_gets_retry_after() {
    // One sync worker and no queue: if photo uploads took sync workers, these syncs would be refused.
    let limits = Limits {
        sync: SyncLimits {
            workers: 1,
            max_waiting: 0,
            target_wait: Duration::ZERO,
            max_wait: Duration::ZERO,
            max_retry_after: Duration::from_secs(1),
        },
        photos: PhotoLimits { uploads: 2, retry_after_s: 1 },
        ..Limits::default()
    };
    let server = TestServer::start_with(limits).await;
    let grid = server.grid("g1");
    let mut photographer = server.phone_in(&grid).await;
    let visit = photographer.record_visit("一组照片");
    let slow: Vec<Vec<u8>> = (0..2).map(|i| jpeg(262_144, 20 + i)).collect();
    let mut hashes = Vec::new();
    for bytes in &slow {
        hashes.push(attach(&mut photographer, visit, bytes, PhotoType::Jpeg).await);
    }
    let fast = jpeg(1_000_000, 30);
    let fast_hash = attach(&mut photographer, visit, &fast, PhotoType::Jpeg).await;
    let token = photographer.token().to_string();

    // Two uploads on a weak link hold both upload slots, trickling their bodies.
    let mut trickles = Vec::new();
    for (bytes, hash) in slow.iter().zip(&hashes) {
        let (addr, head) = (server.addr().to_string(), raw_put_head(server.addr(), &token, hash, 262_144, 0, 262_144));
        let bytes = bytes.clone();
        trickles.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(&addr).await.expect("connect");
            stream.write_all(head.as_bytes()).await.expect("head");
            for piece in bytes.chunks(16 * 1024) {
                stream.write_all(piece).await.expect("piece");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            read_response(&mut stream).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A third upload meanwhile is refused at once with Retry-After, its body unread ...
    let t = Instant::now();
    let resp = reqwest::Client::new()
        .put(format!("{}/v1/photos/{fast_hash}", server.url))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .header("x-photo-size", "1000000")
        .header("x-upload-offset", "0")
        .body(fast[..262_144].to_vec())
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    assert!(t.elapsed() < Duration::from_secs(1));

    // ... while another phone's record syncs go through, none refused, none slow.
    let mut writer = server.phone_in(&grid).await;
    writer.backoff = Backoff::never();
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        writer.record_visit(&format!("照片上传时的第{i}次走访"));
        let t = Instant::now();
        writer.sync().await.expect("a record sync is never refused because of photos");
        slowest = slowest.max(t.elapsed());
    }
    assert_eq!(writer.replica.pending_changes(), 0);
    eprintln!("slowest of 10 record syncs while two photo uploads held their slots: {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");

    for t in trickles {
        let answer = t.await.expect("trickle");
        assert!(answer.contains(r#""stored":true"#), "{answer}");
    }
    // Once the slots are free, the big photo goes up: 1 MB in four chunks.
    let started = Instant::now();
    let (status, _) = upload(&server.url, &token, &fast, "image/jpeg", 262_144).await;
    assert_eq!(status, 200);
    let took = started.elapsed();
    eprintln!("1 MB photo in four chunks over loopback: {took:?} ({:.1} MB/s)", 1.0 / took.as_secs_f64());
}

/// Run by hand: `GRIDSYNC_OLD_SERVER_BIN=<a gridsync-server built from the
/// commit before photos> cargo test -p gridsync-tests --test it -- --ignored
/// a_data_directory_from_before_photos`. The old server writes the store (its
/// demo city's records, a person, a device); the new one opens it, serves it,
/// and takes photos in it.
#[tokio::test]
#[ignore = "needs GRIDSYNC_OLD_SERVER_BIN: a gridsync-server built from a commit before photos"]
async fn a_data_directory_from_before_photos_opens_keeps_its_records_and_devices_and_takes_photos() {
    let old = std::path::PathBuf::from(std::env::var_os("GRIDSYNC_OLD_SERVER_BIN").expect("GRIDSYNC_OLD_SERVER_BIN"));
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let port = free_port();
    let server = ServerProcess::start_binary(&old, &data, port, &["--demo"], None).await;
    let person = [
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
    ];
    let out = std::process::Command::new(&old).arg("--data").arg(&data).args(person).output().expect("old cli");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut phone = Phone::sign_in(&server.url, "zhao", "password-zhao").await.expect("sign in to the old server");
    phone.sync().await.expect("sync with the old server");
    let before: Vec<DocId> = phone.replica.document_ids().collect();
    assert!(!before.is_empty(), "the old server's demo records arrive");
    server.kill().await;

    let server = ServerProcess::start(&data, port, &[]).await;
    // The device registered by the old server still syncs; a new sign-in gets every old record.
    phone.sync().await.expect("the old device syncs with the new server");
    let mut other = Phone::sign_in(&server.url, "zhao", "password-zhao").await.expect("sign in to the new server");
    other.sync().await.expect("sync");
    for id in &before {
        assert!(other.replica.document(*id).is_some(), "old record {id} is there");
    }
    let visit = phone.record_visit("新版本的走访");
    let bytes = jpeg(100_000, 40);
    let hash = attach(&mut phone, visit, &bytes, PhotoType::Jpeg).await;
    assert_eq!(upload(&server.url, phone.token(), &bytes, "image/jpeg", 262_144).await.0, 200);
    let resp = download(&server.url, other.token(), &hash).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.expect("bytes").as_ref(), bytes.as_slice());
    server.kill().await;
}
