//! The session-liveness cache of several instances on PostgreSQL without Redis
//! (`session.cache_max_age` > 0).
//!
//! Every commit that changes sessions sends `pg_notify('nauth_sessions', '<instance>:<id>')`
//! in its own transaction, so it is delivered when (and only if) the transaction commits. Each
//! instance `LISTEN`s on a connection of its own; on a notification it drops its cached
//! entries, then acknowledges on the publisher's channel `nauth_ack_<instance>`. The same
//! transaction counts the listening instances (their connections name themselves
//! `nauth-sessions` once they listen), and the revoking request answers only when that many
//! acknowledgements have come back, or after [`ACK_WAIT`]: no instance serves a revoked session
//! once the revoking request has answered. While an instance's own LISTEN connection is down
//! its cache answers nothing, and once it listens again everything cached before is stale.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sea_orm::{ConnectionTrait, Statement};
use tokio::sync::watch;

use super::{OrStore, R};
use crate::cache::{LiveSession, SessionCache, Subscribed};

/// How often a quiet LISTEN connection is checked, and how long the check may take: a
/// connection that dies without a word (a network partition) turns the cache off within
/// twice this.
const PING_EVERY: Duration = Duration::from_secs(1);

/// How long a revoking request waits for the acknowledgements. An instance that does not
/// answer in time is cut off or gone: its entries die with `session.cache_max_age`.
const ACK_WAIT: Duration = Duration::from_secs(1);

/// The channel of session invalidations.
const CHANNEL: &str = "nauth_sessions";

/// The `application_name` of a connection that listens (set once it does).
const LISTENING: &str = "nauth-sessions";

/// Names a connection [`LISTENING`].
const NAME_LISTENING: &str = "SET application_name = 'nauth-sessions'";

/// The channel on which an instance hears the acknowledgements of its invalidations.
fn ack_channel(instance: &str) -> String {
    format!("nauth_ack_{instance}")
}

/// The publishing half: invalidations in flight, by id, with the acknowledgements so far.
#[derive(Debug)]
struct Pending {
    instance: String,
    waiting: Mutex<HashMap<String, watch::Sender<usize>>>,
}

impl Pending {
    fn acknowledged(&self, id: &str) {
        if let Ok(w) = self.waiting.lock()
            && let Some(tx) = w.get(id)
        {
            tx.send_modify(|n| *n += 1);
        }
    }
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct PgSessionCache {
    shared: Arc<Subscribed>,
    pending: Arc<Pending>,
}

/// An invalidation sent inside a transaction, to be awaited after its commit.
pub(crate) struct Sent {
    pending: Arc<Pending>,
    id: String,
    rx: watch::Receiver<usize>,
    listeners: usize,
}

impl Drop for Sent {
    fn drop(&mut self) {
        if let Ok(mut w) = self.pending.waiting.lock() {
            w.remove(&self.id);
        }
    }
}

impl PgSessionCache {
    /// Listens (the cache answers only once listening) on its own task until dropped.
    pub(crate) async fn connect(url: &str, max_age: Duration) -> R<PgSessionCache> {
        let pending = Arc::new(Pending {
            instance: uuid::Uuid::new_v4().simple().to_string(),
            waiting: Mutex::new(HashMap::new()),
        });
        let first = listen(url, &pending.instance).await.db()?;
        let shared = Arc::new(Subscribed::new(max_age));
        shared.subscribed();
        tokio::spawn(run(
            url.to_string(),
            Arc::downgrade(&shared),
            Arc::downgrade(&pending),
            Some(first),
        ));
        Ok(PgSessionCache { shared, pending })
    }

    /// Sends an invalidation inside `tx` (delivered if it commits) and counts the instances
    /// that will hear it.
    pub(crate) async fn send(&self, db: &impl ConnectionTrait) -> R<Sent> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (sender, rx) = watch::channel(0);
        if let Ok(mut w) = self.pending.waiting.lock() {
            w.insert(id.clone(), sender);
        }
        let mut sent = Sent {
            pending: self.pending.clone(),
            id,
            rx,
            listeners: 0,
        };
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT pg_notify($1, $2), (SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = $3) AS n",
                [
                    CHANNEL.into(),
                    format!("{}:{}", self.pending.instance, sent.id).into(),
                    LISTENING.into(),
                ],
            ))
            .await
            .db()?;
        let n: i64 = row
            .map(|r| r.try_get("", "n"))
            .transpose()
            .db()?
            .unwrap_or(0);
        sent.listeners = usize::try_from(n).unwrap_or(0);
        Ok(sent)
    }

    /// After the commit: waits until every listening instance has dropped its entries (at
    /// most [`ACK_WAIT`]). Without a LISTEN connection of its own this instance cannot hear
    /// them, and does not wait.
    pub(crate) async fn delivered(&self, mut sent: Sent) {
        if !self.shared.live() {
            return;
        }
        let want = sent.listeners;
        let heard = tokio::time::timeout(ACK_WAIT, sent.rx.wait_for(|n| *n >= want))
            .await
            .is_ok_and(|r| r.is_ok());
        if !heard {
            tracing::warn!(
                listeners = want,
                acknowledged = *sent.rx.borrow(),
                "session cache: not every instance acknowledged an invalidation in time"
            );
        }
    }
}

