//! Authentication of requests: bearer JWT or access cookie per the delivery mode, session
//! liveness under `session.validation = database`, CSRF on cookie-authenticated unsafe
//! methods, and the trusted-origin rule. Used by the core's own routes and by the adapters'
//! extractors alike, so both answer the same.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::Inner;
use crate::cache::LiveSession;
use crate::config::{DeliveryMode, SessionValidation};
use crate::error::{AuthError, AuthResult};
use crate::http::Request;
use crate::tokens::Claims;

/// Who is calling: what an `AuthUser` extractor yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user id.
    pub sub: String,
    /// The session id (the access token's `sid`); empty for an API key.
    pub session_id: String,
    /// The user's roles (for an API key, the ones the database holds now).
    pub roles: Vec<String>,
    /// How the session was authenticated (`password`, …), or `api_key`.
    pub auth_method: String,
    /// Authenticated by the access cookie (so CSRF rules apply) rather than a bearer token.
    pub via_cookie: bool,
    /// The API key's scopes when an API key authenticated the request; `None` for a user's
    /// session, which holds every scope of its user.
    pub scopes: Option<Vec<String>>,
    /// The API key's public id when an API key authenticated the request.
    pub api_key_id: Option<String>,
}

impl Principal {
    /// Whether the principal has a role.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the principal may act with a scope: a user's session always, an API key when
    /// it was created with that scope.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == scope))
    }
}

/// The API key a request presents: `X-API-Key`, or a bearer token that starts with `nk_`.
pub(crate) fn presented_api_key(req: &Request) -> Option<&str> {
    req.header("x-api-key")
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .or_else(|| req.bearer().filter(|b| b.starts_with(API_KEY_PREFIX)))
}

/// How every API key starts.
pub(crate) const API_KEY_PREFIX: &str = "nk_";

