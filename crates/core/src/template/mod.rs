//! `{{ variable }}` templates, compiled once and rendered per context.
//!
//! A clinic admin writes one template per part of the request (URL, each
//! header, each query parameter, the body). Compiling reads the template's
//! structure *once*, when the webhook is saved, and decides for every
//! placeholder how its value must be escaped where it stands:
//!
//! | context | placeholder inside … | value is written as |
//! |---|---|---|
//! | JSON body | a JSON string | JSON string content (`"` → `\"`) |
//! | JSON body | a value position (no quotes) | a JSON number, or a quoted string |
//! | form body | a key or a value | form-encoded (`&`, `=`, `+`, space) |
//! | URL | the path | one percent-encoded path segment |
//! | URL | the query or fragment | a percent-encoded query component |
//! | header | anywhere | as is; CR, LF or another control character is an error |
//!
//! So no value, whatever it holds, can change the shape of the request: it
//! cannot close a JSON string, add a form field, add a path segment or a query
//! parameter, or start a second header. Rendering never re-parses: it walks a
//! list of literal pieces and escaped values.

mod filter;
mod parse;
mod validate;

use std::borrow::Cow;
use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

pub use filter::{FILTER_NAMES, Filter, PSEUDONYM_WITHOUT_KEY};
pub use parse::{MAX_TEMPLATE_BYTES, Placeholder};
pub use validate::{Compiled, TemplateWarning, compile};

use crate::Vars;
use crate::pseudonym::Pseudonymizer;
use parse::{Segment, position_of, segments};

/// Where a template's output goes; decides how values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Context {
    JsonBody,
    FormBody,
    Url,
    Header,
    Text,
}

/// A place in a template: 1-based line and column, counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

/// What kind of mistake a template has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Syntax,
    TooLarge,
    UnknownFilter,
    UnknownVariable,
    InvalidJson,
    InvalidForm,
    InvalidUrl,
    InvalidHeader,
}

/// A template that cannot be saved: which field, where, and why, in words a
/// clinic admin can act on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateError {
    /// The part of the webhook: `body`, `url`, `headers.X-Clinic`, `query.api_key`.
    pub field: String,
    #[serde(flatten)]
    pub position: Position,
    pub kind: ErrorKind,
    pub message: String,
    /// The variable the error is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variable: Option<String>,
}

impl TemplateError {
    pub(crate) fn new(field: &str, position: Position, kind: ErrorKind, message: String) -> Self {
        TemplateError {
            field: field.to_string(),
            position,
            kind,
            message,
            variable: None,
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, line {}, column {}: {}",
            self.field, self.position.line, self.position.column, self.message
        )
    }
}

impl std::error::Error for TemplateError {}

/// A value that cannot be sent where its template puts it (a header value
/// with a line break, a path segment of `..`). The delivery fails with this
/// message; the request is never sent in a broken shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderError {
    pub field: String,
    pub variable: String,
    pub message: String,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for RenderError {}

/// How one placeholder's value is written into the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Text and header contexts, and form pieces (encoded per field later).
    Raw,
    /// Inside a JSON string literal.
    JsonString,
    /// In a JSON value position; `number` once validation knows the
    /// variable is numeric.
    JsonValue { number: bool },
    /// In a URL path.
    PathSegment,
    /// In a URL query or fragment.
    QueryComponent,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(Box<str>),
    Value(Placeholder, Escape),
}

#[derive(Debug, Clone, PartialEq)]
struct FormField {
    key: Vec<Part>,
    value: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Body {
    Parts(Vec<Part>),
    Form(Vec<FormField>),
}

/// A compiled template: ready to render, with no parsing left to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    context: Context,
    field: Box<str>,
    body: Body,
    /// Literal bytes plus a guess per value, to size the output once.
    size_hint: usize,
}

