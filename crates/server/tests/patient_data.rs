//! Patient data at rest and over time, on SQLite and PostgreSQL, through the real server:
//! payloads sealed at rest, retention purges (with a test clock), a patient's erasure, and
//! the audit trail's hash chain.

mod common;

use std::time::Duration;

use carehook::service::privacy::{self, RetentionConfig};
use common::{Answer, Backend, Receiver, TOKEN, TestServer, WAIT};
use serde_json::{Value, json};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// Every text cell of every table, as `(table, text)`: SQLite's tables from `sqlite_master`,
/// PostgreSQL's from the catalog, each whole row cast to text.
async fn every_text_cell(url: &str) -> Vec<(String, String)> {
    use sqlx::Connection as _;
    let mut out = Vec::new();
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for (t,) in tables {
            let cols: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_table_info('{t}')"
            )))
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for (c,) in cols {
                let cells: Vec<(Option<String>,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT \"{c}\" FROM \"{t}\" WHERE typeof(\"{c}\") = 'text'"
                )))
                .fetch_all(&mut conn)
                .await
                .unwrap();
                out.extend(cells.into_iter().flat_map(|(v,)| v).map(|v| (t.clone(), v)));
            }
        }
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for (t,) in tables {
            let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT t::text FROM \"{t}\" t"
            )))
            .fetch_all(&mut conn)
            .await
            .unwrap();
            out.extend(rows.into_iter().map(|(r,)| (t.clone(), r)));
        }
    }
    assert!(
        out.iter().any(|(t, _)| t == "webhooks"),
        "the tables were not read"
    );
    out
}

/// The raw bytes of the SQLite file and its WAL, or every row of every PostgreSQL table.
async fn raw_database(url: &str) -> String {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let mut out = String::new();
        for suffix in ["", "-wal"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        assert!(out.len() > 4096, "the database file was not read");
        out
    } else {
        every_text_cell(url)
            .await
            .into_iter()
            .map(|(_, v)| v + "\n")
            .collect()
    }
}

fn db_url(server: &TestServer) -> String {
    server.db.as_ref().unwrap().url().to_string()
}

async fn clinic_call(server: &TestServer, method: &str, path: &str, body: Value) -> Value {
    let resp = server
        .http
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}/api/v1{path}", server.base),
        )
        .bearer_auth(TOKEN)
        .header("x-carehook-user-id", "1")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {v}"
    );
    v
}

fn id_of(v: &Value) -> String {
    v["id"].to_string().trim_matches('"').to_string()
}

/// A webhook on every event whose body carries the patient's name, e-mail and phone.
fn tell_all(url: &str) -> Value {
    json!({
        "name": "everything",
        "events": ["*"],
        "url": url,
        "body": "{\"who\": \"{{patient_name}}\", \"email\": \"{{patient_email}}\", \"phone\": \"{{patient_contact_number}}\"}"
    })
}

// --- encrypted payloads at rest -------------------------------------------------------------

