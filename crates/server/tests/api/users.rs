//! People through the API (`/api/v1/users`): only owners list, add and change accounts; the
//! last active owner cannot be demoted or disabled; no answer, audit record or log carries a
//! password hash or a TOTP secret; every change is in the audit trail. And the second factor
//! set up on "Your account" (codes computed from the secret the page shows), confirmed with a
//! code before it counts, then asked for at login.

use carehook_store::AuditFilter;
use serde_json::{Value, json};

use crate::common::{Backend, TestServer, test_settings};

/// A token of `role` (of every clinic).
async fn token(server: &TestServer, role: &str) -> String {
    let (status, body) = server
        .post(
            "/api/v1/tokens",
            json!({"name": format!("{role}-token"), "role": role}),
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
) -> (u16, Value) {
    let mut req = server
        .http
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", server.base),
        )
        .bearer_auth(token);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// No answer may carry a hash, a sealed secret or the words for them.
fn assert_no_secrets(v: &Value, stored: &[&str]) {
    let text = v.to_string();
    for word in ["$argon2", "password_hash", "totp_secret"] {
        assert!(!text.contains(word), "{word} in {text}");
    }
    for s in stored {
        assert!(!text.contains(s), "a stored secret in {text}");
    }
}

async fn audit(server: &TestServer, action: &str) -> Vec<carehook_store::AuditRow> {
    server
        .store
        .list_audit(AuditFilter {
            action: Some(action.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .items
}

async fn owners_manage_people_and_the_last_owner_stays(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    // The first owner account, as the first start makes it.
    let (status, first) = server
        .post(
            "/api/v1/users",
            json!({"email": "Owner@Clinic.Example", "display_name": "Owner", "role": "owner"}),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["email"], "owner@clinic.example");
    let generated = first["password"].as_str().unwrap().to_string();
    assert!(generated.len() >= 20, "{first}");
    let owner_id = first["id"].as_str().unwrap().to_string();

    // An editor of clinic 2, with a password given (checked by the rules: too short first).
    let (status, short) = server
        .post(
            "/api/v1/users",
            json!({"email": "ed@clinic.example", "display_name": "Ed", "role": "editor",
                   "clinics": [2], "password": "short"}),
        )
        .await;
    assert_eq!(
        (status, short["error"]["field"].as_str()),
        (422, Some("password"))
    );
    let (status, ed) = server
        .post(
            "/api/v1/users",
            json!({"email": "ed@clinic.example", "display_name": "Ed", "role": "editor",
                   "clinics": [2], "password": "a long enough password"}),
        )
        .await;
    assert_eq!(status, 201, "{ed}");
    assert!(
        ed.get("password").is_none(),
        "a given password is not echoed: {ed}"
    );
    assert_eq!(ed["clinics"], json!(["2"]));
    assert_eq!(ed["second_factor"], false);
    let ed_id = ed["id"].as_str().unwrap().to_string();
    let (status, dup) = server
        .post(
            "/api/v1/users",
            json!({"email": "ED@clinic.example", "display_name": "Ed again"}),
        )
        .await;
    assert_eq!(status, 409, "{dup}");
    let (status, ingest) = server
        .post(
            "/api/v1/users",
            json!({"email": "i@clinic.example", "display_name": "I", "role": "ingest"}),
        )
        .await;
    assert_eq!(
        (status, ingest["error"]["field"].as_str()),
        (422, Some("role"))
    );

    // Only owners: every other role is refused, and nothing changes.
    for role in ["admin", "editor", "viewer", "ingest"] {
        let t = token(&server, role).await;
        for (method, path, body) in [
            ("GET", "/api/v1/users".to_string(), None),
            (
                "POST",
                "/api/v1/users".to_string(),
                Some(json!({"email": "x@clinic.example", "display_name": "X"})),
            ),
            ("GET", format!("/api/v1/users/{ed_id}"), None),
            (
                "PATCH",
                format!("/api/v1/users/{ed_id}"),
                Some(json!({"role": "owner"})),
            ),
            ("POST", format!("/api/v1/users/{ed_id}/disable"), None),
            (
                "POST",
                format!("/api/v1/users/{ed_id}/reset-password"),
                None,
            ),
            ("POST", format!("/api/v1/users/{ed_id}/reset-2fa"), None),
        ] {
            let (status, _) = call_as(&server, &t, method, &path, body).await;
            assert_eq!(status, 403, "{method} {path} as {role}");
        }
        // Any token may ask who it is.
        let (status, me) = call_as(&server, &t, "GET", "/api/v1/whoami", None).await;
        assert_eq!((status, me["role"].as_str()), (200, Some(role)), "{me}");
    }
    let unchanged = server.store.get_user(&ed_id).await.unwrap().unwrap();
    assert_eq!(
        (unchanged.role.as_str(), unchanged.disabled_at),
        ("editor", None)
    );
    assert!(
        server
            .store
            .user_by_email("x@clinic.example")
            .await
            .unwrap()
            .is_none()
    );

    // The owner changes the editor: name, role, clinics; left-out fields stay.
    let (status, changed) = server
        .call(
            "PATCH",
            &format!("/api/v1/users/{ed_id}"),
            Some(json!({"display_name": "Ed Wood", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (
            &changed["display_name"],
            &changed["role"],
            &changed["clinics"]
        ),
        (&json!("Ed Wood"), &json!("viewer"), &json!(["2"]))
    );
    let (status, _) = server
        .call(
            "PATCH",
            &format!("/api/v1/users/{ed_id}"),
            Some(json!({"role": "editor", "clinics": ["2", "3"]})),
        )
        .await;
    assert_eq!(status, 200);
    let stored = server.store.get_user(&ed_id).await.unwrap().unwrap();
    assert_eq!(
        (stored.role.as_str(), stored.clinics.clone()),
        ("editor", Some(vec!["2".to_string(), "3".to_string()]))
    );

    // The last active owner can be neither demoted nor disabled: 409, nothing changed.
    let (status, refused) = server
        .call(
            "PATCH",
            &format!("/api/v1/users/{owner_id}"),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last active owner"),
        "{refused}"
    );
    let (status, _) = server
        .post(&format!("/api/v1/users/{owner_id}/disable"), json!({}))
        .await;
    assert_eq!(status, 409);
    let owner = server.store.get_user(&owner_id).await.unwrap().unwrap();
    assert_eq!((owner.role.as_str(), owner.disabled_at), ("owner", None));
    // With a second owner, the first may step down.
    let (status, _) = server
        .call(
            "PATCH",
            &format!("/api/v1/users/{ed_id}"),
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .call(
            "PATCH",
            &format!("/api/v1/users/{owner_id}"),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, 200);
    // …and now Ed is the last one.
    let (status, _) = server
        .call("POST", &format!("/api/v1/users/{ed_id}/disable"), None)
        .await;
    assert_eq!(status, 409);

    // Disable and enable the first account; a new password, made and shown once.
    let (status, off) = server
        .call("POST", &format!("/api/v1/users/{owner_id}/disable"), None)
        .await;
    assert_eq!(
        (status, off["disabled_at"].is_string()),
        (200, true),
        "{off}"
    );
    let (status, on) = server
        .call("POST", &format!("/api/v1/users/{owner_id}/enable"), None)
        .await;
    assert_eq!((status, on["disabled_at"].is_null()), (200, true), "{on}");
    let before = server.store.get_user(&owner_id).await.unwrap().unwrap();
    let (status, reset) = server
        .call(
            "POST",
            &format!("/api/v1/users/{owner_id}/reset-password"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{reset}");
    let new_password = reset["password"].as_str().unwrap();
    assert_ne!(new_password, generated);
    let after = server.store.get_user(&owner_id).await.unwrap().unwrap();
    assert_ne!(before.password_hash, after.password_hash);
    assert!(carehook::service::users::verify_password(
        &after.password_hash,
        new_password
    ));
    let (status, bad) = server
        .post(
            &format!("/api/v1/users/{owner_id}/reset-password"),
            json!({"password": "short"}),
        )
        .await;
    assert_eq!(
        (status, bad["error"]["field"].as_str()),
        (422, Some("password"))
    );
    let (status, missing) = server.get("/api/v1/users/no-such-account").await;
    assert_eq!(status, 404, "{missing}");

    // A second factor, reset by an owner (a lost phone).
    let vault = test_settings().vault;
    let sealed = vault.seal("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    server
        .store
        .set_user_totp(&ed_id, Some(&sealed), 0)
        .await
        .unwrap();
    let (status, shown) = server.get(&format!("/api/v1/users/{ed_id}")).await;
    assert_eq!((status, &shown["second_factor"]), (200, &json!(true)));
    let (status, cleared) = server
        .call("POST", &format!("/api/v1/users/{ed_id}/reset-2fa"), None)
        .await;
    assert_eq!((status, &cleared["second_factor"]), (200, &json!(false)));
    assert_eq!(
        server
            .store
            .get_user(&ed_id)
            .await
            .unwrap()
            .unwrap()
            .totp_secret,
        None
    );

    // No answer carries a hash or a secret.
    let hashes: Vec<String> = server
        .store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.password_hash)
        .collect();
    let (status, list) = server.get("/api/v1/users").await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let mut stored: Vec<&str> = hashes.iter().map(String::as_str).collect();
    stored.push(&sealed);
    for answer in [&first, &ed, &changed, &list, &shown, &reset, &off, &on] {
        assert_no_secrets(answer, &stored);
    }

    // Every change is in the audit trail, with who did it and nothing secret.
    for (action, n) in [
        ("user.create", 2),
        ("user.update", 4),
        ("user.disable", 1),
        ("user.enable", 1),
        ("user.reset_password", 1),
        ("user.reset_2fa", 1),
    ] {
        let rows = audit(&server, action).await;
        assert_eq!(rows.len(), n, "{action}: {rows:#?}");
        for r in &rows {
            assert_eq!(r.actor, "api: the admin token");
            assert!(r.resource.starts_with("user/"), "{}", r.resource);
            assert_no_secrets(&r.details, &stored);
            assert!(!r.details.to_string().contains(new_password));
        }
    }
    let update = &audit(&server, "user.update").await[0];
    assert_eq!(update.details["after"]["role"], "admin", "newest first");
    assert_eq!(update.details["before"]["role"], "owner");
    // Refused calls changed nothing, so wrote nothing.
    assert!(
        audit(&server, "user.")
            .await
            .iter()
            .all(|r| r.outcome == "ok")
    );
    server.stop().await;
}

crate::on_both!(owners_manage_people_and_the_last_owner_stays);
