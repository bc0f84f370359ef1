//! The background purge: every `kv.purge_interval` it deletes rows that can no longer answer
//! anything (expired kv entries, challenges, verification tokens, sessions with their refresh
//! tokens, trusted devices, passkey ceremonies), in bounded batches, by the engine's clock. It never fails a
//! request and never stops the engine: errors are logged and the next pass tries again.

use std::sync::Weak;
use std::time::Duration;

use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect};

use super::OrStore;
use super::R as AuthResult;
use super::entities::{
    challenges, kv, passkey_ceremonies, refresh_tokens, sessions, trusted_devices,
    verification_tokens as vt,
};
use crate::Inner;
use crate::config::KvBackend;

/// Rows deleted per statement: short statements keep locks short.
const BATCH: u64 = 500;

/// Batches per table per pass; what is left waits for the next pass.
const MAX_BATCHES: u64 = 200;

/// How long a used or expired verification token is kept, so that a late answer still gets
/// "expired" or "already used" rather than "unknown".
const TOKEN_GRACE_MS: i64 = 3_600_000;

/// How long a revoked or expired session (and its refresh tokens) is kept, so that a late
/// refresh is still recognised (reuse detection, `AUTH_SESSION_EXPIRED`) rather than unknown.
const SESSION_GRACE_MS: i64 = 86_400_000;

/// Rows one purge pass deleted, per table ([`crate::NAuth::purge`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Purged {
    /// Expired counters and locks (database kv back end only).
    pub kv: u64,
    /// Expired or finished challenge sessions.
    pub challenges: u64,
    /// Expired or used codes and links.
    pub verification_tokens: u64,
    /// Sessions revoked or expired for more than a day.
    pub sessions: u64,
    /// The refresh tokens of those sessions.
    pub refresh_tokens: u64,
    /// Expired trusted devices.
    pub trusted_devices: u64,
    /// Passkey ceremonies never answered before they expired.
    pub passkey_ceremonies: u64,
    /// Signing keys whose verification window ended more than a day ago.
    pub signing_keys: u64,
}

/// Deletes, batch by batch, the rows whose keys `select` returns.
async fn in_batches<F, Fut, D, DFut>(what: &str, mut select: F, mut delete: D) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = AuthResult<Vec<String>>>,
    D: FnMut(Vec<String>) -> DFut,
    DFut: std::future::Future<Output = AuthResult<u64>>,
{
    let mut total = 0;
    for _ in 0..MAX_BATCHES {
        let ids = match select().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, table = what, "purge: could not select expired rows");
                break;
            }
        };
        let full = ids.len() as u64 >= BATCH;
        if ids.is_empty() {
            break;
        }
        match delete(ids).await {
            Ok(n) => total += n,
            Err(e) => {
                tracing::warn!(error = %e, table = what, "purge: could not delete expired rows");
                break;
            }
        }
        if !full {
            break;
        }
    }
    total
}

