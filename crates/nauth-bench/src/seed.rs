//! Bulk seeding of a PostgreSQL database with users that can log in, each with one live session,
//! for the scale benchmark. The rows are written with `INSERT … SELECT … FROM generate_series`
//! in batches of [`BATCH`] (users, their sessions and their refresh tokens in one statement per
//! batch), never through the HTTP API: a million users take well under a minute.
//!
//! Seeded user `i` (counting from 0) is:
//! - `nauth_users`: id [`user_id`]`(i)` (`5eed0000-0000-4000-8000-` and `i` on 12 digits, a
//!   UUID-shaped string like the engine's ids), email [`email`]`(i)` (`seed-{i}@scale.example`),
//!   no username or phone, role `user`, email verified, not disabled, no MFA, no forced change,
//!   and the one shared password, hashed once (Argon2id, the configuration's parameters);
//! - `nauth_sessions`: id `5eed5e55-0000-4000-8000-…` (same digits), as a password login from
//!   `127.0.0.1` would create it: method `password`, a random access `jti`, sliding expiry
//!   `refresh.ttl` from now capped by `refresh.absolute_lifetime`, not revoked;
//! - `nauth_refresh_tokens`: the session's current token, stored as the SHA-256 (hex) of a
//!   random value nobody knows (like the token of anyone else's session).
//!
//! Seeding is incremental: seeding to `N` where `M < N` seeded users exist adds users `M..N`;
//! seeding to `N <= M` adds nothing. The schema is the engine's own: an engine is started once on
//! the database (with the given configuration) so its migrations run before any row is written.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nauth_core::{NAuth, NAuthConfig, PasswordHasher};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sea_orm::sqlx::{self, Connection, PgConnection, PgPool};

/// The password every seeded user shares unless another is given.
pub const DEFAULT_PASSWORD: &str = "Scale-Bench-Password-42";

/// The database the benchmark and `nauth-seed` use unless told otherwise.
pub const DEFAULT_DATABASE: &str = "nauth_scale";

/// The prefix of every seeded user's id.
pub const USER_ID_PREFIX: &str = "5eed0000-0000-4000-8000-";

/// The prefix of every seeded session's id.
pub const SESSION_ID_PREFIX: &str = "5eed5e55-0000-4000-8000-";

/// Users (with their sessions and refresh tokens) written per statement.
pub const BATCH: u64 = 50_000;

/// The id of seeded user `i`.
pub fn user_id(i: u64) -> String {
    format!("{USER_ID_PREFIX}{i:012}")
}

/// The id of seeded user `i`'s session.
pub fn session_id(i: u64) -> String {
    format!("{SESSION_ID_PREFIX}{i:012}")
}

/// The email (login identifier) of seeded user `i`.
pub fn email(i: u64) -> String {
    format!("seed-{i}@scale.example")
}

/// Why seeding failed.
#[derive(Debug)]
pub struct SeedError(String);

impl SeedError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        SeedError(message.into())
    }
}

impl std::fmt::Display for SeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SeedError {}

impl From<sqlx::Error> for SeedError {
    fn from(e: sqlx::Error) -> Self {
        SeedError(format!("database: {e}"))
    }
}

impl From<nauth_core::StartError> for SeedError {
    fn from(e: nauth_core::StartError) -> Self {
        SeedError(format!("engine: {e}"))
    }
}

impl From<nauth_core::AuthError> for SeedError {
    fn from(e: nauth_core::AuthError) -> Self {
        SeedError(format!("password hashing: {e}"))
    }
}

/// What one seeding run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    /// Seeded users found before the run.
    pub before: u64,
    /// Users (each with a session and a refresh token) the run added.
    pub added: u64,
    /// Seeded users after the run.
    pub total: u64,
    /// How long the run took, engine start and hashing included.
    pub elapsed: Duration,
}

