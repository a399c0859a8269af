//! Endpoints as they are in the wild, end to end: a TLS receiver that requires client
//! certificates from a private PKI (certificates made here with rcgen), and an egress proxy
//! (HTTP CONNECT and forwarding, with basic auth) written here.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{Backend, Receiver, TestServer, WAIT};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

on_both!(
    mutual_tls_with_a_private_ca_is_accepted_and_refused_without_a_certificate,
    certificates_that_cannot_work_are_refused_at_save,
    through_the_egress_proxy_the_destination_policy_still_holds,
);

/// A CA, and what it signs.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `name` valid from `from` to `until` (years, months, days).
    fn sign(&self, name: &str, from: (i32, u8, u8), until: (i32, u8, u8)) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params.distinguished_name.push(DnType::CommonName, name);
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn valid(&self, name: &str) -> (String, String) {
        self.sign(name, (2024, 1, 1), (2099, 1, 1))
    }
}

fn days_from_now(days: i64) -> (i32, u8, u8) {
    use chrono::Datelike as _;
    let d = chrono::Utc::now() + chrono::Duration::days(days);
    (d.year(), d.month() as u8, d.day() as u8)
}

/// An HTTPS receiver on 127.0.0.1 that requires a client certificate from `client_ca`.
struct TlsReceiver {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    accepted: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            match self.acceptor.accept(tcp).await {
                Ok(tls) => {
                    self.accepted.fetch_add(1, Ordering::SeqCst);
                    return (tls, addr);
                }
                Err(_) => {
                    self.refused.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn der(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject as _;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.unwrap())
        .collect()
}

impl TlsReceiver {
    async fn start(server: &(String, String), client_ca: &Ca) -> TlsReceiver {
        use rustls::pki_types::pem::PemObject as _;
        carehook::outbound::install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        for c in der(&client_ca.pem) {
            roots.add(c).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                der(&server.0),
                PrivateKeyDer::from_pem_slice(server.1.as_bytes()).unwrap(),
            )
            .unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let (accepted, refused) = (Arc::default(), Arc::default());
        let listener = TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            accepted: Arc::clone(&accepted),
            refused: Arc::clone(&refused),
        };
        let app = axum::Router::new().fallback(|| async { "ok" });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TlsReceiver {
            addr,
            accepted,
            refused,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/hook", self.addr.port())
    }
}

fn tls_hook(name: &str, url: &str, tls: Value) -> Value {
    json!({
        "name": name,
        "events": ["kc_patient_add"],
        "url": url,
        "body": "{\"p\": \"{{patient_name}}\"}",
        "retry": {"max_attempts": 1},
        "tls": tls,
    })
}

/// Pushes one event and waits for each of its deliveries to end; answers them by webhook name.
async fn deliver_all(server: &TestServer) -> Vec<Value> {
    server
        .push("kc_patient_add", json!({"patient_name": "Ada"}))
        .await;
    server.settled(WAIT).await
}

fn by_webhook<'a>(deliveries: &'a [Value], id: &Value) -> &'a Value {
    deliveries
        .iter()
        .find(|d| d["webhook_id"] == *id)
        .unwrap_or_else(|| panic!("no delivery for {id}"))
}

