//! Authentication of requests: bearer JWT or access cookie per the delivery mode, session
//! liveness under `session.validation = database`, CSRF on cookie-authenticated unsafe
//! methods, and the trusted-origin rule. Used by the core's own routes and by the adapters'
//! extractors alike, so both answer the same.

use std::sync::Arc;

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::Inner;
use crate::config::{DeliveryMode, SessionValidation};
use crate::error::{AuthError, AuthResult};
use crate::http::Request;
use crate::tokens::Claims;

/// Who is calling: what an `AuthUser` extractor yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user id.
    pub sub: String,
    /// The session id (the access token's `sid`).
    pub session_id: String,
    /// The user's roles.
    pub roles: Vec<String>,
    /// How the session was authenticated (`password`, …).
    pub auth_method: String,
    /// Authenticated by the access cookie (so CSRF rules apply) rather than a bearer token.
    pub via_cookie: bool,
}

impl Principal {
    /// Whether the principal has a role.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Whether a method changes state (CSRF applies).
pub fn is_unsafe(method: &str) -> bool {
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
    let cookie_matches = req
        .cookie(&inner.cookies.csrf)
        .is_some_and(|c| crate::codes::ct_eq(c, header));
    if cookie_matches && inner.keys.csrf_valid(session_id, header) {
        Ok(())
    } else {
        Err(AuthError::CsrfInvalid)
    }
}

/// The access token a request presents and whether it came from the cookie.
pub(crate) fn access_token<'r>(inner: &Inner, req: &'r Request) -> AuthResult<(&'r str, bool)> {
    let bearer = req.bearer();
    let cookie = req.cookie(&inner.cookies.access).filter(|c| !c.is_empty());
    if bearer.is_some_and(|b| b.starts_with("nk_")) {
        // API keys arrive with their own issue; until then no key is valid.
        return Err(AuthError::ApiKeyInvalid);
    }
    match (inner.cfg.token_delivery.mode, bearer, cookie) {
        (DeliveryMode::Cookies, Some(_), _) => Err(AuthError::BearerNotAllowed),
        (DeliveryMode::Json, None, Some(_)) => Err(AuthError::CookiesNotAllowed),
        (_, Some(b), _) => Ok((b, false)),
        (_, None, Some(c)) => Ok((c, true)),
        (_, None, None) => Err(AuthError::TokenMissing),
    }
}

/// Verified access tokens, so a token seen again skips signature work. Equal strings carry
/// equal claims (they are signed), so a hit needs only the whole token to match, compared in
/// constant time; times are still checked on every use. The map key is the token's last 16
/// bytes (its HMAC, uniformly random), hashed with FNV-1a: cheaper than hashing the whole
/// token. Bounded: cleared when full.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    map: std::sync::RwLock<std::collections::HashMap<u64, (Box<str>, Arc<Claims>)>>,
}

const TOKEN_CACHE_MAX: usize = 50_000;

