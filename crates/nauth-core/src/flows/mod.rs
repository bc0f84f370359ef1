//! The flows: each a function over a [`Ctx`] and the parsed input, returning an [`Outcome`]
//! that `routes` renders per the delivery mode. Helpers shared by several flows live here.

pub(crate) mod account;
pub(crate) mod auth;
pub(crate) mod budget;
pub(crate) mod mfa;
pub(crate) mod recovery;
pub(crate) mod session;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

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
use crate::error::{AuthError, AuthResult};
use crate::events::Origin;
use crate::guard::Principal;
use crate::http::Request;
use crate::input::Identifier;
use crate::notify::EmailMessage;
use crate::store::entities::{password_history, refresh_tokens, sessions, users};

/// Everything a flow needs about the request in hand.
pub(crate) struct Ctx<'a> {
    pub inner: &'a Inner,
    /// The engine itself, for work that goes on after the answer (see [`Ctx::detach`]).
    pub shared: &'a Arc<Inner>,
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
    /// Code messages sent inside a transaction, counted toward the hourly caps after it (a
    /// second write transaction inside the first would wait on itself under SQLite); the
    /// transaction checked the caps and serialised on the user's row.
    pub counted: Mutex<Vec<Sent>>,
    /// kv entries read before a transaction for the checks made inside it
    /// ([`budget::prefetch`]): a second connection taken inside an open SQLite write
    /// transaction can starve the pool under a burst.
    pub kv_seen: Mutex<std::collections::HashMap<String, Option<crate::kv::Entry>>>,
    /// Audit rows written once the flow has finished (a write inside an open SQLite
    /// transaction would wait on that transaction).
    pub audits: Mutex<Vec<QueuedAudit>>,
}

impl<'a> Ctx<'a> {
    /// The context of one request.
    pub fn new(
        shared: &'a Arc<Inner>,
        req: &'a Request,
        now: i64,
        ip: Option<IpAddr>,
        principal: Option<Principal>,
    ) -> Self {
        Ctx {
            inner: shared,
            shared,
            req,
            now,
            ip,
            origin: Origin {
                ip: ip.map(|i| i.to_string()),
                user_agent: req
                    .header("user-agent")
                    .map(|u| u.chars().take(255).collect()),
            },
            principal,
            outbox: Default::default(),
            sms_outbox: Default::default(),
            counted: Default::default(),
            kv_seen: Default::default(),
            audits: Default::default(),
        }
    }

    /// Runs `work` after the answer, on its own task with a context of its own (same clock
    /// reading, client and request), then writes its audit rows and sends its messages. For
    /// work whose duration must not show in the answer's timing.
    pub fn detach<F>(&self, work: F)
    where
        F: for<'c> FnOnce(
                &'c Ctx<'c>,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = AuthResult<()>> + Send + 'c>,
            > + Send
            + 'static,
    {
        let shared = self.shared.clone();
        let req = self.req.clone();
        let (now, ip) = (self.now, self.ip);
        tokio::spawn(async move {
            // Start once the answer is on its way: work that shares the CPU and the database
            // with the request in hand would show in its timing.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            let ctx = Ctx::new(&shared, &req, now, ip, None);
            if let Err(e) = work(&ctx).await {
                tracing::warn!(error = %e, "background work of a request failed");
            }
            crate::routes::write_audits(&ctx).await;
            crate::routes::send_messages(&ctx).await;
        });
    }

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

    /// Counts a message sent inside a transaction once the flow has succeeded.
    pub fn count_later(&self, address: &str, sms: bool, user_id: Option<&str>) {
        if let Ok(mut c) = self.counted.lock() {
            c.push(Sent {
                address: address.to_string(),
                sms,
                user_id: user_id.map(str::to_string),
            });
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

/// An audit row queued by a flow: user, event, success, details.
pub(crate) type QueuedAudit = (Option<String>, crate::events::Event, bool, Value);

/// A code message sent inside a transaction, to be counted after it.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub address: String,
    pub sms: bool,
    pub user_id: Option<String>,
}

/// The body of a challenge-or-tokens answer (docs/api.md §2).
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
    let mut q = users::Entity::find().filter(col.eq(id.as_str()));
    if matches!(id, Identifier::Phone(_)) {
        // Only a verified phone names an account (docs/api.md §1): an unverified one is anyone's
        // claim, and must never become a login name or a reset channel.
        q = q.filter(users::Column::IsPhoneVerified.eq(true));
    }
    Ok(q.one(db).await?)
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

/// Counts a code message to an address (SMS: also per user and client IP) before sending;
/// past a cap `429 RATE_LIMIT_EMAIL` / `RATE_LIMIT_SMS`.
pub(crate) async fn count_code_message(
    ctx: &Ctx<'_>,
    address: &str,
    sms: bool,
    user_id: Option<&str>,
) -> AuthResult<()> {
    budget::spend_message(ctx, address, sms, user_id).await
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

/// Verifies the password of an authenticated user. The attempt is reserved first and a
/// wrong one counts toward the account's lockout, like a failed login.
pub(crate) async fn confirm_password(
    ctx: &Ctx<'_>,
    user: &users::Model,
    password: &str,
) -> AuthResult<()> {
    let attempt = budget::reserve(ctx, budget::Budget::Password, Some(&user.id), "").await?;
    let ok = ctx.inner.hasher.verify(password, &user.password_hash).await;
    attempt.settle(ctx, &ok).await?;
    if ok? {
        Ok(())
    } else {
        crate::events::audit(
            ctx.inner,
            Some(&user.id),
            crate::events::Event::LoginFailed,
            false,
            &ctx.origin,
            json!({"reason": "password_confirmation"}),
        )
        .await;
        Err(AuthError::PasswordIncorrect)
    }
}

/// Revokes every trusted device of a user (or the one whose token is given); returns how many.
pub(crate) async fn forget_devices(
    db: &impl ConnectionTrait,
    user_id: &str,
    token: Option<&str>,
) -> AuthResult<u64> {
    use crate::store::entities::trusted_devices as td;
    let mut q = td::Entity::delete_many().filter(td::Column::UserId.eq(user_id));
    if let Some(t) = token {
        q = q.filter(td::Column::TokenHash.eq(codes::sha256_hex(t)));
    }
    Ok(q.exec(db).await?.rows_affected)
}
