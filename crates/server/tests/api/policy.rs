//! The policy table, end to end. Every operation of the served OpenAPI document is called
//! with a token of each role, of every clinic and limited to clinic 2, against things of
//! clinic 1 (and, for a limited token, of clinic 2); each answer must be what the
//! operation's documented policy (`x-carehook-policy`, printed in `docs/access.md`) says:
//! - a role the rule does not name, or a token limited to clinics on an `install`
//!   operation: 403;
//! - an allowed token of every clinic: neither 401 nor 403, and never a 404 for a webhook or
//!   delivery that exists;
//! - an allowed token limited to clinic 2: a clinic-1 webhook or delivery is a 404, a
//!   clinic-1 event pushed is refused, and no answer to it ever names a clinic-1 webhook or
//!   delivery; its own clinic's are found;
//! - a refused call changes nothing (the webhook it named is still there, unchanged).
//!
//! An operation without a policy entry fails the test (it is also refused to every token).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::{Backend, Receiver, TOKEN, TestServer, hook};

const ROLES: [&str; 5] = ["owner", "admin", "editor", "viewer", "ingest"];

/// One operation of the document.
#[derive(Debug, Clone)]
struct Op {
    id: String,
    method: String,
    path: String,
    roles: Vec<String>,
    /// `public`, `install` or `scoped`.
    clinics: String,
    has_body: bool,
}

fn operations(doc: &Value) -> (Vec<Op>, Vec<String>) {
    let mut ops = Vec::new();
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap().to_string();
            let policy = &op["x-carehook-policy"];
            if policy.is_null() {
                missing.push(format!("{method} {path} ({id})"));
                continue;
            }
            ops.push(Op {
                id,
                method: method.to_uppercase(),
                path: path.clone(),
                roles: policy["roles"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_string())
                    .collect(),
                clinics: policy["clinics"].as_str().unwrap().to_string(),
                has_body: !op["requestBody"].is_null(),
            });
        }
    }
    (ops, missing)
}

