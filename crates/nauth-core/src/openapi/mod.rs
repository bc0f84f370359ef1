//! The OpenAPI 3.1 document of nauth's own routes (docs/api.md §3), served at
//! `GET <mount>/openapi.json` (`[openapi] enabled`, on by default), and the interactive API
//! page at `GET <mount>/docs` (`[openapi] page`, off by default; cargo feature `api-docs`).
//!
//! The document is built once at start from the configuration (mount prefix, cookie names,
//! MFA methods, API-key scopes). Its schemas are the flows' own answer types (users, sessions,
//! devices, keys, audit rows, challenges, tokens; `#[derive(ToSchema)]` where they are
//! defined) and the request types of [`schemas`]. Every route of the router's table
//! ([`crate::routes::ROUTES`]) has exactly one operation here: [`operations`] is checked
//! against the table by a unit test, and against each door by the conformance suite.
//!
//! Every operation lists the error codes it can answer, per status, as an `enum` of the
//! error's `code`; the conformance suite checks every error it sees against that list.

pub(crate) mod page;
mod schemas;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use crate::config::NAuthConfig;
use crate::error::AuthError;
use crate::http::Reply;
use crate::routes::{Param, ROUTES};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// No token.
    Public,
    /// A signed-in user (bearer or access cookie; an API key is refused).
    User,
    /// A signed-in user with role `admin`.
    Admin,
    /// `/logout`: an access token or a refresh token.
    Logout,
    /// `/metrics`: the scraper's `metrics.token`, when set.
    Scraper,
}

/// One documented operation.
struct Op {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    who: Who,
    query: &'static [(&'static str, bool, &'static str)],
    body: Option<&'static str>,
    ok: Vec<(u16, &'static str, Option<&'static str>)>,
    errors: &'static [&'static str],
    /// The flows' common checks apply (body parsing, origin, size, type).
    flow: bool,
}

fn op(method: &'static str, path: &'static str, tag: &'static str, who: Who) -> Op {
    Op {
        method,
        path,
        tag,
        summary: "",
        who,
        query: &[],
        body: None,
        ok: Vec::new(),
        errors: &[],
        flow: true,
    }
}

impl Op {
    fn summary(mut self, s: &'static str) -> Self {
        self.summary = s;
        self
    }
    fn body(mut self, schema: &'static str) -> Self {
        self.body = Some(schema);
        self
    }
    fn query(mut self, q: &'static [(&'static str, bool, &'static str)]) -> Self {
        self.query = q;
        self
    }
    fn ok(mut self, status: u16, what: &'static str, schema: &'static str) -> Self {
        self.ok.push((status, what, Some(schema)));
        self
    }
    fn redirect(mut self, what: &'static str) -> Self {
        self.ok.push((302, what, None));
        self
    }
    fn errors(mut self, e: &'static [&'static str]) -> Self {
        self.errors = e;
        self
    }
    /// Answered before the flows: no body is read.
    fn bare(mut self) -> Self {
        self.flow = false;
        self
    }
}

const PAGE: (&str, bool, &str) = ("page", false, "Page number from 1 (default 1).");
const LIMIT: (&str, bool, &str) = ("limit", false, "Rows per page, 1 to 100 (default 20).");
const TOKEN: (&str, bool, &str) = ("token", true, "The token of the mailed link.");

/// What a social login callback can answer.
const SOCIAL_CALLBACK_ERRORS: &[&str] = &[
    "RESOURCE_NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "SOCIAL_STATE_INVALID",
    "SOCIAL_CALLBACK_REPLAYED",
    "SOCIAL_NONCE_INVALID",
    "SOCIAL_ID_TOKEN_INVALID",
    "SOCIAL_EMAIL_UNVERIFIED",
    "SOCIAL_EMAIL_DOMAIN_NOT_ALLOWED",
    "SOCIAL_PROVIDER_ERROR",
    "SOCIAL_ACCOUNT_EXISTS",
    "SOCIAL_ACCOUNT_LINKED",
    "SOCIAL_PROVIDER_UNAVAILABLE",
    "SIGNUP_DISABLED",
    "AUTH_ACCOUNT_LOCKED",
    "AUTH_SESSION_NOT_FOUND",
    "RATE_LIMIT_SIGNUP",
    "RATE_LIMIT_LOGIN",
    "RATE_LIMIT_EMAIL",
    "RATE_LIMIT_SMS",
];

