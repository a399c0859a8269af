//! The signature-verification code in `docs/verify-signatures.md`, run as
//! written against a real carehook delivery: each language's block accepts
//! the request as received and refuses it with one byte of the body changed.
//! Python is required under `CAREHOOK_REQUIRE_VALIDATOR=1` (CI); Node and
//! PHP run where they are installed.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::common::{Backend, Receiver, TestServer, WAIT, hook};

/// The first fenced block of `lang` in the doc.
fn block(doc: &str, lang: &str) -> String {
    let start = doc
        .find(&format!("```{lang}\n"))
        .unwrap_or_else(|| panic!("no {lang} block in the doc"));
    let rest = &doc[start + lang.len() + 4..];
    rest[..rest.find("```").unwrap()].to_string()
}

fn present(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `program` with `input` on stdin; its stdout, trimmed.
fn run(tool: &str, args: &[&str], program: &str, input: &Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("verify");
    std::fs::write(&file, program).unwrap();
    let mut child = Command::new(tool)
        .args(args)
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn the_documented_verifiers_accept_a_real_delivery_and_refuse_a_changed_one() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/verify-signatures.md"),
    )
    .unwrap();
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let receiver = Receiver::start().await;
    let created = server.create_webhook(hook(&receiver.url("/verify"))).await;
    let secret = created["signing_secret"].as_str().unwrap().to_string();
    server
        .push(
            "kc_appointment_book",
            json!({"patient_name": "Zoë O'Brien"}),
        )
        .await;
    let got = receiver.wait_for(1, WAIT).await;
    let r = &got[0];
    let headers: serde_json::Map<String, Value> =
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .iter()
            .map(|h| (h.to_string(), Value::from(r.header(h).unwrap())))
            .collect();
    let body = String::from_utf8(r.body.to_vec()).unwrap();
    let mut tampered = body.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] ^= 1;
    let tampered = String::from_utf8(tampered).unwrap();

    let cases = [
        (
            json!({"secret": secret, "headers": headers, "body": body}),
            "true",
        ),
        (
            json!({"secret": secret, "headers": headers, "body": tampered}),
            "false",
        ),
    ];
    let mut ran = Vec::new();

    if present("python3") {
        let program = format!(
            "{}\nimport json, sys\nx = json.load(sys.stdin)\nprint(str(verify(x['secret'], x['headers'], x['body'].encode())).lower())\n",
            block(&doc, "python")
        );
        for (input, expected) in &cases {
            assert_eq!(run("python3", &[], &program, input), *expected, "python");
        }
        ran.push("python");
    } else if std::env::var("CAREHOOK_REQUIRE_VALIDATOR").as_deref() == Ok("1") {
        panic!("CAREHOOK_REQUIRE_VALIDATOR=1 but python3 is missing");
    }
    if present("node") {
        let program = format!(
            "{}\nconst x = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));\nconsole.log(String(verify(x.secret, x.headers, Buffer.from(x.body))));\n",
            block(&doc, "javascript")
        );
        for (input, expected) in &cases {
            assert_eq!(run("node", &[], &program, input), *expected, "node");
        }
        ran.push("node");
    }
    if present("php") {
        let program = format!(
            "{}\n$x = json_decode(file_get_contents('php://stdin'), true);\necho carehook_verify($x['secret'], $x['headers'], $x['body']) ? 'true' : 'false';\n",
            block(&doc, "php")
        );
        for (input, expected) in &cases {
            assert_eq!(run("php", &[], &program, input), *expected, "php");
        }
        ran.push("php");
    }
    println!("verified with: {}", ran.join(", "));
    server.stop().await;
}
