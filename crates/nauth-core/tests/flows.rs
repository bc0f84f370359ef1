//! The engine's flows driven in process through its public API: `NAuth::handle` with neutral
//! `Request`s (no HTTP server, no adapter), a `ManualClock` to expire things and a
//! `MemoryOutbox` to read the codes. Statuses, bodies and error codes are those of
//! docs/api.md. The HTTP conformance suite (nauth-testkit) checks the same contract through
//! every adapter; these tests keep the core honest on its own.

use std::time::Duration;

use nauth_core::config::Verification;
use nauth_core::http::Body;
use nauth_core::{ManualClock, MemoryOutbox, NAuth, NAuthConfig, Reply, Request};
use serde_json::{Value, json};

const PW: &str = "Correct-Horse-42";

/// An engine on a private in-memory SQLite database, with cheap Argon2, a manual clock and a
/// memory outbox for mail and SMS.
async fn engine(tweak: impl FnOnce(&mut NAuthConfig)) -> (NAuth, ManualClock, MemoryOutbox) {
    let mut cfg = NAuthConfig {
        database_url: "sqlite::memory:".into(),
        secret: "flows-test-secret-0123456789abcdef-xyz".into(),
        base_url: "http://app.test".into(),
        ..NAuthConfig::default()
    };
    cfg.password.argon2_memory_kib = 64;
    cfg.password.argon2_iterations = 1;
    tweak(&mut cfg);
    let clock = ManualClock::new();
    let outbox = MemoryOutbox::new();
    let nauth = NAuth::builder(cfg)
        .clock(clock.clone())
        .email_sender(outbox.clone())
        .sms_sender(outbox.clone())
        .build()
        .await
        .expect("the engine starts on sqlite::memory:");
    (nauth, clock, outbox)
}

/// `POST path` with a JSON body.
fn post(path: &str, body: Value) -> Request {
    let mut req = Request::new("POST", path);
    req.headers
        .push(("content-type".into(), "application/json".into()));
    req.body = Body::Bytes(body.to_string().into_bytes());
    req
}

/// `GET path` with a bearer token.
fn get(path: &str, access: &str) -> Request {
    let mut req = Request::new("GET", path);
    req.headers
        .push(("authorization".into(), format!("Bearer {access}")));
    req
}

fn body(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).unwrap_or_else(|_| {
        panic!(
            "a JSON body, got {:?}",
            String::from_utf8_lossy(&reply.body)
        )
    })
}

/// Asserts the contract's error answer: status, `code`, the error shape, and the headers
/// every answer under the mount prefix carries.
fn assert_error(reply: &Reply, status: u16, code: &str) -> Value {
    let b = body(reply);
    assert_eq!(
        (reply.status, b["code"].as_str()),
        (status, Some(code)),
        "{b}"
    );
    assert!(
        b["message"].is_string() && b["timestamp"].is_string(),
        "{b}"
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    if status == 401 {
        assert!(
            reply
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "401 without WWW-Authenticate: Bearer"
        );
    }
    b
}

fn string(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .to_string()
}

/// The first standalone run of six digits in a message text.
fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("a 6-digit code in {text:?}"))
        .to_string()
}

/// The `n`-th mail to `to`.
async fn mail_to(outbox: &MemoryOutbox, to: &str, n: usize) -> String {
    let mails = outbox.wait_emails_to(to, n, Duration::from_secs(5)).await;
    assert!(mails.len() >= n, "{n} mail(s) to {to}, got {}", mails.len());
    mails[n - 1].text.clone()
}

