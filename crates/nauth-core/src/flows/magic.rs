//! Magic links (docs/api.md §3.3): `POST /magic-link` mails a one-time link (15 minutes by
//! default) and answers the same for every address; `GET /magic-link/verify?token=…` spends it
//! and runs the state machine like a login (the click proves the address, so VERIFY_EMAIL is
//! satisfied; MFA still applies). Off unless `[magic_link] enabled = true`.

use serde_json::json;

use super::auth::{Carry, device_from, next};
use super::budget::KvKey;
use super::{AuthOutcome, Ctx, Outcome};
use crate::codes;
use crate::error::{AuthError, AuthResult, RateLimit};
use crate::events::Event;
use crate::input::{Identifier, Input};
use crate::store::users::UserPatch;
use crate::store::{self, User, VerificationToken};

/// The verification-token purpose of a magic link.
const PURPOSE: &str = "magic_link";
/// Links mailed per account per hour; past it `/magic-link` stays silent.
const PER_ACCOUNT_PER_HOUR: i64 = 3;
const HOUR_MS: i64 = 3_600_000;

/// Whether `s` is a path on this site: it starts with one `/`, holds no backslash, control
/// character or space, and stays so once percent-decoded (twice), so neither `//evil.com`,
/// `/\evil.com`, `https://evil.com` nor their encoded forms get through.
pub(crate) fn is_local_path(s: &str) -> bool {
    fn plain(s: &str) -> bool {
        s.starts_with('/')
            && !s.starts_with("//")
            && !s.contains('\\')
            && !s.chars().any(char::is_control)
    }
    let Some(once) = crate::http::percent_decode(s) else {
        return false;
    };
    let Some(twice) = crate::http::percent_decode(&once) else {
        return false;
    };
    // Browsers drop tabs and newlines inside a URL, so the raw form holds no whitespace.
    !s.chars().any(char::is_whitespace) && plain(s) && plain(&once) && plain(&twice)
}

fn enabled(ctx: &Ctx<'_>) -> AuthResult<()> {
    if ctx.cfg().magic_link.enabled {
        Ok(())
    } else {
        Err(AuthError::NotFound)
    }
}

/// `POST /magic-link`: `email`, `redirectTo?`; `{ "success": true }` for every address.
pub(crate) async fn request(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    enabled(ctx)?;
    let email = input.email("email");
    let redirect = input.text("redirectTo", 512);
    if redirect.as_deref().is_some_and(|r| !is_local_path(r)) {
        input.error(
            "redirectTo",
            "must be a path on this site, such as /dashboard",
        );
    }
    input.finish()?;
    if let Some(ip) = ctx.ip {
        let key = KvKey::MagicIp(ip).to_string();
        let e = ctx.inner.kv.incr(&key, HOUR_MS, ctx.now).await?;
        if e.value > i64::from(ctx.cfg().magic_link.ip_max_per_hour) {
            return Err(AuthError::RateLimited {
                limit: RateLimit::Email,
                retry_after: super::retry_after(e.expires_at, ctx.now),
            });
        }
    }
    // Everything that depends on the address runs after the answer, on its own task: known
    // and unknown addresses answer alike, in the same time.
    ctx.detach(move |ctx| Box::pin(after_request(ctx, email, redirect)));
    Ok(Outcome::Json(200, json!({"success": true})))
}

async fn after_request(ctx: &Ctx<'_>, email: String, redirect: Option<String>) -> AuthResult<()> {
    let user = super::find_user(&ctx.inner.store, &Identifier::Email(email)).await?;
    match user {
        Some(user) if !user.disabled => send_link(ctx, user, redirect).await,
        _ => Ok(()),
    }
}

