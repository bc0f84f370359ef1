//! Passkeys (WebAuthn, docs/passkeys.md): registration behind a fresh proof, the user's list,
//! renaming and removal, passwordless sign-in with a discoverable credential (it runs the
//! state machine like a login; a user-verified passkey is itself multi-factor, so
//! MFA_REQUIRED is skipped), and a passkey as the answer of MFA_REQUIRED. Off unless
//! `[passkeys] enabled = true` (and the `passkeys` cargo feature).
//!
//! Every ceremony is two requests: the options (a fresh challenge, whose webauthn-rs state is
//! kept server-side in `nauth_passkey_ceremonies` under the hash of an opaque `ceremony`
//! token, bound to the user or the challenge session it was issued for, short-lived), then the
//! authenticator's response with that token. The row is claimed (deleted) before the response
//! is verified, so a ceremony is answered once: a replayed response finds nothing.

use serde_json::{Value, json};
use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, DiscoverableAuthentication, DiscoverableKey,
    Passkey as WaPasskey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, RequestChallengeResponse, Url, Uuid, Webauthn, WebauthnBuilder,
    WebauthnError,
};

use super::auth::{Carry, device_from, next};
use super::budget::KvKey;
use super::passkey_types::{OptionsBody, PasskeyBody};
use super::{Ctx, Outcome};
use crate::codes;
use crate::config::{ConfigError, NAuthConfig};
use crate::error::{AuthError, AuthResult, RateLimit};
use crate::events::Event;
use crate::input::Input;
use crate::store::{self, Challenge, Conn, Passkey, PasskeyCeremony, StoreError, User};

/// The ceremony kinds (`nauth_passkey_ceremonies.kind`).
const REGISTER: &str = "register";
const LOGIN: &str = "login";
const MFA: &str = "mfa";

/// The largest credential a client may send (an attestation with certificates fits easily).
const CREDENTIAL_MAX_BYTES: usize = 16 * 1024;
/// Passkeys per account.
const MAX_PER_USER: u64 = 20;
const HOUR_MS: i64 = 3_600_000;

/// The relying party of `[passkeys]`, built once at start; `None` when passkeys are off.
pub(crate) fn relying_party(cfg: &NAuthConfig) -> Result<Option<Webauthn>, ConfigError> {
    if !cfg.passkeys.enabled {
        return Ok(None);
    }
    let bad = |message: String| ConfigError {
        key: "passkeys".into(),
        message,
    };
    let (rp_id, origins) = cfg.passkey_relying_party();
    let urls: Vec<Url> = origins
        .iter()
        .map(|o| Url::parse(o).map_err(|e| bad(format!("{o:?}: {e}"))))
        .collect::<Result<_, _>>()?;
    let first = urls.first().ok_or_else(|| bad("no origin".into()))?;
    let rp_name = match (&cfg.passkeys.rp_name, &cfg.email.product_name) {
        (n, _) if !n.is_empty() => n.clone(),
        (_, p) if !p.is_empty() => p.clone(),
        _ => "nauth".to_string(),
    };
    let mut b = WebauthnBuilder::new(&rp_id, first)
        .map_err(|e| bad(format!("relying party {rp_id:?}: {e}")))?
        .rp_name(&rp_name)
        .timeout(cfg.passkeys.challenge_ttl);
    for u in &urls[1..] {
        b = b.append_allowed_origin(u);
    }
    b.build()
        .map(Some)
        .map_err(|e| bad(format!("relying party {rp_id:?}: {e}")))
}

/// The relying party, or `404` when passkeys are off.
fn rp<'c>(ctx: &'c Ctx<'_>) -> AuthResult<&'c Webauthn> {
    ctx.inner.webauthn.as_ref().ok_or(AuthError::NotFound)
}

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn internal(what: &str) -> impl Fn(serde_json::Error) -> AuthError + '_ {
    move |e| AuthError::Internal(format!("passkey {what}: {e}"))
}

