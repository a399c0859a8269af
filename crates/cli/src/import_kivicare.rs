//! `carehook import kivicare-addon`: brings a clinic's webhooks from the
//! KiviCare Webhooks add-on into carehook, disabled, with a report of what
//! could not be carried over.
//!
//! The add-on's own storage format is not public (it is a paid plugin; its
//! source was not available to us), so the importer reads the export format
//! described in docs/kivicare.md: a JSON array of webhooks (or
//! `{"webhooks": [...]}`), each with the fields the add-on's editor shows
//! (name, event(s), URL, method, content type, authentication, headers, the
//! `{{key}}` payload, status). Field names are matched leniently (`url`,
//! `endpoint` or `webhook_url`…), since exports made by hand or with WP-CLI
//! differ.
//!
//! [`convert`] is pure (tested here); [`run`] sends each converted webhook to
//! `POST /api/v1/webhooks`.

use std::collections::BTreeSet;

use carehook_core::catalog::{self, Presence, Scope};
use clap::Args;
use serde_json::{Map, Value, json};

use crate::UsageError;
use crate::client::{Client, ClientArgs, block_on, print_json, read_json_file};

#[derive(Debug, Args)]
pub struct ImportAddonArgs {
    /// The add-on's webhooks as JSON (`-` reads stdin); docs/kivicare.md shows how to export them.
    #[arg(long)]
    pub file: String,
    /// Show what would be created, and the report, without creating anything.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// The add-on's `{{keys}}` that carehook names differently.
const KEY_MAP: &[(&str, &str)] = &[
    ("patient_full_name", "patient_name"),
    ("doctor_full_name", "doctor_name"),
    ("receptionist_full_name", "receptionist_name"),
    ("patient_contact", "patient_contact_number"),
    ("patient_phone", "patient_contact_number"),
    ("patient_mobile", "patient_contact_number"),
    ("patient_mobile_number", "patient_contact_number"),
    ("doctor_contact", "doctor_contact_number"),
    ("doctor_phone", "doctor_contact_number"),
    ("doctor_mobile_number", "doctor_contact_number"),
    ("clinic_contact", "clinic_contact_number"),
    ("clinic_phone", "clinic_contact_number"),
    ("clinic_full_address", "clinic_address"),
    ("patient_full_address", "patient_address"),
    ("patient_birth_date", "patient_dob"),
    ("patient_date_of_birth", "patient_dob"),
    ("doctor_specialty", "doctor_specialization"),
    ("doctor_speciality", "doctor_specialization"),
    ("appointment_time", "appointment_start_time"),
    ("appointment_start", "appointment_start_time"),
    ("appointment_end", "appointment_end_time"),
    ("appointment_desc", "appointment_description"),
    ("appointment_services", "service_names"),
    ("service_name", "service_names"),
    ("services", "service_names"),
    ("total_amount", "bill_total"),
    ("bill_total_amount", "bill_total"),
    ("actual_amount", "bill_amount"),
    ("bill_actual_amount", "bill_amount"),
    ("bill_payment_status", "bill_status"),
    ("payment_mode", "payment_method"),
    ("encounter_note", "encounter_description"),
];

/// One carehook webhook to create, and what its source was.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The add-on webhook's name (or its position) for the report.
    pub source: String,
    /// The body of `POST /api/v1/webhooks`.
    pub spec: Value,
}

/// What the import did with each add-on webhook.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    pub webhooks: Vec<Converted>,
    /// "<source>: <what could not be carried over>".
    pub notes: Vec<String>,
}

/// The first present field of `w` among `names`, as text.
fn text_field(w: &Map<String, Value>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| match w.get(*n) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// The add-on's event names: one (`event`, `event_name`, `hook`) or a list,
/// or a comma-separated string.
fn events_of(w: &Map<String, Value>) -> Vec<String> {
    for name in [
        "events",
        "event",
        "event_name",
        "events_name",
        "hook",
        "trigger",
    ] {
        match w.get(name) {
            Some(Value::Array(items)) => {
                return items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::trim).map(str::to_string))
                    .filter(|s| !s.is_empty())
                    .collect();
            }
            Some(Value::String(s)) if !s.trim().is_empty() => {
                return s
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            _ => {}
        }
    }
    Vec::new()
}

