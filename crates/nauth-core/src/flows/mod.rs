//! The flows: each a function over a [`Ctx`] and the parsed input, returning an [`Outcome`]
//! that `routes` renders per the delivery mode. Helpers shared by several flows live here.

pub(crate) mod account;
pub(crate) mod auth;
pub(crate) mod mfa;
pub(crate) mod recovery;
pub(crate) mod session;

use std::net::IpAddr;
use std::sync::Mutex;

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::Expr,
};
use serde_json::{Map, Value, json};

use crate::Inner;
use crate::challenge::ChallengeName;
use crate::clock::iso8601;
use crate::codes;
use crate::delivery::IssuedTokens;
use crate::error::{AuthError, AuthResult, RateLimit};
use crate::events::Origin;
use crate::guard::Principal;
use crate::http::Request;
use crate::input::Identifier;
use crate::notify::EmailMessage;
use crate::store::entities::{password_history, refresh_tokens, sessions, users};

/// Everything a flow needs about the request in hand.
pub(crate) struct Ctx<'a> {
    pub inner: &'a Inner,
    pub req: &'a Request,
    pub now: i64,
    pub ip: Option<IpAddr>,
    pub origin: Origin,
    pub principal: Option<Principal>,
    /// Mails to send once the flow has succeeded (never on an error, so a rolled-back code
    /// is never mailed).
    pub outbox: Mutex<Vec<EmailMessage>>,
    /// Text messages, sent like `outbox`.
    pub sms_outbox: Mutex<Vec<crate::notify::SmsMessage>>,
    /// Code messages sent inside a transaction, counted toward the hourly cap after it (a
    /// second write transaction inside the first would wait on itself under SQLite).
    pub counted: Mutex<Vec<String>>,
    /// kv keys to delete once the flow has succeeded.
    pub cleared: Mutex<Vec<String>>,
    /// Audit rows written once the flow has finished (a write inside an open SQLite
    /// transaction would wait on that transaction).
    pub audits: Mutex<Vec<(Option<String>, crate::events::Event, bool, Value)>>,
}

impl Ctx<'_> {
    pub fn principal(&self) -> AuthResult<&Principal> {
        self.principal.as_ref().ok_or(AuthError::TokenMissing)
    }

    pub fn queue_mail(&self, to: &str, subject: &str, text: String) {
        if let Ok(mut o) = self.outbox.lock() {
            o.push(EmailMessage {
                to: to.into(),
                subject: subject.into(),
                text,
            });
        }
    }

    pub fn queue_sms(&self, to: &str, text: String) {
        if let Ok(mut o) = self.sms_outbox.lock() {
            o.push(crate::notify::SmsMessage {
                to: to.into(),
                text,
            });
        }
    }

    /// A successful second factor clears the MFA failure counter (after the transaction).
    pub fn clear_mfa_failures_later(&self, user_id: &str) {
        if let Ok(mut c) = self.cleared.lock() {
            c.push(format!("mfafail:{user_id}"));
        }
    }

    pub fn count_later(&self, address: &str) {
        if let Ok(mut c) = self.counted.lock() {
            c.push(address.to_string());
        }
    }

    pub fn audit_later(
        &self,
        user: Option<&str>,
        event: crate::events::Event,
        success: bool,
        details: Value,
    ) {
        if let Ok(mut a) = self.audits.lock() {
            a.push((user.map(str::to_string), event, success, details));
        }
    }

    pub fn now_s(&self) -> i64 {
        self.now / 1000
    }

    pub fn cfg(&self) -> &crate::NAuthConfig {
        &self.inner.cfg
    }
}

/// The body of a challenge-or-tokens answer (API.md §2).
pub(crate) enum AuthOutcome {
    Challenge {
        name: ChallengeName,
        session: String,
        params: Map<String, Value>,
        user_sub: String,
    },
    Tokens {
        tokens: IssuedTokens,
        auth_method: String,
        user: Value,
        /// MFA was skipped for a trusted device.
        trusted: bool,
        /// Shown once, when this answer completed MFA_SETUP_REQUIRED.
        backup_codes: Option<Vec<String>>,
        /// A new trusted-device token (`remember_devices = "always"`).
        device_token: Option<String>,
    },
}

/// What a flow answers; `routes` turns it into a reply.
pub(crate) enum Outcome {
    /// A plain JSON body.
    Json(u16, Value),
    /// A challenge or tokens.
    Auth(u16, AuthOutcome),
    /// A JSON body plus a fresh token pair for the current session (change-password).
    JsonWithTokens(Value, IssuedTokens),
    /// A JSON body; cookie-delivery requests also get their cookies cleared.
    JsonClearing { body: Value, device: bool },
    /// A `302` to this location.
    Redirect(String),
    /// A new trusted-device token: in the body (json) or the device cookie.
    DeviceToken(String),
}