/// Stores the state of a new ceremony and answers its options.
async fn begin(
    ctx: &Ctx<'_>,
    kind: &'static str,
    user_id: Option<&str>,
    challenge: Option<&Challenge>,
    name: Option<String>,
    state: String,
    public_key: Value,
) -> AuthResult<Outcome> {
    let token = codes::random_token();
    let mut expires = ctx.now + crate::clock::ms(ctx.cfg().passkeys.challenge_ttl);
    if let Some(ch) = challenge {
        expires = expires.min(ch.expires_at);
    }
    let row = PasskeyCeremony {
        id_hash: codes::sha256_hex(&token),
        kind: kind.into(),
        user_id: user_id.map(str::to_string),
        challenge_hash: challenge.map(|c| c.id_hash.clone()),
        name,
        state,
        created_at: ctx.now,
        expires_at: expires,
    };
    transaction!(ctx, |tx| {
        // One registration, one MFA answer at a time per user: older options stop working.
        if let Some(uid) = user_id {
            store::passkeys::end_kind(tx, uid, kind).await?;
        }
        store::passkeys::begin(tx, row.clone()).await?;
        Ok(())
    })?;
    let body = OptionsBody {
        ceremony: token,
        public_key,
    };
    Ok(Outcome::Json(200, super::body(&body)))
}

/// Claims the ceremony a response names: unknown, used, of another kind or issued for someone
/// else is `PASSKEY_CHALLENGE_INVALID`, past its life `PASSKEY_CHALLENGE_EXPIRED`.
async fn claim(
    ctx: &Ctx<'_>,
    db: &impl Conn,
    token: &str,
    kind: &str,
    user_id: Option<&str>,
) -> AuthResult<PasskeyCeremony> {
    let row = store::passkeys::take(db, &codes::sha256_hex(token), kind)
        .await?
        .ok_or(AuthError::PasskeyChallengeInvalid)?;
    if row.user_id.as_deref() != user_id {
        return Err(AuthError::PasskeyChallengeInvalid);
    }
    if row.expires_at <= ctx.now {
        return Err(AuthError::PasskeyChallengeExpired);
    }
    Ok(row)
}

/// A required `credential` object, parsed as `T`; else `400 VALIDATION_FAILED`.
fn credential<T: serde::de::DeserializeOwned>(input: &mut Input, what: &str) -> Option<T> {
    let v = match input.object("credential", CREDENTIAL_MAX_BYTES) {
        Some(v) => v,
        None => {
            if !input.has("credential") {
                input.error("credential", "is required");
            }
            return None;
        }
    };
    match serde_json::from_value::<T>(v) {
        Ok(c) => Some(c),
        Err(_) => {
            input.error(
                "credential",
                &format!("must be the {what} of a WebAuthn call"),
            );
            None
        }
    }
}

async fn me(ctx: &Ctx<'_>) -> AuthResult<User> {
    super::user_by_id(&ctx.inner.store, &ctx.principal()?.sub).await
}

fn user_uuid(user: &User) -> AuthResult<Uuid> {
    Uuid::parse_str(&user.id).map_err(|_| AuthError::Internal("user id is not a UUID".into()))
}

fn stored(p: &Passkey) -> AuthResult<WaPasskey> {
    serde_json::from_str(&p.passkey).map_err(internal("stored key"))
}

