#![doc = include_str!("../README.md")]

mod cache;
mod challenge;
mod clock;
mod codes;
pub mod config;
mod delivery;
mod deny;
mod error;
mod events;
mod flows;
mod guard;
pub mod http;
mod input;
mod ip;
mod jwk;
mod kv;
mod mail;
mod metrics;
mod mfa;
mod notify;
mod openapi;
mod password;
#[cfg(feature = "redis")]
mod redis_kv;
mod routes;
pub mod scope;
mod signing_keys;
#[cfg(feature = "social")]
mod social;
mod store;
mod tokens;

use std::sync::Arc;

pub use cache::{LiveSession, NoSessionCache, SessionCache, ThreadLocalSessionCache};
pub use challenge::ChallengeName;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ConfigError, NAuthConfig};
pub use error::{AuthError, AuthResult, FieldErrors, RateLimit};
pub use guard::Principal;
pub use http::{Body, MAX_BODY_BYTES, Reply, Request};
pub use kv::{Entry as KvEntry, Kv, KvResult, MemoryKv};
pub use notify::{
    ConsoleEmailSender, ConsoleSmsSender, EmailMessage, EmailSender, MemoryOutbox, NotifyError,
    SmsMessage, SmsSender, SmtpEmailSender, WebhookSmsSender,
};
#[cfg(feature = "redis")]
pub use redis_kv::{RedisKv, RedisSessionCache};
pub use signing_keys::SigningKeyInfo;
pub use store::StoreError;
pub use store::purge::Purged;

/// The database schema version this build creates and upgrades to at start.
pub const SCHEMA_VERSION: i32 = store::SCHEMA_VERSION;
pub use tokens::Claims;

/// The password hasher on its bounded pool, for the benchmark only (not part of the API).
#[doc(hidden)]
pub use password::Hasher as PasswordHasher;

use config::{EmailProvider, KvBackend, SmsProvider};
use store::Store;

/// Why nauth could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A configuration key is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be reached or migrated.
    #[error("database: {0}")]
    Database(String),
    /// A sender could not be built.
    #[error("notifications: {0}")]
    Notify(String),
    /// The kv store (Redis) could not be reached.
    #[error("kv store: {0}")]
    Kv(String),
}

/// The engine. Cheap to clone; every adapter holds one.
#[derive(Clone)]
pub struct NAuth {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NAuth")
            .field("config", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) cfg: NAuthConfig,
    pub(crate) store: Store,
    pub(crate) kv: Arc<dyn Kv>,
    pub(crate) email: Arc<dyn EmailSender>,
    pub(crate) sms: Arc<dyn SmsSender>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) keys: codes::Keys,
    pub(crate) signer: tokens::TokenSigner,
    /// Where the RS256/EdDSA keys of `signer` come from, and how they are kept current.
    pub(crate) keyring: signing_keys::Keyring,
    pub(crate) hasher: password::Hasher,
    pub(crate) cookies: delivery::CookieSpec,
    /// The liveness cache of `database` validation (shared with the store, which invalidates it).
    pub(crate) session_cache: Arc<dyn cache::SessionCache>,
    /// This engine's share of the per-thread verified-token cache.
    pub(crate) tokens: guard::TokenCache,
    /// Subjects whose tokens stop at once (deleted accounts), checked without I/O.
    pub(crate) deny: deny::DenySet,
    /// Counters for `GET <mount>/metrics`.
    pub(crate) metrics: metrics::Metrics,
    /// `GET <mount>/openapi.json`, serialised at its first request.
    pub(crate) openapi: std::sync::OnceLock<Vec<u8>>,
    /// The mail templates (embedded, or replaced from `email.templates_dir`).
    pub(crate) mail: mail::Templates,
    /// The WebAuthn relying party of `[passkeys]` (`None` when passkeys are off).
    #[cfg(feature = "passkeys")]
    pub(crate) webauthn: Option<webauthn_rs::Webauthn>,
    /// The social login providers (`[social.<name>]`).
    #[cfg(feature = "social")]
    pub(crate) social: social::Social,
}

