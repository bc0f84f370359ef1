//! Token delivery (API.md §4): whether a request gets its tokens as JSON or cookies, the exact
//! `Set-Cookie` bytes (built once here so every adapter sends the same), and the signed,
//! session-bound CSRF token.

use serde_json::{Map, Value, json};

use crate::config::{DeliveryMode, NAuthConfig, SameSite};
use crate::http::Request;

/// The cookie names and attributes in force.
#[derive(Debug, Clone)]
pub struct CookieSpec {
    /// `{prefix}access_token`.
    pub access: String,
    /// `{prefix}refresh_token`.
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
    pub fn from_config(cfg: &NAuthConfig) -> Self {
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
        CookieSpec {
            access: format!("{p}access_token"),
            refresh: format!("{p}refresh_token"),
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
    pub fn set_tokens(&self, t: &IssuedTokens, now_s: i64) -> Vec<String> {
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
    pub fn set_device(&self, token: &str, max_age: i64) -> String {
        self.cookie(&self.device, token, "/", max_age, true)
    }

    /// Clears access, refresh and CSRF cookies (and the device cookie when asked).
    pub fn clear(&self, device: bool) -> Vec<String> {
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
#[derive(Debug, Clone)]
pub struct IssuedTokens {
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

impl IssuedTokens {
    /// The four token fields of a JSON body.
    pub fn json_fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("accessToken".into(), json!(self.access_token));
        m.insert("refreshToken".into(), json!(self.refresh_token));
        m.insert("accessTokenExpiresAt".into(), json!(self.access_expires_at));
        m.insert(
            "refreshTokenExpiresAt".into(),
            json!(self.refresh_expires_at),
        );
        m
    }
}

/// Whether this request gets its tokens in the JSON body (true) or as cookies (false).
pub fn wants_json(mode: DeliveryMode, req: &Request, body_has_refresh: bool) -> bool {
    match mode {
        DeliveryMode::Json => true,
        DeliveryMode::Cookies => false,
        DeliveryMode::Hybrid => {
            req.header("x-token-delivery")
                .is_some_and(|v| v.eq_ignore_ascii_case("json"))
                || req.query_param("mode").as_deref() == Some("token")
                || req.bearer().is_some()
                || body_has_refresh
        }
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
    fn hybrid_decision() {
        let r = Request::new("POST", "/auth/login");
        assert!(!wants_json(DeliveryMode::Hybrid, &r, false));
        assert!(wants_json(DeliveryMode::Hybrid, &r, true));
        assert!(wants_json(
            DeliveryMode::Hybrid,
            &Request::new("POST", "/auth/login?mode=token"),
            false
        ));
        let mut h = Request::new("POST", "/auth/login");
        h.headers.push(("x-token-delivery".into(), "json".into()));
        assert!(wants_json(DeliveryMode::Hybrid, &h, false));
        assert!(wants_json(DeliveryMode::Json, &r, false));
        assert!(!wants_json(DeliveryMode::Cookies, &h, true));
    }
}