/// `POST /passkeys/register/options`: a fresh proof (`password`, or `code`: a current TOTP
/// or backup code), and an optional `name`; the creation options. The user's passkeys are
/// excluded (an authenticator holding one of them refuses to make a second).
pub(crate) async fn register_options(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let w = rp(ctx)?;
    let password = input.text("password", crate::input::PASSWORD_HARD_MAX);
    let code = input.text("code", 16);
    let name = input.text("name", 100);
    if password.is_none() && code.is_none() {
        input.error("password", "password or code is required");
    }
    input.finish()?;
    let user = me(ctx).await?;
    super::mfa::step_up(ctx, &user, password, code).await?;
    let db = &ctx.inner.store;
    let existing = store::passkeys::of_user(db, &user.id).await?;
    if existing.len() as u64 >= MAX_PER_USER {
        return Err(AuthError::field(
            "name",
            "this account has the most passkeys allowed; remove one first",
        ));
    }
    let mut exclude = Vec::new();
    for p in &existing {
        exclude.push(stored(p)?.cred_id().clone());
    }
    let display = match (&user.first_name, &user.last_name) {
        (Some(f), Some(l)) => format!("{f} {l}"),
        (Some(f), None) => f.clone(),
        _ => user.email.clone(),
    };
    let (ccr, state): (CreationChallengeResponse, PasskeyRegistration) = w
        .start_passkey_registration(user_uuid(&user)?, &user.email, &display, Some(exclude))
        .map_err(|e| AuthError::Internal(format!("passkey options: {e}")))?;
    let mut public_key =
        serde_json::to_value(&ccr).map_err(internal("options"))?["publicKey"].take();
    // A passkey is a discoverable credential: it signs in without a username.
    if let Some(sel) = public_key
        .get_mut("authenticatorSelection")
        .and_then(Value::as_object_mut)
    {
        sel.insert("residentKey".into(), json!("required"));
        sel.insert("requireResidentKey".into(), json!(true));
    }
    let state = serde_json::to_string(&state).map_err(internal("state"))?;
    let uid = user.id.clone();
    begin(ctx, REGISTER, Some(&uid), None, name, state, public_key).await
}

/// The AAGUID in an attestation object's `authData` (fmt `none` carries no certificate to
/// read it from), when the attested-credential flag is set and it is not all zeros.
fn aaguid_of(attestation_object: &[u8]) -> Option<String> {
    // CBOR: the text key "authData", then a byte string (1-, 2- or 4-byte length).
    let key = b"\x68authData";
    let at = attestation_object
        .windows(key.len())
        .position(|w| w == key)?
        + key.len();
    let rest = attestation_object.get(at..)?;
    let (len, skip) = match *rest.first()? {
        b @ 0x40..=0x57 => (usize::from(b - 0x40), 1),
        0x58 => (usize::from(*rest.get(1)?), 2),
        0x59 => (
            usize::from(u16::from_be_bytes([*rest.get(1)?, *rest.get(2)?])),
            3,
        ),
        _ => return None,
    };
    let auth = rest.get(skip..skip + len)?;
    let flags = *auth.get(32)?;
    let id = auth.get(37..53).filter(|_| flags & 0x40 != 0)?;
    if id.iter().all(|b| *b == 0) {
        return None;
    }
    Uuid::from_slice(id).ok().map(|u| u.to_string())
}

