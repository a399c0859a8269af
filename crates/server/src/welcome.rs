//! What `carehook serve` prints on start, for a person: where the admin UI
//! is, how to log in, and (with `--demo`) what to try first. Here rather
//! than in the CLI so the browser tests can follow the very same words.

/// What a person needs on first sight of a running carehook: where the UI
/// is, how to log in, and (with `--demo`) what to try first. The token is
/// printed only when carehook just made it.
pub fn text(listen: std::net::SocketAddr, new_token: Option<&str>, demo: bool) -> String {
    let host = if listen.ip().is_unspecified() {
        // Listening everywhere: this machine's own name is what others use.
        "<this-host>".to_string()
    } else {
        listen.ip().to_string()
    };
    let url = if listen.is_ipv6() {
        format!("http://[{host}]:{}", listen.port())
    } else {
        format!("http://{host}:{}", listen.port())
    };
    let mut out = String::new();
    match new_token {
        Some(token) => out.push_str(&format!(
            "carehook made an admin API token; it is shown only this once, so keep it:\n\n    {token}\n\n\
             Admin UI       {url}/ui  (paste the token above, or log in with an account)\n"
        )),
        None => out.push_str(&format!(
            "Admin UI       {url}/ui  (log in with the admin token, CAREHOOK_ADMIN_TOKEN, or any API token)\n"
        )),
    }
    out.push_str(&format!(
        "API            {url}/api/v1  (send `Authorization: Bearer <token>`)\n\
         API reference  {url}/api/docs\n"
    ));
    if new_token.is_some() {
        out.push_str(
            "To choose the admin token yourself, set CAREHOOK_ADMIN_TOKEN (16+ characters).\n",
        );
    }
    if demo {
        out.push_str(&format!(
            "\nThe demo clinic (Riverside Family Clinic) is loaded. Try first:\n\
             \x20 1. Open {url}/ui/webhooks/new and pick \"Slack: new appointment\" (any URL that\n\
             \x20    answers will do), then press \"Send test\".\n\
             \x20 2. Book a demo appointment on {url}/ui/try, or from a shell:\n\
             \x20    CAREHOOK_URL={url} CAREHOOK_TOKEN=<token> carehook clinic book \\\n\
             \x20      --clinic 1 --doctor 1 --patient 1 --date $(date -d tomorrow +%F) --start 10:00\n\
             \x20 3. Watch it arrive in the delivery log: {url}/ui/deliveries\n"
        ));
    }
    out
}

/// Printed once, when the first start made the owner account: how to log in with it.
pub fn owner_text(email: &str, password: &str) -> String {
    format!(
        "\ncarehook made an owner account for the admin UI; its password is shown only this once:\n\n\
         \x20   e-mail    {email}\n\
         \x20   password  {password}\n\n\
         Log in with them at /ui, then change the password: carehook users reset-password --email {email}\n\
         Add people with: carehook users add --email ada@clinic.example --name \"Ada\" --role editor --clinic 2\n"
    )
}
