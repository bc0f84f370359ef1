//! Magic links (docs/api.md §3.3): off by default; one-time, expiring, enumeration-safe links
//! that run the state machine (VERIFY_EMAIL satisfied by the click, MFA still applies), with
//! `redirectTo` limited to paths on the site.

use std::time::Duration;

use nauth_core::NAuthConfig;
use nauth_core::config::DeliveryMode;
use serde_json::json;

use super::cases::{PW, assert_error, email, signup_verified, token};
use super::mfa_cases::with_totp;
use super::{Backend, CaseFn, Door, Env, TestRequest, TestResponse};
use crate::extract_token;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub(super) const MAGIC_CASES: &[(&str, CaseFn)] = &[$((stringify!($name), |d, b| Box::pin($name(d, b)))),*];
    };
}

cases!(
    magic_links_are_off_by_default,
    a_magic_link_signs_in_once,
    magic_link_refusals,
    magic_links_run_the_state_machine,
    magic_link_in_cookie_mode_sets_cookies_and_redirects,
    magic_link_bursts_hold_their_caps,
);

fn on(c: &mut NAuthConfig) {
    c.magic_link.enabled = true;
}

async fn ask(env: &Env, e: &str, redirect: Option<&str>) -> TestResponse {
    let mut body = json!({"email": e});
    if let Some(r) = redirect {
        body["redirectTo"] = json!(r);
    }
    env.post("/auth/magic-link", body).await
}

/// The token of the `n`-th magic-link mail to `e` (other mails, such as codes and notices,
/// are not counted).
async fn link_token(env: &Env, e: &str, n: usize) -> String {
    for _ in 0..100 {
        let links: Vec<String> = env
            .outbox
            .emails_to(e)
            .iter()
            .filter(|m| m.text.contains("/auth/magic-link/verify?token="))
            .filter_map(|m| extract_token(&m.text))
            .collect();
        if let Some(t) = links.get(n - 1) {
            return t.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no magic link #{n} to {e}");
}

async fn follow(env: &Env, t: &str) -> TestResponse {
    let path = format!("/auth/magic-link/verify?token={}", urlencode(t));
    env.send(TestRequest::new("GET", &path)).await
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

async fn magic_links_are_off_by_default(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    assert_error(&ask(&env, &email(), None).await, 404, "RESOURCE_NOT_FOUND");
    assert_error(&follow(&env, "x").await, 404, "RESOURCE_NOT_FOUND");
}

async fn a_magic_link_signs_in_once(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), on).await;
    let e = email();
    signup_verified(&env, &e).await;
    let r = ask(&env, &e, None).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json(), json!({"success": true}));
    let t = link_token(&env, &e, 1).await;
    let r = follow(&env, &t).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let body = r.json();
    assert_eq!(body["authMethod"], "magic_link");
    let access = token(&body, "accessToken");
    assert_eq!(env.get("/api/data", Some(&access)).await.status, 200);
    // Once.
    assert_error(&follow(&env, &t).await, 400, "VERIFY_CODE_INVALID");
    // Once also when clicked 12 times at once: one session, the rest refused.
    assert_eq!(ask(&env, &e, None).await.status, 200);
    let raced = link_token(&env, &e, 2).await;
    let clicks: Vec<_> = (0..12).map(|_| follow(&env, &raced)).collect();
    let answers = super::cases::futures_join(clicks).await;
    let won = answers.iter().filter(|r| r.status == 200).count();
    assert!(
        won == 1
            && answers
                .iter()
                .all(|r| r.status == 200 || r.code() == "VERIFY_CODE_INVALID"),
        "{:?}",
        answers
            .iter()
            .map(|r| (r.status, r.code()))
            .collect::<Vec<_>>()
    );
    // Only the newest link works; a link expires. (An hour on: three links an hour.)
    env.clock.advance(Duration::from_secs(3601));
    assert_eq!(ask(&env, &e, None).await.status, 200);
    let older = link_token(&env, &e, 3).await;
    assert_eq!(ask(&env, &e, None).await.status, 200);
    let newer = link_token(&env, &e, 4).await;
    assert_error(&follow(&env, &older).await, 400, "VERIFY_CODE_INVALID");
    env.clock.advance(Duration::from_secs(16 * 60));
    assert_error(&follow(&env, &newer).await, 400, "VERIFY_CODE_EXPIRED");
}