/// The user object of a tokens response.
pub(crate) fn user_json(u: &users::Model) -> Value {
    json!({
        "sub": u.id, "email": u.email, "username": u.username,
        "firstName": u.first_name, "lastName": u.last_name, "phone": u.phone,
        "isEmailVerified": u.is_email_verified, "isPhoneVerified": u.is_phone_verified,
        "roles": roles(u),
    })
}

/// The profile object of `/profile`.
pub(crate) fn profile_json(u: &users::Model) -> Value {
    let mut v = user_json(u);
    if let Some(m) = v.as_object_mut() {
        m.insert("mfaEnabled".into(), json!(u.mfa_enabled));
        m.insert("createdAt".into(), json!(iso8601(u.created_at)));
        m.insert("updatedAt".into(), json!(iso8601(u.updated_at)));
        if let Some(meta) = u
            .metadata
            .as_deref()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
        {
            m.insert("metadata".into(), meta);
        }
    }
    v
}

pub(crate) fn roles(u: &users::Model) -> Vec<String> {
    u.roles
        .split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

pub(crate) async fn find_user(
    db: &impl ConnectionTrait,
    id: &Identifier,
) -> AuthResult<Option<users::Model>> {
    let col = match id {
        Identifier::Email(_) => users::Column::Email,
        Identifier::Phone(_) => users::Column::Phone,
        Identifier::Username(_) => users::Column::Username,
    };
    Ok(users::Entity::find()
        .filter(col.eq(id.as_str()))
        .one(db)
        .await?)
}

pub(crate) async fn user_by_id(db: &impl ConnectionTrait, id: &str) -> AuthResult<users::Model> {
    users::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .ok_or(AuthError::SessionNotFound)
}

/// Seconds until `until_ms`, at least 1 (for `Retry-After`).
pub(crate) fn retry_after(until_ms: i64, now: i64) -> u64 {
    ((until_ms - now).max(0) as u64).div_ceil(1000).max(1)
}

/// Counts a code message to an address; more than 10 an hour is refused.
pub(crate) async fn count_code_message(ctx: &Ctx<'_>, address: &str, sms: bool) -> AuthResult<()> {
    let key = format!("msg:{address}");
    let e = ctx.inner.kv.incr(&key, 3_600_000, ctx.now).await?;
    if e.value > 10 {
        let limit = if sms {
            RateLimit::Sms
        } else {
            RateLimit::Email
        };
        return Err(AuthError::RateLimited {
            limit,
            retry_after: retry_after(e.expires_at, ctx.now),
        });
    }
    Ok(())
}

/// The link to a path with a token, when `base_url` is set.
pub(crate) fn link(ctx: &Ctx<'_>, path: &str, token: &str) -> Option<String> {
    let base = &ctx.cfg().base_url;
    (!base.is_empty()).then(|| format!("{base}{path}?token={}", crate::http::percent_encode(token)))
}

/// Creates a session and its first refresh token; returns the token pair.
pub(crate) async fn create_session(
    ctx: &Ctx<'_>,
    db: &impl ConnectionTrait,
    user: &users::Model,
    auth_method: &str,
    device: &Device,
) -> AuthResult<IssuedTokens> {
    let cfg = ctx.cfg();
    let session_id = uuid::Uuid::new_v4().to_string();
    let refresh = codes::random_token();
    let jti = uuid::Uuid::new_v4().to_string();
    let absolute = ctx.now + crate::clock::ms(cfg.refresh.absolute_lifetime);
    let expires = (ctx.now + crate::clock::ms(cfg.refresh.ttl)).min(absolute);
    sessions::Entity::insert(sessions::ActiveModel {
        id: Set(session_id.clone()),
        user_id: Set(user.id.clone()),
        auth_method: Set(auth_method.to_string()),
        device_name: Set(device.name.clone()),
        device_type: Set(device.kind.clone()),
        ip_address: Set(device.ip.clone()),
        user_agent: Set(device.user_agent.clone()),
        access_jti: Set(jti.clone()),
        created_at: Set(ctx.now),
        last_activity_at: Set(ctx.now),
        expires_at: Set(expires),
        absolute_expires_at: Set(absolute),
        revoked_at: Set(None),
    })
    .exec(db)
    .await?;
    refresh_tokens::Entity::insert(refresh_tokens::ActiveModel {
        token_hash: Set(codes::sha256_hex(&refresh)),
        session_id: Set(session_id.clone()),
        state: Set(refresh_tokens::CURRENT),
        created_at: Set(ctx.now),
        rotated_at: Set(None),
    })
    .exec(db)
    .await?;
    mint(ctx, user, &session_id, jti, refresh, expires, auth_method)
}

/// Signs an access token for a session and packs the pair.
pub(crate) fn mint(
    ctx: &Ctx<'_>,
    user: &users::Model,
    session_id: &str,
    jti: String,
    refresh: String,
    refresh_expires_ms: i64,
    auth_method: &str,
) -> AuthResult<IssuedTokens> {
    let inner = ctx.inner;
    let iat = ctx.now_s();
    let exp = iat + crate::clock::ms(inner.cfg.jwt.access_ttl) / 1000;
    let claims = crate::tokens::Claims {
        sub: user.id.clone(),
        sid: session_id.to_string(),
        jti,
        roles: roles(user),
        iat,
        exp,
        iss: inner.signer.issuer().to_string(),
        aud: inner.signer.audience().to_string(),
        token_type: "access".into(),
        amr: Some(auth_method.to_string()),
    };
    Ok(IssuedTokens {
        access_token: inner.signer.sign(&claims)?,
        refresh_token: refresh,
        access_expires_at: exp,
        refresh_expires_at: refresh_expires_ms / 1000,
        session_id: session_id.to_string(),
        csrf_token: inner.keys.csrf_token(session_id),
    })
}

/// Where a session comes from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Device {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Revokes the user's live sessions, except one; returns how many.
pub(crate) async fn revoke_sessions(
    db: &impl ConnectionTrait,
    user_id: &str,
    except: Option<&str>,
    now: i64,
) -> AuthResult<u64> {
    let mut q = sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, Expr::value(now))
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::RevokedAt.is_null());
    if let Some(keep) = except {
        q = q.filter(sessions::Column::Id.ne(keep));
    }
    Ok(q.exec(db).await?.rows_affected)
}

