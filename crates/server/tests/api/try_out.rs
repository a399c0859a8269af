//! Test sends and previews, and signing-secret rotation.

use serde_json::json;

use crate::common::{Answer, Backend, Receiver, TestServer};
use crate::{WAIT, hook, on_both};

on_both!(
    a_test_send_reaches_the_receiver_and_answers_with_the_response,
    a_test_send_to_a_dead_endpoint_reports_the_error,
    preview_renders_without_sending,
    rotation_signs_with_both_secrets,
);

async fn a_test_send_reaches_the_receiver_and_answers_with_the_response(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer(|_, _| {
        Answer::status(201)
            .header("x-receiver", "yes")
            .body("{\"ok\":true}")
    });
    let mut spec = hook(&rx.url("/hook"));
    spec["auth"] = json!({"type": "bearer", "token": "tok-secret-123"});
    spec["enabled"] = false.into(); // a test is sent even to a disabled webhook
    let created = server.create_webhook(spec).await;
    let id = created["id"].as_str().unwrap();
    let secret = created["signing_secret"].as_str().unwrap().to_string();

    let (s, t) = server
        .post(
            &format!("/api/v1/webhooks/{id}/test"),
            json!({"data": {"patient_name": "Zoë \"Z\" O'Brien 🏥"}}),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    // It arrived, rendered from the examples overlaid by `data`, signed.
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    let text = r.json()["text"].as_str().unwrap().to_string();
    assert!(text.starts_with("Zoë \"Z\" O'Brien 🏥 with "), "{text}");
    assert_eq!(r.header("authorization"), Some("Bearer tok-secret-123"));
    let mut headers = axum::http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, r.headers.get(name).unwrap().clone());
    }
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&r.body, &headers)
        .expect("a test send is signed like a delivery");

    // The answer: the request as sent (secret masked) and the response.
    assert_eq!(t["event"], "kc_appointment_book");
    assert_eq!(t["outcome"], "succeeded");
    assert_eq!(t["error"], serde_json::Value::Null);
    assert_eq!(t["response"]["status"], 201);
    assert_eq!(t["response"]["body"], "{\"ok\":true}");
    assert_eq!(t["response"]["headers"]["x-receiver"], "yes");
    assert_eq!(t["request"]["method"], "POST");
    assert_eq!(t["request"]["url"], rx.url("/hook"));
    assert_eq!(
        t["request"]["body"].as_str().unwrap(),
        std::str::from_utf8(&r.body).unwrap()
    );
    assert!(t["duration_ms"].as_i64().unwrap() >= 0);
    assert!(!t.to_string().contains("tok-secret-123"), "{t}");
    let headers = t["request"]["headers"].as_array().unwrap();
    assert!(
        headers
            .iter()
            .any(|h| h[0] == "authorization" && h[1] == "Bearer ********")
    );

    // Logged as a test delivery, with the same webhook-id.
    let delivery_id = t["delivery_id"].as_str().unwrap();
    assert_eq!(r.header("webhook-id"), Some(delivery_id));
    let (s, d) = server
        .get(&format!("/api/v1/deliveries/{delivery_id}"))
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["test"], true);
    assert_eq!(d["status"], "succeeded");
    assert_eq!(d["attempts"][0]["response"]["status"], 201);

    // A named event; an unknown one, one the webhook does not take, bad data.
    let (s, e) = server
        .post(
            &format!("/api/v1/webhooks/{id}/test"),
            json!({"event": "kc_patient_add"}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("event")),
        "{e}"
    );
    let (s, e) = server
        .post(
            &format!("/api/v1/webhooks/{id}/test"),
            json!({"event": "kc_nope"}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("event")),
        "{e}"
    );
    let (s, e) = server
        .post(
            &format!("/api/v1/webhooks/{id}/test"),
            json!({"data": {"patient_nme": "x"}}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("data.patient_nme")),
        "{e}"
    );
    let (s, e) = server
        .post(&format!("/api/v1/webhooks/{id}/test"), json!({"colour": 1}))
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, _) = server
        .post(
            &format!("/api/v1/webhooks/{}/test", uuid::Uuid::now_v7()),
            json!({}),
        )
        .await;
    assert_eq!(s, 404);
    // No body at all is the default event with the examples.
    let (s, t) = server
        .call("POST", &format!("/api/v1/webhooks/{id}/test"), None)
        .await;
    assert_eq!((s, t["outcome"].as_str()), (200, Some("succeeded")), "{t}");
    assert_eq!(rx.count(), 2, "refused tests sent nothing");
    server.stop().await;
}

