//! `carehook clinic …` and `carehook demo`: clinic actions against a running carehook over
//! HTTP, so a person can fire each event from the shell. Each command prints the record the
//! server answered as a table, with its `id` and the events it fired (`--json`: the server's
//! JSON). `carehook demo` sends the
//! library's demo clinic (`carehook::demo`) through [`ApiSink`].

use carehook::demo::{DemoSink, SinkFuture};
use carehook_core::clinic::{Kind, Ref};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use crate::client::{Client, Refused, Server};

/// Where the server is, how to get in, and who acts.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    #[command(flatten)]
    pub server: Server,
    /// The id of the clinic user acting (`current_user_id` in the events).
    #[arg(long, env = "CAREHOOK_USER_ID")]
    pub user_id: Option<i64>,
}

/// The client, with paths under `/api/v1` and a refusal read as the server wrote it:
/// `422 invalid (email): "x" is not an e-mail address`.
#[derive(Debug)]
struct Records(Client);

impl Records {
    fn new(remote: Remote) -> anyhow::Result<Records> {
        let client = Client::connect(&remote.server)?.with_user(remote.user_id);
        if !client.has_token() {
            return Err(crate::UsageError(
                "no API token: pass --token or set CAREHOOK_TOKEN (the admin token `carehook serve` printed)"
                    .into(),
            )
            .into());
        }
        Ok(Records(client))
    }

    /// `method` on `/api/v1{path}`; the answer's JSON, or the server's error as an error.
    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        self.0
            .call(method, &format!("/api/v1{path}"), body)
            .await
            .map_err(|e| {
                // A refusal reads with its status, code and field, and exits 2.
                match e.downcast_ref::<Refused>() {
                    Some(r) => {
                        let err = &r.body["error"];
                        let field = err["field"]
                            .as_str()
                            .filter(|f| !f.is_empty())
                            .map(|f| format!(" ({f})"))
                            .unwrap_or_default();
                        let message = err["message"]
                            .as_str()
                            .map_or_else(|| r.message.clone(), String::from);
                        crate::UsageError(format!(
                            "{} {}{field}: {message}",
                            r.status,
                            err["code"].as_str().unwrap_or("error")
                        ))
                        .into()
                    }
                    None => e,
                }
            })
    }
}

/// The demo clinic's records, sent to a running server's API.
struct ApiSink<'a>(&'a Records);

impl DemoSink for ApiSink<'_> {
    fn create(&self, kind: Kind, parent: Option<(Ref, i64)>, body: Value) -> SinkFuture<'_, Value> {
        Box::pin(async move {
            let path = match parent {
                Some((r, id)) => format!("/{}/{id}/{}", r.kind().collection(), kind.collection()),
                None => format!("/{}", kind.collection()),
            };
            self.0.send("POST", &path, Some(&body)).await
        })
    }

    fn update(&self, kind: Kind, id: i64, body: Value) -> SinkFuture<'_, ()> {
        Box::pin(async move {
            let path = format!("/{}/{id}", kind.collection());
            self.0.send("PATCH", &path, Some(&body)).await.map(drop)
        })
    }
}

#[derive(Debug, Args)]
pub struct ClinicArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// Print the server's JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Register a patient (fires kc_patient_add).
    ///
    /// Example:
    ///   carehook clinic add-patient --clinic 1 --first-name Maria --last-name "O'Brien" --email maria@example.com
    #[command(verbatim_doc_comment)]
    AddPatient {
        #[arg(long)]
        clinic: i64,
        #[arg(long)]
        first_name: String,
        #[arg(long)]
        last_name: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        /// Date of birth, YYYY-MM-DD.
        #[arg(long)]
        dob: Option<String>,
        #[arg(long)]
        gender: Option<String>,
        #[arg(long)]
        blood_group: Option<String>,
    },
    /// Book an appointment (fires kc_appointment_book).
    ///
    /// Example:
    ///   carehook clinic book --clinic 1 --doctor 1 --patient 1 --date 2026-12-01 --start 09:30 --end 09:45 --service "General Consultation"
    #[command(verbatim_doc_comment)]
    Book {
        #[arg(long)]
        clinic: i64,
        #[arg(long)]
        doctor: i64,
        #[arg(long)]
        patient: i64,
        /// YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// HH:MM (24 h).
        #[arg(long)]
        start: String,
        #[arg(long)]
        end: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// A service booked; repeat for several.
        #[arg(long = "service")]
        services: Vec<String>,
    },
    /// Change an appointment's status (fires kc_appointment_status_change).
    ///
    /// Example:
    ///   carehook clinic status 7 check_in      (booked, pending, check_in, check_out, cancelled)
    #[command(verbatim_doc_comment)]
    Status { appointment: i64, status: String },
    /// Record a payment of a bill (fires kc_payment_add, and kc_appointment_payment_complete
    /// when it settles the bill of an appointment).
    ///
    /// Example:
    ///   carehook clinic pay --bill 1 --amount 110.50 --method card
    #[command(verbatim_doc_comment)]
    Pay {
        #[arg(long)]
        bill: i64,
        /// Exactly as written: 110.50 stays 110.50.
        #[arg(long)]
        amount: String,
        #[arg(long)]
        method: Option<String>,
        /// YYYY-MM-DD; default today in the clinic's time zone.
        #[arg(long)]
        date: Option<String>,
    },
    /// List records of a kind (clinics, doctors, patients, appointments, bills…).
    ///
    /// Example:
    ///   carehook clinic list appointments --clinic 1 --date 2026-12-01
    #[command(verbatim_doc_comment)]
    List {
        kind: String,
        #[arg(long)]
        clinic: Option<i64>,
        #[arg(long)]
        patient: Option<i64>,
        #[arg(long)]
        date: Option<String>,
    },
    /// Show one record.
    ///
    /// Example:
    ///   carehook clinic get patients 3
    #[command(verbatim_doc_comment)]
    Get { kind: String, id: i64 },
}

