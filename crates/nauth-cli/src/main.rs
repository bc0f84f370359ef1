//! `nauth`: the operator's command line for a nauth database.
//!
//! It reads the same configuration as the app: the TOML file named by `--config` or
//! `NAUTH_CONFIG`, under the `NAUTH_*` environment overrides (docs/configuration.md), and
//! starts the same engine on it, so its actions behave exactly as the admin API's: the same
//! checks, the same audit rows (with `adminSub: "operator"`), and revocations that reach
//! running instances at once (the deny set, the session caches).
//!
//! Exit status: 0 on success, 1 when the action is refused (the error's code is printed),
//! 2 for a bad configuration or command line.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nauth_core::config::JwtAlgorithm;
use nauth_core::http::percent_encode;
use nauth_core::{AuthError, NAuth, SigningKeyInfo, config};
use serde_json::{Value, json};

/// The operator's command line for a nauth database.
#[derive(Debug, Parser)]
#[command(name = "nauth", version, about)]
struct Cli {
    /// The app's TOML configuration (default: the file named by NAUTH_CONFIG, if any);
    /// NAUTH_* environment overrides apply on top.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates or upgrades the database schema (the app also does it at start).
    Migrate,
    /// Checks the configuration and prints every bad key; exits 1 if there is one.
    CheckConfig,
    /// Prints the OpenAPI 3.1 document of nauth's routes for this configuration (the one
    /// served at `<mount>/openapi.json`), without touching the database.
    Openapi,
    /// Creates an administrator (roles user and admin, email verified).
    CreateAdmin {
        /// The administrator's email.
        #[arg(long)]
        email: String,
        /// Read the password from standard input (one line) instead of generating a one-time
        /// password that must be changed at the first login.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Lists and manages users.
    #[command(subcommand)]
    Users(Users),
    /// The RS256/EdDSA signing keys (jwt.algorithm) published at <mount>/.well-known/jwks.json.
    #[command(subcommand)]
    Keys(Keys),
    /// Queries the audit trail, newest first.
    Audit {
        /// Only this user's rows (a user id or an email).
        #[arg(long, value_name = "USER")]
        sub: Option<String>,
        /// Only this event type, e.g. LOGIN_FAILED.
        #[arg(long)]
        event_type: Option<String>,
        /// From this time on (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Up to this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// Page, from 1.
        #[arg(long, default_value_t = 1)]
        page: u64,
        /// Rows per page, at most 100.
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
    /// Deletes expired rows now (the app also does it every kv.purge_interval).
    Purge,
}

#[derive(Debug, Subcommand)]
enum Users {
    /// Lists users (JSON), newest first unless --sort says otherwise.
    List {
        /// Only this email.
        #[arg(long)]
        email: Option<String>,
        /// Only users with this role.
        #[arg(long)]
        role: Option<String>,
        /// Only disabled (true) or enabled (false) users.
        #[arg(long)]
        locked: Option<bool>,
        /// createdAt, -createdAt, email or -email.
        #[arg(long)]
        sort: Option<String>,
        /// Page, from 1.
        #[arg(long, default_value_t = 1)]
        page: u64,
        /// Users per page, at most 100.
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
    /// Disables a user: sessions revoked, access tokens refused at once, logins refused.
    Disable {
        /// A user id or an email.
        user: String,
        /// Why (kept in the audit row).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Enables a disabled user.
    Enable {
        /// A user id or an email.
        user: String,
    },
    /// Replaces a user's roles.
    SetRoles {
        /// A user id or an email.
        user: String,
        /// The new roles, e.g. `user admin`.
        #[arg(required = true)]
        roles: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum Keys {
    /// Lists the stored keys (JSON), the signing one marked `active`.
    List,
    /// Signs with a new key from now on (on every instance within 10 s); the old key keeps
    /// verifying, and stays in the JWKS, until the longest access token it signed has expired.
    Rotate,
}

/// Why a command failed, and its exit status.
enum Failure {
    /// The configuration or the command line (2).
    Setup(String),
    /// The engine refused (1).
    Refused(AuthError),
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Self {
        Failure::Refused(e)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(Failure::Setup(message)) => {
            eprintln!("nauth: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Refused(e)) => {
            let details = e.details();
            let details = if details.is_empty() {
                String::new()
            } else {
                format!(" {}", Value::Object(details))
            };
            eprintln!("nauth: {}: {e}{details}", e.code());
            ExitCode::from(1)
        }
    }
}

/// The configuration file: `--config`, else `NAUTH_CONFIG`.
fn config_path(cli: &Cli) -> Option<PathBuf> {
    cli.config
        .clone()
        .or_else(|| std::env::var_os("NAUTH_CONFIG").map(PathBuf::from))
}

fn env_vars() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let path = config_path(&cli);
    if let Command::CheckConfig = cli.command {
        return check_config(path.as_deref());
    }
    let cfg = config::load(path.as_deref()).map_err(|e| Failure::Setup(e.to_string()))?;
    if let Command::Openapi = cli.command {
        let doc = nauth_core::openapi_document(&cfg);
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let nauth = NAuth::new(cfg)
        .await
        .map_err(|e| Failure::Setup(e.to_string()))?;
    let result = command(&nauth, cli.command).await;
    nauth.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

/// `check-config`: every problem, one a line.
fn check_config(path: Option<&std::path::Path>) -> Result<ExitCode, Failure> {
    let text = match path {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| Failure::Setup(format!("{}: {e}", p.display())))?,
        ),
        None => None,
    };
    let problems = config::problems(text.as_deref(), env_vars());
    if problems.is_empty() {
        println!("configuration OK");
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        println!("{p}");
    }
    eprintln!("nauth: {} problem(s) in the configuration", problems.len());
    Ok(ExitCode::from(1))
}

async fn command(nauth: &NAuth, command: Command) -> Result<(), Failure> {
    match command {
        Command::Migrate => {
            // The engine migrated when it started.
            println!("schema version {}", nauth_core::SCHEMA_VERSION);
        }
        Command::CheckConfig | Command::Openapi => {
            unreachable!("handled before the engine starts")
        }
        Command::CreateAdmin {
            email,
            password_stdin,
        } => create_admin(nauth, &email, password_stdin).await?,
        Command::Users(users) => self::users(nauth, users).await?,
        Command::Keys(keys) => self::keys(nauth, keys).await?,
        Command::Audit {
            sub,
            event_type,
            from,
            to,
            page,
            limit,
        } => {
            let sub = match sub {
                Some(u) => Some(user_id(nauth, &u).await?),
                None => None,
            };
            let query = query(&[
                ("sub", sub),
                ("eventType", event_type),
                ("from", from),
                ("to", to),
                ("page", Some(page.to_string())),
                ("limit", Some(limit.to_string())),
            ]);
            print(&call(nauth, "GET", &format!("/audit{query}"), None).await?);
        }
        Command::Purge => print(&json!(nauth.purge().await)),
    }
    Ok(())
}

async fn create_admin(nauth: &NAuth, email: &str, password_stdin: bool) -> Result<(), Failure> {
    if !password_stdin {
        let password = nauth.create_admin(email).await?;
        println!(
            "admin {email} created; one-time password: {password}\n(change it at the first login)"
        );
        return Ok(());
    }
    let mut line = String::new();
    std::io::stdin()
        .read_to_string(&mut line)
        .map_err(|e| Failure::Setup(format!("reading the password: {e}")))?;
    let password = line.trim_end_matches(['\r', '\n']);
    let body = json!({
        "email": email,
        "password": password,
        "roles": ["user", "admin"],
        "emailVerified": true,
        "mustChangePassword": false,
    });
    call(nauth, "POST", "/users", Some(&body)).await?;
    println!("admin {email} created");
    Ok(())
}

async fn users(nauth: &NAuth, users: Users) -> Result<(), Failure> {
    let answer = match users {
        Users::List {
            email,
            role,
            locked,
            sort,
            page,
            limit,
        } => {
            let query = query(&[
                ("email", email),
                ("role", role),
                ("locked", locked.map(|l| l.to_string())),
                ("sort", sort),
                ("page", Some(page.to_string())),
                ("limit", Some(limit.to_string())),
            ]);
            call(nauth, "GET", &format!("/users{query}"), None).await?
        }
        Users::Disable { user, reason } => {
            let sub = user_id(nauth, &user).await?;
            let body = json!({ "reason": reason });
            call(nauth, "POST", &format!("/users/{sub}/disable"), Some(&body)).await?
        }
        Users::Enable { user } => {
            let sub = user_id(nauth, &user).await?;
            call(nauth, "POST", &format!("/users/{sub}/enable"), None).await?
        }
        Users::SetRoles { user, roles } => {
            let sub = user_id(nauth, &user).await?;
            let body = json!({ "roles": roles });
            call(nauth, "POST", &format!("/users/{sub}/roles"), Some(&body)).await?
        }
    };
    print(&answer);
    Ok(())
}

async fn keys(nauth: &NAuth, keys: Keys) -> Result<(), Failure> {
    let jwt = &nauth.config().jwt;
    if jwt.algorithm == JwtAlgorithm::Hs256 {
        return Err(Failure::Setup(
            "jwt.algorithm is HS256: there are no signing keys (set it to RS256 or EdDSA)".into(),
        ));
    }
    match keys {
        Keys::List => {
            let list: Vec<Value> = nauth.signing_keys().await?.iter().map(key_json).collect();
            print(&json!({ "keys": list }));
        }
        Keys::Rotate => {
            if !jwt.private_key_file.is_empty() {
                return Err(Failure::Setup(format!(
                    "the signing key comes from jwt.private_key_file ({}): replace the file and restart the app to rotate",
                    jwt.private_key_file
                )));
            }
            print(&key_json(&nauth.rotate_signing_key().await?));
        }
    }
    Ok(())
}

fn key_json(k: &SigningKeyInfo) -> Value {
    json!({
        "kid": k.kid,
        "algorithm": k.algorithm.as_str(),
        "active": k.active,
        "createdAt": rfc3339(k.created_at),
        "retiredAt": k.retired_at.map(rfc3339),
        "verifiableUntil": k.verifiable_until.map(rfc3339),
    })
}

/// Unix milliseconds as RFC 3339 (UTC).
fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// One admin API call as the operator; the answer's body.
async fn call(
    nauth: &NAuth,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, Failure> {
    Ok(nauth.admin_call(method, path, body).await?.1)
}

/// A user id from a user id or an email (`404 RESOURCE_NOT_FOUND` for neither). The list's
/// email filter matches parts of addresses, so only the exact address is taken.
async fn user_id(nauth: &NAuth, user: &str) -> Result<String, Failure> {
    if !user.contains('@') {
        return Ok(user.to_string());
    }
    let email = user.trim().to_lowercase();
    let q = query(&[
        ("email", Some(email.clone())),
        ("limit", Some("100".into())),
    ]);
    let list = call(nauth, "GET", &format!("/users{q}"), None).await?;
    list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|u| u["email"].as_str() == Some(email.as_str()))
        .and_then(|u| u["sub"].as_str())
        .map(str::to_string)
        .ok_or(Failure::Refused(AuthError::NotFound))
}

/// `?k=v&…` of the parameters that are set, percent-encoded.
fn query(params: &[(&str, Option<String>)]) -> String {
    let set: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", percent_encode(v))))
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}

fn print(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}
