//! Configuration (docs/api.md §9): [`NAuthConfig`] with its defaults, loading from TOML plus `NAUTH_*`
//! environment overrides ([`load`], [`from_sources`]), duration strings ([`parse_duration`]) and
//! startup validation with one [`ConfigError`] per bad key. `Debug` never shows the secret or the
//! credentials inside URLs.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A configuration problem, naming the offending key with its section path (`jwt.access_ttl`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration `{key}`: {message}")]
pub struct ConfigError {
    /// The key with its section path (`secret`, `lockout.max_attempts`), or `<file>`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// A string-valued enum: `Variant = "name"`, the first listed variant is the default.
macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $first:ident = $fs:literal $(, $var:ident = $s:literal)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
        #[non_exhaustive]
        pub enum $name {
            #[doc = concat!("`\"", $fs, "\"`")] #[default] #[serde(rename = $fs)] $first,
            $(#[doc = concat!("`\"", $s, "\"`")] #[serde(rename = $s)] $var,)*
        }
        impl $name {
            /// The accepted spellings, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$fs $(, $s)*];
            /// This value's spelling in the configuration.
            pub fn as_str(self) -> &'static str {
                match self { Self::$first => $fs, $(Self::$var => $s),* }
            }
        }
    };
}

str_enum! {
    /// `jwt.algorithm`: `HS256` signs with a key derived from `secret`; `RS256` (RSA 2048) and
    /// `EdDSA` (Ed25519) sign with the key of `jwt.private_key_file`, or with keys generated
    /// and stored in the database, whose public parts are published as a JWKS.
    JwtAlgorithm { Hs256 = "HS256", Rs256 = "RS256", EdDsa = "EdDSA" }
}
str_enum! {
    /// `session.validation`: check the session on every request (`database`), or trust the
    /// access token until it expires (`token`).
    SessionValidation { Database = "database", Token = "token" }
}
str_enum! {
    /// `token_delivery.mode`: tokens in the body, in cookies, or chosen per request (docs/api.md §4).
    DeliveryMode { Json = "json", Cookies = "cookies", Hybrid = "hybrid" }
}
str_enum! {
    /// `token_delivery.cookie_same_site`: the cookies' `SameSite` attribute.
    SameSite { Strict = "strict", Lax = "lax" }
}
str_enum! {
    /// `signup.verification`: what a new account must verify.
    Verification { Email = "email", None = "none", Phone = "phone", Both = "both" }
}
str_enum! {
    /// `mfa.enforcement`: MFA disabled, available, or mandatory.
    MfaEnforcement { Optional = "optional", Off = "off", Required = "required" }
}
str_enum! {
    /// An entry of `mfa.allowed_methods`: authenticator app, emailed code, texted code.
    MfaMethod { Totp = "totp", Email = "email", Sms = "sms" }
}
str_enum! {
    /// `mfa.remember_devices`: the trusted-device policy.
    RememberDevices { Never = "never", Always = "always", UserOptIn = "user_opt_in" }
}
str_enum! {
    /// `email.provider`: log the mail, send it over SMTP, or keep it in memory (tests).
    EmailProvider { Console = "console", Smtp = "smtp", Memory = "memory" }
}
str_enum! {
    /// A language nauth writes its mails in (`email.default_locale`, a user's `locale`).
    Locale { En = "en", Fr = "fr" }
}
str_enum! {
    /// `sms.provider`: log the text, keep it in memory (tests), or POST it to a webhook.
    SmsProvider { Console = "console", Memory = "memory", Webhook = "webhook" }
}
str_enum! {
    /// `social.<name>.kind`: a generic OpenID Connect provider, or a preset that fills in the
    /// endpoints (docs/social-login.md).
    SocialKind { Oidc = "oidc", Google = "google", Microsoft = "microsoft", Apple = "apple", Github = "github" }
}
str_enum! {
    /// `kv.backend`: where counters, locks and lockouts live.
    KvBackend { Database = "database", Memory = "memory", Redis = "redis" }
}

