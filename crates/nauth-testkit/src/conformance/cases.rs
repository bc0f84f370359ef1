//! The cases. Each starts its own engine (fresh SQLite file, or the shared server database
//! with unique emails) and asserts statuses, bodies, headers and stored state.

use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};

use super::{Backend, CaseFn, Door, Env, TestRequest, TestResponse};
use crate::db::{audit_log, refresh_tokens, sessions, users};
use crate::{extract_code, extract_token};
use nauth_core::config::{DeliveryMode, SessionValidation, Verification};

pub(super) const PW: &str = "Correct-Horse-42";
const PW2: &str = "Battery-Staple-77";

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub(super) const CASES: &[(&str, CaseFn)] = &[$((stringify!($name), |d, b| Box::pin($name(d, b)))),*];
    };
}

cases!(
    signup_verify_login_and_protected_route,
    verify_email_wrong_codes_then_max_attempts,
    challenge_session_errors,
    verify_email_link,
    verify_email_link_redirect,
    resend_rules,
    duplicate_signup_is_indistinguishable,
    verification_none_signup_and_conflicts,
    bad_input_is_400_413_415,
    login_errors_are_uniform,
    lockout_per_identifier,
    lockout_per_ip,
    parallel_signups_one_user,
    refresh_rotation_and_reuse,
    parallel_refreshes_leave_one_live_token,
    logout_revoke_and_logout_all,
    sessions_list_and_delete,
    forgot_password_code_flow,
    reset_password_link_flow,
    forgot_password_ip_limit,
    change_password_rules,
    change_email_flow,
    resend_verification_rules,
    delete_account_removes_everything,
    profile_update,
    cookie_mode_and_csrf,
    json_mode_rejects_cookies,
    hybrid_mode,
    jwt_attacks,
    token_validation_mode,
    framework_level_answers,
    roles_and_optional_user,
    trusted_origins,
    force_change_password,
    database_down_is_503,
    smtp_round_trip,
    audit_rows,
    rehash_on_login,
    mfa_totp_enrol_login_and_replay,
    mfa_email_method_and_resend,
    mfa_required_enforcement,
    mfa_attempts_and_brute_force,
    mfa_device_management,
    trusted_devices,
    mfa_sms_through_the_webhook,
    verify_phone_with_collection,
    two_instances_share_state,
);

use super::mfa_cases::*;

pub(super) fn email() -> String {
    format!(
        "user{}@example.com",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

async fn env(door: &dyn Door, b: &Backend) -> Env {
    Env::start(door, &b.url(), |_| {}).await
}

/// Signs up and answers VERIFY_EMAIL with the mailed code; returns the tokens body.
pub(super) async fn signup_verified(env: &Env, email: &str) -> Value {
    let r = env
        .post("/auth/signup", json!({"email": email, "password": PW}))
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    let session = r.json()["session"].as_str().expect("session").to_string();
    let mail = env.mail(email, 1).await;
    let code = extract_code(&mail.text).expect("code in mail");
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": session, "type": "VERIFY_EMAIL", "code": code}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    r.json()
}

pub(super) async fn login(env: &Env, identifier: &str, password: &str) -> TestResponse {
    env.post(
        "/auth/login",
        json!({"identifier": identifier, "password": password}),
    )
    .await
}

pub(super) fn token(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {v}"))
        .to_string()
}

pub(super) async fn update_user(env: &Env, email: &str, col: users::Column, value: sea_orm::Value) {
    users::Entity::update_many()
        .col_expr(col, Expr::value(value))
        .filter(users::Column::Email.eq(email))
        .exec(env.db().await)
        .await
        .expect("update user");
}

/// A burst of wrong proofs: every answer is the wrong-password refusal (`400 code`) or the
/// spent budget's `429`, and at most `max` of them were compared.
pub(super) fn assert_proofs_compared_at_most(answers: &[TestResponse], code: &str, max: usize) {
    let compared = answers.iter().filter(|r| r.code() == code).count();
    assert!(
        compared <= max && answers.iter().all(|r| r.status == 400 || r.status == 429),
        "{compared} compared: {:?}",
        answers
            .iter()
            .map(|r| (r.status, r.code()))
            .collect::<Vec<_>>()
    );
}

pub(super) fn assert_error(r: &TestResponse, status: u16, code: &str) {
    assert_eq!(
        (r.status, r.code().as_str()),
        (status, code),
        "body: {}",
        String::from_utf8_lossy(&r.body)
    );
    let b = r.json();
    assert!(
        b["message"].is_string() && b["timestamp"].is_string(),
        "error shape: {b}"
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    if status == 401 {
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    if status == 429 {
        let ra: u64 = r
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("seconds");
        assert_eq!(json!(ra), b["details"]["retryAfter"]);
        assert!(ra >= 1);
    }
}

async fn signup_verify_login_and_protected_route(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    let r = env
        .post(
            "/auth/signup",
            json!({"email": e, "password": PW, "firstName": "Jo"}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let c = r.json();
    assert_eq!(c["challengeName"], "VERIFY_EMAIL");
    assert!(c["session"].as_str().expect("session").len() >= 16);
    let masked = c["challengeParameters"]["codeDeliveryDestination"]
        .as_str()
        .expect("dest");
    assert!(
        masked.contains("***") && masked.ends_with("@example.com"),
        "{masked}"
    );
    let sub = token(&c, "userSub");
    let mail = env.mail(&e, 1).await;
    let code = extract_code(&mail.text).expect("code");
    assert!(
        mail.text
            .contains("http://app.test/auth/verify-email?token="),
        "link in mail"
    );
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": c["session"], "type": "VERIFY_EMAIL", "code": code}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let t = r.json();
    assert_eq!(t["user"]["sub"], sub.as_str());
    assert_eq!(t["user"]["isEmailVerified"], true);
    assert_eq!(t["user"]["roles"], json!(["user"]));
    assert_eq!(t["authMethod"], "password");
    assert_eq!(t["trusted"], false);
    assert!(t["accessTokenExpiresAt"].as_i64().expect("exp") > 1_700_000_000);
    let access = token(&t, "accessToken");
    let r = env.get("/api/data", Some(&access)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"sub": sub, "message": "protected data"}));
    // Login again with the email, then with the username once set.
    let r = login(&env, &e.to_uppercase(), PW).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert!(r.json()["accessToken"].is_string());
    let uname = format!("Jo_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let r = env
        .send(
            TestRequest::json("PUT", "/auth/profile", &json!({"username": uname})).bearer(&access),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["username"], uname.to_lowercase().as_str());
    let r = login(&env, &uname.to_uppercase(), PW).await;
    assert_eq!(r.status, 200);
    let r = env.get("/auth/profile", Some(&access)).await;
    let p = r.json();
    assert_eq!(p["email"], e.as_str());
    assert_eq!(p["firstName"], "Jo");
    assert_eq!(p["mfaEnabled"], false);
    assert!(p["createdAt"].as_str().expect("createdAt").ends_with('Z'));
    // The code was single-use.
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": c["session"], "type": "VERIFY_EMAIL", "code": code}),
        )
        .await;
    assert_error(&r, 400, "CHALLENGE_ALREADY_COMPLETED");
}

async fn verify_email_wrong_codes_then_max_attempts(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    let r = env
        .post("/auth/signup", json!({"email": e, "password": PW}))
        .await;
    let s = r.json()["session"].clone();
    let code = extract_code(&env.mail(&e, 1).await.text).expect("code");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for remaining in [2, 1, 0] {
        let r = env
            .post(
                "/auth/respond-challenge",
                json!({"session": s, "type": "VERIFY_EMAIL", "code": wrong}),
            )
            .await;
        assert_error(&r, 400, "VERIFY_CODE_INVALID");
        assert_eq!(r.json()["details"]["attemptsRemaining"], remaining);
    }
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": s, "type": "VERIFY_EMAIL", "code": code}),
        )
        .await;
    assert_error(&r, 400, "CHALLENGE_MAX_ATTEMPTS");
    // Starting over with login gives a fresh challenge; within resend_delay it takes over the
    // code already in the inbox instead of sending another.
    let r = login(&env, &e, PW).await;
    assert_eq!(r.json()["challengeName"], "VERIFY_EMAIL");
    let s2 = r.json()["session"].clone();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(env.outbox.emails_to(&e).len(), 1, "no second mail");
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": s2, "type": "VERIFY_EMAIL", "code": code}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
}

async fn challenge_session_errors(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    let r = env
        .post("/auth/signup", json!({"email": e, "password": PW}))
        .await;
    let s = r.json()["session"].clone();
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": "x".repeat(43), "type": "VERIFY_EMAIL", "code": "123456"}),
        )
        .await;
    assert_error(&r, 400, "CHALLENGE_INVALID");
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": s, "type": "FORCE_CHANGE_PASSWORD", "newPassword": PW2}),
        )
        .await;
    assert_error(&r, 400, "CHALLENGE_TYPE_MISMATCH");
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": s, "type": "NOT_A_CHALLENGE", "code": "1"}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_FAILED");
    assert!(r.json()["details"]["validationErrors"]["type"].is_array());
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": s, "type": "VERIFY_EMAIL"}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_FAILED");
    // Another user's code never answers this session.
    let e2 = email();
    env.post("/auth/signup", json!({"email": e2, "password": PW}))
        .await;
    let other = extract_code(&env.mail(&e2, 1).await.text).expect("code");
    let mine = extract_code(&env.mail(&e, 1).await.text).expect("code");
    if other != mine {
        let r = env
            .post(
                "/auth/respond-challenge",
                json!({"session": s, "type": "VERIFY_EMAIL", "code": other}),
            )
            .await;
        assert_error(&r, 400, "VERIFY_CODE_INVALID");
    }
    env.clock.advance(Duration::from_secs(16 * 60));
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": s, "type": "VERIFY_EMAIL", "code": mine}),
        )
        .await;
    assert_error(&r, 400, "CHALLENGE_EXPIRED");
}

