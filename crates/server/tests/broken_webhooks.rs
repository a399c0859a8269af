//! Issue 10, the service layer's part, on a real server:
//! - a webhook whose secrets the master key cannot open stays listed as
//!   `broken` (API and UI), its deliveries wait instead of failing, and
//!   arrive once carehook runs with the right key again;
//! - events fired by clinic record changes are counted in the metrics;
//! - who disabled a webhook is recorded next to why, by every path.

mod common;

use std::time::{Duration, Instant};

use carehook::vault::Vault;
use common::{Backend, Receiver, TestServer, samples, test_settings};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

/// Stops `server` and starts carehook again on the same database with
/// `key` as its master key.
async fn restart_with_key(server: TestServer, key: [u8; 32]) -> TestServer {
    let mut server = server;
    let db = server.db.take();
    let store = server.store.clone();
    server.stop().await;
    let mut settings = test_settings();
    settings.vault = Vault::from_key(&key);
    // Payloads sealed under a wrong key cannot be opened once the right key is
    // back (a known gap, see docs/patient-data.md); this test is about the
    // webhook's sealed secrets, so the wrong-key run writes payloads in plain.
    settings.seal_payloads = key == [42; 32];
    TestServer::start_on(store, db, settings).await
}

fn item<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list["items"].as_array()?.iter().find(|w| w["id"] == id)
}

