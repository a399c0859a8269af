//! Partner links: who may make them, what the page a link opens shows (one webhook's log,
//! bodies and patient names masked unless allowed), and that it stops working when revoked or
//! expired. The link's secret is in neither the database nor the log.

use serde_json::{Value, json};

use crate::common::{Backend, Receiver, TestServer, hook};
use crate::secrets::captured_logs;
use crate::{WAIT, on_both};

on_both!(
    the_partner_page_shows_one_webhooks_log_masked_until_revoked_or_expired,
    only_owners_and_admins_of_the_webhooks_clinics_share_its_log,
    a_link_ends_when_its_webhook_moves_clinic_or_its_maker_could_no_longer_make_it,
    a_valid_link_opens_from_an_address_throttled_for_wrong_ones,
    a_revoked_link_opened_twenty_times_is_audited_once
);

async fn token(server: &TestServer, role: &str, clinics: Option<&[&str]>, bodies: bool) -> String {
    let (status, body) = server
        .post(
            "/api/v1/tokens",
            json!({"name": format!("{role}-{clinics:?}-{bodies}"), "role": role, "clinics": clinics, "bodies": bodies}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_string()
}

async fn post_as(server: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    let resp = server
        .http
        .post(format!("{}{path}", server.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// GET a partner page without any credentials: status, headers, text.
async fn open(server: &TestServer, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = server
        .http
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

fn clinic_hook(url: &str, clinic: &str, name: &str) -> Value {
    let mut h = hook(url);
    h["clinics"] = json!([clinic]);
    h["name"] = name.into();
    h
}

/// Every row of the tables a link could end up in, or the SQLite file itself, as text.
async fn database_text(url: &str) -> String {
    let mut out = String::new();
    if url.starts_with("sqlite:") {
        let path = url.trim_start_matches("sqlite://");
        for suffix in ["", "-wal"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    } else {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        for t in ["partner_links", "audit_log", "ui_sessions", "kv"] {
            let rows: Vec<(String,)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT t::text FROM {t} t")))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
            for (r,) in rows {
                out.push_str(&r);
                out.push('\n');
            }
        }
    }
    out
}

async fn the_partner_page_shows_one_webhooks_log_masked_until_revoked_or_expired(backend: Backend) {
    let logs = captured_logs();
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer(|_, _| crate::common::Answer::status(200).body("{\"ok\":\"received-7731\"}"));
    let shared = server
        .create_webhook(clinic_hook(
            &rx.url("/pharmacy?key=k-Secret-55"),
            "2",
            "Pharmacy: new appointment",
        ))
        .await;
    let other = server
        .create_webhook(clinic_hook(
            &rx.url("/other"),
            "2",
            "Other: new appointment",
        ))
        .await;
    let (shared_id, other_id) = (
        shared["id"].as_str().unwrap(),
        other["id"].as_str().unwrap(),
    );
    server
        .push(
            "kc_appointment_book",
            json!({"clinic_id": "2", "patient_name": "Ada Lovelace", "doctor_name": "Dr Who", "appointment_date": "2026-12-01"}),
        )
        .await;
    let log = server.settled(WAIT).await;
    let mine: Vec<&str> = log
        .iter()
        .filter(|d| d["webhook_id"] == shared_id)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    let theirs: Vec<&str> = log
        .iter()
        .filter(|d| d["webhook_id"] == other_id)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!((mine.len(), theirs.len()), (1, 1), "{log:#?}");

    // Made by the owner, default: bodies masked, 7 days.
    let (status, link) = server
        .post(
            &format!("/api/v1/webhooks/{shared_id}/partner-links"),
            json!({"label": "Pharmacy IT"}),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    let path = link["path"].as_str().unwrap().to_string();
    let secret = path.trim_start_matches("/partner/").to_string();
    assert!(secret.starts_with("chp_"), "{link}");
    assert!(link["url"].as_str().unwrap().ends_with(&path), "{link}");
    assert_eq!(link["show_bodies"], false);
    assert_eq!(link["state"], "active");
    let week = chrono::DateTime::parse_from_rfc3339(link["expires_at"].as_str().unwrap()).unwrap()
        - chrono::DateTime::parse_from_rfc3339(link["created_at"].as_str().unwrap()).unwrap();
    assert_eq!(week.num_days(), 7);

    let (status, headers, page) = open(&server, &path).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["x-robots-tag"]
            .to_str()
            .unwrap()
            .contains("noindex")
    );
    assert!(page.contains("Pharmacy: new appointment"), "{page}");
    assert!(
        page.contains(&format!("{}", rx.addr)),
        "the destination host: {page}"
    );
    assert!(page.contains(mine[0]), "its delivery is listed: {page}");
    assert!(
        !page.contains(theirs[0]),
        "another webhook's delivery is not"
    );
    assert!(!page.contains("Other: new appointment"));
    assert!(
        page.contains("HTTP 200") && page.contains(" ms"),
        "code and latency: {page}"
    );
    for hidden in [
        "Ada Lovelace",
        "k-Secret-55",
        "/pharmacy",
        "received-7731",
        "webhook-signature",
    ] {
        assert!(!page.contains(hidden), "{hidden} is shown: {page}");
    }
    assert!(!page.contains("<form"), "read-only: {page}");

    // One delivery: masked bodies; another webhook's delivery through this link is a 404.
    let (status, _, detail) = open(&server, &format!("{path}/deliveries/{}", mine[0])).await;
    assert_eq!(status, 200, "{detail}");
    assert!(
        detail.contains("Not shown: this link was shared without bodies"),
        "{detail}"
    );
    for hidden in ["Ada Lovelace", "received-7731", "k-Secret-55", "Dr Who"] {
        assert!(!detail.contains(hidden), "{hidden} is shown: {detail}");
    }
    let (status, _, _) = open(&server, &format!("{path}/deliveries/{}", theirs[0])).await;
    assert_eq!(status, 404);
    // Read-only: a POST is refused.
    let resp = server
        .http
        .post(format!("{}{path}", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("retry=1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);

    // With bodies: the request and the answer, and the patient's name.
    let (status, with_bodies) = server
        .post(
            &format!("/api/v1/webhooks/{shared_id}/partner-links"),
            json!({"show_bodies": true, "expires_in_days": 1}),
        )
        .await;
    assert_eq!(status, 201, "{with_bodies}");
    let bodies_path = with_bodies["path"].as_str().unwrap();
    let (status, _, page) = open(&server, bodies_path).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Ada Lovelace"),
        "the patient, allowed: {page}"
    );
    let (_, _, detail) = open(&server, &format!("{bodies_path}/deliveries/{}", mine[0])).await;
    assert!(
        detail.contains("Ada Lovelace with Dr Who"),
        "the request body: {detail}"
    );
    assert!(
        detail.contains("received-7731"),
        "the response body: {detail}"
    );
    assert!(
        !detail.contains("k-Secret-55"),
        "never the URL's key: {detail}"
    );

    // Listed without secrets; every opening audited.
    let (status, list) = server
        .get(&format!("/api/v1/webhooks/{shared_id}/partner-links"))
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(&secret));
    let (_, audit) = server.get("/api/v1/audit?action=partner.").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "partner.create").count(),
        2,
        "{audit:#}"
    );
    assert!(
        actions.iter().filter(|a| **a == "partner.open").count() >= 4,
        "{audit:#}"
    );

    // Revoked: 410, naming nothing.
    let link_id = link["id"].as_str().unwrap();
    let (status, _) = server
        .call(
            "DELETE",
            &format!("/api/v1/webhooks/{shared_id}/partner-links/{link_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, headers, page) = open(&server, &path).await;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("no longer valid"), "{page}");
    assert!(!page.contains("Pharmacy"), "{page}");
    assert_eq!(headers["cache-control"], "no-store");
    let (status, _, _) = open(&server, &format!("{path}/deliveries/{}", mine[0])).await;
    assert_eq!(status, 410);
    let (status, _) = server
        .call(
            "DELETE",
            &format!("/api/v1/webhooks/{shared_id}/partner-links/{link_id}"),
            None,
        )
        .await;
    assert_eq!(status, 404, "revoked already");

    // Expired: a link whose time is up (written with an expiry in the past).
    let expired = &format!("chp_{}", &"Expired".repeat(7)[..43]);
    server
        .store
        .insert_partner_link(&carehook_store::PartnerLinkRow {
            id: uuid::Uuid::now_v7(),
            secret_hash: carehook::service::partner::hash_secret(expired),
            webhook_id: shared_id.parse::<uuid::Uuid>().unwrap().into(),
            label: None,
            show_bodies: false,
            created_by: "test".into(),
            created_at: 0,
            expires_at: carehook::time::now_ms() - 1,
            revoked_at: None,
            maker: Some("admin".into()),
            clinics_at_creation: Some(Vec::new()),
        })
        .await
        .unwrap();
    let (status, _, page) = open(&server, &format!("/partner/{expired}")).await;
    assert_eq!(status, 410, "{page}");
    assert!(!page.contains("Pharmacy"), "{page}");

    // Never a link: 404 with the same words; many wrong ones from one address: 429.
    let (status, _, page) = open(&server, "/partner/chp_nonsense").await;
    assert_eq!(status, 404);
    assert!(page.contains("no longer valid"));
    let mut last = 0;
    for i in 0..carehook::ui::PARTNER_FAILURES_PER_MINUTE + 1 {
        last = open(&server, &format!("/partner/chp_wrong{i}")).await.0;
    }
    assert_eq!(last, 429);

    // The secrets are neither stored nor logged.
    let stored = database_text(server.db.as_ref().unwrap().url()).await;
    assert!(
        stored.contains(&carehook::service::partner::hash_secret(&secret)),
        "the hash is kept"
    );
    for s in [
        &secret,
        &bodies_path.trim_start_matches("/partner/").to_string(),
    ] {
        assert!(
            !stored.contains(s.as_str()),
            "a link's secret is in the database"
        );
        let logged = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
        assert!(
            !logged.contains(s.as_str()),
            "a link's secret is in the log"
        );
    }
    server.stop().await;
}

async fn only_owners_and_admins_of_the_webhooks_clinics_share_its_log(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let one = server
        .create_webhook(clinic_hook(&rx.url("/1"), "1", "Clinic 1 hook"))
        .await;
    let two = server
        .create_webhook(clinic_hook(&rx.url("/2"), "2", "Clinic 2 hook"))
        .await;
    let links = |w: &Value| {
        format!(
            "/api/v1/webhooks/{}/partner-links",
            w["id"].as_str().unwrap()
        )
    };

    let admin = token(&server, "admin", None, true).await;
    let admin2 = token(&server, "admin", Some(&["2"]), true).await;
    let admin_no_bodies = token(&server, "admin", None, false).await;
    for role in ["editor", "viewer", "ingest"] {
        let t = token(&server, role, None, true).await;
        let (status, body) = post_as(&server, &t, &links(&one), json!({})).await;
        assert_eq!(status, 403, "{role}: {body}");
    }
    let (status, body) = post_as(&server, &admin, &links(&one), json!({"label": "IT"})).await;
    assert_eq!(status, 201, "{body}");
    // A clinic-2 admin: its own clinic's webhook, and another clinic's is a 404.
    let (status, body) = post_as(&server, &admin2, &links(&two), json!({})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post_as(&server, &admin2, &links(&one), json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.to_string().contains("Clinic 1 hook"));
    // Bodies only from a maker allowed them; 1 to 90 days.
    let (status, body) = post_as(
        &server,
        &admin_no_bodies,
        &links(&one),
        json!({"show_bodies": true}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "show_bodies");
    let (status, body) = post_as(
        &server,
        &admin,
        &links(&one),
        json!({"expires_in_days": 91}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "expires_in_days");
    let (status, body) = post_as(&server, &admin, &links(&one), json!({"nonsense": 1})).await;
    assert_eq!(status, 422, "{body}");
    server.stop().await;
}

/// A link is valid only while what it was made under still holds: the webhook's clinics
/// (moved to another clinic: 410) and its maker (token revoked: 410).
async fn a_link_ends_when_its_webhook_moves_clinic_or_its_maker_could_no_longer_make_it(
    backend: Backend,
) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let hook2 = server
        .create_webhook(clinic_hook(&rx.url("/2"), "2", "Clinic 2 hook"))
        .await;
    let id = hook2["id"].as_str().unwrap();
    let links = format!("/api/v1/webhooks/{id}/partner-links");
    let (status, made) = server
        .post(
            "/api/v1/tokens",
            json!({"name": "clinic-2-admin", "role": "admin", "clinics": ["2", "3"], "bodies": true}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let (maker_id, maker) = (
        made["id"].as_str().unwrap().to_string(),
        made["token"].as_str().unwrap().to_string(),
    );

    // Moved to clinic 3: the clinic-2 partner's link no longer opens (its maker, of both
    // clinics, still could make it: the move alone ends it).
    let (status, link) = post_as(&server, &maker, &links, json!({})).await;
    assert_eq!(status, 201, "{link}");
    let path = link["path"].as_str().unwrap().to_string();
    assert_eq!(open(&server, &path).await.0, 200);
    let (status, body) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"clinics": ["3"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, page) = open(&server, &path).await;
    assert_eq!(status, 410, "moved to another clinic: {page}");
    assert!(!page.contains("Clinic 2 hook"), "{page}");
    let (_, list) = server.get(&links).await;
    assert_eq!(list["items"][0]["state"], "ended", "{list:#}");

    // A link made now (clinic 3) works until its maker's token is revoked.
    let (status, link) = post_as(&server, &maker, &links, json!({"show_bodies": true})).await;
    assert_eq!(status, 201, "{link}");
    let path = link["path"].as_str().unwrap().to_string();
    assert_eq!(open(&server, &path).await.0, 200);
    let (status, body) = server
        .call("DELETE", &format!("/api/v1/tokens/{maker_id}"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, _, page) = open(&server, &path).await;
    assert_eq!(status, 410, "maker revoked: {page}");

    // The admin token's link keeps working while nothing changes.
    let (status, link) = server.post(&links, json!({})).await;
    assert_eq!(status, 201, "{link}");
    assert_eq!(open(&server, link["path"].as_str().unwrap()).await.0, 200);
    server.stop().await;
}

/// Behind a proxy every partner shares one address: one trying wrong links gets 429s, and
/// the others' valid links still open from that address.
async fn a_valid_link_opens_from_an_address_throttled_for_wrong_ones(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let w = server
        .create_webhook(clinic_hook(&rx.url("/2"), "2", "Clinic 2 hook"))
        .await;
    let (status, link) = server
        .post(
            &format!(
                "/api/v1/webhooks/{}/partner-links",
                w["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    let mut statuses = Vec::new();
    for i in 0..21 {
        let wrong = format!("/partner/chp_{:0>43}", i);
        statuses.push(open(&server, &wrong).await.0);
    }
    assert_eq!(statuses[..20], [404; 20], "{statuses:?}");
    assert_eq!(statuses[20], 429, "{statuses:?}");
    assert_eq!(open(&server, "/partner/not-even-a-link").await.0, 429);
    let (status, _, page) = open(&server, link["path"].as_str().unwrap()).await;
    assert_eq!(
        status, 200,
        "a valid link, from a throttled address: {page}"
    );
    assert!(page.contains("Clinic 2 hook"), "{page}");
    server.stop().await;
}

/// A link no longer valid, opened again and again, is audited as refused once a minute,
/// not once a request.
async fn a_revoked_link_opened_twenty_times_is_audited_once(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let w = server
        .create_webhook(clinic_hook(&rx.url("/2"), "2", "Clinic 2 hook"))
        .await;
    let id = w["id"].as_str().unwrap();
    let (status, link) = server
        .post(&format!("/api/v1/webhooks/{id}/partner-links"), json!({}))
        .await;
    assert_eq!(status, 201, "{link}");
    let (status, _) = server
        .call(
            "DELETE",
            &format!(
                "/api/v1/webhooks/{id}/partner-links/{}",
                link["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, 204);
    for _ in 0..20 {
        assert_eq!(open(&server, link["path"].as_str().unwrap()).await.0, 410);
    }
    let refused = server
        .store
        .list_audit(carehook_store::AuditFilter {
            action: Some("partner.open".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|r| r.outcome == "denied")
        .count();
    assert_eq!(refused, 1, "refusals audited");
    server.stop().await;
}
