//! The signed-in user's own account: profile, password, email, verification mail, deletion.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, sea_query::Expr};
use serde_json::json;

use super::{Ctx, Outcome};
use crate::codes;
use crate::error::{AuthError, AuthResult, RateLimit};
use crate::events::{Event, audit};
use crate::input::{Identifier, Input, mask_email};
use crate::store::entities::{
    audit_log, challenges, mfa_devices, password_history, refresh_tokens, sessions, users,
    verification_tokens as vt,
};
use crate::store::is_unique_violation;

const CODE_MAX_ATTEMPTS: i32 = 3;

async fn me(ctx: &Ctx<'_>) -> AuthResult<users::Model> {
    super::user_by_id(&ctx.inner.store.db, &ctx.principal()?.sub).await
}

/// `GET /profile`.
pub(crate) async fn profile(ctx: &Ctx<'_>) -> AuthResult<Outcome> {
    Ok(Outcome::Json(200, super::profile_json(&me(ctx).await?)))
}

/// `PUT /profile`: absent fields stay; `null` clears a name.
pub(crate) async fn update_profile(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let first = input.has("firstName").then(|| input.text("firstName", 100));
    let last = input.has("lastName").then(|| input.text("lastName", 100));
    let username = input.has("username").then(|| input.username("username"));
    let metadata = input
        .has("metadata")
        .then(|| input.object("metadata", 4096));
    input.finish()?;
    let user = me(ctx).await?;
    let mut am: users::ActiveModel = user.clone().into();
    if let Some(v) = first {
        am.first_name = Set(v);
    }
    if let Some(v) = last {
        am.last_name = Set(v);
    }
    if let Some(v) = username {
        am.username = Set(v);
    }
    if let Some(v) = metadata {
        am.metadata = Set(v.map(|m| m.to_string()));
    }
    am.updated_at = Set(ctx.now);
    let res = users::Entity::update(am).exec(&ctx.inner.store.db).await;
    let updated = match res {
        Ok(u) => u,
        Err(e) if is_unique_violation(&e) => return Err(AuthError::UsernameExists),
        Err(e) => return Err(e.into()),
    };
    Ok(Outcome::Json(200, super::profile_json(&updated)))
}

/// `POST /change-password`: revokes every other session and rotates this one's pair.
pub(crate) async fn change_password(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let old = input.password("oldPassword");
    let new = input.password("newPassword");
    input.finish()?;
    let p = ctx.principal()?;
    let user = me(ctx).await?;
    super::confirm_password(ctx, &user, &old).await?;
    super::check_new_password(ctx, Some(&user), None, &new).await?;
    if new == old {
        return Err(AuthError::PasswordReused);
    }
    let hash = ctx.inner.hasher.hash(&new).await?;
    let tx = ctx.inner.store.begin().await?;
    super::set_password(ctx, &tx, &user, hash).await?;
    super::revoke_sessions(&tx, &user.id, Some(&p.session_id), ctx.now).await?;
    // A new password ends every trusted device: the next login proves the second factor.
    super::forget_devices(&tx, &user.id, None).await?;
    // A new pair for this session; the old refresh tokens of the session stop working.
    refresh_tokens::Entity::update_many()
        .col_expr(
            refresh_tokens::Column::State,
            Expr::value(refresh_tokens::DISCARDED),
        )
        .filter(refresh_tokens::Column::SessionId.eq(&p.session_id))
        .exec(&tx)
        .await?;
    let session = sessions::Entity::find_by_id(p.session_id.clone())
        .one(&tx)
        .await?
        .ok_or(AuthError::SessionNotFound)?;
    let refresh = codes::random_token();
    refresh_tokens::Entity::insert(refresh_tokens::ActiveModel {
        token_hash: Set(codes::sha256_hex(&refresh)),
        session_id: Set(session.id.clone()),
        state: Set(refresh_tokens::CURRENT),
        created_at: Set(ctx.now),
        rotated_at: Set(None),
    })
    .exec(&tx)
    .await?;
    let jti = uuid::Uuid::new_v4().to_string();
    sessions::Entity::update_many()
        .col_expr(sessions::Column::AccessJti, Expr::value(jti.clone()))
        .filter(sessions::Column::Id.eq(&session.id))
        .exec(&tx)
        .await?;
    let user = super::user_by_id(&tx, &user.id).await?;
    let tokens = super::mint(
        ctx,
        &user,
        &session.id,
        jti,
        refresh,
        session.expires_at,
        &session.auth_method,
    )?;
    tx.commit().await?;
    audit(
        ctx.inner,
        Some(&user.id),
        Event::PasswordChanged,
        true,
        &ctx.origin,
        json!({}),
    )
    .await;
    Ok(Outcome::JsonWithTokens(json!({"success": true}), tokens))
}

