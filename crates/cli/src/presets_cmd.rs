//! `carehook presets`: the guide's integrations, ready to fill in.

use std::io::Write;

use anyhow::Result;
use carehook_core::presets::{self, Preset, PresetAuth};

use crate::UsageError;

/// The request a preset sends, rendered with the catalog's example values
/// (the demo clinic), with placeholder values for what the admin gives.
pub fn example_request(p: &Preset) -> Result<carehook_core::webhook::RenderedRequest> {
    let mut req = presets::PresetRequest::default();
    for v in p.values {
        if v.key == "url" {
            req.url = Some(v.example.to_string());
        } else {
            req.values.insert(v.key.to_string(), v.example.to_string());
        }
    }
    req.auth = Some(serde_json::json!({
        "username": "AC0123456789abcdef0123456789abcdef",
        "password": "your-secret",
        "token": "your-secret",
        "value": "your-secret",
        "client_id": "your-client-id",
        "client_secret": "your-secret",
        "refresh_token": "your-secret"
    }));
    let spec = presets::build(p, &req).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let spec: carehook_core::webhook::WebhookSpec = serde_json::from_value(spec)?;
    let (compiled, _) = spec.compile()?;
    let event = if p.events[0] == "*" {
        "kc_appointment_book"
    } else {
        p.events[0]
    };
    let vars = carehook_core::catalog::lookup(event)
        .expect("preset events are in the catalog")
        .example_vars();
    Ok(compiled.render(&vars)?.1)
}

/// The example request as text: request line, headers, blank line, body.
pub fn example_text(p: &Preset) -> Result<String> {
    let r = example_request(p)?;
    let mut text = format!("{} {}\n", r.method.as_str(), r.url);
    for (k, v) in &r.headers {
        text.push_str(&format!("{k}: {v}\n"));
    }
    text.push('\n');
    text.push_str(&r.body);
    Ok(text)
}

pub fn run(id: Option<&str>, json: bool, out: &mut dyn Write) -> Result<()> {
    match id {
        None if json => writeln!(out, "{}", serde_json::to_string_pretty(presets::presets())?)?,
        None => {
            let width = presets::presets()
                .iter()
                .map(|p| p.id.len())
                .max()
                .unwrap_or(0);
            for p in presets::presets() {
                writeln!(
                    out,
                    "{:width$}  {:18}  {}",
                    p.id, p.integration, p.description
                )?;
            }
            writeln!(
                out,
                "\n`carehook presets show ID` shows what a preset sends and what it needs from you."
            )?;
        }
        Some(id) => {
            let Some(p) = presets::lookup(id) else {
                let ids = presets::presets().iter().map(|p| p.id);
                // `slack` names an integration: offer its presets.
                let word = id.to_ascii_lowercase();
                let containing: Vec<&str> = ids
                    .clone()
                    .filter(|p| !word.is_empty() && p.contains(word.as_str()))
                    .collect();
                let hint = if containing.is_empty() {
                    carehook_core::catalog::did_you_mean(carehook_core::catalog::closest_name(
                        id, ids,
                    ))
                } else {
                    let quoted: Vec<String> =
                        containing.iter().map(|p| format!("\"{p}\"")).collect();
                    format!(" (did you mean {}?)", quoted.join(" or "))
                };
                return Err(UsageError(format!(
                    "unknown preset \"{id}\"{hint}; `carehook presets` lists them"
                ))
                .into());
            };
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(p)?)?;
            } else {
                show(p, out)?;
            }
        }
    }
    Ok(())
}

fn show(p: &Preset, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "{} ({})\n{}\n", p.name, p.id, p.description)?;
    writeln!(out, "events:       {}", p.events.join(", "))?;
    writeln!(
        out,
        "request:      {} {} ({})",
        p.method,
        if p.url.is_empty() {
            "<your URL>"
        } else {
            p.url
        },
        p.content_type
    )?;
    let auth = match p.auth {
        PresetAuth::None => "none".to_string(),
        PresetAuth::Basic {
            username_label,
            password_label,
        } => format!("basic: username = {username_label}, password = {password_label}"),
        PresetAuth::Bearer { token_label } => format!("bearer: token = {token_label}"),
        PresetAuth::ApiKey {
            name,
            location,
            value_label,
        } => format!("API key {name} in the {location}: value = {value_label}"),
        PresetAuth::OAuth2 {
            kind,
            token_url,
            fields,
            ..
        } => {
            let mut text = format!("{kind} (token URL {token_url})");
            for (field, label, help) in fields {
                text.push_str(&format!("\n              {field} = {label}: {help}"));
            }
            text
        }
    };
    writeln!(out, "auth:         {auth}")?;
    writeln!(out, "patient data: {}", patient_data(p))?;
    for (v, op, value) in p.conditions {
        writeln!(out, "only when:    {v} {op} {value}")?;
    }
    if !p.values.is_empty() {
        writeln!(out, "\nYou give:")?;
        for v in p.values {
            let key = if v.key == "url" {
                "url".to_string()
            } else {
                format!("values.{}", v.key)
            };
            writeln!(
                out,
                "  {key:22} {} — {} (e.g. {})",
                v.label, v.help, v.example
            )?;
        }
    }
    for note in p.notes {
        writeln!(out, "\nNote: {note}")?;
    }
    writeln!(out, "\nBody template:\n{}", p.body)?;
    writeln!(
        out,
        "\nWhat it sends, with the demo clinic's values (secrets masked):\n{}",
        example_text(p)?
    )?;
    Ok(())
}

