//! The admin API under `<mount>/admin` (docs/api.md §3.6), for users with role `admin`: the
//! user list with paging, filters and sort; one user; disable (sessions revoked, access tokens
//! refused at once through the deny set) and enable; roles; sessions and logout-all; unlock;
//! the audit query; create, update and delete; forced password change and the MFA
//! exemption. Every action is audited on the target as `ADMIN_ACTION` with the admin's `sub`
//! (a deletion on the admin's own trail, the target's rows being gone). An admin cannot
//! disable or delete themselves nor take away their own `admin` role.
//!
//! Actions that hand over an account or raise privileges (create, a change of email or
//! phone, delete, a role the user did not hold, an MFA exemption) need the admin's fresh
//! proof, `currentPassword` or `code`, as the user's own credential changes do: a stolen
//! 15-minute admin token alone cannot take accounts over. The operator (the command line)
//! needs none.

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
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AdminUser)]
pub(crate) struct AdminUserBody {
    #[serde(flatten)]
    user: super::UserBody,
    disabled: bool,
    must_change_password: bool,
    mfa_enabled: bool,
    mfa_exempt: bool,
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
            mfa_exempt: u.mfa_exempt,
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

/// Writes an admin's change to the user `sub` (locked by the caller) in `tx`: `patch`, stamped
/// with the time, and the `ADMIN_ACTION` row naming `what` with `extra` details.
async fn apply(
    ctx: &Ctx<'_>,
    tx: &store::Tx,
    me: &Principal,
    sub: &str,
    patch: UserPatch,
    what: &str,
    extra: Value,
) -> AuthResult<()> {
    let patch = UserPatch {
        updated_at: Some(ctx.now),
        ..patch
    };
    store::users::update(tx, sub, patch).await?;
    ctx.audit_in(tx, Some(sub), Event::AdminAction, action(me, what, extra))
        .await;
    Ok(())
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
        let n = store::sessions::revoke_all(tx, sub, None, ctx.now).await?;
        let patch = UserPatch {
            disabled: Some(true),
            ..Default::default()
        };
        let details = json!({"reason": reason, "sessionsRevoked": n});
        apply(ctx, tx, me, sub, patch, "disable", details).await?;
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
            ..Default::default()
        };
        apply(ctx, tx, me, sub, patch, "enable", json!({})).await
    })?;
    Ok(Outcome::Json(200, json!({"success": true})))
}

/// The admin's fresh proof for an action that hands over an account or raises privileges:
/// `currentPassword` or `code` (a current TOTP or unused backup code).
struct Proof {
    password: Option<String>,
    code: Option<String>,
}

impl Proof {
    /// Reads the proof fields; when `required` (and a client, not the operator, acts),
    /// one of them must be there.
    fn read(ctx: &Ctx<'_>, input: &mut Input, required: bool) -> Proof {
        let password = input.text("currentPassword", crate::input::PASSWORD_HARD_MAX);
        let code = input.text("code", 16);
        if required && !ctx.operator && password.is_none() && code.is_none() {
            input.error(
                "currentPassword",
                "this action needs your current password or code (a current second factor)",
            );
        }
        Proof { password, code }
    }
}

/// Checks the admin's fresh proof (counted on the admin's own password or second-factor
/// budget, reserved before it is compared). The operator needs none.
async fn fresh_proof(ctx: &Ctx<'_>, me: &Principal, proof: Proof) -> AuthResult<()> {
    if ctx.operator {
        return Ok(());
    }
    if proof.password.is_none() && proof.code.is_none() {
        return Err(AuthError::field(
            "currentPassword",
            "this action needs your current password or code (a current second factor)",
        ));
    }
    let user = super::named_user(&ctx.inner.store, &me.sub, AuthError::SessionNotFound).await?;
    super::mfa::step_up(ctx, &user, proof.password, proof.code).await
}

/// The `roles` field: at most [`ROLES_MAX`] valid role names.
fn roles_field(input: &mut Input) -> Vec<String> {
    let roles = input.strings("roles", ROLES_MAX, 64);
    if roles.iter().any(|r| !is_role(r)) {
        input.error("roles", "each role is 1 to 64 of a-z 0-9 _ : -");
    }
    roles
}

/// A generated password: 20 characters of an unambiguous 56-letter alphabet (116 bits).
fn generated_password() -> String {
    let alphabet = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
    crate::codes::random_string(alphabet, 20)
}

