//! The audit log: one row per security event. Writing it never fails the request: a failed
//! write is logged (without secrets) and the flow goes on.

use sea_orm::{EntityTrait, Set};
use serde_json::Value;

use crate::Inner;
use crate::store::entities::audit_log;

/// Audit event types (docs/api.md §3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Event {
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
}

impl Event {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
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
        }
    }
}

/// Who and where, for the audit row.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// Client IP as text.
    pub ip: Option<String>,
    /// User-Agent, truncated.
    pub user_agent: Option<String>,
}

/// Writes one audit row; errors are logged and swallowed.
pub(crate) async fn audit(
    inner: &Inner,
    user_id: Option<&str>,
    event: Event,
    success: bool,
    origin: &Origin,
    details: Value,
) {
    audit_in(
        inner,
        &inner.store.db,
        user_id,
        event,
        success,
        origin,
        details,
    )
    .await;
}

/// Writes one audit row on a given connection or transaction; errors are logged and
/// swallowed. Inside a PostgreSQL transaction a failed insert would poison it, so callers use
/// this only for rows whose insert cannot conflict (a fresh UUID key).
pub(crate) async fn audit_in(
    inner: &Inner,
    db: &impl sea_orm::ConnectionTrait,
    user_id: Option<&str>,
    event: Event,
    success: bool,
    origin: &Origin,
    details: Value,
) {
    let row = audit_log::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        user_id: Set(user_id.map(str::to_string)),
        event_type: Set(event.as_str().to_string()),
        event_status: Set(if success { "SUCCESS" } else { "FAILURE" }.to_string()),
        ip_address: Set(origin.ip.clone()),
        user_agent: Set(origin.user_agent.clone()),
        details: Set(details.to_string()),
        created_at: Set(inner.clock.now_ms()),
    };
    if let Err(e) = audit_log::Entity::insert(row).exec(db).await {
        tracing::warn!(event = event.as_str(), error = %e, "audit write failed");
    }
}
