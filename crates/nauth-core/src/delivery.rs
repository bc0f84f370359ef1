//! Token delivery (docs/api.md §4): whether a request gets its tokens as JSON or cookies, the exact
//! `Set-Cookie` bytes (built once here so every adapter sends the same), and the signed,
//! session-bound CSRF token.

use serde_json::{Map, Value};

use crate::config::{DeliveryMode, NAuthConfig, SameSite};
use crate::http::Request;

/// Whether a cookie prefix is the browsers' `__Host-` prefix (matched regardless of case, as
/// browsers do): Path=/, Secure and no Domain.
pub(crate) fn is_host_prefix(prefix: &str) -> bool {
    starts_ignore_case(prefix, "__Host-")
}

/// Whether a cookie prefix is the browsers' `__Secure-` prefix: Secure.
pub(crate) fn is_secure_prefix(prefix: &str) -> bool {
    starts_ignore_case(prefix, "__Secure-")
}

fn starts_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// The cookie names and attributes in force.
#[derive(Debug, Clone)]
pub(crate) struct CookieSpec {
    /// `{prefix}access_token`.
    pub access: String,
    /// `{prefix}refresh_token`; under a `__Host-` prefix `__Secure-…refresh_token`, because its
    /// Path is the mount prefix and a `__Host-` cookie must have Path=/.
    pub refresh: String,
    /// `{prefix}csrf_token`.
    pub csrf: String,
    /// `{prefix}device_token`.
    pub device: String,
    refresh_path: String,
    attrs: String,
}

impl CookieSpec {
    /// Names and attributes from the configuration.
    pub(crate) fn from_config(cfg: &NAuthConfig) -> Self {
        let td = &cfg.token_delivery;
        let p = &td.cookie_prefix;
        let mut attrs = String::new();
        if td.cookie_secure {
            attrs.push_str("; Secure");
        }
        attrs.push_str(match td.cookie_same_site {
            SameSite::Strict => "; SameSite=Strict",
            SameSite::Lax => "; SameSite=Lax",
        });
        if !td.cookie_domain.is_empty() {
            attrs.push_str(&format!("; Domain={}", td.cookie_domain));
        }
        let refresh = if is_host_prefix(p) {
            format!("__Secure-{}refresh_token", &p["__Host-".len()..])
        } else {
            format!("{p}refresh_token")
        };
        CookieSpec {
            access: format!("{p}access_token"),
            refresh,
            csrf: format!("{p}csrf_token"),
            device: format!("{p}device_token"),
            refresh_path: cfg.mount_prefix.clone(),
            attrs,
        }
    }

    fn cookie(&self, name: &str, value: &str, path: &str, max_age: i64, http_only: bool) -> String {
        let ho = if http_only { "; HttpOnly" } else { "" };
        format!(
            "{name}={value}; Path={path}; Max-Age={}{ho}{}",
            max_age.max(0),
            self.attrs
        )
    }

    /// The three cookies of a token pair: access, refresh and the session's CSRF token.
    pub(crate) fn set_tokens(&self, t: &IssuedTokens, now_s: i64) -> Vec<String> {
        vec![
            self.cookie(
                &self.access,
                &t.access_token,
                "/",
                t.access_expires_at - now_s,
                true,
            ),
            self.cookie(
                &self.refresh,
                &t.refresh_token,
                &self.refresh_path,
                t.refresh_expires_at - now_s,
                true,
            ),
            self.cookie(
                &self.csrf,
                &t.csrf_token,
                "/",
                t.refresh_expires_at - now_s,
                false,
            ),
        ]
    }

    /// The trusted-device cookie.
    pub(crate) fn set_device(&self, token: &str, max_age: i64) -> String {
        self.cookie(&self.device, token, "/", max_age, true)
    }

    /// Clears access, refresh and CSRF cookies (and the device cookie when asked).
    pub(crate) fn clear(&self, device: bool) -> Vec<String> {
        let mut v = vec![
            self.cookie(&self.access, "", "/", 0, true),
            self.cookie(&self.refresh, "", &self.refresh_path, 0, true),
            self.cookie(&self.csrf, "", "/", 0, false),
        ];
        if device {
            v.push(self.cookie(&self.device, "", "/", 0, true));
        }
        v
    }
}