/// `POST /passkeys/register`: `ceremony` and the `credential` of
/// `navigator.credentials.create`; the new passkey (`201`).
pub(crate) async fn register(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let w = rp(ctx)?;
    let token = input.text_req("ceremony", 512);
    let cred: Option<RegisterPublicKeyCredential> = credential(&mut input, "answer");
    input.finish()?;
    let cred = cred.ok_or_else(|| AuthError::field("credential", "is required"))?;
    let user = me(ctx).await?;
    let db = &ctx.inner.store;
    let row = claim(ctx, db, &token, REGISTER, Some(&user.id)).await?;
    let state: PasskeyRegistration = serde_json::from_str(&row.state).map_err(internal("state"))?;
    let key = match w.finish_passkey_registration(&cred, &state) {
        Ok(k) => k,
        Err(e) => {
            tracing::debug!(error = %e, "passkey registration refused");
            ctx.audit_later(
                Some(&user.id),
                Event::PasskeyAdded,
                false,
                json!({"reason": reason(&e)}),
            );
            return Err(AuthError::PasskeyInvalid);
        }
    };
    let serialised = serde_json::to_string(&key).map_err(internal("key"))?;
    let fields: Value = serde_json::from_str(&serialised).map_err(internal("key"))?;
    let flag = |k: &str| fields["cred"][k].as_bool().unwrap_or(false);
    let cred_id: &[u8] = key.cred_id().as_ref();
    let passkey = Passkey {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        credential_hash: sha(cred_id),
        credential_id: b64url(cred_id),
        name: row.name.clone().unwrap_or_else(|| "Passkey".into()),
        passkey: serialised.clone(),
        sign_count: fields["cred"]["counter"].as_i64().unwrap_or(0),
        backup_eligible: flag("backup_eligible"),
        backup_state: flag("backup_state"),
        aaguid: aaguid_of(cred.response.attestation_object.as_ref()),
        created_at: ctx.now,
        last_used_at: None,
    };
    transaction!(ctx, |tx| {
        match store::passkeys::insert(tx, passkey.clone()).await {
            // The credential is someone's already (or this user's, registered in between).
            Err(StoreError::Conflict(_)) => return Err(AuthError::PasskeyInvalid),
            r => r?,
        }
        let details = json!({"passkeyId": passkey.id, "name": passkey.name});
        ctx.audit_in(tx, Some(&user.id), Event::PasskeyAdded, details)
            .await;
        Ok(())
    })?;
    super::mfa::sign_in_method_notice(ctx, &user, "passkey", None, true);
    let body = json!({ "passkey": super::body(&PasskeyBody::of(&passkey)) });
    Ok(Outcome::Json(201, body))
}

/// `GET /passkeys`: the user's passkeys, oldest first.
pub(crate) async fn list(ctx: &Ctx<'_>) -> AuthResult<Outcome> {
    rp(ctx)?;
    let p = ctx.principal()?;
    let rows = store::passkeys::of_user(&ctx.inner.store, &p.sub).await?;
    let list: Vec<PasskeyBody> = rows.iter().map(PasskeyBody::of).collect();
    Ok(Outcome::Json(
        200,
        json!({ "passkeys": super::body(&list) }),
    ))
}

/// `PUT /passkeys/{id}`: `name`; the renamed passkey.
pub(crate) async fn rename(ctx: &Ctx<'_>, id: &str, mut input: Input) -> AuthResult<Outcome> {
    rp(ctx)?;
    let name = input.text_req("name", 100);
    input.finish()?;
    let p = ctx.principal()?;
    let renamed = transaction!(ctx, |tx| {
        if !store::passkeys::rename(tx, &p.sub, id, &name).await? {
            return Err(AuthError::NotFound);
        }
        let details = json!({"passkeyId": id, "name": name});
        ctx.audit_in(tx, Some(&p.sub), Event::PasskeyRenamed, details)
            .await;
        Ok(store::passkeys::get(tx, id).await?)
    })?
    .ok_or(AuthError::NotFound)?;
    let body = json!({ "passkey": super::body(&PasskeyBody::of(&renamed)) });
    Ok(Outcome::Json(200, body))
}

/// `DELETE /passkeys/{id}`: a fresh proof (`password` or `code`); the passkey stops working
/// at once.
pub(crate) async fn remove(ctx: &Ctx<'_>, id: &str, mut input: Input) -> AuthResult<Outcome> {
    rp(ctx)?;
    let password = input.text("password", crate::input::PASSWORD_HARD_MAX);
    let code = input.text("code", 16);
    if password.is_none() && code.is_none() {
        input.error("password", "password or code is required");
    }
    input.finish()?;
    let user = me(ctx).await?;
    let db = &ctx.inner.store;
    store::passkeys::get(db, id)
        .await?
        .filter(|p| p.user_id == user.id)
        .ok_or(AuthError::NotFound)?;
    super::mfa::step_up(ctx, &user, password, code).await?;
    transaction!(ctx, |tx| {
        if !store::passkeys::remove(tx, &user.id, id).await? {
            return Err(AuthError::NotFound);
        }
        let details = json!({"passkeyId": id});
        ctx.audit_in(tx, Some(&user.id), Event::PasskeyRemoved, details)
            .await;
        Ok(())
    })?;
    super::mfa::sign_in_method_notice(ctx, &user, "passkey", None, false);
    Ok(Outcome::Json(200, json!({ "success": true })))
}

