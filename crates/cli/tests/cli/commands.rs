//! The `carehook` binary against a live server: create, list, test, retry,
//! tokens, JSON output, exit codes, and an example in every command's help.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Answer, Backend, Receiver, TOKEN, TestServer};
use crate::{WAIT, hook};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

async fn carehook(server: &TestServer, args: &[&str]) -> Run {
    carehook_with(&server.base, Some(TOKEN), args).await
}

/// Runs the binary with `CAREHOOK_URL=url` and, if given, `CAREHOOK_TOKEN=token`.
pub async fn carehook_with(url: &str, token: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_carehook"));
    cmd.args(args)
        .env("CAREHOOK_URL", url)
        .env_remove("CAREHOOK_TOKEN")
        .env("NO_COLOR", "1");
    if let Some(t) = token {
        cmd.env("CAREHOOK_TOKEN", t);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the CLI finished")
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_drives_a_live_server() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    rx.answer(|r, _| {
        if r.json()["text"].as_str().unwrap_or("").starts_with("fail") {
            Answer::status(500)
        } else {
            Answer::ok().body("thanks")
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hook.json");
    let mut spec = hook(&rx.url("/cli"));
    spec["retry"] = json!({"schedule": [], "jitter": 0.0});
    std::fs::write(&file, spec.to_string()).unwrap();
    let file = file.to_str().unwrap();

    // create (table and JSON), list.
    let r = carehook(&server, &["webhooks", "create", "--file", file]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("whsec_"), "{}", r.stdout);
    let r = carehook(&server, &["webhooks", "create", "--file", file, "--json"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let created = r.json();
    let id = created["id"].as_str().unwrap().to_string();
    let r = carehook(&server, &["webhooks", "list"]).await;
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("ID "), "{}", r.stdout);
    assert!(r.stdout.contains(&id) && r.stdout.contains("Slack: new appointment"));
    let r = carehook(&server, &["webhooks", "list", "--json"]).await;
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 2);
    let r = carehook(&server, &["webhooks", "get", &id, "--json"]).await;
    assert_eq!(r.json()["id"], id.as_str());

    // test: sent now, the answer shown; a failing endpoint exits 1.
    let r = carehook(&server, &["webhooks", "test", &id]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("answer: HTTP 200") && r.stdout.contains("thanks"),
        "{}",
        r.stdout
    );
    assert_eq!(rx.count(), 1);
    let r = carehook(
        &server,
        &[
            "webhooks",
            "test",
            &id,
            "--data",
            "{\"patient_name\":\"fail\"}",
            "--json",
        ],
    )
    .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.json()["response"]["status"], 500);
    let r = carehook(
        &server,
        &[
            "webhooks",
            "preview",
            &id,
            "--data",
            "{\"patient_name\":\"Zoë\"}",
        ],
    )
    .await;
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Zoë with "), "{}", r.stdout);
    assert_eq!(rx.count(), 2);

    // events send; a failure; deliveries list, retry, retry-failed.
    let r = carehook(
        &server,
        &[
            "events",
            "send",
            "kc_appointment_book",
            "--data",
            "{\"patient_name\":\"fail-1\"}",
            "--json",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let deliveries: Vec<String> = r.json()["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    assert_eq!(deliveries.len(), 2);
    for d in &deliveries {
        server
            .wait_delivery(d, WAIT, |d| d["status"] == "failed")
            .await;
    }
    let r = carehook(
        &server,
        &[
            "deliveries",
            "list",
            "--status",
            "failed",
            "--webhook",
            &id,
            "--json",
        ],
    )
    .await;
    let failed = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(failed.len(), 2, "the failed test and the failed delivery");
    let r = carehook(&server, &["deliveries", "list"]).await;
    assert!(r.stdout.contains("failed (test)"), "{}", r.stdout);
    let mine = deliveries
        .iter()
        .find(|d| failed.iter().any(|f| f["id"] == d.as_str()))
        .unwrap();
    let r = carehook(&server, &["deliveries", "get", mine]).await;
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("attempt 1") && r.stdout.contains("HTTP 500"),
        "{}",
        r.stdout
    );
    let r = carehook(&server, &["deliveries", "retry", mine, "--json"]).await;
    assert_eq!((r.code, r.json()["status"].as_str()), (0, Some("pending")));
    server
        .wait_delivery(mine, WAIT, |d| d["status"] == "failed")
        .await;

    // The endpoint is fixed: bulk retry re-sends the failed ones and waits.
    rx.answer(|_, _| Answer::ok());
    let before = rx.count();
    let r = carehook(
        &server,
        &[
            "deliveries",
            "retry-failed",
            &id,
            "--since",
            "2000-01-01T00:00:00Z",
            "--json",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["count"], 2, "{v}");
    assert_eq!(v["succeeded"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(rx.count(), before + 2);

    // enable/disable, stats, rotate-secret.
    let r = carehook(&server, &["webhooks", "disable", &id, "--json"]).await;
    assert_eq!(r.json()["enabled"], false);
    let r = carehook(&server, &["webhooks", "enable", &id]).await;
    assert!(r.stdout.contains("enabled"), "{}", r.stdout);
    let r = carehook(&server, &["stats", &id, "--json"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["windows"][0]["deliveries"]["succeeded"], 1);
    let r = carehook(&server, &["stats", &id]).await;
    assert!(
        r.stdout.contains("WINDOW") && r.stdout.contains("24h"),
        "{}",
        r.stdout
    );
    let r = carehook(&server, &["webhooks", "rotate-secret", &id, "--json"]).await;
    assert!(
        r.json()["signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );

    // Tokens, online and offline (the database itself, no token needed).
    let r = carehook(&server, &["tokens", "create", "--name", "ci", "--json"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let token = r.json()["token"].as_str().unwrap().to_string();
    let r = carehook_with(&server.base, Some(&token), &["webhooks", "list", "--json"]).await;
    assert_eq!(r.code, 0, "a made token works: {}", r.stderr);
    let db = server.db.as_ref().unwrap().url().to_string();
    let r = carehook_with(
        "http://127.0.0.1:1",
        None,
        &[
            "tokens",
            "create",
            "--name",
            "offline",
            "--database-url",
            &db,
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let offline = r
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("chk_"))
        .map(|t| format!("chk_{t}"))
        .unwrap();
    let r = carehook_with(&server.base, Some(&offline), &["tokens", "list", "--json"]).await;
    assert_eq!(r.code, 0, "an offline-made token works: {}", r.stderr);
    let listed = r.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    let ci_id = listed["items"][0]["id"].as_str().unwrap().to_string();
    let r = carehook(&server, &["tokens", "revoke", &ci_id]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = carehook_with(&server.base, Some(&token), &["webhooks", "list"]).await;
    assert_eq!(r.code, 2, "a revoked token is refused: {}", r.stderr);

    // Exit codes: 2 for bad input, 1 for failures.
    let r = carehook(&server, &["webhooks", "get", "not-an-id"]).await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    let r = carehook(
        &server,
        &["webhooks", "get", &uuid::Uuid::now_v7().to_string()],
    )
    .await;
    assert_eq!(r.code, 2);
    let r = carehook(
        &server,
        &["webhooks", "create", "--file", "/nonexistent/hook.json"],
    )
    .await;
    assert_eq!(r.code, 2);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"name":"x","events":["kc_patient_add"],"url":"https://x.org","body":"{\"a\": \"{{patient_nam}}\"}"}"#).unwrap();
    let r = carehook(
        &server,
        &["webhooks", "create", "--file", bad.to_str().unwrap()],
    )
    .await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("line 1, column 8"), "{}", r.stderr);
    let r = carehook(
        &server,
        &["webhooks", "preview", "--file", bad.to_str().unwrap()],
    )
    .await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("patient_name"), "{}", r.stderr);
    let r = carehook(&server, &["webhooks", "test", &id, "--data", "not json"]).await;
    assert_eq!(r.code, 2);
    let r = carehook(&server, &["webhooks", "frobnicate"]).await;
    assert_eq!(r.code, 2);
    let r = carehook_with(&server.base, None, &["webhooks", "list"]).await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("CAREHOOK_TOKEN"), "{}", r.stderr);
    let r = carehook_with("http://127.0.0.1:1", Some(TOKEN), &["webhooks", "list"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("could not reach"), "{}", r.stderr);
    let r = carehook(&server, &["webhooks", "delete", &id]).await;
    assert_eq!(r.code, 0);
    server.stop().await;
}

#[tokio::test]
async fn every_command_has_an_example_in_its_help() {
    let commands: &[&[&str]] = &[
        &["webhooks", "list"],
        &["webhooks", "get"],
        &["webhooks", "create"],
        &["webhooks", "update"],
        &["webhooks", "delete"],
        &["webhooks", "test"],
        &["webhooks", "preview"],
        &["webhooks", "enable"],
        &["webhooks", "disable"],
        &["webhooks", "rotate-secret"],
        &["deliveries", "list"],
        &["deliveries", "get"],
        &["deliveries", "retry"],
        &["deliveries", "retry-failed"],
        &["events", "send"],
        &["events", "list"],
        &["tokens", "create"],
        &["tokens", "list"],
        &["tokens", "revoke"],
        &["stats"],
        &["webhooks"],
        &["deliveries"],
        &["tokens"],
        &["events"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let r = carehook_with("http://127.0.0.1:1", None, &args).await;
        assert_eq!(r.code, 0, "{c:?}: {}", r.stderr);
        assert!(
            r.stdout.contains("Example"),
            "{c:?} has no example:\n{}",
            r.stdout
        );
    }
    let r = carehook_with("http://127.0.0.1:1", None, &["--help"]).await;
    assert!(r.stdout.contains("Exit codes"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_created_from_a_preset_on_the_command_line() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    // What is missing is named, with exit code 2.
    let r = carehook(
        &server,
        &[
            "webhooks",
            "create",
            "--from-preset",
            "twilio_sms_confirmation",
        ],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--value from_number=") && r.stderr.contains("--auth-secret"),
        "{}",
        r.stderr
    );
    let url = rx.url("/2010-04-01/Accounts/AC9/Messages.json");
    let r = carehook(
        &server,
        &[
            "webhooks",
            "create",
            "--from-preset",
            "twilio_sms_confirmation",
            "--url",
            &url,
            "--value",
            "from_number=+15017122661",
            "--auth-username",
            "AC9",
            "--auth-secret",
            "tw",
            "--clinic",
            "2",
            "--clinic",
            "3",
            "--json",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let created = r.json();
    assert_eq!(created["auth"]["username"], "AC9", "{created}");
    assert_eq!(
        created["clinics"],
        serde_json::json!(["2", "3"]),
        "{created}"
    );
    assert_eq!(created["auth"]["password"], "********");
    let r = carehook(
        &server,
        &["webhooks", "test", created["id"].as_str().unwrap()],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("authorization"), Some("Basic QUM5OnR3"));
    assert_eq!(
        got[0].form()[1],
        ("From".to_string(), "+15017122661".to_string())
    );
    server.stop().await;
}
