//! Passkeys (docs/passkeys.md): registration behind a fresh proof, list/rename/delete,
//! passwordless sign-in (json and cookie delivery) through the state machine, a passkey as
//! the answer of MFA_REQUIRED, and every refusal: replayed, expired, foreign or misbound
//! ceremonies, another origin, unknown or deleted credentials, a regressing counter, a
//! disabled account. The authenticator is the testkit's software one, so the engine's WebAuthn
//! verification is fully real.

use std::time::Duration;

use nauth_core::NAuthConfig;
use nauth_core::config::{DeliveryMode, MfaEnforcement};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use super::cases::{PW, assert_error, email, login, signup_verified, token, update_user};
use super::mfa_cases::{code_at, with_totp};
use super::{Backend, CaseFn, Door, Env, TestRequest, TestResponse};
use crate::db::{audit_log, passkeys, users};
use crate::passkey::SoftAuthenticator;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub(super) const PASSKEY_CASES: &[(&str, CaseFn)] = &[$((stringify!($name), |d, b| Box::pin($name(d, b)))),*];
    };
}

cases!(
    passkeys_are_off_by_default,
    passkey_register_list_rename_delete,
    passkey_sign_in_with_json_and_cookie_delivery,
    passkey_ceremony_refusals,
    passkey_counter_regression_is_refused_and_audited,
    passkey_sign_in_runs_the_state_machine,
    passkey_as_second_factor,
    passkey_login_options_are_counted_per_ip,
    account_erasure_removes_passkeys,
);

const ORIGIN: &str = "https://app.test";

fn on(c: &mut NAuthConfig) {
    c.passkeys.enabled = true;
    c.passkeys.origins = vec![ORIGIN.into()];
}

fn authenticator() -> SoftAuthenticator {
    SoftAuthenticator::new("app.test", ORIGIN)
}

fn authed(method: &str, path: &str, body: Value, access: &str) -> TestRequest {
    TestRequest::json(method, path, &body).bearer(access)
}

/// Registration options with `proof` (e.g. `{"password": PW}`).
async fn options(env: &Env, access: &str, proof: Value) -> TestResponse {
    env.send(authed(
        "POST",
        "/auth/passkeys/register/options",
        proof,
        access,
    ))
    .await
}

/// Registers a passkey on `auth` for the signed-in user; returns the stored passkey.
async fn register(env: &Env, access: &str, auth: &mut SoftAuthenticator, name: &str) -> Value {
    let r = options(env, access, json!({"password": PW, "name": name})).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let o = r.json();
    let cred = auth.create(&o["publicKey"]);
    let r = finish_register(env, access, &o["ceremony"], &cred).await;
    assert_eq!(r.status, 201, "{}", r.json());
    r.json()["passkey"].clone()
}

/// Answers registration options (`ceremony`) with the authenticator's `credential`.
async fn finish_register(env: &Env, access: &str, ceremony: &Value, cred: &Value) -> TestResponse {
    env.send(authed(
        "POST",
        "/auth/passkeys/register",
        json!({"ceremony": ceremony, "credential": cred}),
        access,
    ))
    .await
}

/// Sign-in options (public).
async fn login_options(env: &Env) -> Value {
    let r = env.post("/auth/passkeys/login/options", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.json());
    r.json()
}

async fn passkey_login(env: &Env, ceremony: &Value, cred: &Value) -> TestResponse {
    env.post(
        "/auth/passkeys/login",
        json!({"ceremony": ceremony, "credential": cred}),
    )
    .await
}

/// A whole passwordless sign-in with `auth`.
async fn sign_in(env: &Env, auth: &mut SoftAuthenticator) -> TestResponse {
    let o = login_options(env).await;
    let cred = auth.get(&o["publicKey"]);
    passkey_login(env, &o["ceremony"], &cred).await
}

async fn list(env: &Env, access: &str) -> Vec<Value> {
    let r = env
        .send(TestRequest::new("GET", "/auth/passkeys").bearer(access))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    r.json()["passkeys"].as_array().expect("passkeys").clone()
}