/// A connection that listens to the invalidations and to this instance's acknowledgements,
/// then names itself so that publishers count it.
async fn listen(url: &str, instance: &str) -> Result<PgListener, sea_orm::DbErr> {
    let conn =
        |e: sea_orm::sqlx::Error| sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into()));
    let opts: PgConnectOptions = url.parse().map_err(conn)?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(opts);
    let mut l = PgListener::connect_with(&pool).await.map_err(conn)?;
    // A lost connection must end `try_recv` at once (then the cache turns off), not after a
    // reconnection attempt that waits out the pool's timeout while the cache still answers.
    l.eager_reconnect(false);
    l.listen_all([CHANNEL, ack_channel(instance).as_str()])
        .await
        .map_err(conn)?;
    sea_orm::sqlx::query(NAME_LISTENING)
        .execute(&mut l)
        .await
        .map_err(conn)?;
    Ok(l)
}

/// Every notification makes the local entries stale and is acknowledged; a lost connection
/// turns the cache off until a new one listens (then everything cached before is stale too).
async fn run(
    url: String,
    shared: Weak<Subscribed>,
    pending: Weak<Pending>,
    mut first: Option<PgListener>,
) {
    let alive = || shared.upgrade().zip(pending.upgrade());
    loop {
        let Some((_, p)) = alive() else { return };
        let instance = p.instance.clone();
        drop(p);
        let mut listener = match first.take() {
            Some(l) => l,
            None => match listen(&url, &instance).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "session cache: cannot LISTEN; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            },
        };
        match alive() {
            Some((s, _)) => s.subscribed(),
            None => return,
        }
        let mine = ack_channel(&instance);
        loop {
            let heard = tokio::select! {
                n = listener.try_recv() => n,
                () = tokio::time::sleep(PING_EVERY) => {
                    if alive().is_none() {
                        return;
                    }
                    // A quiet connection may be half-open (a partition sends no FIN): ask.
                    let ping = sea_orm::sqlx::query("SELECT 1").execute(&mut listener);
                    if matches!(tokio::time::timeout(PING_EVERY, ping).await, Ok(Ok(_))) {
                        continue;
                    }
                    Ok(None)
                }
            };
            let Ok(Some(n)) = heard else {
                let Some((s, _)) = alive() else { return };
                s.lost();
                tracing::warn!(
                    "session cache: LISTEN connection lost; reading sessions from the database"
                );
                break;
            };
            if n.channel() == mine {
                match alive() {
                    Some((_, p)) => p.acknowledged(n.payload()),
                    None => return,
                }
                continue;
            }
            let cache = alive();
            if let Some((s, _)) = &cache {
                s.invalidate();
            }
            // `<publisher>:<id>`: the publisher waits for this (also when this cache has just
            // been dropped: it holds nothing).
            if let Some((publisher, id)) = n.payload().split_once(':') {
                let ack = sea_orm::sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(ack_channel(publisher))
                    .bind(id)
                    .execute(&mut listener);
                if let Err(e) = ack.await {
                    let Some((s, _)) = cache else { return };
                    s.lost();
                    tracing::warn!(error = %e, "session cache: cannot acknowledge; reading sessions from the database");
                    break;
                }
            }
            if cache.is_none() {
                return;
            }
        }
    }
}

#[async_trait]
impl SessionCache for PgSessionCache {
    fn stamp(&self) -> u64 {
        self.shared.stamp()
    }

    fn get(&self, session_id: &str) -> Option<LiveSession> {
        self.shared.get(session_id)
    }

    fn put(&self, session_id: &str, session: &LiveSession, stamp: u64) {
        self.shared.put(session_id, session, stamp);
    }

    /// Local only: the other instances hear the notification the store sent with the
    /// commit, and the store waits for them ([`PgSessionCache::delivered`]).
    async fn invalidate(&self) {
        self.shared.invalidate();
    }

    fn serving(&self) -> bool {
        self.shared.live()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_connection_names_itself_as_publishers_count_it() {
        assert_eq!(
            NAME_LISTENING,
            format!("SET application_name = '{LISTENING}'")
        );
        assert_eq!(ack_channel("ab12").len(), 14);
        // A channel is an identifier: at most 63 bytes with a 32-digit instance id.
        assert!(ack_channel(&uuid::Uuid::new_v4().simple().to_string()).len() <= 63);
    }
}
