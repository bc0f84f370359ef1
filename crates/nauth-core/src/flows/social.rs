//! Social login (docs/social-login.md): `GET /social/{provider}` sends the browser to the
//! provider; `GET|POST /social/{provider}/callback` checks its answer and signs in, signs up
//! or links; `POST /social/exchange` trades a one-time exchange code for the AuthResponse;
//! `POST /social/{provider}/link` starts a link with a fresh proof; `GET /social/identities`
//! and `DELETE /social/identities/{provider}` list and unlink; `GET /social/providers` names
//! the configured providers for a login page.
//!
//! The flow's secrets (`state`, `nonce`, PKCE verifier, `redirectTo`, the action) travel in a
//! short-lived HttpOnly cookie sealed with XChaCha20-Poly1305 under a key derived from
//! `secret` (the provider's name as associated data), with Path `<mount>/social`.

use serde_json::{Value, json};

use super::auth::{Carry, device_from, next};
use super::{Ctx, Outcome};
use crate::codes;
use crate::error::{AuthError, AuthResult};
use crate::events::Event;
use crate::http::Reply;
use crate::input::Input;
use crate::social::{FlowSecrets, Provider, ProviderIdentity};
use crate::store::users::UserPatch;
use crate::store::{self, SocialIdentity, StoreError, User, VerificationToken};

/// How long a started sign-in may take at the provider (the cookie's life).
const FLOW_TTL_MS: i64 = 10 * 60_000;
/// How long an exchange code works (once).
const EXCHANGE_TTL_MS: i64 = 60_000;
/// The verification-token purpose of an exchange code.
const EXCHANGE: &str = "social_exchange";
/// The session method of a sign-in through a provider.
const METHOD: &str = "social";

/// What a started sign-in remembers, sealed in the flow cookie.
#[derive(serde::Serialize, serde::Deserialize)]
struct Flow {
    /// The provider's name.
    p: String,
    #[serde(flatten)]
    secrets: FlowSecrets,
    /// Where to go afterwards (a local path).
    r: String,
    /// Linking: the user and the session that started it.
    u: Option<String>,
    sid: Option<String>,
    /// Unix ms.
    exp: i64,
}

fn provider<'c>(ctx: &'c Ctx<'_>, name: &str) -> AuthResult<&'c Provider> {
    ctx.inner
        .social
        .providers
        .get(name)
        .ok_or(AuthError::NotFound)
}

/// The flow cookie's name: the token cookies' prefix, except that a `__Host-` prefix becomes
/// `__Secure-` (a `__Host-` cookie must have Path=/).
fn cookie_name(ctx: &Ctx<'_>) -> String {
    let p = &ctx.cfg().token_delivery.cookie_prefix;
    if crate::delivery::is_host_prefix(p) {
        format!("__Secure-{}social_flow", &p["__Host-".len()..])
    } else {
        format!("{p}social_flow")
    }
}

/// The `Set-Cookie` of the flow cookie (`value` empty and `max_age` 0 clear it). A provider
/// that answers with a cross-site form POST (Apple) needs `SameSite=None; Secure`.
fn flow_cookie(ctx: &Ctx<'_>, p: &Provider, value: &str, max_age: i64) -> String {
    let td = &ctx.cfg().token_delivery;
    let mut c = format!(
        "{}={value}; Path={}/social; Max-Age={max_age}; HttpOnly",
        cookie_name(ctx),
        ctx.cfg().mount_prefix
    );
    if p.form_post() {
        c.push_str("; Secure; SameSite=None");
    } else {
        if td.cookie_secure {
            c.push_str("; Secure");
        }
        c.push_str("; SameSite=Lax");
    }
    if !td.cookie_domain.is_empty() {
        c.push_str(&format!("; Domain={}", td.cookie_domain));
    }
    c
}

fn seal(ctx: &Ctx<'_>, flow: &Flow) -> AuthResult<String> {
    let bytes = serde_json::to_vec(flow).map_err(|e| AuthError::Internal(e.to_string()))?;
    crate::mfa::seal(
        ctx.inner.keys.social_seal_key(),
        &format!("social:{}", flow.p),
        &bytes,
    )
}

