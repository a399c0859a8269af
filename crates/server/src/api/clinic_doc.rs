//! The clinic records' part of the OpenAPI document. Their routes are made
//! per record kind from one field table (`api/clinic.rs`), so their paths
//! and schemas are made here from the same table: a kind or field added
//! there shows up in the document without anyone writing it twice.

use carehook_core::clinic::{FieldType, Kind, Ref};
use serde_json::{Map, Value, json};

use super::clinic::{NESTED, USER_HEADER};

/// Text without control characters (what `carehook_core::clinic` refuses);
/// long text may keep line breaks and tabs.
const NO_CONTROL: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";
const NO_CONTROL_BUT_LINES: &str =
    "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$";
const NON_BLANK: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$";
/// `YYYY-MM-DD` in the years the records take (1900 to 2199).
pub const DATE_PATTERN: &str = "^(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";

/// The schema of a field, as tight as the validation is where a pattern can
/// say it (a schema-valid value should be accepted: schemathesis checks).
fn schema_of(ty: FieldType) -> Value {
    match ty {
        FieldType::Date => {
            json!({"type": "string", "format": "date", "pattern": DATE_PATTERN, "example": "2026-11-26"})
        }
        FieldType::Time => {
            json!({"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$", "example": "14:05"})
        }
        FieldType::Amount => {
            json!({"type": ["string", "integer"], "minimum": 0, "maximum": 999_999_999_999_999_u64, "pattern": "^[0-9]{1,15}(\\.[0-9]{1,2})?$",
                "description": "a decimal amount as text, at most 2 decimals, kept as written (a whole number may be a JSON number)", "example": "1234.50"})
        }
        FieldType::Email => json!({"type": "string", "format": "email", "maxLength": 254,
            "pattern": "^[^@\\s\\u0000-\\u001F\\u007F-\\u009F]+@[^@.\\s\\u0000-\\u001F\\u007F-\\u009F][^@\\s\\u0000-\\u001F\\u007F-\\u009F]*\\.[^@\\s\\u0000-\\u001F\\u007F-\\u009F]*[^@.\\s\\u0000-\\u001F\\u007F-\\u009F]$"}),
        FieldType::Currency => {
            json!({"type": "string", "pattern": "^[A-Za-z]{3}$", "example": "EUR"})
        }
        FieldType::TimeZone => {
            json!({"type": "string", "pattern": "^[A-Za-z0-9/_+-]{1,64}$", "example": "Europe/Berlin"})
        }
        FieldType::OneOf(values) => json!({"type": "string", "enum": values}),
        FieldType::List => json!({
            "description": "names, as a list or one comma-separated text",
            "oneOf": [{"type": "array", "items": {"type": "string", "pattern": NO_CONTROL}}, {"type": "string", "pattern": NO_CONTROL}]
        }),
        FieldType::Ref(r) => {
            json!({"type": "integer", "format": "int64", "minimum": 1, "description": format!("the {}'s id", r.kind().noun())})
        }
        // 3 to 20 digits, with spaces and + - ( ) . between; a JSON number is its digits.
        FieldType::Phone => {
            json!({"type": ["string", "integer"], "minimum": 100, "maximum": u64::MAX,
            "pattern": "^[ +().-]*([0-9][ +().-]*){3,20}$", "example": "+44 20 7946 0000"})
        }
        // Whole JSON numbers are taken as their text (a phone number sent as a number).
        // (A JSON number must be whole and fit 64 bits.)
        FieldType::Text => {
            json!({"type": ["string", "integer"], "pattern": NO_CONTROL, "minimum": i64::MIN, "maximum": u64::MAX})
        }
        FieldType::LongText => {
            json!({"type": ["string", "integer"], "pattern": NO_CONTROL_BUT_LINES, "minimum": i64::MIN, "maximum": u64::MAX})
        }
        FieldType::Format(_) => json!({"type": "string", "pattern": NO_CONTROL}),
    }
}

/// A schema without the constraints only input must meet.
fn loosen(schema: &mut Value) {
    if let Some(o) = schema.as_object_mut() {
        for k in ["pattern", "minimum", "maximum", "maxLength"] {
            o.remove(k);
        }
        // carehook's e-mail check is plainer than JSON Schema's `email` format (it takes a
        // non-ASCII address), so an accepted address is not promised to be one.
        if o.get("format").is_some_and(|f| f == "email") {
            o.remove("format");
        }
        if let Some(Value::Array(alts)) = o.get_mut("oneOf") {
            for alt in alts {
                loosen(alt);
                if let Some(items) = alt.get_mut("items") {
                    loosen(items);
                }
            }
        }
    }
}