/// `POST /passkeys/login/options` (public): request options for a discoverable credential
/// (no identifier: the authenticator offers the site's passkeys, or the browser's autofill
/// does with `mediation: "conditional"`). Counted per client IP.
pub(crate) async fn login_options(ctx: &Ctx<'_>, input: Input) -> AuthResult<Outcome> {
    let w = rp(ctx)?;
    input.finish()?;
    if let Some(ip) = ctx.ip {
        let key = KvKey::PasskeyIp(ip).to_string();
        let e = ctx.inner.kv.incr(&key, HOUR_MS, ctx.now).await?;
        if e.value > i64::from(ctx.cfg().passkeys.ip_max_per_hour) {
            return Err(AuthError::RateLimited {
                limit: RateLimit::Login,
                retry_after: super::retry_after(e.expires_at, ctx.now),
            });
        }
    }
    let (rcr, state): (RequestChallengeResponse, DiscoverableAuthentication) = w
        .start_discoverable_authentication()
        .map_err(|e| AuthError::Internal(format!("passkey options: {e}")))?;
    let public_key = serde_json::to_value(&rcr).map_err(internal("options"))?["publicKey"].take();
    let state = serde_json::to_string(&state).map_err(internal("state"))?;
    begin(ctx, LOGIN, None, None, None, state, public_key).await
}

/// A short reason for the audit row of a refused response.
fn reason(e: &WebauthnError) -> &'static str {
    match e {
        WebauthnError::CredentialPossibleCompromise => "counter_regression",
        WebauthnError::InvalidRPOrigin => "origin",
        WebauthnError::MismatchedChallenge => "challenge",
        WebauthnError::UserNotVerified => "user_not_verified",
        WebauthnError::UserNotPresent => "user_not_present",
        _ => "verification",
    }
}

/// Whether a signature counter may follow the stored one: both zero (an authenticator
/// without a counter, such as most synced passkeys), or strictly greater. Anything else is a
/// regression: a cloned authenticator.
fn counter_ok(stored: i64, seen: u32) -> bool {
    (stored == 0 && seen == 0) || i64::from(seen) > stored
}

/// Checks the verdict of webauthn-rs on an assertion against a stored passkey: the
/// verified result, or the reason of the refusal. A counter regression is audited as
/// suspicious.
fn checked(
    ctx: &Ctx<'_>,
    row: &Passkey,
    result: Result<AuthenticationResult, WebauthnError>,
) -> Result<AuthenticationResult, &'static str> {
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "passkey assertion refused");
            if matches!(e, WebauthnError::CredentialPossibleCompromise) {
                suspicious(ctx, row);
            }
            return Err(reason(&e));
        }
    };
    if !r.user_verified() {
        return Err("user_not_verified");
    }
    if !counter_ok(row.sign_count, r.counter()) {
        suspicious(ctx, row);
        return Err("counter_regression");
    }
    Ok(r)
}

/// Records a verified use (new counter, backup state); whether it won against a racing use
/// of the same counter value.
async fn record(
    ctx: &Ctx<'_>,
    db: &impl Conn,
    row: &Passkey,
    r: &AuthenticationResult,
) -> AuthResult<bool> {
    let mut key = stored(row)?;
    key.update_credential(r);
    let serialised = serde_json::to_string(&key).map_err(internal("key"))?;
    Ok(store::passkeys::record_use(
        db,
        row,
        i64::from(r.counter()),
        r.backup_state(),
        r.backup_eligible(),
        &serialised,
        ctx.now,
    )
    .await?)
}