/// `POST /change-email`: a code to the new address; a taken address gets the same answer.
pub(crate) async fn change_email(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let new_email = input.email("newEmail");
    let password = input.password("password");
    input.finish()?;
    let user = me(ctx).await?;
    super::confirm_password(ctx, &user, &password).await?;
    if new_email == user.email {
        return Err(AuthError::field(
            "newEmail",
            "must differ from the current email",
        ));
    }
    let answer = json!({"success": true, "destination": mask_email(&new_email)});
    let db = &ctx.inner.store.db;
    if let Some(owner) = super::find_user(db, &Identifier::Email(new_email.clone())).await? {
        if super::budget::spend_notice(ctx, &owner.email).await? {
            ctx.queue_mail(
                &owner.email,
                "Someone tried to use your email",
                "Someone tried to move another account to this email address. Nothing was \
                 changed on your account.\n"
                    .into(),
            );
        }
        return Ok(Outcome::Json(200, answer));
    }
    super::count_code_message(ctx, &new_email, false, Some(&user.id)).await?;
    let code = codes::random_code();
    let tx = ctx.inner.store.begin().await?;
    vt::Entity::update_many()
        .col_expr(vt::Column::UsedAt, Expr::value(ctx.now))
        .filter(vt::Column::UserId.eq(&user.id))
        .filter(vt::Column::Purpose.eq("change_email"))
        .filter(vt::Column::UsedAt.is_null())
        .exec(&tx)
        .await?;
    vt::Entity::insert(vt::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        user_id: Set(user.id.clone()),
        purpose: Set("change_email".into()),
        token_hash: Set(ctx.inner.keys.hash_code("change_email", &user.id, &code)),
        data: Set(Some(new_email.clone())),
        attempts: Set(0),
        created_at: Set(ctx.now),
        expires_at: Set(ctx.now + crate::clock::ms(ctx.cfg().signup.code_ttl)),
        used_at: Set(None),
    })
    .exec(&tx)
    .await?;
    tx.commit().await?;
    ctx.queue_mail(
        &new_email,
        "Confirm your new email",
        format!("Your code to confirm this email address is {code}\n\nIf you did not ask for this, ignore this message.\n"),
    );
    Ok(Outcome::Json(200, answer))
}

