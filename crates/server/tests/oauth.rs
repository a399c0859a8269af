//! OAuth 2.0 webhooks end to end: the real server, and a local OAuth 2.0 provider written
//! here that issues access tokens expiring after 2 s, rotates refresh tokens (an old one is
//! refused), counts token requests, and guards a resource that answers 401 to a token it did
//! not issue or that expired.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::{Backend, TestServer, WAIT};
use serde_json::{Value, json};

on_both!(
    deliveries_over_five_expiries_all_succeed_with_one_token_request_per_expiry,
    a_revoked_refresh_token_is_one_clear_failure,
    a_401_renews_the_token_exactly_once,
);

const CLIENT_ID: &str = "carehook-clinic";
const CLIENT_SECRET: &str = "cs-Oauth-8d2f61";
const FIRST_REFRESH: &str = "rt-First-0c9e44";

#[derive(Default)]
struct Provider {
    lifetime: Duration,
    rotate: bool,
    /// Valid access tokens and when each expires.
    access: HashMap<String, Instant>,
    /// The one refresh token that works now.
    refresh: String,
    /// Every refresh token issued, to look for in the database and logs.
    issued: Vec<String>,
    token_requests: usize,
    /// Token requests that presented a refresh token no longer valid.
    stale_refresh: usize,
    hook_requests: usize,
    hook_refused: usize,
    /// The resource answers 401 to everything.
    refuse_all: bool,
    n: usize,
}

#[derive(Clone)]
struct Idp {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<Provider>>,
}

impl Idp {
    async fn start(lifetime: Duration, rotate: bool) -> Idp {
        let state = Arc::new(Mutex::new(Provider {
            lifetime,
            rotate,
            refresh: FIRST_REFRESH.into(),
            ..Provider::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/token", axum::routing::post(token))
            .route("/hook", axum::routing::post(hook))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Idp { addr, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Provider) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}

fn random() -> String {
    format!("{:016x}", getrandom::u64().unwrap())
}

async fn token(State(state): State<Arc<Mutex<Provider>>>, req: Request) -> Response {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap();
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let mut p = state.lock().unwrap();
    p.token_requests += 1;
    use base64::Engine as _;
    let expected =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    if auth != format!("Basic {expected}") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some("refresh_token") => {
            if form.get("refresh_token") != Some(&p.refresh) {
                p.stale_refresh += 1;
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})),
                )
                    .into_response();
            }
        }
        _ => return StatusCode::BAD_REQUEST.into_response(),
    }
    p.n += 1;
    let access = format!("at-{}-{}", p.n, random());
    let expires = Instant::now() + p.lifetime;
    p.access.insert(access.clone(), expires);
    let mut answer = json!({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": p.lifetime.as_secs(),
    });
    if form.get("grant_type").map(String::as_str) == Some("refresh_token") && p.rotate {
        let next = format!("rt-{}-{}", p.n, random());
        p.refresh = next.clone();
        p.issued.push(next.clone());
        answer["refresh_token"] = next.into();
    }
    axum::Json(answer).into_response()
}

async fn hook(State(state): State<Arc<Mutex<Provider>>>, req: Request) -> StatusCode {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let mut p = state.lock().unwrap();
    p.hook_requests += 1;
    let valid = p.access.get(&token).is_some_and(|t| *t > Instant::now());
    if valid && !p.refuse_all {
        StatusCode::OK
    } else {
        p.hook_refused += 1;
        StatusCode::UNAUTHORIZED
    }
}

fn refresh_hook(idp: &Idp) -> Value {
    json!({
        "name": "QuickBooks-like",
        "events": ["kc_payment_add"],
        "url": idp.url("/hook"),
        "auth": {
            "type": "oauth2_refresh_token",
            "token_url": idp.url("/token"),
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": FIRST_REFRESH,
        },
        "body": "{\"amount\": \"{{payment_amount}}\"}",
        "retry": {"schedule": ["1s"], "max_attempts": 3, "jitter": 0.0},
    })
}

/// Pushes `n` events over `over`, evenly.
async fn push_paced(servers: &[&TestServer], n: usize, over: Duration) {
    let start = Instant::now();
    for i in 0..n {
        let at = start + over.mul_f64(i as f64 / n as f64);
        tokio::time::sleep_until(at.into()).await;
        servers[i % servers.len()]
            .push(
                "kc_payment_add",
                json!({"payment_amount": format!("{i}.00")}),
            )
            .await;
    }
}

