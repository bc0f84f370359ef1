//! Faults (issue 11): the database or Redis going away. The engine reaches its server
//! through a [`Proxy`] the case cuts and restores: while the server is away the answer is `503
//! SERVICE_UNAVAILABLE` in the contract's shape, nothing is half-written, and the same engine
//! serves again once the server is back, without a restart. Skipped on SQLite (a file does
//! not go away).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nauth_core::NAuthConfig;
use nauth_core::config::{KvBackend, SessionValidation};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::cases::{PW, assert_error, email, futures_join, login, signup_verified, token};
use super::{Backend, CaseFn, Door, Env, TestRequest, TestResponse, connect};
use crate::db::{audit_log, refresh_tokens, sessions, users};
use crate::proxy::Proxy;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub(super) const FAULT_CASES: &[(&str, CaseFn)] = &[$((stringify!($name), |d, b| Box::pin($name(d, b)))),*];
    };
}

cases!(
    database_outage_answers_503_and_heals,
    database_cut_mid_burst_leaves_nothing_half_written,
    redis_outage_answers_503_and_heals,
    lost_subscription_never_serves_a_revoked_session,
);

/// The database URL of a back end whose server a case may cut: PostgreSQL and MySQL (the
/// `redis` back end's database is PostgreSQL's, cut on `postgres`).
fn database_url(b: &Backend) -> Option<String> {
    b.url.clone().filter(|_| b.redis.is_none())
}

/// `database` validation: the protected route reads the session row on every request.
fn read_sessions(c: &mut NAuthConfig) {
    c.session.validation = SessionValidation::Database;
    c.signup.ip_max_per_hour = 1000;
    c.lockout.ip_max_attempts = 1000;
}

/// Sends `call` until its answer is not a `503` (the server is back), at most ten seconds.
async fn once_back<F: Future<Output = TestResponse>>(call: impl Fn() -> F) -> TestResponse {
    let mut r = call().await;
    for _ in 0..100 {
        if r.status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        r = call().await;
    }
    r
}

/// `call`'s answer; the first answer of all notifies `first`.
async fn noted(
    call: impl Future<Output = TestResponse>,
    (first, answered): (&Notify, &AtomicBool),
) -> TestResponse {
    let r = call.await;
    if !answered.swap(true, Ordering::SeqCst) {
        first.notify_one();
    }
    r
}

/// Accounts with this email in the database (through the case's own connection).
async fn accounts(db: &sea_orm::DatabaseConnection, e: &str) -> u64 {
    users::Entity::find()
        .filter(users::Column::Email.eq(e))
        .count(db)
        .await
        .expect("count users")
}

/// With the database away every kind of request is a `503` (a read, a login, a rotation, a
/// signup); once it is back the same engine serves, the refused signup left no row and the
/// refresh token refused during the outage still works.
async fn database_outage_answers_503_and_heals(door: &dyn Door, b: &Backend) {
    let Some(url) = database_url(b) else { return };
    let proxy = Proxy::in_front_of(&url).await;
    let env = Env::start(door, &proxy.url(&url), read_sessions).await;
    let direct = connect(&url).await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    let access = token(&t, "accessToken");
    assert_eq!(env.get("/api/data", Some(&access)).await.status, 200);

    proxy.cut().await;
    let late = email();
    let refresh = json!({"refreshToken": t["refreshToken"]});
    let signup = json!({"email": late, "password": PW});
    let (read, logged, rotated, signed) = tokio::join!(
        env.get("/api/data", Some(&access)),
        login(&env, &e, PW),
        env.post("/auth/refresh", refresh.clone()),
        env.post("/auth/signup", signup.clone()),
    );
    for r in [&read, &logged, &rotated, &signed] {
        assert_error(r, 503, "SERVICE_UNAVAILABLE");
    }

    proxy.restore().await;
    let r = once_back(|| env.get("/api/data", Some(&access))).await;
    assert_eq!(
        r.status,
        200,
        "served again without a restart: {}",
        r.json()
    );
    assert_eq!(
        accounts(&direct, &late).await,
        0,
        "the refused signup wrote nothing"
    );
    let r = env.post("/auth/refresh", refresh).await;
    assert_eq!(r.status, 200, "the token was not rotated: {}", r.json());
    assert_eq!(login(&env, &e, PW).await.status, 200);
    let r = env.post("/auth/signup", signup).await;
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(accounts(&direct, &late).await, 1);
}