/// Everything outside unreserved characters is encoded, so a value decodes
/// back to itself wherever it stands in a URL.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The most placeholders one template may hold: with the 64 KiB source
/// limit and values of up to 64 KiB, it is what keeps a small template from
/// asking for a huge render.
pub const MAX_PLACEHOLDERS: usize = 1024;
/// The most bytes a rendered body may have; a render that would pass it
/// stops there and the request is not sent (permanently: the same event
/// renders the same way every time).
pub const MAX_RENDERED_BODY: usize = 1024 * 1024;
/// The most bytes a rendered URL (query included) may have: beyond this,
/// servers and proxies refuse it anyway.
pub const MAX_RENDERED_URL: usize = 8 * 1024;
/// The most bytes one rendered header value may have.
pub const MAX_RENDERED_HEADER: usize = 8 * 1024;

impl Context {
    /// The most bytes a template of this context renders to. (`Text` is a
    /// text body, and a query value, which the URL's limit bounds again.)
    pub fn render_limit(self) -> usize {
        match self {
            Context::Url => MAX_RENDERED_URL,
            Context::Header => MAX_RENDERED_HEADER,
            Context::JsonBody | Context::FormBody | Context::Text => MAX_RENDERED_BODY,
        }
    }
}

impl Template {
    /// Reads a template's structure for its context. Variables are not
    /// checked against any event here; [`compile`] does that.
    pub fn parse(source: &str, context: Context, field: &str) -> Result<Template, TemplateError> {
        let segs = segments(source, field)?;
        let body = match context {
            Context::JsonBody => Body::Parts(json_parts(source, &segs, field)?),
            Context::FormBody => Body::Form(form_fields(source, &segs, field)?),
            Context::Url => Body::Parts(url_parts(source, &segs, field)?),
            Context::Header => {
                if let Some(i) = source.find(|c: char| c.is_control() && c != '\t') {
                    return Err(TemplateError::new(
                        field,
                        position_of(source, i),
                        ErrorKind::InvalidHeader,
                        "a header value must be one line without control characters".into(),
                    ));
                }
                Body::Parts(plain_parts(source, &segs))
            }
            Context::Text => Body::Parts(plain_parts(source, &segs)),
        };
        let placeholders = segs
            .iter()
            .filter(|s| matches!(s, Segment::Placeholder { .. }))
            .count();
        if placeholders > MAX_PLACEHOLDERS {
            return Err(TemplateError::new(
                field,
                Position { line: 1, column: 1 },
                ErrorKind::TooLarge,
                format!(
                    "the template has {placeholders} placeholders; the limit is {MAX_PLACEHOLDERS}"
                ),
            ));
        }
        let mut t = Template {
            context,
            field: field.into(),
            body,
            size_hint: 0,
        };
        t.size_hint = t
            .parts()
            .map(|p| match p {
                Part::Literal(s) => s.len(),
                Part::Value(..) => 24,
            })
            .sum();
        Ok(t)
    }

    pub fn context(&self) -> Context {
        self.context
    }

    pub fn field(&self) -> &str {
        &self.field
    }

