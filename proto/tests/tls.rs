//! Mutual TLS on a real socket: a peer with a certificate from the deployment's CA is served;
//! a peer with a foreign certificate, with none, or speaking plaintext is refused at the
//! handshake, and the server logs who and why.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spddl_proto::transport::{Security, TlsFiles};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

/// A CA and certificates it signs for 127.0.0.1.
struct Ca(rcgen::CertifiedIssuer<'static, rcgen::KeyPair>);

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        Ca(rcgen::CertifiedIssuer::self_signed(params, key).unwrap())
    }

    fn files(&self, name: &str) -> TlsFiles {
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        TlsFiles {
            ca: self.0.pem().into_bytes(),
            cert: cert.pem().into_bytes(),
            key: zeroize::Zeroizing::new(key.serialize_pem().into_bytes()),
        }
    }
}

/// Everything logged on this thread (the test runs on a current-thread runtime, so the
/// server's tasks log here too).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits up to 5 s for a log line containing every one of `words`.
    async fn line_with(&self, words: &[&str]) -> String {
        for _ in 0..500 {
            if let Some(line) = self
                .text()
                .lines()
                .find(|l| words.iter().all(|w| l.contains(w)))
            {
                return line.to_string();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no log line with {words:?} in:\n{}", self.text());
    }
}

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn check(channel: tonic::transport::Channel) -> Result<i32, tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|r| r.into_inner().status)
}

#[tokio::test]
async fn refused_handshakes_are_logged_with_peer_and_reason() {
    let log = Log::default();
    let writer = log.clone();
    let _subscriber = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish(),
    );

    let ca = Ca::new("deployment CA");
    let server = Security::MutualTls(ca.files("aggregator"));
    let address = free_address();
    let (_health, health_service) = tonic_health::server::health_reporter();
    let router = server.server().add_service(health_service);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        server
            .serve(router, address, async {
                let _ = stop_rx.await;
            })
            .await
    });
    let addr = address.to_string();
    let timeout = Duration::from_secs(5);

    // A participant of this deployment is served.
    let member = Security::MutualTls(ca.files("client-0"));
    let mut served = Err(tonic::Status::unavailable("not tried"));
    for _ in 0..100 {
        served = check(member.channel(&addr, timeout).unwrap()).await;
        if served.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(served.unwrap(), ServingStatus::Serving as i32);

    // A certificate from another CA (that trusts our server): refused, and logged.
    let mut stranger = Ca::new("another CA").files("client-0");
    stranger.ca = ca.files("unused").ca;
    let refused = check(
        Security::MutualTls(stranger)
            .channel(&addr, timeout)
            .unwrap(),
    )
    .await;
    assert!(refused.is_err(), "a foreign certificate was served");
    let line = log
        .line_with(&["WARN", "TLS handshake refused", "UnknownIssuer"])
        .await;
    assert!(line.contains("peer=127.0.0.1:"), "no peer address: {line}");

    // No client certificate at all.
    let anonymous = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca.files("unused").ca))
                .domain_name("127.0.0.1"),
        )
        .unwrap()
        .connect_lazy();
    assert!(check(anonymous).await.is_err(), "no certificate was served");
    log.line_with(&["WARN", "TLS handshake refused", "peer sent no certificates"])
        .await;

    // Plaintext gRPC to a TLS port.
    let plain = Security::Insecure.channel(&addr, timeout).unwrap();
    assert!(check(plain).await.is_err(), "plaintext was served");
    let warnings = log
        .text()
        .lines()
        .filter(|l| l.contains("TLS handshake refused"))
        .count();
    assert!(
        warnings >= 3,
        "plaintext refusal not logged:\n{}",
        log.text()
    );

    // A port probe (connect, close) is not a refusal worth a warning.
    let before = log.text().matches("WARN").count();
    drop(tokio::net::TcpStream::connect(address).await.unwrap());
    log.line_with(&["DEBUG", "connection closed before the TLS handshake"])
        .await;
    assert_eq!(log.text().matches("WARN").count(), before);

    // The member is still served after all that, and the server stops cleanly.
    assert!(check(member.channel(&addr, timeout).unwrap()).await.is_ok());
    stop_tx.send(()).unwrap();
    serving.await.unwrap().unwrap();
    // The port is free again: a restarted process can listen on it.
    std::net::TcpListener::bind(address).unwrap();
}
