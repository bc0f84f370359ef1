//! The HTTP conformance suite every adapter runs.
//!
//! An adapter implements [`Door`]: serve this engine, with the example app's routes
//! (`/api/data` behind `AuthUser` for GET, HEAD and POST, `/api/admin` behind
//! `RequireRole<Admin>`, `/api/reports` behind `RequireScope<Read>` and `/api/optional`
//! behind `OptionalAuthUser` for GET and HEAD, the adapter's 405/OPTIONS answers for them,
//! and the JSON 404 fallback), on a loopback port.
//! The suite then speaks real HTTP/1.1 to it, so all three doors are held to the same bytes.
//! The doors of the three adapters are in [`crate::doors`].

mod admin_cases;
mod api_key_cases;
mod budget_cases;
mod cases;
mod client;
mod contract;
mod edge_cases;
mod erasure_cases;
mod fault_cases;
mod history_cases;
mod instance_cases;
mod jwks_cases;
mod magic_cases;
mod mail_cases;
mod metrics_cases;
mod mfa_cases;
mod openapi_cases;
mod passkey_cases;
mod social_cases;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

pub use client::{TestRequest, TestResponse, send};

use nauth_core::EmailMessage;
use nauth_core::{ManualClock, MemoryOutbox, NAuth, NAuthConfig};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use tokio::sync::OnceCell;

/// An adapter under test: starts an app around an engine and says where it listens.
pub trait Door: Send + Sync {
    /// Serves `nauth` (and the test app routes) on `127.0.0.1:0`; returns the address.
    fn serve(&self, nauth: NAuth) -> Pin<Box<dyn Future<Output = SocketAddr> + Send + '_>>;
}

/// One engine under test, with its clock and outbox.
#[derive(Debug)]
pub struct Env {
    /// The engine.
    pub nauth: NAuth,
    /// Its clock; advance it to expire things.
    pub clock: ManualClock,
    /// Where its mail goes.
    pub outbox: MemoryOutbox,
    /// The server.
    pub addr: SocketAddr,
    /// The client address every request claims (via a trusted proxy), so that per-IP
    /// counters of different cases never meet on a shared database.
    pub ip: String,
    /// The testkit's own connection to the engine's database, opened on first use.
    db: OnceCell<DatabaseConnection>,
    /// The engine's OpenAPI document, built on first use: every answer is checked against it.
    doc: std::sync::OnceLock<serde_json::Value>,
}

/// A random 10.x.y.z client address, claimed through the trusted proxy by an [`Env`].
pub fn random_client_ip() -> String {
    let b = crate::secrets::random_bytes::<3>();
    format!("10.{}.{}.{}", b[0], b[1], b[2].max(1))
}

/// `n` random decimal digits (unique phone numbers on shared databases).
pub fn random_digits(n: usize) -> String {
    crate::secrets::random_digits(n)
}

/// A configuration for tests: cheap Argon2, a fixed secret, the given database.
pub fn test_config(database_url: &str) -> NAuthConfig {
    let mut cfg = NAuthConfig {
        database_url: database_url.to_string(),
        secret: "conformance-secret-0123456789abcdef-xyz".into(),
        base_url: "http://app.test".into(),
        ..NAuthConfig::default()
    };
    cfg.password.argon2_memory_kib = 64;
    cfg.password.argon2_iterations = 1;
    cfg.trusted_proxies = vec![
        "127.0.0.1/32".parse().expect("cidr"),
        "::1/128".parse().expect("cidr"),
    ];
    if let Some(redis) = redis_backed()
        .lock()
        .ok()
        .and_then(|m| m.get(database_url).cloned())
    {
        cfg.kv.backend = nauth_core::config::KvBackend::Redis;
        cfg.kv.redis_url = redis;
    }
    cfg
}

/// A fresh SQLite database file URL in the temp directory.
pub fn sqlite_url() -> String {
    let path = std::env::temp_dir().join(format!("nauth-test-{}.db", uuid::Uuid::new_v4()));
    format!("sqlite://{}?mode=rwc", path.display())
}

impl Drop for Env {
    fn drop(&mut self) {
        // Give the connections back: many engines share one PostgreSQL/MySQL server in a run.
        let nauth = self.nauth.clone();
        let db = self.db.take();
        let url = self.nauth.config().database_url.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                nauth.close().await;
                if let Some(db) = db {
                    let _ = db.close_by_ref().await;
                }
                // A per-case SQLite file is removed with its WAL companions.
                if let Some(path) = url
                    .strip_prefix("sqlite://")
                    .and_then(|p| p.split('?').next())
                    && path.contains("nauth-test-")
                {
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{path}{suffix}"));
                    }
                }
            });
        }
    }
}

