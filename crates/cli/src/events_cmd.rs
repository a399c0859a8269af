//! `carehook events`: the event catalog as a table or JSON.

use std::io::Write;

use anyhow::Result;
use carehook_core::catalog::{self, EventType};

use crate::UsageError;

pub fn run(event: Option<&str>, json: bool, out: &mut dyn Write) -> Result<()> {
    match event {
        None if json => writeln!(out, "{}", serde_json::to_string_pretty(catalog::events())?)?,
        None => print_events(out)?,
        Some(name) => {
            let Some(event) = catalog::lookup(name) else {
                let names = catalog::events().iter().map(|e| e.name);
                let hint = catalog::did_you_mean(catalog::closest_name(name, names));
                return Err(UsageError(format!(
                    "unknown event \"{name}\"{hint}; run `carehook events` to list them"
                ))
                .into());
            };
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(event)?)?;
            } else {
                print_event(event, out)?;
            }
        }
    }
    Ok(())
}

fn print_events(out: &mut dyn Write) -> Result<()> {
    let rows: Vec<[String; 4]> = catalog::events()
        .iter()
        .map(|e| {
            [
                e.name.to_string(),
                e.variables().count().to_string(),
                e.aliases.join(", "),
                e.description.to_string(),
            ]
        })
        .collect();
    table(out, ["EVENT", "VARIABLES", "ALIASES", "DESCRIPTION"], &rows)?;
    writeln!(
        out,
        "\n{} events. `carehook events NAME` shows an event's variables.",
        rows.len()
    )?;
    Ok(())
}

fn print_event(event: &EventType, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "{} — {}", event.name, event.description)?;
    if !event.aliases.is_empty() {
        writeln!(out, "Also accepted as: {}", event.aliases.join(", "))?;
    }
    writeln!(out)?;
    let rows: Vec<[String; 5]> = event
        .variables()
        .map(|v| {
            // The catalog's example event name is generic; here it is this one.
            let example = if v.name == "event_name" {
                event.name
            } else {
                v.example
            };
            [
                format!("{{{{{}}}}}", v.name),
                v.ty.describe().to_string(),
                v.sensitivity.to_string(),
                example.to_string(),
                v.description.to_string(),
            ]
        })
        .collect();
    table(
        out,
        ["VARIABLE", "TYPE", "SENSITIVITY", "EXAMPLE", "DESCRIPTION"],
        &rows,
    )?;
    writeln!(
        out,
        "\nSENSITIVITY: identifying = identifies a patient, phi = about their health or care; a webhook's data_policy says which it may send (docs/patient-data.md)."
    )?;
    Ok(())
}

/// A plain, aligned text table; the last column is left ragged.
fn table<const N: usize>(
    out: &mut dyn Write,
    header: [&str; N],
    rows: &[[String; N]],
) -> Result<()> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.extend(std::iter::repeat_n(
                    ' ',
                    widths[i] - cell.chars().count() + 2,
                ));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(event: Option<&str>, json: bool) -> Result<String> {
        let mut buf = Vec::new();
        run(event, json, &mut buf)?;
        Ok(String::from_utf8(buf)?)
    }

    #[test]
    fn the_catalog_table_lists_every_event() {
        let out = output(None, false).unwrap();
        for e in catalog::events() {
            assert!(
                out.lines().any(|l| l.starts_with(e.name)),
                "{} missing",
                e.name
            );
        }
        assert!(out.contains("kc_patient_save"));
    }

    #[test]
    fn one_event_lists_its_variables_with_examples() {
        let out = output(Some("kc_appointment_book"), false).unwrap();
        let event = catalog::lookup("kc_appointment_book").unwrap();
        for v in event.variables() {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{{{{{}}}}} ", v.name)))
                .unwrap();
            let example = if v.name == "event_name" {
                event.name
            } else {
                v.example
            };
            assert!(line.contains(example), "{line}");
            // Columns are two or more spaces apart.
            let sensitivity = line
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .nth(2);
            assert_eq!(sensitivity, Some(v.sensitivity.as_str()), "{line}");
        }
    }

    #[test]
    fn json_output_parses_and_aliases_resolve() {
        let all: serde_json::Value = serde_json::from_str(&output(None, true).unwrap()).unwrap();
        assert_eq!(all.as_array().unwrap().len(), catalog::events().len());
        let one: serde_json::Value =
            serde_json::from_str(&output(Some("kc_patient_save"), true).unwrap()).unwrap();
        assert_eq!(one["name"], "kc_patient_add");
        let patient = &one["groups"][2];
        assert_eq!(patient["name"], "patient");
        assert_eq!(patient["variables"][1]["name"], "patient_name");
        assert_eq!(patient["variables"][1]["sensitivity"], "identifying");
    }

    #[test]
    fn an_unknown_event_is_a_usage_error_with_a_suggestion() {
        let e = output(Some("kc_apointment_book"), false).unwrap_err();
        assert!(
            e.to_string()
                .contains("did you mean \"kc_appointment_book\""),
            "{e}"
        );
        assert_eq!(crate::exit_code(&e), 2);
    }
}
