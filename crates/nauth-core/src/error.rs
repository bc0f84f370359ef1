//! The one error type of nauth and its one table of codes and statuses (docs/api.md §8).
//!
//! Adapters never match on variants: they render [`NAuth::error_reply`](crate::NAuth::error_reply) as it is.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// Field name → messages, the `details.validationErrors` of a `400 VALIDATION_FAILED`.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Which limit a `429` is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimit {
    /// Login lockout of an identifier or a client IP.
    Login,
    /// Resending a code too soon or too often.
    Resend,
    /// Too many `/forgot-password` requests from one IP.
    PasswordReset,
    /// Too many code mails to one address.
    Email,
    /// Too many code messages to one phone number, or SMS for one user or client IP.
    Sms,
    /// Too many signups from one client IP.
    Signup,
}

/// Every error nauth answers with. `code()` and `status()` come from one table.
#[derive(Debug, Clone, thiserror::Error)]
#[allow(missing_docs)] // each variant is named after its code in docs/api.md §8
#[non_exhaustive]
pub enum AuthError {
    #[error("validation failed")]
    ValidationFailed(FieldErrors),
    #[error("password does not meet the policy")]
    WeakPassword(Vec<String>),
    #[error("password was used before")]
    PasswordReused,
    #[error("password is incorrect")]
    PasswordIncorrect,
    #[error("verification code is invalid")]
    VerifyCodeInvalid { attempts_remaining: Option<u32> },
    #[error("verification code has expired")]
    VerifyCodeExpired,
    #[error("already verified")]
    VerifyAlreadyVerified,
    #[error("challenge session is invalid")]
    ChallengeInvalid,
    #[error("challenge session has expired")]
    ChallengeExpired,
    #[error("challenge type mismatch")]
    ChallengeTypeMismatch,
    #[error("too many attempts")]
    ChallengeMaxAttempts,
    #[error("challenge already completed")]
    ChallengeAlreadyCompleted,
    #[error("reset code is invalid")]
    PasswordResetCodeInvalid,
    #[error("reset code has expired")]
    PasswordResetCodeExpired,
    #[error("too many reset attempts")]
    PasswordResetMaxAttempts,
    #[error("MFA method not allowed")]
    MfaMethodNotAllowed,
    #[error("API key scope invalid")]
    ApiKeyScopeInvalid,
    #[error("passkey credential or assertion invalid")]
    PasskeyInvalid,
    #[error("passkey ceremony unknown, used or issued for someone else")]
    PasskeyChallengeInvalid,
    #[error("passkey ceremony expired")]
    PasskeyChallengeExpired,
    #[error("passkey not found")]
    PasskeyNotFound,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("authentication token missing")]
    TokenMissing,
    #[error("authentication token invalid")]
    TokenInvalid,
    #[error("authentication token expired")]
    TokenExpired,
    #[error("refresh token reuse detected")]
    TokenReuseDetected,
    #[error("session not found")]
    SessionNotFound,
    #[error("session expired")]
    SessionExpired,
    #[error("bearer tokens are not accepted")]
    BearerNotAllowed,
    #[error("token cookies are not accepted")]
    CookiesNotAllowed,
    #[error("API key invalid")]
    ApiKeyInvalid,
    #[error("API key expired")]
    ApiKeyExpired,
    #[error("account locked")]
    AccountLocked,
    #[error("CSRF token missing")]
    CsrfMissing,
    #[error("CSRF token invalid")]
    CsrfInvalid,
    #[error("forbidden")]
    Forbidden,
    #[error("signup disabled")]
    SignupDisabled,
    #[error("resource not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: String },
    #[error("email already registered")]
    EmailExists,
    #[error("username already taken")]
    UsernameExists,
    #[error("phone already registered")]
    PhoneExists,
    #[error("social login state invalid")]
    SocialStateInvalid,
    #[error("social login callback replayed")]
    SocialCallbackReplayed,
    #[error("social login nonce invalid")]
    SocialNonceInvalid,
    #[error("social login ID token invalid")]
    SocialIdTokenInvalid,
    #[error("social login email not verified")]
    SocialEmailUnverified,
    #[error("social login email domain not allowed")]
    SocialEmailDomainNotAllowed,
    #[error("social login provider answered an error")]
    SocialProviderError,
    #[error("social login exchange code invalid")]
    SocialExchangeCodeInvalid,
    #[error("an account already holds the provider's email")]
    SocialAccountExists,
    #[error("social identity linked to another account")]
    SocialAccountLinked,
    #[error("last sign-in method")]
    SocialLastSignInMethod,
    /// The provider could not be reached or answered something unreadable; logged, never sent.
    #[error("social login provider unavailable: {0}")]
    SocialProviderUnavailable(String),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("rate limited")]
    RateLimited { limit: RateLimit, retry_after: u64 },
    /// The cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
    /// A transaction kept losing lock races (deadlock, busy); retried, then answered 503.
    #[error("database contention")]
    Contention,
    /// Database or Redis unreachable; the cause is logged, never sent.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The password-hashing queue is full: answered at once with `Retry-After`, never queued.
    #[error("busy; retry after {retry_after} s")]
    Busy { retry_after: u64 },
}