/// A freshly issued token pair and its session.
#[derive(Clone)]
pub(crate) struct IssuedTokens {
    /// The JWT.
    pub access_token: String,
    /// The opaque refresh token.
    pub refresh_token: String,
    /// Unix seconds.
    pub access_expires_at: i64,
    /// Unix seconds.
    pub refresh_expires_at: i64,
    /// The session (`sid`).
    pub session_id: String,
    /// The session-bound CSRF token.
    pub csrf_token: String,
}

/// Never prints the tokens themselves: a `{:?}` in a log line must not leak a credential.
impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("session_id", &self.session_id)
            .field("csrf_token", &"<redacted>")
            .finish()
    }
}

impl IssuedTokens {
    /// The four token fields of a JSON body.
    pub(crate) fn json_fields(&self) -> Map<String, Value> {
        match serde_json::to_value(self.fields()) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// The token fields of a json-delivery body.
    pub(crate) fn fields(&self) -> TokenFields {
        TokenFields {
            access_token: self.access_token.clone(),
            refresh_token: self.refresh_token.clone(),
            access_token_expires_at: self.access_expires_at,
            refresh_token_expires_at: self.refresh_expires_at,
        }
    }
}

/// The token fields of a json-delivery body (docs/api.md §5).
#[derive(Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenFields {
    access_token: String,
    refresh_token: String,
    access_token_expires_at: i64,
    refresh_token_expires_at: i64,
}

impl std::fmt::Debug for TokenFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFields")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Where the refresh token a request presents comes from, for [`wants_json`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshFrom {
    /// The route reads no refresh token, or the request carries none.
    Nowhere,
    /// A `refreshToken` in the JSON body: the client keeps its tokens itself (json).
    Body,
    /// The refresh cookie (`/refresh` without a body token): the new pair goes back as cookies,
    /// whatever else the request says, or the browser would keep a rotated-out cookie and
    /// the next refresh would look like reuse.
    Cookie,
}

