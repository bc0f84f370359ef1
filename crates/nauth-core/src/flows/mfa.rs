//! Multi-factor authentication: enrolment (TOTP, email and SMS codes), the MFA answers of the
//! state machine, backup codes, device management and trusted devices.

use serde_json::{Map, Value, json};

use super::{Ctx, Outcome};
use crate::clock::iso8601;
use crate::codes;
use crate::config::{MfaMethod, RememberDevices};
use crate::error::{AuthError, AuthResult};
use crate::events::Event;
use crate::input::{Input, mask_email, mask_phone};
use crate::mfa;
use crate::store::users::UserPatch;
use crate::store::{
    self, BackupCode, Challenge, Conn, MfaDevice, TrustedDevice, User, VerificationToken,
};

/// A second factor, as named on the wire (`method`) and stored (`kind` of a device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Factor {
    /// An authenticator app (TOTP).
    Totp,
    /// A code by email.
    Email,
    /// A code by SMS.
    Sms,
    /// One of the user's backup codes (never a device).
    Backup,
}

impl Factor {
    /// The kinds a device can have, in the order they are listed (`availableMethods`,
    /// `configuredMethods`).
    pub(crate) const DEVICE_KINDS: [Factor; 3] = [Factor::Totp, Factor::Email, Factor::Sms];

    /// The hash purpose of backup codes. Fixed: the stored hashes depend on it.
    const BACKUP_CODE_PURPOSE: &'static str = "backup";

    /// Parses a wire or stored name.
    pub(crate) fn parse(s: &str) -> Option<Factor> {
        Some(match s {
            "totp" => Factor::Totp,
            "email" => Factor::Email,
            "sms" => Factor::Sms,
            "backup" => Factor::Backup,
            _ => return None,
        })
    }

    /// The wire and stored name, e.g. `totp`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Factor::Totp => "totp",
            Factor::Email => "email",
            Factor::Sms => "sms",
            Factor::Backup => "backup",
        }
    }

    /// Whether the factor's code is sent (by email or SMS) rather than held by the user.
    pub(crate) fn sends_code(self) -> bool {
        matches!(self, Factor::Email | Factor::Sms)
    }

    /// The factor of a device row (`None` for a kind this version does not know).
    pub(crate) fn of(device: &MfaDevice) -> Option<Factor> {
        Factor::parse(&device.kind)
    }

    /// The purpose an enrolment code or secret of this factor is kept under.
    fn setup_purpose(self) -> String {
        format!("mfa_setup_{}", self.as_str())
    }
}

impl From<MfaMethod> for Factor {
    fn from(m: MfaMethod) -> Factor {
        match m {
            MfaMethod::Totp => Factor::Totp,
            MfaMethod::Email => Factor::Email,
            MfaMethod::Sms => Factor::Sms,
        }
    }
}

const SETUP_TTL_MS: i64 = 15 * 60 * 1000;

/// The factors of `mfa.allowed_methods`, in their configured order.
fn allowed_factors<'c>(ctx: &'c Ctx<'_>) -> impl Iterator<Item = Factor> + 'c {
    ctx.cfg()
        .mfa
        .allowed_methods
        .iter()
        .map(|m| Factor::from(*m))
}

fn allowed(ctx: &Ctx<'_>, method: Factor) -> bool {
    allowed_factors(ctx).any(|m| m == method)
}

/// Whether the user has a device of this factor.
fn has_device(devs: &[MfaDevice], factor: Factor) -> bool {
    devs.iter().any(|d| Factor::of(d) == Some(factor))
}