/// The OpenAPI 3.1 document of nauth's routes for `cfg` (what `<mount>/openapi.json` serves):
/// for generating clients or publishing the contract without running the app.
pub fn openapi_document(cfg: &NAuthConfig) -> serde_json::Value {
    openapi::document(cfg)
}

/// Builds a [`NAuth`]: a configuration plus optional replacements for the clock and senders.
pub struct NAuthBuilder {
    cfg: NAuthConfig,
    clock: Option<Arc<dyn Clock>>,
    email: Option<Arc<dyn EmailSender>>,
    sms: Option<Arc<dyn SmsSender>>,
    kv: Option<Arc<dyn Kv>>,
    session_cache: Option<Arc<dyn cache::SessionCache>>,
}

impl std::fmt::Debug for NAuthBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NAuthBuilder")
            .field("config", &self.cfg)
            .field("clock", &self.clock.is_some())
            .field("email_sender", &self.email.is_some())
            .field("sms_sender", &self.sms.is_some())
            .field("kv", &self.kv.is_some())
            .field("session_cache", &self.session_cache.is_some())
            .finish()
    }
}

impl NAuthBuilder {
    /// Uses this clock instead of the system's (tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Sends mail through this sender instead of the configured provider.
    pub fn email_sender(mut self, sender: impl EmailSender) -> Self {
        self.email = Some(Arc::new(sender));
        self
    }

    /// Sends SMS through this sender instead of the configured provider.
    pub fn sms_sender(mut self, sender: impl SmsSender) -> Self {
        self.sms = Some(Arc::new(sender));
        self
    }

    /// Keeps counters, lockouts and the deny set in this store instead of the configured
    /// `kv.backend` (another back end shared by several instances, or a test double).
    pub fn kv(mut self, kv: impl Kv) -> Self {
        self.kv = Some(Arc::new(kv));
        self
    }

    /// Uses this session-liveness cache under `session.validation = "database"` instead of
    /// the default (per-thread maps with SQLite, none with PostgreSQL or MySQL). It must be
    /// invalidated across instances if several share the database.
    pub fn session_cache(mut self, cache: impl cache::SessionCache) -> Self {
        self.session_cache = Some(Arc::new(cache));
        self
    }

