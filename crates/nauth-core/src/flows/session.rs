//! Sessions: refresh-token rotation with reuse detection, logout, revocation and the
//! session list.

use serde_json::{Value, json};

use super::{AuthOutcome, Ctx, Outcome};
use crate::clock::iso8601;
use crate::codes;
use crate::error::{AuthError, AuthResult};
use crate::events::Event;
use crate::input::Input;
use crate::store::sessions::{self as sessions, RefreshState};
use crate::store::{Session, User};

/// The refresh token a request presents: the body's, else (outside json mode) the cookie. A
/// refresh cookie sent twice (cookie tossing from a sibling domain) is `401 AUTH_TOKEN_INVALID`.
fn presented_refresh(ctx: &Ctx<'_>, input: &mut Input) -> AuthResult<Option<String>> {
    let body = input.text("refreshToken", 512).filter(|t| !t.is_empty());
    if body.is_some() || ctx.cfg().token_delivery.mode == crate::config::DeliveryMode::Json {
        return Ok(body);
    }
    refresh_cookie(ctx)
}

/// The refresh cookie, refusing a duplicated one.
fn refresh_cookie(ctx: &Ctx<'_>) -> AuthResult<Option<String>> {
    Ok(ctx
        .req
        .unique_cookie(&ctx.inner.cookies.refresh)
        .map_err(|_| AuthError::TokenInvalid)?
        .filter(|t| !t.is_empty())
        .map(str::to_string))
}

/// `POST /refresh`: rotates the pair atomically (docs/api.md §5).
pub(crate) async fn refresh(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let token = presented_refresh(ctx, &mut input);
    input.finish()?;
    let token = token?;
    let token = token.ok_or(AuthError::TokenMissing)?;
    let hash = codes::sha256_hex(&token);
    let store = &ctx.inner.store;
    // Cheap rejection of unknown tokens before taking a write transaction.
    let family = sessions::refresh_token(store, &hash)
        .await?
        .ok_or(AuthError::TokenInvalid)?
        .session_id;
    let rotated = transaction!(ctx, |tx| {
        // Locking the session row first serialises every exchange of one family; the
        // token is read after the lock (on MySQL the snapshot starts at that read), so it
        // is never a state an earlier exchange already changed.
        let session = sessions::get(tx, &family, true)
            .await?
            .filter(|s| s.revoked_at.is_none())
            .ok_or(AuthError::TokenInvalid)?;
        let row = sessions::refresh_token(tx, &hash)
            .await?
            .ok_or(AuthError::TokenInvalid)?;
        if session.absolute_expires_at <= ctx.now || session.expires_at <= ctx.now {
            return Err(AuthError::SessionExpired);
        }
        let reuse_ms = crate::clock::ms(ctx.cfg().refresh.reuse_interval);
        match RefreshState::of(&row) {
            Some(RefreshState::Current) => sessions::mark_rotated(tx, &hash, ctx.now).await?,
            Some(RefreshState::Rotated)
                if row.rotated_at.is_some_and(|t| ctx.now - t <= reuse_ms) =>
            {
                // A benign race (two tabs): the pair from the earlier exchange stops working.
                sessions::discard_current(tx, &session.id).await?;
            }
            Some(RefreshState::Rotated) => {
                // Reuse: the whole family ends, and that commits although the answer is
                // an error.
                sessions::revoke(tx, &session.id, ctx.now).await?;
                return Ok(Err(session));
            }
            _ => return Err(AuthError::TokenInvalid),
        }
        let user = super::named_user(tx, &session.user_id, AuthError::TokenInvalid).await?;
        if user.disabled {
            return Err(AuthError::AccountLocked);
        }
        let new_refresh = codes::random_token();
        sessions::add_refresh(tx, &session.id, codes::sha256_hex(&new_refresh), ctx.now).await?;
        let jti = uuid::Uuid::new_v4().to_string();
        let expires =
            (ctx.now + crate::clock::ms(ctx.cfg().refresh.ttl)).min(session.absolute_expires_at);
        sessions::rotate(tx, &session.id, &jti, expires, ctx.now).await?;
        let tokens = super::mint(
            ctx,
            &user,
            &session.id,
            jti,
            new_refresh,
            expires,
            &session.auth_method,
        )?;
        Ok(Ok((session, user, tokens)))
    })?;
    let (session, user, tokens): (Session, User, _) = match rotated {
        Ok(r) => r,
        Err(session) => {
            tracing::warn!(session = %session.id, "refresh token reuse detected; session revoked");
            ctx.audit_later(
                Some(&session.user_id),
                Event::SuspiciousActivity,
                false,
                json!({"reason": "refresh_token_reuse", "sessionId": session.id}),
            );
            return Err(AuthError::TokenReuseDetected);
        }
    };
    Ok(Outcome::Auth(
        200,
        AuthOutcome::Tokens {
            tokens,
            auth_method: session.auth_method,
            user: super::user_json(&user),
            trusted: false,
            backup_codes: None,
            device_token: None,
        },
    ))
}

async fn revoke_session(ctx: &Ctx<'_>, session_id: &str) -> AuthResult<bool> {
    Ok(sessions::revoke(&ctx.inner.store, session_id, ctx.now).await?)
}

async fn session_of_refresh(ctx: &Ctx<'_>, token: &str) -> AuthResult<Option<Session>> {
    let store = &ctx.inner.store;
    let Some(row) = sessions::refresh_token(store, &codes::sha256_hex(token)).await? else {
        return Ok(None);
    };
    Ok(sessions::get(store, &row.session_id, false).await?)
}