/// Every operation of the document, in the order of docs/api.md §3.
#[rustfmt::skip]
fn operations() -> Vec<Op> {
    use Who::*;
    vec![
        op("POST", "/signup", "Core", Public).summary("Create an account")
            .body("SignupRequest").ok(201, "A challenge (VERIFY_EMAIL, …) or tokens", "AuthResponse")
            .errors(&["SIGNUP_WEAK_PASSWORD", "SIGNUP_DISABLED", "SIGNUP_EMAIL_EXISTS",
                "SIGNUP_USERNAME_EXISTS", "SIGNUP_PHONE_EXISTS", "RATE_LIMIT_SIGNUP",
                "RATE_LIMIT_EMAIL", "RATE_LIMIT_SMS"]),
        op("POST", "/login", "Core", Public).summary("Log in with a password")
            .body("LoginRequest").ok(200, "A challenge or tokens", "AuthResponse")
            .errors(&["AUTH_INVALID_CREDENTIALS", "AUTH_ACCOUNT_LOCKED", "RATE_LIMIT_LOGIN",
                "RATE_LIMIT_EMAIL", "RATE_LIMIT_SMS"]),
        op("POST", "/respond-challenge", "Core", Public).summary("Answer a challenge")
            .body("RespondRequest").ok(200, "The next challenge or tokens", "AuthResponse")
            .errors(&["VERIFY_CODE_INVALID", "VERIFY_CODE_EXPIRED", "CHALLENGE_INVALID",
                "CHALLENGE_EXPIRED", "CHALLENGE_ALREADY_COMPLETED", "CHALLENGE_MAX_ATTEMPTS",
                "CHALLENGE_TYPE_MISMATCH", "MFA_METHOD_NOT_ALLOWED", "SIGNUP_WEAK_PASSWORD",
                "PASSWORD_REUSED", "SIGNUP_PHONE_EXISTS", "AUTH_ACCOUNT_LOCKED",
                "PASSKEY_CHALLENGE_INVALID", "PASSKEY_CHALLENGE_EXPIRED", "RESOURCE_NOT_FOUND",
                "RATE_LIMIT_LOGIN", "RATE_LIMIT_EMAIL", "RATE_LIMIT_SMS"]),
        op("POST", "/challenge/resend", "Core", Public).summary("Send a challenge's code again")
            .body("ResendRequest").ok(200, "Where the code went", "Destination")
            .errors(&["CHALLENGE_INVALID", "CHALLENGE_EXPIRED", "CHALLENGE_ALREADY_COMPLETED",
                "CHALLENGE_MAX_ATTEMPTS", "CHALLENGE_TYPE_MISMATCH", "MFA_METHOD_NOT_ALLOWED",
                "RATE_LIMIT_RESEND", "RATE_LIMIT_EMAIL", "RATE_LIMIT_SMS"]),
        op("POST", "/challenge/setup-data", "Core", Public)
            .summary("Start enrolling a factor during MFA_SETUP_REQUIRED")
            .body("ChallengeSetupRequest").ok(200, "The factor's setup data", "ChallengeSetupResponse")
            .errors(&["CHALLENGE_INVALID", "CHALLENGE_EXPIRED", "CHALLENGE_ALREADY_COMPLETED",
                "CHALLENGE_MAX_ATTEMPTS", "CHALLENGE_TYPE_MISMATCH", "MFA_METHOD_NOT_ALLOWED",
                "SIGNUP_PHONE_EXISTS", "RATE_LIMIT_RESEND", "RATE_LIMIT_EMAIL", "RATE_LIMIT_SMS"]),
        op("POST", "/refresh", "Core", Public).summary("Rotate the token pair")
            .body("RefreshRequest").ok(200, "A new pair of the same session", "AuthResponse")
            .errors(&["AUTH_TOKEN_MISSING", "AUTH_TOKEN_INVALID", "AUTH_TOKEN_EXPIRED",
                "AUTH_TOKEN_REUSE_DETECTED", "AUTH_SESSION_NOT_FOUND", "AUTH_SESSION_EXPIRED",
                "AUTH_COOKIES_NOT_ALLOWED", "AUTH_ACCOUNT_LOCKED"]),
        op("POST", "/logout", "Core", Logout).summary("End this session")
            .body("LogoutRequest").ok(200, "Done (idempotent)", "Success"),
        op("POST", "/logout-all", "Core", User).summary("End every session of the user")
            .body("LogoutAllRequest").ok(200, "How many sessions ended", "RevokedCount"),
        op("POST", "/revoke", "Core", Public).summary("Revoke a refresh token's family")
            .body("RevokeRequest").ok(200, "Done, whether or not the token was valid", "Success"),
        op("POST", "/forgot-password", "Core", Public).summary("Ask for a reset code")
            .body("ForgotRequest").ok(200, "The same answer whether or not the account exists", "ForgotResponse")
            .errors(&["RATE_LIMIT_PASSWORD_RESET"]),
        op("POST", "/forgot-password/confirm", "Core", Public).summary("Reset the password with the code")
            .body("ForgotConfirmRequest").ok(200, "Password changed; every session ended", "Success")
            .errors(&["PASSWORD_RESET_CODE_INVALID", "PASSWORD_RESET_CODE_EXPIRED",
                "PASSWORD_RESET_MAX_ATTEMPTS", "SIGNUP_WEAK_PASSWORD", "PASSWORD_REUSED"]),
        op("POST", "/reset-password", "Core", Public).summary("Reset the password with the link's token")
            .body("ResetRequest").ok(200, "Password changed; every session ended", "Success")
            .errors(&["PASSWORD_RESET_CODE_INVALID", "PASSWORD_RESET_CODE_EXPIRED",
                "SIGNUP_WEAK_PASSWORD", "PASSWORD_REUSED"]),
        op("GET", "/verify-email", "Core", Public).summary("Open the verification link")
            .query(&[TOKEN]).ok(200, "Verified (no `signup.verified_redirect` configured)", "Success")
            .redirect("To `signup.verified_redirect` with `?verified=true` or `?verified=false&error=CODE`")
            .errors(&["VERIFY_CODE_INVALID", "VERIFY_CODE_EXPIRED"]),
        op("GET", "/profile", "Account", User).summary("The signed-in user")
            .ok(200, "The profile", "Profile"),
        op("PUT", "/profile", "Account", User).summary("Change names, username or metadata")
            .body("UpdateProfileRequest").ok(200, "The profile", "Profile")
            .errors(&["SIGNUP_USERNAME_EXISTS"]),
        op("POST", "/change-password", "Account", User).summary("Change the password")
            .body("ChangePasswordRequest").ok(200, "Changed; every other session ended", "ChangePasswordResponse")
            .errors(&["PASSWORD_INCORRECT", "SIGNUP_WEAK_PASSWORD", "PASSWORD_REUSED",
                "RATE_LIMIT_LOGIN"]),
        op("POST", "/change-email", "Account", User).summary("Start an email change")
            .body("ChangeEmailRequest").ok(200, "A code went to the new address", "ChangeEmailResponse")
            .errors(&["PASSWORD_INCORRECT", "RATE_LIMIT_LOGIN", "RATE_LIMIT_EMAIL",
                "RATE_LIMIT_RESEND"]),
        op("POST", "/change-email/confirm", "Account", User).summary("Confirm the email change")
            .body("CodeRequest").ok(200, "The profile with the new email", "Profile")
            .errors(&["VERIFY_CODE_INVALID", "VERIFY_CODE_EXPIRED", "SIGNUP_EMAIL_EXISTS",
                "RATE_LIMIT_LOGIN"]),
        op("POST", "/resend-verification", "Account", User).summary("Mail the verification code again")
            .ok(200, "Where the code went", "Destination")
            .errors(&["VERIFY_ALREADY_VERIFIED", "RATE_LIMIT_RESEND", "RATE_LIMIT_EMAIL"]),
        op("DELETE", "/account", "Account", User).summary("Delete the account and all its rows")
            .body("PasswordRequest").ok(200, "Deleted", "Success")
            .errors(&["PASSWORD_INCORRECT", "RATE_LIMIT_LOGIN"]),
        op("GET", "/sessions", "Account", User).summary("The user's live sessions")
            .ok(200, "The sessions", "SessionList"),
        op("DELETE", "/sessions/{sessionId}", "Account", User).summary("End one session")
            .ok(200, "Ended", "SessionDeleted").errors(&["RESOURCE_NOT_FOUND"]),
        op("POST", "/magic-link", "Passwordless", Public).summary("Mail a one-time login link")
            .body("MagicLinkRequest").ok(200, "The same answer for every address", "Success")
            .errors(&["RESOURCE_NOT_FOUND", "RATE_LIMIT_EMAIL"]),
        op("GET", "/magic-link/verify", "Passwordless", Public).summary("Open the login link")
            .query(&[TOKEN]).ok(200, "json delivery: a challenge or tokens", "AuthResponse")
            .redirect("Cookie delivery: the cookies, and the link's `redirectTo`")
            .errors(&["RESOURCE_NOT_FOUND", "VERIFY_CODE_INVALID", "VERIFY_CODE_EXPIRED",
                "AUTH_ACCOUNT_LOCKED", "RATE_LIMIT_LOGIN", "RATE_LIMIT_EMAIL", "RATE_LIMIT_SMS"]),
        op("POST", "/passkeys/login/options", "Passwordless", Public)
            .summary("Options to sign in with a passkey (discoverable, no identifier)")
            .ok(200, "The ceremony and the request options", "PasskeyOptions")
            .errors(&["RESOURCE_NOT_FOUND", "RATE_LIMIT_LOGIN"]),
        op("POST", "/passkeys/login", "Passwordless", Public).summary("Sign in with a passkey")
            .body("PasskeyLoginRequest").ok(200, "A challenge or tokens", "AuthResponse")
            .errors(&["RESOURCE_NOT_FOUND", "PASSKEY_INVALID", "PASSKEY_CHALLENGE_INVALID",
                "PASSKEY_CHALLENGE_EXPIRED", "PASSKEY_NOT_FOUND", "AUTH_ACCOUNT_LOCKED",
                "RATE_LIMIT_LOGIN", "RATE_LIMIT_EMAIL", "RATE_LIMIT_SMS"]),
        op("POST", "/challenge/passkey-options", "Passwordless", Public)
            .summary("Options to answer MFA_REQUIRED with a passkey")
            .body("ChallengePasskeyOptionsRequest")
            .ok(200, "The ceremony and the request options", "PasskeyOptions")
            .errors(&["RESOURCE_NOT_FOUND", "CHALLENGE_INVALID", "CHALLENGE_EXPIRED",
                "CHALLENGE_ALREADY_COMPLETED", "CHALLENGE_MAX_ATTEMPTS",
                "CHALLENGE_TYPE_MISMATCH", "MFA_METHOD_NOT_ALLOWED"]),
        op("POST", "/passkeys/register/options", "Passwordless", User)
            .summary("Options to register a passkey (needs a fresh proof)")
            .body("PasskeyRegisterOptionsRequest")
            .ok(200, "The ceremony and the creation options", "PasskeyOptions")
            .errors(&["RESOURCE_NOT_FOUND", "PASSWORD_INCORRECT", "VERIFY_CODE_INVALID",
                "RATE_LIMIT_LOGIN"]),
        op("POST", "/passkeys/register", "Passwordless", User).summary("Store the new passkey")
            .body("PasskeyRegisterRequest").ok(201, "The passkey", "PasskeyCreated")
            .errors(&["RESOURCE_NOT_FOUND", "PASSKEY_INVALID", "PASSKEY_CHALLENGE_INVALID",
                "PASSKEY_CHALLENGE_EXPIRED"]),
        op("GET", "/passkeys", "Passwordless", User).summary("The user's passkeys")
            .ok(200, "The passkeys", "PasskeyList").errors(&["RESOURCE_NOT_FOUND"]),
        op("PUT", "/passkeys/{id}", "Passwordless", User).summary("Rename a passkey")
            .body("PasskeyRenameRequest").ok(200, "The passkey", "PasskeyCreated")
            .errors(&["RESOURCE_NOT_FOUND"]),
        op("DELETE", "/passkeys/{id}", "Passwordless", User)
            .summary("Remove a passkey (needs a fresh proof)")
            .body("ProofRequest").ok(200, "Removed", "Success")
            .errors(&["RESOURCE_NOT_FOUND", "PASSWORD_INCORRECT", "VERIFY_CODE_INVALID",
                "RATE_LIMIT_LOGIN"]),
        op("GET", "/social/providers", "Social", Public).summary("The configured social login providers")
            .ok(200, "Names, kinds and labels", "SocialProviders"),
        op("POST", "/social/exchange", "Social", Public)
            .summary("Trade a social login's exchange code for the AuthResponse")
            .body("SocialExchangeRequest").ok(200, "A challenge or tokens", "AuthResponse")
            .errors(&["RESOURCE_NOT_FOUND", "SOCIAL_EXCHANGE_CODE_INVALID", "AUTH_ACCOUNT_LOCKED",
                "RATE_LIMIT_LOGIN", "RATE_LIMIT_EMAIL", "RATE_LIMIT_SMS"]),
        op("GET", "/social/identities", "Social", User).summary("The user's linked provider identities")
            .ok(200, "The identities", "SocialIdentityList").errors(&["RESOURCE_NOT_FOUND"]),
        op("DELETE", "/social/identities/{provider}", "Social", User).summary("Unlink a provider")
            .ok(200, "Unlinked", "Success")
            .errors(&["RESOURCE_NOT_FOUND", "SOCIAL_LAST_SIGN_IN_METHOD"]),
        op("GET", "/social/{provider}", "Social", Public).summary("Sign in with a provider")
            .query(&[("redirectTo", false, "Where to go afterwards: a path on this site (default `/`).")])
            .redirect("To the provider (PKCE S256, state, nonce); sets the flow cookie")
            .errors(&["RESOURCE_NOT_FOUND", "SOCIAL_PROVIDER_UNAVAILABLE"]),
        op("POST", "/social/{provider}/link", "Social", User)
            .summary("Start linking a provider to the signed-in account (fresh proof)")
            .body("SocialLinkRequest").ok(200, "The provider's URL; sets the flow cookie", "SocialLinkResponse")
            .errors(&["RESOURCE_NOT_FOUND", "PASSWORD_INCORRECT", "VERIFY_CODE_INVALID",
                "RATE_LIMIT_LOGIN", "SOCIAL_PROVIDER_UNAVAILABLE"]),
        op("GET", "/social/{provider}/callback", "Social", Public)
            .summary("The provider's answer (redirect URI)")
            .query(&[("state", false, "The sign-in's state."), ("code", false, "The authorization code."),
                ("error", false, "The provider's error, instead of a code.")])
            .redirect("To `redirectTo`: with the cookies (cookie delivery, no challenge due) or `?exchangeCode=…`; a link: plain")
            .errors(SOCIAL_CALLBACK_ERRORS),
        op("POST", "/social/{provider}/callback", "Social", Public)
            .summary("The provider's answer as a form POST (Apple's form_post)")
            .body("form:SocialCallbackForm")
            .redirect("As the GET callback")
            .errors(SOCIAL_CALLBACK_ERRORS),
        op("GET", "/mfa/status", "MFA", User).summary("The user's MFA state")
            .ok(200, "The state", "MfaStatus"),
        op("POST", "/mfa/setup-data", "MFA", User).summary("Start enrolling a factor")
            .body("MfaSetupRequest").ok(200, "The TOTP secret and QR code, or where the code went", "MfaSetupData")
            .errors(&["PASSWORD_INCORRECT", "VERIFY_CODE_INVALID", "MFA_METHOD_NOT_ALLOWED",
                "SIGNUP_PHONE_EXISTS", "RATE_LIMIT_LOGIN", "RATE_LIMIT_RESEND",
                "RATE_LIMIT_EMAIL", "RATE_LIMIT_SMS"]),
        op("POST", "/mfa/verify-setup", "MFA", User).summary("Finish enrolling a factor")
            .body("MfaVerifyRequest").ok(200, "The new factor (and backup codes, the first time)", "MfaEnrolled")
            .errors(&["VERIFY_CODE_INVALID", "VERIFY_CODE_EXPIRED", "MFA_METHOD_NOT_ALLOWED",
                "SIGNUP_PHONE_EXISTS", "RATE_LIMIT_LOGIN"]),
        op("POST", "/mfa/backup-codes", "MFA", User).summary("Replace the backup codes")
            .body("PasswordRequest").ok(200, "The new codes, shown once", "BackupCodes")
            .errors(&["PASSWORD_INCORRECT", "MFA_METHOD_NOT_ALLOWED", "RATE_LIMIT_LOGIN"]),
        op("GET", "/mfa/devices", "MFA", User).summary("The user's factors")
            .ok(200, "The factors", "MfaDeviceList"),
        op("POST", "/mfa/devices/{id}/preferred", "MFA", User).summary("Make a factor the preferred one")
            .ok(200, "Done", "Success").errors(&["RESOURCE_NOT_FOUND"]),
        op("DELETE", "/mfa/devices/{id}", "MFA", User).summary("Remove a factor")
            .body("ProofRequest").ok(200, "Removed", "MfaDeviceRemoved")
            .errors(&["RESOURCE_NOT_FOUND", "PASSWORD_INCORRECT", "VERIFY_CODE_INVALID",
                "RATE_LIMIT_LOGIN"]),
        op("POST", "/trust-device", "MFA", User).summary("Trust this device (skip MFA on it)")
            .ok(200, "The device token (json) or its cookie", "DeviceTokenResponse"),
        op("GET", "/trusted-devices", "MFA", User).summary("The user's trusted devices")
            .ok(200, "The devices", "TrustedDeviceList"),
        op("DELETE", "/trusted-devices", "MFA", User).summary("Revoke every trusted device")
            .ok(200, "How many were revoked", "RevokedCount"),
        op("DELETE", "/trusted-devices/{id}", "MFA", User).summary("Revoke one trusted device")
            .ok(200, "Revoked", "Success").errors(&["RESOURCE_NOT_FOUND"]),
        op("GET", "/api-keys", "API keys", User).summary("The user's API keys")
            .ok(200, "The keys (never their secrets)", "ApiKeyList"),
        op("POST", "/api-keys", "API keys", User).summary("Create an API key")
            .body("CreateApiKeyRequest").ok(201, "The key, shown only here", "ApiKeyCreated")
            .errors(&["API_KEY_SCOPE_INVALID", "PASSWORD_INCORRECT", "VERIFY_CODE_INVALID",
                "RATE_LIMIT_LOGIN"]),
        op("DELETE", "/api-keys/{id}", "API keys", User).summary("Revoke an API key")
            .ok(200, "Revoked at once", "Success").errors(&["RESOURCE_NOT_FOUND"]),
        op("GET", "/audit/history", "Audit", User).summary("The user's own audit rows")
            .query(&[PAGE, LIMIT]).ok(200, "Newest first", "AuditPage"),
        op("GET", "/admin/users", "Admin", Admin).summary("List users")
            .query(&[PAGE, LIMIT, ("email", false, "Part of an email."),
                ("role", false, "Users holding this role."),
                ("locked", false, "`true`: disabled users only; `false`: enabled only."),
                ("sort", false, "`createdAt`, `-createdAt` (default), `email` or `-email`.")])
            .ok(200, "A page of users", "AdminUserPage"),
        op("POST", "/admin/users", "Admin", Admin).summary("Create a user")
            .body("AdminCreateUserRequest").ok(201, "The user (and a generated password)", "AdminUserCreated")
            .errors(&["SIGNUP_EMAIL_EXISTS", "SIGNUP_USERNAME_EXISTS", "SIGNUP_PHONE_EXISTS",
                "SIGNUP_WEAK_PASSWORD", "PASSWORD_INCORRECT", "VERIFY_CODE_INVALID",
                "RATE_LIMIT_LOGIN"]),
        op("GET", "/admin/users/{sub}", "Admin", Admin).summary("One user")
            .ok(200, "The user", "AdminUser").errors(&["RESOURCE_NOT_FOUND"]),
        op("PUT", "/admin/users/{sub}", "Admin", Admin).summary("Change a user")
            .body("AdminUpdateUserRequest").ok(200, "The user", "AdminUser")
            .errors(&["RESOURCE_NOT_FOUND", "SIGNUP_EMAIL_EXISTS", "SIGNUP_USERNAME_EXISTS",
                "SIGNUP_PHONE_EXISTS", "PASSWORD_INCORRECT", "VERIFY_CODE_INVALID",
                "RATE_LIMIT_LOGIN"]),
        op("DELETE", "/admin/users/{sub}", "Admin", Admin).summary("Delete a user")
            .body("AdminProofRequest").ok(200, "Deleted", "Success")
            .errors(&["RESOURCE_NOT_FOUND", "PASSWORD_INCORRECT", "VERIFY_CODE_INVALID",
                "RATE_LIMIT_LOGIN"]),
        op("POST", "/admin/users/{sub}/force-password-change", "Admin", Admin)
            .summary("Make the next login change the password")
            .body("ForcePasswordChangeRequest").ok(200, "Done", "SessionsRevoked")
            .errors(&["RESOURCE_NOT_FOUND"]),
        op("POST", "/admin/users/{sub}/mfa/exemption", "Admin", Admin)
            .summary("Grant or withdraw the MFA enrolment exemption")
            .body("MfaExemptionRequest").ok(200, "The user", "AdminUser")
            .errors(&["RESOURCE_NOT_FOUND", "PASSWORD_INCORRECT", "VERIFY_CODE_INVALID",
                "RATE_LIMIT_LOGIN"]),
        op("POST", "/admin/users/{sub}/disable", "Admin", Admin).summary("Disable a user")
            .body("DisableRequest").ok(200, "Disabled; sessions ended", "SessionsRevoked")
            .errors(&["RESOURCE_NOT_FOUND"]),
        op("POST", "/admin/users/{sub}/enable", "Admin", Admin).summary("Enable a user")
            .ok(200, "Enabled", "Success").errors(&["RESOURCE_NOT_FOUND"]),
        op("POST", "/admin/users/{sub}/roles", "Admin", Admin).summary("Set a user's roles")
            .body("RolesRequest").ok(200, "The user", "AdminUser")
            .errors(&["RESOURCE_NOT_FOUND", "PASSWORD_INCORRECT", "VERIFY_CODE_INVALID",
                "RATE_LIMIT_LOGIN"]),
        op("GET", "/admin/users/{sub}/sessions", "Admin", Admin).summary("A user's live sessions")
            .ok(200, "The sessions", "SessionList").errors(&["RESOURCE_NOT_FOUND"]),
        op("POST", "/admin/users/{sub}/logout-all", "Admin", Admin).summary("End every session of a user")
            .ok(200, "Done", "SessionsRevoked").errors(&["RESOURCE_NOT_FOUND"]),
        op("POST", "/admin/users/{sub}/unlock", "Admin", Admin).summary("Clear a user's lockouts")
            .ok(200, "Done", "Success").errors(&["RESOURCE_NOT_FOUND"]),
        op("GET", "/admin/audit", "Admin", Admin).summary("Query the audit trail")
            .query(&[("sub", false, "A user id."), ("eventType", false, "e.g. `LOGIN_FAILED`."),
                ("from", false, "RFC 3339, inclusive."), ("to", false, "RFC 3339, exclusive."),
                PAGE, LIMIT])
            .ok(200, "Newest first", "AuditPage"),
        op("GET", "/.well-known/jwks.json", "Meta", Public).summary("The token verification keys")
            .ok(200, "A JSON Web Key Set (empty under HS256)", "Jwks").bare(),
        op("GET", "/metrics", "Meta", Scraper).summary("Prometheus counters")
            .ok(200, "Prometheus text format", "")
            .errors(&["RESOURCE_NOT_FOUND", "AUTH_TOKEN_MISSING", "AUTH_TOKEN_INVALID"]).bare(),
        op("GET", "/openapi.json", "Meta", Public).summary("This document")
            .ok(200, "OpenAPI 3.1", "").errors(&["RESOURCE_NOT_FOUND"]).bare(),
        op("GET", "/docs", "Meta", Public).summary("The interactive API page")
            .ok(200, "HTML", "").errors(&["RESOURCE_NOT_FOUND"]).bare(),
        op("GET", "/docs/{asset}", "Meta", Public).summary("The API page's scripts and styles")
            .ok(200, "JavaScript or CSS", "").errors(&["RESOURCE_NOT_FOUND"]).bare(),
    ]
}

