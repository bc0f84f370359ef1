//! Budgets that hold under attack (docs/api.md §7): every attempt is *reserved* in the kv store
//! before its secret is compared, so of any number of simultaneous wrong answers at most the
//! budget is ever compared, on every back end and across instances. Also the message caps
//! (codes, notices, SMS) and the signup cap. The kv key of every counter is built here.

use std::net::IpAddr;

use serde_json::json;

use super::Ctx;
use crate::error::{AuthError, AuthResult, RateLimit};
use crate::events::Event;

const HOUR_MS: i64 = 3_600_000;
/// The value a counter is raised to when its budget is spent: far above any count, so a
/// locked counter is told apart from one whose last slots are merely in flight.
const LOCKED: i64 = 1 << 40;

fn is_locked(value: i64) -> bool {
    value >= LOCKED / 2
}

/// Code messages to one address or number per hour (docs/api.md §7).
pub(crate) const CODE_MESSAGES_PER_HOUR: i64 = 10;
/// Notices (duplicate signup, taken email) to one address per hour: stricter than codes, so
/// strangers cannot use nauth to fill someone's inbox, and on their own counter, so they
/// never spend the owner's code-message cap.
pub(crate) const NOTICES_PER_HOUR: i64 = 3;

/// What an attempt proves, each with its own per-account counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    /// A password (login and the password-confirmed routes); also counted per client IP.
    Password,
    /// A second factor (MFA answers in any session, enrolment codes, device-removal codes).
    SecondFactor,
    /// A verification code (VERIFY_EMAIL / VERIFY_PHONE answers, change-email codes).
    Verify,
}

impl Budget {
    fn prefix(self) -> &'static str {
        match self {
            Budget::Password => "pw",
            Budget::SecondFactor => "mfa",
            Budget::Verify => "vfy",
        }
    }
}

/// The counting key of a client address: IPv4 as it is, IPv6 per /64 (one customer's
/// network), IPv4-mapped IPv6 as IPv4.
pub(crate) fn ip_bucket(ip: IpAddr) -> String {
    crate::ip::ip_bucket(ip)
}

/// The kv keys, in one place: every counter, lock and claim the engine keeps.
pub(crate) mod keys {
    use super::{Budget, IpAddr, ip_bucket};

    /// A budget's counter for an account.
    pub fn account(budget: Budget, user_id: &str) -> String {
        format!("{}:acct:{user_id}", budget.prefix())
    }
    /// The password counter of an identifier that names no account.
    pub fn identifier(ident: &str) -> String {
        format!("pw:ident:{ident}")
    }
    /// The password counter of a client address.
    pub fn password_ip(ip: IpAddr) -> String {
        format!("pwip:{}", ip_bucket(ip))
    }
    /// Code messages to an address or number.
    pub fn messages(address: &str) -> String {
        format!("msg:{address}")
    }
    /// Notices to an address.
    pub fn notices(address: &str) -> String {
        format!("note:{address}")
    }
    /// SMS sent for a user.
    pub fn sms_user(user_id: &str) -> String {
        format!("smsu:{user_id}")
    }
    /// SMS sent from a client address.
    pub fn sms_ip(ip: IpAddr) -> String {
        format!("smsip:{}", ip_bucket(ip))
    }
    /// Signups from a client address.
    pub fn signups_ip(ip: IpAddr) -> String {
        format!("signup:ip:{}", ip_bucket(ip))
    }
    /// `/forgot-password` requests from a client address.
    pub fn reset_ip(ip: IpAddr) -> String {
        format!("pwreset:ip:{}", ip_bucket(ip))
    }
    /// Reset messages for an account.
    pub fn reset_account(user_id: &str) -> String {
        format!("pwreset:acct:{user_id}")
    }
    /// Wrong reset codes for an identifier without a live code.
    pub fn reset_failures(ident: &str) -> String {
        format!("pwreset:fail:{ident}")
    }
    /// The claim of a `/resend-verification` send (lives `resend_delay`).
    pub fn resend_claim(user_id: &str) -> String {
        format!("resendv:last:{user_id}")
    }
    /// `/resend-verification` sends in the hour.
    pub fn resend_count(user_id: &str) -> String {
        format!("resendv:count:{user_id}")
    }
    /// Every kv key that belongs to an account (removed with it).
    pub fn of_account(user_id: &str) -> Vec<String> {
        vec![
            account(Budget::Password, user_id),
            account(Budget::SecondFactor, user_id),
            account(Budget::Verify, user_id),
            sms_user(user_id),
            resend_claim(user_id),
            resend_count(user_id),
            reset_account(user_id),
        ]
    }
}

