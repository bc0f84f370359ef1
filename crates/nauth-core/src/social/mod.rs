//! Social login providers (docs/social-login.md): the configured `[social.<name>]` entries with
//! their endpoints (presets, or the issuer's discovery document, fetched lazily and cached with
//! its key set), the authorization URL (PKCE S256, `state`, `nonce`), the code exchange and the
//! checks of the ID token (signature from the JWKS, `iss`, `aud`, `azp`, `nonce`, `exp`, `iat`
//! by the engine's clock), or GitHub's `/user` and `/user/emails` for the OAuth 2.0 preset.

pub(crate) mod http;

use std::collections::BTreeMap;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AuthType, AuthUrl, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, IdTokenVerifier, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, SignatureVerificationError,
    TokenResponse, TokenUrl,
};

use crate::config::{NAuthConfig, SocialKind, SocialProviderConfig};
use crate::error::{AuthError, AuthResult};
pub(crate) use http::HttpClient;

/// How long a discovery document (and its key set) is used before it is fetched again.
const DISCOVERY_TTL_MS: i64 = 24 * 3_600_000;
/// At most one key-set refetch per provider per this interval (an ID token naming an unknown
/// `kid` asks for one: a key rotation at the provider).
const JWKS_REFETCH_MS: i64 = 60_000;
/// How far in the future an ID token's `iat` may be (clock skew).
const IAT_SKEW_MS: i64 = 5 * 60_000;

/// What the provider asserted about the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProviderIdentity {
    /// The provider's stable id of the account.
    pub subject: String,
    /// The email, lower-cased.
    pub email: Option<String>,
    /// Whether the provider says it verified that email.
    pub email_verified: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

impl ProviderIdentity {
    /// The email, when the provider asserts it verified it.
    pub(crate) fn verified_email(&self) -> Option<&str> {
        self.email.as_deref().filter(|_| self.email_verified)
    }
}

/// The configured providers and the client that talks to them.
#[derive(Debug)]
pub(crate) struct Social {
    pub(crate) http: HttpClient,
    pub(crate) providers: BTreeMap<String, Provider>,
}

impl Social {
    /// The providers of `cfg` (already validated).
    pub(crate) fn new(cfg: &NAuthConfig) -> AuthResult<Self> {
        let http = HttpClient::new().map_err(|e| AuthError::Internal(e.0))?;
        let providers = cfg
            .social
            .iter()
            .map(|(name, p)| (name.clone(), Provider::new(cfg, name, p)))
            .collect();
        Ok(Social { http, providers })
    }
}

/// How the `iss` of an ID token is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IssuerRule {
    /// Exactly the configured issuer (which the discovery document must repeat).
    Exact(String),
    /// Microsoft's multi-tenant endpoints (`common`, `organizations`, `consumers`):
    /// `https://login.microsoftonline.com/<tenant id>/v2.0`.
    MicrosoftAnyTenant,
}

impl IssuerRule {
    fn accepts(&self, iss: &str) -> bool {
        match self {
            IssuerRule::Exact(want) => iss == want,
            IssuerRule::MicrosoftAnyTenant => iss
                .strip_prefix("https://login.microsoftonline.com/")
                .and_then(|r| r.strip_suffix("/v2.0"))
                .is_some_and(|tid| uuid::Uuid::parse_str(tid).is_ok() && tid.len() == 36),
        }
    }
}

/// The endpoints and keys of an OpenID Connect provider, from its discovery document.
#[derive(Debug, Clone)]
struct Endpoints {
    authorization: String,
    token: String,
    jwks_uri: String,
    jwks: CoreJsonWebKeySet,
    /// The token endpoint takes the client secret in the body (not Basic).
    secret_in_body: bool,
    fetched_at: i64,
    jwks_fetched_at: i64,
}

/// One configured provider.
#[derive(Debug)]
pub(crate) struct Provider {
    pub(crate) name: String,
    pub(crate) cfg: SocialProviderConfig,
    /// `<base_url><mount>/social/<name>/callback`.
    pub(crate) redirect_uri: String,
    /// OpenID Connect: where the discovery document is, and the issuer rule.
    discovery: Option<(String, IssuerRule)>,
    cache: tokio::sync::Mutex<Option<Endpoints>>,
}

