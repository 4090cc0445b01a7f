//! The server speaks HTTPS itself when given a certificate and key, as phones
//! on a real network need for the service worker's secure context.

use gridsync_tests::process::{ServerProcess, free_port};
use rustls::pki_types::ServerName;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn the_server_serves_https_with_a_given_certificate_and_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).expect("write key");
    let port = free_port();
    let cert_arg = cert_pem.display().to_string();
    let key_arg = key_pem.display().to_string();
    let server = ServerProcess::start_with_scheme(
        &dir.path().join("data"),
        port,
        &["--tls-cert", &cert_arg, "--tls-key", &key_arg],
        Some(cert.cert.der().to_vec()),
    )
    .await;

    // A client that trusts exactly this certificate.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).expect("trust");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let mut tls = connector.connect(ServerName::try_from("localhost").expect("name"), tcp).await.expect("handshake");
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.ok();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"ok\""), "{answer}");

    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(plain.is_err() || !plain.expect("response").status().is_success());
    assert!(server.url.starts_with("https://"));
    server.kill().await;
}