/// SHA-256 of nothing anyone holds: compared when the id is unknown, so an unknown id and a
/// wrong secret take the same work.
const NO_KEY_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Authenticates an API key: its row (by the public id), the secret's SHA-256 compared in
/// constant time, not revoked, not expired, and its user still there and enabled; roles come
/// from the database. `lastUsedAt` is written at most once a minute per key.
async fn api_key_principal(inner: &Inner, raw: &str) -> AuthResult<Principal> {
    if let Some(answer) = api_key_now(inner, raw) {
        return answer;
    }
    let (id, secret) = crate::flows::api_keys::parse(raw).ok_or(AuthError::ApiKeyInvalid)?;
    let stamp = inner.session_cache.stamp();
    let row = crate::store::api_keys::get(&inner.store, id).await?;
    let presented = crate::codes::sha256_hex(secret);
    let stored = row.as_ref().map_or(NO_KEY_HASH, |r| r.secret_hash.as_str());
    let matches = crate::codes::ct_eq(&presented, stored);
    let key = row
        .filter(|_| matches)
        .filter(|r| r.revoked_at.is_none())
        .ok_or(AuthError::ApiKeyInvalid)?;
    let now = inner.clock.now_ms();
    if key.expires_at.is_some_and(|e| e <= now) {
        return Err(AuthError::ApiKeyExpired);
    }
    let user = crate::store::users::get(&inner.store, &key.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(AuthError::ApiKeyInvalid)?;
    let mut last_used = key.last_used_at.unwrap_or(i64::MIN);
    if last_used <= now - TOUCH_EVERY_MS {
        crate::store::api_keys::touch(&inner.store, &key.id, now, now - TOUCH_EVERY_MS + 1).await?;
        last_used = now;
    }
    let roles = crate::flows::roles(&user);
    let entry = LiveSession {
        user_id: user.id,
        access_jti: key.secret_hash,
        auth_method: "api_key".into(),
        expires_at: key.expires_at.unwrap_or(i64::MAX),
        absolute_expires_at: last_used.saturating_add(TOUCH_EVERY_MS),
        roles,
        scopes: Some(crate::flows::api_keys::split_scopes(&key.scopes)),
    };
    inner.session_cache.put(&key_entry(&key.id), &entry, stamp);
    Ok(key_principal(key.id, entry))
}

/// `lastUsedAt` is written at most once a minute per key.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Where the liveness cache keeps an API key (session ids are UUIDs, so no clash).
fn key_entry(id: &str) -> String {
    format!("key:{id}")
}

fn key_principal(id: String, entry: LiveSession) -> Principal {
    Principal {
        sub: entry.user_id,
        session_id: String::new(),
        roles: entry.roles,
        auth_method: entry.auth_method,
        via_cookie: false,
        scopes: entry.scopes,
        api_key_id: Some(id),
    }
}

/// An API key answered from the liveness cache, without I/O: a key seen recently whose
/// `lastUsedAt` is not due. `None` sends it to the database, also for a wrong secret, so a
/// wrong secret and an unknown id do the same work.
fn api_key_now(inner: &Inner, raw: &str) -> Option<AuthResult<Principal>> {
    let Some((id, secret)) = crate::flows::api_keys::parse(raw) else {
        return Some(Err(AuthError::ApiKeyInvalid));
    };
    let entry = inner.session_cache.get(&key_entry(id))?;
    let now = inner.clock.now_ms();
    if now >= entry.absolute_expires_at
        || !crate::codes::ct_eq(&crate::codes::sha256_hex(secret), &entry.access_jti)
    {
        return None;
    }
    if entry.expires_at <= now {
        return Some(Err(AuthError::ApiKeyExpired));
    }
    Some(Ok(key_principal(id.to_string(), entry)))
}

/// Whether a method changes state (CSRF applies).
pub(crate) fn is_unsafe(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// `403 FORBIDDEN` when `trusted_origins` is set and the request's `Origin` is outside it.
pub(crate) fn check_origin(inner: &Inner, req: &Request) -> AuthResult<()> {
    let trusted = &inner.cfg.trusted_origins;
    match req.header("origin") {
        Some(o) if !trusted.is_empty() && !trusted.iter().any(|t| t == o.trim_end_matches('/')) => {
            Err(AuthError::Forbidden)
        }
        _ => Ok(()),
    }
}

/// Checks the CSRF header of a cookie-authenticated request against the session.
pub(crate) fn check_csrf(inner: &Inner, req: &Request, session_id: &str) -> AuthResult<()> {
    let header = req
        .header("x-csrf-token")
        .filter(|h| !h.is_empty())
        .ok_or(AuthError::CsrfMissing)?;
    // A CSRF cookie sent twice (tossed by a sibling subdomain) is never compared.
    let cookie_matches = req
        .unique_cookie(&inner.cookies.csrf)
        .map_err(|_| AuthError::CsrfInvalid)?
        .is_some_and(|c| crate::codes::ct_eq(c, header));
    if cookie_matches && inner.keys.csrf_valid(session_id, header) {
        Ok(())
    } else {
        Err(AuthError::CsrfInvalid)
    }
}

/// The access token a request presents and whether it came from the cookie. An access cookie
/// sent twice is `401 AUTH_TOKEN_INVALID` (cookie tossing), unless a bearer token decides.
pub(crate) fn access_token<'r>(inner: &Inner, req: &'r Request) -> AuthResult<(&'r str, bool)> {
    let bearer = req.bearer();
    if bearer.is_some_and(|b| b.starts_with(API_KEY_PREFIX)) {
        // Keys authenticate the app's routes, never nauth's own account routes.
        return Err(AuthError::Forbidden);
    }
    let cookie = match bearer {
        // The bearer alone authenticates (docs/api.md §5); the cookies are not read.
        Some(_) => None,
        None => req
            .unique_cookie(&inner.cookies.access)
            .map_err(|_| AuthError::TokenInvalid)?
            .filter(|c| !c.is_empty()),
    };
    match (inner.cfg.token_delivery.mode, bearer, cookie) {
        (DeliveryMode::Cookies, Some(_), _) => Err(AuthError::BearerNotAllowed),
        (DeliveryMode::Json, None, Some(_)) => Err(AuthError::CookiesNotAllowed),
        (_, Some(b), _) => Ok((b, false)),
        (_, None, Some(c)) => Ok((c, true)),
        (_, None, None) => Err(AuthError::TokenMissing),
    }
}

/// Entries per thread in the verified-token cache.
const LOCAL_CACHE_MAX: usize = 4096;

/// A verified token, its claims, and the time it is valid from (the later of `iat` and `nbf`).
type CachedToken = (Box<str>, Rc<Claims>, i64);

static NEXT_INSTANCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// Verified access tokens, per worker thread: a token seen again skips signature work
    /// without touching any lock or shared counter. Equal strings carry equal claims (they
    /// are signed), so a hit needs the whole token to match, compared in constant time;
    /// times are still checked on every use. Keyed by engine and the token's last 16 bytes
    /// (its HMAC, uniformly random).
    static TOKENS: RefCell<HashMap<(u64, u64), CachedToken>> = RefCell::new(HashMap::new());
}