/// Names joined by commas, as challenge parameters list them.
fn joined(factors: impl IntoIterator<Item = Factor>) -> String {
    factors
        .into_iter()
        .map(Factor::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// The user's MFA devices, oldest first.
pub(crate) async fn devices(db: &impl Conn, user_id: &str) -> AuthResult<Vec<MfaDevice>> {
    Ok(store::mfa::devices(db, user_id).await?)
}

async fn backup_remaining(db: &impl Conn, user_id: &str) -> AuthResult<u64> {
    Ok(store::mfa::backup_codes_left(db, user_id).await?)
}

fn preferred(devs: &[MfaDevice]) -> Option<&MfaDevice> {
    devs.iter().find(|d| d.is_preferred).or(devs.first())
}

fn available(devs: &[MfaDevice], backups: u64) -> Vec<Factor> {
    let mut v: Vec<Factor> = Factor::DEVICE_KINDS
        .into_iter()
        .filter(|f| has_device(devs, *f))
        .collect();
    if backups > 0 {
        v.push(Factor::Backup);
    }
    v
}

/// A destination as it may be shown: a masked phone for SMS, else a masked email.
pub(crate) fn mask(kind: Factor, destination: &str) -> String {
    if kind == Factor::Sms {
        mask_phone(destination)
    } else {
        mask_email(destination)
    }
}

/// Queues a one-time code by mail or SMS (`sms` says what the text calls it); it goes out
/// once the flow has succeeded. The caller
/// counts it toward the hourly cap (inside a transaction: `count_later`).
/// A mailed code lives as long as the challenge or enrolment that asked for it (15 minutes).
pub(crate) fn deliver_code(
    ctx: &Ctx<'_>,
    user: &User,
    kind: Factor,
    destination: &str,
    code: &str,
    sms: crate::mail::Sms,
) {
    if kind == Factor::Sms {
        let ttl = std::time::Duration::from_millis(SETUP_TTL_MS as u64);
        ctx.queue_code_sms(destination, user, sms, code, ttl);
    } else {
        let vars = crate::mail::Vars {
            code: Some(code.to_string()),
            code_ttl: Some(std::time::Duration::from_millis(SETUP_TTL_MS as u64)),
            ..Default::default()
        };
        ctx.queue_mail(destination, Some(user), crate::mail::Kind::MfaCode, vars);
    }
}

/// What an MFA_REQUIRED challenge starts with.
pub(crate) struct RequiredChallenge {
    pub params: Map<String, Value>,
    /// The hash of the email/SMS code sent with it (preferred method `email` or `sms`).
    pub code_hash: Option<String>,
    pub destination: Option<String>,
    pub method: Option<Factor>,
    /// When that code was sent (earlier than now when a live code was taken over).
    pub sent_at: Option<i64>,
}

/// The MFA_REQUIRED challenge: its parameters, and (for email/sms) the code sent with it.
pub(crate) async fn required_challenge(
    ctx: &Ctx<'_>,
    db: &impl Conn,
    user: &User,
) -> AuthResult<RequiredChallenge> {
    let devs = devices(db, &user.id).await?;
    let backups = backup_remaining(db, &user.id).await?;
    let mut params = Map::new();
    #[allow(unused_mut)]
    let mut methods = joined(available(&devs, backups));
    // A passkey answers too, through `/challenge/passkey-options` (docs/passkeys.md).
    #[cfg(feature = "passkeys")]
    if super::passkeys::offered(ctx, db, &user.id).await? {
        methods.push_str(if methods.is_empty() {
            "passkey"
        } else {
            ",passkey"
        });
    }
    params.insert("availableMethods".into(), json!(methods));
    let pref = preferred(&devs);
    params.insert(
        "preferredMethod".into(),
        json!(
            pref.map(|d| d.kind.as_str())
                .unwrap_or(Factor::Backup.as_str())
        ),
    );
    let sent = pref.and_then(|d| Some((d, Factor::of(d).filter(|f| f.sends_code())?)));
    if let Some((d, kind)) = sent {
        let dest = d.destination.clone().unwrap_or_default();
        let (hash, at) = super::auth::issue_code(
            ctx,
            db,
            user,
            crate::challenge::ChallengeName::MfaRequired,
            kind,
            &dest,
            false,
        )
        .await?;
        params.insert("codeDeliveryDestination".into(), json!(mask(kind, &dest)));
        return Ok(RequiredChallenge {
            params,
            code_hash: Some(hash),
            destination: Some(dest),
            method: Some(kind),
            sent_at: Some(at),
        });
    }
    Ok(RequiredChallenge {
        params,
        code_hash: None,
        destination: None,
        method: None,
        sent_at: None,
    })
}

/// MFA_SETUP_REQUIRED parameters.
pub(crate) fn setup_params(ctx: &Ctx<'_>) -> Map<String, Value> {
    let mut params = Map::new();
    params.insert("allowedMethods".into(), json!(joined(allowed_factors(ctx))));
    params
}

/// Checks an MFA answer for a user; `Ok(true)` when right. TOTP steps and backup codes are
/// consumed so they never work twice.
pub(crate) async fn check_answer(
    ctx: &Ctx<'_>,
    db: &impl Conn,
    user: &User,
    challenge: Option<&Challenge>,
    method: Factor,
    code: &str,
) -> AuthResult<bool> {
    match method {
        Factor::Totp => {
            let Some(d) = devices(db, &user.id)
                .await?
                .into_iter()
                .find(|d| Factor::of(d) == Some(Factor::Totp))
            else {
                return Err(AuthError::MfaMethodNotAllowed);
            };
            let secret = mfa::open(
                ctx.inner.keys.mfa_key(),
                &user.id,
                d.secret_sealed.as_deref().unwrap_or(""),
            )?;
            let Some(step) = mfa::verify_totp(&secret, code, ctx.now_s() as u64, d.last_step)?
            else {
                return Ok(false);
            };
            // Conditional on the old step, so two racing requests cannot both use one code.
            Ok(store::mfa::use_totp_step(db, &d.id, d.last_step, step, ctx.now).await?)
        }
        Factor::Email | Factor::Sms => {
            if !has_device(&devices(db, &user.id).await?, method) {
                return Err(AuthError::MfaMethodNotAllowed);
            }
            let Some(ch) = challenge else {
                return Ok(false);
            };
            if ch.method.as_deref().and_then(Factor::parse) != Some(method) {
                return Ok(false);
            }
            let ok = super::auth::challenge_code_matches(ctx, ch, code);
            if ok {
                store::mfa::touch_kind(db, &user.id, method.as_str(), ctx.now).await?;
            }
            Ok(ok)
        }
        Factor::Backup => {
            if !user.mfa_enabled {
                return Err(AuthError::MfaMethodNotAllowed);
            }
            let typed = mfa::normalize_backup_code(code);
            let unused = store::mfa::unused_backup_codes(db, &user.id).await?;
            let mut hit = None;
            for c in &unused {
                // Every candidate is compared, so the time does not tell which one matched.
                if ctx.inner.keys.verify_code(
                    Factor::BACKUP_CODE_PURPOSE,
                    &user.id,
                    &typed,
                    &c.code_hash,
                ) {
                    hit = Some(c.id.clone());
                }
            }
            let Some(id) = hit else { return Ok(false) };
            let won = store::mfa::use_backup_code(db, &id, ctx.now).await?;
            if won {
                ctx.audit_later(Some(&user.id), Event::BackupCodeUsed, true, json!({}));
            }
            Ok(won)
        }
    }
}

/// Starts enrolment of a method: TOTP gets a fresh secret (kept server-side, sealed), email
/// and SMS get a code. Shared by `/mfa/setup-data` and `/challenge/setup-data`.
pub(crate) async fn setup_data(
    ctx: &Ctx<'_>,
    user: &User,
    method: Option<Factor>,
    phone: Option<String>,
) -> AuthResult<Value> {
    let Some(method) = method.filter(|m| allowed(ctx, *m)) else {
        return Err(AuthError::MfaMethodNotAllowed);
    };
    let purpose = method.setup_purpose();
    let (data, hash, answer, send) = match method {
        Factor::Totp => {
            let secret = mfa::new_totp_secret();
            let issuer = &ctx.cfg().mfa.issuer;
            let uri = mfa::otpauth_uri(&secret, issuer, &user.email)?;
            let answer = super::body(&TotpSetup {
                secret: mfa::base32(&secret),
                qr_code: mfa::qr_data_url(&uri)?,
                otpauth_uri: uri,
                issuer: issuer.clone(),
                account_name: user.email.clone(),
            });
            (
                mfa::seal(ctx.inner.keys.mfa_key(), &user.id, &secret)?,
                String::new(),
                answer,
                None,
            )
        }
        Factor::Email | Factor::Sms => {
            let dest = if method == Factor::Email {
                user.email.clone()
            } else {
                phone
                    .or_else(|| user.phone.clone())
                    .ok_or_else(|| AuthError::field("phone", "is required: no phone on file"))?
            };
            let code = codes::random_code();
            let hash = ctx.inner.keys.hash_code("mfa_setup", &user.id, &code);
            (
                dest.clone(),
                hash,
                json!({ "destination": mask(method, &dest) }),
                Some((dest, code)),
            )
        }
        Factor::Backup => return Err(AuthError::MfaMethodNotAllowed),
    };
    if let Some((dest, code)) = &send {
        super::count_code_message(ctx, dest, method == Factor::Sms, Some(&user.id)).await?;
        deliver_code(ctx, user, method, dest, code, crate::mail::Sms::Verify);
    }
    transaction!(ctx, |tx| {
        store::verification::end_purpose(tx, &user.id, &purpose, ctx.now).await?;
        let pending = VerificationToken {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            purpose: purpose.clone(),
            token_hash: hash.clone(),
            data: Some(data.clone()),
            attempts: 0,
            created_at: ctx.now,
            expires_at: ctx.now + SETUP_TTL_MS,
            used_at: None,
        };
        store::verification::insert(tx, pending).await?;
        Ok(())
    })?;
    Ok(answer)
}

/// Completes enrolment with the code from the app, mail or SMS. Returns the new device id and,
/// for a user's first method, freshly generated backup codes (shown once).
pub(crate) async fn verify_setup(
    ctx: &Ctx<'_>,
    db: &impl Conn,
    user: &User,
    method: Option<Factor>,
    code: &str,
) -> AuthResult<(String, Option<Vec<String>>)> {
    let Some(method) = method.filter(|m| allowed(ctx, *m)) else {
        return Err(AuthError::MfaMethodNotAllowed);
    };
    let pending = store::verification::latest_pending(db, &user.id, &method.setup_purpose())
        .await?
        .ok_or(AuthError::VerifyCodeInvalid {
            attempts_remaining: None,
        })?;
    if pending.expires_at <= ctx.now {
        return Err(AuthError::VerifyCodeExpired);
    }
    // The attempt is counted before the code is compared (at most 3 per enrolment, whatever
    // the concurrency).
    let Some(slot) = super::budget::reserve_code_attempt(db, &pending.id, 3).await? else {
        return Err(AuthError::VerifyCodeInvalid {
            attempts_remaining: Some(0),
        });
    };
    let data = pending.data.clone().unwrap_or_default();
    let (right, sealed, destination, step) = if method == Factor::Totp {
        let secret = mfa::open(ctx.inner.keys.mfa_key(), &user.id, &data)?;
        let step = mfa::verify_totp(&secret, code, ctx.now_s() as u64, None)?;
        (step.is_some(), Some(data.clone()), None, step)
    } else {
        (
            ctx.inner
                .keys
                .verify_code("mfa_setup", &user.id, code, &pending.token_hash),
            None,
            Some(data.clone()),
            None,
        )
    };
    if !right {
        let attempts = slot;
        ctx.audit_later(
            Some(&user.id),
            Event::MfaVerificationFailed,
            false,
            json!({"method": method.as_str(), "phase": "setup"}),
        );
        return Err(AuthError::VerifyCodeInvalid {
            attempts_remaining: Some(Ord::max(3 - attempts, 0) as u32),
        });
    }
    if !store::verification::mark_used(db, &pending.id, ctx.now).await? {
        return Err(AuthError::VerifyCodeInvalid {
            attempts_remaining: None,
        });
    }
    let existing = devices(db, &user.id).await?;
    // One device per kind: enrolling TOTP again replaces the old authenticator.
    let same = |d: &MfaDevice| Factor::of(d) == Some(method);
    if let Some(old) = existing.iter().find(|d| same(d)) {
        store::mfa::remove_device(db, &old.id).await?;
    }
    let first = existing.iter().all(same);
    let id = uuid::Uuid::new_v4().to_string();
    let name = match method {
        Factor::Totp => "Authenticator app".to_string(),
        _ => mask(method, destination.as_deref().unwrap_or("")),
    };
    let device = MfaDevice {
        id: id.clone(),
        user_id: user.id.clone(),
        kind: method.as_str().to_string(),
        name,
        secret_sealed: sealed,
        destination: destination.clone(),
        is_preferred: first || existing.iter().any(|d| same(d) && d.is_preferred),
        last_step: step,
        created_at: ctx.now,
        last_used_at: Some(ctx.now),
    };
    store::mfa::add_device(db, device).await?;
    // Enrolment never touches the account's phone: an SMS factor is a second factor, not a
    // recovery channel. Backup codes come with the first factor only; adding or replacing a
    // later one never hands out (or invalidates) a set.
    let codes = if !user.mfa_enabled {
        Some(regenerate_backup_codes(ctx, db, &user.id).await?)
    } else {
        None
    };
    factor_notice(ctx, user, Some(method), true);
    let patch = UserPatch {
        mfa_enabled: Some(true),
        updated_at: Some(ctx.now),
        ..Default::default()
    };
    store::users::update(db, &user.id, patch).await?;
    ctx.audit_later(
        Some(&user.id),
        Event::MfaDeviceAdded,
        true,
        json!({"method": method.as_str()}),
    );
    if !user.mfa_enabled {
        ctx.audit_later(
            Some(&user.id),
            Event::MfaEnabled,
            true,
            json!({"method": method.as_str()}),
        );
    }
    Ok((id, codes))
}

/// Mails the account's owner that a factor was added or removed: the one signal a user gets
/// when someone else holds their session. `kind`: the device's factor (`None`, a kind this
/// version does not know, reads like SMS, as it always has).
fn factor_notice(ctx: &Ctx<'_>, user: &User, kind: Option<Factor>, added: bool) {
    let method = match kind {
        Some(Factor::Totp) => "totp",
        Some(Factor::Email) => "email",
        Some(Factor::Sms | Factor::Backup) | None => "sms",
    };
    sign_in_method_notice(ctx, user, method, None, added);
}

/// Mails the account's owner that a sign-in method was added or removed: `method` is a
/// factor (`totp`, `email`, `sms`), `passkey`, or `social` with the `provider`'s label.
pub(crate) fn sign_in_method_notice(
    ctx: &Ctx<'_>,
    user: &User,
    method: &'static str,
    provider: Option<String>,
    added: bool,
) {
    let mail = if added {
        crate::mail::Kind::MfaFactorAdded
    } else {
        crate::mail::Kind::MfaFactorRemoved
    };
    let vars = crate::mail::Vars {
        method: Some(method),
        provider,
        ..Default::default()
    };
    ctx.queue_mail(&user.email, Some(user), mail, vars);
}

async fn regenerate_backup_codes(
    ctx: &Ctx<'_>,
    db: &impl Conn,
    user_id: &str,
) -> AuthResult<Vec<String>> {
    store::mfa::delete_backup_codes(db, user_id).await?;
    let list = mfa::backup_codes(ctx.cfg().mfa.backup_code_count as usize);
    for c in &list {
        let code = BackupCode {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user_id.to_string(),
            code_hash: ctx
                .inner
                .keys
                .hash_code(Factor::BACKUP_CODE_PURPOSE, user_id, c),
            used_at: None,
            created_at: ctx.now,
        };
        store::mfa::add_backup_code(db, code).await?;
    }
    Ok(list)
}

/// The trusted-device token a request carries (header, else cookie), if it is valid for
/// this user; marks it used.
pub(crate) async fn trusted_device(
    ctx: &Ctx<'_>,
    db: &impl Conn,
    user_id: &str,
) -> AuthResult<bool> {
    let Some(token) = presented_device_token(ctx) else {
        return Ok(false);
    };
    let hash = codes::sha256_hex(token);
    Ok(store::devices::recognise(db, user_id, &hash, ctx.now).await?)
}

/// The trusted-device token a request carries: the `X-Device-Token` header, else the cookie.
/// A device cookie sent twice is no device at all (MFA is asked).
pub(crate) fn presented_device_token<'r>(ctx: &Ctx<'r>) -> Option<&'r str> {
    ctx.req
        .header("x-device-token")
        .or_else(|| {
            ctx.req
                .unique_cookie(&ctx.inner.cookies.device)
                .ok()
                .flatten()
        })
        .filter(|t| !t.is_empty())
}

