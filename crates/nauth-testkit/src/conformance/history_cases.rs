//! The user's audit history (docs/api.md §3.7): `GET /auth/audit/history?page=&limit=`.

use serde_json::{Value, json};

use super::cases::{PW, assert_error, email, login, signup_verified, token};
use super::{Backend, CaseFn, Door, Env, TestRequest, TestResponse};

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub(super) const HISTORY_CASES: &[(&str, CaseFn)] = &[$((stringify!($name), |d, b| Box::pin($name(d, b)))),*];
    };
}

cases!(audit_history_pages_the_users_own_events);

async fn history(env: &Env, access: &str, query: &str) -> TestResponse {
    env.send(TestRequest::new("GET", &format!("/auth/audit/history{query}")).bearer(access))
        .await
}

fn events(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["eventType"].as_str().expect("eventType").to_string())
        .collect()
}

async fn audit_history_pages_the_users_own_events(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let e = email();
    signup_verified(&env, &e).await;
    assert_eq!(login(&env, &e, "Wrong-Password-1").await.status, 401);
    let r = login(&env, &e, PW).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let access = token(&r.json(), "accessToken");

    let r = history(&env, &access, "").await;
    assert_eq!(r.status, 200, "{}", r.json());
    let all = r.json();
    let names = events(&all);
    for want in ["SIGNUP", "EMAIL_VERIFIED", "LOGIN_FAILED", "LOGIN_SUCCESS"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    assert_eq!(all["page"], 1);
    assert_eq!(all["limit"], 20);
    let total = all["total"].as_u64().expect("total");
    assert_eq!(total as usize, names.len());
    // Newest first; every row in the contract's shape; no secret in any of them.
    assert_eq!(names[0], "LOGIN_SUCCESS", "{names:?}");
    for row in all["data"].as_array().expect("data") {
        assert!(
            row["createdAt"].is_string() && row["details"].is_object(),
            "{row}"
        );
        assert!(matches!(
            row["eventStatus"].as_str(),
            Some("SUCCESS" | "FAILURE")
        ));
    }
    let text = all.to_string();
    assert!(!text.contains(PW) && !text.contains("Wrong-Password-1") && !text.contains(&access));

    // Pages.
    let r = history(&env, &access, "?page=2&limit=1").await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(events(&r.json()), [names[1].clone()]);
    assert_eq!(
        (r.json()["page"].clone(), r.json()["limit"].clone()),
        (json!(2), json!(1))
    );
    let r = history(&env, &access, "?page=999&limit=100").await;
    assert_eq!(r.status, 200);
    assert!(events(&r.json()).is_empty());
    assert_eq!(r.json()["total"], total);
    for bad in [
        "?limit=0",
        "?limit=101",
        "?page=0",
        "?page=x",
        "?limit=-1",
        "?page=1.5",
    ] {
        assert_error(&history(&env, &access, bad).await, 400, "VALIDATION_FAILED");
    }

    // Only the user's own rows; credentials required; not for API keys.
    let other = signup_verified(&env, &email()).await;
    let r = history(&env, &token(&other, "accessToken"), "").await;
    assert!(
        !events(&r.json()).iter().any(|n| n.starts_with("LOGIN")),
        "{}",
        r.json()
    );
    assert_error(
        &env.send(TestRequest::new("GET", "/auth/audit/history"))
            .await,
        401,
        "AUTH_TOKEN_MISSING",
    );
    let key = env
        .send(
            TestRequest::json(
                "POST",
                "/auth/api-keys",
                &json!({"name": "k", "scopes": ["read"], "password": PW}),
            )
            .bearer(&access),
        )
        .await;
    assert_eq!(key.status, 201);
    let key = token(&key.json(), "key");
    assert_error(&history(&env, &key, "").await, 403, "FORBIDDEN");
}