async fn a_test_send_to_a_dead_endpoint_reports_the_error(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer(|_, _| Answer::status(410).body("gone"));
    let created = server.create_webhook(hook(&rx.url("/gone"))).await;
    let id = created["id"].as_str().unwrap();
    let (s, t) = server
        .post(&format!("/api/v1/webhooks/{id}/test"), json!({}))
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["outcome"], "failed");
    assert_eq!(t["response"]["status"], 410);
    assert!(t["error"].as_str().unwrap().contains("410"), "{t}");
    // A test does not disable the webhook, and is not retried by itself.
    let (_, w) = server.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(w["enabled"], true);
    let (_, d) = server
        .get(&format!(
            "/api/v1/deliveries/{}",
            t["delivery_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(d["status"], "failed");

    // Nobody listening: no response, an error, still logged.
    let dead = format!("http://127.0.0.1:{}/x", free_port());
    let (_, w) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"url": dead})),
        )
        .await;
    assert_eq!(w["url"], dead.as_str());
    let (s, t) = server
        .post(&format!("/api/v1/webhooks/{id}/test"), json!({}))
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["response"], serde_json::Value::Null);
    assert!(t["error"].as_str().unwrap().contains("connect"), "{t}");
    assert_eq!(rx.count(), 1);
    // Both test sends are logged and already final: none is left pending for the
    // dispatcher to retry.
    let (_, log) = server.get("/api/v1/deliveries").await;
    let log = log["items"].as_array().unwrap();
    assert_eq!(log.len(), 2, "{log:#?}");
    assert!(
        log.iter()
            .all(|d| d["test"] == true && d["status"] == "failed"),
        "{log:#?}"
    );
    assert_eq!(
        rx.count(),
        1,
        "a failed test is not retried by the dispatcher"
    );
    server.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn preview_renders_without_sending(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let mut spec = hook(&rx.url("/p/{{patient_name}}"));
    spec["events"] = json!(["*"]);
    spec["auth"] =
        json!({"type": "api_key", "name": "key", "value": "k-secret-456", "location": "query"});
    spec["conditions"] =
        json!([{"variable": "appointment_status", "op": "eq", "value": "cancelled"}]);
    let created = server.create_webhook(spec).await;
    let id = created["id"].as_str().unwrap();

    let (s, p) = server
        .post(
            &format!("/api/v1/webhooks/{id}/preview"),
            json!({"data": {"patient_name": "A/B"}}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        p["event"], "kc_appointment_book",
        "`*` previews the default event"
    );
    assert_eq!(p["request"]["url"], rx.url("/p/A%2FB?key=********"));
    assert_eq!(p["conditions_match"], false);
    assert!(
        p["request"]["body"]
            .as_str()
            .unwrap()
            .starts_with("{\"text\": \"A/B with ")
    );
    assert!(!p.to_string().contains("k-secret-456"));
    let (_, p) = server
        .post(
            &format!("/api/v1/webhooks/{id}/preview"),
            json!({"event": "kc_appointment_delete", "data": {"appointment_status": "cancelled"}}),
        )
        .await;
    assert_eq!(
        (p["event"].as_str(), p["conditions_match"].as_bool()),
        (Some("kc_appointment_delete"), Some(true)),
        "{p}"
    );
    let (s, _) = server
        .call("POST", &format!("/api/v1/webhooks/{id}/preview"), None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = server
        .post(
            &format!("/api/v1/webhooks/{}/preview", uuid::Uuid::now_v7()),
            json!({}),
        )
        .await;
    assert_eq!(s, 404);

    // A draft: rendered, with warnings; an invalid one, with line and column.
    let (s, p) = server
        .post(
            "/api/v1/webhooks/preview",
            json!({"webhook": hook("https://hooks.example.org/x"), "data": {"doctor_name": "Dr. Who"}}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert!(p["request"]["body"].as_str().unwrap().contains("Dr. Who"));
    assert!(
        p["request"]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "webhook-signature")
    );
    let mut bad = hook("https://hooks.example.org/x");
    bad["body"] = "{\n  \"text\": \"{{ patient_nmae }}\"\n}".into();
    let (s, e) = server
        .post("/api/v1/webhooks/preview", json!({"webhook": bad}))
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["error"]["field"], "body", "named as on create and update");
    assert_eq!(e["error"]["line"], 2);
    assert_eq!(e["error"]["column"], 12);
    assert_eq!(e["error"]["variable"], "patient_nmae");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("patient_name"),
        "{e}"
    );
    let (s, e) = server
        .post(
            "/api/v1/webhooks/preview",
            json!({"webhook": {"name": "x", "events": ["*"], "url": "https://x.org", "colour": 1}}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(
        e["error"]["field"].as_str().unwrap().starts_with("webhook"),
        "{e}"
    );
    let (s, _) = server.post("/api/v1/webhooks/preview", json!({})).await;
    assert_eq!(s, 422);
    assert_eq!(rx.count(), 0, "a preview sends nothing");
    let (_, page) = server.get("/api/v1/deliveries").await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        0,
        "a preview logs nothing"
    );
    server.stop().await;
}

async fn rotation_signs_with_both_secrets(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let created = server.create_webhook(hook(&rx.url("/r"))).await;
    let id = created["id"].as_str().unwrap();
    let old = created["signing_secret"].as_str().unwrap().to_string();
    let (s, rotated) = server
        .post(&format!("/api/v1/webhooks/{id}/rotate-secret"), json!({}))
        .await;
    assert_eq!(s, 200, "{rotated}");
    let new = rotated["signing_secret"].as_str().unwrap().to_string();
    assert_ne!(old, new);
    assert!(rotated["previous_secret_expires_at"].is_string());
    let (_, shown) = server.get(&format!("/api/v1/webhooks/{id}")).await;
    assert!(
        !shown.to_string().contains(&new[6..]),
        "the secret is shown only once"
    );

    server.push("kc_appointment_book", json!({})).await;
    let got = rx.wait_for(1, WAIT).await;
    let r = &got[0];
    let signature = r.header("webhook-signature").unwrap();
    assert_eq!(signature.split(' ').count(), 2, "{signature}");
    // The standardwebhooks crate, not our code, verifies with either secret.
    for secret in [&old, &new] {
        let mut headers = axum::http::HeaderMap::new();
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            headers.insert(name, r.headers.get(name).unwrap().clone());
        }
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(&r.body, &headers)
            .expect("verifies with the old and the new secret");
    }
    let (s, _) = server
        .post(
            &format!("/api/v1/webhooks/{}/rotate-secret", uuid::Uuid::now_v7()),
            json!({}),
        )
        .await;
    assert_eq!(s, 404);
    server.stop().await;
}
