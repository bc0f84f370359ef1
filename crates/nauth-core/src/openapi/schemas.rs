//! The request bodies of nauth's routes and the small answers that have no struct of their own
//! in the flows, as schema types of the OpenAPI document. The flows read bodies field by field
//! (so that every bad field is reported at once, docs/api.md §1); these types say which fields
//! they read. The larger answers (users, sessions, devices, keys, audit rows, challenges,
//! tokens) are the flows' own types.
#![allow(dead_code)] // schema types: only their shape is used

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The error shape of every 4xx and 5xx answer (docs/api.md §1, §8).
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody {
    /// The stable error code, e.g. `AUTH_INVALID_CREDENTIALS`.
    code: String,
    /// A short English message; match on `code`, not on it.
    message: String,
    /// `validationErrors` (400 VALIDATION_FAILED), `errors` (SIGNUP_WEAK_PASSWORD),
    /// `attemptsRemaining` (VERIFY_CODE_INVALID) or `retryAfter` (429, 503); absent when empty.
    details: Option<serde_json::Map<String, Value>>,
    /// When the error was answered (ISO 8601 UTC).
    timestamp: String,
}

/// `POST /signup`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignupRequest {
    /// The account's email (trimmed, lower-cased, at most 254 characters).
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// 8 to 128 characters (the configured policy); never trimmed.
    #[schema(min_length = 8, max_length = 128)]
    password: String,
    /// `[a-z0-9_-]{3,32}` after lower-casing.
    username: Option<String>,
    /// At most 100 characters.
    first_name: Option<String>,
    /// At most 100 characters.
    last_name: Option<String>,
    /// E.164, e.g. `+15551234567` (spaces are stripped).
    phone: Option<String>,
    /// Any JSON object of at most 4 KiB, kept with the account.
    metadata: Option<serde_json::Map<String, Value>>,
    /// The language of the account's mails: `en` or `fr` (a tag like `fr-CA` is stored as
    /// `fr`); none: the request's `Accept-Language` decides each time.
    locale: Option<String>,
}

/// `POST /login`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginRequest {
    /// An email (contains `@`), an E.164 phone (verified phones only) or a username.
    identifier: String,
    /// The password.
    #[schema(min_length = 8, max_length = 128)]
    password: String,
    /// A name for the session's device, at most 100 characters.
    device_name: Option<String>,
    /// `mobile`, `desktop` or `tablet`.
    device_type: Option<String>,
}

/// `POST /respond-challenge`: `session`, `type`, and the fields that challenge needs.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RespondRequest {
    /// The challenge session from the previous answer.
    session: String,
    /// The challenge answered: `VERIFY_EMAIL`, `VERIFY_PHONE`, `MFA_SETUP_REQUIRED`,
    /// `MFA_REQUIRED` or `FORCE_CHANGE_PASSWORD`.
    #[serde(rename = "type")]
    kind: String,
    /// The 6-digit code (VERIFY_*, MFA_REQUIRED), or a backup code (`method: "backup"`).
    code: Option<String>,
    /// VERIFY_PHONE when `requiresPhoneCollection` is `"true"`: the number to send the code to.
    phone: Option<String>,
    /// FORCE_CHANGE_PASSWORD: the new password.
    #[schema(min_length = 8, max_length = 128)]
    new_password: Option<String>,
    /// MFA_REQUIRED: `totp`, `email`, `sms`, `backup` or `passkey` (default the preferred
    /// method);
    /// MFA_SETUP_REQUIRED: `totp`, `email` or `sms`.
    method: Option<String>,
    /// MFA_SETUP_REQUIRED: `{ "code": "123456" }`, the code of the factor being enrolled.
    setup_data: Option<serde_json::Map<String, Value>>,
    /// MFA_REQUIRED with `method: "passkey"`: the `ceremony` of `/challenge/passkey-options`.
    ceremony: Option<String>,
    /// MFA_REQUIRED with `method: "passkey"`: the `PublicKeyCredential` of
    /// `navigator.credentials.get` (JSON, binary fields base64url).
    credential: Option<serde_json::Map<String, Value>>,
}

/// `POST /challenge/resend`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ResendRequest {
    /// The challenge session.
    session: String,
    /// MFA_REQUIRED: `email` or `sms` (default the preferred method).
    method: Option<String>,
}