/// Issues a link (ending the account's earlier ones) and queues its mail; silent past the
/// account's hourly limit or the address's message cap.
async fn send_link(ctx: &Ctx<'_>, user: User, redirect: Option<String>) -> AuthResult<()> {
    let key = KvKey::MagicAccount(&user.id).to_string();
    let per_account = ctx.inner.kv.incr(&key, HOUR_MS, ctx.now).await?;
    if per_account.value > PER_ACCOUNT_PER_HOUR
        || super::count_code_message(ctx, &user.email, false, Some(&user.id))
            .await
            .is_err()
    {
        return Ok(());
    }
    let token = codes::random_token();
    let path = format!("{}/magic-link/verify", ctx.cfg().mount_prefix);
    let Some(link) = super::link(ctx, &path, &token) else {
        tracing::warn!("magic link not sent: base_url is not configured");
        return Ok(());
    };
    let ttl = ctx.cfg().magic_link.ttl;
    let row = VerificationToken {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        purpose: PURPOSE.to_string(),
        token_hash: ctx.inner.keys.hash_code("link", PURPOSE, &token),
        data: redirect,
        attempts: 0,
        created_at: ctx.now,
        expires_at: ctx.now + crate::clock::ms(ttl),
        used_at: None,
    };
    transaction!(ctx, |tx| {
        store::verification::end_purposes(tx, &user.id, &[PURPOSE], ctx.now).await?;
        store::verification::insert(tx, row.clone()).await?;
        Ok(())
    })?;
    let vars = crate::mail::Vars {
        link: Some(link),
        link_ttl: Some(ttl),
        ..Default::default()
    };
    ctx.queue_mail(&user.email, Some(&user), crate::mail::Kind::MagicLink, vars);
    Ok(())
}

/// `GET /magic-link/verify?token=…`: spends the link and runs the state machine; json
/// delivery answers the AuthResponse, cookie delivery sets the cookies and redirects to the
/// link's `redirectTo` (or `/`).
pub(crate) async fn verify(ctx: &Ctx<'_>) -> AuthResult<Outcome> {
    enabled(ctx)?;
    let token = ctx
        .req
        .query_param("token")
        .filter(|t| !t.is_empty() && t.len() <= 512)
        .ok_or_else(|| AuthError::field("token", "is required"))?;
    let hash = ctx.inner.keys.hash_code("link", PURPOSE, &token);
    let invalid = || AuthError::VerifyCodeInvalid {
        attempts_remaining: None,
    };
    let (outcome, redirect): (AuthOutcome, Option<String>) = transaction!(ctx, |tx| {
        let row = store::verification::by_hash(tx, PURPOSE, &hash, true)
            .await?
            .filter(|t| t.used_at.is_none())
            .ok_or_else(invalid)?;
        if row.expires_at <= ctx.now {
            return Err(AuthError::VerifyCodeExpired);
        }
        store::verification::mark_used(tx, &row.id, ctx.now).await?;
        let mut user = super::named_user(tx, &row.user_id, invalid()).await?;
        if user.disabled {
            return Err(AuthError::AccountLocked);
        }
        if !user.is_email_verified {
            let patch = UserPatch {
                is_email_verified: Some(true),
                updated_at: Some(ctx.now),
                ..Default::default()
            };
            store::users::update(tx, &user.id, patch).await?;
            user.is_email_verified = true;
            let details = json!({"via": "magic_link"});
            ctx.audit_in(tx, Some(&user.id), Event::EmailVerified, details)
                .await;
        }
        let carry = Carry {
            auth_method: "magic_link".into(),
            device: device_from(ctx, None, None),
            ..Default::default()
        };
        let outcome = next(ctx, tx, &user, carry).await?;
        let details = json!({"method": "magic_link"});
        ctx.audit_in(tx, Some(&user.id), Event::LoginSuccess, details)
            .await;
        Ok((outcome, row.data.clone()))
    })?;
    Ok(Outcome::AuthRedirect(
        outcome,
        redirect.unwrap_or_else(|| "/".into()),
    ))
}

#[cfg(test)]
mod tests {
    use super::is_local_path;

    #[test]
    fn only_paths_on_this_site_are_redirect_targets() {
        for ok in [
            "/",
            "/dashboard",
            "/a/b?x=1&next=/c",
            "/p%20q",
            "/search?q=a://b",
        ] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in [
            "",
            "dashboard",
            "//evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "https://evil.com",
            "javascript:alert(1)",
            "/%2F%2Fevil.com",
            "/%2fevil.com",
            "/%5Cevil.com",
            "/%252F%252Fevil.com",
            "/%09/evil.com",
            "/ x",
            "/\u{0}x",
            "/%ZZ",
        ] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
    }
}