/// The URL of database `name` on the server of `server_url` (any database URL of that server):
/// the path is replaced, user, host, port and query parameters are kept.
pub fn database_url(server_url: &str, name: &str) -> Result<String, SeedError> {
    check_name(name)?;
    let scheme_end = server_url
        .find("://")
        .ok_or_else(|| SeedError::new("a database URL like postgres://user@host:5432/db"))?
        + 3;
    let (head, query) = match server_url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (server_url, None),
    };
    let authority_end = head[scheme_end..]
        .find('/')
        .map_or(head.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &head[..authority_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    Ok(url)
}

/// Database names this module creates or drops: `[a-z0-9_]`, starting with a letter, so that
/// they need no quoting.
fn check_name(name: &str) -> Result<(), SeedError> {
    let ok = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SeedError::new(format!(
            "database name {name:?}: use 1-63 characters of a-z, 0-9 and _, starting with a letter"
        )))
    }
}

async fn server_connection(server_url: &str) -> Result<PgConnection, SeedError> {
    let opts: PgConnectOptions = server_url.parse()?;
    Ok(PgConnection::connect_with(&opts).await?)
}

/// Creates database `name` on the server of `server_url` unless it exists; whether it was
/// created.
pub async fn create_database(server_url: &str, name: &str) -> Result<bool, SeedError> {
    check_name(name)?;
    let mut c = server_connection(server_url).await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut c)
        .await?;
    if exists.is_some() {
        return Ok(false);
    }
    let created = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await;
    let _ = c.close().await;
    match created {
        Ok(_) => Ok(true),
        // Created by someone else in between.
        Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("42P04") => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Drops database `name` on the server of `server_url` if it exists, ending its connections.
pub async fn drop_database(server_url: &str, name: &str) -> Result<(), SeedError> {
    check_name(name)?;
    let mut c = server_connection(server_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut c)
    .await?;
    let _ = c.close().await;
    Ok(())
}

/// A small pool on the seeded database.
pub async fn pool(url: &str, connections: u32) -> Result<PgPool, SeedError> {
    Ok(PgPoolOptions::new()
        .max_connections(connections)
        .connect(url)
        .await?)
}

/// How many seeded users the database holds.
pub async fn count(pool: &PgPool) -> Result<u64, SeedError> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM nauth_users WHERE id LIKE $1")
        .bind(format!("{USER_ID_PREFIX}%"))
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// One batch: users `$5..=$6`, each with its session and the session's refresh token, in one
/// statement (so a batch is all or nothing). Rows that exist already are skipped, and so are
/// their sessions and tokens. The count it reports is that of the tokens, one per new user.
const INSERT_BATCH: &str = "\
WITH u AS (
    INSERT INTO nauth_users (id, email, username, phone, password_hash, first_name, last_name,
        metadata, roles, is_email_verified, is_phone_verified, must_change_password,
        password_changed_at, disabled, mfa_enabled, created_at, updated_at)
    SELECT $1 || lpad(i::text, 12, '0'), 'seed-' || i::text || '@scale.example', NULL, NULL, $3,
        NULL, NULL, NULL, 'user', true, false, false, $4, false, false, $4, $4
    FROM generate_series($5::bigint, $6::bigint) AS i
    ON CONFLICT DO NOTHING
    RETURNING id
), s AS (
    INSERT INTO nauth_sessions (id, user_id, auth_method, device_name, device_type, ip_address,
        user_agent, access_jti, created_at, last_activity_at, expires_at, absolute_expires_at,
        revoked_at)
    SELECT $2 || right(u.id, 12), u.id, 'password', NULL, NULL, '127.0.0.1', 'nauth-seed',
        gen_random_uuid()::text, $4, $4, $7, $8, NULL
    FROM u
    ON CONFLICT DO NOTHING
    RETURNING id
)
INSERT INTO nauth_refresh_tokens (token_hash, session_id, state, created_at, rotated_at)
SELECT encode(sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')),
        'hex'), s.id, 0, $4, NULL