/// `POST /challenge/setup-data`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ChallengeSetupRequest {
    /// The MFA_SETUP_REQUIRED session.
    session: String,
    /// `totp`, `email` or `sms`.
    method: String,
    /// `sms` when no phone is on file: the number to enrol.
    phone: Option<String>,
}

/// `POST /refresh`, `POST /revoke` and `POST /logout`: a refresh token in the body (or, for
/// refresh and logout, the refresh cookie).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RefreshRequest {
    /// The opaque refresh token; without it the refresh cookie is read.
    refresh_token: Option<String>,
}

/// `POST /logout`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogoutRequest {
    /// A refresh token, when the request carries no access token.
    refresh_token: Option<String>,
    /// Also forget this browser's trusted device (clears its cookie, revokes it).
    forget_device: Option<bool>,
}

/// `POST /logout-all`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogoutAllRequest {
    /// Also revoke every trusted device of the user.
    forget_devices: Option<bool>,
}

/// `POST /revoke`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RevokeRequest {
    /// The refresh token whose whole family is revoked.
    refresh_token: String,
}

/// `POST /forgot-password`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ForgotRequest {
    /// An email, a verified E.164 phone or a username.
    identifier: String,
}

/// `POST /forgot-password/confirm`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ForgotConfirmRequest {
    /// The identifier the code was asked for.
    identifier: String,
    /// The 6-digit reset code.
    code: String,
    /// The new password.
    #[schema(min_length = 8, max_length = 128)]
    new_password: String,
}

/// `POST /reset-password`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResetRequest {
    /// The `token` of the reset link.
    token: String,
    /// The new password.
    #[schema(min_length = 8, max_length = 128)]
    new_password: String,
}

/// `PUT /profile`: the fields to change.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpdateProfileRequest {
    /// At most 100 characters; `null` clears it.
    first_name: Option<String>,
    /// At most 100 characters; `null` clears it.
    last_name: Option<String>,
    /// `[a-z0-9_-]{3,32}`; `null` clears it.
    username: Option<String>,
    /// A JSON object of at most 4 KiB; replaces the stored one.
    metadata: Option<serde_json::Map<String, Value>>,
    /// The language of the account's mails, `en` or `fr`; `null` clears it.
    locale: Option<String>,
}

/// `POST /change-password`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChangePasswordRequest {
    /// The current password.
    #[schema(min_length = 8, max_length = 128)]
    old_password: String,
    /// The new password.
    #[schema(min_length = 8, max_length = 128)]
    new_password: String,
}

/// `POST /change-email`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChangeEmailRequest {
    /// The new address; a code is mailed to it.
    #[schema(format = Email, max_length = 254)]
    new_email: String,
    /// The current password.
    #[schema(min_length = 8, max_length = 128)]
    password: String,
}

/// A 6-digit code (`POST /change-email/confirm`).
#[derive(Serialize, ToSchema)]
pub(crate) struct CodeRequest {
    /// The code.
    code: String,
}

/// The password (`DELETE /account`, `POST /mfa/backup-codes`).
#[derive(Serialize, ToSchema)]
pub(crate) struct PasswordRequest {
    /// The current password.
    #[schema(min_length = 8, max_length = 128)]
    password: String,
}

/// A fresh proof for a change of factors: the password or a current second factor.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProofRequest {
    /// The current password.
    password: Option<String>,
    /// A current TOTP, email or SMS code, or an unused backup code.
    code: Option<String>,
}

/// `POST /mfa/setup-data`.
#[derive(Serialize, ToSchema)]
pub(crate) struct MfaSetupRequest {
    /// `totp`, `email` or `sms`.
    method: String,
    /// `sms`: the number to enrol (E.164).
    phone: Option<String>,
    /// When MFA is already enabled, the password or `code` proves the user.
    password: Option<String>,
    /// When MFA is already enabled: a current second factor or backup code.
    code: Option<String>,
}

/// `POST /mfa/verify-setup`.
#[derive(Serialize, ToSchema)]
pub(crate) struct MfaVerifyRequest {
    /// `totp`, `email` or `sms`.
    method: String,
    /// The code from the authenticator app, the mail or the text message.
    code: String,
}

/// `POST /api-keys`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateApiKeyRequest {
    /// At most 100 characters.
    name: String,
    /// A non-empty subset of the configured `api_keys.scopes`.
    scopes: Vec<String>,
    /// When the key stops working (ISO 8601, in the future); none: never.
    expires_at: Option<String>,
    /// The fresh proof: the password, or `code`.
    password: Option<String>,
    /// The fresh proof: a current second factor or backup code.
    code: Option<String>,
}

