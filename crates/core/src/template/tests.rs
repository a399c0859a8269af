use super::*;

fn vars(pairs: &[(&str, &str)]) -> Vars {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn render(src: &str, ctx: Context, v: &[(&str, &str)]) -> String {
    Template::parse(src, ctx, "body")
        .unwrap()
        .render(&vars(v))
        .unwrap()
}

fn parse_err(src: &str, ctx: Context) -> TemplateError {
    Template::parse(src, ctx, "body").unwrap_err()
}

#[test]
fn placeholders_allow_spaces_and_filters() {
    let out = render(
        "{{name}}|{{ name }}|{{ name | upper }}|{{ missing | default: \"n/a\" }}",
        Context::Text,
        &[("name", "Zoë")],
    );
    assert_eq!(out, "Zoë|Zoë|ZOË|n/a");
}

#[test]
fn unclosed_placeholder_is_reported_where_it_opens() {
    let e = parse_err("line one\n  {{ patient_name ", Context::Text);
    assert_eq!((e.position.line, e.position.column), (2, 3));
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert!(e.message.contains("never closed"), "{}", e.message);
}

#[test]
fn syntax_errors_say_what_and_where() {
    let e = parse_err("{{}}", Context::Text);
    assert!(e.message.contains("empty placeholder"));
    let e = parse_err("ab {{ patient name }}", Context::Text);
    assert_eq!(e.position.column, 15);
    assert!(e.message.contains("expected `|`"), "{}", e.message);
    let e = parse_err("{{ x | shout }}", Context::Text);
    assert_eq!(e.kind, ErrorKind::UnknownFilter);
    assert_eq!(e.position.column, 8);
    let e = parse_err("{{ x | date: \"%d }}", Context::Text);
    assert!(e.message.contains("never closed"), "{}", e.message);
    let e = parse_err("{{ $x }}", Context::Text);
    assert!(e.message.contains("unexpected `$`"), "{}", e.message);
}

#[test]
fn a_template_over_64_kib_is_refused() {
    let big = "a".repeat(MAX_TEMPLATE_BYTES + 1);
    assert_eq!(parse_err(&big, Context::Text).kind, ErrorKind::TooLarge);
}

#[test]
fn lone_closing_braces_are_literal() {
    assert_eq!(render("a }} b", Context::Text, &[]), "a }} b");
}

#[test]
fn json_string_values_are_escaped() {
    let out = render(
        r#"{"name": "Dr. {{n}}!", "n": 1}"#,
        Context::JsonBody,
        &[("n", "O\"Brien \\ \n\u{1}🏥")],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["name"], "Dr. O\"Brien \\ \n\u{1}🏥!");
    assert_eq!(v["n"], 1);
}

#[test]
fn json_value_positions_render_strings_unless_numeric() {
    let t = Template::parse(r#"{"a": {{x}}, "b": [{{x}}]}"#, Context::JsonBody, "body").unwrap();
    let out = t.render(&vars(&[("x", "12\"")])).unwrap();
    assert_eq!(out, r#"{"a": "12\"", "b": ["12\""]}"#);
    // Missing variables are empty strings.
    assert_eq!(t.render(&Vars::new()).unwrap(), r#"{"a": "", "b": [""]}"#);
}

#[test]
fn invalid_json_points_at_the_mistake() {
    let e = parse_err("{\n  \"a\": \"{{x}}\",\n  \"b\" 1\n}", Context::JsonBody);
    assert_eq!(e.kind, ErrorKind::InvalidJson);
    assert_eq!(e.position.line, 3, "{e}");
    assert!(e.message.contains("expected `:`"), "{}", e.message);
    // A placeholder standing for a key is not JSON.
    assert_eq!(
        parse_err("{ {{x}}: 1 }", Context::JsonBody).kind,
        ErrorKind::InvalidJson
    );
    // Columns are counted in characters, past emoji.
    let e = parse_err("{\"🏥\": nope}", Context::JsonBody);
    assert_eq!((e.position.line, e.position.column), (1, 8), "{e}");
}

#[test]
fn an_empty_json_body_is_allowed() {
    assert_eq!(render("  ", Context::JsonBody, &[]), "");
}

#[test]
fn form_lines_are_encoded_per_field() {
    let src = "To={{phone}}\nFrom=+15550001111\r\nBody=Hi {{name}}, see you at {{clinic}}!\n";
    let out = render(
        src,
        Context::FormBody,
        &[
            ("phone", "+1 555&x=1"),
            ("name", "Zoë O'Brien"),
            ("clinic", "A+B=C %"),
        ],
    );
    let decoded: Vec<(String, String)> = form_urlencoded::parse(out.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        decoded,
        vec![
            ("To".into(), "+1 555&x=1".into()),
            ("From".into(), "+15550001111".into()),
            ("Body".into(), "Hi Zoë O'Brien, see you at A+B=C %!".into()),
        ]
    );
}

#[test]
fn form_single_line_with_ampersands() {
    let out = render(
        "amount={{a}}&note=paid in full",
        Context::FormBody,
        &[("a", "1234.50")],
    );
    assert_eq!(out, "amount=1234.50&note=paid+in+full");
}

#[test]
fn form_line_without_equals_is_an_error() {
    let e = parse_err("To=1\nFrom", Context::FormBody);
    assert_eq!(e.kind, ErrorKind::InvalidForm);
    assert_eq!(e.position.line, 2);
}

#[test]
fn url_values_are_encoded_for_where_they_stand() {
    let out = render(
        "https://example.com/api/Lead/{{id}}?q={{q}}&fixed=a%20b",
        Context::Url,
        &[("id", "a/b?c#d"), ("q", "x&y=z +")],
    );
    assert_eq!(
        out,
        "https://example.com/api/Lead/a%2Fb%3Fc%23d?q=x%26y%3Dz%20%2B&fixed=a%20b"
    );
    let u = url::Url::parse(&out).unwrap();
    assert_eq!(
        u.path_segments().unwrap().next_back(),
        Some("a%2Fb%3Fc%23d")
    );
    let q: Vec<_> = u.query_pairs().into_owned().collect();
    assert_eq!(q[0], ("q".into(), "x&y=z +".into()));
}

#[test]
fn url_variables_may_not_choose_the_host() {
    let e = parse_err("https://{{clinic_name}}.example.com/x", Context::Url);
    assert_eq!(e.kind, ErrorKind::InvalidUrl);
    assert!(e.message.contains("host"));
    assert_eq!(
        parse_err("ftp://x.org/{{a}}", Context::Url).kind,
        ErrorKind::InvalidUrl
    );
    // A filter argument with slashes does not move the placeholder into the path.
    assert!(Template::parse("https://{{d | date: \"%d/%m\"}}x.org", Context::Url, "url").is_err());
}

#[test]
fn url_dot_segments_are_refused() {
    let t = Template::parse("https://x.org/a/{{id}}", Context::Url, "url").unwrap();
    let e = t.render(&vars(&[("id", "..")])).unwrap_err();
    assert_eq!(e.variable, "id");
    assert!(t.render(&vars(&[("id", "...")])).is_ok());
}

#[test]
fn header_values_with_line_breaks_are_refused() {
    let t = Template::parse("Bearer {{token}}", Context::Header, "headers.X-Test").unwrap();
    let e = t.render(&vars(&[("token", "a\r\nX-Evil: 1")])).unwrap_err();
    assert_eq!(e.field, "headers.X-Test");
    assert!(e.message.contains("control character"));
    assert_eq!(
        t.render(&vars(&[("token", "a\tb")])).unwrap(),
        "Bearer a\tb"
    );
    assert_eq!(
        parse_err("a\nb", Context::Header).kind,
        ErrorKind::InvalidHeader
    );
}

#[test]
fn json_numbers_follow_the_grammar() {
    for ok in ["0", "-1", "12.50", "1e5", "-0.5E-3"] {
        assert!(is_json_number(ok), "{ok}");
    }
    for bad in ["", "01", "1.", ".5", "+1", "1e", "NaN", "1 ", "0x10"] {
        assert!(!is_json_number(bad), "{bad}");
    }
}

#[test]
fn filter_arguments_quoted_as_json_strings_want_them_work() {
    // Inside a JSON string a quote is written \" — so are the date
    // filter's, and they mean the same as plain quotes.
    let src = r#"{"text": "{{ appointment_date | date: \"%d/%m/%Y\" }}"}"#;
    let out = render(
        src,
        Context::JsonBody,
        &[("appointment_date", "2026-12-01")],
    );
    assert_eq!(out, r#"{"text": "01/12/2026"}"#);
    let e = parse_err(
        r#"{"t": "{{ appointment_date | date: \"%d }}"}"#,
        Context::JsonBody,
    );
    assert!(e.to_string().contains("never closed"), "{e}");
}