/// The sealed flow of this request's cookie for `name`; any problem (missing, sent twice,
/// tampered, of another provider, expired) is `SOCIAL_STATE_INVALID`.
fn open(ctx: &Ctx<'_>, name: &str) -> AuthResult<Flow> {
    let bad = AuthError::SocialStateInvalid;
    let raw = ctx
        .req
        .unique_cookie(&cookie_name(ctx))
        .map_err(|_| bad.clone())?
        .ok_or(bad.clone())?;
    let bytes = crate::mfa::open(
        ctx.inner.keys.social_seal_key(),
        &format!("social:{name}"),
        raw,
    )
    .map_err(|_| bad.clone())?;
    let flow: Flow = serde_json::from_slice(&bytes).map_err(|_| bad.clone())?;
    if flow.p != name || flow.exp <= ctx.now {
        return Err(bad);
    }
    Ok(flow)
}

fn redirect_param(value: Option<String>) -> AuthResult<String> {
    match value {
        None => Ok("/".into()),
        Some(r) if r.len() <= 512 && super::magic::is_local_path(&r) => Ok(r),
        Some(_) => Err(AuthError::field(
            "redirectTo",
            "must be a path on this site, such as /dashboard",
        )),
    }
}

/// Starts a sign-in: the sealed cookie and the provider's authorization URL.
async fn begin(
    ctx: &Ctx<'_>,
    p: &Provider,
    redirect: String,
    link: Option<(&str, &str)>,
) -> AuthResult<(String, String)> {
    let secrets = FlowSecrets::new();
    let url = p
        .authorize_url(&ctx.inner.social.http, ctx.now, &secrets)
        .await?;
    let flow = Flow {
        p: p.name.clone(),
        secrets,
        r: redirect,
        u: link.map(|l| l.0.to_string()),
        sid: link.map(|l| l.1.to_string()),
        exp: ctx.now + FLOW_TTL_MS,
    };
    let cookie = flow_cookie(ctx, p, &seal(ctx, &flow)?, FLOW_TTL_MS / 1000);
    Ok((url, cookie))
}

/// `GET /social/providers`: the configured providers' names, kinds and labels.
pub(crate) async fn providers(ctx: &Ctx<'_>) -> AuthResult<Outcome> {
    let list: Vec<Value> = ctx
        .inner
        .social
        .providers
        .values()
        .map(|p| json!({"name": p.name, "kind": p.cfg.kind.as_str(), "label": p.label()}))
        .collect();
    Ok(Outcome::Json(200, json!({ "providers": list })))
}

/// `GET /social/{provider}?redirectTo=/path`: `302` to the provider.
pub(crate) async fn start(ctx: &Ctx<'_>, name: &str) -> AuthResult<Outcome> {
    let p = provider(ctx, name)?;
    if ctx.req.query_param("action").as_deref() == Some("link") {
        return Err(AuthError::field(
            "action",
            "a link starts with POST /social/{provider}/link (signed in, with a fresh proof)",
        ));
    }
    let redirect = redirect_param(ctx.req.query_param("redirectTo"))?;
    let (url, cookie) = begin(ctx, p, redirect, None).await?;
    Ok(Outcome::Reply(
        Reply::empty(302)
            .with_header("location", url)
            .with_header("set-cookie", cookie)
            .with_header("cache-control", "no-store"),
    ))
}

/// `POST /social/{provider}/link` (signed in): `password` or `code` (the fresh proof),
/// `redirectTo?`; answers `{ "url": … }` and sets the flow cookie.
pub(crate) async fn link_start(ctx: &Ctx<'_>, name: &str, mut input: Input) -> AuthResult<Outcome> {
    let password = input.text("password", crate::input::PASSWORD_HARD_MAX);
    let code = input.text("code", 16);
    let redirect = input.text("redirectTo", 512);
    if password.is_none() && code.is_none() {
        input.error(
            "password",
            "password or code (a current second factor) is required",
        );
    }
    input.finish()?;
    let p = provider(ctx, name)?;
    let redirect = redirect_param(redirect)?;
    let principal = ctx.principal()?.clone();
    let user = super::user_by_id(&ctx.inner.store, &principal.sub).await?;
    super::mfa::step_up(ctx, &user, password, code).await?;
    let (url, cookie) = begin(ctx, p, redirect, Some((&user.id, &principal.session_id))).await?;
    Ok(Outcome::Reply(
        Reply::json(200, &json!({ "url": url })).with_header("set-cookie", cookie),
    ))
}