async fn audit_events(env: &Env, sub: &str) -> Vec<(String, String, Value)> {
    audit_log::Entity::find()
        .filter(audit_log::Column::UserId.eq(sub))
        .all(env.db().await)
        .await
        .expect("audit rows")
        .into_iter()
        .map(|r| {
            let details = serde_json::from_str(&r.details).unwrap_or(Value::Null);
            (r.event_type, r.event_status, details)
        })
        .collect()
}

async fn passkeys_are_off_by_default(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let t = signup_verified(&env, &email()).await;
    let access = token(&t, "accessToken");
    assert_error(
        &env.post("/auth/passkeys/login/options", json!({})).await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    assert_error(
        &passkey_login(&env, &json!("x"), &json!({})).await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    assert_error(
        &env.post("/auth/challenge/passkey-options", json!({"session": "x"}))
            .await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    assert_error(
        &options(&env, &access, json!({"password": PW})).await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    let r = env
        .send(TestRequest::new("GET", "/auth/passkeys").bearer(&access))
        .await;
    assert_error(&r, 404, "RESOURCE_NOT_FOUND");
}

async fn passkey_register_list_rename_delete(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), on).await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    let access = token(&t, "accessToken");
    let sub = t["user"]["sub"].as_str().expect("sub").to_string();
    // A fresh proof is required, and checked.
    assert_error(
        &options(&env, &access, json!({})).await,
        400,
        "VALIDATION_FAILED",
    );
    assert_error(
        &options(&env, &access, json!({"password": "Wrong-Password-1"})).await,
        400,
        "PASSWORD_INCORRECT",
    );
    // Without a token: 401.
    assert_error(
        &env.post("/auth/passkeys/register/options", json!({"password": PW}))
            .await,
        401,
        "AUTH_TOKEN_MISSING",
    );
    let r = options(&env, &access, json!({"password": PW})).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let o = r.json();
    let pk = &o["publicKey"];
    assert_eq!(pk["rp"]["id"], "app.test", "{pk}");
    assert_eq!(pk["user"]["name"], e.as_str());
    assert_eq!(pk["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
    assert!(
        pk["excludeCredentials"]
            .as_array()
            .is_none_or(|a| a.is_empty())
    );
    let mut auth = authenticator();
    let cred = auth.create(pk);
    let r = finish_register(&env, &access, &o["ceremony"], &cred).await;
    assert_eq!(r.status, 201, "{}", r.json());
    let first = r.json()["passkey"].clone();
    assert_eq!(first["name"], "Passkey");
    assert_eq!(first["credentialId"], cred["id"]);
    assert_eq!(first["backupEligible"], false);
    assert_eq!(first["aaguid"], "6e617574-682d-736f-6674-2d617574686e");
    assert!(first["lastUsedAt"].is_null());
    // The owner hears of it (the signup's verification mail was the first).
    let notice = env.mail(&e, 2).await;
    assert!(
        notice.subject.starts_with("A sign-in method was added"),
        "{}",
        notice.subject
    );
    assert!(
        notice.text.contains("A passkey was added"),
        "{}",
        notice.text
    );
    // The ceremony was used: the same answer again is refused.
    let again = finish_register(&env, &access, &o["ceremony"], &cred).await;
    assert_error(&again, 400, "PASSKEY_CHALLENGE_INVALID");
    // A second registration excludes the first credential.
    env.clock.advance(Duration::from_secs(1));
    let r = options(&env, &access, json!({"password": PW, "name": "Laptop"})).await;
    let ex: Vec<Value> = r.json()["publicKey"]["excludeCredentials"]
        .as_array()
        .expect("excludeCredentials")
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ex, vec![first["credentialId"].clone()]);
    let mut other = authenticator();
    let cred = other.create(&r.json()["publicKey"]);
    let r = finish_register(&env, &access, &r.json()["ceremony"], &cred).await;
    assert_eq!(r.status, 201, "{}", r.json());
    let second = r.json()["passkey"].clone();
    assert_eq!(second["name"], "Laptop");
    let all = list(&env, &access).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["id"], first["id"]);
    // Rename.
    let id = first["id"].as_str().expect("id");
    let r = env
        .send(authed(
            "PUT",
            &format!("/auth/passkeys/{id}"),
            json!({"name": "Phone"}),
            &access,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["passkey"]["name"], "Phone");
    assert_error(
        &env.send(authed(
            "PUT",
            &format!("/auth/passkeys/{id}"),
            json!({"name": ""}),
            &access,
        ))
        .await,
        400,
        "VALIDATION_FAILED",
    );
    let nobody = uuid::Uuid::new_v4();
    assert_error(
        &env.send(authed(
            "PUT",
            &format!("/auth/passkeys/{nobody}"),
            json!({"name": "x"}),
            &access,
        ))
        .await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    // Another user sees none of them and cannot touch them.
    let t2 = signup_verified(&env, &email()).await;
    let access2 = token(&t2, "accessToken");
    assert!(list(&env, &access2).await.is_empty());
    assert_error(
        &env.send(authed(
            "DELETE",
            &format!("/auth/passkeys/{id}"),
            json!({"password": PW}),
            &access2,
        ))
        .await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    // Delete: a fresh proof again.
    let del = |proof: Value| authed("DELETE", &format!("/auth/passkeys/{id}"), proof, &access);
    assert_error(&env.send(del(json!({}))).await, 400, "VALIDATION_FAILED");
    assert_error(
        &env.send(del(json!({"password": "Wrong-Password-1"}))).await,
        400,
        "PASSWORD_INCORRECT",
    );
    let r = env.send(del(json!({"password": PW}))).await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})));
    let left = list(&env, &access).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], second["id"]);
    // The removed passkey signs in no more.
    let r = sign_in(&env, &mut auth).await;
    assert_error(&r, 400, "PASSKEY_NOT_FOUND");
    // Audit rows for add, rename and remove.
    let events = audit_events(&env, &sub).await;
    for want in ["PASSKEY_ADDED", "PASSKEY_RENAMED", "PASSKEY_REMOVED"] {
        assert!(
            events.iter().any(|(e, s, _)| e == want && s == "SUCCESS"),
            "{want} in {events:?}"
        );
    }
}