/// The error codes every operation of a kind can answer besides its own (docs/api.md §1, §4,
/// §7, §8).
fn common_errors(op: &Op) -> Vec<&'static str> {
    let mut v = vec!["INTERNAL_ERROR", "SERVICE_UNAVAILABLE"];
    if op.flow {
        // A foreign Origin under `trusted_origins`, a bad body, too big a body, a wrong type.
        v.extend([
            "FORBIDDEN",
            "VALIDATION_FAILED",
            "PAYLOAD_TOO_LARGE",
            "UNSUPPORTED_MEDIA_TYPE",
        ]);
    }
    let unsafe_method = op.method != "GET";
    match op.who {
        Who::User | Who::Admin => {
            v.extend([
                "AUTH_TOKEN_MISSING",
                "AUTH_TOKEN_INVALID",
                "AUTH_TOKEN_EXPIRED",
                "AUTH_SESSION_NOT_FOUND",
                "AUTH_SESSION_EXPIRED",
                "AUTH_BEARER_NOT_ALLOWED",
                "AUTH_COOKIES_NOT_ALLOWED",
                "AUTH_ACCOUNT_LOCKED",
            ]);
            if unsafe_method {
                v.extend(["AUTH_CSRF_TOKEN_MISSING", "AUTH_CSRF_TOKEN_INVALID"]);
            }
        }
        Who::Logout => v.extend([
            "AUTH_TOKEN_MISSING",
            "AUTH_TOKEN_INVALID",
            "AUTH_TOKEN_EXPIRED",
            "AUTH_BEARER_NOT_ALLOWED",
            "AUTH_COOKIES_NOT_ALLOWED",
        ]),
        Who::Public | Who::Scraper => {}
    }
    v
}