impl AuthError {
    /// `(status, code, message)`: the one table.
    fn row(&self) -> (u16, &'static str, &'static str) {
        use AuthError::*;
        match self {
            ValidationFailed(_) => (400, "VALIDATION_FAILED", "Validation failed"),
            WeakPassword(_) => (
                400,
                "SIGNUP_WEAK_PASSWORD",
                "Password does not meet the policy",
            ),
            PasswordReused => (400, "PASSWORD_REUSED", "Password was used recently"),
            PasswordIncorrect => (400, "PASSWORD_INCORRECT", "Password is incorrect"),
            VerifyCodeInvalid { .. } => (400, "VERIFY_CODE_INVALID", "Invalid verification code"),
            VerifyCodeExpired => (400, "VERIFY_CODE_EXPIRED", "Verification code has expired"),
            VerifyAlreadyVerified => (400, "VERIFY_ALREADY_VERIFIED", "Already verified"),
            ChallengeInvalid => (400, "CHALLENGE_INVALID", "Invalid challenge session"),
            ChallengeExpired => (400, "CHALLENGE_EXPIRED", "Challenge session has expired"),
            ChallengeTypeMismatch => (
                400,
                "CHALLENGE_TYPE_MISMATCH",
                "Answer does not match the challenge",
            ),
            ChallengeMaxAttempts => (
                400,
                "CHALLENGE_MAX_ATTEMPTS",
                "Too many wrong answers; start again",
            ),
            ChallengeAlreadyCompleted => (
                400,
                "CHALLENGE_ALREADY_COMPLETED",
                "Challenge already completed",
            ),
            PasswordResetCodeInvalid => (400, "PASSWORD_RESET_CODE_INVALID", "Invalid reset code"),
            PasswordResetCodeExpired => {
                (400, "PASSWORD_RESET_CODE_EXPIRED", "Reset code has expired")
            }
            PasswordResetMaxAttempts => (
                400,
                "PASSWORD_RESET_MAX_ATTEMPTS",
                "Too many wrong reset codes; request a new one",
            ),
            MfaMethodNotAllowed => (400, "MFA_METHOD_NOT_ALLOWED", "MFA method not allowed"),
            ApiKeyScopeInvalid => (400, "API_KEY_SCOPE_INVALID", "Invalid API key scope"),
            PasskeyInvalid => (
                400,
                "PASSKEY_INVALID",
                "The passkey's answer did not verify",
            ),
            PasskeyChallengeInvalid => (
                400,
                "PASSKEY_CHALLENGE_INVALID",
                "Unknown or already used passkey ceremony; ask for new options",
            ),
            PasskeyChallengeExpired => (
                400,
                "PASSKEY_CHALLENGE_EXPIRED",
                "The passkey ceremony has expired; ask for new options",
            ),
            PasskeyNotFound => (400, "PASSKEY_NOT_FOUND", "No such passkey on this account"),
            InvalidCredentials => (401, "AUTH_INVALID_CREDENTIALS", "Invalid credentials"),
            TokenMissing => (401, "AUTH_TOKEN_MISSING", "Authentication required"),
            TokenInvalid => (401, "AUTH_TOKEN_INVALID", "Invalid token"),
            TokenExpired => (401, "AUTH_TOKEN_EXPIRED", "Token has expired"),
            TokenReuseDetected => (
                401,
                "AUTH_TOKEN_REUSE_DETECTED",
                "Refresh token reuse detected; the session was revoked",
            ),
            SessionNotFound => (401, "AUTH_SESSION_NOT_FOUND", "Session not found"),
            SessionExpired => (401, "AUTH_SESSION_EXPIRED", "Session has expired"),
            BearerNotAllowed => (
                401,
                "AUTH_BEARER_NOT_ALLOWED",
                "Bearer tokens are not accepted",
            ),
            CookiesNotAllowed => (
                401,
                "AUTH_COOKIES_NOT_ALLOWED",
                "Token cookies are not accepted",
            ),
            ApiKeyInvalid => (401, "API_KEY_INVALID", "Invalid API key"),
            ApiKeyExpired => (401, "API_KEY_EXPIRED", "API key has expired"),
            AccountLocked => (403, "AUTH_ACCOUNT_LOCKED", "Account is disabled"),
            CsrfMissing => (403, "AUTH_CSRF_TOKEN_MISSING", "CSRF token missing"),
            CsrfInvalid => (403, "AUTH_CSRF_TOKEN_INVALID", "CSRF token invalid"),
            Forbidden => (403, "FORBIDDEN", "Forbidden"),
            SignupDisabled => (403, "SIGNUP_DISABLED", "Signup is disabled"),
            NotFound => (404, "RESOURCE_NOT_FOUND", "Resource not found"),
            MethodNotAllowed { .. } => (405, "METHOD_NOT_ALLOWED", "Method not allowed"),
            EmailExists => (409, "SIGNUP_EMAIL_EXISTS", "Email already registered"),
            UsernameExists => (409, "SIGNUP_USERNAME_EXISTS", "Username already taken"),
            PhoneExists => (409, "SIGNUP_PHONE_EXISTS", "Phone already registered"),
            SocialStateInvalid => (
                400,
                "SOCIAL_STATE_INVALID",
                "The sign-in did not start here or has expired; start again",
            ),
            SocialCallbackReplayed => (
                400,
                "SOCIAL_CALLBACK_REPLAYED",
                "This sign-in answer was already used; start again",
            ),
            SocialNonceInvalid => (
                401,
                "SOCIAL_NONCE_INVALID",
                "The provider's ID token does not belong to this sign-in",
            ),
            SocialIdTokenInvalid => (
                401,
                "SOCIAL_ID_TOKEN_INVALID",
                "The provider's ID token is invalid",
            ),
            SocialEmailUnverified => (
                403,
                "SOCIAL_EMAIL_UNVERIFIED",
                "The provider did not assert a verified email",
            ),
            SocialEmailDomainNotAllowed => (
                403,
                "SOCIAL_EMAIL_DOMAIN_NOT_ALLOWED",
                "Accounts of this email domain cannot sign in with this provider",
            ),
            SocialProviderError => (
                400,
                "SOCIAL_PROVIDER_ERROR",
                "The provider refused or cancelled the sign-in",
            ),
            SocialExchangeCodeInvalid => (
                400,
                "SOCIAL_EXCHANGE_CODE_INVALID",
                "Invalid or expired exchange code",
            ),
            SocialAccountExists => (
                409,
                "SOCIAL_ACCOUNT_EXISTS",
                "An account already uses this email; sign in and link the provider from the account",
            ),
            SocialAccountLinked => (
                409,
                "SOCIAL_ACCOUNT_LINKED",
                "This provider account is linked to another account",
            ),
            SocialLastSignInMethod => (
                409,
                "SOCIAL_LAST_SIGN_IN_METHOD",
                "This is the account's last way to sign in; set a password or link another provider first",
            ),
            SocialProviderUnavailable(_) => (
                502,
                "SOCIAL_PROVIDER_UNAVAILABLE",
                "The provider could not be reached",
            ),
            PayloadTooLarge => (413, "PAYLOAD_TOO_LARGE", "Request body too large"),
            UnsupportedMediaType => (
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                "Content-Type must be application/json",
            ),
            RateLimited { limit, .. } => match limit {
                RateLimit::Login => (429, "RATE_LIMIT_LOGIN", "Too many login attempts"),
                RateLimit::Resend => (429, "RATE_LIMIT_RESEND", "Please wait before resending"),
                RateLimit::PasswordReset => (
                    429,
                    "RATE_LIMIT_PASSWORD_RESET",
                    "Too many password reset requests",
                ),
                RateLimit::Email => (429, "RATE_LIMIT_EMAIL", "Too many emails"),
                RateLimit::Sms => (429, "RATE_LIMIT_SMS", "Too many text messages"),
                RateLimit::Signup => (429, "RATE_LIMIT_SIGNUP", "Too many signups"),
            },
            Internal(_) => (500, "INTERNAL_ERROR", "Internal error"),
            Unavailable(_) | Contention | Busy { .. } => {
                (503, "SERVICE_UNAVAILABLE", "Service unavailable")
            }
        }
    }

