//! Storage: the only module that speaks to the database. It connects to SQLite, PostgreSQL or
//! MySQL/MariaDB from one URL, creates the schema (idempotently) and offers named operations,
//! one file per area; [`Store::begin_write`] and [`Store::end_write`] own every write
//! transaction.

pub(crate) mod api_keys;
pub(crate) mod audit;
pub(crate) mod challenges;
pub(crate) mod devices;
mod entities;
pub(crate) mod kv;
pub(crate) mod listen;
pub(crate) mod mfa;
pub(crate) mod passkeys;
pub(crate) mod purge;
pub(crate) mod sessions;
pub(crate) mod signing_keys;
pub(crate) mod social;
pub(crate) mod users;
pub(crate) mod verification;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sea_orm::sea_query::Index;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, EntityTrait, Schema, SqlErr, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

use crate::cache::SessionCache;
use crate::error::{AuthError, AuthResult};
use entities::schema_version;

pub(crate) use entities::{
    api_keys::Model as ApiKey, backup_codes::Model as BackupCode, challenges::Model as Challenge,
    mfa_devices::Model as MfaDevice, passkey_ceremonies::Model as PasskeyCeremony,
    passkeys::Model as Passkey, refresh_tokens::Model as RefreshToken, sessions::Model as Session,
    signing_keys::Model as SigningKeyRow, social_identities::Model as SocialIdentity,
    trusted_devices::Model as TrustedDevice, users::Model as User,
    verification_tokens::Model as VerificationToken,
};

/// The schema version this build creates. v3 adds the `expires_at` indexes the background
/// purge uses, v5 the API keys table, v6 the index on `nauth_sessions.revoked_at` the purge's
/// session pass needs (created on upgrade by the idempotent create step), v7 the users'
/// `mfa_exempt` column, v8 the signing keys of RS256/EdDSA access tokens
/// (`nauth_signing_keys`, created on upgrade by the create step), v9 the users' `locale` column,
/// v11 the passkeys with their pending ceremonies (`nauth_passkeys`, `nauth_passkey_ceremonies`)
/// and the social login identities (`nauth_social_identities`), created on upgrade by the
/// create step. (v10 was a development step that had only some of these tables; v11 runs the
/// create step again on such a database.)
pub(crate) const SCHEMA_VERSION: i32 = 11;

/// Why a storage operation failed. The cause goes to the log, never to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique value is already taken (`email`, `username`, `phone`, …).
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// The transaction lost a lock race; running it again resolves it.
    #[error("lost a lock race")]
    Contention,
    /// The back end cannot be reached (`503`).
    #[error("{0} unavailable")]
    Unavailable(&'static str),
    /// Anything else (`500`).
    #[error("storage error")]
    Other,
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict("phone") => AuthError::PhoneExists,
            StoreError::Conflict("email") => AuthError::EmailExists,
            StoreError::Conflict("username") => AuthError::UsernameExists,
            StoreError::Conflict(f) => AuthError::Internal(format!("unexpected conflict on {f}")),
            StoreError::Contention => AuthError::Contention,
            StoreError::Unavailable(what) => AuthError::Unavailable(what.into()),
            StoreError::Other => AuthError::Internal("storage".into()),
        }
    }
}

/// Result of a storage operation.
pub(crate) type R<T> = Result<T, StoreError>;

/// Whether the error is a lost lock race that a retry of the whole transaction resolves:
/// a MySQL/InnoDB or PostgreSQL deadlock or serialisation failure, or SQLite's busy lock.
fn is_contention(e: &DbErr) -> bool {
    let (DbErr::Exec(sea_orm::RuntimeErr::SqlxError(s))
    | DbErr::Query(sea_orm::RuntimeErr::SqlxError(s))) = e
    else {
        return false;
    };
    match s.as_ref() {
        sea_orm::sqlx::Error::Database(d) => {
            matches!(
                d.code().as_deref(),
                Some("40001" | "40P01" | "5" | "6" | "517" | "261")
            ) || d.message().contains("Deadlock found")
                || d.message().contains("database is locked")
        }
        _ => false,
    }
}

