//! `carehook presets`: the guide's integrations, ready to fill in.

use std::io::Write;

use anyhow::Result;
use carehook_core::presets::{self, Preset, PresetAuth};

use crate::cli::UsageError;

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
                let hint = carehook_core::catalog::did_you_mean(
                    carehook_core::catalog::closest_name(id, ids),
                );
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
    };
    writeln!(out, "auth:         {auth}")?;
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_and_one_preset_print() {
        let mut buf = Vec::new();
        run(None, false, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text.lines().filter(|l| l.contains("_")).count(), 15);
        let mut buf = Vec::new();
        run(Some("twilio_sms_confirmation"), false, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.contains("values.from_number") && text.contains("Auth Token"),
            "{text}"
        );
        assert!(run(Some("slak"), false, &mut Vec::new()).is_err());
    }
}
