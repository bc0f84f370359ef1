//! Counters, locks and lockouts: a small key-value trait with an in-memory back end (one
//! instance) and a database back end (shared by every instance on the same database).
//! Times are passed in from nauth's clock so tests can expire entries without sleeping.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Set, Statement};

use crate::error::{AuthError, AuthResult};
use crate::store::entities::kv;
use crate::store::{Store, is_unique_violation};

/// A live entry: its value and when it expires (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The value.
    pub value: i64,
    /// Expiry, Unix milliseconds.
    pub expires_at: i64,
}

/// Storage for counters and locks.
#[async_trait]
pub trait Kv: Send + Sync + 'static {
    /// Adds one to a counter whose window starts at its first increment and lasts
    /// `window_ms`; returns the entry after the increment.
    async fn incr(&self, key: &str, window_ms: i64, now: i64) -> AuthResult<Entry>;
    /// The live entry under `key`, if any.
    async fn get(&self, key: &str, now: i64) -> AuthResult<Option<Entry>>;
    /// The live entries under several keys, in order (one round trip where the back end can).
    async fn get_many(&self, keys: &[String], now: i64) -> AuthResult<Vec<Option<Entry>>> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.get(k, now).await?);
        }
        Ok(out)
    }
    /// Sets `key` to `value` until `expires_at`.
    async fn set(&self, key: &str, value: i64, expires_at: i64) -> AuthResult<()>;
    /// Removes `key`.
    async fn del(&self, key: &str) -> AuthResult<()>;
}

/// Process memory: fast, single instance only.
#[derive(Debug, Default)]
pub struct MemoryKv {
    map: Mutex<HashMap<String, Entry>>,
}

impl MemoryKv {
    fn lock(&self) -> AuthResult<std::sync::MutexGuard<'_, HashMap<String, Entry>>> {
        self.map
            .lock()
            .map_err(|_| AuthError::Internal("kv lock poisoned".into()))
    }
}

#[async_trait]
impl Kv for MemoryKv {
    async fn incr(&self, key: &str, window_ms: i64, now: i64) -> AuthResult<Entry> {
        let mut map = self.lock()?;
        if map.len() > 100_000 {
            map.retain(|_, e| e.expires_at > now);
        }
        let e = map.entry(key.to_string()).or_insert(Entry {
            value: 0,
            expires_at: 0,
        });
        if e.expires_at <= now {
            *e = Entry {
                value: 0,
                expires_at: now + window_ms,
            };
        }
        e.value += 1;
        Ok(*e)
    }

    async fn get(&self, key: &str, now: i64) -> AuthResult<Option<Entry>> {
        Ok(self
            .lock()?
            .get(key)
            .copied()
            .filter(|e| e.expires_at > now))
    }

    async fn set(&self, key: &str, value: i64, expires_at: i64) -> AuthResult<()> {
        self.lock()?
            .insert(key.to_string(), Entry { value, expires_at });
        Ok(())
    }

    async fn del(&self, key: &str) -> AuthResult<()> {
        self.lock()?.remove(key);
        Ok(())
    }
}

/// The `nauth_kv` table: shared by every instance using the database.
#[derive(Debug, Clone)]
pub struct DatabaseKv {
    store: Store,
}

impl DatabaseKv {
    /// A kv over the store's database.
    pub fn new(store: Store) -> Self {
        DatabaseKv { store }
    }
}

#[async_trait]
impl Kv for DatabaseKv {
    async fn incr(&self, key: &str, window_ms: i64, now: i64) -> AuthResult<Entry> {
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
        let values: Vec<sea_orm::Value> =
            vec![key.into(), exp.into(), now.into(), now.into(), exp.into()];
        let tx = self.store.begin().await?;
        tx.execute_raw(Statement::from_sql_and_values(backend, upsert, values))
            .await?;
        let row = kv::Entity::find_by_id(key.to_string())
            .one(&tx)
            .await?
            .ok_or_else(|| AuthError::Internal("kv row vanished".into()))?;
        tx.commit().await?;
        Ok(Entry {
            value: row.value,
            expires_at: row.expires_at,
        })
    }

