//! Issue 11, end to end on the real server: no input crashes a request,
//! everything one request can cost is bounded, the destination policy holds
//! at save, and slow clients are cut off.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Backend, Receiver, TOKEN, TestServer, WAIT};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

on_both!(
    a_clinic_format_must_fit_its_kind_of_value,
    clinic_records_no_system_means_are_refused,
    json_with_trailing_data_is_refused_everywhere,
    validation_errors_name_the_field,
    credentials_in_a_url_are_refused,
    refused_ip_literals_are_refused_at_save,
    an_oversized_render_fails_at_once_and_names_no_value,
    the_logged_request_is_cut_at_64_kib,
);

/// A raw request with a JSON body, as a careless client sends it.
async fn raw(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, Value) {
    let resp = server
        .http
        .request(method.parse().unwrap(), format!("{}{path}", server.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn a_clinic_format_must_fit_its_kind_of_value(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    for (field, pattern) in [
        ("date_format", "%H:%M"),
        ("date_format", "%Y-%m-%d %z"),
        ("time_format", "%Y"),
        ("time_format", "%d/%m %H:%M"),
    ] {
        let (status, body) = server
            .post("/api/v1/clinics", json!({"name": "Clinic", field: pattern}))
            .await;
        assert_eq!(status, 422, "{field} {pattern}: {body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    // A PATCH is checked the same way, and the clinic keeps working.
    let (status, clinic) = server
        .post(
            "/api/v1/clinics",
            json!({"name": "Clinic", "date_format": "%d/%m/%Y"}),
        )
        .await;
    assert_eq!(status, 201, "{clinic}");
    let id = clinic["id"].as_i64().unwrap();
    let (status, body) = server
        .call(
            "PATCH",
            &format!("/api/v1/clinics/{id}"),
            Some(json!({"date_format": "%H"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, patient) = server
        .post(
            "/api/v1/patients",
            json!({"clinic_id": id, "first_name": "A", "last_name": "B", "dob": "1988-04-17"}),
        )
        .await;
    assert_eq!(status, 201, "{patient}");
    server.stop().await;
}

async fn clinic_records_no_system_means_are_refused(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let (status, clinic) = server
        .post("/api/v1/clinics", json!({"name": "Clinic"}))
        .await;
    assert_eq!(status, 201, "{clinic}");
    let cid = clinic["id"].as_i64().unwrap();
    let patient = |extra: Value| {
        let mut p = json!({"clinic_id": cid, "first_name": "A", "last_name": "B"});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    let cases = [
        ("/api/v1/clinics", json!({"name": "\u{0}"}), "name"),
        ("/api/v1/clinics", json!({"name": "a\u{1b}[2J"}), "name"),
        (
            "/api/v1/doctors",
            json!({"clinic_id": cid.to_string(), "first_name": "A", "last_name": "B"}),
            "clinic_id",
        ),
        (
            "/api/v1/patients",
            patient(json!({"dob": "0000-01-01"})),
            "dob",
        ),
        (
            "/api/v1/patients",
            patient(json!({"dob": "9999-12-31"})),
            "dob",
        ),
        (
            "/api/v1/patients",
            patient(json!({"last_name": "B\u{7}"})),
            "last_name",
        ),
    ];
    for (path, body, field) in cases {
        let (status, answer) = server.post(path, body.clone()).await;
        assert_eq!(status, 422, "{path} {body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    let (_, clinics) = server.get("/api/v1/clinics").await;
    assert_eq!(
        clinics["items"].as_array().unwrap().len(),
        1,
        "nothing refused was stored: {clinics}"
    );
    server.stop().await;
}

async fn json_with_trailing_data_is_refused_everywhere(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let hook = server.create_webhook(common::hook(&rx.url("/h"))).await;
    let wid = hook["id"].as_str().unwrap();
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/events".to_string(),
            r#"{"event":"kc_clinic_add"} trailing garbage"#,
        ),
        (
            "POST",
            "/api/v1/events".into(),
            r#"{"event":"kc_clinic_add"}{}"#,
        ),
        ("POST", "/api/v1/webhooks".into(), r#"{"name":"x"} 1"#),
        (
            "PATCH",
            format!("/api/v1/webhooks/{wid}"),
            r#"{"name":"y"} ]"#,
        ),
        ("POST", "/api/v1/tokens".into(), r#"{"name":"t"} x"#),
        (
            "POST",
            "/api/v1/clinics".into(),
            r#"{"name":"c"} {"name":"d"}"#,
        ),
    ] {
        let (status, answer) = raw(&server, method, &path, body).await;
        assert_eq!(status, 400, "{method} {path} {body}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_request", "{answer}");
    }
    let (_, events) = server.get("/api/v1/events").await;
    assert_eq!(events["items"], json!([]), "{events}");
    let (_, w) = server.get(&format!("/api/v1/webhooks/{wid}")).await;
    assert_eq!(w["name"], hook["name"]);
    // Whitespace after the value is still fine.
    let (status, _) = raw(&server, "POST", "/api/v1/clinics", "{\"name\":\"c\"} \n").await;
    assert_eq!(status, 201);
    server.stop().await;
}

async fn validation_errors_name_the_field(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let base = json!({"name": "n", "events": ["kc_patient_add"], "url": "https://example.org/x"});
    let without = |k: &str| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, field) in [
        (without("name"), "name"),
        (without("url"), "url"),
        (without("events"), "events"),
        (with("method", json!(5)), "method"),
        (with("content_type", json!(true)), "content_type"),
        (with("timeout_ms", json!("fast")), "timeout_ms"),
        (with("headers", json!({"X-A": 1})), "headers.X-A"),
    ] {
        let (status, answer) = server.post("/api/v1/webhooks", body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let (status, answer) = server.post("/api/v1/events", json!({"data": {}})).await;
    assert_eq!(
        (status, &answer["error"]["field"]),
        (422, &json!("event")),
        "{answer}"
    );
    let (status, answer) = server.post("/api/v1/tokens", json!({})).await;
    assert_eq!(
        (status, &answer["error"]["field"]),
        (422, &json!("name")),
        "{answer}"
    );

    for path in [
        "/api/v1/deliveries?limit=0",
        "/api/v1/deliveries?limit=1001",
        "/api/v1/events?limit=0",
        "/api/v1/clinics?limit=0",
    ] {
        let (status, answer) = server.get(path).await;
        assert_eq!(status, 422, "{path}: {answer}");
        assert_eq!(answer["error"]["field"], "limit", "{path}: {answer}");
    }
    let (status, answer) = server.get("/api/v1/deliveries?limit=ten").await;
    assert_eq!(
        (status, &answer["error"]["field"]),
        (422, &json!("limit")),
        "{answer}"
    );
    let (status, answer) = server.get("/api/v1/deliveries?colour=red").await;
    assert_eq!(
        (status, &answer["error"]["field"]),
        (422, &json!("colour")),
        "{answer}"
    );
    let (status, answer) = server.get("/api/v1/deliveries?limit=1000").await;
    assert_eq!(status, 200, "{answer}");

    // A method a path does not take: 405 in the error shape, with Allow.
    for (method, path) in [
        ("DELETE", "/api/v1/events"),
        ("PUT", "/api/v1/webhooks"),
        ("POST", "/healthz"),
    ] {
        let resp = server
            .http
            .request(method.parse().unwrap(), format!("{}{path}", server.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert!(resp.headers().contains_key("allow"), "{method} {path}");
        let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    }
    server.stop().await;
}

async fn credentials_in_a_url_are_refused(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let port = rx.addr.port();
    for url in [
        format!("http://user:s3cret-pw@127.0.0.1:{port}/x"),
        format!("http://user@127.0.0.1:{port}/x"),
        format!("http://:s3cret-pw@127.0.0.1:{port}/x"),
        "https://user:s3cret-pw@example.org/{{patient_id}}".to_string(),
    ] {
        let mut spec = common::hook(&url);
        spec["events"] = json!(["kc_patient_add"]);
        spec["body"] = json!("{}");
        let (status, answer) = server.post("/api/v1/webhooks", spec).await;
        assert_eq!(status, 422, "{url}: {answer}");
        assert_eq!(answer["error"]["field"], "url", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("use auth"), "{message}");
        assert!(!answer.to_string().contains("s3cret-pw"), "{answer}");
    }
    // Nor through a PATCH.
    let hook = server.create_webhook(common::hook(&rx.url("/h"))).await;
    let (status, answer) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{}", hook["id"].as_str().unwrap()),
            Some(json!({"url": format!("http://u:s3cret-pw@127.0.0.1:{port}/h")})),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    let (_, list) = server.get("/api/v1/webhooks").await;
    assert!(!list.to_string().contains("s3cret-pw"));
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    server.stop().await;
}

async fn refused_ip_literals_are_refused_at_save(backend: Backend) {
    let Some(server) = TestServer::start_with(backend, |s| {
        s.policy = carehook::outbound::DestinationPolicy::default();
    })
    .await
    else {
        return;
    };
    let refused = [
        "http://127.0.0.1:8080/x",
        "http://10.0.0.5/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x",
        "http://[::ffff:169.254.169.254]/x",
        "http://[::127.0.0.2]/x",
        "http://[64:ff9b::a9fe:a9fe]/x",
        "http://[2002:7f00:1::1]/x",
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/x",
        "http://[fd00:ec2::254]/x",
        "http://0x7f000001/x",
        "http://2130706433/x",
        "http://0177.0.0.1/x",
        "http://100.64.0.1/x",
    ];
    for url in refused {
        let (status, answer) = server.post("/api/v1/webhooks", common::hook(url)).await;
        assert_eq!(status, 422, "{url}: {answer}");
        assert_eq!(answer["error"]["field"], "url", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("CAREHOOK_ALLOWED_DESTINATIONS"),
            "{answer}"
        );
    }
    let (_, list) = server.get("/api/v1/webhooks").await;
    assert_eq!(list["items"], json!([]), "nothing refused was stored");

    // A name that resolves into a refused range now: saved, with a warning.
    let (status, saved) = server
        .post("/api/v1/webhooks", common::hook("http://localhost:9/x"))
        .await;
    assert_eq!(status, 201, "{saved}");
    let warnings = saved["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w["field"] == "url" && w["message"].as_str().unwrap().contains("loopback")),
        "{saved}"
    );
    // A public address literal is fine, and warns of nothing about its host.
    let (status, saved) = server
        .post("/api/v1/webhooks", common::hook("http://93.184.216.34/x"))
        .await;
    assert_eq!(status, 201, "{saved}");
    assert!(
        !saved["warnings"].to_string().contains("resolves"),
        "{saved}"
    );
    server.stop().await;
}

async fn an_oversized_render_fails_at_once_and_names_no_value(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let marker = "PATIENTDATA";
    let value = format!("{marker}{}", "x".repeat(16 * 1024 - marker.len()));

    // A template with more placeholders than allowed is refused at save.
    let mut spec = common::hook(&rx.url("/h"));
    spec["body"] = json!(format!(
        "{{\"a\": \"{}\"}}",
        "{{patient_name}}".repeat(4096)
    ));
    let (status, answer) = server.post("/api/v1/webhooks", spec).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["field"], "body", "{answer}");

    // 1,000 placeholders of a 16 KiB value: 16 MiB, over the 1 MiB a body
    // may render to. And a URL over 8 KiB. Both fail at once, for good.
    let mut big_body = common::hook(&rx.url("/body"));
    big_body["body"] = json!(format!(
        "{{\"a\": \"{}\"}}",
        "{{patient_name}}".repeat(1000)
    ));
    server.create_webhook(fast(big_body)).await;
    let long_url = fast(common::hook(&format!(
        "{}?p={{{{patient_name}}}}",
        rx.url("/url")
    )));
    server.create_webhook(long_url).await;

    let started = Instant::now();
    let pushed = server
        .push("kc_appointment_book", json!({"patient_name": value}))
        .await;
    let ids: Vec<&str> = pushed["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    for id in ids {
        let d = server
            .wait_delivery(id, WAIT, |d| d["status"] == "failed")
            .await;
        let attempts = d["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "not retried: {d}");
        assert_eq!(attempts[0]["outcome"], "gave_up", "{d}");
        let error = d["last_error"].as_str().unwrap();
        assert!(error.contains("bytes"), "{error}");
        assert!(
            !error.contains(marker),
            "patient data in the error: {error}"
        );
        assert!(error.len() < 400, "{error}");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(rx.count(), 0, "nothing oversized was sent");
    server.stop().await;
}

/// Retries every 100 ms, so "not retried" shows at once.
fn fast(mut spec: Value) -> Value {
    spec["retry"] = json!({"schedule": ["100ms", "100ms", "100ms"], "jitter": 0.0});
    spec
}

async fn the_logged_request_is_cut_at_64_kib(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let mut spec = common::hook(&rx.url("/h"));
    // 10 × 16 KiB = 160 KiB: sent whole, logged cut.
    spec["body"] = json!(format!("{{\"a\": \"{}\"}}", "{{patient_name}}".repeat(10)));
    server.create_webhook(spec).await;
    let value = "y".repeat(16 * 1024);
    let pushed = server
        .push("kc_appointment_book", json!({"patient_name": value}))
        .await;
    let id = pushed["deliveries"][0].as_str().unwrap();
    server
        .wait_delivery(id, WAIT, |d| d["status"] == "succeeded")
        .await;
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].json()["a"].as_str().unwrap().len(), 160 * 1024);
    let (_, full) = server.get(&format!("/api/v1/deliveries/{id}")).await;
    let logged = full["attempts"][0]["request"]["body"].as_str().unwrap();
    assert!(logged.len() <= 64 * 1024 + 100, "{}", logged.len());
    assert!(logged.contains("truncated: "), "the cut is marked");
    assert!(full.to_string().len() < 200 * 1024, "the answer is bounded");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_next_with_control_characters_falls_back_to_ui() {
    let Some(server) = TestServer::start(Backend::Sqlite).await else {
        return;
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    for next in [
        "/ui\r\nSet-Cookie: evil=1",
        "/ui/webhooks\u{0}",
        "/ui/\u{7f}",
        "/ui/ a",
        "/uievil",
    ] {
        let page = client
            .get(format!("{}/ui/login", server.base))
            .send()
            .await
            .unwrap();
        let cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
        let csrf = cookie
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_string();
        let form: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", TOKEN)
            .append_pair("csrf", &csrf)
            .append_pair("next", next)
            .finish();
        let resp = client
            .post(format!("{}/ui/login", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("carehook_login={csrf}"))
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "{next:?}");
        assert_eq!(resp.headers()["location"], "/ui", "{next:?}");
    }
    server.stop().await;
}

/// A tracing writer the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A router with a panicking handler, behind the guard every carehook
/// router runs behind, served by carehook's server loop.
#[tokio::test]
async fn a_panic_in_a_handler_is_a_json_500_with_its_cause_logged() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let app = axum::Router::new()
        .route(
            "/boom",
            axum::routing::get(|| async {
                // A bug of the kind a handler could have: an index out of range.
                let empty: Vec<String> = Vec::new();
                empty[std::hint::black_box(0)].clone()
            }),
        )
        .route("/ok", axum::routing::get(|| async { "fine" }));
    let app = carehook::api::guard::guard(app, Duration::from_secs(5));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(carehook::serve::serve(
        listener,
        app,
        Default::default(),
        stop_rx,
    ));

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..3 {
        let resp = http.get(format!("{base}/boom")).send().await.unwrap();
        assert_eq!(resp.status(), 500);
        let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "internal", "{body}");
        let ok = http.get(format!("{base}/ok")).send().await.unwrap();
        assert_eq!(ok.text().await.unwrap(), "fine");
    }
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("a request handler panicked") && text.contains("index out of bounds"),
        "{text}"
    );
    stop_tx.send(true).unwrap();
    server.await.unwrap();
}

/// Sends `head` and then one byte every `every`, until the server closes
/// the connection; returns how long it kept it open and what it answered.
async fn trickle(addr: &str, head: &[u8], drip: &[u8], every: Duration) -> (Duration, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(head).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    for byte in drip.iter().cycle().take(200) {
        match tokio::time::timeout(every, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {
                if s.write_all(&[*byte]).await.is_err() {
                    break;
                }
            }
        }
    }
    (
        started.elapsed(),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_capped_per_address() {
    let Some(server) = TestServer::start_with(Backend::Sqlite, |s| {
        s.connections = carehook::serve::ConnLimits {
            header_read: Duration::from_secs(1),
            body_read: Duration::from_secs(1),
            per_client: 8,
        };
    })
    .await
    else {
        return;
    };
    let addr = server.base.trim_start_matches("http://").to_string();
    let every = Duration::from_millis(150);

    // Headers a byte at a time: cut off once the header timeout passes.
    let (open, _) = trickle(&addr, b"GET /healthz HTTP/1.1\r\n", b"X-a: b\r\n", every).await;
    assert!(
        open < Duration::from_secs(4),
        "headers trickled for {open:?}"
    );

    // Connected, nothing sent: closed as well.
    let (open, _) = trickle(&addr, b"", b"", Duration::from_secs(5)).await;
    assert!(
        open < Duration::from_secs(4),
        "an idle connection stayed {open:?}"
    );

    // A body a byte at a time: 408 once the body timeout passes.
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    );
    let (open, answer) = trickle(&addr, head.as_bytes(), b" ", every).await;
    assert!(
        open < Duration::from_secs(4),
        "the body trickled for {open:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"timeout\""), "{answer}");

    // Slowloris: many connections from one address, each sending a byte now
    // and then. Only 8 are kept; the rest are closed at once.
    let mut held = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\n").await;
        held.push(s);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut closed_early = 0;
    let mut buf = [0u8; 64];
    for s in &mut held {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(left.min(Duration::from_millis(300)), s.read(&mut buf)).await
        {
            closed_early += 1;
        }
    }
    assert!(closed_early >= 32, "only {closed_early} of 40 were refused");
    // Every one of them is gone within the header timeout...
    let all_closed_by = Instant::now() + Duration::from_secs(5);
    for s in &mut held {
        let left = all_closed_by.saturating_duration_since(Instant::now());
        let r = tokio::time::timeout(left, s.read(&mut buf)).await;
        assert!(
            matches!(r, Ok(Ok(0) | Err(_))),
            "a slow connection stayed open"
        );
    }
    drop(held);
    // ...and the address may connect again.
    let deadline = Instant::now() + WAIT;
    loop {
        let r = server
            .http
            .get(format!("{}/healthz", server.base))
            .send()
            .await;
        if let Ok(resp) = r
            && resp.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "the server never answered again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}