/// `POST /change-email/confirm`.
pub(crate) async fn confirm_email_change(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let code = input.text_req("code", 16);
    input.finish()?;
    let p = ctx.principal()?;
    let user = me(ctx).await?;
    let db = &ctx.inner.store.db;
    let invalid = |n: i32| AuthError::VerifyCodeInvalid {
        attempts_remaining: Some(Ord::max(CODE_MAX_ATTEMPTS - n, 0) as u32),
    };
    let token = vt::Entity::find()
        .filter(vt::Column::UserId.eq(&user.id))
        .filter(vt::Column::Purpose.eq("change_email"))
        .filter(vt::Column::UsedAt.is_null())
        .order_by_desc(vt::Column::CreatedAt)
        .one(db)
        .await?
        .filter(|t| t.attempts < CODE_MAX_ATTEMPTS)
        .ok_or(invalid(CODE_MAX_ATTEMPTS))?;
    if token.expires_at <= ctx.now {
        return Err(AuthError::VerifyCodeExpired);
    }
    // Counted before the code is compared: on the code (3 tries) and on the account's
    // verification budget.
    let attempt =
        super::budget::reserve(ctx, super::budget::Budget::Verify, Some(&user.id), "").await?;
    let Some(slot) = super::budget::reserve_code_attempt(db, &token.id, CODE_MAX_ATTEMPTS).await?
    else {
        attempt.unused(ctx).await?;
        return Err(invalid(CODE_MAX_ATTEMPTS));
    };
    let right = ctx
        .inner
        .keys
        .verify_code("change_email", &user.id, &code, &token.token_hash);
    attempt.settle(ctx, &Ok(right)).await?;
    if !right {
        return Err(invalid(slot));
    }
    let new_email = token.data.clone().unwrap_or_default();
    let tx = ctx.inner.store.begin().await?;
    let used = vt::Entity::update_many()
        .col_expr(vt::Column::UsedAt, Expr::value(ctx.now))
        .filter(vt::Column::Id.eq(&token.id))
        .filter(vt::Column::UsedAt.is_null())
        .exec(&tx)
        .await?;
    if used.rows_affected == 0 {
        return Err(invalid(CODE_MAX_ATTEMPTS));
    }
    let res = users::Entity::update_many()
        .col_expr(users::Column::Email, Expr::value(new_email.clone()))
        .col_expr(users::Column::IsEmailVerified, Expr::value(true))
        .col_expr(users::Column::UpdatedAt, Expr::value(ctx.now))
        .filter(users::Column::Id.eq(&user.id))
        .exec(&tx)
        .await;
    match res {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => return Err(AuthError::EmailExists),
        Err(e) => return Err(e.into()),
    }
    super::revoke_sessions(&tx, &user.id, Some(&p.session_id), ctx.now).await?;
    // The old address stops being a channel: its reset codes and links end, and an email
    // second factor now sends to the new address.
    vt::Entity::update_many()
        .col_expr(vt::Column::UsedAt, Expr::value(ctx.now))
        .filter(vt::Column::UserId.eq(&user.id))
        .filter(vt::Column::Purpose.is_in(["reset_code", "reset_link", "verify_email_link"]))
        .filter(vt::Column::UsedAt.is_null())
        .exec(&tx)
        .await?;
    mfa_devices::Entity::update_many()
        .col_expr(
            mfa_devices::Column::Destination,
            Expr::value(new_email.clone()),
        )
        .col_expr(
            mfa_devices::Column::Name,
            Expr::value(mask_email(&new_email)),
        )
        .filter(mfa_devices::Column::UserId.eq(&user.id))
        .filter(mfa_devices::Column::Kind.eq("email"))
        .exec(&tx)
        .await?;
    challenges::Entity::update_many()
        .col_expr(
            challenges::Column::CodeHash,
            Expr::value(Option::<String>::None),
        )
        .filter(challenges::Column::UserId.eq(&user.id))
        .filter(challenges::Column::Destination.eq(&user.email))
        .exec(&tx)
        .await?;
    tx.commit().await?;
    ctx.inner.session_cache.invalidate();
    ctx.queue_mail(
        &user.email,
        "Your email was changed",
        format!("The email of your account was changed to {}.\n\nIf this was not you, reset your password and contact support.\n", mask_email(&new_email)),
    );
    audit(
        ctx.inner,
        Some(&user.id),
        Event::EmailChanged,
        true,
        &ctx.origin,
        json!({}),
    )
    .await;
    Ok(Outcome::Json(200, super::profile_json(&me(ctx).await?)))
}

/// `POST /resend-verification`: a fresh verification link (and code) to the user's email.
pub(crate) async fn resend_verification(ctx: &Ctx<'_>, input: Input) -> AuthResult<Outcome> {
    input.finish()?;
    let user = me(ctx).await?;
    if user.is_email_verified {
        return Err(AuthError::VerifyAlreadyVerified);
    }
    let cfg = &ctx.cfg().signup;
    let kv = &ctx.inner.kv;
    // The send is claimed with one atomic increment whose window is the resend delay: of a
    // burst, exactly one goes on.
    let last_key = super::budget::keys::resend_claim(&user.id);
    let delay = crate::clock::ms(cfg.resend_delay).max(1);
    let claim = kv.incr(&last_key, delay, ctx.now).await?;
    if claim.value > 1 {
        return Err(AuthError::RateLimited {
            limit: RateLimit::Resend,
            retry_after: super::retry_after(claim.expires_at, ctx.now),
        });
    }
    let n = kv
        .incr(
            &super::budget::keys::resend_count(&user.id),
            3_600_000,
            ctx.now,
        )
        .await?;
    if n.value > i64::from(cfg.resend_max_per_hour) {
        return Err(AuthError::RateLimited {
            limit: RateLimit::Resend,
            retry_after: super::retry_after(n.expires_at, ctx.now),
        });
    }
    super::count_code_message(ctx, &user.email, false, Some(&user.id)).await?;
    let tx = ctx.inner.store.begin().await?;
    let link = super::auth::issue_verify_link(ctx, &tx, &user).await?;
    tx.commit().await?;
    let text = match link {
        Some(l) => format!(
            "Open this link to verify your email:\n{l}\n\nIf you did not ask for this, ignore this message.\n"
        ),
        None => "Verification links need nauth's base_url; ask the site's operator.\n".to_string(),
    };
    ctx.queue_mail(&user.email, "Verify your email", text);
    Ok(Outcome::Json(
        200,
        json!({"destination": mask_email(&user.email)}),
    ))
}

