//! Password reset (code and link) and email verification by link.

use serde_json::json;

use super::budget::KvKey;
use super::mfa::Factor;
use super::{Ctx, Outcome};
use crate::codes;
use crate::error::{AuthError, AuthResult, RateLimit};
use crate::events::Event;
use crate::input::{Identifier, Input};
use crate::store::users::UserPatch;
use crate::store::{self, User, VerificationToken};

const RESET_MAX_ATTEMPTS: i32 = 3;
const HOUR_MS: i64 = 3_600_000;
/// The purposes of a password reset's code and link.
const RESET_PURPOSES: &[&str] = &["reset_code", "reset_link"];

/// How a reset code travels (named like the second factor that travels the same way): by
/// SMS to a phone identifier, else by email. Its name is the answer's `deliveryMedium` and
/// the stored `data` of the reset rows.
fn reset_medium(sms: bool) -> Factor {
    if sms { Factor::Sms } else { Factor::Email }
}

/// `POST /forgot-password`: the same answer, and the same work on the request path, whether
/// or not the account exists; delivery happens after the answer.
pub(crate) async fn forgot(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let ident = input.identifier("identifier");
    input.finish()?;
    let Some(ident) = ident else {
        return Err(AuthError::field("identifier", "is required"));
    };
    let cfg = ctx.cfg();
    if let Some(ip) = ctx.ip {
        let e = ctx
            .inner
            .kv
            .incr(&KvKey::ResetIp(ip).to_string(), HOUR_MS, ctx.now)
            .await?;
        if e.value > i64::from(cfg.password.reset_ip_max_per_hour) {
            return Err(AuthError::RateLimited {
                limit: RateLimit::PasswordReset,
                retry_after: super::retry_after(e.expires_at, ctx.now),
            });
        }
    }
    let sms = matches!(ident, Identifier::Phone(_));
    let answer = super::body(&ForgotBody {
        success: true,
        delivery_medium: reset_medium(sms).as_str(),
        expires_in: cfg.password.reset_code_ttl.as_secs(),
    });
    // Everything that depends on the identifier (the lookup, counters, token rows, audit,
    // message) runs after the answer, on its own task: the request path is the same for
    // known and unknown identifiers (docs/api.md §3.1).
    ctx.detach(move |ctx| Box::pin(after_forgot(ctx, ident, sms)));
    Ok(Outcome::Json(200, answer))
}

/// The work of a `/forgot-password` after its answer.
async fn after_forgot(ctx: &Ctx<'_>, ident: Identifier, sms: bool) -> AuthResult<()> {
    // Whatever the identifier, a new request gives its wrong-code counter a fresh start, so
    // the confirm answers of unknown and known identifiers stay alike.
    ctx.inner
        .kv
        .del(&KvKey::ResetFailures(ident.as_str()).to_string())
        .await?;
    let db = &ctx.inner.store;
    match super::find_user(db, &ident).await? {
        Some(user) if !user.disabled => send_reset(ctx, user, sms).await,
        _ => Ok(()),
    }
}

