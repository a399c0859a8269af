//! Issue 10, bug 6: `carehook webhooks create --from-preset … --url http://receiver/…`
//! posted the admin token to the receiver, printed `created webhook -` and exited 0.
//! Now `--url` is the webhook's destination, carehook's own address is `--server`
//! (`CAREHOOK_URL`), and an address that does not answer as carehook gets no token and
//! fails the command with what answered.

use crate::commands::carehook_with;
use crate::common::{Answer, Backend, Receiver, TOKEN, TestServer};

/// A token that must never leave for anything but carehook.
const SECRET: &str = "chk_never-send-me-anywhere-else-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_in_webhooks_create_is_the_webhooks_destination_not_carehooks_address() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    for (flag, path) in [
        ("--url", "/services/T/B/url"),
        ("--endpoint", "/services/T/B/e"),
    ] {
        let destination = rx.url(path);
        let r = carehook_with(
            &server.base,
            Some(TOKEN),
            &[
                "webhooks",
                "create",
                "--from-preset",
                "slack_new_appointment",
                flag,
                &destination,
                "--value",
                "site_url=https://clinic.example.com",
                "--json",
            ],
        )
        .await;
        assert_eq!(r.code, 0, "{flag}: {}", r.stderr);
        let id = r.json()["id"].as_str().unwrap().to_string();
        // Stored on carehook, sending to the receiver.
        let (status, stored) = server.get(&format!("/api/v1/webhooks/{id}")).await;
        assert_eq!(status, 200, "{stored}");
        assert_eq!(stored["url"], destination.as_str(), "{flag}");
    }
    // The CLI has exited, so whatever it sent has arrived: it sent the receiver nothing.
    assert_eq!(
        rx.received()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>(),
        Vec::<String>::new()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_at_carehooks_address_gets_no_token_and_the_command_fails_naming_it() {
    let strangers = [
        (
            "an HTML page",
            Answer::ok()
                .header("content-type", "text/html; charset=utf-8")
                .body("<html><body>Hello from the receiver</body></html>"),
            "HTTP 200 (text/html; charset=utf-8) \"<html><body>Hello from the receiver",
        ),
        (
            "JSON of another shape",
            Answer::ok()
                .header("content-type", "application/json")
                .body(r#"{"ok": true}"#),
            "HTTP 200 (application/json) \"{\\\"ok\\\": true}\"",
        ),
        (
            "a 404 from a random server",
            Answer::status(404).body("Not Found"),
            "HTTP 404",
        ),
        (
            "a redirect",
            Answer::status(302).header("location", "http://127.0.0.1:1/login"),
            "HTTP 302",
        ),
    ];
    for (what, answer, expected) in strangers {
        let rx = Receiver::start().await;
        rx.answer(move |_, _| answer.clone());
        let address = rx.url("");
        let commands: &[&[&str]] = &[
            &[
                "webhooks",
                "create",
                "--from-preset",
                "slack_new_appointment",
                "--url",
                "https://hooks.slack.com/services/T/B/X",
            ],
            &["webhooks", "list"],
            &["events", "send", "kc_appointment_book"],
            &["tokens", "create", "--name", "x"],
            &["deliveries", "list"],
            &["clinic", "list", "clinics"],
            &["demo"],
        ];
        for args in commands {
            let r = carehook_with(&address, Some(SECRET), args).await;
            assert_eq!(r.code, 1, "{what}, {args:?}: {}\n{}", r.stdout, r.stderr);
            assert!(
                r.stderr.contains(&format!("{address} is not carehook"))
                    && r.stderr.contains(expected)
                    && r.stderr.contains("CAREHOOK_URL"),
                "{what}, {args:?}: {}",
                r.stderr
            );
            assert!(!r.stdout.contains("created"), "{what}: {}", r.stdout);
            assert!(
                !r.stderr.contains(SECRET) && !r.stdout.contains(SECRET),
                "{what}: the token is printed"
            );
        }
        // --server, the flag, is checked the same way as CAREHOOK_URL.
        let r = carehook_with(
            "http://127.0.0.1:1",
            Some(SECRET),
            &["webhooks", "list", "--server", &address],
        )
        .await;
        assert_eq!(r.code, 1, "{what}: {}", r.stderr);
        assert!(r.stderr.contains("is not carehook"), "{}", r.stderr);

        // What reached the stranger: one token-free health probe per command.
        let got = rx.received();
        assert_eq!(got.len(), commands.len() + 1, "{what}");
        for req in got {
            assert_eq!(
                (req.method.as_str(), req.path.as_str()),
                ("GET", "/healthz")
            );
            assert_eq!(req.header("authorization"), None, "{what}");
            let everything = format!("{:?} {:?}", req.headers, req.body);
            assert!(!everything.contains(SECRET), "{what}: {everything}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_the_fields_a_command_reads_is_an_error_not_dashes() {
    // Something that says it is carehook (a proxy passing the header on, an old or
    // broken server) but answers the wrong shape, or not JSON.
    for (body, content_type, expected) in [
        (
            r#"{"ok": true}"#,
            "application/json",
            "lacks id, signing_secret",
        ),
        ("<html>created</html>", "text/html", "not JSON"),
    ] {
        let rx = Receiver::start().await;
        rx.answer(move |_, _| {
            Answer::ok()
                .header("carehook-version", "0.0.0")
                .header("content-type", content_type)
                .body(body)
        });
        let r = carehook_with(
            &rx.url(""),
            Some(SECRET),
            &[
                "webhooks",
                "create",
                "--from-preset",
                "slack_new_appointment",
                "--url",
                "https://hooks.slack.com/services/T/B/X",
            ],
        )
        .await;
        assert_eq!(r.code, 1, "{body}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(expected), "{body}: {}", r.stderr);
        assert!(!r.stdout.contains("created webhook"), "{}", r.stdout);
        assert!(!r.stderr.contains(SECRET));
    }
}

#[tokio::test]
async fn url_where_it_means_nothing_fails_with_a_hint_and_the_help_says_which_is_which() {
    for args in [
        &["webhooks", "list", "--url", "http://127.0.0.1:8080"][..],
        &["demo", "--url=http://127.0.0.1:8080"][..],
        &[
            "webhooks",
            "create",
            "--file",
            "hook.json",
            "--url",
            "https://x.org",
        ][..],
    ] {
        let r = carehook_with("http://127.0.0.1:1", Some(SECRET), args).await;
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr
                .contains("hint: carehook's own address is --server (or CAREHOOK_URL)"),
            "{args:?}: {}",
            r.stderr
        );
    }
    let r = carehook_with(
        "http://127.0.0.1:1",
        None,
        &["webhooks", "create", "--help"],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    for text in [
        "--url <URL>",
        "where the webhook sends its requests",
        "--server <URL>",
        "carehook's own address",
    ] {
        assert!(r.stdout.contains(text), "{text} missing:\n{}", r.stdout);
    }
}
