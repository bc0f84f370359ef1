//! The Redis back end of the kv store (`kv.backend = "redis"`, feature `redis`): counters,
//! lockouts, message caps and the deny set shared by every instance that uses the same Redis.
//!
//! Each entry is a hash `{v, e}` under `nauth:<key>`: its value and its expiry in the engine's
//! milliseconds. Every operation is one Lua script, so it is atomic like the database back
//! end's single upserts, and expiry is decided by the `now` the engine passes (its clock, which
//! tests move by hand), never by Redis's own clock. Redis's TTL only collects entries an hour
//! after they died.

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;

use crate::clock::Clock;
use crate::kv::{Entry, Kv, KvResult, LIVE_ENTRIES_MAX, StoreError};

/// Every key of nauth lives under this prefix, apart from the app's own keys.
const NAMESPACE: &str = "nauth:";

/// Each family of keys (the part before the first `:`, e.g. `deny`) has a sorted set of its
/// keys by expiry under `nauth:idx:<family>`, kept by every write script (`KEYS[2]`), so that
/// [`Kv::live_entries`] reads one family instead of scanning the whole keyspace.
const INDEX: &str = "nauth:idx:";

/// How long after its expiry an entry is collected by Redis itself.
const COLLECT_AFTER_MS: i64 = 3_600_000;

/// `incr`: a fresh window at the first count, the same window after.
const INCR: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'v', 'e')
local now, window, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v, e
if cur[1] and cur[2] and tonumber(cur[2]) > now then
  v = tonumber(cur[1]) + 1
  e = tonumber(cur[2])
else
  v = 1
  e = now + window
end
redis.call('HSET', KEYS[1], 'v', v, 'e', e)
redis.call('PEXPIRE', KEYS[1], math.max(e - now, 0) + grace)
redis.call('ZADD', KEYS[2], e, KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - grace)
local ttl = math.max(e - now, 0) + grace
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return {v, e}
";

/// `get`: the live entry, or nothing.
const GET: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'v', 'e')
if cur[1] and cur[2] and tonumber(cur[2]) > tonumber(ARGV[1]) then
  return {tonumber(cur[1]), tonumber(cur[2])}
end
return false
";

/// `set`: value and expiry, whatever was there. (`set` is given no `now`: Redis collects
/// the entry `ARGV[3]` ms after the expiry as the wall clock sees it, at least that long.)
const SET: &str = r"
local e, collect = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'e', e)
redis.call('PEXPIRE', KEYS[1], collect)
redis.call('ZADD', KEYS[2], e, KEYS[1])
if redis.call('PTTL', KEYS[2]) < collect then redis.call('PEXPIRE', KEYS[2], collect) end
return 1
";

/// `decr`: one unit back on a live counter, never below zero.
const DECR: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'v', 'e')
if cur[1] and cur[2] and tonumber(cur[2]) > tonumber(ARGV[1]) and tonumber(cur[1]) > 0 then
  redis.call('HINCRBY', KEYS[1], 'v', -1)
end
return 1
";

/// `clear_if`: removes the entry only while it holds the value.
const CLEAR_IF: &str = r"
local v = redis.call('HGET', KEYS[1], 'v')
if v and tonumber(v) == tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], KEYS[1])
  return 1
end
return 0
";

/// `raise`: at least `floor`; an entry that was below it (or dead) expires at `until`
/// exactly, one already at or above it keeps the later expiry.
const RAISE: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'v', 'e')
local floor, untl, now, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local v, e
if not (cur[1] and cur[2]) or tonumber(cur[2]) <= now or tonumber(cur[1]) < floor then
  v = floor
  e = untl
else
  v = tonumber(cur[1])
  e = math.max(tonumber(cur[2]), untl)
end
redis.call('HSET', KEYS[1], 'v', v, 'e', e)
redis.call('PEXPIRE', KEYS[1], math.max(e - now, 0) + grace)
redis.call('ZADD', KEYS[2], e, KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - grace)
local ttl = math.max(e - now, 0) + grace
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
";

/// Counters and locks in Redis, shared by every instance that connects to it. Cheap to clone.
#[derive(Clone)]
pub struct RedisKv {
    conn: ConnectionManager,
    scripts: std::sync::Arc<Scripts>,
}