impl Env {
    /// Builds an engine from the test configuration (after `tweak`), with a manual clock and a
    /// memory outbox for mail and SMS, and serves it through `door`.
    pub async fn start(
        door: &dyn Door,
        database_url: &str,
        tweak: impl FnOnce(&mut NAuthConfig),
    ) -> Env {
        let mut cfg = test_config(database_url);
        tweak(&mut cfg);
        let clock = ManualClock::new();
        let outbox = MemoryOutbox::default();
        let nauth = NAuth::builder(cfg)
            .clock(clock.clone())
            .email_sender(outbox.clone())
            .sms_sender(outbox.clone())
            .build()
            .await
            .expect("engine starts");
        Env::serve(door, nauth, clock, outbox).await
    }

    /// Serves an engine built elsewhere through `door` (a case that needs other senders);
    /// `clock` must be the engine's clock and `outbox` whatever of its mail goes to memory.
    pub async fn serve(
        door: &dyn Door,
        nauth: NAuth,
        clock: ManualClock,
        outbox: MemoryOutbox,
    ) -> Env {
        let addr = door.serve(nauth.clone()).await;
        Env {
            nauth,
            clock,
            outbox,
            addr,
            ip: random_client_ip(),
            db: OnceCell::new(),
            doc: std::sync::OnceLock::new(),
        }
    }

    /// The testkit's own connection to the engine's database (`config().database_url`),
    /// opened on first use and closed with the `Env`: for cases that read or poke stored rows
    /// without going through the engine.
    pub async fn db(&self) -> &DatabaseConnection {
        self.db
            .get_or_init(|| connect(&self.nauth.config().database_url))
            .await
    }

    /// The kv entry under `key` as the engine stores it (the database table or Redis), by the
    /// engine's clock: its value, if live.
    pub async fn kv_value(&self, key: &str) -> Option<i64> {
        use nauth_core::Kv;
        use sea_orm::EntityTrait;
        let now = nauth_core::Clock::now_ms(&self.clock);
        match self.redis().await {
            Some(kv) => kv.get(key, now).await.expect("redis get").map(|e| e.value),
            None => crate::db::kv::Entity::find_by_id(key.to_string())
                .one(self.db().await)
                .await
                .expect("query")
                .filter(|r| r.expires_at > now)
                .map(|r| r.value),
        }
    }

    /// How many kv keys hold `part` (live ones on Redis; every stored row in the database),
    /// leaving out the deny set (`deny:`).
    pub async fn kv_keys_containing(&self, part: &str) -> usize {
        use nauth_core::Kv;
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        match self.redis().await {
            Some(kv) => {
                let now = nauth_core::Clock::now_ms(&self.clock);
                kv.live_entries("", now)
                    .await
                    .expect("redis scan")
                    .iter()
                    .filter(|(k, _)| k.contains(part) && !k.starts_with("deny:"))
                    .count()
            }
            None => crate::db::kv::Entity::find()
                .filter(crate::db::kv::Column::Key.contains(part))
                .filter(crate::db::kv::Column::Key.not_like("deny:%"))
                .count(self.db().await)
                .await
                .expect("count") as usize,
        }
    }

    /// A connection to the engine's Redis, when its kv store is Redis.
    async fn redis(&self) -> Option<nauth_core::RedisKv> {
        let cfg = &self.nauth.config().kv;
        if cfg.backend != nauth_core::config::KvBackend::Redis {
            return None;
        }
        Some(
            nauth_core::RedisKv::connect(&cfg.redis_url)
                .await
                .expect("redis reachable"),
        )
    }

    /// Sends a request (adds the client-IP header).
    pub async fn send(&self, mut req: TestRequest) -> TestResponse {
        if !req
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-for"))
        {
            req.headers
                .push(("x-forwarded-for".into(), self.ip.clone()));
        }
        let resp = send(self.addr, &req).await;
        let doc = self
            .doc
            .get_or_init(|| nauth_core::openapi_document(self.nauth.config()));
        contract::check(doc, &req, &resp);
        resp
    }

