//! Observability: every answer of nauth's routes carries `X-Request-Id` (the caller's when it
//! is well-formed), and `GET /auth/metrics` serves Prometheus counters when enabled.

use serde_json::json;

use super::cases::{PW, assert_error, email, login, signup_verified};
use super::{Backend, CaseFn, Door, Env, TestRequest};

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub(super) const METRICS_CASES: &[(&str, CaseFn)] = &[$((stringify!($name), |d, b| Box::pin($name(d, b)))),*];
    };
}

cases!(request_ids_are_echoed, metrics_count_what_happens);

async fn request_ids_are_echoed(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    // A new id for every answer, successes and errors alike.
    let a = env.send(TestRequest::new("GET", "/auth/profile")).await;
    let b2 = env.send(TestRequest::new("GET", "/auth/nope")).await;
    let ids: Vec<&str> = [&a, &b2]
        .iter()
        .map(|r| r.header("x-request-id").expect("x-request-id"))
        .collect();
    assert!(
        ids.iter().all(|id| uuid::Uuid::parse_str(id).is_ok()),
        "{ids:?}"
    );
    assert_ne!(ids[0], ids[1]);
    // The caller's id when well-formed, a new one otherwise.
    let r = env
        .send(TestRequest::new("GET", "/auth/profile").header("x-request-id", "edge-42.a:b_c"))
        .await;
    assert_eq!(r.header("x-request-id"), Some("edge-42.a:b_c"));
    for bad in ["has space", "ünïcode", &"x".repeat(129)] {
        let r = env
            .send(TestRequest::new("GET", "/auth/profile").header("x-request-id", bad))
            .await;
        let id = r.header("x-request-id").expect("x-request-id");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{bad:?} → {id}");
    }
}

async fn metrics_count_what_happens(door: &dyn Door, b: &Backend) {
    // Off by default: the route is not there.
    let env = Env::start(door, &b.url(), |_| {}).await;
    assert_error(
        &env.send(TestRequest::new("GET", "/auth/metrics")).await,
        404,
        "RESOURCE_NOT_FOUND",
    );

    let token = "scrape-token-0123456789";
    let env = Env::start(door, &b.url(), |c| {
        c.metrics.enabled = true;
        c.metrics.token = token.into();
    })
    .await;
    let scrape = || async {
        env.send(TestRequest::new("GET", "/auth/metrics").bearer(token))
            .await
    };
    assert_error(
        &env.send(TestRequest::new("GET", "/auth/metrics")).await,
        401,
        "AUTH_TOKEN_MISSING",
    );
    assert_error(
        &env.send(TestRequest::new("GET", "/auth/metrics").bearer("wrong"))
            .await,
        401,
        "AUTH_TOKEN_INVALID",
    );
    let before = scrape().await;
    assert_eq!(before.status, 200);
    assert!(
        before
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        before.header("content-type")
    );
    let value = |text: &str, series: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{series} in\n{text}"))
    };
    let text = |r: &super::TestResponse| String::from_utf8_lossy(&r.body).into_owned();
    let t0 = text(&before);
    // One failed and one good login, and a refresh: each counted once.
    let e = email();
    let t = signup_verified(&env, &e).await;
    assert_eq!(login(&env, &e, "Wrong-Password-1").await.status, 401);
    assert_eq!(login(&env, &e, PW).await.status, 200);
    let r = env
        .send(
            TestRequest::json(
                "POST",
                "/auth/refresh",
                &json!({"refreshToken": t["refreshToken"]}),
            )
            .header("x-token-delivery", "json"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let t1 = text(&scrape().await);
    for (series, more) in [
        ("nauth_logins_total{result=\"failure\"}", 1),
        ("nauth_refreshes_total{result=\"success\"}", 1),
        ("nauth_responses_total{class=\"4xx\"}", 1),
    ] {
        assert_eq!(
            value(&t1, series) - value(&t0, series),
            more,
            "{series}:\n{t1}"
        );
    }
    // Logins answered with tokens after signup's verification: at least this one.
    assert!(
        value(&t1, "nauth_logins_total{result=\"success\"}")
            > value(&t0, "nauth_logins_total{result=\"success\"}")
    );
    for gauge in ["nauth_hash_queue_depth", "nauth_hash_queue_capacity"] {
        value(&t1, gauge);
    }
    assert!(!t1.contains(token), "the token is never shown");
}
