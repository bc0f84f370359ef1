//! The flows: each a function over a [`Ctx`] and the parsed input, returning an [`Outcome`]
//! that `routes` renders per the delivery mode. Helpers shared by several flows live here.

/// Runs a block as one write transaction and evaluates to its `AuthResult`:
/// `transaction!(ctx, |tx| { … Ok(v) })`. Inside, `tx` is the open [`Tx`] and `?` or `return`
/// leave the block (an `Err` rolls back). The store commits, invalidates the session cache
/// after a commit that wrote sessions, and asks for a rerun after a lost lock race; effects
/// queued by a rerun attempt are dropped first. A flow that must commit and still answer an
/// error returns `Ok(Err(e))`. (A macro rather than a closure: the block stays part of the
/// flow's own future, which must be `Send` for every framework.)
macro_rules! transaction {
    ($ctx:expr, |$tx:ident| $body:block) => {{
        let ctx: &$crate::flows::Ctx<'_> = $ctx;
        let mark = ctx.marks();
        let mut attempt = 0;
        loop {
            let tx = match ctx.inner.store.begin_write().await {
                Ok(tx) => tx,
                Err(e) => break Err(e),
            };
            let work: $crate::error::AuthResult<_> = {
                let $tx = &tx;
                async { $body }.await
            };
            match ctx.inner.store.end_write(tx, work, &mut attempt).await {
                $crate::store::Written::Done(result) => break result,
                $crate::store::Written::Again => ctx.rewind(mark),
            }
        }
    }};
}

pub(crate) mod account;
pub(crate) mod admin;
pub(crate) mod api_keys;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod budget;
pub(crate) mod effects;
pub(crate) mod magic;
pub(crate) mod mfa;
pub(crate) mod passkey_types;
#[cfg(feature = "passkeys")]
pub(crate) mod passkeys;
pub(crate) mod recovery;
pub(crate) mod session;
#[cfg(feature = "social")]
pub(crate) mod social;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

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
use crate::store::users::{Lookup, UserPatch};
use crate::store::{self, Conn, Session, User};
pub(crate) use effects::Effect;

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
    /// The operator acts (the command line or the app's own code through
    /// [`crate::NAuth::admin_call`]), not a client: admin actions need no fresh proof.
    pub operator: bool,
    /// What the flow leaves to do once it has answered ([`effects::run`]).
    pub effects: Mutex<Vec<Effect>>,
    /// kv entries read before a transaction for the checks made inside it
    /// ([`budget::prefetch`]): a second connection taken inside an open SQLite write
    /// transaction can starve the pool under a burst.
    pub kv_seen: Mutex<std::collections::HashMap<String, Option<crate::kv::Entry>>>,
}