/// A callback parameter: from the query (GET) or the form body (POST, Apple's form_post).
fn param(ctx: &Ctx<'_>, form: &[(String, String)], name: &str) -> Option<String> {
    if ctx.req.method == "POST" {
        form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    } else {
        ctx.req.query_param(name)
    }
}

/// Parses an `application/x-www-form-urlencoded` body.
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some((
                crate::http::percent_decode(&k.replace('+', " "))?,
                crate::http::percent_decode(&v.replace('+', " "))?,
            ))
        })
        .collect()
}

/// `GET|POST /social/{provider}/callback`.
pub(crate) async fn callback(ctx: &Ctx<'_>, name: &str, body: &[u8]) -> AuthResult<Outcome> {
    let p = provider(ctx, name)?;
    if ctx.req.method == "POST" && !p.form_post() {
        return Err(AuthError::MethodNotAllowed {
            allow: "GET, HEAD, OPTIONS".into(),
        });
    }
    let form = if ctx.req.method == "POST" {
        form_pairs(body)
    } else {
        Vec::new()
    };
    let flow = open(ctx, name)?;
    let state = param(ctx, &form, "state").unwrap_or_default();
    if !codes::ct_eq_long(&state, &flow.secrets.state) {
        return Err(AuthError::SocialStateInvalid);
    }
    // One answer per started sign-in: the state is recorded until the cookie expires.
    let key = format!("social_state:{}", codes::sha256_hex(&flow.secrets.state));
    let used = ctx
        .inner
        .kv
        .incr(&key, (flow.exp - ctx.now).max(1000), ctx.now)
        .await?;
    if used.value > 1 {
        return Err(AuthError::SocialCallbackReplayed);
    }
    if let Some(error) = param(ctx, &form, "error") {
        let error: String = error.chars().take(64).collect();
        ctx.audit_later(
            flow.u.as_deref(),
            Event::LoginFailed,
            false,
            json!({"method": METHOD, "provider": name, "reason": "provider_error", "error": error}),
        );
        return Err(AuthError::SocialProviderError);
    }
    let code = param(ctx, &form, "code")
        .filter(|c| !c.is_empty() && c.len() <= 2048)
        .ok_or_else(|| AuthError::field("code", "is required"))?;
    let identity = p
        .finish(&ctx.inner.social.http, &code, &flow.secrets, ctx.now)
        .await
        .inspect_err(|e| {
            if e.status() < 500 {
                ctx.audit_later(
                    flow.u.as_deref(),
                    Event::LoginFailed,
                    false,
                    json!({"method": METHOD, "provider": name, "reason": e.code()}),
                );
            }
        })?;
    check_domain(p, &identity)?;
    let clear = flow_cookie(ctx, p, "", 0);
    let reply = match (&flow.u, &flow.sid) {
        (Some(uid), Some(sid)) => link_finish(ctx, p, &identity, uid, sid, &flow.r).await?,
        _ => login_finish(ctx, p, &identity, &flow.r).await?,
    };
    Ok(Outcome::Reply(reply.with_header("set-cookie", clear)))
}

/// `allowed_email_domains`: a verified email of one of them.
fn check_domain(p: &Provider, id: &ProviderIdentity) -> AuthResult<()> {
    let domains = &p.cfg.allowed_email_domains;
    if domains.is_empty() {
        return Ok(());
    }
    let email = id
        .verified_email()
        .ok_or(AuthError::SocialEmailUnverified)?;
    let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
    if domains.iter().any(|d| d == domain) {
        Ok(())
    } else {
        Err(AuthError::SocialEmailDomainNotAllowed)
    }
}

