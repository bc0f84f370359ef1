//! In-process capture servers for tests: SMTP for mails, HTTP for the SMS webhook.
//!
//! [`SmtpCapture::start`] binds `127.0.0.1:0` and serves any number of connections, speaking
//! just enough RFC 5321 for lettre's plain `smtp://` client: the `220` greeting, `EHLO`/`HELO`,
//! `MAIL FROM`, `RCPT TO`, `DATA` (with dot-unstuffing), `RSET`, `NOOP`, `VRFY` and `QUIT`. It
//! advertises neither `STARTTLS` nor `AUTH`. Every accepted mail becomes a [`CapturedMail`],
//! whose [`body_text`](CapturedMail::body_text) and [`header`](CapturedMail::header) undo the
//! MIME encodings lettre applies (parsed with `mail-parser`).
//!
//! ```ignore
//! let capture = SmtpCapture::start().await?;
//! let sender = SmtpEmailSender::from_url(&capture.url(), "nauth <no-reply@localhost>")?;
//! // ... trigger a mail ...
//! let mails = capture.wait_for(1, Duration::from_secs(5)).await;
//! let code = extract_code(&mails[0].body_text());
//! ```
//!
//! [`WebhookCapture::start`] binds `127.0.0.1:0` and records every HTTP request it is sent as a
//! [`CapturedRequest`], answering `200 OK` (or `500` on demand, to test retries); see its docs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mail_parser::{HeaderName, HeaderValue, MessageParser, MessagePart, MimeHeaders, PartType};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// The longest command or data line accepted (RFC 5321 allows 1000 octets; be generous).
const MAX_LINE: u64 = 64 * 1024;
/// The largest message accepted.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// One mail accepted by [`SmtpCapture`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedMail {
    /// The reverse path of `MAIL FROM` (without the angle brackets; empty for the null sender).
    pub mail_from: String,
    /// The forward paths of every accepted `RCPT TO`, in order (without the angle brackets).
    pub rcpt_to: Vec<String>,
    /// The message as received after `DATA`: headers and body, dot-unstuffed, every line ending
    /// in CRLF, without the terminating `.` line. Non-UTF-8 bytes are replaced.
    pub data: String,
}

#[derive(Default)]
struct Shared {
    mails: Mutex<Vec<CapturedMail>>,
    arrived: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An SMTP server on `127.0.0.1` that keeps every mail it is sent. Dropping it stops the server
/// and closes its connections.
pub struct SmtpCapture {
    /// The address the server listens on.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SmtpCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpCapture")
            .field("addr", &self.addr)
            .field("mails", &lock(&self.shared.mails).len())
            .finish()
    }
}

impl Drop for SmtpCapture {
    fn drop(&mut self) {
        // The accept task owns the connection tasks (a JoinSet), so this ends them too.
        self.task.abort();
    }
}

impl SmtpCapture {
    /// Binds `127.0.0.1:0` and starts serving on a tokio task. Must be called inside a tokio
    /// runtime.
    pub async fn start() -> std::io::Result<SmtpCapture> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(SmtpCapture { addr, shared, task })
    }

    /// The lettre URL of this server: `smtp://127.0.0.1:PORT` (plain SMTP, no TLS).
    pub fn url(&self) -> String {
        format!("smtp://{}:{}", self.addr.ip(), self.addr.port())
    }

    /// Every mail accepted so far, oldest first.
    pub fn messages(&self) -> Vec<CapturedMail> {
        lock(&self.shared.mails).clone()
    }

    /// Forgets every mail accepted so far.
    pub fn clear(&self) {
        lock(&self.shared.mails).clear();
    }

    /// Waits until at least `n` mails have been accepted, or `timeout` has passed, and returns
    /// every mail accepted by then (fewer than `n` on a timeout).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<CapturedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            // Register before checking, so a mail stored in between still wakes us.
            arrived.as_mut().enable();
            {
                let mails = lock(&self.shared.mails);
                if mails.len() >= n {
                    return mails.clone();
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.messages();
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _peer)) = accepted {
                    connections.spawn(serve(stream, Arc::clone(&shared)));
                }
                // An accept error (e.g. too many open files) is transient: keep serving.
            }
            Some(_finished) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Reads one line (through `\n`, at most [`MAX_LINE`] bytes) into `buf`. Returns `Ok(false)` at
/// end of stream and an error for an over-long line.
async fn read_line<R: AsyncRead + tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    buf.clear();
    let n = reader.take(MAX_LINE).read_until(b'\n', buf).await?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() != Some(&b'\n') {
        if n as u64 >= MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line too long",
            ));
        }
        // End of stream in the middle of a line.
        return Ok(false);
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(true)
}

