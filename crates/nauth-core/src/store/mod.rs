//! Storage: connecting to SQLite, PostgreSQL or MySQL/MariaDB from one URL, creating the
//! schema (idempotently) and the transaction helpers the flows use.

pub mod entities;

use std::time::Duration;

use sea_orm::sea_query::Index;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, EntityTrait, Schema, SqlErr, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

use crate::error::AuthError;
use entities::*;

/// The schema version this build creates. v3 adds the `expires_at` indexes the background
/// purge uses (created on upgrade by the idempotent create step).
pub const SCHEMA_VERSION: i32 = 3;

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    /// The sea-orm connection pool.
    pub db: DatabaseConnection,
}

/// Whether the error is a lost lock race that a retry of the whole transaction resolves:
/// a MySQL/InnoDB or PostgreSQL deadlock or serialisation failure, or SQLite's busy lock.
pub fn is_contention(e: &DbErr) -> bool {
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

/// Maps a database error: connection trouble is `503`, everything else `500`. The cause
/// goes to the log, never to the client.
pub fn db_error(e: DbErr) -> AuthError {
    use sea_orm::sqlx::Error as S;
    if is_contention(&e) {
        tracing::debug!(error = %e, "transaction lost a lock race; retrying");
        return AuthError::Contention;
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
        AuthError::Unavailable("database".into())
    } else {
        AuthError::Internal("database".into())
    }
}

/// Whether the error is a unique-key violation (a lost race on an insert).
pub fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

impl Store {
    /// Connects from a `database_url` (`sqlite://…`, `postgres://…`, `mysql://…`).
    pub async fn connect(url: &str) -> Result<Store, DbErr> {
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
        Ok(Store { db })
    }

    /// The back end in use.
    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Begins a read-write transaction. On SQLite it is `BEGIN IMMEDIATE`, so read-then-write
    /// sequences serialise instead of failing with "database is locked".
    pub async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        if self.backend() == DbBackend::Sqlite {
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

    /// Creates every table and index if missing. Safe to run on every start and from several
    /// instances at once.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        // Instances starting together take turns: concurrent CREATE TABLE IF NOT EXISTS can
        // still collide in PostgreSQL's catalog.
        match self.backend() {
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
        let backend = self.backend();
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
            schema_version::Entity,
            users::Entity,
            sessions::Entity,
            refresh_tokens::Entity,
            challenges::Entity,
            verification_tokens::Entity,
            password_history::Entity,
            kv::Entity,
            audit_log::Entity,
            mfa_devices::Entity,
            backup_codes::Entity,
            trusted_devices::Entity
        );
        if current == 1 {
            // v1 → v2: the MFA tables above, and the challenge's code method. A fresh install
            // created the column with the table just now.
            let alter = sea_orm::sea_query::Table::alter()
                .table(challenges::Entity)
                .add_column(
                    sea_orm::sea_query::ColumnDef::new(challenges::Column::Method)
                        .string()
                        .null(),
                )
                .to_owned();
            db.execute(&alter).await?;
        }
        // A second index helps the "expired sessions of a user" and audit queries.
        let mut idx = Index::create()
            .name("idx_nauth_audit_created")
            .table(audit_log::Entity)
            .col(audit_log::Column::CreatedAt)
            .to_owned();
        if let Err(e) = db.execute(idx.if_not_exists()).await
            && !e.to_string().contains("Duplicate key name")
        {
            return Err(e);
        }
        let row = schema_version::ActiveModel {
            id: sea_orm::Set(1),
            version: sea_orm::Set(SCHEMA_VERSION),
        };
        if current == 0 {
            match schema_version::Entity::insert(row).exec(db).await {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Ok(()),
                Err(e) => Err(e),
            }
        } else {
            schema_version::Entity::update(row)
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

    async fn futures_join(url: String) -> Vec<Store> {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move {
                    let s = Store::connect(&url).await.expect("connect");
                    s.migrate().await.expect("migrate");
                    s
                })
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
            let store = Store::connect(&url).await.expect("connect");
            store.migrate().await.expect("migrate");
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
}
