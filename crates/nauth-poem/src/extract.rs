//! `AuthUser`, `OptionalAuthUser`, `RequireRole` and `RequireScope`: the app's routes ask the core, which
//! decides; these only translate.

use std::marker::PhantomData;

use nauth_core::http::AUTH_HEADERS;
use nauth_core::scope::ScopeName;
use nauth_core::{AuthError, NAuth, Principal};
use poem::{FromRequest, Request, RequestBody};

use crate::response::NAuthRejection;
use crate::router::{core_request, missing_data};

fn engine(req: &Request) -> poem::Result<&NAuth> {
    req.data::<NAuth>().ok_or_else(missing_data)
}

fn reject(nauth: &NAuth, e: &AuthError) -> poem::Error {
    NAuthRejection(nauth.error_reply(e)).into()
}

/// The signed-in user; rejects with the contract's 401/403 JSON.
///
/// Needs the engine in the request data: `app.data(nauth)`.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Principal);

impl<'a> FromRequest<'a> for AuthUser {
    async fn from_request(req: &'a Request, _: &mut RequestBody) -> poem::Result<Self> {
        let (nauth, r) = (engine(req)?, core_request(req, Some(AUTH_HEADERS)));
        let answer = match nauth.authenticate_now(&r) {
            Some(answer) => answer,
            None => nauth.authenticate(&r).await,
        };
        answer.map(AuthUser).map_err(|e| reject(nauth, &e))
    }
}

/// The user when the request carries credentials; `None` when it carries none. A bad or
/// expired credential is still rejected, so clients learn to refresh.
#[derive(Debug, Clone)]
pub struct OptionalAuthUser(pub Option<Principal>);

impl<'a> FromRequest<'a> for OptionalAuthUser {
    async fn from_request(req: &'a Request, _: &mut RequestBody) -> poem::Result<Self> {
        let (nauth, r) = (engine(req)?, core_request(req, Some(AUTH_HEADERS)));
        let answer = match nauth.authenticate_optional_now(&r) {
            Some(answer) => answer,
            None => nauth.authenticate_optional(&r).await,
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

impl<'a, R: RoleName> FromRequest<'a> for RequireRole<R> {
    async fn from_request(req: &'a Request, _: &mut RequestBody) -> poem::Result<Self> {
        let (nauth, r) = (engine(req)?, core_request(req, Some(AUTH_HEADERS)));
        let answer = match nauth.authenticate_role_now(&r, R::NAME) {
            Some(answer) => answer,
            None => nauth.authenticate_role(&r, R::NAME).await,
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

impl<'a, S: ScopeName> FromRequest<'a> for RequireScope<S> {
    async fn from_request(req: &'a Request, _: &mut RequestBody) -> poem::Result<Self> {
        let (nauth, r) = (engine(req)?, core_request(req, Some(AUTH_HEADERS)));
        let answer = match nauth.authenticate_scope_now(&r, S::NAME) {
            Some(answer) => answer,
            None => nauth.authenticate_scope(&r, S::NAME).await,
        };
        answer
            .map(|p| RequireScope(p, PhantomData))
            .map_err(|e| reject(nauth, &e))
    }
}
