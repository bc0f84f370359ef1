//! The signed-in user's own account: profile, password, email, verification mail, deletion.

use serde_json::json;

use super::budget::KvKey;
use super::{Ctx, Outcome};
use crate::codes;
use crate::error::{AuthError, AuthResult, RateLimit};
use crate::events::Event;
use crate::input::{Identifier, Input, mask_email};
use crate::store::users::UserPatch;
use crate::store::{self, StoreError, User, VerificationToken};

const CODE_MAX_ATTEMPTS: i32 = 3;

async fn me(ctx: &Ctx<'_>) -> AuthResult<User> {
    super::user_by_id(&ctx.inner.store, &ctx.principal()?.sub).await
}

/// `GET /profile`.
pub(crate) async fn profile(ctx: &Ctx<'_>) -> AuthResult<Outcome> {
    Ok(Outcome::Json(200, super::profile_json(&me(ctx).await?)))
}

/// `PUT /profile`: absent fields stay; `null` clears a name or the mail language (`locale`).
pub(crate) async fn update_profile(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let locale = input.has("locale").then(|| input.locale("locale"));
    let first = input.has("firstName").then(|| input.text("firstName", 100));
    let last = input.has("lastName").then(|| input.text("lastName", 100));
    let username = input.has("username").then(|| input.username("username"));
    let metadata = input
        .has("metadata")
        .then(|| input.object("metadata", 4096));
    input.finish()?;
    let user = me(ctx).await?;
    let patch = UserPatch {
        first_name: first,
        last_name: last,
        username,
        metadata: metadata.map(|v| v.map(|m| m.to_string())),
        locale,
        updated_at: Some(ctx.now),
        ..Default::default()
    };
    let store = &ctx.inner.store;
    match store::users::update(store, &user.id, patch).await {
        Ok(_) => {}
        // Only the username of these columns is unique.
        Err(StoreError::Conflict(_)) => return Err(AuthError::UsernameExists),
        Err(e) => return Err(e.into()),
    }
    let updated = super::user_by_id(store, &user.id).await?;
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
    let (_, tokens) = transaction!(ctx, |tx| {
        super::set_password(ctx, tx, &user, hash.clone()).await?;
        super::revoke_sessions(tx, &user.id, Some(&p.session_id), ctx.now).await?;
        // A new password ends every trusted device: the next login proves the second factor.
        super::forget_devices(tx, &user.id, None).await?;
        // A new pair for this session; the old refresh tokens of the session stop working.
        store::sessions::discard_all_refresh(tx, &p.session_id).await?;
        let session = store::sessions::get(tx, &p.session_id, false)
            .await?
            .ok_or(AuthError::SessionNotFound)?;
        let refresh = codes::random_token();
        store::sessions::add_refresh(tx, &session.id, codes::sha256_hex(&refresh), ctx.now).await?;
        let jti = uuid::Uuid::new_v4().to_string();
        store::sessions::set_access_jti(tx, &session.id, &jti).await?;
        let user = super::user_by_id(tx, &user.id).await?;
        let tokens = super::mint(
            ctx,
            &user,
            &session.id,
            jti,
            refresh,
            session.expires_at,
            &session.auth_method,
        )?;
        ctx.audit_in(tx, Some(&user.id), Event::PasswordChanged, json!({}))
            .await;
        Ok((user, tokens))
    })?;
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
    let db = &ctx.inner.store;
    if let Some(owner) = super::find_user(db, &Identifier::Email(new_email.clone())).await? {
        if super::budget::spend_notice(ctx, &owner.email).await? {
            ctx.queue_mail(
                &owner.email,
                Some(&owner),
                crate::mail::Kind::ChangeEmailTaken,
                Default::default(),
            );
        }
        return Ok(Outcome::Json(200, answer));
    }
    super::count_code_message(ctx, &new_email, false, Some(&user.id)).await?;
    let code = codes::random_code();
    transaction!(ctx, |tx| {
        store::verification::end_purpose(tx, &user.id, "change_email", ctx.now).await?;
        let token = VerificationToken {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            purpose: "change_email".into(),
            token_hash: ctx.inner.keys.hash_code("change_email", &user.id, &code),
            data: Some(new_email.clone()),
            attempts: 0,
            created_at: ctx.now,
            expires_at: ctx.now + crate::clock::ms(ctx.cfg().signup.code_ttl),
            used_at: None,
        };
        store::verification::insert(tx, token).await?;
        Ok(())
    })?;
    let vars = crate::mail::Vars {
        code: Some(code),
        code_ttl: Some(ctx.cfg().signup.code_ttl),
        ..Default::default()
    };
    ctx.queue_mail(
        &new_email,
        Some(&user),
        crate::mail::Kind::ChangeEmailCode,
        vars,
    );
    Ok(Outcome::Json(200, answer))
}