    /// The placeholders in the order they appear.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.parts().filter_map(|p| match p {
            Part::Value(ph, _) => Some(ph),
            Part::Literal(_) => None,
        })
    }

    /// True when the template has no placeholder (its output never changes).
    pub fn is_constant(&self) -> bool {
        self.placeholders().next().is_none()
    }

    fn parts(&self) -> Box<dyn Iterator<Item = &Part> + '_> {
        match &self.body {
            Body::Parts(parts) => Box::new(parts.iter()),
            Body::Form(fields) => Box::new(
                fields
                    .iter()
                    .flat_map(|f| f.key.iter().chain(f.value.iter())),
            ),
        }
    }

    fn parts_mut(&mut self) -> Box<dyn Iterator<Item = &mut Part> + '_> {
        match &mut self.body {
            Body::Parts(parts) => Box::new(parts.iter_mut()),
            Body::Form(fields) => Box::new(
                fields
                    .iter_mut()
                    .flat_map(|f| f.key.iter_mut().chain(f.value.iter_mut())),
            ),
        }
    }

    /// Renders with an event's variables. A variable missing from `vars`
    /// renders as empty text (or `null` in a JSON value position). Without
    /// a key, a `pseudonym` renders as [`PSEUDONYM_WITHOUT_KEY`].
    pub fn render(&self, vars: &Vars) -> Result<String, RenderError> {
        self.render_with(vars, None)
    }

    /// Renders with the installation's pseudonym key, when there is one.
    pub fn render_with(
        &self,
        vars: &Vars,
        key: Option<&Pseudonymizer>,
    ) -> Result<String, RenderError> {
        let mut out = String::with_capacity(self.size_hint);
        self.render_into_with(vars, key, &mut out)?;
        Ok(out)
    }

    /// Renders into `out`, appending; lets a caller reuse one buffer.
    /// Stops with an error as soon as the output passes the context's
    /// [`Context::render_limit`], so a render never holds much more than
    /// the limit (the error names the limit, never a value).
    pub fn render_into(&self, vars: &Vars, out: &mut String) -> Result<(), RenderError> {
        self.render_into_with(vars, None, out)
    }

    fn render_into_with(
        &self,
        vars: &Vars,
        pseudonyms: Option<&Pseudonymizer>,
        out: &mut String,
    ) -> Result<(), RenderError> {
        let limit = out.len().saturating_add(self.context.render_limit());
        let too_large = |variable: &str| RenderError {
            field: self.field.to_string(),
            variable: variable.to_string(),
            message: format!(
                "the rendered {} would be over {} bytes, the most carehook sends; the request was not sent",
                self.field,
                self.context.render_limit()
            ),
        };
        match &self.body {
            Body::Parts(parts) => {
                for part in parts {
                    match part {
                        Part::Literal(s) => out.push_str(s),
                        Part::Value(ph, escape) => {
                            let value = value_of(ph, vars, pseudonyms);
                            self.write_value(ph, *escape, &value, out)?;
                            if out.len() > limit {
                                return Err(too_large(&ph.var));
                            }
                        }
                    }
                }
                if out.len() > limit {
                    return Err(too_large(""));
                }
            }
            Body::Form(fields) => {
                let mut key = String::new();
                let mut value = String::new();
                for (i, field) in fields.iter().enumerate() {
                    key.clear();
                    value.clear();
                    let room = self.context.render_limit();
                    if !concat_raw(&field.key, vars, pseudonyms, &mut key, room)
                        || !concat_raw(&field.value, vars, pseudonyms, &mut value, room)
                    {
                        return Err(too_large(""));
                    }
                    if i > 0 {
                        out.push('&');
                    }
                    out.extend(form_urlencoded::byte_serialize(key.as_bytes()));
                    out.push('=');
                    out.extend(form_urlencoded::byte_serialize(value.as_bytes()));
                    if out.len() > limit {
                        return Err(too_large(""));
                    }
                }
            }
        }
        Ok(())
    }

    fn write_value(
        &self,
        ph: &Placeholder,
        escape: Escape,
        value: &str,
        out: &mut String,
    ) -> Result<(), RenderError> {
        match escape {
            Escape::Raw => {
                if self.context == Context::Header
                    && let Some(c) = value.chars().find(|c| c.is_control() && *c != '\t')
                {
                    return Err(RenderError {
                        field: self.field.to_string(),
                        variable: ph.var.to_string(),
                        message: format!(
                            "the value of {} contains a control character (U+{:04X}); a header value must be one line, so the request was not sent",
                            ph.var, c as u32
                        ),
                    });
                }
                out.push_str(value);
            }
            Escape::JsonString => push_json_string_content(value, out),
            Escape::JsonValue { number } => {
                if number && is_json_number(value) {
                    out.push_str(value);
                } else if number && value.is_empty() {
                    out.push_str("null");
                } else {
                    out.push('"');
                    push_json_string_content(value, out);
                    out.push('"');
                }
            }
            Escape::PathSegment => {
                if value == "." || value == ".." {
                    return Err(RenderError {
                        field: self.field.to_string(),
                        variable: ph.var.to_string(),
                        message: format!(
                            "the value of {} is \"{value}\", which would change the URL's path instead of naming a segment; the request was not sent",
                            ph.var
                        ),
                    });
                }
                out.extend(utf8_percent_encode(value, URL_COMPONENT));
            }
            Escape::QueryComponent => out.extend(utf8_percent_encode(value, URL_COMPONENT)),
        }
        Ok(())
    }
}