fn trim_slash(s: &str) -> &str {
    s.strip_suffix('/').unwrap_or(s)
}

impl Provider {
    fn new(cfg: &NAuthConfig, name: &str, p: &SocialProviderConfig) -> Self {
        let redirect_uri = format!(
            "{}{}/social/{name}/callback",
            cfg.base_url, cfg.mount_prefix
        );
        let well_known =
            |issuer: &str| format!("{}/.well-known/openid-configuration", trim_slash(issuer));
        let discovery = match p.kind {
            SocialKind::Oidc => {
                let url = if p.discovery_url.is_empty() {
                    well_known(&p.issuer)
                } else {
                    p.discovery_url.clone()
                };
                Some((url, IssuerRule::Exact(p.issuer.clone())))
            }
            SocialKind::Google => {
                let issuer = "https://accounts.google.com";
                Some((well_known(issuer), IssuerRule::Exact(issuer.into())))
            }
            SocialKind::Microsoft => {
                let tenant = if p.tenant.is_empty() {
                    "common"
                } else {
                    p.tenant.as_str()
                };
                let issuer = format!("https://login.microsoftonline.com/{tenant}/v2.0");
                let rule = if matches!(tenant, "common" | "organizations" | "consumers") {
                    IssuerRule::MicrosoftAnyTenant
                } else {
                    IssuerRule::Exact(issuer.clone())
                };
                Some((well_known(&issuer), rule))
            }
            SocialKind::Apple => {
                let issuer = "https://appleid.apple.com";
                Some((well_known(issuer), IssuerRule::Exact(issuer.into())))
            }
            _ => None,
        };
        Provider {
            name: name.to_string(),
            cfg: p.clone(),
            redirect_uri,
            discovery,
            cache: Default::default(),
        }
    }

    /// The button's text.
    pub(crate) fn label(&self) -> String {
        if !self.cfg.label.is_empty() {
            return self.cfg.label.clone();
        }
        match self.cfg.kind {
            SocialKind::Google => "Google".into(),
            SocialKind::Microsoft => "Microsoft".into(),
            SocialKind::Apple => "Apple".into(),
            SocialKind::Github => "GitHub".into(),
            _ => self.name.clone(),
        }
    }

    /// The provider answers the callback with a form POST (Apple, for its `name` scope).
    pub(crate) fn form_post(&self) -> bool {
        self.cfg.kind == SocialKind::Apple
    }

    fn scopes(&self) -> Vec<String> {
        if !self.cfg.scopes.is_empty() {
            return self.cfg.scopes.clone();
        }
        let s: &[&str] = match self.cfg.kind {
            SocialKind::Github => &["read:user", "user:email"],
            SocialKind::Apple => &["openid", "email", "name"],
            _ => &["openid", "email", "profile"],
        };
        s.iter().map(|s| s.to_string()).collect()
    }