/// Maps a database error: connection trouble is `Unavailable`, a lock race `Contention`,
/// everything else `Other` (logged here, without values).
fn db_error(e: DbErr) -> StoreError {
    use sea_orm::sqlx::Error as S;
    if is_contention(&e) {
        tracing::debug!(error = %e, "transaction lost a lock race; retrying");
        return StoreError::Contention;
    }
    let unavailable = match &e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(s))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(s)) => matches!(
            s.as_ref(),
            S::Io(_) | S::PoolTimedOut | S::PoolClosed | S::Tls(_) | S::WorkerCrashed
        ),
        _ => false,
    };
    tracing::error!(error = %e, "database error");
    if unavailable {
        StoreError::Unavailable("database")
    } else {
        StoreError::Other
    }
}

/// Converts a sea-orm result inside `store/` (no `From<DbErr>`: sea-orm stays out of the
/// public API).
pub(crate) trait OrStore<T> {
    /// The result with a [`StoreError`].
    fn db(self) -> R<T>;
}

impl<T> OrStore<T> for Result<T, DbErr> {
    fn db(self) -> R<T> {
        self.map_err(db_error)
    }
}

impl<T> OrStore<T> for R<T> {
    fn db(self) -> R<T> {
        self
    }
}

/// Whether the error is a unique-key violation (a lost race on an insert).
fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// The unique column a violation names, from the database's message (`email` when unsure:
/// the caller decides what a conflict means).
fn conflict(e: DbErr, fields: &[&'static str]) -> StoreError {
    if !is_unique_violation(&e) {
        return db_error(e);
    }
    let msg = e.to_string().to_ascii_lowercase();
    fields
        .iter()
        .find(|f| msg.contains(*f))
        .or(fields.first())
        .map(|f| StoreError::Conflict(f))
        .unwrap_or(StoreError::Other)
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub(crate) struct Store {
    db: DatabaseConnection,
    /// The session-liveness cache every session write invalidates after its commit.
    cache: Arc<dyn SessionCache>,
    /// Session writes also notify the other instances and wait for them (PostgreSQL without
    /// Redis, `session.cache_max_age`).
    notify: Option<Arc<listen::PgSessionCache>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.db.get_database_backend())
            .finish_non_exhaustive()
    }
}

/// Something the named operations run on: the pool (one statement, autocommit) or a [`Tx`].
pub(crate) trait Conn: Sync {
    /// The sea-orm connection underneath.
    type C: ConnectionTrait;
    /// The connection.
    fn c(&self) -> &Self::C;
    /// The back end.
    fn backend(&self) -> DbBackend {
        self.c().get_database_backend()
    }
    /// Records that sessions were written: the liveness cache is invalidated after the
    /// commit (at once for the pool).
    fn sessions_changed(&self) -> impl std::future::Future<Output = ()> + Send;
}

impl Conn for Store {
    type C = DatabaseConnection;
    fn c(&self) -> &DatabaseConnection {
        &self.db
    }
    async fn sessions_changed(&self) {
        if let Some(pg) = &self.notify {
            match pg.send(&self.db).await {
                Ok(sent) => pg.delivered(sent).await,
                Err(_) => {
                    tracing::error!("could not notify the other instances of a session change")
                }
            }
        }
        self.cache.invalidate().await;
    }
}

/// An open write transaction (see [`Store::begin_write`]).
pub(crate) struct Tx {
    tx: DatabaseTransaction,
    sessions_changed: AtomicBool,
}

impl Conn for Tx {
    type C = DatabaseTransaction;
    fn c(&self) -> &DatabaseTransaction {
        &self.tx
    }
    async fn sessions_changed(&self) {
        self.sessions_changed.store(true, Ordering::Relaxed);
    }
}

/// How often a write transaction that lost a lock race is run.
const WRITE_TRIES: u32 = 5;

/// How a write transaction ended (see [`Store::end_write`]).
pub(crate) enum Written<T> {
    /// Committed (`Ok`) or rolled back (`Err`): this is the answer.
    Done(AuthResult<T>),
    /// Lost a lock race and rolled back: run the whole transaction again.
    Again,
}

