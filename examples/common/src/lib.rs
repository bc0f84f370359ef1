//! What the three example apps share, so they stay the same app (docs/api.md §10): the layered
//! configuration with development defaults, the demo pages, the first-admin helper and the
//! test-only mail outbox that the browser tests read codes from.
//!
//! Every example's `main` starts with [`start`]:
//!
//! ```no_run
//! # async fn main_of_an_app() {
//! let Some((nauth, bind, outbox)) = nauth_example_common::start("my-app").await else {
//!     return; // --create-admin EMAIL was handled
//! };
//! // mount `nauth` in the framework's app and serve it on `bind`; when `outbox` is `Some`
//! // (NAUTH_TEST_OUTBOX=1), also serve `GET /__test/outbox` with `outbox.answer(query)`
//! # let _ = (nauth, bind, outbox);
//! # }
//! ```

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nauth_core::config::{ConfigError, NAuthConfig, from_layers};
use nauth_core::{MemoryOutbox, NAuth};
use serde_json::{Value, json};

/// The page at `GET /`: signup → verify → login → profile → MFA → sessions → password → API
/// keys → admin, in the browser (cookie delivery with CSRF).
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
    // Passkeys need a secure context and a domain as relying party id: in development that is
    // http://localhost:<port> (not 127.0.0.1, an IP address cannot be a relying party id).
    let port = bind.rsplit(':').next().unwrap_or("3000");
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
[passkeys]
enabled = true
rp_id = "localhost"
origins = ["http://localhost:{port}"]
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
/// caller to exit). Returns the engine, the address to bind, and the test outbox when
/// `NAUTH_TEST_OUTBOX=1` (then every mail and SMS goes there instead of the configured
/// provider, and the app serves it at [`OUTBOX_PATH`]).
pub async fn start(app: &str) -> Option<(NAuth, String, Option<TestOutbox>)> {
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
    let outbox = test_outbox_enabled().then(TestOutbox::default);
    let mut builder = NAuth::builder(cfg.nauth);
    if let Some(outbox) = &outbox {
        eprintln!(
            "{app}: WARNING NAUTH_TEST_OUTBOX=1: mails and SMS are NOT delivered; anyone who can \
             reach {OUTBOX_PATH} reads every code and link. For tests only, never in production."
        );
        builder = builder
            .email_sender(outbox.0.clone())
            .sms_sender(outbox.0.clone());
    }
    let nauth = builder
        .build()
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
    Some((nauth, cfg.bind, outbox))
}

/// Where an app started with `NAUTH_TEST_OUTBOX=1` serves its [`TestOutbox`] (`GET`, query
/// `to=<address or number>`). Without the variable the path is not routed (a plain 404).
pub const OUTBOX_PATH: &str = "/__test/outbox";

/// Whether `NAUTH_TEST_OUTBOX` is exactly `1`: anything else leaves mail delivery alone.
fn test_outbox_enabled() -> bool {
    std::env::var("NAUTH_TEST_OUTBOX").is_ok_and(|v| v == "1")
}

/// The outbox of an app started with `NAUTH_TEST_OUTBOX=1`: the engine sends every mail and SMS
/// here, and browser tests read their codes back over HTTP from [`OUTBOX_PATH`]. Clones share
/// the messages.
#[derive(Debug, Clone, Default)]
pub struct TestOutbox(MemoryOutbox);

impl TestOutbox {
    /// The answer to `GET /__test/outbox?<query>`: status and JSON body. `to` (percent-encoded;
    /// `+` is literal, so `?to=+15551234567` works) selects the mails to an address (compared
    /// case-insensitively) or, without an `@`, the SMS to a number:
    /// `200 {"messages": [{"to", "subject", "text"}, ...]}` oldest first, newest last (SMS have
    /// no `subject`). A missing `to` is `400 VALIDATION_FAILED` in the contract's error shape.
    pub fn answer(&self, query: Option<&str>) -> (u16, String) {
        let (emails, sms) = (self.0.emails(), self.0.sms());
        let emails = emails.iter().map(|m| Sent {
            to: &m.to,
            subject: Some(&m.subject),
            text: &m.text,
        });
        let sms = sms.iter().map(|m| Sent {
            to: &m.to,
            subject: None,
            text: &m.text,
        });
        outbox_answer(query, emails, sms)
    }
}