/// `POST /change-email/confirm`.
pub(crate) async fn confirm_email_change(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let code = input.text_req("code", 16);
    input.finish()?;
    let p = ctx.principal()?;
    let user = me(ctx).await?;
    let db = &ctx.inner.store;
    let invalid = |n: i32| AuthError::VerifyCodeInvalid {
        attempts_remaining: Some(Ord::max(CODE_MAX_ATTEMPTS - n, 0) as u32),
    };
    let token = store::verification::latest_pending(db, &user.id, "change_email")
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
    transaction!(ctx, |tx| {
        if !store::verification::mark_used(tx, &token.id, ctx.now).await? {
            return Err(invalid(CODE_MAX_ATTEMPTS));
        }
        let patch = UserPatch {
            email: Some(new_email.clone()),
            is_email_verified: Some(true),
            updated_at: Some(ctx.now),
            ..Default::default()
        };
        match store::users::update(tx, &user.id, patch).await {
            Ok(_) => {}
            // Only the email of these columns is unique.
            Err(StoreError::Conflict(_)) => return Err(AuthError::EmailExists),
            Err(e) => return Err(e.into()),
        }
        super::revoke_sessions(tx, &user.id, Some(&p.session_id), ctx.now).await?;
        end_email_channel(ctx, tx, &user, &new_email).await?;
        ctx.audit_in(tx, Some(&user.id), Event::EmailChanged, json!({}))
            .await;
        Ok(())
    })?;
    let vars = crate::mail::Vars {
        new_email: Some(mask_email(&new_email)),
        ..Default::default()
    };
    ctx.queue_mail(
        &user.email,
        Some(&user),
        crate::mail::Kind::EmailChanged,
        vars,
    );
    Ok(Outcome::Json(200, super::profile_json(&me(ctx).await?)))
}

/// The user's old address stops being a channel once `new_email` replaces it: its reset codes
/// and links and its verification links end, codes sent to it are void, and an email second
/// factor sends to the new address from now on.
pub(crate) async fn end_email_channel(
    ctx: &Ctx<'_>,
    tx: &store::Tx,
    user: &User,
    new_email: &str,
) -> AuthResult<()> {
    let old_channels = ["reset_code", "reset_link", "verify_email_link"];
    store::verification::end_purposes(tx, &user.id, &old_channels, ctx.now).await?;
    let name = mask_email(new_email);
    store::mfa::readdress_email_devices(tx, &user.id, new_email, &name).await?;
    store::challenges::drop_codes_to(tx, &user.id, &user.email).await?;
    Ok(())
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
    let last_key = KvKey::ResendClaim(&user.id).to_string();
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
            &KvKey::ResendCount(&user.id).to_string(),
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
    let link = transaction!(ctx, |tx| {
        super::auth::issue_verify_link(ctx, tx, &user).await
    })?;
    let vars = crate::mail::Vars {
        link,
        link_ttl: Some(ctx.cfg().signup.code_ttl),
        ..Default::default()
    };
    ctx.queue_mail(
        &user.email,
        Some(&user),
        crate::mail::Kind::VerifyEmailLink,
        vars,
    );
    Ok(Outcome::Json(
        200,
        json!({"destination": mask_email(&user.email)}),
    ))
}

/// `DELETE /account` (`password`): the account is erased ([`erase`]).
pub(crate) async fn delete_account(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let password = input.password("password");
    input.finish()?;
    let user = me(ctx).await?;
    super::confirm_password(ctx, &user, &password).await?;
    erase(ctx, &user.id, AuthError::SessionNotFound).await?;
    ctx.audit_later(None, Event::AccountDeleted, true, json!({"sub": user.id}));
    Ok(Outcome::JsonClearing {
        body: json!({"success": true}),
        device: true,
    })
}

/// Erases an account: the user and every row of theirs, in one transaction that first locks
/// the user row (a concurrent login that locks it sees the account whole or not at all);
/// then its kv rows. Its access tokens stop at once on every instance (the deny set). `gone`
/// is the answer when the user no longer exists.
pub(crate) async fn erase(ctx: &Ctx<'_>, uid: &str, gone: AuthError) -> AuthResult<()> {
    // BEGIN IMMEDIATE on SQLite (serialises by itself); a row lock on the others.
    transaction!(ctx, |tx| {
        store::users::lock(tx, uid).await?.ok_or(gone.clone())?;
        store::users::erase(tx, uid).await?;
        Ok(())
    })?;
    crate::deny::deny_subject(ctx.inner, uid).await;
    for key in KvKey::of_account(uid) {
        // The account is gone already; a leftover counter only expires later.
        if let Err(e) = ctx.inner.kv.del(&key.to_string()).await {
            tracing::warn!(error = %e, "could not delete a kv row of a deleted account");
        }
    }
    Ok(())
}