async fn passkey_sign_in_with_json_and_cookie_delivery(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), on).await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    let access = token(&t, "accessToken");
    let mut auth = authenticator();
    register(&env, &access, &mut auth, "Phone").await;
    // No identifier: a discoverable credential.
    let o = login_options(&env).await;
    assert!(
        o["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{o}"
    );
    assert_eq!(o["publicKey"]["rpId"], "app.test");
    assert_eq!(o["publicKey"]["userVerification"], "required");
    let cred = auth.get(&o["publicKey"]);
    let r = passkey_login(&env, &o["ceremony"], &cred).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let body = r.json();
    assert_eq!(body["authMethod"], "passkey");
    assert_eq!(body["user"]["email"], e.as_str());
    let fresh = token(&body, "accessToken");
    assert_eq!(env.get("/api/data", Some(&fresh)).await.status, 200);
    // The same assertion again: the ceremony is spent.
    assert_error(
        &passkey_login(&env, &o["ceremony"], &cred).await,
        400,
        "PASSKEY_CHALLENGE_INVALID",
    );
    // The use is recorded.
    let used = list(&env, &fresh).await;
    assert!(used[0]["lastUsedAt"].is_string(), "{used:?}");
    let events = audit_events(&env, body["user"]["sub"].as_str().expect("sub")).await;
    assert!(
        events
            .iter()
            .any(|(e, _, d)| e == "LOGIN_SUCCESS" && d["method"] == "passkey"),
        "{events:?}"
    );

    // Cookie delivery: the cookies, no token in the body.
    let env = Env::start(door, &b.url(), |c| {
        on(c);
        c.token_delivery.mode = DeliveryMode::Cookies;
        c.token_delivery.cookie_secure = false;
    })
    .await;
    let e = email();
    let r = env
        .post("/auth/signup", json!({"email": e, "password": PW}))
        .await;
    assert_eq!(r.status, 201);
    let code = crate::extract_code(&env.mail(&e, 1).await.text).expect("code");
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": r.json()["session"], "type": "VERIFY_EMAIL", "code": code}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let cookie_header = cookie_header(&r);
    let csrf = r.cookie("nauth_csrf_token").expect("csrf cookie");
    let with_cookies = |method: &str, path: &str, body: Value| {
        TestRequest::json(method, path, &body)
            .header("cookie", &cookie_header)
            .header("x-csrf-token", &csrf)
    };
    let r = env
        .send(with_cookies(
            "POST",
            "/auth/passkeys/register/options",
            json!({"password": PW}),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let mut auth = authenticator();
    let cred = auth.create(&r.json()["publicKey"]);
    let r = env
        .send(with_cookies(
            "POST",
            "/auth/passkeys/register",
            json!({"ceremony": r.json()["ceremony"], "credential": cred}),
        ))
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    let r = sign_in(&env, &mut auth).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert!(r.json().get("accessToken").is_none(), "{}", r.json());
    assert_eq!(r.json()["authMethod"], "passkey");
    let cookies = r.set_cookies();
    assert!(
        cookies.iter().any(|c| c.contains("access_token="))
            && cookies.iter().any(|c| c.contains("refresh_token=")),
        "{cookies:?}"
    );
}

/// The `cookie` header a browser would send back after `r`.
fn cookie_header(r: &TestResponse) -> String {
    r.set_cookies()
        .iter()
        .filter_map(|c| c.split(';').next())
        .map(str::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

async fn passkey_ceremony_refusals(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), on).await;
    let t = signup_verified(&env, &email()).await;
    let access = token(&t, "accessToken");
    let mut auth = authenticator();
    register(&env, &access, &mut auth, "Phone").await;

    // Expired: the clock moves past `passkeys.challenge_ttl` (5 minutes).
    let o = login_options(&env).await;
    let cred = auth.get(&o["publicKey"]);
    env.clock.advance(Duration::from_secs(5 * 60 + 1));
    assert_error(
        &passkey_login(&env, &o["ceremony"], &cred).await,
        400,
        "PASSKEY_CHALLENGE_EXPIRED",
    );
    // Made up.
    assert_error(
        &passkey_login(&env, &json!("not-a-ceremony"), &cred).await,
        400,
        "PASSKEY_CHALLENGE_INVALID",
    );
    // Another site: the origin in clientDataJSON is not ours.
    let mut phished = auth.clone();
    phished.origin = "https://app.test.evil.example".into();
    let o = login_options(&env).await;
    let cred = phished.get(&o["publicKey"]);
    assert_error(
        &passkey_login(&env, &o["ceremony"], &cred).await,
        400,
        "PASSKEY_INVALID",
    );
    // The answer to another ceremony's challenge.
    let o1 = login_options(&env).await;
    let o2 = login_options(&env).await;
    let cred = auth.get(&o1["publicKey"]);
    assert_error(
        &passkey_login(&env, &o2["ceremony"], &cred).await,
        400,
        "PASSKEY_INVALID",
    );
    // Without user verification.
    let mut lazy = auth.clone();
    lazy.user_verified = false;
    let o = login_options(&env).await;
    let cred = lazy.get(&o["publicKey"]);
    assert_error(
        &passkey_login(&env, &o["ceremony"], &cred).await,
        400,
        "PASSKEY_INVALID",
    );
    // A credential nauth never registered.
    let mut stranger = authenticator();
    let fake_options = json!({
        "challenge": "AAAA",
        "user": {"id": "AAAAAAAAAAAAAAAAAAAAAA"},
    });
    stranger.create(&fake_options);
    let o = login_options(&env).await;
    let cred = stranger.get(&o["publicKey"]);
    assert_error(
        &passkey_login(&env, &o["ceremony"], &cred).await,
        400,
        "PASSKEY_NOT_FOUND",
    );
    // Not a credential at all.
    let o = login_options(&env).await;
    assert_error(
        &passkey_login(&env, &o["ceremony"], &json!({"id": 1})).await,
        400,
        "VALIDATION_FAILED",
    );
    // A sign-in ceremony does not register, and a registration ceremony is the user's own.
    let o = login_options(&env).await;
    let mut second = authenticator();
    let r = options(&env, &access, json!({"password": PW})).await;
    let cred = second.create(&r.json()["publicKey"]);
    let misused = finish_register(&env, &access, &o["ceremony"], &cred).await;
    assert_error(&misused, 400, "PASSKEY_CHALLENGE_INVALID");
    let t2 = signup_verified(&env, &email()).await;
    let access2 = token(&t2, "accessToken");
    let foreign = finish_register(&env, &access2, &r.json()["ceremony"], &cred).await;
    assert_error(&foreign, 400, "PASSKEY_CHALLENGE_INVALID");
    // A registration from another origin, and an expired one.
    let r = options(&env, &access, json!({"password": PW})).await;
    let mut elsewhere = authenticator();
    elsewhere.origin = "https://evil.example".into();
    let cred = elsewhere.create(&r.json()["publicKey"]);
    let refused = finish_register(&env, &access, &r.json()["ceremony"], &cred).await;
    assert_error(&refused, 400, "PASSKEY_INVALID");
    let r = options(&env, &access, json!({"password": PW})).await;
    let cred = authenticator().create(&r.json()["publicKey"]);
    env.clock.advance(Duration::from_secs(5 * 60 + 1));
    let late = finish_register(&env, &access, &r.json()["ceremony"], &cred).await;
    assert_error(&late, 400, "PASSKEY_CHALLENGE_EXPIRED");
    // Nothing of this stored a passkey; the real one still signs in.
    assert_eq!(list(&env, &access).await.len(), 1);
    assert_eq!(sign_in(&env, &mut auth).await.status, 200);
}

async fn passkey_counter_regression_is_refused_and_audited(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), on).await;
    let t = signup_verified(&env, &email()).await;
    let access = token(&t, "accessToken");
    let sub = t["user"]["sub"].as_str().expect("sub").to_string();
    let mut auth = authenticator();
    register(&env, &access, &mut auth, "Key").await;
    // A copy of the device taken now, then the real one signs in twice (counter 1, 2).
    let mut clone = auth.clone();
    assert_eq!(sign_in(&env, &mut auth).await.status, 200);
    assert_eq!(sign_in(&env, &mut auth).await.status, 200);
    // The copy answers with counter 1: a cloned authenticator.
    let r = sign_in(&env, &mut clone).await;
    assert_error(&r, 400, "PASSKEY_INVALID");
    let events = audit_events(&env, &sub).await;
    assert!(
        events
            .iter()
            .any(|(e, _, d)| e == "SUSPICIOUS_ACTIVITY"
                && d["reason"] == "passkey_counter_regression"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(e, s, d)| e == "LOGIN_FAILED" && s == "FAILURE" && d["method"] == "passkey"),
        "{events:?}"
    );
    // The real device goes on.
    assert_eq!(sign_in(&env, &mut auth).await.status, 200);
    // Authenticators without a counter (0 every time, like synced passkeys) are fine.
    let mut synced = authenticator();
    synced.counts = false;
    synced.backed_up = true;
    let pk = register(&env, &access, &mut synced, "Synced").await;
    assert_eq!(pk["backupEligible"], true);
    assert_eq!(pk["backupState"], true);
    assert_eq!(sign_in(&env, &mut synced).await.status, 200);
    assert_eq!(sign_in(&env, &mut synced).await.status, 200);
}

