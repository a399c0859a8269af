//! Checking a template's variables against the events its webhook subscribes to.

use serde::Serialize;

use super::{Context, ErrorKind, Escape, Part, Position, Template, TemplateError};
use crate::catalog::{Presence, Scope, VarType};

/// A template that is saved, with what the admin should still know.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub template: Template,
    pub warnings: Vec<TemplateWarning>,
}

/// Something that works but may surprise: a variable that only some of the
/// subscribed events carry renders empty for the others.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateWarning {
    pub field: String,
    #[serde(flatten)]
    pub position: Position,
    pub variable: String,
    pub message: String,
}

/// Parses a template for its context and checks it against the subscribed
/// events: the one call a webhook save makes per field.
pub fn compile(
    source: &str,
    context: Context,
    field: &str,
    scope: &Scope,
) -> Result<Compiled, TemplateError> {
    let mut template = Template::parse(source, context, field)?;
    let warnings = template.check(scope)?;
    Ok(Compiled { template, warnings })
}

impl Template {
    /// Checks every placeholder's variable against `scope`, and lets a JSON
    /// value placeholder of a numeric variable render as a number.
    pub fn check(&mut self, scope: &Scope) -> Result<Vec<TemplateWarning>, TemplateError> {
        let field = self.field.to_string();
        let mut warnings = Vec::new();
        for part in self.parts_mut() {
            let Part::Value(ph, escape) = part else {
                continue;
            };
            match scope.presence(&ph.var) {
                Presence::All => {}
                Presence::Some => warnings.push(TemplateWarning {
                    field: field.clone(),
                    position: ph.position,
                    variable: ph.var.to_string(),
                    message: format!(
                        "{} is not part of {}; it renders empty for those events",
                        ph.var,
                        scope.events_lacking(&ph.var).join(", ")
                    ),
                }),
                Presence::None => {
                    return Err(TemplateError {
                        field,
                        position: ph.position,
                        kind: ErrorKind::UnknownVariable,
                        message: unknown_variable_message(&ph.var, scope),
                        variable: Some(ph.var.to_string()),
                    });
                }
            }
            if let Escape::JsonValue { number } = escape {
                // Numeric variables, and values the `unix` filter turned into
                // seconds, stand as JSON numbers.
                *number = matches!(
                    scope.var_type(&ph.var),
                    Some(VarType::Integer | VarType::Decimal)
                ) || matches!(ph.filters.last(), Some(super::Filter::Unix));
            }
        }
        Ok(warnings)
    }
}

fn unknown_variable_message(var: &str, scope: &Scope) -> String {
    let names = scope.events().iter().map(|e| e.name).collect::<Vec<_>>();
    let (subscribed, verb) = match names.len() {
        1 => (names[0].to_string(), "carries"),
        2..=3 => (names.join(", "), "carry"),
        _ => ("the subscribed events".to_string(), "carry"),
    };
    let mut message = format!("unknown variable \"{var}\": {subscribed} {verb} no such variable");
    let suggestion = crate::catalog::closest_name(var, scope.variable_names());
    if suggestion.is_some() {
        message.push_str(&crate::catalog::did_you_mean(suggestion));
    } else if crate::catalog::variable(var).is_some() {
        message.push_str(" (other events have it: subscribe to one of those to use it)");
    }
    message
}
