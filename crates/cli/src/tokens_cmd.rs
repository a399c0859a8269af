//! `carehook tokens …`: API tokens, through a running server or, with
//! `--database-url`, straight in the database.
//!
//! Offline use is how the first token is made without the admin token: the
//! database is where the tokens live, so whoever can open it can already do
//! anything carehook can; asking them for a token too would protect nothing.

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::UsageError;
use crate::client::{
    Client, ClientArgs, block_on, cell, expect_fields, print_json, print_table, seg,
};
use carehook::service::tokens::{check_access, check_name, create_token};
use carehook::time::rfc3339;

#[derive(Debug, clap::Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    pub command: TokensCommand,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Work on this database directly instead of a running server (no token
    /// needed): `sqlite://carehook.db` or `postgres://…`.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Make an API token; it is printed once, and stored only as a hash.
    ///
    /// Example:
    ///   carehook tokens create --name zapier
    ///   carehook tokens create --name north-desk --role editor --clinic 2
    ///   carehook tokens create --name kivicare-north --role ingest --clinic 2
    ///   carehook tokens create --name first --database-url sqlite://carehook.db   (offline)
    #[command(verbatim_doc_comment)]
    Create {
        /// Who or what will use it.
        #[arg(long)]
        name: String,
        /// owner (everything), admin, editor, viewer or ingest (only pushes events).
        #[arg(long, default_value = "owner")]
        role: String,
        /// Limit it to this clinic (its clinic_id); repeat for several. None: every clinic.
        #[arg(long = "clinic")]
        clinics: Vec<String>,
        /// Whether it sees bodies and event data in the delivery log (default: yes,
        /// except for a viewer).
        #[arg(long)]
        bodies: Option<bool>,
    },
    /// List the API tokens (never their values).
    ///
    /// Example:
    ///   carehook tokens list
    #[command(verbatim_doc_comment)]
    List,
    /// Revoke a token: it stops working at once.
    ///
    /// Example:
    ///   carehook tokens revoke 0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b
    #[command(verbatim_doc_comment)]
    Revoke { id: String },
}

pub fn run(args: TokensArgs) -> anyhow::Result<()> {
    let json_out = args.client.json;
    block_on(async move {
        let v = match &args.database_url {
            Some(url) => offline(url, &args.command).await?,
            None => online(&Client::new(&args.client)?, &args.command).await?,
        };
        print(&args.command, &v, json_out);
        Ok(())
    })
}

async fn online(c: &Client, cmd: &TokensCommand) -> anyhow::Result<Value> {
    match cmd {
        TokensCommand::Create {
            name,
            role,
            clinics,
            bodies,
        } => {
            let mut body = json!({ "name": name, "role": role, "clinics": clinics });
            if let Some(b) = bodies {
                body["bodies"] = (*b).into();
            }
            expect_fields(c.post("/api/v1/tokens", &body).await?, &["id", "token"])
        }
        TokensCommand::List => expect_fields(c.get("/api/v1/tokens").await?, &["items"]),
        TokensCommand::Revoke { id } => {
            c.call("DELETE", &format!("/api/v1/tokens/{}", seg(id)), None)
                .await?;
            Ok(json!({ "revoked": id }))
        }
    }
}

async fn offline(url: &str, cmd: &TokensCommand) -> anyhow::Result<Value> {
    let store = carehook_store::connect(url)
        .await
        .with_context(|| "opening the database given by --database-url")?;
    let view = |t: &carehook_store::TokenRow| {
        json!({
            "id": t.id,
            "name": t.name,
            "role": t.role,
            "clinics": t.clinics,
            "bodies": t.bodies,
            "created_at": rfc3339(t.created_at),
            "last_used_at": t.last_used_at.map(rfc3339),
            "revoked_at": t.revoked_at.map(rfc3339),
        })
    };
    match cmd {
        TokensCommand::Create {
            name,
            role,
            clinics,
            bodies,
        } => {
            let name = check_name(name).map_err(UsageError)?;
            let access = check_access(Some(role), Some(clinics.clone()), *bodies)
                .map_err(|e| UsageError(e.message()))?;
            let (row, token) = create_token(&*store, &name, &access).await?;
            let mut v = view(&row);
            v["token"] = token.into();
            Ok(v)
        }
        TokensCommand::List => {
            let rows = store.list_tokens().await?;
            Ok(json!({ "items": rows.iter().map(view).collect::<Vec<_>>() }))
        }
        TokensCommand::Revoke { id } => {
            let id: carehook_core::ids::TokenId = id
                .parse()
                .map_err(|_| UsageError(format!("{id:?} is not a token id")))?;
            if !store.revoke_token(id, carehook::time::now_ms()).await? {
                return Err(UsageError(format!("no active token {id}")).into());
            }
            Ok(json!({ "revoked": id }))
        }
    }
}

fn print(cmd: &TokensCommand, v: &Value, json_out: bool) {
    if json_out {
        print_json(v);
        return;
    }
    match cmd {
        TokensCommand::Create { .. } => {
            println!(
                "made token {} ({}); it is shown only this once:\n",
                cell(&v["id"]),
                cell(&v["name"])
            );
            println!("    {}\n", cell(&v["token"]));
            println!("Use it as `Authorization: Bearer <token>`, or CAREHOOK_TOKEN for the CLI.");
        }
        TokensCommand::List => {
            let rows: Vec<Vec<String>> = v["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    vec![
                        cell(&t["id"]),
                        cell(&t["name"]),
                        cell(&t["role"]),
                        clinics_cell(&t["clinics"]),
                        cell(&t["created_at"]),
                        cell(&t["last_used_at"]),
                        cell(&t["revoked_at"]),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "NAME",
                    "ROLE",
                    "CLINICS",
                    "CREATED",
                    "LAST USED",
                    "REVOKED",
                ],
                &rows,
            );
        }
        TokensCommand::Revoke { id } => println!("revoked token {id}"),
    }
}

/// A token's clinics as a cell: `all`, or the ids.
fn clinics_cell(v: &Value) -> String {
    match v.as_array() {
        Some(ids) => ids.iter().map(cell).collect::<Vec<_>>().join(", "),
        None => "all".into(),
    }
}
