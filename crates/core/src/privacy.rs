//! Patient data leaving carehook: which variables a webhook sends, what its
//! destination may receive ([`DataPolicy`]), and the `pseudonym` filter's
//! keyed hash ([`Pseudonymizer`], in [`crate::pseudonym`]).
//!
//! Every catalog variable has a [`Sensitivity`]. A placeholder sends its
//! variable's sensitivity, except that `| pseudonym` turns an identifying
//! value into one that identifies no one outside carehook (`none`); a
//! pseudonym of a `phi` value stays `phi`, because equal pseudonyms still say
//! that two patients share a diagnosis or a prescription.
//!
//! Only the parts of a request that leave carehook count: the URL, headers,
//! query and body. Conditions are evaluated inside carehook and send nothing,
//! so they may read any variable.

use serde::{Deserialize, Serialize};

use crate::catalog::{self, Sensitivity};
pub use crate::pseudonym::Pseudonymizer;
use crate::template::{Filter, Placeholder, Position, Template};

/// Longest `basis` accepted, in characters.
pub const MAX_BASIS_CHARS: usize = 500;

/// What a webhook's destination may receive, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DataPolicy {
    /// May receive values that identify a patient (names, contact details,
    /// address, date of birth, patient id…).
    #[serde(default)]
    pub identifying: bool,
    /// May receive protected health information (reason for a visit,
    /// encounter summaries, medical records, prescriptions, blood group).
    #[serde(default)]
    pub phi: bool,
    /// Why this destination may receive it, e.g. "BAA signed 2026-03".
    /// Required when `identifying` or `phi` is true.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(example = "BAA with Acme signed 2026-03"))]
    pub basis: String,
}

impl DataPolicy {
    /// The smallest policy that lets `uses` go out.
    pub fn needed(uses: &[DataUse]) -> DataPolicy {
        DataPolicy {
            identifying: uses
                .iter()
                .any(|u| u.sensitivity == Sensitivity::Identifying),
            phi: uses.iter().any(|u| u.sensitivity == Sensitivity::Phi),
            basis: String::new(),
        }
    }

    pub fn allows(&self, s: Sensitivity) -> bool {
        match s {
            Sensitivity::None => true,
            Sensitivity::Identifying => self.identifying,
            Sensitivity::Phi => self.phi,
        }
    }

    /// A policy that lets patient data out says why; the basis is one
    /// bounded paragraph of text. The error is about `data_policy.basis`.
    pub fn validate(&self) -> Result<(), String> {
        let basis = self.basis.trim();
        if basis.chars().count() > MAX_BASIS_CHARS {
            return Err(format!(
                "the basis is longer than {MAX_BASIS_CHARS} characters"
            ));
        }
        if basis.chars().any(|c| c.is_control() && c != '\n') {
            return Err("the basis contains a control character".into());
        }
        if (self.identifying || self.phi) && basis.is_empty() {
            return Err(
                "say why this destination may receive patient data, e.g. \"BAA signed 2026-03\""
                    .into(),
            );
        }
        Ok(())
    }
}

/// One placeholder that sends a variable out, and what it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataUse {
    /// `url`, `body`, `headers.X-Clinic`, `query.cid`.
    pub field: String,
    #[serde(flatten)]
    pub position: Position,
    pub variable: String,
    /// After its filters: a pseudonymised identifying variable is `none`.
    pub sensitivity: Sensitivity,
}

/// What one placeholder sends: its variable's sensitivity, lowered from
/// identifying to none by a `pseudonym` filter.
pub fn placeholder_sensitivity(ph: &Placeholder) -> Sensitivity {
    let s = catalog::variable(&ph.var).map_or(Sensitivity::None, |v| v.sensitivity);
    let pseudonymised = ph.filters.iter().any(|f| matches!(f, Filter::Pseudonym(_)));
    if s == Sensitivity::Identifying && pseudonymised {
        Sensitivity::None
    } else {
        s
    }
}

/// Every placeholder of `templates` that sends patient data.
pub fn data_uses<'a>(templates: impl IntoIterator<Item = &'a Template>) -> Vec<DataUse> {
    let mut uses = Vec::new();
    for t in templates {
        for ph in t.placeholders() {
            let sensitivity = placeholder_sensitivity(ph);
            if sensitivity != Sensitivity::None {
                uses.push(DataUse {
                    field: t.field().to_string(),
                    position: ph.position,
                    variable: ph.var.to_string(),
                    sensitivity,
                });
            }
        }
    }
    uses
}

