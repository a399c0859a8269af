//! Patient data leaving carehook: a webhook's `data_policy` refuses, at save
//! time, every variable beyond it (named, with where it stands), and the two
//! analytics presets count patients by a pseudonym that is the same for the
//! same patient and different on another installation.

use carehook::vault::Vault;
use carehook_core::ids::WebhookId;
use carehook_core::privacy::Pseudonymizer;
use serde_json::{Value, json};

use crate::common::{Backend, Receiver, TestServer};
use crate::{WAIT, on_both};

on_both!(
    a_webhook_beyond_its_data_policy_is_refused_naming_each_variable,
    the_analytics_presets_send_a_pseudonym_and_no_identifying_value,
);

/// `(field, variable, sensitivity, line, column)` of each refused use.
fn violations(error: &Value) -> Vec<(String, String, String, u64, u64)> {
    error["error"]["violations"]
        .as_array()
        .unwrap_or_else(|| panic!("no violations in {error}"))
        .iter()
        .map(|v| {
            (
                v["field"].as_str().unwrap().to_string(),
                v["variable"].as_str().unwrap().to_string(),
                v["sensitivity"].as_str().unwrap().to_string(),
                v["line"].as_u64().unwrap(),
                v["column"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn stored_config(server: &TestServer, id: &str) -> Value {
    let id: WebhookId = id.parse().unwrap();
    server.store.get_webhook(id).await.unwrap().unwrap().config
}

async fn a_webhook_beyond_its_data_policy_is_refused_naming_each_variable(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let spec = |policy: Value| {
        json!({
            "name": "Pharmacy",
            "events": ["kc_prescription_add"],
            "url": rx.url("/rx/{{patient_id}}"),
            "headers": {"X-Patient": "{{patient_email}}"},
            "query": {"dob": "{{patient_dob}}", "ref": "{{ patient_id | pseudonym }}"},
            "body": "{\"clinic\": \"{{clinic_name}}\",\n \"name\": \"{{patient_name}}\", \"rx\": \"{{prescription_details}}\"}",
            // Conditions are read inside carehook and send nothing.
            "conditions": [{"variable": "patient_blood_group", "op": "ne", "value": "unknown"}],
            "data_policy": policy,
        })
    };
    let url_column = rx.url("/rx/").chars().count() as u64 + 1;

    // Nothing allowed: every use is refused, each named with where it stands.
    let (status, e) = server
        .post(
            "/api/v1/webhooks",
            spec(json!({"identifying": false, "phi": false})),
        )
        .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["field"], "data_policy");
    let s = |x: &str| x.to_string();
    assert_eq!(
        violations(&e),
        [
            (s("url"), s("patient_id"), s("identifying"), 1, url_column),
            (
                s("headers.X-Patient"),
                s("patient_email"),
                s("identifying"),
                1,
                1
            ),
            (s("query.dob"), s("patient_dob"), s("identifying"), 1, 1),
            (s("body"), s("patient_name"), s("identifying"), 2, 11),
            (s("body"), s("prescription_details"), s("phi"), 2, 37),
        ]
    );
    let message = e["error"]["message"].as_str().unwrap();
    for var in [
        "patient_id (url",
        "patient_email (headers.X-Patient, line 1, column 1)",
        "patient_dob (query.dob",
        "patient_name (body, line 2, column 11)",
        "prescription_details (body, line 2, column 37)",
    ] {
        assert!(message.contains(var), "{var} not in: {message}");
    }
    // The pseudonymised id and the condition are not refused.
    assert!(!message.contains("query.ref") && !message.contains("blood"));

    // Identifying allowed, but not phi: only the prescription is refused.
    let (status, e) = server
        .post(
            "/api/v1/webhooks",
            spec(json!({"identifying": true, "phi": false, "basis": "Patient consent form v3"})),
        )
        .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(
        violations(&e),
        [(s("body"), s("prescription_details"), s("phi"), 2, 37)]
    );

    // Allowing patient data needs a basis.
    let (status, e) = server
        .post(
            "/api/v1/webhooks",
            spec(json!({"identifying": true, "phi": true})),
        )
        .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["field"], "data_policy.basis");
    let (_, list) = server.get("/api/v1/webhooks").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "nothing saved");

    // Everything it sends allowed, with a basis: saved, the policy stored.
    let basis = "BAA with the pharmacy signed 2026-03";
    let created = server
        .create_webhook(spec(
            json!({"identifying": true, "phi": true, "basis": basis}),
        ))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["data_policy"]["basis"], basis);
    assert_eq!(
        created["data_sent"],
        json!({"identifying": true, "phi": true, "variables":
            ["patient_id", "patient_email", "patient_dob", "patient_name", "prescription_details"]})
    );
    assert_eq!(
        stored_config(&server, &id).await["spec"]["data_policy"],
        json!({"identifying": true, "phi": true, "basis": basis})
    );

    // A change that sends more than the policy allows is refused, and the
    // stored webhook stays as it was.
    let narrow = server
        .create_webhook(json!({
            "name": "Front desk board", "events": ["kc_appointment_book"], "url": rx.url("/board"),
            "body": "{\"who\": \"{{patient_first_name}}\"}",
            "data_policy": {"identifying": true, "phi": false, "basis": "Clinic's own screen"},
        }))
        .await;
    let narrow_id = narrow["id"].as_str().unwrap();
    let before = stored_config(&server, narrow_id).await;
    let (status, e) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{narrow_id}"),
            Some(json!({"body": "{\"who\": \"{{patient_first_name}}\", \"why\": \"{{appointment_description}}\"}"})),
        )
        .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(
        violations(&e),
        [(s("body"), s("appointment_description"), s("phi"), 1, 43)]
    );
    // A declared policy cannot be dropped to escape it.
    let (status, e) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{narrow_id}"),
            Some(json!({"data_policy": null})),
        )
        .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["field"], "data_policy");
    assert_eq!(stored_config(&server, narrow_id).await, before);

    // A v1 client that declares nothing is still served (the API contract),
    // and told what its webhook sends.
    let undeclared = server
        .create_webhook(json!({
            "name": "Old client", "events": ["kc_appointment_book"], "url": rx.url("/old"),
            "body": "{\"who\": \"{{patient_name}}\", \"when\": \"{{appointment_date}}\"}",
        }))
        .await;
    assert!(undeclared.get("data_policy").is_none(), "{undeclared}");
    assert_eq!(undeclared["data_sent"]["identifying"], true);
    let warning = undeclared["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["field"] == "data_policy")
        .unwrap_or_else(|| panic!("no data_policy warning: {undeclared}"));
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("(patient_name)"),
        "{warning}"
    );
    server.stop().await;
}

