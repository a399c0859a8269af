//! The OpenAPI document as outside tools read it: an independent validator
//! (openapi-spec-validator, from PyPI) passes it as OpenAPI 3.1, every
//! operation has a unique, meaningful operationId, and a client driven only
//! by the document (`scripts/carehook_client.py`) makes a webhook and pushes
//! an event that is delivered.
//!
//! Without python3 and the validator these print a skip line, unless
//! `CAREHOOK_REQUIRE_VALIDATOR=1` (set by `.ci/run`) makes them fail.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::{Backend, Receiver, TOKEN, TestServer, WAIT};

/// `python3` when it can import `module`; `None` (after a skip line) when
/// not and not required.
fn python_with(module: &str) -> Option<&'static str> {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some("python3");
    }
    if std::env::var("CAREHOOK_REQUIRE_VALIDATOR").as_deref() == Ok("1") {
        panic!(
            "CAREHOOK_REQUIRE_VALIDATOR=1 but python3 cannot import {module}: python3 -m pip install openapi-spec-validator"
        );
    }
    println!(
        "skipped: needs python3 with {module} (python3 -m pip install openapi-spec-validator)"
    );
    None
}

async fn served_document(server: &TestServer) -> Value {
    let (status, doc) = server.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    doc
}

#[tokio::test]
async fn an_independent_validator_passes_the_document_as_openapi_3_1() {
    let Some(python) = python_with("openapi_spec_validator") else {
        return;
    };
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let doc = served_document(&server).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = Command::new(python)
        .args(["-m", "openapi_spec_validator", "--schema", "3.1.0"])
        .arg(&file)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the validator refused the document:\n{said}"
    );
    assert!(said.contains("OK"), "{said}");

    // The validator says nothing about names; a client generator needs them
    // unique, and a person reading one needs it to say what it does.
    let mut seen = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(id) = op["operationId"].as_str() else {
                panic!("{method} {path} has no operationId");
            };
            assert!(
                seen.insert(id.to_string()),
                "operationId {id} is used twice"
            );
            assert!(
                id.chars().next().unwrap().is_ascii_lowercase()
                    && id.chars().all(|c| c.is_ascii_alphanumeric())
                    && !id.contains("ApiV1"),
                "{method} {path}: operationId {id} is made up from the path; name it in api/openapi.rs OPERATION_IDS"
            );
            for (status, response) in op["responses"].as_object().unwrap() {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status} has no description"
                );
            }
        }
    }
    for expected in [
        "createWebhook",
        "pushEvent",
        "listDeliveries",
        "retryDelivery",
        "createAppointment",
        "listBillPayments",
    ] {
        assert!(seen.contains(expected), "no operation {expected}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_client_driven_by_the_document_creates_a_webhook_and_pushes_an_event() {
    let Some(python) = python_with("jsonschema") else {
        return;
    };
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let receiver = Receiver::start().await;
    let scripts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
    let story = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
from carehook_client import Client, ApiError
api = Client(sys.argv[2], sys.argv[3])
hook = api.call("createWebhook", body={
    "name": "From Python", "events": ["kc_appointment_book"], "url": sys.argv[4],
    "body": "{\"text\": \"{{patient_name}} at {{appointment_start_time}}\"}"})
pushed = api.call("pushEvent", body={"event": "kc_appointment_book",
    "data": {"patient_name": "Ada Lovelace", "appointment_start_time": "09:30"}})
# A body the document forbids is refused before it is sent.
try:
    api.call("pushEvent", body={"data": {}})
    refused = False
except ValueError as e:
    refused = "event" in str(e)
try:
    api.call("getWebhook", id="00000000-0000-0000-0000-000000000000")
    missing = None
except ApiError as e:
    missing = e.status
print(json.dumps({"hook": hook, "pushed": pushed, "refused": refused, "missing": missing}))
"#;
    let out = tokio::process::Command::new(python)
        .arg("-c")
        .arg(story)
        .arg(&scripts)
        .arg(&server.base)
        .arg(TOKEN)
        .arg(receiver.url("/from-python"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["refused"], true, "{said}");
    assert_eq!(said["missing"], 404, "{said}");
    let id = said["hook"]["id"].as_str().unwrap();
    let (status, stored) = server.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(stored["name"], "From Python");

    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].json(), json!({"text": "Ada Lovelace at 09:30"}));
    let delivery = said["pushed"]["deliveries"][0].as_str().unwrap();
    server
        .wait_delivery(delivery, WAIT, |d| d["status"] == "succeeded")
        .await;
    server.stop().await;
}