async fn verify_email_link(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    env.post("/auth/signup", json!({"email": e, "password": PW}))
        .await;
    let tok = extract_token(&env.mail(&e, 1).await.text).expect("token");
    let r = env
        .get(&format!("/auth/verify-email?token={tok}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json(), json!({"success": true}));
    let r = env
        .get(&format!("/auth/verify-email?token={tok}"), None)
        .await;
    assert_error(&r, 400, "VERIFY_CODE_INVALID");
    let r = env.get("/auth/verify-email", None).await;
    assert_error(&r, 400, "VALIDATION_FAILED");
    // Verified: login now gives tokens.
    let r = login(&env, &e, PW).await;
    assert!(r.json()["accessToken"].is_string(), "{}", r.json());
    // An expired link.
    let e2 = email();
    env.post("/auth/signup", json!({"email": e2, "password": PW}))
        .await;
    let tok2 = extract_token(&env.mail(&e2, 1).await.text).expect("token");
    env.clock.advance(Duration::from_secs(61 * 60));
    let r = env
        .get(&format!("/auth/verify-email?token={tok2}"), None)
        .await;
    assert_error(&r, 400, "VERIFY_CODE_EXPIRED");
}

async fn verify_email_link_redirect(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| {
        c.signup.verified_redirect = "https://app.test/welcome".into()
    })
    .await;
    let e = email();
    env.post("/auth/signup", json!({"email": e, "password": PW}))
        .await;
    let tok = extract_token(&env.mail(&e, 1).await.text).expect("token");
    let r = env
        .get(&format!("/auth/verify-email?token={tok}"), None)
        .await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://app.test/welcome?verified=true")
    );
    let r = env
        .get(&format!("/auth/verify-email?token={tok}"), None)
        .await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://app.test/welcome?verified=false&error=VERIFY_CODE_INVALID")
    );
}

async fn resend_rules(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    let r = env
        .post("/auth/signup", json!({"email": e, "password": PW}))
        .await;
    let s = r.json()["session"].clone();
    let first = extract_code(&env.mail(&e, 1).await.text).expect("code");
    let r = env
        .post("/auth/challenge/resend", json!({"session": s}))
        .await;
    assert_error(&r, 429, "RATE_LIMIT_RESEND");
    assert!(r.json()["details"]["retryAfter"].as_u64().expect("retry") <= 60);
    let r = env
        .post(
            "/auth/challenge/resend",
            json!({"session": s, "method": "totp"}),
        )
        .await;
    assert_error(&r, 400, "MFA_METHOD_NOT_ALLOWED");
    for n in 2..=4 {
        env.clock.advance(Duration::from_secs(61));
        let r = env
            .post("/auth/challenge/resend", json!({"session": s}))
            .await;
        assert_eq!(r.status, 200, "resend {n}: {}", r.json());
        assert!(
            r.json()["destination"]
                .as_str()
                .expect("dest")
                .contains("***")
        );
        env.mail(&e, n).await;
    }
    env.clock.advance(Duration::from_secs(61));
    let r = env
        .post("/auth/challenge/resend", json!({"session": s}))
        .await;
    assert_error(&r, 429, "RATE_LIMIT_RESEND");
    let latest = extract_code(&env.mail(&e, 4).await.text).expect("code");
    if latest != first {
        let r = env
            .post(
                "/auth/respond-challenge",
                json!({"session": s, "type": "VERIFY_EMAIL", "code": first}),
            )
            .await;
        assert_error(&r, 400, "VERIFY_CODE_INVALID");
    }
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": s, "type": "VERIFY_EMAIL", "code": latest}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
}

async fn duplicate_signup_is_indistinguishable(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    let first = env
        .post("/auth/signup", json!({"email": e, "password": PW}))
        .await;
    env.mail(&e, 1).await;
    let dup = env
        .post("/auth/signup", json!({"email": e, "password": PW2}))
        .await;
    assert_eq!(dup.status, 201);
    let (a, d) = (first.json(), dup.json());
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
    assert_eq!(keys(&a), keys(&d));
    assert_eq!(a["challengeName"], d["challengeName"]);
    assert_eq!(a["challengeParameters"], d["challengeParameters"]);
    assert_ne!(
        a["userSub"], d["userSub"],
        "the decoy's userSub belongs to no user"
    );
    let notice = env.mail(&e, 2).await;
    assert!(
        extract_code(&notice.text).is_none(),
        "the owner gets a notice, not a code"
    );
    assert_eq!(
        users::Entity::find()
            .filter(users::Column::Email.eq(&e))
            .count(env.db().await)
            .await
            .expect("count"),
        1
    );
    // The decoy session answers resends the same and refuses every code.
    env.clock.advance(Duration::from_secs(61));
    let r = env
        .post("/auth/challenge/resend", json!({"session": d["session"]}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["destination"],
        a["challengeParameters"]["codeDeliveryDestination"]
    );
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": d["session"], "type": "VERIFY_EMAIL", "code": "123456"}),
        )
        .await;
    assert_error(&r, 400, "VERIFY_CODE_INVALID");
    assert_eq!(r.json()["details"]["attemptsRemaining"], 2);
}

async fn verification_none_signup_and_conflicts(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| {
        c.signup.verification = Verification::None
    })
    .await;
    let e = email();
    let uname = format!("u{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let digits = super::random_digits(10);
    let phone = format!("+1{digits}");
    let spaced = format!("+1 {} {}", &digits[..3], &digits[3..]);
    let r = env.post("/auth/signup", json!({"email": e, "password": PW, "username": uname, "phone": spaced, "metadata": {"plan": "pro"}})).await;
    assert_eq!(r.status, 201, "{}", r.json());
    let t = r.json();
    assert!(t["accessToken"].is_string());
    assert_eq!(t["user"]["phone"], phone.as_str());
    assert_eq!(t["user"]["isEmailVerified"], false);
    let r = env
        .post("/auth/signup", json!({"email": e, "password": PW}))
        .await;
    assert_error(&r, 409, "SIGNUP_EMAIL_EXISTS");
    let r = env
        .post(
            "/auth/signup",
            json!({"email": email(), "password": PW, "username": uname.to_uppercase()}),
        )
        .await;
    assert_error(&r, 409, "SIGNUP_USERNAME_EXISTS");
    let r = env
        .post(
            "/auth/signup",
            json!({"email": email(), "password": PW, "phone": phone}),
        )
        .await;
    assert_error(&r, 409, "SIGNUP_PHONE_EXISTS");
    // An unverified phone names no account (docs/api.md §1); a verified one does.
    assert_error(
        &login(&env, &phone, PW).await,
        401,
        "AUTH_INVALID_CREDENTIALS",
    );
    update_user(&env, &e, users::Column::IsPhoneVerified, true.into()).await;
    let r = login(&env, &phone, PW).await;
    assert_eq!(r.status, 200, "phone identifier: {}", r.json());
    let disabled = Env::start(door, &b.url(), |c| c.signup.enabled = false).await;
    let r = disabled
        .post("/auth/signup", json!({"email": email(), "password": PW}))
        .await;
    assert_error(&r, 403, "SIGNUP_DISABLED");
}