/// A configuration struct whose fields are declared as `name: Type = default`.
macro_rules! section {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident: $ty:ty = $default:expr,)+ }) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Deserialize, Serialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name { $($(#[$fm])* pub $field: $ty,)+ }
        impl Default for $name {
            fn default() -> Self { Self { $($field: $default,)+ } }
        }
    };
}

const fn mins(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}
const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

section! {
    /// The whole nauth configuration (docs/api.md §9). `Debug` redacts the secret and URL passwords.
    NAuthConfig {
        /// sea-orm database URL: SQLite, PostgreSQL or MySQL/MariaDB.
        database_url: String = "sqlite://nauth.db?mode=rwc".into(),
        /// Public base URL for links in mails, without trailing `/`; empty: codes only.
        base_url: String = String::new(),
        /// Where the auth routes are mounted.
        mount_prefix: String = "/auth".into(),
        /// Signs JWTs (HS256), CSRF tokens and code hashes; at least 32 bytes.
        secret: String = String::new(),
        /// Proxies whose `X-Forwarded-For` is believed (CIDRs; a bare IP is a /32 or /128).
        #[serde(with = "ip_nets")] trusted_proxies: Vec<ipnet::IpNet> = Vec::new(),
        /// Origins (`scheme://host[:port]`, no trailing `/`) accepted; empty: no Origin check.
        trusted_origins: Vec<String> = Vec::new(),
        /// `[jwt]`: access tokens.
        jwt: JwtConfig = JwtConfig::default(),
        /// `[refresh]`: refresh tokens.
        refresh: RefreshConfig = RefreshConfig::default(),
        /// `[session]`: session validation.
        session: SessionConfig = SessionConfig::default(),
        /// `[token_delivery]`: token delivery and cookies.
        token_delivery: TokenDeliveryConfig = TokenDeliveryConfig::default(),
        /// `[signup]`: signup and verification.
        signup: SignupConfig = SignupConfig::default(),
        /// `[password]`: password policy, hashing and reset.
        password: PasswordConfig = PasswordConfig::default(),
        /// `[lockout]`: login throttling.
        lockout: LockoutConfig = LockoutConfig::default(),
        /// `[mfa]`: multi-factor authentication.
        mfa: MfaConfig = MfaConfig::default(),
        /// `[email]`: mail delivery.
        email: EmailConfig = EmailConfig::default(),
        /// `[sms]`: text-message delivery.
        sms: SmsConfig = SmsConfig::default(),
        /// `[magic_link]`: passwordless login by a mailed link.
        magic_link: MagicLinkConfig = MagicLinkConfig::default(),
        /// `[passkeys]`: WebAuthn passkeys (passwordless sign-in and a second factor).
        passkeys: PasskeysConfig = PasskeysConfig::default(),
        /// `[api_keys]`: API keys.
        api_keys: ApiKeysConfig = ApiKeysConfig::default(),
        /// `[kv]`: counter and lock storage.
        kv: KvConfig = KvConfig::default(),
        /// `[metrics]`: Prometheus counters at `<mount>/metrics`.
        metrics: MetricsConfig = MetricsConfig::default(),
        /// `[openapi]`: the OpenAPI document and the API page.
        openapi: OpenApiConfig = OpenApiConfig::default(),
        /// `[social.<name>]`: social login providers by name (docs/social-login.md); needs
        /// nauth-core's `social` feature.
        social: std::collections::BTreeMap<String, SocialProviderConfig> = Default::default(),
    }
}
section! {
    /// `[jwt]`: access tokens.
    #[derive(Debug)]
    JwtConfig {
        /// Signing algorithm: `HS256` (the secret), `RS256` or `EdDSA` (key pairs, JWKS).
        algorithm: JwtAlgorithm = JwtAlgorithm::Hs256,
        /// RS256/EdDSA only: a PKCS#8 PEM private key of that algorithm. Empty: a key is
        /// generated on first start and kept in the database (sealed with `secret`).
        private_key_file: String = String::new(),
        /// Access-token lifetime.
        #[serde(with = "duration_str")] access_ttl: Duration = mins(15),
        /// The `iss` claim.
        issuer: String = "nauth".into(),
        /// The `aud` claim.
        audience: String = "nauth".into(),
    }
}
section! {
    /// `[refresh]`: refresh tokens.
    #[derive(Debug)]
    RefreshConfig {
        /// Sliding refresh-token lifetime.
        #[serde(with = "duration_str")] ttl: Duration = days(7),
        /// Cap on a session's life however often it is refreshed (at least `ttl`).
        #[serde(with = "duration_str")] absolute_lifetime: Duration = days(30),
        /// Window in which a just-rotated token may be exchanged again (0 allowed).
        #[serde(with = "duration_str")] reuse_interval: Duration = Duration::from_secs(10),
    }
}
section! {
    /// `[session]`.
    #[derive(Debug)]
    SessionConfig {
        /// How each request's session is checked.
        validation: SessionValidation = SessionValidation::Database,
        /// With PostgreSQL or MySQL under `database` validation: how long an instance may
        /// answer from its cache of live sessions. Revocations reach every instance at once
        /// through Redis (`kv.backend = "redis"`); this bounds what a lost message could leave
        /// stale. `0s` (the default): no cache, every request reads its session row.
        #[serde(with = "duration_str")] cache_max_age: Duration = Duration::ZERO,
    }
}
section! {
    /// `[token_delivery]`: how tokens reach the client (docs/api.md §4).
    #[derive(Debug)]
    TokenDeliveryConfig {
        /// `json`, `cookies` or `hybrid`.
        mode: DeliveryMode = DeliveryMode::Json,
        /// Prefix of every cookie name.
        cookie_prefix: String = "nauth_".into(),
        /// Whether cookies carry `Secure`.
        cookie_secure: bool = true,
        /// The cookies' `SameSite`.
        cookie_same_site: SameSite = SameSite::Strict,
        /// The cookies' `Domain`; empty: host-only.
        cookie_domain: String = String::new(),
    }
}
section! {
    /// `[signup]`.
    #[derive(Debug)]
    SignupConfig {
        /// Whether signup is open.
        enabled: bool = true,
        /// What a new account must verify.
        verification: Verification = Verification::Email,
        /// Life of an emailed or texted code and link.
        #[serde(with = "duration_str")] code_ttl: Duration = mins(60),
        /// Minimum wait before a code may be resent.
        #[serde(with = "duration_str")] resend_delay: Duration = Duration::from_secs(60),
        /// Resends allowed per hour.
        resend_max_per_hour: u32 = 3,
        /// Signups per client IP per hour (`429 RATE_LIMIT_SIGNUP`).
        ip_max_per_hour: u32 = 30,
        /// Where `GET /verify-email` sends the browser (URL or `/path`); empty: no redirect.
        verified_redirect: String = String::new(),
    }
}
section! {
    /// `[password]`: policy (NIST SP 800-63B defaults), Argon2id hashing and reset.
    #[derive(Debug)]
    PasswordConfig {
        /// Minimum length in characters.
        min_length: usize = 8,
        /// Maximum length in characters.
        max_length: usize = 128,
        /// Require an uppercase letter.
        require_uppercase: bool = false,
        /// Require a lowercase letter.
        require_lowercase: bool = false,
        /// Require a digit.
        require_digit: bool = false,
        /// Require a symbol.
        require_symbol: bool = false,
        /// Reject the most common passwords.
        block_common: bool = true,
        /// How many previous passwords may not be reused (0: off).
        history_count: u32 = 0,
        /// Password lifetime; `None` (`""` in TOML): passwords never expire.
        #[serde(with = "opt_duration_str")] expiry: Option<Duration> = None,
        /// Argon2id memory cost in KiB.
        argon2_memory_kib: u32 = 19_456,
        /// Argon2id iterations.
        argon2_iterations: u32 = 2,
        /// Argon2id lanes.
        argon2_parallelism: u32 = 1,
        /// Life of a reset code and link.
        #[serde(with = "duration_str")] reset_code_ttl: Duration = mins(15),
        /// Page the reset link opens; empty: `{base_url}/reset-password`.
        reset_url: String = String::new(),
        /// `/forgot-password` requests allowed per client IP and hour.
        reset_ip_max_per_hour: u32 = 20,
    }
}
section! {
    /// `[lockout]`: login throttling (docs/api.md §7).
    #[derive(Debug)]
    LockoutConfig {
        /// Whether throttling is on.
        enabled: bool = true,
        /// Failures per identifier within `window` before it is locked.
        max_attempts: u32 = 5,
        /// Failures per client IP within `window` before it is locked.
        ip_max_attempts: u32 = 20,
        /// Window in which failures are counted.
        #[serde(with = "duration_str")] window: Duration = mins(15),
        /// How long a lock holds.
        #[serde(with = "duration_str")] duration: Duration = mins(15),
    }
}
section! {
    /// `[mfa]`.
    #[derive(Debug)]
    MfaConfig {
        /// Off, optional or required.
        enforcement: MfaEnforcement = MfaEnforcement::Optional,
        /// Methods users may enrol.
        allowed_methods: Vec<MfaMethod> = vec![MfaMethod::Totp, MfaMethod::Email, MfaMethod::Sms],
        /// How long a user may still log in without MFA once it is required.
        #[serde(with = "duration_str")] grace_period: Duration = Duration::ZERO,
        /// Issuer shown in authenticator apps.
        issuer: String = "nauth".into(),
        /// Trusted-device policy.
        remember_devices: RememberDevices = RememberDevices::Never,
        /// Life of a trusted device.
        #[serde(with = "duration_str")] remember_device_ttl: Duration = days(30),
        /// Backup codes per set.
        backup_code_count: u32 = 10,
    }
}
section! {
    /// `[email]`. `Debug` redacts the password in `smtp_url`.
    EmailConfig {
        /// Where mail goes.
        provider: EmailProvider = EmailProvider::Console,
        /// lettre SMTP URL (`smtp://…` or `smtps://…`) for the `smtp` provider.
        smtp_url: String = String::new(),
        /// The `From` header.
        from: String = "nauth <no-reply@localhost>".into(),
        /// The product named in every mail; empty: the display name of `from` (else `nauth`).
        product_name: String = String::new(),
        /// A directory whose templates replace the embedded ones of the same name
        /// (`en/verify_email.html`…); empty: the embedded templates only (docs/mails.md).
        templates_dir: String = String::new(),
        /// The language of a mail when neither the user's `locale` nor the request's
        /// `Accept-Language` names a shipped one.
        default_locale: Locale = Locale::En,
    }
}
section! {
    /// `[sms]`.
    #[derive(Debug)]
    SmsConfig {
        /// Where texts go.
        provider: SmsProvider = SmsProvider::Console,
        /// Endpoint of the `webhook` provider.
        webhook_url: String = String::new(),
        /// Text messages per user per hour (`429 RATE_LIMIT_SMS`).
        user_max_per_hour: u32 = 5,
        /// Text messages per client IP per hour (`429 RATE_LIMIT_SMS`).
        ip_max_per_hour: u32 = 20,
    }
}
section! {
    /// `[magic_link]`.
    #[derive(Debug)]
    MagicLinkConfig {
        /// Whether `POST /magic-link` and `GET /magic-link/verify` exist (`404` otherwise).
        enabled: bool = false,
        /// How long a mailed link works (once).
        #[serde(with = "duration_str")] ttl: Duration = mins(15),
        /// `/magic-link` requests per client IP per hour (`429 RATE_LIMIT_EMAIL` past it).
        ip_max_per_hour: u32 = 20,
    }
}
section! {
    /// `[passkeys]`: WebAuthn passkeys (docs/passkeys.md). User verification is always
    /// required (a PIN or biometric on the authenticator), so a passkey sign-in is
    /// multi-factor by itself.
    #[derive(Debug)]
    PasskeysConfig {
        /// Whether the `/passkeys/…` routes and `/challenge/passkey-options` exist (`404`
        /// otherwise); needs nauth-core's `passkeys` cargo feature.
        enabled: bool = false,
        /// The relying party id: a domain, equal to or a registrable suffix of the host of
        /// every origin (`example.com` for `https://app.example.com`). Empty: the host of
        /// `base_url`. Passkeys are bound to it: changing it orphans every stored passkey.
        rp_id: String = String::new(),
        /// The name authenticators show; empty: `email.product_name`, else `nauth`.
        rp_name: String = String::new(),
        /// The origins (`https://host[:port]`) pages may create and use passkeys from; `http`
        /// only for `localhost`. Empty: the origin of `base_url`.
        origins: Vec<String> = Vec::new(),
        /// How long a ceremony's challenge (registration or sign-in options) can be answered.
        #[serde(with = "duration_str")] challenge_ttl: Duration = mins(5),
        /// `POST /passkeys/login/options` per client IP per hour (`429 RATE_LIMIT_LOGIN`).
        ip_max_per_hour: u32 = 60,
    }
}
section! {
    /// `[api_keys]`.
    #[derive(Debug)]
    ApiKeysConfig {
        /// Scopes an API key may be granted.
        scopes: Vec<String> = vec!["read".into(), "write".into(), "admin".into()],
    }
}
section! {
    /// `[kv]`. `Debug` redacts the password in `redis_url`.
    KvConfig {
        /// Where counters live.
        backend: KvBackend = KvBackend::Database,
        /// Redis URL of the `redis` backend.
        redis_url: String = String::new(),
        /// How often expired rows (kv entries, challenges, verification tokens, sessions,
        /// trusted devices) are deleted in the background; zero disables the purge.
        #[serde(with = "duration_str")] purge_interval: Duration = mins(10),
    }
}
section! {
    /// `[metrics]`. `Debug` redacts the token.
    MetricsConfig {
        /// Serve `GET <mount>/metrics` (Prometheus text format); off by default.
        enabled: bool = false,
        /// When set, the scraper must send `Authorization: Bearer <token>`; empty: no check
        /// (keep the route private by other means).
        token: String = String::new(),
    }
}

section! {
    /// `[openapi]`: the machine-readable contract and the page to try it.
    #[derive(Debug)]
    OpenApiConfig {
        /// Serve `GET <mount>/openapi.json`, the OpenAPI 3.1 document of nauth's routes.
        enabled: bool = true,
        /// Serve the interactive API page (Swagger UI, from the crate, no CDN) at
        /// `GET <mount>/docs`; needs nauth-core's `api-docs` feature. Off by default.
        page: bool = false,
    }
}

fn yes() -> bool {
    true
}

/// `[social.<name>]`: one social login provider. `Debug` redacts `client_secret` and
/// `private_key`.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SocialProviderConfig {
    /// `oidc`, `google`, `microsoft`, `apple` or `github`.
    pub kind: SocialKind,
    /// The client id registered at the provider (Apple: the Services ID).
    #[serde(default)]
    pub client_id: String,
    /// The client secret (not for Apple, whose secret is a JWT signed with `private_key`).
    #[serde(default)]
    pub client_secret: String,
    /// `oidc`: the issuer; discovery at `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub issuer: String,
    /// `oidc`: the discovery document's URL, when not under the issuer.
    #[serde(default)]
    pub discovery_url: String,
    /// `microsoft`: the tenant (`common`, `organizations`, `consumers` or a tenant id/domain).
    #[serde(default)]
    pub tenant: String,
    /// `apple`: the team id.
    #[serde(default)]
    pub team_id: String,
    /// `apple`: the id of the Sign in with Apple key.
    #[serde(default)]
    pub key_id: String,
    /// `apple`: the key itself, PEM (`-----BEGIN PRIVATE KEY-----`, P-256).
    #[serde(default)]
    pub private_key: String,
    /// The scopes asked for; empty: the kind's default (`openid email profile`; Apple
    /// `openid email name`; GitHub `read:user user:email`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// When not empty, only emails of these domains sign in or sign up through this provider.
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// Whether a provider identity with a verified email no account holds creates an account.
    #[serde(default = "yes")]
    pub allow_signup: bool,
    /// The button's text on a login page (`GET <mount>/social/providers`); empty: from the kind.
    #[serde(default)]
    pub label: String,
    /// `github`: replaces `https://github.com/login/oauth/authorize` (GitHub Enterprise, tests).
    #[serde(default)]
    pub authorization_url: String,
    /// `github`: replaces `https://github.com/login/oauth/access_token`.
    #[serde(default)]
    pub token_url: String,
    /// `github`: replaces `https://api.github.com` (the `/user` and `/user/emails` calls).
    #[serde(default)]
    pub api_url: String,
}

