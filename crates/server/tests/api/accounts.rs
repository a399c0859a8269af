//! People in the admin UI: logging in with an e-mail address and password (and a TOTP code
//! when the account has one), failed logins locking the account and the address until the
//! cool-down, and sessions kept in the database: a restart keeps them.

use std::time::{Duration, Instant};

use carehook::service::access::Role;
use carehook::service::users::{self, LoginLimits, NewUser};
use carehook_store::Store;

use crate::common::{Backend, TestDatabase, TestServer, test_settings};

const PASSWORD: &str = "correct horse battery staple";

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

async fn add_user(store: &dyn Store, email: &str, role: Role, clinics: Option<Vec<String>>) {
    users::add(
        store,
        NewUser {
            email: email.into(),
            display_name: "Ada Lovelace".into(),
            password: PASSWORD.into(),
            role,
            clinics,
            bodies: None,
        },
    )
    .await
    .unwrap();
}

/// Posts the login form (with its double-submit cookie); the status and the session cookie.
async fn log_in(base: &str, email: &str, password: &str, code: &str) -> (u16, Option<String>) {
    let http = no_redirects();
    let page = http.get(format!("{base}/ui/login")).send().await.unwrap();
    let set = page.headers()["set-cookie"].to_str().unwrap().to_string();
    let csrf = set
        .strip_prefix("carehook_login=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let resp = http
        .post(format!("{base}/ui/login"))
        .header("cookie", format!("carehook_login={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("csrf", csrf.as_str()),
                    ("email", email),
                    ("password", password),
                    ("code", code),
                    ("next", "/ui/webhooks"),
                ])
                .finish(),
        )
        .send()
        .await
        .unwrap();
    let session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("carehook_session="))
        .map(|c| c.split(';').next().unwrap().to_string())
        .filter(|c| !c.is_empty());
    (resp.status().as_u16(), session)
}