async fn passkey_sign_in_runs_the_state_machine(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), on).await;
    // MFA on the account: a user-verified passkey is itself multi-factor (no MFA_REQUIRED).
    let e = email();
    let (t, _, _) = with_totp(&env, &e).await;
    let access = token(&t, "accessToken");
    let mut auth = authenticator();
    register(&env, &access, &mut auth, "Key").await;
    let r = sign_in(&env, &mut auth).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["authMethod"], "passkey");
    assert!(r.json()["accessToken"].is_string(), "{}", r.json());
    // FORCE_CHANGE_PASSWORD still applies.
    update_user(
        &env,
        &e,
        users::Column::MustChangePassword,
        sea_orm::Value::Bool(Some(true)),
    )
    .await;
    let r = sign_in(&env, &mut auth).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["challengeName"], "FORCE_CHANGE_PASSWORD");
    update_user(
        &env,
        &e,
        users::Column::MustChangePassword,
        sea_orm::Value::Bool(Some(false)),
    )
    .await;
    // A disabled account is refused like a password login.
    update_user(
        &env,
        &e,
        users::Column::Disabled,
        sea_orm::Value::Bool(Some(true)),
    )
    .await;
    assert_error(&sign_in(&env, &mut auth).await, 403, "AUTH_ACCOUNT_LOCKED");
    assert_error(&login(&env, &e, PW).await, 403, "AUTH_ACCOUNT_LOCKED");

    // Under `mfa.enforcement = "required"`, a passkey sign-in needs no enrolled factor: a
    // password login past the grace period must enrol one, the passkey signs in.
    let env = Env::start(door, &b.url(), |c| {
        on(c);
        c.mfa.enforcement = MfaEnforcement::Required;
        c.mfa.grace_period = Duration::from_secs(3600);
    })
    .await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    let access = token(&t, "accessToken");
    let mut auth = authenticator();
    register(&env, &access, &mut auth, "Key").await;
    env.clock.advance(Duration::from_secs(7200));
    let r = login(&env, &e, PW).await;
    assert_eq!(
        r.json()["challengeName"],
        "MFA_SETUP_REQUIRED",
        "{}",
        r.json()
    );
    let r = sign_in(&env, &mut auth).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert!(r.json()["accessToken"].is_string(), "{}", r.json());
}

