//! The API reference page (`/api/docs`): the OpenAPI document as one HTML
//! page, made by carehook from the same document it serves at
//! `/api/v1/openapi.json`. Plain HTML and an inline stylesheet: nothing is
//! loaded from anywhere, and the page says so in its CSP header.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Markdown's inline code (`x`) as <code>, the rest escaped.
fn prose(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

/// `#/components/schemas/Name` → `Name`.
fn ref_name(schema: &Value) -> Option<&str> {
    schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
}

/// A schema's type in a word or two, linking to named schemas.
fn type_of(schema: &Value) -> String {
    if let Some(name) = ref_name(schema) {
        return format!("<a href=\"#schema-{0}\">{0}</a>", esc(name));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(items) = schema[key].as_array() {
            return items.iter().map(type_of).collect::<Vec<_>>().join(" | ");
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        let words: Vec<String> = values
            .iter()
            .map(|v| format!("<code>{}</code>", esc(v.as_str().unwrap_or(&v.to_string()))))
            .collect();
        return format!("one of {}", words.join(", "));
    }
    let ty = match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".into(),
    };
    if ty == "array" {
        return format!("array of {}", type_of(&schema["items"]));
    }
    match schema["format"].as_str() {
        Some(f) => format!("{} ({})", esc(&ty), esc(f)),
        None => esc(&ty),
    }
}

/// An object schema's fields as a table.
fn fields(schema: &Value, out: &mut String) {
    let Some(props) = schema["properties"].as_object() else {
        return;
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("<table><tr><th>Field</th><th>Type</th><th>About</th></tr>");
    for (name, s) in props {
        let _ = write!(
            out,
            "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            if required.contains(&name.as_str()) {
                " <span class=req>required</span>"
            } else {
                ""
            },
            type_of(s),
            prose(s["description"].as_str().unwrap_or(""))
        );
    }
    out.push_str("</table>");
}

fn curl(method: &str, path: &str, op: &Value, doc: &Value) -> String {
    let mut cmd = String::from("curl");
    if method != "get" {
        let _ = write!(cmd, " -X {}", method.to_uppercase());
    }
    let public = op["security"].as_array().is_some_and(|s| {
        s.iter()
            .all(|x| x.as_object().is_some_and(|o| o.is_empty()))
    });
    if !public {
        cmd.push_str(" -H \"Authorization: Bearer $CAREHOOK_TOKEN\"");
    }
    let body = &op["requestBody"]["content"]["application/json"]["schema"];
    if !body.is_null() {
        let example = ref_name(body)
            .map(|n| &doc["components"]["schemas"][n])
            .unwrap_or(body);
        let mut sample = serde_json::Map::new();
        if let Some(props) = example["properties"].as_object() {
            let required: Vec<&str> = example["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for (name, s) in props {
                if required.contains(&name.as_str()) || s.get("example").is_some() {
                    let v = s
                        .get("example")
                        .cloned()
                        .unwrap_or_else(|| Value::String("…".into()));
                    sample.insert(name.clone(), v);
                }
            }
        }
        let _ = write!(
            cmd,
            " -H 'Content-Type: application/json' \\\n  -d '{}'",
            Value::Object(sample).to_string().replace('\'', "'\\''")
        );
    }
    let _ = write!(cmd, " \\\n  \"$CAREHOOK_URL{path}\"");
    cmd
}

/// The whole page, from the document.
pub fn render(doc: &Value) -> String {
    let mut out = String::new();
    let title = doc["info"]["title"].as_str().unwrap_or("carehook");
    let version = doc["info"]["version"].as_str().unwrap_or("");
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>{t} API reference</title><style>{STYLE}</style></head><body>\
         <header><h1>{t} API <small>{v}</small></h1>\
         <p>{d}</p><p>Machine-readable: <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a> (OpenAPI 3.1). \
         The examples read <code>$CAREHOOK_URL</code> (e.g. <code>http://127.0.0.1:8080</code>) and <code>$CAREHOOK_TOKEN</code>.</p></header><nav><ul>",
        t = esc(title),
        v = esc(version),
        d = prose(doc["info"]["description"].as_str().unwrap_or("")),
    );
    let tags: Vec<(String, String)> = doc["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap_or("").to_string(),
                        t["description"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    for (name, _) in &tags {
        let _ = write!(out, "<li><a href=\"#tag-{0}\">{0}</a></li>", esc(name));
    }
    out.push_str("<li><a href=\"#schemas\">schemas</a></li></ul></nav><main>");
    let empty = serde_json::Map::new();
    let paths = doc["paths"].as_object().unwrap_or(&empty);
    for (tag, about) in &tags {
        let _ = write!(
            out,
            "<section id=\"tag-{0}\"><h2>{0}</h2><p>{1}</p>",
            esc(tag),
            prose(about)
        );
        for (path, item) in paths {
            for method in METHODS {
                let op = &item[method];
                let in_tag = op["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| x == tag.as_str()));
                if !in_tag {
                    continue;
                }
                let id = op["operationId"].as_str().unwrap_or("");
                let _ = write!(
                    out,
                    "<article id=\"{id}\"><h3><span class=\"m {method}\">{M}</span> <code>{p}</code></h3>\
                     <p class=op>operationId <code>{id}</code></p><p>{s}</p>",
                    id = esc(id),
                    M = method.to_uppercase(),
                    p = esc(path),
                    s = prose(
                        op["description"]
                            .as_str()
                            .or(op["summary"].as_str())
                            .unwrap_or("")
                    ),
                );
                if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
                    out.push_str("<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Type</th><th>About</th></tr>");
                    for p in params {
                        let _ = write!(
                            out,
                            "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            esc(p["name"].as_str().unwrap_or("")),
                            if p["required"] == true {
                                " <span class=req>required</span>"
                            } else {
                                ""
                            },
                            esc(p["in"].as_str().unwrap_or("")),
                            type_of(&p["schema"]),
                            prose(p["description"].as_str().unwrap_or(""))
                        );
                    }
                    out.push_str("</table>");
                }
                let body = &op["requestBody"]["content"]["application/json"]["schema"];
                if !body.is_null() {
                    let _ = write!(out, "<h4>Body</h4><p>{}</p>", type_of(body));
                }
                out.push_str("<h4>Answers</h4><ul class=answers>");
                if let Some(responses) = op["responses"].as_object() {
                    for (status, r) in responses {
                        let schema = r["content"]
                            .as_object()
                            .and_then(|c| c.values().next())
                            .map(|c| type_of(&c["schema"]))
                            .unwrap_or_default();
                        let _ = write!(
                            out,
                            "<li><b>{}</b> {} {}</li>",
                            esc(status),
                            prose(r["description"].as_str().unwrap_or("")),
                            schema
                        );
                    }
                }
                let _ = write!(
                    out,
                    "</ul><pre>{}</pre></article>",
                    esc(&curl(method, path, op, doc))
                );
            }
        }
        out.push_str("</section>");
    }
    out.push_str("<section id=schemas><h2>Schemas</h2>");
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        for (name, s) in schemas {
            let _ = write!(
                out,
                "<article id=\"schema-{0}\"><h3>{0}</h3><p>{1}</p>",
                esc(name),
                prose(s["description"].as_str().unwrap_or(""))
            );
            if s["properties"].is_object() {
                fields(s, &mut out);
            } else {
                let _ = write!(out, "<p>{}</p>", type_of(s));
            }
            out.push_str("</article>");
        }
    }
    out.push_str("</section></main></body></html>");
    out
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}\
header,main{max-width:60rem;margin:0 auto;padding:0 1rem}header{padding-top:1rem}\
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #dde1e6;overflow-x:auto}\
nav ul{display:flex;gap:1rem;list-style:none;margin:0 auto;padding:.5rem 1rem;max-width:60rem}\
h1 small{font-size:.5em;color:#5b6675}h2{border-bottom:2px solid #dde1e6;margin-top:2rem}\
article{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:.25rem 1rem 1rem;margin:1rem 0;overflow-wrap:anywhere}\
h3 code{font-size:1rem}.op{color:#5b6675;font-size:.85rem;margin:0}\
.m{display:inline-block;min-width:4rem;text-align:center;border-radius:4px;color:#fff;font-size:.8rem;padding:.1rem .3rem}\
.get{background:#2b6cb0}.post{background:#2f855a}.patch{background:#b7791f}.put{background:#b7791f}.delete{background:#c53030}\
table{border-collapse:collapse;width:100%;font-size:.9rem;display:block;overflow-x:auto}td,th{border-bottom:1px solid #eef0f3;padding:.25rem .5rem;text-align:left;vertical-align:top}\
pre{background:#1d2430;color:#f6f7f9;padding:.75rem;border-radius:4px;overflow-x:auto;font-size:.85rem}\
.req{color:#c53030;font-size:.75rem}.answers{padding-left:1.2rem}";

/// The API reference: every operation, its parameters, body, answers and a
/// `curl` line, made from this server's OpenAPI document. No token needed.
#[utoipa::path(get, path = "/api/docs", tag = "meta", security(()),
    responses((status = 200, description = "The API reference as one HTML page", content_type = "text/html", body = String)))]
pub async fn api_reference(Extension(doc): Extension<Arc<serde_json::Value>>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ],
        render(&doc),
    )
}