/// One pass over every table, at the engine's `now`.
pub(crate) async fn run_once(inner: &Inner) -> Purged {
    let now = inner.clock.now_ms();
    let db = &inner.store.db;
    let mut out = Purged::default();

    // The memory back end prunes itself; only the database one keeps dead rows.
    if inner.cfg.kv.backend == KvBackend::Database {
        out.kv = in_batches(
            "nauth_kv",
            || async move {
                kv::Entity::find()
                    .select_only()
                    .column(kv::Column::Key)
                    .filter(kv::Column::ExpiresAt.lte(now))
                    .limit(BATCH)
                    .into_tuple::<String>()
                    .all(db)
                    .await
                    .db()
            },
            |keys| async move {
                // Re-checked: an entry renewed since the select stays.
                Ok(kv::Entity::delete_many()
                    .filter(kv::Column::Key.is_in(keys))
                    .filter(kv::Column::ExpiresAt.lte(now))
                    .exec(db)
                    .await
                    .db()?
                    .rows_affected)
            },
        )
        .await;
    }

    out.challenges = in_batches(
        "nauth_challenges",
        || async move {
            challenges::Entity::find()
                .select_only()
                .column(challenges::Column::IdHash)
                .filter(challenges::Column::ExpiresAt.lte(now))
                .limit(BATCH)
                .into_tuple::<String>()
                .all(db)
                .await
                .db()
        },
        |ids| async move {
            Ok(challenges::Entity::delete_many()
                .filter(challenges::Column::IdHash.is_in(ids))
                .exec(db)
                .await
                .db()?
                .rows_affected)
        },
    )
    .await;

    let token_cutoff = now - TOKEN_GRACE_MS;
    out.verification_tokens = in_batches(
        "nauth_verification_tokens",
        || async move {
            vt::Entity::find()
                .select_only()
                .column(vt::Column::Id)
                .filter(
                    Condition::any()
                        .add(vt::Column::UsedAt.lte(token_cutoff))
                        .add(vt::Column::ExpiresAt.lte(token_cutoff)),
                )
                .limit(BATCH)
                .into_tuple::<String>()
                .all(db)
                .await
                .db()
        },
        |ids| async move {
            Ok(vt::Entity::delete_many()
                .filter(vt::Column::Id.is_in(ids))
                .exec(db)
                .await
                .db()?
                .rows_affected)
        },
    )
    .await;

    let session_cutoff = now - SESSION_GRACE_MS;
    let refresh_deleted = std::sync::atomic::AtomicU64::new(0);
    let refresh_deleted = &refresh_deleted;
    out.sessions = in_batches(
        "nauth_sessions",
        || async move {
            sessions::Entity::find()
                .select_only()
                .column(sessions::Column::Id)
                // Both columns are indexed, so no pass reads the whole table. `expires_at`
                // never exceeds `absolute_expires_at` (every write caps it), so it covers the
                // absolute lifetime too.
                .filter(
                    Condition::any()
                        .add(sessions::Column::RevokedAt.lte(session_cutoff))
                        .add(sessions::Column::ExpiresAt.lte(session_cutoff)),
                )
                .limit(BATCH)
                .into_tuple::<String>()
                .all(db)
                .await
                .db()
        },
        |ids| async move {
            // Tokens first: a failure in between leaves a session without tokens, never
            // tokens without a session.
            let n = refresh_tokens::Entity::delete_many()
                .filter(refresh_tokens::Column::SessionId.is_in(ids.iter().cloned()))
                .exec(db)
                .await
                .db()?
                .rows_affected;
            refresh_deleted.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            Ok(sessions::Entity::delete_many()
                .filter(sessions::Column::Id.is_in(ids))
                .exec(db)
                .await
                .db()?
                .rows_affected)
        },
    )
    .await;
    out.refresh_tokens = refresh_deleted.load(std::sync::atomic::Ordering::Relaxed);

    out.trusted_devices = in_batches(
        "nauth_trusted_devices",
        || async move {
            trusted_devices::Entity::find()
                .select_only()
                .column(trusted_devices::Column::Id)
                .filter(trusted_devices::Column::ExpiresAt.lte(now))
                .limit(BATCH)
                .into_tuple::<String>()
                .all(db)
                .await
                .db()
        },
        |ids| async move {
            Ok(trusted_devices::Entity::delete_many()
                .filter(trusted_devices::Column::Id.is_in(ids))
                .exec(db)
                .await
                .db()?
                .rows_affected)
        },
    )
    .await;

    out.passkey_ceremonies = in_batches(
        "nauth_passkey_ceremonies",
        || async move {
            passkey_ceremonies::Entity::find()
                .select_only()
                .column(passkey_ceremonies::Column::IdHash)
                .filter(passkey_ceremonies::Column::ExpiresAt.lte(now))
                .limit(BATCH)
                .into_tuple::<String>()
                .all(db)
                .await
                .db()
        },
        |ids| async move {
            Ok(passkey_ceremonies::Entity::delete_many()
                .filter(passkey_ceremonies::Column::IdHash.is_in(ids))
                .exec(db)
                .await
                .db()?
                .rows_affected)
        },
    )
    .await;

    out.signing_keys = inner.keyring.purge(&inner.store, now).await;

    if out != Purged::default() {
        tracing::debug!(?out, "purged expired rows");
    }
    out
}

