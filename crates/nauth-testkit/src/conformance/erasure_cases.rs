//! Erasure cases: `DELETE /account` leaves no row of the user behind (second factors, trusted
//! devices, sessions, kv counters), and a deleted user's access token stops at once, also
//! under stateless `token` validation and on another instance of the same database.

use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use super::cases::{PW, assert_error, email, signup_verified, token};
use super::mfa_cases::with_totp;
use super::{Backend, CaseFn, Door, Env, TestRequest};
use crate::db::{backup_codes, mfa_devices, sessions, trusted_devices};
use nauth_core::config::{RememberDevices, SessionValidation};

/// The erasure cases, run after the others.
pub(super) const ERASURE_CASES: &[(&str, CaseFn)] = &[
    ("delete_account_erases_second_factors", |d, b| {
        Box::pin(delete_account_erases_second_factors(d, b))
    }),
    ("deleted_user_token_stops_under_token_validation", |d, b| {
        Box::pin(deleted_user_token_stops_under_token_validation(d, b))
    }),
];

fn delete(password: &str, access: &str) -> TestRequest {
    TestRequest::json("DELETE", "/auth/account", &json!({"password": password})).bearer(access)
}

async fn delete_account_erases_second_factors(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| {
        c.mfa.remember_devices = RememberDevices::UserOptIn
    })
    .await;
    let e = email();
    let (t, _, _) = with_totp(&env, &e).await;
    let access = token(&t, "accessToken");
    let sub = t["user"]["sub"].as_str().expect("sub").to_string();
    let r = env
        .send(TestRequest::json("POST", "/auth/trust-device", &json!({})).bearer(&access))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    // A wrong password first, so the account has a counter in the kv store.
    assert_error(
        &env.send(delete("Wrong-Password-1", &access)).await,
        400,
        "PASSWORD_INCORRECT",
    );
    let db = env.db().await;
    let sub = sub.as_str();
    let env = &env;
    let count = |table: &'static str| async move {
        let n = match table {
            "mfa_devices" => {
                mfa_devices::Entity::find()
                    .filter(mfa_devices::Column::UserId.eq(sub))
                    .count(db)
                    .await
            }
            "backup_codes" => {
                backup_codes::Entity::find()
                    .filter(backup_codes::Column::UserId.eq(sub))
                    .count(db)
                    .await
            }
            "trusted_devices" => {
                trusted_devices::Entity::find()
                    .filter(trusted_devices::Column::UserId.eq(sub))
                    .count(db)
                    .await
            }
            "sessions" => {
                sessions::Entity::find()
                    .filter(sessions::Column::UserId.eq(sub))
                    .count(db)
                    .await
            }
            // Every kv key of the account holds its id; the deny entry stays on purpose.
            _ => Ok(env.kv_keys_containing(sub).await as u64),
        };
        n.expect("count")
    };
    for table in ["mfa_devices", "backup_codes", "trusted_devices", "sessions"] {
        assert!(
            count(table).await > 0,
            "{table} has rows before the deletion"
        );
    }
    let r = env.send(delete(PW, &access)).await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})));
    for table in [
        "mfa_devices",
        "backup_codes",
        "trusted_devices",
        "sessions",
        "kv",
    ] {
        assert_eq!(count(table).await, 0, "{table} rows left on {}", b.name);
    }
    assert_error(
        &env.get("/api/data", Some(&access)).await,
        401,
        "AUTH_SESSION_NOT_FOUND",
    );
}

async fn deleted_user_token_stops_under_token_validation(door: &dyn Door, b: &Backend) {
    let url = b.url();
    let stateless =
        |c: &mut nauth_core::NAuthConfig| c.session.validation = SessionValidation::Token;
    let env = Env::start(door, &url, stateless).await;
    // A second instance on the same server database (a SQLite file has one process).
    let other = match b.url {
        Some(_) => Some(Env::start(door, &url, stateless).await),
        None => None,
    };
    let t = signup_verified(&env, &email()).await;
    let access = token(&t, "accessToken");
    let refresh = token(&t, "refreshToken");
    assert_eq!(env.get("/api/data", Some(&access)).await.status, 200);
    if let Some(other) = &other {
        assert_eq!(other.get("/api/data", Some(&access)).await.status, 200);
    }
    let r = env.send(delete(PW, &access)).await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})));
    // At once on this instance, though no request reads the database.
    assert_error(
        &env.get("/api/data", Some(&access)).await,
        401,
        "AUTH_SESSION_NOT_FOUND",
    );
    let r = env
        .post("/auth/refresh", json!({"refreshToken": refresh}))
        .await;
    assert_eq!(r.status, 401, "{}", r.json());
    // Within about a second on the other instance.
    if let Some(other) = &other {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = other.get("/api/data", Some(&access)).await;
            if r.status != 200 {
                assert_error(&r, 401, "AUTH_SESSION_NOT_FOUND");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the other instance still accepts the token on {}",
                b.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Another user's token is untouched.
    let t2 = signup_verified(&env, &email()).await;
    let access2 = token(&t2, "accessToken");
    assert_eq!(env.get("/api/data", Some(&access2)).await.status, 200);
    if let Some(other) = &other {
        assert_eq!(other.get("/api/data", Some(&access2)).await.status, 200);
    }
}