/// A template with each `{{ key | filters }}` renamed to carehook's variable;
/// a key carehook has no variable for (or that none of `scope`'s events
/// carry) is taken out, and named in `dropped`.
pub fn rewrite_template(text: &str, scope: &Scope, dropped: &mut BTreeSet<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &after[..end];
        let (key, filters) = match inner.find('|') {
            Some(bar) => (inner[..bar].trim(), &inner[bar..]),
            None => (inner.trim(), ""),
        };
        let name = KEY_MAP
            .iter()
            .find(|(from, _)| *from == key)
            .map_or(key, |(_, to)| *to);
        if catalog::variable(name).is_some() && !matches!(scope.presence(name), Presence::None) {
            out.push_str("{{");
            out.push_str(name);
            if !filters.is_empty() {
                out.push(' ');
                out.push_str(filters.trim_end());
            }
            out.push_str("}}");
        } else {
            dropped.insert(key.to_string());
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn content_type(w: &Map<String, Value>) -> &'static str {
    let t = text_field(
        w,
        &["content_type", "payload_type", "body_type", "data_format"],
    )
    .unwrap_or_default()
    .to_ascii_lowercase();
    if t.contains("form") || t.contains("urlencoded") {
        "form"
    } else if t.contains("text") || t.contains("plain") || t == "raw" {
        "text"
    } else {
        "json"
    }
}

/// carehook's `auth` from the add-on's (a nested `auth` object or flat fields).
fn auth_of(w: &Map<String, Value>, source: &str, notes: &mut Vec<String>) -> Value {
    let nested = w.get("auth").and_then(Value::as_object);
    let from = nested.unwrap_or(w);
    let kind = text_field(
        from,
        &["type", "auth_type", "authentication", "authentication_type"],
    )
    .or_else(|| text_field(w, &["auth_type", "authentication_type"]))
    .unwrap_or_else(|| "none".into())
    .to_ascii_lowercase()
    .replace([' ', '-'], "_");
    let get = |names: &[&str]| text_field(from, names).unwrap_or_default();
    match kind.as_str() {
        "" | "none" | "no_auth" => json!({"type": "none"}),
        "basic" | "basic_auth" => json!({"type": "basic",
            "username": get(&["username", "auth_username", "user"]),
            "password": get(&["password", "auth_password"])}),
        "bearer" | "bearer_token" | "token" => json!({"type": "bearer",
            "token": get(&["token", "bearer_token", "auth_token"])}),
        "api_key" | "apikey" => {
            let location = get(&["location", "api_key_location", "add_to"]).to_ascii_lowercase();
            json!({"type": "api_key",
                "name": get(&["name", "key", "api_key_name", "header_name"]),
                "value": get(&["value", "api_key", "api_key_value"]),
                "location": if location.contains("query") { "query" } else { "header" }})
        }
        other => {
            notes.push(format!(
                "{source}: authentication \"{other}\" is not one carehook knows; set it in carehook before enabling"
            ));
            json!({"type": "none"})
        }
    }
}

/// Headers as carehook's `{name: value}` from the add-on's `[{key|name, value}]`
/// or `{name: value}`, each value's `{{keys}}` rewritten.
fn headers_of(
    w: &Map<String, Value>,
    scope: &Scope,
    dropped: &mut BTreeSet<String>,
) -> Map<String, Value> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    match w.get("headers") {
        Some(Value::Array(items)) => {
            for h in items.iter().filter_map(Value::as_object) {
                let name = text_field(h, &["name", "key", "header"]).unwrap_or_default();
                pairs.push((name, text_field(h, &["value"]).unwrap_or_default()));
            }
        }
        Some(Value::Object(map)) => {
            for (name, value) in map {
                let value = value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| value.to_string());
                pairs.push((name.clone(), value));
            }
        }
        _ => {}
    }
    pairs
        .into_iter()
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, value)| {
            let value = rewrite_template(&value, scope, dropped);
            (name, Value::String(value))
        })
        .collect()
}