/// A reserved attempt: its slot is already counted. End it with [`Attempt::failed`] (the
/// secret was wrong: at the limit the counter becomes a lock), [`Attempt::succeeded`] (the
/// account's counter is cleared; the IP's slot is given back) or [`Attempt::unused`] (no
/// secret was compared after all: every slot is given back).
#[derive(Debug)]
#[must_use = "an attempt ends as failed, succeeded or unused"]
pub(crate) struct Attempt {
    budget: Budget,
    user_id: Option<String>,
    key: Option<(String, i64)>,
    ip: Option<(String, i64)>,
}

fn limited(limit: RateLimit, until_ms: i64, now: i64) -> AuthError {
    AuthError::RateLimited {
        limit,
        retry_after: super::retry_after(until_ms, now),
    }
}

/// Reserves one attempt of `budget` for an account (`user_id`) or, for passwords, an
/// identifier that names none. `429 RATE_LIMIT_LOGIN` when the budget is locked, or when its
/// last slots are all being compared right now (see [`over`]).
pub(crate) async fn reserve(
    ctx: &Ctx<'_>,
    budget: Budget,
    user_id: Option<&str>,
    ident: &str,
) -> AuthResult<Attempt> {
    let lo = &ctx.cfg().lockout;
    let mut attempt = Attempt {
        budget,
        user_id: user_id.map(str::to_string),
        key: None,
        ip: None,
    };
    if !lo.enabled {
        return Ok(attempt);
    }
    let kv = &ctx.inner.kv;
    let window = crate::clock::ms(lo.window);
    if let (Budget::Password, Some(ip)) = (budget, ctx.ip) {
        let key = keys::password_ip(ip);
        let e = kv.incr(&key, window, ctx.now).await?;
        if let Some(err) = over(ctx, &key, e, lo.ip_max_attempts).await? {
            return Err(err);
        }
        attempt.ip = Some((key, e.value));
    }
    let key = match user_id {
        Some(uid) => keys::account(budget, uid),
        None => keys::identifier(ident),
    };
    let e = kv.incr(&key, window, ctx.now).await?;
    if let Some(err) = over(ctx, &key, e, lo.max_attempts).await? {
        // Nothing is compared; the IP's slot is given back.
        if let Some((ip_key, _)) = attempt.ip.take() {
            kv.decr(&ip_key, ctx.now).await?;
        }
        return Err(err);
    }
    attempt.key = Some((key, e.value));
    Ok(attempt)
}

/// The answer for a slot beyond the budget, if it is: a locked counter is `429` until the lock
/// ends; a counter whose last slots are still being compared (a burst, or several clients of
/// one account logging in at the same instant) is `429` with `Retry-After: 1`, and the slot
/// is given back.
async fn over(
    ctx: &Ctx<'_>,
    key: &str,
    e: crate::kv::Entry,
    max: u32,
) -> AuthResult<Option<AuthError>> {
    if is_locked(e.value) {
        return Ok(Some(limited(RateLimit::Login, e.expires_at, ctx.now)));
    }
    if e.value > i64::from(max) {
        ctx.inner.kv.decr(key, ctx.now).await?;
        return Ok(Some(AuthError::RateLimited {
            limit: RateLimit::Login,
            retry_after: 1,
        }));
    }
    Ok(None)
}