async fn a_patients_name_is_sealed_at_rest_and_still_sent_logged_and_retried(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer(|_, _| Answer::ok().body("{\"echo\": \"Zebulon Quillfeather-Oyelaran\"}"));
    server.create_webhook(common::hook(&rx.url("/hook"))).await;
    let name = "Zebulon Quillfeather-Oyelaran";
    let pushed = server
        .push(
            "kc_appointment_book",
            json!({"patient_name": name, "doctor_name": "Dr. Ada", "patient_id": "901"}),
        )
        .await;
    let got = rx.wait_for(1, WAIT).await;
    assert!(String::from_utf8_lossy(&got[0].body).contains(name));
    let log = server.settled(WAIT).await;
    let id = log[0]["id"].as_str().unwrap().to_string();
    // The log shows what was sent and answered; the event shows its snapshot.
    let (_, d) = server.get(&format!("/api/v1/deliveries/{id}")).await;
    assert!(
        d["attempts"][0]["request"]["body"]
            .as_str()
            .unwrap()
            .contains(name),
        "{d}"
    );
    assert!(
        d["attempts"][0]["response"]["body"]
            .as_str()
            .unwrap()
            .contains(name),
        "{d}"
    );
    let event_id = pushed["id"].as_str().unwrap();
    let (_, e) = server.get(&format!("/api/v1/events/{event_id}")).await;
    assert_eq!(e["data"]["patient_name"], name, "{e}");
    // A retry renders from the sealed snapshot.
    let (status, _) = server
        .post(&format!("/api/v1/deliveries/{id}/retry"), json!({}))
        .await;
    assert_eq!(status, 200);
    rx.wait_for(2, WAIT).await;
    assert!(String::from_utf8_lossy(&rx.received()[1].body).contains(name));
    server.settled(WAIT).await;
    // Nowhere in the database: not the SQLite file, not its WAL, not a PostgreSQL row.
    let raw = raw_database(&db_url(&server)).await;
    assert!(
        !raw.contains("Quillfeather"),
        "a patient's name is stored in plain text"
    );
    assert!(
        raw.contains("enc:v1:"),
        "nothing sealed was found: the scan read nothing?"
    );
    server.stop().await;
}

async fn with_sealing_off_payloads_are_plain_and_sealed_ones_still_read(backend: Backend) {
    let Some(server) = TestServer::start_with(backend, |s| s.seal_payloads = false).await else {
        return;
    };
    let rx = Receiver::start().await;
    server.create_webhook(common::hook(&rx.url("/hook"))).await;
    server
        .push(
            "kc_appointment_book",
            json!({"patient_name": "Plainly Visible"}),
        )
        .await;
    server.settled(WAIT).await;
    let raw = raw_database(&db_url(&server)).await;
    assert!(
        raw.contains("Plainly Visible"),
        "sealing off must store plain text"
    );
    server.stop().await;
}

/// The delivery log's search while snapshots are sealed: by each word of the patient's name
/// (case, accents and apostrophes forgiven) and by the appointment id, through keyed hashes
/// that keep the name out of the database; an erased patient is no longer found.
async fn a_sealed_delivery_is_found_by_the_patients_name_until_the_patient_is_erased(
    backend: Backend,
) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    server.create_webhook(common::hook(&rx.url("/hook"))).await;
    for (first, last, patient, appointment) in [
        ("José", "O'Brien-Quintero", "77", "5150"),
        ("Maria", "Lopez", "78", "5151"),
    ] {
        server
            .push(
                "kc_appointment_book",
                json!({"patient_name": format!("{first} {last}"), "patient_first_name": first,
                    "patient_last_name": last, "patient_id": patient, "appointment_id": appointment}),
            )
            .await;
    }
    server.settled(WAIT).await;
    let found = |q: &'static str| {
        let server = &server;
        async move {
            let q: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
            let (status, page) = server.get(&format!("/api/v1/deliveries?search={q}")).await;
            assert_eq!(status, 200, "{page}");
            page["items"].as_array().unwrap().len()
        }
    };
    for (q, n) in [
        ("jose", 1),
        ("O'BRIEN", 1),
        ("quintero obrien josé", 1),
        ("José O’Brien-Quintero", 1),
        ("lopez", 1),
        ("jose lopez", 0),
        ("bri", 0),
        ("5150", 1),
        ("78", 1),
    ] {
        assert_eq!(found(q).await, n, "search {q:?}");
    }
    let raw = raw_database(&db_url(&server)).await;
    assert!(!raw.contains("Quintero"), "a name is stored in plain text");
    // Erased: the name finds nothing more.
    let (status, body) = server.post("/api/v1/patients/77/erase", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(found("quintero").await, 0);
    assert_eq!(found("lopez").await, 1);
    server.stop().await;
}

// --- retention ------------------------------------------------------------------------------