/// What a preset's destination receives, as its `data_policy` declares it.
fn patient_data(p: &Preset) -> &'static str {
    match (p.data_policy.identifying, p.data_policy.phi) {
        (false, false) => {
            "none (data_policy identifying: false, phi: false); a patient is counted by a pseudonym"
        }
        (true, false) => "identifying (data_policy identifying: true, phi: false)",
        (false, true) => "health information (data_policy identifying: false, phi: true)",
        (true, true) => {
            "identifying and health information (data_policy identifying: true, phi: true)"
        }
    }
}

/// `docs/integrations.md`, made from the presets so it cannot drift from
/// them (a test compares the file with this, and writes it on request).
#[cfg(test)]
fn integrations_markdown() -> Result<String> {
    let mut md = String::from(
        "# Integrations\n\n\
         The user guide's 15 integrations and two appointment reminders (scheduled webhooks, see\n\
         [reminders.md](reminders.md)), each a preset: carehook fills in everything but what is\n\
         yours (a URL, a key, an account id). This page is generated from the presets\n\
         (`CAREHOOK_UPDATE_DOCS=1 cargo test -p carehook-cli --lib integrations_doc`).\n\n\
         Create one with the API (or `carehook presets show ID` to see it first):\n\n\
         ```sh\n\
         curl -X POST http://127.0.0.1:8080/api/v1/webhooks -H \"Authorization: Bearer $CAREHOOK_TOKEN\" \\\n\
         \x20 -H 'Content-Type: application/json' \\\n\
         \x20 -d '{\"preset\": \"slack_new_appointment\", \"url\": \"https://hooks.slack.com/services/T000/B000/XXXX\",\n\
         \x20      \"values\": {\"site_url\": \"https://clinic.example.com\"}}'\n\
         ```\n\n\
         A missing value is answered with 422 naming each one still needed. Any other webhook\n\
         field (`name`, `events`, `body`, `retry`…) given beside `preset` overrides the preset's.\n\
         Then send a test with the demo clinic's values before switching it on for real:\n\
         `carehook webhooks test WEBHOOK_ID` (or `POST /api/v1/webhooks/{id}/test`).\n\n",
    );
    for p in presets::presets() {
        // A reminder shares its service with a guide preset: its own name heads it.
        let heading = if p.schedule.is_some() {
            p.name
        } else {
            p.integration
        };
        md.push_str(&format!("## {heading}\n\n{}\n\n", p.description));
        md.push_str(&format!("- Preset: `{}`\n", p.id));
        let events = if p.events == ["*"] {
            "every event (`*`)".to_string()
        } else {
            p.events
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        md.push_str(&format!("- Fires on: {events}"));
        for (v, op, value) in p.conditions {
            md.push_str(&format!(", only when `{v}` {op} `{value}`"));
        }
        md.push('\n');
        if let Some((at, offset)) = p.schedule {
            md.push_str(&format!(
                "- Sent at `{at}` {offset} (`schedule`); a time already past is skipped (`schedule.if_past`), a cancellation withdraws it, a move re-times it.\n"
            ));
        }
        for v in p.values {
            let key = if v.key == "url" {
                "`url`".to_string()
            } else {
                format!("`values.{}`", v.key)
            };
            md.push_str(&format!(
                "- You give {key}: {}. Where: {}.\n",
                v.label, v.help
            ));
        }
        match p.auth {
            PresetAuth::None => md.push_str("- Auth: none.\n"),
            PresetAuth::Basic { username_label, password_label } => md.push_str(&format!(
                "- Auth: basic; `auth.username` is your {username_label}, `auth.password` your {password_label}.\n"
            )),
            PresetAuth::Bearer { token_label } => {
                md.push_str(&format!("- Auth: bearer; `auth.token` is your {token_label}.\n"))
            }
            PresetAuth::ApiKey { name, location, value_label } => md.push_str(&format!(
                "- Auth: API key `{name}` in the {location}; `auth.value` is your {value_label}.\n"
            )),
            PresetAuth::OAuth2 { kind, token_url, client_auth, fields, .. } => {
                md.push_str(&format!(
                    "- Auth: `{kind}` (OAuth 2.0) at `{token_url}`, client secret sent as `{client_auth}`.\n"
                ));
                for (field, label, help) in fields {
                    md.push_str(&format!("- You give `auth.{field}`: {label}. Where: {help}.\n"));
                }
            }
        }
        md.push_str(&format!("- Patient data: {}.\n", patient_data(p)));
        if let Some(key) = p.ordering_key() {
            md.push_str(&format!(
                "- Ordering key: `{key}`: one patient's deliveries go one at a time, in the order \
                 their events happened (see \"Ordering keys\" in the README).\n"
            ));
        }
        for note in p.notes {
            md.push_str(&format!("- Note: {note}\n"));
        }
        if let PresetAuth::OAuth2 { steps, .. } = p.auth {
            md.push_str("\nSetting it up, step by step:\n\n");
            for (i, step) in steps.iter().enumerate() {
                md.push_str(&format!("{}. {step}\n", i + 1));
            }
            md.push_str(
                "\nIf the clinic's network requires it, the same webhook also takes a client certificate \
                 (`tls.client_cert`, `tls.client_key`) and private CAs (`tls.ca_certs`), and carehook \
                 reaches the provider through `CAREHOOK_EGRESS_PROXY` like every other request: see \
                 \"Mutual TLS and an egress proxy\" below.\n",
            );
        }
        md.push_str(&format!(
            "\nWhat carehook sends, rendered with the demo clinic (secrets masked):\n\n```http\n{}\n```\n\n",
            example_text(p)?
        ));
    }
    md.push_str(MTLS_AND_PROXY);
    Ok(md)
}

/// The closing section of `docs/integrations.md`.
#[cfg(test)]
const MTLS_AND_PROXY: &str = "## Mutual TLS and an egress proxy

Pharmacies, laboratories and hospital partners often accept only clients with a certificate
they issued, and many clinics send everything through one proxy. Both work with any preset,
Salesforce and QuickBooks included.

Mutual TLS, step by step:

1. Get a client certificate from the receiver's operator (or have them sign your CSR), as PEM:
   the certificate (with any intermediates) and its private key, unencrypted
   (`openssl pkey -in key.enc.pem -out key.pem` decrypts one).
2. If the receiver's own certificate comes from a private CA, get that CA's certificate (PEM) too.
3. Add them to the webhook: in the web UI under Mutual TLS, or in the API as
   `\"tls\": {\"client_cert\": \"-----BEGIN CERTIFICATE-----…\", \"client_key\": \"-----BEGIN PRIVATE KEY-----…\", \"ca_certs\": \"…\"}`.
   carehook refuses an expired certificate, or a key that is not the certificate's, naming the field.
   The key is stored sealed and shown as `********`.
4. The webhook shows `tls.client_cert_expires_at`; `tls.client_cert_expires_soon` (and a warning in the
   UI) 14 days before: ask for a new certificate then.

An egress proxy, step by step:

1. Set `CAREHOOK_EGRESS_PROXY=http://proxy.clinic.lan:3128` (with `user:password@` for basic
   auth) on every carehook node and restart it. Deliveries, test sends and OAuth 2.0 token requests
   all go through it: HTTPS through CONNECT tunnels, plain HTTP forwarded.
2. Nothing else changes: the proxy's own address needs no entry in `CAREHOOK_ALLOWED_DESTINATIONS`,
   and the destination policy still applies to each webhook's destination: carehook resolves it
   and refuses a private, loopback or metadata address before asking the proxy (a name with any
   such address is refused).
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrations_doc_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/integrations.md");
        let expected = integrations_markdown().unwrap();
        if std::env::var("CAREHOOK_UPDATE_DOCS").is_ok_and(|v| v == "1") {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "docs/integrations.md is out of date: run CAREHOOK_UPDATE_DOCS=1 cargo test -p carehook-cli --lib integrations_doc"
        );
    }

    #[test]
    fn the_list_and_one_preset_print() {
        let mut buf = Vec::new();
        run(None, false, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text.lines().filter(|l| l.contains("_")).count(),
            carehook_core::presets::presets().len()
        );
        let mut buf = Vec::new();
        run(Some("twilio_sms_confirmation"), false, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.contains("values.from_number") && text.contains("Auth Token"),
            "{text}"
        );
        assert!(run(Some("slak"), false, &mut Vec::new()).is_err());
        let e = run(Some("slack"), false, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("slack_new_appointment"), "{e}");
    }
}