    /// One error of every code (for the OpenAPI document's lists of codes per status).
    pub(crate) fn catalogue() -> Vec<AuthError> {
        use AuthError::*;
        let mut all = vec![
            ValidationFailed(FieldErrors::new()),
            WeakPassword(Vec::new()),
            PasswordReused,
            PasswordIncorrect,
            VerifyCodeInvalid {
                attempts_remaining: None,
            },
            VerifyCodeExpired,
            VerifyAlreadyVerified,
            ChallengeInvalid,
            ChallengeExpired,
            ChallengeTypeMismatch,
            ChallengeMaxAttempts,
            ChallengeAlreadyCompleted,
            PasswordResetCodeInvalid,
            PasswordResetCodeExpired,
            PasswordResetMaxAttempts,
            MfaMethodNotAllowed,
            ApiKeyScopeInvalid,
            PasskeyInvalid,
            PasskeyChallengeInvalid,
            PasskeyChallengeExpired,
            PasskeyNotFound,
            InvalidCredentials,
            TokenMissing,
            TokenInvalid,
            TokenExpired,
            TokenReuseDetected,
            SessionNotFound,
            SessionExpired,
            BearerNotAllowed,
            CookiesNotAllowed,
            ApiKeyInvalid,
            ApiKeyExpired,
            AccountLocked,
            CsrfMissing,
            CsrfInvalid,
            Forbidden,
            SignupDisabled,
            NotFound,
            MethodNotAllowed {
                allow: String::new(),
            },
            EmailExists,
            UsernameExists,
            PhoneExists,
            SocialStateInvalid,
            SocialCallbackReplayed,
            SocialNonceInvalid,
            SocialIdTokenInvalid,
            SocialEmailUnverified,
            SocialEmailDomainNotAllowed,
            SocialProviderError,
            SocialExchangeCodeInvalid,
            SocialAccountExists,
            SocialAccountLinked,
            SocialLastSignInMethod,
            SocialProviderUnavailable(String::new()),
            PayloadTooLarge,
            UnsupportedMediaType,
            Internal(String::new()),
            Unavailable(String::new()),
        ];
        for limit in [
            RateLimit::Login,
            RateLimit::Resend,
            RateLimit::PasswordReset,
            RateLimit::Email,
            RateLimit::Sms,
            RateLimit::Signup,
        ] {
            all.push(RateLimited {
                limit,
                retry_after: 1,
            });
        }
        all
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.row().0
    }