/// Signs up with email verification, answers VERIFY_EMAIL; returns the tokens body.
async fn signup_verified(nauth: &NAuth, outbox: &MemoryOutbox, email: &str) -> Value {
    let r = nauth
        .handle(post(
            "/auth/signup",
            json!({"email": email, "password": PW}),
        ))
        .await;
    assert_eq!(r.status, 201, "{}", body(&r));
    let session = string(&body(&r), "session");
    let code = code_in(&mail_to(outbox, email, 1).await);
    let r = nauth
        .handle(post(
            "/auth/respond-challenge",
            json!({"session": session, "type": "VERIFY_EMAIL", "code": code}),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", body(&r));
    body(&r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_verify_email_and_a_protected_request() {
    let (nauth, _clock, outbox) = engine(|_| {}).await;
    let email = "jane@example.com";

    // Signup answers the VERIFY_EMAIL challenge, no tokens.
    let r = nauth
        .handle(post(
            "/auth/signup",
            json!({"email": " Jane@Example.com ", "password": PW}),
        ))
        .await;
    assert_eq!(r.status, 201, "{}", body(&r));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let c = body(&r);
    assert_eq!(c["challengeName"], "VERIFY_EMAIL", "{c}");
    assert_eq!(
        c["challengeParameters"]["codeDeliveryDestination"],
        "j***e@example.com"
    );
    assert!(
        c.get("accessToken").is_none(),
        "no tokens before verification: {c}"
    );
    let session = string(&c, "session");
    assert!(session.len() >= 16, "{session}");
    let sub = string(&c, "userSub");

    // The code went to the normalised address; a wrong one costs an attempt.
    let code = code_in(&mail_to(&outbox, email, 1).await);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = nauth
        .handle(post(
            "/auth/respond-challenge",
            json!({"session": session, "type": "VERIFY_EMAIL", "code": wrong}),
        ))
        .await;
    let e = assert_error(&r, 400, "VERIFY_CODE_INVALID");
    assert_eq!(e["details"]["attemptsRemaining"], 2);

    // The right code: tokens and the verified user.
    let r = nauth
        .handle(post(
            "/auth/respond-challenge",
            json!({"session": session, "type": "VERIFY_EMAIL", "code": code}),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", body(&r));
    let t = body(&r);
    assert_eq!(t["authMethod"], "password");
    assert_eq!(t["user"]["sub"], sub.as_str());
    assert_eq!(t["user"]["email"], email);
    assert_eq!(t["user"]["isEmailVerified"], true);
    assert_eq!(t["user"]["roles"], json!(["user"]));
    let access = string(&t, "accessToken");
    string(&t, "refreshToken");

    // The session answers once.
    let r = nauth
        .handle(post(
            "/auth/respond-challenge",
            json!({"session": session, "type": "VERIFY_EMAIL", "code": code}),
        ))
        .await;
    assert_error(&r, 400, "CHALLENGE_ALREADY_COMPLETED");

    // An app route: the bearer token authenticates the user.
    let p = nauth
        .authenticate(&get("/api/data", &access))
        .await
        .expect("the access token authenticates");
    assert_eq!(p.sub, sub);
    assert!(p.has_role("user") && !p.has_role("admin"));
    assert_eq!(p.auth_method, "password");
    let err = nauth
        .authenticate_role(&get("/api/admin", &access), "admin")
        .await
        .expect_err("no admin role");
    assert_eq!((err.status(), err.code()), (403, "FORBIDDEN"));
    let err = nauth
        .authenticate(&Request::new("GET", "/api/data"))
        .await
        .expect_err("no credentials");
    assert_eq!((err.status(), err.code()), (401, "AUTH_TOKEN_MISSING"));
    assert!(
        nauth
            .authenticate_optional(&Request::new("GET", "/api/data"))
            .await
            .expect("anonymous")
            .is_none()
    );
    let err = nauth
        .authenticate(&get("/api/data", "garbage"))
        .await
        .expect_err("a garbage token");
    assert_eq!((err.status(), err.code()), (401, "AUTH_TOKEN_INVALID"));

    // A route of the engine: the profile.
    let r = nauth.handle(get("/auth/profile", &access)).await;
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(body(&r)["email"], email);
    assert_error(
        &nauth.handle(Request::new("GET", "/auth/profile")).await,
        401,
        "AUTH_TOKEN_MISSING",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let (nauth, clock, outbox) = engine(|_| {}).await;
    let t0 = signup_verified(&nauth, &outbox, "rotate@example.com").await;
    let (a0, r0) = (string(&t0, "accessToken"), string(&t0, "refreshToken"));

    // A refresh rotates the pair: the old access token stops, the new one works.
    let r = nauth
        .handle(post("/auth/refresh", json!({"refreshToken": r0})))
        .await;
    assert_eq!(r.status, 200, "{}", body(&r));
    let t1 = body(&r);
    let (a1, r1) = (string(&t1, "accessToken"), string(&t1, "refreshToken"));
    assert_ne!(r1, r0);
    assert_eq!(t1["user"]["sub"], t0["user"]["sub"]);
    let p1 = nauth
        .authenticate(&get("/api/data", &a1))
        .await
        .expect("the new access token works");
    let err = nauth
        .authenticate(&get("/api/data", &a0))
        .await
        .expect_err("the rotated access token");
    assert_eq!((err.status(), err.code()), (401, "AUTH_TOKEN_INVALID"));

    // The new refresh token rotates in turn, within the same session.
    let r = nauth
        .handle(post("/auth/refresh", json!({"refreshToken": r1})))
        .await;
    assert_eq!(r.status, 200, "{}", body(&r));
    let t2 = body(&r);
    let (a2, r2) = (string(&t2, "accessToken"), string(&t2, "refreshToken"));
    let p2 = nauth
        .authenticate(&get("/api/data", &a2))
        .await
        .expect("the newest access token works");
    assert_eq!(p2.session_id, p1.session_id);

    // Past the reuse interval (10 s), presenting a rotated token is reuse: the whole session
    // is revoked.
    clock.advance(Duration::from_secs(11));
    assert_error(
        &nauth
            .handle(post("/auth/refresh", json!({"refreshToken": r0})))
            .await,
        401,
        "AUTH_TOKEN_REUSE_DETECTED",
    );
    let err = nauth
        .authenticate(&get("/api/data", &a2))
        .await
        .expect_err("the session is revoked");
    assert_eq!((err.status(), err.code()), (401, "AUTH_SESSION_NOT_FOUND"));
    assert_error(
        &nauth
            .handle(post("/auth/refresh", json!({"refreshToken": r2})))
            .await,
        401,
        "AUTH_TOKEN_INVALID",
    );
    assert_error(
        &nauth.handle(get("/auth/profile", &a2)).await,
        401,
        "AUTH_SESSION_NOT_FOUND",
    );

    // Unknown and missing refresh tokens.
    assert_error(
        &nauth
            .handle(post("/auth/refresh", json!({"refreshToken": "nope"})))
            .await,
        401,
        "AUTH_TOKEN_INVALID",
    );
    assert_error(
        &nauth.handle(post("/auth/refresh", json!({}))).await,
        401,
        "AUTH_TOKEN_MISSING",
    );

    // The account itself is fine: a new login opens a new session.
    let r = nauth
        .handle(post(
            "/auth/login",
            json!({"identifier": "rotate@example.com", "password": PW}),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", body(&r));
    let a3 = string(&body(&r), "accessToken");
    let p3 = nauth
        .authenticate(&get("/api/data", &a3))
        .await
        .expect("a new session");
    assert_ne!(p3.session_id, p2.session_id);
}

/// Signs `email` up (verification `none`) on an engine whose lockout allows 3 failures, with
/// the given window and lock duration.
async fn lockout_engine(email: &str, window: Duration, duration: Duration) -> (NAuth, ManualClock) {
    let (nauth, clock, _outbox) = engine(|c| {
        c.signup.verification = Verification::None;
        c.lockout.max_attempts = 3;
        c.lockout.window = window;
        c.lockout.duration = duration;
    })
    .await;
    let r = nauth
        .handle(post(
            "/auth/signup",
            json!({"email": email, "password": PW}),
        ))
        .await;
    assert_eq!(r.status, 201, "{}", body(&r));
    assert!(
        body(&r)["accessToken"].is_string(),
        "verification none: tokens"
    );
    (nauth, clock)
}

async fn login(nauth: &NAuth, email: &str, password: &str) -> Reply {
    nauth
        .handle(post(
            "/auth/login",
            json!({"identifier": email, "password": password}),
        ))
        .await
}

/// `max_attempts` failures answer 401, then the identifier is locked (429 with the time left),
/// even for the right password; returns the `retryAfter` of that answer.
async fn fail_until_locked(nauth: &NAuth, email: &str) -> u64 {
    for _ in 0..3 {
        assert_error(
            &login(nauth, email, "Wrong-Password-1").await,
            401,
            "AUTH_INVALID_CREDENTIALS",
        );
    }
    let r = login(nauth, email, PW).await;
    let e = assert_error(&r, 429, "RATE_LIMIT_LOGIN");
    let retry = e["details"]["retryAfter"].as_u64().expect("retryAfter");
    assert_eq!(r.header("retry-after"), Some(retry.to_string().as_str()));
    retry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_after_max_attempts_until_the_duration_passes() {
    let email = "locked@example.com";
    let (nauth, clock) = lockout_engine(
        email,
        Duration::from_secs(5 * 60),
        Duration::from_secs(10 * 60),
    )
    .await;
    let retry = fail_until_locked(&nauth, email).await;
    assert!(
        (540..=600).contains(&retry),
        "the lock's duration, not the window: {retry}"
    );

    // Still locked past the window, before the duration ends.
    clock.advance(Duration::from_secs(9 * 60));
    assert_error(&login(&nauth, email, PW).await, 429, "RATE_LIMIT_LOGIN");

    // Past it, the right password logs in, and the success resets the count.
    clock.advance(Duration::from_secs(61));
    let r = login(&nauth, email, PW).await;
    assert_eq!(r.status, 200, "{}", body(&r));
    assert!(body(&r)["accessToken"].is_string());
    assert_error(
        &login(&nauth, email, "Wrong-Password-1").await,
        401,
        "AUTH_INVALID_CREDENTIALS",
    );
    assert_eq!(login(&nauth, email, PW).await.status, 200);
}

/// docs/api.md §7: the identifier "is locked for `lockout.duration`", also when the duration
/// is shorter than the counting window (here 5 minutes against 15): the lock ends with the
/// duration, not with the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_shorter_than_the_window_ends_with_the_duration() {
    let email = "short-lock@example.com";
    let (nauth, clock) = lockout_engine(
        email,
        Duration::from_secs(15 * 60),
        Duration::from_secs(5 * 60),
    )
    .await;
    let retry = fail_until_locked(&nauth, email).await;
    assert!(
        retry <= 300,
        "locked for lockout.duration (300 s), told {retry} s"
    );
    clock.advance(Duration::from_secs(5 * 60 + 1));
    let r = login(&nauth, email, PW).await;
    assert_eq!(r.status, 200, "{}", body(&r));
}

/// A `Kv` of the app's own (here: the memory one, counting the calls), plugged in with
/// `NAuthBuilder::kv`: the engine keeps its counters there.
#[derive(Debug, Default, Clone)]
struct CountingKv {
    inner: std::sync::Arc<nauth_core::MemoryKv>,
    incrs: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl nauth_core::Kv for CountingKv {
    async fn incr(&self, key: &str, window_ms: i64, now: i64) -> nauth_core::KvResult<KvEntry> {
        self.incrs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.incr(key, window_ms, now).await
    }
    async fn get(&self, key: &str, now: i64) -> nauth_core::KvResult<Option<KvEntry>> {
        self.inner.get(key, now).await
    }
    async fn set(&self, key: &str, value: i64, expires_at: i64) -> nauth_core::KvResult<()> {
        self.inner.set(key, value, expires_at).await
    }
    async fn del(&self, key: &str) -> nauth_core::KvResult<()> {
        self.inner.del(key).await
    }
    async fn decr(&self, key: &str, now: i64) -> nauth_core::KvResult<()> {
        self.inner.decr(key, now).await
    }
    async fn clear_if(&self, key: &str, value: i64) -> nauth_core::KvResult<bool> {
        self.inner.clear_if(key, value).await
    }
    async fn raise(&self, key: &str, floor: i64, until: i64, now: i64) -> nauth_core::KvResult<()> {
        self.inner.raise(key, floor, until, now).await
    }
    async fn live_entries(
        &self,
        prefix: &str,
        now: i64,
    ) -> nauth_core::KvResult<Vec<(String, KvEntry)>> {
        self.inner.live_entries(prefix, now).await
    }
}

use nauth_core::KvEntry;

/// A session-liveness cache of the app's own: counts invalidations and never caches.
#[derive(Debug, Default, Clone)]
struct CountingCache {
    invalidations: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    lookups: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl nauth_core::SessionCache for CountingCache {
    fn stamp(&self) -> u64 {
        self.invalidations.load(std::sync::atomic::Ordering::SeqCst) as u64
    }
    fn get(&self, _: &str) -> Option<nauth_core::LiveSession> {
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        None
    }
    fn put(&self, _: &str, _: &nauth_core::LiveSession, _: u64) {}
    async fn invalidate(&self) {
        self.invalidations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_and_a_session_cache_plug_in_through_the_builder() {
    use std::sync::atomic::Ordering::SeqCst;
    let kv = CountingKv::default();
    let cache = CountingCache::default();
    let mut cfg = NAuthConfig {
        database_url: "sqlite::memory:".into(),
        secret: "flows-test-secret-0123456789abcdef-xyz".into(),
        ..NAuthConfig::default()
    };
    cfg.password.argon2_memory_kib = 64;
    cfg.password.argon2_iterations = 1;
    cfg.signup.verification = Verification::None;
    cfg.session.validation = nauth_core::config::SessionValidation::Database;
    let nauth = NAuth::builder(cfg)
        .kv(kv.clone())
        .session_cache(cache.clone())
        .build()
        .await
        .expect("engine");
    let r = nauth
        .handle(post(
            "/auth/signup",
            json!({"email": "kv@example.com", "password": PW}),
        ))
        .await;
    assert_eq!(r.status, 201, "{}", body(&r));
    let before = kv.incrs.load(SeqCst);
    let r = nauth
        .handle(post(
            "/auth/login",
            json!({"identifier": "kv@example.com", "password": "Wrong-Horse-42"}),
        ))
        .await;
    assert_error(&r, 401, "AUTH_INVALID_CREDENTIALS");
    assert!(
        kv.incrs.load(SeqCst) > before,
        "the failed login was counted in the plugged-in kv"
    );
    let r = nauth
        .handle(post(
            "/auth/login",
            json!({"identifier": "kv@example.com", "password": PW}),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", body(&r));
    let t = body(&r);
    let access = string(&t, "accessToken");
    // The protected request asks the plugged-in cache first, then the database.
    let r = nauth.handle(get("/auth/profile", &access)).await;
    assert_eq!(r.status, 200, "{}", body(&r));
    assert!(cache.lookups.load(SeqCst) >= 1);
    // A revocation invalidates the cache after its commit; the token then stops working.
    let invalidated = cache.invalidations.load(SeqCst);
    let mut logout = post("/auth/logout", json!({}));
    logout
        .headers
        .push(("authorization".into(), format!("Bearer {access}")));
    assert_eq!(nauth.handle(logout).await.status, 200);
    assert!(cache.invalidations.load(SeqCst) > invalidated);
    let r = nauth.handle(get("/auth/profile", &access)).await;
    assert_error(&r, 401, "AUTH_SESSION_NOT_FOUND");
}

/// The operator (the `nauth` command line, an app's own job) runs the admin API in process:
/// the first admin, then the same answers, checks and audit rows as over HTTP, with no
/// session; routes outside `/admin` are not reachable that way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_the_admin_api() {
    let (nauth, _clock, outbox) = engine(|_| {}).await;
    let one_time = nauth.create_admin("boss@example.com").await.expect("admin");
    assert_eq!(one_time.len(), 20);
    let r = login(&nauth, "boss@example.com", &one_time).await;
    assert_eq!(body(&r)["challengeName"], "FORCE_CHANGE_PASSWORD");
    assert_eq!(
        nauth
            .create_admin("boss@example.com")
            .await
            .expect_err("taken")
            .code(),
        "SIGNUP_EMAIL_EXISTS"
    );

    let user = signup_verified(&nauth, &outbox, "worker@example.com").await;
    let sub = user["user"]["sub"].as_str().expect("sub").to_string();
    let (status, list) = nauth
        .admin_call("GET", "/users?email=worker@example.com", None)
        .await
        .expect("list");
    assert_eq!((status, list["total"].clone()), (200, json!(1)));
    let (status, _) = nauth
        .admin_call(
            "POST",
            &format!("/users/{sub}/disable"),
            Some(&json!({"reason": "test"})),
        )
        .await
        .expect("disable");
    assert_eq!(status, 200);
    let r = login(&nauth, "worker@example.com", PW).await;
    assert_eq!(body(&r)["code"], "AUTH_ACCOUNT_LOCKED");
    // No fresh proof is asked of the operator, and the action is audited as theirs.
    let (status, _) = nauth
        .admin_call(
            "POST",
            &format!("/users/{sub}/roles"),
            Some(&json!({"roles": ["user", "auditor"]})),
        )
        .await
        .expect("roles");
    assert_eq!(status, 200);
    let (_, audit) = nauth
        .admin_call(
            "GET",
            &format!("/audit?sub={sub}&eventType=ADMIN_ACTION"),
            None,
        )
        .await
        .expect("audit");
    let actions: Vec<(&str, &str)> = audit["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| {
            (
                r["details"]["action"].as_str().unwrap_or(""),
                r["details"]["adminSub"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [("set_roles", "operator"), ("disable", "operator")]
    );
    // Errors keep their codes; only admin routes.
    let nobody = "/users/00000000-0000-4000-8000-000000000000";
    let e = nauth
        .admin_call("GET", nobody, None)
        .await
        .expect_err("404");
    assert_eq!(e.code(), "RESOURCE_NOT_FOUND");
    let e = nauth
        .admin_call("GET", "/users?limit=101", None)
        .await
        .expect_err("400");
    assert_eq!(e.code(), "VALIDATION_FAILED");
    let e = nauth
        .admin_call("PATCH", "/users", None)
        .await
        .expect_err("405");
    assert_eq!(e.code(), "METHOD_NOT_ALLOWED");
    let e = nauth
        .admin_call("GET", "/../profile", None)
        .await
        .expect_err("not an admin route");
    assert_eq!(e.code(), "RESOURCE_NOT_FOUND");
}