/// Every delivery succeeded at its first attempt.
fn all_first_time(deliveries: &[Value], n: usize) {
    assert_eq!(deliveries.len(), n);
    for d in deliveries {
        assert_eq!(d["status"], "succeeded", "{d:#}");
        assert_eq!(d["attempts"], 1, "{d:#}");
    }
}

async fn deliveries_over_five_expiries_all_succeed_with_one_token_request_per_expiry(
    backend: Backend,
) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let idp = Idp::start(Duration::from_secs(2), true).await;
    server.create_webhook(refresh_hook(&idp)).await;
    let started = Instant::now();
    push_paced(&[&server], 200, Duration::from_secs(11)).await;
    let deliveries = server.settled(WAIT).await;
    let elapsed = started.elapsed();
    all_first_time(&deliveries, 200);
    let (requests, stale, refused) =
        idp.with(|p| (p.token_requests, p.stale_refresh, p.hook_refused));
    // A token lives 2 s and is renewed 0.2 s early: one request per 1.8 s of traffic.
    let expiries = (elapsed.as_secs_f64() / 1.8).ceil() as usize;
    assert!(requests >= 5, "{requests} token requests in {elapsed:?}");
    assert!(
        requests <= expiries + 1,
        "{requests} token requests in {elapsed:?}: more than one per expiry"
    );
    assert_eq!(stale, 0, "an old (rotated) refresh token was presented");
    assert_eq!(refused, 0, "a request went out with an expired token");
    // The rotated refresh token is stored sealed, and the API says how the token is.
    let (_, list) = server.get("/api/v1/webhooks").await;
    let w = &list["items"][0];
    assert_eq!(w["oauth"]["state"], "ok", "{w}");
    assert_eq!(w["oauth"]["refresh_token_rotated"], true, "{w}");
    assert_eq!(w["auth"]["refresh_token"], "********", "{w}");
    assert_eq!(w["auth"]["has_refresh_token"], true, "{w}");
    let issued = idp.with(|p| p.issued.clone());
    let text = list.to_string();
    for t in &issued {
        assert!(!text.contains(t.as_str()));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_make_one_token_request_per_expiry() {
    let Some(db) = common::TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    let a = TestServer::start_on(db.connect().await, None, common::test_settings()).await;
    let b = TestServer::start_on(db.connect().await, Some(db), common::test_settings()).await;
    let idp = Idp::start(Duration::from_secs(2), true).await;
    let made = a.create_webhook(refresh_hook(&idp)).await;
    b.learn_webhook(&made).await;
    let started = Instant::now();
    push_paced(&[&a, &b], 200, Duration::from_secs(11)).await;
    let deliveries = a.settled(WAIT).await;
    let elapsed = started.elapsed();
    all_first_time(&deliveries, 200);
    let (requests, stale) = idp.with(|p| (p.token_requests, p.stale_refresh));
    let expiries = (elapsed.as_secs_f64() / 1.8).ceil() as usize;
    // Two nodes each asking would make about twice as many.
    assert!(
        (5..=expiries + 1).contains(&requests),
        "{requests} token requests from two nodes in {elapsed:?}"
    );
    assert_eq!(stale, 0, "two nodes used the same refresh token");
    let row: (i64,) = sqlx::query_as("SELECT requests FROM oauth_tokens")
        .fetch_one(&mut *pg(&b).await)
        .await
        .unwrap();
    assert_eq!(
        row.0 as usize, requests,
        "the shared row counts every request"
    );
    a.stop().await;
    b.stop().await;
}

async fn pg(server: &TestServer) -> sqlx::pool::PoolConnection<sqlx::Postgres> {
    let url = server.db.as_ref().unwrap().url().to_string();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    pool.acquire().await.unwrap()
}

async fn a_revoked_refresh_token_is_one_clear_failure(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let idp = Idp::start(Duration::from_secs(3600), true).await;
    // The provider no longer knows the refresh token carehook holds (revoked by the user).
    idp.with(|p| p.refresh = "rt-someone-else".into());
    let mut spec = refresh_hook(&idp);
    spec["retry"] = json!({"max_attempts": 1});
    let created = server.create_webhook(spec).await;
    let id = created["id"].as_str().unwrap().to_string();
    for i in 0..5 {
        server
            .push("kc_payment_add", json!({"payment_amount": format!("{i}")}))
            .await;
    }
    let deliveries = server.settled(WAIT).await;
    assert_eq!(deliveries.len(), 5);
    for d in &deliveries {
        assert_eq!(d["status"], "failed", "{d:#}");
        let error = d["last_error"].as_str().unwrap_or("");
        assert!(error.starts_with("token request failed: "), "{error}");
        assert!(error.contains("invalid_grant"), "{error}");
        assert!(
            !error.contains(FIRST_REFRESH) && !error.contains(CLIENT_SECRET),
            "{error}"
        );
    }
    // One refusal, then no more requests: not a loop of token requests.
    assert_eq!(idp.with(|p| p.token_requests), 1);
    assert_eq!(idp.with(|p| p.hook_requests), 0);
    let (_, w) = server.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(w["oauth"]["state"], "failing", "{w}");
    let why = w["oauth"]["last_error"].as_str().unwrap();
    assert!(
        why.contains("invalid_grant") && why.contains("authorize again"),
        "{why}"
    );
    assert!(w["oauth"]["blocked_until"].is_string(), "{w}");
    // The server is alive and well.
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);

    // A new refresh token entered (as after authorizing again) ends the block at once.
    idp.with(|p| p.refresh = "rt-Reauthorized-5e1b".into());
    let (status, w) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"auth": {"refresh_token": "rt-Reauthorized-5e1b"}})),
        )
        .await;
    assert_eq!(status, 200, "{w}");
    assert_eq!(w["oauth"]["state"], "no_token", "{w}");
    let pushed = server
        .push("kc_payment_add", json!({"payment_amount": "9"}))
        .await;
    let d = pushed["deliveries"][0].as_str().unwrap().to_string();
    server
        .wait_delivery(&d, WAIT, |d| d["status"] == "succeeded")
        .await;
    assert_eq!(idp.with(|p| p.token_requests), 2);
    server.stop().await;
}

