//! What a schema fuzzer (schemathesis, all phases, against a live server) found where the
//! served OpenAPI document and the server disagreed, one test per class: the answer's exact
//! status and the field it names, and the document saying so.

use serde_json::{Value, json};

use crate::common::{Backend, Receiver, TestServer, hook};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not in the document");
    op
}

fn documents(doc: &Value, method: &str, path: &str, status: &str) -> bool {
    operation(doc, method, path)["responses"][status].is_object()
}

fn assert_error(answer: &(u16, Value), status: u16, code: &str, field: Option<&str>) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    match field {
        Some(f) => assert_eq!(body["error"]["field"], f, "{body}"),
        None => assert!(body["error"].get("field").is_none(), "{body}"),
    }
}

/// The shared extractors answer bad input the same way on every route; the document said
/// so only where a handler's annotation remembered (`POST /purge` without a body was an
/// undocumented 415, `GET /alerts?limit=x` an undocumented 422).
#[tokio::test]
async fn every_answer_the_input_extractors_give_is_documented() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let doc = carehook::api::openapi_document();

    assert_error(
        &server.call("POST", "/api/v1/purge", None).await,
        415,
        "unsupported_media_type",
        None,
    );
    assert!(documents(&doc, "post", "/api/v1/purge", "415"));
    assert_error(
        &server.get("/api/v1/alerts?limit=lots").await,
        422,
        "invalid",
        Some("limit"),
    );
    assert_error(
        &server.get("/api/v1/alerts?colour=red").await,
        422,
        "invalid",
        Some("colour"),
    );
    assert!(documents(&doc, "get", "/api/v1/alerts", "422"));

    // And the same on every operation: a body may be malformed, too large, not JSON or
    // invalid; query parameters invalid; a typed id in the path malformed.
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut want = Vec::new();
            if op.get("requestBody").is_some() {
                want.extend(["400", "413", "415", "422"]);
            }
            if params.iter().any(|p| p["in"] == "query") {
                want.push("422");
            }
            if params.iter().any(|p| {
                p["in"] == "path"
                    && (p["schema"]["type"] != "string" || p["schema"]["format"] == "uuid")
            }) {
                want.push("400");
            }
            for status in want {
                if !op["responses"][status].is_object() {
                    missing.push(format!("{method} {path} {status}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "undocumented: {missing:?}");
    server.stop().await;
}

/// A token limited to a clinic asking for the deliveries of another clinic's webhook gets a
/// 404 (as for a missing webhook); the document listed no 404 there.
#[tokio::test]
async fn another_clinics_webhook_in_the_delivery_filter_is_a_documented_404() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let receiver = Receiver::start().await;
    let mut spec = hook(&receiver.url("/x"));
    spec["clinics"] = json!(["1"]);
    let webhook = server.create_webhook(spec).await;
    let (status, body) = server
        .post(
            "/api/v1/tokens",
            json!({"name": "north desk", "role": "viewer", "clinics": ["2"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap();
    let path = format!(
        "/api/v1/deliveries?webhook_id={}",
        webhook["id"].as_str().unwrap()
    );
    let resp = server
        .http
        .get(format!("{}{path}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    // The owner sees the (empty) log of the same webhook.
    let (status, body) = server.get(&path).await;
    assert_eq!(status, 200, "{body}");
    assert!(documents(
        &carehook::api::openapi_document(),
        "get",
        "/api/v1/deliveries",
        "404"
    ));
    server.stop().await;
}

/// A cursor the server did not make was a 400 naming no field (the store's message only);
/// it is a 422 naming `cursor` on every paged list, and an empty one is the first page.
#[tokio::test]
async fn a_bad_cursor_is_a_422_naming_the_cursor_on_every_list() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    for list in [
        "/api/v1/deliveries",
        "/api/v1/events",
        "/api/v1/audit",
        "/api/v1/patients",
        "/api/v1/appointments",
    ] {
        assert_error(
            &server.get(&format!("{list}?cursor=~")).await,
            422,
            "invalid",
            Some("cursor"),
        );
        let (status, body) = server.get(&format!("{list}?cursor=")).await;
        assert_eq!(status, 200, "{list}: {body}");
    }
    let long = "a".repeat(201);
    assert_error(
        &server
            .get(&format!("/api/v1/deliveries?search={long}"))
            .await,
        422,
        "invalid",
        Some("search"),
    );
    server.stop().await;
}

/// Every clinic list was documented with every filter; a kind without a date (or without
/// that reference) answered a 400 naming no field. Now the document lists only the filters
/// a kind has, and any other is a 422 naming it.
#[tokio::test]
async fn a_clinic_list_refuses_a_filter_its_kind_lacks_and_the_document_leaves_it_out() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let doc = carehook::api::openapi_document();
    let params = |path: &str| -> Vec<String> {
        operation(&doc, "get", path)["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_error(
        &server.get("/api/v1/patients?date=2026-01-01").await,
        422,
        "invalid",
        Some("date"),
    );
    assert!(!params("/api/v1/patients").contains(&"date".to_string()));
    assert_error(
        &server.get("/api/v1/doctors?bill_id=1").await,
        422,
        "invalid",
        Some("bill_id"),
    );
    assert!(!params("/api/v1/doctors").contains(&"bill_id".to_string()));
    // What the document lists works: payments by clinic go through bill and encounter.
    assert!(params("/api/v1/payments").contains(&"clinic_id".to_string()));
    let (status, body) = server
        .get("/api/v1/payments?clinic_id=1&date_from=2026-01-01&date_to=2026-12-31&limit=5")
        .await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

/// The document was looser than the validation (schemathesis: 47 "schema-valid request
/// refused"): it now says what the server takes where a schema can: page sizes from 1,
/// no unknown record fields, no control characters, dates in range, references positive.
#[tokio::test]
async fn the_document_is_as_strict_as_the_validation() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let doc = carehook::api::openapi_document();

    for (path, item) in doc["paths"].as_object().unwrap() {
        for p in item["get"]["parameters"].as_array().into_iter().flatten() {
            if p["name"] == "limit" && path != "/api/v1/alerts" {
                assert_eq!(p["schema"]["minimum"], 1, "{path}");
            }
        }
    }
    assert_error(
        &server.get("/api/v1/events?limit=0").await,
        422,
        "invalid",
        Some("limit"),
    );

    let schemas = &doc["components"]["schemas"];
    let patient = &schemas["PatientInput"];
    assert_eq!(patient["additionalProperties"], false);
    assert_eq!(schemas["PatientPatch"]["additionalProperties"], false);
    assert!(patient["properties"]["first_name"]["pattern"].is_string());
    assert_eq!(patient["properties"]["first_name"]["maximum"], u64::MAX);
    assert_eq!(patient["properties"]["clinic_id"]["minimum"], 1);
    assert!(patient["properties"]["dob"]["pattern"].is_string());
    // A nested record takes its parent from the path only.
    assert!(schemas["PaymentInput"]["properties"]["bill_id"].is_null());
    // The record as answered keeps only types (stored values may predate a rule).
    assert!(schemas["Patient"]["properties"]["first_name"]["pattern"].is_null());
    // carehook takes an address JSON Schema's `email` format does not (schemathesis sent
    // one): the answer does not promise that format.
    let odd = json!({"email": "ĚÞ@³Ã.mì«É"});
    assert!(schemas["Patient"]["properties"]["email"]["format"].is_null());

    // Each refused as documented, naming the field.
    let clinic = json!({"name": "North", "currency": "EUR", "timezone": "Europe/London"});
    let (status, body) = server.post("/api/v1/clinics", clinic).await;
    assert_eq!(status, 201, "{body}");
    let patient = |extra: Value| {
        let mut p = json!({"clinic_id": body["id"], "first_name": "Ada", "last_name": "King"});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    for (extra, field) in [
        (json!({"first_name": "A\u{1b}da"}), "first_name"),
        (json!({"dob": "1850-01-01"}), "dob"),
        (json!({"clinic_id": 0}), "clinic_id"),
        (json!({"shoe_size": "9"}), "shoe_size"),
        // Blank is absent; the document asks a required text for a non-space.
        (json!({"last_name": "   "}), "last_name"),
        // A JSON number is taken as text only when whole and within 64 bits.
        (json!({"first_name": 1.5e30}), "first_name"),
    ] {
        assert_error(
            &server.post("/api/v1/patients", patient(extra)).await,
            422,
            "invalid",
            Some(field),
        );
    }
    let (status, body) = server.post("/api/v1/patients", patient(json!({}))).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server.post("/api/v1/patients", patient(odd)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["email"], "ĚÞ@³Ã.mì«É");

    let token = &schemas["NewToken"]["properties"];
    assert!(token["name"]["pattern"].is_string());
    assert_error(
        &server
            .post("/api/v1/tokens", json!({"name": "zap\u{7}ier"}))
            .await,
        422,
        "invalid",
        Some("name"),
    );
    // A person is not an `ingest` (that role is for API tokens).
    assert_eq!(
        schemas["PersonRole"]["enum"],
        json!(["owner", "admin", "editor", "viewer"])
    );
    let (status, body) = server
        .post(
            "/api/v1/users",
            json!({"email": "ada@clinic.example", "display_name": "Ada", "role": "ingest"}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("role")),
        "{body}"
    );
    let name = &schemas["AccountChange"]["properties"]["display_name"];
    assert_eq!(name["maxLength"], 100, "{name}");
    assert_eq!(name["pattern"], "\\S", "{name}");
    assert_eq!(
        schemas["ClinicId"]["pattern"], "^[A-Za-z0-9_-]{1,64}$",
        "{}",
        schemas["ClinicId"]
    );
    server.stop().await;
}

/// Retrying a delivery whose event data was erased is a 409 (the fuzzer erased a patient,
/// then retried); the document listed no 409 there.
#[tokio::test]
async fn retrying_a_delivery_whose_data_was_erased_is_a_documented_409() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let receiver = Receiver::start().await;
    server.create_webhook(hook(&receiver.url("/x"))).await;
    let event = server
        .push(
            "kc_appointment_book",
            json!({"patient_id": "77", "patient_name": "Ada King"}),
        )
        .await;
    let delivery = event["deliveries"][0].as_str().unwrap().to_string();
    server
        .wait_delivery(&delivery, crate::WAIT, |d| d["status"] == "succeeded")
        .await;
    let (status, body) = server.call("POST", "/api/v1/patients/77/erase", None).await;
    assert_eq!(status, 200, "{body}");
    assert_error(
        &server
            .call(
                "POST",
                &format!("/api/v1/deliveries/{delivery}/retry"),
                None,
            )
            .await,
        409,
        "conflict",
        None,
    );
    assert!(documents(
        &carehook::api::openapi_document(),
        "post",
        "/api/v1/deliveries/{id}/retry",
        "409"
    ));
    server.stop().await;
}

/// The delivery log page shows the store's refusal of a filter (a search over 200
/// characters) on the page, as it shows a stale cursor, never a 500.
#[tokio::test]
async fn the_log_page_says_a_search_is_too_long() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let (_, session) = server.ui_login().await;
    for (query, says) in [
        (format!("q={}", "a".repeat(201)), "at most 200 characters"),
        ("cursor=~".to_string(), "no longer exists"),
    ] {
        let resp = server
            .http
            .get(format!("{}/ui/deliveries?{query}", server.base))
            .header("cookie", format!("carehook_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{query}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(says), "{query}: {text}");
    }
    server.stop().await;
}