/// The status of every error code (from the error table itself).
fn statuses() -> BTreeMap<&'static str, u16> {
    crate::error::AuthError::catalogue()
        .iter()
        .map(|e| (e.code(), e.status()))
        .collect()
}

fn add<T: ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) {
    out.push((T::name().into_owned(), T::schema()));
    T::schemas(out);
}

/// The component schemas: the flows' answer types and the request types.
fn component_schemas() -> BTreeMap<String, Value> {
    use crate::flows;
    use schemas::*;
    let mut v = Vec::new();
    add::<ErrorBody>(&mut v);
    add::<SignupRequest>(&mut v);
    add::<LoginRequest>(&mut v);
    add::<RespondRequest>(&mut v);
    add::<ResendRequest>(&mut v);
    add::<ChallengeSetupRequest>(&mut v);
    add::<RefreshRequest>(&mut v);
    add::<LogoutRequest>(&mut v);
    add::<LogoutAllRequest>(&mut v);
    add::<RevokeRequest>(&mut v);
    add::<ForgotRequest>(&mut v);
    add::<ForgotConfirmRequest>(&mut v);
    add::<ResetRequest>(&mut v);
    add::<UpdateProfileRequest>(&mut v);
    add::<ChangePasswordRequest>(&mut v);
    add::<ChangeEmailRequest>(&mut v);
    add::<CodeRequest>(&mut v);
    add::<PasswordRequest>(&mut v);
    add::<ProofRequest>(&mut v);
    add::<MagicLinkRequest>(&mut v);
    add::<PasskeyRegisterOptionsRequest>(&mut v);
    add::<PasskeyRegisterRequest>(&mut v);
    add::<PasskeyRenameRequest>(&mut v);
    add::<PasskeyLoginRequest>(&mut v);
    add::<ChallengePasskeyOptionsRequest>(&mut v);
    add::<PasskeyCreated>(&mut v);
    add::<PasskeyList>(&mut v);
    add::<flows::passkey_types::OptionsBody>(&mut v);
    add::<MfaSetupRequest>(&mut v);
    add::<MfaVerifyRequest>(&mut v);
    add::<CreateApiKeyRequest>(&mut v);
    add::<AdminCreateUserRequest>(&mut v);
    add::<AdminUpdateUserRequest>(&mut v);
    add::<AdminProofRequest>(&mut v);
    add::<DisableRequest>(&mut v);
    add::<ForcePasswordChangeRequest>(&mut v);
    add::<MfaExemptionRequest>(&mut v);
    add::<RolesRequest>(&mut v);
    add::<Success>(&mut v);
    add::<ForgotResponse>(&mut v);
    add::<Destination>(&mut v);
    add::<ChangeEmailResponse>(&mut v);
    add::<ChangePasswordResponse>(&mut v);
    add::<RevokedCount>(&mut v);
    add::<SessionDeleted>(&mut v);
    add::<ChallengeSetupResponse>(&mut v);
    add::<MfaSetupData>(&mut v);
    add::<BackupCodes>(&mut v);
    add::<MfaDeviceList>(&mut v);
    add::<DeviceTokenResponse>(&mut v);
    add::<TrustedDeviceList>(&mut v);
    add::<ApiKeyList>(&mut v);
    add::<AuditPage>(&mut v);
    add::<AdminUserPage>(&mut v);
    add::<AdminUserCreated>(&mut v);
    add::<SessionsRevoked>(&mut v);
    add::<Jwks>(&mut v);
    add::<flows::ProfileBody>(&mut v);
    add::<flows::admin::AdminUserBody>(&mut v);
    add::<flows::session::SessionList>(&mut v);
    add::<flows::mfa::StatusBody>(&mut v);
    add::<flows::mfa::EnrolledBody>(&mut v);
    add::<flows::mfa::RemovedBody>(&mut v);
    add::<flows::api_keys::CreatedBody>(&mut v);
    add::<crate::routes::ChallengeBody>(&mut v);
    add::<Tokens>(&mut v);
    add::<SocialProviders>(&mut v);
    add::<SocialExchangeRequest>(&mut v);
    add::<SocialLinkRequest>(&mut v);
    add::<SocialLinkResponse>(&mut v);
    add::<SocialIdentityList>(&mut v);
    v.into_iter()
        .map(|(name, s)| (name, serde_json::to_value(s).unwrap_or(Value::Null)))
        .collect()
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The document for this configuration, as JSON.
pub(crate) fn document(cfg: &NAuthConfig) -> Value {
    let prefix = cfg.mount_prefix.as_str();
    let cookie = format!("{}access_token", cfg.token_delivery.cookie_prefix);
    let status_of = statuses();
    let mut components = component_schemas();
    // A challenge or tokens (docs/api.md §2).
    components.insert(
        "AuthResponse".into(),
        json!({ "oneOf": [schema_ref("Challenge"), schema_ref("Tokens")] }),
    );
    let mut paths = serde_json::Map::new();
    for op in operations() {
        let path = format!("{prefix}{}", op.path);
        let item = paths
            .entry(path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let mut item = item;
        item.insert(
            op.method.to_ascii_lowercase(),
            operation(&op, &status_of, cfg),
        );
        paths.insert(format!("{prefix}{}", op.path), Value::Object(item));
    }
    let tags: Vec<Value> = [
        (
            "Core",
            "Signup, login, challenges, tokens and recovery (§3.1)",
        ),
        ("Account", "Profile, password, email and sessions (§3.2)"),
        (
            "Passwordless",
            "Magic links (§3.3) and passkeys (docs/passkeys.md)",
        ),
        ("MFA", "Second factors and trusted devices (§3.4)"),
        ("API keys", "Keys for the app's own routes (§3.5)"),
        ("Audit", "The user's own history (§3.7)"),
        ("Admin", "User administration, role `admin` (§3.6)"),
        (
            "Social",
            "Social login: OpenID Connect and OAuth 2.0 providers",
        ),
        ("Meta", "Keys, metrics and this document"),
    ]
    .iter()
    .map(|(name, description)| json!({ "name": name, "description": description }))
    .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "nauth",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "The routes nauth serves under `{prefix}`. Tokens go out in the body (json \
                 delivery) or as HttpOnly cookies (cookie delivery, mode `{}`); a \
                 cookie-authenticated POST, PUT or DELETE also sends `x-csrf-token` equal to \
                 the `{}csrf_token` cookie. Errors have one shape (`Error`), and each \
                 operation lists its codes per status.",
                cfg.token_delivery.mode.as_str(), cfg.token_delivery.cookie_prefix
            ),
            "license": { "name": "MIT OR Apache-2.0", "identifier": "MIT OR Apache-2.0" }
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "The access token (json delivery)."
                },
                "cookie": {
                    "type": "apiKey", "in": "cookie", "name": cookie,
                    "description": "The access-token cookie (cookie delivery)."
                },
                "csrf": {
                    "type": "apiKey", "in": "header", "name": "x-csrf-token",
                    "description": "With the cookie on POST, PUT and DELETE: the value of the CSRF cookie."
                },
                "apiKey": {
                    "type": "apiKey", "in": "header", "name": "X-API-Key",
                    "description": "An API key (`nk_…`, also accepted as a bearer) for the app's own routes; nauth's own routes refuse it (403 FORBIDDEN)."
                },
                "metricsToken": {
                    "type": "http", "scheme": "bearer",
                    "description": "`metrics.token`, when set."
                }
            }
        }
    })
}