    /// The discovery document's endpoints and keys (fetched on first use, then cached).
    async fn endpoints(&self, http: &HttpClient, now: i64) -> AuthResult<Endpoints> {
        let Some((url, rule)) = &self.discovery else {
            return Err(AuthError::Internal("not an OpenID Connect provider".into()));
        };
        let mut cache = self.cache.lock().await;
        if let Some(e) = cache
            .as_ref()
            .filter(|e| now - e.fetched_at < DISCOVERY_TTL_MS)
        {
            return Ok(e.clone());
        }
        let unavailable = |what: &str, e: String| {
            AuthError::SocialProviderUnavailable(format!("{}: {what}: {e}", self.name))
        };
        let body = get_json(http, url, None)
            .await
            .map_err(|e| unavailable("discovery", e))?;
        let meta: CoreProviderMetadata = serde_json::from_slice(&body)
            .map_err(|e| unavailable("discovery document", e.to_string()))?;
        let issuer = meta.issuer().as_str();
        // Microsoft's multi-tenant documents name a template: `…/{tenantid}/v2.0`.
        let template =
            matches!(rule, IssuerRule::MicrosoftAnyTenant) && issuer.contains("{tenantid}");
        if !(rule.accepts(issuer) || template) {
            return Err(unavailable(
                "discovery document",
                "its issuer is not the configured one".into(),
            ));
        }
        let token = meta
            .token_endpoint()
            .ok_or_else(|| unavailable("discovery document", "no token endpoint".into()))?
            .to_string();
        for u in [
            meta.authorization_endpoint().as_str(),
            token.as_str(),
            meta.jwks_uri().as_str(),
        ] {
            if !crate::config::is_provider_url(u) {
                return Err(unavailable(
                    "discovery document",
                    "an endpoint is not https (or loopback http)".into(),
                ));
            }
        }
        let jwks_uri = meta.jwks_uri().to_string();
        let jwks = fetch_jwks(http, &jwks_uri)
            .await
            .map_err(|e| unavailable("key set", e))?;
        let methods: Vec<String> = meta
            .token_endpoint_auth_methods_supported()
            .map(|v| v.iter().map(json_name).collect())
            .unwrap_or_default();
        let secret_in_body = self.cfg.kind == SocialKind::Apple
            || (!methods.is_empty()
                && !methods.iter().any(|m| m == "client_secret_basic")
                && methods.iter().any(|m| m == "client_secret_post"));
        let e = Endpoints {
            authorization: meta.authorization_endpoint().to_string(),
            token,
            jwks_uri,
            jwks,
            secret_in_body,
            fetched_at: now,
            jwks_fetched_at: now,
        };
        *cache = Some(e.clone());
        Ok(e)
    }

    /// Fetches the key set again, at most once per [`JWKS_REFETCH_MS`]; the keys to retry with
    /// when they changed.
    async fn refetch_jwks(&self, http: &HttpClient, now: i64) -> Option<CoreJsonWebKeySet> {
        let mut cache = self.cache.lock().await;
        let e = cache.as_mut()?;
        if now - e.jwks_fetched_at < JWKS_REFETCH_MS {
            return None;
        }
        e.jwks_fetched_at = now;
        match fetch_jwks(http, &e.jwks_uri).await {
            Ok(jwks) => {
                e.jwks = jwks.clone();
                Some(jwks)
            }
            Err(err) => {
                tracing::warn!(provider = %self.name, error = %err, "social login: key set refetch failed");
                None
            }
        }
    }

    fn client_secret(&self, now: i64) -> AuthResult<String> {
        if self.cfg.kind != SocialKind::Apple {
            return Ok(self.cfg.client_secret.clone());
        }
        apple_client_secret(&self.cfg, now / 1000)
    }

