//! Counters, locks and lockouts: a small key-value trait with an in-memory back end (one
//! instance) and a database back end (shared by every instance on the same database).
//! Times are passed in from nauth's clock so tests can expire entries without sleeping.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

pub(crate) use crate::store::StoreError;
pub(crate) use crate::store::kv::DatabaseKv;

/// The result of a kv operation.
pub type KvResult<T> = Result<T, StoreError>;

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
    async fn incr(&self, key: &str, window_ms: i64, now: i64) -> KvResult<Entry>;
    /// The live entry under `key`, if any.
    async fn get(&self, key: &str, now: i64) -> KvResult<Option<Entry>>;
    /// The live entries under several keys, in order (one round trip where the back end can).
    async fn get_many(&self, keys: &[String], now: i64) -> KvResult<Vec<Option<Entry>>> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.get(k, now).await?);
        }
        Ok(out)
    }
    /// Sets `key` to `value` until `expires_at`.
    async fn set(&self, key: &str, value: i64, expires_at: i64) -> KvResult<()>;
    /// Removes `key`.
    async fn del(&self, key: &str) -> KvResult<()>;
    /// Gives back one unit of a live counter (a reservation that was not used, or a success
    /// that must not count); never below zero, never revives an expired entry.
    async fn decr(&self, key: &str, now: i64) -> KvResult<()>;
    /// Removes `key` only while it still holds `value` (nobody counted since); whether it did.
    async fn clear_if(&self, key: &str, value: i64) -> KvResult<bool>;
    /// Raises a counter to at least `floor` in one atomic step: concurrent increments are
    /// never lost (a lock that a racing `incr` cannot undo). An entry that was below `floor`
    /// (or expired) now expires at exactly `until`; one already at or above `floor` keeps the
    /// later of its expiry and `until`.
    async fn raise(&self, key: &str, floor: i64, until: i64, now: i64) -> KvResult<()>;
    /// Every live entry whose key starts with `prefix` (at most 10,000; keys longer than
    /// [`MAX_KEY_LEN`] come back in their bounded form). For small families of keys, such as
    /// the deny set that each instance copies into memory.
    async fn live_entries(&self, prefix: &str, now: i64) -> KvResult<Vec<(String, Entry)>>;
}

/// The most entries [`Kv::live_entries`] returns.
pub(crate) const LIVE_ENTRIES_MAX: usize = 10_000;

/// The longest kv key stored as it is; longer keys (long identifiers) keep their prefix up to
/// the first `:` and replace the rest by its SHA-256, so every back end accepts them.
pub(crate) const MAX_KEY_LEN: usize = 120;

/// `key`, or its bounded form (see [`MAX_KEY_LEN`]).
pub(crate) fn bounded_key(key: &str) -> std::borrow::Cow<'_, str> {
    if key.len() <= MAX_KEY_LEN {
        return std::borrow::Cow::Borrowed(key);
    }
    let prefix = key
        .split(':')
        .next()
        .unwrap_or("")
        .chars()
        .take(32)
        .collect::<String>();
    std::borrow::Cow::Owned(format!("{prefix}:#{}", crate::codes::sha256_hex(key)))
}

/// Process memory: fast, single instance only.
#[derive(Debug, Default)]
pub struct MemoryKv {
    map: Mutex<HashMap<String, Entry>>,
}

impl MemoryKv {
    fn lock(&self) -> KvResult<std::sync::MutexGuard<'_, HashMap<String, Entry>>> {
        self.map.lock().map_err(|_| StoreError::Other)
    }
}

