//! What the three example apps share, so they stay the same app (docs/api.md §10): the layered
//! configuration with development defaults, the demo pages, and the first-admin helper.
//!
//! Every example's `main` starts with [`start`]:
//!
//! ```no_run
//! # async fn main_of_an_app() {
//! let Some((nauth, bind)) = nauth_example_common::start("my-app").await else {
//!     return; // --create-admin EMAIL was handled
//! };
//! // mount `nauth` in the framework's app and serve it on `bind`
//! # let _ = (nauth, bind);
//! # }
//! ```

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nauth_core::NAuth;
use nauth_core::config::{ConfigError, NAuthConfig, from_layers};

/// The page at `GET /`: signup → verify → login → profile in the browser.
pub const INDEX_HTML: &str = include_str!("../assets/index.html");
/// The page at `GET /reset-password` that the reset link opens.
pub const RESET_HTML: &str = include_str!("../assets/reset-password.html");

/// The example app's settings.
#[derive(Debug, Clone)]
pub struct ExampleConfig {
    /// `NAUTH_BIND`, default `127.0.0.1:3000`.
    pub bind: String,
    /// The engine's configuration.
    pub nauth: NAuthConfig,
    /// True when no secret was configured and a random one was generated (tokens then die
    /// with the process).
    pub generated_secret: bool,
}

/// Loads the example configuration: development defaults, under the TOML file named by
/// `NAUTH_CONFIG` (if any), under `NAUTH_*` environment overrides.
pub fn load() -> Result<ExampleConfig, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let bind = get("NAUTH_BIND").unwrap_or_else(|| "127.0.0.1:3000".into());
    let file = match get("NAUTH_CONFIG") {
        Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| ConfigError {
            key: "NAUTH_CONFIG".into(),
            message: format!("{path}: {e}"),
        })?),
        None => None,
    };
    let file_has_secret = file
        .as_deref()
        .and_then(|f| f.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("secret"));
    let generated_secret = !file_has_secret && get("NAUTH_SECRET").is_none();
    let secret = if generated_secret {
        random_secret()
    } else {
        String::new()
    };
    let base = format!(
        r#"
database_url = "sqlite://nauth.db?mode=rwc"
base_url = "http://{bind}"
secret = "{secret}"
[token_delivery]
mode = "hybrid"
cookie_secure = false
[signup]
verification = "email"
[email]
provider = "console"
[openapi]
page = true
"#
    );
    let nauth = from_layers(&base, file.as_deref(), env)?;
    Ok(ExampleConfig {
        bind,
        nauth,
        generated_secret,
    })
}

/// A development secret: 32 bytes from the OS CSPRNG, base64url without padding.
fn random_secret() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("operating system random number generator");
    URL_SAFE_NO_PAD.encode(b)
}

/// The `--create-admin EMAIL` argument, if given.
pub fn create_admin_arg() -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--create-admin")
        .and_then(|i| args.get(i + 1).cloned())
}

/// The start of every example app's `main`: loads the configuration (a bad key ends the process
/// with status 2 and a message naming it), warns when the secret was generated, builds the
/// engine, and handles `--create-admin EMAIL` (prints the one-time password; `None` tells the
/// caller to exit). Returns the engine and the address to bind.
pub async fn start(app: &str) -> Option<(NAuth, String)> {
    let fail = |what: String, code: i32| -> ! {
        eprintln!("{app}: {what}");
        std::process::exit(code)
    };
    let cfg = load().unwrap_or_else(|e| fail(e.to_string(), 2));
    if cfg.generated_secret {
        eprintln!(
            "{app}: WARNING no secret configured; using a random development secret (tokens die with the process). Set NAUTH_SECRET."
        );
    }
    let nauth = NAuth::new(cfg.nauth)
        .await
        .unwrap_or_else(|e| fail(e.to_string(), 2));
    if let Some(email) = create_admin_arg() {
        match nauth.create_admin(&email).await {
            Ok(pw) => println!(
                "admin {email} created; one-time password: {pw}\n(change it at the first login)"
            ),
            Err(e) => fail(format!("cannot create admin {email}: {}", e.code()), 1),
        }
        return None;
    }
    Some((nauth, cfg.bind))
}