/// Finds or creates the user of a provider identity.
async fn login_finish(
    ctx: &Ctx<'_>,
    p: &Provider,
    id: &ProviderIdentity,
    redirect: &str,
) -> AuthResult<Reply> {
    let db = &ctx.inner.store;
    let (user, created) = match store::social::get(db, &p.name, &id.subject).await? {
        Some(row) => {
            let user = super::named_user(db, &row.user_id, AuthError::SocialStateInvalid).await?;
            (user, false)
        }
        None => (signup(ctx, p, id).await?, true),
    };
    if user.disabled {
        return Err(AuthError::AccountLocked);
    }
    let mut user = user;
    // The provider proves the address only when it asserts the account's own email verified.
    let proves_email = !user.is_email_verified && id.verified_email() == Some(user.email.as_str());
    if proves_email {
        user.is_email_verified = true;
    }
    let carry = Carry {
        auth_method: METHOD.into(),
        device: device_from(ctx, None, None),
        ..Default::default()
    };
    let cookie_mode = !crate::delivery::wants_json(
        ctx.cfg().token_delivery.mode,
        ctx.req,
        crate::delivery::RefreshFrom::Nowhere,
    );
    let direct = cookie_mode && super::auth::issues_tokens(ctx, db, &user, &carry).await?;
    let details = json!({"method": METHOD, "provider": p.name});
    let (reply, _) = transaction!(ctx, |tx| {
        store::social::touch(tx, &p.name, &id.subject, id.verified_email(), ctx.now).await?;
        if proves_email && !created {
            mark_verified(ctx, tx, &user).await?;
        }
        if direct {
            // (A challenge due after all, from a change in between, goes by exchange code.)
            if let super::AuthOutcome::Tokens { tokens, .. } =
                next(ctx, tx, &user, carry.clone()).await?
            {
                ctx.audit_in(tx, Some(&user.id), Event::LoginSuccess, details.clone())
                    .await;
                let mut r = Reply::empty(302).with_header("location", redirect.to_string());
                for c in ctx.inner.cookies.set_tokens(&tokens, ctx.now_s()) {
                    r.headers.push(("set-cookie".into(), c));
                }
                return Ok((r, ()));
            }
        }
        let code = exchange_code(ctx, tx, &user, &p.name).await?;
        let sep = if redirect.contains('?') { '&' } else { '?' };
        let location = format!("{redirect}{sep}exchangeCode={code}");
        Ok((Reply::empty(302).with_header("location", location), ()))
    })?;
    Ok(reply.with_header("cache-control", "no-store"))
}

/// Marks the email verified when it is not yet (inside the sign-in's transaction).
async fn mark_verified(ctx: &Ctx<'_>, tx: &store::Tx, user: &User) -> AuthResult<()> {
    let stored = super::named_user(tx, &user.id, AuthError::SocialStateInvalid).await?;
    if stored.is_email_verified {
        return Ok(());
    }
    let patch = UserPatch {
        is_email_verified: Some(true),
        updated_at: Some(ctx.now),
        ..Default::default()
    };
    store::users::update(tx, &user.id, patch).await?;
    let details = json!({"via": "social"});
    ctx.audit_in(tx, Some(&user.id), Event::EmailVerified, details)
        .await;
    Ok(())
}

