//! The session-liveness cache of several instances on PostgreSQL without Redis
//! (`session.cache_max_age` > 0): every commit that changes sessions sends
//! `NOTIFY nauth_sessions` in its own transaction (delivered when it commits, before the
//! request answers), and each instance `LISTEN`s on its own connection and drops its cache when
//! a notification arrives. While that connection is down the cache answers nothing.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sqlx::postgres::PgListener;

use super::{OrStore, R};
use crate::cache::{LiveSession, SessionCache, Subscribed};

/// How often a quiet LISTEN connection is checked, and how long the check may take: a
/// connection that dies without a word (a network partition) turns the cache off within
/// twice this.
const PING_EVERY: Duration = Duration::from_secs(1);

/// The channel of session invalidations.
pub(crate) const CHANNEL: &str = "nauth_sessions";

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct PgSessionCache {
    shared: Arc<Subscribed>,
}

impl PgSessionCache {
    /// Listens (the cache answers only once listening) on its own task until dropped.
    pub(crate) async fn connect(url: &str, max_age: Duration) -> R<PgSessionCache> {
        let first = listen(url).await.db()?;
        let shared = Arc::new(Subscribed::new(max_age));
        shared.subscribed();
        tokio::spawn(run(url.to_string(), Arc::downgrade(&shared), Some(first)));
        Ok(PgSessionCache { shared })
    }
}

async fn listen(url: &str) -> Result<PgListener, sea_orm::DbErr> {
    let mut l = PgListener::connect(url)
        .await
        .map_err(|e| sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?;
    // A lost connection must end `try_recv` at once (then the cache turns off), not after a
    // reconnection attempt that waits out the pool's timeout while the cache still answers.
    l.eager_reconnect(false);
    l.listen(CHANNEL)
        .await
        .map_err(|e| sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?;
    Ok(l)
}

/// Every notification makes the local entries stale; a lost connection turns the cache off
/// until a new one listens (then everything cached before is stale too).
async fn run(url: String, shared: Weak<Subscribed>, mut first: Option<PgListener>) {
    let alive = || shared.upgrade();
    loop {
        let mut listener = match first.take() {
            Some(l) => l,
            None => match listen(&url).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "session cache: cannot LISTEN; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
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
        loop {
            tokio::select! {
                n = listener.try_recv() => match (n, alive()) {
                    (_, None) => return,
                    (Ok(Some(_)), Some(s)) => s.invalidate(),
                    (Ok(None) | Err(_), Some(s)) => {
                        s.lost();
                        tracing::warn!("session cache: LISTEN connection lost; reading sessions from the database");
                        break;
                    }
                },
                () = tokio::time::sleep(PING_EVERY) => {
                    if alive().is_none() {
                        return;
                    }
                    // A quiet connection may be half-open (a partition sends no FIN): ask.
                    let ping = sea_orm::sqlx::query("SELECT 1").execute(&mut listener);
                    if !matches!(tokio::time::timeout(PING_EVERY, ping).await, Ok(Ok(_))) {
                        if let Some(s) = alive() {
                            s.lost();
                        }
                        tracing::warn!("session cache: LISTEN connection unresponsive; reading sessions from the database");
                        break;
                    }
                }
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

    /// Local only: the other instances hear the `NOTIFY` the store sent with the commit.
    async fn invalidate(&self) {
        self.shared.invalidate();
    }

    fn serving(&self) -> bool {
        self.shared.live()
    }
}
