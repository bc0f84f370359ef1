//! A small HTTP/1.1 client for the provider calls (discovery, JWKS, token, GitHub's API): one
//! request per connection, rustls with the Mozilla roots (the ring provider the tree already
//! builds), a timeout on the whole exchange, a cap on the answer's size, and no redirects
//! followed (a provider's `3xx` is an error: nothing is fetched from where a redirect points,
//! so a hostile document cannot make nauth request internal addresses through one).
//! `http://` only for loopback hosts (a test provider on the machine).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openidconnect::http;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest a provider call may take, connect to last byte.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read (discovery documents and key sets are a few KiB).
const MAX_ANSWER: usize = 1024 * 1024;

/// Why a provider call failed; the text names the step, never a secret.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HttpError(pub(crate) String);

/// The client; cheap to clone.
#[derive(Clone)]
pub(crate) struct HttpClient {
    tls: Arc<tokio_rustls::rustls::ClientConfig>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    /// A client trusting the Mozilla root certificates.
    pub(crate) fn new() -> Result<Self, HttpError> {
        use tokio_rustls::rustls;
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(HttpClient {
            tls: Arc::new(config),
        })
    }

    /// Sends one request and reads the whole answer, within [`TIMEOUT`].
    pub(crate) async fn send(
        &self,
        req: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        tokio::time::timeout(TIMEOUT, self.send_now(req))
            .await
            .map_err(|_| HttpError("timed out".into()))?
    }

    async fn send_now(
        &self,
        req: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let uri = req.uri().clone();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(HttpError("unsupported URL scheme".into())),
        };
        let host = uri
            .host()
            .ok_or_else(|| HttpError("URL without host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if !https && !crate::config::is_loopback_url(&format!("http://{}/", bracket(&host))) {
            return Err(HttpError("http:// is only for loopback hosts".into()));
        }
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        let host_header = match uri.port_u16() {
            Some(p) => format!("{}:{p}", bracket(&host)),
            None => bracket(&host),
        };
        let mut head = format!(
            "{} {target} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\
             User-Agent: nauth\r\nContent-Length: {}\r\n",
            req.method(),
            req.body().len()
        );
        for (name, value) in req.headers() {
            let n = name.as_str();
            if matches!(n, "host" | "connection" | "content-length" | "user-agent") {
                continue;
            }
            let v = value
                .to_str()
                .map_err(|_| HttpError("header value not text".into()))?;
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(req.body());
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| HttpError(format!("connect: {}", e.kind())))?;
        let _ = tcp.set_nodelay(true);
        let raw = if https {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|_| HttpError("invalid TLS server name".into()))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
                .connect(name, tcp)
                .await
                .map_err(|e| HttpError(format!("TLS: {e}")))?;
            exchange(tls, &bytes).await?
        } else {
            exchange(tcp, &bytes).await?
        };
        parse_response(&raw)
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: &[u8],
) -> Result<Vec<u8>, HttpError> {
    s.write_all(request)
        .await
        .map_err(|e| HttpError(format!("write: {}", e.kind())))?;
    s.flush()
        .await
        .map_err(|e| HttpError(format!("write: {}", e.kind())))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(n) => n,
            // A peer that closes TLS without close_notify after a complete answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => 0,
            Err(e) => return Err(HttpError(format!("read: {}", e.kind()))),
        };
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > MAX_ANSWER {
            return Err(HttpError("answer too large".into()));
        }
        if complete(&out) {
            break;
        }
    }
    Ok(out)
}

/// Whether `raw` already holds a whole answer (so a server that keeps the connection open
/// despite `Connection: close` does not cost the timeout).
fn complete(raw: &[u8]) -> bool {
    let Some(end) = find(raw, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let body = &raw[end + 4..];
    for line in head.lines() {
        if let Some(v) = line.strip_prefix("content-length:") {
            return v.trim().parse::<usize>().is_ok_and(|n| body.len() >= n);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            return find(body, b"0\r\n\r\n")
                .is_some_and(|i| i == 0 || body[..i].ends_with(b"\r\n"));
        }
    }
    false
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses an HTTP/1.1 answer: status line, headers, and the body (by `Content-Length`,
/// chunked, or to the end).
pub(crate) fn parse_response(raw: &[u8]) -> Result<http::Response<Vec<u8>>, HttpError> {
    let bad = || HttpError("unreadable answer".into());
    let end = find(raw, b"\r\n\r\n").ok_or_else(bad)?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(bad)?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let mut builder = http::Response::builder().status(status);
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (k, v) = line.split_once(':').ok_or_else(bad)?;
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            length = Some(v.parse::<usize>().map_err(|_| bad())?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        }
        builder = builder.header(k, v);
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest).ok_or_else(bad)?
    } else if let Some(n) = length {
        rest.get(..n).ok_or_else(bad)?.to_vec()
    } else {
        rest.to_vec()
    };
    builder.body(body).map_err(|_| bad())
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

impl<'c> openidconnect::AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<Vec<u8>>, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: http::Request<Vec<u8>>) -> Self::Future {
        Box::pin(self.send(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_by_length_chunked_and_to_the_end() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiXX").expect("parse");
        assert_eq!(
            (r.status().as_u16(), r.body().as_slice()),
            (200, &b"hi"[..])
        );
        let r = parse_response(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n",
        )
        .expect("parse");
        assert_eq!(
            (r.status().as_u16(), r.body().as_slice()),
            (201, &b"abcde"[..])
        );
        let r = parse_response(b"HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/\r\n\r\nrest")
            .expect("parse");
        assert_eq!(r.status().as_u16(), 302);
        assert!(parse_response(b"garbage").is_err());
        assert!(complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"));
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhi"));
    }

    #[tokio::test]
    async fn plain_http_only_to_loopback() {
        let c = HttpClient::new().expect("client");
        let req = http::Request::get("http://example.com/x")
            .body(Vec::new())
            .expect("request");
        let e = c.send(req).await.expect_err("refused");
        assert!(e.0.contains("loopback"), "{e}");
    }
}
