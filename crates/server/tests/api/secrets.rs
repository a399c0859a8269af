//! Secrets at rest and in answers: after webhooks with every kind of secret
//! (auth secrets, OAuth 2.0 client secrets, refresh and access tokens, a TLS
//! key) are created, used, tested, changed and rotated, none of the secret
//! values is in the database (file or tables), the logs, or any API answer.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

use crate::common::{Backend, Receiver, TestServer};
use crate::{WAIT, on_both};

on_both!(no_secret_is_stored_logged_or_shown_in_plain_text);

/// Everything logged in this test binary, at debug level and up.
pub(crate) fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let b = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(move || Writer(b.clone()))
            .with_ansi(false)
            .try_init();
        buffer
    })
    .clone()
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every row of every table, as text.
async fn database_text(url: &str) -> String {
    let tables = [
        "webhooks",
        "events",
        "deliveries",
        "attempts",
        "api_tokens",
        "kv",
        "oauth_tokens",
    ];
    let mut out = String::new();
    if url.starts_with("sqlite:") {
        // The file itself, and its write-ahead log.
        let path = url.trim_start_matches("sqlite://");
        for suffix in ["", "-wal"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        assert!(out.len() > 4096, "the database file was not read");
    } else {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        for t in tables {
            let rows: Vec<(String,)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT t::text FROM {t} t")))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
            for (r,) in rows {
                out.push_str(&r);
                out.push('\n');
            }
        }
        assert!(out.contains("Secret keeper"), "the tables were not read");
    }
    out
}

/// A token endpoint that answers access tokens and rotated refresh tokens
/// with known prefixes, remembering each one it issued.
async fn token_endpoint(issued: Arc<Mutex<Vec<String>>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move || {
            let issued = issued.clone();
            async move {
                let mut issued = issued.lock().unwrap();
                let n = issued.len();
                let (access, refresh) = (format!("at-Issued-{n}-7e2a91"), format!("rt-Rotated-{n}-4b9c02"));
                issued.push(access.clone());
                issued.push(refresh.clone());
                axum::Json(json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600, "refresh_token": refresh}))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/token")
}

/// A client certificate and its key (PEM), and a line of the key's body to look for.
fn client_identity() -> (String, String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["clinic.example".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pem = key.serialize_pem();
    let line = pem.lines().nth(1).unwrap().to_string();
    (cert.pem(), pem, line)
}

async fn no_secret_is_stored_logged_or_shown_in_plain_text(backend: Backend) {
    let logs = captured_logs();
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let issued = Arc::new(Mutex::new(Vec::new()));
    let token_url = token_endpoint(issued.clone()).await;
    let (cert, key, key_line) = client_identity();
    let auths = [
        json!({"type": "basic", "username": "clinic", "password": "pw-Basic-7f3a9c"}),
        json!({"type": "bearer", "token": "tok-Bearer-2b8e1d"}),
        json!({"type": "api_key", "name": "X-Api-Key", "value": "key-Header-5c4f2a", "location": "header"}),
        json!({"type": "api_key", "name": "api_key", "value": "key-Query-9d1e7b", "location": "query"}),
        json!({"type": "oauth2_refresh_token", "token_url": token_url, "client_id": "qb-app",
            "client_secret": "cs-Refresh-1a2b3c", "refresh_token": "rt-Initial-9f8e7d"}),
        json!({"type": "oauth2_client_credentials", "token_url": token_url, "client_id": "sf-app",
            "client_secret": "cs-Client-4d5e6f", "client_auth": "body"}),
    ];
    let mut secrets: Vec<String> = vec![
        "pw-Basic-7f3a9c".into(),
        "tok-Bearer-2b8e1d".into(),
        "key-Header-5c4f2a".into(),
        "key-Query-9d1e7b".into(),
        "cs-Refresh-1a2b3c".into(),
        "rt-Initial-9f8e7d".into(),
        "cs-Client-4d5e6f".into(),
        key_line,
    ];
    let mut answers: Vec<Value> = Vec::new();
    let mut ids = Vec::new();
    for (i, auth) in auths.iter().enumerate() {
        let mut spec = json!({
            "name": format!("Secret keeper {i}"),
            "events": ["kc_appointment_book"],
            "url": rx.url(&format!("/s{i}")),
            "auth": auth,
            "body": "{\"p\": \"{{patient_name}}\"}",
        });
        if i == 1 {
            // Mutual TLS settings (unused on plain HTTP, but stored and shown).
            spec["tls"] = json!({"client_cert": cert, "client_key": key});
        }
        let created = server.create_webhook(spec).await;
        // The signing secret is in this answer only; kept to look for elsewhere.
        let whsec = created["signing_secret"].as_str().unwrap().to_string();
        secrets.push(whsec["whsec_".len()..].to_string());
        let mut shown = created.clone();
        shown["signing_secret"] = Value::Null;
        answers.push(shown);
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    // The secrets work: the receiver gets them.
    let pushed = server
        .push("kc_appointment_book", json!({"patient_name": "Ada"}))
        .await;
    let got = rx.wait_for(auths.len(), WAIT).await;
    let seen: String = got
        .iter()
        .map(|r| format!("{:?} {:?}", r.headers, r.query))
        .collect();
    assert!(seen.contains("Bearer tok-Bearer-2b8e1d"));
    assert!(seen.contains("key-Header-5c4f2a") && seen.contains("key-Query-9d1e7b"));
    assert!(
        seen.contains("Bearer at-Issued-"),
        "the OAuth 2.0 tokens were not used: {seen}"
    );
    for d in pushed["deliveries"].as_array().unwrap() {
        let d = server
            .wait_delivery(d.as_str().unwrap(), WAIT, |d| d["status"] == "succeeded")
            .await;
        answers.push(d);
    }
    // Used through every other endpoint that shows a webhook or a request.
    let (_, t) = server
        .post(&format!("/api/v1/webhooks/{}/test", ids[3]), json!({}))
        .await;
    assert_eq!(t["outcome"], "succeeded", "{t}");
    answers.push(t);
    let (_, p) = server
        .post(&format!("/api/v1/webhooks/{}/preview", ids[0]), json!({}))
        .await;
    answers.push(p);
    let (_, patched) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{}", ids[1]),
            Some(json!({"auth": {"type": "bearer", "token": "tok-Bearer-new-6a0f3e"}})),
        )
        .await;
    secrets.push("tok-Bearer-new-6a0f3e".into());
    answers.push(patched);
    let (_, kept) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{}", ids[0]),
            Some(json!({"auth": {"type": "basic", "username": "clinic", "password": "********"}})),
        )
        .await;
    assert_eq!(kept["auth"]["has_password"], true, "{kept}");
    answers.push(kept);
    let (_, rotated) = server
        .post(
            &format!("/api/v1/webhooks/{}/rotate-secret", ids[2]),
            json!({}),
        )
        .await;
    secrets.push(rotated["signing_secret"].as_str().unwrap()["whsec_".len()..].to_string());
    let (_, list) = server.get("/api/v1/webhooks").await;
    answers.push(list.clone());
    let (_, deliveries) = server.get("/api/v1/deliveries?limit=1000").await;
    answers.push(deliveries);
    for id in &ids {
        let (_, w) = server.get(&format!("/api/v1/webhooks/{id}")).await;
        answers.push(w);
    }
    let (s, _) = server
        .post("/api/v1/tokens", json!({"name": "log-check"}))
        .await;
    assert_eq!(s, 201);

    // Masked, with a flag saying a secret is set.
    let items = list["items"].as_array().unwrap();
    assert_eq!(items[0]["auth"]["password"], "********");
    assert_eq!(items[1]["auth"]["has_token"], true);
    assert_eq!(items[3]["auth"]["value"], "********");
    assert!(items.iter().all(|w| w["signing_secret"] == "********"));

    assert_eq!(items[1]["tls"]["client_key"], "********");
    assert_eq!(items[4]["auth"]["has_refresh_token"], true);
    // Every token the provider issued (access tokens, rotated refresh tokens) is a secret too.
    secrets.extend(issued.lock().unwrap().iter().cloned());
    assert!(secrets.len() >= 12, "{secrets:?}");
    let answers = serde_json::to_string(&answers).unwrap();
    let db_url = server.db.as_ref().unwrap().url().to_string();
    // Stop first, so the database is flushed and every log line is written.
    let db = {
        let mut server = server;
        let db = server.db.take();
        server.stop().await;
        db
    };
    let stored = database_text(&db_url).await;
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(
        logged.contains("API token made"),
        "the logs were not captured"
    );
    for secret in &secrets {
        assert!(
            !answers.contains(secret.as_str()),
            "an API answer shows {secret}"
        );
        assert!(
            !stored.contains(secret.as_str()),
            "the database holds {secret} in plain text"
        );
        assert!(!logged.contains(secret.as_str()), "the log shows {secret}");
    }
    if let Some(db) = db {
        db.cleanup().await;
    }
}
