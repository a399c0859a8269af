//! carehook as separate processes: killed with SIGKILL under load, and two
//! nodes sharing one PostgreSQL. These run the real binary.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Receiver, TestDatabase};
use serde_json::{Value, json};

const TOKEN: &str = "process-test-admin-token-0123";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `carehook serve` child process.
struct Node {
    child: Child,
    base: String,
}

impl Node {
    async fn start(database_url: &str, port: u16, dir: &std::path::Path) -> Node {
        let child = Command::new(env!("CARGO_BIN_EXE_carehook"))
            .arg("serve")
            .env("CAREHOOK_LISTEN", format!("127.0.0.1:{port}"))
            .env("CAREHOOK_DATABASE_URL", database_url)
            .env("CAREHOOK_ADMIN_TOKEN", TOKEN)
            .env("CAREHOOK_ALLOWED_DESTINATIONS", "127.0.0.1/32")
            .env(
                "CAREHOOK_MASTER_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            )
            .env("CAREHOOK_LEASE_SECS", "5")
            .env("RUST_LOG", "warn")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the carehook binary starts");
        let node = Node {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        node.wait_healthy().await;
        node
    }

    async fn wait_healthy(&self) {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("carehook at {} did not become healthy", self.base);
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    fn terminate(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }
}

fn client() -> reqwest::Client {
    carehook::outbound::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn create_webhook(client: &reqwest::Client, base: &str, url: &str) -> String {
    let spec = json!({
        "name": "crash test", "events": ["kc_appointment_book"], "url": url,
        "body": "{\"n\": \"{{appointment_id}}\"}",
        "retry": {"schedule": ["200ms"], "max_attempts": 50, "jitter": 0.0}
    });
    let r = client
        .post(format!("{base}/api/v1/webhooks"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(spec.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// Posts one event; the delivery id when carehook accepted it.
async fn push(client: &reqwest::Client, base: &str, n: usize) -> Option<String> {
    let body = json!({"event": "kc_appointment_book", "data": {"appointment_id": n.to_string()}});
    let r = client
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    if r.status() != 202 {
        return None;
    }
    let v: Value = serde_json::from_str(&r.text().await.ok()?).ok()?;
    Some(v["deliveries"][0].as_str()?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_no_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("crash.db").display());
    let port = free_port();
    let rx = Receiver::start().await;
    // A little delay keeps deliveries in flight when the kill lands.
    rx.answer(|_, _| common::Answer::ok().delay(Duration::from_millis(5)));
    let client = client();
    let mut node = Node::start(&db, port, dir.path()).await;
    create_webhook(&client, &node.base, &rx.url("/hook")).await;

    let mut accepted: HashSet<String> = HashSet::new();
    let mut n = 0;
    for round in 0..4 {
        // 8 concurrent senders for a while, then SIGKILL mid-stream.
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(1500) {
            let mut batch = tokio::task::JoinSet::new();
            for _ in 0..8 {
                n += 1;
                let (c, b, i) = (client.clone(), node.base.clone(), n);
                batch.spawn(async move { push(&c, &b, i).await });
            }
            if round < 3 && started.elapsed() > Duration::from_millis(1200) {
                // Kill while these requests are on the wire.
                node.kill();
                while let Some(r) = batch.join_next().await {
                    accepted.extend(r.unwrap());
                }
                node = Node::start(&db, port, dir.path()).await;
                break;
            }
            while let Some(r) = batch.join_next().await {
                accepted.extend(r.unwrap());
            }
        }
    }
    assert!(
        accepted.len() > 100,
        "only {} events were accepted",
        accepted.len()
    );

    // Every accepted event arrives (leases of killed deliveries expire in 5 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let seen: HashSet<String> = rx
            .received()
            .iter()
            .filter_map(|r| r.header("webhook-id").map(str::to_string))
            .collect();
        let missing: Vec<_> = accepted
            .iter()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    node.terminate();
    assert!(
        missing.is_empty(),
        "{} of {} accepted events never arrived",
        missing.len(),
        accepted.len()
    );
    // Repeats (at-least-once) carry the same webhook-id and the same body.
    let mut bodies: HashMap<String, Vec<u8>> = HashMap::new();
    for r in rx.received() {
        let id = r.header("webhook-id").unwrap().to_string();
        if let Some(first) = bodies.get(&id) {
            assert_eq!(first, &r.body.to_vec(), "a repeat of {id} differs");
        } else {
            bodies.insert(id, r.body.to_vec());
        }
    }
    eprintln!(
        "crash test: {} accepted, {} requests received, {} repeats",
        accepted.len(),
        rx.count(),
        rx.count() - bodies.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_on_one_postgres_send_each_delivery_once() {
    let Some(db) = TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    // Migrate once up front so the two nodes do not race to create the schema.
    db.connect().await;
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let client = client();
    let a = Node::start(db.url(), free_port(), dir.path()).await;
    let b = Node::start(db.url(), free_port(), dir.path()).await;
    create_webhook(&client, &a.base, &rx.url("/hook")).await;
    // No warm-up on node B: NOTIFY carehook_webhooks tells it about the new
    // webhook; give that a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let total = 600;
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..total {
        let (c, base) = (
            client.clone(),
            if i % 2 == 0 {
                a.base.clone()
            } else {
                b.base.clone()
            },
        );
        sends.spawn(async move { push(&c, &base, i).await });
        if sends.len() >= 16 {
            sends.join_next().await.unwrap().unwrap().expect("accepted");
        }
    }
    while let Some(r) = sends.join_next().await {
        r.unwrap().expect("accepted");
    }
    rx.wait_for(total, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: Vec<String> = rx
        .received()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    let unique: HashSet<&String> = ids.iter().collect();
    a.terminate();
    b.terminate();
    db.cleanup().await;
    assert_eq!(unique.len(), total);
    assert_eq!(
        ids.len(),
        total,
        "{} deliveries were sent twice",
        ids.len() - unique.len()
    );
}