/// Issues a reset code (and link) for an account and queues its message; silent past the
/// account's hourly limit or the address's message cap.
async fn send_reset(ctx: &Ctx<'_>, user: User, sms: bool) -> AuthResult<()> {
    let cfg = ctx.cfg();
    let per_account = ctx
        .inner
        .kv
        .incr(&KvKey::ResetAccount(&user.id).to_string(), HOUR_MS, ctx.now)
        .await?;
    let address = if sms {
        user.phone.clone().unwrap_or_default()
    } else {
        user.email.clone()
    };
    if per_account.value > 3
        || super::count_code_message(ctx, &address, sms, Some(&user.id))
            .await
            .is_err()
    {
        return Ok(());
    }
    let code = codes::random_code();
    let link_token = codes::random_token();
    let expires = ctx.now + crate::clock::ms(cfg.password.reset_code_ttl);
    let medium = reset_medium(sms).as_str();
    let mut rows = vec![(
        "reset_code",
        ctx.inner.keys.hash_code("reset_code", &user.id, &code),
    )];
    let link = if cfg.password.reset_url.is_empty() {
        super::link(ctx, "/reset-password", &link_token)
    } else {
        Some(format!(
            "{}?token={}",
            cfg.password.reset_url,
            crate::http::percent_encode(&link_token)
        ))
    };
    if link.is_some() && !sms {
        rows.push((
            "reset_link",
            ctx.inner.keys.hash_code("link", "reset_link", &link_token),
        ));
    }
    transaction!(ctx, |tx| {
        store::verification::end_purposes(tx, &user.id, RESET_PURPOSES, ctx.now).await?;
        for (purpose, hash) in &rows {
            let token = VerificationToken {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: user.id.clone(),
                purpose: purpose.to_string(),
                token_hash: hash.clone(),
                data: Some(medium.to_string()),
                attempts: 0,
                created_at: ctx.now,
                expires_at: expires,
                used_at: None,
            };
            store::verification::insert(tx, token).await?;
        }
        Ok(())
    })?;
    if sms {
        let ttl = cfg.password.reset_code_ttl;
        ctx.queue_code_sms(&address, &user, crate::mail::Sms::Reset, &code, ttl);
    } else {
        let vars = crate::mail::Vars {
            code: Some(code),
            code_ttl: Some(cfg.password.reset_code_ttl),
            link,
            link_ttl: Some(cfg.password.reset_code_ttl),
            ..Default::default()
        };
        ctx.queue_mail(
            &address,
            Some(&user),
            crate::mail::Kind::ResetPassword,
            vars,
        );
    }
    ctx.audit_later(
        Some(&user.id),
        Event::PasswordResetRequested,
        true,
        json!({"medium": medium}),
    );
    Ok(())
}

/// The answer of `POST /forgot-password`, the same for every identifier.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ForgotBody {
    success: bool,
    delivery_medium: &'static str,
    expires_in: u64,
}

/// Applies a new password after a proven reset: every session revoked, lockout cleared, and
/// (for an emailed code or link) the email marked verified.
async fn apply_reset(
    ctx: &Ctx<'_>,
    user: &User,
    token: VerificationToken,
    new_password: &str,
) -> AuthResult<Outcome> {
    super::check_new_password(ctx, Some(user), None, new_password).await?;
    let hash = ctx.inner.hasher.hash(new_password).await?;
    transaction!(ctx, |tx| {
        let fresh = store::verification::get_for_update(tx, &token.id).await?;
        if fresh.is_none_or(|t| t.used_at.is_some()) {
            return Err(AuthError::PasswordResetCodeInvalid);
        }
        store::verification::end_purposes(tx, &user.id, RESET_PURPOSES, ctx.now).await?;
        super::set_password(ctx, tx, user, hash.clone()).await?;
        if token.data.as_deref() != Some(Factor::Sms.as_str()) {
            let patch = UserPatch {
                is_email_verified: Some(true),
                ..Default::default()
            };
            store::users::update(tx, &user.id, patch).await?;
        }
        super::revoke_sessions(tx, &user.id, None, ctx.now).await?;
        super::forget_devices(tx, &user.id, None).await?;
        ctx.audit_in(tx, Some(&user.id), Event::PasswordReset, json!({}))
            .await;
        Ok(())
    })?;
    super::budget::clear_account(ctx, &user.id).await?;
    Ok(Outcome::Json(200, json!({"success": true})))
}