fn capitalized(w: &str) -> String {
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn title(kind: Kind) -> String {
    kind.noun().split(' ').map(capitalized).collect()
}

/// "a patient", "an encounter".
fn a(noun: &str) -> String {
    let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {noun}")
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": reference("ErrorBody")}}})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// Adds every clinic path and schema to the document (as JSON).
pub fn add_to(doc: &mut Value) {
    let id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64"}});
    let user = json!({"name": USER_HEADER, "in": "header", "required": false,
        "description": "The clinic user who acted (`current_user_id` in the events)",
        "schema": {"type": "integer", "format": "int64"}});
    // A list takes only the filters its kind has (`?date=` on a kind without a date, or
    // `?bill_id=` on doctors, is a 422).
    let list_params = |kind: Kind| -> Vec<Value> {
        let mut params: Vec<Value> = Ref::ALL
            .into_iter()
            .filter(|r| kind.filterable_by(*r))
            .map(|r| json!({"name": r.column(), "in": "query", "required": false, "schema": {"type": "integer", "format": "int64"}}))
            .collect();
        if kind.has_day() {
            for (p, d) in [
                (
                    "date",
                    "one day (YYYY-MM-DD), or the first of a range with date_to",
                ),
                ("date_from", "first day (YYYY-MM-DD)"),
                ("date_to", "last day (YYYY-MM-DD)"),
            ] {
                params.push(
                    json!({"name": p, "in": "query", "required": false, "description": d,
                    "schema": {"type": "string", "format": "date", "pattern": DATE_PATTERN}}),
                );
            }
        }
        params.push(json!({"name": "cursor", "in": "query", "required": false,
            "description": "`next_cursor` of the previous page", "schema": {"type": "string", "pattern": "^[0-9]{0,18}$"}}));
        params.push(json!({"name": "limit", "in": "query", "required": false,
            "description": "page size, 1 to 1000 (default 50)",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}));
        params
    };

    let mut schemas = Map::new();
    let mut paths = Map::new();
    for kind in Kind::ALL {
        let name = title(kind);
        let mut props = Map::new();
        let mut required = Vec::new();
        for f in kind.fields() {
            let mut s = schema_of(f.ty);
            // Blank is the same as absent, so a required text needs something besides spaces.
            if f.required && s["pattern"] == NO_CONTROL {
                s["pattern"] = NON_BLANK.into();
            }
            if let Some(d) = f.default {
                s["default"] = d.into();
            }
            props.insert(f.name.into(), s);
            if f.required {
                required.push(f.name);
            }
        }
        // A record created under its parent takes the parent from the path (a different
        // one in the body is refused).
        let nested_parent = NESTED
            .contains(&kind)
            .then(|| kind.parent())
            .flatten()
            .map(|r| r.column());
        let mut input_props = props.clone();
        if let Some(parent) = nested_parent {
            input_props.remove(parent);
            required.retain(|f| *f != parent);
        }
        // Unknown fields are refused, so the document says so.
        let input = json!({"type": "object", "properties": input_props, "required": required,
            "additionalProperties": false,
            "description": format!("{} to create.", capitalized(&a(kind.noun())))});
        let patch = json!({"type": "object", "properties": props.clone(), "additionalProperties": false,
            "description": format!("The fields of {} to change (a required one may not be emptied).", a(kind.noun()))});
        // What is stored may predate a rule, or be an erased tombstone: the record
        // as answered is described by type only.
        let mut record_props = props;
        for schema in record_props.values_mut() {
            loosen(schema);
        }
        record_props.insert("id".into(), json!({"type": "integer", "format": "int64"}));
        record_props.insert(
            "created_at".into(),
            json!({"type": "string", "description": "RFC 3339"}),
        );
        record_props.insert(
            "updated_at".into(),
            json!({"type": "string", "description": "RFC 3339"}),
        );
        record_props.insert("events".into(), json!({
            "type": "array", "description": "In the answer to a change: the events it fired and their deliveries",
            "items": {"type": "object", "properties": {
                "id": {"type": "string", "format": "uuid"}, "event": {"type": "string"},
                "deliveries": {"type": "array", "items": {"type": "string", "format": "uuid"}}}}
        }));
        let record = json!({"type": "object", "properties": record_props, "required": ["id"],
            "description": format!("{} as stored, with its id and references.", capitalized(&a(kind.noun())))});
        let list = json!({"type": "object", "required": ["items"], "properties": {
            "items": {"type": "array", "items": reference(&name)},
            "next_cursor": {"type": ["string", "null"]}}});
        schemas.insert(format!("{name}Input"), input);
        schemas.insert(format!("{name}Patch"), patch);
        schemas.insert(name.clone(), record);
        schemas.insert(format!("{name}List"), list);

        let tag = json!(["clinic"]);
        let plural = format!("{name}s");
        let create = |params: Vec<Value>, operation: String| {
            json!({"tags": tag, "operationId": operation,
                "summary": format!("Create {}; fires its event in the same transaction", a(kind.noun())),
                "parameters": params,
                "requestBody": {"required": true, "content": {"application/json": {"schema": reference(&format!("{name}Input"))}}},
                "responses": {"201": ok("Created", reference(&name)), "400": error("Bad JSON"), "401": error("No valid token"),
                    "404": error("No such parent"), "413": error("Too large"), "415": error("Not JSON"), "422": error("Invalid field")}})
        };
        let list_op = |mut params: Vec<Value>, operation: String| {
            params.extend(list_params(kind));
            json!({"tags": tag, "operationId": operation, "summary": format!("List {}s, newest first", kind.noun()), "parameters": params,
                "responses": {"200": ok("A page", reference(&format!("{name}List"))), "400": error("Bad input"),
                    "401": error("No valid token"), "422": error("Bad query parameter")}})
        };
        let base = format!("/api/v1/{}", kind.collection());
        let mut collection = Map::new();
        collection.insert("get".into(), list_op(vec![], format!("list{plural}")));
        if !NESTED.contains(&kind) {
            collection.insert(
                "post".into(),
                create(vec![user.clone()], format!("create{name}")),
            );
        }
        paths.insert(base.clone(), Value::Object(collection));
        let one = |verb: &str,
                   summary: String,
                   extra: Vec<Value>,
                   body: Option<Value>,
                   answer: Value| {
            let mut params = vec![id.clone()];
            params.extend(extra);
            let mut op = json!({"tags": tag, "operationId": format!("{verb}{name}"), "summary": summary, "parameters": params,
                "responses": {"200": ok("Done", answer), "400": error("Bad id or JSON"), "401": error("No valid token"),
                    "404": error("No such record"), "409": error("Still referenced"), "413": error("Too large"),
                    "415": error("Not JSON"), "422": error("Invalid field")}});
            if let Some(b) = body {
                op["requestBody"] = b;
            }
            op
        };
        paths.insert(
            format!("{base}/{{id}}"),
            json!({
                "get": one("get", format!("One {}", kind.noun()), vec![], None, reference(&name)),
                "patch": one(
                    "update",
                    format!("Change {} (fires its update event)", a(kind.noun())),
                    vec![user.clone()],
                    Some(json!({"required": true, "content": {"application/json": {"schema": reference(&format!("{name}Patch"))}}})),
                    reference(&name)
                ),
                "delete": one(
                    "delete",
                    format!("Delete {} (fires its delete event with the record's data)", a(kind.noun())),
                    vec![user.clone()],
                    None,
                    reference(&name)
                ),
            }),
        );
        if let (true, Some(parent)) = (NESTED.contains(&kind), kind.parent()) {
            paths.insert(
                format!("/api/v1/{}/{{id}}/{}", parent.kind().collection(), kind.collection()),
                {
                    let parent = title(parent.kind());
                    json!({
                        "post": create(vec![id.clone(), user.clone()], format!("create{parent}{name}")),
                        "get": list_op(vec![id.clone()], format!("list{parent}{plural}")),
                    })
                },
            );
        }
    }
    if let Some(p) = doc["paths"].as_object_mut() {
        p.extend(paths);
    }
    if let Some(s) = doc["components"]["schemas"].as_object_mut() {
        s.extend(schemas);
    }
    if let Some(tags) = doc["tags"].as_array_mut() {
        tags.push(json!({"name": "clinic", "description": "Clinic records; every change fires its event"}));
    }
}