fn cache_key(token: &str) -> u64 {
    let tail = &token.as_bytes()[token.len().saturating_sub(16)..];
    tail.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl TokenCache {
    fn verify(&self, inner: &Inner, token: &str, now_s: i64) -> AuthResult<Arc<Claims>> {
        let key = cache_key(token);
        let hit = self.map.read().ok().and_then(|m| {
            m.get(&key)
                .filter(|(t, _)| crate::codes::ct_eq(t, token))
                .map(|(_, c)| c.clone())
        });
        if let Some(c) = hit {
            if c.exp + crate::tokens::LEEWAY_SECS < now_s {
                return Err(AuthError::TokenExpired);
            }
            if c.iat > now_s + crate::tokens::LEEWAY_SECS {
                return Err(AuthError::TokenInvalid);
            }
            return Ok(c);
        }
        let claims = Arc::new(inner.signer.verify(token, now_s)?);
        if let Ok(mut m) = self.map.write() {
            if m.len() >= TOKEN_CACHE_MAX {
                m.clear();
            }
            m.insert(key, (token.into(), claims.clone()));
        }
        Ok(claims)
    }
}

type SessionRow = (String, String, String, i64, i64);

/// Live sessions read from SQLite, kept in memory. SQLite's file belongs to one nauth
/// process, and every session write of that process goes through [`SessionCache::invalidate`]
/// after its commit, so a revocation is still seen by the very next request. With PostgreSQL
/// or MySQL (several instances may share them) the cache is off and every request reads the
/// database.
#[derive(Debug, Default)]
pub(crate) struct SessionCache {
    enabled: bool,
    generation: std::sync::atomic::AtomicU64,
    map: std::sync::RwLock<std::collections::HashMap<String, SessionRow>>,
}

impl SessionCache {
    pub(crate) fn new(enabled: bool) -> Self {
        SessionCache {
            enabled,
            ..Default::default()
        }
    }

    /// Forgets every entry; called after any transaction that changed sessions committed.
    /// A reader that read the old row before the commit cannot store it afterwards: it
    /// stores only if the generation did not move while it read.
    pub(crate) fn invalidate(&self) {
        if self.enabled {
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let Ok(mut m) = self.map.write() {
                m.clear();
            }
        }
    }

    async fn get(&self, inner: &Inner, sid: &str) -> AuthResult<Option<SessionRow>> {
        if !self.enabled {
            return live_session(inner, sid).await;
        }
        if let Some(row) = self.map.read().ok().and_then(|m| m.get(sid).cloned()) {
            return Ok(Some(row));
        }
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let row = live_session(inner, sid).await?;
        if let (Some(r), Ok(mut m)) = (&row, self.map.write()) {
            if self.generation.load(std::sync::atomic::Ordering::SeqCst) == generation {
                if m.len() >= TOKEN_CACHE_MAX {
                    m.clear();
                }
                m.insert(sid.to_string(), r.clone());
            }
        }
        Ok(row)
    }
}

/// The columns the per-request session check needs, read with one fixed statement.
async fn live_session(inner: &Inner, sid: &str) -> AuthResult<Option<SessionRow>> {
    let backend = inner.store.backend();
    let sql = if backend == DbBackend::Postgres {
        "SELECT user_id, access_jti, auth_method, expires_at, absolute_expires_at \
         FROM nauth_sessions WHERE id = $1 AND revoked_at IS NULL"
    } else {
        "SELECT user_id, access_jti, auth_method, expires_at, absolute_expires_at \
         FROM nauth_sessions WHERE id = ? AND revoked_at IS NULL"
    };
    let stmt = Statement::from_sql_and_values(backend, sql, [sid.into()]);
    let Some(r) = inner.store.db.query_one_raw(stmt).await? else {
        return Ok(None);
    };
    Ok(Some((
        r.try_get("", "user_id")?,
        r.try_get("", "access_jti")?,
        r.try_get("", "auth_method")?,
        r.try_get("", "expires_at")?,
        r.try_get("", "absolute_expires_at")?,
    )))
}

/// Authenticates without CSRF (the caller decides when CSRF applies).
pub(crate) async fn principal(inner: &Inner, req: &Request) -> AuthResult<Principal> {
    let (token, via_cookie) = access_token(inner, req)?;
    let now_ms = inner.clock.now_ms();
    let claims = inner.token_cache.verify(inner, token, now_ms / 1000)?;
    let mut auth_method = None;
    if inner.cfg.session.validation == SessionValidation::Database {
        let (user_id, jti, method, expires, absolute) = inner
            .session_cache
            .get(inner, &claims.sid)
            .await?
            .ok_or(AuthError::SessionNotFound)?;
        if user_id != claims.sub || jti != claims.jti {
            return Err(AuthError::TokenInvalid);
        }
        if absolute <= now_ms || expires <= now_ms {
            return Err(AuthError::SessionExpired);
        }
        auth_method = Some(method);
    }
    let auth_method = auth_method
        .or_else(|| claims.amr.clone())
        .unwrap_or_else(|| "password".into());
    Ok(Principal {
        sub: claims.sub.clone(),
        session_id: claims.sid.clone(),
        roles: claims.roles.clone(),
        auth_method,
        via_cookie,
    })
}

/// Authenticates an app route: token, session, then origin and CSRF for cookie requests.
pub(crate) async fn authenticate(inner: &Inner, req: &Request) -> AuthResult<Principal> {
    let p = principal(inner, req).await?;
    if p.via_cookie {
        check_origin(inner, req)?;
        if is_unsafe(&req.method) {
            check_csrf(inner, req, &p.session_id)?;
        }
    }
    Ok(p)
}
