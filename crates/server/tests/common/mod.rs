//! Test harness: the real carehook (through `app::run`) on 127.0.0.1:0, and
//! a real receiver on 127.0.0.1:0 that records what arrives and answers as
//! the test tells it to.
#![allow(dead_code)]

/// Runs an async test fn once per backend, as `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$name($crate::common::Backend::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::$name($crate::common::Backend::Postgres).await }
        }
    )*};
}

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use carehook::app::{self, Settings};
use carehook::dispatcher::DispatcherConfig;
use carehook::outbound::{DestinationPolicy, parse_allowed};
use carehook::vault::Vault;
use carehook_store::Store;
pub use carehook_store::testing::{Backend, TestDatabase};
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

pub const TOKEN: &str = "test-admin-token-0123456789";

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// How the receiver answers: status, extra headers, body, and a delay.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Answer {
            status,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn ok() -> Self {
        Answer::status(200).body("ok")
    }
    pub fn body(mut self, b: &str) -> Self {
        self.body = b.into();
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

type Behavior = Arc<dyn Fn(&Received, usize) -> Answer + Send + Sync>;

#[derive(Clone)]
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
    behavior: Arc<Mutex<Behavior>>,
    notify: Arc<Notify>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let log = Arc::new(Mutex::new(Vec::new()));
        let behavior: Arc<Mutex<Behavior>> =
            Arc::new(Mutex::new(Arc::new(|_: &Received, _: usize| Answer::ok())));
        let notify = Arc::new(Notify::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (l, b, n) = (log.clone(), behavior.clone(), notify.clone());
        let app = axum::Router::new().fallback(move |req: Request| {
            let (l, b, n) = (l.clone(), b.clone(), n.clone());
            async move { handle(req, l, b, n).await }
        });
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            addr,
            log,
            behavior,
            notify,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sets how to answer: `f(request, index of this request from 0)`.
    pub fn answer(&self, f: impl Fn(&Received, usize) -> Answer + Send + Sync + 'static) {
        *self.behavior.lock().unwrap() = Arc::new(f);
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Waits until at least `n` requests arrived; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            if self.count() >= n {
                return self.received();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "the receiver got {} requests, expected {n}, within {timeout:?}",
                    self.count()
                );
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }
}

async fn handle(
    req: Request,
    log: Arc<Mutex<Vec<Received>>>,
    behavior: Arc<Mutex<Behavior>>,
    notify: Arc<Notify>,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let received = Received {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
        at: Instant::now(),
    };
    let index = {
        let mut l = log.lock().unwrap();
        l.push(received.clone());
        l.len() - 1
    };
    let f = behavior.lock().unwrap().clone();
    let answer = f(&received, index);
    notify.notify_waiters();
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let mut resp = (StatusCode::from_u16(answer.status).unwrap(), answer.body).into_response();
    for (k, v) in answer.headers {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(&v).unwrap(),
        );
    }
    resp
}

/// carehook, running for one test.
pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub db: Option<TestDatabase>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Settings for tests: loopback allowed, a quick dispatcher.
pub fn test_settings() -> Settings {
    let mut s = Settings::new(TOKEN, Vault::from_key(&[42; 32]));
    s.policy = DestinationPolicy::new(parse_allowed("127.0.0.1/32").unwrap());
    s.dispatcher = Some(DispatcherConfig {
        poll: Duration::from_millis(200),
        ..DispatcherConfig::default()
    });
    s
}