    /// The stable error code string, e.g. `AUTH_TOKEN_INVALID`.
    pub fn code(&self) -> &'static str {
        self.row().1
    }

    /// A one-field validation error.
    pub fn field(field: &str, message: &str) -> Self {
        let mut m = FieldErrors::new();
        m.insert(field.to_string(), vec![message.to_string()]);
        AuthError::ValidationFailed(m)
    }

    /// The `details` object (empty when there is nothing to say).
    pub fn details(&self) -> Map<String, Value> {
        let mut d = Map::new();
        match self {
            AuthError::ValidationFailed(f) => {
                d.insert("validationErrors".into(), json!(f));
            }
            AuthError::WeakPassword(errors) => {
                d.insert("errors".into(), json!(errors));
            }
            AuthError::VerifyCodeInvalid {
                attempts_remaining: Some(n),
            } => {
                d.insert("attemptsRemaining".into(), json!(n));
            }
            AuthError::RateLimited { retry_after, .. } | AuthError::Busy { retry_after } => {
                d.insert("retryAfter".into(), json!(retry_after));
            }
            _ => {}
        }
        d
    }

    /// The JSON body of docs/api.md §1, with `timestamp` given by the caller's clock.
    pub fn body(&self, timestamp: &str) -> Value {
        let (_, code, message) = self.row();
        let mut body = Map::new();
        body.insert("code".into(), json!(code));
        body.insert("message".into(), json!(message));
        let details = self.details();
        if !details.is_empty() {
            body.insert("details".into(), Value::Object(details));
        }
        body.insert("timestamp".into(), json!(timestamp));
        Value::Object(body)
    }

    /// Extra headers this error carries (`WWW-Authenticate`, `Retry-After`, `Allow`).
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut h = Vec::new();
        if self.status() == 401 {
            h.push(("www-authenticate".into(), "Bearer".into()));
        }
        match self {
            AuthError::RateLimited { retry_after, .. } | AuthError::Busy { retry_after } => {
                h.push(("retry-after".into(), retry_after.to_string()));
            }
            AuthError::MethodNotAllowed { allow } => h.push(("allow".into(), allow.clone())),
            _ => {}
        }
        h
    }
}