impl<'a> Ctx<'a> {
    /// The context of one request.
    pub(crate) fn new(
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
            operator: false,
            effects: Default::default(),
            kv_seen: Default::default(),
        }
    }

    /// Runs `work` after the answer, on its own task with a context of its own (same clock
    /// reading, client and request), then writes its audit rows and sends its messages. For
    /// work whose duration must not show in the answer's timing.
    pub(crate) fn detach<F>(&self, work: F)
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
            let result = work(&ctx).await;
            if let Err(e) = &result {
                tracing::warn!(error = %e, "background work of a request failed");
            }
            effects::run(&ctx, result.is_ok()).await;
        });
    }

    /// How many effects are queued, to rewind to.
    pub(crate) fn marks(&self) -> usize {
        self.effects.lock().map(|v| v.len()).unwrap_or(0)
    }

    pub(crate) fn rewind(&self, mark: usize) {
        if let Ok(mut v) = self.effects.lock() {
            v.truncate(mark);
        }
    }

    /// Queues an effect.
    pub(crate) fn then(&self, effect: Effect) {
        if let Ok(mut v) = self.effects.lock() {
            v.push(effect);
        }
    }

    pub(crate) fn principal(&self) -> AuthResult<&Principal> {
        self.principal.as_ref().ok_or(AuthError::TokenMissing)
    }

    /// Renders a mail to `to` about `user`'s account in its language ([`Ctx::mail_locale`];
    /// the greeting uses the first name only when `to` is the user's verified email) and
    /// queues it, sent
    /// once the flow has succeeded. A mail that cannot be rendered is logged (by its template
    /// name) and not sent; the startup check of the templates makes that unexpected.
    pub(crate) fn queue_mail(
        &self,
        to: &str,
        user: Option<&User>,
        kind: crate::mail::Kind,
        mut vars: crate::mail::Vars,
    ) {
        // The first name is the account's own words: only a mail to the account's verified
        // address greets by it. A signup or an email change names an address its sender may
        // not own, and the name typed with it must not put their text in someone else's inbox.
        let owner = user.filter(|u| u.is_email_verified && u.email == to);
        vars.first_name = match owner {
            Some(u) => vars.first_name.or_else(|| u.first_name.clone()),
            None => None,
        };
        let locale = self.mail_locale(user);
        match self.inner.mail.render(kind, locale, to, &vars) {
            Ok(r) => self.then(Effect::Mail(EmailMessage {
                to: to.into(),
                subject: r.subject,
                text: r.text,
                html: Some(r.html),
            })),
            Err(e) => tracing::error!(
                template = kind.name(),
                locale = locale.as_str(),
                error = %e,
                "a mail could not be rendered and was not sent"
            ),
        }
    }

    /// The language of a mail about `user`'s account: the user's stored `locale`; else the
    /// request's `Accept-Language` when the request is the user's own or anonymous (an admin's
    /// or another user's browser language says nothing about the recipient); else
    /// `email.default_locale`.
    pub(crate) fn mail_locale(&self, user: Option<&User>) -> crate::config::Locale {
        if let Some(l) = user
            .and_then(|u| u.locale.as_deref())
            .and_then(crate::mail::locale_of_tag)
        {
            return l;
        }
        let default = self.inner.mail.default_locale();
        let foreign =
            self.operator || matches!((&self.principal, user), (Some(p), Some(u)) if p.sub != u.id);
        if foreign {
            return default;
        }
        // Several header lines are one list (RFC 9110 §5.3).
        let header: Vec<&str> = self.req.header_values("accept-language").collect();
        crate::mail::negotiate(&header.join(","), default).unwrap_or(default)
    }

    /// Queues the SMS that carries `code` to `user`'s phone `to`, in the language of the
    /// user's mails ([`Ctx::mail_locale`]), with the WebOTP line for `base_url`'s host.
    pub(crate) fn queue_code_sms(
        &self,
        to: &str,
        user: &User,
        sms: crate::mail::Sms,
        code: &str,
        ttl: std::time::Duration,
    ) {
        let locale = self.mail_locale(Some(user));
        let host = crate::http::url_host(&self.cfg().base_url);
        let text = self
            .inner
            .mail
            .sms_text(sms, locale, code, ttl, host.as_deref());
        self.queue_sms(to, text);
    }

    /// Queues a text message, sent once the flow has succeeded.
    pub(crate) fn queue_sms(&self, to: &str, text: String) {
        self.then(Effect::Sms(crate::notify::SmsMessage {
            to: to.into(),
            text,
        }));
    }

    /// Counts a message sent inside a transaction once the flow has succeeded.
    pub(crate) fn count_later(&self, address: &str, sms: bool, user_id: Option<&str>) {
        self.then(Effect::CountSent(Sent {
            address: address.to_string(),
            sms,
            user_id: user_id.map(str::to_string),
        }));
    }

    /// Writes the audit row of a change in the change's own transaction.
    pub(crate) async fn audit_in(
        &self,
        tx: &store::Tx,
        user: Option<&str>,
        event: crate::events::Event,
        details: Value,
    ) {
        crate::events::audit_in(tx, self.inner, user, event, true, &self.origin, details).await;
    }

    /// Queues an audit row outside any transaction (a refusal, or a change without one),
    /// written after the flow whether it succeeded or not.
    pub(crate) fn audit_later(
        &self,
        user: Option<&str>,
        event: crate::events::Event,
        success: bool,
        details: Value,
    ) {
        self.then(Effect::Audit {
            user: user.map(str::to_string),
            event,
            success,
            details,
        });
    }

    pub(crate) fn now_s(&self) -> i64 {
        self.now / 1000
    }

    pub(crate) fn cfg(&self) -> &crate::NAuthConfig {
        &self.inner.cfg
    }
}

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
    /// A challenge or tokens reached by following a link: json delivery answers it as
    /// [`Outcome::Auth`]; cookie delivery sets the cookies and redirects to the location (a
    /// challenge goes along as `challenge` and `session` query parameters).
    AuthRedirect(AuthOutcome, String),
    /// A new trusted-device token: in the body (json) or the device cookie.
    DeviceToken(String),
    /// A reply the flow built itself (social login's redirects with their cookies).
    #[cfg_attr(not(feature = "social"), allow(dead_code))]
    Reply(crate::http::Reply),
}