#[async_trait]
impl Kv for MemoryKv {
    async fn incr(&self, key: &str, window_ms: i64, now: i64) -> KvResult<Entry> {
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

    async fn get(&self, key: &str, now: i64) -> KvResult<Option<Entry>> {
        Ok(self
            .lock()?
            .get(key)
            .copied()
            .filter(|e| e.expires_at > now))
    }

    async fn set(&self, key: &str, value: i64, expires_at: i64) -> KvResult<()> {
        self.lock()?
            .insert(key.to_string(), Entry { value, expires_at });
        Ok(())
    }

    async fn del(&self, key: &str) -> KvResult<()> {
        self.lock()?.remove(key);
        Ok(())
    }

    async fn clear_if(&self, key: &str, value: i64) -> KvResult<bool> {
        let mut map = self.lock()?;
        if map.get(key).is_some_and(|e| e.value == value) {
            map.remove(key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn decr(&self, key: &str, now: i64) -> KvResult<()> {
        if let Some(e) = self.lock()?.get_mut(key)
            && e.expires_at > now
            && e.value > 0
        {
            e.value -= 1;
        }
        Ok(())
    }

    async fn raise(&self, key: &str, floor: i64, until: i64, now: i64) -> KvResult<()> {
        let mut map = self.lock()?;
        let e = map.entry(key.to_string()).or_insert(Entry {
            value: 0,
            expires_at: 0,
        });
        if e.expires_at <= now {
            *e = Entry {
                value: floor,
                expires_at: until,
            };
        } else if e.value < floor {
            // Locked for exactly `until`, however long the counting window had left.
            *e = Entry {
                value: floor,
                expires_at: until,
            };
        } else {
            e.expires_at = e.expires_at.max(until);
        }
        Ok(())
    }
    async fn live_entries(&self, prefix: &str, now: i64) -> KvResult<Vec<(String, Entry)>> {
        Ok(self
            .lock()?
            .iter()
            .filter(|(k, e)| k.starts_with(prefix) && e.expires_at > now)
            .take(LIVE_ENTRIES_MAX)
            .map(|(k, e)| (k.clone(), *e))
            .collect())
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
        // decr gives back one unit, never below zero; raise locks without losing counts.
        kv.incr(&key, 1000, now).await.expect("incr");
        kv.incr(&key, 1000, now).await.expect("incr");
        kv.decr(&key, now).await.expect("decr");
        assert_eq!(
            kv.get(&key, now).await.expect("get").map(|e| e.value),
            Some(1)
        );
        kv.decr(&key, now).await.expect("decr");
        kv.decr(&key, now).await.expect("decr");
        assert_eq!(
            kv.get(&key, now).await.expect("get").map(|e| e.value),
            Some(0)
        );
        assert!(
            !kv.clear_if(&key, 3).await.expect("clear_if"),
            "value differs"
        );
        assert!(kv.get(&key, now).await.expect("get").is_some());
        kv.raise(&key, 5, now + 9000, now).await.expect("raise");
        let e = kv.get(&key, now).await.expect("get").expect("live");
        assert_eq!((e.value, e.expires_at), (5, now + 9000));
        assert_eq!(kv.incr(&key, 1000, now).await.expect("incr").value, 6);
        kv.raise(&key, 5, now + 100, now)
            .await
            .expect("raise keeps the larger");
        let e = kv.get(&key, now).await.expect("get").expect("live");
        assert_eq!((e.value, e.expires_at), (6, now + 9000));
        // Below the floor: locked for exactly `until`, however long the window had left.
        let short = format!("{key}:short");
        kv.incr(&short, 60_000, now).await.expect("incr");
        kv.raise(&short, 5, now + 1000, now).await.expect("raise");
        let e = kv.get(&short, now).await.expect("get").expect("live");
        assert_eq!((e.value, e.expires_at), (5, now + 1000));
        assert!(kv.get(&short, now + 1000).await.expect("get").is_none());
        kv.raise(&key, 3, now + 20_000, now + 9000)
            .await
            .expect("raise expired");
        let e = kv.get(&key, now + 9000).await.expect("get").expect("live");
        assert_eq!((e.value, e.expires_at), (3, now + 20_000));
        kv.decr(&key, now + 30_000)
            .await
            .expect("decr on expired is a no-op");
        // Keys of any length are accepted.
        let long = format!("ident:{}{}", "x".repeat(300), uuid::Uuid::new_v4());
        assert_eq!(kv.incr(&long, 1000, now).await.expect("long incr").value, 1);
        assert_eq!(kv.incr(&long, 1000, now).await.expect("long incr").value, 2);
        kv.del(&long).await.expect("long del");
        assert!(kv.get(&long, now).await.expect("get").is_none());
        // Live entries under a prefix; LIKE wildcards in the prefix are literal.
        let family = format!("lv_{}:", uuid::Uuid::new_v4().simple());
        kv.set(&format!("{family}a"), 1, now + 100)
            .await
            .expect("set");
        kv.set(&format!("{family}b"), 2, now - 1)
            .await
            .expect("set expired");
        kv.set(&family.replace('_', "x"), 3, now + 100)
            .await
            .expect("set lookalike");
        let mut live = kv.live_entries(&family, now).await.expect("live");
        live.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            live,
            vec![(
                format!("{family}a"),
                Entry {
                    value: 1,
                    expires_at: now + 100
                }
            )]
        );
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
        let store = crate::store::tests::connect(url).await;
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

    /// The same cases on Redis when `NAUTH_TEST_REDIS_URL` is set (`.ci/run` sets it).
    #[cfg(feature = "redis")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_back_end() {
        let Ok(url) = std::env::var("NAUTH_TEST_REDIS_URL") else {
            eprintln!("NAUTH_TEST_REDIS_URL not set; the Redis kv cases are skipped");
            return;
        };
        let kv = crate::redis_kv::RedisKv::connect(&url)
            .await
            .expect("redis reachable");
        windows_and_locks(&kv).await;
        parallel_increments(Arc::new(kv)).await;
    }

    /// A TCP proxy to `target` on `listener`; aborting its task drops every connection.
    #[cfg(feature = "redis")]
    async fn proxy(
        listener: tokio::net::TcpListener,
        target: String,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                conns.spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        })
    }

    /// `host:port` of a `redis://` URL.
    #[cfg(feature = "redis")]
    fn redis_target(url: &str) -> String {
        url.trim_start_matches("redis://")
            .split('/')
            .next()
            .and_then(|h| h.rsplit('@').next())
            .expect("host:port")
            .to_string()
    }

    /// A TCP proxy in front of Redis that the test stops and starts: while it is down every
    /// operation fails as `Unavailable` (the engine's `503`), and once it is back the same
    /// store works again without being rebuilt.
    #[cfg(feature = "redis")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_outage_is_unavailable_and_heals() {
        let Ok(url) = std::env::var("NAUTH_TEST_REDIS_URL") else {
            eprintln!("NAUTH_TEST_REDIS_URL not set; skipped");
            return;
        };
        let target = redis_target(&url);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let running = proxy(listener, target.clone()).await;
        let kv = crate::redis_kv::RedisKv::connect(&format!("redis://{addr}"))
            .await
            .expect("through the proxy");
        let key = format!("outage:{}", uuid::Uuid::new_v4());
        assert_eq!(kv.incr(&key, 60_000, 1_000).await.expect("up").value, 1);
        // Down: the proxy and its connections go away.
        running.abort();
        let _ = running.await;
        let err = kv.incr(&key, 60_000, 1_000).await.expect_err("down");
        assert_eq!(err, StoreError::Unavailable("redis"));
        // Back on the same port: the same store serves again, the count intact.
        let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
        let _running = proxy(listener, target).await;
        let mut value = None;
        for _ in 0..50 {
            match kv.incr(&key, 60_000, 1_000).await {
                Ok(e) => {
                    value = Some(e.value);
                    break;
                }
                Err(e) => assert_eq!(e, StoreError::Unavailable("redis")),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(value, Some(2), "served again without a rebuild");
    }

    /// The shared session cache serves only while subscribed: with Redis cut off it answers
    /// nothing (every request reads the database), and it serves again once Redis is back.
    #[cfg(feature = "redis")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_session_cache_is_off_while_unsubscribed() {
        use crate::cache::{LiveSession, SessionCache};
        let Ok(url) = std::env::var("NAUTH_TEST_REDIS_URL") else {
            eprintln!("NAUTH_TEST_REDIS_URL not set; skipped");
            return;
        };
        let target = redis_target(&url);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let running = proxy(listener, target.clone()).await;
        let minute = std::time::Duration::from_secs(60);
        let cut_off =
            crate::redis_kv::RedisSessionCache::connect(&format!("redis://{addr}"), minute)
                .await
                .expect("through the proxy");
        let direct = crate::redis_kv::RedisSessionCache::connect(&url, minute)
            .await
            .expect("direct");
        let row = LiveSession {
            user_id: "u".into(),
            access_jti: "j".into(),
            auth_method: "password".into(),
            expires_at: i64::MAX,
            absolute_expires_at: i64::MAX,
            roles: vec!["user".into()],
            scopes: None,
        };
        let sid = uuid::Uuid::new_v4().to_string();
        cut_off.put(&sid, &row, cut_off.stamp());
        assert_eq!(cut_off.get(&sid), Some(row.clone()));
        // An invalidation published by another instance reaches this one.
        direct.invalidate().await;
        let mut dropped = false;
        for _ in 0..100 {
            if cut_off.get(&sid).is_none() {
                dropped = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(dropped, "the other instance's invalidation arrived");
        cut_off.put(&sid, &row, cut_off.stamp());
        assert_eq!(cut_off.get(&sid), Some(row.clone()));
        // Cut off: nothing is served from the cache.
        running.abort();
        let _ = running.await;
        let mut off = false;
        for _ in 0..100 {
            if cut_off.get(&sid).is_none() {
                off = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(off, "the cache turns itself off without its subscription");
        cut_off.put(&sid, &row, cut_off.stamp());
        assert_eq!(cut_off.get(&sid), None, "and keeps nothing meanwhile");
        // Back: it subscribes again and serves again.
        let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
        let _running = proxy(listener, target).await;
        let mut back = false;
        for _ in 0..100 {
            cut_off.put(&sid, &row, cut_off.stamp());
            if cut_off.get(&sid).is_some() {
                back = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(back, "the cache serves again once subscribed");
    }
}
