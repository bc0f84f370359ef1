//! The admin API (docs/api.md §3.6) under `/auth/admin`, for role `admin`.

use serde_json::{Value, json};

use super::cases::{PW, assert_error, email, login, signup_verified, token, update_user};
use super::{Backend, CaseFn, Door, Env, TestRequest, TestResponse};
use crate::db::users;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub(super) const ADMIN_CASES: &[(&str, CaseFn)] = &[$((stringify!($name), |d, b| Box::pin($name(d, b)))),*];
    };
}

cases!(
    admin_lists_and_reads_users,
    admin_disables_enables_and_sets_roles,
    admin_sessions_unlock_and_audit,
    admin_creates_updates_and_deletes_users,
    admin_forces_password_change_and_exempts_from_mfa,
    admin_proof_holds_under_a_burst,
    admin_creates_race_to_one_account,
);

/// An admin (a verified user given the role, then logged in): `(email, sub, access token)`.
async fn admin(env: &Env) -> (String, String, String) {
    let e = email();
    signup_verified(env, &e).await;
    update_user(env, &e, users::Column::Roles, "user,admin".into()).await;
    let r = login(env, &e, PW).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let access = token(&r.json(), "accessToken");
    let sub = token(&r.json()["user"], "sub");
    (e, sub, access)
}

/// A verified user: `(email, sub, access token)`.
async fn user(env: &Env) -> (String, String, String) {
    let e = email();
    let t = signup_verified(env, &e).await;
    (e, token(&t["user"], "sub"), token(&t, "accessToken"))
}

async fn get(env: &Env, path: &str, access: &str) -> TestResponse {
    env.send(TestRequest::new("GET", path).bearer(access)).await
}

async fn post(env: &Env, path: &str, body: Value, access: &str) -> TestResponse {
    env.send(TestRequest::json("POST", path, &body).bearer(access))
        .await
}

async fn admin_lists_and_reads_users(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let (_, admin_sub, admin_token) = admin(&env).await;
    let (ue, usub, utoken) = user(&env).await;

    // Not for users, nor for anonymous callers.
    assert_error(
        &get(&env, "/auth/admin/users", &utoken).await,
        403,
        "FORBIDDEN",
    );
    assert_error(
        &env.send(TestRequest::new("GET", "/auth/admin/users")).await,
        401,
        "AUTH_TOKEN_MISSING",
    );

    let r = get(&env, &format!("/auth/admin/users?email={ue}"), &admin_token).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let v = r.json();
    assert_eq!(
        (v["total"].clone(), v["page"].clone(), v["limit"].clone()),
        (json!(1), json!(1), json!(20))
    );
    assert_eq!(v["data"][0]["sub"], usub.as_str());
    assert_eq!(v["data"][0]["disabled"], false);
    assert!(v["data"][0].get("passwordHash").is_none() && !v.to_string().contains("argon2"));

    let r = get(&env, "/auth/admin/users?role=admin&limit=100", &admin_token).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let data = r.json()["data"].as_array().expect("data").clone();
    assert!(data.iter().any(|u| u["sub"] == admin_sub.as_str()));
    assert!(data.iter().all(|u| {
        u["roles"]
            .as_array()
            .expect("roles")
            .contains(&json!("admin"))
    }));
    let r = get(
        &env,
        "/auth/admin/users?sort=email&limit=5&page=100000",
        &admin_token,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["data"], json!([]));
    let long_role = format!("?role={}", "r".repeat(300));
    for bad in [
        "?limit=0",
        "?limit=101",
        "?page=0",
        "?sort=password",
        "?locked=maybe",
        long_role.as_str(),
    ] {
        assert_error(
            &get(&env, &format!("/auth/admin/users{bad}"), &admin_token).await,
            400,
            "VALIDATION_FAILED",
        );
    }

    let r = get(&env, &format!("/auth/admin/users/{usub}"), &admin_token).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["email"], ue.as_str());
    let unknown = "00000000-0000-4000-8000-000000000000";
    for path in [
        format!("/auth/admin/users/{unknown}"),
        "/auth/admin/users/not-a-uuid".to_string(),
    ] {
        assert_error(
            &get(&env, &path, &admin_token).await,
            404,
            "RESOURCE_NOT_FOUND",
        );
    }
    assert_error(
        &post(
            &env,
            &format!("/auth/admin/users/{unknown}/disable"),
            json!({}),
            &admin_token,
        )
        .await,
        404,
        "RESOURCE_NOT_FOUND",
    );
}

