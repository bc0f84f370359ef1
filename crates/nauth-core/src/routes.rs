//! The routing of requests under the mount prefix, the fixed order of checks (docs/api.md §1:
//! route/method, size, authentication, CSRF, content type, body, flow) and the rendering of
//! outcomes per the delivery mode.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::Inner;
use crate::clock::iso8601;
use crate::delivery::{RefreshFrom, wants_json};
use crate::error::AuthError;
use crate::flows::{self, AuthOutcome, Ctx, Outcome};
use crate::guard;
use crate::http::{Body, Reply, Request};
use crate::input::Input;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Public,
    Auth,
    /// `/logout`: an access token or a refresh token; CSRF-exempt.
    Logout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Signup,
    Login,
    Respond,
    Resend,
    Refresh,
    Logout,
    LogoutAll,
    Revoke,
    Forgot,
    ForgotConfirm,
    ResetPassword,
    VerifyEmail,
    Profile,
    UpdateProfile,
    ChangePassword,
    ChangeEmail,
    ChangeEmailConfirm,
    ResendVerification,
    DeleteAccount,
    Sessions,
    DeleteSession(String),
    ChallengeSetupData,
    MfaStatus,
    MfaSetupData,
    MfaVerifySetup,
    MfaBackupCodes,
    MfaDevices,
    MfaPreferred(String),
    MfaRemoveDevice(String),
    TrustDevice,
    TrustedDevices,
    UntrustAll,
    Untrust(String),
    AuditHistory,
    AdminUsers,
    AdminCreateUser,
    AdminUser(String),
    AdminUpdateUser(String),
    AdminDeleteUser(String),
    AdminForcePasswordChange(String),
    AdminMfaExemption(String),
    AdminDisable(String),
    AdminEnable(String),
    AdminRoles(String),
    AdminSessions(String),
    AdminLogoutAll(String),
    AdminUnlock(String),
    AdminAudit,
    MagicLink,
    MagicLinkVerify,
    ApiKeys,
    CreateApiKey,
    RevokeApiKey(String),
    PasskeyRegisterOptions,
    PasskeyRegister,
    Passkeys,
    RenamePasskey(String),
    DeletePasskey(String),
    PasskeyLoginOptions,
    PasskeyLogin,
    ChallengePasskeyOptions,
    SocialProviders,
    SocialStart(String),
    SocialLink(String),
    SocialCallback(String),
    SocialExchange,
    SocialIdentities,
    SocialUnlink(String),
    Metrics,
    Jwks,
    OpenApi,
    Docs,
    DocsAsset(String),
}