/// Whether a `database_url` names SQLite.
pub(crate) fn is_sqlite_url(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// Whether a `database_url` names PostgreSQL.
pub(crate) fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

impl Store {
    /// Connects from a `database_url` (`sqlite://…`, `postgres://…`, `mysql://…`).
    pub(crate) async fn connect(url: &str, cache: Arc<dyn SessionCache>) -> Result<Store, DbErr> {
        let mut opts = ConnectOptions::new(url.to_string());
        opts.sqlx_logging(false)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5));
        if url.starts_with("sqlite:") {
            // WAL lets readers run beside the one writer; writers queue on busy_timeout.
            opts.max_connections(if url.contains(":memory:") { 1 } else { 8 })
                .map_sqlx_sqlite_opts(|o| {
                    o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                        .busy_timeout(Duration::from_secs(10))
                        .foreign_keys(false)
                });
        } else {
            opts.max_connections(16)
                .min_connections(0)
                .idle_timeout(Duration::from_secs(60));
        }
        // Two processes opening a fresh SQLite file at once can meet its lock while one of
        // them switches the journal to WAL (before busy_timeout applies): try again briefly.
        let mut tries = 0;
        let db = loop {
            match Database::connect(opts.clone()).await {
                Err(e)
                    if url.starts_with("sqlite:")
                        && tries < 20
                        && e.to_string().contains("locked") =>
                {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(25 * tries)).await;
                }
                other => break other?,
            }
        };
        Ok(Store {
            db,
            cache,
            notify: None,
        })
    }

    /// Session writes also notify the other instances through `pg` and wait for them
    /// (PostgreSQL only).
    pub(crate) fn notify_others(mut self, pg: Option<Arc<listen::PgSessionCache>>) -> Self {
        self.notify = pg.filter(|_| self.db.get_database_backend() == DbBackend::Postgres);
        self
    }

    /// Whether the database is SQLite (one process owns the file).
    pub(crate) fn is_sqlite(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Sqlite
    }

    /// Closes the pool.
    pub(crate) async fn close(&self) {
        let _ = self.db.close_by_ref().await;
    }

    /// Begins a read-write transaction. On SQLite it is `BEGIN IMMEDIATE`, so read-then-write
    /// sequences serialise instead of failing with "database is locked".
    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        if self.is_sqlite() {
            self.db
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..Default::default()
                })
                .await
        } else {
            self.db.begin().await
        }
    }

    /// Opens a write transaction: `BEGIN IMMEDIATE` on SQLite (read-then-write sequences
    /// serialise instead of failing with "database is locked"); on PostgreSQL and MySQL the
    /// operations that read `for update` take the row locks. Use it through the
    /// `transaction!` macro of the flows, which pairs it with [`Store::end_write`].
    pub(crate) async fn begin_write(&self) -> AuthResult<Tx> {
        Ok(Tx {
            tx: self.begin().await.map_err(db_error)?,
            sessions_changed: AtomicBool::new(false),
        })
    }

    /// Ends a write transaction with the result of its work: commits on `Ok`, rolls back on
    /// `Err`. A transaction that lost a lock race is to be run again from the start
    /// ([`Written::Again`], after a short jittered pause, at most [`WRITE_TRIES`] times).
    /// After a commit that wrote sessions, the liveness cache is invalidated.
    pub(crate) async fn end_write<T>(
        &self,
        tx: Tx,
        work: AuthResult<T>,
        attempt: &mut u32,
    ) -> Written<T> {
        let changed = tx.sessions_changed.load(Ordering::Relaxed);
        // Delivered to every listening instance when (and only if) this commits.
        let (mut work, mut sent) = (work, None);
        if changed
            && work.is_ok()
            && let Some(pg) = &self.notify
        {
            match pg.send(&tx.tx).await {
                Ok(s) => sent = Some(s),
                Err(e) => work = Err(e.into()),
            }
        }
        let result = match work {
            Ok(v) => tx
                .tx
                .commit()
                .await
                .map_err(|e| AuthError::from(db_error(e)))
                .map(|()| v),
            // Dropping the transaction rolls it back.
            Err(e) => Err(e),
        };
        if changed && result.is_ok() {
            if let (Some(pg), Some(sent)) = (&self.notify, sent) {
                pg.delivered(sent).await;
            }
            self.cache.invalidate().await;
        }
        match result {
            Err(AuthError::Contention) if *attempt + 1 < WRITE_TRIES => {
                *attempt += 1;
                let jitter = 5 + u64::from(crate::codes::random_below(20)) * u64::from(*attempt);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
                Written::Again
            }
            done => Written::Done(done),
        }
    }

    /// Creates every table and index if missing. Safe to run on every start and from several
    /// instances at once.
    pub(crate) async fn migrate(&self) -> Result<(), DbErr> {
        // Instances starting together take turns: concurrent CREATE TABLE IF NOT EXISTS can
        // still collide in PostgreSQL's catalog.
        match self.db.get_database_backend() {
            DbBackend::Postgres => {
                let tx = self.db.begin().await?;
                tx.execute_unprepared("SELECT pg_advisory_xact_lock(7236524110)")
                    .await?;
                self.migrate_locked(&tx).await?;
                tx.commit().await
            }
            DbBackend::MySql => {
                // DDL commits implicitly in MySQL; the transaction only pins one connection
                // so the named lock and the DDL share it.
                let conn = self.db.begin().await?;
                conn.execute_unprepared("SELECT GET_LOCK('nauth_migrate', 60)")
                    .await?;
                let r = self.migrate_locked(&conn).await;
                conn.execute_unprepared("SELECT RELEASE_LOCK('nauth_migrate')")
                    .await?;
                conn.commit().await?;
                r
            }
            _ => self.migrate_locked(&self.db).await,
        }
    }

    async fn migrate_locked(&self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        let backend = self.db.get_database_backend();
        let schema = Schema::new(backend);
        let current = Self::schema_version(db, backend).await?;
        if current >= SCHEMA_VERSION {
            return Ok(());
        }
        macro_rules! create {
            ($($e:path),*) => {$(
                db.execute(schema.create_table_from_entity($e).if_not_exists()).await?;
                for mut idx in schema.create_index_from_entity($e) {
                    let r = db.execute(idx.if_not_exists()).await;
                    // MySQL (unlike MariaDB) lacks CREATE INDEX IF NOT EXISTS: a duplicate
                    // index from a concurrent start is fine.
                    if let Err(e) = r {
                        if !e.to_string().contains("Duplicate key name") { return Err(e); }
                    }
                }
            )*};
        }
        create!(
            entities::schema_version::Entity,
            entities::users::Entity,
            entities::sessions::Entity,
            entities::refresh_tokens::Entity,
            entities::challenges::Entity,
            entities::verification_tokens::Entity,
            entities::password_history::Entity,
            entities::kv::Entity,
            entities::audit_log::Entity,
            entities::mfa_devices::Entity,
            entities::backup_codes::Entity,
            entities::trusted_devices::Entity,
            entities::api_keys::Entity,
            entities::signing_keys::Entity,
            entities::passkeys::Entity,
            entities::passkey_ceremonies::Entity,
            entities::social_identities::Entity
        );
        use sea_orm::sea_query::ColumnDef;
        // One column added to a table that existed before this version.
        macro_rules! add_column {
            ($table:path, $column:expr) => {
                db.execute(
                    &sea_orm::sea_query::Table::alter()
                        .table($table)
                        .add_column($column)
                        .to_owned(),
                )
                .await?;
            };
        }
        if current == 1 {
            // v1 → v2: the MFA tables above, and the challenge's code method. A fresh install
            // created the column with the table just now.
            add_column!(
                entities::challenges::Entity,
                ColumnDef::new(entities::challenges::Column::Method)
                    .string()
                    .null()
            );
        }
        if (1..7).contains(&current) {
            // v6 → v7: the admin's MFA exemption (a fresh install has it from the table).
            add_column!(
                entities::users::Entity,
                ColumnDef::new(entities::users::Column::MfaExempt)
                    .boolean()
                    .not_null()
                    .default(false)
            );
        }
        if (1..9).contains(&current) {
            // v8 → v9: the language of the user's mails, unset for existing users.
            add_column!(
                entities::users::Entity,
                ColumnDef::new(entities::users::Column::Locale)
                    .string()
                    .null()
            );
        }
        // A second index helps the "expired sessions of a user" and audit queries.
        let mut idx = Index::create()
            .name("idx_nauth_audit_created")
            .table(entities::audit_log::Entity)
            .col(entities::audit_log::Column::CreatedAt)
            .to_owned();
        if let Err(e) = db.execute(idx.if_not_exists()).await
            && !e.to_string().contains("Duplicate key name")
        {
            return Err(e);
        }
        let row = entities::schema_version::ActiveModel {
            id: sea_orm::Set(1),
            version: sea_orm::Set(SCHEMA_VERSION),
        };
        if current == 0 {
            match entities::schema_version::Entity::insert(row).exec(db).await {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Ok(()),
                Err(e) => Err(e),
            }
        } else {
            entities::schema_version::Entity::update(row)
                .exec(db)
                .await
                .map(|_| ())
        }
    }

    async fn schema_version(db: &impl ConnectionTrait, backend: DbBackend) -> Result<i32, DbErr> {
        let schema = Schema::new(backend);
        db.execute(
            schema
                .create_table_from_entity(schema_version::Entity)
                .if_not_exists(),
        )
        .await?;
        Ok(schema_version::Entity::find_by_id(1)
            .one(db)
            .await?
            .map(|r| r.version)
            .unwrap_or(0))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use entities::users;

    /// A migrated store without a liveness cache.
    pub(crate) async fn connect(url: &str) -> Store {
        let s = Store::connect(url, Arc::new(crate::cache::NoSessionCache))
            .await
            .expect("connect");
        s.migrate().await.expect("migrate");
        s
    }

    pub(crate) fn sqlite_url() -> String {
        let path = std::env::temp_dir().join(format!("nauth-unit-{}.db", uuid::Uuid::new_v4()));
        format!("sqlite://{}?mode=rwc", path.display())
    }

    fn urls() -> Vec<String> {
        let mut urls = vec![sqlite_url()];
        urls.extend(std::env::var("NAUTH_TEST_POSTGRES_URL").ok());
        urls.extend(std::env::var("NAUTH_TEST_MYSQL_URL").ok());
        urls
    }

    /// Migrations are idempotent, also when several instances start at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn migrate_is_idempotent_and_concurrent() {
        for url in urls() {
            let stores: Vec<Store> = futures_join(url.clone()).await;
            for s in &stores {
                s.migrate().await.expect("second run is a no-op");
                assert!(
                    users::Entity::find().one(&s.db).await.is_ok(),
                    "tables exist on {url}"
                );
            }
        }
    }

    /// A v6 database gains the users' `mfa_exempt` column (false for existing rows) on
    /// upgrade, on every back end.
    #[tokio::test]
    async fn upgrade_from_v6_adds_mfa_exempt() {
        use sea_orm::{ConnectionTrait, Set};
        for shared in urls() {
            // A database of its own: the others' tests share `test`.
            let (url, scratch) = scratch_database(&shared).await;
            let s = connect(&url).await;
            let id = uuid::Uuid::new_v4().to_string();
            for column in ["mfa_exempt", "locale"] {
                let drop = format!("ALTER TABLE nauth_users DROP COLUMN {column}");
                s.db.execute_unprepared(&drop)
                    .await
                    .expect("drop the column");
            }
            let v6 = "UPDATE nauth_schema SET version = 6";
            s.db.execute_unprepared(v6).await.expect("back to v6");
            let old = format!(
                "INSERT INTO nauth_users (id, email, password_hash, roles, is_email_verified, \
                 is_phone_verified, must_change_password, password_changed_at, disabled, \
                 mfa_enabled, created_at, updated_at) \
                 VALUES ('{id}', '{id}@old.test', 'x', 'user', false, false, false, 0, false, \
                 false, 0, 0)"
            );
            s.db.execute_unprepared(&old).await.expect("a v6 row");
            s.migrate().await.expect("upgrade");
            let row = users::Entity::find_by_id(id.clone())
                .one(&s.db)
                .await
                .expect("read")
                .expect("row");
            assert!(!row.mfa_exempt, "{url}");
            assert_eq!(row.locale, None, "{url}");
            let mut active: users::ActiveModel = row.into();
            active.mfa_exempt = Set(true);
            active.locale = Set(Some("fr".into()));
            let row = sea_orm::ActiveModelTrait::update(active, &s.db)
                .await
                .expect("write the new columns");
            assert!(row.mfa_exempt);
            assert_eq!(row.locale.as_deref(), Some("fr"));
            s.close().await;
            if let Some(name) = scratch {
                let admin = sea_orm::Database::connect(&shared).await.expect("connect");
                let drop = format!("DROP DATABASE {name}");
                admin.execute_unprepared(&drop).await.expect("drop");
            }
        }
    }

    /// A v8 database gains the users' `locale` column (unset for existing rows, which keep
    /// their other columns) on upgrade, on every back end.
    #[tokio::test]
    async fn upgrade_from_v8_adds_locale() {
        use sea_orm::{ConnectionTrait, Set};
        for shared in urls() {
            let (url, scratch) = scratch_database(&shared).await;
            let s = connect(&url).await;
            let id = uuid::Uuid::new_v4().to_string();
            s.db.execute_unprepared("ALTER TABLE nauth_users DROP COLUMN locale")
                .await
                .expect("drop the column");
            s.db.execute_unprepared("UPDATE nauth_schema SET version = 8")
                .await
                .expect("back to v8");
            let old = format!(
                "INSERT INTO nauth_users (id, email, password_hash, roles, is_email_verified, \
                 is_phone_verified, must_change_password, password_changed_at, disabled, \
                 mfa_enabled, mfa_exempt, created_at, updated_at) \
                 VALUES ('{id}', '{id}@old.test', 'x', 'user', true, false, false, 0, false, \
                 false, true, 0, 0)"
            );
            s.db.execute_unprepared(&old).await.expect("a v8 row");
            s.migrate().await.expect("upgrade");
            let row = users::Entity::find_by_id(id.clone())
                .one(&s.db)
                .await
                .expect("read")
                .expect("row");
            assert_eq!(row.locale, None, "{url}");
            assert!(row.mfa_exempt && row.is_email_verified, "{url}");
            let version = schema_version::Entity::find_by_id(1)
                .one(&s.db)
                .await
                .expect("read")
                .map(|r| r.version);
            assert_eq!(version, Some(SCHEMA_VERSION), "{url}");
            let mut active: users::ActiveModel = row.into();
            active.locale = Set(Some("fr".into()));
            let row = sea_orm::ActiveModelTrait::update(active, &s.db)
                .await
                .expect("write the new column");
            assert_eq!(row.locale.as_deref(), Some("fr"));
            s.close().await;
            if let Some(name) = scratch {
                let admin = sea_orm::Database::connect(&shared).await.expect("connect");
                let drop = format!("DROP DATABASE {name}");
                admin.execute_unprepared(&drop).await.expect("drop");
            }
        }
    }

    /// A v9 database gains the passkey tables (`nauth_passkeys`, `nauth_passkey_ceremonies`)
    /// and the social login identities on upgrade, keeping its rows, on every back end; the
    /// unique (provider, subject) holds. A v10 database (a development step with only some of
    /// the tables) gains the missing ones.
    #[tokio::test]
    async fn upgrade_from_v9_adds_passkeys_and_social_identities() {
        use sea_orm::ConnectionTrait;
        for shared in urls() {
            let (url, scratch) = scratch_database(&shared).await;
            let s = connect(&url).await;
            for table in [
                "nauth_passkeys",
                "nauth_passkey_ceremonies",
                "nauth_social_identities",
            ] {
                s.db.execute_unprepared(&format!("DROP TABLE {table}"))
                    .await
                    .expect("drop the table");
            }
            s.db.execute_unprepared("UPDATE nauth_schema SET version = 9")
                .await
                .expect("back to v9");
            let id = uuid::Uuid::new_v4().to_string();
            let old = format!(
                "INSERT INTO nauth_users (id, email, password_hash, roles, is_email_verified, \
                 is_phone_verified, must_change_password, password_changed_at, disabled, \
                 mfa_enabled, mfa_exempt, created_at, updated_at) \
                 VALUES ('{id}', '{id}@old.test', 'x', 'user', true, false, false, 0, false, \
                 false, false, 0, 0)"
            );
            s.db.execute_unprepared(&old).await.expect("a v9 row");
            s.migrate().await.expect("upgrade");
            let row = SocialIdentity {
                provider: "google".into(),
                subject: "123".into(),
                user_id: uuid::Uuid::new_v4().to_string(),
                email: Some("a@example.com".into()),
                linked_at: 1,
                last_used_at: None,
            };
            social::insert(&s, row.clone()).await.expect("insert");
            let mut again = row.clone();
            again.user_id = uuid::Uuid::new_v4().to_string();
            assert_eq!(
                social::insert(&s, again).await,
                Err(StoreError::Conflict("social_identity")),
                "{url}"
            );
            let got = social::get(&s, "google", "123").await.expect("get");
            assert_eq!(got, Some(row.clone()), "{url}");
            social::touch(&s, "google", "123", Some("b@example.com"), 5)
                .await
                .expect("touch");
            let got = social::of_user(&s, &row.user_id).await.expect("list");
            assert_eq!(got[0].last_used_at, Some(5));
            assert_eq!(got[0].email.as_deref(), Some("b@example.com"));
            assert_eq!(social::unlink(&s, &row.user_id, "google").await, Ok(1));
            let version = schema_version::Entity::find_by_id(1)
                .one(&s.db)
                .await
                .expect("read")
                .map(|r| r.version);
            assert_eq!(version, Some(SCHEMA_VERSION), "{url}");
            assert!(
                users::Entity::find_by_id(id.clone())
                    .one(&s.db)
                    .await
                    .expect("read")
                    .is_some()
            );
            let pk = Passkey {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: id.clone(),
                credential_hash: "h".repeat(64),
                credential_id: "AAAA".into(),
                name: "Key".into(),
                passkey: "{}".into(),
                sign_count: 0,
                backup_eligible: false,
                backup_state: false,
                aaguid: None,
                created_at: 0,
                last_used_at: None,
            };
            passkeys::insert(&s, pk.clone()).await.expect("a passkey");
            assert_eq!(passkeys::of_user(&s, &id).await.expect("read"), vec![pk]);
            let c = PasskeyCeremony {
                id_hash: "c".repeat(64),
                kind: "login".into(),
                user_id: None,
                challenge_hash: None,
                name: None,
                state: "{}".into(),
                created_at: 0,
                expires_at: 1,
            };
            passkeys::begin(&s, c.clone()).await.expect("a ceremony");
            assert_eq!(
                passkeys::take(&s, &c.id_hash, "login").await.expect("take"),
                Some(c.clone())
            );
            assert_eq!(
                passkeys::take(&s, &c.id_hash, "login").await.expect("take"),
                None
            );
            // A v10 database of a development build that had only the passkey tables.
            s.db.execute_unprepared("DROP TABLE nauth_social_identities")
                .await
                .expect("drop the table");
            s.db.execute_unprepared("UPDATE nauth_schema SET version = 10")
                .await
                .expect("back to v10");
            s.migrate().await.expect("upgrade from v10");
            assert_eq!(
                social::of_user(&s, &row.user_id)
                    .await
                    .expect("the table is back"),
                vec![],
                "{url}"
            );
            s.close().await;
            if let Some(name) = scratch {
                let admin = sea_orm::Database::connect(&shared).await.expect("connect");
                let drop = format!("DROP DATABASE {name}");
                admin.execute_unprepared(&drop).await.expect("drop");
            }
        }
    }

    /// A fresh empty database beside `url`'s (a new SQLite file; a new database on PostgreSQL
    /// and MySQL), with its name to drop afterwards.
    async fn scratch_database(url: &str) -> (String, Option<String>) {
        use sea_orm::ConnectionTrait;
        if url.starts_with("sqlite") {
            return (sqlite_url(), None);
        }
        let name = format!("nauth_scratch_{}", crate::codes::random_hex::<6>());
        let admin = sea_orm::Database::connect(url).await.expect("connect");
        let create = format!("CREATE DATABASE {name}");
        admin.execute_unprepared(&create).await.expect("create");
        let (base, _) = url.rsplit_once('/').expect("a database in the URL");
        (format!("{base}/{name}"), Some(name))
    }

    async fn futures_join(url: String) -> Vec<Store> {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { connect(&url).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    }

    /// A unique email holds under parallel inserts on every back end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn unique_email_under_parallel_inserts() {
        use sea_orm::{ColumnTrait, PaginatorTrait, QueryFilter, Set};
        for url in urls() {
            let store = connect(&url).await;
            let email = format!("u{}@example.com", uuid::Uuid::new_v4().simple());
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let (db, email) = (store.db.clone(), email.clone());
                    tokio::spawn(async move {
                        let row = users::ActiveModel {
                            id: Set(uuid::Uuid::new_v4().to_string()),
                            email: Set(email),
                            username: Set(None),
                            phone: Set(None),
                            password_hash: Set("x".into()),
                            first_name: Set(None),
                            last_name: Set(None),
                            metadata: Set(None),
                            roles: Set("user".into()),
                            is_email_verified: Set(false),
                            is_phone_verified: Set(false),
                            must_change_password: Set(false),
                            password_changed_at: Set(0),
                            disabled: Set(false),
                            mfa_enabled: Set(false),
                            mfa_exempt: Set(false),
                            locale: Set(None),
                            created_at: Set(0),
                            updated_at: Set(0),
                        };
                        match users::Entity::insert(row).exec(&db).await {
                            Ok(_) => true,
                            Err(e) => {
                                assert!(is_unique_violation(&e) || is_contention(&e), "{e}");
                                false
                            }
                        }
                    })
                })
                .collect();
            let mut ok = 0;
            for t in tasks {
                ok += usize::from(t.await.expect("task"));
            }
            assert_eq!(ok, 1, "{url}");
            let n = users::Entity::find()
                .filter(users::Column::Email.eq(&email))
                .count(&store.db)
                .await
                .expect("count");
            assert_eq!(n, 1);
        }
    }

    use sea_orm::Statement;

    /// Every hot query can use an index on PostgreSQL (issue 11): with sequential scans
    /// discouraged, each plan names an index, so none needs to read a whole table at scale.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hot_queries_use_indexes_on_postgres() {
        let Ok(url) = std::env::var("NAUTH_TEST_POSTGRES_URL") else {
            eprintln!("NAUTH_TEST_POSTGRES_URL not set; skipped");
            return;
        };
        let store = connect(&url).await;
        let tx = store.db.begin().await.expect("tx");
        tx.execute_unprepared("SET LOCAL enable_seqscan = off")
            .await
            .expect("set");
        let hot = [
            // Every protected request under `database` validation.
            "SELECT s.user_id, s.access_jti, s.auth_method, s.expires_at, \
             s.absolute_expires_at, u.roles FROM nauth_sessions s \
             JOIN nauth_users u ON u.id = s.user_id \
             WHERE s.id = 'x' AND s.revoked_at IS NULL AND u.disabled = FALSE",
            // Login and signup.
            "SELECT * FROM nauth_users WHERE email = 'x'",
            "SELECT * FROM nauth_users WHERE username = 'x'",
            "SELECT * FROM nauth_users WHERE phone = 'x' AND is_phone_verified",
            // Refresh.
            "SELECT * FROM nauth_refresh_tokens WHERE token_hash = 'x'",
            "UPDATE nauth_refresh_tokens SET state = 2 WHERE session_id = 'x' AND state = 0",
            "SELECT * FROM nauth_sessions WHERE id = 'x' FOR UPDATE",
            // Sessions list, revocations.
            "SELECT * FROM nauth_sessions WHERE user_id = 'x' AND revoked_at IS NULL",
            // Challenges and codes.
            "SELECT * FROM nauth_challenges WHERE id_hash = 'x'",
            "SELECT * FROM nauth_challenges WHERE user_id = 'x' AND name = 'MFA_REQUIRED' \
             AND completed = false",
            "SELECT * FROM nauth_verification_tokens WHERE token_hash = 'x' AND purpose = 'x'",
            "SELECT * FROM nauth_verification_tokens WHERE user_id = 'x' AND purpose = 'x' \
             AND used_at IS NULL",
            // Counters, factors, devices.
            "SELECT * FROM nauth_kv WHERE key = 'x'",
            "SELECT * FROM nauth_mfa_devices WHERE user_id = 'x'",
            "SELECT * FROM nauth_backup_codes WHERE user_id = 'x' AND used_at IS NULL",
            "SELECT * FROM nauth_trusted_devices WHERE user_id = 'x' AND token_hash = 'x'",
            // The background purge.
            "SELECT id FROM nauth_sessions WHERE revoked_at <= 0 OR expires_at <= 0 LIMIT 500",
            "SELECT key FROM nauth_kv WHERE expires_at <= 0 LIMIT 500",
            // API keys: by public id on every keyed request, a user's keys, the use stamp.
            "SELECT * FROM nauth_api_keys WHERE id = 'x'",
            "SELECT * FROM nauth_api_keys WHERE user_id = 'x' ORDER BY created_at DESC",
            "UPDATE nauth_api_keys SET last_used_at = 1 WHERE id = 'x' \
             AND (last_used_at IS NULL OR last_used_at < 0)",
            // Audit history of one user, newest first.
            "SELECT * FROM nauth_audit_log WHERE user_id = 'x' \
             ORDER BY created_at DESC, id DESC LIMIT 20",
        ];
        for q in hot {
            let rows = tx
                .query_all_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!("EXPLAIN {q}"),
                ))
                .await
                .expect("explain");
            let plan: Vec<String> = rows
                .iter()
                .filter_map(|r| r.try_get_by_index::<String>(0).ok())
                .collect();
            let plan = plan.join("\n");
            assert!(
                plan.contains("Index") && !plan.contains("Seq Scan"),
                "{q}\n{plan}"
            );
        }
    }
}
