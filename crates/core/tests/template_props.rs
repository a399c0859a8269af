//! Property tests: for any values at all, a rendered request keeps the shape
//! its template gave it, and every value arrives exactly as it was.
//!
//! The parser's no-panic property runs 10,000 cases by default; set
//! `PROPTEST_CASES=1000000` to run it a million times.

use carehook_core::Vars;
use carehook_core::template::{Context, Template};
use percent_encoding::percent_decode_str;
use proptest::prelude::*;

/// Values that stress every context: any Unicode, plus the characters that
/// mean something in JSON, forms, URLs and headers.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"\\\\&=%+#?/ \\n\\r\\t\\u{0}\\u{1f}\\u{7f}\\u{2028}🏥⚠️éß{}\\[\\]:,'<>;]{0,24}",
    ]
}

fn vars(values: &[(&str, &String)]) -> Vars {
    values
        .iter()
        .map(|(k, v)| (k.to_string(), (*v).clone()))
        .collect()
}

proptest! {
    #[test]
    fn json_bodies_parse_and_carry_each_value_exactly(a in nasty(), b in nasty(), c in nasty()) {
        let t = Template::parse(
            r#"{"a": "{{a}}", "mixed": "Dr. {{b}} & {{c}}!", "list": ["{{c}}", 1, true], "bare": {{a}}}"#,
            Context::JsonBody,
            "body",
        ).unwrap();
        let out = t.render(&vars(&[("a", &a), ("b", &b), ("c", &c)])).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        prop_assert_eq!(v["a"].as_str().unwrap(), a.as_str());
        prop_assert_eq!(v["mixed"].as_str().unwrap(), format!("Dr. {b} & {c}!"));
        prop_assert_eq!(v["list"][0].as_str().unwrap(), c.as_str());
        prop_assert_eq!(&v["list"][1], &serde_json::json!(1));
        prop_assert_eq!(v["bare"].as_str().unwrap(), a.as_str());
    }

    #[test]
    fn form_bodies_decode_back_to_each_value(a in nasty(), b in nasty()) {
        let t = Template::parse("To={{a}}\nBody=Hi {{b}}, bye\nFixed=1234.50", Context::FormBody, "body").unwrap();
        let out = t.render(&vars(&[("a", &a), ("b", &b)])).unwrap();
        let fields: Vec<(String, String)> = form_urlencoded::parse(out.as_bytes()).into_owned().collect();
        prop_assert_eq!(fields, vec![
            ("To".to_string(), a.clone()),
            ("Body".to_string(), format!("Hi {b}, bye")),
            ("Fixed".to_string(), "1234.50".to_string()),
        ]);
    }

    #[test]
    fn urls_keep_their_segments_and_query_values(a in nasty(), b in nasty()) {
        let t = Template::parse(
            "https://api.example.com/v1/Lead/{{a}}/notes?q={{b}}&measurement_id=G-1",
            Context::Url,
            "url",
        ).unwrap();
        let rendered = t.render(&vars(&[("a", &a), ("b", &b)]));
        if a == "." || a == ".." {
            prop_assert!(rendered.is_err());
            return Ok(());
        }
        let out = rendered.unwrap();
        let u = url::Url::parse(&out).unwrap();
        prop_assert_eq!(u.host_str(), Some("api.example.com"));
        let segments: Vec<String> = u
            .path_segments()
            .unwrap()
            .map(|s| percent_decode_str(s).decode_utf8().unwrap().into_owned())
            .collect();
        prop_assert_eq!(segments, vec!["v1".to_string(), "Lead".into(), a.clone(), "notes".into()]);
        let query: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        prop_assert_eq!(query, vec![("q".to_string(), b.clone()), ("measurement_id".into(), "G-1".into())]);
        prop_assert!(u.fragment().is_none());
    }

    #[test]
    fn header_values_with_line_breaks_never_render(prefix in nasty(), suffix in nasty(), brk in "[\r\n]") {
        let t = Template::parse("Bearer {{token}}", Context::Header, "headers.Authorization").unwrap();
        let value = format!("{prefix}{brk}{suffix}");
        prop_assert!(t.render(&vars(&[("token", &value)])).is_err());
        let clean: String = prefix.chars().filter(|c| !c.is_control()).collect();
        let out = t.render(&vars(&[("token", &clean)])).unwrap();
        prop_assert_eq!(out, format!("Bearer {clean}"));
    }
}

/// Template-like text: braces, pipes, quotes and JSON/URL/form punctuation
/// are far more likely than in uniform random text.
fn template_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "([{}|:\"',=&/?#\\\\\\n\\r a-z0-9_%.-]|\\{\\{|\\}\\}|🏥){0,64}",
        "(https?://[a-z.]{0,8}(/|\\?|#)?)?(\\{\\{ ?[a-z_]{0,6} ?(\\| ?[a-z]{0,8}(: ?\"[^\"]{0,4}\")?)? ?\\}\\}|[a-z/=&?\"{}:,\\[\\] \\n]){0,16}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_parser_never_panics(src in template_like()) {
        let mut values = Vars::new();
        values.insert("a".into(), "x\"\r\n..".into());
        for ctx in [Context::JsonBody, Context::FormBody, Context::Url, Context::Header, Context::Text] {
            if let Ok(t) = Template::parse(&src, ctx, "body") {
                let _ = t.render(&values);
                for ph in t.placeholders() {
                    values.insert(ph.var.to_string(), "..".into());
                }
                let _ = t.render(&values);
            }
        }
    }
}