/// Reads, before a transaction opens, the kv entries that the checks inside it may need for
/// this user (message caps of every destination, the second-factor budget), plus `extra`
/// destinations (a phone being collected).
pub(crate) async fn prefetch(
    ctx: &Ctx<'_>,
    user: &crate::store::User,
    extra: &[&str],
) -> AuthResult<()> {
    let mut wanted = vec![
        keys::messages(&user.email),
        keys::sms_user(&user.id),
        keys::account(Budget::SecondFactor, &user.id),
    ];
    wanted.extend(user.phone.iter().map(|p| keys::messages(p)));
    wanted.extend(extra.iter().map(|d| keys::messages(d)));
    if let Some(ip) = ctx.ip {
        wanted.push(sms_ip_key(ip));
    }
    if user.mfa_enabled {
        let devices = super::mfa::devices(&ctx.inner.store, &user.id).await?;
        wanted.extend(
            devices
                .iter()
                .filter_map(|d| d.destination.as_deref())
                .map(keys::messages),
        );
    }
    let entries = ctx.inner.kv.get_many(&wanted, ctx.now).await?;
    if let Ok(mut seen) = ctx.kv_seen.lock() {
        seen.extend(wanted.into_iter().zip(entries));
    }
    Ok(())
}

/// kv entries: from what [`prefetch`] read, the rest from the store.
async fn lookup(ctx: &Ctx<'_>, wanted: &[String]) -> AuthResult<Vec<Option<crate::kv::Entry>>> {
    let known: Vec<Option<Option<crate::kv::Entry>>> = match ctx.kv_seen.lock() {
        Ok(seen) => wanted.iter().map(|k| seen.get(k).copied()).collect(),
        Err(_) => vec![None; wanted.len()],
    };
    let missing: Vec<String> = wanted
        .iter()
        .zip(&known)
        .filter(|(_, k)| k.is_none())
        .map(|(w, _)| w.clone())
        .collect();
    let mut fetched = if missing.is_empty() {
        Vec::new()
    } else {
        ctx.inner.kv.get_many(&missing, ctx.now).await?
    }
    .into_iter();
    Ok(known
        .into_iter()
        .map(|k| match k {
            Some(e) => e,
            None => fetched.next().flatten(),
        })
        .collect())
}

fn sms_ip_key(ip: IpAddr) -> String {
    keys::sms_ip(ip)
}

/// `429 RATE_LIMIT_LOGIN` when the account's budget is spent (without reserving): a login
/// must not open a challenge whose every answer would be refused.
pub(crate) async fn check_spent(ctx: &Ctx<'_>, budget: Budget, user_id: &str) -> AuthResult<()> {
    let lo = &ctx.cfg().lockout;
    if !lo.enabled {
        return Ok(());
    }
    if let Some(e) = lookup(ctx, &[keys::account(budget, user_id)])
        .await?
        .into_iter()
        .next()
        .flatten()
        && is_locked(e.value)
    {
        return Err(limited(RateLimit::Login, e.expires_at, ctx.now));
    }
    Ok(())
}

impl Attempt {
    /// The secret was wrong. The attempt that spends the budget turns the counter into a
    /// lock for `lockout.duration`; the counter is never deleted, so a racing attempt
    /// cannot start a fresh count.
    pub(crate) async fn failed(self, ctx: &Ctx<'_>) -> AuthResult<()> {
        let lo = &ctx.cfg().lockout;
        let until = ctx.now + crate::clock::ms(lo.duration);
        let kv = &ctx.inner.kv;
        if let Some((key, value)) = &self.key
            && *value >= i64::from(lo.max_attempts)
        {
            kv.raise(key, LOCKED, until, ctx.now).await?;
            let scope = match self.budget {
                Budget::Password => "identifier",
                Budget::SecondFactor => "mfa",
                Budget::Verify => "verification",
            };
            crate::events::audit(
                ctx.inner,
                self.user_id.as_deref(),
                Event::LoginLocked,
                false,
                &ctx.origin,
                json!({ "scope": scope }),
            )
            .await;
        }
        if let Some((key, value)) = &self.ip
            && *value >= i64::from(lo.ip_max_attempts)
        {
            kv.raise(key, LOCKED, until, ctx.now).await?;
        }
        Ok(())
    }

