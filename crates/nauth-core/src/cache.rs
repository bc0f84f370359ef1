//! The session-liveness cache of `session.validation = "database"`: which sessions were seen
//! live recently, so the protected route need not read the database on every request. A
//! second back end (several instances) plugs in its own through
//! [`NAuthBuilder::session_cache`](crate::NAuthBuilder::session_cache).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

/// What the per-request check needs of a live (not revoked) session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    /// The session's user.
    pub user_id: String,
    /// The `jti` of the only access token the session accepts.
    pub access_jti: String,
    /// How the session was authenticated.
    pub auth_method: String,
    /// Sliding expiry, Unix milliseconds.
    pub expires_at: i64,
    /// Absolute expiry, Unix milliseconds.
    pub absolute_expires_at: i64,
    /// The user's roles as the database holds them (what `RequireRole` checks under
    /// `database` validation).
    pub roles: Vec<String>,
    /// `None` for a session. The same cache also keeps the API keys seen recently, under
    /// `key:<id>`: then the key's scopes, with `access_jti` holding the SHA-256 of its
    /// secret, `expires_at` its expiry (`i64::MAX` for none) and `absolute_expires_at` the
    /// time its `lastUsedAt` is next written.
    pub scopes: Option<Vec<String>>,
}

/// A cache of live sessions. The engine calls [`SessionCache::invalidate`] after every
/// committed change to sessions (rotation, revocation, logout, password change, deletion) and
/// before the request that made it answers, so an implementation must never answer with a row
/// read before the latest invalidation (of any instance that shares the database).
#[async_trait]
pub trait SessionCache: Send + Sync + 'static {
    /// A stamp taken before a session row is read from the database.
    fn stamp(&self) -> u64;
    /// A live session seen since the latest invalidation.
    fn get(&self, session_id: &str) -> Option<LiveSession>;
    /// Keeps a row read after `stamp` was taken, unless an invalidation came in between.
    fn put(&self, session_id: &str, session: &LiveSession, stamp: u64);
    /// Every cached session is stale from now on, on every instance that shares the database.
    async fn invalidate(&self);
    /// Whether the cache answers now: `false` when it never does ([`NoSessionCache`]) and
    /// while a shared cache has lost its subscription to the other instances' invalidations
    /// (every request then reads the database). For health checks and metrics.
    fn serving(&self) -> bool {
        true
    }
}

/// No cache: every request under `database` validation reads the session row. The default
/// with PostgreSQL and MySQL, whose rows other instances may change.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSessionCache;

#[async_trait]
impl SessionCache for NoSessionCache {
    fn stamp(&self) -> u64 {
        0
    }
    fn get(&self, _: &str) -> Option<LiveSession> {
        None
    }
    fn put(&self, _: &str, _: &LiveSession, _: u64) {}
    async fn invalidate(&self) {}
    fn serving(&self) -> bool {
        false
    }
}

/// Entries per thread.
const LOCAL_CACHE_MAX: usize = 4096;

static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

/// A cached row: the generation it was read under, when, and the row.
type Cached = (u64, Instant, LiveSession);

thread_local! {
    /// Live sessions, per worker thread, stamped with their cache's generation: a lookup
    /// takes no lock and touches no shared counter but one atomic load.
    static SESSIONS: RefCell<HashMap<(u64, String), Cached>> =
        RefCell::new(HashMap::new());
}

/// Per-thread maps of live sessions behind one generation counter: an invalidation makes
/// every entry of every thread stale at once. Safe alone when this process is the only writer
/// of the sessions (the default with SQLite, whose file one process owns); several instances
/// bump each other's generation through Redis (`RedisSessionCache`).
#[derive(Debug)]
pub struct ThreadLocalSessionCache {
    instance: u64,
    generation: AtomicU64,
    /// Entries older than this are read again (`None`: no limit).
    max_age: Option<Duration>,
}

impl Default for ThreadLocalSessionCache {
    fn default() -> Self {
        ThreadLocalSessionCache {
            instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            max_age: None,
        }
    }
}

impl ThreadLocalSessionCache {
    /// A cache whose entries are read again after `max_age`.
    pub fn with_max_age(max_age: Duration) -> Self {
        ThreadLocalSessionCache {
            max_age: Some(max_age),
            ..Self::default()
        }
    }

