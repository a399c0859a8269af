//! The `carehook` binary itself: `serve --demo` starts with the demo clinic, `carehook demo`
//! and `carehook clinic …` act on a running server over HTTP.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const TOKEN: &str = "demo-test-admin-token-0123456789";

struct Running {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn serve(extra: &[&str]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_carehook"))
        .arg("serve")
        .args(extra)
        .env("CAREHOOK_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "CAREHOOK_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("c.db").display()),
        )
        .env("CAREHOOK_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running {
        child,
        url,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    carehook::outbound::install_crypto_provider();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    loop {
        if let Ok(r) = http.get(format!("{}/healthz", running.url)).send().await
            && r.status().is_success()
        {
            return running;
        }
        assert!(Instant::now() < deadline, "carehook serve did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get(url: &str, path: &str) -> Value {
    carehook::outbound::install_crypto_provider();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let text = http
        .get(format!("{url}/api/v1{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Runs the binary; `clinic` commands with `--json`, to read their answers.
fn carehook(url: &str, args: &[&str]) -> Output {
    let json: &[&str] = if args.first() == Some(&"clinic") {
        &["--json"]
    } else {
        &[]
    };
    Command::new(env!("CARGO_BIN_EXE_carehook"))
        .args(args)
        .args(json)
        .env("CAREHOOK_URL", url)
        .env("CAREHOOK_TOKEN", TOKEN)
        .output()
        .unwrap()
}

fn answer(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn events(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["first_name"].as_str().unwrap(),
                p["last_name"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_starts_with_the_demo_clinic() {
    let server = serve(&["--demo"]).await;
    let clinics = get(&server.url, "/clinics").await;
    assert_eq!(clinics["items"][0]["name"], "Riverside Family Clinic");
    let patients = names(&get(&server.url, "/patients").await);
    assert!(
        patients.contains(&"Maria O'Brien".to_string()),
        "{patients:?}"
    );
    assert!(
        patients.contains(&"José Álvarez Núñez".to_string()),
        "{patients:?}"
    );
    let appointments = get(&server.url, "/appointments").await;
    let mut statuses: Vec<&str> = appointments["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    statuses.sort();
    statuses.dedup();
    assert_eq!(
        statuses,
        ["booked", "cancelled", "check_in", "check_out", "pending"]
    );
    for path in ["/medical-records", "/prescriptions", "/payments"] {
        assert_eq!(
            get(&server.url, path).await["items"]
                .as_array()
                .unwrap()
                .len(),
            1,
            "{path}"
        );
    }
    assert_eq!(
        get(&server.url, "/bills").await["items"][0]["status"],
        "paid"
    );
    // Each record fired its event, the payment the appointment's too.
    let log = get(&server.url, "/events?limit=1000").await;
    let fired: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for e in [
        "kc_clinic_add",
        "kc_appointment_status_change",
        "kc_appointment_payment_complete",
    ] {
        assert!(fired.contains(&e), "{e} missing from {fired:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clinic_commands_fire_their_events_over_http() {
    let server = serve(&[]).await;
    let url = server.url.clone();
    assert!(
        get(&url, "/clinics").await["items"]
            .as_array()
            .unwrap()
            .is_empty(),
        "no demo without --demo"
    );
    let out = carehook(&url, &["demo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clinic = get(&url, "/clinics").await["items"][0]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let doctor = get(&url, "/doctors").await["items"][0]["id"]
        .as_i64()
        .unwrap()
        .to_string();

    let patient = answer(&carehook(
        &url,
        &[
            "clinic",
            "add-patient",
            "--clinic",
            &clinic,
            "--first-name",
            "Chloé",
            "--last-name",
            "D'Arcy",
            "--email",
            "chloe@example.com",
        ],
    ));
    assert_eq!(events(&patient), ["kc_patient_add"]);
    let patient_id = patient["id"].as_i64().unwrap().to_string();
    let booked = answer(&carehook(
        &url,
        &[
            "clinic",
            "book",
            "--clinic",
            &clinic,
            "--doctor",
            &doctor,
            "--patient",
            &patient_id,
            "--date",
            "2026-12-01",
            "--start",
            "09:30",
            "--service",
            "General Consultation",
            "--service",
            "Throat Swab",
        ],
    ));
    assert_eq!(events(&booked), ["kc_appointment_book"]);
    let appointment = booked["id"].as_i64().unwrap().to_string();
    let changed = answer(&carehook(
        &url,
        &["clinic", "status", &appointment, "check_in"],
    ));
    assert_eq!(events(&changed), ["kc_appointment_status_change"]);

    let bill = get(&url, "/bills").await["items"][0]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let paid = answer(&carehook(
        &url,
        &["clinic", "pay", "--bill", &bill, "--amount", "0.01"],
    ));
    assert_eq!(events(&paid), ["kc_payment_add"]);
    assert_eq!(paid["amount"], "0.01");

    let listed = answer(&carehook(
        &url,
        &["clinic", "list", "appointments", "--patient", &patient_id],
    ));
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    // A bad value is the user's to fix: exit code 2 and the field named.
    let bad = carehook(&url, &["clinic", "status", &appointment, "done"]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("422 invalid (status)"), "{stderr}");
}
