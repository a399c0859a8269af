//! carehook as separate processes: killed with SIGKILL under load, and two
//! nodes sharing one PostgreSQL. These run the real binary, with the default
//! lease (150 s): work a killed process held must move on through the nodes'
//! heartbeats (issue #10, bug 2), within 20 s, never by waiting out a lease.

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

/// How long after a restart (or the kill of one of two nodes) every accepted
/// event must have arrived.
const RECOVERY: Duration = Duration::from_secs(20);

impl Node {
    async fn start(database_url: &str, port: u16, dir: &std::path::Path) -> Node {
        Node::start_as(database_url, port, dir, None).await
    }

    async fn start_as(
        database_url: &str,
        port: u16,
        dir: &std::path::Path,
        node_id: Option<&str>,
    ) -> Node {
        let mut command = Command::new(env!("CARGO_BIN_EXE_carehook"));
        if let Some(id) = node_id {
            command.env("CAREHOOK_NODE_ID", id);
        }
        let child = command
            .arg("serve")
            .env("CAREHOOK_LISTEN", format!("127.0.0.1:{port}"))
            .env("CAREHOOK_DATABASE_URL", database_url)
            .env("CAREHOOK_ADMIN_TOKEN", TOKEN)
            .env("CAREHOOK_ALLOWED_DESTINATIONS", "127.0.0.1/32")
            .env(
                "CAREHOOK_MASTER_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            )
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

    /// Keeps `self` for a later `kill`; for a node whose process the test must
    /// stop while it holds the other by reference.
    fn kill_now(&mut self) {
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

/// A test that fails half way must not leave carehook processes behind.
impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
        // Room to drain the backlog fast: what is measured is how soon leases are freed.
        "max_in_flight": 64,
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

/// The accepted deliveries the receiver has not seen by `deadline` (or
/// none, as soon as it has seen them all).
async fn missing_after(
    rx: &Receiver,
    accepted: &HashSet<String>,
    deadline: Instant,
) -> Vec<String> {
    loop {
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
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls a live node's delivery log until no delivery is left unfinished (pending or failed),
/// or `deadline` passes; how many were left. Arrived is not finished: a request sent just before
/// a kill may have arrived unrecorded, its lease left to the dead process.
async fn unfinished_until(client: &reqwest::Client, base: &str, deadline: Instant) -> usize {
    loop {
        let mut left = 0;
        for status in ["pending", "failed"] {
            let r = client
                .get(format!(
                    "{base}/api/v1/deliveries?status={status}&limit=1000"
                ))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let page: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            // A full page means at least that many.
            left += page["items"].as_array().unwrap().len();
        }
        if left == 0 || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
    let mut restarted = Instant::now();
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
                restarted = Instant::now();
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

    // Every accepted event arrives within RECOVERY of the last restart, though
    // the killed processes' leases had minutes to run: the restart freed them.
    let missing = missing_after(&rx, &accepted, restarted + RECOVERY).await;
    let unfinished = unfinished_until(&client, &node.base, restarted + RECOVERY).await;
    let recovered_in = restarted.elapsed();
    node.terminate();
    assert!(
        missing.is_empty(),
        "{} of {} accepted events had not arrived {RECOVERY:?} after the restart",
        missing.len(),
        accepted.len()
    );
    assert_eq!(
        unfinished, 0,
        "{unfinished} deliveries were not recorded as succeeded {RECOVERY:?} after the restart"
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
        "crash test: {} accepted, {} requests received, {} repeats; all recorded succeeded {:.1} s after the restart",
        accepted.len(),
        rx.count(),
        rx.count() - bodies.len(),
        recovered_in.as_secs_f64()
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
    // No warm-up on node B: NOTIFY carehook_webhooks tells it about the new webhook. Until it
    // has, an event B accepts matches nothing (no delivery); wait for the first that matches.
    let mut accepted: HashSet<String> = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(d) = push(&client, &b.base, 0).await {
            accepted.insert(d);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node B never learnt of the webhook"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let total = 600;
    let mut sends = tokio::task::JoinSet::new();
    for i in 1..=total {
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
            accepted.insert(sends.join_next().await.unwrap().unwrap().expect("accepted"));
        }
    }
    while let Some(r) = sends.join_next().await {
        accepted.insert(r.unwrap().expect("accepted"));
    }
    assert_eq!(accepted.len(), total + 1);
    rx.wait_for(accepted.len(), Duration::from_secs(60)).await;
    // Settled: the store records every delivery succeeded, so nothing more will be sent.
    let left = unfinished_until(&client, &b.base, Instant::now() + Duration::from_secs(30)).await;
    assert_eq!(left, 0, "{left} deliveries never settled");
    let ids: Vec<String> = rx
        .received()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    let unique: HashSet<String> = ids.iter().cloned().collect();
    a.terminate();
    b.terminate();
    db.cleanup().await;
    assert_eq!(
        unique, accepted,
        "every accepted delivery arrived, and nothing else"
    );
    assert_eq!(
        ids.len(),
        unique.len(),
        "{} deliveries were sent twice",
        ids.len() - unique.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_one_of_two_postgres_nodes_dies_the_other_finishes_its_work() {
    let Some(db) = TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    db.connect().await;
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    // A slow receiver keeps each node holding claimed work when the kill lands.
    rx.answer(|_, _| common::Answer::ok().delay(Duration::from_millis(20)));
    let client = client();
    let mut a = Node::start_as(db.url(), free_port(), dir.path(), Some("node-a")).await;
    let b = Node::start_as(db.url(), free_port(), dir.path(), Some("node-b")).await;
    create_webhook(&client, &a.base, &rx.url("/hook")).await;

    // Load on both nodes, then SIGKILL node A while requests are on the wire;
    // node B keeps taking events. (An event B accepted before it loaded the new
    // webhook has no delivery and is not counted.)
    let mut accepted: HashSet<String> = HashSet::new();
    let started = Instant::now();
    let mut killed_at = None;
    let mut n = 0;
    // Kill A half way (by time or by count), then go on a while; bounded.
    let done = |killed: bool, accepted: usize| {
        killed && (started.elapsed() > Duration::from_secs(3) || accepted >= 800)
    };
    while !done(killed_at.is_some(), accepted.len()) && started.elapsed() < Duration::from_secs(10)
    {
        let mut batch = tokio::task::JoinSet::new();
        for i in 0..8 {
            n += 1;
            let base = if i % 2 == 0 && killed_at.is_none() {
                a.base.clone()
            } else {
                b.base.clone()
            };
            let c = client.clone();
            batch.spawn(async move { push(&c, &base, n).await });
        }
        if killed_at.is_none()
            && (started.elapsed() > Duration::from_millis(1500) || accepted.len() >= 400)
        {
            a.kill_now();
            killed_at = Some(Instant::now());
        }
        while let Some(r) = batch.join_next().await {
            accepted.extend(r.unwrap());
        }
    }
    let killed_at = killed_at.expect("node A was killed");

    // The test means something only if A died holding work: leases it owned.
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    let (held_by_a,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM deliveries WHERE lease_owner = 'node-a' AND lease_until IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert!(
        accepted.len() > 50,
        "only {} events were accepted",
        accepted.len()
    );

    let missing = missing_after(&rx, &accepted, killed_at + RECOVERY).await;
    // Finished only when the store says so: nothing left pending, none leased to A.
    let unfinished = unfinished_until(&client, &b.base, killed_at + RECOVERY).await;
    let recovered_in = killed_at.elapsed();
    b.terminate();
    drop(a);
    db.cleanup().await;
    assert!(
        held_by_a > 0,
        "node A held nothing when killed, so this run tests nothing"
    );
    assert!(
        missing.is_empty(),
        "{} of {} accepted events had not arrived {RECOVERY:?} after node A was killed \
         (it held {held_by_a} leases)",
        missing.len(),
        accepted.len()
    );
    assert_eq!(
        unfinished, 0,
        "{unfinished} deliveries were not recorded as succeeded {RECOVERY:?} after node A was killed"
    );
    eprintln!(
        "two-node crash test: {} accepted, node A held {held_by_a} leases when killed; \
         all recorded succeeded {:.1} s after the kill",
        accepted.len(),
        recovered_in.as_secs_f64()
    );
}
