//! API tokens: made, used, listed, revoked; the admin token keeps working.

use serde_json::json;

use crate::common::{Backend, TOKEN, TestServer};
use crate::on_both;

on_both!(tokens_are_made_used_and_revoked);

async fn status_with(server: &TestServer, token: &str, path: &str) -> u16 {
    server
        .http
        .get(format!("{}{path}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn tokens_are_made_used_and_revoked(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let (s, made) = server
        .post("/api/v1/tokens", json!({"name": "zapier"}))
        .await;
    assert_eq!(s, 201, "{made}");
    let token = made["token"].as_str().unwrap().to_string();
    let id = made["id"].as_str().unwrap().to_string();
    assert!(token.starts_with("chk_") && token.len() > 40, "{token}");
    assert_eq!(made["name"], "zapier");
    assert_eq!(made["last_used_at"], serde_json::Value::Null);

    // The new token works; its use is recorded (once a minute at most).
    assert_eq!(status_with(&server, &token, "/api/v1/webhooks").await, 200);
    assert_eq!(
        status_with(&server, &token, "/api/v1/event-types").await,
        200
    );
    let mut touched = serde_json::Value::Null;
    for _ in 0..50 {
        let (_, list) = server.get("/api/v1/tokens").await;
        touched = list["items"][0]["last_used_at"].clone();
        if touched.is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(touched.is_string(), "last_used_at was never set");
    let (_, list) = server.get("/api/v1/tokens").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert!(
        items[0].get("token").is_none(),
        "a token is shown only when made"
    );
    assert!(!list.to_string().contains(&token[4..]));

    // A token made with a token.
    let resp = server
        .http
        .post(format!("{}/api/v1/tokens", server.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(json!({"name": "second"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    // Bad input.
    for bad in [
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "a\nb"}),
    ] {
        let (s, e) = server.post("/api/v1/tokens", bad).await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (422, Some("name")),
            "{e}"
        );
    }
    let (s, _) = server
        .post("/api/v1/tokens", json!({"name": "x", "scope": "all"}))
        .await;
    assert_eq!(s, 422);
    let (s, _) = server.post("/api/v1/tokens", json!({})).await;
    assert_eq!(s, 422);

    // Revoked: it stops working at once; revoking again is a 404.
    let (s, _) = server
        .call("DELETE", &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(s, 204);
    assert_eq!(status_with(&server, &token, "/api/v1/webhooks").await, 401);
    let (s, e) = server
        .call("DELETE", &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(s, 404, "{e}");
    let (s, _) = server.call("DELETE", "/api/v1/tokens/nope", None).await;
    assert_eq!(s, 400);
    let (_, list) = server.get("/api/v1/tokens").await;
    assert!(list["items"][0]["revoked_at"].is_string());
    // The admin token from the environment keeps working.
    assert_eq!(status_with(&server, TOKEN, "/api/v1/tokens").await, 200);
    assert_eq!(
        status_with(&server, "chk_nope", "/api/v1/tokens").await,
        401
    );
    server.stop().await;
}