/// Whether an add-on template uses appointment or doctor keys (to choose the
/// event a 3.x "bill paid" webhook becomes).
fn mentions_appointment(template: &str) -> bool {
    ["appointment_", "doctor_", "service"]
        .iter()
        .any(|k| template.contains(k))
}

/// Converts the add-on's export into carehook webhooks (all disabled) and the
/// report. Fails only when the file is not an export at all.
pub fn convert(export: &Value) -> Result<Report, UsageError> {
    let items = match export {
        Value::Array(items) => items,
        Value::Object(o) => match o.get("webhooks").or_else(|| o.get("data")) {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(UsageError(
                    "the file must be a JSON array of webhooks, or {\"webhooks\": [...]}".into(),
                ));
            }
        },
        _ => {
            return Err(UsageError(
                "the file must be a JSON array of webhooks, or {\"webhooks\": [...]}".into(),
            ));
        }
    };
    let mut report = Report::default();
    for (i, item) in items.iter().enumerate() {
        let Some(w) = item.as_object() else {
            report
                .notes
                .push(format!("webhook #{}: not a JSON object, skipped", i + 1));
            continue;
        };
        let name = text_field(w, &["name", "title", "webhook_name"])
            .unwrap_or_else(|| format!("KiviCare webhook #{}", i + 1));
        let source = format!("\"{name}\"");
        let Some(url) = text_field(
            w,
            &[
                "url",
                "endpoint",
                "webhook_url",
                "endpoint_url",
                "request_url",
            ],
        ) else {
            report.notes.push(format!("{source}: no URL, skipped"));
            continue;
        };
        let template = text_field(w, &["payload", "body", "template", "request_body", "data"])
            .unwrap_or_default();
        let method = text_field(w, &["method", "request_method", "http_method"])
            .unwrap_or_else(|| "POST".into())
            .to_ascii_uppercase();
        let was_enabled = match w
            .get("status")
            .or_else(|| w.get("enabled"))
            .or_else(|| w.get("is_active"))
        {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64() == Some(1),
            Some(Value::String(s)) => matches!(
                s.to_ascii_lowercase().as_str(),
                "1" | "active" | "enabled" | "on" | "yes" | "true"
            ),
            _ => true,
        };
        // Events: carehook's names and aliases pass; the 3.x names that have
        // no twin become the event (and condition) that means the same.
        let mut plain: Vec<&'static str> = Vec::new();
        let mut cancel = false;
        for e in events_of(w) {
            match e.as_str() {
                "kc_appointment_cancel" => cancel = true,
                "kc_encounter_bill_paid" => plain.push(if mentions_appointment(&template) {
                    "kc_appointment_payment_complete"
                } else {
                    "kc_payment_add"
                }),
                "*" | "all" => plain.push("*"),
                other => match catalog::canonical_name(other) {
                    Some(c) => plain.push(c),
                    None => report.notes.push(format!(
                        "{source}: event \"{other}\" has no carehook equivalent, left out"
                    )),
                },
            }
        }
        plain.dedup();
        let mut groups: Vec<(String, Vec<&'static str>, Vec<Value>)> = Vec::new();
        if !plain.is_empty() {
            groups.push((name.clone(), plain, Vec::new()));
        }
        if cancel {
            // A condition applies to every event of a webhook, so the
            // cancellation part of a mixed webhook becomes its own.
            let n = if groups.is_empty() {
                name.clone()
            } else {
                format!("{name} (cancellations)")
            };
            groups.push((
                n,
                vec!["kc_appointment_status_change"],
                vec![json!({"variable": "appointment_status", "op": "eq", "value": "cancelled"})],
            ));
        }
        if groups.is_empty() {
            report
                .notes
                .push(format!("{source}: no event carehook knows, skipped"));
            continue;
        }
        for (hook_name, events, conditions) in groups {
            let scope = Scope::new(&events).expect("catalog names");
            let mut dropped = BTreeSet::new();
            let body = rewrite_template(&template, &scope, &mut dropped);
            let headers = headers_of(w, &scope, &mut dropped);
            let url_out = rewrite_template(&url, &scope, &mut dropped);
            let mut notes = Vec::new();
            let auth = auth_of(w, &source, &mut notes);
            report.notes.extend(notes);
            for key in &dropped {
                report.notes.push(format!(
                    "{source}: {{{{{key}}}}} has no carehook variable for {}; taken out of the template",
                    events.join(", ")
                ));
            }
            if !was_enabled {
                report
                    .notes
                    .push(format!("{source}: was disabled in the add-on"));
            }
            let mut spec = json!({
                "name": hook_name,
                "description": "Imported from the KiviCare Webhooks add-on; check it, then enable it.",
                "events": events,
                "enabled": false,
                "url": url_out,
                "method": method,
                "content_type": content_type(w),
                "auth": auth,
                "headers": headers,
                "body": body,
            });
            if !conditions.is_empty() {
                spec["conditions"] = Value::Array(conditions);
            }
            report.webhooks.push(Converted {
                source: source.clone(),
                spec,
            });
        }
    }
    // A note that holds for both halves of a split webhook is said once.
    let mut seen = BTreeSet::new();
    report.notes.retain(|n| seen.insert(n.clone()));
    Ok(report)
}