    /// The URL that sends the browser to the provider.
    pub(crate) async fn authorize_url(
        &self,
        http: &HttpClient,
        now: i64,
        flow: &FlowSecrets,
    ) -> AuthResult<String> {
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            flow.verifier.clone(),
        ));
        let scopes = self.scopes();
        if self.cfg.kind == SocialKind::Github {
            let base = if self.cfg.authorization_url.is_empty() {
                "https://github.com/login/oauth/authorize"
            } else {
                self.cfg.authorization_url.as_str()
            };
            let mut url = openidconnect::url::Url::parse(base)
                .map_err(|_| AuthError::Internal("github authorization URL".into()))?;
            url.query_pairs_mut()
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.cfg.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("scope", &scopes.join(" "))
                .append_pair("state", &flow.state)
                .append_pair("code_challenge", challenge.as_str())
                .append_pair("code_challenge_method", "S256")
                .append_pair("allow_signup", "true");
            return Ok(url.to_string());
        }
        let e = self.endpoints(http, now).await?;
        let client = self.oidc_client(&e, None)?;
        let (state, nonce) = (flow.state.clone(), flow.nonce.clone());
        let mut req = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .set_pkce_challenge(challenge);
        for s in scopes.into_iter().filter(|s| s != "openid") {
            req = req.add_scope(Scope::new(s));
        }
        if self.form_post() {
            req = req.add_extra_param("response_mode", "form_post");
        }
        let (url, _, _) = req.url();
        Ok(url.to_string())
    }

    fn oidc_client(
        &self,
        e: &Endpoints,
        secret: Option<String>,
    ) -> AuthResult<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
        >,
    > {
        let bad = |what: &str| AuthError::Internal(format!("{}: bad {what}", self.name));
        let issuer = IssuerUrl::new("https://issuer.invalid".into()).map_err(|_| bad("issuer"))?;
        let mut client = CoreClient::new(
            ClientId::new(self.cfg.client_id.clone()),
            issuer,
            e.jwks.clone(),
        )
        .set_auth_uri(AuthUrl::new(e.authorization.clone()).map_err(|_| bad("authorization URL"))?)
        .set_token_uri(TokenUrl::new(e.token.clone()).map_err(|_| bad("token URL"))?)
        .set_redirect_uri(
            RedirectUrl::new(self.redirect_uri.clone()).map_err(|_| bad("redirect URI"))?,
        );
        if let Some(s) = secret {
            client = client.set_client_secret(ClientSecret::new(s));
        }
        if e.secret_in_body {
            client = client.set_auth_type(AuthType::RequestBody);
        }
        Ok(client)
    }

    /// Exchanges the code (with the PKCE verifier) and checks what comes back: the ID token
    /// for OpenID Connect, GitHub's user and emails for GitHub.
    pub(crate) async fn finish(
        &self,
        http: &HttpClient,
        code: &str,
        flow: &FlowSecrets,
        now: i64,
    ) -> AuthResult<ProviderIdentity> {
        if self.cfg.kind == SocialKind::Github {
            return self.finish_github(http, code, flow).await;
        }
        let e = self.endpoints(http, now).await?;
        let client = self.oidc_client(&e, Some(self.client_secret(now)?))?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()))
            .request_async(http)
            .await
            .map_err(|err| token_error(&self.name, err))?;
        let raw = response
            .id_token()
            .ok_or(AuthError::SocialIdTokenInvalid)?
            .to_string();
        let expect = Expect {
            client_id: self.cfg.client_id.clone(),
            issuer: match &self.discovery {
                Some((_, rule)) => rule.clone(),
                None => return Err(AuthError::SocialIdTokenInvalid),
            },
        };
        match check_id_token(&raw, &expect, &e.jwks, &flow.nonce, now) {
            Err(Checked::NoKey) => match self.refetch_jwks(http, now).await {
                Some(jwks) => check_id_token(&raw, &expect, &jwks, &flow.nonce, now)
                    .map_err(Checked::into_error),
                None => Err(AuthError::SocialIdTokenInvalid),
            },
            other => other.map_err(Checked::into_error),
        }
    }

    async fn finish_github(
        &self,
        http: &HttpClient,
        code: &str,
        flow: &FlowSecrets,
    ) -> AuthResult<ProviderIdentity> {
        let bad = |what: &str| AuthError::Internal(format!("{}: bad {what}", self.name));
        let token_url = if self.cfg.token_url.is_empty() {
            "https://github.com/login/oauth/access_token"
        } else {
            self.cfg.token_url.as_str()
        };
        let issuer = IssuerUrl::new("https://github.invalid".into()).map_err(|_| bad("issuer"))?;
        let client = CoreClient::new(
            ClientId::new(self.cfg.client_id.clone()),
            issuer,
            CoreJsonWebKeySet::new(Vec::new()),
        )
        .set_client_secret(ClientSecret::new(self.cfg.client_secret.clone()))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(TokenUrl::new(token_url.to_string()).map_err(|_| bad("token URL"))?)
        .set_redirect_uri(
            RedirectUrl::new(self.redirect_uri.clone()).map_err(|_| bad("redirect URI"))?,
        );
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()))
            .request_async(http)
            .await
            .map_err(|err| token_error(&self.name, err))?;
        let token = response.access_token().secret().clone();
        let api = trim_slash(if self.cfg.api_url.is_empty() {
            "https://api.github.com"
        } else {
            self.cfg.api_url.as_str()
        })
        .to_string();
        let unavailable =
            |e: String| AuthError::SocialProviderUnavailable(format!("{}: {e}", self.name));
        let user = get_json(http, &format!("{api}/user"), Some(&token))
            .await
            .map_err(unavailable)?;
        let emails = get_json(http, &format!("{api}/user/emails"), Some(&token))
            .await
            .map_err(unavailable)?;
        github_identity(&user, &emails).ok_or_else(|| unavailable("unreadable user".into()))
    }
}