/// A placeholder's value after its filters; `pseudonym` uses `key`.
fn value_of<'a>(ph: &'a Placeholder, vars: &'a Vars, key: Option<&Pseudonymizer>) -> Cow<'a, str> {
    let raw = vars.get(&*ph.var).map_or("", String::as_str);
    ph.filters
        .iter()
        .fold(Cow::Borrowed(raw), |v, f| match (f, key) {
            (Filter::Pseudonym(label), Some(key)) => Cow::Owned(key.pseudonym(label, &v)),
            _ => f.apply(v),
        })
}

/// Appends the parts; false (and stops) once `out` passes `limit` bytes.
fn concat_raw(
    parts: &[Part],
    vars: &Vars,
    key: Option<&Pseudonymizer>,
    out: &mut String,
    limit: usize,
) -> bool {
    for part in parts {
        match part {
            Part::Literal(s) => out.push_str(s),
            Part::Value(ph, _) => out.push_str(&value_of(ph, vars, key)),
        }
        if out.len() > limit {
            return false;
        }
    }
    true
}

/// Writes `value` as the inside of a JSON string literal.
fn push_json_string_content(value: &str, out: &mut String) {
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&value[start..i]);
        if escaped.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escaped);
        }
        start = i + 1;
    }
    out.push_str(&value[start..]);
}

/// The JSON number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let digits = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == digits {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let digits = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == digits {
            return false;
        }
    }
    i == b.len()
}

fn plain_parts(source: &str, segs: &[Segment]) -> Vec<Part> {
    segs.iter()
        .map(|s| match s {
            Segment::Literal { start, end } => Part::Literal(source[*start..*end].into()),
            Segment::Placeholder { placeholder, .. } => {
                Part::Value(placeholder.clone(), Escape::Raw)
            }
        })
        .collect()
}

/// JSON body: finds which placeholders stand inside strings, then proves the
/// template is JSON by parsing a probe of the same byte layout in which each
/// placeholder is replaced by filler (`x…` inside a string, `0   ` outside).
/// A parse error's line and column therefore point into the admin's template.
fn json_parts(source: &str, segs: &[Segment], field: &str) -> Result<Vec<Part>, TemplateError> {
    if source.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut parts = Vec::with_capacity(segs.len());
    let mut probe = String::with_capacity(source.len());
    let mut in_string = false;
    let mut escaped = false;
    for seg in segs {
        match seg {
            Segment::Literal { start, end } => {
                let text = &source[*start..*end];
                for &b in text.as_bytes() {
                    if escaped {
                        escaped = false;
                    } else if in_string && b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_string = !in_string;
                    }
                }
                probe.push_str(text);
                parts.push(Part::Literal(text.into()));
            }
            Segment::Placeholder {
                start,
                end,
                placeholder,
            } => {
                if escaped {
                    return Err(TemplateError::new(
                        field,
                        placeholder.position,
                        ErrorKind::InvalidJson,
                        "a placeholder cannot follow a backslash inside a JSON string".into(),
                    ));
                }
                let len = end - start;
                if in_string {
                    probe.extend(std::iter::repeat_n('x', len));
                    parts.push(Part::Value(placeholder.clone(), Escape::JsonString));
                } else {
                    probe.push('0');
                    probe.extend(std::iter::repeat_n(' ', len - 1));
                    parts.push(Part::Value(
                        placeholder.clone(),
                        Escape::JsonValue { number: false },
                    ));
                }
            }
        }
    }
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&probe) {
        let offset = byte_offset(source, e.line(), e.column());
        let mut message = e.to_string();
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        return Err(TemplateError::new(
            field,
            position_of(source, offset),
            ErrorKind::InvalidJson,
            format!(
                "the body is not valid JSON: {message}. Put each {{{{placeholder}}}} inside quotes, or where a JSON value goes"
            ),
        ));
    }
    // Merge adjacent literals so rendering pushes fewer pieces.
    Ok(merge_literals(parts))
}

