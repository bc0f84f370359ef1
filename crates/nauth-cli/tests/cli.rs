//! The real `nauth` binary on a temporary database: every command, its output and exit
//! status, and its effect as the app sees it (an engine on the same database logs in).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use nauth_core::http::Body;
use nauth_core::{NAuth, Request};
use serde_json::{Value, json};

const SECRET: &str = "cli-test-secret-0123456789abcdef-xyz";
const PW: &str = "Correct-Horse-42";

/// A temporary SQLite database and the configuration file naming it.
struct Setup {
    dir: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        Setup::with("")
    }

    /// A setup whose configuration file ends with `more` (TOML).
    fn with(more: &str) -> Setup {
        Setup::on(None, more)
    }

    /// A setup on the database at `url` (default: a new SQLite file).
    fn on(url: Option<&str>, more: &str) -> Setup {
        let dir = std::env::temp_dir().join(format!("nauth-cli-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = url.map_or_else(
            || format!("sqlite://{}?mode=rwc", dir.join("nauth.db").display()),
            str::to_string,
        );
        let toml = format!(
            "database_url = \"{url}\"\nsecret = \"{SECRET}\"\n\
             [password]\nargon2_memory_kib = 64\nargon2_iterations = 1\n{more}"
        );
        std::fs::write(dir.join("nauth.toml"), toml).expect("config");
        Setup { dir }
    }

    /// Runs `nauth --config <file> args…` with `stdin`.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nauth"));
        cmd.arg("--config")
            .arg(self.dir.join("nauth.toml"))
            .args(args)
            .env_remove("NAUTH_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("NAUTH_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.spawn().expect("the nauth binary runs");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).expect("write stdin");
        }
        drop(input);
        child.wait_with_output().expect("nauth ends")
    }

    /// `run` that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, None);
        assert!(
            out.status.success(),
            "nauth {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `run` that must succeed with JSON on stdout.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|_| panic!("JSON from {args:?}: {out}"))
    }

    /// `run` that must be refused with `code` (exit status 1).
    fn refused(&self, args: &[&str], code: &str) {
        let out = self.run(args, None);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "nauth {args:?}: {err}");
        assert!(err.contains(code), "nauth {args:?}: {err}");
    }

    /// The app: an engine on the same database, with the same configuration file.
    async fn app(&self) -> NAuth {
        let cfg = nauth_core::config::load(Some(&self.dir.join("nauth.toml"))).expect("config");
        NAuth::new(cfg).await.expect("the app starts")
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A login through the app; the answer's status and body.
async fn login(app: &NAuth, email: &str, password: &str) -> (u16, Value) {
    let mut req = Request::new("POST", "/auth/login");
    req.headers
        .push(("content-type".into(), "application/json".into()));
    let body = json!({"identifier": email, "password": password});
    req.body = Body::Bytes(body.to_string().into_bytes());
    let r = app.handle(req).await;
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

/// `nauth check-config --config <file>`.
fn check_config(file: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nauth"))
        .args(["check-config", "--config"])
        .arg(file)
        .output()
        .expect("runs")
}

#[test]
fn check_config_prints_every_bad_key() {
    let s = Setup::new();
    assert_eq!(s.ok(&["check-config"]).trim(), "configuration OK");
    let bad = s.dir.join("bad.toml");
    std::fs::write(
        &bad,
        "secret = \"short\"\nfoo = 1\n[lockout]\nmax_attempts = 0\n[jwt]\naccess_ttl = 5\n",
    )
    .expect("write");
    let out = check_config(&bad);
    let printed = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    for key in ["foo", "jwt.access_ttl"] {
        assert!(printed.contains(key), "{key} in {printed}");
    }
    // Once the kinds are right, every broken rule.
    std::fs::write(
        &bad,
        "secret = \"short\"\n[lockout]\nmax_attempts = 0\n[refresh]\nttl = \"0s\"\n",
    )
    .expect("write");
    let out = check_config(&bad);
    let printed = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    for key in ["secret", "lockout.max_attempts", "refresh.ttl"] {
        assert!(printed.contains(key), "{key} in {printed}");
    }
    // An environment override is checked too.
    let out = Command::new(env!("CARGO_BIN_EXE_nauth"))
        .args(["check-config", "--config"])
        .arg(s.dir.join("nauth.toml"))
        .env("NAUTH_LOCKOUT__MAX_ATTEMPTS", "many")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("lockout.max_attempts"));
    // A command other than check-config refuses to start on a bad file: status 2.
    let out = Command::new(env!("CARGO_BIN_EXE_nauth"))
        .args(["migrate", "--config"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[tokio::test]
async fn migrate_and_create_admin() {
    let s = Setup::new();
    let out = s.ok(&["migrate"]);
    assert_eq!(
        out.trim(),
        format!("schema version {}", nauth_core::SCHEMA_VERSION)
    );
    s.ok(&["migrate"]);

    // A one-time password that must be changed at the first login.
    let out = s.ok(&["create-admin", "--email", "Boss@Example.com"]);
    let password = out
        .split("one-time password: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("a one-time password")
        .to_string();
    let app = s.app().await;
    let (status, body) = login(&app, "boss@example.com", &password).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["challengeName"], "FORCE_CHANGE_PASSWORD");
    s.refused(
        &["create-admin", "--email", "boss@example.com"],
        "SIGNUP_EMAIL_EXISTS",
    );
    s.refused(
        &["create-admin", "--email", "not-an-email"],
        "VALIDATION_FAILED",
    );

    // A password from standard input: logs straight in, as an admin.
    let out = s.run(
        &[
            "create-admin",
            "--email",
            "ops@example.com",
            "--password-stdin",
        ],
        Some(&format!("{PW}\n")),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (status, body) = login(&app, "ops@example.com", PW).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["roles"], json!(["user", "admin"]));
    // The password policy holds.
    let out = s.run(
        &[
            "create-admin",
            "--email",
            "weak@example.com",
            "--password-stdin",
        ],
        Some("password\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("SIGNUP_WEAK_PASSWORD"));
    app.close().await;
}

#[tokio::test]
async fn users_audit_and_purge() {
    let s = Setup::new();
    s.ok(&["migrate"]);
    let stdin = Some("Another-Secret-93\n");
    // joann's address contains ann's: acting on ann must never pick joann.
    for email in ["ann@example.com", "joann@example.com", "bob@example.com"] {
        let out = s.run(
            &["create-admin", "--email", email, "--password-stdin"],
            stdin,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let app = s.app().await;

    let list = s.json(&["users", "list", "--sort", "email"]);
    assert_eq!(list["total"], 3);
    assert_eq!(list["data"][0]["email"], "ann@example.com");
    s.json(&["users", "disable", "ann@example.com"]);
    let (status, _) = login(&app, "joann@example.com", "Another-Secret-93").await;
    assert_eq!(status, 200, "joann is untouched");
    let (status, _) = login(&app, "ann@example.com", "Another-Secret-93").await;
    assert_eq!(status, 403, "ann is disabled");
    let list = s.json(&["users", "list", "--email", "bob@example.com"]);
    assert_eq!(list["total"], 1);
    let bob = list["data"][0]["sub"].as_str().expect("sub").to_string();
    s.refused(&["users", "list", "--limit", "101"], "VALIDATION_FAILED");
    s.refused(&["users", "list", "--sort", "age"], "VALIDATION_FAILED");

    // Disable by email: the app refuses the login; enable by id.
    let r = s.json(&["users", "disable", "bob@example.com", "--reason", "left"]);
    assert_eq!(r["success"], true);
    let (status, body) = login(&app, "bob@example.com", "Another-Secret-93").await;
    assert_eq!(
        (status, body["code"].clone()),
        (403, json!("AUTH_ACCOUNT_LOCKED"))
    );
    s.json(&["users", "enable", &bob]);
    let (status, _) = login(&app, "bob@example.com", "Another-Secret-93").await;
    assert_eq!(status, 200);

    let r = s.json(&["users", "set-roles", &bob, "user", "auditor"]);
    assert_eq!(r["roles"], json!(["user", "auditor"]));
    let (_, body) = login(&app, "bob@example.com", "Another-Secret-93").await;
    assert_eq!(body["user"]["roles"], json!(["user", "auditor"]));
    s.refused(
        &["users", "set-roles", &bob, "Bad Role"],
        "VALIDATION_FAILED",
    );
    s.refused(
        &["users", "disable", "nobody@example.com"],
        "RESOURCE_NOT_FOUND",
    );
    s.refused(
        &["users", "enable", "00000000-0000-4000-8000-000000000000"],
        "RESOURCE_NOT_FOUND",
    );
    s.refused(&["users", "enable", "not-a-uuid"], "RESOURCE_NOT_FOUND");

    // The audit trail of bob, newest first, every action the operator's.
    let audit = s.json(&[
        "audit",
        "--sub",
        "bob@example.com",
        "--event-type",
        "ADMIN_ACTION",
    ]);
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| r["details"]["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(actions, ["set_roles", "enable", "disable", "create"]);
    assert!(
        audit["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|r| r["details"]["adminSub"] == "operator")
    );
    s.refused(&["audit", "--from", "yesterday"], "VALIDATION_FAILED");

    let purged = s.json(&["purge"]);
    assert!(
        purged["sessions"].is_u64() && purged["kv"].is_u64(),
        "{purged}"
    );
    app.close().await;
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_nauth"))
        .args(["users", "frobnicate"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_nauth"))
        .arg("--help")
        .output()
        .expect("runs");
    assert!(out.status.success());
    for cmd in [
        "migrate",
        "check-config",
        "create-admin",
        "users",
        "audit",
        "purge",
    ] {
        assert!(text(&out.stdout).contains(cmd), "{cmd} in --help");
    }
}

/// The `kid` in a JWT's header.
fn kid_of(token: &str) -> String {
    use base64::Engine;
    let head = token.split('.').next().expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .expect("base64url");
    let v: Value = serde_json::from_slice(&bytes).expect("JSON header");
    v["kid"].as_str().expect("kid").to_string()
}

#[tokio::test]
async fn keys_list_and_rotate() {
    // HS256 has no keys to list or rotate.
    let s = Setup::new();
    let out = s.run(&["keys", "list"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("HS256"));

    let s = Setup::with("[jwt]\nalgorithm = \"EdDSA\"\n[signup]\nverification = \"none\"\n");
    let first = s.json(&["keys", "list"]);
    let keys = first["keys"].as_array().expect("keys").clone();
    assert_eq!(keys.len(), 1, "{first}");
    assert_eq!(
        (keys[0]["active"].clone(), keys[0]["algorithm"].clone()),
        (json!(true), json!("EdDSA"))
    );
    let old_kid = keys[0]["kid"].as_str().expect("kid").to_string();

    // The app signs with that key.
    let out = s.run(
        &[
            "create-admin",
            "--email",
            "k@example.com",
            "--password-stdin",
        ],
        Some(PW),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let app = s.app().await;
    let (status, body) = login(&app, "k@example.com", PW).await;
    assert_eq!(status, 200, "{body}");
    let old_token = body["accessToken"].as_str().expect("token").to_string();
    assert_eq!(kid_of(&old_token), old_kid);

    // Rotate: a new active key; the old one retired but still verifiable.
    let rotated = s.json(&["keys", "rotate"]);
    let new_kid = rotated["kid"].as_str().expect("kid").to_string();
    assert_ne!(new_kid, old_kid);
    assert_eq!(rotated["active"], true);
    let listed = s.json(&["keys", "list"]);
    let keys = listed["keys"].as_array().expect("keys").clone();
    assert_eq!(keys.len(), 2, "{listed}");
    let old = keys
        .iter()
        .find(|k| k["kid"] == old_kid.as_str())
        .expect("old key");
    assert_eq!(old["active"], false);
    assert!(
        old["retiredAt"].is_string() && old["verifiableUntil"].is_string(),
        "{old}"
    );
    let mut req = Request::new("GET", "/api/data");
    req.headers
        .push(("authorization".into(), format!("Bearer {old_token}")));
    assert!(
        app.authenticate(&req).await.is_ok(),
        "the old key still verifies"
    );
    // An app started now signs with the new key.
    let fresh = s.app().await;
    let (_, body) = login(&fresh, "k@example.com", PW).await;
    assert_eq!(
        kid_of(body["accessToken"].as_str().expect("token")),
        new_kid
    );
    app.close().await;
    fresh.close().await;

    // A key from a file is rotated by replacing the file (made with openssl when present).
    let pem = std::env::temp_dir().join(format!("nauth-cli-{}.pem", uuid::Uuid::new_v4()));
    let made = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&pem)
        .output()
        .is_ok_and(|o| o.status.success());
    if !made {
        eprintln!("openssl not available: the key-file case is skipped");
        return;
    }
    let s = Setup::with(&format!(
        "[jwt]\nalgorithm = \"EdDSA\"\nprivate_key_file = \"{}\"\n",
        pem.display()
    ));
    assert_eq!(
        s.json(&["keys", "list"])["keys"].as_array().map(Vec::len),
        Some(1)
    );
    let out = s.run(&["keys", "rotate"], None);
    let _ = std::fs::remove_file(&pem);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("replace the file"));
}

/// On PostgreSQL, with a running app that caches live sessions (`session.cache_max_age`): a
/// disable or a role change made by the command line reaches the app before the command ends,
/// so the app's very next request sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_a_running_app_on_postgres() {
    let Ok(pg) = std::env::var("NAUTH_TEST_POSTGRES_URL") else {
        eprintln!("NAUTH_TEST_POSTGRES_URL not set: skipped");
        return;
    };
    let s = Setup::on(
        Some(&pg),
        "[session]\ncache_max_age = \"60s\"\n[signup]\nverification = \"none\"\n",
    );
    let email = format!("cli-{}@example.com", uuid::Uuid::new_v4().simple());
    let out = s.run(
        &["create-admin", "--email", &email, "--password-stdin"],
        Some(PW),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let app = s.app().await;
    assert!(app.session_cache_serving(), "the app's cache answers");
    let (status, body) = login(&app, &email, PW).await;
    assert_eq!(status, 200, "{body}");
    let mut admin = Request::new("GET", "/api/admin");
    admin.headers.push((
        "authorization".into(),
        format!("Bearer {}", body["accessToken"].as_str().expect("token")),
    ));
    // Seen, and cached, as an admin.
    for _ in 0..3 {
        assert!(app.authenticate_role(&admin, "admin").await.is_ok());
    }
    s.json(&["users", "set-roles", &email, "user"]);
    let e = app
        .authenticate_role(&admin, "admin")
        .await
        .expect_err("role gone");
    assert_eq!(e.code(), "FORBIDDEN");
    s.json(&["users", "disable", &email]);
    let e = app.authenticate(&admin).await.expect_err("disabled");
    assert_eq!(e.code(), "AUTH_SESSION_NOT_FOUND");
    app.close().await;
}

#[test]
fn openapi_prints_the_document_the_app_serves_without_a_database() {
    // The configuration names a database that does not exist: the command never opens it.
    let s = Setup::on(
        Some("postgres://nobody@127.0.0.1:1/none"),
        "[api_keys]\nscopes = [\"reports\"]\n",
    );
    let printed = s.ok(&["openapi"]);
    let doc: Value = serde_json::from_str(&printed).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/auth/login"]["post"].is_object(), "{printed}");
    // The configured scopes are the ones a key may be created with.
    let create = &doc["paths"]["/auth/api-keys"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    assert_eq!(
        create["allOf"][1]["properties"]["scopes"]["items"]["enum"],
        json!(["reports"])
    );
    let routes = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().map_or(0, |m| m.len()))
        .sum::<usize>();
    assert!(routes > 50, "{routes} operations");
}
