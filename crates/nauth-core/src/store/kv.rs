//! The kv store on the database: the `nauth_kv` table, shared by every instance using the
//! database. Each operation is one atomic statement (an upsert per back end).

use async_trait::async_trait;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Set, Statement};

use super::OrStore;
use super::entities::kv;
use super::{Conn, Store, StoreError, is_unique_violation};
use crate::kv::{Entry, Kv, KvResult, LIVE_ENTRIES_MAX, bounded_key};

/// The `nauth_kv` table: shared by every instance using the database.
#[derive(Debug, Clone)]
pub(crate) struct DatabaseKv {
    store: Store,
}

impl DatabaseKv {
    /// A kv over the store's database.
    pub(crate) fn new(store: Store) -> Self {
        DatabaseKv { store }
    }
}

#[async_trait]
impl Kv for DatabaseKv {
    async fn incr(&self, key: &str, window_ms: i64, now: i64) -> KvResult<Entry> {
        // One atomic upsert per back end: no read-then-write race between instances, and no
        // gap locks for InnoDB to deadlock on.
        let backend = self.store.backend();
        let exp = now + window_ms;
        let upsert = match backend {
            DbBackend::MySql => {
                "INSERT INTO nauth_kv (`key`, `value`, expires_at) VALUES (?, 1, ?) \
                 ON DUPLICATE KEY UPDATE `value` = IF(expires_at <= ?, 1, `value` + 1), \
                 expires_at = IF(expires_at <= ?, ?, expires_at)"
            }
            DbBackend::Postgres => {
                "INSERT INTO nauth_kv (key, value, expires_at) VALUES ($1, 1, $2) \
                 ON CONFLICT (key) DO UPDATE SET \
                 value = CASE WHEN nauth_kv.expires_at <= $3 THEN 1 ELSE nauth_kv.value + 1 END, \
                 expires_at = CASE WHEN nauth_kv.expires_at <= $4 THEN $5 ELSE nauth_kv.expires_at END"
            }
            _ => {
                "INSERT INTO nauth_kv (key, value, expires_at) VALUES (?, 1, ?) \
                 ON CONFLICT (key) DO UPDATE SET \
                 value = CASE WHEN nauth_kv.expires_at <= ? THEN 1 ELSE nauth_kv.value + 1 END, \
                 expires_at = CASE WHEN nauth_kv.expires_at <= ? THEN ? ELSE nauth_kv.expires_at END"
            }
        };
        let key = bounded_key(key);
        let values: Vec<sea_orm::Value> = vec![
            key.as_ref().into(),
            exp.into(),
            now.into(),
            now.into(),
            exp.into(),
        ];
        let tx = self.store.begin().await.db()?;
        tx.execute_raw(Statement::from_sql_and_values(backend, upsert, values))
            .await
            .db()?;
        let row = kv::Entity::find_by_id(key.into_owned())
            .one(&tx)
            .await
            .db()?
            .ok_or(StoreError::Other)?;
        tx.commit().await.db()?;
        Ok(Entry {
            value: row.value,
            expires_at: row.expires_at,
        })
    }

    async fn get(&self, key: &str, now: i64) -> KvResult<Option<Entry>> {
        let row = kv::Entity::find_by_id(bounded_key(key).into_owned())
            .one(self.store.c())
            .await
            .db()?;
        Ok(row
            .map(|r| Entry {
                value: r.value,
                expires_at: r.expires_at,
            })
            .filter(|e| e.expires_at > now))
    }

    async fn get_many(&self, keys: &[String], now: i64) -> KvResult<Vec<Option<Entry>>> {
        let keys: Vec<String> = keys.iter().map(|k| bounded_key(k).into_owned()).collect();
        let rows = kv::Entity::find()
            .filter(kv::Column::Key.is_in(keys.iter().cloned()))
            .all(self.store.c())
            .await
            .db()?;
        Ok(keys
            .iter()
            .map(|k| {
                rows.iter()
                    .find(|r| &r.key == k)
                    .map(|r| Entry {
                        value: r.value,
                        expires_at: r.expires_at,
                    })
                    .filter(|e| e.expires_at > now)
            })
            .collect())
    }

    async fn set(&self, key: &str, value: i64, expires_at: i64) -> KvResult<()> {
        let key = bounded_key(key).into_owned();
        let tx = self.store.begin().await.db()?;
        kv::Entity::delete_by_id(key.clone()).exec(&tx).await.db()?;
        let am = kv::ActiveModel {
            key: Set(key),
            value: Set(value),
            expires_at: Set(expires_at),
        };
        match kv::Entity::insert(am).exec(&tx).await {
            Ok(_) => {}
            // A concurrent set won; either value is acceptable for a lock.
            Err(e) if is_unique_violation(&e) => return Ok(()),
            Err(e) => return Err(super::db_error(e)),
        }
        tx.commit().await.db()?;
        Ok(())
    }

    async fn del(&self, key: &str) -> KvResult<()> {
        kv::Entity::delete_by_id(bounded_key(key).into_owned())
            .exec(self.store.c())
            .await
            .db()?;
        Ok(())
    }

