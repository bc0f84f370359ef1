//! Social login (docs/social-login.md) against a real OpenID Connect provider on loopback
//! (`crate::oidc`, panva's oidc-provider): signup and login through the provider (exchange
//! code in json delivery, cookies and a redirect in cookie delivery), MFA still due, no silent
//! link to an existing account, linking with a fresh proof, unlinking (never the last way in),
//! and each refusal: state, replay, nonce, unverified email, email domain, exchange-code reuse,
//! unknown provider.

use nauth_core::NAuthConfig;
use nauth_core::config::{DeliveryMode, MfaEnforcement};
use serde_json::{Value, json};

use super::cases::{PW, assert_error, email, futures_join, signup_verified, token};
use super::mfa_cases::{answer, code_at};
use super::{Backend, CaseFn, Door, Env, TestRequest, TestResponse};
use crate::oidc::{self, OidcProvider};

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub(super) const SOCIAL_CASES: &[(&str, CaseFn)] = &[$((stringify!($name), |d, b| Box::pin($name(d, b)))),*];
    };
}

cases!(
    social_signup_then_login_with_exchange_codes,
    social_login_in_cookie_mode_sets_cookies_and_redirects,
    social_login_keeps_mfa,
    social_login_never_links_an_existing_email_silently,
    social_link_with_proof_then_login_list_and_unlink,
    social_link_refusals,
    social_callback_refusals,
    social_email_refusals,
    social_exchange_code_is_single_use,
    social_identities_go_with_the_account,
    social_github_through_the_stand_in,
);

/// The redirect URI's site: the provider accepts any redirect URI on loopback.
const SITE: &str = "http://localhost";

/// Adds the test provider as `[social.oidc]` (with `more` merged into its table).
fn with_provider(c: &mut NAuthConfig, p: &OidcProvider, more: Value) {
    let mut table = json!({
        "kind": "oidc",
        "issuer": p.issuer,
        "client_id": p.client_id,
        "client_secret": p.client_secret,
    });
    if let (Some(t), Some(m)) = (table.as_object_mut(), more.as_object()) {
        t.extend(m.clone());
    }
    c.base_url = SITE.into();
    c.social.insert(
        "oidc".into(),
        serde_json::from_value(table).expect("a provider table"),
    );
}

async fn start(door: &dyn Door, b: &Backend, tweak: impl FnOnce(&mut NAuthConfig)) -> Env {
    let p = oidc::provider().await;
    Env::start(door, &b.url(), |c| {
        with_provider(c, p, json!({}));
        tweak(c);
    })
    .await
}

/// A started sign-in: the provider's URL and the flow cookie (`name=value`).
struct Started {
    url: String,
    cookie: String,
}

fn flow_cookie(r: &TestResponse) -> String {
    r.set_cookies()
        .iter()
        .find(|c| c.starts_with("nauth_social_flow="))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("a flow cookie in {:?}", r.set_cookies()))
        .to_string()
}

async fn begin(env: &Env, redirect: &str) -> Started {
    let path = format!("/auth/social/oidc?redirectTo={}", urlencode(redirect));
    let r = env.send(TestRequest::new("GET", &path)).await;
    assert_eq!(r.status, 302, "{}", String::from_utf8_lossy(&r.body));
    let url = r.header("location").expect("location").to_string();
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(url.contains("nonce=") && url.contains("state="), "{url}");
    let c = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("nauth_social_flow="))
        .expect("flow cookie");
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/auth/social"),
        "{c}"
    );
    Started {
        url,
        cookie: flow_cookie(&r),
    }
}

/// Sends the provider's redirect back to the engine with `cookies`.
async fn back(env: &Env, provider_url: &str, cookies: &str) -> TestResponse {
    let path = provider_url
        .strip_prefix(SITE)
        .unwrap_or_else(|| panic!("back to the site: {provider_url}"));
    let mut req = TestRequest::new("GET", path);
    if !cookies.is_empty() {
        req = req.header("cookie", cookies);
    }
    env.send(req).await
}

/// A whole sign-in as `hint`: the callback's answer.
async fn sign_in(env: &Env, hint: &str, redirect: &str) -> TestResponse {
    let s = begin(env, redirect).await;
    let url = oidc::authorize(&s.url, hint).await;
    back(env, &url, &s.cookie).await
}

