//! `AuthUser`, `OptionalAuthUser`, `RequireRole` and `RequireScope`: the app's routes ask the core, which
//! decides; these only translate.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use nauth_core::http::AUTH_HEADERS;
use nauth_core::scope::ScopeName;
use nauth_core::{NAuth, Principal};

use crate::response::NAuthRejection;
use crate::router::{core_request, missing_extension};

// The error is the finished rejection, returned as it is; boxing it would cost an
// allocation on every rejected request for nothing.
#[allow(clippy::result_large_err)]
fn engine(parts: &Parts) -> Result<&NAuth, Response> {
    parts
        .extensions
        .get::<NAuth>()
        .ok_or_else(missing_extension)
}

fn reject(nauth: &NAuth, e: &nauth_core::AuthError) -> Response {
    NAuthRejection(nauth.error_reply(e)).into_response()
}

/// The signed-in user; rejects with the contract's 401/403 JSON.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        let (nauth, req) = (engine(parts)?, core_request(parts, Some(AUTH_HEADERS)));
        let answer = match nauth.authenticate_now(&req) {
            Some(answer) => answer,
            None => nauth.authenticate(&req).await,
        };
        answer.map(AuthUser).map_err(|e| reject(nauth, &e))
    }
}

/// The user when the request carries credentials; `None` when it carries none.
#[derive(Debug, Clone)]
pub struct OptionalAuthUser(pub Option<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for OptionalAuthUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        let (nauth, req) = (engine(parts)?, core_request(parts, Some(AUTH_HEADERS)));
        let answer = match nauth.authenticate_optional_now(&req) {
            Some(answer) => answer,
            None => nauth.authenticate_optional(&req).await,
        };
        answer.map(OptionalAuthUser).map_err(|e| reject(nauth, &e))
    }
}

/// Names a role for [`RequireRole`].
pub trait RoleName {
    /// The role, e.g. `"admin"`.
    const NAME: &'static str;
}

/// The `admin` role.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl RoleName for Admin {
    const NAME: &'static str = "admin";
}

/// The signed-in user, who must have role `R` (`403 FORBIDDEN` otherwise).
#[derive(Debug, Clone)]
pub struct RequireRole<R: RoleName = Admin>(pub Principal, pub PhantomData<R>);

impl<R: RoleName + Send + Sync, S: Send + Sync> FromRequestParts<S> for RequireRole<R> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        let (nauth, req) = (engine(parts)?, core_request(parts, Some(AUTH_HEADERS)));
        let answer = match nauth.authenticate_role_now(&req, R::NAME) {
            Some(answer) => answer,
            None => nauth.authenticate_role(&req, R::NAME).await,
        };
        answer
            .map(|p| RequireRole(p, PhantomData))
            .map_err(|e| reject(nauth, &e))
    }
}

/// The caller, who must hold scope `S` (`403 FORBIDDEN` otherwise): a user's session holds
/// every scope, an API key the scopes it was created with.
#[derive(Debug, Clone)]
pub struct RequireScope<S: ScopeName>(pub Principal, pub PhantomData<S>);

impl<Sc: ScopeName + Send + Sync, S: Send + Sync> FromRequestParts<S> for RequireScope<Sc> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        let (nauth, req) = (engine(parts)?, core_request(parts, Some(AUTH_HEADERS)));
        let answer = match nauth.authenticate_scope_now(&req, Sc::NAME) {
            Some(answer) => answer,
            None => nauth.authenticate_scope(&req, Sc::NAME).await,
        };
        answer
            .map(|p| RequireScope(p, PhantomData))
            .map_err(|e| reject(nauth, &e))
    }
}
