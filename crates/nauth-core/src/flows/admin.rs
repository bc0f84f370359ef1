//! The admin API under `<mount>/admin` (docs/api.md §3.6), for users with role `admin`: the
//! user list with paging, filters and sort; one user; disable (sessions revoked, access tokens
//! refused at once through the deny set) and enable; roles; sessions and logout-all; unlock;
//! the audit query. Every action is audited on the target as `ADMIN_ACTION` with the admin's
//! `sub`. An admin cannot disable themselves nor take away their own `admin` role.

use serde_json::{Value, json};

use super::audit::{EntryBody, page_param};
use super::budget::{Budget, KvKey};
use super::{Ctx, Outcome, body};
use crate::clock::iso8601;
use crate::error::{AuthError, AuthResult};
use crate::events::Event;
use crate::guard::Principal;
use crate::input::Input;
use crate::store::audit::AuditFilter;
use crate::store::users::{UserFilter, UserOrder, UserPatch};
use crate::store::{self, Conn, User};

const LIMIT_MAX: u64 = 100;
const LIMIT_DEFAULT: u64 = 20;
const PAGE_MAX: u64 = 100_000;
/// Roles a user may hold at most.
const ROLES_MAX: usize = 16;

/// The caller, who must hold role `admin` (`403 FORBIDDEN` otherwise).
fn admin<'c>(ctx: &'c Ctx<'_>) -> AuthResult<&'c Principal> {
    let p = ctx.principal()?;
    if p.has_role("admin") {
        Ok(p)
    } else {
        Err(AuthError::Forbidden)
    }
}

/// A user as the admin API shows it: the tokens response's user and the account's state.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct AdminUserBody {
    #[serde(flatten)]
    user: super::UserBody,
    disabled: bool,
    must_change_password: bool,
    mfa_enabled: bool,
    created_at: String,
    updated_at: String,
}

impl AdminUserBody {
    fn of(u: User) -> Self {
        AdminUserBody {
            user: super::UserBody::of(&u),
            disabled: u.disabled,
            must_change_password: u.must_change_password,
            mfa_enabled: u.mfa_enabled,
            created_at: iso8601(u.created_at),
            updated_at: iso8601(u.updated_at),
        }
    }
}

fn user_body(u: User) -> Value {
    body(&AdminUserBody::of(u))
}

/// The target user, or `404 RESOURCE_NOT_FOUND`.
async fn target(db: &impl Conn, sub: &str, lock: bool) -> AuthResult<User> {
    let found = if lock {
        store::users::lock(db, sub).await?
    } else {
        store::users::get(db, sub).await?
    };
    found.ok_or(AuthError::NotFound)
}

/// `GET /admin/users?page=&limit=&email=&role=&locked=&sort=`.
pub(crate) async fn users(ctx: &Ctx<'_>) -> AuthResult<Outcome> {
    admin(ctx)?;
    let page = page_param(ctx, "page", 1, PAGE_MAX)?;
    let limit = page_param(ctx, "limit", LIMIT_DEFAULT, LIMIT_MAX)?;
    let q = |k: &str| ctx.req.query_param(k).filter(|v| !v.is_empty());
    let order = match q("sort").as_deref() {
        None | Some("-createdAt") => UserOrder::CreatedDesc,
        Some("createdAt") => UserOrder::CreatedAsc,
        Some("email") => UserOrder::EmailAsc,
        Some("-email") => UserOrder::EmailDesc,
        Some(_) => {
            return Err(AuthError::field(
                "sort",
                "must be one of createdAt, -createdAt, email, -email",
            ));
        }
    };
    let disabled = match q("locked").as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(AuthError::field("locked", "must be true or false")),
    };
    let filter = UserFilter {
        email: q("email").map(|e| e.to_lowercase()),
        role: q("role"),
        disabled,
    };
    for (name, value) in [("email", &filter.email), ("role", &filter.role)] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 254) {
            return Err(AuthError::field(name, "must be at most 254 characters"));
        }
    }
    let (rows, total) =
        store::users::page(&ctx.inner.store, &filter, order, (page - 1) * limit, limit).await?;
    let data: Vec<Value> = rows.into_iter().map(user_body).collect();
    Ok(Outcome::Json(
        200,
        json!({"data": data, "total": total, "page": page, "limit": limit}),
    ))
}