/// A new account for a provider identity: a verified email no account holds, signup allowed.
async fn signup(ctx: &Ctx<'_>, p: &Provider, id: &ProviderIdentity) -> AuthResult<User> {
    let email = id
        .verified_email()
        .ok_or(AuthError::SocialEmailUnverified)?
        .to_string();
    let db = &ctx.inner.store;
    let refuse_existing = |ctx: &Ctx<'_>, owner: &str| {
        ctx.audit_later(
            Some(owner),
            Event::LoginFailed,
            false,
            json!({"method": METHOD, "provider": p.name, "reason": "email_exists"}),
        );
        AuthError::SocialAccountExists
    };
    if let Some(owner) =
        super::find_user(db, &crate::input::Identifier::Email(email.clone())).await?
    {
        return Err(refuse_existing(ctx, &owner.id));
    }
    if !p.cfg.allow_signup || !ctx.cfg().signup.enabled {
        return Err(AuthError::SignupDisabled);
    }
    super::budget::spend_signup(ctx).await?;
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.clone(),
        username: None,
        phone: None,
        // No password: `Hasher::verify` never accepts the empty hash.
        password_hash: String::new(),
        first_name: id.first_name.clone().map(|n| n.chars().take(100).collect()),
        last_name: id.last_name.clone().map(|n| n.chars().take(100).collect()),
        metadata: None,
        roles: "user".into(),
        is_email_verified: true,
        is_phone_verified: false,
        must_change_password: false,
        password_changed_at: ctx.now,
        disabled: false,
        mfa_enabled: false,
        mfa_exempt: false,
        locale: None,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    let row = SocialIdentity {
        provider: p.name.clone(),
        subject: id.subject.clone(),
        user_id: user.id.clone(),
        email: Some(email.clone()),
        linked_at: ctx.now,
        last_used_at: None,
    };
    let created = transaction!(ctx, |tx| {
        match store::users::insert(tx, user.clone()).await {
            Err(StoreError::Conflict(_)) => return Ok(false),
            r => r?,
        }
        match store::social::insert(tx, row.clone()).await {
            Err(StoreError::Conflict(_)) => return Err(AuthError::SocialAccountLinked),
            r => r?,
        }
        let details = json!({"method": METHOD, "provider": p.name});
        ctx.audit_in(tx, Some(&user.id), Event::Signup, details)
            .await;
        Ok(true)
    })?;
    if created {
        return Ok(user);
    }
    // Lost a race: another signup took the email (or this identity) in between.
    match store::social::get(db, &p.name, &id.subject).await? {
        Some(row) => super::named_user(db, &row.user_id, AuthError::SocialStateInvalid).await,
        None => {
            let owner = super::find_user(db, &crate::input::Identifier::Email(email)).await?;
            Err(refuse_existing(
                ctx,
                owner.map(|o| o.id).as_deref().unwrap_or_default(),
            ))
        }
    }
}

/// Stores a one-time exchange code for `user` (hashed, 60 s) and returns it.
async fn exchange_code(
    ctx: &Ctx<'_>,
    tx: &store::Tx,
    user: &User,
    provider: &str,
) -> AuthResult<String> {
    let code = codes::random_token();
    let row = VerificationToken {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        purpose: EXCHANGE.into(),
        token_hash: ctx.inner.keys.hash_code("link", EXCHANGE, &code),
        data: Some(provider.to_string()),
        attempts: 0,
        created_at: ctx.now,
        expires_at: ctx.now + EXCHANGE_TTL_MS,
        used_at: None,
    };
    store::verification::insert(tx, row).await?;
    Ok(code)
}

/// `POST /social/exchange` `{ "code": … }`: the AuthResponse of a sign-in through a provider
/// (tokens, or the challenge still due). Each code works once, within 60 s.
pub(crate) async fn exchange(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let code = input.text_req("code", 512);
    input.finish()?;
    let hash = ctx.inner.keys.hash_code("link", EXCHANGE, &code);
    let invalid = || AuthError::SocialExchangeCodeInvalid;
    let outcome = transaction!(ctx, |tx| {
        let row = store::verification::by_hash(tx, EXCHANGE, &hash, true)
            .await?
            .filter(|t| t.used_at.is_none() && t.expires_at > ctx.now)
            .ok_or_else(invalid)?;
        if !store::verification::mark_used(tx, &row.id, ctx.now).await? {
            return Err(invalid());
        }
        let user = super::named_user(tx, &row.user_id, invalid()).await?;
        if user.disabled {
            return Err(AuthError::AccountLocked);
        }
        let carry = Carry {
            auth_method: METHOD.into(),
            device: device_from(ctx, None, None),
            ..Default::default()
        };
        let outcome = next(ctx, tx, &user, carry).await?;
        let details = json!({"method": METHOD, "provider": row.data});
        ctx.audit_in(tx, Some(&user.id), Event::LoginSuccess, details)
            .await;
        Ok(outcome)
    })?;
    Ok(Outcome::Auth(200, outcome))
}