/// The user object of a tokens response (docs/api.md §2).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = User)]
pub(crate) struct UserBody {
    sub: String,
    email: String,
    username: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    is_email_verified: bool,
    is_phone_verified: bool,
    roles: Vec<String>,
}

impl UserBody {
    pub(crate) fn of(u: &User) -> Self {
        UserBody {
            sub: u.id.clone(),
            email: u.email.clone(),
            username: u.username.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            phone: u.phone.clone(),
            is_email_verified: u.is_email_verified,
            is_phone_verified: u.is_phone_verified,
            roles: roles(u),
        }
    }
}

/// The profile object of `/profile`: the user object and more.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Profile)]
pub(crate) struct ProfileBody {
    #[serde(flatten)]
    user: UserBody,
    mfa_enabled: bool,
    /// The language of the user's mails; `null`: the request's, else the default.
    locale: Option<String>,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Value>,
}

/// A body as JSON (its keys sorted, like every body of the contract).
pub(crate) fn body(b: &impl serde::Serialize) -> Value {
    serde_json::to_value(b).unwrap_or(Value::Null)
}

/// The user object of a tokens response.
pub(crate) fn user_json(u: &User) -> Value {
    body(&UserBody::of(u))
}

/// The profile object of `/profile`.
pub(crate) fn profile_json(u: &User) -> Value {
    body(&ProfileBody {
        user: UserBody::of(u),
        mfa_enabled: u.mfa_enabled,
        locale: u.locale.clone(),
        created_at: iso8601(u.created_at),
        updated_at: iso8601(u.updated_at),
        metadata: u
            .metadata
            .as_deref()
            .and_then(|s| serde_json::from_str::<Value>(s).ok()),
    })
}