/// `GET /admin/users/{sub}`.
pub(crate) async fn user(ctx: &Ctx<'_>, sub: &str) -> AuthResult<Outcome> {
    admin(ctx)?;
    let u = target(&ctx.inner.store, sub, false).await?;
    Ok(Outcome::Json(200, user_body(u)))
}

/// What an admin did, on the target's audit trail.
fn action(admin: &Principal, what: &str, extra: Value) -> Value {
    let mut d = json!({"action": what, "adminSub": admin.sub});
    if let (Some(d), Value::Object(extra)) = (d.as_object_mut(), extra) {
        d.extend(extra);
    }
    d
}

/// `POST /admin/users/{sub}/disable` (`reason?`): the account is disabled, its sessions
/// revoked and its access tokens refused at once on every instance; logins then answer `403
/// AUTH_ACCOUNT_LOCKED`.
pub(crate) async fn disable(ctx: &Ctx<'_>, sub: &str, mut input: Input) -> AuthResult<Outcome> {
    let me = admin(ctx)?;
    let reason = input.text("reason", 500);
    input.finish()?;
    if me.sub == sub {
        return Err(AuthError::field(
            "sub",
            "an admin cannot disable their own account",
        ));
    }
    let revoked = transaction!(ctx, |tx| {
        target(tx, sub, true).await?;
        let patch = UserPatch {
            disabled: Some(true),
            updated_at: Some(ctx.now),
            ..Default::default()
        };
        store::users::update(tx, sub, patch).await?;
        let n = store::sessions::revoke_all(tx, sub, None, ctx.now).await?;
        let details = action(
            me,
            "disable",
            json!({"reason": reason, "sessionsRevoked": n}),
        );
        ctx.audit_in(tx, Some(sub), Event::AdminAction, details)
            .await;
        Ok(n)
    })?;
    crate::deny::deny_subject(ctx.inner, sub).await;
    Ok(Outcome::Json(
        200,
        json!({"success": true, "sessionsRevoked": revoked}),
    ))
}

/// `POST /admin/users/{sub}/enable`.
pub(crate) async fn enable(ctx: &Ctx<'_>, sub: &str) -> AuthResult<Outcome> {
    let me = admin(ctx)?;
    transaction!(ctx, |tx| {
        target(tx, sub, true).await?;
        let patch = UserPatch {
            disabled: Some(false),
            updated_at: Some(ctx.now),
            ..Default::default()
        };
        store::users::update(tx, sub, patch).await?;
        ctx.audit_in(
            tx,
            Some(sub),
            Event::AdminAction,
            action(me, "enable", json!({})),
        )
        .await;
        Ok(())
    })?;
    Ok(Outcome::Json(200, json!({"success": true})))
}

/// Whether a role name is acceptable: 1 to 64 of `a-z 0-9 _ : -`.
fn is_role(r: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_:-".contains(c);
    (1..=64).contains(&r.len()) && r.chars().all(ok)
}

/// `POST /admin/users/{sub}/roles` (`roles`): replaces the user's roles; under `database`
/// validation they apply to the user's next request (the liveness caches are invalidated).
pub(crate) async fn set_roles(ctx: &Ctx<'_>, sub: &str, mut input: Input) -> AuthResult<Outcome> {
    let me = admin(ctx)?;
    let roles = input.strings("roles", ROLES_MAX, 64);
    if roles.iter().any(|r| !is_role(r)) {
        input.error("roles", "each role is 1 to 64 of a-z 0-9 _ : -");
    }
    input.finish()?;
    if me.sub == sub && !roles.iter().any(|r| r == "admin") {
        return Err(AuthError::field(
            "roles",
            "an admin cannot remove their own admin role",
        ));
    }
    let user = transaction!(ctx, |tx| {
        let before = target(tx, sub, true).await?;
        let patch = UserPatch {
            roles: Some(roles.join(",")),
            updated_at: Some(ctx.now),
            ..Default::default()
        };
        store::users::update(tx, sub, patch).await?;
        // Cached sessions carry the roles: they are read again after this commits.
        tx.sessions_changed().await;
        let details = action(
            me,
            "set_roles",
            json!({"from": super::roles(&before), "to": roles}),
        );
        ctx.audit_in(tx, Some(sub), Event::AdminAction, details)
            .await;
        target(tx, sub, false).await
    })?;
    Ok(Outcome::Json(200, user_body(user)))
}

