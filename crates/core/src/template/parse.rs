//! The placeholder grammar, shared by every rendering context.
//!
//! A template is literal text with placeholders: `{{ name }}` or
//! `{{ name | filter: "argument" | other }}`. Literal text is never
//! interpreted here; each context (JSON, form, URL…) decides what literal
//! text means. `{{` always opens a placeholder; a lone `}}` is literal.

use super::{ErrorKind, Filter, Position, TemplateError};

/// The largest template carehook accepts, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// A placeholder as written, before a context decides how to escape it.
#[derive(Debug, Clone, PartialEq)]
pub struct Placeholder {
    pub var: Box<str>,
    pub filters: Vec<Filter>,
    /// Where the `{{` stands (1-based line and column, in characters).
    pub position: Position,
}

/// A piece of a template: literal text (a byte range of the source) or a
/// placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Literal {
        start: usize,
        end: usize,
    },
    Placeholder {
        start: usize,
        end: usize,
        placeholder: Placeholder,
    },
}

/// Splits a template into literal ranges and parsed placeholders.
pub fn segments(source: &str, field: &str) -> Result<Vec<Segment>, TemplateError> {
    if source.len() > MAX_TEMPLATE_BYTES {
        return Err(TemplateError::new(
            field,
            Position { line: 1, column: 1 },
            ErrorKind::TooLarge,
            format!(
                "the template is {} bytes; the limit is {} bytes (64 KiB)",
                source.len(),
                MAX_TEMPLATE_BYTES
            ),
        ));
    }
    let mut out = Vec::new();
    let mut rest_start = 0;
    while let Some(found) = source[rest_start..].find("{{") {
        let open = rest_start + found;
        if open > rest_start {
            out.push(Segment::Literal {
                start: rest_start,
                end: open,
            });
        }
        let inner_start = open + 2;
        let close = match source[inner_start..].find("}}") {
            Some(i) => inner_start + i,
            None => {
                return Err(TemplateError::new(
                    field,
                    position_of(source, open),
                    ErrorKind::Syntax,
                    "this `{{` is never closed: add `}}` after the variable name".into(),
                ));
            }
        };
        let inner = &source[inner_start..close];
        if let Some(nl) = inner.find(['\n', '\r']) {
            return Err(TemplateError::new(
                field,
                position_of(source, inner_start + nl),
                ErrorKind::Syntax,
                "a placeholder must fit on one line: close `{{` with `}}` before the line ends"
                    .into(),
            ));
        }
        let placeholder =
            parse_placeholder(source, inner_start, inner, field, position_of(source, open))?;
        out.push(Segment::Placeholder {
            start: open,
            end: close + 2,
            placeholder,
        });
        rest_start = close + 2;
    }
    if rest_start < source.len() {
        out.push(Segment::Literal {
            start: rest_start,
            end: source.len(),
        });
    }
    Ok(out)
}

