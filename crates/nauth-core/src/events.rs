//! The audit log: one row per security event. Writing it never fails the request: a failed
//! write is logged (without secrets) and the flow goes on.

use serde_json::Value;

use crate::Inner;
use crate::store::Conn;
use crate::store::audit::AuditRow;

/// Audit event types (docs/api.md §3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub(crate) enum Event {
    Signup,
    LoginSuccess,
    LoginFailed,
    LoginLocked,
    Logout,
    EmailVerified,
    PhoneVerified,
    PasswordChanged,
    PasswordResetRequested,
    PasswordReset,
    EmailChanged,
    SessionRevoked,
    SuspiciousActivity,
    AccountDeleted,
    MfaEnabled,
    MfaDisabled,
    MfaDeviceAdded,
    MfaDeviceRemoved,
    MfaVerificationSuccess,
    MfaVerificationFailed,
    BackupCodeUsed,
    BackupCodesRegenerated,
    DeviceTrusted,
    DeviceUntrusted,
    ApiKeyCreated,
    ApiKeyRevoked,
    #[cfg_attr(not(feature = "passkeys"), allow(dead_code))]
    PasskeyAdded,
    #[cfg_attr(not(feature = "passkeys"), allow(dead_code))]
    PasskeyRenamed,
    #[cfg_attr(not(feature = "passkeys"), allow(dead_code))]
    PasskeyRemoved,
    AdminAction,
    #[cfg_attr(not(feature = "social"), allow(dead_code))]
    SocialLinked,
    #[cfg_attr(not(feature = "social"), allow(dead_code))]
    SocialUnlinked,
}

impl Event {
    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Event::Signup => "SIGNUP",
            Event::LoginSuccess => "LOGIN_SUCCESS",
            Event::LoginFailed => "LOGIN_FAILED",
            Event::LoginLocked => "LOGIN_LOCKED",
            Event::Logout => "LOGOUT",
            Event::EmailVerified => "EMAIL_VERIFIED",
            Event::PhoneVerified => "PHONE_VERIFIED",
            Event::PasswordChanged => "PASSWORD_CHANGED",
            Event::PasswordResetRequested => "PASSWORD_RESET_REQUESTED",
            Event::PasswordReset => "PASSWORD_RESET",
            Event::EmailChanged => "EMAIL_CHANGED",
            Event::SessionRevoked => "SESSION_REVOKED",
            Event::SuspiciousActivity => "SUSPICIOUS_ACTIVITY",
            Event::AccountDeleted => "ACCOUNT_DELETED",
            Event::MfaEnabled => "MFA_ENABLED",
            Event::MfaDisabled => "MFA_DISABLED",
            Event::MfaDeviceAdded => "MFA_DEVICE_ADDED",
            Event::MfaDeviceRemoved => "MFA_DEVICE_REMOVED",
            Event::MfaVerificationSuccess => "MFA_VERIFICATION_SUCCESS",
            Event::MfaVerificationFailed => "MFA_VERIFICATION_FAILED",
            Event::BackupCodeUsed => "BACKUP_CODE_USED",
            Event::BackupCodesRegenerated => "BACKUP_CODES_REGENERATED",
            Event::DeviceTrusted => "DEVICE_TRUSTED",
            Event::DeviceUntrusted => "DEVICE_UNTRUSTED",
            Event::ApiKeyCreated => "API_KEY_CREATED",
            Event::ApiKeyRevoked => "API_KEY_REVOKED",
            Event::PasskeyAdded => "PASSKEY_ADDED",
            Event::PasskeyRenamed => "PASSKEY_RENAMED",
            Event::PasskeyRemoved => "PASSKEY_REMOVED",
            Event::AdminAction => "ADMIN_ACTION",
            Event::SocialLinked => "SOCIAL_LINKED",
            Event::SocialUnlinked => "SOCIAL_UNLINKED",
        }
    }
}

/// Who and where, for the audit row.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    /// Client IP as text.
    pub ip: Option<String>,
    /// User-Agent, truncated.
    pub user_agent: Option<String>,
}

/// Writes one audit row on the pool; errors are logged and swallowed.
pub(crate) async fn audit(
    inner: &Inner,
    user_id: Option<&str>,
    event: Event,
    success: bool,
    origin: &Origin,
    details: Value,
) {
    audit_in(
        &inner.store,
        inner,
        user_id,
        event,
        success,
        origin,
        details,
    )
    .await;
}

/// Writes one audit row on a given connection or transaction (the change it records commits
/// with it); errors are logged and swallowed.
pub(crate) async fn audit_in(
    db: &impl Conn,
    inner: &Inner,
    user_id: Option<&str>,
    event: Event,
    success: bool,
    origin: &Origin,
    details: Value,
) {
    inner.metrics.event(event);
    let row = AuditRow {
        user_id: user_id.map(str::to_string),
        event: event.as_str(),
        success,
        ip: origin.ip.clone(),
        user_agent: origin.user_agent.clone(),
        details: details.to_string(),
        created_at: inner.clock.now_ms(),
    };
    crate::store::audit::insert(db, row).await;
}
