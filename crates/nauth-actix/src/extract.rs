//! `AuthUser`, `OptionalAuthUser`, `RequireRole` and `RequireScope`: the app's routes ask the core, which
//! decides; these only translate. The engine comes from the app data (`.app_data(nauth)`).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use nauth_core::scope::ScopeName;
use nauth_core::{AuthError, NAuth, Principal};

use crate::response::{NAuthRejection, missing_engine};
use crate::router::core_request;

type Extracting<T> = Pin<Box<dyn Future<Output = Result<T, NAuthRejection>>>>;

/// Answers at once when the core can (no I/O needed: no task, no engine clone), else
/// returns the engine and request for the asynchronous path.
// The `Err` side carries the request on to the slow path by value, once per request.
#[allow(clippy::result_large_err)]
fn fast<T: 'static>(
    req: &HttpRequest,
    now: impl FnOnce(&NAuth, &nauth_core::Request) -> Option<Result<T, AuthError>>,
) -> Result<Extracting<T>, (NAuth, nauth_core::Request)> {
    let Some(nauth) = req.app_data::<NAuth>() else {
        return Ok(Box::pin(std::future::ready(Err(missing_engine()))));
    };
    let r = core_request(req, Some(nauth_core::http::AUTH_HEADERS));
    match now(nauth, &r) {
        Some(answer) => Ok(Box::pin(std::future::ready(
            answer.map_err(|e| reject(nauth, &e)),
        ))),
        None => Err((nauth.clone(), r)),
    }
}

fn reject(nauth: &NAuth, e: &AuthError) -> NAuthRejection {
    NAuthRejection(nauth.error_reply(e))
}

/// The signed-in user; rejects with the contract's 401/403 JSON.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Principal);

impl FromRequest for AuthUser {
    type Error = NAuthRejection;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        match fast(req, |n, r| n.authenticate_now(r).map(|a| a.map(AuthUser))) {
            Ok(ready) => ready,
            Err((nauth, r)) => Box::pin(async move {
                let res = nauth.authenticate(&r).await;
                res.map(AuthUser).map_err(|e| reject(&nauth, &e))
            }),
        }
    }
}

/// The user when the request carries credentials; `None` when it carries none (a bad or
/// expired credential is still a 401, so clients learn to refresh).
#[derive(Debug, Clone)]
pub struct OptionalAuthUser(pub Option<Principal>);

impl FromRequest for OptionalAuthUser {
    type Error = NAuthRejection;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let now = |n: &NAuth, r: &_| {
            n.authenticate_optional_now(r)
                .map(|a| a.map(OptionalAuthUser))
        };
        match fast(req, now) {
            Ok(ready) => ready,
            Err((nauth, r)) => Box::pin(async move {
                let res = nauth.authenticate_optional(&r).await;
                res.map(OptionalAuthUser).map_err(|e| reject(&nauth, &e))
            }),
        }
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

impl<R: RoleName + 'static> FromRequest for RequireRole<R> {
    type Error = NAuthRejection;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let now = |n: &NAuth, r: &_| {
            n.authenticate_role_now(r, R::NAME)
                .map(|a| a.map(|p| RequireRole(p, PhantomData)))
        };
        match fast(req, now) {
            Ok(ready) => ready,
            Err((nauth, r)) => Box::pin(async move {
                let res = nauth.authenticate_role(&r, R::NAME).await;
                res.map(|p| RequireRole(p, PhantomData))
                    .map_err(|e| reject(&nauth, &e))
            }),
        }
    }
}

/// The caller, who must hold scope `S` (`403 FORBIDDEN` otherwise): a user's session holds
/// every scope, an API key the scopes it was created with.
#[derive(Debug, Clone)]
pub struct RequireScope<S: ScopeName>(pub Principal, pub PhantomData<S>);

impl<S: ScopeName + 'static> FromRequest for RequireScope<S> {
    type Error = NAuthRejection;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let now = |n: &NAuth, r: &_| {
            n.authenticate_scope_now(r, S::NAME)
                .map(|a| a.map(|p| RequireScope(p, PhantomData)))
        };
        match fast(req, now) {
            Ok(ready) => ready,
            Err((nauth, r)) => Box::pin(async move {
                let res = nauth.authenticate_scope(&r, S::NAME).await;
                res.map(|p| RequireScope(p, PhantomData))
                    .map_err(|e| reject(&nauth, &e))
            }),
        }
    }
}
