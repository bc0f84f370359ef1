//! API keys (docs/api.md §3.5, §6): created, listed and revoked by a user's session; they
//! authenticate the app's routes through `X-API-Key` or a bearer `nk_…`, `RequireScope` checks
//! their scopes, and nauth's own account routes refuse them.

use std::time::Duration;

use serde_json::{Value, json};

use super::cases::{PW, assert_error, email, login, signup_verified, token, update_user};
use super::{Backend, CaseFn, Door, Env, TestRequest, TestResponse};
use crate::db::{audit_log, users};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub(super) const API_KEY_CASES: &[(&str, CaseFn)] = &[$((stringify!($name), |d, b| Box::pin($name(d, b)))),*];
    };
}

cases!(
    api_keys_are_created_listed_used_and_revoked,
    api_key_requests_that_are_refused,
    api_keys_die_with_their_user,
    api_keys_carry_the_roles_the_database_holds,
    api_key_creation_needs_a_fresh_proof,
    database_validation_reads_roles_from_the_database,
);

/// `POST /auth/api-keys` with the user's access token.
async fn create(env: &Env, access: &str, body: Value) -> TestResponse {
    env.send(TestRequest::json("POST", "/auth/api-keys", &body).bearer(access))
        .await
}

/// A new key of `scopes`; returns the `201` body.
async fn new_key(env: &Env, access: &str, scopes: &[&str]) -> Value {
    let r = create(
        env,
        access,
        json!({"name": "ci", "scopes": scopes, "password": PW}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json());
    r.json()
}

/// `GET path` with the key in `X-API-Key`.
async fn with_key(env: &Env, path: &str, key: &str) -> TestResponse {
    env.send(TestRequest::new("GET", path).header("x-api-key", key))
        .await
}

/// The user's keys as `GET /auth/api-keys` lists them.
async fn listed(env: &Env, access: &str) -> Vec<Value> {
    let r = env
        .send(TestRequest::new("GET", "/auth/api-keys").bearer(access))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    r.json()["apiKeys"].as_array().expect("apiKeys").clone()
}

/// The sub of the access token's user.
async fn sub(env: &Env, access: &str) -> String {
    let r = env.get("/api/data", Some(access)).await;
    assert_eq!(r.status, 200, "{}", r.json());
    token(&r.json(), "sub")
}

async fn api_keys_are_created_listed_used_and_revoked(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let t = signup_verified(&env, &email()).await;
    let access = token(&t, "accessToken");
    let me = sub(&env, &access).await;

    let created = new_key(&env, &access, &["read", "write", "read"]).await;
    let id = token(&created, "id");
    let key = token(&created, "key");
    assert!(
        id.len() == 16 && id.bytes().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(created["prefix"], format!("nk_{id}"));
    assert!(
        key.starts_with(&format!("nk_{id}_")) && key.len() == 63,
        "{key}"
    );
    assert_eq!(created["scopes"], json!(["read", "write"]));
    assert_eq!(created["name"], "ci");
    assert!(created["createdAt"].is_string() && created["expiresAt"].is_null());

    // Listed without its secret, not yet used.
    let keys = listed(&env, &access).await;
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(k["id"], id.as_str());
    assert_eq!(k["lastFour"], &key[key.len() - 4..]);
    assert!(k.get("key").is_none() && !k.to_string().contains(&key[20..]));
    assert!(k["lastUsedAt"].is_null() && k["revokedAt"].is_null());

    // It authenticates the app's routes, as X-API-Key and as a bearer, with its scope.
    let r = with_key(&env, "/api/data", &key).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["sub"], me.as_str());
    let r = env.get("/api/data", Some(&key)).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let r = with_key(&env, "/api/reports", &key).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["authMethod"], "api_key");
    // A user's session holds every scope.
    assert_eq!(env.get("/api/reports", Some(&access)).await.status, 200);

    // lastUsedAt: written on first use, then at most once a minute.
    let first = listed(&env, &access).await[0]["lastUsedAt"].clone();
    assert!(first.is_string(), "{first}");
    env.clock.advance(Duration::from_secs(30));
    assert_eq!(with_key(&env, "/api/data", &key).await.status, 200);
    assert_eq!(listed(&env, &access).await[0]["lastUsedAt"], first);
    env.clock.advance(Duration::from_secs(31));
    assert_eq!(with_key(&env, "/api/data", &key).await.status, 200);
    assert_ne!(listed(&env, &access).await[0]["lastUsedAt"], first);

    let created_rows = audit_log::Entity::find()
        .filter(audit_log::Column::UserId.eq(me.as_str()))
        .filter(audit_log::Column::EventType.eq("API_KEY_CREATED"))
        .count(env.db().await)
        .await
        .expect("audit");
    assert_eq!(created_rows, 1);

    // Revoked at once.
    let path = format!("/auth/api-keys/{id}");
    let r = env
        .send(TestRequest::new("DELETE", &path).bearer(&access))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json(), json!({"success": true}));
    assert_error(
        &with_key(&env, "/api/data", &key).await,
        401,
        "API_KEY_INVALID",
    );
    assert_error(
        &env.send(TestRequest::new("DELETE", &path).bearer(&access))
            .await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    assert!(listed(&env, &access).await[0]["revokedAt"].is_string());
}