async fn passkey_as_second_factor(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), on).await;
    let e = email();
    let (t, secret, _) = with_totp(&env, &e).await;
    let access = token(&t, "accessToken");
    let sub = t["user"]["sub"].as_str().expect("sub").to_string();
    // Step-up with a TOTP code works too.
    env.clock.advance(Duration::from_secs(30));
    let r = options(&env, &access, json!({"code": code_at(&env, &secret)})).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let mut auth = authenticator();
    let cred = auth.create(&r.json()["publicKey"]);
    let r = finish_register(&env, &access, &r.json()["ceremony"], &cred).await;
    assert_eq!(r.status, 201, "{}", r.json());
    // A password login asks for MFA and offers the passkey.
    let r = login(&env, &e, PW).await;
    assert_eq!(r.json()["challengeName"], "MFA_REQUIRED", "{}", r.json());
    let methods = r.json()["challengeParameters"]["availableMethods"]
        .as_str()
        .expect("availableMethods")
        .to_string();
    assert!(methods.split(',').any(|m| m == "passkey"), "{methods}");
    let session = r.json()["session"].clone();
    let mfa_options = |session: Value| {
        env.post(
            "/auth/challenge/passkey-options",
            json!({"session": session}),
        )
    };
    let r = mfa_options(session.clone()).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let o = r.json();
    let allowed = o["publicKey"]["allowCredentials"]
        .as_array()
        .expect("allowCredentials")
        .len();
    assert_eq!(allowed, 1);
    let answer = |session: &Value, ceremony: &Value, cred: &Value| {
        env.post(
            "/auth/respond-challenge",
            json!({"session": session, "type": "MFA_REQUIRED", "method": "passkey",
                   "ceremony": ceremony, "credential": cred}),
        )
    };
    // A wrong assertion (another site) is a wrong answer: counted on the challenge.
    let mut phished = auth.clone();
    phished.origin = "https://evil.example".into();
    let bad = phished.get(&o["publicKey"]);
    let r = answer(&session, &o["ceremony"], &bad).await;
    assert_error(&r, 400, "VERIFY_CODE_INVALID");
    assert_eq!(r.json()["details"]["attemptsRemaining"], 2);
    // That ceremony is spent; fresh options, the right assertion: tokens.
    let o = mfa_options(session.clone()).await.json();
    let good = auth.get(&o["publicKey"]);
    // Options of one session do not answer another.
    let other = login(&env, &e, PW).await.json()["session"].clone();
    assert_error(
        &answer(&other, &o["ceremony"], &good).await,
        400,
        "PASSKEY_CHALLENGE_INVALID",
    );
    // (The second login ended the first session's challenge: one MFA challenge per user.)
    let o = mfa_options(other.clone()).await.json();
    let good = auth.get(&o["publicKey"]);
    let r = answer(&other, &o["ceremony"], &good).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["authMethod"], "password");
    assert!(r.json()["accessToken"].is_string());
    // Replay on a new challenge: the ceremony is gone.
    let third = login(&env, &e, PW).await.json()["session"].clone();
    assert_error(
        &answer(&third, &o["ceremony"], &good).await,
        400,
        "PASSKEY_CHALLENGE_INVALID",
    );
    // Wrong assertions count on the second-factor budget (reserved before checking) and
    // the challenge's three attempts.
    for left in [2, 1, 0] {
        let o = mfa_options(third.clone()).await.json();
        let bad = phished.get(&o["publicKey"]);
        let r = answer(&third, &o["ceremony"], &bad).await;
        assert_error(&r, 400, "VERIFY_CODE_INVALID");
        assert_eq!(r.json()["details"]["attemptsRemaining"], left);
    }
    assert_error(
        &mfa_options(third.clone()).await,
        400,
        "CHALLENGE_MAX_ATTEMPTS",
    );
    let counted = env.kv_value(&format!("mfa:acct:{sub}")).await;
    assert!(counted.is_some_and(|n| n >= 3), "{counted:?}");
    let events = audit_events(&env, &sub).await;
    assert!(
        events
            .iter()
            .any(|(e, _, d)| e == "MFA_VERIFICATION_SUCCESS" && d["method"] == "passkey"),
        "{events:?}"
    );
    // No passkey: the options are refused.
    let e2 = email();
    with_totp(&env, &e2).await;
    let s2 = login(&env, &e2, PW).await.json()["session"].clone();
    assert_error(&mfa_options(s2).await, 400, "MFA_METHOD_NOT_ALLOWED");
    // A non-MFA session is not answered.
    let r = env
        .post("/auth/signup", json!({"email": email(), "password": PW}))
        .await;
    assert_error(
        &mfa_options(r.json()["session"].clone()).await,
        400,
        "CHALLENGE_TYPE_MISMATCH",
    );
}