/// `POST /forgot-password/confirm`.
pub(crate) async fn confirm(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let ident = input.identifier("identifier");
    let code = input.text_req("code", 16);
    let new_password = input.password("newPassword");
    input.finish()?;
    let Some(ident) = ident else {
        return Err(AuthError::field("identifier", "is required"));
    };
    let db = &ctx.inner.store;
    let user = super::find_user(db, &ident).await?;
    let token = match &user {
        Some(u) => store::verification::latest_pending(db, &u.id, "reset_code").await?,
        None => None,
    };
    let live = match (user, token) {
        (Some(u), Some(t)) if t.expires_at > ctx.now => Ok((u, t)),
        (Some(u), Some(t)) => Err(Some((u, t))),
        _ => Err(None),
    };
    let (user, token) = match live {
        Ok(pair) => pair,
        Err(expired) => {
            // No account, no code, or an expired one: the same answers, counted per
            // identifier before anything is compared. Only the right (expired) code learns
            // that it has expired.
            let key = KvKey::ResetFailures(ident.as_str()).to_string();
            let e = ctx.inner.kv.incr(&key, HOUR_MS, ctx.now).await?;
            if e.value > i64::from(RESET_MAX_ATTEMPTS) {
                return Err(AuthError::PasswordResetMaxAttempts);
            }
            let right = expired.is_some_and(|(u, t)| {
                ctx.inner
                    .keys
                    .verify_code("reset_code", &u.id, &code, &t.token_hash)
            });
            return Err(if right {
                AuthError::PasswordResetCodeExpired
            } else {
                AuthError::PasswordResetCodeInvalid
            });
        }
    };
    // The attempt is counted on the code before it is compared: at most 3 comparisons per
    // code, whatever the concurrency.
    if super::budget::reserve_code_attempt(db, &token.id, RESET_MAX_ATTEMPTS)
        .await?
        .is_none()
    {
        return Err(AuthError::PasswordResetMaxAttempts);
    }
    if !ctx
        .inner
        .keys
        .verify_code("reset_code", &user.id, &code, &token.token_hash)
    {
        return Err(AuthError::PasswordResetCodeInvalid);
    }
    apply_reset(ctx, &user, token, &new_password).await
}

/// `POST /reset-password` (the link's token).
pub(crate) async fn reset_with_link(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let token = input.text_req("token", 512);
    let new_password = input.password("newPassword");
    input.finish()?;
    let db = &ctx.inner.store;
    let hash = ctx.inner.keys.hash_code("link", "reset_link", &token);
    let row = store::verification::by_hash(db, "reset_link", &hash, false)
        .await?
        .filter(|t| t.used_at.is_none())
        .ok_or(AuthError::PasswordResetCodeInvalid)?;
    if row.expires_at <= ctx.now {
        return Err(AuthError::PasswordResetCodeExpired);
    }
    let user = super::named_user(db, &row.user_id, AuthError::PasswordResetCodeInvalid).await?;
    apply_reset(ctx, &user, row, &new_password).await
}

/// `GET /verify-email?token=…`: JSON, or a redirect to `signup.verified_redirect`.
pub(crate) async fn verify_link(ctx: &Ctx<'_>) -> AuthResult<Outcome> {
    let redirect = ctx.cfg().signup.verified_redirect.clone();
    let result = verify_link_inner(ctx).await;
    if redirect.is_empty() {
        return result.map(|_| Outcome::Json(200, json!({"success": true})));
    }
    let sep = if redirect.contains('?') { '&' } else { '?' };
    Ok(Outcome::Redirect(match result {
        Ok(()) => format!("{redirect}{sep}verified=true"),
        Err(e) if e.status() >= 500 => return Err(e),
        Err(e) => format!("{redirect}{sep}verified=false&error={}", e.code()),
    }))
}

async fn verify_link_inner(ctx: &Ctx<'_>) -> AuthResult<()> {
    let token = ctx
        .req
        .query_param("token")
        .filter(|t| !t.is_empty() && t.len() <= 512);
    let token = token.ok_or_else(|| AuthError::field("token", "is required"))?;
    let hash = ctx
        .inner
        .keys
        .hash_code("link", "verify_email_link", &token);
    transaction!(ctx, |tx| {
        let row = store::verification::by_hash(tx, "verify_email_link", &hash, true)
            .await?
            .filter(|t| t.used_at.is_none())
            .ok_or(AuthError::VerifyCodeInvalid {
                attempts_remaining: None,
            })?;
        if row.expires_at <= ctx.now {
            return Err(AuthError::VerifyCodeExpired);
        }
        store::verification::mark_used(tx, &row.id, ctx.now).await?;
        let patch = UserPatch {
            is_email_verified: Some(true),
            updated_at: Some(ctx.now),
            ..Default::default()
        };
        store::users::update(tx, &row.user_id, patch).await?;
        let details = json!({"via": "link"});
        ctx.audit_in(tx, Some(&row.user_id), Event::EmailVerified, details)
            .await;
        Ok(())
    })?;
    Ok(())
}
