//! The seeding command on PostgreSQL (skipped when `NAUTH_TEST_POSTGRES_URL` is unset): 1,000
//! users seeded into a fresh database of their own can log in and refresh through the engine,
//! seeding again to 1,000 adds nothing, and seeding further adds only the difference.

use nauth_bench::seed;
use nauth_core::http::{Body, Request};
use nauth_core::{NAuth, NAuthConfig};
use sea_orm::sqlx;
use serde_json::{Value, json};

fn config(url: &str) -> NAuthConfig {
    let mut cfg = NAuthConfig {
        database_url: url.to_string(),
        secret: "seed-test-secret-0123456789abcdef-xyz".into(),
        ..NAuthConfig::default()
    };
    cfg.password.argon2_memory_kib = 64;
    cfg.password.argon2_iterations = 1;
    cfg.email.provider = nauth_core::config::EmailProvider::Memory;
    cfg.sms.provider = nauth_core::config::SmsProvider::Memory;
    // The default `signup.verification = "email"` stays: a login of an unverified user would
    // answer a VERIFY_EMAIL challenge, so tokens prove the seeded rows are verified users.
    cfg
}

fn post(path: &str, body: Value) -> Request {
    let mut req = Request::new("POST", path);
    req.headers
        .push(("content-type".into(), "application/json".into()));
    req.body = Body::Bytes(body.to_string().into_bytes());
    req
}

fn bearer(access: &str) -> Request {
    let mut req = Request::new("GET", "/api/data");
    req.headers
        .push(("authorization".into(), format!("Bearer {access}")));
    req
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("a JSON body")
}

async fn scalar(pool: &sqlx::PgPool, sql: &'static str, bind: String) -> i64 {
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(pool)
        .await
        .expect("query")
}

async fn seed_log_in_refresh(url: String) {
    let cfg = config(&url);
    let first = seed::seed(&cfg, 1000, seed::DEFAULT_PASSWORD, |_| {})
        .await
        .expect("seed 1000");
    assert_eq!((first.before, first.added, first.total), (0, 1000, 1000));
    let again = seed::seed(&cfg, 1000, seed::DEFAULT_PASSWORD, |_| {})
        .await
        .expect("seed 1000 again");
    assert_eq!((again.before, again.added, again.total), (1000, 0, 1000));
    let more = seed::seed(&cfg, 1200, seed::DEFAULT_PASSWORD, |_| {})
        .await
        .expect("seed 1200");
    assert_eq!((more.before, more.added, more.total), (1000, 200, 1200));
    let refused = seed::seed(&cfg, 1300, "Another-Password-42", |_| {}).await;
    assert!(refused.is_err(), "a second password is refused");

    // Every seeded user has one live session with one current refresh token.
    let pool = seed::pool(&url, 1).await.expect("pool");
    let prefix = |p: &str| format!("{p}%");
    let sessions = "SELECT count(*) FROM nauth_sessions WHERE id LIKE $1 AND revoked_at IS NULL";
    assert_eq!(
        scalar(&pool, sessions, prefix(seed::SESSION_ID_PREFIX)).await,
        1200
    );
    let current = "SELECT count(*) FROM nauth_refresh_tokens r JOIN nauth_sessions s \
                   ON s.id = r.session_id WHERE s.id LIKE $1 AND r.state = 0";
    assert_eq!(
        scalar(&pool, current, prefix(seed::SESSION_ID_PREFIX)).await,
        1200
    );
    let owner = "SELECT count(*) FROM nauth_sessions WHERE user_id = $1";
    assert_eq!(scalar(&pool, owner, seed::user_id(537)).await, 1);
    pool.close().await;

    // A seeded user logs in through the engine, uses the token, and refreshes.
    let nauth = NAuth::builder(cfg).build().await.expect("engine");
    let wrong = json!({"identifier": seed::email(537), "password": "Not-The-Password-1"});
    assert_eq!(nauth.handle(post("/auth/login", wrong)).await.status, 401);
    let login = json!({"identifier": seed::email(537), "password": seed::DEFAULT_PASSWORD});
    let reply = nauth.handle(post("/auth/login", login)).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = json_of(&reply.body);
    assert_eq!(body["user"]["sub"], json!(seed::user_id(537)));
    assert_eq!(body["user"]["email"], json!(seed::email(537)));
    assert_eq!(body["user"]["isEmailVerified"], json!(true));
    let access = body["accessToken"].as_str().expect("access token");
    let refresh = body["refreshToken"].as_str().expect("refresh token");
    let p = nauth.authenticate(&bearer(access)).await.expect("valid");
    assert_eq!(p.sub, seed::user_id(537));

    let reply = nauth
        .handle(post("/auth/refresh", json!({"refreshToken": refresh})))
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = json_of(&reply.body);
    let access2 = body["accessToken"].as_str().expect("access token");
    assert_ne!(
        body["refreshToken"].as_str().expect("refresh token"),
        refresh
    );
    let p = nauth.authenticate(&bearer(access2)).await.expect("valid");
    assert_eq!(p.sub, seed::user_id(537));
    // The session now accepts only the new access token (`database` validation).
    assert!(nauth.authenticate(&bearer(access)).await.is_err());
    nauth.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_users_log_in_and_refresh() {
    let Ok(server) = std::env::var("NAUTH_TEST_POSTGRES_URL") else {
        eprintln!("NAUTH_TEST_POSTGRES_URL not set; skipped");
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!("nauth_seed_test_{}_{nanos}", std::process::id());
    assert!(
        seed::create_database(&server, &name)
            .await
            .expect("create database"),
        "a fresh database"
    );
    let url = seed::database_url(&server, &name).expect("url");
    // The work runs on its own task so that the database is dropped even when it fails.
    let outcome = tokio::spawn(seed_log_in_refresh(url)).await;
    seed::drop_database(&server, &name)
        .await
        .expect("drop database");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