fn operation(op: &Op, status_of: &BTreeMap<&'static str, u16>, cfg: &NAuthConfig) -> Value {
    let mut params: Vec<Value> = Vec::new();
    if let Some((_, after)) = op.path.split_once('{') {
        let name = after.split_once('}').map_or(after, |(n, _)| n);
        let spec = ROUTES.iter().find(|r| r.path == op.path);
        let schema = match spec.map(|s| s.param) {
            Some(Param::ApiKeyId) => json!({ "type": "string", "pattern": "^[0-9a-f]{16}$" }),
            Some(Param::Uuid) => json!({ "type": "string", "format": "uuid" }),
            Some(Param::Provider) => json!({ "type": "string", "pattern": "^[a-z0-9_-]{1,32}$" }),
            _ => {
                json!({ "type": "string", "enum": ["swagger-ui-bundle.js", "swagger-ui.css", "init.js"] })
            }
        };
        params.push(json!({ "name": name, "in": "path", "required": true, "schema": schema }));
    }
    for (name, required, description) in op.query {
        params.push(json!({
            "name": name, "in": "query", "required": required,
            "description": description, "schema": { "type": "string" }
        }));
    }
    let mut responses = serde_json::Map::new();
    for (status, what, schema) in &op.ok {
        let mut r = json!({ "description": what });
        match (schema, op.path) {
            (Some(""), "/metrics") => {
                r["content"] = json!({ "text/plain": { "schema": { "type": "string" } } })
            }
            (Some(""), "/openapi.json") => {
                r["content"] = json!({ "application/json": { "schema": { "type": "object" } } })
            }
            (Some(""), "/docs") => {
                r["content"] = json!({ "text/html": { "schema": { "type": "string" } } })
            }
            (Some(""), _) => {
                r["content"] = json!({
                    "text/javascript": { "schema": { "type": "string" } },
                    "text/css": { "schema": { "type": "string" } }
                })
            }
            (Some(name), _) => {
                r["content"] = json!({ "application/json": { "schema": schema_ref(name) } })
            }
            (None, _) => r["headers"] = json!({ "Location": { "schema": { "type": "string" } } }),
        }
        responses.insert(status.to_string(), r);
    }
    let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for code in op.errors.iter().copied().chain(common_errors(op)) {
        let status = status_of.get(code).copied().unwrap_or(500);
        let codes = by_status.entry(status).or_default();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    for (status, codes) in by_status {
        let schema = json!({
            "allOf": [schema_ref("Error"), { "properties": { "code": { "enum": codes } } }]
        });
        let mut r = json!({
            "description": codes.join(", "),
            "content": { "application/json": { "schema": schema } }
        });
        if status == 401 {
            r["headers"] = json!({ "WWW-Authenticate": { "schema": { "type": "string" } } });
        }
        if status == 429 || status == 503 {
            r["headers"] = json!({ "Retry-After": { "schema": { "type": "integer" } } });
        }
        responses.insert(status.to_string(), r);
    }
    let security = match op.who {
        Who::Public => json!([]),
        Who::Scraper => json!([{}, { "metricsToken": [] }]),
        Who::Logout => json!([{ "bearer": [] }, { "cookie": [] }, {}]),
        Who::User | Who::Admin if op.method == "GET" => json!([{ "bearer": [] }, { "cookie": [] }]),
        Who::User | Who::Admin => json!([{ "bearer": [] }, { "cookie": [], "csrf": [] }]),
    };
    let mut o = json!({
        "tags": [op.tag],
        "summary": op.summary,
        "operationId": operation_id(op),
        "responses": responses,
        "security": security,
    });
    if op.who == Who::Admin {
        o["description"] = json!("Needs role `admin`; otherwise 403 FORBIDDEN.");
    }
    if !params.is_empty() {
        o["parameters"] = Value::Array(params);
    }
    if op.body == Some("form:SocialCallbackForm") {
        o["requestBody"] = json!({
            "required": true,
            "content": { "application/x-www-form-urlencoded": { "schema": {
                "type": "object",
                "properties": {
                    "state": { "type": "string" }, "code": { "type": "string" },
                    "error": { "type": "string" }, "user": { "type": "string" }
                }
            } } }
        });
        return o;
    }
    if let Some(body) = op.body {
        let mut schema = schema_ref(body);
        if body == "CreateApiKeyRequest" {
            // The configured scopes.
            schema = json!({ "allOf": [schema, { "properties": { "scopes": {
                "type": "array", "items": { "enum": cfg.api_keys.scopes } } } }] });
        }
        o["requestBody"] = json!({
            "required": false,
            "content": { "application/json": { "schema": schema } }
        });
    }
    o
}

/// `POST /mfa/devices/{id}/preferred` → `post_mfa_devices_id_preferred`.
fn operation_id(op: &Op) -> String {
    let mut id = op.method.to_ascii_lowercase();
    for part in op.path.split(|c: char| !c.is_ascii_alphanumeric()) {
        if !part.is_empty() {
            id.push('_');
            id.push_str(&part.to_ascii_lowercase());
        }
    }
    id
}

/// Answers `GET <mount>/openapi.json` (`name` = `openapi.json`), `GET <mount>/docs` (`docs`)
/// and the page's files (their names): `404` when the configuration turns them off.
pub(crate) fn serve(inner: &crate::Inner, name: &str) -> Result<Reply, AuthError> {
    let cfg = &inner.cfg.openapi;
    let reply = |content_type: &str, body: Vec<u8>| Reply {
        status: 200,
        headers: vec![
            ("content-type".into(), content_type.into()),
            ("cache-control".into(), "no-store".into()),
            ("x-content-type-options".into(), "nosniff".into()),
        ],
        body,
    };
    match name {
        "openapi.json" if cfg.enabled => {
            let doc = inner
                .openapi
                .get_or_init(|| serde_json::to_vec(&document(&inner.cfg)).unwrap_or_default());
            Ok(reply("application/json", doc.clone()))
        }
        "docs" if cfg.page && cfg.enabled => {
            Ok(reply("text/html; charset=utf-8", page::INDEX.into())
                .with_header("content-security-policy", page::CSP)
                .with_header("referrer-policy", "no-referrer"))
        }
        _ if cfg.page && cfg.enabled => page::ASSETS
            .iter()
            .find(|a| a.0 == name)
            .map(|a| reply(a.1, a.2.to_vec()))
            .ok_or(AuthError::NotFound),
        _ => Err(AuthError::NotFound),
    }
}

/// The `(method, path under the mount)` of every documented operation.
#[cfg(test)]
fn documented() -> Vec<(&'static str, &'static str)> {
    operations().iter().map(|o| (o.method, o.path)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NAuthConfig {
        NAuthConfig {
            secret: "0123456789abcdef0123456789abcdef".into(),
            ..Default::default()
        }
    }

    #[test]
    fn every_route_has_one_operation_and_every_operation_a_route() {
        let mut documented = documented();
        let mut routes: Vec<(&str, &str)> = ROUTES.iter().map(|r| (r.method, r.path)).collect();
        documented.sort();
        routes.sort();
        assert_eq!(documented, routes);
        let mut unique = documented.clone();
        unique.dedup();
        assert_eq!(
            unique.len(),
            documented.len(),
            "an operation is documented twice"
        );
    }

    #[test]
    fn every_reference_resolves_and_every_code_has_a_status() {
        let doc = document(&cfg());
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let mut rest = text.as_str();
        let mut seen = 0;
        while let Some(i) = rest.find("#/components/schemas/") {
            let tail = &rest[i + "#/components/schemas/".len()..];
            let name = &tail[..tail.find('"').expect("end of name")];
            assert!(schemas.contains_key(name), "dangling reference to {name}");
            rest = tail;
            seen += 1;
        }
        assert!(seen > 50, "only {seen} references");
        let statuses = statuses();
        for op in operations() {
            for code in op.errors {
                assert!(
                    statuses.contains_key(code),
                    "{} {}: unknown code {code}",
                    op.method,
                    op.path
                );
            }
        }
    }

    #[test]
    fn the_document_follows_the_configuration() {
        let mut c = cfg();
        c.mount_prefix = "/id".into();
        c.api_keys.scopes = vec!["reports".into()];
        let doc = document(&c);
        assert!(doc["paths"]["/id/login"]["post"].is_object());
        assert!(doc["paths"]["/auth/login"].is_null());
        let create = &doc["paths"]["/id/api-keys"]["post"];
        assert_eq!(
            create["requestBody"]["content"]["application/json"]["schema"]["allOf"][1]["properties"]
                ["scopes"]["items"]["enum"],
            json!(["reports"])
        );
        let codes = &create["responses"]["400"]["content"]["application/json"]["schema"]["allOf"]
            [1]["properties"]["code"]["enum"];
        assert!(
            codes
                .as_array()
                .expect("codes")
                .contains(&json!("API_KEY_SCOPE_INVALID"))
        );
        // A GET of a signed-in user: no CSRF; a POST: CSRF with the cookie.
        assert_eq!(
            doc["paths"]["/id/profile"]["get"]["security"],
            json!([{ "bearer": [] }, { "cookie": [] }])
        );
        assert_eq!(create["security"][1], json!({ "cookie": [], "csrf": [] }));
    }
}