/// The page at `path` with the session `cookie`: its status.
async fn page(base: &str, cookie: &str, path: &str) -> u16 {
    no_redirects()
        .get(format!("{base}{path}"))
        .header("cookie", format!("carehook_session={cookie}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn twenty_wrong_passwords_lock_until_the_cool_down(backend: Backend) {
    let cooldown = Duration::from_secs(2);
    let Some(server) = TestServer::start_with(backend, |s| {
        s.login_limits = LoginLimits {
            lock_after: 5,
            cooldown,
        }
    })
    .await
    else {
        return;
    };
    add_user(&*server.store, "ada@clinic.example", Role::Editor, None).await;
    let mut statuses = Vec::new();
    for i in 0..20 {
        let (status, session) = log_in(
            &server.base,
            "ada@clinic.example",
            &format!("guess {i:02} wrong"),
            "",
        )
        .await;
        assert!(session.is_none());
        statuses.push(status);
    }
    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // The lock is stored (every node sees it), for the account and the address.
    let locked = server
        .store
        .login_failures("account:ada@clinic.example")
        .await
        .unwrap()
        .unwrap();
    assert!(
        locked.locked_until.is_some() && locked.failures >= 5,
        "{locked:?}"
    );
    assert!(
        server
            .store
            .login_failures("addr:127.0.0.1")
            .await
            .unwrap()
            .unwrap()
            .locked_until
            .is_some()
    );
    // Locked: even the right password is refused, and another account from this address too.
    let started = Instant::now();
    assert_eq!(
        log_in(&server.base, "ada@clinic.example", PASSWORD, "")
            .await
            .0,
        429
    );
    // After the cool-down the right password works (polled, bounded).
    let session = loop {
        let (status, session) = log_in(&server.base, "ada@clinic.example", PASSWORD, "").await;
        if status == 303 {
            break session.expect("a session cookie");
        }
        assert_eq!(status, 429);
        assert!(
            started.elapsed() < cooldown * 5,
            "still locked long after the cool-down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(page(&server.base, &session, "/ui/webhooks").await, 200);
    // A success clears the streak.
    assert_eq!(
        server
            .store
            .login_failures("account:ada@clinic.example")
            .await
            .unwrap(),
        None
    );
    server.stop().await;
}

crate::on_both!(twenty_wrong_passwords_lock_until_the_cool_down);

async fn a_session_survives_a_restart(backend: Backend) {
    let Some(db) = TestDatabase::new(backend).await else {
        return;
    };
    let server = TestServer::start_on(db.connect().await, None, test_settings()).await;
    add_user(&*server.store, "ada@clinic.example", Role::Viewer, None).await;
    let (status, session) = log_in(&server.base, "ada@clinic.example", PASSWORD, "").await;
    assert_eq!(status, 303);
    let session = session.unwrap();
    assert_eq!(page(&server.base, &session, "/ui/webhooks").await, 200);
    server.stop().await;

    // Another process on the same database (another node, or the same after a restart).
    let server = TestServer::start_on(db.connect().await, Some(db), test_settings()).await;
    assert_eq!(page(&server.base, &session, "/ui/webhooks").await, 200);
    // Disabling the account ends its session at once.
    users::set_disabled(&*server.store, "ada@clinic.example", true)
        .await
        .unwrap();
    assert_eq!(page(&server.base, &session, "/ui/webhooks").await, 303);
    server.stop().await;
}

crate::on_both!(a_session_survives_a_restart);

/// An account with a second factor needs the current code after its password.
#[tokio::test]
async fn a_second_factor_asks_for_the_current_code() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    add_user(&*server.store, "grace@clinic.example", Role::Admin, None).await;
    let key: Vec<u8> = (1..=20).collect();
    let vault = test_settings().vault;
    let u = server
        .store
        .user_by_email("grace@clinic.example")
        .await
        .unwrap()
        .unwrap();
    server
        .store
        .set_user_totp(
            &u.id,
            Some(&vault.seal(&carehook_core::totp::base32(&key))),
            0,
        )
        .await
        .unwrap();
    let (status, session) = log_in(&server.base, "grace@clinic.example", PASSWORD, "").await;
    assert_eq!(
        (status, session.is_none()),
        (401, true),
        "the code is asked for"
    );
    let (status, _) = log_in(&server.base, "grace@clinic.example", PASSWORD, "000000").await;
    assert_eq!(status, 401, "a wrong code");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = carehook_core::totp::code_at(carehook_core::totp::Algorithm::Sha1, &key, now, 6);
    let (status, session) = log_in(&server.base, "grace@clinic.example", PASSWORD, &code).await;
    assert_eq!(status, 303);
    assert!(session.is_some());
    // The same code again (still within its window): refused, and counted as a failure.
    let (status, again) = log_in(&server.base, "grace@clinic.example", PASSWORD, &code).await;
    assert_eq!((status, again), (401, None), "a code is taken once");
    let step = server
        .store
        .accept_totp_step(&u.id, (now / 30) as i64 - 5)
        .await
        .unwrap();
    assert!(!step, "an older step is refused by the store too");
    server.stop().await;
}

/// A page's `value` of the input named `name` (the first), or the text of the element with
/// this `id`.
fn input_value(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no input {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn element_text(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[at..];
    let rest = &rest[rest.find('>').unwrap() + 1..];
    rest[..rest.find('<').unwrap()].to_string()
}

/// GETs a page with a session: its status and text.
async fn get_page(base: &str, cookie: &str, path: &str) -> (u16, String) {
    let resp = no_redirects()
        .get(format!("{base}{path}"))
        .header("cookie", format!("carehook_session={cookie}"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Posts a form of a page with a session (the CSRF token read from `/ui/account`).
async fn post_form(base: &str, cookie: &str, path: &str, pairs: &[(&str, &str)]) -> (u16, String) {
    let (_, account) = get_page(base, cookie, "/ui/account").await;
    let csrf = input_value(&account, "csrf");
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &csrf)
        .extend_pairs(pairs)
        .finish();
    let resp = no_redirects()
        .post(format!("{base}{path}"))
        .header("cookie", format!("carehook_session={cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code an authenticator app would show now for a base32 secret.
fn code_of(secret: &str, at: u64) -> String {
    let key = carehook_core::totp::from_base32(secret).unwrap();
    carehook_core::totp::code_at(carehook_core::totp::Algorithm::Sha1, &key, at, 6)
}

/// A code that is not the current one (nor the step before or after).
fn wrong_code(secret: &str) -> String {
    let now = now_secs();
    let near: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| code_of(secret, *t))
        .collect();
    (0..)
        .map(|i| format!("{:06}", (123_456 + i * 7_919) % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// Setting up a second factor on "Your account": the page shows the secret and the
/// `otpauth://` URI; a wrong code leaves it off; the current code (computed from the shown
/// secret) turns it on and ends the account's other sessions; from then on login asks for
/// the code, refuses a wrong one and takes the right one; turning it off needs the password
/// and a code.
#[tokio::test]
async fn a_second_factor_is_set_up_from_the_shown_secret_and_then_asked_for() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    add_user(&*server.store, "lin@clinic.example", Role::Viewer, None).await;
    let (status, session) = log_in(&server.base, "lin@clinic.example", PASSWORD, "").await;
    assert_eq!(status, 303);
    let session = session.unwrap();
    let (_, other) = log_in(&server.base, "lin@clinic.example", PASSWORD, "").await;
    let other = other.unwrap();

    let (status, html) = get_page(&server.base, &session, "/ui/account").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"start-2fa-button\""), "{html}");
    let (status, html) = post_form(&server.base, &session, "/ui/account/2fa", &[]).await;
    assert_eq!(status, 200, "{html}");
    // Shown in groups of four, for typing; an app ignores the spaces.
    let secret = element_text(&html, "totp-secret").replace(' ', "");
    let uri = element_text(&html, "totp-uri").replace("&amp;", "&");
    assert!(
        uri.starts_with("otpauth://totp/carehook:lin%40clinic%2Eexample?secret=")
            && uri.contains(&format!("secret={secret}&")),
        "{uri}"
    );
    let pending = input_value(&html, "pending");
    assert!(
        !pending.contains(&secret),
        "the form carries the secret sealed"
    );

    // A wrong code: refused, still off.
    let (status, html) = post_form(
        &server.base,
        &session,
        "/ui/account/2fa/confirm",
        &[
            ("pending", &pending),
            ("password", PASSWORD),
            ("code", &wrong_code(&secret)),
        ],
    )
    .await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("not right"), "{html}");
    assert_eq!(
        element_text(&html, "totp-secret").replace(' ', ""),
        secret,
        "the same secret again"
    );
    let u = server
        .store
        .user_by_email("lin@clinic.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.totp_secret, None);

    // The current code: on. This session stays, the other one ends.
    let (status, _) = post_form(
        &server.base,
        &session,
        "/ui/account/2fa/confirm",
        &[
            ("pending", &pending),
            ("password", PASSWORD),
            ("code", &code_of(&secret, now_secs())),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let u = server
        .store
        .user_by_email("lin@clinic.example")
        .await
        .unwrap()
        .unwrap();
    let sealed = u.totp_secret.clone().expect("a second factor is stored");
    assert!(!sealed.contains(&secret), "stored sealed");
    assert_eq!(page(&server.base, &session, "/ui/account").await, 200);
    assert_eq!(page(&server.base, &other, "/ui/account").await, 303);
    let (_, shown) = get_page(&server.base, &session, "/ui/account").await;
    assert!(
        !shown.contains(&secret),
        "the secret is shown only while setting up"
    );

    // Login now needs the code: none, a wrong one, then the right one.
    let (status, none) = log_in(&server.base, "lin@clinic.example", PASSWORD, "").await;
    assert_eq!((status, none), (401, None));
    let (status, none) = log_in(
        &server.base,
        "lin@clinic.example",
        PASSWORD,
        &wrong_code(&secret),
    )
    .await;
    assert_eq!((status, none), (401, None));
    let (status, fresh) = log_in(
        &server.base,
        "lin@clinic.example",
        PASSWORD,
        &code_of(&secret, now_secs()),
    )
    .await;
    assert_eq!(status, 303);
    assert!(fresh.is_some());

    // Turning it off needs the password and a code.
    let (status, _) = post_form(
        &server.base,
        &session,
        "/ui/account/2fa/off",
        &[
            ("password", "not my password"),
            ("code", &code_of(&secret, now_secs())),
        ],
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = post_form(
        &server.base,
        &session,
        "/ui/account/2fa/off",
        &[
            ("password", PASSWORD),
            ("code", &code_of(&secret, now_secs())),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let u = server.store.get_user(&u.id).await.unwrap().unwrap();
    assert_eq!(u.totp_secret, None);
    let rows = server
        .store
        .list_audit(carehook_store::AuditFilter {
            action: Some("user.".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .items;
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["user.disable_2fa", "user.enable_2fa"]);
    for r in &rows {
        assert!(!r.details.to_string().contains(&secret));
        assert!(!r.details.to_string().contains(&sealed));
    }
    server.stop().await;
}

/// Changing one's own password needs the current one, and ends the other sessions.
async fn changing_your_password_ends_your_other_sessions(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    add_user(&*server.store, "max@clinic.example", Role::Editor, None).await;
    let (_, here) = log_in(&server.base, "max@clinic.example", PASSWORD, "").await;
    let (_, there) = log_in(&server.base, "max@clinic.example", PASSWORD, "").await;
    let (here, there) = (here.unwrap(), there.unwrap());
    let new = "a brand new password";
    let (status, html) = post_form(
        &server.base,
        &here,
        "/ui/account/password",
        &[
            ("current_password", "wrong current one"),
            ("new_password", new),
            ("repeat_password", new),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("Current password"), "{html}");
    let (status, _) = post_form(
        &server.base,
        &here,
        "/ui/account/password",
        &[
            ("current_password", PASSWORD),
            ("new_password", new),
            ("repeat_password", new),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(page(&server.base, &here, "/ui/account").await, 200);
    assert_eq!(page(&server.base, &there, "/ui/account").await, 303);
    assert_eq!(
        log_in(&server.base, "max@clinic.example", PASSWORD, "")
            .await
            .0,
        401
    );
    assert_eq!(
        log_in(&server.base, "max@clinic.example", new, "").await.0,
        303
    );
    // The account page and the users page: a non-owner gets no link and a 403.
    let (_, account) = get_page(&server.base, &here, "/ui/account").await;
    assert!(!account.contains("href=\"/ui/users\""), "{account}");
    assert_eq!(page(&server.base, &here, "/ui/users").await, 403);
    server.stop().await;
}

crate::on_both!(changing_your_password_ends_your_other_sessions);

/// A partner link made by an account in the admin UI works only while the account could
/// still make it: demoted to viewer, it is 410; an owner or admin again, it opens; disabled,
/// 410 again. A link with bodies shows them only while its maker may see bodies.
#[tokio::test]
async fn a_partner_link_ends_when_its_maker_is_demoted_or_disabled() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = crate::common::Receiver::start().await;
    let mut spec = crate::common::hook(&rx.url("/h"));
    spec["clinics"] = serde_json::json!(["2"]);
    let hook = server.create_webhook(spec).await;
    let hook_id = hook["id"].as_str().unwrap();
    server
        .push(
            "kc_appointment_book",
            serde_json::json!({"clinic_id": "2", "patient_name": "Ada Lovelace", "doctor_name": "Dr Who", "appointment_date": "2026-12-01"}),
        )
        .await;
    server.settled(crate::WAIT).await;
    add_user(&*server.store, "max@clinic.example", Role::Admin, None).await;
    let user = server
        .store
        .user_by_email("max@clinic.example")
        .await
        .unwrap()
        .unwrap();
    let (_, session) = log_in(&server.base, "max@clinic.example", PASSWORD, "").await;
    let session = session.unwrap();
    let (status, html) = post_form(
        &server.base,
        &session,
        &format!("/ui/webhooks/{hook_id}/partner-links"),
        &[("label", "Pharmacy IT")],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    let url = element_text(&html, "share-url");
    let path = &url[url.find("/partner/").expect("a link")..];
    let opened = |path: String| {
        let base = server.base.clone();
        async move {
            no_redirects()
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(opened(path.to_string()).await, 200);
    let user_path = format!("/api/v1/users/{}", user.id);

    // With bodies: shown while the maker may see them, masked once they may not.
    let (status, html) = post_form(
        &server.base,
        &session,
        &format!("/ui/webhooks/{hook_id}/partner-links"),
        &[("show_bodies", "on")],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    let url = element_text(&html, "share-url");
    let bodies_url = format!("{}{}", server.base, &url[url.find("/partner/").unwrap()..]);
    let page = || async {
        let resp = no_redirects().get(&bodies_url).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    let (status, shown) = page().await;
    assert_eq!(status, 200);
    assert!(shown.contains("Ada Lovelace"), "{shown}");
    let (status, body) = server
        .call(
            "PATCH",
            &user_path,
            Some(serde_json::json!({ "bodies": false })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, shown) = page().await;
    assert_eq!(status, 200);
    assert!(!shown.contains("Ada Lovelace"), "{shown}");

    let set_role = |role: &'static str| {
        server.call(
            "PATCH",
            &user_path,
            Some(serde_json::json!({ "role": role })),
        )
    };
    assert_eq!(set_role("viewer").await.0, 200);
    assert_eq!(opened(path.to_string()).await, 410, "maker demoted");
    assert_eq!(set_role("admin").await.0, 200);
    assert_eq!(opened(path.to_string()).await, 200, "maker an admin again");
    let (status, body) = server
        .call("POST", &format!("/api/v1/users/{}/disable", user.id), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(opened(path.to_string()).await, 410, "maker disabled");
    server.stop().await;
}

/// Starts setting up a second factor for the session's account: the shown secret and the
/// form's sealed `pending`.
async fn start_2fa(base: &str, session: &str) -> (String, String) {
    let (status, html) = post_form(base, session, "/ui/account/2fa", &[]).await;
    assert_eq!(status, 200, "{html}");
    (
        element_text(&html, "totp-secret").replace(' ', ""),
        input_value(&html, "pending"),
    )
}

/// The confirming form's `pending` is opened only if it was sealed for this account's setup:
/// another account's stored (sealed) second factor posted there is refused and never shown,
/// and a new setup starts instead.
#[tokio::test]
async fn another_accounts_sealed_secret_posted_as_pending_is_refused_and_not_shown() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    add_user(&*server.store, "bea@clinic.example", Role::Viewer, None).await;
    add_user(&*server.store, "eve@clinic.example", Role::Viewer, None).await;
    // Bea turns hers on.
    let (_, bea) = log_in(&server.base, "bea@clinic.example", PASSWORD, "").await;
    let bea = bea.unwrap();
    let (bea_secret, pending) = start_2fa(&server.base, &bea).await;
    let (status, html) = post_form(
        &server.base,
        &bea,
        "/ui/account/2fa/confirm",
        &[
            ("pending", &pending),
            ("password", PASSWORD),
            ("code", &code_of(&bea_secret, now_secs())),
        ],
    )
    .await;
    assert_eq!(status, 303, "{html}");
    let stored = server
        .store
        .user_by_email("bea@clinic.example")
        .await
        .unwrap()
        .unwrap()
        .totp_secret
        .expect("on");

    // Eve posts Bea's stored sealed secret as her pending setup, with a wrong code.
    let (_, eve) = log_in(&server.base, "eve@clinic.example", PASSWORD, "").await;
    let eve = eve.unwrap();
    let (eve_secret, _) = start_2fa(&server.base, &eve).await;
    let grouped: String = bea_secret
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    for code in [wrong_code(&bea_secret), code_of(&bea_secret, now_secs())] {
        let (status, html) = post_form(
            &server.base,
            &eve,
            "/ui/account/2fa/confirm",
            &[
                ("pending", &stored),
                ("password", PASSWORD),
                ("code", &code),
            ],
        )
        .await;
        assert_eq!(status, 422, "{html}");
        assert!(!html.contains(&bea_secret), "Bea's secret is shown: {html}");
        assert!(!html.contains(&grouped), "Bea's secret is shown: {html}");
        let shown = element_text(&html, "totp-secret").replace(' ', "");
        assert!(
            shown != bea_secret && shown != eve_secret,
            "a new setup starts"
        );
    }
    let eve_row = server
        .store
        .user_by_email("eve@clinic.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(eve_row.totp_secret, None);
}

/// Turning a second factor on needs the account's password: without it, or with a wrong
/// one, it stays off and the account's other sessions stay.
#[tokio::test]
async fn turning_on_a_second_factor_needs_the_password() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    add_user(&*server.store, "kim@clinic.example", Role::Viewer, None).await;
    let (_, session) = log_in(&server.base, "kim@clinic.example", PASSWORD, "").await;
    let session = session.unwrap();
    let (_, other) = log_in(&server.base, "kim@clinic.example", PASSWORD, "").await;
    let other = other.unwrap();
    let (secret, pending) = start_2fa(&server.base, &session).await;
    for password in [None, Some("not my password")] {
        let code = code_of(&secret, now_secs());
        let mut form = vec![("pending", pending.as_str()), ("code", code.as_str())];
        if let Some(p) = password {
            form.push(("password", p));
        }
        let (status, html) =
            post_form(&server.base, &session, "/ui/account/2fa/confirm", &form).await;
        assert_eq!(status, 422, "{password:?}: {html}");
        assert!(html.contains("not your current password"), "{html}");
        assert_eq!(page(&server.base, &other, "/ui/account").await, 200);
    }
    let u = server
        .store
        .user_by_email("kim@clinic.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.totp_secret, None);
}