    /// Makes every entry stale (what [`SessionCache::invalidate`] does locally).
    pub fn invalidate_local(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl SessionCache for ThreadLocalSessionCache {
    fn stamp(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn get(&self, session_id: &str) -> Option<LiveSession> {
        let generation = self.stamp();
        SESSIONS.with_borrow(|m| {
            m.get(&(self.instance, session_id.to_string()))
                .filter(|(g, at, _)| {
                    *g == generation && self.max_age.is_none_or(|max| at.elapsed() < max)
                })
                .map(|(_, _, r)| r.clone())
        })
    }

    fn put(&self, session_id: &str, session: &LiveSession, stamp: u64) {
        // A reader that read the old row before a commit cannot store it afterwards.
        if self.stamp() != stamp {
            return;
        }
        SESSIONS.with_borrow_mut(|m| {
            if m.len() >= LOCAL_CACHE_MAX {
                m.clear();
            }
            m.insert(
                (self.instance, session_id.to_string()),
                (stamp, Instant::now(), session.clone()),
            );
        });
    }

    async fn invalidate(&self) {
        self.invalidate_local();
    }
}

/// The local half of a cache shared by several instances: a per-thread cache that answers
/// only while its instance is subscribed to the others' invalidations (Redis pub/sub or
/// PostgreSQL `LISTEN`), with entries bounded by a maximum age.
#[derive(Debug)]
pub(crate) struct Subscribed {
    local: ThreadLocalSessionCache,
    live: std::sync::atomic::AtomicBool,
}

impl Subscribed {
    /// A cache that answers once [`Subscribed::subscribed`] is called.
    pub(crate) fn new(max_age: Duration) -> Self {
        Subscribed {
            local: ThreadLocalSessionCache::with_max_age(max_age),
            live: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Subscribed (again): whatever was cached before may be stale; answer from now on.
    pub(crate) fn subscribed(&self) {
        self.local.invalidate_local();
        self.live.store(true, Ordering::SeqCst);
    }

    /// The subscription is lost: answer nothing until it is back.
    pub(crate) fn lost(&self) {
        self.live.store(false, Ordering::SeqCst);
        self.local.invalidate_local();
    }

    /// An invalidation (another instance's, or this one's).
    pub(crate) fn invalidate(&self) {
        self.local.invalidate_local();
    }

    /// Whether it answers (subscribed).
    pub(crate) fn live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    /// See [`SessionCache::stamp`].
    pub(crate) fn stamp(&self) -> u64 {
        self.local.stamp()
    }

    /// See [`SessionCache::get`]: nothing while unsubscribed.
    pub(crate) fn get(&self, session_id: &str) -> Option<LiveSession> {
        self.live().then(|| self.local.get(session_id)).flatten()
    }

    /// See [`SessionCache::put`]: nothing kept while unsubscribed.
    pub(crate) fn put(&self, session_id: &str, session: &LiveSession, stamp: u64) {
        if self.live() {
            self.local.put(session_id, session, stamp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> LiveSession {
        LiveSession {
            user_id: "u".into(),
            access_jti: "j".into(),
            auth_method: "password".into(),
            expires_at: 10,
            absolute_expires_at: 20,
            roles: vec!["user".into()],
            scopes: None,
        }
    }

    #[test]
    fn an_invalidation_between_read_and_put_keeps_the_row_out() {
        let c = ThreadLocalSessionCache::default();
        let stamp = c.stamp();
        c.invalidate_local();
        c.put("s", &row(), stamp);
        assert_eq!(c.get("s"), None);
        let stamp = c.stamp();
        c.put("s", &row(), stamp);
        assert_eq!(c.get("s"), Some(row()));
        c.invalidate_local();
        assert_eq!(c.get("s"), None, "stale after invalidation");
    }

    #[test]
    fn entries_older_than_the_max_age_are_read_again() {
        let c = ThreadLocalSessionCache::with_max_age(Duration::from_millis(20));
        c.put("s", &row(), c.stamp());
        assert_eq!(c.get("s"), Some(row()));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(c.get("s"), None);
    }

    #[test]
    fn two_caches_do_not_share_entries() {
        let (a, b) = (
            ThreadLocalSessionCache::default(),
            ThreadLocalSessionCache::default(),
        );
        a.put("s", &row(), a.stamp());
        assert_eq!(b.get("s"), None);
    }
}