async fn ui_page(server: &TestServer, session: &str, path: &str) -> String {
    let resp = server
        .http
        .get(format!("{}{path}", server.base))
        .header("cookie", format!("carehook_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.unwrap()
}

async fn secrets_under_a_wrong_key_leave_the_webhook_broken_and_its_deliveries_waiting(
    backend: Backend,
) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let sealed = server
        .create_webhook(json!({
            "name": "Billing (basic auth)",
            "events": ["kc_appointment_book"],
            "url": rx.url("/sealed"),
            "auth": {"type": "basic", "username": "clinic", "password": "pw-6f1e-do-not-log"},
        }))
        .await;
    let sealed_id = sealed["id"].as_str().unwrap().to_string();

    // The key is lost: carehook starts with another one.
    let server = restart_with_key(server, [7; 32]).await;
    let (status, list) = server.get("/api/v1/webhooks").await;
    assert_eq!(status, 200, "{list}");
    let listed = item(&list, &sealed_id).unwrap_or_else(|| panic!("the webhook vanished: {list}"));
    assert_eq!(listed["state"], "broken", "{listed}");
    assert!(
        listed["broken_reason"]
            .as_str()
            .unwrap()
            .contains("cannot be decrypted with this master key"),
        "{listed}"
    );
    let (status, one) = server.get(&format!("/api/v1/webhooks/{sealed_id}")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["state"], "broken");
    assert_eq!(one["name"], "Billing (basic auth)");
    // A change that would rewrite its secrets is refused: the stored ones
    // still open with the right key.
    let (status, refused) = server
        .post(
            &format!("/api/v1/webhooks/{sealed_id}/rotate-secret"),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{refused}");

    // The UI lists it as broken too, on the list and the dashboard.
    let (_, session) = server.ui_login().await;
    for path in ["/ui/webhooks", "/ui"] {
        let html = ui_page(&server, &session, path).await;
        assert!(html.contains("Billing (basic auth)"), "{path}: {html}");
        assert!(html.contains("badge bad\">broken"), "{path}: {html}");
    }
    // No Clone button for it: cloning needs the secrets it cannot open (the API says 409).
    let list = ui_page(&server, &session, "/ui/webhooks").await;
    assert!(
        !list.contains(&format!("/ui/webhooks/{sealed_id}/clone")),
        "{list}"
    );

    // A webhook made under this key works, and proves the dispatcher had
    // its chance at the broken one's delivery of the same event.
    let healthy = server
        .create_webhook(json!({
            "name": "Healthy", "events": ["kc_appointment_book"], "url": rx.url("/healthy"),
        }))
        .await;
    let list = ui_page(&server, &session, "/ui/webhooks").await;
    let healthy_id = healthy["id"].as_str().unwrap();
    assert!(
        list.contains(&format!("/ui/webhooks/{healthy_id}/clone")),
        "a working webhook keeps its Clone button: {list}"
    );
    let pushed = server.push("kc_appointment_book", json!({})).await;
    let deliveries: Vec<String> = pushed["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    assert_eq!(deliveries.len(), 2, "one per webhook: {pushed}");
    let (_, log) = server
        .get(&format!(
            "/api/v1/deliveries?webhook_id={}",
            healthy["id"].as_str().unwrap()
        ))
        .await;
    let healthy_delivery = log["items"][0]["id"].as_str().unwrap().to_string();
    server
        .wait_delivery(&healthy_delivery, WAIT, |d| d["status"] == "succeeded")
        .await;
    let (_, log) = server
        .get(&format!("/api/v1/deliveries?webhook_id={sealed_id}"))
        .await;
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{log}");
    assert_eq!(items[0]["status"], "pending", "waits, not failed: {log}");
    assert_eq!(items[0]["attempts"], 0, "no attempt counted: {log}");
    assert!(items[0]["last_error"].is_null(), "{log}");
    let waiting = items[0]["id"].as_str().unwrap().to_string();
    assert!(rx.received().iter().all(|r| r.path != "/sealed"));

    // The right key again: the webhook is whole and the delivery arrives,
    // with the secret that was sealed under that key.
    let server = restart_with_key(server, [42; 32]).await;
    let (_, one) = server.get(&format!("/api/v1/webhooks/{sealed_id}")).await;
    assert_eq!(one["state"], "enabled", "{one}");
    assert!(one["broken_reason"].is_null());
    let d = server
        .wait_delivery(&waiting, WAIT, |d| d["status"] == "succeeded")
        .await;
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1, "{d}");
    let got = rx
        .received()
        .into_iter()
        .find(|r| r.path == "/sealed")
        .expect("the sealed webhook's delivery arrived");
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("clinic:pw-6f1e-do-not-log");
    assert_eq!(
        got.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_with_secrets_the_key_cannot_open_is_listed_broken_and_its_deliveries_wait_sqlite()
 {
    secrets_under_a_wrong_key_leave_the_webhook_broken_and_its_deliveries_waiting(Backend::Sqlite)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_with_secrets_the_key_cannot_open_is_listed_broken_and_its_deliveries_wait_postgres()
 {
    secrets_under_a_wrong_key_leave_the_webhook_broken_and_its_deliveries_waiting(Backend::Postgres)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_fired_by_clinic_record_changes_are_counted_in_the_metrics() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    server
        .create_webhook(json!({"name": "all", "events": ["*"], "url": rx.url("/all")}))
        .await;
    let (status, clinic) = server
        .post("/api/v1/clinics", json!({"name": "Riverside"}))
        .await;
    assert_eq!(status, 201, "{clinic}");
    let id = clinic["id"].as_i64().unwrap();
    let (status, changed) = server
        .call(
            "PATCH",
            &format!("/api/v1/clinics/{id}"),
            Some(json!({"name": "Riverside Family Clinic"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    let fired: Vec<&Value> = clinic["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(changed["events"].as_array().unwrap())
        .collect();
    assert!(!fired.is_empty(), "{clinic} {changed}");
    let deliveries: usize = fired
        .iter()
        .map(|e| e["deliveries"].as_array().unwrap().len())
        .sum();
    assert_eq!(deliveries, fired.len(), "one per event for the `*` webhook");

    // Counted when the change commits, before its answer.
    let m = samples(&server.metrics_text().await);
    assert_eq!(
        m.get("carehook_events_recorded_total"),
        Some(&(fired.len() as f64))
    );
    assert_eq!(
        m.get("carehook_deliveries_created_total"),
        Some(&(deliveries as f64))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_disabled_a_webhook_is_recorded_next_to_why() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    rx.answer(|r, _| {
        if r.path == "/gone" {
            common::Answer::status(410)
        } else {
            common::Answer::ok()
        }
    });
    let by_hand = server
        .create_webhook(
            json!({"name": "by hand", "events": ["kc_appointment_book"], "url": rx.url("/ok")}),
        )
        .await;
    let id = by_hand["id"].as_str().unwrap();

    // By the admin token, then by a named API token.
    let (status, off) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["enabled"], false);
    assert_eq!(off["state"], "disabled");
    assert_eq!(off["disabled_by"], "api: the admin token");
    assert!(off["disabled_reason"].is_null(), "{off}");
    let (status, on) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{on}");
    assert!(on["disabled_by"].is_null(), "enabling clears it: {on}");
    let (_, token) = server
        .post("/api/v1/tokens", json!({"name": "ops-rota"}))
        .await;
    let resp = server
        .http
        .patch(format!("{}/api/v1/webhooks/{id}", server.base))
        .bearer_auth(token["token"].as_str().unwrap())
        .header("content-type", "application/json")
        .body(json!({"enabled": false, "description": "paused for the move"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, w) = server.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(w["disabled_by"], "api token ops-rota", "{w}");

    // By the dispatcher, on a 410 Gone.
    let gone = server
        .create_webhook(
            json!({"name": "gone", "events": ["kc_appointment_book"], "url": rx.url("/gone")}),
        )
        .await;
    let gone_id = gone["id"].as_str().unwrap();
    server.push("kc_appointment_book", json!({})).await;
    let deadline = Instant::now() + WAIT;
    let w = loop {
        let (_, w) = server.get(&format!("/api/v1/webhooks/{gone_id}")).await;
        if w["enabled"] == false {
            break w;
        }
        assert!(Instant::now() < deadline, "never disabled: {w}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(w["disabled_by"], "dispatcher: endpoint answered 410 Gone");
    assert!(
        w["disabled_reason"].as_str().unwrap().contains("410 Gone"),
        "{w}"
    );
    server.stop().await;
}
