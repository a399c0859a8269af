//! The clinic records' part of the OpenAPI document. Their routes are made
//! per record kind from one field table (`api/clinic.rs`), so their paths
//! and schemas are made here from the same table: a kind or field added
//! there shows up in the document without anyone writing it twice.

use carehook_core::clinic::{FieldType, Kind};
use serde_json::{Map, Value, json};

use super::clinic::{NESTED, USER_HEADER};

fn schema_of(ty: FieldType) -> Value {
    match ty {
        FieldType::Date => json!({"type": "string", "format": "date", "example": "2026-11-26"}),
        FieldType::Time => json!({"type": "string", "example": "14:05"}),
        FieldType::Amount => {
            json!({"type": ["string", "integer"], "description": "a decimal amount as text, kept as written (a whole number may be a JSON number)", "example": "1234.50"})
        }
        FieldType::Email => json!({"type": "string", "format": "email"}),
        FieldType::Currency => json!({"type": "string", "example": "EUR"}),
        FieldType::TimeZone => json!({"type": "string", "example": "Europe/Berlin"}),
        FieldType::OneOf(values) => json!({"type": "string", "enum": values}),
        FieldType::List => json!({
            "description": "names, as a list or one comma-separated text",
            "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]
        }),
        FieldType::Ref(r) => {
            json!({"type": "integer", "format": "int64", "description": format!("the {}'s id", r.kind().noun())})
        }
        // Whole JSON numbers are taken as their text (a phone number sent as a number).
        FieldType::Text | FieldType::LongText | FieldType::Phone => {
            json!({"type": ["string", "integer"]})
        }
        FieldType::Format(_) => json!({"type": "string"}),
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
    let mut list_params: Vec<Value> = [
        "clinic_id",
        "doctor_id",
        "patient_id",
        "appointment_id",
        "encounter_id",
        "bill_id",
    ]
    .iter()
    .map(|p| json!({"name": p, "in": "query", "required": false, "schema": {"type": "integer", "format": "int64"}}))
    .collect();
    for (p, d) in [
        (
            "date",
            "one day (YYYY-MM-DD), or the first of a range with date_to",
        ),
        ("date_from", "first day (YYYY-MM-DD)"),
        ("date_to", "last day (YYYY-MM-DD)"),
        ("cursor", "`next_cursor` of the previous page"),
    ] {
        list_params.push(json!({"name": p, "in": "query", "required": false, "description": d, "schema": {"type": "string"}}));
    }
    list_params.push(json!({"name": "limit", "in": "query", "required": false,
        "schema": {"type": "integer", "minimum": 0, "maximum": 1000}}));

    let mut schemas = Map::new();
    let mut paths = Map::new();
    for kind in Kind::ALL {
        let name = title(kind);
        let mut props = Map::new();
        let mut required = Vec::new();
        for f in kind.fields() {
            let mut s = schema_of(f.ty);
            if let Some(d) = f.default {
                s["default"] = d.into();
            }
            props.insert(f.name.into(), s);
            if f.required {
                required.push(f.name);
            }
        }
        let input = json!({"type": "object", "properties": props.clone(), "required": required,
            "description": format!("{} to create; a PATCH takes any of these fields.", capitalized(&a(kind.noun())))});
        let mut record_props = props;
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
            params.extend(list_params.iter().cloned());
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
                    Some(json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "description": "The fields to change"}}}})),
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