/// A burst of signups, logins and rotations with the database cut as soon as the first of
/// them has answered: every answer is a success or a `503`, and every write is whole: an
/// account exists with its signup audit row or not at all, every session has exactly one
/// current refresh token, and every refused rotation left its token working.
async fn database_cut_mid_burst_leaves_nothing_half_written(door: &dyn Door, b: &Backend) {
    let Some(url) = database_url(b) else { return };
    let proxy = Proxy::in_front_of(&url).await;
    let env = Env::start(door, &proxy.url(&url), read_sessions).await;
    let direct = connect(&url).await;
    let mut people = Vec::new();
    for _ in 0..5 {
        let e = email();
        let t = signup_verified(&env, &e).await;
        people.push((e, t));
    }
    let newcomers: Vec<String> = (0..8).map(|_| email()).collect();

    let first_answer = Notify::new();
    let answered = AtomicBool::new(false);
    type Call<'a> = std::pin::Pin<Box<dyn Future<Output = TestResponse> + Send + 'a>>;
    let mut burst: Vec<Call<'_>> = Vec::new();
    let seen = (&first_answer, &answered);
    for (e, t) in &people {
        burst.push(Box::pin(noted(login(&env, e, PW), seen)));
        let body = json!({"refreshToken": t["refreshToken"]});
        burst.push(Box::pin(noted(env.post("/auth/refresh", body), seen)));
    }
    for e in &newcomers {
        let body = json!({"email": e, "password": PW});
        burst.push(Box::pin(noted(env.post("/auth/signup", body), seen)));
    }
    let cutter = async {
        first_answer.notified().await;
        proxy.cut().await;
    };
    let (answers, ()) = tokio::join!(futures_join(burst), cutter);
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert!(
        answers
            .iter()
            .all(|r| matches!(r.status, 200 | 201) || r.code() == "SERVICE_UNAVAILABLE"),
        "a success or a 503: {statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "the cut hit requests in flight: {statuses:?}"
    );
    proxy.restore().await;

    // Accounts: whole or absent (a commit whose answer was lost counts as whole).
    for e in &newcomers {
        let found = users::Entity::find()
            .filter(users::Column::Email.eq(e.as_str()))
            .all(&direct)
            .await
            .expect("users");
        assert!(found.len() <= 1);
        if let Some(u) = found.first() {
            let rows = audit_log::Entity::find()
                .filter(audit_log::Column::UserId.eq(u.id.as_str()))
                .filter(audit_log::Column::EventType.eq("SIGNUP"))
                .count(&direct)
                .await
                .expect("audit");
            assert_eq!(rows, 1, "an account without its signup row: {e}");
        }
    }
    // Sessions: each with exactly one current refresh token.
    for (e, _) in &people {
        let user = users::Entity::find()
            .filter(users::Column::Email.eq(e.as_str()))
            .one(&direct)
            .await
            .expect("user")
            .expect("exists");
        let ids: Vec<String> = sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user.id.as_str()))
            .all(&direct)
            .await
            .expect("sessions")
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert!(!ids.is_empty());
        for id in ids {
            let current = refresh_tokens::Entity::find()
                .filter(refresh_tokens::Column::SessionId.eq(id.as_str()))
                .filter(refresh_tokens::Column::State.eq(refresh_tokens::CURRENT))
                .count(&direct)
                .await
                .expect("tokens");
            assert_eq!(current, 1, "session {id} of {e}");
        }
    }
    // A refused rotation is retried with the same token (within the reuse interval, whether or
    // not its commit made it); everyone logs in.
    for (i, (e, t)) in people.iter().enumerate() {
        if answers[2 * i + 1].status == 503 {
            let body = json!({"refreshToken": t["refreshToken"]});
            let r = once_back(|| env.post("/auth/refresh", body.clone())).await;
            assert_eq!(r.status, 200, "a 503 rotation is retried: {}", r.json());
        }
        let r = once_back(|| login(&env, e, PW)).await;
        assert_eq!(r.status, 200, "{}", r.json());
    }
    for e in &newcomers {
        if accounts(&direct, e).await == 0 {
            let r = env
                .post("/auth/signup", json!({"email": e, "password": PW}))
                .await;
            assert_eq!(r.status, 201, "{}", r.json());
        }
    }
}