pub fn run(args: ImportAddonArgs) -> anyhow::Result<()> {
    let export = read_json_file(&args.file)?;
    let report = convert(&export)?;
    let json_out = args.client.json;
    if args.dry_run {
        if json_out {
            print_json(&json!({
                "webhooks": report.webhooks.iter().map(|c| c.spec.clone()).collect::<Vec<_>>(),
                "notes": report.notes,
            }));
        } else {
            for c in &report.webhooks {
                println!(
                    "would create {} (disabled) from {}",
                    c.spec["name"], c.source
                );
            }
            print_notes(&report.notes);
        }
        return Ok(());
    }
    block_on(async move {
        let client = Client::new(&args.client)?;
        let mut created = Vec::new();
        let mut notes = report.notes.clone();
        for c in &report.webhooks {
            match client.post("/api/v1/webhooks", &c.spec).await {
                Ok(v) => {
                    created.push(json!({"id": v["id"], "name": c.spec["name"], "from": c.source}))
                }
                Err(e) => match e.downcast_ref::<crate::client::Refused>() {
                    // One webhook carehook refuses does not stop the others.
                    Some(refused) => notes.push(format!(
                        "{}: carehook refused it: {}",
                        c.source, refused.message
                    )),
                    None => return Err(e),
                },
            }
        }
        if json_out {
            print_json(&json!({"created": created, "notes": notes}));
        } else {
            for c in &created {
                println!(
                    "created {} {} (disabled) from {}",
                    c["id"].as_str().unwrap_or("-"),
                    c["name"],
                    c["from"].as_str().unwrap_or("")
                );
            }
            print_notes(&notes);
        }
        Ok(())
    })
}