/// `GET /admin/users/{sub}/sessions`: the user's live sessions.
pub(crate) async fn sessions(ctx: &Ctx<'_>, sub: &str) -> AuthResult<Outcome> {
    admin(ctx)?;
    target(&ctx.inner.store, sub, false).await?;
    let rows = store::sessions::list_live(&ctx.inner.store, sub, ctx.now).await?;
    Ok(Outcome::Json(200, super::session::sessions_json(rows, "")))
}

/// `POST /admin/users/{sub}/logout-all`: revokes every session of the user.
pub(crate) async fn logout_all(ctx: &Ctx<'_>, sub: &str) -> AuthResult<Outcome> {
    let me = admin(ctx)?;
    let revoked = transaction!(ctx, |tx| {
        target(tx, sub, true).await?;
        let n = store::sessions::revoke_all(tx, sub, None, ctx.now).await?;
        let details = action(me, "logout_all", json!({"sessionsRevoked": n}));
        ctx.audit_in(tx, Some(sub), Event::AdminAction, details)
            .await;
        Ok(n)
    })?;
    Ok(Outcome::Json(
        200,
        json!({"success": true, "sessionsRevoked": revoked}),
    ))
}

/// `POST /admin/users/{sub}/unlock`: clears the account's password, second-factor and
/// verification budgets (the per-IP ones stay).
pub(crate) async fn unlock(ctx: &Ctx<'_>, sub: &str) -> AuthResult<Outcome> {
    let me = admin(ctx)?;
    target(&ctx.inner.store, sub, false).await?;
    for b in [Budget::Password, Budget::SecondFactor, Budget::Verify] {
        ctx.inner
            .kv
            .del(&KvKey::Account(b, sub).to_string())
            .await?;
    }
    ctx.audit_later(
        Some(sub),
        Event::AdminAction,
        true,
        action(me, "unlock", json!({})),
    );
    Ok(Outcome::Json(200, json!({"success": true})))
}

/// An optional RFC 3339 query parameter, as Unix ms.
fn time_param(ctx: &Ctx<'_>, name: &str) -> AuthResult<Option<i64>> {
    let Some(v) = ctx.req.query_param(name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    crate::input::rfc3339_ms(&v)
        .map(Some)
        .ok_or_else(|| AuthError::field(name, crate::input::RFC3339_HINT))
}

/// `GET /admin/audit?sub=&eventType=&from=&to=&page=&limit=`: newest first.
pub(crate) async fn audit(ctx: &Ctx<'_>) -> AuthResult<Outcome> {
    admin(ctx)?;
    let page = page_param(ctx, "page", 1, PAGE_MAX)?;
    let limit = page_param(ctx, "limit", LIMIT_DEFAULT, LIMIT_MAX)?;
    let sub = ctx.req.query_param("sub").filter(|v| !v.is_empty());
    if sub
        .as_deref()
        .is_some_and(|s| uuid::Uuid::parse_str(s).is_err())
    {
        return Err(AuthError::field("sub", "must be a user id (UUID)"));
    }
    let event_type = ctx.req.query_param("eventType").filter(|v| !v.is_empty());
    let event_ok = |e: &str| {
        (1..=64).contains(&e.len()) && e.chars().all(|c| c.is_ascii_uppercase() || c == '_')
    };
    if event_type.as_deref().is_some_and(|e| !event_ok(e)) {
        return Err(AuthError::field(
            "eventType",
            "must be an event type such as LOGIN_SUCCESS",
        ));
    }
    let filter = AuditFilter {
        user_id: sub,
        event_type,
        from: time_param(ctx, "from")?,
        to: time_param(ctx, "to")?,
    };
    let (rows, total) =
        store::audit::query(&ctx.inner.store, &filter, (page - 1) * limit, limit).await?;
    let data: Vec<EntryBody> = rows.into_iter().map(|r| EntryBody::of(r, true)).collect();
    Ok(Outcome::Json(
        200,
        json!({"data": body(&data), "total": total, "page": page, "limit": limit}),
    ))
}