pub(crate) fn roles(u: &User) -> Vec<String> {
    u.roles
        .split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

pub(crate) async fn find_user(db: &impl Conn, id: &Identifier) -> AuthResult<Option<User>> {
    let by = match id {
        Identifier::Email(e) => Lookup::Email(e),
        Identifier::Username(u) => Lookup::Username(u),
        // Only a verified phone names an account (docs/api.md §1): an unverified one is anyone's
        // claim, and must never become a login name or a reset channel.
        Identifier::Phone(p) => Lookup::VerifiedPhone(p),
    };
    Ok(store::users::find(db, by).await?)
}

pub(crate) async fn user_by_id(db: &impl Conn, id: &str) -> AuthResult<User> {
    store::users::get(db, id)
        .await?
        .ok_or(AuthError::SessionNotFound)
}

/// The user a stored row names; a user gone since is `gone` (every other error, such as the
/// database being away, stays what it is).
pub(crate) async fn named_user(db: &impl Conn, id: &str, gone: AuthError) -> AuthResult<User> {
    store::users::get(db, id).await?.ok_or(gone)
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
    db: &impl Conn,
    user: &User,
    auth_method: &str,
    device: &Device,
) -> AuthResult<IssuedTokens> {
    let cfg = ctx.cfg();
    let session_id = uuid::Uuid::new_v4().to_string();
    let refresh = codes::random_token();
    let jti = uuid::Uuid::new_v4().to_string();
    let absolute = ctx.now + crate::clock::ms(cfg.refresh.absolute_lifetime);
    let expires = (ctx.now + crate::clock::ms(cfg.refresh.ttl)).min(absolute);
    let session = Session {
        id: session_id.clone(),
        user_id: user.id.clone(),
        auth_method: auth_method.to_string(),
        device_name: device.name.clone(),
        device_type: device.kind.clone(),
        ip_address: device.ip.clone(),
        user_agent: device.user_agent.clone(),
        access_jti: jti.clone(),
        created_at: ctx.now,
        last_activity_at: ctx.now,
        expires_at: expires,
        absolute_expires_at: absolute,
        revoked_at: None,
    };
    store::sessions::create(db, session, codes::sha256_hex(&refresh)).await?;
    mint(ctx, user, &session_id, jti, refresh, expires, auth_method)
}

/// Signs an access token for a session and packs the pair.
pub(crate) fn mint(
    ctx: &Ctx<'_>,
    user: &User,
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
    db: &impl Conn,
    user_id: &str,
    except: Option<&str>,
    now: i64,
) -> AuthResult<u64> {
    Ok(store::sessions::revoke_all(db, user_id, except, now).await?)
}

/// Whether `candidate` matches the current hash or one of the last `history_count`.
pub(crate) async fn in_history(ctx: &Ctx<'_>, user: &User, candidate: &str) -> AuthResult<bool> {
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
    let old =
        store::users::history(&ctx.inner.store, &user.id, u64::from(n.saturating_sub(1))).await?;
    for h in old {
        if ctx.inner.hasher.verify(candidate, &h).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Stores a new password hash and keeps the old one in the history.
pub(crate) async fn set_password(
    ctx: &Ctx<'_>,
    db: &impl Conn,
    user: &User,
    new_hash: String,
) -> AuthResult<()> {
    if ctx.cfg().password.history_count > 0 {
        store::users::add_history(db, &user.id, &user.password_hash, ctx.now).await?;
    }
    let patch = UserPatch {
        password_hash: Some(new_hash),
        password_changed_at: Some(ctx.now),
        must_change_password: Some(false),
        updated_at: Some(ctx.now),
        ..Default::default()
    };
    store::users::update(db, &user.id, patch).await?;
    Ok(())
}

/// Policy, then history: the checks every new password goes through.
pub(crate) async fn check_new_password(
    ctx: &Ctx<'_>,
    user: Option<&User>,
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
pub(crate) async fn confirm_password(ctx: &Ctx<'_>, user: &User, password: &str) -> AuthResult<()> {
    let attempt = budget::reserve(ctx, budget::Budget::Password, Some(&user.id), "").await?;
    let ok = ctx.inner.hasher.verify(password, &user.password_hash).await;
    attempt.settle(ctx, &ok).await?;
    if ok? {
        Ok(())
    } else {
        ctx.audit_later(
            Some(&user.id),
            crate::events::Event::LoginFailed,
            false,
            json!({"reason": "password_confirmation"}),
        );
        Err(AuthError::PasswordIncorrect)
    }
}

/// Revokes every trusted device of a user (or the one whose token is given); returns how many.
pub(crate) async fn forget_devices(
    db: &impl Conn,
    user_id: &str,
    token: Option<&str>,
) -> AuthResult<u64> {
    let hash = token.map(codes::sha256_hex);
    Ok(store::devices::forget(db, user_id, hash.as_deref()).await?)
}