async fn a_401_renews_the_token_exactly_once(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let idp = Idp::start(Duration::from_secs(3600), false).await;
    let created = server
        .create_webhook(json!({
            "name": "Salesforce-like",
            "events": ["kc_payment_add"],
            "url": idp.url("/hook"),
            "auth": {
                "type": "oauth2_client_credentials",
                "token_url": idp.url("/token"),
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "scope": "api",
            },
            "retry": {"max_attempts": 1},
        }))
        .await;
    let id = created["id"].as_str().unwrap();
    let deliver = |amount: &'static str| {
        let server = &server;
        async move {
            let pushed = server
                .push("kc_payment_add", json!({"payment_amount": amount}))
                .await;
            let d = pushed["deliveries"][0].as_str().unwrap().to_string();
            server
                .wait_delivery(&d, WAIT, |d| d["status"] != "pending")
                .await
        }
    };
    let d = deliver("1").await;
    assert_eq!(d["status"], "succeeded", "{d:#}");
    assert_eq!(idp.with(|p| (p.token_requests, p.hook_requests)), (1, 1));

    // The provider ends every session (tokens look valid to carehook for another hour).
    idp.with(|p| p.access.clear());
    let d = deliver("2").await;
    assert_eq!(d["status"], "succeeded", "{d:#}");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1, "{d:#}");
    assert_eq!(idp.with(|p| (p.token_requests, p.hook_requests)), (2, 3));

    // A 401 to the fresh token too is an ordinary failure: one renewal, no more.
    idp.with(|p| p.refuse_all = true);
    let d = deliver("3").await;
    assert_eq!(d["status"], "failed", "{d:#}");
    assert_eq!(d["last_status"], 401, "{d:#}");
    assert_eq!(idp.with(|p| (p.token_requests, p.hook_requests)), (3, 5));
    // The log shows the bearer token masked.
    let (_, full) = server
        .get(&format!("/api/v1/deliveries/{}", d["id"].as_str().unwrap()))
        .await;
    assert!(full.to_string().contains("Bearer ********"), "{full}");
    assert!(!full.to_string().contains("at-"), "{full}");
    let (_, w) = server.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(w["oauth"]["token_requests"], 3, "{w}");
    server.stop().await;
}
