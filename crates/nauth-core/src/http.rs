//! The neutral HTTP model: what an adapter hands to the core and what it writes back.
//!
//! These are plain strings and bytes, not `http` crate types, so that actix-web (http 0.2),
//! axum and poem (http 1.x) can all translate to and from them without a version conflict.

use std::net::IpAddr;

/// The largest request body nauth reads (docs/api.md §1): 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The headers [`crate::NAuth::authenticate`] reads; an adapter's extractor may copy just these.
pub const AUTH_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "origin",
    "x-csrf-token",
    "x-api-key",
];

/// A request body as the adapter read it. `Debug` shows its length, never its bytes (it may
/// hold a password).
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Body {
    /// The whole body, at most [`MAX_BODY_BYTES`].
    Bytes(Vec<u8>),
    /// The body was larger than [`MAX_BODY_BYTES`] (declared or streamed); the rest was not read.
    TooLarge,
    /// No body was read (app-route authentication).
    #[default]
    Empty,
}

/// A request in the core's terms. `Debug` shows header names but redacts the values of the
/// headers that carry credentials.
#[derive(Clone, Default)]
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

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Bytes(b) => write!(f, "Bytes([{} bytes redacted])", b.len()),
            Body::TooLarge => f.write_str("TooLarge"),
            Body::Empty => f.write_str("Empty"),
        }
    }
}

/// Headers whose values are credentials.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "set-cookie",
    "x-csrf-token",
    "x-device-token",
    "x-api-key",
];

/// Header pairs for `Debug`, with the values of credential headers redacted.
fn shown_headers(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| {
            let secret = SECRET_HEADERS.iter().any(|s| k.eq_ignore_ascii_case(s));
            (k.as_str(), if secret { "[redacted]" } else { v.as_str() })
        })
        .collect()
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query.as_ref().map(|_| "[redacted]"))
            .field("headers", &shown_headers(&self.headers))
            .field("body", &self.body)
            .field("peer_ip", &self.peer_ip)
            .finish()
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("headers", &shown_headers(&self.headers))
            .field(
                "body",
                &format_args!("[{} bytes redacted]", self.body.len()),
            )
            .finish()
    }
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

    /// Every value of a header, in the order received (a header may be sent on several lines).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A cookie's value from the `Cookie` headers, refusing a name sent more than once
    /// (cookie tossing: a sibling subdomain or a narrower path can plant a second cookie of the
    /// same name, and which one a server reads first is up to the browser's ordering).
    pub fn unique_cookie(&self, name: &str) -> Result<Option<&str>, DuplicateCookie> {
        let mut found = None;
        for (k, v) in self
            .header_values("cookie")
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
        {
            if k.trim() == name {
                if found.is_some() {
                    return Err(DuplicateCookie);
                }
                found = Some(v.trim().trim_matches('"'));
            }
        }
        Ok(found)
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

/// A request carried the same cookie name twice ([`Request::unique_cookie`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuplicateCookie;

/// The `Allow` value of a path that serves `methods` (docs/api.md §1): each method once, upper-case,
/// in the order given, then `OPTIONS`. An item may itself be a list (a framework's own `Allow`
/// value, `GET,HEAD` or `GET, HEAD`): every door then sends the same bytes.
pub fn allow_value<'a>(methods: impl IntoIterator<Item = &'a str>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for m in methods.into_iter().flat_map(|m| m.split(',')) {
        let m = m.trim().to_ascii_uppercase();
        if !m.is_empty() && m != "OPTIONS" && !seen.contains(&m) {
            seen.push(m);
        }
    }
    seen.push("OPTIONS".into());
    seen.join(", ")
}