/// Puts `(name, value)` pairs that are set into a JSON object.
fn object(pairs: Vec<(&str, Option<Value>)>) -> Value {
    let map: Map<String, Value> = pairs
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect();
    Value::Object(map)
}

fn collection(kind: &str) -> anyhow::Result<String> {
    let kind: Kind = kind.parse().map_err(|e: String| crate::UsageError(e))?;
    Ok(kind.collection())
}

/// The columns `clinic list` shows for a kind: the id, then the kind's
/// fields a person scans a list by, in this order, as far as it has them.
fn list_columns(kind: Kind) -> Vec<&'static str> {
    const PREFERRED: &[&str] = &[
        "name",
        "first_name",
        "last_name",
        "date",
        "start_time",
        "patient_id",
        "doctor_id",
        "status",
        "total_amount",
        "amount",
        "method",
        "email",
        "title",
    ];
    let fields: Vec<&'static str> = kind.fields().iter().map(|f| f.name).collect();
    std::iter::once("id")
        .chain(
            PREFERRED
                .iter()
                .copied()
                .filter(|p| fields.contains(p))
                .take(6),
        )
        .collect()
}

/// A record (or a list of them) as a person reads it.
fn print_answer(answer: &Value, list_of: Option<Kind>) {
    use crate::client::{cell, print_table};
    if let Some(kind) = list_of {
        let columns = list_columns(kind);
        let rows: Vec<Vec<String>> = answer["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| columns.iter().map(|c| cell(&r[*c])).collect())
            .collect();
        if rows.is_empty() {
            println!("no {}s", kind.noun());
        } else {
            print_table(&columns, &rows);
        }
        if let Some(next) = answer["next_cursor"].as_str() {
            println!("\nmore: the API's next page is ?cursor={next}");
        }
        return;
    }
    let Some(record) = answer.as_object() else {
        println!("{answer}");
        return;
    };
    let rows: Vec<Vec<String>> = record
        .iter()
        .filter(|(k, v)| *k != "events" && !v.is_null())
        .map(|(k, v)| vec![k.clone(), cell(v)])
        .collect();
    print_table(&["field", "value"], &rows);
    for e in answer["events"].as_array().into_iter().flatten() {
        let deliveries = e["deliveries"].as_array().map_or(0, Vec::len);
        println!(
            "fired {} ({} deliver{})",
            cell(&e["event"]),
            deliveries,
            if deliveries == 1 { "y" } else { "ies" }
        );
    }
}

pub fn run(args: ClinicArgs) -> anyhow::Result<()> {
    let client = Records::new(args.remote)?;
    let list_of = match &args.action {
        Action::List { kind, .. } => Some(
            kind.parse::<Kind>()
                .map_err(|e: String| crate::UsageError(e))?,
        ),
        _ => None,
    };
    let (method, path, body) = match args.action {
        Action::AddPatient {
            clinic,
            first_name,
            last_name,
            email,
            phone,
            dob,
            gender,
            blood_group,
        } => (
            "POST",
            "/patients".to_string(),
            Some(object(vec![
                ("clinic_id", Some(clinic.into())),
                ("first_name", Some(first_name.into())),
                ("last_name", Some(last_name.into())),
                ("email", email.map(Value::from)),
                ("contact_number", phone.map(Value::from)),
                ("dob", dob.map(Value::from)),
                ("gender", gender.map(Value::from)),
                ("blood_group", blood_group.map(Value::from)),
            ])),
        ),
        Action::Book {
            clinic,
            doctor,
            patient,
            date,
            start,
            end,
            description,
            services,
        } => (
            "POST",
            "/appointments".to_string(),
            Some(object(vec![
                ("clinic_id", Some(clinic.into())),
                ("doctor_id", Some(doctor.into())),
                ("patient_id", Some(patient.into())),
                ("date", Some(date.into())),
                ("start_time", Some(start.into())),
                ("end_time", end.map(Value::from)),
                ("description", description.map(Value::from)),
                ("services", Some(services.into())),
            ])),
        ),
        Action::Status {
            appointment,
            status,
        } => (
            "PATCH",
            format!("/appointments/{appointment}"),
            Some(json!({ "status": status })),
        ),
        Action::Pay {
            bill,
            amount,
            method,
            date,
        } => (
            "POST",
            format!("/bills/{bill}/payments"),
            Some(object(vec![
                ("amount", Some(amount.into())),
                ("method", method.map(Value::from)),
                ("date", date.map(Value::from)),
            ])),
        ),
        Action::List {
            kind,
            clinic,
            patient,
            date,
        } => {
            let mut query = Vec::new();
            for (k, v) in [
                ("clinic_id", clinic.map(|c| c.to_string())),
                ("patient_id", patient.map(|p| p.to_string())),
                ("date", date),
            ] {
                if let Some(v) = v {
                    query.push(format!(
                        "{k}={}",
                        url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                    ));
                }
            }
            let q = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            ("GET", format!("/{}{q}", collection(&kind)?), None)
        }
        Action::Get { kind, id } => ("GET", format!("/{}/{id}", collection(&kind)?), None),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime.block_on(client.send(method, &path, body.as_ref()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print_answer(&answer, list_of);
    }
    Ok(())
}

/// `carehook demo`: the demo clinic, through a running server's API.
pub fn run_demo(remote: Remote) -> anyhow::Result<()> {
    let client = Records::new(remote)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let clinic = runtime.block_on(carehook::demo::fill(&ApiSink(&client)))?;
    println!("Added the demo clinic (Riverside Family Clinic) as clinic {clinic}.");
    Ok(())
}