async fn passkey_login_options_are_counted_per_ip(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| {
        on(c);
        c.passkeys.ip_max_per_hour = 3;
    })
    .await;
    for _ in 0..3 {
        login_options(&env).await;
    }
    let r = env.post("/auth/passkeys/login/options", json!({})).await;
    assert_error(&r, 429, "RATE_LIMIT_LOGIN");
    env.clock.advance(Duration::from_secs(3601));
    login_options(&env).await;
}

async fn account_erasure_removes_passkeys(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), on).await;
    let t = signup_verified(&env, &email()).await;
    let access = token(&t, "accessToken");
    let sub = t["user"]["sub"].as_str().expect("sub").to_string();
    let mut auth = authenticator();
    register(&env, &access, &mut auth, "Key").await;
    // A pending ceremony too.
    assert_eq!(
        options(&env, &access, json!({"password": PW})).await.status,
        200
    );
    let count = || async {
        passkeys::Entity::find()
            .filter(passkeys::Column::UserId.eq(&sub))
            .count(env.db().await)
            .await
            .expect("count")
    };
    assert_eq!(count().await, 1);
    let r = env
        .send(
            TestRequest::json("DELETE", "/auth/account", &json!({"password": PW})).bearer(&access),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(count().await, 0);
    assert_error(&sign_in(&env, &mut auth).await, 400, "PASSKEY_NOT_FOUND");
}
