//! Signup, login, challenge answers and resends: everything that ends in a challenge or tokens.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set,
    sea_query::Expr,
};
use serde_json::{Map, Value, json};

use super::{AuthOutcome, Ctx, Device, Outcome};
use crate::challenge::{ChallengeName, Policy, Step, UserState, next_step};
use crate::codes;
use crate::error::{AuthError, AuthResult, RateLimit};
use crate::events::{Event, audit};
use crate::input::{Input, mask_email};
use crate::store::entities::{challenges, users, verification_tokens};
use crate::store::is_unique_violation;

/// A challenge session lives 15 minutes and allows 3 wrong answers.
const CHALLENGE_TTL_MS: i64 = 15 * 60 * 1000;
const MAX_ATTEMPTS: i32 = 3;

/// What a login carries from step to step.
#[derive(Debug, Clone, Default)]
pub(crate) struct Carry {
    pub auth_method: String,
    pub device: Device,
    pub mfa_proven: bool,
}

fn device_from(ctx: &Ctx<'_>, name: Option<String>, kind: Option<String>) -> Device {
    Device {
        name,
        kind,
        ip: ctx.origin.ip.clone(),
        user_agent: ctx.origin.user_agent.clone(),
    }
}

fn user_state(ctx: &Ctx<'_>, u: &users::Model, carry: &Carry) -> UserState {
    let expired = ctx
        .cfg()
        .password
        .expiry
        .is_some_and(|d| u.password_changed_at + crate::clock::ms(d) <= ctx.now);
    UserState {
        must_change_password: u.must_change_password || expired,
        email_verified: u.is_email_verified,
        phone_verified: u.is_phone_verified,
        has_mfa: u.mfa_enabled,
        mfa_exempt: false,
        in_grace_period: false,
        mfa_proven: carry.mfa_proven,
        trusted_device: false,
    }
}

/// Runs the state machine and acts on its answer: a new challenge or a new session.
pub(crate) async fn next(
    ctx: &Ctx<'_>,
    db: &impl ConnectionTrait,
    user: &users::Model,
    carry: Carry,
) -> AuthResult<AuthOutcome> {
    let policy = Policy {
        verification: ctx.cfg().signup.verification,
        mfa: ctx.cfg().mfa.enforcement,
    };
    match next_step(&user_state(ctx, user, &carry), &policy) {
        Step::Tokens => {
            let tokens =
                super::create_session(ctx, db, user, &carry.auth_method, &carry.device).await?;
            Ok(AuthOutcome::Tokens {
                tokens,
                auth_method: carry.auth_method,
                user: super::user_json(user),
            })
        }
        Step::Challenge(
            name @ (ChallengeName::VerifyEmail | ChallengeName::ForceChangePassword),
        ) => start_challenge(ctx, db, Some(user), name, &carry).await,
        // Configurations that reach these are refused at start (see `unsupported_yet`).
        Step::Challenge(other) => Err(AuthError::Internal(format!(
            "{} is not available in this release",
            other.as_str()
        ))),
    }
}