async fn admin_disables_enables_and_sets_roles(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let (_, admin_sub, admin_token) = admin(&env).await;
    let (ue, usub, utoken) = user(&env).await;
    assert_eq!(env.get("/api/data", Some(&utoken)).await.status, 200);

    // Disable: sessions revoked, tokens refused at once, logins locked out.
    let path = format!("/auth/admin/users/{usub}/disable");
    let r = post(&env, &path, json!({"reason": "abuse"}), &admin_token).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["sessionsRevoked"], 1);
    assert_eq!(env.get("/api/data", Some(&utoken)).await.status, 401);
    assert_error(&login(&env, &ue, PW).await, 403, "AUTH_ACCOUNT_LOCKED");
    let r = get(
        &env,
        "/auth/admin/users?locked=true&limit=100",
        &admin_token,
    )
    .await;
    assert!(
        r.json()["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|u| u["sub"] == usub.as_str())
    );
    // Enable.
    let r = post(
        &env,
        &format!("/auth/admin/users/{usub}/enable"),
        json!({}),
        &admin_token,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    // Tokens issued within the deny set's 30 s clock-skew margin of the disable stay refused.
    env.clock.advance(std::time::Duration::from_secs(31));
    let r = login(&env, &ue, PW).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let utoken = token(&r.json(), "accessToken");

    // Roles apply to the user's next request (database validation), cache or not.
    assert_error(
        &env.get("/api/admin", Some(&utoken)).await,
        403,
        "FORBIDDEN",
    );
    let roles = format!("/auth/admin/users/{usub}/roles");
    // Granting a role needs the admin's fresh proof; taking one away does not.
    assert_error(
        &post(
            &env,
            &roles,
            json!({"roles": ["user", "admin"]}),
            &admin_token,
        )
        .await,
        400,
        "VALIDATION_FAILED",
    );
    let r = post(
        &env,
        &roles,
        json!({"roles": ["user", "admin"], "currentPassword": PW}),
        &admin_token,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["roles"], json!(["user", "admin"]));
    assert_eq!(env.get("/api/admin", Some(&utoken)).await.status, 200);
    let r = post(&env, &roles, json!({"roles": ["user"]}), &admin_token).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_error(
        &env.get("/api/admin", Some(&utoken)).await,
        403,
        "FORBIDDEN",
    );
    for bad in [
        json!({"roles": ["Admin"]}),
        json!({"roles": "user"}),
        json!({}),
    ] {
        assert_error(
            &post(&env, &roles, bad, &admin_token).await,
            400,
            "VALIDATION_FAILED",
        );
    }

    // An admin keeps their own account and role.
    assert_error(
        &post(
            &env,
            &format!("/auth/admin/users/{admin_sub}/disable"),
            json!({}),
            &admin_token,
        )
        .await,
        400,
        "VALIDATION_FAILED",
    );
    assert_error(
        &post(
            &env,
            &format!("/auth/admin/users/{admin_sub}/roles"),
            json!({"roles": ["user"]}),
            &admin_token,
        )
        .await,
        400,
        "VALIDATION_FAILED",
    );
    assert_eq!(
        get(&env, "/auth/admin/users", &admin_token).await.status,
        200
    );
}

async fn admin_sessions_unlock_and_audit(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| c.lockout.ip_max_attempts = 1000).await;
    let (_, admin_sub, admin_token) = admin(&env).await;
    let (ue, usub, utoken) = user(&env).await;

    let r = get(
        &env,
        &format!("/auth/admin/users/{usub}/sessions"),
        &admin_token,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["sessions"].as_array().expect("sessions").len(), 1);
    let r = post(
        &env,
        &format!("/auth/admin/users/{usub}/logout-all"),
        json!({}),
        &admin_token,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(env.get("/api/data", Some(&utoken)).await.status, 401);

    // Unlock: a locked-out account logs in again.
    for _ in 0..5 {
        assert_eq!(login(&env, &ue, "Wrong-Password-1").await.status, 401);
    }
    assert_error(&login(&env, &ue, PW).await, 429, "RATE_LIMIT_LOGIN");
    let r = post(
        &env,
        &format!("/auth/admin/users/{usub}/unlock"),
        json!({}),
        &admin_token,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(login(&env, &ue, PW).await.status, 200);

    // The audit query: every action on the user, by this admin.
    let r = get(
        &env,
        &format!("/auth/admin/audit?sub={usub}&eventType=ADMIN_ACTION"),
        &admin_token,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let rows = r.json()["data"].as_array().expect("data").clone();
    let actions: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["details"]["action"].as_str())
        .collect();
    assert_eq!(actions, ["unlock", "logout_all"], "newest first");
    assert!(
        rows.iter()
            .all(|r| r["details"]["adminSub"] == admin_sub.as_str() && r["sub"] == usub.as_str())
    );
    let r = get(
        &env,
        &format!("/auth/admin/audit?sub={usub}&from=2999-01-01T00:00:00Z"),
        &admin_token,
    )
    .await;
    assert_eq!((r.status, r.json()["total"].clone()), (200, json!(0)));
    for bad in [
        "?sub=nope",
        "?from=yesterday",
        "?eventType=drop%20table",
        "?limit=101",
    ] {
        assert_error(
            &get(&env, &format!("/auth/admin/audit{bad}"), &admin_token).await,
            400,
            "VALIDATION_FAILED",
        );
    }
}

/// `v` with the admin's fresh proof (the password of [`admin`]).
fn proof_body(mut v: Value) -> Value {
    v["currentPassword"] = json!(PW);
    v
}

async fn send(env: &Env, method: &str, path: &str, body: Value, access: &str) -> TestResponse {
    env.send(TestRequest::json(method, path, &body).bearer(access))
        .await
}

async fn admin_creates_updates_and_deletes_users(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let (admin_email, admin_sub, admin_token) = admin(&env).await;
    let (_, _, utoken) = user(&env).await;
    let users = "/auth/admin/users";

    // Create: a user token is refused; the admin needs a fresh proof.
    let e1 = email();
    assert_error(
        &post(&env, users, json!({"email": e1}), &utoken).await,
        403,
        "FORBIDDEN",
    );
    assert_error(
        &post(&env, users, json!({"email": e1}), &admin_token).await,
        400,
        "VALIDATION_FAILED",
    );
    assert_error(
        &post(
            &env,
            users,
            json!({"email": e1, "currentPassword": "Wrong-Password-1"}),
            &admin_token,
        )
        .await,
        400,
        "PASSWORD_INCORRECT",
    );
    // A generated one-time password, shown once; the first login must change it.
    let r = post(&env, users, proof_body(json!({"email": e1})), &admin_token).await;
    assert_eq!(r.status, 201, "{}", r.json());
    let created = r.json();
    let one_time = token(&created, "generatedPassword");
    assert_eq!(one_time.len(), 20);
    assert_eq!(
        (
            created["mustChangePassword"].clone(),
            created["roles"].clone(),
            created["isEmailVerified"].clone()
        ),
        (json!(true), json!(["user"]), json!(false))
    );
    let r = get(
        &env,
        &format!("{users}/{}", token(&created, "sub")),
        &admin_token,
    )
    .await;
    assert!(r.json().get("generatedPassword").is_none(), "shown once");
    let r = login(&env, &e1, &one_time).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["challengeName"], "FORCE_CHANGE_PASSWORD");

    // A chosen password under the policy, verified email and roles: logs straight in.
    let e2 = email();
    let weak = proof_body(json!({"email": e2, "password": "password"}));
    assert_error(
        &post(&env, users, weak, &admin_token).await,
        400,
        "SIGNUP_WEAK_PASSWORD",
    );
    let body = proof_body(json!({
        "email": e2, "password": "Chosen-Secret-77", "emailVerified": true,
        "roles": ["user", "editor"], "firstName": "Ada",
    }));
    let r = post(&env, users, body, &admin_token).await;
    assert_eq!(r.status, 201, "{}", r.json());
    let sub2 = token(&r.json(), "sub");
    assert!(r.json().get("generatedPassword").is_none());
    assert_eq!(r.json()["mustChangePassword"], false);
    let r = login(&env, &e2, "Chosen-Secret-77").await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["user"]["roles"], json!(["user", "editor"]));
    let u2token = token(&r.json(), "accessToken");
    for (bad, status, code) in [
        (json!({"email": e2}), 409, "SIGNUP_EMAIL_EXISTS"),
        (json!({"email": "not-an-email"}), 400, "VALIDATION_FAILED"),
        (
            json!({"email": email(), "roles": ["BAD ROLE"]}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            json!({"email": email(), "phoneVerified": true}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            json!({"email": email(), "mustChangePassword": "no"}),
            400,
            "VALIDATION_FAILED",
        ),
    ] {
        assert_error(
            &post(&env, users, proof_body(bad), &admin_token).await,
            status,
            code,
        );
    }

    // Update: names need no proof; the email does, and a new one is unverified.
    let one = format!("{users}/{sub2}");
    let r = send(
        &env,
        "PUT",
        &one,
        json!({"lastName": "Lovelace"}),
        &admin_token,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(
        (r.json()["firstName"].clone(), r.json()["lastName"].clone()),
        (json!("Ada"), json!("Lovelace"))
    );
    let e3 = email();
    assert_error(
        &send(&env, "PUT", &one, json!({"email": e3}), &admin_token).await,
        400,
        "VALIDATION_FAILED",
    );
    // A reset code mailed to the old address before the change…
    env.post("/auth/forgot-password", json!({"identifier": e2}))
        .await;
    let code = crate::extract::extract_code(&env.mail(&e2, 1).await.text).expect("code");
    let r = send(
        &env,
        "PUT",
        &one,
        proof_body(json!({"email": e3})),
        &admin_token,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(
        (
            r.json()["email"].clone(),
            r.json()["isEmailVerified"].clone()
        ),
        (json!(e3), json!(false))
    );
    // …is void: the old address is no longer a channel, and it is told of the change.
    assert_error(
        &env.post(
            "/auth/forgot-password/confirm",
            json!({"identifier": e3, "code": code, "newPassword": "Fresh-Secret-55"}),
        )
        .await,
        400,
        "PASSWORD_RESET_CODE_INVALID",
    );
    let notice = env.mail(&e2, 2).await;
    assert!(notice.text.contains("changed the email"), "{}", notice.text);
    assert!(!notice.text.contains(&e3), "the new address is masked");
    assert_error(
        &send(
            &env,
            "PUT",
            &one,
            proof_body(json!({"email": admin_email})),
            &admin_token,
        )
        .await,
        409,
        "SIGNUP_EMAIL_EXISTS",
    );
    let nobody = format!("{users}/00000000-0000-4000-8000-000000000000");
    assert_error(
        &send(&env, "PUT", &nobody, json!({"lastName": "x"}), &admin_token).await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    assert_error(
        &send(
            &env,
            "PUT",
            &format!("{users}/not-a-uuid"),
            json!({}),
            &admin_token,
        )
        .await,
        404,
        "RESOURCE_NOT_FOUND",
    );

    // Delete: needs a proof, never the admin's own account; the user is gone everywhere.
    assert_error(
        &send(&env, "DELETE", &one, json!({}), &admin_token).await,
        400,
        "VALIDATION_FAILED",
    );
    assert_error(
        &send(
            &env,
            "DELETE",
            &format!("{users}/{admin_sub}"),
            proof_body(json!({})),
            &admin_token,
        )
        .await,
        400,
        "VALIDATION_FAILED",
    );
    let r = send(&env, "DELETE", &one, proof_body(json!({})), &admin_token).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(env.get("/api/data", Some(&u2token)).await.status, 401);
    assert_error(
        &get(&env, &one, &admin_token).await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    assert_error(
        &send(&env, "DELETE", &one, proof_body(json!({})), &admin_token).await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    assert_error(
        &login(&env, &e3, "Chosen-Secret-77").await,
        401,
        "AUTH_INVALID_CREDENTIALS",
    );
    // The deletion is on the admin's own trail.
    let r = get(
        &env,
        &format!("/auth/admin/audit?sub={admin_sub}&eventType=ACCOUNT_DELETED"),
        &admin_token,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let row = r.json()["data"][0].clone();
    assert_eq!(
        (
            row["details"]["targetSub"].clone(),
            row["details"]["adminSub"].clone()
        ),
        (json!(sub2), json!(admin_sub))
    );
}

async fn admin_forces_password_change_and_exempts_from_mfa(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| {
        c.mfa.enforcement = nauth_core::config::MfaEnforcement::Required;
    })
    .await;
    // Under `required` even the admin must enrol first: made exempt through the database.
    let e = email();
    signup_verified(&env, &e).await;
    update_user(&env, &e, users::Column::Roles, "user,admin".into()).await;
    update_user(&env, &e, users::Column::MfaExempt, true.into()).await;
    let r = login(&env, &e, PW).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let admin_token = token(&r.json(), "accessToken");

    let ue = email();
    signup_verified(&env, &ue).await;
    let r = login(&env, &ue, PW).await;
    assert_eq!(
        r.json()["challengeName"],
        "MFA_SETUP_REQUIRED",
        "{}",
        r.json()
    );
    let r = get(&env, &format!("/auth/admin/users?email={ue}"), &admin_token).await;
    let usub = token(&r.json()["data"][0], "sub");

    // The exemption: granting it needs a proof, taking it back does not.
    let path = format!("/auth/admin/users/{usub}/mfa/exemption");
    for bad in [json!({}), json!({"exempt": "yes"}), json!({"exempt": true})] {
        assert_error(
            &post(&env, &path, bad, &admin_token).await,
            400,
            "VALIDATION_FAILED",
        );
    }
    let r = post(
        &env,
        &path,
        proof_body(json!({"exempt": true, "reason": "kiosk"})),
        &admin_token,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["mfaExempt"], true);
    let r = login(&env, &ue, PW).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let utoken = token(&r.json(), "accessToken");
    assert_eq!(env.get("/api/data", Some(&utoken)).await.status, 200);
    let r = post(&env, &path, json!({"exempt": false}), &admin_token).await;
    assert_eq!(r.json()["mfaExempt"], false, "{}", r.json());
    let r = login(&env, &ue, PW).await;
    assert_eq!(
        r.json()["challengeName"],
        "MFA_SETUP_REQUIRED",
        "{}",
        r.json()
    );
    post(
        &env,
        &path,
        proof_body(json!({"exempt": true})),
        &admin_token,
    )
    .await;

    // A forced password change: the next login must change it; sessions live on unless
    // revoked too.
    let force = format!("/auth/admin/users/{usub}/force-password-change");
    let r = post(&env, &force, json!({}), &admin_token).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(env.get("/api/data", Some(&utoken)).await.status, 200);
    let r = login(&env, &ue, PW).await;
    assert_eq!(
        r.json()["challengeName"],
        "FORCE_CHANGE_PASSWORD",
        "{}",
        r.json()
    );
    let r = post(&env, &force, json!({"revokeSessions": true}), &admin_token).await;
    assert_eq!(r.json()["sessionsRevoked"], 1, "{}", r.json());
    assert_eq!(env.get("/api/data", Some(&utoken)).await.status, 401);
    assert_error(
        &post(&env, &force, json!({"revokeSessions": 1}), &admin_token).await,
        400,
        "VALIDATION_FAILED",
    );
    let nobody = "/auth/admin/users/00000000-0000-4000-8000-000000000000";
    for action in ["force-password-change", "mfa/exemption"] {
        assert_error(
            &post(
                &env,
                &format!("{nobody}/{action}"),
                json!({"exempt": false}),
                &admin_token,
            )
            .await,
            404,
            "RESOURCE_NOT_FOUND",
        );
    }
}

/// A stolen admin token alone cannot grant roles, create or delete users: a burst of 20
/// wrong proofs compares at most the admin's password budget (`lockout.max_attempts`).
async fn admin_proof_holds_under_a_burst(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| c.lockout.ip_max_attempts = 1000).await;
    let (_, _, admin_token) = admin(&env).await;
    let (_, usub, _) = user(&env).await;
    let roles = format!("/auth/admin/users/{usub}/roles");
    let body = json!({"roles": ["user", "admin"], "currentPassword": "Wrong-Password-1"});
    let burst: Vec<_> = (0..20)
        .map(|_| post(&env, &roles, body.clone(), &admin_token))
        .collect();
    let answers = super::cases::futures_join(burst).await;
    super::cases::assert_proofs_compared_at_most(&answers, "PASSWORD_INCORRECT", 5);
    // Spent: the right password is refused too, and the role was not granted.
    let good = json!({"roles": ["user", "admin"], "currentPassword": PW});
    assert_error(
        &post(&env, &roles, good, &admin_token).await,
        429,
        "RATE_LIMIT_LOGIN",
    );
    let r = get(&env, &format!("/auth/admin/users/{usub}"), &admin_token).await;
    assert_eq!(r.json()["roles"], json!(["user"]));
}

/// Twenty requests of an admin creating the same address at once: one account, one `201`, one
/// audit row. The others are `409`, or `429` where the admin's password budget (reserved
/// before each proof is compared, so a burst holds at most `lockout.max_attempts` at once)
/// had no slot free.
async fn admin_creates_race_to_one_account(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| c.lockout.ip_max_attempts = 1000).await;
    let (_, _, admin_token) = admin(&env).await;
    let e = email();
    let body = proof_body(json!({"email": e, "password": "Chosen-Secret-77"}));
    let burst: Vec<_> = (0..20)
        .map(|_| post(&env, "/auth/admin/users", body.clone(), &admin_token))
        .collect();
    let answers = super::cases::futures_join(burst).await;
    let mut statuses: Vec<(u16, String)> = answers.iter().map(|r| (r.status, r.code())).collect();
    statuses.sort();
    let created = statuses.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|(s, c)| *s == 201
            || (*s == 409 && c == "SIGNUP_EMAIL_EXISTS")
            || (*s == 429 && c == "RATE_LIMIT_LOGIN")),
        "{statuses:?}"
    );
    let r = get(&env, &format!("/auth/admin/users?email={e}"), &admin_token).await;
    assert_eq!(r.json()["total"], 1, "{}", r.json());
    let sub = token(&r.json()["data"][0], "sub");
    let r = get(
        &env,
        &format!("/auth/admin/audit?sub={sub}&eventType=ADMIN_ACTION"),
        &admin_token,
    )
    .await;
    assert_eq!(r.json()["total"], 1, "one create audited: {}", r.json());
    assert_eq!(login(&env, &e, "Chosen-Secret-77").await.status, 200);
}