async fn bad_input_is_400_413_415(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let bad =
        |body: Vec<u8>| TestRequest::new("POST", "/auth/signup").raw_body("application/json", body);
    for body in [
        b"{".to_vec(),
        b"[1,2]".to_vec(),
        b"\"x\"".to_vec(),
        vec![b'{', 0xff, 0xfe, b'}'],
        b"{\"email\": 5, \"password\": true}".to_vec(),
    ] {
        let r = env.send(bad(body.clone())).await;
        assert_error(&r, 400, "VALIDATION_FAILED");
        assert!(
            r.json()["details"]["validationErrors"].is_object(),
            "{}",
            r.json()
        );
    }
    let r = env.post("/auth/signup", json!({})).await;
    assert_error(&r, 400, "VALIDATION_FAILED");
    let errs = &r.json()["details"]["validationErrors"];
    assert!(
        errs["email"].is_array() && errs["password"].is_array(),
        "{errs}"
    );
    let r = env
        .send(TestRequest::new("POST", "/auth/signup").header("content-type", "application/json"))
        .await;
    assert_error(&r, 400, "VALIDATION_FAILED");
    for e in [
        "not-an-email",
        "jöhn@example.com",
        "a@b",
        &format!("{}@example.com", "x".repeat(10_000)),
    ] {
        let r = env
            .post("/auth/signup", json!({"email": e, "password": PW}))
            .await;
        assert_error(&r, 400, "VALIDATION_FAILED");
    }
    let r = env
        .post(
            "/auth/signup",
            json!({"email": email(), "password": PW, "firstName": "x".repeat(101)}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_FAILED");
    let r = env
        .post(
            "/auth/signup",
            json!({"email": email(), "password": PW, "firstName": "a\u{0000}b"}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_FAILED");
    let r = env
        .post(
            "/auth/signup",
            json!({"email": email(), "password": PW, "metadata": {"x": "y".repeat(5000)}}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_FAILED");
    let r = env
        .post(
            "/auth/signup",
            json!({"email": email(), "password": "password"}),
        )
        .await;
    assert_error(&r, 400, "SIGNUP_WEAK_PASSWORD");
    assert!(
        !r.json()["details"]["errors"]
            .as_array()
            .expect("errors")
            .is_empty()
    );
    let r = env
        .post(
            "/auth/signup",
            json!({"email": email(), "password": "short"}),
        )
        .await;
    assert_error(&r, 400, "SIGNUP_WEAK_PASSWORD");
    let r = env
        .post(
            "/auth/login",
            json!({"identifier": "a@b.co", "password": "x".repeat(10_000)}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_FAILED");
    // 413: declared and streamed; the check comes before authentication and parsing.
    let big = vec![b' '; 64 * 1024 + 1];
    let r = env.send(bad(big.clone())).await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
    let mut chunked = bad(big);
    chunked.chunked = true;
    let r = env.send(chunked).await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
    let r = env
        .send(
            TestRequest::new("POST", "/auth/change-password")
                .raw_body("application/json", vec![b' '; 70_000]),
        )
        .await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
    // 415, after authentication (401 first on an auth route).
    let r = env
        .send(TestRequest::new("POST", "/auth/signup").raw_body("text/plain", b"{}".to_vec()))
        .await;
    assert_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE");
    let r = env
        .send(
            TestRequest::new("POST", "/auth/login")
                .raw_body("application/JSON; charset=utf-8", b"{}".to_vec()),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_FAILED");
    let r = env
        .send(
            TestRequest::new("POST", "/auth/change-password").raw_body("text/plain", b"x".to_vec()),
        )
        .await;
    assert_error(&r, 401, "AUTH_TOKEN_MISSING");
    // Nothing was written by any of the above.
    if b.url.is_none() {
        // A fresh SQLite database per case: not one user row was written.
        assert_eq!(
            users::Entity::find()
                .count(env.db().await)
                .await
                .expect("count"),
            0
        );
    }
}

async fn login_errors_are_uniform(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    signup_verified(&env, &e).await;
    let wrong = login(&env, &e, "Wrong-Password-1").await;
    let unknown = login(&env, &email(), "Wrong-Password-1").await;
    let ghost_name = format!("nobody_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let uname = login(&env, &ghost_name, "Wrong-Password-1").await;
    for r in [&wrong, &unknown, &uname] {
        assert_error(r, 401, "AUTH_INVALID_CREDENTIALS");
        assert_eq!(r.json()["message"], wrong.json()["message"]);
        assert!(r.json().get("details").is_none());
    }
    let r = env.post("/auth/login", json!({"identifier": e})).await;
    assert_error(&r, 400, "VALIDATION_FAILED");
    // An admin-disabled account: 403 only after the right password.
    update_user(&env, &e, users::Column::Disabled, true.into()).await;
    assert_error(
        &login(&env, &e, "Wrong-Password-1").await,
        401,
        "AUTH_INVALID_CREDENTIALS",
    );
    assert_error(&login(&env, &e, PW).await, 403, "AUTH_ACCOUNT_LOCKED");
}

async fn lockout_per_identifier(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    signup_verified(&env, &e).await;
    for _ in 0..5 {
        assert_error(
            &login(&env, &e, "Wrong-Password-1").await,
            401,
            "AUTH_INVALID_CREDENTIALS",
        );
    }
    let r = login(&env, &e, PW).await;
    assert_error(&r, 429, "RATE_LIMIT_LOGIN");
    assert!(r.json()["details"]["retryAfter"].as_u64().expect("retry") <= 15 * 60);
    // Unknown identifiers lock the same way.
    let ghost = email();
    for _ in 0..5 {
        assert_error(
            &login(&env, &ghost, "Wrong-Password-1").await,
            401,
            "AUTH_INVALID_CREDENTIALS",
        );
    }
    assert_error(
        &login(&env, &ghost, "Wrong-Password-1").await,
        429,
        "RATE_LIMIT_LOGIN",
    );
    env.clock.advance(Duration::from_secs(15 * 60 + 1));
    let r = login(&env, &e, PW).await;
    assert_eq!(r.status, 200, "{}", r.json());
    // Parallel failures are all counted: 8 at once lock the account.
    let e2 = email();
    signup_verified(&env, &e2).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| login(&env, &e2, "Wrong-Password-1"))
        .collect();
    let statuses: Vec<u16> = futures_join(tasks)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert_error(&login(&env, &e2, PW).await, 429, "RATE_LIMIT_LOGIN");
}

pub(super) async fn futures_join<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    futures_util::future::join_all(fs).await
}

async fn lockout_per_ip(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| c.lockout.ip_max_attempts = 4).await;
    let e = email();
    signup_verified(&env, &e).await;
    for _ in 0..4 {
        assert_error(
            &login(&env, &email(), "Wrong-Password-1").await,
            401,
            "AUTH_INVALID_CREDENTIALS",
        );
    }
    assert_error(&login(&env, &e, PW).await, 429, "RATE_LIMIT_LOGIN");
    // Another client address is not affected; an untrusted peer cannot pick its address.
    let r = env
        .send(
            TestRequest::json(
                "POST",
                "/auth/login",
                &json!({"identifier": e, "password": PW}),
            )
            .header("x-forwarded-for", "10.200.0.1"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
}

async fn parallel_signups_one_user(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    let reqs: Vec<_> = (0..16)
        .map(|_| env.post("/auth/signup", json!({"email": e, "password": PW})))
        .collect();
    let rs = futures_join(reqs).await;
    assert!(
        rs.iter().all(|r| r.status == 201),
        "{:?}",
        rs.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let n = users::Entity::find()
        .filter(users::Column::Email.eq(&e))
        .count(env.db().await)
        .await
        .expect("count");
    assert_eq!(n, 1);
    let none = Env::start(door, &b.url(), |c| {
        c.signup.verification = Verification::None
    })
    .await;
    let e = email();
    let reqs: Vec<_> = (0..16)
        .map(|_| none.post("/auth/signup", json!({"email": e, "password": PW})))
        .collect();
    let rs = futures_join(reqs).await;
    assert_eq!(rs.iter().filter(|r| r.status == 201).count(), 1);
    assert!(
        rs.iter()
            .filter(|r| r.status != 201)
            .all(|r| r.status == 409 && r.code() == "SIGNUP_EMAIL_EXISTS")
    );
}

async fn live_tokens(env: &Env, session_id: &str) -> u64 {
    refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::SessionId.eq(session_id))
        .filter(refresh_tokens::Column::State.eq(refresh_tokens::CURRENT))
        .count(env.db().await)
        .await
        .expect("count")
}

pub(super) fn sid_of(access: &str) -> String {
    use base64::Engine;
    let payload = access.split('.').nth(1).expect("jwt");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("b64");
    let v: Value = serde_json::from_slice(&bytes).expect("claims");
    for k in [
        "sub", "sid", "jti", "roles", "iat", "exp", "iss", "aud", "type",
    ] {
        assert!(v.get(k).is_some(), "claim {k}");
    }
    assert_eq!(v["type"], "access");
    assert!(v["aud"].is_string());
    v["sid"].as_str().expect("sid").to_string()
}

async fn refresh_rotation_and_reuse(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    let t0 = signup_verified(&env, &e).await;
    let r1 = env
        .post("/auth/refresh", json!({"refreshToken": t0["refreshToken"]}))
        .await;
    assert_eq!(r1.status, 200, "{}", r1.json());
    let t1 = r1.json();
    assert_ne!(t1["refreshToken"], t0["refreshToken"]);
    assert_eq!(
        sid_of(&token(&t1, "accessToken")),
        sid_of(&token(&t0, "accessToken"))
    );
    assert_error(
        &env.get("/api/data", Some(&token(&t0, "accessToken"))).await,
        401,
        "AUTH_TOKEN_INVALID",
    );
    assert_eq!(
        env.get("/api/data", Some(&token(&t1, "accessToken")))
            .await
            .status,
        200
    );
    // Within the reuse interval: exchanged again; the earlier exchange's pair stops working.
    env.clock.advance(Duration::from_secs(5));
    let r2 = env
        .post("/auth/refresh", json!({"refreshToken": t0["refreshToken"]}))
        .await;
    assert_eq!(r2.status, 200, "{}", r2.json());
    let t2 = r2.json();
    assert_error(
        &env.post("/auth/refresh", json!({"refreshToken": t1["refreshToken"]}))
            .await,
        401,
        "AUTH_TOKEN_INVALID",
    );
    assert_error(
        &env.get("/api/data", Some(&token(&t1, "accessToken"))).await,
        401,
        "AUTH_TOKEN_INVALID",
    );
    assert_eq!(
        env.get("/api/data", Some(&token(&t2, "accessToken")))
            .await
            .status,
        200
    );
    // After the interval: reuse kills the family.
    env.clock.advance(Duration::from_secs(11));
    let r = env
        .post("/auth/refresh", json!({"refreshToken": t0["refreshToken"]}))
        .await;
    assert_error(&r, 401, "AUTH_TOKEN_REUSE_DETECTED");
    assert_error(
        &env.get("/api/data", Some(&token(&t2, "accessToken"))).await,
        401,
        "AUTH_SESSION_NOT_FOUND",
    );
    assert_error(
        &env.post("/auth/refresh", json!({"refreshToken": t2["refreshToken"]}))
            .await,
        401,
        "AUTH_TOKEN_INVALID",
    );
    let sus = audit_log::Entity::find()
        .filter(audit_log::Column::EventType.eq("SUSPICIOUS_ACTIVITY"))
        .filter(audit_log::Column::UserId.eq(t0["user"]["sub"].as_str().expect("sub")))
        .count(env.db().await)
        .await
        .expect("count");
    assert_eq!(sus, 1);
    // Unknown and missing tokens.
    assert_error(
        &env.post("/auth/refresh", json!({"refreshToken": "nope"}))
            .await,
        401,
        "AUTH_TOKEN_INVALID",
    );
    assert_error(
        &env.post("/auth/refresh", json!({})).await,
        401,
        "AUTH_TOKEN_MISSING",
    );
    // The absolute lifetime caps a session.
    let t = login(&env, &e, PW).await.json();
    env.clock.advance(Duration::from_secs(31 * 86_400));
    assert_error(
        &env.post("/auth/refresh", json!({"refreshToken": t["refreshToken"]}))
            .await,
        401,
        "AUTH_SESSION_EXPIRED",
    );
}

async fn parallel_refreshes_leave_one_live_token(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let t = signup_verified(&env, &email()).await;
    let sid = sid_of(&token(&t, "accessToken"));
    let reqs: Vec<_> = (0..16)
        .map(|_| env.post("/auth/refresh", json!({"refreshToken": t["refreshToken"]})))
        .collect();
    let rs = futures_join(reqs).await;
    let ok: Vec<&TestResponse> = rs.iter().filter(|r| r.status == 200).collect();
    assert!(!ok.is_empty());
    assert!(
        rs.iter().all(|r| r.status == 200 || r.status == 401),
        "{:?}",
        rs.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(live_tokens(&env, &sid).await <= 1);
    // Exactly one of the returned refresh tokens still works.
    let mut working = 0;
    for r in ok {
        env.clock.advance(Duration::from_secs(11));
        let again = env
            .post(
                "/auth/refresh",
                json!({"refreshToken": r.json()["refreshToken"]}),
            )
            .await;
        if again.status == 200 {
            working += 1;
            break;
        }
    }
    assert_eq!(working, 1);
}

async fn logout_revoke_and_logout_all(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    let access = token(&t, "accessToken");
    let r = env
        .send(TestRequest::json("POST", "/auth/logout", &json!({})).bearer(&access))
        .await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})));
    assert!(
        r.set_cookies().is_empty(),
        "json delivery clears no cookies"
    );
    assert_error(
        &env.get("/api/data", Some(&access)).await,
        401,
        "AUTH_SESSION_NOT_FOUND",
    );
    let r = env
        .send(TestRequest::json("POST", "/auth/logout", &json!({})).bearer(&access))
        .await;
    assert_eq!(r.status, 200, "idempotent");
    assert_error(
        &env.post("/auth/refresh", json!({"refreshToken": t["refreshToken"]}))
            .await,
        401,
        "AUTH_TOKEN_INVALID",
    );
    assert_error(
        &env.post("/auth/logout", json!({})).await,
        401,
        "AUTH_TOKEN_MISSING",
    );
    // Logout with only a refresh token.
    let t2 = login(&env, &e, PW).await.json();
    let r = env
        .post("/auth/logout", json!({"refreshToken": t2["refreshToken"]}))
        .await;
    assert_eq!(r.status, 200);
    assert_error(
        &env.get("/api/data", Some(&token(&t2, "accessToken"))).await,
        401,
        "AUTH_SESSION_NOT_FOUND",
    );
    // Revoke: always success, kills the family.
    let t3 = login(&env, &e, PW).await.json();
    assert_eq!(
        env.post("/auth/revoke", json!({"refreshToken": "garbage"}))
            .await
            .json(),
        json!({"success": true})
    );
    assert_eq!(
        env.post("/auth/revoke", json!({"refreshToken": t3["refreshToken"]}))
            .await
            .status,
        200
    );
    assert_error(
        &env.get("/api/data", Some(&token(&t3, "accessToken"))).await,
        401,
        "AUTH_SESSION_NOT_FOUND",
    );
    assert_error(
        &env.post("/auth/revoke", json!({})).await,
        400,
        "VALIDATION_FAILED",
    );
    // Logout-all counts every live session, the current one included.
    let a = login(&env, &e, PW).await.json();
    login(&env, &e, PW).await;
    login(&env, &e, PW).await;
    let r = env
        .send(
            TestRequest::json("POST", "/auth/logout-all", &json!({}))
                .bearer(&token(&a, "accessToken")),
        )
        .await;
    assert_eq!(r.json(), json!({"revokedCount": 3}));
    assert_error(
        &env.get("/api/data", Some(&token(&a, "accessToken"))).await,
        401,
        "AUTH_SESSION_NOT_FOUND",
    );
}

async fn sessions_list_and_delete(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    let access = token(&t, "accessToken");
    let r = env.send(TestRequest::json("POST", "/auth/login", &json!({"identifier": e, "password": PW, "deviceName": "Phone", "deviceType": "mobile"})).header("user-agent", "TestAgent/1")).await;
    let other = r.json();
    let r = env.get("/auth/sessions", Some(&access)).await;
    let list = r.json()["sessions"].as_array().expect("sessions").clone();
    assert_eq!(list.len(), 2);
    let cur = list
        .iter()
        .find(|s| s["isCurrent"] == true)
        .expect("current");
    assert_eq!(cur["sessionId"], sid_of(&access).as_str());
    let phone = list
        .iter()
        .find(|s| s["isCurrent"] == false)
        .expect("other");
    assert_eq!(
        (
            phone["deviceName"].as_str(),
            phone["deviceType"].as_str(),
            phone["userAgent"].as_str()
        ),
        (Some("Phone"), Some("mobile"), Some("TestAgent/1"))
    );
    assert_eq!(phone["ipAddress"], env.ip.as_str());
    for k in ["authMethod", "createdAt", "lastActivityAt", "expiresAt"] {
        assert!(phone[k].is_string(), "{k}");
    }
    // Another user's session id is 404, as are malformed ids.
    let stranger = signup_verified(&env, &email()).await;
    let sid = phone["sessionId"].as_str().expect("sid");
    let r = env
        .send(
            TestRequest::new("DELETE", &format!("/auth/sessions/{sid}"))
                .bearer(&token(&stranger, "accessToken")),
        )
        .await;
    assert_error(&r, 404, "RESOURCE_NOT_FOUND");
    let r = env
        .send(TestRequest::new("DELETE", "/auth/sessions/not-a-uuid").bearer(&access))
        .await;
    assert_error(&r, 404, "RESOURCE_NOT_FOUND");
    let r = env
        .send(TestRequest::new("DELETE", &format!("/auth/sessions/{sid}")).bearer(&access))
        .await;
    assert_eq!(
        r.json(),
        json!({"success": true, "wasCurrentSession": false})
    );
    assert_error(
        &env.get("/api/data", Some(&token(&other, "accessToken")))
            .await,
        401,
        "AUTH_SESSION_NOT_FOUND",
    );
    let own = sid_of(&access);
    let r = env
        .send(TestRequest::new("DELETE", &format!("/auth/sessions/{own}")).bearer(&access))
        .await;
    assert_eq!(
        r.json(),
        json!({"success": true, "wasCurrentSession": true})
    );
}

async fn forgot_password_code_flow(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    let known = env
        .post("/auth/forgot-password", json!({"identifier": e}))
        .await;
    let unknown = env
        .post("/auth/forgot-password", json!({"identifier": email()}))
        .await;
    assert_eq!(known.status, 200);
    assert_eq!(
        known.body, unknown.body,
        "same bytes for known and unknown accounts"
    );
    assert_eq!(
        known.json(),
        json!({"success": true, "deliveryMedium": "email", "expiresIn": 900})
    );
    let mail = env.mail(&e, 2).await;
    let code = extract_code(&mail.text).expect("code");
    assert!(mail.text.contains("http://app.test/reset-password?token="));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        let r = env
            .post(
                "/auth/forgot-password/confirm",
                json!({"identifier": e, "code": wrong, "newPassword": PW2}),
            )
            .await;
        assert_error(&r, 400, "PASSWORD_RESET_CODE_INVALID");
    }
    let r = env
        .post(
            "/auth/forgot-password/confirm",
            json!({"identifier": e, "code": code, "newPassword": PW2}),
        )
        .await;
    assert_error(&r, 400, "PASSWORD_RESET_MAX_ATTEMPTS");
    // Unknown identifiers get the same answers.
    let ghost = email();
    for _ in 0..3 {
        let r = env
            .post(
                "/auth/forgot-password/confirm",
                json!({"identifier": ghost, "code": wrong, "newPassword": PW2}),
            )
            .await;
        assert_error(&r, 400, "PASSWORD_RESET_CODE_INVALID");
    }
    let r = env
        .post(
            "/auth/forgot-password/confirm",
            json!({"identifier": ghost, "code": wrong, "newPassword": PW2}),
        )
        .await;
    assert_error(&r, 400, "PASSWORD_RESET_MAX_ATTEMPTS");
    // A new request gives a new code; weak passwords are refused without using the code.
    env.post("/auth/forgot-password", json!({"identifier": e}))
        .await;
    let code = extract_code(&env.mail(&e, 3).await.text).expect("code");
    let r = env
        .post(
            "/auth/forgot-password/confirm",
            json!({"identifier": e, "code": code, "newPassword": "password1"}),
        )
        .await;
    assert_error(&r, 400, "SIGNUP_WEAK_PASSWORD");
    let r = env
        .post(
            "/auth/forgot-password/confirm",
            json!({"identifier": e, "code": code, "newPassword": PW2}),
        )
        .await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})));
    assert_error(
        &env.get("/api/data", Some(&token(&t, "accessToken"))).await,
        401,
        "AUTH_SESSION_NOT_FOUND",
    );
    assert_error(&login(&env, &e, PW).await, 401, "AUTH_INVALID_CREDENTIALS");
    assert_eq!(login(&env, &e, PW2).await.status, 200);
    let r = env
        .post(
            "/auth/forgot-password/confirm",
            json!({"identifier": e, "code": code, "newPassword": PW}),
        )
        .await;
    assert_error(&r, 400, "PASSWORD_RESET_CODE_INVALID");
    // Expiry.
    env.post("/auth/forgot-password", json!({"identifier": e}))
        .await;
    let code = extract_code(&env.mail(&e, 4).await.text).expect("code");
    env.clock.advance(Duration::from_secs(16 * 60));
    let r = env
        .post(
            "/auth/forgot-password/confirm",
            json!({"identifier": e, "code": code, "newPassword": PW}),
        )
        .await;
    assert_error(&r, 400, "PASSWORD_RESET_CODE_EXPIRED");
    // Past 3 requests an hour: the same answer, no mail.
    for _ in 0..3 {
        env.post("/auth/forgot-password", json!({"identifier": e}))
            .await;
    }
    let sent = env
        .outbox
        .wait_emails_to(&e, 99, Duration::from_millis(300))
        .await
        .len();
    let r = env
        .post("/auth/forgot-password", json!({"identifier": e}))
        .await;
    assert_eq!(r.json(), known.json());
    assert_eq!(
        env.outbox
            .wait_emails_to(&e, 99, Duration::from_millis(300))
            .await
            .len(),
        sent
    );
}

async fn reset_password_link_flow(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    signup_verified(&env, &e).await;
    env.post("/auth/forgot-password", json!({"identifier": e}))
        .await;
    let tok = extract_token(&env.mail(&e, 2).await.text).expect("token");
    let r = env
        .post(
            "/auth/reset-password",
            json!({"token": "nope", "newPassword": PW2}),
        )
        .await;
    assert_error(&r, 400, "PASSWORD_RESET_CODE_INVALID");
    let r = env
        .post(
            "/auth/reset-password",
            json!({"token": tok, "newPassword": PW2}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let r = env
        .post(
            "/auth/reset-password",
            json!({"token": tok, "newPassword": PW}),
        )
        .await;
    assert_error(&r, 400, "PASSWORD_RESET_CODE_INVALID");
    assert_eq!(login(&env, &e, PW2).await.status, 200);
    env.post("/auth/forgot-password", json!({"identifier": e}))
        .await;
    let tok = extract_token(&env.mail(&e, 3).await.text).expect("token");
    env.clock.advance(Duration::from_secs(16 * 60));
    let r = env
        .post(
            "/auth/reset-password",
            json!({"token": tok, "newPassword": PW}),
        )
        .await;
    assert_error(&r, 400, "PASSWORD_RESET_CODE_EXPIRED");
    // A reset marks the email verified and clears the lockout.
    let e2 = email();
    env.post("/auth/signup", json!({"email": e2, "password": PW}))
        .await;
    for _ in 0..5 {
        login(&env, &e2, "Wrong-Password-1").await;
    }
    assert_error(&login(&env, &e2, PW).await, 429, "RATE_LIMIT_LOGIN");
    env.post("/auth/forgot-password", json!({"identifier": e2}))
        .await;
    let tok = extract_token(&env.mail(&e2, 2).await.text).expect("token");
    assert_eq!(
        env.post(
            "/auth/reset-password",
            json!({"token": tok, "newPassword": PW2})
        )
        .await
        .status,
        200
    );
    let r = login(&env, &e2, PW2).await;
    assert!(
        r.json()["accessToken"].is_string(),
        "verified and unlocked: {}",
        r.json()
    );
}

async fn forgot_password_ip_limit(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| c.password.reset_ip_max_per_hour = 3).await;
    for _ in 0..3 {
        assert_eq!(
            env.post("/auth/forgot-password", json!({"identifier": email()}))
                .await
                .status,
            200
        );
    }
    let r = env
        .post("/auth/forgot-password", json!({"identifier": email()}))
        .await;
    assert_error(&r, 429, "RATE_LIMIT_PASSWORD_RESET");
    env.clock.advance(Duration::from_secs(3601));
    assert_eq!(
        env.post("/auth/forgot-password", json!({"identifier": email()}))
            .await
            .status,
        200
    );
}

async fn change_password_rules(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| c.password.history_count = 3).await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    let other = login(&env, &e, PW).await.json();
    let access = token(&t, "accessToken");
    let cp = |body: Value, tok: String| {
        TestRequest::json("POST", "/auth/change-password", &body).bearer(&tok)
    };
    let r = env
        .send(cp(
            json!({"oldPassword": "Wrong-Password-1", "newPassword": PW2}),
            access.clone(),
        ))
        .await;
    assert_error(&r, 400, "PASSWORD_INCORRECT");
    let r = env
        .send(cp(
            json!({"oldPassword": PW, "newPassword": "password"}),
            access.clone(),
        ))
        .await;
    assert_error(&r, 400, "SIGNUP_WEAK_PASSWORD");
    let r = env
        .send(cp(
            json!({"oldPassword": PW, "newPassword": PW}),
            access.clone(),
        ))
        .await;
    assert_error(&r, 400, "PASSWORD_REUSED");
    let r = env
        .send(cp(
            json!({"oldPassword": PW, "newPassword": PW2}),
            access.clone(),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let n = r.json();
    assert_eq!(n["success"], true);
    let new_access = token(&n, "accessToken");
    assert!(
        n["refreshToken"].is_string()
            && n["accessTokenExpiresAt"].is_i64()
            && n["refreshTokenExpiresAt"].is_i64()
    );
    assert_eq!(
        sid_of(&new_access),
        sid_of(&access),
        "same session, new pair"
    );
    assert_eq!(env.get("/api/data", Some(&new_access)).await.status, 200);
    assert_error(
        &env.get("/api/data", Some(&token(&other, "accessToken")))
            .await,
        401,
        "AUTH_SESSION_NOT_FOUND",
    );
    // History: the previous password is refused.
    let r = env
        .send(cp(
            json!({"oldPassword": PW2, "newPassword": PW}),
            new_access.clone(),
        ))
        .await;
    assert_error(&r, 400, "PASSWORD_REUSED");
    // Wrong passwords on authenticated requests count toward lockout (the right ones above
    // cleared the count, as a successful login does).
    for _ in 0..5 {
        env.send(cp(
            json!({"oldPassword": "Wrong-Password-1", "newPassword": "Another-Pass-99"}),
            new_access.clone(),
        ))
        .await;
    }
    assert_error(&login(&env, &e, PW2).await, 429, "RATE_LIMIT_LOGIN");
}

async fn change_email_flow(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let (e, new) = (email(), email());
    let t = signup_verified(&env, &e).await;
    let other = login(&env, &e, PW).await.json();
    let access = token(&t, "accessToken");
    let ce = |body: Value| TestRequest::json("POST", "/auth/change-email", &body).bearer(&access);
    assert_error(
        &env.send(ce(json!({"newEmail": new, "password": "Wrong-Password-1"})))
            .await,
        400,
        "PASSWORD_INCORRECT",
    );
    let r = env.send(ce(json!({"newEmail": new, "password": PW}))).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["success"], true);
    let code = extract_code(&env.mail(&new, 1).await.text).expect("code");
    let confirm = |c: &str| {
        TestRequest::json("POST", "/auth/change-email/confirm", &json!({"code": c})).bearer(&access)
    };
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = env.send(confirm(wrong)).await;
    assert_error(&r, 400, "VERIFY_CODE_INVALID");
    assert_eq!(r.json()["details"]["attemptsRemaining"], 2);
    let r = env.send(confirm(&code)).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["email"], new.as_str());
    assert_eq!(r.json()["isEmailVerified"], true);
    let notice = env.mail(&e, 2).await;
    assert!(extract_code(&notice.text).is_none());
    assert_error(
        &env.get("/api/data", Some(&token(&other, "accessToken")))
            .await,
        401,
        "AUTH_SESSION_NOT_FOUND",
    );
    assert_eq!(env.get("/api/data", Some(&access)).await.status, 200);
    assert_eq!(login(&env, &new, PW).await.status, 200);
    // An address of another account: the same answer, a notice to its owner, nothing changes.
    let taken = email();
    signup_verified(&env, &taken).await;
    let r = env
        .send(ce(json!({"newEmail": taken, "password": PW})))
        .await;
    assert_eq!(r.status, 200);
    assert!(extract_code(&env.mail(&taken, 2).await.text).is_none());
    assert_error(
        &env.send(confirm("123456")).await,
        400,
        "VERIFY_CODE_INVALID",
    );
}

async fn resend_verification_rules(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| {
        c.signup.verification = Verification::None
    })
    .await;
    let e = email();
    let t = env
        .post("/auth/signup", json!({"email": e, "password": PW}))
        .await
        .json();
    let access = token(&t, "accessToken");
    let rv = || TestRequest::json("POST", "/auth/resend-verification", &json!({})).bearer(&access);
    let r = env.send(rv()).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert!(
        r.json()["destination"]
            .as_str()
            .expect("dest")
            .contains("***")
    );
    assert_error(&env.send(rv()).await, 429, "RATE_LIMIT_RESEND");
    let tok = extract_token(&env.mail(&e, 1).await.text).expect("link");
    assert_eq!(
        env.get(&format!("/auth/verify-email?token={tok}"), None)
            .await
            .status,
        200
    );
    env.clock.advance(Duration::from_secs(61));
    assert_error(&env.send(rv()).await, 400, "VERIFY_ALREADY_VERIFIED");
}