/// With Redis away (`kv.backend = "redis"`), a login cannot reserve its attempt and answers
/// `503` without writing a session; protected routes under `database` validation still serve,
/// reading the database; once Redis is back the same engine logs in again.
async fn redis_outage_answers_503_and_heals(door: &dyn Door, b: &Backend) {
    let (Some(url), Some(redis)) = (b.url.clone(), b.redis.clone()) else {
        return;
    };
    let proxy = Proxy::in_front_of(&redis).await;
    let via = proxy.url(&redis);
    let env = Env::start(door, &url, |c| {
        read_sessions(c);
        c.kv.backend = KvBackend::Redis;
        c.kv.redis_url = via;
        c.session.cache_max_age = Duration::from_secs(60);
    })
    .await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    let access = token(&t, "accessToken");
    let user = users::Entity::find()
        .filter(users::Column::Email.eq(e.as_str()))
        .one(env.db().await)
        .await
        .expect("user")
        .expect("exists")
        .id;
    let before = sessions_of(&env, &user).await;

    proxy.cut().await;
    assert_error(&login(&env, &e, PW).await, 503, "SERVICE_UNAVAILABLE");
    assert_eq!(
        sessions_of(&env, &user).await,
        before,
        "no session from a refused login"
    );
    let r = env.get("/api/data", Some(&access)).await;
    assert_eq!(r.status, 200, "{}", r.json());

    proxy.restore().await;
    let r = once_back(|| login(&env, &e, PW)).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(sessions_of(&env, &user).await, before + 1);
}

/// How many sessions the user has (live or not).
async fn sessions_of(env: &Env, user_id: &str) -> u64 {
    sessions::Entity::find()
        .filter(sessions::Column::UserId.eq(user_id))
        .count(env.db().await)
        .await
        .expect("sessions")
}

/// With the liveness cache on, an instance whose subscription to the others' invalidations
/// is cut stops answering from its cache; a session revoked elsewhere meanwhile is refused by
/// it when it is back, never served from what it had cached. On `postgres` the instance's
/// whole database connection is cut (its LISTEN connection with it); on `redis` its Redis.
async fn lost_subscription_never_serves_a_revoked_session(door: &dyn Door, b: &Backend) {
    let Some(url) = b.url.clone() else { return };
    if b.name == "mysql" {
        return; // no shared cache on MySQL
    }
    let cached = |c: &mut NAuthConfig| {
        read_sessions(c);
        c.session.cache_max_age = Duration::from_secs(60);
    };
    let a = Env::start(door, &url, cached).await;
    let (proxy, mut other) = match &b.redis {
        Some(redis) => {
            let proxy = Proxy::in_front_of(redis).await;
            let via = proxy.url(redis);
            let env = Env::start(door, &url, |c| {
                cached(c);
                c.kv.redis_url = via;
            })
            .await;
            (proxy, env)
        }
        None => {
            let proxy = Proxy::in_front_of(&url).await;
            let env = Env::start(door, &proxy.url(&url), cached).await;
            (proxy, env)
        }
    };
    other.ip = a.ip.clone();
    assert!(a.nauth.session_cache_serving() && other.nauth.session_cache_serving());
    let t: Value = signup_verified(&a, &email()).await;
    let access = token(&t, "accessToken");
    for _ in 0..3 {
        assert_eq!(other.get("/api/data", Some(&access)).await.status, 200);
    }

    proxy.cut().await;
    let mut off = false;
    for _ in 0..100 {
        off = !other.nauth.session_cache_serving();
        if off {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        off,
        "the cache stops answering when its subscription is lost"
    );
    let r = a
        .send(TestRequest::json("POST", "/auth/logout", &json!({})).bearer(&access))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    if b.redis.is_some() {
        // Its database is there: read, not cached.
        assert_error(
            &other.get("/api/data", Some(&access)).await,
            401,
            "AUTH_SESSION_NOT_FOUND",
        );
    }

    proxy.restore().await;
    let r = once_back(|| other.get("/api/data", Some(&access))).await;
    assert_error(&r, 401, "AUTH_SESSION_NOT_FOUND");
    let mut on = false;
    for _ in 0..100 {
        on = other.nauth.session_cache_serving();
        if on {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(on, "the cache answers again once subscribed");
    assert_error(
        &other.get("/api/data", Some(&access)).await,
        401,
        "AUTH_SESSION_NOT_FOUND",
    );
}