async fn api_key_requests_that_are_refused(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let t = signup_verified(&env, &email()).await;
    let access = token(&t, "accessToken");

    // Bad creations.
    for (body, status, code) in [
        (
            json!({"password": PW, "name": "x", "scopes": ["nope"]}),
            400,
            "API_KEY_SCOPE_INVALID",
        ),
        (
            json!({"password": PW, "name": "x", "scopes": ["read", "admin:all"]}),
            400,
            "API_KEY_SCOPE_INVALID",
        ),
        (
            json!({"password": PW, "name": "x"}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            json!({"password": PW, "name": "x", "scopes": []}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            json!({"password": PW, "name": "x", "scopes": "read"}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            json!({"password": PW, "name": "x", "scopes": [1]}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            json!({"password": PW, "scopes": ["read"]}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            json!({"password": PW, "name": "x", "scopes": ["read"], "expiresAt": "2001-01-01T00:00:00Z"}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            json!({"password": PW, "name": "x", "scopes": ["read"], "expiresAt": "tomorrow"}),
            400,
            "VALIDATION_FAILED",
        ),
    ] {
        assert_error(&create(&env, &access, body).await, status, code);
    }
    assert!(
        listed(&env, &access).await.is_empty(),
        "nothing was created"
    );

    // A key without the route's scope.
    let writer = token(&new_key(&env, &access, &["write"]).await, "key");
    assert_eq!(with_key(&env, "/api/data", &writer).await.status, 200);
    assert_error(
        &with_key(&env, "/api/reports", &writer).await,
        403,
        "FORBIDDEN",
    );

    // Keys never manage keys, nor the account.
    let reader = new_key(&env, &access, &["read"]).await;
    let key = token(&reader, "key");
    let body = json!({"name": "y", "scopes": ["read"]});
    for req in [
        TestRequest::json("POST", "/auth/api-keys", &body).header("x-api-key", &key),
        TestRequest::json("POST", "/auth/api-keys", &body).bearer(&key),
        TestRequest::new("GET", "/auth/api-keys").header("x-api-key", &key),
        TestRequest::new(
            "DELETE",
            &format!("/auth/api-keys/{}", token(&reader, "id")),
        )
        .bearer(&key),
        TestRequest::new("GET", "/auth/profile").bearer(&key),
        TestRequest::json("POST", "/auth/change-password", &json!({})).header("x-api-key", &key),
    ] {
        assert_error(&env.send(req).await, 403, "FORBIDDEN");
    }
    assert_eq!(listed(&env, &access).await.len(), 2);

    // Malformed, truncated, unknown and wrong keys: all the same answer.
    let id = token(&reader, "id");
    let wrong_secret = format!("nk_{id}_{}", "A".repeat(43));
    let unknown = format!("nk_{}_{}", "0".repeat(16), &key[20..]);
    for bad in [
        "nk_garbage".to_string(),
        key[..key.len() - 1].to_string(),
        format!("{key}A"),
        format!("nk_{}", key[3..].to_uppercase()),
        wrong_secret,
        unknown,
    ] {
        assert_error(
            &with_key(&env, "/api/data", &bad).await,
            401,
            "API_KEY_INVALID",
        );
        assert_error(
            &env.get("/api/data", Some(&bad)).await,
            401,
            "API_KEY_INVALID",
        );
    }
    assert_eq!(with_key(&env, "/api/data", &key).await.status, 200);

    // An empty X-API-Key is no key: the bearer token decides.
    let r = env
        .send(
            TestRequest::new("GET", "/api/data")
                .header("x-api-key", "")
                .bearer(&access),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());

    // Expiry.
    let in_an_hour = nauth_core::Clock::now_ms(&env.clock) / 1000 + 3600;
    let at = time::OffsetDateTime::from_unix_timestamp(in_an_hour).expect("time");
    let at = at
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let r = create(
        &env,
        &access,
        json!({"name": "short", "scopes": ["read"], "expiresAt": at, "password": PW}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json());
    assert!(r.json()["expiresAt"].is_string());
    let short = token(&r.json(), "key");
    assert_eq!(with_key(&env, "/api/reports", &short).await.status, 200);
    env.clock.advance(Duration::from_secs(3601));
    assert_error(
        &with_key(&env, "/api/reports", &short).await,
        401,
        "API_KEY_EXPIRED",
    );

    // Another user's key is not this user's to revoke.
    let other = signup_verified(&env, &email()).await;
    let other_access = token(&other, "accessToken");
    let r = env
        .send(TestRequest::new("DELETE", &format!("/auth/api-keys/{id}")).bearer(&other_access))
        .await;
    assert_error(&r, 404, "RESOURCE_NOT_FOUND");
    assert_eq!(with_key(&env, "/api/data", &key).await.status, 200);
}

async fn api_keys_die_with_their_user(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    // Disabled (by the admin API, run here as the operator): refused at once, also when the
    // key was just seen (and cached).
    let t = signup_verified(&env, &email()).await;
    let sub = token(&t["user"], "sub");
    let key = token(
        &new_key(&env, &token(&t, "accessToken"), &["read"]).await,
        "key",
    );
    for _ in 0..3 {
        assert_eq!(with_key(&env, "/api/data", &key).await.status, 200);
    }
    let disable = format!("/users/{sub}/disable");
    env.nauth
        .admin_call("POST", &disable, None)
        .await
        .expect("disable");
    assert_error(
        &with_key(&env, "/api/data", &key).await,
        401,
        "API_KEY_INVALID",
    );

    // Deleted: refused, and gone with the account.
    let t = signup_verified(&env, &email()).await;
    let access = token(&t, "accessToken");
    let key = token(&new_key(&env, &access, &["read"]).await, "key");
    let r = env
        .send(
            TestRequest::json("DELETE", "/auth/account", &json!({"password": PW})).bearer(&access),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_error(
        &with_key(&env, "/api/data", &key).await,
        401,
        "API_KEY_INVALID",
    );
}

async fn api_keys_carry_the_roles_the_database_holds(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let t = signup_verified(&env, &email()).await;
    let roles = format!("/users/{}/roles", token(&t["user"], "sub"));
    let key = token(
        &new_key(&env, &token(&t, "accessToken"), &["read"]).await,
        "key",
    );
    let set = |r: &'static [&'static str]| {
        let (nauth, roles) = (env.nauth.clone(), roles.clone());
        async move {
            let body = json!({ "roles": r });
            nauth
                .admin_call("POST", &roles, Some(&body))
                .await
                .expect("set roles");
        }
    };
    assert_error(&with_key(&env, "/api/admin", &key).await, 403, "FORBIDDEN");
    set(&["user", "admin"]).await;
    assert_eq!(with_key(&env, "/api/admin", &key).await.status, 200);
    set(&["user"]).await;
    assert_error(&with_key(&env, "/api/admin", &key).await, 403, "FORBIDDEN");
}

/// Under `session.validation = "database"` the session row's user decides: a role granted or
/// taken in the database, or a disabled account, applies to the very next request (on the
/// back ends without a liveness cache; a cache is invalidated by the engine's own writes).
/// Under `token` the token's roles hold until the next refresh, which reads them anew.
async fn database_validation_reads_roles_from_the_database(door: &dyn Door, b: &Backend) {
    let db_env = Env::start(door, &b.url(), |c| {
        c.session.validation = nauth_core::config::SessionValidation::Database;
    })
    .await;
    let cached = b.url.is_none(); // SQLite keeps a per-thread liveness cache
    let e = email();
    let t = signup_verified(&db_env, &e).await;
    let access = token(&t, "accessToken");
    assert_error(
        &db_env.get("/api/admin", Some(&access)).await,
        403,
        "FORBIDDEN",
    );
    update_user(&db_env, &e, users::Column::Roles, "user,admin".into()).await;
    if !cached {
        let r = db_env.get("/api/admin", Some(&access)).await;
        assert_eq!(r.status, 200, "granted at once: {}", r.json());
        update_user(&db_env, &e, users::Column::Roles, "user".into()).await;
        assert_error(
            &db_env.get("/api/admin", Some(&access)).await,
            403,
            "FORBIDDEN",
        );
        update_user(&db_env, &e, users::Column::Disabled, true.into()).await;
        assert_error(
            &db_env.get("/api/data", Some(&access)).await,
            401,
            "AUTH_SESSION_NOT_FOUND",
        );
    }

    // `token` validation: the token's roles until a refresh, whose token carries the new ones.
    let env = Env::start(door, &b.url(), |c| {
        c.session.validation = nauth_core::config::SessionValidation::Token;
    })
    .await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    update_user(&env, &e, users::Column::Roles, "user,admin".into()).await;
    let access = token(&t, "accessToken");
    assert_error(
        &env.get("/api/admin", Some(&access)).await,
        403,
        "FORBIDDEN",
    );
    let r = env
        .post("/auth/refresh", json!({"refreshToken": t["refreshToken"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let r = env
        .get("/api/admin", Some(&token(&r.json(), "accessToken")))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(login(&env, &e, PW).await.status, 200);
}

/// A key outlives the access token: creating one needs the password (or a current second
/// factor), checked on the login budget, so a burst of guesses compares at most five.
async fn api_key_creation_needs_a_fresh_proof(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| c.lockout.ip_max_attempts = 1000).await;
    let e = email();
    let t = signup_verified(&env, &e).await;
    let access = token(&t, "accessToken");
    let body = |pw: Option<&str>| match pw {
        Some(pw) => json!({"name": "k", "scopes": ["read"], "password": pw}),
        None => json!({"name": "k", "scopes": ["read"]}),
    };
    assert_error(
        &create(&env, &access, body(None)).await,
        400,
        "VALIDATION_FAILED",
    );
    assert_error(
        &create(&env, &access, body(Some("Wrong-Password-1"))).await,
        400,
        "PASSWORD_INCORRECT",
    );
    let burst: Vec<_> = (0..20)
        .map(|_| create(&env, &access, body(Some("Wrong-Password-1"))))
        .collect();
    let answers = super::cases::futures_join(burst).await;
    super::cases::assert_proofs_compared_at_most(&answers, "PASSWORD_INCORRECT", 4);
    // The budget is spent: the right password is refused too, and nothing was created.
    assert_error(
        &create(&env, &access, body(Some(PW))).await,
        429,
        "RATE_LIMIT_LOGIN",
    );
    assert!(listed(&env, &access).await.is_empty());
}