/// Creates a trusted device for the user; returns its token (shown once).
pub(crate) async fn trust(
    ctx: &Ctx<'_>,
    db: &impl Conn,
    user_id: &str,
    name: Option<String>,
    kind: Option<String>,
) -> AuthResult<String> {
    let token = codes::random_token();
    let device = TrustedDevice {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.to_string(),
        token_hash: codes::sha256_hex(&token),
        device_name: name,
        device_type: kind,
        ip_address: ctx.origin.ip.clone(),
        created_at: ctx.now,
        last_used_at: None,
        expires_at: ctx.now + crate::clock::ms(ctx.cfg().mfa.remember_device_ttl),
    };
    store::devices::trust(db, device).await?;
    ctx.audit_later(Some(user_id), Event::DeviceTrusted, true, json!({}));
    Ok(token)
}

async fn me(ctx: &Ctx<'_>) -> AuthResult<User> {
    super::user_by_id(&ctx.inner.store, &ctx.principal()?.sub).await
}

/// `GET /mfa/status`.
pub(crate) async fn status(ctx: &Ctx<'_>) -> AuthResult<Outcome> {
    let user = me(ctx).await?;
    let db = &ctx.inner.store;
    let devs = devices(db, &user.id).await?;
    let backups = backup_remaining(db, &user.id).await?;
    let configured: Vec<&str> = Factor::DEVICE_KINDS
        .into_iter()
        .filter(|f| has_device(&devs, *f))
        .map(Factor::as_str)
        .collect();
    let allowed: Vec<&str> = allowed_factors(ctx).map(Factor::as_str).collect();
    let body = StatusBody {
        enabled: user.mfa_enabled,
        required: ctx.cfg().mfa.enforcement == crate::config::MfaEnforcement::Required,
        configured_methods: configured,
        available_methods: allowed,
        preferred_method: preferred(&devs).map(|d| d.kind.clone()),
        backup_codes_remaining: backups,
    };
    Ok(Outcome::Json(200, super::body(&body)))
}