/// Whether `candidate` matches the current hash or one of the last `history_count`.
pub(crate) async fn in_history(
    ctx: &Ctx<'_>,
    user: &users::Model,
    candidate: &str,
) -> AuthResult<bool> {
    let n = ctx.cfg().password.history_count;
    if n == 0 {
        return Ok(false);
    }
    if ctx
        .inner
        .hasher
        .verify(candidate, &user.password_hash)
        .await?
    {
        return Ok(true);
    }
    let old = password_history::Entity::find()
        .filter(password_history::Column::UserId.eq(&user.id))
        .order_by_desc(password_history::Column::CreatedAt)
        .limit(u64::from(n.saturating_sub(1)))
        .all(&ctx.inner.store.db)
        .await?;
    for h in old {
        if ctx.inner.hasher.verify(candidate, &h.password_hash).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Stores a new password hash and keeps the old one in the history.
pub(crate) async fn set_password(
    ctx: &Ctx<'_>,
    db: &impl ConnectionTrait,
    user: &users::Model,
    new_hash: String,
) -> AuthResult<()> {
    if ctx.cfg().password.history_count > 0 {
        password_history::Entity::insert(password_history::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            user_id: Set(user.id.clone()),
            password_hash: Set(user.password_hash.clone()),
            created_at: Set(ctx.now),
        })
        .exec(db)
        .await?;
    }
    users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(new_hash))
        .col_expr(users::Column::PasswordChangedAt, Expr::value(ctx.now))
        .col_expr(users::Column::MustChangePassword, Expr::value(false))
        .col_expr(users::Column::UpdatedAt, Expr::value(ctx.now))
        .filter(users::Column::Id.eq(&user.id))
        .exec(db)
        .await?;
    Ok(())
}

/// Policy, then history: the checks every new password goes through.
pub(crate) async fn check_new_password(
    ctx: &Ctx<'_>,
    user: Option<&users::Model>,
    email_hint: Option<&str>,
    candidate: &str,
) -> AuthResult<()> {
    let email = user.map(|u| u.email.as_str()).or(email_hint);
    crate::password::check_policy(candidate, email, &ctx.cfg().password)?;
    if let Some(u) = user
        && in_history(ctx, u, candidate).await?
    {
        return Err(AuthError::PasswordReused);
    }
    Ok(())
}

/// Lockout keys: the account's when the identifier names one, else the identifier's.
pub(crate) fn lock_subject(user: Option<&users::Model>, ident: &str) -> String {
    match user {
        Some(u) => format!("acct:{}", u.id),
        None => format!("ident:{ident}"),
    }
}