/// Result alias used across the core.
pub type AuthResult<T> = Result<T, AuthError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_statuses_match_the_contract() {
        let cases: Vec<(AuthError, u16, &str)> = vec![
            (
                AuthError::field("email", "required"),
                400,
                "VALIDATION_FAILED",
            ),
            (
                AuthError::InvalidCredentials,
                401,
                "AUTH_INVALID_CREDENTIALS",
            ),
            (AuthError::CsrfMissing, 403, "AUTH_CSRF_TOKEN_MISSING"),
            (AuthError::NotFound, 404, "RESOURCE_NOT_FOUND"),
            (AuthError::EmailExists, 409, "SIGNUP_EMAIL_EXISTS"),
            (AuthError::PayloadTooLarge, 413, "PAYLOAD_TOO_LARGE"),
            (
                AuthError::UnsupportedMediaType,
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            ),
            (
                AuthError::RateLimited {
                    limit: RateLimit::Login,
                    retry_after: 9,
                },
                429,
                "RATE_LIMIT_LOGIN",
            ),
            (AuthError::Internal("x".into()), 500, "INTERNAL_ERROR"),
            (
                AuthError::Unavailable("x".into()),
                503,
                "SERVICE_UNAVAILABLE",
            ),
        ];
        for (e, status, code) in cases {
            assert_eq!(e.status(), status, "{code}");
            assert_eq!(e.code(), code);
        }
    }

    #[test]
    fn body_shape_and_headers() {
        let e = AuthError::RateLimited {
            limit: RateLimit::Resend,
            retry_after: 42,
        };
        let b = e.body("2026-11-24T10:00:00Z");
        assert_eq!(b["code"], "RATE_LIMIT_RESEND");
        assert_eq!(b["details"]["retryAfter"], 42);
        assert!(e.headers().contains(&("retry-after".into(), "42".into())));
        let b = AuthError::Internal("select * from secret".into()).body("t");
        assert!(!b.to_string().contains("select"));
        assert!(b.get("details").is_none());
        assert!(
            AuthError::TokenMissing
                .headers()
                .contains(&("www-authenticate".into(), "Bearer".into()))
        );
        let busy = AuthError::Busy { retry_after: 1 };
        assert_eq!((busy.status(), busy.code()), (503, "SERVICE_UNAVAILABLE"));
        assert_eq!(busy.headers(), vec![("retry-after".into(), "1".into())]);
        assert_eq!(busy.body("t")["details"]["retryAfter"], 1);
    }
}