/// Books for `patient_id` through `POST /api/v1/events`, with the demo
/// clinic's patient around it.
async fn book(server: &TestServer, patient_id: &str, name: &str) {
    server
        .push(
            "kc_appointment_book",
            json!({
                "patient_id": patient_id, "patient_name": name,
                "patient_email": "maria.obrien@example.com", "patient_contact_number": "+447700900123",
                "patient_dob": "1988-04-17", "doctor_name": "Aisha Patel",
                "clinic_name": "Riverside Family Clinic", "appointment_date": "2026-12-01",
            }),
        )
        .await;
}

/// The analytics ids one installation sent for patients 42, 42 again and 43:
/// Google Analytics' `client_id`s, then Mixpanel's `distinct_id`s; `None`
/// when PostgreSQL is not there (and not required).
async fn analytics_ids(
    backend: Backend,
    master_key: [u8; 32],
    rx: &Receiver,
    at: &str,
) -> Option<Vec<[String; 3]>> {
    let server =
        TestServer::start_with(backend, |s| s.vault = Vault::from_key(&master_key)).await?;
    let ga = server
        .create_webhook(json!({"preset": "google_analytics_booking",
            "url": rx.url(&format!("/{at}/mp/collect?measurement_id=G-TEST1")), "auth": {"value": "ga-secret"}}))
        .await;
    let mp = server
        .create_webhook(json!({"preset": "mixpanel_patient_journey",
            "url": rx.url(&format!("/{at}/track")), "values": {"project_token": "mp-token"}}))
        .await;
    for view in [&ga, &mp] {
        assert_eq!(view["data_policy"]["identifying"], false, "{view}");
        assert_eq!(view["data_policy"]["phi"], false, "{view}");
        assert_eq!(view["data_sent"]["identifying"], false, "{view}");
    }
    book(&server, "42", "Maria O'Brien").await;
    book(&server, "42", "Maria O'Brien").await;
    book(&server, "43", "José Álvarez Núñez").await;
    let deliveries = server.settled(WAIT).await;
    assert_eq!(deliveries.len(), 6);
    assert!(deliveries.iter().all(|d| d["status"] == "succeeded"));
    let got: Vec<_> = rx
        .received()
        .into_iter()
        .filter(|r| r.path.starts_with(&format!("/{at}/")))
        .collect();
    assert_eq!(got.len(), 6);
    // No identifying value reaches the analytics services, anywhere in the request.
    for r in &got {
        let seen = format!(
            "{} {:?} {:?} {}",
            r.path,
            r.query,
            r.headers,
            String::from_utf8_lossy(&r.body)
        );
        for value in [
            "\"42\"",
            "\"43\"",
            "O'Brien",
            "Álvarez",
            "maria.obrien",
            "+447700900123",
            "1988-04-17",
        ] {
            assert!(!seen.contains(value), "{value} sent: {seen}");
        }
    }
    // The receiver saw them in any order: the id sent twice is patient 42's.
    let ids = |path: &str, pick: fn(&Value) -> &Value| -> [String; 3] {
        let ids: Vec<String> = got
            .iter()
            .filter(|r| r.path.starts_with(&format!("/{at}/{path}")))
            .map(|r| pick(&r.json()).as_str().unwrap().to_string())
            .collect();
        let times = |id: &String| ids.iter().filter(|x| *x == id).count();
        let twice: Vec<&String> = ids.iter().filter(|id| times(id) == 2).collect();
        let once: Vec<&String> = ids.iter().filter(|id| times(id) == 1).collect();
        assert_eq!(
            (twice.len(), once.len()),
            (2, 1),
            "patients 42, 42 and 43 were sent as {ids:?}"
        );
        [twice[0].clone(), twice[1].clone(), once[0].clone()]
    };
    let out = vec![
        ids("mp/collect", |b| &b["client_id"]),
        ids("track", |b| &b["properties"]["distinct_id"]),
    ];
    server.stop().await;
    Some(out)
}

async fn the_analytics_presets_send_a_pseudonym_and_no_identifying_value(backend: Backend) {
    let rx = Receiver::start().await;
    let Some(here) = analytics_ids(backend, [42; 32], &rx, "here").await else {
        return;
    };
    let there = analytics_ids(backend, [7; 32], &rx, "there").await.unwrap();
    let key = Pseudonymizer::from_master_key(&[42; 32]);
    for [first, again, other] in &here {
        assert_eq!(first, again, "the same patient, the same pseudonym");
        assert_eq!(first, &key.pseudonym("", "42"));
        assert_eq!(other, &key.pseudonym("", "43"));
        assert_eq!(first.len(), 32);
    }
    for (h, t) in here.iter().zip(&there) {
        assert_ne!(h[0], t[0], "another installation, another pseudonym");
        assert_ne!(h[2], t[2]);
    }
}