/// `POST /admin/users`: `email`, `password?` (none: one is generated and shown once as
/// `generatedPassword`), `username?`, `phone?`, `firstName?`, `lastName?`, `roles?`
/// (default `["user"]`), `emailVerified?`, `phoneVerified?`, `mustChangePassword?` (default:
/// true when the password was generated), and the admin's fresh proof. `201` with the user.
pub(crate) async fn create(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let me = admin(ctx)?;
    let email = input.email("email");
    let password = input.has("password").then(|| input.password("password"));
    let username = input.username("username");
    let phone = input.phone("phone");
    let first_name = input.text("firstName", 100);
    let last_name = input.text("lastName", 100);
    let roles = if input.has("roles") {
        roles_field(&mut input)
    } else {
        vec!["user".to_string()]
    };
    let email_verified = input.bool("emailVerified").unwrap_or(false);
    let phone_verified = input.bool("phoneVerified").unwrap_or(false);
    if phone_verified && phone.is_none() {
        input.error("phoneVerified", "needs a phone");
    }
    let must_change = input.bool("mustChangePassword");
    let proof = Proof::read(ctx, &mut input, true);
    input.finish()?;
    if let Some(pw) = &password {
        crate::password::check_policy(pw, Some(&email), &ctx.cfg().password)?;
    }
    fresh_proof(ctx, me, proof).await?;
    let generated = password.is_none();
    let password = password.unwrap_or_else(generated_password);
    let hash = ctx.inner.hasher.hash(&password).await?;
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        email,
        username,
        phone,
        password_hash: hash,
        first_name,
        last_name,
        metadata: None,
        roles: roles.join(","),
        is_email_verified: email_verified,
        is_phone_verified: phone_verified,
        must_change_password: must_change.unwrap_or(generated),
        password_changed_at: ctx.now,
        disabled: false,
        mfa_enabled: false,
        mfa_exempt: false,
        locale: None,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    transaction!(ctx, |tx| {
        store::users::insert(tx, user.clone()).await?;
        let details = action(
            me,
            "create",
            json!({"roles": roles, "generatedPassword": generated}),
        );
        ctx.audit_in(tx, Some(&user.id), Event::AdminAction, details)
            .await;
        Ok(())
    })?;
    let mut created = user_body(user);
    if generated {
        created["generatedPassword"] = json!(password);
    }
    Ok(Outcome::Json(201, created))
}

/// `PUT /admin/users/{sub}`: any of `email`, `username`, `phone` (`null` clears the last two),
/// `firstName`, `lastName`, `metadata`, `emailVerified`, `phoneVerified`. A new email or phone
/// is unverified unless the same call says otherwise. Changing how the account is reached
/// (email, phone or their verified flags) needs the admin's fresh proof.
pub(crate) async fn update(ctx: &Ctx<'_>, sub: &str, mut input: Input) -> AuthResult<Outcome> {
    let me = admin(ctx)?;
    let email = input.has("email").then(|| input.email("email"));
    let username = input.has("username").then(|| input.username("username"));
    let phone = input.has("phone").then(|| input.phone("phone"));
    let first_name = input.has("firstName").then(|| input.text("firstName", 100));
    let last_name = input.has("lastName").then(|| input.text("lastName", 100));
    let metadata = input
        .has("metadata")
        .then(|| input.object("metadata", 4096));
    let email_verified = input.bool("emailVerified");
    let phone_verified = input.bool("phoneVerified");
    let reach =
        email.is_some() || phone.is_some() || email_verified.is_some() || phone_verified.is_some();
    let proof = Proof::read(ctx, &mut input, reach);
    input.finish()?;
    let before = target(&ctx.inner.store, sub, false).await?;
    let new_email = email.filter(|e| *e != before.email);
    let new_phone = phone.filter(|p| *p != before.phone);
    if phone_verified == Some(true) && new_phone.clone().unwrap_or(before.phone.clone()).is_none() {
        return Err(AuthError::field("phoneVerified", "needs a phone"));
    }
    if reach {
        fresh_proof(ctx, me, proof).await?;
    }
    let changed: Vec<&str> = [
        ("email", new_email.is_some()),
        ("username", username.is_some()),
        ("phone", new_phone.is_some()),
        ("firstName", first_name.is_some()),
        ("lastName", last_name.is_some()),
        ("metadata", metadata.is_some()),
        ("emailVerified", email_verified.is_some()),
        ("phoneVerified", phone_verified.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, c)| c.then_some(k))
    .collect();
    let patch = UserPatch {
        is_email_verified: email_verified.or(new_email.as_ref().map(|_| false)),
        is_phone_verified: phone_verified.or(new_phone.as_ref().map(|_| false)),
        email: new_email,
        username,
        phone: new_phone,
        first_name,
        last_name,
        metadata: metadata.map(|m| m.map(|v| v.to_string())),
        ..Default::default()
    };
    let user = transaction!(ctx, |tx| {
        let locked = target(tx, sub, true).await?;
        // The old address or number stops being a channel (as with the user's own change).
        if let Some(e) = &patch.email {
            super::account::end_email_channel(ctx, tx, &locked, e).await?;
        }
        if let (Some(_), Some(old)) = (&patch.phone, &locked.phone) {
            store::challenges::drop_codes_to(tx, sub, old).await?;
        }
        let details = json!({"fields": changed});
        apply(ctx, tx, me, sub, patch.clone(), "update", details).await?;
        target(tx, sub, false).await
    })?;
    if before.email != user.email {
        let vars = crate::mail::Vars {
            new_email: Some(crate::input::mask_email(&user.email)),
            ..Default::default()
        };
        ctx.queue_mail(
            &before.email,
            Some(&before),
            crate::mail::Kind::EmailChangedByAdmin,
            vars,
        );
    }
    Ok(Outcome::Json(200, user_body(user)))
}

