//! Two instances, one truth (issue 11): two engines on one shared database (and, on the
//! `redis` back end, one Redis for their kv stores), each behind its own door on its own port,
//! as two app processes behind a load balancer would be. Requests of one race are split
//! between them. Skipped on SQLite, whose file belongs to one process.

use std::time::Duration;

use serde_json::json;

use super::cases::{PW, assert_error, email, futures_join, login, signup_verified, token};
use super::mfa_cases::{answer, code_at, with_totp};
use super::{Backend, CaseFn, Door, Env, TestRequest, TestResponse};

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub(super) const INSTANCE_CASES: &[(&str, CaseFn)] = &[$((stringify!($name), |d, b| Box::pin($name(d, b)))),*];
    };
}

cases!(
    two_instances_cached_sessions_see_a_logout_at_once,
    two_instances_race_one_refresh_token,
    two_instances_refuse_a_replayed_totp_code,
    two_instances_share_resend_limits,
);

/// Two engines on the backend's shared database, claiming the same client address.
async fn pair(door: &dyn Door, b: &Backend) -> Option<(Env, Env)> {
    let url = b.url.clone()?;
    let a = Env::start(door, &url, |_| {}).await;
    let mut other = Env::start(door, &url, |_| {}).await;
    other.ip = a.ip.clone();
    Some((a, other))
}

/// Moves both clocks (each engine has its own).
fn advance(a: &Env, b: &Env, by: Duration) {
    a.clock.advance(by);
    b.clock.advance(by);
}

/// The same refresh token sent 16 times at once, half to each instance: every answer is a
/// new pair or a refusal, and exactly one of the pairs handed out keeps working.
async fn two_instances_race_one_refresh_token(door: &dyn Door, b: &Backend) {
    let Some((a, other)) = pair(door, b).await else {
        return;
    };
    let t = signup_verified(&a, &email()).await;
    let body = json!({"refreshToken": t["refreshToken"]});
    let mut fs = Vec::new();
    for i in 0..16 {
        let env = if i % 2 == 0 { &a } else { &other };
        fs.push(env.post("/auth/refresh", body.clone()));
    }
    let rs: Vec<TestResponse> = futures_join(fs).await;
    assert!(
        rs.iter().all(|r| r.status == 200 || r.status == 401),
        "{:?}",
        rs.iter().map(|r| (r.status, r.code())).collect::<Vec<_>>()
    );
    let pairs: Vec<String> = rs
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| token(&r.json(), "refreshToken"))
        .collect();
    assert!(!pairs.is_empty());
    // Past the reuse interval, on the instance that did not issue it half of the time.
    advance(&a, &other, Duration::from_secs(11));
    let mut working = 0;
    for (i, refresh) in pairs.iter().enumerate() {
        let env = if i % 2 == 0 { &other } else { &a };
        let r = env
            .post("/auth/refresh", json!({"refreshToken": refresh}))
            .await;
        if r.status == 200 {
            working += 1;
            break;
        }
    }
    assert_eq!(working, 1, "one family, one live token across both");
}

/// A TOTP code used on one instance is refused on the other in the same window.
async fn two_instances_refuse_a_replayed_totp_code(door: &dyn Door, b: &Backend) {
    let Some((a, other)) = pair(door, b).await else {
        return;
    };
    let e = email();
    let (_, secret, _) = with_totp(&a, &e).await;
    // The enrolment code's step is spent; the next step is a fresh code.
    advance(&a, &other, Duration::from_secs(30));
    let code = code_at(&a, &secret);
    let c = login(&a, &e, PW).await.json();
    assert_eq!(c["challengeName"], "MFA_REQUIRED", "{c}");
    let r = answer(&a, &c, "totp", &code).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let c = login(&other, &e, PW).await.json();
    assert_eq!(c["challengeName"], "MFA_REQUIRED", "{c}");
    assert_error(
        &answer(&other, &c, "totp", &code).await,
        400,
        "VERIFY_CODE_INVALID",
    );
}

/// A burst of resends of one challenge, split across both instances, sends one message; the
/// hourly resend cap counts the sends of both.
async fn two_instances_share_resend_limits(door: &dyn Door, b: &Backend) {
    let Some((a, other)) = pair(door, b).await else {
        return;
    };
    let e = email();
    let r = a
        .post("/auth/signup", json!({"email": e, "password": PW}))
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    let session = r.json()["session"].clone();
    advance(&a, &other, Duration::from_secs(61));
    let resend = || {
        TestRequest::json(
            "POST",
            "/auth/challenge/resend",
            &json!({"session": session}),
        )
    };
    let mut fs = Vec::new();
    for i in 0..20 {
        let env = if i % 2 == 0 { &a } else { &other };
        fs.push(env.send(resend()));
    }
    let rs = futures_join(fs).await;
    let sent = rs.iter().filter(|r| r.status == 200).count();
    assert!(
        rs.iter()
            .all(|r| r.status == 200 || r.code() == "RATE_LIMIT_RESEND"),
        "{:?}",
        rs.iter().map(|r| (r.status, r.code())).collect::<Vec<_>>()
    );
    assert_eq!(sent, 1, "one message for the whole burst");
    // The same session on the other instance right after: still within the delay.
    assert_error(&other.send(resend()).await, 429, "RATE_LIMIT_RESEND");
}

/// With the session-liveness cache on (`session.cache_max_age`: shared through Redis on the
/// `redis` back end, through acknowledged LISTEN/NOTIFY on `postgres`, off on MySQL), a
/// session both instances have cached is refused on B on the very next request after a logout
/// on A, and so is a rotated access token.
async fn two_instances_cached_sessions_see_a_logout_at_once(door: &dyn Door, b: &Backend) {
    let Some(url) = b.url.clone() else { return };
    let cached = |c: &mut nauth_core::NAuthConfig| {
        c.session.validation = nauth_core::config::SessionValidation::Database;
        c.session.cache_max_age = Duration::from_secs(60);
    };
    let a = Env::start(door, &url, cached).await;
    let mut other = Env::start(door, &url, cached).await;
    other.ip = a.ip.clone();
    for _ in 0..3 {
        let t = signup_verified(&a, &email()).await;
        let access = token(&t, "accessToken");
        // Both instances have seen (and cached) the session.
        for _ in 0..3 {
            assert_eq!(a.get("/api/data", Some(&access)).await.status, 200);
            assert_eq!(other.get("/api/data", Some(&access)).await.status, 200);
        }
        // A rotation on B: the old access token stops on A at once.
        let r = other
            .post("/auth/refresh", json!({"refreshToken": t["refreshToken"]}))
            .await;
        assert_eq!(r.status, 200, "{}", r.json());
        assert_error(
            &a.get("/api/data", Some(&access)).await,
            401,
            "AUTH_TOKEN_INVALID",
        );
        let access = token(&r.json(), "accessToken");
        assert_eq!(a.get("/api/data", Some(&access)).await.status, 200);
        assert_eq!(other.get("/api/data", Some(&access)).await.status, 200);
        // A logout on A: refused on B on the very next request. Every listening instance
        // acknowledged it well before the one-second wait for a missing one ran out.
        let started = std::time::Instant::now();
        let r = a
            .send(TestRequest::json("POST", "/auth/logout", &json!({})).bearer(&access))
            .await;
        assert_eq!(r.status, 200, "{}", r.json());
        if b.name != "mysql" {
            assert!(
                started.elapsed() < Duration::from_millis(900),
                "{:?}",
                started.elapsed()
            );
        }
        assert_error(
            &other.get("/api/data", Some(&access)).await,
            401,
            "AUTH_SESSION_NOT_FOUND",
        );
    }
}