fn suspicious(ctx: &Ctx<'_>, row: &Passkey) {
    ctx.audit_later(
        Some(&row.user_id),
        Event::SuspiciousActivity,
        false,
        json!({"reason": "passkey_counter_regression", "passkeyId": row.id}),
    );
}

/// `POST /passkeys/login` (public): `ceremony`, the `credential` of
/// `navigator.credentials.get`, `deviceName?`, `deviceType?`; runs the state machine like a
/// login (a challenge or tokens, delivered per the delivery mode).
pub(crate) async fn login(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let w = rp(ctx)?;
    let token = input.text_req("ceremony", 512);
    let cred: Option<PublicKeyCredential> = credential(&mut input, "answer");
    let device_name = input.text("deviceName", 100);
    let device_type = input.one_of("deviceType", &["mobile", "desktop", "tablet"], false);
    input.finish()?;
    let cred = cred.ok_or_else(|| AuthError::field("credential", "is required"))?;
    let db = &ctx.inner.store;
    let ceremony = claim(ctx, db, &token, LOGIN, None).await?;
    let state: DiscoverableAuthentication =
        serde_json::from_str(&ceremony.state).map_err(internal("state"))?;
    let (handle, cred_id) = w
        .identify_discoverable_authentication(&cred)
        .map_err(|_| AuthError::PasskeyInvalid)?;
    let Some(row) = store::passkeys::by_credential(db, &sha(cred_id)).await? else {
        return Err(AuthError::PasskeyNotFound);
    };
    // The user handle the authenticator keeps must be the account the credential is stored for.
    if Uuid::parse_str(&row.user_id).ok() != Some(handle) {
        return Err(AuthError::PasskeyInvalid);
    }
    let user = super::named_user(db, &row.user_id, AuthError::PasskeyNotFound).await?;
    let key = stored(&row)?;
    let result = checked(
        ctx,
        &row,
        w.finish_discoverable_authentication(&cred, state, &[DiscoverableKey::from(&key)]),
    );
    let carry = Carry {
        auth_method: "passkey".into(),
        device: device_from(ctx, device_name, device_type),
        // A user-verified passkey is two factors: the device, and the PIN or biometric.
        mfa_proven: true,
        ..Default::default()
    };
    let outcome = transaction!(ctx, |tx| {
        let r = match &result {
            Ok(r) => r,
            Err(why) => return Ok(Err(*why)),
        };
        if !record(ctx, tx, &row, r).await? {
            return Ok(Err("counter_regression"));
        }
        if user.disabled {
            return Err(AuthError::AccountLocked);
        }
        let outcome = next(ctx, tx, &user, carry.clone()).await?;
        let details = json!({"method": "passkey", "passkeyId": row.id});
        ctx.audit_in(tx, Some(&user.id), Event::LoginSuccess, details)
            .await;
        Ok(Ok(outcome))
    })?;
    match outcome {
        Ok(outcome) => Ok(Outcome::Auth(200, outcome)),
        Err(why) => {
            let details = json!({"method": "passkey", "reason": why});
            ctx.audit_later(Some(&user.id), Event::LoginFailed, false, details);
            Err(AuthError::PasskeyInvalid)
        }
    }
}