    async fn get(&self, key: &str, now: i64) -> AuthResult<Option<Entry>> {
        let row = kv::Entity::find_by_id(key.to_string())
            .one(&self.store.db)
            .await?;
        Ok(row
            .map(|r| Entry {
                value: r.value,
                expires_at: r.expires_at,
            })
            .filter(|e| e.expires_at > now))
    }

    async fn get_many(&self, keys: &[String], now: i64) -> AuthResult<Vec<Option<Entry>>> {
        use sea_orm::{ColumnTrait, QueryFilter};
        let rows = kv::Entity::find()
            .filter(kv::Column::Key.is_in(keys.iter().cloned()))
            .all(&self.store.db)
            .await?;
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

    async fn set(&self, key: &str, value: i64, expires_at: i64) -> AuthResult<()> {
        let tx = self.store.begin().await?;
        kv::Entity::delete_by_id(key.to_string()).exec(&tx).await?;
        let am = kv::ActiveModel {
            key: Set(key.to_string()),
            value: Set(value),
            expires_at: Set(expires_at),
        };
        match kv::Entity::insert(am).exec(&tx).await {
            Ok(_) => {}
            // A concurrent set won; either value is acceptable for a lock.
            Err(e) if is_unique_violation(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(())
    }

    async fn del(&self, key: &str) -> AuthResult<()> {
        kv::Entity::delete_by_id(key.to_string())
            .exec(&self.store.db)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn windows_and_locks(kv: &dyn Kv) {
        let key = format!("t:{}", uuid::Uuid::new_v4());
        let now = 1_000_000;
        assert_eq!(kv.incr(&key, 1000, now).await.expect("incr").value, 1);
        assert_eq!(kv.incr(&key, 1000, now + 10).await.expect("incr").value, 2);
        let e = kv.incr(&key, 1000, now + 999).await.expect("incr");
        assert_eq!(
            (e.value, e.expires_at),
            (3, now + 1000),
            "the window starts at the first hit"
        );
        // The window is over: counting starts again.
        let e = kv.incr(&key, 1000, now + 1000).await.expect("incr");
        assert_eq!((e.value, e.expires_at), (1, now + 2000));
        assert!(kv.get(&key, now + 1500).await.expect("get").is_some());
        assert!(kv.get(&key, now + 2000).await.expect("get").is_none());
        kv.set(&key, 7, now + 50).await.expect("set");
        assert_eq!(
            kv.get(&key, now).await.expect("get").map(|e| e.value),
            Some(7)
        );
        kv.set(&key, 8, now + 60).await.expect("set again");
        assert_eq!(
            kv.get(&key, now).await.expect("get").map(|e| e.value),
            Some(8)
        );
        kv.del(&key).await.expect("del");
        assert!(kv.get(&key, now).await.expect("get").is_none());
    }

    async fn parallel_increments(kv: Arc<dyn Kv>) {
        let key = format!("p:{}", uuid::Uuid::new_v4());
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (kv, key) = (kv.clone(), key.clone());
                tokio::spawn(async move { kv.incr(&key, 60_000, 5_000).await.expect("incr").value })
            })
            .collect();
        let mut seen = Vec::new();
        for t in tasks {
            seen.push(t.await.expect("task"));
        }
        seen.sort();
        assert_eq!(
            seen,
            (1..=16).collect::<Vec<i64>>(),
            "every increment counted once"
        );
    }

    async fn database(url: &str) -> Arc<dyn Kv> {
        let store = Store::connect(url).await.expect("connect");
        store.migrate().await.expect("migrate");
        Arc::new(DatabaseKv::new(store))
    }

    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_back_end() {
        windows_and_locks(&MemoryKv::default()).await;
        parallel_increments(Arc::new(MemoryKv::default())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn database_back_ends() {
        let mut urls = vec![crate::store::tests::sqlite_url()];
        urls.extend(std::env::var("NAUTH_TEST_POSTGRES_URL").ok());
        urls.extend(std::env::var("NAUTH_TEST_MYSQL_URL").ok());
        for url in urls {
            let kv = database(&url).await;
            windows_and_locks(kv.as_ref()).await;
            parallel_increments(kv).await;
        }
    }
}