/// The body of `GET /mfa/status`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MfaStatus)]
pub(crate) struct StatusBody {
    enabled: bool,
    required: bool,
    configured_methods: Vec<&'static str>,
    available_methods: Vec<&'static str>,
    preferred_method: Option<String>,
    backup_codes_remaining: u64,
}

/// One factor of `GET /mfa/devices`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MfaDevice)]
pub(crate) struct DeviceBody {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    is_preferred: bool,
    created_at: String,
    last_used_at: Option<String>,
}

/// One device of `GET /trusted-devices`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TrustedDevice)]
pub(crate) struct TrustedBody {
    id: String,
    device_name: Option<String>,
    device_type: Option<String>,
    ip_address: Option<String>,
    created_at: String,
    last_used_at: Option<String>,
    trusted_until: String,
}

/// `POST /mfa/setup-data`.
pub(crate) async fn setup(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let method = input
        .one_of("method", &["totp", "email", "sms"], true)
        .and_then(|m| Factor::parse(&m));
    let phone = input.phone("phone");
    let password = input.text("password", crate::input::PASSWORD_HARD_MAX);
    let code = input.text("code", 16);
    let user = me(ctx).await?;
    // Adding or replacing a factor of an account that has one needs a fresh proof: a stolen
    // access token alone must never become a permanent second factor.
    if user.mfa_enabled && password.is_none() && code.is_none() {
        input.error(
            "password",
            "password or code (a current second factor) is required once MFA is enabled",
        );
    }
    input.finish()?;
    if user.mfa_enabled {
        step_up(ctx, &user, password, code).await?;
    }
    let data = setup_data(ctx, &user, method, phone).await?;
    Ok(Outcome::Json(200, data))
}