/// The variables of `uses`, each named once, in template order.
pub fn variable_names(uses: &[DataUse]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for u in uses {
        if !names.contains(&u.variable.as_str()) {
            names.push(&u.variable);
        }
    }
    names
}

/// The uses `policy` does not allow, in template order.
pub fn violations(policy: &DataPolicy, uses: &[DataUse]) -> Vec<DataUse> {
    uses.iter()
        .filter(|u| !policy.allows(u.sensitivity))
        .cloned()
        .collect()
}

/// One sentence naming every refused variable and where it stands, and
/// how to fix it. Values are never part of it: only names and places.
pub fn violation_message(refused: &[DataUse]) -> String {
    let list = |s: Sensitivity| {
        refused
            .iter()
            .filter(|u| u.sensitivity == s)
            .map(|u| {
                format!(
                    "{} ({}, line {}, column {})",
                    u.variable, u.field, u.position.line, u.position.column
                )
            })
            .collect::<Vec<_>>()
    };
    let mut parts = Vec::new();
    let identifying = list(Sensitivity::Identifying);
    if !identifying.is_empty() {
        parts.push(format!(
            "identifying data, but it sends {}",
            identifying.join(", ")
        ));
    }
    let phi = list(Sensitivity::Phi);
    if !phi.is_empty() {
        parts.push(format!(
            "health information (phi), but it sends {}",
            phi.join(", ")
        ));
    }
    format!(
        "this webhook's data_policy does not allow {}. Remove those variables, send an identifying id as {{{{ patient_id | pseudonym }}}}, or allow the data in data_policy with a basis (e.g. \"BAA signed 2026-03\")",
        parts.join("; nor ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Scope;
    use crate::template::{Context, compile};

    fn uses_of(source: &str) -> Vec<DataUse> {
        let scope = Scope::new(&["kc_prescription_add"]).unwrap();
        let t = compile(source, Context::JsonBody, "body", &scope)
            .unwrap()
            .template;
        data_uses([&t])
    }

    #[test]
    fn uses_name_each_variable_where_it_stands_and_pseudonym_lowers_identifying_only() {
        let uses = uses_of(
            "{\"n\": \"{{patient_name}}\",\n\"id\": \"{{ patient_id | pseudonym }}\",\n\"rx\": \"{{prescription_name}}\", \"h\": \"{{ prescription_name | pseudonym }}\", \"c\": \"{{clinic_name}}\"}",
        );
        let named: Vec<(&str, u32, u32, Sensitivity)> = uses
            .iter()
            .map(|u| {
                (
                    u.variable.as_str(),
                    u.position.line,
                    u.position.column,
                    u.sensitivity,
                )
            })
            .collect();
        assert_eq!(
            named,
            [
                ("patient_name", 1, 8, Sensitivity::Identifying),
                ("prescription_name", 3, 8, Sensitivity::Phi),
                ("prescription_name", 3, 38, Sensitivity::Phi),
            ]
        );
        let needed = DataPolicy::needed(&uses);
        assert!(needed.identifying && needed.phi);
        let only_phi = DataPolicy {
            phi: true,
            basis: "BAA".into(),
            ..DataPolicy::default()
        };
        let refused = violations(&only_phi, &uses);
        assert_eq!(refused.len(), 1);
        let message = violation_message(&refused);
        assert!(
            message
                .contains("identifying data, but it sends patient_name (body, line 1, column 8)"),
            "{message}"
        );
        assert!(!message.contains("phi)"), "{message}");
        assert!(violations(&needed, &uses).is_empty());
    }

    #[test]
    fn a_policy_that_lets_patient_data_out_needs_a_bounded_basis() {
        let mut p = DataPolicy {
            identifying: true,
            ..DataPolicy::default()
        };
        assert!(p.validate().unwrap_err().contains("say why"));
        p.basis = "BAA signed 2026-03".into();
        assert!(p.validate().is_ok());
        p.basis = "x".repeat(MAX_BASIS_CHARS + 1);
        assert!(p.validate().is_err());
        p.basis = "a\u{7}".into();
        assert!(p.validate().is_err());
        assert!(DataPolicy::default().validate().is_ok());
    }
}