FROM s";

/// Unix milliseconds now.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Seeds the PostgreSQL database of `cfg.database_url` until it holds `target` seeded users
/// sharing `password` (see the module documentation), calling `progress` with the number of
/// seeded users after each batch. Starts an engine on `cfg` once so that the schema exists.
///
/// The password is hashed once with `cfg.password`'s Argon2id parameters; when seeded users
/// exist already, their hash is reused if it has those parameters, and a database seeded with
/// another password is refused.
pub async fn seed(
    cfg: &NAuthConfig,
    target: u64,
    password: &str,
    mut progress: impl FnMut(u64),
) -> Result<Seeded, SeedError> {
    let start = Instant::now();
    let url = &cfg.database_url;
    if !(url.starts_with("postgres:") || url.starts_with("postgresql:")) {
        return Err(SeedError::new(
            "seeding is written for PostgreSQL: database_url must be postgres://…",
        ));
    }
    // The engine creates (or upgrades) the schema: the rows below are the engine's own shape.
    let engine = NAuth::builder(cfg.clone()).build().await?;
    engine.close().await;
    drop(engine);

    let pool = pool(url, 2).await?;
    let before = count(&pool).await?;
    let hasher = PasswordHasher::new(&cfg.password)?;
    let existing: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM nauth_users WHERE id LIKE $1 LIMIT 1")
            .bind(format!("{USER_ID_PREFIX}%"))
            .fetch_optional(&pool)
            .await?;
    let hash = match existing {
        Some(h) if !hasher.verify(password, &h).await? => {
            return Err(SeedError::new(
                "the seeded users of this database have another password (use the same \
                 --password, or a fresh database)",
            ));
        }
        Some(h) if !hasher.needs_rehash(&h) => h,
        _ if before >= target => String::new(),
        _ => hasher.hash(password).await?,
    };

    let now = now_ms();
    let absolute = now + cfg.refresh.absolute_lifetime.as_millis() as i64;
    let expires = (now + cfg.refresh.ttl.as_millis() as i64).min(absolute);
    let batch = |from: u64, to: u64| {
        sqlx::query(INSERT_BATCH)
            .bind(USER_ID_PREFIX)
            .bind(SESSION_ID_PREFIX)
            .bind(hash.clone())
            .bind(now)
            .bind(from as i64)
            .bind(to as i64 - 1)
            .bind(expires)
            .bind(absolute)
    };
    let mut added = 0;
    // Users `before..target` first (the common case: an earlier run seeded `0..before`), then,
    // if some index below `before` is missing (rows deleted since), the whole range again.
    for pass in 0..2 {
        let from = if pass == 0 { before } else { 0 };
        let mut at = from;
        while at < target {
            let to = (at + BATCH).min(target);
            added += batch(at, to).execute(&pool).await?.rows_affected();
            at = to;
            progress(before + added);
        }
        if pass == 0 && before + added >= target {
            break;
        }
    }
    let total = count(&pool).await?;
    pool.close().await;
    Ok(Seeded {
        before,
        added,
        total,
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        let u = |s: &str| database_url(s, "nauth_scale").expect("url");
        assert_eq!(
            u("postgres://root@127.0.0.1:5432/test"),
            "postgres://root@127.0.0.1:5432/nauth_scale"
        );
        assert_eq!(
            u("postgres://u:p@h/test?sslmode=disable"),
            "postgres://u:p@h/nauth_scale?sslmode=disable"
        );
        assert_eq!(u("postgresql://h:1"), "postgresql://h:1/nauth_scale");
        assert!(database_url("postgres://h/test", "x; DROP").is_err());
        assert!(database_url("postgres://h/test", "1abc").is_err());
        assert_eq!(user_id(42), "5eed0000-0000-4000-8000-000000000042");
        assert_eq!(session_id(7), "5eed5e55-0000-4000-8000-000000000007");
    }
}