async fn mutual_tls_with_a_private_ca_is_accepted_and_refused_without_a_certificate(
    backend: Backend,
) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let server_ca = Ca::new("Pharmacy private root");
    let client_ca = Ca::new("Pharmacy partner CA");
    let receiver = TlsReceiver::start(&server_ca.valid("pharmacy"), &client_ca).await;
    let (cert, key) = client_ca.valid("clinic-42");

    let good = server
        .create_webhook(tls_hook(
            "with certificate",
            &receiver.url(),
            json!({"client_cert": cert, "client_key": key, "ca_certs": server_ca.pem}),
        ))
        .await;
    let no_cert = server
        .create_webhook(tls_hook(
            "without certificate",
            &receiver.url(),
            json!({"ca_certs": server_ca.pem}),
        ))
        .await;
    let no_ca = server
        .create_webhook(tls_hook(
            "without the private CA",
            &receiver.url(),
            json!({"client_cert": cert, "client_key": key}),
        ))
        .await;
    // The API shows the expiry, never the key.
    assert_eq!(good["tls"]["client_key"], "********", "{good}");
    assert_eq!(good["tls"]["has_client_key"], true);
    assert_eq!(
        good["tls"]["client_cert_expires_at"],
        "2099-01-01T00:00:00.000Z"
    );
    assert_eq!(good["tls"]["client_cert_expires_soon"], false);
    assert!(
        good["tls"]["client_cert_subject"]
            .as_str()
            .unwrap()
            .contains("clinic-42")
    );
    assert!(!good.to_string().contains("PRIVATE KEY"));

    let deliveries = deliver_all(&server).await;
    let d = by_webhook(&deliveries, &good["id"]);
    assert_eq!(d["status"], "succeeded", "{d:#}");
    let d = by_webhook(&deliveries, &no_cert["id"]);
    assert_eq!(d["status"], "failed", "{d:#}");
    let d = by_webhook(&deliveries, &no_ca["id"]);
    assert_eq!(d["status"], "failed", "{d:#}");
    let why = d["last_error"].as_str().unwrap().to_lowercase();
    assert!(why.contains("certificate"), "{why}");
    // One handshake accepted (with the certificate); the one without it refused by the
    // receiver (the one without the CA never finished: carehook did not trust the receiver).
    assert_eq!(receiver.accepted.load(Ordering::SeqCst), 1);
    assert!(receiver.refused.load(Ordering::SeqCst) >= 1);
    server.stop().await;
}

async fn certificates_that_cannot_work_are_refused_at_save(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let ca = Ca::new("Partner CA");
    let (expired, expired_key) = ca.sign("old", (2020, 1, 1), (2021, 1, 1));
    let (cert, _) = ca.valid("clinic");
    let (_, other_key) = ca.valid("someone else");
    let url = "https://partner.example/hook";
    let cases = [
        (
            json!({"client_cert": expired, "client_key": expired_key}),
            "tls.client_cert",
            "expired on 2021-01-01",
        ),
        (
            json!({"client_cert": cert, "client_key": other_key}),
            "tls.client_key",
            "does not belong",
        ),
        (
            json!({"client_cert": "hello", "client_key": other_key}),
            "tls.client_cert",
            "no certificate found",
        ),
        (
            json!({"client_cert": cert}),
            "tls.client_key",
            "needs its private key",
        ),
        (
            json!({"ca_certs": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----"}),
            "tls.ca_certs",
            "",
        ),
    ];
    for (tls, field, says) in cases {
        let (status, e) = server
            .post("/api/v1/webhooks", tls_hook("bad tls", url, tls))
            .await;
        assert_eq!(status, 422, "{e}");
        assert_eq!(e["error"]["field"], field, "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(says),
            "{e}"
        );
        assert!(!e.to_string().contains("PRIVATE KEY"), "{e}");
    }
    // A certificate expiring within 14 days is saved, and flagged.
    let (soon, soon_key) = ca.sign("soon", (2024, 1, 1), days_from_now(7));
    let w = server
        .create_webhook(tls_hook(
            "expiring",
            url,
            json!({"client_cert": soon, "client_key": soon_key}),
        ))
        .await;
    assert_eq!(w["tls"]["client_cert_expires_soon"], true, "{w}");
    assert!(
        w["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["field"] == "tls.client_cert"),
        "{w}"
    );
    // A change that leaves the key out keeps it.
    let id = w["id"].as_str().unwrap();
    let (status, changed) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"tls": {"client_key": "********"}, "timeout_ms": 5000})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["tls"]["has_client_key"], true, "{changed}");
    server.stop().await;
}