/// `429 RATE_LIMIT_LOGIN` while the subject or the client IP is locked.
/// Returns whether the subject has a failure count to clear on success (read in the same
/// round trip as the locks).
pub(crate) async fn check_locked(ctx: &Ctx<'_>, subject: &str) -> AuthResult<bool> {
    if !ctx.cfg().lockout.enabled {
        return Ok(false);
    }
    let mut keys = vec![format!("fail:{subject}"), format!("lock:{subject}")];
    if let Some(ip) = ctx.ip {
        keys.push(format!("lock:ip:{ip}"));
    }
    let entries = ctx.inner.kv.get_many(&keys, ctx.now).await?;
    if let Some(e) = entries.iter().skip(1).flatten().next() {
        return Err(AuthError::RateLimited {
            limit: RateLimit::Login,
            retry_after: retry_after(e.expires_at, ctx.now),
        });
    }
    Ok(entries.first().is_some_and(Option::is_some))
}

/// Counts a failed login (or wrong password on an authenticated request); locks at the limit.
pub(crate) async fn record_failure(
    ctx: &Ctx<'_>,
    subject: &str,
    user_id: Option<&str>,
) -> AuthResult<()> {
    let lo = &ctx.cfg().lockout;
    if !lo.enabled {
        return Ok(());
    }
    let window = crate::clock::ms(lo.window);
    let until = ctx.now + crate::clock::ms(lo.duration);
    let e = ctx
        .inner
        .kv
        .incr(&format!("fail:{subject}"), window, ctx.now)
        .await?;
    if e.value >= i64::from(lo.max_attempts) {
        ctx.inner
            .kv
            .set(&format!("lock:{subject}"), 1, until)
            .await?;
        ctx.inner.kv.del(&format!("fail:{subject}")).await?;
        crate::events::audit(
            ctx.inner,
            user_id,
            crate::events::Event::LoginLocked,
            false,
            &ctx.origin,
            json!({"scope": "identifier"}),
        )
        .await;
    }
    if let Some(ip) = ctx.ip {
        let e = ctx
            .inner
            .kv
            .incr(&format!("fail:ip:{ip}"), window, ctx.now)
            .await?;
        if e.value >= i64::from(lo.ip_max_attempts) {
            ctx.inner.kv.set(&format!("lock:ip:{ip}"), 1, until).await?;
            ctx.inner.kv.del(&format!("fail:ip:{ip}")).await?;
        }
    }
    Ok(())
}

/// Counts a wrong second factor; at `lockout.max_attempts` within the window the account is
/// locked as for failed logins.
pub(crate) async fn record_mfa_failure(ctx: &Ctx<'_>, user_id: &str) -> AuthResult<()> {
    let lo = &ctx.cfg().lockout;
    if !lo.enabled {
        return Ok(());
    }
    let e = ctx
        .inner
        .kv
        .incr(
            &format!("mfafail:{user_id}"),
            crate::clock::ms(lo.window),
            ctx.now,
        )
        .await?;
    if e.value >= i64::from(lo.max_attempts) {
        let until = ctx.now + crate::clock::ms(lo.duration);
        ctx.inner
            .kv
            .set(&format!("lock:acct:{user_id}"), 1, until)
            .await?;
        ctx.inner.kv.del(&format!("mfafail:{user_id}")).await?;
        crate::events::audit(
            ctx.inner,
            Some(user_id),
            crate::events::Event::LoginLocked,
            false,
            &ctx.origin,
            json!({"scope": "mfa"}),
        )
        .await;
    }
    Ok(())
}

/// Clears an account's failure counter and lock.
pub(crate) async fn clear_lockout(ctx: &Ctx<'_>, user_id: &str) -> AuthResult<()> {
    ctx.inner.kv.del(&format!("fail:acct:{user_id}")).await?;
    ctx.inner.kv.del(&format!("lock:acct:{user_id}")).await
}

/// Verifies the password of an authenticated user; a wrong one counts toward lockout.
pub(crate) async fn confirm_password(
    ctx: &Ctx<'_>,
    user: &users::Model,
    password: &str,
) -> AuthResult<()> {
    let subject = lock_subject(Some(user), "");
    let _ = check_locked(ctx, &subject).await?;
    if ctx
        .inner
        .hasher
        .verify(password, &user.password_hash)
        .await?
    {
        Ok(())
    } else {
        record_failure(ctx, &subject, Some(&user.id)).await?;
        Err(AuthError::PasswordIncorrect)
    }
}
