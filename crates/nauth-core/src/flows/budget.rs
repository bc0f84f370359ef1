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

/// The counting key of a client address: IPv4 as it is, IPv6 per /64 (one customer's
/// network), IPv4-mapped IPv6 as IPv4.
pub(crate) fn ip_bucket(ip: IpAddr) -> String {
    crate::ip::ip_bucket(ip)
}

pub(crate) use keys::KvKey;

/// The kv keys, in one place: every counter, lock and claim the engine keeps.
pub(crate) mod keys {
    use std::fmt;

    use super::{Budget, IpAddr, ip_bucket};

    /// A kv key. Its text (the [`fmt::Display`]) is what the kv store holds: it must never
    /// change, or live counters, locks and deny entries would be forgotten on an upgrade.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum KvKey<'a> {
        /// A budget's counter for an account (a user id).
        Account(Budget, &'a str),
        /// The password counter of an identifier that names no account.
        Identifier(&'a str),
        /// The password counter of a client address.
        PasswordIp(IpAddr),
        /// Code messages to an address or number.
        Messages(&'a str),
        /// Notices to an address.
        Notices(&'a str),
        /// SMS sent for a user.
        SmsUser(&'a str),
        /// SMS sent from a client address.
        SmsIp(IpAddr),
        /// Signups from a client address.
        SignupIp(IpAddr),
        /// `/forgot-password` requests from a client address.
        ResetIp(IpAddr),
        /// Reset messages for an account.
        ResetAccount(&'a str),
        /// Wrong reset codes for an identifier without a live code.
        ResetFailures(&'a str),
        /// The claim of a `/resend-verification` send (lives `resend_delay`).
        ResendClaim(&'a str),
        /// `/resend-verification` sends in the hour.
        ResendCount(&'a str),
        /// A deny-set entry of a subject (see `crate::deny`).
        Deny(&'a str),
        /// `/magic-link` requests from a client address.
        MagicIp(IpAddr),
        /// Magic links mailed for an account.
        MagicAccount(&'a str),
        /// `/passkeys/login/options` requests from a client address.
        #[cfg_attr(not(feature = "passkeys"), allow(dead_code))]
        PasskeyIp(IpAddr),
    }

    impl<'a> KvKey<'a> {
        /// The start of every deny-set key (the prefix scanned by `crate::deny::refresh`).
        pub(crate) const DENY_PREFIX: &'static str = KvKey::Deny("").prefix();

        /// The fixed start of the key's kind: every key of the kind starts with it.
        pub(crate) const fn prefix(&self) -> &'static str {
            match self {
                KvKey::Account(Budget::Password, _) => "pw:acct:",
                KvKey::Account(Budget::SecondFactor, _) => "mfa:acct:",
                KvKey::Account(Budget::Verify, _) => "vfy:acct:",
                KvKey::Identifier(_) => "pw:ident:",
                KvKey::PasswordIp(_) => "pwip:",
                KvKey::Messages(_) => "msg:",
                KvKey::Notices(_) => "note:",
                KvKey::SmsUser(_) => "smsu:",
                KvKey::SmsIp(_) => "smsip:",
                KvKey::SignupIp(_) => "signup:ip:",
                KvKey::ResetIp(_) => "pwreset:ip:",
                KvKey::ResetAccount(_) => "pwreset:acct:",
                KvKey::ResetFailures(_) => "pwreset:fail:",
                KvKey::ResendClaim(_) => "resendv:last:",
                KvKey::ResendCount(_) => "resendv:count:",
                KvKey::Deny(_) => "deny:",
                KvKey::MagicIp(_) => "magic:ip:",
                KvKey::MagicAccount(_) => "magic:acct:",
                KvKey::PasskeyIp(_) => "passkey:ip:",
            }
        }

        /// Every kv key that belongs to an account (removed with it).
        pub(crate) fn of_account(user_id: &'a str) -> [KvKey<'a>; 8] {
            [
                KvKey::Account(Budget::Password, user_id),
                KvKey::Account(Budget::SecondFactor, user_id),
                KvKey::Account(Budget::Verify, user_id),
                KvKey::SmsUser(user_id),
                KvKey::ResendClaim(user_id),
                KvKey::ResendCount(user_id),
                KvKey::ResetAccount(user_id),
                KvKey::MagicAccount(user_id),
            ]
        }
    }

    /// The stored key: the kind's [`KvKey::prefix`], then the user id, address, identifier,
    /// subject or client-address bucket.
    impl fmt::Display for KvKey<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.prefix())?;
            match *self {
                KvKey::PasswordIp(ip)
                | KvKey::SmsIp(ip)
                | KvKey::SignupIp(ip)
                | KvKey::ResetIp(ip)
                | KvKey::MagicIp(ip)
                | KvKey::PasskeyIp(ip) => f.write_str(&ip_bucket(ip)),
                KvKey::Account(_, s)
                | KvKey::Identifier(s)
                | KvKey::Messages(s)
                | KvKey::Notices(s)
                | KvKey::SmsUser(s)
                | KvKey::ResetAccount(s)
                | KvKey::ResetFailures(s)
                | KvKey::ResendClaim(s)
                | KvKey::ResendCount(s)
                | KvKey::Deny(s)
                | KvKey::MagicAccount(s) => f.write_str(s),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// The stored text of every kind of key, byte for byte as rows already hold it.
        #[test]
        fn keys_keep_their_stored_text() {
            let v4: IpAddr = "203.0.113.9".parse().expect("ip");
            let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().expect("ip");
            let cases = [
                (KvKey::Account(Budget::Password, "u1"), "pw:acct:u1"),
                (KvKey::Account(Budget::SecondFactor, "u1"), "mfa:acct:u1"),
                (KvKey::Account(Budget::Verify, "u1"), "vfy:acct:u1"),
                (KvKey::Identifier("a@b.co"), "pw:ident:a@b.co"),
                (KvKey::PasswordIp(v4), "pwip:203.0.113.9"),
                (KvKey::PasswordIp(v6), "pwip:2001:db8:1:2::/64"),
                (KvKey::Messages("+15550001"), "msg:+15550001"),
                (KvKey::Notices("a@b.co"), "note:a@b.co"),
                (KvKey::SmsUser("u1"), "smsu:u1"),
                (KvKey::SmsIp(v4), "smsip:203.0.113.9"),
                (KvKey::SignupIp(v4), "signup:ip:203.0.113.9"),
                (KvKey::SignupIp(v6), "signup:ip:2001:db8:1:2::/64"),
                (KvKey::ResetIp(v4), "pwreset:ip:203.0.113.9"),
                (KvKey::ResetAccount("u1"), "pwreset:acct:u1"),
                (KvKey::ResetFailures("a@b.co"), "pwreset:fail:a@b.co"),
                (KvKey::ResendClaim("u1"), "resendv:last:u1"),
                (KvKey::ResendCount("u1"), "resendv:count:u1"),
                (KvKey::Deny("u1"), "deny:u1"),
                (KvKey::MagicIp(v4), "magic:ip:203.0.113.9"),
                (KvKey::MagicAccount("u1"), "magic:acct:u1"),
                (KvKey::PasskeyIp(v4), "passkey:ip:203.0.113.9"),
            ];
            for (key, want) in cases {
                assert_eq!(key.to_string(), want, "{key:?}");
                assert!(want.starts_with(key.prefix()), "{key:?}");
            }
            assert_eq!(KvKey::DENY_PREFIX, "deny:");
            let all: Vec<String> = KvKey::of_account("u1")
                .iter()
                .map(|k| k.to_string())
                .collect();
            assert_eq!(
                all,
                [
                    "pw:acct:u1",
                    "mfa:acct:u1",
                    "vfy:acct:u1",
                    "smsu:u1",
                    "resendv:last:u1",
                    "resendv:count:u1",
                    "pwreset:acct:u1",
                    "magic:acct:u1"
                ]
            );
        }
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
        let key = KvKey::PasswordIp(ip).to_string();
        let e = kv.incr(&key, window, ctx.now).await?;
        if let Some(err) = over(ctx, &key, e, lo.ip_max_attempts).await? {
            return Err(err);
        }
        attempt.ip = Some((key, e.value));
    }
    let key = match user_id {
        Some(uid) => KvKey::Account(budget, uid),
        None => KvKey::Identifier(ident),
    }
    .to_string();
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
        KvKey::Messages(&user.email).to_string(),
        KvKey::SmsUser(&user.id).to_string(),
        KvKey::Account(Budget::SecondFactor, &user.id).to_string(),
    ];
    wanted.extend(user.phone.iter().map(|p| KvKey::Messages(p).to_string()));
    wanted.extend(extra.iter().map(|d| KvKey::Messages(d).to_string()));
    if let Some(ip) = ctx.ip {
        wanted.push(KvKey::SmsIp(ip).to_string());
    }
    if user.mfa_enabled {
        let devices = super::mfa::devices(&ctx.inner.store, &user.id).await?;
        wanted.extend(
            devices
                .iter()
                .filter_map(|d| d.destination.as_deref())
                .map(|d| KvKey::Messages(d).to_string()),
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

/// `429 RATE_LIMIT_LOGIN` when the account's budget is spent (without reserving): a login
/// must not open a challenge whose every answer would be refused.
pub(crate) async fn check_spent(ctx: &Ctx<'_>, budget: Budget, user_id: &str) -> AuthResult<()> {
    let lo = &ctx.cfg().lockout;
    if !lo.enabled {
        return Ok(());
    }
    if let Some(e) = lookup(ctx, &[KvKey::Account(budget, user_id).to_string()])
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
            ctx.audit_later(
                self.user_id.as_deref(),
                Event::LoginLocked,
                false,
                json!({ "scope": scope }),
            );
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
            let e = kv
                .incr(&KvKey::SmsUser(uid).to_string(), HOUR_MS, ctx.now)
                .await?;
            if e.value > i64::from(cfg.user_max_per_hour) {
                return Err(limited(limit, e.expires_at, ctx.now));
            }
        }
        if let Some(ip) = ctx.ip {
            let e = kv
                .incr(&KvKey::SmsIp(ip).to_string(), HOUR_MS, ctx.now)
                .await?;
            if e.value > i64::from(cfg.ip_max_per_hour) {
                return Err(limited(limit, e.expires_at, ctx.now));
            }
        }
    }
    let e = kv
        .incr(&KvKey::Messages(address).to_string(), HOUR_MS, ctx.now)
        .await?;
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
    let mut checks = vec![(KvKey::Messages(address).to_string(), CODE_MESSAGES_PER_HOUR)];
    if sms {
        let cfg = &ctx.cfg().sms;
        if let Some(uid) = user_id {
            checks.push((
                KvKey::SmsUser(uid).to_string(),
                i64::from(cfg.user_max_per_hour),
            ));
        }
        if let Some(ip) = ctx.ip {
            checks.push((KvKey::SmsIp(ip).to_string(), i64::from(cfg.ip_max_per_hour)));
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
        let _ = kv
            .incr(&KvKey::Messages(&s.address).to_string(), HOUR_MS, ctx.now)
            .await;
        if s.sms {
            if let Some(uid) = &s.user_id {
                let _ = kv
                    .incr(&KvKey::SmsUser(uid).to_string(), HOUR_MS, ctx.now)
                    .await;
            }
            if let Some(ip) = ctx.ip {
                let _ = kv
                    .incr(&KvKey::SmsIp(ip).to_string(), HOUR_MS, ctx.now)
                    .await;
            }
        }
    }
}

/// Clears an account's password, second-factor and verification counters (after a proven
/// password reset).
pub(crate) async fn clear_account(ctx: &Ctx<'_>, user_id: &str) -> AuthResult<()> {
    for b in [Budget::Password, Budget::SecondFactor, Budget::Verify] {
        ctx.inner
            .kv
            .del(&KvKey::Account(b, user_id).to_string())
            .await?;
    }
    Ok(())
}

/// Counts a notice to an address on its own, stricter cap; `false`: do not send it.
pub(crate) async fn spend_notice(ctx: &Ctx<'_>, address: &str) -> AuthResult<bool> {
    let e = ctx
        .inner
        .kv
        .incr(&KvKey::Notices(address).to_string(), HOUR_MS, ctx.now)
        .await?;
    Ok(e.value <= NOTICES_PER_HOUR)
}

/// Counts a signup from the client IP: `429 RATE_LIMIT_SIGNUP` past `signup.ip_max_per_hour`.
pub(crate) async fn spend_signup(ctx: &Ctx<'_>) -> AuthResult<()> {
    let Some(ip) = ctx.ip else { return Ok(()) };
    let e = ctx
        .inner
        .kv
        .incr(&KvKey::SignupIp(ip).to_string(), HOUR_MS, ctx.now)
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
