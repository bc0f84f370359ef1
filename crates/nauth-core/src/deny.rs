//! The deny set: users whose access tokens must stop at once, even under
//! `session.validation = "token"` where no request reads the database (a deleted account).
//! An entry lives for one access-token lifetime, in the kv store (`deny:{sub}`, seen by every
//! instance) and in process memory (what the hot path reads, without I/O). A background task
//! copies the kv entries into memory every second, so other instances follow within ~1 s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{RwLock, Weak};
use std::time::Duration;

use crate::Inner;
use crate::flows::budget::KvKey;
use crate::kv::Entry;
use crate::tokens::LEEWAY_SECS;

/// The kv key prefix of deny entries.
const PREFIX: &str = KvKey::DENY_PREFIX;

/// How often the in-process set is refreshed from the kv store.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// When a subject was denied (Unix seconds) and until when the entry lives (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Denial {
    at_s: i64,
    until_ms: i64,
}

/// The in-process copy. `len` mirrors the map's size so that the common case, nobody denied,
/// costs the hot path one atomic load and no lock.
#[derive(Debug, Default)]
pub(crate) struct DenySet {
    len: AtomicUsize,
    map: RwLock<HashMap<String, Denial>>,
}

impl DenySet {
    /// Whether a token of `sub` issued at `iat` (Unix seconds) is refused. Tokens issued after
    /// the denial (plus the clock leeway) pass, so a denial never outlives its reason.
    pub(crate) fn is_denied(&self, sub: &str, iat: i64, now_ms: i64) -> bool {
        if self.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(sub)
            .is_some_and(|d| d.until_ms > now_ms && iat <= d.at_s + LEEWAY_SECS)
    }

    /// Adds or extends entries, and drops the ones that have expired.
    fn merge(&self, entries: impl IntoIterator<Item = (String, Denial)>, now_ms: i64) {
        let entries: Vec<(String, Denial)> = entries.into_iter().collect();
        {
            // Nothing new and nothing expired (the usual refresh): readers are not disturbed.
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            let known = entries.iter().all(|(sub, d)| {
                map.get(sub)
                    .is_some_and(|m| m.at_s >= d.at_s && m.until_ms >= d.until_ms)
            });
            if known && map.values().all(|d| d.until_ms > now_ms) {
                return;
            }
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        for (sub, d) in entries {
            let e = map.entry(sub).or_insert(d);
            e.at_s = e.at_s.max(d.at_s);
            e.until_ms = e.until_ms.max(d.until_ms);
        }
        // Only expiry removes an entry: a refresh that read the kv store just before a local
        // denial was written must not undo it.
        map.retain(|_, d| d.until_ms > now_ms);
        self.len.store(map.len(), Ordering::Release);
    }
}

/// Refuses every access token of `sub` issued until now, on every instance, for one access
/// token lifetime (deleted accounts). Takes effect at once on this instance and within
/// about a second on the others. Never fails: a kv error is logged, the local entry holds.
pub(crate) async fn deny_subject(inner: &Inner, sub: &str) {
    let now = inner.clock.now_ms();
    let denial = Denial {
        at_s: now.div_euclid(1000),
        until_ms: now
            .saturating_add(crate::clock::ms(inner.cfg.jwt.access_ttl))
            .saturating_add(LEEWAY_SECS * 1000),
    };
    inner.deny.merge([(sub.to_string(), denial)], now);
    if let Err(e) = inner
        .kv
        .set(&KvKey::Deny(sub).to_string(), denial.at_s, denial.until_ms)
        .await
    {
        tracing::warn!(error = %e, "could not share a deny entry with other instances");
    }
}

/// One refresh: reads every live `deny:` entry of the kv store into the in-process set.
pub(crate) async fn refresh(inner: &Inner) -> crate::AuthResult<()> {
    let now = inner.clock.now_ms();
    let entries = inner.kv.live_entries(PREFIX, now).await?;
    inner.deny.merge(
        entries
            .into_iter()
            .filter_map(|(key, Entry { value, expires_at })| {
                let sub = key.strip_prefix(PREFIX)?.to_string();
                Some((
                    sub,
                    Denial {
                        at_s: value,
                        until_ms: expires_at,
                    },
                ))
            }),
        now,
    );
    Ok(())
}

/// Refreshes the set every second until the engine is dropped. Needed only when other
/// instances may share the kv store and requests do not read the database
/// (`session.validation = "token"` with the `database` kv back end).
pub(crate) fn spawn_refresh(inner: Weak<Inner>) {
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::time::sleep(REFRESH_EVERY).await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            match refresh(&inner).await {
                Ok(()) => failing = false,
                // Once per outage, not once a second.
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "could not refresh the deny set");
                }
                Err(_) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(at_s: i64, until_ms: i64) -> Denial {
        Denial { at_s, until_ms }
    }

    #[test]
    fn empty_set_denies_nothing_and_entries_expire() {
        let set = DenySet::default();
        assert!(!set.is_denied("u1", 100, 100_000));
        set.merge([("u1".to_string(), d(100, 200_000))], 100_000);
        assert!(set.is_denied("u1", 100, 100_000));
        assert!(set.is_denied("u1", 90, 199_999));
        assert!(!set.is_denied("u2", 100, 100_000));
        // A token issued after the denial (beyond the leeway) passes.
        assert!(set.is_denied("u1", 100 + LEEWAY_SECS, 100_000));
        assert!(!set.is_denied("u1", 101 + LEEWAY_SECS, 100_000));
        assert!(!set.is_denied("u1", 100, 200_000), "expired");
        // Only expiry removes entries; a stale refresh does not.
        set.merge([], 150_000);
        assert!(set.is_denied("u1", 100, 150_000));
        set.merge([("u1".to_string(), d(50, 120_000))], 150_000);
        assert!(set.is_denied("u1", 100, 150_000), "kept the later denial");
        set.merge([], 200_000);
        assert_eq!(set.len.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_instances_learn_from_the_kv_store() {
        let mut urls = vec![crate::store::tests::sqlite_url()];
        urls.extend(std::env::var("NAUTH_TEST_POSTGRES_URL").ok());
        urls.extend(std::env::var("NAUTH_TEST_MYSQL_URL").ok());
        for url in urls {
            let mut cfg = crate::store::purge::tests::config(&url);
            cfg.session.validation = crate::config::SessionValidation::Token;
            let a = crate::NAuth::new(cfg.clone()).await.expect("engine a");
            let b = crate::NAuth::new(cfg).await.expect("engine b");
            let sub = uuid::Uuid::new_v4().to_string();
            let now = a.inner.clock.now_ms();
            deny_subject(&a.inner, &sub).await;
            assert!(a.inner.deny.is_denied(&sub, now / 1000, now), "{url}");
            assert!(!b.inner.deny.is_denied(&sub, now / 1000, now), "{url}");
            refresh(&b.inner).await.expect("refresh");
            assert!(b.inner.deny.is_denied(&sub, now / 1000, now), "{url}");
            // And the background task does it by itself within about a second.
            let c = crate::NAuth::new(a.config().clone())
                .await
                .expect("engine c");
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !c.inner.deny.is_denied(&sub, now / 1000, now) {
                assert!(std::time::Instant::now() < deadline, "refreshed on {url}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