async fn delete_account_removes_everything(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    let access = token(&t, "accessToken");
    let del = |pw: &str| {
        TestRequest::json("DELETE", "/auth/account", &json!({"password": pw})).bearer(&access)
    };
    assert_error(
        &env.send(del("Wrong-Password-1")).await,
        400,
        "PASSWORD_INCORRECT",
    );
    let r = env.send(del(PW)).await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})));
    assert_error(
        &env.get("/api/data", Some(&access)).await,
        401,
        "AUTH_SESSION_NOT_FOUND",
    );
    assert_error(&login(&env, &e, PW).await, 401, "AUTH_INVALID_CREDENTIALS");
    let db = env.db().await;
    let sub = t["user"]["sub"].as_str().expect("sub");
    assert_eq!(
        users::Entity::find()
            .filter(users::Column::Email.eq(&e))
            .count(db)
            .await
            .expect("n"),
        0
    );
    assert_eq!(
        sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(sub))
            .count(db)
            .await
            .expect("n"),
        0
    );
    assert_eq!(
        audit_log::Entity::find()
            .filter(audit_log::Column::UserId.eq(sub))
            .count(db)
            .await
            .expect("n"),
        0
    );
}

async fn profile_update(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let t = signup_verified(&env, &email()).await;
    let access = token(&t, "accessToken");
    let put = |v: Value| TestRequest::json("PUT", "/auth/profile", &v).bearer(&access);
    let r = env
        .send(put(
            json!({"firstName": "Ada", "lastName": "Lovelace", "metadata": {"k": 1}}),
        ))
        .await;
    assert_eq!(r.status, 200);
    let p = r.json();
    assert_eq!(
        (p["firstName"].as_str(), p["lastName"].as_str()),
        (Some("Ada"), Some("Lovelace"))
    );
    assert_eq!(p["metadata"], json!({"k": 1}));
    let r = env.send(put(json!({"lastName": null}))).await;
    assert_eq!(r.json()["lastName"], Value::Null);
    assert_eq!(r.json()["firstName"], "Ada");
    let r = env
        .send(put(json!({"firstName": "<script>alert(1)</script>"})))
        .await;
    assert_eq!(
        r.json()["firstName"],
        "<script>alert(1)</script>",
        "stored exactly as sent"
    );
    let other = signup_verified(&env, &email()).await;
    let uname = format!("n{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    assert_eq!(env.send(put(json!({"username": uname}))).await.status, 200);
    let r = env
        .send(
            TestRequest::json("PUT", "/auth/profile", &json!({"username": uname}))
                .bearer(&token(&other, "accessToken")),
        )
        .await;
    assert_error(&r, 409, "SIGNUP_USERNAME_EXISTS");
    assert_error(
        &env.send(put(json!({"username": "a b"}))).await,
        400,
        "VALIDATION_FAILED",
    );
}

fn cookie_header(r: &TestResponse) -> String {
    [
        "nauth_access_token",
        "nauth_refresh_token",
        "nauth_csrf_token",
    ]
    .iter()
    .filter_map(|n| r.cookie(n).map(|v| format!("{n}={v}")))
    .collect::<Vec<_>>()
    .join("; ")
}

async fn cookie_mode_and_csrf(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| {
        c.token_delivery.mode = DeliveryMode::Cookies
    })
    .await;
    let e = email();
    signup_verified(&env, &e).await;
    let r = login(&env, &e, PW).await;
    assert_eq!(r.status, 200);
    let body = r.json();
    for k in [
        "accessToken",
        "refreshToken",
        "accessTokenExpiresAt",
        "refreshTokenExpiresAt",
    ] {
        assert!(body.get(k).is_none(), "{k} stripped from the body");
    }
    assert!(body["user"].is_object());
    let set = r.set_cookies();
    assert_eq!(set.len(), 3, "{set:?}");
    let find = |n: &str| {
        set.iter()
            .find(|c| c.starts_with(&format!("{n}=")))
            .cloned()
            .expect(n)
    };
    let access_c = find("nauth_access_token");
    assert!(
        access_c.ends_with("; Path=/; Max-Age=900; HttpOnly; Secure; SameSite=Strict"),
        "{access_c}"
    );
    let refresh_c = find("nauth_refresh_token");
    assert!(
        refresh_c.ends_with("; Path=/auth; Max-Age=604800; HttpOnly; Secure; SameSite=Strict"),
        "{refresh_c}"
    );
    let csrf_c = find("nauth_csrf_token");
    assert!(
        csrf_c.ends_with("; Path=/; Max-Age=604800; Secure; SameSite=Strict"),
        "{csrf_c}"
    );
    let cookies = cookie_header(&r);
    let csrf = r.cookie("nauth_csrf_token").expect("csrf");
    let with = |req: TestRequest| req.header("cookie", &cookies);
    assert_eq!(
        env.send(with(TestRequest::new("GET", "/api/data")))
            .await
            .status,
        200
    );
    assert_eq!(
        env.send(with(TestRequest::new("GET", "/auth/profile")))
            .await
            .status,
        200
    );
    let cp = json!({"oldPassword": PW, "newPassword": PW2});
    let r = env
        .send(with(TestRequest::json(
            "POST",
            "/auth/change-password",
            &cp,
        )))
        .await;
    assert_error(&r, 403, "AUTH_CSRF_TOKEN_MISSING");
    let r = env
        .send(
            with(TestRequest::json("POST", "/auth/change-password", &cp))
                .header("x-csrf-token", "forged.value"),
        )
        .await;
    assert_error(&r, 403, "AUTH_CSRF_TOKEN_INVALID");
    // A CSRF token of another session (another login of the same user) is refused.
    let other = login(&env, &e, PW).await;
    let other_csrf = other.cookie("nauth_csrf_token").expect("csrf");
    let r = env
        .send(
            TestRequest::json("POST", "/auth/change-password", &cp)
                .header("cookie", &cookies.replace(&csrf, &other_csrf))
                .header("x-csrf-token", &other_csrf),
        )
        .await;
    assert_error(&r, 403, "AUTH_CSRF_TOKEN_INVALID");
    // App routes apply the same rule.
    let r = env
        .send(with(TestRequest::json("POST", "/api/data", &json!({}))))
        .await;
    assert_error(&r, 403, "AUTH_CSRF_TOKEN_MISSING");
    let r = env
        .send(
            with(TestRequest::json("POST", "/auth/change-password", &cp))
                .header("x-csrf-token", &csrf),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert!(r.json().get("accessToken").is_none());
    assert_eq!(r.set_cookies().len(), 3);
    let cookies = cookie_header(&r);
    // A bearer JWT is refused in cookie mode.
    let access = r.cookie("nauth_access_token").expect("access");
    assert_error(
        &env.get("/api/data", Some(&access)).await,
        401,
        "AUTH_BEARER_NOT_ALLOWED",
    );
    // Refresh by cookie, no CSRF header needed.
    let r = env
        .send(TestRequest::new("POST", "/auth/refresh").header("cookie", &cookies))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.set_cookies().len(), 3);
    let cookies = cookie_header(&r);
    // Logout clears the three cookies with their paths.
    let r = env
        .send(TestRequest::new("POST", "/auth/logout").header("cookie", &cookies))
        .await;
    assert_eq!(r.status, 200);
    let cleared = r.set_cookies();
    assert_eq!(cleared.len(), 3, "{cleared:?}");
    assert!(
        cleared
            .iter()
            .all(|c| c.contains("=; Path=/") && c.contains("Max-Age=0"))
    );
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("nauth_refresh_token=; Path=/auth;"))
    );
    assert_error(
        &env.send(TestRequest::new("GET", "/api/data").header("cookie", &cookies))
            .await,
        401,
        "AUTH_SESSION_NOT_FOUND",
    );
}