/// `POST /admin/users`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AdminCreateUserRequest {
    /// The new account's email.
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// The password; none: one is generated and answered once as `generatedPassword`.
    password: Option<String>,
    /// `[a-z0-9_-]{3,32}`.
    username: Option<String>,
    /// E.164.
    phone: Option<String>,
    /// At most 100 characters.
    first_name: Option<String>,
    /// At most 100 characters.
    last_name: Option<String>,
    /// Default `["user"]`; each 1 to 64 of `a-z 0-9 _ : -`.
    roles: Option<Vec<String>>,
    /// Default false.
    email_verified: Option<bool>,
    /// Default false; needs `phone`.
    phone_verified: Option<bool>,
    /// Default: true when the password is generated.
    must_change_password: Option<bool>,
    /// The admin's fresh proof: their password, or `code`.
    current_password: Option<String>,
    /// The admin's fresh proof: a current second factor or backup code.
    code: Option<String>,
}

/// `PUT /admin/users/{sub}`: the fields to change.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AdminUpdateUserRequest {
    /// A new email (unverified unless `emailVerified` says otherwise); needs the proof.
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    /// `null` clears it.
    username: Option<String>,
    /// `null` clears it; needs the proof.
    phone: Option<String>,
    /// At most 100 characters.
    first_name: Option<String>,
    /// At most 100 characters.
    last_name: Option<String>,
    /// A JSON object of at most 4 KiB.
    metadata: Option<serde_json::Map<String, Value>>,
    /// Needs the proof.
    email_verified: Option<bool>,
    /// Needs the proof.
    phone_verified: Option<bool>,
    /// The admin's fresh proof (a change of email, phone or their verified flags).
    current_password: Option<String>,
    /// The admin's fresh proof: a current second factor or backup code.
    code: Option<String>,
}

/// The admin's fresh proof (`DELETE /admin/users/{sub}`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AdminProofRequest {
    /// The admin's password.
    current_password: Option<String>,
    /// A current second factor or backup code of the admin.
    code: Option<String>,
}

/// `POST /admin/users/{sub}/disable`.
#[derive(Serialize, ToSchema)]
pub(crate) struct DisableRequest {
    /// Why, kept in the audit row (at most 500 characters).
    reason: Option<String>,
}

/// `POST /admin/users/{sub}/force-password-change`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ForcePasswordChangeRequest {
    /// Also end every session now (default false).
    revoke_sessions: Option<bool>,
}

/// `POST /admin/users/{sub}/mfa/exemption`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MfaExemptionRequest {
    /// Grant (needs the proof) or withdraw the exemption.
    exempt: bool,
    /// Why, kept in the audit row.
    reason: Option<String>,
    /// The admin's password (when granting).
    current_password: Option<String>,
    /// A current second factor or backup code of the admin (when granting).
    code: Option<String>,
}

/// `POST /admin/users/{sub}/roles`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RolesRequest {
    /// The user's whole new role list (at most 16).
    roles: Vec<String>,
    /// The admin's password (when a role is granted).
    current_password: Option<String>,
    /// A current second factor or backup code of the admin (when a role is granted).
    code: Option<String>,
}

/// `{ "success": true }`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Success {
    /// Always true.
    success: bool,
}

/// `POST /forgot-password`: the same bytes whether or not the account exists.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ForgotResponse {
    /// Always true.
    success: bool,
    /// `email`, or `sms` for a phone identifier.
    delivery_medium: String,
    /// Seconds the code works.
    expires_in: u64,
}

/// Where a code went (masked).
#[derive(Serialize, ToSchema)]
pub(crate) struct Destination {
    /// `j***n@example.com` or `***-***-1234`.
    destination: String,
}

/// `POST /change-email`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ChangeEmailResponse {
    /// Always true.
    success: bool,
    /// The masked new address.
    destination: String,
}

/// `POST /change-password`: the token fields only in json delivery.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChangePasswordResponse {
    /// Always true.
    success: bool,
    /// json delivery: this session's new access token.
    access_token: Option<String>,
    /// json delivery: this session's new refresh token.
    refresh_token: Option<String>,
    /// json delivery: Unix seconds.
    access_token_expires_at: Option<i64>,
    /// json delivery: Unix seconds.
    refresh_token_expires_at: Option<i64>,
}