impl fmt::Debug for SocialProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |s: &str| if s.is_empty() { "" } else { "[redacted]" };
        f.debug_struct("SocialProviderConfig")
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("client_secret", &redact(&self.client_secret))
            .field("issuer", &self.issuer)
            .field("discovery_url", &self.discovery_url)
            .field("tenant", &self.tenant)
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("private_key", &redact(&self.private_key))
            .field("scopes", &self.scopes)
            .field("allowed_email_domains", &self.allowed_email_domains)
            .field("allow_signup", &self.allow_signup)
            .field("label", &self.label)
            .field("authorization_url", &self.authorization_url)
            .field("token_url", &self.token_url)
            .field("api_url", &self.api_url)
            .finish()
    }
}

/// The DER bytes of a one-block PEM text (`-----BEGIN …-----`, base64, `-----END …-----`).
pub(crate) fn pem_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    (pem.contains("-----BEGIN") && !body.is_empty())
        .then(|| base64::engine::general_purpose::STANDARD.decode(body).ok())
        .flatten()
}

/// Names a provider cannot take: they are routes of their own under `<mount>/social/`.
pub(crate) const RESERVED_SOCIAL_NAMES: &[&str] = &["providers", "identities", "exchange"];

/// Whether `s` may name a provider: 1 to 32 of `a-z 0-9 _ -`, not a reserved route name.
pub(crate) fn is_social_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && !RESERVED_SOCIAL_NAMES.contains(&s)
}

/// Whether an `http://` URL's host is a loopback one (`localhost`, `127.0.0.0/8`, `[::1]`).
pub(crate) fn is_loopback_url(url: &str) -> bool {
    let Some(("http", auth, _)) = split_url(url) else {
        return false;
    };
    let host = match auth.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => auth.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An `https://` URL with a host, or an `http://` one on a loopback host.
pub(crate) fn is_provider_url(url: &str) -> bool {
    is_http_url(url) && !url.contains('#') && (url.starts_with("https://") || is_loopback_url(url))
}

/// Every problem of the `[social.*]` providers, each naming its key.
fn social_problems(cfg: &NAuthConfig) -> Vec<ConfigError> {
    let mut out = Vec::new();
    if !cfg.social.is_empty() && !cfg!(feature = "social") {
        out.push(err("social", "needs nauth-core's `social` cargo feature"));
        return out;
    }
    if !cfg.social.is_empty() && cfg.base_url.is_empty() {
        out.push(err(
            "base_url",
            "must be set when [social.*] providers are configured (it makes their redirect URI)",
        ));
    }
    let url_rule = "must be an https:// URL (http:// only for a loopback host)";
    for (name, p) in &cfg.social {
        let key = |k: &str| format!("social.{name}.{k}");
        if !is_social_name(name) {
            out.push(err(
                format!("social.{name}"),
                "a provider name is 1 to 32 of a-z 0-9 _ - and not providers, identities or exchange",
            ));
        }
        if p.client_id.trim().is_empty() {
            out.push(err(key("client_id"), "must not be empty"));
        }
        if p.kind != SocialKind::Apple && p.client_secret.is_empty() {
            out.push(err(key("client_secret"), "must not be empty"));
        }
        if p.kind == SocialKind::Apple && !p.client_secret.is_empty() {
            out.push(err(
                key("client_secret"),
                "must be empty for Apple: the secret is a JWT signed with private_key",
            ));
        }
        for (k, v) in [
            ("issuer", &p.issuer),
            ("discovery_url", &p.discovery_url),
            ("authorization_url", &p.authorization_url),
            ("token_url", &p.token_url),
            ("api_url", &p.api_url),
        ] {
            if !v.is_empty() && !is_provider_url(v) {
                out.push(err(key(k), url_rule));
            }
        }
        let only = |k: &str, kinds: &[SocialKind], set: bool| {
            (set && !kinds.contains(&p.kind)).then(|| {
                let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                err(
                    key(k),
                    format!("only applies to kind = {}", names.join(" or ")),
                )
            })
        };
        use SocialKind as K;
        out.extend(only("issuer", &[K::Oidc], !p.issuer.is_empty()));
        out.extend(only(
            "discovery_url",
            &[K::Oidc],
            !p.discovery_url.is_empty(),
        ));
        out.extend(only("tenant", &[K::Microsoft], !p.tenant.is_empty()));
        out.extend(only("team_id", &[K::Apple], !p.team_id.is_empty()));
        out.extend(only("key_id", &[K::Apple], !p.key_id.is_empty()));
        out.extend(only("private_key", &[K::Apple], !p.private_key.is_empty()));
        out.extend(only(
            "authorization_url",
            &[K::Github],
            !p.authorization_url.is_empty(),
        ));
        out.extend(only("token_url", &[K::Github], !p.token_url.is_empty()));
        out.extend(only("api_url", &[K::Github], !p.api_url.is_empty()));
        match p.kind {
            K::Oidc if p.issuer.is_empty() => {
                out.push(err(key("issuer"), "must be set for kind = \"oidc\""));
            }
            K::Microsoft
                if !p.tenant.is_empty()
                    && !p
                        .tenant
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') =>
            {
                out.push(err(
                    key("tenant"),
                    "must be a tenant id, a domain, common, organizations or consumers",
                ));
            }
            K::Apple => {
                if p.team_id.trim().is_empty() {
                    out.push(err(key("team_id"), "must be set for kind = \"apple\""));
                }
                if p.key_id.trim().is_empty() {
                    out.push(err(key("key_id"), "must be set for kind = \"apple\""));
                }
                let signs = pem_der(&p.private_key).is_some_and(|der| {
                    let key = jsonwebtoken::EncodingKey::from_ec_der(&der);
                    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
                    jsonwebtoken::encode(&header, &serde_json::json!({}), &key).is_ok()
                });
                if !signs {
                    out.push(err(
                        key("private_key"),
                        "must be the PEM text of the Sign in with Apple key (P-256, PKCS#8)",
                    ));
                }
            }
            _ => {}
        }
        if let Some(s) = p.scopes.iter().find(|s| {
            s.is_empty()
                || !s
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
        }) {
            out.push(err(key("scopes"), format!("{s:?} is not a scope")));
        }
        if let Some(d) = p.allowed_email_domains.iter().find(|d| {
            d.is_empty()
                || d.contains('@')
                || !d
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        }) {
            out.push(err(
                key("allowed_email_domains"),
                format!("{d:?} must be a lower-case domain such as example.com"),
            ));
        }
    }
    out
}

impl fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = if self.token.is_empty() {
            ""
        } else {
            "[redacted]"
        };
        f.debug_struct("MetricsConfig")
            .field("enabled", &self.enabled)
            .field("token", &token)
            .finish()
    }
}

/// `url` with any `user:password@` part replaced by `[redacted]@`, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    match split_url(url) {
        Some((scheme, auth, rest)) if auth.contains('@') => {
            let host = &auth[auth.rfind('@').map_or(0, |i| i + 1)..];
            format!("{scheme}://[redacted]@{host}{rest}")
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for NAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = if self.secret.is_empty() {
            ""
        } else {
            "[redacted]"
        };
        f.debug_struct("NAuthConfig")
            .field("database_url", &redact_url(&self.database_url))
            .field("base_url", &self.base_url)
            .field("mount_prefix", &self.mount_prefix)
            .field("secret", &secret)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("trusted_origins", &self.trusted_origins)
            .field("jwt", &self.jwt)
            .field("refresh", &self.refresh)
            .field("session", &self.session)
            .field("token_delivery", &self.token_delivery)
            .field("signup", &self.signup)
            .field("password", &self.password)
            .field("lockout", &self.lockout)
            .field("mfa", &self.mfa)
            .field("email", &self.email)
            .field("sms", &self.sms)
            .field("magic_link", &self.magic_link)
            .field("passkeys", &self.passkeys)
            .field("api_keys", &self.api_keys)
            .field("kv", &self.kv)
            .field("metrics", &self.metrics)
            .field("openapi", &self.openapi)
            .field("social", &self.social)
            .finish()
    }
}
impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("provider", &self.provider)
            .field("smtp_url", &redact_url(&self.smtp_url))
            .field("from", &self.from)
            .field("product_name", &self.product_name)
            .field("templates_dir", &self.templates_dir)
            .field("default_locale", &self.default_locale)
            .finish()
    }
}
impl fmt::Debug for KvConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvConfig")
            .field("backend", &self.backend)
            .field("redis_url", &redact_url(&self.redis_url))
            .field("purge_interval", &self.purge_interval)
            .finish()
    }
}

/// Parses `<integer><unit>`, unit one of `ms`, `s`, `m`, `h`, `d`, `w` (`"15m"`, `"7d"`, `"0d"`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected an integer and a unit, like \"15m\"");
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = match digits {
        "" => return Err(bad()),
        d => d
            .parse()
            .map_err(|_| format!("duration {s:?} is too large"))?,
    };
    let factor: u64 = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    let secs = n
        .checked_mul(factor)
        .ok_or_else(|| format!("duration {s:?} is too large"))?;
    Ok(Duration::from_secs(secs))
}

/// Formats a duration in the largest of `d`, `h`, `m`, `s`, `ms` that is exact (`"7d"`, `"0s"`),
/// so `parse_duration(&format_duration(d)) == d` for whole milliseconds.
pub fn format_duration(d: Duration) -> String {
    let (s, ms) = (d.as_secs(), d.as_millis());
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let unit = [("d", 86_400), ("h", 3_600), ("m", 60)]
        .into_iter()
        .find(|u| s != 0 && s % u.1 == 0);
    let (name, n) = unit.unwrap_or(("s", 1));
    format!("{}{name}", s / n)
}

mod duration_str {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use std::time::Duration;
    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::parse_duration(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// `Option<Duration>` as a duration string, `""` meaning `None`.
mod opt_duration_str {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use std::time::Duration;
    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.map(super::format_duration).unwrap_or_default())
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        match String::deserialize(d)?.as_str() {
            "" => Ok(None),
            s => super::parse_duration(s).map(Some).map_err(D::Error::custom),
        }
    }
}