struct Scripts {
    incr: Script,
    get: Script,
    set: Script,
    decr: Script,
    clear_if: Script,
    raise: Script,
}

impl std::fmt::Debug for RedisKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisKv").finish_non_exhaustive()
    }
}

/// Connection trouble is `Unavailable` (`503`, and the connection manager reconnects);
/// anything else `Other`. The cause goes to the log.
fn redis_error(e: redis::RedisError) -> StoreError {
    tracing::error!(error = %e, "redis error");
    if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_cluster_error()
    {
        StoreError::Unavailable("redis")
    } else {
        StoreError::Other
    }
}

fn key(k: &str) -> String {
    format!("{NAMESPACE}{k}")
}

/// The index of the family `k` belongs to.
fn index(k: &str) -> String {
    let family = k.split(':').next().unwrap_or(k);
    format!("{INDEX}{family}")
}

/// Escapes Redis glob characters so a prefix matches literally.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A connection that reconnects by itself; 5 s to connect or answer, so an outage is a prompt
/// `503` rather than a hung request.
async fn manager(client: redis::Client) -> KvResult<ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(std::time::Duration::from_secs(5))
        .set_response_timeout(std::time::Duration::from_secs(5))
        .set_number_of_retries(2);
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(redis_error)
}

impl RedisKv {
    /// Connects to `redis://…` or `rediss://…`; fails when Redis cannot be reached now. Later
    /// outages answer `503` and the connection comes back by itself.
    pub async fn connect(url: &str) -> KvResult<RedisKv> {
        let client = redis::Client::open(url).map_err(redis_error)?;
        let conn = manager(client).await?;
        Ok(RedisKv {
            conn,
            scripts: std::sync::Arc::new(Scripts {
                incr: Script::new(INCR),
                get: Script::new(GET),
                set: Script::new(SET),
                decr: Script::new(DECR),
                clear_if: Script::new(CLEAR_IF),
                raise: Script::new(RAISE),
            }),
        })
    }
}

impl RedisKv {
    /// Runs one of the scripts on an entry: `KEYS[1]` the entry, `KEYS[2]` its family's index
    /// (scripts that keep no index ignore it), then `args`.
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        k: &str,
        args: &[i64],
    ) -> KvResult<T> {
        let mut invocation = script.key(key(k));
        invocation.key(index(k));
        for a in args {
            invocation.arg(*a);
        }
        let mut conn = self.conn.clone();
        invocation
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)
    }

    /// The live entries of bare keys, in one round trip.
    async fn live_of(&self, bare: Vec<String>, now: i64) -> KvResult<Vec<(String, Entry)>> {
        let entries = self.get_many(&bare, now).await?;
        Ok(bare
            .into_iter()
            .zip(entries)
            .filter_map(|(k, e)| e.map(|e| (k, e)))
            .collect())
    }
}

#[async_trait]
impl Kv for RedisKv {
    async fn incr(&self, k: &str, window_ms: i64, now: i64) -> KvResult<Entry> {
        let args = [now, window_ms, COLLECT_AFTER_MS];
        let (value, expires_at): (i64, i64) = self.run(&self.scripts.incr, k, &args).await?;
        Ok(Entry { value, expires_at })
    }

    async fn get(&self, k: &str, now: i64) -> KvResult<Option<Entry>> {
        let found: Option<(i64, i64)> = self.run(&self.scripts.get, k, &[now]).await?;
        Ok(found.map(|(value, expires_at)| Entry { value, expires_at }))
    }

