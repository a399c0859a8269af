//! `carehook users …`: the people who log in to the admin UI, kept in the database. These
//! work on the database directly (`--database-url`, or `CAREHOOK_DATABASE_URL`), as `tokens
//! … --database-url` does: whoever can open the database can already do anything carehook
//! can, and this is how the first people are added. Owners can do the same (and change a
//! role or clinics) on the admin UI's Users page or through `/api/v1/users`; every change,
//! from here too, is in the audit trail.

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::UsageError;
use crate::client::{cell, print_json, print_table};
use carehook::service::access::Role;
use carehook::service::users::{self, NewUser};
use carehook::time::rfc3339;

#[derive(Debug, clap::Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    pub command: UsersCommand,
    /// The database: `sqlite://carehook.db` or `postgres://…`.
    #[arg(
        long,
        global = true,
        env = "CAREHOOK_DATABASE_URL",
        default_value = "sqlite://carehook.db"
    )]
    pub database_url: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add an account. Without --password, one is made and printed once.
    ///
    /// Example:
    ///   carehook users add --email ada@clinic.example --name "Ada Lovelace" --role editor --clinic 2
    #[command(verbatim_doc_comment)]
    Add {
        #[arg(long)]
        email: String,
        /// The name shown in the UI.
        #[arg(long)]
        name: String,
        /// owner, admin, editor or viewer.
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Limit the account to this clinic; repeat for several. None: every clinic.
        #[arg(long = "clinic")]
        clinics: Vec<String>,
        /// 10 characters or more; left out, a random one is made and printed.
        #[arg(long, env = "CAREHOOK_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Whether a viewer sees bodies in the delivery log.
        #[arg(long)]
        bodies: Option<bool>,
    },
    /// List the accounts.
    List,
    /// Disable an account (its sessions end at once); --enable turns it back on.
    Disable {
        #[arg(long)]
        email: String,
        #[arg(long)]
        enable: bool,
    },
    /// Give an account a new password (its sessions end). Without --password, one is made.
    ResetPassword {
        #[arg(long)]
        email: String,
        #[arg(long, env = "CAREHOOK_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

pub fn run(args: UsersArgs) -> anyhow::Result<()> {
    crate::client::block_on(async move {
        let store = carehook_store::connect(&args.database_url)
            .await
            .context("opening the database given by --database-url")?;
        let v = act(&*store, &args.command).await?;
        if args.json {
            print_json(&v);
        } else {
            print(&args.command, &v);
        }
        Ok(())
    })
}

fn view(u: &carehook_store::UserRow) -> Value {
    json!({
        "id": u.id,
        "email": u.email,
        "display_name": u.display_name,
        "role": u.role,
        "clinics": u.clinics,
        "bodies": u.bodies,
        "second_factor": u.totp_secret.is_some(),
        "disabled_at": u.disabled_at.map(rfc3339),
        "last_login_at": u.last_login_at.map(rfc3339),
        "created_at": rfc3339(u.created_at),
    })
}

async fn act(store: &dyn carehook_store::Store, cmd: &UsersCommand) -> anyhow::Result<Value> {
    let usage = |e: carehook::service::Error| UsageError(e.message());
    match cmd {
        UsersCommand::Add {
            email,
            name,
            role,
            clinics,
            password,
            bodies,
        } => {
            let role = Role::parse(role).ok_or_else(|| {
                UsageError(format!(
                    "--role is owner, admin, editor or viewer, not {role:?}"
                ))
            })?;
            if role == Role::Ingest {
                return Err(UsageError(
                    "an ingest role is for API tokens (carehook tokens create --role ingest)"
                        .into(),
                )
                .into());
            }
            let made = password.is_none();
            let password = password.clone().unwrap_or_else(users::random_password);
            let u = users::create(
                store,
                &users::CLI,
                NewUser {
                    email: email.clone(),
                    display_name: name.clone(),
                    password: password.clone(),
                    role,
                    clinics: Some(clinics.clone()),
                    bodies: *bodies,
                },
            )
            .await
            .map_err(usage)?;
            let mut v = view(&u);
            if made {
                v["password"] = password.into();
            }
            Ok(v)
        }
        UsersCommand::List => {
            let rows = store.list_users().await?;
            Ok(json!({ "items": rows.iter().map(view).collect::<Vec<_>>() }))
        }
        UsersCommand::Disable { email, enable } => {
            let u = users::set_disabled(store, email, !enable)
                .await
                .map_err(usage)?;
            Ok(json!({ "email": u.email, "disabled": !enable }))
        }
        UsersCommand::ResetPassword { email, password } => {
            let made = password.is_none();
            let password = password.clone().unwrap_or_else(users::random_password);
            let u = users::reset_password(store, email, &password)
                .await
                .map_err(usage)?;
            let mut v = json!({ "email": u.email });
            if made {
                v["password"] = password.into();
            }
            Ok(v)
        }
    }
}

fn print(cmd: &UsersCommand, v: &Value) {
    match cmd {
        UsersCommand::Add { .. } => {
            println!(
                "added {} ({}, {})",
                cell(&v["email"]),
                cell(&v["display_name"]),
                cell(&v["role"])
            );
            if let Some(p) = v["password"].as_str() {
                println!("its password, shown only this once:\n\n    {p}\n");
            }
        }
        UsersCommand::List => {
            let rows: Vec<Vec<String>> = v["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|u| {
                    vec![
                        cell(&u["email"]),
                        cell(&u["display_name"]),
                        cell(&u["role"]),
                        u["clinics"].as_array().map_or("all".into(), |c| {
                            c.iter().map(cell).collect::<Vec<_>>().join(", ")
                        }),
                        if u["second_factor"] == true {
                            "yes"
                        } else {
                            "no"
                        }
                        .into(),
                        if u["disabled_at"].is_null() {
                            "active"
                        } else {
                            "disabled"
                        }
                        .into(),
                        u["last_login_at"].as_str().unwrap_or("never").into(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "E-MAIL",
                    "NAME",
                    "ROLE",
                    "CLINICS",
                    "2FA",
                    "STATUS",
                    "LAST LOGIN",
                ],
                &rows,
            );
        }
        UsersCommand::Disable { .. } => {
            let what = if v["disabled"] == true {
                "disabled"
            } else {
                "enabled"
            };
            println!("{} is {what}", cell(&v["email"]));
        }
        UsersCommand::ResetPassword { .. } => {
            println!(
                "new password set for {}; its sessions ended",
                cell(&v["email"])
            );
            if let Some(p) = v["password"].as_str() {
                println!("the new password, shown only this once:\n\n    {p}\n");
            }
        }
    }
}