/// `POST /challenge/passkey-options` (public): `session` of an MFA_REQUIRED challenge whose
/// user has a passkey; request options allowing the user's passkeys.
pub(crate) async fn mfa_options(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let w = rp(ctx)?;
    let session = input.text_req("session", 512);
    input.finish()?;
    let db = &ctx.inner.store;
    let ch = super::auth::load_challenge(db, &session, ctx.now, false).await?;
    if ch.name != crate::challenge::ChallengeName::MfaRequired.as_str() {
        return Err(AuthError::ChallengeTypeMismatch);
    }
    super::auth::check_attempts(&ch)?;
    let uid = ch.user_id.clone().ok_or(AuthError::ChallengeInvalid)?;
    let keys: Vec<WaPasskey> = store::passkeys::of_user(db, &uid)
        .await?
        .iter()
        .map(stored)
        .collect::<AuthResult<_>>()?;
    if keys.is_empty() {
        return Err(AuthError::MfaMethodNotAllowed);
    }
    let (rcr, state): (RequestChallengeResponse, PasskeyAuthentication) = w
        .start_passkey_authentication(&keys)
        .map_err(|e| AuthError::Internal(format!("passkey options: {e}")))?;
    let public_key = serde_json::to_value(&rcr).map_err(internal("options"))?["publicKey"].take();
    let state = serde_json::to_string(&state).map_err(internal("state"))?;
    begin(ctx, MFA, Some(&uid), Some(&ch), None, state, public_key).await
}

/// A passkey answer of MFA_REQUIRED (`method: "passkey"`), inside the answer's transaction:
/// `Ok(true)` when the assertion verified for one of the user's passkeys. The ceremony must
/// be the one issued for this challenge session.
pub(crate) async fn mfa_answer(
    ctx: &Ctx<'_>,
    tx: &store::Tx,
    ch: &Challenge,
    user: &User,
    token: &str,
    credential: &Value,
) -> AuthResult<bool> {
    let w = rp(ctx)?;
    let cred: PublicKeyCredential = serde_json::from_value(credential.clone())
        .map_err(|_| AuthError::field("credential", "must be the answer of a WebAuthn call"))?;
    let ceremony = claim(ctx, tx, token, MFA, Some(&user.id)).await?;
    if ceremony.challenge_hash.as_deref() != Some(ch.id_hash.as_str()) {
        return Err(AuthError::PasskeyChallengeInvalid);
    }
    let state: PasskeyAuthentication =
        serde_json::from_str(&ceremony.state).map_err(internal("state"))?;
    let Some(row) = store::passkeys::by_credential(tx, &sha(cred.get_credential_id()))
        .await?
        .filter(|p| p.user_id == user.id)
    else {
        return Ok(false);
    };
    match checked(ctx, &row, w.finish_passkey_authentication(&cred, &state)) {
        Ok(r) => record(ctx, tx, &row, &r).await,
        Err(_) => Ok(false),
    }
}

/// Whether the user has a passkey that can answer MFA_REQUIRED (passkeys on).
pub(crate) async fn offered(ctx: &Ctx<'_>, db: &impl Conn, user_id: &str) -> AuthResult<bool> {
    if ctx.inner.webauthn.is_none() {
        return Ok(false);
    }
    Ok(store::passkeys::count(db, user_id).await? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_must_move_on() {
        assert!(counter_ok(0, 0));
        assert!(counter_ok(0, 1));
        assert!(counter_ok(5, 6));
        assert!(!counter_ok(5, 5));
        assert!(!counter_ok(5, 4));
        assert!(!counter_ok(5, 0));
    }

    #[test]
    fn aaguid_from_auth_data() {
        let mut auth = vec![0u8; 32];
        auth.push(0x45); // UP | UV | AT
        auth.extend([0, 0, 0, 1]);
        auth.extend(1u8..=16);
        let mut obj = vec![0xa3, 0x68];
        obj.extend(b"authData");
        obj.push(0x58);
        obj.push(auth.len() as u8);
        obj.extend(&auth);
        assert_eq!(
            aaguid_of(&obj).as_deref(),
            Some("01020304-0506-0708-090a-0b0c0d0e0f10")
        );
        auth[32] = 0x05; // no attested credential data
        let mut obj = vec![0xa3, 0x68];
        obj.extend(b"authData");
        obj.push(0x58);
        obj.push(auth.len() as u8);
        obj.extend(&auth);
        assert_eq!(aaguid_of(&obj), None);
        assert_eq!(aaguid_of(b"garbage"), None);
    }
}