async fn json_mode_rejects_cookies(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let t = signup_verified(&env, &email()).await;
    let access = token(&t, "accessToken");
    let r = env
        .send(
            TestRequest::new("GET", "/api/data")
                .header("cookie", &format!("nauth_access_token={access}")),
        )
        .await;
    assert_error(&r, 401, "AUTH_COOKIES_NOT_ALLOWED");
    // Bearer plus cookie: the bearer alone decides.
    let r = env
        .send(
            TestRequest::new("GET", "/api/data")
                .bearer(&access)
                .header("cookie", "nauth_access_token=junk"),
        )
        .await;
    assert_eq!(r.status, 200);
}

async fn hybrid_mode(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| {
        c.token_delivery.mode = DeliveryMode::Hybrid
    })
    .await;
    let e = email();
    signup_verified(&env, &e).await;
    let r = login(&env, &e, PW).await;
    assert!(r.json().get("accessToken").is_none());
    assert_eq!(r.set_cookies().len(), 3);
    let r = env
        .send(
            TestRequest::json(
                "POST",
                "/auth/login",
                &json!({"identifier": e, "password": PW}),
            )
            .header("x-token-delivery", "json"),
        )
        .await;
    assert!(r.json()["accessToken"].is_string());
    assert!(r.set_cookies().is_empty());
    let r = env
        .post(
            "/auth/login?mode=token",
            json!({"identifier": e, "password": PW}),
        )
        .await;
    let t = r.json();
    assert!(t["accessToken"].is_string());
    let r = env
        .post("/auth/refresh", json!({"refreshToken": t["refreshToken"]}))
        .await;
    assert!(
        r.json()["accessToken"].is_string(),
        "refreshToken in the body means json"
    );
    let access = token(&r.json(), "accessToken");
    assert_eq!(env.get("/api/data", Some(&access)).await.status, 200);
}