/// The secrets of one sign-in: `state`, `nonce` and the PKCE verifier.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct FlowSecrets {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

impl std::fmt::Debug for FlowSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlowSecrets([redacted])")
    }
}

impl FlowSecrets {
    /// Fresh secrets from the CSPRNG (43 characters each: 256 bits).
    pub(crate) fn new() -> Self {
        let r = || {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(crate::codes::random_bytes::<32>())
        };
        FlowSecrets {
            state: r(),
            nonce: r(),
            verifier: r(),
        }
    }
}

fn json_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn token_error<RE: std::error::Error + 'static, T: openidconnect::ErrorResponse + 'static>(
    name: &str,
    err: RequestTokenError<RE, T>,
) -> AuthError {
    match err {
        RequestTokenError::ServerResponse(e) => {
            tracing::info!(provider = name, error = %e, "social login: the provider refused the code");
            AuthError::SocialProviderError
        }
        other => AuthError::SocialProviderUnavailable(format!("{name}: token request: {other}")),
    }
}

/// GETs a JSON document (optionally with a bearer token); the body of a `200`.
async fn get_json(http: &HttpClient, url: &str, bearer: Option<&str>) -> Result<Vec<u8>, String> {
    let mut req = openidconnect::http::Request::get(url).header("accept", "application/json");
    if let Some(t) = bearer {
        req = req
            .header("authorization", format!("Bearer {t}"))
            .header("x-github-api-version", "2022-11-28");
    }
    let req = req.body(Vec::new()).map_err(|_| "bad URL".to_string())?;
    let res = http.send(req).await.map_err(|e| e.0)?;
    if res.status().as_u16() != 200 {
        return Err(format!("status {}", res.status().as_u16()));
    }
    Ok(res.into_body())
}

async fn fetch_jwks(http: &HttpClient, url: &str) -> Result<CoreJsonWebKeySet, String> {
    let body = get_json(http, url, None).await?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

/// GitHub's `/user` and `/user/emails` answers as an identity: the numeric id, and the
/// primary email when GitHub verified it.
fn github_identity(user: &[u8], emails: &[u8]) -> Option<ProviderIdentity> {
    #[derive(serde::Deserialize)]
    struct User {
        id: i64,
        name: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Email {
        email: String,
        primary: bool,
        verified: bool,
    }
    let user: User = serde_json::from_slice(user).ok()?;
    let emails: Vec<Email> = serde_json::from_slice(emails).ok()?;
    let primary = emails.into_iter().find(|e| e.primary);
    let (first_name, last_name) = match user
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        Some(n) => match n.split_once(' ') {
            Some((a, b)) => (Some(a.to_string()), Some(b.trim().to_string())),
            None => (Some(n.to_string()), None),
        },
        None => (None, None),
    };
    Some(ProviderIdentity {
        subject: user.id.to_string(),
        email_verified: primary.as_ref().is_some_and(|e| e.verified),
        email: primary.map(|e| e.email.trim().to_ascii_lowercase()),
        first_name,
        last_name,
    })
}

/// Apple's client secret: an ES256 JWT signed with the configured key, valid 5 minutes.
fn apple_client_secret(cfg: &SocialProviderConfig, now_s: i64) -> AuthResult<String> {
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        iss: &'a str,
        iat: i64,
        exp: i64,
        aud: &'a str,
        sub: &'a str,
    }
    let der = crate::config::pem_der(&cfg.private_key)
        .ok_or_else(|| AuthError::Internal("apple private_key".into()))?;
    let key = jsonwebtoken::EncodingKey::from_ec_der(&der);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(cfg.key_id.clone());
    let claims = Claims {
        iss: &cfg.team_id,
        iat: now_s,
        exp: now_s + 300,
        aud: "https://appleid.apple.com",
        sub: &cfg.client_id,
    };
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| AuthError::Internal(format!("apple client secret: {e}")))
}