    /// Validates the configuration, connects, migrates and returns the engine.
    pub async fn build(self) -> Result<NAuth, StartError> {
        let cfg = self.cfg;
        cfg.validate()?;
        let mut notify = None;
        let session_cache: Arc<dyn cache::SessionCache> = match self.session_cache {
            Some(c) => c,
            // SQLite's file belongs to one nauth process, whose every session write
            // invalidates the cache after its commit; a shared database is read every time.
            None if store::is_sqlite_url(&cfg.database_url) => {
                Arc::new(cache::ThreadLocalSessionCache::default())
            }
            // Several instances: a cache only with something to carry the invalidations,
            // Redis pub/sub or PostgreSQL LISTEN/NOTIFY.
            None if !cfg.session.cache_max_age.is_zero() && cfg.kv.backend == KvBackend::Redis => {
                shared_cache(&cfg).await?
            }
            None if !cfg.session.cache_max_age.is_zero()
                && store::is_postgres_url(&cfg.database_url) =>
            {
                let c = Arc::new(
                    store::listen::PgSessionCache::connect(
                        &cfg.database_url,
                        cfg.session.cache_max_age,
                    )
                    .await
                    .map_err(|e| StartError::Database(e.to_string()))?,
                );
                notify = Some(c.clone());
                c
            }
            None => Arc::new(cache::NoSessionCache),
        };
        let store = Store::connect(&cfg.database_url, session_cache.clone())
            .await
            .map_err(|e| StartError::Database(e.to_string()))?
            .notify_others(notify);
        store
            .migrate()
            .await
            .map_err(|e| StartError::Database(e.to_string()))?;
        let kv: Arc<dyn Kv> = match (self.kv, cfg.kv.backend) {
            (Some(kv), _) => kv,
            (None, KvBackend::Memory) => Arc::new(kv::MemoryKv::default()),
            (None, KvBackend::Database) => Arc::new(kv::DatabaseKv::new(store.clone())),
            (None, KvBackend::Redis) => redis_backend(&cfg.kv.redis_url).await?,
        };
        let email: Arc<dyn EmailSender> = match (self.email, cfg.email.provider) {
            (Some(e), _) => e,
            (None, EmailProvider::Console) => Arc::new(notify::ConsoleEmailSender),
            (None, EmailProvider::Memory) => Arc::new(MemoryOutbox::default()),
            (None, EmailProvider::Smtp) => Arc::new(
                notify::SmtpEmailSender::from_url(&cfg.email.smtp_url, &cfg.email.from)
                    .map_err(|e| StartError::Notify(e.to_string()))?,
            ),
        };
        let sms: Arc<dyn SmsSender> = match (self.sms, cfg.sms.provider) {
            (Some(s), _) => s,
            (None, SmsProvider::Memory) => Arc::new(MemoryOutbox::default()),
            (None, SmsProvider::Webhook) => Arc::new(
                notify::WebhookSmsSender::new(&cfg.sms.webhook_url)
                    .map_err(|e| StartError::Notify(e.to_string()))?,
            ),
            (None, SmsProvider::Console) => Arc::new(notify::ConsoleSmsSender),
        };
        let mail = mail::Templates::load(&cfg.email)?;
        let keys = codes::Keys::derive(&cfg.secret);
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let (keyring, signer) =
            signing_keys::Keyring::start(&cfg, &keys, &store, clock.now_ms()).await?;
        let hasher = password::Hasher::new(&cfg.password).map_err(|e| {
            StartError::Config(ConfigError {
                key: "password".into(),
                message: e.to_string(),
            })
        })?;
        let cookies = delivery::CookieSpec::from_config(&cfg);
        #[cfg(feature = "passkeys")]
        let webauthn = flows::passkeys::relying_party(&cfg)?;
        #[cfg(feature = "social")]
        let social = social::Social::new(&cfg).map_err(|e| StartError::Notify(e.to_string()))?;
        let inner = Arc::new(Inner {
            cfg,
            store,
            kv,
            email,
            sms,
            clock,
            keys,
            signer,
            keyring,
            hasher,
            cookies,
            session_cache,
            tokens: guard::TokenCache::default(),
            deny: deny::DenySet::default(),
            metrics: metrics::Metrics::default(),
            openapi: std::sync::OnceLock::new(),
            mail,
            #[cfg(feature = "passkeys")]
            webauthn,
            #[cfg(feature = "social")]
            social,
        });
        // Background work holds the engine weakly, so it ends when the last clone is dropped.
        store::purge::spawn(Arc::downgrade(&inner), inner.cfg.kv.purge_interval);
        // A shared kv store (database or Redis) may hold deny entries of other instances.
        if inner.cfg.session.validation == config::SessionValidation::Token
            && inner.cfg.kv.backend != KvBackend::Memory
        {
            deny::spawn_refresh(Arc::downgrade(&inner));
        }
        Ok(NAuth { inner })
    }
}

/// The Redis kv store of `kv.backend = "redis"`.
#[cfg(feature = "redis")]
async fn redis_backend(url: &str) -> Result<Arc<dyn Kv>, StartError> {
    match redis_kv::RedisKv::connect(url).await {
        Ok(kv) => Ok(Arc::new(kv)),
        Err(e) => Err(StartError::Kv(e.to_string())),
    }
}

/// The session-liveness cache shared through Redis.
#[cfg(feature = "redis")]
async fn shared_cache(cfg: &NAuthConfig) -> Result<Arc<dyn cache::SessionCache>, StartError> {
    match redis_kv::RedisSessionCache::connect(&cfg.kv.redis_url, cfg.session.cache_max_age).await {
        Ok(c) => Ok(Arc::new(c)),
        Err(e) => Err(StartError::Kv(e.to_string())),
    }
}

/// Without the `redis` feature there is nothing to carry invalidations between instances.
#[cfg(not(feature = "redis"))]
async fn shared_cache(_: &NAuthConfig) -> Result<Arc<dyn cache::SessionCache>, StartError> {
    redis_backend("")
        .await
        .map(|_| -> Arc<dyn cache::SessionCache> { Arc::new(cache::NoSessionCache) })
}