/// The address inside `FROM:<addr> params` / `TO:<addr> params`, after the keyword.
fn parse_path(arg: &str, keyword: &str) -> Option<String> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        Some(inner[..end].to_owned())
    } else {
        let end = rest.find(' ').unwrap_or(rest.len());
        let path = &rest[..end];
        (!path.is_empty()).then(|| path.to_owned())
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    // A failed connection just ends; the client sees the error.
    let _ = serve_inner(stream, shared).await;
}

async fn serve_inner(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer
        .write_all(b"220 nauth-capture ESMTP ready\r\n")
        .await?;

    let mut mail_from: Option<String> = None;
    let mut rcpt_to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        match read_line(&mut reader, &mut line).await {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => {
                writer.write_all(b"500 5.5.2 Line too long\r\n").await?;
                return Err(e);
            }
        }
        let command = String::from_utf8_lossy(&line).into_owned();
        let (verb, arg) = match command.split_once(' ') {
            Some((verb, arg)) => (verb, arg.trim()),
            None => (command.trim(), ""),
        };
        let reply: &[u8] = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                mail_from = None;
                rcpt_to.clear();
                b"250-nauth-capture\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n"
            }
            "HELO" => {
                mail_from = None;
                rcpt_to.clear();
                b"250 nauth-capture\r\n"
            }
            "MAIL" => match parse_path(arg, "FROM:") {
                Some(path) => {
                    mail_from = Some(path);
                    rcpt_to.clear();
                    b"250 2.1.0 OK\r\n"
                }
                None => b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n",
            },
            "RCPT" => {
                if mail_from.is_none() {
                    b"503 5.5.1 MAIL first\r\n"
                } else {
                    match parse_path(arg, "TO:") {
                        Some(path) if !path.is_empty() => {
                            rcpt_to.push(path);
                            b"250 2.1.5 OK\r\n"
                        }
                        _ => b"501 5.5.4 Syntax: RCPT TO:<address>\r\n",
                    }
                }
            }
            "DATA" => {
                if mail_from.is_none() || rcpt_to.is_empty() {
                    b"503 5.5.1 RCPT first\r\n"
                } else {
                    writer
                        .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    let data = read_data(&mut reader, &mut line).await?;
                    let from = mail_from.take().unwrap_or_default();
                    let rcpts = std::mem::take(&mut rcpt_to);
                    match data {
                        Some(data) => {
                            lock(&shared.mails).push(CapturedMail {
                                mail_from: from,
                                rcpt_to: rcpts,
                                data,
                            });
                            shared.arrived.notify_waiters();
                            b"250 2.0.0 OK: queued\r\n"
                        }
                        None => b"552 5.3.4 Message too big\r\n",
                    }
                }
            }
            "RSET" => {
                mail_from = None;
                rcpt_to.clear();
                b"250 2.0.0 OK\r\n"
            }
            "NOOP" => b"250 2.0.0 OK\r\n",
            "VRFY" => b"252 2.5.0 Cannot VRFY user\r\n",
            "QUIT" => {
                writer.write_all(b"221 2.0.0 Bye\r\n").await?;
                writer.shutdown().await?;
                return Ok(());
            }
            "" => b"500 5.5.2 Empty command\r\n",
            _ => b"502 5.5.1 Command not implemented\r\n",
        };
        writer.write_all(reply).await?;
    }
}

/// Reads the DATA section up to the `.` line. Returns `None` (after draining it) when the
/// message is larger than [`MAX_MESSAGE`].
async fn read_data<R: AsyncRead + tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<Option<String>> {
    let mut data: Vec<u8> = Vec::new();
    let mut too_big = false;
    loop {
        if !read_line(reader, line).await? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed during DATA",
            ));
        }
        if line.as_slice() == b"." {
            break;
        }
        let content = line.strip_prefix(b".").unwrap_or(line);
        if data.len() + content.len() + 2 > MAX_MESSAGE {
            too_big = true;
        }
        if !too_big {
            data.extend_from_slice(content);
            data.extend_from_slice(b"\r\n");
        }
    }
    if too_big {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&data).into_owned()))
}

// ---------------------------------------------------------------------------------------------
// MIME decoding (mail-parser)
// ---------------------------------------------------------------------------------------------

impl CapturedMail {
    /// The first header called `name` (case-insensitive), unfolded, with RFC 2047 encoded words
    /// (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`) decoded and surrounding whitespace trimmed.
    pub fn header(&self, name: &str) -> Option<String> {
        // Every header read as unstructured text, so `From` or `Content-Type` come back as
        // written rather than as parsed structures. (mail-parser applies the default only
        // when some header is configured, hence the explicit `Subject`.)
        let message = MessageParser::new()
            .header_text(HeaderName::Subject)
            .default_header_text()
            .parse(self.data.as_bytes())?;
        let header = message
            .headers()
            .iter()
            .find(|h| h.name.as_str().eq_ignore_ascii_case(name))?;
        Some(match &header.value {
            HeaderValue::Text(text) => text.trim().to_owned(),
            HeaderValue::TextList(list) => list.join(", ").trim().to_owned(),
            _ => String::new(),
        })
    }