/// Parses a CIDR (`10.0.0.0/8`) or a bare IP (taken as a /32 or /128).
fn parse_ip_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is neither a CIDR nor an IP address"))
}

/// `Vec<IpNet>` as a list of strings (CIDRs or bare IPs).
mod ip_nets {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    pub(super) fn serialize<S: Serializer>(v: &[ipnet::IpNet], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(ToString::to_string))
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<ipnet::IpNet>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.iter()
            .map(|s| super::parse_ip_net(s).map_err(D::Error::custom))
            .collect()
    }
}

/// The type of a key: drives env-value conversion and the check made before deserializing.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    /// A non-negative integer up to the given maximum.
    Int(u64),
    Dur,
    /// A duration or `""`.
    OptDur,
    Enum(&'static [&'static str]),
    StrList,
    NetList,
    EnumList(&'static [&'static str]),
}
use Kind::*;
const U32: Kind = Int(u32::MAX as u64);
const USIZE: Kind = Int(usize::MAX as u64);

/// Every known key as (section, key, kind); section `""` is the top level.
#[rustfmt::skip]
const KEYS: &[(&str, &str, Kind)] = &[
    ("", "database_url", Str), ("", "base_url", Str), ("", "mount_prefix", Str),
    ("", "secret", Str), ("", "trusted_proxies", NetList), ("", "trusted_origins", StrList),
    ("jwt", "algorithm", Enum(JwtAlgorithm::NAMES)), ("jwt", "access_ttl", Dur),
    ("jwt", "issuer", Str), ("jwt", "audience", Str), ("jwt", "private_key_file", Str),
    ("refresh", "ttl", Dur), ("refresh", "absolute_lifetime", Dur),
    ("refresh", "reuse_interval", Dur),
    ("session", "validation", Enum(SessionValidation::NAMES)),
    ("session", "cache_max_age", Dur),
    ("token_delivery", "mode", Enum(DeliveryMode::NAMES)),
    ("token_delivery", "cookie_prefix", Str), ("token_delivery", "cookie_secure", Bool),
    ("token_delivery", "cookie_same_site", Enum(SameSite::NAMES)),
    ("token_delivery", "cookie_domain", Str),
    ("signup", "enabled", Bool), ("signup", "verification", Enum(Verification::NAMES)),
    ("signup", "code_ttl", Dur), ("signup", "resend_delay", Dur),
    ("signup", "resend_max_per_hour", U32), ("signup", "verified_redirect", Str),
    ("signup", "ip_max_per_hour", U32),
    ("password", "min_length", USIZE), ("password", "max_length", USIZE),
    ("password", "require_uppercase", Bool), ("password", "require_lowercase", Bool),
    ("password", "require_digit", Bool), ("password", "require_symbol", Bool),
    ("password", "block_common", Bool), ("password", "history_count", U32),
    ("password", "expiry", OptDur), ("password", "argon2_memory_kib", U32),
    ("password", "argon2_iterations", U32), ("password", "argon2_parallelism", U32),
    ("password", "reset_code_ttl", Dur), ("password", "reset_url", Str),
    ("password", "reset_ip_max_per_hour", U32),
    ("lockout", "enabled", Bool), ("lockout", "max_attempts", U32),
    ("lockout", "ip_max_attempts", U32), ("lockout", "window", Dur), ("lockout", "duration", Dur),
    ("mfa", "enforcement", Enum(MfaEnforcement::NAMES)),
    ("mfa", "allowed_methods", EnumList(MfaMethod::NAMES)), ("mfa", "grace_period", Dur),
    ("mfa", "issuer", Str), ("mfa", "remember_devices", Enum(RememberDevices::NAMES)),
    ("mfa", "remember_device_ttl", Dur), ("mfa", "backup_code_count", U32),
    ("email", "provider", Enum(EmailProvider::NAMES)), ("email", "smtp_url", Str),
    ("email", "from", Str), ("email", "product_name", Str), ("email", "templates_dir", Str),
    ("email", "default_locale", Enum(Locale::NAMES)),
    ("sms", "provider", Enum(SmsProvider::NAMES)), ("sms", "webhook_url", Str),
    ("sms", "user_max_per_hour", U32), ("sms", "ip_max_per_hour", U32),
    ("magic_link", "enabled", Bool), ("magic_link", "ttl", Dur),
    ("magic_link", "ip_max_per_hour", U32),
    ("passkeys", "enabled", Bool), ("passkeys", "rp_id", Str), ("passkeys", "rp_name", Str),
    ("passkeys", "origins", StrList), ("passkeys", "challenge_ttl", Dur),
    ("passkeys", "ip_max_per_hour", U32),
    ("api_keys", "scopes", StrList),
    ("kv", "backend", Enum(KvBackend::NAMES)), ("kv", "redis_url", Str),
    ("kv", "purge_interval", Dur),
    ("metrics", "enabled", Bool), ("metrics", "token", Str),
    ("openapi", "enabled", Bool), ("openapi", "page", Bool),
];
#[rustfmt::skip]
const SECTIONS: &[&str] = &["jwt", "refresh", "session", "token_delivery", "signup", "password",
    "lockout", "mfa", "email", "sms", "magic_link", "passkeys", "api_keys", "kv", "metrics",
    "openapi"];

fn kind_of(section: &str, key: &str) -> Option<Kind> {
    KEYS.iter()
        .find(|e| e.0 == section && e.1 == key)
        .map(|e| e.2)
}

fn path(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_owned()
    } else {
        format!("{section}.{key}")
    }
}

fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    format!("expected one of {}", quoted.join(", "))
}

/// Checks one value against its kind, so that a bad value is reported under its full key.
fn check_value(key: &str, kind: Kind, v: &toml::Value) -> Result<(), ConfigError> {
    use toml::Value as V;
    let list = || err(key, "expected a list of strings");
    let strings = || -> Result<Vec<&str>, ConfigError> {
        v.as_array()
            .ok_or_else(list)?
            .iter()
            .map(|x| x.as_str().ok_or_else(list))
            .collect()
    };
    let duration = |s: &str| parse_duration(s).map(drop).map_err(|m| err(key, m));
    match (kind, v) {
        (Str, V::String(_)) | (Bool, V::Boolean(_)) => Ok(()),
        (Int(max), V::Integer(i)) if u64::try_from(*i).is_ok_and(|i| i <= max) => Ok(()),
        (Dur, V::String(s)) => duration(s),
        (OptDur, V::String(s)) if s.is_empty() => Ok(()),
        (OptDur, V::String(s)) => duration(s),
        (Enum(names), V::String(s)) if names.contains(&s.as_str()) => Ok(()),
        (StrList, _) => strings().map(drop),
        (NetList, _) => strings()?
            .into_iter()
            .try_for_each(|s| match parse_ip_net(s) {
                Ok(_) => Ok(()),
                Err(m) => Err(err(key, m)),
            }),
        (EnumList(names), _) => match strings()?.into_iter().find(|s| !names.contains(s)) {
            Some(s) => Err(err(key, format!("unknown value {s:?}; {}", one_of(names)))),
            None => Ok(()),
        },
        (Str, _) => Err(err(key, "expected a string")),
        (Bool, _) => Err(err(key, "expected true or false")),
        (Int(max), _) => Err(err(key, format!("expected an integer from 0 to {max}"))),
        (Dur | OptDur, _) => Err(err(key, "expected a duration string like \"15m\"")),
        (Enum(names), _) => Err(err(key, one_of(names))),
    }
}

/// Rejects unknown keys and ill-typed values, naming each by its section path.
/// Every unknown key and every value of the wrong kind in `table`.
fn table_problems(table: &toml::Table) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for (key, value) in table {
        if let Some(kind) = kind_of("", key) {
            out.extend(check_value(key, kind, value).err());
            continue;
        }
        if key == "social" {
            out.extend(social_table_problems(value));
            continue;
        }
        if !SECTIONS.contains(&key.as_str()) {
            out.push(err(key, "unknown key"));
            continue;
        }
        let Some(section) = value.as_table() else {
            out.push(err(key, "expected a table (section)"));
            continue;
        };
        for (k, v) in section {
            match kind_of(key, k) {
                Some(kind) => out.extend(check_value(&path(key, k), kind, v).err()),
                None => out.push(err(path(key, k), "unknown key")),
            }
        }
    }
    out
}

/// The keys of a `[social.<name>]` table and their kinds.
#[rustfmt::skip]
const SOCIAL_KEYS: &[(&str, Kind)] = &[
    ("kind", Enum(SocialKind::NAMES)), ("client_id", Str), ("client_secret", Str),
    ("issuer", Str), ("discovery_url", Str), ("tenant", Str), ("team_id", Str),
    ("key_id", Str), ("private_key", Str), ("scopes", StrList),
    ("allowed_email_domains", StrList), ("allow_signup", Bool), ("label", Str),
    ("authorization_url", Str), ("token_url", Str), ("api_url", Str),
];

fn social_kind_of(key: &str) -> Option<Kind> {
    SOCIAL_KEYS.iter().find(|e| e.0 == key).map(|e| e.1)
}

/// Unknown keys and ill-typed values of the `[social.<name>]` tables.
fn social_table_problems(value: &toml::Value) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let Some(providers) = value.as_table() else {
        return vec![err("social", "expected tables [social.<name>]")];
    };
    for (name, p) in providers {
        let Some(p) = p.as_table() else {
            out.push(err(format!("social.{name}"), "expected a table"));
            continue;
        };
        if !p.contains_key("kind") {
            let message = format!("is required; {}", one_of(SocialKind::NAMES));
            out.push(err(format!("social.{name}.kind"), message));
        }
        for (k, v) in p {
            let key = format!("social.{name}.{k}");
            match social_kind_of(k) {
                Some(kind) => out.extend(check_value(&key, kind, v).err()),
                None => out.push(err(key, "unknown key")),
            }
        }
    }
    out
}