async fn magic_link_refusals(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), on).await;
    // Unknown addresses answer alike and get nothing.
    let nobody = email();
    let r = ask(&env, &nobody, None).await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})));
    // Open redirects, plain and encoded.
    let e = email();
    signup_verified(&env, &e).await;
    for bad in [
        "//evil.com",
        "https://evil.com/x",
        "/\\evil.com",
        "/%2F%2Fevil.com",
        "/%5Cevil.com",
        "javascript:alert(1)",
        "dashboard",
    ] {
        assert_error(&ask(&env, &e, Some(bad)).await, 400, "VALIDATION_FAILED");
    }
    // Made-up and malformed tokens.
    assert_error(
        &follow(&env, "not-a-token").await,
        400,
        "VERIFY_CODE_INVALID",
    );
    assert_error(
        &env.send(TestRequest::new("GET", "/auth/magic-link/verify"))
            .await,
        400,
        "VALIDATION_FAILED",
    );
    // Three links an hour per account; the rest are silent.
    for _ in 0..5 {
        assert_eq!(ask(&env, &e, Some("/home")).await.status, 200);
    }
    let mails = env
        .outbox
        .wait_emails_to(&e, 5, Duration::from_millis(500))
        .await;
    assert_eq!(mails.len(), 4, "the signup code and three links");
    let none = env
        .outbox
        .wait_emails_to(&nobody, 1, Duration::from_millis(100))
        .await;
    assert!(none.is_empty());
}

async fn magic_links_run_the_state_machine(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), on).await;
    // An unverified account: the click verifies the address.
    let e = email();
    let r = env
        .post("/auth/signup", json!({"email": e, "password": PW}))
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(r.json()["challengeName"], "VERIFY_EMAIL");
    assert_eq!(ask(&env, &e, None).await.status, 200);
    let r = follow(&env, &link_token(&env, &e, 1).await).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["user"]["isEmailVerified"], true);
    // An account with TOTP: the second factor is still asked for.
    let e = email();
    with_totp(&env, &e).await;
    assert_eq!(ask(&env, &e, None).await.status, 200);
    let r = follow(&env, &link_token(&env, &e, 1).await).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["challengeName"], "MFA_REQUIRED", "{}", r.json());
    assert!(r.json().get("accessToken").is_none());
}

async fn magic_link_in_cookie_mode_sets_cookies_and_redirects(door: &dyn Door, b: &Backend) {
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
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(ask(&env, &e, Some("/dashboard?tab=1")).await.status, 200);
    let r = follow(&env, &link_token(&env, &e, 1).await).await;
    assert_eq!(r.status, 302, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("location"), Some("/dashboard?tab=1"));
    let cookies: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        cookies.iter().any(|c| c.contains("access"))
            && cookies.iter().any(|c| c.contains("refresh")),
        "{cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .all(|c| c.contains("HttpOnly") || c.contains("csrf")),
        "{cookies:?}"
    );
}

/// 30 requests at once from one client address answer `200` at most
/// `magic_link.ip_max_per_hour` times (the rest `429 RATE_LIMIT_EMAIL`), and of 12 at once for
/// one account at most three links are mailed.
async fn magic_link_bursts_hold_their_caps(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| {
        on(c);
        c.magic_link.ip_max_per_hour = 20;
    })
    .await;
    let strangers: Vec<String> = (0..30).map(|_| email()).collect();
    let burst: Vec<_> = strangers.iter().map(|s| ask(&env, s, None)).collect();
    let answers = super::cases::futures_join(burst).await;
    let ok = answers.iter().filter(|r| r.status == 200).count();
    assert!(
        ok == 20
            && answers
                .iter()
                .all(|r| r.status == 200 || r.code() == "RATE_LIMIT_EMAIL"),
        "{:?}",
        answers
            .iter()
            .map(|r| (r.status, r.code()))
            .collect::<Vec<_>>()
    );

    let env = Env::start(door, &b.url(), on).await;
    let e = email();
    signup_verified(&env, &e).await;
    let burst: Vec<_> = (0..12).map(|_| ask(&env, &e, None)).collect();
    let answers = super::cases::futures_join(burst).await;
    assert!(answers.iter().all(|r| r.status == 200));
    let _ = link_token(&env, &e, 3).await;
    let links = env
        .outbox
        .wait_emails_to(&e, 5, Duration::from_millis(500))
        .await
        .iter()
        .filter(|m| m.text.contains("/auth/magic-link/verify?token="))
        .count();
    assert_eq!(links, 3, "three links an hour, however many requests");
}