/// Creates a challenge session; VERIFY_EMAIL also issues a code (and a link) and queues the mail.
/// `user = None` makes the decoy of a duplicate signup: it behaves like a real one and every
/// code is wrong.
pub(crate) async fn start_challenge(
    ctx: &Ctx<'_>,
    db: &impl ConnectionTrait,
    user: Option<&users::Model>,
    name: ChallengeName,
    carry: &Carry,
) -> AuthResult<AuthOutcome> {
    let session = codes::random_token();
    let id_hash = codes::sha256_hex(&session);
    let mut params = Map::new();
    let mut code_hash = None;
    let mut destination = None;
    if name == ChallengeName::VerifyEmail {
        if let Some(u) = user {
            // Older codes of the same purpose stop working.
            challenges::Entity::update_many()
                .col_expr(
                    challenges::Column::CodeHash,
                    Expr::value(Option::<String>::None),
                )
                .filter(challenges::Column::UserId.eq(&u.id))
                .filter(challenges::Column::Name.eq(name.as_str()))
                .filter(challenges::Column::Completed.eq(false))
                .exec(db)
                .await?;
            let code = codes::random_code();
            code_hash = Some(ctx.inner.keys.hash_code("challenge", &id_hash, &code));
            let link = issue_verify_link(ctx, db, u).await?;
            queue_code_mail(ctx, &u.email, &code, link.as_deref());
            // Counted toward the hourly cap, but the first code of a flow is never held back.
            ctx.count_later(&u.email);
            destination = Some(u.email.clone());
        }
        if let Some(d) = &destination {
            params.insert("codeDeliveryDestination".into(), json!(mask_email(d)));
        }
    }
    let user_sub = user
        .map(|u| u.id.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    challenges::Entity::insert(challenges::ActiveModel {
        id_hash: Set(id_hash),
        user_id: Set(user.map(|u| u.id.clone())),
        name: Set(name.as_str().into()),
        code_hash: Set(code_hash),
        destination: Set(destination),
        attempts: Set(0),
        completed: Set(false),
        mfa_proven: Set(carry.mfa_proven),
        auth_method: Set(carry.auth_method.clone()),
        device_name: Set(carry.device.name.clone()),
        device_type: Set(carry.device.kind.clone()),
        ip_address: Set(carry.device.ip.clone()),
        user_agent: Set(carry.device.user_agent.clone()),
        last_sent_at: Set(Some(ctx.now)),
        sends_in_window: Set(0),
        send_window_start: Set(ctx.now),
        created_at: Set(ctx.now),
        expires_at: Set(ctx.now + CHALLENGE_TTL_MS),
    })
    .exec(db)
    .await?;
    Ok(AuthOutcome::Challenge {
        name,
        session,
        params,
        user_sub,
    })
}

/// A fresh verification link token (older ones stop working); `None` without `base_url`.
pub(crate) async fn issue_verify_link(
    ctx: &Ctx<'_>,
    db: &impl ConnectionTrait,
    u: &users::Model,
) -> AuthResult<Option<String>> {
    verification_tokens::Entity::update_many()
        .col_expr(verification_tokens::Column::UsedAt, Expr::value(ctx.now))
        .filter(verification_tokens::Column::UserId.eq(&u.id))
        .filter(verification_tokens::Column::Purpose.eq("verify_email_link"))
        .filter(verification_tokens::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    let path = format!("{}/verify-email", ctx.cfg().mount_prefix);
    let token = codes::random_token();
    let Some(url) = super::link(ctx, &path, &token) else {
        return Ok(None);
    };
    verification_tokens::Entity::insert(verification_tokens::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        user_id: Set(u.id.clone()),
        purpose: Set("verify_email_link".into()),
        token_hash: Set(ctx
            .inner
            .keys
            .hash_code("link", "verify_email_link", &token)),
        data: Set(None),
        attempts: Set(0),
        created_at: Set(ctx.now),
        expires_at: Set(ctx.now + crate::clock::ms(ctx.cfg().signup.code_ttl)),
        used_at: Set(None),
    })
    .exec(db)
    .await?;
    Ok(Some(url))
}

fn queue_code_mail(ctx: &Ctx<'_>, to: &str, code: &str, link: Option<&str>) {
    let mut text = format!("Your verification code is {code}\n\nIt expires in 15 minutes.\n");
    if let Some(l) = link {
        text.push_str(&format!("\nOr open this link to verify your email:\n{l}\n"));
    }
    text.push_str("\nIf you did not sign up, ignore this message.\n");
    ctx.queue_mail(to, "Verify your email", text);
}

fn parse_signup(input: &mut Input) -> SignupInput {
    SignupInput {
        email: input.email("email"),
        password: input.password("password"),
        username: input.username("username"),
        first_name: input.text("firstName", 100),
        last_name: input.text("lastName", 100),
        phone: input.phone("phone"),
        metadata: input.object("metadata", 4096),
    }
}

struct SignupInput {
    email: String,
    password: String,
    username: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    metadata: Option<Value>,
}

/// `POST /signup`.
pub(crate) async fn signup(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let s = parse_signup(&mut input);
    input.finish()?;
    let cfg = ctx.cfg();
    if !cfg.signup.enabled {
        return Err(AuthError::SignupDisabled);
    }
    crate::password::check_policy(&s.password, Some(&s.email), &cfg.password)?;
    let db = &ctx.inner.store.db;
    let existing = super::find_user(db, &crate::input::Identifier::Email(s.email.clone())).await?;
    // Hash even for a duplicate, so both answers take the same time.
    let hash = ctx.inner.hasher.hash(&s.password).await?;
    if let Some(owner) = existing {
        return duplicate_signup(ctx, &owner).await;
    }
    if let Some(u) = &s.username {
        let taken = users::Entity::find()
            .filter(users::Column::Username.eq(u))
            .one(db)
            .await?;
        if taken.is_some() {
            return Err(AuthError::UsernameExists);
        }
    }
    if let Some(p) = &s.phone {
        let taken = users::Entity::find()
            .filter(users::Column::Phone.eq(p))
            .one(db)
            .await?;
        if taken.is_some() {
            return Err(AuthError::PhoneExists);
        }
    }
    let user = users::Model {
        id: uuid::Uuid::new_v4().to_string(),
        email: s.email.clone(),
        username: s.username.clone(),
        phone: s.phone.clone(),
        password_hash: hash,
        first_name: s.first_name,
        last_name: s.last_name,
        metadata: s.metadata.map(|m| m.to_string()),
        roles: "user".into(),
        is_email_verified: false,
        is_phone_verified: false,
        must_change_password: false,
        password_changed_at: ctx.now,
        disabled: false,
        mfa_enabled: false,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    let tx = ctx.inner.store.begin().await?;
    let am: users::ActiveModel = user.clone().into();
    if let Err(e) = users::Entity::insert(am.reset_all()).exec(&tx).await {
        tx.rollback().await.ok();
        if !is_unique_violation(&e) {
            return Err(e.into());
        }
        // Lost a race: decide which unique key it was.
        let db = &ctx.inner.store.db;
        if let Some(owner) = super::find_user(db, &crate::input::Identifier::Email(s.email)).await?
        {
            return duplicate_signup(ctx, &owner).await;
        }
        return Err(if s.username.is_some() {
            AuthError::UsernameExists
        } else {
            AuthError::PhoneExists
        });
    }
    let carry = Carry {
        auth_method: "password".into(),
        device: device_from(ctx, None, None),
        mfa_proven: false,
    };
    let outcome = next(ctx, &tx, &user, carry).await?;
    tx.commit().await?;
    audit(
        ctx.inner,
        Some(&user.id),
        Event::Signup,
        true,
        &ctx.origin,
        json!({}),
    )
    .await;
    Ok(Outcome::Auth(201, outcome))
}

/// An email that already has an account: under email verification, the same `201
/// VERIFY_EMAIL` shape with a decoy session, and a notice to the owner; otherwise `409`.
async fn duplicate_signup(ctx: &Ctx<'_>, owner: &users::Model) -> AuthResult<Outcome> {
    use crate::config::Verification;
    if !matches!(
        ctx.cfg().signup.verification,
        Verification::Email | Verification::Both
    ) {
        return Err(AuthError::EmailExists);
    }
    let db = &ctx.inner.store.db;
    let carry = Carry {
        auth_method: "password".into(),
        ..Default::default()
    };
    let mut outcome = start_challenge(ctx, db, None, ChallengeName::VerifyEmail, &carry).await?;
    if let AuthOutcome::Challenge { params, .. } = &mut outcome {
        params.insert(
            "codeDeliveryDestination".into(),
            json!(mask_email(&owner.email)),
        );
    }
    // The decoy remembers the masked destination for resends.
    if super::count_code_message(ctx, &owner.email, false)
        .await
        .is_ok()
    {
        ctx.queue_mail(
            &owner.email,
            "Someone tried to sign up with your email",
            "Someone tried to create an account with this email address, which already has \
             one.\n\nIf it was you, log in or reset your password instead. If not, you can ignore \
             this message; nothing was changed.\n"
                .to_string(),
        );
    }
    if let AuthOutcome::Challenge { session, .. } = &outcome {
        challenges::Entity::update_many()
            .col_expr(
                challenges::Column::Destination,
                Expr::value(owner.email.clone()),
            )
            .filter(challenges::Column::IdHash.eq(codes::sha256_hex(session)))
            .exec(db)
            .await?;
    }
    Ok(Outcome::Auth(201, outcome))
}

/// `POST /login`.
pub(crate) async fn login(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let ident = input.identifier("identifier");
    let password = input.password("password");
    let device_name = input.text("deviceName", 100);
    let device_type = input.one_of("deviceType", &["mobile", "desktop", "tablet"], false);
    input.finish()?;
    let Some(ident) = ident else {
        return Err(AuthError::field("identifier", "is required"));
    };
    let db = &ctx.inner.store.db;
    let user = super::find_user(db, &ident).await?;
    let subject = super::lock_subject(user.as_ref(), ident.as_str());
    super::check_locked(ctx, &subject).await?;
    let ok = match &user {
        Some(u) => ctx.inner.hasher.verify(&password, &u.password_hash).await?,
        None => {
            ctx.inner.hasher.verify_dummy(&password).await?;
            false
        }
    };
    let uid = user.as_ref().map(|u| u.id.clone());
    let Some(user) = user.filter(|_| ok) else {
        super::record_failure(ctx, &subject, uid.as_deref()).await?;
        audit(
            ctx.inner,
            uid.as_deref(),
            Event::LoginFailed,
            false,
            &ctx.origin,
            json!({}),
        )
        .await;
        return Err(AuthError::InvalidCredentials);
    };
    if user.disabled {
        return Err(AuthError::AccountLocked);
    }
    // A write only when there is a count to clear: most logins have none.
    if ctx
        .inner
        .kv
        .get(&format!("fail:{subject}"), ctx.now)
        .await?
        .is_some()
    {
        ctx.inner.kv.del(&format!("fail:{subject}")).await?;
    }
    if ctx.inner.hasher.needs_rehash(&user.password_hash) {
        let upgraded = ctx.inner.hasher.hash(&password).await?;
        users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(upgraded))
            .filter(users::Column::Id.eq(&user.id))
            .exec(db)
            .await?;
    }
    let carry = Carry {
        auth_method: "password".into(),
        device: device_from(ctx, device_name, device_type),
        mfa_proven: false,
    };
    let tx = ctx.inner.store.begin().await?;
    let outcome = next(ctx, &tx, &user, carry).await?;
    tx.commit().await?;
    audit(
        ctx.inner,
        Some(&user.id),
        Event::LoginSuccess,
        true,
        &ctx.origin,
        json!({"method": "password"}),
    )
    .await;
    Ok(Outcome::Auth(200, outcome))
}

/// Loads a challenge by its session string and checks it is answerable.
async fn load_challenge(
    db: &impl ConnectionTrait,
    session: &str,
    now: i64,
    lock: bool,
) -> AuthResult<challenges::Model> {
    let mut q = challenges::Entity::find_by_id(codes::sha256_hex(session));
    if lock {
        q = q.lock_exclusive();
    }
    let ch = q.one(db).await?.ok_or(AuthError::ChallengeInvalid)?;
    if ch.completed {
        return Err(AuthError::ChallengeAlreadyCompleted);
    }
    if ch.expires_at <= now {
        return Err(AuthError::ChallengeExpired);
    }
    Ok(ch)
}

fn carry_of(ch: &challenges::Model) -> Carry {
    Carry {
        auth_method: ch.auth_method.clone(),
        device: Device {
            name: ch.device_name.clone(),
            kind: ch.device_type.clone(),
            ip: ch.ip_address.clone(),
            user_agent: ch.user_agent.clone(),
        },
        mfa_proven: ch.mfa_proven,
    }
}

/// `POST /respond-challenge`.
pub(crate) async fn respond(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let session = input.text_req("session", 512);
    let names = [
        "VERIFY_EMAIL",
        "VERIFY_PHONE",
        "MFA_SETUP_REQUIRED",
        "MFA_REQUIRED",
        "FORCE_CHANGE_PASSWORD",
    ];
    let kind = input
        .one_of("type", &names, true)
        .and_then(|t| ChallengeName::parse(&t));
    let (mut code, mut new_password) = (None, None);
    match kind {
        Some(ChallengeName::ForceChangePassword) => {
            new_password = Some(input.password("newPassword"))
        }
        Some(_) => code = Some(input.text_req("code", 16)),
        None => {}
    }
    input.finish()?;
    let Some(kind) = kind else {
        return Err(AuthError::field("type", "is required"));
    };
    let db = &ctx.inner.store.db;
    // A first look without a lock: type and state errors, and the slow password work, happen
    // outside the write transaction.
    let ch = load_challenge(db, &session, ctx.now, false).await?;
    if ch.name != kind.as_str() {
        return Err(AuthError::ChallengeTypeMismatch);
    }
    if ch.attempts >= MAX_ATTEMPTS {
        return Err(AuthError::ChallengeMaxAttempts);
    }
    let user = match &ch.user_id {
        Some(id) => Some(
            super::user_by_id(db, id)
                .await
                .map_err(|_| AuthError::ChallengeInvalid)?,
        ),
        None => None,
    };
    let mut new_hash = None;
    if let (Some(pw), Some(u)) = (&new_password, &user) {
        super::check_new_password(ctx, Some(u), None, pw).await?;
        new_hash = Some(ctx.inner.hasher.hash(pw).await?);
    }
    let tx = ctx.inner.store.begin().await?;
    let ch = load_challenge(&tx, &session, ctx.now, true).await?;
    if ch.attempts >= MAX_ATTEMPTS {
        return Err(AuthError::ChallengeMaxAttempts);
    }
    let Some(user) = user else {
        // The decoy: every answer is wrong.
        return wrong_answer(ctx, tx, ch).await;
    };
    match kind {
        ChallengeName::VerifyEmail => {
            let right = ch.code_hash.as_deref().is_some_and(|h| {
                ctx.inner.keys.verify_code(
                    "challenge",
                    &ch.id_hash,
                    code.as_deref().unwrap_or(""),
                    h,
                )
            });
            if !right {
                return wrong_answer(ctx, tx, ch).await;
            }
            users::Entity::update_many()
                .col_expr(users::Column::IsEmailVerified, Expr::value(true))
                .col_expr(users::Column::UpdatedAt, Expr::value(ctx.now))
                .filter(users::Column::Id.eq(&user.id))
                .exec(&tx)
                .await?;
            verification_tokens::Entity::update_many()
                .col_expr(verification_tokens::Column::UsedAt, Expr::value(ctx.now))
                .filter(verification_tokens::Column::UserId.eq(&user.id))
                .filter(verification_tokens::Column::Purpose.eq("verify_email_link"))
                .filter(verification_tokens::Column::UsedAt.is_null())
                .exec(&tx)
                .await?;
        }
        ChallengeName::ForceChangePassword => {
            let hash = new_hash.ok_or_else(|| AuthError::Internal("missing hash".into()))?;
            super::set_password(ctx, &tx, &user, hash).await?;
        }
        _ => return Err(AuthError::ChallengeTypeMismatch),
    }
    let mut am: challenges::ActiveModel = ch.clone().into();
    am.completed = Set(true);
    am.code_hash = Set(None);
    am.update(&tx).await?;
    let user = super::user_by_id(&tx, &user.id).await?;
    let outcome = next(ctx, &tx, &user, carry_of(&ch)).await?;
    tx.commit().await?;
    let event = match kind {
        ChallengeName::VerifyEmail => Event::EmailVerified,
        _ => Event::PasswordChanged,
    };
    audit(
        ctx.inner,
        Some(&user.id),
        event,
        true,
        &ctx.origin,
        json!({}),
    )
    .await;
    Ok(Outcome::Auth(200, outcome))
}

async fn wrong_answer(
    _ctx: &Ctx<'_>,
    tx: sea_orm::DatabaseTransaction,
    ch: challenges::Model,
) -> AuthResult<Outcome> {
    let attempts = ch.attempts + 1;
    let mut am: challenges::ActiveModel = ch.into();
    am.attempts = Set(attempts);
    am.update(&tx).await?;
    tx.commit().await?;
    Err(AuthError::VerifyCodeInvalid {
        attempts_remaining: Some((MAX_ATTEMPTS - attempts).max(0) as u32),
    })
}

/// `POST /challenge/resend`.
pub(crate) async fn resend(ctx: &Ctx<'_>, mut input: Input) -> AuthResult<Outcome> {
    let session = input.text_req("session", 512);
    let method = input.one_of("method", &["totp", "email", "sms", "backup"], false);
    input.finish()?;
    let ch = load_challenge(&ctx.inner.store.db, &session, ctx.now, false).await?;
    if ch.name != ChallengeName::VerifyEmail.as_str() {
        return Err(if method.is_some() {
            AuthError::MfaMethodNotAllowed
        } else {
            AuthError::ChallengeTypeMismatch
        });
    }
    if matches!(method.as_deref(), Some("totp" | "backup" | "sms")) {
        return Err(AuthError::MfaMethodNotAllowed);
    }
    let cfg = &ctx.cfg().signup;
    let delay = crate::clock::ms(cfg.resend_delay);
    if let Some(last) = ch.last_sent_at {
        if last + delay > ctx.now {
            return Err(AuthError::RateLimited {
                limit: RateLimit::Resend,
                retry_after: super::retry_after(last + delay, ctx.now),
            });
        }
    }
    let (mut window_start, mut sends) = (ch.send_window_start, ch.sends_in_window);
    if window_start + 3_600_000 <= ctx.now {
        window_start = ctx.now;
        sends = 0;
    }
    if sends >= cfg.resend_max_per_hour as i32 {
        return Err(AuthError::RateLimited {
            limit: RateLimit::Resend,
            retry_after: super::retry_after(window_start + 3_600_000, ctx.now),
        });
    }
    let destination = ch.destination.clone().unwrap_or_default();
    super::count_code_message(ctx, &destination, false).await?;
    let tx = ctx.inner.store.begin().await?;
    // Re-read under the lock: a concurrent resend may have just sent.
    let ch = load_challenge(&tx, &session, ctx.now, true).await?;
    if ch.last_sent_at.is_some_and(|last| last + delay > ctx.now) {
        return Err(AuthError::RateLimited {
            limit: RateLimit::Resend,
            retry_after: super::retry_after(ch.last_sent_at.unwrap_or(ctx.now) + delay, ctx.now),
        });
    }
    let mut am: challenges::ActiveModel = ch.clone().into();
    am.last_sent_at = Set(Some(ctx.now));
    am.sends_in_window = Set(sends + 1);
    am.send_window_start = Set(window_start);
    if let Some(uid) = &ch.user_id {
        let user = super::user_by_id(&tx, uid).await?;
        let code = codes::random_code();
        am.code_hash = Set(Some(ctx.inner.keys.hash_code(
            "challenge",
            &ch.id_hash,
            &code,
        )));
        let link = issue_verify_link(ctx, &tx, &user).await?;
        queue_code_mail(ctx, &user.email, &code, link.as_deref());
    }
    am.update(&tx).await?;
    tx.commit().await?;
    Ok(Outcome::Json(
        200,
        json!({ "destination": mask_email(&destination) }),
    ))
}
