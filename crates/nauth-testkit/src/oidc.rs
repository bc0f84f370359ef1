//! A real OpenID Connect provider on loopback for the social-login tests: panva's
//! `oidc-provider` (OpenID Certified), run by Node from `tests/oidc/provider.mjs`, so discovery,
//! PKCE, the code exchange and the ID token's signature are all the real thing.
//!
//! The provider starts once per test process, on first use of [`provider`], and stops when the
//! process ends (it exits when its stdin closes). Its packages are installed on first use with
//! `npm ci` when `tests/oidc/node_modules` is missing.
//!
//! Test accounts are named by the authorization request's `login_hint`, and [`authorize`] walks
//! the provider's login and consent for that account without a form:
//!
//! | `login_hint` | `sub` | claims |
//! |---|---|---|
//! | `alice@example.com` | `sub-alice@example.com` | email, `email_verified: true` |
//! | `unverified:bob@example.com` | `sub-bob@example.com` | email, `email_verified: false` |
//! | `noemail:carol` | `sub-carol` | no email |
//!
//! Every account also has `given_name` "Test" and `family_name` "User".

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::conformance::{TestRequest, send};

/// The running provider and its two registered clients (confidential, `client_secret_basic`,
/// PKCE S256 required; any redirect URI on `http://127.0.0.1` or `http://localhost`).
#[derive(Debug)]
pub struct OidcProvider {
    /// `http://127.0.0.1:PORT`; discovery at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// The first client's id, `nauth-test`.
    pub client_id: String,
    /// The first client's secret, `nauth-test-secret`.
    pub client_secret: String,
    /// A second client's id, `other-client` (ID tokens for another audience).
    pub other_client_id: String,
    /// The second client's secret, `other-secret`.
    pub other_client_secret: String,
    /// The Node process and its stdout, both held open for the life of the test process.
    _child: Mutex<(Child, BufReader<ChildStdout>)>,
}

static PROVIDER: OnceLock<OidcProvider> = OnceLock::new();

fn harness_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc")
}

/// `nauth-oidc-provider-<pid>.log` in the temp directory, for the provider's stderr.
fn log_file() -> Stdio {
    let path = std::env::temp_dir().join(format!("nauth-oidc-provider-{}.log", std::process::id()));
    std::fs::File::create(path).map_or_else(|_| Stdio::null(), Stdio::from)
}

/// The provider of this test process, started on first call (which may take a few seconds, more
/// when `npm ci` runs). Panics with the reason when Node or the packages are missing.
pub async fn provider() -> &'static OidcProvider {
    if let Some(p) = PROVIDER.get() {
        return p;
    }
    tokio::task::spawn_blocking(|| PROVIDER.get_or_init(start))
        .await
        .expect("the OIDC provider starts")
}

fn start() -> OidcProvider {
    let dir = harness_dir();
    if !dir.join("node_modules/oidc-provider").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm runs (Node.js and npm are needed for the OIDC provider)");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Its log (two warnings about the runtime and the in-memory store, and any error).
        .stderr(log_file())
        .spawn()
        .expect("node runs tests/oidc/provider.mjs");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .expect("the provider prints its issuer");
    let ready: serde_json::Value =
        serde_json::from_str(line.trim()).expect("the provider's first line is JSON");
    let issuer = ready["issuer"]
        .as_str()
        .expect("the provider's first line names its issuer")
        .to_string();
    OidcProvider {
        issuer,
        client_id: "nauth-test".into(),
        client_secret: "nauth-test-secret".into(),
        other_client_id: "other-client".into(),
        other_client_secret: "other-secret".into(),
        _child: Mutex::new((child, stdout)),
    }
}

/// Splits an absolute `http://host:port/path?query` URL into the address and the path.
fn split_url(url: &str) -> (SocketAddr, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("an http:// URL on loopback: {url}"));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = authority.replace("localhost", "127.0.0.1");
    let addr = authority
        .parse()
        .unwrap_or_else(|_| panic!("a loopback address with a port: {url}"));
    (addr, path.to_string())
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Signs in at the provider as the account `login_hint` names (see the module's table): starts
/// at `authorize_url` (the provider's authorization endpoint with the client's parameters, as
/// nauth's redirect gives it; `login_hint` is added), follows the provider's own redirects
/// through login and consent with its cookies, and returns the URL the provider sends the
/// browser back to: the client's redirect URI with `code`, `state` and `iss`, or with `error`.
/// That URL is not requested.
pub async fn authorize(authorize_url: &str, login_hint: &str) -> String {
    let p = provider().await;
    let sep = if authorize_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let mut url = format!("{authorize_url}{sep}login_hint={}", encode(login_hint));
    let mut jar: Vec<(String, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    for _ in 0..10 {
        assert!(
            url.starts_with(&p.issuer),
            "the redirect left the provider too early: {url}"
        );
        let (addr, path) = split_url(&url);
        let mut req = TestRequest::new("GET", &path);
        if !jar.is_empty() {
            let cookie = jar
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.header("cookie", &cookie);
        }
        let res = send(addr, &req).await;
        for c in res.set_cookies() {
            let pair = c.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                jar.retain(|(name, _)| name != k);
                if !v.is_empty() {
                    jar.push((k.to_string(), v.to_string()));
                }
            }
        }
        assert!(
            (300..400).contains(&res.status),
            "the provider answered {} at {url}: {}",
            res.status,
            String::from_utf8_lossy(&res.body)
        );
        let location = res
            .header("location")
            .expect("a redirect has a Location")
            .to_string();
        url = if location.starts_with('/') {
            format!("{}{location}", p.issuer)
        } else {
            location
        };
        if !url.starts_with(&p.issuer) {
            return url;
        }
        assert!(
            Instant::now() < deadline,
            "the provider's login took too long"
        );
    }
    panic!("the provider redirected more than ten times");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness itself: discovery answers, and a sign-in comes back to the redirect URI
    /// with a code and the state.
    #[tokio::test]
    async fn the_provider_signs_in_a_test_account() {
        let p = provider().await;
        let (addr, _) = split_url(&p.issuer);
        let res = send(
            addr,
            &TestRequest::new("GET", "/.well-known/openid-configuration"),
        )
        .await;
        assert_eq!(res.status, 200);
        assert_eq!(res.json()["issuer"], p.issuer.as_str());
        let auth = res.json()["authorization_endpoint"]
            .as_str()
            .expect("an authorization endpoint")
            .to_string();
        let url = format!(
            "{auth}?client_id={}&response_type=code&scope=openid%20email&redirect_uri={}\
             &state=s1&nonce=n1&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
             &code_challenge_method=S256",
            p.client_id,
            encode("http://127.0.0.1:9/cb"),
        );
        let back = authorize(&url, "alice@example.com").await;
        assert!(back.starts_with("http://127.0.0.1:9/cb?code="), "{back}");
        assert!(back.contains("&state=s1"), "{back}");
    }
}