fn exchange_code_of(r: &TestResponse) -> String {
    assert_eq!(r.status, 302, "{}", String::from_utf8_lossy(&r.body));
    let loc = r.header("location").expect("location");
    loc.split_once("exchangeCode=")
        .map(|(_, c)| c.split('&').next().unwrap_or(c).to_string())
        .unwrap_or_else(|| panic!("an exchange code in {loc}"))
}

async fn exchange(env: &Env, code: &str) -> TestResponse {
    env.post("/auth/social/exchange", json!({"code": code}))
        .await
}

/// Signs in as `hint` (json delivery) and exchanges the code: the AuthResponse.
async fn sign_in_json(env: &Env, hint: &str) -> TestResponse {
    let r = sign_in(env, hint, "/home").await;
    exchange(env, &exchange_code_of(&r)).await
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn bearer(method: &str, path: &str, body: Value, access: &str) -> TestRequest {
    TestRequest::json(method, path, &body).bearer(access)
}

async fn identities(env: &Env, access: &str) -> Value {
    let r = env.get("/auth/social/identities", Some(access)).await;
    assert_eq!(r.status, 200, "{}", r.json());
    r.json()["identities"].clone()
}

/// A new user signs up through the provider (json delivery: the callback redirects with an
/// exchange code, traded for tokens), has no password, and signs in again as the same user.
async fn social_signup_then_login_with_exchange_codes(door: &dyn Door, b: &Backend) {
    let env = start(door, b, |_| {}).await;
    let r = env.get("/auth/social/providers", None).await;
    assert_eq!(
        r.json()["providers"],
        json!([{"name": "oidc", "kind": "oidc", "label": "oidc"}])
    );
    let e = email();
    let r = sign_in(&env, &e, "/home?tab=1").await;
    let loc = r.header("location").expect("location").to_string();
    assert!(loc.starts_with("/home?tab=1&exchangeCode="), "{loc}");
    // The flow cookie is cleared.
    assert!(
        r.set_cookies()
            .iter()
            .any(|c| c.starts_with("nauth_social_flow=;") && c.contains("Max-Age=0")),
        "{:?}",
        r.set_cookies()
    );
    let t = exchange(&env, &exchange_code_of(&r)).await;
    assert_eq!(t.status, 200, "{}", t.json());
    let t = t.json();
    assert_eq!(t["authMethod"], "social");
    assert_eq!(t["user"]["email"], e.as_str());
    assert_eq!(t["user"]["isEmailVerified"], true);
    assert_eq!(t["user"]["firstName"], "Test");
    let sub = t["user"]["sub"].clone();
    let access = token(&t, "accessToken");
    let ids = identities(&env, &access).await;
    assert_eq!(ids.as_array().map(Vec::len), Some(1), "{ids}");
    assert_eq!(ids[0]["provider"], "oidc");
    assert_eq!(ids[0]["email"], e.as_str());
    // No password: a login with any password is refused like a wrong one.
    let r = env
        .post("/auth/login", json!({"identifier": e, "password": ""}))
        .await;
    assert_eq!(r.status, 400, "{}", r.json());
    let r = env
        .post("/auth/login", json!({"identifier": e, "password": PW}))
        .await;
    assert_error(&r, 401, "AUTH_INVALID_CREDENTIALS");
    // The returning user.
    let again = sign_in_json(&env, &e).await;
    assert_eq!(again.status, 200, "{}", again.json());
    assert_eq!(again.json()["user"]["sub"], sub);
    let ids = identities(&env, &token(&again.json(), "accessToken")).await;
    assert!(ids[0]["lastUsedAt"].is_string(), "{ids}");
    // An unknown provider.
    let r = env.get("/auth/social/nope", None).await;
    assert_error(&r, 404, "RESOURCE_NOT_FOUND");
    let r = env
        .get("/auth/social/nope/callback?state=x&code=y", None)
        .await;
    assert_error(&r, 404, "RESOURCE_NOT_FOUND");
}

/// Cookie delivery: the callback sets the token cookies and redirects to `redirectTo`.
async fn social_login_in_cookie_mode_sets_cookies_and_redirects(door: &dyn Door, b: &Backend) {
    let env = start(door, b, |c| {
        c.token_delivery.mode = DeliveryMode::Cookies;
        c.token_delivery.cookie_secure = false;
    })
    .await;
    let r = sign_in(&env, &email(), "/dashboard").await;
    assert_eq!(r.status, 302, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("location"), Some("/dashboard"));
    let access = r.cookie("nauth_access_token").expect("access cookie");
    assert!(r.cookie("nauth_refresh_token").is_some() && r.cookie("nauth_csrf_token").is_some());
    let profile = env
        .send(
            TestRequest::new("GET", "/auth/profile")
                .header("cookie", &format!("nauth_access_token={access}")),
        )
        .await;
    assert_eq!(profile.status, 200, "{}", profile.json());
}

/// A user with TOTP who signs in through the provider still answers MFA_REQUIRED; in cookie
/// delivery a challenge due after the provider (here MFA_SETUP_REQUIRED) sets no cookies and
/// goes through an exchange code too.
async fn social_login_keeps_mfa(door: &dyn Door, b: &Backend) {
    let env = start(door, b, |_| {}).await;
    let e = email();
    // The account signs up through the provider, then enrols TOTP...
    let t = sign_in_json(&env, &e).await.json();
    let access = token(&t, "accessToken");
    let r = env
        .send(bearer(
            "POST",
            "/auth/mfa/setup-data",
            json!({"method": "totp"}),
            &access,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let secret = super::mfa_cases::secret_of(r.json()["otpauthUri"].as_str().expect("uri"));
    let r = env
        .send(bearer(
            "POST",
            "/auth/mfa/verify-setup",
            json!({"method": "totp", "code": code_at(&env, &secret)}),
            &access,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    env.clock.advance(std::time::Duration::from_secs(31));
    // ...and the next sign-in through the provider is a challenge.
    let r = sign_in_json(&env, &e).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let ch = r.json();
    assert_eq!(ch["challengeName"], "MFA_REQUIRED", "{ch}");
    let r = answer(&env, &ch, "totp", &code_at(&env, &secret)).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["authMethod"], "social");

    let env = start(door, b, |c| {
        c.token_delivery.mode = DeliveryMode::Cookies;
        c.token_delivery.cookie_secure = false;
        c.mfa.enforcement = MfaEnforcement::Required;
        c.mfa.grace_period = std::time::Duration::ZERO;
    })
    .await;
    let r = sign_in(&env, &email(), "/next").await;
    assert!(
        r.cookie("nauth_access_token").is_none(),
        "{:?}",
        r.set_cookies()
    );
    let ch = exchange(&env, &exchange_code_of(&r)).await;
    assert_eq!(ch.status, 200, "{}", ch.json());
    assert_eq!(
        ch.json()["challengeName"],
        "MFA_SETUP_REQUIRED",
        "{}",
        ch.json()
    );
}

/// An email that already has an account: the provider's sign-in is refused (409), nothing is
/// linked or created, and the account's password still works.
async fn social_login_never_links_an_existing_email_silently(door: &dyn Door, b: &Backend) {
    let env = start(door, b, |_| {}).await;
    let e = email();
    signup_verified(&env, &e).await;
    let r = sign_in(&env, &e, "/").await;
    assert_error(&r, 409, "SOCIAL_ACCOUNT_EXISTS");
    let t = env
        .post("/auth/login", json!({"identifier": e, "password": PW}))
        .await;
    assert_eq!(t.status, 200, "{}", t.json());
    let ids = identities(&env, &token(&t.json(), "accessToken")).await;
    assert_eq!(ids, json!([]));
}

async fn link(env: &Env, access: &str, proof: Value) -> TestResponse {
    env.send(bearer("POST", "/auth/social/oidc/link", proof, access))
        .await
}

/// Linking with the password, then signing in through the provider as that account; the
/// identity is listed, unlinked, and the password account may unlink its last identity.
async fn social_link_with_proof_then_login_list_and_unlink(door: &dyn Door, b: &Backend) {
    let env = start(door, b, |_| {}).await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    let access = token(&t, "accessToken");
    let sub = t["user"]["sub"].clone();
    let r = link(
        &env,
        &access,
        json!({"password": PW, "redirectTo": "/settings"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let url = token(&r.json(), "url");
    let cookie = flow_cookie(&r);
    // The provider's account uses another address: linking does not need the same email.
    let other = email();
    let back_url = oidc::authorize(&url, &other).await;
    let r = back(&env, &back_url, &cookie).await;
    assert_eq!(r.status, 302, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("location"), Some("/settings"));
    let ids = identities(&env, &access).await;
    assert_eq!(ids[0]["provider"], "oidc");
    assert_eq!(ids[0]["email"], other.as_str());
    // The owner hears of it, at the account's address (the signup's mail was the first).
    let notice = env.mail(&e, 2).await;
    assert!(
        notice.subject.starts_with("A sign-in method was added"),
        "{}",
        notice.subject
    );
    assert!(
        notice.text.contains("was linked to your"),
        "{}",
        notice.text
    );
    // Signing in through the provider is now that account.
    let r = sign_in_json(&env, &other).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["user"]["sub"], sub);
    // Unlink (the password remains a way in).
    let r = env
        .send(bearer(
            "DELETE",
            "/auth/social/identities/oidc",
            json!({}),
            &access,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(identities(&env, &access).await, json!([]));
    let notice = env.mail(&e, 3).await;
    assert!(
        notice.subject.starts_with("A sign-in method was removed"),
        "{}",
        notice.subject
    );
    assert!(
        notice.text.contains("was unlinked from your"),
        "{}",
        notice.text
    );
    let r = env
        .send(bearer(
            "DELETE",
            "/auth/social/identities/oidc",
            json!({}),
            &access,
        ))
        .await;
    assert_error(&r, 404, "RESOURCE_NOT_FOUND");
    // A provider-only account cannot unlink its only way in.
    let solo = sign_in_json(&env, &email()).await.json();
    let solo_access = token(&solo, "accessToken");
    let r = env
        .send(bearer(
            "DELETE",
            "/auth/social/identities/oidc",
            json!({}),
            &solo_access,
        ))
        .await;
    assert_error(&r, 409, "SOCIAL_LAST_SIGN_IN_METHOD");
    assert_eq!(
        identities(&env, &solo_access)
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

/// A link needs a signed-in user and a fresh proof, and never takes an identity linked to
/// another account.
async fn social_link_refusals(door: &dyn Door, b: &Backend) {
    let env = start(door, b, |_| {}).await;
    let r = env
        .post("/auth/social/oidc/link", json!({"password": PW}))
        .await;
    assert_error(&r, 401, "AUTH_TOKEN_MISSING");
    let e = email();
    let t = signup_verified(&env, &e).await;
    let access = token(&t, "accessToken");
    let r = link(&env, &access, json!({})).await;
    assert_error(&r, 400, "VALIDATION_FAILED");
    let r = link(&env, &access, json!({"password": "wrong-password-1"})).await;
    assert_error(&r, 400, "PASSWORD_INCORRECT");
    // An identity already linked to another account (it signed up by itself).
    let taken = email();
    assert_eq!(sign_in_json(&env, &taken).await.status, 200);
    let r = link(&env, &access, json!({"password": PW})).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let url = oidc::authorize(&token(&r.json(), "url"), &taken).await;
    let r = back(&env, &url, &flow_cookie(&r)).await;
    assert_error(&r, 409, "SOCIAL_ACCOUNT_LINKED");
    assert_eq!(identities(&env, &access).await, json!([]));
    // A link whose session ended meanwhile.
    let r = link(&env, &access, json!({"password": PW})).await;
    let (url, cookie) = (token(&r.json(), "url"), flow_cookie(&r));
    let out = env
        .send(bearer("POST", "/auth/logout", json!({}), &access))
        .await;
    assert_eq!(out.status, 200, "{}", out.json());
    let url = oidc::authorize(&url, &email()).await;
    let r = back(&env, &url, &cookie).await;
    assert_error(&r, 401, "AUTH_SESSION_NOT_FOUND");
}

/// The callback refuses a missing or foreign flow cookie, a state of another sign-in, a
/// replayed answer, an ID token for another nonce, and the provider's `error`; nothing is
/// created.
async fn social_callback_refusals(door: &dyn Door, b: &Backend) {
    let env = start(door, b, |_| {}).await;
    let e = email();
    // No cookie.
    let s = begin(&env, "/").await;
    let url = oidc::authorize(&s.url, &e).await;
    assert_error(&back(&env, &url, "").await, 400, "SOCIAL_STATE_INVALID");
    // Another sign-in's cookie (state mismatch).
    let other = begin(&env, "/").await;
    assert_error(
        &back(&env, &url, &other.cookie).await,
        400,
        "SOCIAL_STATE_INVALID",
    );
    // A tampered cookie.
    let tampered = format!("{}x", s.cookie);
    assert_error(
        &back(&env, &url, &tampered).await,
        400,
        "SOCIAL_STATE_INVALID",
    );
    // The right cookie, but expired (10 minutes).
    env.clock.advance(std::time::Duration::from_secs(601));
    assert_error(
        &back(&env, &url, &s.cookie).await,
        400,
        "SOCIAL_STATE_INVALID",
    );
    // Replay: the first answer counts, the same answer again is refused.
    let s = begin(&env, "/").await;
    let url = oidc::authorize(&s.url, &e).await;
    let first = back(&env, &url, &s.cookie).await;
    assert_eq!(
        first.status,
        302,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_error(
        &back(&env, &url, &s.cookie).await,
        400,
        "SOCIAL_CALLBACK_REPLAYED",
    );
    // A nonce edited on the way to the provider: the ID token names another one.
    let n = email();
    let s = begin(&env, "/").await;
    let edited = edit_param(&s.url, "nonce", "someone-elses-nonce");
    let url = oidc::authorize(&edited, &n).await;
    assert_error(
        &back(&env, &url, &s.cookie).await,
        401,
        "SOCIAL_NONCE_INVALID",
    );
    // The provider's error.
    let s = begin(&env, "/").await;
    let state = param_of(&s.url, "state");
    let path = format!("{SITE}/auth/social/oidc/callback?error=access_denied&state={state}");
    assert_error(
        &back(&env, &path, &s.cookie).await,
        400,
        "SOCIAL_PROVIDER_ERROR",
    );
    // Nothing was created for the refused sign-ins.
    let r = env
        .post("/auth/login", json!({"identifier": n, "password": PW}))
        .await;
    assert_error(&r, 401, "AUTH_INVALID_CREDENTIALS");
    let r = sign_in(&env, &n, "/").await;
    let t = exchange(&env, &exchange_code_of(&r)).await;
    assert_eq!(t.status, 200, "{}", t.json());
}

fn param_of(url: &str, name: &str) -> String {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    q.split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} in {url}"))
        .to_string()
}

fn edit_param(url: &str, name: &str, value: &str) -> String {
    let (base, q) = url.split_once('?').expect("a query");
    let q: Vec<String> = q
        .split('&')
        .map(|kv| {
            if kv.starts_with(&format!("{name}=")) {
                format!("{name}={value}")
            } else {
                kv.to_string()
            }
        })
        .collect();
    format!("{base}?{}", q.join("&"))
}

/// No verified email, no account; an email outside `allowed_email_domains`, no account.
async fn social_email_refusals(door: &dyn Door, b: &Backend) {
    let env = start(door, b, |_| {}).await;
    let e = email();
    let r = sign_in(&env, &format!("unverified:{e}"), "/").await;
    assert_error(&r, 403, "SOCIAL_EMAIL_UNVERIFIED");
    let r = sign_in(&env, "noemail:carol", "/").await;
    assert_error(&r, 403, "SOCIAL_EMAIL_UNVERIFIED");
    let r = env
        .post("/auth/login", json!({"identifier": e, "password": PW}))
        .await;
    assert_error(&r, 401, "AUTH_INVALID_CREDENTIALS");
    let p = oidc::provider().await;
    let env = Env::start(door, &b.url(), |c| {
        with_provider(c, p, json!({"allowed_email_domains": ["corp.example"]}))
    })
    .await;
    let r = sign_in(&env, &email(), "/").await;
    assert_error(&r, 403, "SOCIAL_EMAIL_DOMAIN_NOT_ALLOWED");
    let inside = format!(
        "user{}@corp.example",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let t = sign_in_json(&env, &inside).await;
    assert_eq!(t.status, 200, "{}", t.json());
    // allow_signup = false: an unknown identity makes no account.
    let env = Env::start(door, &b.url(), |c| {
        with_provider(c, p, json!({"allow_signup": false}))
    })
    .await;
    let r = sign_in(&env, &email(), "/").await;
    assert_error(&r, 403, "SIGNUP_DISABLED");
}

/// Two exchanges of one code at once: exactly one gets tokens; a stale code is refused.
async fn social_exchange_code_is_single_use(door: &dyn Door, b: &Backend) {
    let env = start(door, b, |_| {}).await;
    let r = sign_in(&env, &email(), "/").await;
    let code = exchange_code_of(&r);
    let answers = futures_join(vec![exchange(&env, &code), exchange(&env, &code)]).await;
    let ok = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        answers.iter().map(|r| r.json()).collect::<Vec<_>>()
    );
    for r in answers.iter().filter(|r| r.status != 200) {
        assert_error(r, 400, "SOCIAL_EXCHANGE_CODE_INVALID");
    }
    let r = sign_in(&env, &email(), "/").await;
    let code = exchange_code_of(&r);
    env.clock.advance(std::time::Duration::from_secs(61));
    assert_error(
        &exchange(&env, &code).await,
        400,
        "SOCIAL_EXCHANGE_CODE_INVALID",
    );
    assert_error(
        &exchange(&env, "made-up").await,
        400,
        "SOCIAL_EXCHANGE_CODE_INVALID",
    );
}

/// Deleting the account removes its linked identities; the identity may then sign up anew.
async fn social_identities_go_with_the_account(door: &dyn Door, b: &Backend) {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let env = start(door, b, |_| {}).await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    let access = token(&t, "accessToken");
    let sub = token(&t["user"], "sub");
    let r = link(&env, &access, json!({"password": PW})).await;
    let other = email();
    let url = oidc::authorize(&token(&r.json(), "url"), &other).await;
    assert_eq!(back(&env, &url, &flow_cookie(&r)).await.status, 302);
    let rows = || async {
        crate::db::social_identities::Entity::find()
            .filter(crate::db::social_identities::Column::UserId.eq(sub.as_str()))
            .count(env.db().await)
            .await
            .expect("count")
    };
    assert_eq!(rows().await, 1);
    let r = env
        .send(bearer(
            "DELETE",
            "/auth/account",
            json!({"password": PW}),
            &access,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(rows().await, 0, "identities left on {}", b.name);
    let t = sign_in_json(&env, &other).await;
    assert_eq!(t.status, 200, "{}", t.json());
    assert_ne!(t.json()["user"]["sub"], sub.as_str());
}

/// The GitHub preset (OAuth 2.0, `/user` and `/user/emails`) against the testkit's stand-in
/// for GitHub's endpoints (GitHub itself cannot be reached from the tests): signup with the
/// primary verified email, the same account again, and an unverified primary email refused.
async fn social_github_through_the_stand_in(door: &dyn Door, b: &Backend) {
    use crate::github::{CLIENT_ID, CLIENT_SECRET, GithubStandIn};
    let gh = GithubStandIn::start().await;
    let env = Env::start(door, &b.url(), |c| {
        c.base_url = SITE.into();
        let table = json!({
            "kind": "github", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "authorization_url": format!("{}/login/oauth/authorize", gh.base),
            "token_url": format!("{}/login/oauth/access_token", gh.base),
            "api_url": gh.base,
        });
        c.social.insert(
            "github".into(),
            serde_json::from_value(table).expect("table"),
        );
    })
    .await;
    let go = |login: String| {
        let env = &env;
        let gh = &gh;
        async move {
            let r = env
                .send(TestRequest::new(
                    "GET",
                    "/auth/social/github?redirectTo=/gh",
                ))
                .await;
            assert_eq!(r.status, 302, "{}", String::from_utf8_lossy(&r.body));
            let url = gh.authorize(r.header("location").expect("location"), &login);
            back(env, &url, &flow_cookie(&r)).await
        }
    };
    let e = email();
    let r = go(e.clone()).await;
    let t = exchange(&env, &exchange_code_of(&r)).await;
    assert_eq!(t.status, 200, "{}", t.json());
    assert_eq!(t.json()["user"]["email"], e.as_str());
    assert_eq!(t.json()["user"]["firstName"], "Mona");
    let sub = t.json()["user"]["sub"].clone();
    let r = go(e.clone()).await;
    let t = exchange(&env, &exchange_code_of(&r)).await;
    assert_eq!(t.json()["user"]["sub"], sub);
    let r = go(format!("unverified:{}", email())).await;
    assert_error(&r, 403, "SOCIAL_EMAIL_UNVERIFIED");
}