    /// `POST` a JSON body.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> TestResponse {
        self.send(TestRequest::json("POST", path, &body)).await
    }

    /// `GET` with an optional bearer token.
    pub async fn get(&self, path: &str, bearer: Option<&str>) -> TestResponse {
        let mut r = TestRequest::new("GET", path);
        if let Some(t) = bearer {
            r = r.header("authorization", &format!("Bearer {t}"));
        }
        self.send(r).await
    }

    /// Waits for the `n`-th mail to `to` and returns it.
    pub async fn mail(&self, to: &str, n: usize) -> EmailMessage {
        let mails = self
            .outbox
            .wait_emails_to(to, n, Duration::from_secs(5))
            .await;
        assert!(
            mails.len() >= n,
            "expected {n} mail(s) to {to}, got {}",
            mails.len()
        );
        mails[n - 1].clone()
    }
}

/// A small pool of the testkit's own on `url`: two connections, and on SQLite the engine's
/// WAL mode and busy timeout, so a poke waits for the engine's writer instead of failing.
async fn connect(url: &str) -> DatabaseConnection {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false)
        .max_connections(2)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .idle_timeout(Duration::from_secs(30));
    if url.starts_with("sqlite:") {
        opts.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10))
        });
    }
    Database::connect(opts)
        .await
        .unwrap_or_else(|e| panic!("the testkit's connection to the test database: {e}"))
}

/// Which database a run uses.
#[derive(Debug, Clone)]
pub struct Backend {
    /// A label for failure messages.
    pub name: &'static str,
    /// For SQLite: `None` (a fresh file per case); otherwise the shared URL.
    pub url: Option<String>,
    /// The Redis URL when the engine keeps its kv store in Redis (`kv.backend = "redis"`).
    pub redis: Option<String>,
}

/// The database URLs handed out by a Redis back end: [`test_config`] puts their engines' kv
/// store in Redis.
fn redis_backed() -> &'static std::sync::Mutex<std::collections::HashMap<String, String>> {
    static URLS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
        std::sync::OnceLock::new();
    URLS.get_or_init(Default::default)
}

impl Backend {
    /// The database URL for one case.
    pub fn url(&self) -> String {
        let url = self.url.clone().unwrap_or_else(sqlite_url);
        if let (Some(redis), Ok(mut m)) = (&self.redis, redis_backed().lock()) {
            m.insert(url.clone(), redis.clone());
        }
        url
    }

    /// SQLite (always), plus PostgreSQL and MySQL when `NAUTH_TEST_POSTGRES_URL` /
    /// `NAUTH_TEST_MYSQL_URL` are set.
    pub fn from_env() -> Vec<Backend> {
        let mut v = vec![Backend {
            name: "sqlite",
            url: None,
            redis: None,
        }];
        if let Ok(u) = std::env::var("NAUTH_TEST_POSTGRES_URL") {
            v.push(Backend {
                name: "postgres",
                url: Some(u),
                redis: None,
            });
        }
        if let Ok(u) = std::env::var("NAUTH_TEST_MYSQL_URL") {
            v.push(Backend {
                name: "mysql",
                url: Some(u),
                redis: None,
            });
        }
        // The kv store in Redis; the database is PostgreSQL when it is there (the topology of
        // several instances: the cases that start two engines share both), else a fresh
        // SQLite file per case. The URL names its application so that the engines of this
        // back end, and only they, keep their kv store in Redis.
        if let Ok(r) = std::env::var("NAUTH_TEST_REDIS_URL") {
            let url = std::env::var("NAUTH_TEST_POSTGRES_URL").ok().map(|u| {
                let sep = if u.contains('?') { '&' } else { '?' };
                format!("{u}{sep}application_name=nauth-redis-kv")
            });
            if let (Some(u), Ok(mut m)) = (&url, redis_backed().lock()) {
                m.insert(u.clone(), r.clone());
            }
            v.push(Backend {
                name: "redis",
                url,
                redis: Some(r),
            });
        }
        v
    }
}

type CaseFn =
    for<'a> fn(&'a dyn Door, &'a Backend) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Runs every case against `door` on `backend`, a few at a time; panics listing the cases
/// that failed. `NAUTH_TEST_CASES` (comma-separated parts of names) runs only the cases whose
/// name contains one of them.
pub async fn run_all(door: &'static dyn Door, backend: Backend) {
    let only: Vec<String> = std::env::var("NAUTH_TEST_CASES")
        .map(|v| v.split(',').map(|p| p.trim().to_string()).collect())
        .unwrap_or_default();
    run_selected(door, backend, |n| {
        only.is_empty() || only.iter().any(|p| !p.is_empty() && n.contains(p.as_str()))
    })
    .await
}