/// A fresh proof from the signed-in user: the password (counted like a login) or a current
/// TOTP or unused backup code (counted on the account's second-factor budget, reserved
/// before it is compared).
pub(crate) async fn step_up(
    ctx: &Ctx<'_>,
    user: &User,
    password: Option<String>,
    code: Option<String>,
) -> AuthResult<()> {
    use super::budget::{Budget, reserve};
    match (password, code) {
        (Some(pw), _) => super::confirm_password(ctx, user, &pw).await,
        (None, Some(c)) => {
            let attempt = reserve(ctx, Budget::SecondFactor, Some(&user.id), "").await?;
            let db = &ctx.inner.store;
            let totp = match check_answer(ctx, db, user, None, Factor::Totp, &c).await {
                Ok(ok) => Ok(ok),
                Err(AuthError::MfaMethodNotAllowed) => Ok(false),
                Err(e) => Err(e),
            };
            let ok = match totp {
                Ok(false) => match check_answer(ctx, db, user, None, Factor::Backup, &c).await {
                    Err(AuthError::MfaMethodNotAllowed) => Ok(false),
                    other => other,
                },
                other => other,
            };
            attempt.settle(ctx, &ok).await?;
            if ok? {
                Ok(())
            } else {
                ctx.audit_later(
                    Some(&user.id),
                    Event::MfaVerificationFailed,
                    false,
                    json!({"phase": "step-up"}),
                );
                Err(AuthError::VerifyCodeInvalid {
                    attempts_remaining: None,
                })
            }
        }
        (None, None) => Err(AuthError::field("password", "password or code is required")),
    }
}