/// A message as the outbox route shows it (`subject` is `None` for an SMS).
#[derive(Debug, Clone, Copy)]
struct Sent<'a> {
    to: &'a str,
    subject: Option<&'a str>,
    text: &'a str,
}

/// [`TestOutbox::answer`] over the messages sent so far, oldest first.
fn outbox_answer<'a>(
    query: Option<&str>,
    emails: impl Iterator<Item = Sent<'a>>,
    sms: impl Iterator<Item = Sent<'a>>,
) -> (u16, String) {
    let Some(to) = query_param(query.unwrap_or(""), "to").filter(|t| !t.trim().is_empty()) else {
        let error = json!({
            "code": "VALIDATION_FAILED",
            "message": "Validation failed",
            "details": { "validationErrors": { "to": ["is required"] } },
        });
        return (400, error.to_string());
    };
    let messages: Vec<Value> = if to.contains('@') {
        emails
            .filter(|m| m.to.trim().eq_ignore_ascii_case(to.trim()))
            .map(|m| json!({ "to": m.to, "subject": m.subject, "text": m.text }))
            .collect()
    } else {
        let digits = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        sms.filter(|m| digits(m.to) == digits(&to))
            .map(|m| json!({ "to": m.to, "text": m.text }))
            .collect()
    };
    (200, json!({ "messages": messages }).to_string())
}

/// The first value of `name` in a raw query string, percent-decoded (`+` stays `+`); `None`
/// when absent or not UTF-8 after decoding.
fn query_param(query: &str, name: &str) -> Option<String> {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_param_decodes_percent_and_keeps_plus() {
        let cases = [
            ("to=a%40b.c", Some("a@b.c")),
            (
                "x=1&to=j%2Bx%40example.com&to=other",
                Some("j+x@example.com"),
            ),
            ("to=+15551234567", Some("+15551234567")),
            ("to=%zz", Some("%zz")),
            ("to=%ff", None),
            ("tox=1", None),
            ("", None),
        ];
        for (query, want) in cases {
            assert_eq!(query_param(query, "to").as_deref(), want, "{query}");
        }
    }

    fn sent<'a>(to: &'a str, subject: Option<&'a str>, text: &'a str) -> Sent<'a> {
        Sent { to, subject, text }
    }

    #[test]
    fn answer_lists_the_messages_to_one_address_newest_last() {
        let emails = [
            sent("A@x.io", Some("first"), "first 123456"),
            sent("b@x.io", Some("other"), "other"),
            sent(" a@x.io", Some("second"), "second 123456"),
        ];
        let sms = [sent("+15551234567", None, "code 654321")];
        let ask = |query: Option<&str>| {
            let (status, body) = outbox_answer(query, emails.iter().copied(), sms.iter().copied());
            let body: Value = serde_json::from_str(&body).expect("json");
            (status, body)
        };

        let (status, body) = ask(Some("to=a%40x.io"));
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({ "messages": [
                { "to": "A@x.io", "subject": "first", "text": "first 123456" },
                { "to": " a@x.io", "subject": "second", "text": "second 123456" },
            ] })
        );
        assert_eq!(
            ask(Some("to=+1555%20123%204567")),
            (
                200,
                json!({ "messages": [{ "to": "+15551234567", "text": "code 654321" }] })
            )
        );
        assert_eq!(
            ask(Some("to=nobody%40x.io")),
            (200, json!({ "messages": [] }))
        );
        let (status, body) = ask(None);
        assert_eq!(status, 400);
        assert_eq!(body["code"], "VALIDATION_FAILED");
        assert_eq!(ask(Some("to=")).0, 400);
    }
}
