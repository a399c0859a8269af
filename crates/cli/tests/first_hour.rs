//! A clinic admin's first hour with the `carehook` binary: what the first
//! start prints (and that the log has no colour codes when it is a file),
//! the clinic commands' tables, `presets show slack`, `events | head`, and
//! `backup` then `restore` onto a fresh directory whose server keeps the
//! webhooks, their secrets and the log, and delivers.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Receiver, WAIT};
use serde_json::{Value, json};

const TOKEN: &str = "first-hour-admin-token-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `carehook serve` on `dir/carehook.db`, its stdout and stderr in files.
struct Serve {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    async fn start(dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> Serve {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_carehook"));
        cmd.arg("serve")
            .args(args)
            .env("CAREHOOK_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "CAREHOOK_DATABASE_URL",
                format!("sqlite://{}", dir.join("carehook.db").display()),
            )
            .env("CAREHOOK_ALLOWED_DESTINATIONS", "127.0.0.1/32")
            .env_remove("CAREHOOK_ADMIN_TOKEN")
            .env_remove("CAREHOOK_MASTER_KEY")
            .env_remove("CAREHOOK_KEY_FILE")
            .stdout(std::fs::File::create(dir.join("stdout.txt")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr.txt")).unwrap());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let serve = Serve {
            child: cmd.spawn().unwrap(),
            url,
            dir: dir.to_path_buf(),
        };
        carehook::outbound::install_crypto_provider();
        let http = http();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{}/healthz", serve.url)).send().await
                && r.status().is_success()
            {
                return serve;
            }
            assert!(
                Instant::now() < deadline,
                "carehook serve did not come up: {}",
                serve.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.txt")).unwrap()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.txt")).unwrap()
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = http()
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.url),
            )
            .bearer_auth(TOKEN);
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
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn carehook(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_carehook"));
    cmd.args(args)
        .env_remove("CAREHOOK_MASTER_KEY")
        .env_remove("CAREHOOK_KEY_FILE")
        .env_remove("CAREHOOK_DATABASE_URL");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_says_where_the_ui_is_how_to_log_in_and_what_to_try() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(dir.path(), &[], &["--demo"]).await;
    let said = server.stdout();
    let token = said
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("chk_"))
        .unwrap_or_else(|| panic!("no token printed: {said}"))
        .to_string();
    assert!(
        said.contains(&format!("{}/ui", server.url)) && said.contains("paste the token above"),
        "{said}"
    );
    // The first start also makes the owner's account for the UI and says how to log in.
    assert!(
        said.contains("owner@localhost") && said.contains("password"),
        "{said}"
    );
    assert!(said.contains(&format!("{}/api/docs", server.url)), "{said}");
    assert!(said.contains("Try first"), "{said}");
    assert!(said.contains("slack") || said.contains("Slack"), "{said}");
    // The printed token logs in (the UI's login takes the same token).
    let resp = http()
        .get(format!("{}/api/v1/webhooks", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The log went to a file: plain text, no colour codes.
    let log = server.stderr();
    assert!(log.contains("carehook is running"), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI codes in a log file: {log:?}");
    // The token is shown once, not in the log.
    assert!(!log.contains(&token));
    drop(server);

    // A second start: no new token, still where to go.
    let again = Serve::start(dir.path(), &[], &[]).await;
    let said = again.stdout();
    assert!(!said.contains("chk_"), "{said}");
    assert!(said.contains(&format!("{}/ui", again.url)), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinic_commands_print_tables_and_the_cli_names_what_to_type() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(dir.path(), &[("CAREHOOK_ADMIN_TOKEN", TOKEN)], &["--demo"]).await;
    let env = [
        ("CAREHOOK_URL", server.url.as_str()),
        ("CAREHOOK_TOKEN", TOKEN),
    ];
    let out = carehook(&["clinic", "list", "patients"], &env);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let header = stdout.lines().next().unwrap();
    assert!(
        header.starts_with("id") && header.contains("first_name") && header.contains("last_name"),
        "{stdout}"
    );
    assert!(stdout.contains("O'Brien"), "{stdout}");
    assert!(!stdout.contains('{'), "a table, not JSON: {stdout}");

    let out = carehook(
        &[
            "clinic",
            "book",
            "--clinic",
            "1",
            "--doctor",
            "1",
            "--patient",
            "1",
            "--date",
            "2031-01-02",
            "--start",
            "10:00",
        ],
        &env,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("field"), "{stdout}");
    assert!(stdout.contains("2031-01-02"), "{stdout}");
    assert!(stdout.contains("fired kc_appointment_book"), "{stdout}");

    // `presets show slack` names the Slack preset.
    let out = carehook(&["presets", "show", "slack"], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("slack_new_appointment"), "{stderr}");

    // `carehook events | head -1`: no "Broken pipe", a clean exit.
    let mut child = Command::new(env!("CARGO_BIN_EXE_carehook"))
        .arg("events")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead as _;
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        // The reader closes here, as `head` does.
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{:?} {stderr}", out.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restored_on_a_fresh_directory_keeps_everything_and_delivers() {
    let receiver = Receiver::start().await;
    let old = tempfile::tempdir().unwrap();
    let server = Serve::start(old.path(), &[("CAREHOOK_ADMIN_TOKEN", TOKEN)], &[]).await;
    assert!(
        old.path().join("carehook.key").exists(),
        "a key file beside the database"
    );
    let (status, hook) = server
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({
                "name": "Lab system",
                "events": ["kc_appointment_book"],
                "url": receiver.url("/lab"),
                "auth": {"type": "basic", "username": "clinic", "password": "s3cret-pass"},
                "body": "{\"patient\": \"{{patient_name}}\"}"
            })),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let (status, pushed) = server
        .call(
            "POST",
            "/api/v1/events",
            Some(json!({"event": "kc_appointment_book", "data": {"patient_name": "Ada Lovelace"}})),
        )
        .await;
    assert_eq!(status, 202, "{pushed}");
    receiver.wait_for(1, WAIT).await;
    let first_delivery = pushed["deliveries"][0].as_str().unwrap().to_string();
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, d) = server
            .call("GET", &format!("/api/v1/deliveries/{first_delivery}"), None)
            .await;
        if d["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Backed up while the server runs.
    let backups = tempfile::tempdir().unwrap();
    let to = backups.path().join("carehook-backup");
    let db_url = format!("sqlite://{}", old.path().join("carehook.db").display());
    let out = carehook(
        &[
            "backup",
            "--to",
            to.to_str().unwrap(),
            "--database-url",
            &db_url,
        ],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(to.join("carehook.db").exists() && to.join("carehook.key").exists());
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(to.join("backup.json")).unwrap()).unwrap();
    assert_eq!(manifest["master_key"], "carehook.key");
    // A backup into a directory that has one already is refused.
    let again = carehook(
        &[
            "backup",
            "--to",
            to.to_str().unwrap(),
            "--database-url",
            &db_url,
        ],
        &[],
    );
    assert_eq!(again.status.code(), Some(2));
    drop(server);

    // Restored onto a fresh directory, as on a new machine.
    let fresh = tempfile::tempdir().unwrap();
    let new_url = format!("sqlite://{}", fresh.path().join("carehook.db").display());
    let out = carehook(
        &["restore", to.to_str().unwrap(), "--database-url", &new_url],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("restored 1 webhook"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(fresh.path().join("carehook.key")).unwrap(),
        std::fs::read_to_string(old.path().join("carehook.key")).unwrap()
    );
    // Restoring over it again is refused: nothing is overwritten.
    let twice = carehook(
        &["restore", to.to_str().unwrap(), "--database-url", &new_url],
        &[],
    );
    assert_eq!(twice.status.code(), Some(2));

    let restored = Serve::start(fresh.path(), &[("CAREHOOK_ADMIN_TOKEN", TOKEN)], &[]).await;
    let (status, webhook) = restored
        .call("GET", &format!("/api/v1/webhooks/{hook_id}"), None)
        .await;
    assert_eq!(status, 200, "{webhook}");
    assert_eq!(webhook["name"], "Lab system");
    assert_ne!(webhook["state"], "broken", "{webhook}");
    let (_, log) = restored
        .call("GET", &format!("/api/v1/deliveries/{first_delivery}"), None)
        .await;
    assert_eq!(log["status"], "succeeded", "the log came along: {log}");

    let (status, pushed) = restored
        .call(
            "POST",
            "/api/v1/events",
            Some(json!({"event": "kc_appointment_book", "data": {"patient_name": "Grace Hopper"}})),
        )
        .await;
    assert_eq!(status, 202, "{pushed}");
    let got = receiver.wait_for(2, WAIT).await;
    let second = &got[1];
    assert_eq!(second.json(), json!({"patient": "Grace Hopper"}));
    // The basic-auth password came back out of the restored vault.
    // base64("clinic:s3cret-pass")
    assert_eq!(
        second.header("authorization"),
        Some("Basic Y2xpbmljOnMzY3JldC1wYXNz")
    );
    assert!(second.header("webhook-signature").is_some());
}