/// Converts an environment value into the TOML value its key's kind calls for.
fn env_value(key: &str, name: &str, kind: Kind, raw: &str) -> Result<toml::Value, ConfigError> {
    use toml::Value as V;
    let bad = |what: &str| err(key, format!("{name}: expected {what}, got {raw:?}"));
    let t = raw.trim();
    Ok(match kind {
        Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => V::Boolean(true),
            "false" | "0" | "no" | "off" => V::Boolean(false),
            _ => return Err(bad("true or false")),
        },
        Int(_) => V::Integer(t.parse().map_err(|_| bad("an integer"))?),
        StrList | NetList | EnumList(_) if t.starts_with('[') => {
            let doc: toml::Table = format!("v = {t}").parse().map_err(|_| bad("a list"))?;
            doc.get("v").cloned().ok_or_else(|| bad("a list"))?
        }
        StrList | NetList | EnumList(_) => {
            let items = t.split(',').map(str::trim).filter(|s| !s.is_empty());
            V::Array(items.map(|s| V::String(s.into())).collect())
        }
        Dur | OptDur | Enum(_) => V::String(t.into()),
        Str => V::String(raw.into()),
    })
}

/// Applies `NAUTH_<KEY>` / `NAUTH_<SECTION>__<KEY>` overrides (names case-insensitive). An
/// unknown key of a known section is an error; other `NAUTH_*` names are ignored.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, raw) in env {
        let Some(prefix) = name.get(..6) else {
            continue;
        };
        if !prefix.eq_ignore_ascii_case("NAUTH_") {
            continue;
        }
        let rest = name[6..].to_ascii_lowercase();
        let (section, key) = rest.split_once("__").unwrap_or(("", rest.as_str()));
        if section == "social" {
            let Some((provider, field)) = key.split_once("__") else {
                return Err(err(
                    "social",
                    format!("{name}: use NAUTH_SOCIAL__<NAME>__<KEY>"),
                ));
            };
            let provider = provider.to_owned();
            let path = format!("social.{provider}.{field}");
            let kind = social_kind_of(field)
                .ok_or_else(|| err(path.clone(), format!("unknown key (from {name})")))?;
            let value = env_value(&path, &name, kind, &raw)?;
            table
                .entry("social")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| err("social", "expected tables [social.<name>]"))?
                .entry(provider)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| err(path.clone(), "expected a table"))?
                .insert(field.to_owned(), value);
            continue;
        }
        if section.is_empty() && SECTIONS.contains(&key) {
            return Err(err(
                key,
                format!("{name} names a section; set a key, as in {name}__<KEY>"),
            ));
        }
        let kind = match kind_of(section, key) {
            Some(kind) => kind,
            None if SECTIONS.contains(&section) => {
                return Err(err(
                    path(section, key),
                    format!("unknown key (from {name})"),
                ));
            }
            None => continue, // NAUTH_CONFIG, NAUTH_BIND, test variables, …
        };
        let value = env_value(&path(section, key), &name, kind, &raw)?;
        let target = match section {
            "" => &mut *table,
            _ => table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| err(section, "expected a table (section)"))?,
        };
        target.insert(key.to_owned(), value);
    }
    Ok(())
}

/// Parses and validates a TOML configuration, without environment overrides.
pub fn from_toml_str(s: &str) -> Result<NAuthConfig, ConfigError> {
    from_sources(Some(s), std::iter::empty())
}

/// Reads the TOML file at `path` (if given), applies `NAUTH_*` overrides from the process
/// environment, and validates.
pub fn load(path: Option<&std::path::Path>) -> Result<NAuthConfig, ConfigError> {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| err("<file>", format!("{}: {e}", p.display())))
    };
    let text = path.map(read).transpose()?;
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    from_sources(text.as_deref(), env)
}

/// The core of [`load`]: parse the TOML (if any), apply the env overrides, check keys and types,
/// deserialize, normalise (one trailing `/` off `base_url`; `trusted_origins` without trailing
/// `/`, lowercased) and validate.
pub fn from_sources(
    toml: Option<&str>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<NAuthConfig, ConfigError> {
    build(toml, env).map_err(|mut problems| problems.swap_remove(0))
}

/// Every problem [`from_sources`] would find, not only the first: each unknown key, value of
/// the wrong kind and broken rule, each naming its key (empty when the configuration is
/// good). A syntax error, a bad environment override or a value the types refuse ends the
/// check at that point. `nauth check-config` prints them.
pub fn problems(
    toml: Option<&str>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Vec<ConfigError> {
    build(toml, env).err().unwrap_or_default()
}

/// [`from_sources`] with every problem found (never an empty `Err`).
fn build(
    toml: Option<&str>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<NAuthConfig, Vec<ConfigError>> {
    // toml's Display quotes the offending line, which may hold the secret: report line + message.
    let syntax = |e: toml::de::Error| {
        let line = |at: usize| toml.map_or(0, |t| t[..at.min(t.len())].matches('\n').count() + 1);
        match e.span() {
            Some(span) => err(
                "<file>",
                format!("line {}: {}", line(span.start), e.message()),
            ),
            None => err("<file>", e.message()),
        }
    };
    let mut table: toml::Table = toml
        .map(str::parse)
        .transpose()
        .map_err(|e| vec![syntax(e)])?
        .unwrap_or_default();
    apply_env(&mut table, env).map_err(|e| vec![e])?;
    let problems = table_problems(&table);
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut cfg: NAuthConfig = toml::Value::Table(table)
        .try_into()
        .map_err(|e| vec![syntax(e)])?;
    if let Some(stripped) = cfg.base_url.strip_suffix('/') {
        cfg.base_url = stripped.to_owned();
    }
    for origin in &mut cfg.trusted_origins {
        *origin = origin.trim_end_matches('/').to_ascii_lowercase();
    }
    let problems = cfg.rule_problems();
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(problems)
    }
}

/// `scheme://authority[rest]` as (scheme, authority, rest).
fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, after) = url.split_once("://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    Some((scheme, &after[..end], &after[end..]))
}

fn is_http_url(url: &str) -> bool {
    let Some((scheme, auth, _)) = split_url(url) else {
        return false;
    };
    let host = auth.rsplit('@').next().unwrap_or_default();
    matches!(scheme, "http" | "https")
        && !host.is_empty()
        && !host.starts_with(':')
        && !url.contains(char::is_whitespace)
}

/// `scheme://host[:port]`, optionally with one trailing `/`.
fn is_origin(o: &str) -> bool {
    let Some((scheme, auth, rest)) = split_url(o) else {
        return false;
    };
    let (host_ok, port) = match auth.strip_prefix('[').and_then(|a| a.split_once(']')) {
        Some((ip, port)) => (ip.parse::<std::net::Ipv6Addr>().is_ok(), port),
        None => {
            let (host, port) = auth.split_at(auth.find(':').unwrap_or(auth.len()));
            let host_char = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
            (!host.is_empty() && host.chars().all(host_char), port)
        }
    };
    let scheme_char = |c: char| c.is_ascii_alphanumeric() || "+-.".contains(c);
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(scheme_char)
        && host_ok
        && (port.is_empty()
            || port
                .strip_prefix(':')
                .is_some_and(|p| p.parse::<u16>().is_ok()))
        && (rest.is_empty() || rest == "/")
}

/// Empty, an absolute http(s) URL, or a local path (`/x`, not the protocol-relative `//x`).
fn is_redirect(s: &str) -> bool {
    s.is_empty() || is_http_url(s) || (s.starts_with('/') && !s.starts_with("//"))
}

fn is_scope(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ":_-".contains(c);
    (1..=64).contains(&s.len()) && s.chars().all(ok)
}

impl NAuthConfig {
    /// Checks every rule of docs/api.md §9; the first failure names its key. [`from_sources`] calls
    /// it; call it yourself on a configuration built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.rule_problems().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every broken rule of docs/api.md §9, each naming its key.
    #[rustfmt::skip] // one rule a line reads better than rustfmt's vertical tuples
    fn rule_problems(&self) -> Vec<ConfigError> {
        let (p, t, m, mp) = (&self.password, &self.token_delivery, &self.mfa, &self.mount_prefix);
        let starts = |s: &str, prefixes: &[&str]| prefixes.iter().any(|p| s.starts_with(p));
        let starts_ci = |s: &str, prefixes: &[&str]| {
            prefixes.iter().any(|p| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p)))
        };
        let host = crate::delivery::is_host_prefix(&t.cookie_prefix);
        let only = |s: &str, more: &str| {
            s.chars().all(|c| c.is_ascii_alphanumeric() || more.contains(c))
        };
        let db = ["sqlite:", "postgres://", "postgresql://", "mysql://"];
        let memory = u64::from(p.argon2_memory_kib);
        let (positive, one) = ("must be greater than zero", "must be at least 1");
        let redirect = "must be empty, an http(s) URL, or a path starting with '/'";
        let rules: &[(bool, &str, &str)] = &[
            (starts(&self.database_url, &db), "database_url",
             "must start with sqlite:, postgres://, postgresql:// or mysql://"),
            (self.base_url.is_empty() || is_http_url(&self.base_url), "base_url",
             "must be empty or an http(s) URL with a host"),
            (mp.starts_with('/') && !mp.ends_with('/') && !mp.contains("//") && only(mp, "/_-"),
             "mount_prefix", "must start with '/', not end with '/', and use only A-Z a-z 0-9 /_-"),
            (self.secret.len() >= 32, "secret",
             "must be at least 32 bytes; generate one with `openssl rand -base64 48`"),
            (self.jwt.algorithm != JwtAlgorithm::Hs256 || self.jwt.private_key_file.is_empty(),
             "jwt.private_key_file", "must be empty when jwt.algorithm = \"HS256\""),
            (!self.jwt.access_ttl.is_zero(), "jwt.access_ttl", positive),
            (!self.jwt.issuer.is_empty(), "jwt.issuer", "must not be empty"),
            (!self.jwt.audience.is_empty(), "jwt.audience", "must not be empty"),
            (!self.refresh.ttl.is_zero(), "refresh.ttl", positive),
            (self.refresh.absolute_lifetime >= self.refresh.ttl, "refresh.absolute_lifetime",
             "must be at least refresh.ttl"),
            (t.cookie_prefix.len() <= 32 && only(&t.cookie_prefix, "_-"),
             "token_delivery.cookie_prefix", "must be at most 32 of A-Z a-z 0-9 _-"),
            // Browsers silently drop prefixed cookies whose attributes break the prefix's rule.
            (!starts_ci(&t.cookie_prefix, &["__Http-", "__Host-Http-"]),
             "token_delivery.cookie_prefix",
             "must not be __Http- or __Host-Http-: the CSRF cookie is read by scripts, so it cannot be HttpOnly"),
            (!host || t.cookie_domain.is_empty(), "token_delivery.cookie_domain",
             "must be empty when token_delivery.cookie_prefix is __Host- (a __Host- cookie has no Domain)"),
            (t.cookie_secure || !(host || crate::delivery::is_secure_prefix(&t.cookie_prefix)),
             "token_delivery.cookie_secure",
             "must be true when token_delivery.cookie_prefix is __Host- or __Secure- (browsers drop such cookies without Secure)"),
            (!self.signup.code_ttl.is_zero(), "signup.code_ttl", positive),
            (self.signup.resend_max_per_hour >= 1, "signup.resend_max_per_hour", one),
            (self.signup.ip_max_per_hour >= 1, "signup.ip_max_per_hour", one),
            (self.sms.user_max_per_hour >= 1, "sms.user_max_per_hour", one),
            (self.sms.ip_max_per_hour >= 1, "sms.ip_max_per_hour", one),
            (is_redirect(&self.signup.verified_redirect), "signup.verified_redirect", redirect),
            (p.min_length >= 1, "password.min_length", one),
            (p.max_length >= p.min_length, "password.max_length",
             "must be at least password.min_length"),
            (p.max_length <= 1024, "password.max_length", "must be at most 1024"),
            (p.expiry != Some(Duration::ZERO), "password.expiry",
             "must be greater than zero, or \"\" for never"),
            ((1..=16).contains(&p.argon2_parallelism), "password.argon2_parallelism",
             "must be from 1 to 16"),
            (p.argon2_iterations >= 1, "password.argon2_iterations", one),
            (memory >= 8 * u64::from(p.argon2_parallelism) && memory <= 4 * 1024 * 1024,
             "password.argon2_memory_kib",
             "must be from 8 × argon2_parallelism to 4194304 (4 GiB)"),
            (!p.reset_code_ttl.is_zero(), "password.reset_code_ttl", positive),
            (is_redirect(&p.reset_url), "password.reset_url", redirect),
            (self.lockout.max_attempts >= 1, "lockout.max_attempts", one),
            (self.lockout.ip_max_attempts >= 1, "lockout.ip_max_attempts", one),
            (!self.lockout.window.is_zero(), "lockout.window", positive),
            (!self.lockout.duration.is_zero(), "lockout.duration", positive),
            (m.enforcement != MfaEnforcement::Required || !m.allowed_methods.is_empty(),
             "mfa.allowed_methods", "must not be empty when mfa.enforcement = \"required\""),
            (!m.remember_device_ttl.is_zero(), "mfa.remember_device_ttl", positive),
            ((1..=50).contains(&m.backup_code_count), "mfa.backup_code_count",
             "must be from 1 to 50"),
            (self.email.provider != EmailProvider::Smtp
                || starts(&self.email.smtp_url, &["smtp://", "smtps://"]),
             "email.smtp_url", "must start with smtp:// or smtps:// if email.provider = \"smtp\""),
            (!self.email.from.trim().is_empty(), "email.from", "must not be empty"),
            (self.email.product_name.chars().count() <= 100
                && !self.email.product_name.chars().any(char::is_control),
             "email.product_name", "must be at most 100 characters, without control characters"),
            (self.sms.provider != SmsProvider::Webhook || is_http_url(&self.sms.webhook_url),
             "sms.webhook_url", "must be an http(s) URL when sms.provider = \"webhook\""),
            (!self.api_keys.scopes.is_empty(), "api_keys.scopes", "must not be empty"),
            (self.kv.backend != KvBackend::Redis
                || starts(&self.kv.redis_url, &["redis://", "rediss://"]),
             "kv.redis_url", "must start with redis:// or rediss:// when kv.backend = \"redis\""),
            (!self.openapi.page || cfg!(feature = "api-docs"), "openapi.page",
             "needs nauth-core's `api-docs` cargo feature (it embeds the page's scripts)"),
        ];
        let mut out: Vec<ConfigError> =
            rules.iter().filter(|r| !r.0).map(|&(_, key, message)| err(key, message)).collect();
        // The key file is read once the rules above hold for it.
        if out.iter().all(|e| e.key != "jwt.private_key_file") {
            out.extend(crate::signing_keys::key_file(self).err());
        }
        if let Some(o) = self.trusted_origins.iter().find(|o| !is_origin(o)) {
            let message = format!("{o:?} is not an origin like https://example.com:8443 (no path)");
            out.push(err("trusted_origins", message));
        }
        // Templates are compiled and tried once here, so a broken override stops the start.
        out.extend(crate::mail::Templates::load(&self.email).err());
        if self.passkeys.enabled {
            out.extend(self.passkey_problems());
        }
        if let Some(s) = self.api_keys.scopes.iter().find(|s| !is_scope(s)) {
            out.push(err("api_keys.scopes", format!("{s:?} must be 1 to 64 of a-z 0-9 :_-")));
        }
        out.extend(social_problems(self));
        out
    }
}