/// `POST /mfa/verify-setup`.
pub(crate) async fn verify(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let method = input
        .one_of("method", &["totp", "email", "sms"], true)
        .and_then(|m| Factor::parse(&m));
    let code = input.text_req("code", 16);
    input.finish()?;
    let user = me(ctx).await?;
    let attempt =
        super::budget::reserve(ctx, super::budget::Budget::SecondFactor, Some(&user.id), "")
            .await?;
    // A wrong code is counted: its attempt update commits with the error.
    let result = transaction!(ctx, |tx| {
        match verify_setup(ctx, tx, &user, method, &code).await {
            r @ (Ok(_) | Err(AuthError::VerifyCodeInvalid { .. })) => Ok(r),
            Err(e) => Err(e),
        }
    })
    .and_then(|r| r);
    let verdict = match &result {
        Ok(_) => Some(true),
        Err(AuthError::VerifyCodeInvalid { .. }) => Some(false),
        Err(_) => None,
    };
    attempt.end(ctx, verdict).await?;
    let (id, codes) = result?;
    let body = EnrolledBody {
        device_id: id,
        backup_codes: codes,
    };
    Ok(Outcome::Json(200, super::body(&body)))
}

/// The body of `POST /mfa/verify-setup`: the new factor, and the backup codes of a first one.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MfaEnrolled)]
pub(crate) struct EnrolledBody {
    device_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup_codes: Option<Vec<String>>,
}

