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
    server.stop().await;
}