    /// The decoded plain-text body: headers stripped, the `Content-Transfer-Encoding`
    /// (quoted-printable, base64, 7bit/8bit) and the charset undone, line endings turned into
    /// `\n`. For a multipart mail, the first `text/plain` part (an empty string if there is
    /// none).
    pub fn body_text(&self) -> String {
        let Some(message) = MessageParser::default().parse(self.data.as_bytes()) else {
            return String::new();
        };
        let plain = message.parts.iter().find_map(|part| match &part.body {
            PartType::Text(text) if is_text_plain(part) => Some(text.to_string()),
            _ => None,
        });
        // A single-part mail of another type is still read as text.
        let single = || match message.parts.as_slice() {
            [only] => only.text_contents().map(str::to_owned),
            _ => None,
        };
        plain
            .or_else(single)
            .unwrap_or_default()
            .replace("\r\n", "\n")
    }
}

impl CapturedMail {
    /// The decoded `text/html` part of a multipart mail (transfer encoding and charset undone,
    /// line endings turned into `\n`), if there is one.
    pub fn body_html(&self) -> Option<String> {
        let message = MessageParser::default().parse(self.data.as_bytes())?;
        if message.parts.len() < 2 {
            return None;
        }
        message.parts.iter().find_map(|part| match &part.body {
            PartType::Html(html) => Some(html.replace("\r\n", "\n")),
            _ => None,
        })
    }

    /// The content types of the parts, in the order of the mail (`multipart/alternative`,
    /// `text/plain`, `text/html` for a text mail with an HTML alternative).
    pub fn part_types(&self) -> Vec<String> {
        let Some(message) = MessageParser::default().parse(self.data.as_bytes()) else {
            return Vec::new();
        };
        message
            .parts
            .iter()
            .map(|part| match part.content_type() {
                Some(ct) => format!(
                    "{}/{}",
                    ct.ctype().to_ascii_lowercase(),
                    ct.subtype().unwrap_or("").to_ascii_lowercase()
                ),
                None => "text/plain".to_owned(),
            })
            .collect()
    }
}

/// Whether a part is `text/plain` (the default of a part without `Content-Type`).
fn is_text_plain(part: &MessagePart<'_>) -> bool {
    part.content_type().is_none_or(|ct| {
        ct.ctype().eq_ignore_ascii_case("text")
            && ct
                .subtype()
                .is_none_or(|sub| sub.eq_ignore_ascii_case("plain"))
    })
}

// ---------------------------------------------------------------------------------------------
// HTTP webhook capture
// ---------------------------------------------------------------------------------------------

/// The largest request head (request line and headers) [`WebhookCapture`] accepts.
const MAX_HTTP_HEAD: usize = 64 * 1024;
/// The largest request body [`WebhookCapture`] accepts.
const MAX_HTTP_BODY: usize = 1024 * 1024;

/// One HTTP request received by [`WebhookCapture`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedRequest {
    /// The request method, e.g. `POST`.
    pub method: String,
    /// The request target as sent, e.g. `/sms` or `/sms?key=x`.
    pub path: String,
    /// Every header in order, names and values as sent (values trimmed).
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes; empty without that header). Non-UTF-8 bytes are
    /// replaced.
    pub body: String,
}

impl CapturedRequest {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct WebhookState {
    requests: Vec<CapturedRequest>,
    fail_next: usize,
}

#[derive(Default)]
struct WebhookShared {
    state: Mutex<WebhookState>,
    arrived: Notify,
}

/// A tiny HTTP/1.1 server on `127.0.0.1` that keeps every request it is sent: the receiving end
/// of [`WebhookSmsSender`](nauth_core::WebhookSmsSender) in tests.
///
/// It reads the request head and a `Content-Length` body, records a [`CapturedRequest`], and
/// answers `200 OK` with `Content-Length: 0` and `Connection: close` (or `500` while
/// [`fail_next`](Self::fail_next) lasts), one request per connection. Chunked bodies are not
/// supported. Dropping it stops the server and closes its connections.
///
/// ```ignore
/// let capture = WebhookCapture::start().await?;
/// let sender = WebhookSmsSender::new(&capture.url())?;
/// // ... trigger a text message ...
/// let requests = capture.wait_for(1, Duration::from_secs(5)).await;
/// let body: serde_json::Value = serde_json::from_str(&requests[0].body)?;
/// ```
pub struct WebhookCapture {
    /// The address the server listens on.
    pub addr: SocketAddr,
    shared: Arc<WebhookShared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for WebhookCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.shared.state);
        f.debug_struct("WebhookCapture")
            .field("addr", &self.addr)
            .field("requests", &state.requests.len())
            .field("fail_next", &state.fail_next)
            .finish()
    }
}

