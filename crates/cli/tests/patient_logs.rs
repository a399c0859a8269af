//! The server's own log at `RUST_LOG=debug` holds no patient value and no
//! body: `carehook serve` runs the demo clinic's story (`carehook demo`)
//! through webhooks that send every kind of patient data, get it echoed back
//! in their responses, fail to connect with a name in the URL, and are
//! previewed and test-sent; then the log is searched for every patient's
//! name, e-mail, phone, date of birth and address and the clinical texts.

mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Answer, Receiver};
use serde_json::{Value, json};

const TOKEN: &str = "logs-test-admin-token-0123456789";

/// `carehook serve` at debug level, its log in a file; killed on drop.
struct Serve {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    async fn start(dir: &std::path::Path) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("carehook.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_carehook"))
            .arg("serve")
            .env("CAREHOOK_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "CAREHOOK_DATABASE_URL",
                format!("sqlite://{}", dir.join("c.db").display()),
            )
            .env("CAREHOOK_ADMIN_TOKEN", TOKEN)
            .env("CAREHOOK_ALLOWED_DESTINATIONS", "127.0.0.1/32")
            .env("RUST_LOG", "debug")
            .env("NO_COLOR", "1")
            .current_dir(dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        carehook::outbound::install_crypto_provider();
        let serve = Serve {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while serve.call("GET", "/healthz", None).await.0 != 200 {
            assert!(Instant::now() < deadline, "carehook serve did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        serve
    }

    /// `(status, JSON)`; status 0 while the server is not answering.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    async fn items(&self, path: &str) -> Vec<Value> {
        self.ok("GET", &format!("/api/v1{path}?limit=1000"), None)
            .await["items"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// Every patient data value of the demo clinic, as the API returns it.
async fn patient_values(serve: &Serve) -> Vec<String> {
    let mut values = Vec::new();
    let mut take = |record: &Value, fields: &[&str]| {
        for f in fields {
            if let Some(v) = record[*f].as_str().filter(|v| v.len() >= 4) {
                values.push(v.to_string());
            }
        }
    };
    for p in serve.items("/patients").await {
        take(
            &p,
            &[
                "first_name",
                "last_name",
                "email",
                "contact_number",
                "dob",
                "address",
                "postal_code",
            ],
        );
    }
    for a in serve.items("/appointments").await {
        take(&a, &["description"]);
    }
    for e in serve.items("/encounters").await {
        take(&e, &["description"]);
    }
    for r in serve.items("/medical-records").await {
        take(&r, &["title", "notes"]);
    }
    for r in serve.items("/prescriptions").await {
        take(&r, &["name"]);
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_debug_log_holds_no_patient_value_and_no_body() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path()).await;
    let rx = Receiver::start().await;
    // The receiver echoes each request's body back in its response.
    rx.answer(|r, _| {
        Answer::ok().body(&format!(
            "RESPONSE-BODY-MARKER {}",
            String::from_utf8_lossy(&r.body)
        ))
    });
    let everything = "{\"marker\": \"REQUEST-BODY-MARKER\", \"name\": \"{{patient_name}}\", \"email\": \"{{patient_email}}\", \"phone\": \"{{patient_contact_number}}\", \"dob\": \"{{patient_dob}}\", \"address\": \"{{patient_address}}\", \"why\": \"{{appointment_description}}\", \"encounter\": \"{{encounter_description}}\", \"record\": \"{{medical_record_title}}: {{medical_record_notes}}\", \"rx\": \"{{prescription_name}}, {{prescription_details}}\"}";
    let policy = json!({"identifying": true, "phi": true, "basis": "Test receiver on loopback"});
    let echo = serve
        .ok(
            "POST",
            "/api/v1/webhooks",
            Some(json!({
                "name": "Everything", "events": ["*"], "url": rx.url("/all"),
                "headers": {"X-Patient": "{{patient_name}}"},
                "body": everything, "data_policy": policy,
            })),
        )
        .await;
    // Nothing listens on port 1: every attempt fails, with a name in the URL.
    serve
        .ok(
            "POST",
            "/api/v1/webhooks",
            Some(json!({
                "name": "Unreachable", "events": ["kc_patient_add", "kc_appointment_book"],
                "url": "http://127.0.0.1:1/p/{{patient_last_name}}?email={{patient_email}}",
                "body": "{\"marker\": \"REQUEST-BODY-MARKER\", \"name\": \"{{patient_name}}\"}",
                "data_policy": policy,
                "retry": {"schedule": ["1s"], "max_attempts": 2},
            })),
        )
        .await;

    let demo = Command::new(env!("CARGO_BIN_EXE_carehook"))
        .arg("demo")
        .env("CAREHOOK_URL", &serve.base)
        .env("CAREHOOK_TOKEN", TOKEN)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );

    let id = echo["id"].as_str().unwrap();
    for path in ["preview", "test"] {
        serve
            .ok(
                "POST",
                &format!("/api/v1/webhooks/{id}/{path}"),
                Some(json!({"event": "kc_prescription_add"})),
            )
            .await;
    }
    // Every delivery has ended: sent, or failed for good.
    let deadline = Instant::now() + Duration::from_secs(30);
    let deliveries = loop {
        let all = serve.items("/deliveries").await;
        if !all.is_empty() && all.iter().all(|d| d["status"] != "pending") {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries still pending: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(deliveries.iter().any(|d| d["status"] == "failed"));
    let sent = rx.count();
    assert!(sent > 10, "only {sent} requests reached the receiver");
    let received: String = rx
        .received()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();

    let values = patient_values(&serve).await;
    drop(serve);
    let log = std::fs::read_to_string(dir.path().join("carehook.log")).unwrap();
    // carehook's own debug events are there (the test send's), so the
    // absence of values below is not the absence of a log.
    assert!(
        log.contains("DEBUG") && log.contains("test send"),
        "the log is not at debug level:\n{log}"
    );
    // The values looked for went out, so their absence from the log means something.
    for sent in ["O'Brien", "maria.obrien@example.com", "Amoxicillin 500 mg"] {
        assert!(values.iter().any(|v| v == sent), "{sent} not in {values:?}");
        assert!(received.contains(sent), "{sent} was never sent");
    }
    let mut leaked = Vec::new();
    for value in values
        .iter()
        .map(String::as_str)
        .chain(["REQUEST-BODY-MARKER", "RESPONSE-BODY-MARKER"])
    {
        let encoded: String = url_encoded(value);
        for form in [value, encoded.as_str()] {
            if log.contains(form) {
                leaked.push(form.to_string());
            }
        }
    }
    assert!(leaked.is_empty(), "the log holds {leaked:?}:\n{log}");
}

/// A value as it stands percent-encoded in a URL's path or query.
fn url_encoded(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