/// Cases that measure time: each runs alone in the test process (no other case of any door
/// or back end runs beside it), so the two cores are not shared with the rest of the suite.
const ALONE: &[&str] = &["forgot_password_takes_the_same_time"];

/// The gate of [`ALONE`]: shared by every other case, taken whole by a timing case. It is
/// fair, so a waiting timing case holds back cases that start after it.
fn gate() -> &'static tokio::sync::RwLock<()> {
    static GATE: std::sync::OnceLock<tokio::sync::RwLock<()>> = std::sync::OnceLock::new();
    GATE.get_or_init(|| tokio::sync::RwLock::new(()))
}

/// Runs the cases whose name passes `filter`.
pub async fn run_selected(
    door: &'static dyn Door,
    backend: Backend,
    filter: impl Fn(&str) -> bool,
) {
    let backend: &'static Backend = Box::leak(Box::new(backend));
    let mut failed = Vec::new();
    let mut ran = 0;
    let selected: Vec<&(&str, CaseFn)> = all_cases().filter(|(n, _)| filter(n)).collect();
    for chunk in selected.chunks(4) {
        let handles: Vec<_> = chunk
            .iter()
            .map(|(name, f)| {
                let alone = ALONE.contains(name);
                let case = f(door, backend);
                let run = async move {
                    // Timing cases hold the gate alone; every other case shares it.
                    if alone {
                        let _g = gate().write().await;
                        case.await
                    } else {
                        let _g = gate().read().await;
                        case.await
                    }
                };
                (*name, tokio::spawn(run))
            })
            .collect();
        for (name, h) in handles {
            ran += 1;
            if let Err(e) = h.await {
                eprintln!("conformance case `{name}` failed on {}: {e}", backend.name);
                failed.push(name);
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {ran} conformance cases failed on {}: {failed:?}",
        failed.len(),
        backend.name
    );
    eprintln!("conformance: {ran} cases passed on {}", backend.name);
}

/// Runs the whole suite on one named back end (`sqlite`, `postgres`, `mysql`); a server back
/// end whose URL variable is unset is skipped with a message (`.ci/run` sets both).
pub async fn run_backend(door: &'static dyn Door, name: &str) {
    match Backend::from_env().into_iter().find(|b| b.name == name) {
        Some(b) => run_all(door, b).await,
        None => eprintln!(
            "{name}: NAUTH_TEST_{}_URL not set; skipped",
            name.to_uppercase()
        ),
    }
}

/// Defines the three conformance tests of an adapter (SQLite, PostgreSQL, MySQL) for a
/// `&'static dyn Door` expression: `nauth_testkit::conformance_tests!(&nauth_testkit::doors::Axum);`.
/// The calling crate needs `tokio` (with `macros` and `rt-multi-thread`) as a dev-dependency.
#[macro_export]
macro_rules! conformance_tests {
    ($door:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn conformance_sqlite() {
            $crate::conformance::run_backend($door, "sqlite").await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn conformance_postgres() {
            $crate::conformance::run_backend($door, "postgres").await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn conformance_mysql() {
            $crate::conformance::run_backend($door, "mysql").await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn conformance_redis() {
            $crate::conformance::run_backend($door, "redis").await;
        }
    };
}

/// Every case, in order.
fn all_cases() -> impl Iterator<Item = &'static (&'static str, CaseFn)> {
    cases::CASES
        .iter()
        .chain(budget_cases::BUDGET_CASES.iter())
        .chain(erasure_cases::ERASURE_CASES.iter())
        .chain(edge_cases::EDGE_CASES.iter())
        .chain(instance_cases::INSTANCE_CASES.iter())
        .chain(fault_cases::FAULT_CASES.iter())
        .chain(api_key_cases::API_KEY_CASES.iter())
        .chain(history_cases::HISTORY_CASES.iter())
        .chain(magic_cases::MAGIC_CASES.iter())
        .chain(admin_cases::ADMIN_CASES.iter())
        .chain(metrics_cases::METRICS_CASES.iter())
        .chain(openapi_cases::OPENAPI_CASES.iter())
        .chain(jwks_cases::JWKS_CASES.iter())
        .chain(mail_cases::MAIL_CASES.iter())
        .chain(passkey_cases::PASSKEY_CASES.iter())
        .chain(social_cases::SOCIAL_CASES.iter())
}

/// The names of every case, in order.
pub fn case_names() -> Vec<&'static str> {
    all_cases().map(|(n, _)| *n).collect()
}
