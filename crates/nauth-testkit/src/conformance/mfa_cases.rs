//! MFA cases: TOTP computed from the provisioning URI, email codes from the outbox, backup
//! codes, enforcement, device management and trusted devices.

use std::time::Duration;

use serde_json::{Value, json};

use super::cases::{PW, assert_error, email, login, signup_verified, token};
use super::{Backend, Door, Env, TestRequest, TestResponse};
use crate::extract_code;
use crate::secrets::{base32, base32_decode, totp_code};
use nauth_core::Clock;
use nauth_core::config::{MfaEnforcement, MfaMethod, RememberDevices};

/// The secret of an `otpauth://` URI, as an authenticator app would read it.
pub(super) fn secret_of(uri: &str) -> Vec<u8> {
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    let q = uri.split_once('?').expect("query").1;
    let secret = q
        .split('&')
        .find_map(|kv| kv.strip_prefix("secret="))
        .expect("secret");
    base32_decode(secret)
}

pub(super) fn code_at(env: &Env, secret: &[u8]) -> String {
    totp_code(secret, (env.clock.now_ms() / 1000) as u64)
}

pub(super) fn authed(method: &str, path: &str, body: Value, access: &str) -> TestRequest {
    TestRequest::json(method, path, &body).bearer(access)
}

/// Signs up, enrols TOTP; returns (tokens, secret, backup codes).
pub(super) async fn with_totp(env: &Env, e: &str) -> (Value, Vec<u8>, Vec<String>) {
    let t = signup_verified(env, e).await;
    let access = token(&t, "accessToken");
    let r = env
        .send(authed(
            "POST",
            "/auth/mfa/setup-data",
            json!({"method": "totp"}),
            &access,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let d = r.json();
    assert!(
        d["qrCode"]
            .as_str()
            .expect("qr")
            .starts_with("data:image/png;base64,iVBOR")
    );
    assert_eq!(d["issuer"], "nauth");
    assert_eq!(d["accountName"], e);
    let secret = secret_of(d["otpauthUri"].as_str().expect("uri"));
    assert_eq!(base32(&secret), d["secret"].as_str().expect("secret"));
    let r = env
        .send(authed(
            "POST",
            "/auth/mfa/verify-setup",
            json!({"method": "totp", "code": code_at(env, &secret)}),
            &access,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let codes: Vec<String> =
        serde_json::from_value(r.json()["backupCodes"].clone()).expect("backup codes");
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.len() == 8));
    (t, secret, codes)
}

pub(super) async fn answer(env: &Env, challenge: &Value, method: &str, code: &str) -> TestResponse {
    env.post("/auth/respond-challenge", json!({"session": challenge["session"], "type": "MFA_REQUIRED", "method": method, "code": code})).await
}

pub(super) async fn mfa_totp_enrol_login_and_replay(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let e = email();
    let (t, secret, backup) = with_totp(&env, &e).await;
    let access = token(&t, "accessToken");
    let s = env.get("/auth/mfa/status", Some(&access)).await.json();
    assert_eq!(
        (s["enabled"].as_bool(), s["backupCodesRemaining"].as_u64()),
        (Some(true), Some(10))
    );
    assert_eq!(s["configuredMethods"], json!(["totp"]));
    assert_eq!(s["preferredMethod"], "totp");
    let used = code_at(&env, &secret);
    let c = login(&env, &e, PW).await.json();
    assert_eq!(c["challengeName"], "MFA_REQUIRED");
    assert_eq!(
        c["challengeParameters"],
        json!({"availableMethods": "totp,backup", "preferredMethod": "totp"})
    );
    // The enrolment code was consumed: replaying it in its window is refused.
    assert_error(
        &answer(&env, &c, "totp", &used).await,
        400,
        "VERIFY_CODE_INVALID",
    );
    env.clock.advance(Duration::from_secs(30));
    let fresh = code_at(&env, &secret);
    let r = answer(&env, &c, "totp", &fresh).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert!(r.json()["accessToken"].is_string());
    assert_eq!(r.json()["trusted"], false);
    let c2 = login(&env, &e, PW).await.json();
    assert_error(
        &answer(&env, &c2, "totp", &fresh).await,
        400,
        "VERIFY_CODE_INVALID",
    );
    // A backup code works once.
    let r = answer(&env, &c2, "backup", &backup[0].to_lowercase()).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let c3 = login(&env, &e, PW).await.json();
    assert_error(
        &answer(&env, &c3, "backup", &backup[0]).await,
        400,
        "VERIFY_CODE_INVALID",
    );
    let s = env.get("/auth/mfa/status", Some(&access)).await.json();
    assert_eq!(s["backupCodesRemaining"], 9);
    // Methods the user does not have.
    assert_error(
        &answer(&env, &c3, "sms", "123456").await,
        400,
        "MFA_METHOD_NOT_ALLOWED",
    );
    assert_error(
        &env.post(
            "/auth/challenge/resend",
            json!({"session": c3["session"], "method": "totp"}),
        )
        .await,
        400,
        "MFA_METHOD_NOT_ALLOWED",
    );
}

pub(super) async fn mfa_email_method_and_resend(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    let access = token(&t, "accessToken");
    let r = env
        .send(authed(
            "POST",
            "/auth/mfa/setup-data",
            json!({"method": "email"}),
            &access,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert!(
        r.json()["destination"]
            .as_str()
            .expect("dest")
            .contains("***")
    );
    let code = extract_code(&env.mail(&e, 2).await.text).expect("setup code");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = env
        .send(authed(
            "POST",
            "/auth/mfa/verify-setup",
            json!({"method": "email", "code": wrong}),
            &access,
        ))
        .await;
    assert_error(&r, 400, "VERIFY_CODE_INVALID");
    let r = env
        .send(authed(
            "POST",
            "/auth/mfa/verify-setup",
            json!({"method": "email", "code": code}),
            &access,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert!(r.json()["deviceId"].is_string());
    let c = login(&env, &e, PW).await.json();
    assert_eq!(c["challengeParameters"]["preferredMethod"], "email");
    assert!(
        c["challengeParameters"]["codeDeliveryDestination"]
            .as_str()
            .expect("dest")
            .contains("***")
    );
    // Mail 3 is the notice that a factor was added.
    assert!(env.mail(&e, 3).await.subject.contains("added"));
    let first = extract_code(&env.mail(&e, 4).await.text).expect("mfa code");
    assert_error(
        &env.post("/auth/challenge/resend", json!({"session": c["session"]}))
            .await,
        429,
        "RATE_LIMIT_RESEND",
    );
    env.clock.advance(Duration::from_secs(61));
    let r = env
        .post(
            "/auth/challenge/resend",
            json!({"session": c["session"], "method": "email"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let second = extract_code(&env.mail(&e, 5).await.text).expect("mfa code");
    if first != second {
        assert_error(
            &answer(&env, &c, "email", &first).await,
            400,
            "VERIFY_CODE_INVALID",
        );
    }
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": c["session"], "type": "MFA_REQUIRED", "code": second}),
        )
        .await;
    assert_eq!(
        r.status,
        200,
        "default method is the preferred one: {}",
        r.json()
    );
}

pub(super) async fn mfa_required_enforcement(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| {
        c.mfa.enforcement = MfaEnforcement::Required
    })
    .await;
    let e = email();
    let r = env
        .post("/auth/signup", json!({"email": e, "password": PW}))
        .await;
    let code = extract_code(&env.mail(&e, 1).await.text).expect("code");
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": r.json()["session"], "type": "VERIFY_EMAIL", "code": code}),
        )
        .await;
    let c = r.json();
    assert_eq!(c["challengeName"], "MFA_SETUP_REQUIRED", "{c}");
    assert_eq!(
        c["challengeParameters"],
        json!({"allowedMethods": "totp,email,sms"})
    );
    let r = env
        .post(
            "/auth/challenge/setup-data",
            json!({"session": c["session"], "method": "totp"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let secret = secret_of(r.json()["setupData"]["otpauthUri"].as_str().expect("uri"));
    let bad = env.post("/auth/respond-challenge", json!({"session": c["session"], "type": "MFA_SETUP_REQUIRED", "method": "totp", "setupData": {}})).await;
    assert_error(&bad, 400, "VALIDATION_FAILED");
    let r = env.post("/auth/respond-challenge", json!({"session": c["session"], "type": "MFA_SETUP_REQUIRED", "method": "totp", "setupData": {"code": code_at(&env, &secret)}})).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let t = r.json();
    assert!(t["accessToken"].is_string());
    assert_eq!(t["backupCodes"].as_array().map(Vec::len), Some(10));
    // Next login: MFA_REQUIRED.
    assert_eq!(
        login(&env, &e, PW).await.json()["challengeName"],
        "MFA_REQUIRED"
    );
    // A setup-data call for the wrong challenge type.
    let r = env
        .post(
            "/auth/challenge/setup-data",
            json!({"session": login(&env, &e, PW).await.json()["session"], "method": "totp"}),
        )
        .await;
    assert_error(&r, 400, "CHALLENGE_TYPE_MISMATCH");
    // A grace period lets new users in without MFA.
    let grace = Env::start(door, &b.url(), |c| {
        c.mfa.enforcement = MfaEnforcement::Required;
        c.mfa.grace_period = Duration::from_secs(7 * 86_400);
    })
    .await;
    assert!(signup_verified(&grace, &email()).await["accessToken"].is_string());
    // Only allowed methods can be set up.
    let only_totp = Env::start(door, &b.url(), |c| {
        c.mfa.allowed_methods = vec![MfaMethod::Totp]
    })
    .await;
    let t = signup_verified(&only_totp, &email()).await;
    let r = only_totp
        .send(authed(
            "POST",
            "/auth/mfa/setup-data",
            json!({"method": "sms", "phone": "+14155550000"}),
            &token(&t, "accessToken"),
        ))
        .await;
    assert_error(&r, 400, "MFA_METHOD_NOT_ALLOWED");
}

pub(super) async fn mfa_attempts_and_brute_force(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let e = email();
    let (_, secret, _) = with_totp(&env, &e).await;
    let c = login(&env, &e, PW).await.json();
    for (code, remaining) in [("abc", 2), ("1234567", 1), ("000000", 0)] {
        let r = answer(&env, &c, "totp", code).await;
        if r.status == 200 {
            return; // "000000" happened to be the current code: nothing left to prove here.
        }
        assert_error(&r, 400, "VERIFY_CODE_INVALID");
        assert_eq!(r.json()["details"]["attemptsRemaining"], remaining);
    }
    env.clock.advance(Duration::from_secs(30));
    assert_error(
        &answer(&env, &c, "totp", &code_at(&env, &secret)).await,
        400,
        "CHALLENGE_MAX_ATTEMPTS",
    );
    // Wrong second factors count toward the account lockout (5): guessing is bounded.
    let c = login(&env, &e, PW).await.json();
    assert_error(
        &answer(&env, &c, "totp", "999999").await,
        400,
        "VERIFY_CODE_INVALID",
    );
    assert_error(
        &answer(&env, &c, "totp", "999998").await,
        400,
        "VERIFY_CODE_INVALID",
    );
    let r = login(&env, &e, PW).await;
    assert_error(&r, 429, "RATE_LIMIT_LOGIN");
}

pub(super) async fn mfa_device_management(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let e = email();
    let (t, secret, old_codes) = with_totp(&env, &e).await;
    let access = token(&t, "accessToken");
    // Add email as a second method (MFA is on: the password is asked again).
    env.send(authed(
        "POST",
        "/auth/mfa/setup-data",
        json!({"method": "email", "password": PW}),
        &access,
    ))
    .await;
    let code = extract_code(&env.mail(&e, 3).await.text).expect("code");
    let r = env
        .send(authed(
            "POST",
            "/auth/mfa/verify-setup",
            json!({"method": "email", "code": code}),
            &access,
        ))
        .await;
    assert!(
        r.json().get("backupCodes").is_none(),
        "backup codes only with the first method"
    );
    let devices = env.get("/auth/mfa/devices", Some(&access)).await.json()["devices"]
        .as_array()
        .expect("devices")
        .clone();
    assert_eq!(devices.len(), 2);
    let totp = devices.iter().find(|d| d["type"] == "totp").expect("totp");
    let mail = devices
        .iter()
        .find(|d| d["type"] == "email")
        .expect("email");
    assert_eq!(
        (totp["isPreferred"].as_bool(), mail["isPreferred"].as_bool()),
        (Some(true), Some(false))
    );
    let r = env
        .send(authed(
            "POST",
            &format!(
                "/auth/mfa/devices/{}/preferred",
                mail["id"].as_str().expect("id")
            ),
            json!({}),
            &access,
        ))
        .await;
    assert_eq!(r.json(), json!({"success": true}));
    assert_eq!(
        env.get("/auth/mfa/status", Some(&access)).await.json()["preferredMethod"],
        "email"
    );
    // Another user's device is 404; a wrong password is refused.
    let other = signup_verified(&env, &email()).await;
    let path = format!("/auth/mfa/devices/{}", totp["id"].as_str().expect("id"));
    assert_error(
        &env.send(authed(
            "DELETE",
            &path,
            json!({"password": PW}),
            &token(&other, "accessToken"),
        ))
        .await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    assert_error(
        &env.send(authed(
            "DELETE",
            &path,
            json!({"password": "Wrong-Password-1"}),
            &access,
        ))
        .await,
        400,
        "PASSWORD_INCORRECT",
    );
    assert_error(
        &env.send(authed("DELETE", &path, json!({}), &access)).await,
        400,
        "VALIDATION_FAILED",
    );
    // Remove by a current code.
    env.clock.advance(Duration::from_secs(30));
    let r = env
        .send(authed(
            "DELETE",
            &path,
            json!({"code": code_at(&env, &secret)}),
            &access,
        ))
        .await;
    assert_eq!(
        r.json(),
        json!({"removedDeviceId": totp["id"], "mfaDisabled": false})
    );
    // New backup codes replace the old ones.
    let r = env
        .send(authed(
            "POST",
            "/auth/mfa/backup-codes",
            json!({"password": PW}),
            &access,
        ))
        .await;
    let fresh: Vec<String> = serde_json::from_value(r.json()["codes"].clone()).expect("codes");
    assert_eq!(fresh.len(), 10);
    let c = login(&env, &e, PW).await.json();
    assert_error(
        &answer(&env, &c, "backup", &old_codes[1]).await,
        400,
        "VERIFY_CODE_INVALID",
    );
    assert_eq!(answer(&env, &c, "backup", &fresh[0]).await.status, 200);
    // Removing the last device disables MFA and deletes the backup codes.
    let path = format!("/auth/mfa/devices/{}", mail["id"].as_str().expect("id"));
    let r = env
        .send(authed("DELETE", &path, json!({"password": PW}), &access))
        .await;
    assert_eq!(r.json()["mfaDisabled"], true);
    let s = env.get("/auth/mfa/status", Some(&access)).await.json();
    assert_eq!(
        (s["enabled"].as_bool(), s["backupCodesRemaining"].as_u64()),
        (Some(false), Some(0))
    );
    assert!(login(&env, &e, PW).await.json()["accessToken"].is_string());
}

pub(super) async fn trusted_devices(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| {
        c.mfa.remember_devices = RememberDevices::UserOptIn
    })
    .await;
    let e = email();
    let (t, secret, _) = with_totp(&env, &e).await;
    let access = token(&t, "accessToken");
    let r = env
        .send(authed("POST", "/auth/trust-device", json!({}), &access))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let device = r.json()["deviceToken"]
        .as_str()
        .expect("device token")
        .to_string();
    let with_device = |extra: Option<&str>| {
        let mut req = TestRequest::json(
            "POST",
            "/auth/login",
            &json!({"identifier": e, "password": PW}),
        );
        if let Some(d) = extra {
            req = req.header("x-device-token", d);
        }
        req
    };
    let r = env.send(with_device(Some(&device))).await;
    assert_eq!(r.json()["trusted"], true, "{}", r.json());
    assert!(r.json()["accessToken"].is_string());
    assert_eq!(
        env.send(with_device(Some("forged"))).await.json()["challengeName"],
        "MFA_REQUIRED"
    );
    assert_eq!(
        env.send(with_device(None)).await.json()["challengeName"],
        "MFA_REQUIRED"
    );
    let list = env.get("/auth/trusted-devices", Some(&access)).await.json()["trustedDevices"]
        .as_array()
        .expect("list")
        .clone();
    assert_eq!(list.len(), 1);
    assert!(list[0]["trustedUntil"].is_string());
    let id = list[0]["id"].as_str().expect("id");
    let r = env
        .send(TestRequest::new("DELETE", &format!("/auth/trusted-devices/{id}")).bearer(&access))
        .await;
    assert_eq!(r.json(), json!({"success": true}));
    assert_eq!(
        env.send(with_device(Some(&device))).await.json()["challengeName"],
        "MFA_REQUIRED"
    );
    assert_eq!(
        env.send(TestRequest::new("DELETE", "/auth/trusted-devices").bearer(&access))
            .await
            .json(),
        json!({"revokedCount": 0})
    );
    // remember_devices = always: completing MFA hands out a device token.
    let always = Env::start(door, &b.url(), |c| {
        c.mfa.remember_devices = RememberDevices::Always
    })
    .await;
    let e2 = email();
    let (_, s2, _) = with_totp(&always, &e2).await;
    always.clock.advance(Duration::from_secs(30));
    let c = login(&always, &e2, PW).await.json();
    let r = answer(&always, &c, "totp", &code_at(&always, &s2)).await;
    assert!(r.json()["deviceToken"].is_string(), "{}", r.json());
    // never: refused.
    let never = Env::start(door, &b.url(), |_| {}).await;
    let t = signup_verified(&never, &email()).await;
    assert_error(
        &never
            .send(authed(
                "POST",
                "/auth/trust-device",
                json!({}),
                &token(&t, "accessToken"),
            ))
            .await,
        403,
        "FORBIDDEN",
    );
    let _ = secret;
}

pub(super) async fn mfa_sms_through_the_webhook(door: &dyn Door, b: &Backend) {
    let hook = crate::capture::WebhookCapture::start()
        .await
        .expect("webhook listener");
    let mut cfg = super::test_config(&b.url());
    cfg.sms.provider = nauth_core::config::SmsProvider::Webhook;
    cfg.sms.webhook_url = hook.url();
    let clock = nauth_core::ManualClock::new();
    let outbox = nauth_core::MemoryOutbox::default();
    let nauth = nauth_core::NAuth::builder(cfg)
        .clock(clock.clone())
        .email_sender(outbox.clone())
        .build()
        .await
        .expect("engine");
    let env = Env::serve(door, nauth, clock, outbox).await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    let access = token(&t, "accessToken");
    let digits = super::random_digits(9);
    let phone = format!("+44{digits}");
    assert_error(
        &env.send(authed(
            "POST",
            "/auth/mfa/setup-data",
            json!({"method": "sms"}),
            &access,
        ))
        .await,
        400,
        "VALIDATION_FAILED",
    );
    let r = env
        .send(authed(
            "POST",
            "/auth/mfa/setup-data",
            json!({"method": "sms", "phone": phone}),
            &access,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["destination"], format!("***-***-{}", &digits[5..]));
    let sent = hook.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(sent.len(), 1);
    let body: Value = serde_json::from_str(&sent[0].body).expect("json body");
    assert_eq!(body["to"], phone.as_str());
    let code = extract_code(body["message"].as_str().expect("message")).expect("code");
    let r = env
        .send(authed(
            "POST",
            "/auth/mfa/verify-setup",
            json!({"method": "sms", "code": code}),
            &access,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let c = login(&env, &e, PW).await.json();
    assert_eq!(c["challengeParameters"]["preferredMethod"], "sms");
    assert_eq!(
        c["challengeParameters"]["codeDeliveryDestination"],
        format!("***-***-{}", &digits[5..])
    );
    let sent = hook.wait_for(2, Duration::from_secs(5)).await;
    let body: Value = serde_json::from_str(&sent[1].body).expect("json body");
    let code = extract_code(body["message"].as_str().expect("message")).expect("code");
    let r = answer(&env, &c, "sms", &code).await;
    assert_eq!(r.status, 200, "{}", r.json());
    // An SMS factor is not the account's phone (docs/api.md §3.4).
    assert_eq!(r.json()["user"]["phone"], Value::Null);
}

pub(super) async fn sms_code_to(env: &Env, phone: &str, n: usize) -> String {
    for _ in 0..200 {
        let texts: Vec<_> = env
            .outbox
            .sms()
            .into_iter()
            .filter(|m| m.to == phone)
            .collect();
        if texts.len() >= n {
            return extract_code(&texts[n - 1].text).expect("code in SMS");
        }
        // SMS go out after the answer; the memory outbox has no per-number waiter.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no SMS #{n} to {phone}");
}

/// Signs up (verification `both`, no phone) and answers VERIFY_EMAIL; returns the
/// VERIFY_PHONE challenge that follows.
pub(super) async fn signup_to_verify_phone(env: &Env, e: &str) -> Value {
    let r = env
        .post("/auth/signup", json!({"email": e, "password": PW}))
        .await;
    let code = extract_code(&env.mail(e, 1).await.text).expect("code");
    let c = env
        .post(
            "/auth/respond-challenge",
            json!({"session": r.json()["session"], "type": "VERIFY_EMAIL", "code": code}),
        )
        .await
        .json();
    assert_eq!(c["challengeName"], "VERIFY_PHONE", "{c}");
    c
}

pub(super) fn random_phone() -> String {
    format!("+33{}", super::random_digits(9))
}

pub(super) async fn verify_phone_with_collection(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| {
        c.signup.verification = nauth_core::config::Verification::Both
    })
    .await;
    let e = email();
    let c = signup_to_verify_phone(&env, &e).await;
    assert_eq!(c["challengeParameters"]["requiresPhoneCollection"], "true");
    let ans = |body: Value| env.post("/auth/respond-challenge", body);
    assert_error(
        &ans(json!({"session": c["session"], "type": "VERIFY_PHONE"})).await,
        400,
        "VALIDATION_FAILED",
    );
    assert_error(
        &ans(json!({"session": c["session"], "type": "VERIFY_PHONE", "phone": "12345"})).await,
        400,
        "VALIDATION_FAILED",
    );
    let phone = random_phone();
    let r = ans(json!({"session": c["session"], "type": "VERIFY_PHONE", "phone": phone})).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let c2 = r.json();
    assert_eq!(c2["challengeName"], "VERIFY_PHONE");
    assert_eq!(
        c2["session"], c["session"],
        "the same session waits for the code"
    );
    assert_eq!(
        c2["challengeParameters"]["codeDeliveryDestination"],
        format!("***-***-{}", &phone[phone.len() - 4..])
    );
    let code = sms_code_to(&env, &phone, 1).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_error(
        &ans(json!({"session": c["session"], "type": "VERIFY_PHONE", "code": wrong})).await,
        400,
        "VERIFY_CODE_INVALID",
    );
    assert_error(
        &env.post("/auth/challenge/resend", json!({"session": c["session"]}))
            .await,
        429,
        "RATE_LIMIT_RESEND",
    );
    env.clock.advance(Duration::from_secs(61));
    assert_eq!(
        env.post("/auth/challenge/resend", json!({"session": c["session"]}))
            .await
            .status,
        200
    );
    let code = sms_code_to(&env, &phone, 2).await;
    let r = ans(json!({"session": c["session"], "type": "VERIFY_PHONE", "code": code})).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let u = &r.json()["user"];
    assert_eq!(
        (u["phone"].as_str(), u["isPhoneVerified"].as_bool()),
        (Some(phone.as_str()), Some(true))
    );
    // Verification "phone" with a number given at signup: the code goes out at once.
    let env = Env::start(door, &b.url(), |c| {
        c.signup.verification = nauth_core::config::Verification::Phone
    })
    .await;
    let phone = random_phone();
    let r = env
        .post(
            "/auth/signup",
            json!({"email": email(), "password": PW, "phone": phone}),
        )
        .await;
    let c = r.json();
    assert_eq!(
        (
            c["challengeName"].as_str(),
            c["challengeParameters"]["requiresPhoneCollection"].as_str()
        ),
        (Some("VERIFY_PHONE"), Some("false"))
    );
    let code = sms_code_to(&env, &phone, 1).await;
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": c["session"], "type": "VERIFY_PHONE", "code": code}),
        )
        .await;
    assert!(r.json()["accessToken"].is_string(), "{}", r.json());
}