impl NAuthConfig {
    /// The relying party id and the allowed origins of `[passkeys]`, with their defaults from
    /// `base_url` applied (origins lower-cased, without a trailing `/`).
    pub fn passkey_relying_party(&self) -> (String, Vec<String>) {
        let pk = &self.passkeys;
        let base_origin = split_url(&self.base_url)
            .map(|(scheme, auth, _)| format!("{scheme}://{auth}").to_ascii_lowercase());
        let origins: Vec<String> = if pk.origins.is_empty() {
            base_origin.into_iter().collect()
        } else {
            pk.origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect()
        };
        let rp_id = if pk.rp_id.is_empty() {
            origins
                .first()
                .and_then(|o| origin_host(o))
                .unwrap_or_default()
        } else {
            pk.rp_id.to_ascii_lowercase()
        };
        (rp_id, origins)
    }

    /// The rules of `[passkeys]` when it is enabled.
    fn passkey_problems(&self) -> Vec<ConfigError> {
        let mut out = Vec::new();
        if !cfg!(feature = "passkeys") {
            out.push(err(
                "passkeys.enabled",
                "needs nauth-core's `passkeys` cargo feature (forwarded by the adapters)",
            ));
            return out;
        }
        let (rp_id, origins) = self.passkey_relying_party();
        if origins.is_empty() {
            out.push(err(
                "passkeys.origins",
                "must not be empty when base_url is empty",
            ));
            return out;
        }
        let domain_char = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
        if rp_id.is_empty()
            || !rp_id.chars().all(domain_char)
            || rp_id.starts_with('.')
            || rp_id.ends_with('.')
        {
            out.push(err(
                "passkeys.rp_id",
                format!("{rp_id:?} is not a domain name"),
            ));
            return out;
        }
        for o in &origins {
            let Some(host) = origin_host(o).filter(|_| is_origin(o)) else {
                out.push(err(
                    "passkeys.origins",
                    format!("{o:?} is not an origin like https://example.com:8443 (no path)"),
                ));
                continue;
            };
            let local = host == "localhost" || host.ends_with(".localhost");
            if !(o.starts_with("https://") || (o.starts_with("http://") && local)) {
                out.push(err(
                    "passkeys.origins",
                    format!("{o:?} must be https (http only for localhost)"),
                ));
            }
            if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
                out.push(err(
                    "passkeys.rp_id",
                    format!("{rp_id:?} must be the host of {o:?} or a registrable suffix of it"),
                ));
            }
        }
        if !rp_id.contains('.') && rp_id != "localhost" {
            out.push(err(
                "passkeys.rp_id",
                format!("{rp_id:?} is a public suffix, not a registrable domain"),
            ));
        }
        if self.passkeys.challenge_ttl.is_zero() {
            out.push(err("passkeys.challenge_ttl", "must be greater than zero"));
        }
        if self.passkeys.ip_max_per_hour == 0 {
            out.push(err("passkeys.ip_max_per_hour", "must be at least 1"));
        }
        if self.passkeys.rp_name.chars().count() > 100 {
            out.push(err("passkeys.rp_name", "must be at most 100 characters"));
        }
        out
    }
}