fn print_notes(notes: &[String]) {
    if notes.is_empty() {
        println!("everything was carried over; the webhooks are disabled until you enable them");
    } else {
        println!("not carried over:");
        for n in notes {
            println!("  - {n}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(events: &[&str]) -> Scope {
        Scope::new(events).unwrap()
    }

    #[test]
    fn addon_keys_become_carehook_variables_and_filters_stay() {
        let mut dropped = BTreeSet::new();
        let out = rewrite_template(
            r#"{"who": "{{patient_full_name}}", "doc": "{{ doctor_full_name }}", "on": "{{appointment_date | date: "%d/%m"}}", "zoom": "{{zoom_join_url}}"}"#,
            &scope(&["kc_appointment_book"]),
            &mut dropped,
        );
        assert_eq!(
            out,
            r#"{"who": "{{patient_name}}", "doc": "{{doctor_name}}", "on": "{{appointment_date | date: "%d/%m"}}", "zoom": ""}"#
        );
        assert_eq!(dropped.into_iter().collect::<Vec<_>>(), ["zoom_join_url"]);
    }

    #[test]
    fn a_key_the_events_lack_is_taken_out() {
        let mut dropped = BTreeSet::new();
        let out = rewrite_template(
            "{{patient_full_name}} {{appointment_date}}",
            &scope(&["kc_patient_add"]),
            &mut dropped,
        );
        assert_eq!(out, "{{patient_name}} ");
        assert!(dropped.contains("appointment_date"));
    }

    #[test]
    fn an_export_converts_to_disabled_webhooks_with_a_report() {
        let export = json!({"webhooks": [
            {"name": "Slack bookings", "event": "kc_appointment_book", "url": "https://hooks.slack.com/services/T/B/X",
             "method": "post", "content_type": "application/json", "status": "active",
             "payload": "{\"text\": \"{{patient_full_name}} with {{doctor_full_name}} at {{appointment_time}}\"}"},
            {"name": "Cancel + book", "events": ["kc_appointment_book", "kc_appointment_cancel"], "endpoint": "https://example.com/h",
             "auth_type": "basic", "username": "u", "password": "p", "headers": [{"key": "X-Clinic", "value": "{{clinic_name}}"}],
             "payload_type": "form", "body": "name={{patient_full_name}}&site={{site_url}}", "status": 0},
            {"name": "Paid", "event": "kc_encounter_bill_paid", "url": "https://example.com/p", "auth": {"type": "bearer", "token": "t0k"},
             "payload": "{\"amount\": \"{{actual_amount}}\"}"},
            {"name": "Nothing", "event": "kc_some_pro_hook", "url": "https://example.com/n"},
            {"name": "No url", "event": "kc_patient_save"},
            "junk"
        ]});
        let r = convert(&export).unwrap();
        let specs: Vec<&Value> = r.webhooks.iter().map(|c| &c.spec).collect();
        assert_eq!(specs.len(), 4, "{specs:#?}");
        assert!(specs.iter().all(|s| s["enabled"] == false));
        assert_eq!(specs[0]["events"], json!(["kc_appointment_book"]));
        assert_eq!(specs[0]["method"], "POST");
        assert_eq!(
            specs[0]["body"],
            "{\"text\": \"{{patient_name}} with {{doctor_name}} at {{appointment_start_time}}\"}"
        );
        assert_eq!(specs[1]["name"], "Cancel + book");
        assert_eq!(specs[1]["content_type"], "form");
        assert_eq!(
            specs[1]["auth"],
            json!({"type": "basic", "username": "u", "password": "p"})
        );
        assert_eq!(specs[1]["headers"], json!({"X-Clinic": "{{clinic_name}}"}));
        assert_eq!(specs[1]["body"], "name={{patient_name}}&site=");
        assert_eq!(specs[2]["name"], "Cancel + book (cancellations)");
        assert_eq!(specs[2]["events"], json!(["kc_appointment_status_change"]));
        assert_eq!(
            specs[2]["conditions"],
            json!([{"variable": "appointment_status", "op": "eq", "value": "cancelled"}])
        );
        assert_eq!(specs[3]["events"], json!(["kc_payment_add"]));
        assert_eq!(specs[3]["body"], "{\"amount\": \"{{bill_amount}}\"}");
        assert_eq!(specs[3]["auth"], json!({"type": "bearer", "token": "t0k"}));
        let notes = r.notes.join("\n");
        for expected in [
            "\"Cancel + book\": {{site_url}} has no carehook variable",
            "\"Cancel + book\": was disabled in the add-on",
            "\"Nothing\": event \"kc_some_pro_hook\" has no carehook equivalent",
            "\"Nothing\": no event carehook knows, skipped",
            "\"No url\": no URL, skipped",
            "webhook #6: not a JSON object, skipped",
        ] {
            assert!(
                notes.contains(expected),
                "missing {expected:?} in:\n{notes}"
            );
        }
    }

    #[test]
    fn a_file_that_is_not_an_export_is_refused() {
        assert!(convert(&json!({"name": "x"})).is_err());
        assert!(convert(&json!("x")).is_err());
        assert_eq!(convert(&json!([])).unwrap(), Report::default());
    }
}