/// 1-based line and column (in characters) of a byte offset.
pub fn position_of(source: &str, offset: usize) -> Position {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = source[line_start..offset].chars().count() + 1;
    Position {
        line: line as u32,
        column: column as u32,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token<'a> {
    Ident(&'a str),
    Str(String),
    Number(&'a str),
    Pipe,
    Colon,
    Comma,
}

/// Tokens of a placeholder's inside, each with its byte offset in the source.
fn tokenize<'a>(
    source: &str,
    base: usize,
    inner: &'a str,
    field: &str,
) -> Result<Vec<(Token<'a>, usize)>, TemplateError> {
    let mut tokens = Vec::new();
    let bytes = inner.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let at = base + i;
        match c {
            b' ' | b'\t' => i += 1,
            b'|' => {
                tokens.push((Token::Pipe, at));
                i += 1;
            }
            b':' => {
                tokens.push((Token::Colon, at));
                i += 1;
            }
            b',' => {
                tokens.push((Token::Comma, at));
                i += 1;
            }
            b'"' | b'\'' => {
                let quote = c;
                let mut value = String::new();
                let mut j = i + 1;
                let mut closed = false;
                while j < bytes.len() {
                    let ch = inner[j..].chars().next().unwrap_or('\0');
                    if ch as u32 == quote as u32 {
                        closed = true;
                        j += 1;
                        break;
                    }
                    if ch == '\\' {
                        let next = inner[j + 1..].chars().next();
                        match next {
                            Some(n @ ('\\' | '"' | '\'')) => {
                                value.push(n);
                                j += 2;
                            }
                            Some('n') => {
                                value.push('\n');
                                j += 2;
                            }
                            Some('t') => {
                                value.push('\t');
                                j += 2;
                            }
                            _ => {
                                return Err(TemplateError::new(
                                    field,
                                    position_of(source, base + j),
                                    ErrorKind::Syntax,
                                    "unknown escape in a quoted argument: use \\\\, \\\", \\', \\n or \\t".into(),
                                ));
                            }
                        }
                        continue;
                    }
                    value.push(ch);
                    j += ch.len_utf8();
                }
                if !closed {
                    return Err(TemplateError::new(
                        field,
                        position_of(source, at),
                        ErrorKind::Syntax,
                        "this quoted argument is never closed".into(),
                    ));
                }
                tokens.push((Token::Str(value), at));
                i = j;
            }
            // `date: \"%d/%m/%Y\"`: an argument quoted as it must be
            // inside a JSON string, read as the same quoted argument.
            b'\\' if bytes.get(i + 1) == Some(&b'"') => {
                let Some(len) = inner[i + 2..].find("\\\"") else {
                    return Err(TemplateError::new(
                        field,
                        position_of(source, at),
                        ErrorKind::Syntax,
                        "this quoted argument is never closed: end it with \\\" as it began".into(),
                    ));
                };
                tokens.push((Token::Str(inner[i + 2..i + 2 + len].to_string()), at));
                i += 2 + len + 2;
            }
            b'0'..=b'9' | b'-' => {
                let mut j = i + 1;
                while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b'.') {
                    j += 1;
                }
                tokens.push((Token::Number(&inner[i..j]), at));
                i = j;
            }
            c if c == b'_' || c.is_ascii_alphabetic() => {
                let mut j = i + 1;
                while j < bytes.len() && (bytes[j] == b'_' || bytes[j].is_ascii_alphanumeric()) {
                    j += 1;
                }
                tokens.push((Token::Ident(&inner[i..j]), at));
                i = j;
            }
            _ => {
                let ch = inner[i..].chars().next().unwrap_or('?');
                return Err(TemplateError::new(
                    field,
                    position_of(source, at),
                    ErrorKind::Syntax,
                    format!(
                        "unexpected `{ch}` in a placeholder: write `{{{{ variable_name }}}}` or `{{{{ variable_name | filter: \"argument\" }}}}`"
                    ),
                ));
            }
        }
    }
    Ok(tokens)
}

fn parse_placeholder(
    source: &str,
    base: usize,
    inner: &str,
    field: &str,
    position: Position,
) -> Result<Placeholder, TemplateError> {
    let tokens = tokenize(source, base, inner, field)?;
    let err = |offset: usize, msg: String| {
        Err(TemplateError::new(
            field,
            position_of(source, offset),
            ErrorKind::Syntax,
            msg,
        ))
    };
    let mut it = tokens.into_iter().peekable();
    let var = match it.next() {
        Some((Token::Ident(name), _)) => name,
        Some((_, at)) => {
            return err(
                at,
                "a placeholder must start with a variable name, like `{{ patient_name }}`".into(),
            );
        }
        None => {
            return err(
                base,
                "empty placeholder `{{}}`: put a variable name inside, like `{{ patient_name }}`"
                    .into(),
            );
        }
    };
    let mut filters = Vec::new();
    while let Some((token, at)) = it.next() {
        if token != Token::Pipe {
            return err(
                at,
                format!(
                    "expected `|` and a filter after `{var}`, or `}}}}` to close the placeholder"
                ),
            );
        }
        let (name, name_at) = match it.next() {
            Some((Token::Ident(name), at)) => (name, at),
            Some((_, at)) => return err(at, "expected a filter name after `|`".into()),
            None => {
                return err(
                    base + inner.len(),
                    "expected a filter name after `|`".into(),
                );
            }
        };
        let mut args = Vec::new();
        if matches!(it.peek(), Some((Token::Colon, _))) {
            it.next();
            loop {
                match it.next() {
                    Some((Token::Str(s), _)) => args.push(s),
                    Some((Token::Number(n), _)) => args.push(n.to_string()),
                    Some((_, at)) => {
                        return err(
                            at,
                            format!("expected an argument for filter `{name}`, like `\"n/a\"`"),
                        );
                    }
                    None => {
                        return err(
                            base + inner.len(),
                            format!("expected an argument for filter `{name}` after `:`"),
                        );
                    }
                }
                if matches!(it.peek(), Some((Token::Comma, _))) {
                    it.next();
                } else {
                    break;
                }
            }
        }
        let filter = Filter::from_parts(name, args).map_err(|msg| {
            TemplateError::new(
                field,
                position_of(source, name_at),
                ErrorKind::UnknownFilter,
                msg,
            )
        })?;
        filters.push(filter);
    }
    Ok(Placeholder {
        var: var.into(),
        filters,
        position,
    })
}