/// A token of `role`, limited to `clinics` (`None`: every clinic).
async fn token(server: &TestServer, role: &str, clinics: Option<&[&str]>) -> String {
    let (status, body) = server
        .post(
            "/api/v1/tokens",
            json!({"name": format!("{role}-{clinics:?}"), "role": role, "clinics": clinics, "bodies": true}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_string()
}

async fn call_as(
    server: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut req = server
        .http
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{}", server.base, path),
        )
        .bearer_auth(token);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// What a call names: a webhook or delivery of a clinic (the scoped things), or nothing.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    None,
    Webhook(String),
    Delivery(String),
}

struct Fixtures {
    receiver_url: String,
    /// Every clinic-1 webhook and delivery id made so far: no answer to a clinic-2 token may
    /// name one.
    clinic1_ids: BTreeSet<String>,
    delivery1: String,
    delivery2: String,
    event: String,
    preset: String,
}

fn clinic_hook(url: &str, clinic: &str) -> Value {
    let mut h = hook(url);
    h["clinics"] = json!([clinic]);
    h["name"] = format!("Clinic {clinic}: new appointment").into();
    h
}

async fn fresh_webhook(server: &TestServer, f: &mut Fixtures, clinic: &str) -> String {
    let w = server
        .create_webhook(clinic_hook(&f.receiver_url, clinic))
        .await;
    let id = w["id"].as_str().unwrap().to_string();
    if clinic == "1" {
        f.clinic1_ids.insert(id.clone());
    }
    id
}

/// The request for `op` naming things of `clinic`: its path with ids filled in, its body,
/// and the webhook or delivery it names.
async fn request(
    server: &TestServer,
    f: &mut Fixtures,
    op: &Op,
    clinic: &str,
) -> (String, Option<Value>, Target) {
    let mut target = Target::None;
    let mut path = op.path.clone();
    if path.contains("{id}") {
        let id = if path.starts_with("/api/v1/webhooks/{id}") {
            let id = fresh_webhook(server, f, clinic).await;
            target = Target::Webhook(id.clone());
            id
        } else if path.starts_with("/api/v1/deliveries/{id}") {
            let id = if clinic == "1" {
                f.delivery1.clone()
            } else {
                f.delivery2.clone()
            };
            target = Target::Delivery(id.clone());
            id
        } else if path.starts_with("/api/v1/tokens/{id}") {
            let (status, t) = server
                .post("/api/v1/tokens", json!({"name": "to-revoke"}))
                .await;
            assert_eq!(status, 201, "{t}");
            t["id"].as_str().unwrap().to_string()
        } else if path.starts_with("/api/v1/events/{id}") {
            f.event.clone()
        } else if path.starts_with("/api/v1/presets/{id}") {
            f.preset.clone()
        } else {
            // A clinic record, or a patient to erase: one that does not exist.
            "999999".to_string()
        };
        path = path.replace("{id}", &id);
        if path.contains("{link_id}") {
            // A live partner link of that webhook, made by the admin token.
            let (status, link) = server
                .post(&format!("/api/v1/webhooks/{id}/partner-links"), json!({}))
                .await;
            assert_eq!(status, 201, "{link}");
            path = path.replace("{link_id}", link["id"].as_str().unwrap());
        }
    }
    assert!(
        !path.contains('{'),
        "a path parameter the test does not know: {path}"
    );
    let body = match op.id.as_str() {
        "createWebhook" => Some(clinic_hook(&f.receiver_url, clinic)),
        "updateWebhook" => Some(json!({"description": "changed by the policy test"})),
        "pushEvent" => Some(json!({
            "event": "kc_patient_add",
            "data": {"clinic_id": clinic, "patient_id": "7", "patient_name": "Ada Lovelace"}
        })),
        "createToken" => Some(json!({"name": "made-by-policy-test", "role": "viewer"})),
        "previewWebhookDraft" => Some(clinic_hook(&f.receiver_url, clinic)),
        "purgePayloads" => Some(json!({"dry_run": true})),
        _ if op.has_body => Some(json!({})),
        _ => None,
    };
    (path, body, target)
}

/// The webhook as the owner reads it, to tell that a refused call changed nothing.
async fn state_of(server: &TestServer, target: &Target) -> Option<Value> {
    match target {
        Target::Webhook(id) => {
            let (status, w) = server.get(&format!("/api/v1/webhooks/{id}")).await;
            assert_eq!(status, 200, "the webhook must still be there: {w}");
            Some(json!([w["version"], w["enabled"], w["description"]]))
        }
        Target::Delivery(id) => {
            // Settled first: a retry an allowed caller made is sent meanwhile, and that is
            // not a change the refused call made.
            let d = server
                .wait_delivery(id, crate::common::WAIT, |d| d["status"] != "pending")
                .await;
            Some(json!([d["status"], d["attempts"].as_array().map(Vec::len)]))
        }
        Target::None => None,
    }
}

async fn every_operation_obeys_the_documented_policy(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (status, doc) = server.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    let (ops, missing) = operations(&doc);
    assert!(
        missing.is_empty(),
        "operations without an entry in the policy table (src/api/policy.rs, POLICY): {missing:#?}"
    );
    assert!(ops.len() > 40, "only {} operations", ops.len());

    // Fixtures: a webhook and a delivery in each clinic, an event, a preset.
    let mut f = Fixtures {
        receiver_url: receiver.url("/hook"),
        clinic1_ids: BTreeSet::new(),
        delivery1: String::new(),
        delivery2: String::new(),
        event: String::new(),
        preset: String::new(),
    };
    let mut deliveries = Vec::new();
    for clinic in ["1", "2"] {
        fresh_webhook(&server, &mut f, clinic).await;
        let pushed = server
            .push(
                "kc_appointment_book",
                json!({"clinic_id": clinic, "patient_name": "Ada Lovelace"}),
            )
            .await;
        let ds = pushed["deliveries"].as_array().unwrap();
        assert_eq!(ds.len(), 1, "one webhook of clinic {clinic}: {pushed}");
        deliveries.push(ds[0].as_str().unwrap().to_string());
        f.event = pushed["id"].as_str().unwrap().to_string();
    }
    f.delivery1 = deliveries[0].clone();
    f.delivery2 = deliveries[1].clone();
    f.clinic1_ids.insert(f.delivery1.clone());
    let (_, presets) = server.get("/api/v1/presets").await;
    f.preset = presets["items"][0]["id"].as_str().unwrap().to_string();

    let mut callers = Vec::new();
    for role in ROLES {
        callers.push((role, false, token(&server, role, None).await));
        callers.push((role, true, token(&server, role, Some(&["2"])).await));
    }

    let mut failures = Vec::new();
    let mut calls = 0;
    for op in &ops {
        for (role, limited, tok) in &callers {
            let allowed = op.clinics == "public"
                || (op.roles.iter().any(|r| r == role) && !(*limited && op.clinics == "install"));
            // A limited caller is tried on clinic 1's things, and (when allowed) on its own.
            let clinics: &[&str] = if *limited && allowed && op.clinics == "scoped" {
                &["1", "2"]
            } else {
                &["1"]
            };
            for clinic in clinics {
                let (path, body, target) = request(&server, &mut f, op, clinic).await;
                let before = state_of(&server, &target).await;
                let (status, text) = call_as(&server, tok, &op.method, &path, body).await;
                calls += 1;
                let who = format!(
                    "{} {path} ({}) as {role}{} on clinic {clinic}",
                    op.method,
                    op.id,
                    if *limited { " of clinic 2" } else { "" }
                );
                let foreign = *limited && *clinic == "1";
                let problem = if !allowed {
                    (status != 403).then(|| format!("expected 403, got {status}: {text}"))
                } else if foreign && op.id == "pushEvent" {
                    (status != 403).then(|| format!("pushed another clinic's event: {status}"))
                } else if foreign && op.id == "createWebhook" {
                    (status != 422).then(|| format!("a webhook of another clinic: {status}"))
                } else if status == 401 || status == 403 {
                    Some(format!("allowed, but refused with {status}: {text}"))
                } else if foreign && target != Target::None && status != 404 {
                    Some(format!(
                        "another clinic's {target:?} must be a 404, got {status}: {text}"
                    ))
                } else if !foreign && target != Target::None && status == 404 {
                    Some(format!("{target:?} exists, yet 404: {text}"))
                } else {
                    None
                };
                if let Some(p) = problem {
                    failures.push(format!("{who}: {p}"));
                }
                if *limited
                    && let Some(id) = f.clinic1_ids.iter().find(|id| text.contains(id.as_str()))
                {
                    failures.push(format!("{who}: the answer names clinic 1's {id}"));
                }
                if (status == 403 || status == 404) && before.is_some() {
                    let after = state_of(&server, &target).await;
                    if after != before {
                        failures.push(format!(
                            "{who}: refused with {status}, yet changed {before:?} → {after:?}"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {calls} calls broke the policy:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The admin token from the first start is an owner of every clinic.
    let (status, _) = call_as(&server, TOKEN, "GET", "/api/v1/tokens", None).await;
    assert_eq!(status, 200);
    server.stop().await;
}

crate::on_both!(every_operation_obeys_the_documented_policy);

/// `docs/access.md` prints the policy table; it must say what the served document says.
#[tokio::test]
async fn the_policy_in_the_docs_is_the_one_served() {
    let doc = carehook::api::openapi_document();
    let (ops, missing) = operations(&doc);
    assert!(missing.is_empty(), "{missing:#?}");
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/access.md"))
            .unwrap();
    let mut expected: Vec<String> = ops
        .iter()
        .map(|op| {
            let roles = if op.clinics == "public" {
                "anyone, no token".to_string()
            } else {
                op.roles.join(", ")
            };
            format!(
                "| `{}` | `{} {}` | {} | {} |",
                op.id, op.method, op.path, roles, op.clinics
            )
        })
        .collect();
    expected.sort();
    let mut documented: Vec<String> = text
        .lines()
        // The policy table's rows (four columns; the roles table above has two).
        .filter(|l| l.starts_with("| `") && l.matches(" | ").count() == 3)
        .map(str::to_string)
        .collect();
    documented.sort();
    assert!(
        documented == expected,
        "docs/access.md's policy table differs from the served one; its rows should be:\n{}",
        expected.join("\n")
    );
}