    /// The secret was right: the account's counter starts again; the IP's slot is given
    /// back (a success resets the account's counter, not the IP's). While other attempts
    /// reserved after this one are still in flight (a burst around a right answer), only this
    /// attempt's slot is given back: a success never opens fresh slots for a running burst.
    pub(crate) async fn succeeded(self, ctx: &Ctx<'_>) -> AuthResult<()> {
        let kv = &ctx.inner.kv;
        if let Some((key, value)) = &self.key
            && !kv.clear_if(key, *value).await?
        {
            kv.decr(key, ctx.now).await?;
        }
        if let Some((key, _)) = &self.ip {
            kv.decr(key, ctx.now).await?;
        }
        Ok(())
    }

    /// No secret was compared (the request failed for another reason first).
    pub(crate) async fn unused(self, ctx: &Ctx<'_>) -> AuthResult<()> {
        let kv = &ctx.inner.kv;
        for (key, _) in self.key.iter().chain(self.ip.iter()) {
            kv.decr(key, ctx.now).await?;
        }
        Ok(())
    }

    /// Ends the attempt by the outcome of a comparison and passes the outcome on: `Ok(true)`
    /// succeeded, `Ok(false)` failed, an error before any comparison is `unused`.
    pub(crate) async fn settle(self, ctx: &Ctx<'_>, outcome: &AuthResult<bool>) -> AuthResult<()> {
        self.end(ctx, outcome.as_ref().ok().copied()).await
    }

    /// Ends the attempt by a verdict: `Some(true)` succeeded, `Some(false)` failed, `None`
    /// nothing was compared.
    pub(crate) async fn end(self, ctx: &Ctx<'_>, verdict: Option<bool>) -> AuthResult<()> {
        match verdict {
            Some(true) => self.succeeded(ctx).await,
            Some(false) => self.failed(ctx).await,
            None => self.unused(ctx).await,
        }
    }
}

/// Counts a code message to an address or number (and, for SMS, for its user and client
/// IP) *before* it is sent; past a cap nothing is sent and the answer is `429`.
pub(crate) async fn spend_message(
    ctx: &Ctx<'_>,
    address: &str,
    sms: bool,
    user_id: Option<&str>,
) -> AuthResult<()> {
    let limit = if sms {
        RateLimit::Sms
    } else {
        RateLimit::Email
    };
    let kv = &ctx.inner.kv;
    if sms {
        let cfg = &ctx.cfg().sms;
        if let Some(uid) = user_id {
            let e = kv.incr(&keys::sms_user(uid), HOUR_MS, ctx.now).await?;
            if e.value > i64::from(cfg.user_max_per_hour) {
                return Err(limited(limit, e.expires_at, ctx.now));
            }
        }
        if let Some(ip) = ctx.ip {
            let e = kv.incr(&sms_ip_key(ip), HOUR_MS, ctx.now).await?;
            if e.value > i64::from(cfg.ip_max_per_hour) {
                return Err(limited(limit, e.expires_at, ctx.now));
            }
        }
    }
    let e = kv.incr(&keys::messages(address), HOUR_MS, ctx.now).await?;
    if e.value > CODE_MESSAGES_PER_HOUR {
        return Err(limited(limit, e.expires_at, ctx.now));
    }
    Ok(())
}