async fn jwt_attacks(door: &dyn Door, b: &Backend) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let env = env(door, b).await;
    let t = signup_verified(&env, &email()).await;
    let access = token(&t, "accessToken");
    let parts: Vec<&str> = access.split('.').collect();
    let none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let mut claims: Value =
        serde_json::from_slice(&b64.decode(parts[1]).expect("b64")).expect("json");
    claims["roles"] = json!(["admin"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    let hs512 = format!(
        "{}.{}.{}",
        b64.encode(br#"{"alg":"HS512","typ":"JWT"}"#),
        parts[1],
        parts[2]
    );
    for bad in [
        none.as_str(),
        forged.as_str(),
        hs512.as_str(),
        "garbage",
        "a.b.c",
    ] {
        assert_error(
            &env.get("/api/data", Some(bad)).await,
            401,
            "AUTH_TOKEN_INVALID",
        );
    }
    assert_error(&env.get("/api/data", None).await, 401, "AUTH_TOKEN_MISSING");
    env.clock.advance(Duration::from_secs(15 * 60 + 31));
    assert_error(
        &env.get("/api/data", Some(&access)).await,
        401,
        "AUTH_TOKEN_EXPIRED",
    );
    // Another deployment's secret: invalid here.
    let other = Env::start(door, &b.url(), |c| {
        c.secret = "another-secret-0123456789abcdef-xyz".into()
    })
    .await;
    assert_error(
        &other
            .get(
                "/api/data",
                Some(&token(
                    &signup_verified(&env, &email()).await,
                    "accessToken",
                )),
            )
            .await,
        401,
        "AUTH_TOKEN_INVALID",
    );
}

async fn token_validation_mode(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| {
        c.session.validation = SessionValidation::Token
    })
    .await;
    let t = signup_verified(&env, &email()).await;
    let access = token(&t, "accessToken");
    env.send(TestRequest::json("POST", "/auth/logout", &json!({})).bearer(&access))
        .await;
    // Stateless: the token lives until it expires.
    assert_eq!(env.get("/api/data", Some(&access)).await.status, 200);
    env.clock.advance(Duration::from_secs(16 * 60));
    assert_error(
        &env.get("/api/data", Some(&access)).await,
        401,
        "AUTH_TOKEN_EXPIRED",
    );
}

async fn framework_level_answers(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    for p in [
        "/auth/nope",
        "/auth/login/",
        "/auth/Login",
        "/auth//login",
        "/auth/%6Cogin",
        "/auth",
        "/nothing/here",
        "/auth/sessions/xyz",
    ] {
        let r = env.send(TestRequest::new("GET", p)).await;
        assert_error(&r, 404, "RESOURCE_NOT_FOUND");
    }
    let r = env.send(TestRequest::new("GET", "/auth/login")).await;
    assert_error(&r, 405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = env.send(TestRequest::new("DELETE", "/auth/profile")).await;
    assert_error(&r, 405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.header("allow"), Some("GET, HEAD, PUT, OPTIONS"));
    let r = env.send(TestRequest::new("OPTIONS", "/auth/profile")).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("allow"), Some("GET, HEAD, PUT, OPTIONS"));
    let r = env.send(TestRequest::new("HEAD", "/auth/profile")).await;
    assert_eq!(r.status, 401);
    assert!(r.body.is_empty());
    // 405 comes before 413 and 401.
    let r = env
        .send(
            TestRequest::new("PUT", "/auth/login").raw_body("application/json", vec![b' '; 70_000]),
        )
        .await;
    assert_error(&r, 405, "METHOD_NOT_ALLOWED");
}

async fn roles_and_optional_user(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    assert_error(
        &env.get("/api/admin", Some(&token(&t, "accessToken"))).await,
        403,
        "FORBIDDEN",
    );
    update_user(&env, &e, users::Column::Roles, "user,admin".into()).await;
    let t = login(&env, &e, PW).await.json();
    assert_eq!(t["user"]["roles"], json!(["user", "admin"]));
    let r = env.get("/api/admin", Some(&token(&t, "accessToken"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["message"], "admin data");
    assert_eq!(
        env.get("/api/optional", None).await.json(),
        json!({"sub": null})
    );
    assert_eq!(
        env.get("/api/optional", Some(&token(&t, "accessToken")))
            .await
            .json()["sub"],
        t["user"]["sub"]
    );
    assert_error(
        &env.get("/api/optional", Some("garbage")).await,
        401,
        "AUTH_TOKEN_INVALID",
    );
}

async fn trusted_origins(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| {
        c.trusted_origins = vec!["https://app.test".into()]
    })
    .await;
    let e = email();
    let r = env
        .send(
            TestRequest::json("POST", "/auth/signup", &json!({"email": e, "password": PW}))
                .header("origin", "https://evil.test"),
        )
        .await;
    assert_error(&r, 403, "FORBIDDEN");
    let r = env
        .send(
            TestRequest::json("POST", "/auth/signup", &json!({"email": e, "password": PW}))
                .header("origin", "https://app.test"),
        )
        .await;
    assert_eq!(r.status, 201);
}

async fn force_change_password(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    signup_verified(&env, &e).await;
    update_user(&env, &e, users::Column::MustChangePassword, true.into()).await;
    let r = login(&env, &e, PW).await;
    let c = r.json();
    assert_eq!(c["challengeName"], "FORCE_CHANGE_PASSWORD");
    assert_eq!(c["challengeParameters"], json!({}));
    let ans = |pw: &str| json!({"session": c["session"], "type": "FORCE_CHANGE_PASSWORD", "newPassword": pw});
    assert_error(
        &env.post("/auth/respond-challenge", ans("password")).await,
        400,
        "SIGNUP_WEAK_PASSWORD",
    );
    let r = env.post("/auth/respond-challenge", ans(PW2)).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert!(r.json()["accessToken"].is_string());
    assert_eq!(login(&env, &e, PW2).await.status, 200);
    // Password expiry forces a change too.
    let exp = Env::start(door, &b.url(), |c| {
        c.password.expiry = Some(Duration::from_secs(90 * 86_400))
    })
    .await;
    let e2 = email();
    signup_verified(&exp, &e2).await;
    exp.clock.advance(Duration::from_secs(91 * 86_400));
    assert_eq!(
        login(&exp, &e2, PW).await.json()["challengeName"],
        "FORCE_CHANGE_PASSWORD"
    );
}

async fn database_down_is_503(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let t = signup_verified(&env, &email()).await;
    env.nauth.close().await;
    let r = env
        .post(
            "/auth/login",
            json!({"identifier": email(), "password": PW}),
        )
        .await;
    assert_error(&r, 503, "SERVICE_UNAVAILABLE");
    assert!(
        !String::from_utf8_lossy(&r.body)
            .to_lowercase()
            .contains("pool"),
        "no internals"
    );
    assert_error(
        &env.get("/api/data", Some(&token(&t, "accessToken"))).await,
        503,
        "SERVICE_UNAVAILABLE",
    );
}

async fn smtp_round_trip(door: &dyn Door, b: &Backend) {
    let capture = crate::capture::SmtpCapture::start()
        .await
        .expect("smtp listener");
    let mut cfg = super::test_config(&b.url());
    cfg.email.provider = nauth_core::config::EmailProvider::Smtp;
    cfg.email.smtp_url = capture.url();
    let nauth = nauth_core::NAuth::new(cfg).await.expect("engine");
    let addr = door.serve(nauth).await;
    let e = email();
    // A client address of its own: per-IP counters of a shared database outlive a run.
    let ip = super::random_client_ip();
    let r = super::send(
        addr,
        &TestRequest::json("POST", "/auth/signup", &json!({"email": e, "password": PW}))
            .header("x-forwarded-for", &ip),
    )
    .await;
    assert_eq!(r.status, 201);
    let mails = capture.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_to, vec![e.clone()]);
    let text = mails[0].body_text();
    let code = extract_code(&text).expect("code in the SMTP mail");
    // Text first, then its HTML alternative carrying the same code.
    assert_eq!(
        mails[0].part_types(),
        ["multipart/alternative", "text/plain", "text/html"]
    );
    let html = mails[0].body_html().expect("an HTML part");
    assert!(html.contains(&code) && html.contains("<html lang=\"en\">"));
    let r = super::send(
        addr,
        &TestRequest::json(
            "POST",
            "/auth/respond-challenge",
            &json!({"session": r.json()["session"], "type": "VERIFY_EMAIL", "code": code}),
        )
        .header("x-forwarded-for", &ip),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
}

async fn audit_rows(door: &dyn Door, b: &Backend) {
    let env = env(door, b).await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    login(&env, &e, "Wrong-Password-1").await;
    let sub = t["user"]["sub"].as_str().expect("sub");
    let rows = audit_log::Entity::find()
        .filter(audit_log::Column::UserId.eq(sub))
        .all(env.db().await)
        .await
        .expect("rows");
    let types: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.event_type.as_str(), r.event_status.as_str()))
        .collect();
    for want in [
        ("SIGNUP", "SUCCESS"),
        ("EMAIL_VERIFIED", "SUCCESS"),
        ("LOGIN_FAILED", "FAILURE"),
    ] {
        assert!(types.contains(&want), "{want:?} in {types:?}");
    }
    assert!(rows.iter().all(|r| !r.details.contains(PW)));
    assert!(
        rows.iter()
            .any(|r| r.ip_address.as_deref() == Some(env.ip.as_str()))
    );
}