/// `DELETE /account`: the user and every row of theirs, in one transaction that first locks
/// the user row (a concurrent login that locks it sees the account whole or not at all); then
/// the account's kv rows; its access tokens stop at once on every instance (the deny set).
pub(crate) async fn delete_account(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let password = input.password("password");
    input.finish()?;
    let user = me(ctx).await?;
    super::confirm_password(ctx, &user, &password).await?;
    let uid = user.id.clone();
    // BEGIN IMMEDIATE on SQLite (serialises by itself); a row lock on the others.
    let tx = ctx.inner.store.begin().await?;
    {
        use sea_orm::QuerySelect;
        users::Entity::find_by_id(uid.clone())
            .lock_exclusive()
            .one(&tx)
            .await?
            // Deleted by a concurrent request since `me`.
            .ok_or(AuthError::SessionNotFound)?;
    }
    erase_user_rows(&tx, &uid).await?;
    tx.commit().await?;
    ctx.inner.session_cache.invalidate();
    crate::deny::deny_subject(ctx.inner, &uid).await;
    for key in super::budget::keys::of_account(&uid) {
        // The account is gone already; a leftover counter only expires later.
        if let Err(e) = ctx.inner.kv.del(&key).await {
            tracing::warn!(error = %e, "could not delete a kv row of a deleted account");
        }
    }
    audit(
        ctx.inner,
        None,
        Event::AccountDeleted,
        true,
        &ctx.origin,
        json!({"sub": uid}),
    )
    .await;
    Ok(Outcome::JsonClearing {
        body: json!({"success": true}),
        device: true,
    })
}

/// Deletes every row that belongs to a user, the user row last.
async fn erase_user_rows(tx: &sea_orm::DatabaseTransaction, uid: &str) -> AuthResult<()> {
    use crate::store::entities::{backup_codes, trusted_devices};
    let sids: Vec<String> = sessions::Entity::find()
        .filter(sessions::Column::UserId.eq(uid))
        .all(tx)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    for chunk in sids.chunks(500) {
        refresh_tokens::Entity::delete_many()
            .filter(refresh_tokens::Column::SessionId.is_in(chunk.iter().cloned()))
            .exec(tx)
            .await?;
    }
    sessions::Entity::delete_many()
        .filter(sessions::Column::UserId.eq(uid))
        .exec(tx)
        .await?;
    challenges::Entity::delete_many()
        .filter(challenges::Column::UserId.eq(uid))
        .exec(tx)
        .await?;
    vt::Entity::delete_many()
        .filter(vt::Column::UserId.eq(uid))
        .exec(tx)
        .await?;
    password_history::Entity::delete_many()
        .filter(password_history::Column::UserId.eq(uid))
        .exec(tx)
        .await?;
    audit_log::Entity::delete_many()
        .filter(audit_log::Column::UserId.eq(uid))
        .exec(tx)
        .await?;
    mfa_devices::Entity::delete_many()
        .filter(mfa_devices::Column::UserId.eq(uid))
        .exec(tx)
        .await?;
    backup_codes::Entity::delete_many()
        .filter(backup_codes::Column::UserId.eq(uid))
        .exec(tx)
        .await?;
    trusted_devices::Entity::delete_many()
        .filter(trusted_devices::Column::UserId.eq(uid))
        .exec(tx)
        .await?;
    users::Entity::delete_by_id(uid.to_string())
        .exec(tx)
        .await?;
    Ok(())
}

/// The first administrator: a random one-time password that must be changed at first login.
pub(crate) async fn create_admin(inner: &crate::Inner, email: &str) -> AuthResult<String> {
    let email = crate::input::normalize_email(email).map_err(|m| AuthError::field("email", m))?;
    let alphabet = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
    let password = codes::random_string(alphabet, 20);
    let hash = inner.hasher.hash(&password).await?;
    let now = inner.clock.now_ms();
    let user = users::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        email: Set(email),
        username: Set(None),
        phone: Set(None),
        password_hash: Set(hash),
        first_name: Set(None),
        last_name: Set(None),
        metadata: Set(None),
        roles: Set("user,admin".into()),
        is_email_verified: Set(true),
        is_phone_verified: Set(false),
        must_change_password: Set(true),
        password_changed_at: Set(now),
        disabled: Set(false),
        mfa_enabled: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    };
    match users::Entity::insert(user).exec(&inner.store.db).await {
        Ok(_) => Ok(password),
        Err(e) if is_unique_violation(&e) => Err(AuthError::EmailExists),
        Err(e) => Err(e.into()),
    }
}