/// Whether a code message to `address` (SMS: for this user and client IP) is still within
/// its hourly caps (else the `429` to answer), without spending: inside a transaction, which serialises the user's
/// sends; the send is counted right after the commit ([`count_sent`]).
pub(crate) async fn message_allowed(
    ctx: &Ctx<'_>,
    address: &str,
    sms: bool,
    user_id: Option<&str>,
) -> AuthResult<Result<(), AuthError>> {
    let mut checks = vec![(keys::messages(address), CODE_MESSAGES_PER_HOUR)];
    if sms {
        let cfg = &ctx.cfg().sms;
        if let Some(uid) = user_id {
            checks.push((keys::sms_user(uid), i64::from(cfg.user_max_per_hour)));
        }
        if let Some(ip) = ctx.ip {
            checks.push((sms_ip_key(ip), i64::from(cfg.ip_max_per_hour)));
        }
    }
    let keys: Vec<String> = checks.iter().map(|(k, _)| k.clone()).collect();
    let entries = lookup(ctx, &keys).await?;
    let limit = if sms {
        RateLimit::Sms
    } else {
        RateLimit::Email
    };
    // The cap that ends last decides when a message may go again.
    let spent = entries
        .iter()
        .zip(&checks)
        .filter_map(|(e, (_, max))| e.filter(|e| e.value >= *max))
        .map(|e| e.expires_at)
        .max();
    Ok(match spent {
        Some(until) => Err(limited(limit, until, ctx.now)),
        None => Ok(()),
    })
}

/// Counts messages that a transaction sent (see [`message_allowed`]); best effort, the
/// messages are already on their way.
pub(crate) async fn count_sent(ctx: &Ctx<'_>, sent: &[super::Sent]) {
    let kv = &ctx.inner.kv;
    for s in sent {
        let _ = kv.incr(&keys::messages(&s.address), HOUR_MS, ctx.now).await;
        if s.sms {
            if let Some(uid) = &s.user_id {
                let _ = kv.incr(&keys::sms_user(uid), HOUR_MS, ctx.now).await;
            }
            if let Some(ip) = ctx.ip {
                let _ = kv.incr(&sms_ip_key(ip), HOUR_MS, ctx.now).await;
            }
        }
    }
}

/// Clears an account's password, second-factor and verification counters (after a proven
/// password reset).
pub(crate) async fn clear_account(ctx: &Ctx<'_>, user_id: &str) -> AuthResult<()> {
    for b in [Budget::Password, Budget::SecondFactor, Budget::Verify] {
        ctx.inner.kv.del(&keys::account(b, user_id)).await?;
    }
    Ok(())
}

/// Counts a notice to an address on its own, stricter cap; `false`: do not send it.
pub(crate) async fn spend_notice(ctx: &Ctx<'_>, address: &str) -> AuthResult<bool> {
    let e = ctx
        .inner
        .kv
        .incr(&keys::notices(address), HOUR_MS, ctx.now)
        .await?;
    Ok(e.value <= NOTICES_PER_HOUR)
}

/// Counts a signup from the client IP: `429 RATE_LIMIT_SIGNUP` past `signup.ip_max_per_hour`.
pub(crate) async fn spend_signup(ctx: &Ctx<'_>) -> AuthResult<()> {
    let Some(ip) = ctx.ip else { return Ok(()) };
    let e = ctx
        .inner
        .kv
        .incr(&keys::signups_ip(ip), HOUR_MS, ctx.now)
        .await?;
    if e.value > i64::from(ctx.cfg().signup.ip_max_per_hour) {
        return Err(limited(RateLimit::Signup, e.expires_at, ctx.now));
    }
    Ok(())
}

/// Reserves one of a stored code's `max` attempts (reset, change-email and enrolment codes)
/// before it is compared: a compare-and-set on the row's counter, so each caller learns its
/// own attempt number, and at most `max` callers ever get one. `None`: the attempts are spent.
pub(crate) async fn reserve_code_attempt(
    db: &impl crate::store::Conn,
    token_id: &str,
    max: i32,
) -> AuthResult<Option<i32>> {
    Ok(crate::store::verification::reserve_attempt(db, token_id, max).await?)
}