impl Route {
    fn access(&self) -> Access {
        use Route::*;
        match self {
            Signup
            | Login
            | Respond
            | Resend
            | Refresh
            | Revoke
            | Forgot
            | ForgotConfirm
            | ResetPassword
            | VerifyEmail
            | ChallengeSetupData
            | MagicLink
            | MagicLinkVerify
            | PasskeyLoginOptions
            | PasskeyLogin
            | ChallengePasskeyOptions
            | Jwks
            | Metrics
            | OpenApi
            | Docs
            | DocsAsset(_)
            | SocialProviders
            | SocialStart(_)
            | SocialCallback(_)
            | SocialExchange => Access::Public,
            Logout => Access::Logout,
            _ => Access::Auth,
        }
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

/// What a path parameter must look like; anything else is `404 RESOURCE_NOT_FOUND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Param {
    /// The path has no parameter.
    None,
    /// A UUID (`sub`, session, device and trusted-device ids).
    Uuid,
    /// An API key id (16 lower-case hex digits).
    ApiKeyId,
    /// The name of one of the API page's files.
    Asset,
    /// A social login provider's name (`a-z 0-9 _ -`, not a route of its own).
    Provider,
}

/// One route of nauth's own: the method, the path under the mount prefix with at most one
/// `{name}` parameter, and the flow it runs. The table is the router, and the OpenAPI document
/// is checked against it (`openapi::tests`, and on every door by the conformance suite).
pub(crate) struct RouteSpec {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub(crate) method: &'static str,
    /// The path template under the mount prefix, e.g. `/sessions/{sessionId}`.
    pub(crate) path: &'static str,
    /// The parameter's shape.
    pub(crate) param: Param,
    make: fn(String) -> Route,
}

macro_rules! routes {
    ($($method:literal $path:literal $param:ident => $make:expr;)*) => {
        &[$(RouteSpec { method: $method, path: $path, param: Param::$param, make: $make },)*]
    };
}

/// Every route of nauth's own (docs/api.md §3), in the order of the contract.
pub(crate) const ROUTES: &[RouteSpec] = routes! {
    "POST" "/signup" None => |_| Route::Signup;
    "POST" "/login" None => |_| Route::Login;
    "POST" "/respond-challenge" None => |_| Route::Respond;
    "POST" "/challenge/resend" None => |_| Route::Resend;
    "POST" "/challenge/setup-data" None => |_| Route::ChallengeSetupData;
    "POST" "/refresh" None => |_| Route::Refresh;
    "POST" "/logout" None => |_| Route::Logout;
    "POST" "/logout-all" None => |_| Route::LogoutAll;
    "POST" "/revoke" None => |_| Route::Revoke;
    "POST" "/forgot-password" None => |_| Route::Forgot;
    "POST" "/forgot-password/confirm" None => |_| Route::ForgotConfirm;
    "POST" "/reset-password" None => |_| Route::ResetPassword;
    "GET" "/verify-email" None => |_| Route::VerifyEmail;
    "GET" "/profile" None => |_| Route::Profile;
    "PUT" "/profile" None => |_| Route::UpdateProfile;
    "POST" "/change-password" None => |_| Route::ChangePassword;
    "POST" "/change-email" None => |_| Route::ChangeEmail;
    "POST" "/change-email/confirm" None => |_| Route::ChangeEmailConfirm;
    "POST" "/resend-verification" None => |_| Route::ResendVerification;
    "DELETE" "/account" None => |_| Route::DeleteAccount;
    "GET" "/sessions" None => |_| Route::Sessions;
    "DELETE" "/sessions/{sessionId}" Uuid => Route::DeleteSession;
    "POST" "/magic-link" None => |_| Route::MagicLink;
    "GET" "/magic-link/verify" None => |_| Route::MagicLinkVerify;
    "POST" "/passkeys/login/options" None => |_| Route::PasskeyLoginOptions;
    "POST" "/passkeys/login" None => |_| Route::PasskeyLogin;
    "POST" "/challenge/passkey-options" None => |_| Route::ChallengePasskeyOptions;
    "POST" "/passkeys/register/options" None => |_| Route::PasskeyRegisterOptions;
    "POST" "/passkeys/register" None => |_| Route::PasskeyRegister;
    "GET" "/passkeys" None => |_| Route::Passkeys;
    "PUT" "/passkeys/{id}" Uuid => Route::RenamePasskey;
    "DELETE" "/passkeys/{id}" Uuid => Route::DeletePasskey;
    "GET" "/social/providers" None => |_| Route::SocialProviders;
    "POST" "/social/exchange" None => |_| Route::SocialExchange;
    "GET" "/social/identities" None => |_| Route::SocialIdentities;
    "DELETE" "/social/identities/{provider}" Provider => Route::SocialUnlink;
    "GET" "/social/{provider}" Provider => Route::SocialStart;
    "POST" "/social/{provider}/link" Provider => Route::SocialLink;
    "GET" "/social/{provider}/callback" Provider => Route::SocialCallback;
    "POST" "/social/{provider}/callback" Provider => Route::SocialCallback;
    "GET" "/mfa/status" None => |_| Route::MfaStatus;
    "POST" "/mfa/setup-data" None => |_| Route::MfaSetupData;
    "POST" "/mfa/verify-setup" None => |_| Route::MfaVerifySetup;
    "POST" "/mfa/backup-codes" None => |_| Route::MfaBackupCodes;
    "GET" "/mfa/devices" None => |_| Route::MfaDevices;
    "POST" "/mfa/devices/{id}/preferred" Uuid => Route::MfaPreferred;
    "DELETE" "/mfa/devices/{id}" Uuid => Route::MfaRemoveDevice;
    "POST" "/trust-device" None => |_| Route::TrustDevice;
    "GET" "/trusted-devices" None => |_| Route::TrustedDevices;
    "DELETE" "/trusted-devices" None => |_| Route::UntrustAll;
    "DELETE" "/trusted-devices/{id}" Uuid => Route::Untrust;
    "GET" "/api-keys" None => |_| Route::ApiKeys;
    "POST" "/api-keys" None => |_| Route::CreateApiKey;
    "DELETE" "/api-keys/{id}" ApiKeyId => Route::RevokeApiKey;
    "GET" "/audit/history" None => |_| Route::AuditHistory;
    "GET" "/admin/users" None => |_| Route::AdminUsers;
    "POST" "/admin/users" None => |_| Route::AdminCreateUser;
    "GET" "/admin/users/{sub}" Uuid => Route::AdminUser;
    "PUT" "/admin/users/{sub}" Uuid => Route::AdminUpdateUser;
    "DELETE" "/admin/users/{sub}" Uuid => Route::AdminDeleteUser;
    "POST" "/admin/users/{sub}/force-password-change" Uuid => Route::AdminForcePasswordChange;
    "POST" "/admin/users/{sub}/mfa/exemption" Uuid => Route::AdminMfaExemption;
    "POST" "/admin/users/{sub}/disable" Uuid => Route::AdminDisable;
    "POST" "/admin/users/{sub}/enable" Uuid => Route::AdminEnable;
    "POST" "/admin/users/{sub}/roles" Uuid => Route::AdminRoles;
    "GET" "/admin/users/{sub}/sessions" Uuid => Route::AdminSessions;
    "POST" "/admin/users/{sub}/logout-all" Uuid => Route::AdminLogoutAll;
    "POST" "/admin/users/{sub}/unlock" Uuid => Route::AdminUnlock;
    "GET" "/admin/audit" None => |_| Route::AdminAudit;
    "GET" "/.well-known/jwks.json" None => |_| Route::Jwks;
    "GET" "/metrics" None => |_| Route::Metrics;
    "GET" "/openapi.json" None => |_| Route::OpenApi;
    "GET" "/docs" None => |_| Route::Docs;
    "GET" "/docs/{asset}" Asset => Route::DocsAsset;
};

impl RouteSpec {
    /// The parameter when `rest` is this route's path (the parameter well-formed).
    fn matches(&self, rest: &str) -> Option<String> {
        let Some((before, after)) = self.path.split_once('{') else {
            return (rest == self.path).then(String::new);
        };
        let suffix = after.split_once('}').map_or("", |(_, s)| s);
        let value = rest.strip_prefix(before)?.strip_suffix(suffix)?;
        let ok = match self.param {
            Param::None => false,
            Param::Uuid => is_uuid(value),
            Param::ApiKeyId => flows::api_keys::is_id(value),
            Param::Asset => crate::openapi::page::ASSETS.iter().any(|a| a.0 == value),
            Param::Provider => crate::config::is_social_name(value),
        };
        ok.then(|| value.to_string())
    }
}

/// The methods a path serves, each with its route; `None` for an unknown path.
fn routes_for(rest: &str) -> Option<Vec<(&'static str, Route)>> {
    let found: Vec<(&'static str, Route)> = ROUTES
        .iter()
        .filter_map(|spec| spec.matches(rest).map(|p| (spec.method, (spec.make)(p))))
        .collect();
    (!found.is_empty()).then_some(found)
}

fn allow_header(methods: &[(&'static str, Route)]) -> String {
    let mut v: Vec<&str> = Vec::new();
    for (m, _) in methods {
        v.push(m);
        if *m == "GET" {
            v.push("HEAD");
        }
    }
    v.push("OPTIONS");
    v.join(", ")
}

/// The error reply of the contract (status, JSON body, headers).
pub(crate) fn error_reply(inner: &Inner, err: &AuthError) -> Reply {
    if err.status() >= 500 {
        let id = uuid::Uuid::new_v4();
        tracing::error!(request_id = %id, error = %err, "request failed");
    }
    let mut reply = Reply::json(err.status(), &err.body(&iso8601(inner.clock.now_ms())));
    reply.headers.extend(err.headers());
    reply
}

/// The client's address (docs/api.md §7): see [`crate::ip::client_ip`].
pub(crate) fn client_ip(inner: &Inner, req: &Request) -> Option<IpAddr> {
    crate::ip::client_ip(
        req.peer_ip,
        req.header_values("x-forwarded-for"),
        &inner.cfg.trusted_proxies,
    )
}

fn is_json_content_type(req: &Request) -> bool {
    req.header("content-type").is_some_and(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/json")
    })
}

/// Answers one request under the mount prefix.
pub(crate) async fn handle(inner: &Arc<Inner>, req: Request) -> Reply {
    use tracing::Instrument;
    let head = req.method == "HEAD";
    let id = request_id(&req);
    let span =
        tracing::info_span!("nauth", request_id = %id, method = %req.method, path = %req.path);
    let mut reply = match route_and_run(inner, &req).instrument(span.clone()).await {
        Ok(r) => r,
        Err(e) => span.in_scope(|| error_reply(inner, &e)),
    };
    if head {
        reply.body.clear();
    }
    inner.metrics.response(reply.status);
    reply.with_header("x-request-id", id)
}

/// The request's id: the client's (or a proxy's) `X-Request-Id` when it is 1 to 128 of
/// `A-Z a-z 0-9 - _ . :`, else a new UUID. It is echoed in `X-Request-Id` and names the
/// request's log lines (the `nauth` span), so a 500 can be found from the client's side.
fn request_id(req: &Request) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.:".contains(c);
    match req.header("x-request-id") {
        Some(id) if (1..=128).contains(&id.len()) && id.chars().all(ok) => id.to_string(),
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// `GET <mount>/metrics`: `404` unless `[metrics] enabled`; with `metrics.token` set, the
/// scraper's bearer must match it.
fn metrics_reply(inner: &Inner, req: &Request) -> Result<Reply, AuthError> {
    let m = &inner.cfg.metrics;
    if !m.enabled {
        return Err(AuthError::NotFound);
    }
    if !m.token.is_empty() {
        let bearer = req.bearer().ok_or(AuthError::TokenMissing)?;
        if !crate::codes::ct_eq(bearer, &m.token) {
            return Err(AuthError::TokenInvalid);
        }
    }
    Ok(Reply {
        status: 200,
        headers: vec![
            (
                "content-type".into(),
                "text/plain; version=0.0.4; charset=utf-8".into(),
            ),
            ("cache-control".into(), "no-store".into()),
        ],
        body: inner.metrics.render().into_bytes(),
    })
}

async fn route_and_run(inner: &Arc<Inner>, req: &Request) -> Result<Reply, AuthError> {
    let rest = req
        .path
        .strip_prefix(inner.cfg.mount_prefix.as_str())
        .filter(|r| r.starts_with('/'))
        .ok_or(AuthError::NotFound)?;
    let methods = routes_for(rest).ok_or(AuthError::NotFound)?;
    let allow = allow_header(&methods);
    if req.method == "OPTIONS" {
        return Ok(Reply::empty(204).with_header("allow", allow));
    }
    let method = if req.method == "HEAD" {
        "GET"
    } else {
        req.method.as_str()
    };
    let route = methods
        .into_iter()
        .find(|(m, _)| *m == method)
        .map(|(_, r)| r)
        .ok_or(AuthError::MethodNotAllowed { allow })?;
    match &route {
        Route::Metrics => return metrics_reply(inner, req),
        Route::OpenApi | Route::Docs | Route::DocsAsset(_) => {
            return crate::openapi::serve(inner, &route_name(&route));
        }
        _ => {}
    }
    let body: &[u8] = match &req.body {
        Body::TooLarge => return Err(AuthError::PayloadTooLarge),
        Body::Bytes(b) => b,
        Body::Empty => &[],
    };
    let principal = match route.access() {
        // API keys are for the app's routes: they never manage the account (or keys).
        Access::Auth if guard::presented_api_key(req).is_some() => {
            return Err(AuthError::Forbidden);
        }
        Access::Auth => Some(guard::principal(inner, req).await?),
        _ => None,
    };
    // A provider's form_post callback comes from the provider's origin, as a form.
    let form_callback = matches!(route, Route::SocialCallback(_)) && req.method == "POST";
    if !form_callback {
        guard::check_origin(inner, req)?;
    }
    if let Some(p) = principal.as_ref().filter(|p| p.via_cookie)
        && guard::is_unsafe(&req.method)
    {
        guard::check_csrf(inner, req, &p.session_id)?;
    }
    if route == Route::Jwks {
        return Ok(jwks(inner));
    }
    if form_callback {
        let ip = client_ip(inner, req);
        inner.keyring.recheck(inner).await;
        let ctx = Ctx::new(inner, req, inner.clock.now_ms(), ip, None);
        let result = social_callback(&ctx, &route, body).await;
        flows::effects::run(&ctx, result.is_ok()).await;
        return Ok(render(inner, &ctx, result?, false));
    }
    if !body.is_empty() && !is_json_content_type(req) {
        return Err(AuthError::UnsupportedMediaType);
    }
    let input = Input::parse(body)?;
    let refresh_from = match route {
        Route::Refresh | Route::Logout if input.has("refreshToken") => RefreshFrom::Body,
        Route::Refresh if req.cookie(&inner.cookies.refresh).is_some() => RefreshFrom::Cookie,
        _ => RefreshFrom::Nowhere,
    };
    drop(input);
    let json_delivery = wants_json(inner.cfg.token_delivery.mode, req, refresh_from);
    let ip = client_ip(inner, req);
    // A rotation made by another instance is signed with here within the re-check interval.
    inner.keyring.recheck(inner).await;
    let ctx = Ctx::new(inner, req, inner.clock.now_ms(), ip, principal);
    // A transaction that lost a lock race was already run again by `Store::write`; the
    // session cache was invalidated after every commit that wrote sessions.
    let refresh = route == Route::Refresh;
    let result = run(&ctx, route, Input::parse(body)?).await;
    if refresh {
        inner.metrics.refresh(result.is_ok());
    }
    flows::effects::run(&ctx, result.is_ok()).await;
    let outcome = result?;
    Ok(render(inner, &ctx, outcome, json_delivery))
}

/// What `openapi::serve` answers: `openapi.json`, `docs`, or an asset's name.
fn route_name(route: &Route) -> String {
    match route {
        Route::OpenApi => "openapi.json".into(),
        Route::DocsAsset(name) => name.clone(),
        _ => "docs".into(),
    }
}

/// `GET /.well-known/jwks.json`: the public keys tokens are still verified with (none under
/// HS256), cacheable for [`crate::signing_keys::JWKS_MAX_AGE_SECS`].
fn jwks(inner: &Inner) -> Reply {
    let doc = inner.signer.current().jwks(inner.clock.now_ms() / 1000);
    let mut r = Reply::json(200, &doc);
    r.headers.retain(|(k, _)| k != "cache-control");
    r.with_header(
        "cache-control",
        format!("public, max-age={}", crate::signing_keys::JWKS_MAX_AGE_SECS),
    )
}

/// The `sub` an operator's admin actions are audited under (`adminSub`).
pub(crate) const OPERATOR: &str = "operator";

/// Runs one admin API call as the operator (the command line, or the app's own code):
/// `rest` is the path under the mount prefix with its query (`/admin/users?limit=5`). The
/// same flows, checks, effects and audit rows as over HTTP, without a session and without a
/// fresh proof. Only admin routes.
pub(crate) async fn operate(
    inner: &Arc<Inner>,
    method: &str,
    rest: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), AuthError> {
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (rest, None),
    };
    let methods = routes_for(path)
        .filter(|_| path.starts_with("/admin/"))
        .ok_or(AuthError::NotFound)?;
    let allow = allow_header(&methods);
    let method = method.to_ascii_uppercase();
    let route = methods
        .into_iter()
        .find(|(m, _)| *m == method)
        .map(|(_, r)| r)
        .ok_or(AuthError::MethodNotAllowed { allow })?;
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let req = Request {
        path: format!("{}{path}", inner.cfg.mount_prefix),
        query,
        headers: vec![("user-agent".into(), "nauth operator".into())],
        body: Body::Bytes(bytes.clone()),
        peer_ip: None,
        method,
    };
    let principal = guard::Principal {
        sub: OPERATOR.into(),
        session_id: String::new(),
        roles: vec!["admin".into()],
        auth_method: OPERATOR.into(),
        via_cookie: false,
        scopes: None,
        api_key_id: None,
    };
    let mut ctx = Ctx::new(inner, &req, inner.clock.now_ms(), None, Some(principal));
    ctx.operator = true;
    let result = run(&ctx, route, Input::parse(&bytes)?).await;
    flows::effects::run(&ctx, result.is_ok()).await;
    match result? {
        Outcome::Json(status, body) => Ok((status, body)),
        Outcome::JsonClearing { body, .. } => Ok((200, body)),
        _ => Err(AuthError::Internal(
            "an admin route answered with tokens".into(),
        )),
    }
}

/// A provider's form_post callback (Apple): the body is a form, not JSON.
async fn social_callback(ctx: &Ctx<'_>, route: &Route, body: &[u8]) -> Result<Outcome, AuthError> {
    match route {
        #[cfg(feature = "social")]
        Route::SocialCallback(name) => flows::social::callback(ctx, name, body).await,
        _ => {
            let _ = (ctx, body);
            Err(AuthError::NotFound)
        }
    }
}

async fn run(ctx: &Ctx<'_>, route: Route, input: Input) -> Result<Outcome, AuthError> {
    use flows::{account, admin, api_keys, audit, auth, magic, mfa, recovery, session};
    match route {
        Route::Signup => auth::signup(ctx, input).await,
        Route::Login => auth::login(ctx, input).await,
        Route::Respond => auth::respond(ctx, input).await,
        Route::Resend => auth::resend(ctx, input).await,
        Route::Refresh => session::refresh(ctx, input).await,
        Route::Logout => session::logout(ctx, input).await,
        Route::LogoutAll => session::logout_all(ctx, input).await,
        Route::Revoke => session::revoke(ctx, input).await,
        Route::Forgot => recovery::forgot(ctx, input).await,
        Route::ForgotConfirm => recovery::confirm(ctx, input).await,
        Route::ResetPassword => recovery::reset_with_link(ctx, input).await,
        Route::VerifyEmail => recovery::verify_link(ctx).await,
        Route::Profile => account::profile(ctx).await,
        Route::UpdateProfile => account::update_profile(ctx, input).await,
        Route::ChangePassword => account::change_password(ctx, input).await,
        Route::ChangeEmail => account::change_email(ctx, input).await,
        Route::ChangeEmailConfirm => account::confirm_email_change(ctx, input).await,
        Route::ResendVerification => account::resend_verification(ctx, input).await,
        Route::DeleteAccount => account::delete_account(ctx, input).await,
        Route::Sessions => session::list(ctx).await,
        Route::DeleteSession(id) => session::delete(ctx, &id).await,
        Route::ChallengeSetupData => auth::challenge_setup_data(ctx, input).await,
        Route::MfaStatus => mfa::status(ctx).await,
        Route::MfaSetupData => mfa::setup(ctx, input).await,
        Route::MfaVerifySetup => mfa::verify(ctx, input).await,
        Route::MfaBackupCodes => mfa::new_backup_codes(ctx, input).await,
        Route::MfaDevices => mfa::list_devices(ctx).await,
        Route::MfaPreferred(id) => mfa::set_preferred(ctx, &id).await,
        Route::MfaRemoveDevice(id) => mfa::remove_device(ctx, &id, input).await,
        Route::TrustDevice => mfa::trust_device(ctx, input).await,
        Route::TrustedDevices => mfa::list_trusted(ctx).await,
        Route::UntrustAll => mfa::untrust(ctx, None).await,
        Route::Untrust(id) => mfa::untrust(ctx, Some(&id)).await,
        Route::AuditHistory => audit::history(ctx).await,
        Route::AdminUsers => admin::users(ctx).await,
        Route::AdminCreateUser => admin::create(ctx, input).await,
        Route::AdminUser(sub) => admin::user(ctx, &sub).await,
        Route::AdminUpdateUser(sub) => admin::update(ctx, &sub, input).await,
        Route::AdminDeleteUser(sub) => admin::delete(ctx, &sub, input).await,
        Route::AdminForcePasswordChange(sub) => {
            admin::force_password_change(ctx, &sub, input).await
        }
        Route::AdminMfaExemption(sub) => admin::mfa_exemption(ctx, &sub, input).await,
        Route::AdminDisable(sub) => admin::disable(ctx, &sub, input).await,
        Route::AdminEnable(sub) => admin::enable(ctx, &sub).await,
        Route::AdminRoles(sub) => admin::set_roles(ctx, &sub, input).await,
        Route::AdminSessions(sub) => admin::sessions(ctx, &sub).await,
        Route::AdminLogoutAll(sub) => admin::logout_all(ctx, &sub).await,
        Route::AdminUnlock(sub) => admin::unlock(ctx, &sub).await,
        Route::AdminAudit => admin::audit(ctx).await,
        Route::Metrics => Err(AuthError::NotFound), // answered before the flows
        Route::MagicLink => magic::request(ctx, input).await,
        Route::MagicLinkVerify => magic::verify(ctx).await,
        Route::ApiKeys => api_keys::list(ctx).await,
        Route::CreateApiKey => api_keys::create(ctx, input).await,
        Route::RevokeApiKey(id) => api_keys::revoke(ctx, &id).await,
        #[cfg(feature = "passkeys")]
        Route::PasskeyRegisterOptions => flows::passkeys::register_options(ctx, input).await,
        #[cfg(feature = "passkeys")]
        Route::PasskeyRegister => flows::passkeys::register(ctx, input).await,
        #[cfg(feature = "passkeys")]
        Route::Passkeys => flows::passkeys::list(ctx).await,
        #[cfg(feature = "passkeys")]
        Route::RenamePasskey(id) => flows::passkeys::rename(ctx, &id, input).await,
        #[cfg(feature = "passkeys")]
        Route::DeletePasskey(id) => flows::passkeys::remove(ctx, &id, input).await,
        #[cfg(feature = "passkeys")]
        Route::PasskeyLoginOptions => flows::passkeys::login_options(ctx, input).await,
        #[cfg(feature = "passkeys")]
        Route::PasskeyLogin => flows::passkeys::login(ctx, input).await,
        #[cfg(feature = "passkeys")]
        Route::ChallengePasskeyOptions => flows::passkeys::mfa_options(ctx, input).await,
        // Without the `passkeys` feature the routes exist and answer 404, like any feature
        // that is off.
        #[cfg(not(feature = "passkeys"))]
        Route::PasskeyRegisterOptions
        | Route::PasskeyRegister
        | Route::Passkeys
        | Route::RenamePasskey(_)
        | Route::DeletePasskey(_)
        | Route::PasskeyLoginOptions
        | Route::PasskeyLogin
        | Route::ChallengePasskeyOptions => Err(AuthError::NotFound),
        #[cfg(feature = "social")]
        Route::SocialProviders => flows::social::providers(ctx).await,
        #[cfg(feature = "social")]
        Route::SocialStart(name) => flows::social::start(ctx, &name).await,
        #[cfg(feature = "social")]
        Route::SocialLink(name) => flows::social::link_start(ctx, &name, input).await,
        #[cfg(feature = "social")]
        Route::SocialCallback(name) => flows::social::callback(ctx, &name, &[]).await,
        #[cfg(feature = "social")]
        Route::SocialExchange => flows::social::exchange(ctx, input).await,
        #[cfg(feature = "social")]
        Route::SocialIdentities => flows::social::identities(ctx).await,
        #[cfg(feature = "social")]
        Route::SocialUnlink(name) => flows::social::unlink(ctx, &name).await,
        // Without the `social` feature no provider exists: every social route is unknown.
        #[cfg(not(feature = "social"))]
        Route::SocialProviders
        | Route::SocialStart(_)
        | Route::SocialLink(_)
        | Route::SocialCallback(_)
        | Route::SocialExchange
        | Route::SocialIdentities
        | Route::SocialUnlink(_) => Err(AuthError::NotFound),
        // Answered before the flows.
        Route::Jwks | Route::OpenApi | Route::Docs | Route::DocsAsset(_) => {
            Err(AuthError::NotFound)
        }
    }
}

/// A challenge answer (docs/api.md §2).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Challenge)]
pub(crate) struct ChallengeBody {
    /// `VERIFY_EMAIL`, `VERIFY_PHONE`, `MFA_SETUP_REQUIRED`, `MFA_REQUIRED` or
    /// `FORCE_CHANGE_PASSWORD`.
    challenge_name: &'static str,
    /// Opaque, single-use, 15 minutes: sent back with the answer.
    session: String,
    /// String values per challenge: `codeDeliveryDestination` (masked),
    /// `requiresPhoneCollection`, `allowedMethods`, `availableMethods`, `preferredMethod`.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    challenge_parameters: serde_json::Map<String, Value>,
    /// The user's id.
    user_sub: String,
}

/// A tokens answer (docs/api.md §2): the token fields only for json delivery.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct TokensBody {
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    tokens: Option<crate::delivery::TokenFields>,
    auth_method: String,
    trusted: bool,
    user: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup_codes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_token: Option<String>,
}

fn device_cookie(inner: &Inner, token: &str) -> String {
    let ttl = crate::clock::ms(inner.cfg.mfa.remember_device_ttl) / 1000;
    inner.cookies.set_device(token, ttl)
}

fn render(inner: &Inner, ctx: &Ctx<'_>, outcome: Outcome, json_delivery: bool) -> Reply {
    let now_s = ctx.now_s();
    match outcome {
        Outcome::Json(status, body) => Reply::json(status, &body),
        Outcome::Redirect(location) => Reply::empty(302).with_header("location", location),
        Outcome::AuthRedirect(outcome, _) if json_delivery => {
            render(inner, ctx, Outcome::Auth(200, outcome), true)
        }
        Outcome::AuthRedirect(AuthOutcome::Tokens { tokens, .. }, location) => {
            let mut r = Reply::empty(302).with_header("location", location);
            for c in inner.cookies.set_tokens(&tokens, now_s) {
                r.headers.push(("set-cookie".into(), c));
            }
            r
        }
        Outcome::AuthRedirect(AuthOutcome::Challenge { name, session, .. }, location) => {
            let sep = if location.contains('?') { '&' } else { '?' };
            let location = format!(
                "{location}{sep}challenge={}&session={}",
                name.as_str(),
                crate::http::percent_encode(&session)
            );
            Reply::empty(302).with_header("location", location)
        }
        Outcome::JsonClearing { body, device } => {
            let mut r = Reply::json(200, &body);
            if !json_delivery {
                for c in inner.cookies.clear(device) {
                    r.headers.push(("set-cookie".into(), c));
                }
            }
            r
        }
        Outcome::JsonWithTokens(mut body, tokens) => {
            if json_delivery {
                if let Some(m) = body.as_object_mut() {
                    m.extend(tokens.json_fields());
                }
                Reply::json(200, &body)
            } else {
                let mut r = Reply::json(200, &body);
                for c in inner.cookies.set_tokens(&tokens, now_s) {
                    r.headers.push(("set-cookie".into(), c));
                }
                r
            }
        }
        Outcome::Auth(
            status,
            AuthOutcome::Challenge {
                name,
                session,
                params,
                user_sub,
            },
        ) => {
            let body = ChallengeBody {
                challenge_name: name.as_str(),
                session,
                challenge_parameters: params,
                user_sub,
            };
            Reply::json(status, &flows::body(&body))
        }
        Outcome::Auth(
            status,
            AuthOutcome::Tokens {
                tokens,
                auth_method,
                user,
                trusted,
                backup_codes,
                device_token,
            },
        ) => {
            let body = TokensBody {
                tokens: json_delivery.then(|| tokens.fields()),
                auth_method,
                trusted,
                user,
                backup_codes,
                device_token: device_token.clone().filter(|_| json_delivery),
            };
            let mut r = Reply::json(status, &flows::body(&body));
            if !json_delivery {
                for c in inner.cookies.set_tokens(&tokens, now_s) {
                    r.headers.push(("set-cookie".into(), c));
                }
                if let Some(t) = device_token {
                    r.headers
                        .push(("set-cookie".into(), device_cookie(inner, &t)));
                }
            }
            r
        }
        Outcome::Reply(reply) => reply,
        Outcome::DeviceToken(token) => {
            if json_delivery {
                Reply::json(200, &json!({ "deviceToken": token }))
            } else {
                Reply::json(200, &json!({ "success": true }))
                    .with_header("set-cookie", device_cookie(inner, &token))
            }
        }
    }
}
