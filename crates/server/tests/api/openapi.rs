//! The OpenAPI document: valid OpenAPI 3, every `$ref` resolves, and it
//! lists every route the router has (both ways: every documented operation
//! is routed, and every route written in `src/api` is documented).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::common::{Backend, TestServer};

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push(x.as_str().unwrap().to_string());
                } else {
                    refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// `.route("…"` calls in the API's source: plain axum routes, which would
/// bypass the document (every route should go through `routes!`).
fn plain_routes(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            plain_routes(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for part in text.split(".route(\"").skip(1) {
                let route = part.split('"').next().unwrap().to_string();
                out.push((path.display().to_string(), route));
            }
        }
    }
}

#[tokio::test]
async fn the_document_is_valid_and_covers_every_route() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    // Served without a token.
    let resp = server
        .http
        .get(format!("{}/api/v1/openapi.json", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "carehook");
    assert_eq!(
        doc,
        carehook::api::openapi_document(),
        "served as generated"
    );

    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling $ref {r}"
        );
    }

    let paths = doc["paths"].as_object().unwrap();
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(p, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                .map(move |m| (m.to_uppercase(), p.clone()))
        })
        .collect();
    for expected in [
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/event-types"),
        ("POST", "/api/v1/webhooks"),
        ("GET", "/api/v1/webhooks"),
        ("GET", "/api/v1/webhooks/{id}"),
        ("PATCH", "/api/v1/webhooks/{id}"),
        ("DELETE", "/api/v1/webhooks/{id}"),
        ("POST", "/api/v1/webhooks/{id}/test"),
        ("POST", "/api/v1/webhooks/{id}/preview"),
        ("POST", "/api/v1/webhooks/preview"),
        ("POST", "/api/v1/webhooks/{id}/rotate-secret"),
        ("POST", "/api/v1/webhooks/{id}/retry-failed"),
        ("GET", "/api/v1/webhooks/{id}/stats"),
        ("POST", "/api/v1/events"),
        ("GET", "/api/v1/events"),
        ("GET", "/api/v1/events/{id}"),
        ("GET", "/api/v1/deliveries"),
        ("GET", "/api/v1/deliveries/{id}"),
        ("POST", "/api/v1/deliveries/{id}/retry"),
        ("POST", "/api/v1/tokens"),
        ("GET", "/api/v1/tokens"),
        ("DELETE", "/api/v1/tokens/{id}"),
        ("GET", "/api/v1/presets"),
        ("GET", "/api/v1/presets/{id}"),
        ("POST", "/api/v1/encounters/{id}/prescriptions"),
        ("POST", "/api/v1/bills/{id}/payments"),
        ("POST", "/api/v1/webhooks/{id}/replay"),
        ("GET", "/api/v1/alerts"),
    ] {
        assert!(
            documented.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} is not in the document"
        );
    }

    // Clinic routes are made per record kind; so are their documented paths.
    for kind in carehook_core::clinic::Kind::ALL {
        for (method, path) in [
            ("GET", format!("/api/v1/{}", kind.collection())),
            ("GET", format!("/api/v1/{}/{{id}}", kind.collection())),
            ("PATCH", format!("/api/v1/{}/{{id}}", kind.collection())),
            ("DELETE", format!("/api/v1/{}/{{id}}", kind.collection())),
        ] {
            assert!(
                documented.contains(&(method.to_string(), path.clone())),
                "{method} {path} is not in the document"
            );
        }
    }

    // Every documented operation is routed: it answers something other
    // than the router's fallback (404 "no such endpoint") or a 405.
    for (method, path) in &documented {
        let url = format!(
            "{}{}",
            server.base,
            path.replace("{id}", &uuid::Uuid::nil().to_string())
        );
        let resp = server
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
            .bearer_auth(crate::common::TOKEN)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path} is documented but not routed");
        assert!(
            !(status == 404 && body.contains("no such endpoint")),
            "{method} {path} is documented but not routed"
        );
    }

    // Every route written in the API's source is documented.
    let documented_paths: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let mut plain = Vec::new();
    plain_routes(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api"),
        &mut plain,
    );
    for (file, route) in plain {
        let full_api = format!("/api/v1{route}");
        assert!(
            documented_paths.contains(route.as_str())
                || documented_paths.contains(full_api.as_str()),
            "{file} routes {route} outside the OpenAPI document: add it with `routes!` and a #[utoipa::path]"
        );
    }
    server.stop().await;
}