/// A count of revoked sessions or devices.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RevokedCount {
    /// How many were revoked.
    revoked_count: u64,
}

/// `DELETE /sessions/{sessionId}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionDeleted {
    /// Always true.
    success: bool,
    /// Whether the caller's own session was revoked.
    was_current_session: bool,
}

/// `POST /challenge/setup-data`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChallengeSetupResponse {
    /// The shape of `POST /mfa/setup-data`'s answer.
    setup_data: MfaSetupData,
}

/// What enrolling a factor needs: the TOTP secret and QR code, or where a code was sent.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum MfaSetupData {
    /// `totp`.
    Totp(crate::flows::mfa::TotpSetup),
    /// `email` or `sms`: the code was sent there.
    Sent(Destination),
}

/// `POST /mfa/backup-codes`.
#[derive(Serialize, ToSchema)]
pub(crate) struct BackupCodes {
    /// Ten single-use codes of 8 characters, shown once.
    codes: Vec<String>,
}

/// `GET /mfa/devices`.
#[derive(Serialize, ToSchema)]
pub(crate) struct MfaDeviceList {
    /// TOTP, email and SMS factors (backup codes are not a device).
    devices: Vec<crate::flows::mfa::DeviceBody>,
}

/// `POST /trust-device`: the token in json delivery, else `{ "success": true }` and the
/// device cookie.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeviceTokenResponse {
    /// json delivery: send it back as `X-Device-Token` on later logins.
    device_token: Option<String>,
    /// Cookie delivery: true.
    success: Option<bool>,
}

/// `GET /trusted-devices`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TrustedDeviceList {
    /// The user's live trusted devices.
    trusted_devices: Vec<crate::flows::mfa::TrustedBody>,
}

/// `GET /api-keys`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiKeyList {
    /// The user's keys, revoked ones included.
    api_keys: Vec<crate::flows::api_keys::KeyBody>,
}

/// A page of audit rows.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditPage {
    /// Newest first.
    data: Vec<crate::flows::audit::EntryBody>,
    /// Rows in all pages.
    total: u64,
    /// This page (from 1).
    page: u64,
    /// Rows per page.
    limit: u64,
}

/// A page of users (`GET /admin/users`).
#[derive(Serialize, ToSchema)]
pub(crate) struct AdminUserPage {
    /// The users of this page.
    data: Vec<crate::flows::admin::AdminUserBody>,
    /// Users in all pages.
    total: u64,
    /// This page (from 1).
    page: u64,
    /// Users per page.
    limit: u64,
}

/// `POST /admin/users`: the user and, when generated, the one-time password.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AdminUserCreated {
    /// The new user.
    #[serde(flatten)]
    user: crate::flows::admin::AdminUserBody,
    /// Shown once; the first login then answers FORCE_CHANGE_PASSWORD.
    generated_password: Option<String>,
}

/// An admin action that ended sessions.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionsRevoked {
    /// Always true.
    success: bool,
    /// How many sessions ended.
    sessions_revoked: u64,
}

/// `GET /.well-known/jwks.json` (RFC 7517): empty under HS256.
#[derive(Serialize, ToSchema)]
pub(crate) struct Jwks {
    /// The public keys tokens are verified with (`kty`, `kid`, `alg`, `use` and the key).
    keys: Vec<serde_json::Map<String, Value>>,
}

/// `POST /magic-link`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MagicLinkRequest {
    /// The account's email.
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// Where the browser goes after the link logs in (a relative path only).
    redirect_to: Option<String>,
}

/// `POST /passkeys/register/options`: a fresh proof, and the new passkey's name.
#[derive(Serialize, ToSchema)]
pub(crate) struct PasskeyRegisterOptionsRequest {
    /// The current password (or give `code`).
    #[schema(max_length = 1024)]
    password: Option<String>,
    /// A current TOTP or unused backup code (or give `password`).
    #[schema(max_length = 16)]
    code: Option<String>,
    /// A name for the passkey, at most 100 characters (default `Passkey`).
    #[schema(max_length = 100)]
    name: Option<String>,
}

/// `POST /passkeys/register`.
#[derive(Serialize, ToSchema)]
pub(crate) struct PasskeyRegisterRequest {
    /// The `ceremony` of the options.
    ceremony: String,
    /// The `PublicKeyCredential` of `navigator.credentials.create` as JSON (`id`, `rawId`,
    /// `type`, `response.attestationObject`, `response.clientDataJSON`; binary base64url).
    credential: serde_json::Map<String, Value>,
}