/// Runs [`run_once`] every `every` until the engine is dropped (zero: never).
pub(crate) fn spawn(inner: Weak<Inner>, every: Duration) {
    if every.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Held only for the pass, so dropping the engine ends the task at the next tick.
            let Some(inner) = inner.upgrade() else {
                return;
            };
            run_once(&inner).await;
        }
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use sea_orm::{PaginatorTrait, Set};

    use super::*;
    use crate::NAuth;
    use crate::config::NAuthConfig;
    use crate::store::entities::users;

    /// An engine configuration for unit tests: cheap Argon2, mail and SMS kept in memory.
    pub(crate) fn config(url: &str) -> NAuthConfig {
        let mut cfg = NAuthConfig {
            database_url: url.to_string(),
            secret: "unit-test-secret-0123456789abcdef-xyz".into(),
            ..NAuthConfig::default()
        };
        cfg.password.argon2_memory_kib = 64;
        cfg.password.argon2_iterations = 1;
        cfg.email.provider = crate::config::EmailProvider::Memory;
        cfg.sms.provider = crate::config::SmsProvider::Memory;
        cfg
    }

    fn urls() -> Vec<String> {
        let mut urls = vec![crate::store::tests::sqlite_url()];
        urls.extend(std::env::var("NAUTH_TEST_POSTGRES_URL").ok());
        urls.extend(std::env::var("NAUTH_TEST_MYSQL_URL").ok());
        urls
    }

    fn session(id: &str, user: &str, expires: i64, revoked: Option<i64>) -> sessions::ActiveModel {
        sessions::ActiveModel {
            id: Set(id.into()),
            user_id: Set(user.into()),
            auth_method: Set("password".into()),
            device_name: Set(None),
            device_type: Set(None),
            ip_address: Set(None),
            user_agent: Set(None),
            access_jti: Set(uuid::Uuid::new_v4().to_string()),
            created_at: Set(0),
            last_activity_at: Set(0),
            expires_at: Set(expires),
            absolute_expires_at: Set(expires),
            revoked_at: Set(revoked),
        }
    }

    fn refresh(session: &str) -> refresh_tokens::ActiveModel {
        refresh_tokens::ActiveModel {
            token_hash: Set(uuid::Uuid::new_v4().to_string()),
            session_id: Set(session.into()),
            state: Set(refresh_tokens::CURRENT),
            created_at: Set(0),
            rotated_at: Set(None),
        }
    }

    fn challenge(id: &str, user: &str, expires: i64) -> challenges::ActiveModel {
        challenges::ActiveModel {
            id_hash: Set(id.into()),
            user_id: Set(Some(user.into())),
            name: Set("VERIFY_EMAIL".into()),
            code_hash: Set(None),
            destination: Set(None),
            method: Set(None),
            attempts: Set(0),
            completed: Set(false),
            mfa_proven: Set(false),
            auth_method: Set("password".into()),
            device_name: Set(None),
            device_type: Set(None),
            ip_address: Set(None),
            user_agent: Set(None),
            last_sent_at: Set(None),
            sends_in_window: Set(0),
            send_window_start: Set(0),
            created_at: Set(0),
            expires_at: Set(expires),
        }
    }

    fn token(id: &str, user: &str, expires: i64, used: Option<i64>) -> vt::ActiveModel {
        vt::ActiveModel {
            id: Set(id.into()),
            user_id: Set(user.into()),
            purpose: Set("reset_code".into()),
            token_hash: Set(uuid::Uuid::new_v4().to_string()),
            data: Set(None),
            attempts: Set(0),
            created_at: Set(0),
            expires_at: Set(expires),
            used_at: Set(used),
        }
    }

    fn device(id: &str, user: &str, expires: i64) -> trusted_devices::ActiveModel {
        trusted_devices::ActiveModel {
            id: Set(id.into()),
            user_id: Set(user.into()),
            token_hash: Set(uuid::Uuid::new_v4().to_string()),
            device_name: Set(None),
            device_type: Set(None),
            ip_address: Set(None),
            created_at: Set(0),
            last_used_at: Set(None),
            expires_at: Set(expires),
        }
    }

    /// Inserts expired and live rows of one fresh user, runs one pass, and checks that exactly
    /// the dead ones are gone (other tests' rows on a shared server are not counted).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_pass_deletes_dead_rows_and_keeps_live_ones() {
        for url in urls() {
            let nauth = NAuth::new(config(&url)).await.expect("engine");
            let inner = &nauth.inner;
            let db = &inner.store.db;
            let now = inner.clock.now_ms();
            let (hour, day) = (3_600_000, 86_400_000);
            let u = uuid::Uuid::new_v4().to_string();
            let id = |s: &str| format!("{s}-{u}");
            // kv
            inner.kv.set(&id("kv:dead"), 1, now - 1).await.expect("kv");
            inner
                .kv
                .set(&id("kv:live"), 1, now + hour)
                .await
                .expect("kv");
            // sessions: revoked two days ago, expired two days ago, revoked just now, live.
            let sess = [
                (id("s-revoked-old"), now + day, Some(now - 2 * day), false),
                (id("s-expired-old"), now - 2 * day, None, false),
                (id("s-revoked-new"), now + day, Some(now - 1000), true),
                (id("s-live"), now + day, None, true),
            ];
            for (sid, exp, revoked, _) in &sess {
                sessions::Entity::insert(session(sid, &u, *exp, *revoked))
                    .exec(db)
                    .await
                    .expect("session");
                refresh_tokens::Entity::insert(refresh(sid))
                    .exec(db)
                    .await
                    .expect("refresh");
            }
            for (cid, exp) in [(id("c-dead"), now - 1), (id("c-live"), now + hour)] {
                challenges::Entity::insert(challenge(&cid, &u, exp))
                    .exec(db)
                    .await
                    .expect("challenge");
            }
            let tokens = [
                (id("t-used-old"), now + hour, Some(now - 2 * hour), false),
                (id("t-expired-old"), now - 2 * hour, None, false),
                (id("t-used-new"), now + hour, Some(now - 1000), true),
                (id("t-expired-new"), now - 1000, None, true),
                (id("t-live"), now + hour, None, true),
            ];
            for (tid, exp, used, _) in &tokens {
                vt::Entity::insert(token(tid, &u, *exp, *used))
                    .exec(db)
                    .await
                    .expect("token");
            }
            for (did, exp) in [(id("d-dead"), now - 1), (id("d-live"), now + day)] {
                trusted_devices::Entity::insert(device(&did, &u, exp))
                    .exec(db)
                    .await
                    .expect("device");
            }

            let purged = run_once(inner).await;
            assert!(purged.kv >= 1 && purged.sessions >= 2 && purged.refresh_tokens >= 2);
            assert!(purged.challenges >= 1 && purged.verification_tokens >= 2);
            assert!(purged.trusted_devices >= 1, "{purged:?} on {url}");

            assert!(
                inner
                    .kv
                    .get(&id("kv:live"), now)
                    .await
                    .expect("get")
                    .is_some()
            );
            if inner.cfg.kv.backend == KvBackend::Database {
                let left = kv::Entity::find()
                    .filter(kv::Column::Key.is_in([id("kv:dead"), id("kv:live")]))
                    .count(db)
                    .await
                    .expect("count");
                assert_eq!(left, 1, "the dead kv row is gone on {url}");
            }
            let mut live_sessions: Vec<String> = sessions::Entity::find()
                .filter(sessions::Column::UserId.eq(&u))
                .all(db)
                .await
                .expect("sessions")
                .into_iter()
                .map(|s| s.id)
                .collect();
            live_sessions.sort();
            let mut kept: Vec<String> = sess.iter().filter(|s| s.3).map(|s| s.0.clone()).collect();
            kept.sort();
            assert_eq!(live_sessions, kept, "{url}");
            for (sid, _, _, keep) in &sess {
                let n = refresh_tokens::Entity::find()
                    .filter(refresh_tokens::Column::SessionId.eq(sid))
                    .count(db)
                    .await
                    .expect("count");
                assert_eq!(n, u64::from(*keep), "refresh tokens of {sid} on {url}");
            }
            let left: Vec<String> = challenges::Entity::find()
                .filter(challenges::Column::UserId.eq(&u))
                .all(db)
                .await
                .expect("challenges")
                .into_iter()
                .map(|c| c.id_hash)
                .collect();
            assert_eq!(left, vec![id("c-live")], "{url}");
            let mut left: Vec<String> = vt::Entity::find()
                .filter(vt::Column::UserId.eq(&u))
                .all(db)
                .await
                .expect("tokens")
                .into_iter()
                .map(|t| t.id)
                .collect();
            left.sort();
            let mut kept: Vec<String> =
                tokens.iter().filter(|t| t.3).map(|t| t.0.clone()).collect();
            kept.sort();
            assert_eq!(left, kept, "{url}");
            let left: Vec<String> = trusted_devices::Entity::find()
                .filter(trusted_devices::Column::UserId.eq(&u))
                .all(db)
                .await
                .expect("devices")
                .into_iter()
                .map(|d| d.id)
                .collect();
            assert_eq!(left, vec![id("d-live")], "{url}");
            // A second pass finds nothing of this user's left to delete, and users are never
            // touched.
            let _ = run_once(inner).await;
            assert_eq!(
                sessions::Entity::find()
                    .filter(sessions::Column::UserId.eq(&u))
                    .count(db)
                    .await
                    .expect("count"),
                2
            );
            let _ = users::Entity::find().count(db).await.expect("users table");
        }
    }

    /// The task holds only a weak reference: dropping the engine ends it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_task_ends_with_the_engine() {
        let mut cfg = config(&crate::store::tests::sqlite_url());
        cfg.kv.purge_interval = Duration::from_millis(20);
        let nauth = NAuth::new(cfg).await.expect("engine");
        let weak = std::sync::Arc::downgrade(&nauth.inner);
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(nauth);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while weak.strong_count() > 0 {
            assert!(std::time::Instant::now() < deadline, "engine still held");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
