//! `carehook import kivicare-addon` against a live server: the add-on's
//! webhooks become carehook webhooks, disabled, with a report of what could
//! not be carried over; `--dry-run` creates nothing.

use serde_json::{Value, json};

use crate::commands::carehook_with;
use crate::common::{Backend, TOKEN, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kivicare_addons_webhooks_are_imported_disabled_with_a_report() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("addon.json");
    let export = json!([
        {"name": "Slack: new booking", "event": "kc_appointment_book",
         "url": "https://hooks.slack.com/services/T0/B0/XXXX", "method": "POST", "content_type": "json",
         "payload": "{\"text\": \"{{patient_full_name}} with {{doctor_full_name}} on {{appointment_date}} at {{appointment_time}} ({{zoom_start_url}})\"}",
         "status": "active"},
        {"name": "Teams: cancelled", "event": "kc_appointment_cancel",
         "url": "https://example.webhook.office.com/webhookb2/abc",
         "auth": {"type": "bearer", "token": "addon-secret-token"},
         "payload": "{\"title\": \"Cancelled: {{patient_full_name}}\"}"},
        {"name": "Pro only", "event": "kcpro_some_hook", "url": "https://example.com/x"}
    ]);
    std::fs::write(&file, export.to_string()).unwrap();
    let path = file.to_str().unwrap();

    let dry = carehook_with(
        &server.base,
        Some(TOKEN),
        &["import", "kivicare-addon", "--file", path, "--dry-run"],
    )
    .await;
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout
            .contains("would create \"Slack: new booking\" (disabled)"),
        "{}",
        dry.stdout
    );
    let (_, list) = server.get("/api/v1/webhooks").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "a dry run creates nothing"
    );

    let run = carehook_with(
        &server.base,
        Some(TOKEN),
        &["import", "kivicare-addon", "--file", path, "--json"],
    )
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let out = run.json();
    assert_eq!(out["created"].as_array().unwrap().len(), 2, "{out}");
    let notes: Vec<&str> = out["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("{{zoom_start_url}}")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n
                .contains("\"Pro only\": event \"kcpro_some_hook\" has no carehook equivalent")),
        "{notes:?}"
    );
    assert!(
        !run.stdout.contains("addon-secret-token"),
        "the report never shows a secret"
    );

    let (_, list) = server.get("/api/v1/webhooks").await;
    let hooks: Vec<Value> = list["items"].as_array().unwrap().clone();
    assert_eq!(hooks.len(), 2);
    assert!(hooks.iter().all(|h| h["enabled"] == false), "{hooks:?}");
    let slack = hooks
        .iter()
        .find(|h| h["name"] == "Slack: new booking")
        .unwrap();
    assert_eq!(slack["events"], json!(["kc_appointment_book"]));
    assert_eq!(
        slack["body"],
        "{\"text\": \"{{patient_name}} with {{doctor_name}} on {{appointment_date}} at {{appointment_start_time}} ()\"}"
    );
    let teams = hooks
        .iter()
        .find(|h| h["name"] == "Teams: cancelled")
        .unwrap();
    assert_eq!(teams["events"], json!(["kc_appointment_status_change"]));
    assert_eq!(teams["conditions"][0]["value"], "cancelled");
    assert_eq!(teams["auth"]["type"], "bearer");

    // The imported webhook renders as the add-on's did, with carehook's values.
    let id = slack["id"].as_str().unwrap();
    let (status, preview) = server
        .post(
            &format!("/api/v1/webhooks/{id}/preview"),
            json!({"data": {"patient_name": "Zoë \"Z\" Ng 🌸"}}),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    let body: Value = serde_json::from_str(preview["request"]["body"].as_str().unwrap()).unwrap();
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("Zoë \"Z\" Ng 🌸 with "),
        "{body}"
    );

    // A file that is not an export: exit 2, the file named.
    std::fs::write(&file, "{\"name\": 1}").unwrap();
    let bad = carehook_with(
        &server.base,
        Some(TOKEN),
        &["import", "kivicare-addon", "--file", path],
    )
    .await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("JSON array of webhooks"),
        "{}",
        bad.stderr
    );
    server.stop().await;
}