async fn after_retention_bodies_and_snapshots_go_and_the_log_and_stats_stay(backend: Backend) {
    let Some(server) = TestServer::start_with(backend, |s| s.retention = None).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer(|r, _| {
        if r.path == "/down" {
            Answer::status(503)
        } else {
            Answer::ok().body("thanks")
        }
    });
    let mk = |name: &str, event: &str, path: &str, payloads: Value| {
        json!({"name": name, "events": [event], "url": rx.url(path),
               "body": "{\"who\": \"{{patient_name}}\"}", "payloads": payloads})
    };
    let default = server
        .create_webhook(mk("default", "kc_appointment_book", "/a", json!({})))
        .await;
    let long = server
        .create_webhook(mk(
            "long",
            "kc_patient_add",
            "/b",
            json!({"retention_days": 90}),
        ))
        .await;
    let nobodies = server
        .create_webhook(mk(
            "no bodies",
            "kc_encounter_add",
            "/c",
            json!({"store_bodies": false}),
        ))
        .await;
    // Pending for hours: its retries are far apart.
    let pending = server
        .create_webhook(json!({"name": "down", "events": ["kc_doctor_add"], "url": rx.url("/down"),
            "body": "{\"who\": \"{{doctor_name}}\"}", "retry": {"schedule": ["6h"], "max_attempts": 3}}))
        .await;
    assert_eq!(nobodies["payloads"]["store_bodies"], false, "{nobodies}");
    for (event, who) in [
        ("kc_appointment_book", "Ann Default"),
        ("kc_patient_add", "Lon Kept"),
        ("kc_encounter_add", "Nob Body"),
    ] {
        server.push(event, json!({"patient_name": who})).await;
    }
    server
        .push("kc_doctor_add", json!({"doctor_name": "Dr. Waiting"}))
        .await;
    rx.wait_for(4, WAIT).await;
    let deliveries_of = |w: &Value| {
        let id = w["id"].as_str().unwrap().to_string();
        let server = &server;
        async move {
            let (_, page) = server
                .get(&format!("/api/v1/deliveries?webhook_id={id}"))
                .await;
            let d = page["items"][0].clone();
            let (_, full) = server
                .get(&format!("/api/v1/deliveries/{}", d["id"].as_str().unwrap()))
                .await;
            full
        }
    };
    server
        .wait_log(
            WAIT,
            "the three good ones ended and the down one waiting to retry",
            |items| {
                let ended = items.iter().filter(|d| d["status"] == "succeeded").count();
                let waiting = items
                    .iter()
                    .filter(|d| d["status"] == "pending" && d["attempts"] == 1)
                    .count();
                ended == 3 && waiting == 1
            },
        )
        .await;
    // The down one's first failure raised `carehook_webhook_failing` (an event of its own).
    server
        .wait_get("/api/v1/alerts", WAIT, "the one alert", |page| {
            page["items"].as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    // The webhook that stores no bodies kept only sizes and hashes, from the start.
    let nb = deliveries_of(&nobodies).await;
    let a = &nb["attempts"][0];
    assert_eq!(a["request"], json!({}), "{nb}");
    assert_eq!(a["purge_reason"], "not_stored", "{nb}");
    let sent =
        String::from_utf8_lossy(&rx.received().iter().find(|r| r.path == "/c").unwrap().body)
            .to_string();
    assert_eq!(a["request_bytes"], sent.len(), "{nb}");
    assert_eq!(a["response_bytes"], 6, "{nb}");

    // The test clock: 31 days on. The default (30 days) has passed; 90 days has not.
    let config = RetentionConfig {
        default_days: 30,
        pause: Duration::ZERO,
        ..Default::default()
    };
    let later = carehook::time::now_ms() + 31 * DAY_MS;
    let counts = privacy::purge_expired(&*server.store, &config, later)
        .await
        .unwrap();
    assert_eq!(
        counts.attempts, 1,
        "only the default webhook's attempt: {counts:?}"
    );
    assert_eq!(
        counts.events, 3,
        "the default's and the no-bodies' snapshots, and the alert's: {counts:?}"
    );

    let gone = deliveries_of(&default).await;
    let a = &gone["attempts"][0];
    assert_eq!(a["request"], json!({}), "{gone}");
    assert!(a["response"]["body"].is_null(), "{gone}");
    assert_eq!(a["purge_reason"], "retention");
    assert_eq!(a["request_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(gone["status"], "succeeded");
    let (_, e) = server
        .get(&format!(
            "/api/v1/events/{}",
            gone["event_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(e["data"], json!({}), "{e}");
    // Kept: the 90-day webhook's body, and the pending delivery's snapshot.
    let kept = deliveries_of(&long).await;
    assert!(
        kept["attempts"][0]["request"]["body"]
            .as_str()
            .unwrap()
            .contains("Lon Kept")
    );
    let waiting = deliveries_of(&pending).await;
    let (_, e) = server
        .get(&format!(
            "/api/v1/events/{}",
            waiting["event_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        e["data"]["doctor_name"], "Dr. Waiting",
        "a pending delivery keeps its data"
    );
    // A delivery whose data is gone cannot be sent again.
    let (status, body) = server
        .post(
            &format!("/api/v1/deliveries/{}/retry", gone["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    // The log and the statistics still answer.
    let (status, stats) = server
        .get(&format!(
            "/api/v1/webhooks/{}/stats",
            default["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200, "{stats}");
    assert!(stats.to_string().contains("\"succeeded\":1"), "{stats}");
    let (_, page) = server.get("/api/v1/deliveries").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    // A second pass finds nothing more; 91 days on, the 90-day webhook's go too.
    let again = privacy::purge_expired(&*server.store, &config, later)
        .await
        .unwrap();
    assert_eq!((again.attempts, again.events), (0, 0));
    let much_later = carehook::time::now_ms() + 91 * DAY_MS;
    let last = privacy::purge_expired(&*server.store, &config, much_later)
        .await
        .unwrap();
    assert_eq!((last.attempts, last.events), (1, 1), "{last:?}");
    // The purges are in the audit trail.
    let (_, audit) = server.get("/api/v1/audit?action=purge.").await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 2, "{audit}");
    server.stop().await;
}

async fn a_purge_by_hand_counts_first_and_keeps_pending_data(backend: Backend) {
    let Some(server) = TestServer::start_with(backend, |s| s.retention = None).await else {
        return;
    };
    let rx = Receiver::start().await;
    server.create_webhook(common::hook(&rx.url("/hook"))).await;
    for i in 0..3 {
        server
            .push(
                "kc_appointment_book",
                json!({"patient_name": format!("P{i}")}),
            )
            .await;
    }
    server.settled(WAIT).await;
    let future = carehook::time::rfc3339(carehook::time::now_ms() + 1000);
    let (status, body) = server
        .post("/api/v1/purge", json!({"before": future, "dry_run": true}))
        .await;
    assert_eq!(status, 422, "a time in the future is refused: {body}");
    let now = carehook::time::rfc3339(carehook::time::now_ms());
    let (status, dry) = server
        .post("/api/v1/purge", json!({"before": now, "dry_run": true}))
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        (dry["events"].as_u64(), dry["attempts"].as_u64()),
        (Some(3), Some(3))
    );
    let (_, done) = server.post("/api/v1/purge", json!({"before": now})).await;
    assert_eq!(
        (done["events"].as_u64(), done["attempts"].as_u64()),
        (Some(3), Some(3))
    );
    let (_, again) = server.post("/api/v1/purge", json!({"before": now})).await;
    assert_eq!(
        (again["events"].as_u64(), again["attempts"].as_u64()),
        (Some(0), Some(0))
    );
    let (status, bad) = server
        .post("/api/v1/purge", json!({"before": "soon"}))
        .await;
    assert_eq!(status, 422);
    assert!(bad.to_string().contains("before"), "{bad}");
    server.stop().await;
}

// --- erasure --------------------------------------------------------------------------------

async fn erasing_a_patient_leaves_no_trace_in_any_table_and_keeps_the_others(backend: Backend) {
    // Sealing off: a name left anywhere would show in plain text.
    let Some(server) = TestServer::start_with(backend, |s| s.seal_payloads = false).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer(|r, _| {
        if r.path == "/down" {
            Answer::status(503)
        } else {
            Answer::ok().body(String::from_utf8_lossy(&r.body).as_ref())
        }
    });
    server.create_webhook(tell_all(&rx.url("/echo"))).await;
    let down = server
        .create_webhook(json!({"name": "down", "events": ["kc_appointment_book"], "url": rx.url("/down"),
            "body": "{\"who\": \"{{patient_name}}\"}", "retry": {"schedule": ["6h"], "max_attempts": 3}}))
        .await;
    let clinic = clinic_call(&server, "POST", "/clinics", json!({"name": "Riverside"})).await;
    let c = clinic["id"].clone();
    let doctor = clinic_call(
        &server,
        "POST",
        "/doctors",
        json!({"clinic_id": c, "first_name": "Ada", "last_name": "Okafor"}),
    )
    .await;
    let gone = clinic_call(
        &server,
        "POST",
        "/patients",
        json!({"clinic_id": c,
        "first_name": "Wilhelmina", "last_name": "Erasedottir",
        "email": "wilhelmina.erased@example.org", "contact_number": "+1 555 013 4477"}),
    )
    .await;
    let stays = clinic_call(
        &server,
        "POST",
        "/patients",
        json!({"clinic_id": c,
        "first_name": "Bartholomew", "last_name": "Keptsson",
        "email": "bart.kept@example.org", "contact_number": "+1 555 019 8822"}),
    )
    .await;
    for p in [&gone, &stays] {
        let appt = clinic_call(
            &server,
            "POST",
            "/appointments",
            json!({"clinic_id": c,
            "doctor_id": doctor["id"], "patient_id": p["id"], "date": "2026-12-01",
            "start_time": "09:30", "description": format!("sees {}", p["first_name"])}),
        )
        .await;
        let enc = clinic_call(
            &server,
            "POST",
            "/encounters",
            json!({"clinic_id": c,
            "doctor_id": doctor["id"], "patient_id": p["id"], "appointment_id": appt["id"],
            "description": format!("{} has a cough", p["last_name"])}),
        )
        .await;
        clinic_call(
            &server,
            "POST",
            &format!("/encounters/{}/medical-records", id_of(&enc)),
            json!({"type": "problem", "title": format!("{} asthma", p["last_name"])}),
        )
        .await;
    }
    // An event pushed by another system, linked by patient_id in its data.
    server
        .push("kc_appointment_book", json!({"patient_id": id_of(&gone),
            "patient_name": "Wilhelmina Erasedottir", "patient_email": "wilhelmina.erased@example.org",
            "patient_contact_number": "+1 555 013 4477"}))
        .await;
    server
        .wait_log(
            WAIT,
            "the sends, and the down webhook's first failures (so they are pending)",
            |items| {
                let down_waiting = items
                    .iter()
                    .filter(|d| {
                        d["webhook_id"] == down["id"]
                            && d["status"] == "pending"
                            && d["attempts"] == 1
                    })
                    .count();
                let unsent = items
                    .iter()
                    .filter(|d| d["webhook_id"] != down["id"] && d["status"] == "pending")
                    .count();
                down_waiting == 3 && unsent == 0
            },
        )
        .await;
    let url = db_url(&server);
    let before = every_text_cell(&url).await;
    let traces = [
        "Erasedottir",
        "wilhelmina.erased@example.org",
        "555 013 4477",
    ];
    for t in traces {
        assert!(
            before.iter().any(|(_, v)| v.contains(t)),
            "{t} was never stored: the scan proves nothing"
        );
    }

    let resp = server
        .post(
            &format!("/api/v1/patients/{}/erase", id_of(&gone)),
            json!({}),
        )
        .await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    let counts = resp.1;
    assert!(counts["events"].as_u64().unwrap() >= 4, "{counts}");
    assert!(counts["attempts"].as_u64().unwrap() >= 4, "{counts}");
    assert_eq!(
        counts["deliveries_cancelled"], 2,
        "two of the down webhook's: {counts}"
    );
    assert_eq!(counts["records"]["patients"], 1, "{counts}");
    assert_eq!(counts["records"]["appointments"], 1, "{counts}");
    assert_eq!(counts["records"]["encounters"], 1, "{counts}");
    assert_eq!(counts["records"]["medical_records"], 1, "{counts}");

    let after = every_text_cell(&url).await;
    for t in traces {
        let found: Vec<_> = after.iter().filter(|(_, v)| v.contains(t)).collect();
        assert!(found.is_empty(), "{t} is still stored: {found:?}");
    }
    for t in ["Keptsson", "bart.kept@example.org", "555 019 8822"] {
        assert!(
            after.iter().any(|(_, v)| v.contains(t)),
            "the other patient's {t} went too"
        );
    }
    // The cancelled deliveries say why; the other patient's still wait.
    let (_, page) = server
        .get(&format!(
            "/api/v1/deliveries?webhook_id={}",
            down["id"].as_str().unwrap()
        ))
        .await;
    let items = page["items"].as_array().unwrap();
    let cancelled = items
        .iter()
        .filter(|d| d["status"] == "failed")
        .collect::<Vec<_>>();
    assert_eq!(cancelled.len(), 2, "{page:#}");
    assert!(
        cancelled[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("erased")
    );
    assert_eq!(items.iter().filter(|d| d["status"] == "pending").count(), 1);
    // The patient record is a tombstone; the erasure is audited, with counts and no PHI.
    let (_, audit) = server.get("/api/v1/audit?action=patient.erase").await;
    let row = &audit["items"][0];
    assert_eq!(row["resource"], format!("patient/{}", id_of(&gone)));
    assert_eq!(row["actor"], "api: the admin token");
    assert_eq!(row["client_addr"], "127.0.0.1");
    assert_eq!(row["details"]["records"]["patients"], 1);
    // Again: nothing more to do.
    let (_, again) = server
        .post(
            &format!("/api/v1/patients/{}/erase", id_of(&gone)),
            json!({}),
        )
        .await;
    assert_eq!(again["events"], 0, "{again}");
    let (status, bad) = server.post("/api/v1/patients/a%20b/erase", json!({})).await;
    assert_eq!(status, 422, "{bad}");
    server.stop().await;
}

// --- the audit trail ------------------------------------------------------------------------

async fn the_audit_chain_verifies_and_names_an_edited_row(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let hook = server.create_webhook(common::hook(&rx.url("/hook"))).await;
    let id = hook["id"].as_str().unwrap();
    let (status, _) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(status, 200);
    server
        .push(
            "kc_appointment_book",
            json!({"patient_name": "Audited Reader"}),
        )
        .await;
    let log = server.settled(WAIT).await;
    let delivery = log[0]["id"].as_str().unwrap();
    // Reading a delivery's bodies writes an audit row.
    let (_, none) = server
        .get(&format!(
            "/api/v1/audit?action=delivery.read&resource=delivery/{delivery}"
        ))
        .await;
    let before = none["items"].as_array().unwrap().len();
    server.get(&format!("/api/v1/deliveries/{delivery}")).await;
    let (_, read) = server
        .get(&format!(
            "/api/v1/audit?action=delivery.read&resource=delivery/{delivery}"
        ))
        .await;
    let rows = read["items"].as_array().unwrap();
    assert_eq!(rows.len(), before + 1, "{read}");
    assert_eq!(rows[0]["outcome"], "ok");
    assert!(
        !read.to_string().contains("Audited Reader"),
        "no PHI in the trail"
    );
    // A webhook change has its before and after, secrets masked.
    let (_, changes) = server.get("/api/v1/audit?action=webhook.update").await;
    let change = &changes["items"][0];
    assert_eq!(
        change["details"]["before"]["name"],
        "Slack: new appointment"
    );
    assert_eq!(change["details"]["after"]["name"], "Renamed");
    assert_eq!(change["details"]["after"]["signing_secret"], "********");

    let verdict = server.store.verify_audit().await.unwrap();
    assert!(verdict.problems.is_empty(), "{verdict:?}");
    assert!(verdict.rows >= 3, "{verdict:?}");

    // Someone with the database edits row 2 (past the append-only trigger).
    let url = db_url(&server);
    tamper(
        &url,
        "UPDATE audit_log SET outcome = 'denied' WHERE seq = 2",
    )
    .await;
    let verdict = server.store.verify_audit().await.unwrap();
    assert_eq!(
        verdict.problems.first().map(|p| p.0),
        Some(2),
        "{verdict:?}"
    );
    assert!(
        verdict.problems[0].1.contains("row 2 was edited"),
        "{verdict:?}"
    );
    server.stop().await;
}

async fn a_deleted_audit_row_is_named_and_the_trail_refuses_changes(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    for name in ["a", "b", "c"] {
        server.post("/api/v1/tokens", json!({"name": name})).await;
    }
    let url = db_url(&server);
    // Plain SQL cannot change the trail.
    assert!(
        try_sql(&url, "UPDATE audit_log SET outcome = 'x' WHERE seq = 1")
            .await
            .is_err()
    );
    assert!(
        try_sql(&url, "DELETE FROM audit_log WHERE seq = 1")
            .await
            .is_err()
    );
    tamper(&url, "DELETE FROM audit_log WHERE seq = 2").await;
    let verdict = server.store.verify_audit().await.unwrap();
    assert_eq!(
        verdict.problems.first().map(|p| p.0),
        Some(2),
        "{verdict:?}"
    );
    assert!(verdict.problems[0].1.contains("missing"), "{verdict:?}");
    // The newest row deleted: the head names it.
    let fresh = common::TestServer::start(backend).await.unwrap();
    for name in ["a", "b"] {
        fresh.post("/api/v1/tokens", json!({"name": name})).await;
    }
    let url = db_url(&fresh);
    tamper(&url, "DELETE FROM audit_log WHERE seq = 2").await;
    let verdict = fresh.store.verify_audit().await.unwrap();
    assert_eq!(
        verdict.problems.first().map(|p| p.0),
        Some(2),
        "{verdict:?}"
    );
    fresh.stop().await;
    server.stop().await;
}

async fn try_sql(url: &str, sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection as _;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await?;
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await?;
    } else {
        let mut c = sqlx::PgConnection::connect(url).await?;
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await?;
    }
    Ok(())
}

/// Runs `sql` with the append-only triggers out of the way, as someone with the database could.
async fn tamper(url: &str, sql: &str) {
    let steps: Vec<String> = if url.starts_with("sqlite:") {
        vec![
            "DROP TRIGGER audit_log_no_update".into(),
            "DROP TRIGGER audit_log_no_delete".into(),
            sql.into(),
        ]
    } else {
        vec![
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change".into(),
            sql.into(),
            "ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change".into(),
        ]
    };
    for s in steps {
        try_sql(url, &s).await.unwrap();
    }
}

on_both!(
    a_patients_name_is_sealed_at_rest_and_still_sent_logged_and_retried,
    with_sealing_off_payloads_are_plain_and_sealed_ones_still_read,
    a_sealed_delivery_is_found_by_the_patients_name_until_the_patient_is_erased,
    after_retention_bodies_and_snapshots_go_and_the_log_and_stats_stay,
    a_purge_by_hand_counts_first_and_keeps_pending_data,
    erasing_a_patient_leaves_no_trace_in_any_table_and_keeps_the_others,
    the_audit_chain_verifies_and_names_an_edited_row,
    a_deleted_audit_row_is_named_and_the_trail_refuses_changes,
);
