//! Mails people trust (docs/mails.md): each is text plus an HTML alternative in the reader's
//! language — the account's stored `locale`, else the request's `Accept-Language` — and the
//! HTML escapes what users typed.

use serde_json::json;

use super::cases::{PW, assert_error, email, signup_verified, token};
use super::{Backend, CaseFn, Door, Env, TestRequest};
use crate::{extract_code, extract_token};

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub(super) const MAIL_CASES: &[(&str, CaseFn)] = &[$((stringify!($name), |d, b| Box::pin($name(d, b)))),*];
    };
}

cases!(
    signup_mail_speaks_the_requests_language,
    a_stored_locale_wins_over_the_request,
);

async fn signup_mail_speaks_the_requests_language(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let e = email();
    let body = json!({"email": e, "password": PW, "firstName": "<b>x</b>"});
    let r = env
        .send(
            TestRequest::json("POST", "/auth/signup", &body)
                .header("accept-language", "de-DE, fr-CA;q=0.8, en;q=0.5"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    let mail = env.mail(&e, 1).await;
    assert!(mail.subject.starts_with("Vérifiez"), "{}", mail.subject);
    // The name typed at signup is not put in a mail to an address nobody has proved yet.
    assert!(mail.text.starts_with("Bonjour,\n"), "{}", mail.text);
    assert!(mail.text.contains("Votre code de vérification est"));
    let code = extract_code(&mail.text).expect("the code in the text part");
    let link = extract_token(&mail.text).expect("the link in the text part");
    assert_eq!(mail.text.matches("token=").count(), 1, "one link");
    assert!(
        mail.text
            .contains("http://app.test/auth/verify-email?token=")
    );
    let html = mail.html.as_deref().expect("an HTML part");
    assert!(html.contains("<html lang=\"fr\">"), "{html}");
    assert!(
        !html.contains("<b>x</b>") && !html.contains("&lt;b&gt;"),
        "{html}"
    );
    assert!(html.contains(&code) && html.contains(&link));
    // The request's language is not stored: the account has no locale of its own.
    let r = env
        .post(
            "/auth/respond-challenge",
            json!({"session": r.json()["session"], "type": "VERIFY_EMAIL", "code": code}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let profile = env
        .get("/auth/profile", Some(&token(&r.json(), "accessToken")))
        .await;
    assert_eq!(profile.json()["locale"], json!(null));

    // Once the address is proved, mails to it greet by the name: as typed in the text part,
    // escaped in the HTML part.
    let forgot = TestRequest::json("POST", "/auth/forgot-password", &json!({"identifier": e}))
        .header("accept-language", "fr");
    assert_eq!(env.send(forgot).await.status, 200);
    let mail = env.mail(&e, 2).await;
    assert!(
        mail.text.starts_with("Bonjour <b>x</b>,\n"),
        "the text part is plain text: {}",
        mail.text
    );
    let html = mail.html.as_deref().expect("an HTML part");
    assert!(
        html.contains("Bonjour &lt;b&gt;x&lt;&#x2f;b&gt;,"),
        "{html}"
    );
    assert!(!html.contains("<b>x</b>"), "user text escaped in HTML");

    // Without a header (or with one naming no shipped language), the default language.
    let e2 = email();
    let body = json!({"email": e2, "password": PW});
    let r = env
        .send(TestRequest::json("POST", "/auth/signup", &body).header("accept-language", "de, es"))
        .await;
    assert_eq!(r.status, 201);
    let mail = env.mail(&e2, 1).await;
    assert!(
        mail.subject.starts_with("Verify your email"),
        "{}",
        mail.subject
    );
    assert!(mail.text.starts_with("Hello,\n"), "{}", mail.text);
    assert!(mail.html.expect("html").contains("<html lang=\"en\">"));
}

async fn a_stored_locale_wins_over_the_request(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let e = email();
    let access = token(&signup_verified(&env, &e).await, "accessToken");
    let put = |v: serde_json::Value| TestRequest::json("PUT", "/auth/profile", &v).bearer(&access);

    for bad in [json!("de"), json!("fr-"), json!("*"), json!(""), json!(5)] {
        let r = env.send(put(json!({"locale": bad}))).await;
        assert_error(&r, 400, "VALIDATION_FAILED");
        assert!(
            r.json()["details"]["validationErrors"]["locale"].is_array(),
            "{}",
            r.json()
        );
    }
    let r = env.send(put(json!({"locale": "fr-CA"}))).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["locale"], "fr");
    assert_eq!(
        env.get("/auth/profile", Some(&access)).await.json()["locale"],
        "fr"
    );

    let forgot = |lang: &str| {
        TestRequest::json("POST", "/auth/forgot-password", &json!({"identifier": e}))
            .header("accept-language", lang)
    };
    // An English browser, a French account: French.
    assert_eq!(env.send(forgot("en-US, en;q=0.9")).await.status, 200);
    let mail = env.mail(&e, 2).await;
    assert!(
        mail.subject.starts_with("Réinitialisez"),
        "{}",
        mail.subject
    );
    assert!(
        mail.text.contains("Il expire dans 15 minutes."),
        "{}",
        mail.text
    );
    assert!(extract_code(&mail.text).is_some());
    assert!(
        mail.text.contains("http://app.test/reset-password?token="),
        "{}",
        mail.text
    );
    assert!(mail.html.expect("html").contains("<html lang=\"fr\">"));

    // Cleared: the request decides again.
    let r = env.send(put(json!({"locale": null}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["locale"], json!(null));
    assert_eq!(env.send(forgot("en")).await.status, 200);
    let mail = env.mail(&e, 3).await;
    assert!(mail.subject.starts_with("Reset your"), "{}", mail.subject);

    // A locale chosen at signup is stored and used at once; an unknown one is refused.
    let e2 = email();
    let body = json!({"email": e2, "password": PW, "locale": "xx"});
    assert_error(
        &env.post("/auth/signup", body).await,
        400,
        "VALIDATION_FAILED",
    );
    let body = json!({"email": e2, "password": PW, "locale": "fr"});
    let r = env
        .send(TestRequest::json("POST", "/auth/signup", &body).header("accept-language", "en"))
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    let mail = env.mail(&e2, 1).await;
    assert!(mail.subject.starts_with("Vérifiez"), "{}", mail.subject);
}