    async fn get_many(&self, keys: &[String], now: i64) -> KvResult<Vec<Option<Entry>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One round trip for the batch the flows read before a transaction.
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("HMGET").arg(key(k)).arg("v").arg("e");
        }
        let mut conn = self.conn.clone();
        let rows: Vec<(Option<i64>, Option<i64>)> =
            pipe.query_async(&mut conn).await.map_err(redis_error)?;
        Ok(rows
            .into_iter()
            .map(|r| match r {
                (Some(value), Some(expires_at)) if expires_at > now => {
                    Some(Entry { value, expires_at })
                }
                _ => None,
            })
            .collect())
    }

    async fn set(&self, k: &str, value: i64, expires_at: i64) -> KvResult<()> {
        let wall = crate::clock::SystemClock.now_ms();
        let collect = (expires_at - wall).max(0) + COLLECT_AFTER_MS;
        let args = [value, expires_at, collect];
        self.run::<i64>(&self.scripts.set, k, &args).await.map(drop)
    }

    async fn del(&self, k: &str) -> KvResult<()> {
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .atomic()
            .del(key(k))
            .ignore()
            .zrem(index(k), key(k))
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn decr(&self, k: &str, now: i64) -> KvResult<()> {
        self.run::<i64>(&self.scripts.decr, k, &[now])
            .await
            .map(drop)
    }

    async fn clear_if(&self, k: &str, value: i64) -> KvResult<bool> {
        let cleared: i64 = self.run(&self.scripts.clear_if, k, &[value]).await?;
        Ok(cleared == 1)
    }

    async fn raise(&self, k: &str, floor: i64, until: i64, now: i64) -> KvResult<()> {
        let args = [floor, until, now, COLLECT_AFTER_MS];
        self.run::<i64>(&self.scripts.raise, k, &args)
            .await
            .map(drop)
    }

    async fn live_entries(&self, prefix: &str, now: i64) -> KvResult<Vec<(String, Entry)>> {
        let mut conn = self.conn.clone();
        if prefix.contains(':') {
            // One family: its index, live members only; members dead for a while go (the
            // family's writes trim it too, but `set` alone, the deny set's, does not).
            let idx = index(prefix);
            let (names,): (Vec<String>,) = redis::pipe()
                .cmd("ZREMRANGEBYSCORE")
                .arg(&idx)
                .arg("-inf")
                .arg(now - COLLECT_AFTER_MS)
                .ignore()
                .cmd("ZRANGEBYSCORE")
                .arg(&idx)
                .arg(format!("({now}"))
                .arg("+inf")
                .arg("LIMIT")
                .arg(0)
                .arg(LIVE_ENTRIES_MAX)
                .query_async(&mut conn)
                .await
                .map_err(redis_error)?;
            let full = key(prefix);
            let bare: Vec<String> = names
                .iter()
                .filter(|n| n.starts_with(&full))
                .map(|n| n.strip_prefix(NAMESPACE).unwrap_or(n).to_string())
                .collect();
            return self.live_of(bare, now).await;
        }
        // No family named: every key of nauth (tests and tools only).
        let pattern = format!("{}*", glob_escape(&key(prefix)));
        let mut names: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(redis_error)?;
            names.extend(batch.into_iter().filter(|n| !n.starts_with(INDEX)));
            cursor = next;
            if cursor == 0 || names.len() >= LIVE_ENTRIES_MAX {
                break;
            }
        }
        names.truncate(LIVE_ENTRIES_MAX);
        let bare: Vec<String> = names
            .iter()
            .map(|n| n.strip_prefix(NAMESPACE).unwrap_or(n).to_string())
            .collect();
        self.live_of(bare, now).await
    }
}

/// The Redis channel every instance's session-liveness cache listens on.
const CHANNEL: &str = "nauth:sessions:invalidate";

/// Where the instances acknowledge an invalidation: `nauth:sessions:ack:<id>`, a list with one
/// element per instance that has dropped its entries.
const ACKS: &str = "nauth:sessions:ack:";

/// How long a revoking request waits for the other instances' acknowledgements. An instance
/// that does not answer in time is cut off or gone: its entries die with `cache_max_age`.
const ACK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The session-liveness cache of several instances on one database and one Redis
/// (`session.cache_max_age` > 0 with `kv.backend = "redis"`): each instance keeps its own
/// per-thread cache, and every invalidation is published on Redis; each instance drops its
/// entries and acknowledges, and the revoking request answers only once every instance that
/// received the message has acknowledged it (or [`ACK_WAIT`] has passed). While
/// an instance's subscription is down (Redis unreachable) it serves nothing from its cache,
/// and entries are never kept longer than the configured maximum age, which bounds what a
/// lost message could leave stale.
pub struct RedisSessionCache {
    shared: std::sync::Arc<crate::cache::Subscribed>,
    publisher: ConnectionManager,
}

impl std::fmt::Debug for RedisSessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionCache")
            .field("cache", &self.shared)
            .finish_non_exhaustive()
    }
}

