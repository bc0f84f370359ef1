//! Authentication of requests: bearer JWT or access cookie per the delivery mode, session
//! liveness under `session.validation = database`, CSRF on cookie-authenticated unsafe
//! methods, and the trusted-origin rule. Used by the core's own routes and by the adapters'
//! extractors alike, so both answer the same.

use sea_orm::EntityTrait;

use crate::Inner;
use crate::config::{DeliveryMode, SessionValidation};
use crate::error::{AuthError, AuthResult};
use crate::http::Request;
use crate::store::entities::sessions;

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

/// Authenticates without CSRF (the caller decides when CSRF applies).
pub(crate) async fn principal(inner: &Inner, req: &Request) -> AuthResult<Principal> {
    let (token, via_cookie) = access_token(inner, req)?;
    let now_ms = inner.clock.now_ms();
    let claims = inner.signer.verify(token, now_ms / 1000)?;
    let mut auth_method = claims.amr.clone().unwrap_or_else(|| "password".into());
    if inner.cfg.session.validation == SessionValidation::Database {
        let s = sessions::Entity::find_by_id(claims.sid.clone())
            .one(&inner.store.db)
            .await?
            .filter(|s| s.revoked_at.is_none())
            .ok_or(AuthError::SessionNotFound)?;
        if s.user_id != claims.sub || s.access_jti != claims.jti {
            return Err(AuthError::TokenInvalid);
        }
        if s.absolute_expires_at <= now_ms || s.expires_at <= now_ms {
            return Err(AuthError::SessionExpired);
        }
        auth_method = s.auth_method;
    }
    Ok(Principal {
        sub: claims.sub,
        session_id: claims.sid,
        roles: claims.roles,
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