/// The body of `DELETE /mfa/devices/{id}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MfaDeviceRemoved)]
pub(crate) struct RemovedBody {
    removed_device_id: String,
    mfa_disabled: bool,
}

/// The enrolment data of a TOTP factor (`setupData`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TotpSetup)]
pub(crate) struct TotpSetup {
    secret: String,
    otpauth_uri: String,
    qr_code: String,
    issuer: String,
    account_name: String,
}

/// `POST /mfa/backup-codes`: replaces the user's backup codes (needs the password).
pub(crate) async fn new_backup_codes(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let password = input.password("password");
    input.finish()?;
    let user = me(ctx).await?;
    super::confirm_password(ctx, &user, &password).await?;
    if !user.mfa_enabled {
        return Err(AuthError::MfaMethodNotAllowed);
    }
    let codes = transaction!(ctx, |tx| {
        regenerate_backup_codes(ctx, tx, &user.id).await
    })?;
    ctx.audit_later(
        Some(&user.id),
        Event::BackupCodesRegenerated,
        true,
        json!({}),
    );
    Ok(Outcome::Json(200, json!({ "codes": codes })))
}

/// `GET /mfa/devices`.
pub(crate) async fn list_devices(ctx: &Ctx<'_>) -> AuthResult<Outcome> {
    let p = ctx.principal()?;
    let devs = devices(&ctx.inner.store, &p.sub).await?;
    let pref = preferred(&devs).map(|d| d.id.clone());
    let devices: Vec<DeviceBody> = devs
        .into_iter()
        .map(|d| DeviceBody {
            is_preferred: Some(&d.id) == pref.as_ref(),
            id: d.id,
            kind: d.kind,
            name: d.name,
            created_at: iso8601(d.created_at),
            last_used_at: d.last_used_at.map(iso8601),
        })
        .collect();
    Ok(Outcome::Json(
        200,
        json!({ "devices": super::body(&devices) }),
    ))
}

async fn own_device(ctx: &Ctx<'_>, id: &str) -> AuthResult<MfaDevice> {
    let p = ctx.principal()?;
    store::mfa::device(&ctx.inner.store, id)
        .await?
        .filter(|d| d.user_id == p.sub)
        .ok_or(AuthError::NotFound)
}