fn cache_key(token: &str) -> u64 {
    let tail = &token.as_bytes()[token.len().saturating_sub(16)..];
    tail.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The engine's share of the per-thread verified-token cache.
#[derive(Debug)]
pub(crate) struct TokenCache {
    instance: u64,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache {
            instance: NEXT_INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }
}

impl TokenCache {
    /// The verified claims of a token: from this thread's cache, or checked and cached.
    fn claims(&self, inner: &Inner, token: &str, now_s: i64) -> AuthResult<Rc<Claims>> {
        let key = (self.instance, cache_key(token));
        let hit = TOKENS.with_borrow(|m| {
            m.get(&key)
                .filter(|(t, _, _)| crate::codes::ct_eq_long(t, token))
                .map(|(_, c, start)| (c.clone(), *start))
        });
        if let Some((c, start)) = hit {
            crate::tokens::check_times(c.exp, start, now_s)?;
            return Ok(c);
        }
        let (claims, start) = inner.signer.verify_with_start(token, now_s)?;
        let claims = Rc::new(claims);
        TOKENS.with_borrow_mut(|m| {
            if m.len() >= LOCAL_CACHE_MAX {
                m.clear();
            }
            m.insert(key, (token.into(), claims.clone(), start));
        });
        Ok(claims)
    }
}

/// The live session row: from the liveness cache, else the database (then cached).
async fn load_session(inner: &Inner, sid: &str) -> AuthResult<Option<LiveSession>> {
    let stamp = inner.session_cache.stamp();
    let row = crate::store::sessions::live(&inner.store, sid).await?;
    if let Some(r) = &row {
        inner.session_cache.put(sid, r, stamp);
    }
    Ok(row)
}

fn build(
    claims: &Claims,
    row: Option<&LiveSession>,
    via_cookie: bool,
    now_ms: i64,
) -> AuthResult<Principal> {
    // Under `database` validation the session row (with its user's roles) decides; under
    // `token` the claims do, and a role change applies at the next refresh.
    let (auth_method, roles) = match row {
        Some(s) => {
            if s.user_id != claims.sub || s.access_jti != claims.jti {
                return Err(AuthError::TokenInvalid);
            }
            if s.absolute_expires_at <= now_ms || s.expires_at <= now_ms {
                return Err(AuthError::SessionExpired);
            }
            (s.auth_method.clone(), s.roles.clone())
        }
        None => (
            claims.amr.clone().unwrap_or_else(|| "password".into()),
            claims.roles.clone(),
        ),
    };
    Ok(Principal {
        sub: claims.sub.clone(),
        session_id: claims.sid.clone(),
        roles,
        auth_method,
        via_cookie,
        scopes: None,
        api_key_id: None,
    })
}

/// The answer when the caches can give it without I/O: always under `token` validation,
/// for a cached session under `database`. `None`: the database must be asked.
pub(crate) fn principal_now(inner: &Inner, req: &Request) -> Option<AuthResult<Principal>> {
    let now_ms = inner.clock.now_ms();
    let (token, via_cookie) = match access_token(inner, req) {
        Ok(t) => t,
        Err(e) => return Some(Err(e)),
    };
    let claims = match inner.tokens.claims(inner, token, now_ms / 1000) {
        Ok(c) => c,
        // Perhaps a key another instance added: the database is asked (throttled).
        Err(AuthError::TokenInvalid)
            if inner.keyring.may_reload(now_ms) && inner.signer.unknown_kid(token).is_some() =>
        {
            return None;
        }
        Err(e) => return Some(Err(e)),
    };
    // A deleted account's tokens stop at once, also under `token` validation (one atomic
    // load while nobody is denied).
    if inner.deny.is_denied(&claims.sub, claims.iat, now_ms) {
        return Some(Err(AuthError::SessionNotFound));
    }
    if inner.cfg.session.validation == SessionValidation::Database {
        let row = inner.session_cache.get(&claims.sid)?;
        return Some(build(&claims, Some(&row), via_cookie, now_ms));
    }
    Some(build(&claims, None, via_cookie, now_ms))
}

/// Authenticates without CSRF (the caller decides when CSRF applies).
pub(crate) async fn principal(inner: &Inner, req: &Request) -> AuthResult<Principal> {
    if let Some(answer) = principal_now(inner, req) {
        return answer;
    }
    // Only a token under an unknown `kid`, or `database` validation with an uncached
    // session, gets here.
    let (token, via_cookie) = access_token(inner, req)?;
    if inner.signer.unknown_kid(token).is_some() {
        inner.keyring.reload_for_unknown_kid(inner).await;
        if let Some(answer) = principal_now(inner, req) {
            return answer;
        }
    }
    let now_ms = inner.clock.now_ms();
    // Owned, not the thread's shared copy: the future may resume on another thread.
    let claims: Claims = (*inner.tokens.claims(inner, token, now_ms / 1000)?).clone();
    let row = load_session(inner, &claims.sid)
        .await?
        .ok_or(AuthError::SessionNotFound)?;
    build(&claims, Some(&row), via_cookie, now_ms)
}

/// The checks after the principal: origin and CSRF for cookie requests.
fn app_checks(inner: &Inner, req: &Request, p: Principal) -> AuthResult<Principal> {
    if p.via_cookie {
        check_origin(inner, req)?;
        if is_unsafe(&req.method) {
            check_csrf(inner, req, &p.session_id)?;
        }
    }
    Ok(p)
}

/// [`authenticate`] when it needs no I/O (see [`principal_now`], and [`api_key_now`] for a
/// key).
pub(crate) fn authenticate_now(inner: &Inner, req: &Request) -> Option<AuthResult<Principal>> {
    if let Some(key) = presented_api_key(req) {
        return api_key_now(inner, key);
    }
    principal_now(inner, req).map(|r| r.and_then(|p| app_checks(inner, req, p)))
}

/// Authenticates an app route: an API key (`X-API-Key` or a bearer `nk_…`, which no cookie
/// carries, so CSRF does not apply), or a token and its session, then origin and CSRF for
/// cookie requests.
pub(crate) async fn authenticate(inner: &Inner, req: &Request) -> AuthResult<Principal> {
    if let Some(key) = presented_api_key(req) {
        return api_key_principal(inner, key).await;
    }
    let p = principal(inner, req).await?;
    app_checks(inner, req, p)
}
