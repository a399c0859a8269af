//! A group of clinics on one carehook: a webhook of one clinic gets that clinic's events
//! only, whether a clinic system pushed them or a clinic record fired them; a webhook of
//! every clinic gets them all. Read from the delivery log (stored state) and from what each
//! receiver got.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::common::{Backend, Receiver, TestServer, WAIT, hook};

fn clinic(name: &str) -> Value {
    json!({"name": name, "email": "desk@clinic.example.com", "contact_number": "+44 20 7946 0000",
        "address": "1 High Street", "city": "London", "postal_code": "N1 9GU",
        "country": "United Kingdom", "currency": "gbp", "timezone": "Europe/London"})
}

async fn made(server: &TestServer, path: &str, body: Value) -> i64 {
    let (status, answer) = server.post(&format!("/api/v1{path}"), body).await;
    assert_eq!(status, 201, "{path}: {answer}");
    answer["id"].as_i64().unwrap()
}

/// Books an appointment in a new clinic's records; answers the clinic's id.
async fn clinic_with_appointment(server: &TestServer, name: &str) -> i64 {
    let c = made(server, "/clinics", clinic(name)).await;
    let d = made(
        server,
        "/doctors",
        json!({"clinic_id": c, "first_name": "Grace", "last_name": "Hopper",
            "email": "grace@clinic.example.com", "contact_number": "+44 20 7946 0001"}),
    )
    .await;
    let p = made(
        server,
        "/patients",
        json!({"clinic_id": c, "first_name": "Ada", "last_name": "Lovelace",
            "email": "ada@example.com", "contact_number": "+44 20 7946 0002"}),
    )
    .await;
    made(
        server,
        "/appointments",
        json!({"clinic_id": c, "doctor_id": d, "patient_id": p, "date": "2026-12-01",
            "start_time": "09:30", "end_time": "09:45"}),
    )
    .await;
    c
}

async fn no_event_reaches_another_clinics_webhook(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    // Records first, so the clinics' ids are known (integers the store gives).
    let (north, south) = (1, 2);
    let of = |path: &str, clinics: Option<Vec<i64>>| {
        let mut h = hook(&receiver.url(path));
        h["events"] = json!(["kc_appointment_book", "kc_patient_add"]);
        h["body"] = json!("{\"clinic\": \"{{clinic_id}}\", \"patient\": \"{{patient_name}}\"}");
        if let Some(c) = clinics {
            h["clinics"] = json!(c);
        }
        h
    };
    let north_hook = server.create_webhook(of("/north", Some(vec![north]))).await;
    let south_hook = server.create_webhook(of("/south", Some(vec![south]))).await;
    let every_hook = server.create_webhook(of("/every", None)).await;
    assert_eq!(north_hook["clinics"], json!(["1"]), "{north_hook}");
    assert!(every_hook.get("clinics").is_none_or(|c| c == &json!([])));

    // The clinic records fire kc_patient_add and kc_appointment_book in each clinic.
    assert_eq!(clinic_with_appointment(&server, "North").await, north);
    assert_eq!(clinic_with_appointment(&server, "South").await, south);
    // A clinic system pushes events too: two of the north, one of the south, one of a clinic
    // no webhook names, one that names no clinic.
    for clinic in [json!("1"), json!(1), json!("2"), json!("3"), Value::Null] {
        let mut data = json!({"patient_name": "Alan Turing"});
        if !clinic.is_null() {
            data["clinic_id"] = clinic;
        }
        server.push("kc_patient_add", data).await;
    }

    let log = server.settled(WAIT).await;
    let mut clinics_by_hook: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in &log {
        let (status, event) = server
            .get(&format!(
                "/api/v1/events/{}",
                d["event_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status, 200, "{event}");
        let clinic = event["data"]["clinic_id"]
            .as_str()
            .unwrap_or("-")
            .to_string();
        clinics_by_hook
            .entry(d["webhook_id"].as_str().unwrap().to_string())
            .or_default()
            .push(clinic);
    }
    let clinics_of = |w: &Value| {
        let mut c = clinics_by_hook
            .get(w["id"].as_str().unwrap())
            .cloned()
            .unwrap_or_default();
        c.sort();
        c
    };
    // North: its patient and appointment, and the two pushed events of clinic 1.
    assert_eq!(clinics_of(&north_hook), ["1", "1", "1", "1"], "{log:#?}");
    assert_eq!(clinics_of(&south_hook), ["2", "2", "2"], "{log:#?}");
    assert_eq!(
        clinics_of(&every_hook),
        ["-", "1", "1", "1", "1", "2", "2", "2", "3"],
        "a webhook of every clinic gets every event"
    );
    // What the receivers got agrees with the log.
    let got = receiver.wait_for(log.len(), WAIT).await;
    for r in &got {
        let clinic = r.json()["clinic"].as_str().unwrap().to_string();
        match r.path.as_str() {
            "/north" => assert_eq!(clinic, "1"),
            "/south" => assert_eq!(clinic, "2"),
            _ => {}
        }
    }
    server.stop().await;
}

crate::on_both!(no_event_reaches_another_clinics_webhook);

/// A webhook names clinics by their `clinic_id`; a wrong one is refused naming the entry.
#[tokio::test]
async fn a_webhooks_clinics_are_checked() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let mut h = hook("http://127.0.0.1:9/x");
    h["clinics"] = json!(["1", "two words"]);
    let (status, answer) = server.post("/api/v1/webhooks", h.clone()).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["field"], "clinics[1]");
    h["clinics"] = json!([2]);
    let w = server.create_webhook(h).await;
    let id = w["id"].as_str().unwrap();
    assert_eq!(w["clinics"], json!(["2"]));
    // Back to every clinic.
    let (status, w) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"clinics": null})),
        )
        .await;
    assert_eq!(status, 200, "{w}");
    assert!(w.get("clinics").is_none_or(|c| c == &json!([])), "{w}");
    server.stop().await;
}