    async fn clear_if(&self, key: &str, value: i64) -> KvResult<bool> {
        let n = kv::Entity::delete_many()
            .filter(kv::Column::Key.eq(bounded_key(key).into_owned()))
            .filter(kv::Column::Value.eq(value))
            .exec(self.store.c())
            .await
            .db()?
            .rows_affected;
        Ok(n > 0)
    }

    async fn decr(&self, key: &str, now: i64) -> KvResult<()> {
        let backend = self.store.backend();
        let sql = match backend {
            DbBackend::MySql => {
                "UPDATE nauth_kv SET `value` = `value` - 1 \
                 WHERE `key` = ? AND `value` > 0 AND expires_at > ?"
            }
            DbBackend::Postgres => {
                "UPDATE nauth_kv SET value = value - 1 \
                 WHERE key = $1 AND value > 0 AND expires_at > $2"
            }
            _ => {
                "UPDATE nauth_kv SET value = value - 1 \
                 WHERE key = ? AND value > 0 AND expires_at > ?"
            }
        };
        let values: Vec<sea_orm::Value> = vec![bounded_key(key).into_owned().into(), now.into()];
        self.store
            .c()
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .db()?;
        Ok(())
    }

    async fn raise(&self, key: &str, floor: i64, until: i64, now: i64) -> KvResult<()> {
        let backend = self.store.backend();
        let key = bounded_key(key).into_owned();
        // A counter below the floor (or expired) is locked for exactly `until`: the lock lasts
        // `lockout.duration`, however long the counting window had left. A lock already in
        // place keeps the later expiry.
        // One parameter list for the three dialects, in the order of their placeholders.
        let values: Vec<sea_orm::Value> = vec![
            key.into(),
            floor.into(),
            until.into(),
            now.into(),
            floor.into(),
            floor.into(),
            now.into(),
            floor.into(),
            until.into(),
            until.into(),
        ];
        let sql = match backend {
            // MySQL assigns left to right, each expression seeing the columns assigned before
            // it: `value` goes first (reading the old expiry), then `expires_at` reads the new
            // `value`, which equals `floor` exactly when the old one was below it or expired.
            // (An entry already locked at exactly `floor` is renewed to `until`, which is never
            // earlier than its expiry: `until` is now plus a fixed duration.)
            DbBackend::MySql => {
                "INSERT INTO nauth_kv (`key`, `value`, expires_at) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE \
                 `value` = IF(expires_at <= ?, ?, GREATEST(`value`, ?)), \
                 expires_at = IF(expires_at <= ? OR `value` = ?, ?, GREATEST(expires_at, ?))"
            }
            // Every SET expression reads the old row.
            DbBackend::Postgres => {
                "INSERT INTO nauth_kv (key, value, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET \
                 value = CASE WHEN nauth_kv.expires_at <= $4 THEN $5 \
                   ELSE GREATEST(nauth_kv.value, $6) END, \
                 expires_at = CASE WHEN nauth_kv.expires_at <= $7 OR nauth_kv.value < $8 \
                   THEN $9 ELSE GREATEST(nauth_kv.expires_at, $10) END"
            }
            _ => {
                "INSERT INTO nauth_kv (key, value, expires_at) VALUES (?, ?, ?) \
                 ON CONFLICT (key) DO UPDATE SET \
                 value = CASE WHEN nauth_kv.expires_at <= ? THEN ? \
                   ELSE MAX(nauth_kv.value, ?) END, \
                 expires_at = CASE WHEN nauth_kv.expires_at <= ? OR nauth_kv.value < ? \
                   THEN ? ELSE MAX(nauth_kv.expires_at, ?) END"
            }
        };
        self.store
            .c()
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .db()?;
        Ok(())
    }

    async fn live_entries(&self, prefix: &str, now: i64) -> KvResult<Vec<(String, Entry)>> {
        use sea_orm::sea_query::LikeExpr;
        use sea_orm::{ColumnTrait, QueryFilter, QuerySelect};
        // `!` escapes LIKE's wildcards in the prefix; it needs no escaping in any SQL dialect.
        let mut pattern = String::with_capacity(prefix.len() + 1);
        for c in prefix.chars() {
            if matches!(c, '%' | '_' | '!') {
                pattern.push('!');
            }
            pattern.push(c);
        }
        pattern.push('%');
        let rows = kv::Entity::find()
            .filter(kv::Column::Key.like(LikeExpr::new(pattern).escape('!')))
            .filter(kv::Column::ExpiresAt.gt(now))
            .limit(LIVE_ENTRIES_MAX as u64)
            .all(self.store.c())
            .await
            .db()?;
        Ok(rows
            .into_iter()
            // MySQL's default collation compares case-insensitively.
            .filter(|r| r.key.starts_with(prefix))
            .map(|r| {
                (
                    r.key,
                    Entry {
                        value: r.value,
                        expires_at: r.expires_at,
                    },
                )
            })
            .collect())
    }
}