/// A forward proxy on 127.0.0.3 (outside CAREHOOK_ALLOWED_DESTINATIONS): CONNECT tunnels and
/// absolute-form forwarding, with basic auth. It records each target it was asked for.
struct Proxy {
    addr: std::net::SocketAddr,
    targets: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    async fn start(expected_auth: &'static str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.3:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let targets: Arc<Mutex<Vec<String>>> = Arc::default();
        let t = targets.clone();
        tokio::spawn(async move {
            loop {
                let (conn, _) = listener.accept().await.unwrap();
                let t = t.clone();
                tokio::spawn(async move {
                    let _ = proxy_one(conn, t, expected_auth).await;
                });
            }
        });
        Proxy { addr, targets }
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

async fn proxy_one(
    mut client: tokio::net::TcpStream,
    targets: Arc<Mutex<Vec<String>>>,
    expected_auth: &str,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let first = text.lines().next().unwrap_or("").to_string();
    let mut parts = first.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    use base64::Engine as _;
    let auth = format!(
        "proxy-authorization: basic {}",
        base64::engine::general_purpose::STANDARD.encode(expected_auth)
    );
    if !text.to_lowercase().contains(&auth.to_lowercase()) {
        client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    let host = if method == "CONNECT" {
        target.to_string()
    } else {
        let rest = target.strip_prefix("http://").unwrap_or(target);
        rest.split('/').next().unwrap_or("").to_string()
    };
    targets.lock().unwrap().push(format!("{method} {host}"));
    let mut upstream = tokio::net::TcpStream::connect(&host).await?;
    if method == "CONNECT" {
        client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
    } else {
        upstream.write_all(&head).await?;
    }
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

async fn through_the_egress_proxy_the_destination_policy_still_holds(backend: Backend) {
    let proxy = Proxy::start("clinic:Proxy-pw-3c1d").await;
    let proxy_url = format!("http://clinic:Proxy-pw-3c1d@{}", proxy.addr);
    let Some(server) = TestServer::start_with(backend, |s| {
        s.egress_proxy = Some(carehook::outbound::egress::EgressProxy::parse(&proxy_url).unwrap());
    })
    .await
    else {
        return;
    };
    let rx = Receiver::start().await;
    let server_ca = Ca::new("Lab root");
    let client_ca = Ca::new("Lab partner CA");
    let tls_rx = TlsReceiver::start(&server_ca.valid("lab"), &client_ca).await;
    let (cert, key) = client_ca.valid("clinic-7");
    let plain = server
        .create_webhook(tls_hook("plain http", &rx.url("/in"), Value::Null))
        .await;
    let tls = server
        .create_webhook(tls_hook(
            "mutual tls",
            &tls_rx.url(),
            json!({"client_cert": cert, "client_key": key, "ca_certs": server_ca.pem}),
        ))
        .await;
    // A refused destination is refused at save already, proxy or not.
    let (status, refused) = server
        .post(
            "/api/v1/webhooks",
            tls_hook("not allowed", "http://127.0.0.2:9/in", Value::Null),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["field"], "url", "{refused}");
    let deliveries = deliver_all(&server).await;
    let d = by_webhook(&deliveries, &plain["id"]);
    assert_eq!(d["status"], "succeeded", "{d:#}");
    let d = by_webhook(&deliveries, &tls["id"]);
    assert_eq!(d["status"], "succeeded", "{d:#}");
    assert_eq!(rx.count(), 1);
    let targets = proxy.targets();
    assert!(
        targets.contains(&format!("CONNECT 127.0.0.1:{}", tls_rx.addr.port())),
        "{targets:?}"
    );
    assert!(
        targets.contains(&format!("POST {}", rx.addr)),
        "{targets:?}"
    );
    assert!(
        targets.iter().all(|t| !t.contains("127.0.0.2")),
        "the proxy was asked for a refused destination: {targets:?}"
    );
    server.stop().await;
}