/// `POST /logout`: revokes this session; idempotent.
pub(crate) async fn logout(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let refresh = input.text("refreshToken", 512);
    let forget = input.bool("forgetDevice").unwrap_or(false);
    input.finish()?;
    let now_s = ctx.now_s();
    // An access token identifies the session even when it is already revoked (idempotence).
    let sid_user = match crate::guard::access_token(ctx.inner, ctx.req) {
        Ok((token, _)) => match crate::signing_keys::verify(ctx.inner, token, now_s).await {
            Ok(c) => Some((c.sid, c.sub)),
            Err(AuthError::TokenExpired) => None,
            Err(e) => return Err(e),
        },
        Err(AuthError::TokenMissing) => None,
        Err(e) => return Err(e),
    };
    let sid_user = match sid_user {
        Some(s) => Some(s),
        None => {
            let token = match refresh {
                Some(t) => Some(t),
                None => refresh_cookie(ctx)?,
            };
            match token.filter(|t| !t.is_empty()) {
                Some(t) => session_of_refresh(ctx, &t)
                    .await?
                    .map(|s| (s.id, s.user_id)),
                None if ctx.req.cookie(&ctx.inner.cookies.access).is_some()
                    || ctx.req.bearer().is_some() =>
                {
                    None
                }
                None => return Err(AuthError::TokenMissing),
            }
        }
    };
    if let Some((sid, uid)) = &sid_user
        && revoke_session(ctx, sid).await?
    {
        ctx.audit_later(Some(uid), Event::Logout, true, json!({"sessionId": sid}));
    }
    // `forgetDevice`: the trusted device this request presents ends on the server too, not
    // only its cookie.
    if forget
        && let Some((_, uid)) = &sid_user
        && let Some(token) = super::mfa::presented_device_token(ctx)
        && super::forget_devices(&ctx.inner.store, uid, Some(token)).await? > 0
    {
        ctx.audit_later(Some(uid), Event::DeviceUntrusted, true, json!({"count": 1}));
    }
    Ok(Outcome::JsonClearing {
        body: json!({"success": true}),
        device: forget,
    })
}

/// `POST /logout-all`: every session of the user, the current one included.
pub(crate) async fn logout_all(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let forget = input.bool("forgetDevices").unwrap_or(false);
    input.finish()?;
    let p = ctx.principal()?;
    let (n, forgotten) = transaction!(ctx, |tx| {
        let n = super::revoke_sessions(tx, &p.sub, None, ctx.now).await?;
        let forgotten = if forget {
            super::forget_devices(tx, &p.sub, None).await?
        } else {
            0
        };
        let details = json!({"revokedCount": n});
        ctx.audit_in(tx, Some(&p.sub), Event::SessionRevoked, details)
            .await;
        Ok((n, forgotten))
    })?;
    if forgotten > 0 {
        ctx.audit_later(
            Some(&p.sub),
            Event::DeviceUntrusted,
            true,
            json!({"count": forgotten}),
        );
    }
    Ok(Outcome::JsonClearing {
        body: json!({"revokedCount": n}),
        device: forget,
    })
}

/// `POST /revoke`: revokes the token's whole family; always succeeds (RFC 7009).
pub(crate) async fn revoke(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let token = input.text_req("refreshToken", 512);
    input.finish()?;
    if let Some(s) = session_of_refresh(ctx, &token).await?
        && revoke_session(ctx, &s.id).await?
    {
        ctx.audit_later(
            Some(&s.user_id),
            Event::SessionRevoked,
            true,
            json!({"sessionId": s.id}),
        );
    }
    Ok(Outcome::Json(200, json!({"success": true})))
}

/// One session of `GET /sessions`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Session)]
pub(crate) struct SessionBody {
    session_id: String,
    device_name: Option<String>,
    device_type: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    auth_method: String,
    created_at: String,
    last_activity_at: String,
    expires_at: String,
    is_current: bool,
}

/// The body of `GET /sessions`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = SessionList)]
pub(crate) struct SessionList {
    sessions: Vec<SessionBody>,
}

/// `GET /sessions`.
pub(crate) async fn list(ctx: &Ctx<'_>) -> AuthResult<Outcome> {
    let p = ctx.principal()?;
    let rows = sessions::list_live(&ctx.inner.store, &p.sub, ctx.now).await?;
    Ok(Outcome::Json(200, sessions_json(rows, &p.session_id)))
}

/// `{ "sessions": [...] }` of live sessions; `current` marks the caller's own.
pub(crate) fn sessions_json(rows: Vec<Session>, current: &str) -> Value {
    let sessions = rows
        .into_iter()
        .map(|s| SessionBody {
            is_current: s.id == current,
            session_id: s.id,
            device_name: s.device_name,
            device_type: s.device_type,
            ip_address: s.ip_address,
            user_agent: s.user_agent,
            auth_method: s.auth_method,
            created_at: iso8601(s.created_at),
            last_activity_at: iso8601(s.last_activity_at),
            expires_at: iso8601(s.expires_at),
        })
        .collect();
    super::body(&SessionList { sessions })
}

/// `DELETE /sessions/{id}`: only the caller's own sessions; others are `404`.
pub(crate) async fn delete(ctx: &Ctx<'_>, id: &str) -> AuthResult<Outcome> {
    let p = ctx.principal()?;
    let s = sessions::get(&ctx.inner.store, id, false)
        .await?
        .filter(|s| s.user_id == p.sub && s.revoked_at.is_none())
        .ok_or(AuthError::NotFound)?;
    revoke_session(ctx, &s.id).await?;
    ctx.audit_later(
        Some(&p.sub),
        Event::SessionRevoked,
        true,
        json!({"sessionId": s.id}),
    );
    let current = s.id == p.session_id;
    let body = json!({"success": true, "wasCurrentSession": current});
    Ok(if current {
        Outcome::JsonClearing {
            body,
            device: false,
        }
    } else {
        Outcome::Json(200, body)
    })
}