/// Without the `redis` feature the back end is refused at start, never ignored.
#[cfg(not(feature = "redis"))]
async fn redis_backend(_: &str) -> Result<Arc<dyn Kv>, StartError> {
    Err(StartError::Config(ConfigError {
        key: "kv.backend".into(),
        message: "this build has no Redis support: enable the `redis` feature of nauth-core \
                  (or of the adapter crate), or use \"database\" or \"memory\""
            .into(),
    }))
}

/// No credentials at all is anonymous; a bad credential is still an error.
fn optional(r: AuthResult<Principal>) -> AuthResult<Option<Principal>> {
    match r {
        Ok(p) => Ok(Some(p)),
        Err(AuthError::TokenMissing) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `403 FORBIDDEN` without the role.
fn with_role(r: AuthResult<Principal>, role: &str) -> AuthResult<Principal> {
    let p = r?;
    if p.has_role(role) {
        Ok(p)
    } else {
        Err(AuthError::Forbidden)
    }
}

/// `403 FORBIDDEN` without the scope.
fn with_scope(r: AuthResult<Principal>, scope: &str) -> AuthResult<Principal> {
    let p = r?;
    if p.has_scope(scope) {
        Ok(p)
    } else {
        Err(AuthError::Forbidden)
    }
}

impl NAuth {
    /// Starts building an engine from a configuration.
    pub fn builder(cfg: NAuthConfig) -> NAuthBuilder {
        NAuthBuilder {
            cfg,
            clock: None,
            email: None,
            sms: None,
            kv: None,
            session_cache: None,
        }
    }

    /// Validates, connects, migrates: the engine with the configured senders.
    pub async fn new(cfg: NAuthConfig) -> Result<NAuth, StartError> {
        Self::builder(cfg).build().await
    }

    /// Every route nauth serves under its mount prefix, as `(method, path)` with the path's
    /// parameter in braces: `("DELETE", "/auth/sessions/{sessionId}")`. The same table routes
    /// requests and is documented, operation by operation, at `<mount>/openapi.json`.
    pub fn routes(&self) -> Vec<(&'static str, String)> {
        routes::ROUTES
            .iter()
            .map(|r| {
                (
                    r.method,
                    format!("{}{}", self.inner.cfg.mount_prefix, r.path),
                )
            })
            .collect()
    }

    /// The configuration in force.
    pub fn config(&self) -> &NAuthConfig {
        &self.inner.cfg
    }

    /// The mount prefix, e.g. `/auth`.
    pub fn mount_prefix(&self) -> &str {
        &self.inner.cfg.mount_prefix
    }

    /// Closes the database pool (graceful shutdown; tests that start many engines). The engine
    /// answers `503` afterwards.
    pub async fn close(&self) {
        self.inner.store.close().await;
    }

    /// Whether the session-liveness cache answers now (see [`SessionCache::serving`]):
    /// `false` without a cache, and while a shared cache has lost its subscription to the
    /// other instances (requests then read the database). For health checks and metrics.
    pub fn session_cache_serving(&self) -> bool {
        self.inner.session_cache.serving()
    }

    /// Answers one request under the mount prefix.
    pub async fn handle(&self, req: Request) -> Reply {
        routes::handle(&self.inner, req).await
    }

    /// Authenticates a request to one of the app's own routes (bearer, or access cookie with
    /// CSRF on unsafe methods). The body is not needed.
    pub async fn authenticate(&self, req: &Request) -> AuthResult<Principal> {
        guard::authenticate(&self.inner, req).await
    }

    /// [`NAuth::authenticate`] without waiting, when the answer needs no I/O (always under
    /// `session.validation = "token"`, for a recently seen session under `database` with
    /// SQLite). `None`: call `authenticate`. Adapters use it to skip an allocation and a task
    /// switch on the hot path.
    pub fn authenticate_now(&self, req: &Request) -> Option<AuthResult<Principal>> {
        guard::authenticate_now(&self.inner, req)
    }

    /// [`NAuth::authenticate_optional`] without waiting, when no I/O is needed.
    pub fn authenticate_optional_now(
        &self,
        req: &Request,
    ) -> Option<AuthResult<Option<Principal>>> {
        self.authenticate_now(req).map(optional)
    }

    /// [`NAuth::authenticate_role`] without waiting, when no I/O is needed.
    pub fn authenticate_role_now(
        &self,
        req: &Request,
        role: &str,
    ) -> Option<AuthResult<Principal>> {
        self.authenticate_now(req).map(|r| with_role(r, role))
    }

    /// [`NAuth::authenticate_scope`] without waiting, when no I/O is needed.
    pub fn authenticate_scope_now(
        &self,
        req: &Request,
        scope: &str,
    ) -> Option<AuthResult<Principal>> {
        self.authenticate_now(req).map(|r| with_scope(r, scope))
    }

    /// Authenticates and requires a scope: `403 FORBIDDEN` for an API key created without it.
    /// A user's session holds every scope (scopes narrow what a key may do for its user).
    pub async fn authenticate_scope(&self, req: &Request, scope: &str) -> AuthResult<Principal> {
        with_scope(guard::authenticate(&self.inner, req).await, scope)
    }

    /// Like [`NAuth::authenticate`], but a request with no credentials at all is anonymous
    /// (`Ok(None)`); a bad or expired credential is still an error, so clients learn to refresh.
    pub async fn authenticate_optional(&self, req: &Request) -> AuthResult<Option<Principal>> {
        optional(guard::authenticate(&self.inner, req).await)
    }

    /// Authenticates and requires a role: `403 FORBIDDEN` without it.
    pub async fn authenticate_role(&self, req: &Request, role: &str) -> AuthResult<Principal> {
        with_role(guard::authenticate(&self.inner, req).await, role)
    }

    /// Creates an administrator (roles `user,admin`, email verified) with a random one-time
    /// password that must be changed at the first login (FORCE_CHANGE_PASSWORD). Returns the
    /// password, to be shown once.
    pub async fn create_admin(&self, email: &str) -> AuthResult<String> {
        let body = serde_json::json!({
            "email": email,
            "roles": ["user", "admin"],
            "emailVerified": true,
        });
        let (_, created) = self.admin_call("POST", "/users", Some(&body)).await?;
        created["generatedPassword"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| AuthError::Internal("no generated password".into()))
    }

    /// Runs one purge pass now (the engine also runs one every `kv.purge_interval`): deletes
    /// expired counters, challenges, codes, long-dead sessions with their refresh tokens and
    /// expired trusted devices, in bounded batches.
    pub async fn purge(&self) -> Purged {
        store::purge::run_once(&self.inner).await
    }

    /// Runs one call of the admin API (docs/api.md §3.6) as the operator, for the `nauth`
    /// command line and an app's own jobs: `path` is relative to `<mount>/admin`
    /// (`"/users?limit=5"`, `"/users/{sub}/disable"`), `body` the JSON body. The same checks,
    /// answers and audit rows (`adminSub: "operator"`) as over HTTP; no session is needed and
    /// no fresh proof is asked. Returns the status and the JSON body of a success.
    pub async fn admin_call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> AuthResult<(u16, serde_json::Value)> {
        routes::operate(&self.inner, method, &format!("/admin{path}"), body).await
    }

    /// Makes a newly generated key the one that signs access tokens (on this instance at
    /// once; other instances within about ten seconds, or at the first token they see under
    /// it). The previous key keeps verifying, and stays in the JWKS, until the longest access
    /// token it may have signed has expired. Only for generated keys: under
    /// `jwt.private_key_file` replace the file instead; under HS256 there is nothing to rotate.
    pub async fn rotate_signing_key(&self) -> AuthResult<SigningKeyInfo> {
        self.inner.keyring.rotate(&self.inner).await
    }

    /// The stored RS256/EdDSA signing keys, oldest first, retired ones included until they are
    /// purged (empty under HS256).
    pub async fn signing_keys(&self) -> AuthResult<Vec<SigningKeyInfo>> {
        self.inner.keyring.list(&self.inner).await
    }

    /// Renders an error as the contract's JSON reply (for adapters' extractors).
    pub fn error_reply(&self, err: &AuthError) -> Reply {
        routes::error_reply(&self.inner, err)
    }

    /// The `404 RESOURCE_NOT_FOUND` reply, for an app's fallback route.
    pub fn not_found(&self) -> Reply {
        self.error_reply(&AuthError::NotFound)
    }
}