impl TestServer {
    /// `None`: PostgreSQL is unreachable and not required; skip the test.
    pub async fn start(backend: Backend) -> Option<TestServer> {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(
        backend: Backend,
        tweak: impl FnOnce(&mut Settings),
    ) -> Option<TestServer> {
        let db = TestDatabase::new(backend).await?;
        let store = db.connect().await;
        let mut settings = test_settings();
        tweak(&mut settings);
        Some(Self::start_on(store, Some(db), settings).await)
    }

    pub async fn start_on(
        store: Arc<dyn Store>,
        db: Option<TestDatabase>,
        settings: Settings,
    ) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app::run(settings, store.clone(), listener, async move {
            let _ = stopped.await;
        }));
        carehook::outbound::install_crypto_provider();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        TestServer {
            base,
            http,
            store,
            db,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None).await
    }

    pub async fn create_webhook(&self, spec: Value) -> Value {
        let (status, body) = self.post("/api/v1/webhooks", spec).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Logs in to the admin UI with the admin token, as a browser would (the login page's
    /// CSRF cookie, then the form); answers a client that follows no redirects and the
    /// session cookie's value.
    pub async fn ui_login(&self) -> (reqwest::Client, String) {
        let page = self
            .http
            .get(format!("{}/ui/login", self.base))
            .send()
            .await
            .unwrap();
        let csrf =
            set_cookie(&page, "carehook_login").expect("the login page sets its CSRF cookie");
        // The session cookie comes with the redirect: do not follow it.
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = http
            .post(format!("{}/ui/login", self.base))
            .header("cookie", format!("carehook_login={csrf}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs([("token", TOKEN), ("csrf", &csrf), ("next", "/ui")])
                    .finish(),
            )
            .send()
            .await
            .unwrap();
        let session = set_cookie(&resp, "carehook_session").expect("logged in");
        (http, session)
    }

    /// Loads a webhook made through another node into this node's registry (reading it through
    /// this node's API does), so this node's next events already match it, without waiting
    /// for its NOTIFY or periodic refresh.
    pub async fn learn_webhook(&self, made: &Value) {
        let id = made["id"].as_str().expect("a webhook's answer has its id");
        let (status, seen) = self.get(&format!("/api/v1/webhooks/{id}")).await;
        assert_eq!(status, 200, "{seen}");
    }

    pub async fn push(&self, event: &str, data: Value) -> Value {
        let (status, body) = self
            .post("/api/v1/events", json!({"event": event, "data": data}))
            .await;
        assert_eq!(status, 202, "{body}");
        body
    }

    /// Polls a delivery until `pred` holds; panics after `timeout`.
    pub async fn wait_delivery(
        &self,
        id: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, d) = self.get(&format!("/api/v1/deliveries/{id}")).await;
            assert_eq!(status, 200, "{d}");
            if pred(&d) {
                return d;
            }
            if Instant::now() > deadline {
                panic!("delivery never reached the expected state: {d:#}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until no delivery is pending — each one succeeded or failed, so the dispatcher
    /// will send nothing more — and returns the whole delivery log, newest first. What a test
    /// then asserts about the log (and about what a receiver got) is final.
    pub async fn settled(&self, timeout: Duration) -> Vec<Value> {
        self.wait_log(timeout, "no delivery pending", |items| {
            items.iter().all(|d| d["status"] != "pending")
        })
        .await
    }

    /// Polls the whole delivery log (newest first) until `pred` holds of it, and returns it;
    /// panics after `timeout`, naming `what` was awaited.
    pub async fn wait_log(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, page) = self.get("/api/v1/deliveries?limit=1000").await;
            assert_eq!(status, 200, "{page}");
            let items = page["items"].as_array().unwrap().clone();
            assert!(
                page["next_cursor"].is_null(),
                "more than one page of deliveries"
            );
            if pred(&items) {
                return items;
            }
            if Instant::now() > deadline {
                panic!("the log never showed {what} within {timeout:?}: {items:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `GET path` (with the admin token) until `pred` holds of its 200 answer, and returns
    /// it; panics after `timeout`, naming `what` was awaited.
    pub async fn wait_get(
        &self,
        path: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, body) = self.get(path).await;
            assert_eq!(status, 200, "{body}");
            if pred(&body) {
                return body;
            }
            if Instant::now() > deadline {
                panic!("{path} never showed {what} within {timeout:?}: {body:#}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /metrics` (no token): its text, after checking it answered 200 in Prometheus' type.
    pub async fn metrics_text(&self) -> String {
        let resp = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(kind.starts_with("text/plain"), "{kind}");
        resp.text().await.unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }
}

/// A webhook on the receiver: JSON body, one event.
pub fn hook(url: &str) -> Value {
    json!({
        "name": "Slack: new appointment",
        "events": ["kc_appointment_book"],
        "url": url,
        "body": "{\"text\": \"{{patient_name}} with {{doctor_name}} on {{appointment_date}}\"}"
    })
}

/// How long a test waits for something that should happen at once.
pub const WAIT: Duration = Duration::from_secs(15);

/// `name{labels}` → value, from the Prometheus text format.
pub fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// A cookie's value from a response's `Set-Cookie` headers.
pub fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}