impl Drop for WebhookCapture {
    fn drop(&mut self) {
        // The accept task owns the connection tasks (a JoinSet), so this ends them too.
        self.task.abort();
    }
}

impl WebhookCapture {
    /// Binds `127.0.0.1:0` and starts serving on a tokio task. Must be called inside a tokio
    /// runtime.
    pub async fn start() -> std::io::Result<WebhookCapture> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(WebhookShared::default());
        let task = tokio::spawn(http_accept_loop(listener, Arc::clone(&shared)));
        Ok(WebhookCapture { addr, shared, task })
    }

    /// The webhook URL of this server: `http://127.0.0.1:PORT/sms`.
    pub fn url(&self) -> String {
        format!("http://{}:{}/sms", self.addr.ip(), self.addr.port())
    }

    /// Every request received so far (answered `200` or `500`), oldest first.
    pub fn requests(&self) -> Vec<CapturedRequest> {
        lock(&self.shared.state).requests.clone()
    }

    /// Forgets every request received so far (not the pending [`fail_next`](Self::fail_next)).
    pub fn clear(&self) {
        lock(&self.shared.state).requests.clear();
    }

    /// Makes the next `n` requests answer `500 Internal Server Error` (they are still
    /// recorded); replaces any count still pending. `0` cancels.
    pub fn fail_next(&self, n: usize) {
        lock(&self.shared.state).fail_next = n;
    }

    /// Waits until at least `n` requests have been received, or `timeout` has passed, and
    /// returns every request received by then (fewer than `n` on a timeout).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<CapturedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            // Register before checking, so a request stored in between still wakes us.
            arrived.as_mut().enable();
            {
                let state = lock(&self.shared.state);
                if state.requests.len() >= n {
                    return state.requests.clone();
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.requests();
            }
        }
    }
}

async fn http_accept_loop(listener: TcpListener, shared: Arc<WebhookShared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _peer)) = accepted {
                    connections.spawn(serve_http(stream, Arc::clone(&shared)));
                }
                // An accept error (e.g. too many open files) is transient: keep serving.
            }
            Some(_finished) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves one request on `stream` (plain TCP, or TLS in tests); a broken request just ends the
/// connection.
async fn serve_http<S>(stream: S, shared: Arc<WebhookShared>)
where
    S: AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _ = serve_http_inner(stream, &shared).await;
}

async fn serve_http_inner<S>(stream: S, shared: &WebhookShared) -> std::io::Result<()>
where
    S: AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let invalid = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
    let mut stream = BufReader::new(stream);
    let mut line = Vec::new();
    let mut head_len = 0;

    if !read_line(&mut stream, &mut line).await? {
        return Ok(());
    }
    head_len += line.len();
    let request_line = String::from_utf8_lossy(&line).into_owned();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return respond(stream, "400 Bad Request").await;
    };
    if !version.starts_with("HTTP/1.") {
        return respond(stream, "505 HTTP Version Not Supported").await;
    }

    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        if !read_line(&mut stream, &mut line).await? {
            return Err(invalid("connection closed in the request head"));
        }
        if line.is_empty() {
            break;
        }
        head_len += line.len();
        if head_len > MAX_HTTP_HEAD {
            return respond(stream, "431 Request Header Fields Too Large").await;
        }
        let text = String::from_utf8_lossy(&line);
        let Some((name, value)) = text.split_once(':') else {
            return respond(stream, "400 Bad Request").await;
        };
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }

    let content_length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>());
    let length = match content_length {
        None => 0,
        Some(Ok(n)) if n <= MAX_HTTP_BODY => n,
        Some(Ok(_)) => return respond(stream, "413 Content Too Large").await,
        Some(Err(_)) => return respond(stream, "400 Bad Request").await,
    };
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await?;

    let status = {
        let mut state = lock(&shared.state);
        state.requests.push(CapturedRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        if state.fail_next > 0 {
            state.fail_next -= 1;
            "500 Internal Server Error"
        } else {
            "200 OK"
        }
    };
    shared.arrived.notify_waiters();
    respond(stream, status).await
}

/// Writes an empty answer with `status` and closes the connection.
async fn respond<S>(mut stream: BufReader<S>, status: &str) -> std::io::Result<()>
where
    S: AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(answer.as_bytes()).await?;
    stream.flush().await?;
    stream.shutdown().await
}