impl RedisSessionCache {
    /// Connects, subscribes (the cache answers only once subscribed) and listens on its own
    /// task until the cache is dropped.
    pub async fn connect(url: &str, max_age: std::time::Duration) -> KvResult<Self> {
        let client = redis::Client::open(url).map_err(redis_error)?;
        let publisher = manager(client.clone()).await?;
        let first = subscribe(&client).await.map_err(redis_error)?;
        let shared = std::sync::Arc::new(crate::cache::Subscribed::new(max_age));
        shared.subscribed();
        tokio::spawn(listen(
            client,
            publisher.clone(),
            std::sync::Arc::downgrade(&shared),
            Some(first),
        ));
        Ok(RedisSessionCache { shared, publisher })
    }
}

async fn subscribe(client: &redis::Client) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    Ok(pubsub)
}

/// The listener: every message makes the local entries stale; a lost subscription turns the
/// cache off until it is back (then everything cached before is stale too).
async fn listen(
    client: redis::Client,
    acks: ConnectionManager,
    shared: std::sync::Weak<crate::cache::Subscribed>,
    mut first: Option<redis::aio::PubSub>,
) {
    use futures_util::StreamExt;
    let alive = || shared.upgrade();
    loop {
        let pubsub = match first.take() {
            Some(p) => p,
            None => match subscribe(&client).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "session cache: cannot subscribe; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    if alive().is_none() {
                        return;
                    }
                    continue;
                }
            },
        };
        match alive() {
            Some(s) => s.subscribed(),
            None => return,
        }
        let mut messages = pubsub.into_on_message();
        loop {
            tokio::select! {
                m = messages.next() => match (m, alive()) {
                    (Some(m), Some(s)) => {
                        s.invalidate();
                        // Acknowledged off the listening loop, which goes on at once.
                        if let Ok(id) = m.get_payload::<String>() {
                            let mut conn = acks.clone();
                            tokio::spawn(async move {
                                let key = format!("{ACKS}{id}");
                                let acked: redis::RedisResult<()> = redis::pipe()
                                    .atomic()
                                    .rpush(&key, 1)
                                    .ignore()
                                    .pexpire(&key, 10_000)
                                    .ignore()
                                    .query_async(&mut conn)
                                    .await;
                                if let Err(e) = acked {
                                    tracing::warn!(error = %e, "session cache: could not acknowledge");
                                }
                            });
                        }
                    }
                    (_, None) => return,
                    (None, Some(s)) => {
                        s.lost();
                        tracing::warn!("session cache: subscription lost; reading sessions from the database");
                        break;
                    }
                },
                // The engine may be gone although nobody publishes.
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                    if alive().is_none() {
                        return;
                    }
                }
            }
        }
    }
}

#[async_trait]
impl crate::cache::SessionCache for RedisSessionCache {
    fn stamp(&self) -> u64 {
        self.shared.stamp()
    }

    fn get(&self, session_id: &str) -> Option<crate::cache::LiveSession> {
        self.shared.get(session_id)
    }

    fn put(&self, session_id: &str, session: &crate::cache::LiveSession, stamp: u64) {
        self.shared.put(session_id, session, stamp);
    }

    fn serving(&self) -> bool {
        self.shared.live()
    }

    async fn invalidate(&self) {
        self.shared.invalidate();
        let mut conn = self.publisher.clone();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(&id)
            .query_async(&mut conn)
            .await;
        let receivers = match sent {
            Ok(n) => n,
            Err(e) => {
                // Instances that cannot hear it have lost their subscription too, unless only
                // this one is cut off: `session.cache_max_age` bounds that case.
                tracing::error!(error = %e, "session cache: could not publish an invalidation");
                return;
            }
        };
        // Every instance that received it (this one included) drops its entries, then
        // acknowledges: answer only after all of them.
        let key = format!("{ACKS}{id}");
        let deadline = std::time::Instant::now() + ACK_WAIT;
        loop {
            let acked: redis::RedisResult<i64> =
                redis::cmd("LLEN").arg(&key).query_async(&mut conn).await;
            match acked {
                Ok(n) if n >= receivers => break,
                Ok(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_micros(200)).await;
                }
                Ok(n) => {
                    tracing::warn!(
                        acknowledged = n,
                        receivers,
                        "session cache: not every instance acknowledged an invalidation in time"
                    );
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "session cache: could not read acknowledgements");
                    break;
                }
            }
        }
    }
}