/// The answer for one of the app's own paths when its framework found no handler for the
/// method: `OPTIONS` → `204` with `Allow`, any other method → the contract's
/// `405 METHOD_NOT_ALLOWED` JSON with `Allow`. `methods` are the ones the path serves. The
/// adapters call it from their method-not-allowed hooks, so the app's routes answer like the
/// routes under the mount prefix.
pub fn method_reply<'a>(
    nauth: &crate::NAuth,
    method: &str,
    methods: impl IntoIterator<Item = &'a str>,
) -> Reply {
    let allow = allow_value(methods);
    if method.eq_ignore_ascii_case("OPTIONS") {
        Reply::empty(204).with_header("allow", allow)
    } else {
        nauth.error_reply(&crate::AuthError::MethodNotAllowed { allow })
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

/// The host of an absolute `http(s)://` URL, lower-cased, without user info, port or IPv6
/// brackets (`https://App.example.com:8443/x` → `app.example.com`); `None` for anything else.
pub(crate) fn url_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"-.:".contains(&b);
    (!host.is_empty() && host.bytes().all(ok)).then(|| host.to_ascii_lowercase())
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

/// A response in the core's terms; the adapter copies it to the wire as it is. `Debug` shows
/// the status, the header names and the body's length: bodies and cookies may carry tokens.
#[derive(Clone, PartialEq, Eq)]
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
    fn url_host_reads_the_host_only() {
        assert_eq!(
            url_host("https://App.example.com:8443/x?y#z").as_deref(),
            Some("app.example.com")
        );
        assert_eq!(
            url_host("http://u:p@example.com").as_deref(),
            Some("example.com")
        );
        assert_eq!(url_host("http://[::1]:3000/").as_deref(), Some("::1"));
        assert_eq!(url_host("ftp://example.com"), None);
        assert_eq!(url_host(""), None);
        assert_eq!(url_host("https:///path"), None);
        assert_eq!(url_host("https://exa mple.com"), None);
    }

    #[test]
    fn debug_redacts_credentials_and_bodies() {
        let mut r = Request::new("POST", "/auth/login?token=secret-link");
        r.headers
            .push(("authorization".into(), "Bearer secret-jwt".into()));
        r.headers.push(("user-agent".into(), "curl".into()));
        r.body = Body::Bytes(br#"{"password":"secret-pw"}"#.to_vec());
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("secret") && shown.contains("curl"),
            "{shown}"
        );
        let reply = Reply::json(200, &serde_json::json!({"accessToken": "secret-at"}))
            .with_header("set-cookie", "nauth_access_token=secret-at");
        let shown = format!("{reply:?}");
        assert!(
            !shown.contains("secret") && shown.contains("200"),
            "{shown}"
        );
    }

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

    #[test]
    fn unique_cookies() {
        let with = |lines: &[&str]| {
            let mut r = Request::new("GET", "/");
            for l in lines {
                r.headers.push(("cookie".into(), (*l).into()));
            }
            r
        };
        type Case<'a> = (&'a [&'a str], Result<Option<&'a str>, DuplicateCookie>);
        let cases: &[Case] = &[
            (&[], Ok(None)),
            (&["a=1; b=2"], Ok(None)),
            (&["a=1; n=x; b=2"], Ok(Some("x"))),
            (&["n=\"x\""], Ok(Some("x"))),
            (&["n="], Ok(Some(""))),
            (&["nn=1; n_=2"], Ok(None)),
            (&["n=x; n=y"], Err(DuplicateCookie)),
            (&["n=x; n=x"], Err(DuplicateCookie)),
            (&["n=x", "a=1; n=y"], Err(DuplicateCookie)),
            (&["n=; n=y"], Err(DuplicateCookie)),
            (&["n=x;n=y"], Err(DuplicateCookie)),
        ];
        for (lines, want) in cases {
            assert_eq!(with(lines).unique_cookie("n"), *want, "{lines:?}");
        }
        let mut r = with(&["n=x; n=y"]);
        r.headers.push(("x-forwarded-for".into(), "1.1.1.1".into()));
        r.headers.push(("X-Forwarded-For".into(), "2.2.2.2".into()));
        let xff: Vec<&str> = r.header_values("x-forwarded-for").collect();
        assert_eq!(xff, ["1.1.1.1", "2.2.2.2"]);
        assert_eq!(r.cookie("n"), Some("x"));
    }

    #[test]
    fn allow_values() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "OPTIONS"),
            (&["GET"], "GET, OPTIONS"),
            (&["GET", "HEAD"], "GET, HEAD, OPTIONS"),
            (&["GET,HEAD,POST"], "GET, HEAD, POST, OPTIONS"),
            (&["GET, HEAD"], "GET, HEAD, OPTIONS"),
            (
                &["GET", "HEAD", "POST", "OPTIONS"],
                "GET, HEAD, POST, OPTIONS",
            ),
            (&[" get", "HEAD ", "GET", ""], "GET, HEAD, OPTIONS"),
        ];
        for (methods, want) in cases {
            assert_eq!(allow_value(methods.iter().copied()), *want, "{methods:?}");
        }
    }
}
