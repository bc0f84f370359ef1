//! The neutral HTTP model: what an adapter hands to the core and what it writes back.
//!
//! These are plain strings and bytes, not `http` crate types, so that actix-web (http 0.2),
//! axum and poem (http 1.x) can all translate to and from them without a version conflict.

use std::net::IpAddr;

/// The largest request body nauth reads (API.md §1): 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The headers [`crate::NAuth::authenticate`] reads; an adapter's extractor may copy just these.
pub const AUTH_HEADERS: &[&str] = &["authorization", "cookie", "origin", "x-csrf-token"];

/// A request body as the adapter read it.
#[derive(Debug, Clone, Default)]
pub enum Body {
    /// The whole body, at most [`MAX_BODY_BYTES`].
    Bytes(Vec<u8>),
    /// The body was larger than [`MAX_BODY_BYTES`] (declared or streamed); the rest was not read.
    TooLarge,
    /// No body was read (app-route authentication).
    #[default]
    Empty,
}

/// A request in the core's terms.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Upper-case method, e.g. `POST`.
    pub method: String,
    /// The path exactly as sent, without the query string.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// Header names lower-cased; values that are not visible ASCII/UTF-8 are dropped by the adapter.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
    /// The socket's peer address, when the framework knows it.
    pub peer_ip: Option<IpAddr>,
}

impl Request {
    /// Builds a request; mostly for tests and adapters.
    pub fn new(method: &str, path_and_query: &str) -> Self {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (path_and_query.to_string(), None),
        };
        Request {
            method: method.to_ascii_uppercase(),
            path,
            query,
            ..Default::default()
        }
    }

    /// The first value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A cookie's value from the `Cookie` headers; the first one wins.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim_matches('"'))
    }

    /// A query parameter's value, percent-decoded (`+` as space).
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        q.split('&')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (percent_decode(k)? == name).then(|| percent_decode(v))?
            })
            .next()
    }

    /// The bearer credential of the `Authorization` header, if it is one.
    pub fn bearer(&self) -> Option<&str> {
        let v = self.header("authorization")?;
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }
}

/// Decodes `%XX` and `+`; `None` for malformed escapes or invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Encodes a query-string value (RFC 3986 unreserved characters kept).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A response in the core's terms; the adapter copies it to the wire as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Headers in order, names lower-case; `set-cookie` may repeat.
    pub headers: Vec<(String, String)>,
    /// The body bytes (JSON, or empty).
    pub body: Vec<u8>,
}

impl Reply {
    /// A JSON reply with `Cache-Control: no-store`.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Reply {
            status,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    /// An empty reply with `Cache-Control: no-store`.
    pub fn empty(status: u16) -> Self {
        Reply {
            status,
            headers: vec![("cache-control".into(), "no-store".into())],
            body: vec![],
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every `Set-Cookie` value.
    pub fn set_cookies(&self) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_query_and_bearer() {
        let mut r = Request::new("get", "/auth/verify-email?token=a%2Bb&x=1&token=second");
        r.headers
            .push(("cookie".into(), "a=1; nauth_access_token=xyz; b=2".into()));
        r.headers
            .push(("authorization".into(), "Bearer abc".into()));
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/auth/verify-email");
        assert_eq!(r.query_param("token").as_deref(), Some("a+b"));
        assert_eq!(r.query_param("missing"), None);
        assert_eq!(r.cookie("nauth_access_token"), Some("xyz"));
        assert_eq!(r.cookie("nauth"), None);
        assert_eq!(r.bearer(), Some("abc"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }
}