/// Links the identity to the user who started the link, whose session must still be live.
async fn link_finish(
    ctx: &Ctx<'_>,
    p: &Provider,
    id: &ProviderIdentity,
    uid: &str,
    sid: &str,
    redirect: &str,
) -> AuthResult<Reply> {
    let db = &ctx.inner.store;
    // The callback is the same signed-in user's: the session that started the link is still
    // live, and a request that presents a session presents that user's.
    let live = store::sessions::get(db, sid, false)
        .await?
        .filter(|s| s.user_id == uid && s.revoked_at.is_none() && s.expires_at > ctx.now);
    if live.is_none() {
        return Err(AuthError::SessionNotFound);
    }
    if let Ok(principal) = crate::guard::principal(ctx.inner, ctx.req).await
        && principal.sub != uid
    {
        return Err(AuthError::SocialStateInvalid);
    }
    let email = id
        .verified_email()
        .ok_or(AuthError::SocialEmailUnverified)?
        .to_string();
    let row = SocialIdentity {
        provider: p.name.clone(),
        subject: id.subject.clone(),
        user_id: uid.to_string(),
        email: Some(email),
        linked_at: ctx.now,
        last_used_at: None,
    };
    // The user, when this callback linked the identity (not when it was linked already).
    let linked = transaction!(ctx, |tx| {
        let user = super::named_user(tx, uid, AuthError::SessionNotFound).await?;
        if let Some(existing) = store::social::get(tx, &p.name, &id.subject).await? {
            return if existing.user_id == user.id {
                Ok(None)
            } else {
                Err(AuthError::SocialAccountLinked)
            };
        }
        match store::social::insert(tx, row.clone()).await {
            Err(StoreError::Conflict(_)) => return Err(AuthError::SocialAccountLinked),
            r => r?,
        }
        let details = json!({"provider": p.name});
        ctx.audit_in(tx, Some(&user.id), Event::SocialLinked, details)
            .await;
        Ok(Some(user))
    })
    .inspect_err(|e| {
        if matches!(e, AuthError::SocialAccountLinked) {
            ctx.audit_later(
                Some(uid),
                Event::SocialLinked,
                false,
                json!({"provider": p.name, "reason": "linked_elsewhere"}),
            );
        }
    })?;
    if let Some(user) = linked {
        super::mfa::sign_in_method_notice(ctx, &user, METHOD, Some(p.label()), true);
    }
    Ok(Reply::empty(302)
        .with_header("location", redirect.to_string())
        .with_header("cache-control", "no-store"))
}

/// `GET /social/identities` (signed in).
pub(crate) async fn identities(ctx: &Ctx<'_>) -> AuthResult<Outcome> {
    let principal = ctx.principal()?;
    let rows = store::social::of_user(&ctx.inner.store, &principal.sub).await?;
    let list: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "provider": r.provider,
                "email": r.email,
                "linkedAt": crate::clock::iso8601(r.linked_at),
                "lastUsedAt": r.last_used_at.map(crate::clock::iso8601),
            })
        })
        .collect();
    Ok(Outcome::Json(200, json!({ "identities": list })))
}

/// `DELETE /social/identities/{provider}` (signed in): unlinks, unless it is the account's
/// last way to sign in (no password and no other identity).
pub(crate) async fn unlink(ctx: &Ctx<'_>, name: &str) -> AuthResult<Outcome> {
    let principal = ctx.principal()?.clone();
    let user = transaction!(ctx, |tx| {
        let user = super::named_user(tx, &principal.sub, AuthError::SessionNotFound).await?;
        let rows = store::social::of_user(tx, &user.id).await?;
        let here = rows.iter().filter(|r| r.provider == name).count();
        if here == 0 {
            return Err(AuthError::NotFound);
        }
        if user.password_hash.is_empty() && rows.len() == here {
            return Err(AuthError::SocialLastSignInMethod);
        }
        store::social::unlink(tx, &user.id, name).await?;
        let details = json!({"provider": name});
        ctx.audit_in(tx, Some(&user.id), Event::SocialUnlinked, details)
            .await;
        Ok(user)
    })?;
    // A provider no longer configured is named as stored.
    let label = provider(ctx, name).map_or_else(|_| name.to_string(), Provider::label);
    super::mfa::sign_in_method_notice(ctx, &user, METHOD, Some(label), false);
    Ok(Outcome::Json(200, json!({"success": true})))
}

#[cfg(test)]
mod tests {
    use super::form_pairs;

    #[test]
    fn form_bodies() {
        let f = form_pairs(b"state=a%2Bb&code=x+y&user=%7B%7D");
        assert_eq!(
            f,
            vec![
                ("state".to_string(), "a+b".to_string()),
                ("code".to_string(), "x y".to_string()),
                ("user".to_string(), "{}".to_string()),
            ]
        );
    }
}