async fn rehash_on_login(door: &dyn Door, b: &Backend) {
    use argon2::password_hash::PasswordHasher;
    let env = env(door, b).await;
    let e = email();
    signup_verified(&env, &e).await;
    // A hash made with older, different parameters.
    let params = argon2::Params::new(128, 1, 1, None).expect("params");
    let old = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_with_salt(PW.as_bytes(), b"0123456789abcdef")
        .expect("hash")
        .to_string();
    update_user(&env, &e, users::Column::PasswordHash, old.clone().into()).await;
    assert_eq!(
        login(&env, &e, PW).await.status,
        200,
        "old hashes keep working"
    );
    let db = env.db().await;
    let stored = users::Entity::find()
        .filter(users::Column::Email.eq(&e))
        .one(db)
        .await
        .expect("q")
        .expect("user");
    assert!(
        stored
            .password_hash
            .starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
        "{}",
        stored.password_hash
    );
    assert_eq!(login(&env, &e, PW).await.status, 200);
}

/// Two instances on one PostgreSQL/MySQL database behave as one: sessions, revocation and
/// lockout counters are shared. (SQLite belongs to one process; the case is skipped there.)
async fn two_instances_share_state(door: &dyn Door, b: &Backend) {
    let Some(url) = b.url.clone() else { return };
    let a = Env::start(door, &url, |_| {}).await;
    let mut other = Env::start(door, &url, |_| {}).await;
    other.ip = a.ip.clone();
    let e = email();
    let t = signup_verified(&a, &e).await;
    let access = token(&t, "accessToken");
    assert_eq!(
        other.get("/api/data", Some(&access)).await.status,
        200,
        "a token of A works on B"
    );
    let r = other
        .post("/auth/refresh", json!({"refreshToken": t["refreshToken"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let t2 = r.json();
    a.send(
        TestRequest::json("POST", "/auth/logout", &json!({})).bearer(&token(&t2, "accessToken")),
    )
    .await;
    assert_error(
        &other
            .get("/api/data", Some(&token(&t2, "accessToken")))
            .await,
        401,
        "AUTH_SESSION_NOT_FOUND",
    );
    for _ in 0..5 {
        assert_error(
            &login(&a, &e, "Wrong-Password-1").await,
            401,
            "AUTH_INVALID_CREDENTIALS",
        );
    }
    assert_error(&login(&other, &e, PW).await, 429, "RATE_LIMIT_LOGIN");
}