/// `PUT /passkeys/{id}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct PasskeyRenameRequest {
    /// The new name, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
}

/// `POST /passkeys/login`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PasskeyLoginRequest {
    /// The `ceremony` of `/passkeys/login/options`.
    ceremony: String,
    /// The `PublicKeyCredential` of `navigator.credentials.get` as JSON (`id`, `rawId`,
    /// `type`, `response.authenticatorData`, `response.clientDataJSON`,
    /// `response.signature`, `response.userHandle`; binary base64url).
    credential: serde_json::Map<String, Value>,
    /// A name for the session's device, at most 100 characters.
    device_name: Option<String>,
    /// `mobile`, `desktop` or `tablet`.
    device_type: Option<String>,
}

/// `POST /challenge/passkey-options`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ChallengePasskeyOptionsRequest {
    /// The MFA_REQUIRED session.
    session: String,
}

/// `POST /passkeys/register`: the new passkey.
#[derive(Serialize, ToSchema)]
pub(crate) struct PasskeyCreated {
    /// The stored passkey.
    passkey: crate::flows::passkey_types::PasskeyBody,
}

/// `GET /passkeys`.
#[derive(Serialize, ToSchema)]
pub(crate) struct PasskeyList {
    /// Oldest first.
    passkeys: Vec<crate::flows::passkey_types::PasskeyBody>,
}

/// A tokens answer (docs/api.md §2). The four token fields are in the body in json delivery
/// only; cookie delivery sends them as cookies.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Tokens {
    /// json delivery: the access token (a JWT).
    access_token: Option<String>,
    /// json delivery: the opaque refresh token.
    refresh_token: Option<String>,
    /// json delivery: Unix seconds.
    access_token_expires_at: Option<i64>,
    /// json delivery: Unix seconds.
    refresh_token_expires_at: Option<i64>,
    /// `password`, `magic_link`, … and the second factor, e.g. `password+totp`.
    auth_method: String,
    /// True when MFA was skipped for a trusted device.
    trusted: bool,
    /// The signed-in user.
    user: crate::flows::UserBody,
    /// When the answer completes MFA_SETUP_REQUIRED: the backup codes, shown once.
    backup_codes: Option<Vec<String>>,
    /// json delivery under `mfa.remember_devices = "always"`: the trusted-device token.
    device_token: Option<String>,
}

/// One configured social login provider (`GET /social/providers`).
#[derive(Serialize, ToSchema)]
pub(crate) struct SocialProvider {
    /// The name in the routes: `GET <mount>/social/{name}`.
    name: String,
    /// `oidc`, `google`, `microsoft`, `apple` or `github`.
    kind: String,
    /// The button's text.
    label: String,
}

/// `GET /social/providers`.
#[derive(Serialize, ToSchema)]
pub(crate) struct SocialProviders {
    /// The configured providers, by name.
    providers: Vec<SocialProvider>,
}

/// `POST /social/exchange`.
#[derive(Serialize, ToSchema)]
pub(crate) struct SocialExchangeRequest {
    /// The `exchangeCode` the callback's redirect carried (single use, 60 seconds).
    code: String,
}

/// `POST /social/{provider}/link`: a fresh proof, `password` or `code`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SocialLinkRequest {
    /// The account's password.
    password: Option<String>,
    /// A current TOTP or backup code (instead of the password).
    code: Option<String>,
    /// Where the browser goes once linked (a relative path only; default `/`).
    redirect_to: Option<String>,
}

/// `POST /social/{provider}/link`.
#[derive(Serialize, ToSchema)]
pub(crate) struct SocialLinkResponse {
    /// The provider's authorization URL: send the browser there (the flow cookie is set).
    url: String,
}

/// One linked provider identity.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SocialIdentity {
    /// The provider's configured name.
    provider: String,
    /// The verified email the provider asserted.
    email: Option<String>,
    /// When it was linked (ISO 8601 UTC).
    linked_at: String,
    /// The last sign-in through it (ISO 8601 UTC), if any.
    last_used_at: Option<String>,
}

/// `GET /social/identities`.
#[derive(Serialize, ToSchema)]
pub(crate) struct SocialIdentityList {
    /// The user's linked identities, oldest first.
    identities: Vec<SocialIdentity>,
}