/// `DELETE /admin/users/{sub}` (the admin's fresh proof): the account is erased as by
/// `DELETE /account`; audited on the admin's own trail.
pub(crate) async fn delete(ctx: &Ctx<'_>, sub: &str, mut input: Input) -> AuthResult<Outcome> {
    let me = admin(ctx)?;
    let proof = Proof::read(ctx, &mut input, true);
    input.finish()?;
    if me.sub == sub {
        return Err(AuthError::field(
            "sub",
            "an admin deletes their own account with DELETE /account",
        ));
    }
    target(&ctx.inner.store, sub, false).await?;
    fresh_proof(ctx, me, proof).await?;
    super::account::erase(ctx, sub, AuthError::NotFound).await?;
    let on = (!ctx.operator).then_some(me.sub.as_str());
    let details = action(me, "delete", json!({"targetSub": sub}));
    ctx.audit_later(on, Event::AccountDeleted, true, details);
    Ok(Outcome::Json(200, json!({"success": true})))
}

/// `POST /admin/users/{sub}/force-password-change` (`revokeSessions?`, default false): the
/// next login answers `FORCE_CHANGE_PASSWORD`; with `revokeSessions` every session ends now.
pub(crate) async fn force_password_change(
    ctx: &Ctx<'_>,
    sub: &str,
    mut input: Input,
) -> AuthResult<Outcome> {
    let me = admin(ctx)?;
    let revoke = input.bool("revokeSessions").unwrap_or(false);
    input.finish()?;
    let revoked = transaction!(ctx, |tx| {
        target(tx, sub, true).await?;
        let n = if revoke {
            store::sessions::revoke_all(tx, sub, None, ctx.now).await?
        } else {
            0
        };
        let patch = UserPatch {
            must_change_password: Some(true),
            ..Default::default()
        };
        let details = json!({"sessionsRevoked": n});
        apply(ctx, tx, me, sub, patch, "force_password_change", details).await?;
        Ok(n)
    })?;
    if revoke {
        crate::deny::deny_subject(ctx.inner, sub).await;
    }
    Ok(Outcome::Json(
        200,
        json!({"success": true, "sessionsRevoked": revoked}),
    ))
}

/// `POST /admin/users/{sub}/mfa/exemption` (`exempt`, `reason?`): an exempt user is not asked
/// to enrol under `mfa.enforcement = "required"`. A factor the user has enrolled is still
/// asked for: the exemption waives the enrolment, never a second factor. Granting it needs
/// the admin's fresh proof.
pub(crate) async fn mfa_exemption(
    ctx: &Ctx<'_>,
    sub: &str,
    mut input: Input,
) -> AuthResult<Outcome> {
    let me = admin(ctx)?;
    let exempt = input.bool("exempt");
    if exempt.is_none() {
        input.error("exempt", "is required (true or false)");
    }
    let reason = input.text("reason", 500);
    let exempt = exempt.unwrap_or(false);
    let proof = Proof::read(ctx, &mut input, exempt);
    input.finish()?;
    target(&ctx.inner.store, sub, false).await?;
    if exempt {
        fresh_proof(ctx, me, proof).await?;
    }
    let user = transaction!(ctx, |tx| {
        target(tx, sub, true).await?;
        let patch = UserPatch {
            mfa_exempt: Some(exempt),
            ..Default::default()
        };
        let details = json!({"exempt": exempt, "reason": reason});
        apply(ctx, tx, me, sub, patch, "mfa_exemption", details).await?;
        target(tx, sub, false).await
    })?;
    Ok(Outcome::Json(200, user_body(user)))
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
    let roles = roles_field(&mut input);
    let proof = Proof::read(ctx, &mut input, false);
    input.finish()?;
    if me.sub == sub && !roles.iter().any(|r| r == "admin") {
        return Err(AuthError::field(
            "roles",
            "an admin cannot remove their own admin role",
        ));
    }
    let grants = |u: &User| roles.iter().any(|r| !super::roles(u).contains(r));
    let proven = grants(&target(&ctx.inner.store, sub, false).await?);
    if proven {
        fresh_proof(ctx, me, proof).await?;
    }
    let user = transaction!(ctx, |tx| {
        let before = target(tx, sub, true).await?;
        if grants(&before) && !proven {
            // A role was taken away concurrently, so this now grants one: answered 503,
            // the admin sends it again with a proof.
            return Err(AuthError::Contention);
        }
        let patch = UserPatch {
            roles: Some(roles.join(",")),
            ..Default::default()
        };
        // Cached sessions carry the roles: they are read again after this commits.
        tx.sessions_changed().await;
        let details = json!({"from": super::roles(&before), "to": roles});
        apply(ctx, tx, me, sub, patch, "set_roles", details).await?;
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