/// `POST /mfa/devices/{id}/preferred`.
pub(crate) async fn set_preferred(ctx: &Ctx<'_>, id: &str) -> AuthResult<Outcome> {
    let d = own_device(ctx, id).await?;
    transaction!(ctx, |tx| {
        store::mfa::clear_preferred(tx, &d.user_id).await?;
        store::mfa::mark_preferred(tx, &d.id).await?;
        Ok(())
    })?;
    Ok(Outcome::Json(200, json!({ "success": true })))
}

/// `DELETE /mfa/devices/{id}`: needs the password or a current code; removing the last device
/// disables MFA and deletes the backup codes.
pub(crate) async fn remove_device(
    ctx: &Ctx<'_>,
    id: &str,
    mut input: Input,
) -> AuthResult<Outcome> {
    let password = input.text("password", crate::input::PASSWORD_HARD_MAX);
    let code = input.text("code", 16);
    if password.is_none() && code.is_none() {
        input.error("password", "password or code is required");
    }
    input.finish()?;
    let d = own_device(ctx, id).await?;
    let user = me(ctx).await?;
    step_up(ctx, &user, password, code).await?;
    let disabled = transaction!(ctx, |tx| {
        store::mfa::remove_device(tx, &d.id).await?;
        let left = devices(tx, &user.id).await?;
        let disabled = left.is_empty();
        if disabled {
            store::mfa::delete_backup_codes(tx, &user.id).await?;
            let patch = UserPatch {
                mfa_enabled: Some(false),
                ..Default::default()
            };
            store::users::update(tx, &user.id, patch).await?;
        } else if d.is_preferred {
            store::mfa::mark_preferred(tx, &left[0].id).await?;
        }
        Ok(disabled)
    })?;
    factor_notice(ctx, &user, Factor::of(&d), false);
    ctx.audit_later(
        Some(&user.id),
        Event::MfaDeviceRemoved,
        true,
        json!({"method": d.kind}),
    );
    if disabled {
        ctx.audit_later(Some(&user.id), Event::MfaDisabled, true, json!({}));
    }
    let body = RemovedBody {
        removed_device_id: d.id,
        mfa_disabled: disabled,
    };
    Ok(Outcome::Json(200, super::body(&body)))
}

/// `POST /trust-device`: under `user_opt_in` (or `always`) the current device skips
/// MFA_REQUIRED at later logins.
pub(crate) async fn trust_device(ctx: &Ctx<'_>, input: Input) -> AuthResult<Outcome> {
    input.finish()?;
    if ctx.cfg().mfa.remember_devices == RememberDevices::Never {
        return Err(AuthError::Forbidden);
    }
    let p = ctx.principal()?;
    let token = trust(ctx, &ctx.inner.store, &p.sub, None, None).await?;
    Ok(Outcome::DeviceToken(token))
}

/// `GET /trusted-devices`.
pub(crate) async fn list_trusted(ctx: &Ctx<'_>) -> AuthResult<Outcome> {
    let p = ctx.principal()?;
    let rows = store::devices::live(&ctx.inner.store, &p.sub, ctx.now).await?;
    let list: Vec<TrustedBody> = rows
        .into_iter()
        .map(|t| TrustedBody {
            id: t.id,
            device_name: t.device_name,
            device_type: t.device_type,
            ip_address: t.ip_address,
            created_at: iso8601(t.created_at),
            last_used_at: t.last_used_at.map(iso8601),
            trusted_until: iso8601(t.expires_at),
        })
        .collect();
    Ok(Outcome::Json(
        200,
        json!({ "trustedDevices": super::body(&list) }),
    ))
}

/// `DELETE /trusted-devices` (all) and `DELETE /trusted-devices/{id}`.
pub(crate) async fn untrust(ctx: &Ctx<'_>, id: Option<&str>) -> AuthResult<Outcome> {
    let p = ctx.principal()?;
    let n = store::devices::remove(&ctx.inner.store, &p.sub, id).await?;
    if n > 0 {
        ctx.audit_later(
            Some(&p.sub),
            Event::DeviceUntrusted,
            true,
            json!({"count": n}),
        );
    }
    Ok(match id {
        Some(_) if n == 0 => return Err(AuthError::NotFound),
        Some(_) => Outcome::Json(200, json!({ "success": true })),
        None => Outcome::Json(200, json!({ "revokedCount": n })),
    })
}