/// The host of an origin (`scheme://host[:port]`), lower-cased, without the port.
fn origin_host(origin: &str) -> Option<String> {
    let (_, auth, _) = split_url(origin)?;
    let host = match auth.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => auth.split(':').next().unwrap_or_default(),
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Merges `over` into `base`, section by section (values of `over` win).
fn merge_tables(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Like [`from_sources`], with a layer of defaults underneath the file: `base` (TOML) gives the
/// value of every key that neither the file nor the environment sets. The example apps use it
/// for their development defaults.
pub fn from_layers(
    base: &str,
    toml: Option<&str>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<NAuthConfig, ConfigError> {
    let parse = |s: &str, what: &str| {
        s.parse::<toml::Table>()
            .map_err(|e| err(what, e.message().to_string()))
    };
    let mut table = parse(base, "<defaults>")?;
    if let Some(file) = toml {
        // Syntax errors in the file are reported by from_sources with their line numbers.
        if file.parse::<toml::Table>().is_err() {
            return from_sources(Some(file), env);
        }
        merge_tables(&mut table, parse(file, "<file>")?);
    }
    let merged = toml::to_string(&table).map_err(|e| err("<defaults>", e.to_string()))?;
    from_sources(Some(&merged), env)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    /// Every key of docs/api.md §9 with its documented default (short sections as inline tables).
    const SPEC: &str = r#"
database_url = "sqlite://nauth.db?mode=rwc"
base_url = ""
mount_prefix = "/auth"
secret = "0123456789abcdef0123456789abcdef"
trusted_proxies = []
trusted_origins = []
jwt = { algorithm = "HS256", access_ttl = "15m", issuer = "nauth", audience = "nauth", private_key_file = "" }
refresh = { ttl = "7d", absolute_lifetime = "30d", reuse_interval = "10s" }
session = { validation = "database", cache_max_age = "0s" }
email = { provider = "console", smtp_url = "", from = "nauth <no-reply@localhost>", product_name = "", templates_dir = "", default_locale = "en" }
sms = { provider = "console", webhook_url = "", user_max_per_hour = 5, ip_max_per_hour = 20 }
magic_link = { enabled = false, ttl = "15m", ip_max_per_hour = 20 }
passkeys = { enabled = false, rp_id = "", rp_name = "", origins = [], challenge_ttl = "5m", ip_max_per_hour = 60 }
api_keys = { scopes = ["read", "write", "admin"] }
kv = { backend = "database", redis_url = "", purge_interval = "10m" }
metrics = { enabled = false, token = "" }
openapi = { enabled = true, page = false }
[token_delivery]
mode = "json"
cookie_prefix = "nauth_"
cookie_secure = true
cookie_same_site = "strict"
cookie_domain = ""
[signup]
enabled = true
verification = "email"
code_ttl = "1h"
resend_delay = "60s"
resend_max_per_hour = 3
ip_max_per_hour = 30
verified_redirect = ""
[password]
min_length = 8
max_length = 128
require_uppercase = false
require_lowercase = false
require_digit = false
require_symbol = false
block_common = true
history_count = 0
expiry = ""
argon2_memory_kib = 19456
argon2_iterations = 2
argon2_parallelism = 1
reset_code_ttl = "15m"
reset_url = ""
reset_ip_max_per_hour = 20
[lockout]
enabled = true
max_attempts = 5
ip_max_attempts = 20
window = "15m"
duration = "15m"
[mfa]
enforcement = "optional"
allowed_methods = ["totp", "email", "sms"]
grace_period = "0d"
issuer = "nauth"
remember_devices = "never"
remember_device_ttl = "30d"
backup_code_count = 10
"#;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
    fn ok(extra: &str) -> NAuthConfig {
        from_toml_str(&format!("secret = \"{SECRET}\"\n{extra}")).expect("valid config")
    }
    /// The key named by the error for `extra` (after the secret) plus `env`.
    fn bad_key(extra: &str, env: &[(&str, &str)]) -> String {
        let toml = format!("secret = \"{SECRET}\"\n{extra}");
        from_sources(Some(&toml), vars(env)).expect_err(extra).key
    }
    fn defaults() -> NAuthConfig {
        NAuthConfig {
            secret: SECRET.into(),
            ..NAuthConfig::default()
        }
    }

    #[test]
    fn defaults_equal_the_spec() {
        assert_eq!(from_toml_str(SPEC).expect("spec loads"), defaults());
        assert_eq!(ok(""), defaults());
        let table: toml::Table = SPEC.parse().expect("toml");
        let n: usize = table
            .values()
            .map(|v| v.as_table().map_or(1, toml::Table::len))
            .sum();
        assert_eq!(
            n,
            KEYS.len(),
            "the key table covers exactly the spec's keys"
        );
        let d = NAuthConfig::default();
        assert_eq!((d.jwt.access_ttl, d.refresh.ttl), (mins(15), days(7)));
        assert_eq!(d.validate().expect_err("no secret").key, "secret");
    }

    #[test]
    fn full_toml_round_trips() {
        let custom = SPEC
            .replace("base_url = \"\"", "base_url = \"https://app.example.com/\"")
            .replace(
                "proxies = []",
                "proxies = [\"10.0.0.0/8\", \"192.168.1.7\", \"::1\"]",
            )
            .replace(
                "origins = []",
                "origins = [\"https://App.example.com/\", \"http://[::1]:80\"]",
            )
            .replace("expiry = \"\"", "expiry = \"90d\"")
            .replace("\"json\"", "\"hybrid\"")
            .replace("\"never\"", "\"user_opt_in\"")
            .replace("\"10s\"", "\"0s\"")
            .replace(
                "backend = \"database\", redis_url = \"\"",
                "backend = \"redis\", redis_url = \"redis://:pw@r:6379\"",
            )
            .replace("\"15m\", issuer", "\"1500ms\", issuer");
        let cfg = from_toml_str(&custom).expect("custom config loads");
        assert_eq!(cfg.base_url, "https://app.example.com");
        assert_eq!(
            cfg.trusted_origins,
            ["https://app.example.com", "http://[::1]:80"]
        );
        let proxies: Vec<String> = cfg
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]);
        assert_eq!(cfg.password.expiry, Some(days(90)));
        assert_eq!(cfg.token_delivery.mode, DeliveryMode::Hybrid);
        assert_eq!(cfg.mfa.remember_devices, RememberDevices::UserOptIn);
        assert_eq!(cfg.refresh.reuse_interval, Duration::ZERO);
        assert_eq!(cfg.jwt.access_ttl, Duration::from_millis(1500));
        assert_eq!(cfg.kv.backend, KvBackend::Redis);
        for c in [cfg, defaults()] {
            let text = toml::to_string(&c).expect("serializes");
            assert_eq!(from_toml_str(&text).expect("reloads"), c, "{text}");
        }
        let text = toml::to_string(&defaults()).expect("serializes");
        assert!(
            text.contains("expiry = \"\"") && text.contains("ttl = \"7d\""),
            "{text}"
        );
    }

    #[test]
    fn env_overrides() {
        let env = vars(&[
            ("NAUTH_SECRET", SECRET),
            ("NAUTH_LOCKOUT__MAX_ATTEMPTS", "3"),
            ("NAUTH_DATABASE_URL", "postgres://u:p@db/nauth"),
            ("nauth_token_delivery__mode", "cookies"),
            ("NAUTH_TOKEN_DELIVERY__COOKIE_SECURE", "false"),
            ("NAUTH_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
            ("NAUTH_API_KEYS__SCOPES", "[\"read\", \"billing:write\"]"),
            ("NAUTH_MFA__ALLOWED_METHODS", "totp,sms"),
            ("NAUTH_JWT__ACCESS_TTL", "5m"),
            ("NAUTH_PASSWORD__EXPIRY", ""),
            ("NAUTH_CONFIG", "/etc/nauth.toml"),
            ("NAUTH_BIND", "0.0.0.0:3000"),
            ("NAUTH_TEST_POSTGRES_URL", "postgres://x"),
            ("NAUTH_OTHER__THING", "x"),
            ("PATH", "/bin"),
        ]);
        let file =
            "secret = \"short\"\npassword = { expiry = \"9d\" }\n[lockout]\nmax_attempts = 9";
        let cfg = from_sources(Some(file), env).expect("overrides apply");
        assert_eq!(cfg.secret, SECRET);
        assert_eq!(cfg.lockout.max_attempts, 3);
        assert_eq!(cfg.database_url, "postgres://u:p@db/nauth");
        assert_eq!(cfg.token_delivery.mode, DeliveryMode::Cookies);
        assert!(!cfg.token_delivery.cookie_secure);
        assert_eq!(cfg.trusted_proxies.len(), 2);
        assert_eq!(cfg.api_keys.scopes, ["read", "billing:write"]);
        assert_eq!(cfg.mfa.allowed_methods, [MfaMethod::Totp, MfaMethod::Sms]);
        assert_eq!(cfg.jwt.access_ttl, mins(5));
        assert_eq!(cfg.password.expiry, None);
        let env = vars(&[
            ("NAUTH_SECRET", SECRET),
            ("NAUTH_MOUNT_PREFIX", "/api/auth"),
        ]);
        assert_eq!(
            from_sources(None, env).expect("no file").mount_prefix,
            "/api/auth"
        );
    }

    #[test]
    fn unknown_and_ill_typed_keys_are_named() {
        assert_eq!(bad_key("[jwt]\nfoo = 1", &[]), "jwt.foo");
        assert_eq!(bad_key("colour = 1", &[]), "colour");
        assert_eq!(bad_key("jwt = 3", &[]), "jwt");
        assert_eq!(bad_key("jwt = { foo = 1 }", &[]), "jwt.foo");
        assert_eq!(
            bad_key("", &[("NAUTH_LOCKOUT__MAX_ATEMPTS", "3")]),
            "lockout.max_atempts"
        );
        assert_eq!(
            bad_key("", &[("NAUTH_LOCKOUT__MAX_ATTEMPTS", "many")]),
            "lockout.max_attempts"
        );
        assert_eq!(
            bad_key("", &[("NAUTH_SIGNUP__ENABLED", "maybe")]),
            "signup.enabled"
        );
        assert_eq!(bad_key("", &[("NAUTH_JWT", "x")]), "jwt");
        assert_eq!(
            bad_key("[lockout]\nmax_attempts = -1", &[]),
            "lockout.max_attempts"
        );
        assert_eq!(
            bad_key("[password]\nhistory_count = 5000000000", &[]),
            "password.history_count"
        );
        assert_eq!(bad_key("[kv]\nbackend = \"etcd\"", &[]), "kv.backend");
        assert_eq!(
            bad_key("[mfa]\nallowed_methods = [\"fax\"]", &[]),
            "mfa.allowed_methods"
        );
        assert_eq!(
            bad_key("trusted_proxies = [\"nope\"]", &[]),
            "trusted_proxies"
        );
        assert_eq!(bad_key("[jwt]\naccess_ttl = \"15\"", &[]), "jwt.access_ttl");
        assert_eq!(bad_key("[jwt]\naccess_ttl = 15", &[]), "jwt.access_ttl");
        assert_eq!(bad_key("", &[("NAUTH_REFRESH__TTL", "-1d")]), "refresh.ttl");
        let e = from_toml_str(&format!("a = 1\nsecret = \"{SECRET}\" x")).expect_err("syntax");
        assert_eq!(e.key, "<file>");
        assert!(
            e.message.starts_with("line 2: ") && !e.message.contains(SECRET),
            "{e}"
        );
        let e = from_toml_str("secret = \"too short\"").expect_err("short secret");
        assert_eq!(e.key, "secret");
        assert!(
            e.to_string()
                .starts_with("invalid configuration `secret`: must be at least 32")
        );
        let e = load(Some(std::path::Path::new("/nonexistent/nauth.toml"))).expect_err("missing");
        assert!(e.message.contains("/nonexistent/nauth.toml"), "{e}");
    }

    #[test]
    fn validation_rules() {
        let cases = [
            ("[jwt]\naccess_ttl = \"0m\"", "jwt.access_ttl"),
            ("[jwt]\nalgorithm = \"RS512\"", "jwt.algorithm"),
            (
                "[jwt]\nprivate_key_file = \"/k.pem\"",
                "jwt.private_key_file",
            ),
            ("[jwt]\nissuer = \"\"", "jwt.issuer"),
            ("[refresh]\nttl = \"40d\"", "refresh.absolute_lifetime"),
            ("mount_prefix = \"/auth/\"", "mount_prefix"),
            ("mount_prefix = \"auth\"", "mount_prefix"),
            ("mount_prefix = \"/a uth\"", "mount_prefix"),
            ("base_url = \"ftp://x\"", "base_url"),
            ("base_url = \"https://\"", "base_url"),
            (
                "trusted_origins = [\"https://x.com/app\"]",
                "trusted_origins",
            ),
            ("[password]\nmax_length = 4", "password.max_length"),
            ("[password]\nmax_length = 2000", "password.max_length"),
            (
                "[password]\nargon2_parallelism = 17",
                "password.argon2_parallelism",
            ),
            (
                "[password]\nargon2_memory_kib = 4",
                "password.argon2_memory_kib",
            ),
            ("[password]\nexpiry = \"0d\"", "password.expiry"),
            (
                "[mfa]\nenforcement = \"required\"\nallowed_methods = []",
                "mfa.allowed_methods",
            ),
            ("[mfa]\nbackup_code_count = 51", "mfa.backup_code_count"),
            ("[email]\nprovider = \"smtp\"", "email.smtp_url"),
            (
                "[sms]\nprovider = \"webhook\"\nwebhook_url = \"x\"",
                "sms.webhook_url",
            ),
            (
                "[kv]\nbackend = \"redis\"\nredis_url = \"http://r\"",
                "kv.redis_url",
            ),
            ("[api_keys]\nscopes = [\"Read\"]", "api_keys.scopes"),
            ("[api_keys]\nscopes = []", "api_keys.scopes"),
            (
                "[token_delivery]\ncookie_prefix = \"a b\"",
                "token_delivery.cookie_prefix",
            ),
            (
                "[signup]\nverified_redirect = \"//evil.com\"",
                "signup.verified_redirect",
            ),
            (
                "[signup]\nresend_max_per_hour = 0",
                "signup.resend_max_per_hour",
            ),
            ("[lockout]\nmax_attempts = 0", "lockout.max_attempts"),
        ];
        for (extra, key) in cases {
            assert_eq!(bad_key(extra, &[]), key, "{extra}");
        }
        ok("[mfa]\nenforcement = \"off\"\nallowed_methods = []");
        ok("[signup]\nverified_redirect = \"/welcome\"\n[password]\nreset_url = \"https://a.b/r\"");
        ok("[email]\nprovider = \"smtp\"\nsmtp_url = \"smtps://u:p@mail:465\"");
        ok("[sms]\nprovider = \"webhook\"\nwebhook_url = \"https://hooks.example/sms\"");
        ok("trusted_origins = [\"http://[::1]\", \"https://a.b:8443\", \"http://localhost\"]");
        ok("database_url = \"sqlite::memory:\"\n[refresh]\nreuse_interval = \"0s\"");
    }

    #[test]
    fn durations() {
        let cases = [
            ("0d", 0),
            ("10s", 10),
            ("15m", 900),
            ("1h", 3600),
            ("7d", 604_800),
        ];
        for (s, secs) in cases.into_iter().chain([("2w", 1_209_600)]) {
            assert_eq!(parse_duration(s), Ok(Duration::from_secs(secs)), "{s}");
        }
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        let bad = [
            "", "15", "m", "-5m", "+5m", "1.5h", "5 m", "5y", "5mm", "1h30m",
        ];
        for s in bad
            .into_iter()
            .chain(["99999999999999999999s", "99999999999999999w"])
        {
            assert!(parse_duration(s).is_err(), "{s}");
        }
        for s in ["0s", "10s", "15m", "1h", "7d", "30d", "250ms", "90s", "14d"] {
            assert_eq!(format_duration(parse_duration(s).expect("parses")), s);
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let mut cfg = ok("database_url = \"postgres://app:dbpass@db/n\"");
        cfg.email.smtp_url = "smtps://user:mailpass@mail:465".into();
        cfg.kv.redis_url = "redis://:redispass@r:6379/0".into();
        let dbg = format!("{cfg:?} {cfg:#?}");
        for s in [SECRET, "dbpass", "mailpass", "redispass"] {
            assert!(!dbg.contains(s), "{s} leaked: {dbg}");
        }
        assert!(dbg.contains("secret: \"[redacted]\""), "{dbg}");
        assert!(dbg.contains("smtps://[redacted]@mail:465"), "{dbg}");
        assert_eq!(redact_url("smtp://127.0.0.1:2525"), "smtp://127.0.0.1:2525");
    }

    #[test]
    fn cookie_prefix_rules() {
        let toml = |prefix: &str, more: &str| {
            format!("[token_delivery]\ncookie_prefix = \"{prefix}\"\n{more}")
        };
        let domain = "cookie_domain = \"example.com\"";
        let insecure = "cookie_secure = false";
        let bad = [
            ("__Host-", domain, "token_delivery.cookie_domain"),
            ("__host-", domain, "token_delivery.cookie_domain"),
            ("__Host-", insecure, "token_delivery.cookie_secure"),
            ("__Secure-", insecure, "token_delivery.cookie_secure"),
            ("__SECURE-app_", insecure, "token_delivery.cookie_secure"),
            ("__Http-", "", "token_delivery.cookie_prefix"),
            ("__Host-Http-", "", "token_delivery.cookie_prefix"),
            ("__Host;", "", "token_delivery.cookie_prefix"),
            ("a=b", "", "token_delivery.cookie_prefix"),
            ("café_", "", "token_delivery.cookie_prefix"),
        ];
        for (prefix, more, key) in bad {
            assert_eq!(bad_key(&toml(prefix, more), &[]), key, "{prefix} {more}");
        }
        let both = format!("{insecure}\n{domain}");
        let good = [
            ("__Host-", ""),
            ("__Host-app_", "mode = \"cookies\""),
            ("__Secure-", domain),
            ("app_", &both),
            ("", ""),
        ];
        for (prefix, more) in good {
            ok(&toml(prefix, more));
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let keys = |toml: &str, env: &[(&str, &str)]| -> Vec<String> {
            let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
            problems(Some(toml), env)
                .into_iter()
                .map(|e| e.key)
                .collect()
        };
        // Unknown keys and wrong kinds, all of them.
        assert_eq!(
            keys(
                "foo = 1\n[jwt]\nbar = 2\naccess_ttl = 5\n[lockout]\nmax_attempts = \"x\"",
                &[]
            ),
            ["foo", "jwt.access_ttl", "jwt.bar", "lockout.max_attempts"]
        );
        // Broken rules, all of them.
        let toml = "secret = \"short\"\n[lockout]\nmax_attempts = 0\n[refresh]\nttl = \"0s\"";
        assert_eq!(
            keys(toml, &[]),
            ["secret", "refresh.ttl", "lockout.max_attempts"]
        );
        let good = format!("secret = \"{SECRET}\"");
        assert!(keys(&good, &[]).is_empty());
        assert_eq!(
            keys(&good, &[("NAUTH_LOCKOUT__NOPE", "1")]),
            ["lockout.nope"]
        );
        assert_eq!(keys("a = [", &[]), ["<file>"]);
    }

    #[test]
    fn social_providers_are_checked_at_start() {
        let base = "base_url = \"https://app.example.com\"\n";
        let google =
            "[social.google]\nkind = \"google\"\nclient_id = \"id\"\nclient_secret = \"s\"\n";
        if cfg!(feature = "social") {
            let cfg = ok(&format!("{base}{google}"));
            assert!(cfg.social["google"].allow_signup);
            let dbg = format!("{cfg:?}");
            assert!(dbg.contains("client_secret: \"[redacted]\""), "{dbg}");
            // From the environment.
            let env = [
                ("NAUTH_SOCIAL__CORP__KIND", "oidc"),
                ("NAUTH_SOCIAL__CORP__ISSUER", "http://127.0.0.1:9000"),
                ("NAUTH_SOCIAL__CORP__CLIENT_ID", "c"),
                ("NAUTH_SOCIAL__CORP__CLIENT_SECRET", "s"),
                (
                    "NAUTH_SOCIAL__CORP__ALLOWED_EMAIL_DOMAINS",
                    "example.com,corp.example",
                ),
            ];
            let toml = format!("secret = \"{SECRET}\"\n{base}");
            let cfg = from_sources(Some(&toml), vars(&env)).expect("from the environment");
            assert_eq!(cfg.social["corp"].allowed_email_domains.len(), 2);
            for (extra, key) in [
                (google.to_string(), "base_url"),
                (
                    format!("{base}[social.google]\nclient_id = \"id\"\n"),
                    "social.google.kind",
                ),
                (
                    format!("{base}[social.google]\nkind = \"google\"\nclient_id = \"id\"\n"),
                    "social.google.client_secret",
                ),
                (
                    format!(
                        "{base}[social.x]\nkind = \"oidc\"\nclient_id = \"i\"\nclient_secret = \"s\"\n"
                    ),
                    "social.x.issuer",
                ),
                (
                    format!(
                        "{base}[social.x]\nkind = \"oidc\"\nissuer = \"http://idp.example.com\"\nclient_id = \"i\"\nclient_secret = \"s\"\n"
                    ),
                    "social.x.issuer",
                ),
                (
                    format!(
                        "{base}[social.providers]\nkind = \"google\"\nclient_id = \"i\"\nclient_secret = \"s\"\n"
                    ),
                    "social.providers",
                ),
                (
                    format!(
                        "{base}[social.a]\nkind = \"apple\"\nclient_id = \"i\"\nteam_id = \"t\"\nkey_id = \"k\"\nprivate_key = \"nope\"\n"
                    ),
                    "social.a.private_key",
                ),
                (
                    format!("{base}{google}tenant = \"x\"\n"),
                    "social.google.tenant",
                ),
                (format!("{base}{google}nope = 1\n"), "social.google.nope"),
                (
                    format!("{base}{google}allowed_email_domains = [\"@x.com\"]\n"),
                    "social.google.allowed_email_domains",
                ),
            ] {
                assert_eq!(bad_key(&extra, &[]), key, "{extra}");
            }
        } else {
            assert_eq!(bad_key(&format!("{base}{google}"), &[]), "social");
        }
    }
}