/// Whether this request gets its tokens in the JSON body (true) or as cookies (false).
pub(crate) fn wants_json(mode: DeliveryMode, req: &Request, refresh: RefreshFrom) -> bool {
    match mode {
        DeliveryMode::Json => true,
        DeliveryMode::Cookies => false,
        DeliveryMode::Hybrid => match refresh {
            RefreshFrom::Cookie => false,
            RefreshFrom::Body => true,
            RefreshFrom::Nowhere => {
                req.header("x-token-delivery")
                    .is_some_and(|v| v.eq_ignore_ascii_case("json"))
                    || req.query_param("mode").as_deref() == Some("token")
                    || req.bearer().is_some()
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_bytes() {
        let cfg = NAuthConfig::default();
        let spec = CookieSpec::from_config(&cfg);
        let t = IssuedTokens {
            access_token: "A".into(),
            refresh_token: "R".into(),
            access_expires_at: 1900,
            refresh_expires_at: 1000 + 604_800,
            session_id: "s".into(),
            csrf_token: "C".into(),
        };
        let c = spec.set_tokens(&t, 1000);
        assert_eq!(
            c[0],
            "nauth_access_token=A; Path=/; Max-Age=900; HttpOnly; Secure; SameSite=Strict"
        );
        assert_eq!(
            c[1],
            "nauth_refresh_token=R; Path=/auth; Max-Age=604800; HttpOnly; Secure; SameSite=Strict"
        );
        assert_eq!(
            c[2],
            "nauth_csrf_token=C; Path=/; Max-Age=604800; Secure; SameSite=Strict"
        );
        let cleared = spec.clear(false);
        assert_eq!(cleared.len(), 3);
        assert!(
            cleared
                .iter()
                .all(|c| c.contains("=; ") && c.contains("Max-Age=0"))
        );
        assert!(cleared[1].contains("Path=/auth"));
    }

    #[test]
    fn debug_never_prints_a_token() {
        let t = IssuedTokens {
            access_token: "eyJ.secret.sig".into(),
            refresh_token: "refresh-secret".into(),
            access_expires_at: 1,
            refresh_expires_at: 2,
            session_id: "s".into(),
            csrf_token: "csrf-secret".into(),
        };
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("secret") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn hybrid_decision() {
        use DeliveryMode::{Cookies, Hybrid, Json};
        use RefreshFrom::{Body, Cookie, Nowhere};
        let plain = Request::new("POST", "/auth/login");
        let query = Request::new("POST", "/auth/login?mode=token");
        let mut header = Request::new("POST", "/auth/login");
        header
            .headers
            .push(("x-token-delivery".into(), "json".into()));
        let mut bearer = Request::new("POST", "/auth/refresh");
        bearer
            .headers
            .push(("authorization".into(), "Bearer x".into()));
        // (mode, request, refresh source, json?)
        let cases = [
            (Hybrid, &plain, Nowhere, false),
            (Hybrid, &plain, Body, true),
            (Hybrid, &plain, Cookie, false),
            (Hybrid, &query, Nowhere, true),
            (Hybrid, &header, Nowhere, true),
            (Hybrid, &bearer, Nowhere, true),
            // A refresh token from the cookie is answered with cookies, whatever else is sent.
            (Hybrid, &header, Cookie, false),
            (Hybrid, &bearer, Cookie, false),
            (Hybrid, &query, Cookie, false),
            (Json, &plain, Nowhere, true),
            (Json, &plain, Cookie, true),
            (Cookies, &header, Body, false),
            (Cookies, &bearer, Nowhere, false),
        ];
        for (i, (mode, req, from, want)) in cases.into_iter().enumerate() {
            assert_eq!(wants_json(mode, req, from), want, "case {i}");
        }
    }

    #[test]
    fn prefixed_cookie_names() {
        let spec = |prefix: &str| {
            let mut cfg = NAuthConfig::default();
            cfg.token_delivery.cookie_prefix = prefix.into();
            CookieSpec::from_config(&cfg)
        };
        let t = IssuedTokens {
            access_token: "A".into(),
            refresh_token: "R".into(),
            access_expires_at: 1900,
            refresh_expires_at: 1000 + 604_800,
            session_id: "s".into(),
            csrf_token: "C".into(),
        };
        let host = spec("__Host-");
        assert_eq!(
            (
                host.access.as_str(),
                host.csrf.as_str(),
                host.device.as_str()
            ),
            (
                "__Host-access_token",
                "__Host-csrf_token",
                "__Host-device_token"
            )
        );
        assert_eq!(host.refresh, "__Secure-refresh_token");
        let c = host.set_tokens(&t, 1000);
        assert_eq!(
            c[0],
            "__Host-access_token=A; Path=/; Max-Age=900; HttpOnly; Secure; SameSite=Strict"
        );
        assert_eq!(
            c[1],
            "__Secure-refresh_token=R; Path=/auth; Max-Age=604800; HttpOnly; Secure; SameSite=Strict"
        );
        assert!(c[2].starts_with("__Host-csrf_token=C; Path=/;"));
        assert!(
            host.set_device("D", 60)
                .starts_with("__Host-device_token=D; Path=/;")
        );
        assert_eq!(spec("__Host-app_").refresh, "__Secure-app_refresh_token");
        assert_eq!(spec("__host-").refresh, "__Secure-refresh_token");
        let secure = spec("__Secure-");
        assert_eq!(
            [secure.access, secure.refresh, secure.csrf, secure.device],
            [
                "__Secure-access_token",
                "__Secure-refresh_token",
                "__Secure-csrf_token",
                "__Secure-device_token"
            ]
        );
        assert!(is_host_prefix("__HOST-x") && !is_host_prefix("__Hos") && !is_host_prefix(""));
        assert!(is_secure_prefix("__secure-") && !is_secure_prefix("nauth_"));
    }
}