/// What an ID token must say.
#[derive(Debug, Clone)]
struct Expect {
    client_id: String,
    issuer: IssuerRule,
}

/// Why an ID token was refused.
#[derive(Debug)]
enum Checked {
    /// No key of the set matches its `kid` (a rotation: the set is fetched again once).
    NoKey,
    Refused(AuthError),
}

impl Checked {
    fn into_error(self) -> AuthError {
        match self {
            Checked::NoKey => AuthError::SocialIdTokenInvalid,
            Checked::Refused(e) => e,
        }
    }
}

/// The signature algorithms an ID token may use: the asymmetric ones (never `none` or HMAC).
const ALGS: &[CoreJwsSigningAlgorithm] = &[
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// Checks an ID token: signature (a key of `jwks`, an asymmetric algorithm), `iss`, `aud`
/// (this client; other audiences refused), `azp` (this client when present, required with
/// several audiences), `nonce`, `exp` and `iat` at `now` (Unix ms, the engine's clock).
fn check_id_token(
    raw: &str,
    expect: &Expect,
    jwks: &CoreJsonWebKeySet,
    nonce: &str,
    now: i64,
) -> Result<ProviderIdentity, Checked> {
    use std::str::FromStr;
    let invalid = || Checked::Refused(AuthError::SocialIdTokenInvalid);
    let token = CoreIdToken::from_str(raw).map_err(|_| invalid())?;
    let at = chrono::DateTime::from_timestamp_millis(now).ok_or_else(invalid)?;
    let latest_iat =
        chrono::DateTime::from_timestamp_millis(now + IAT_SKEW_MS).ok_or_else(invalid)?;
    let (issuer_url, exact) = match &expect.issuer {
        IssuerRule::Exact(i) => (i.clone(), true),
        IssuerRule::MicrosoftAnyTenant => ("https://login.microsoftonline.com/".into(), false),
    };
    let verifier = IdTokenVerifier::new_public_client(
        ClientId::new(expect.client_id.clone()),
        IssuerUrl::new(issuer_url).map_err(|_| invalid())?,
        jwks.clone(),
    )
    .set_allowed_algs(ALGS.iter().cloned())
    .require_issuer_match(exact)
    .set_time_fn(move || at)
    .set_issue_time_verifier_fn(move |iat| {
        if iat > latest_iat {
            Err("issued in the future".into())
        } else {
            Ok(())
        }
    });
    let claims = token
        .claims(&verifier, &Nonce::new(nonce.to_string()))
        .map_err(|e| match e {
            ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            ) => Checked::NoKey,
            ClaimsVerificationError::InvalidNonce(_) => {
                Checked::Refused(AuthError::SocialNonceInvalid)
            }
            other => {
                tracing::info!(error = %other, "social login: ID token refused");
                invalid()
            }
        })?;
    if !expect.issuer.accepts(claims.issuer().as_str()) {
        return Err(invalid());
    }
    match claims.authorized_party() {
        Some(azp) if azp.as_str() != expect.client_id => return Err(invalid()),
        None if claims.audiences().len() > 1 => return Err(invalid()),
        _ => {}
    }
    let first = claims
        .given_name()
        .and_then(|c| c.get(None))
        .map(|n| n.as_str().trim().to_string())
        .filter(|n| !n.is_empty());
    let last = claims
        .family_name()
        .and_then(|c| c.get(None))
        .map(|n| n.as_str().trim().to_string())
        .filter(|n| !n.is_empty());
    Ok(ProviderIdentity {
        subject: claims.subject().as_str().to_string(),
        email: claims
            .email()
            .map(|e| e.as_str().trim().to_ascii_lowercase()),
        email_verified: claims.email_verified().unwrap_or(false),
        first_name: first,
        last_name: last,
    })
}

#[cfg(test)]
mod tests;