/// serde_json reports 1-based lines and byte columns; turn that back into a
/// byte offset on a character boundary.
fn byte_offset(source: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for _ in 1..line {
        match source[offset..].find('\n') {
            Some(i) => offset += i + 1,
            None => return source.len(),
        }
    }
    let mut at = (offset + column.saturating_sub(1)).min(source.len());
    while !source.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn merge_literals(parts: Vec<Part>) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::with_capacity(parts.len());
    for p in parts {
        if let (Some(Part::Literal(prev)), Part::Literal(next)) = (out.last_mut(), &p) {
            let mut joined = String::from(&**prev);
            joined.push_str(next);
            *prev = joined.into();
            continue;
        }
        out.push(p);
    }
    out
}

/// Form body: `key=value` per line (the guide's style), or `a=b&c=d` on a
/// single line. Keys and values are the admin's plain text; carehook does all
/// the encoding, so `%20` written in a template arrives as `%20`, literally.
fn form_fields(
    source: &str,
    segs: &[Segment],
    field: &str,
) -> Result<Vec<FormField>, TemplateError> {
    // Pieces of each line: (byte offset, part).
    let mut lines: Vec<Vec<(usize, Part)>> = vec![Vec::new()];
    for seg in segs {
        match seg {
            Segment::Literal { start, end } => {
                let mut piece_start = *start;
                for (i, c) in source[*start..*end].char_indices() {
                    if c == '\n' {
                        let at = start + i;
                        if at > piece_start {
                            let text = source[piece_start..at].trim_end_matches('\r');
                            lines
                                .last_mut()
                                .unwrap()
                                .push((piece_start, Part::Literal(text.into())));
                        }
                        lines.push(Vec::new());
                        piece_start = at + 1;
                    }
                }
                if *end > piece_start {
                    lines
                        .last_mut()
                        .unwrap()
                        .push((piece_start, Part::Literal(source[piece_start..*end].into())));
                }
            }
            Segment::Placeholder {
                start, placeholder, ..
            } => {
                lines
                    .last_mut()
                    .unwrap()
                    .push((*start, Part::Value(placeholder.clone(), Escape::Raw)));
            }
        }
    }
    let is_blank = |line: &Vec<(usize, Part)>| {
        line.iter()
            .all(|(_, p)| matches!(p, Part::Literal(s) if s.trim().is_empty()))
    };
    let lines: Vec<_> = lines.into_iter().filter(|l| !is_blank(l)).collect();
    // One line with `&` between literal pieces: query-string style.
    let pieces_of_fields: Vec<Vec<(usize, Part)>> = if lines.len() == 1 {
        let mut fields = vec![Vec::new()];
        for (at, part) in lines.into_iter().next().unwrap_or_default() {
            match part {
                Part::Literal(text) => {
                    let mut offset = at;
                    for (i, piece) in text.split('&').enumerate() {
                        if i > 0 {
                            fields.push(Vec::new());
                        }
                        if !piece.is_empty() {
                            fields
                                .last_mut()
                                .unwrap()
                                .push((offset, Part::Literal(piece.into())));
                        }
                        offset += piece.len() + 1;
                    }
                }
                value => fields.last_mut().unwrap().push((at, value)),
            }
        }
        fields.into_iter().filter(|f| !f.is_empty()).collect()
    } else {
        lines
    };
    let mut out = Vec::with_capacity(pieces_of_fields.len());
    for pieces in pieces_of_fields {
        let first_at = pieces.first().map_or(0, |(at, _)| *at);
        let mut key = Vec::new();
        let mut value = Vec::new();
        let mut seen_eq = false;
        for (_, part) in pieces {
            match part {
                Part::Literal(text) if !seen_eq => match text.find('=') {
                    Some(i) => {
                        seen_eq = true;
                        if i > 0 {
                            key.push(Part::Literal(text[..i].into()));
                        }
                        if i + 1 < text.len() {
                            value.push(Part::Literal(text[i + 1..].into()));
                        }
                    }
                    None => key.push(Part::Literal(text)),
                },
                part if seen_eq => value.push(part),
                part => key.push(part),
            }
        }
        if !seen_eq {
            return Err(TemplateError::new(
                field,
                position_of(source, first_at),
                ErrorKind::InvalidForm,
                "this form line has no `=`: write one field per line as key=value, e.g. To={{patient_contact_number}}".into(),
            ));
        }
        // Keys are trimmed: `To = x` means the field `To`.
        if let Some(Part::Literal(first)) = key.first_mut() {
            *first = first.trim_start().into();
        }
        if let Some(Part::Literal(last)) = key.last_mut() {
            *last = last.trim_end().into();
        }
        if key
            .iter()
            .all(|p| matches!(p, Part::Literal(s) if s.is_empty()))
        {
            return Err(TemplateError::new(
                field,
                position_of(source, first_at),
                ErrorKind::InvalidForm,
                "this form field has an empty name before `=`".into(),
            ));
        }
        out.push(FormField { key, value });
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlPart {
    Scheme,
    Authority,
    Path,
    Query,
}

/// URL: placeholders may stand in the path (one segment's worth) or the
/// query; never in the scheme or the host, which decide where patient data
/// goes and are checked when the webhook is saved.
fn url_parts(source: &str, segs: &[Segment], field: &str) -> Result<Vec<Part>, TemplateError> {
    let lower = source.to_ascii_lowercase();
    let scheme_len = if lower.starts_with("https://") {
        8
    } else if lower.starts_with("http://") {
        7
    } else {
        return Err(TemplateError::new(
            field,
            Position { line: 1, column: 1 },
            ErrorKind::InvalidUrl,
            "the URL must start with https:// (or http://)".into(),
        ));
    };
    let mut parts = Vec::with_capacity(segs.len());
    let mut probe = String::with_capacity(source.len());
    // Which part of the URL we are in, judged by the literal text so far
    // (a filter argument like "%d/%m" inside a placeholder is not a `/`).
    let mut part = UrlPart::Scheme;
    let mut literal_len = 0;
    for seg in segs {
        match seg {
            Segment::Literal { start, end } => {
                let text = &source[*start..*end];
                for (i, c) in text.char_indices() {
                    let at = literal_len + i;
                    part = match (part, c) {
                        (UrlPart::Scheme, _) if at + 1 >= scheme_len => UrlPart::Authority,
                        (UrlPart::Scheme, _) => UrlPart::Scheme,
                        (UrlPart::Authority, '/') => UrlPart::Path,
                        (UrlPart::Authority | UrlPart::Path, '?' | '#') => UrlPart::Query,
                        (p, _) => p,
                    };
                }
                literal_len += text.len();
                probe.push_str(text);
                parts.push(Part::Literal(text.into()));
            }
            Segment::Placeholder { placeholder, .. } => {
                let escape = match part {
                    UrlPart::Scheme | UrlPart::Authority => {
                        return Err(TemplateError::new(
                            field,
                            placeholder.position,
                            ErrorKind::InvalidUrl,
                            format!(
                                "{{{{{}}}}} stands in the URL's host; a variable may only stand in the path or the query, so patient data cannot choose where a request goes",
                                placeholder.var
                            ),
                        ));
                    }
                    UrlPart::Path => Escape::PathSegment,
                    UrlPart::Query => Escape::QueryComponent,
                };
                probe.push('x');
                parts.push(Part::Value(placeholder.clone(), escape));
            }
        }
    }
    match url::Url::parse(&probe) {
        // `https://user:pass@host/` would keep a password in plain text
        // wherever the URL goes (answers, the attempt log, the UI).
        Ok(u) if !u.username().is_empty() || u.password().is_some() => Err(TemplateError::new(
            field,
            Position { line: 1, column: 1 },
            ErrorKind::InvalidUrl,
            "the URL carries a user name or password; use auth instead (basic, bearer or an API key), which is stored sealed and masked in every answer and log".into(),
        )),
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Ok(parts),
        Ok(_) => Err(TemplateError::new(
            field,
            Position { line: 1, column: 1 },
            ErrorKind::InvalidUrl,
            "the URL has no host".into(),
        )),
        Err(e) => Err(TemplateError::new(
            field,
            Position { line: 1, column: 1 },
            ErrorKind::InvalidUrl,
            format!("the URL is not valid: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests;
