//! In-process capture servers for tests: SMTP for mails, HTTP for the SMS webhook.
//!
//! [`SmtpCapture::start`] binds `127.0.0.1:0` and serves any number of connections, speaking
//! just enough RFC 5321 for lettre's plain `smtp://` client: the `220` greeting, `EHLO`/`HELO`,
//! `MAIL FROM`, `RCPT TO`, `DATA` (with dot-unstuffing), `RSET`, `NOOP`, `VRFY` and `QUIT`. It
//! advertises neither `STARTTLS` nor `AUTH`. Every accepted mail becomes a [`CapturedMail`],
//! whose [`body_text`](CapturedMail::body_text) and [`header`](CapturedMail::header) undo the
//! MIME encodings lettre applies.
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
// MIME decoding
// ---------------------------------------------------------------------------------------------

impl CapturedMail {
    /// The first header called `name` (case-insensitive), unfolded, with RFC 2047 encoded words
    /// (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`) decoded and surrounding whitespace trimmed.
    pub fn header(&self, name: &str) -> Option<String> {
        let (headers, _body) = split_message(&self.data);
        headers
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| decode_encoded_words(value.trim()))
    }

    /// The decoded plain-text body: headers stripped, the `Content-Transfer-Encoding`
    /// (quoted-printable, base64, 7bit/8bit) undone, read as UTF-8, line endings turned into
    /// `\n`. For a multipart mail, the first `text/plain` part (an empty string if there is
    /// none).
    pub fn body_text(&self) -> String {
        let (headers, body) = split_message(&self.data);
        decode_entity(&headers, body, true)
            .unwrap_or_default()
            .replace("\r\n", "\n")
    }
}

/// Splits a message or MIME part into its unfolded headers and its body.
fn split_message(data: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = if let Some(body) = data.strip_prefix("\r\n") {
        ("", body)
    } else if let Some(body) = data.strip_prefix('\n') {
        ("", body)
    } else if let Some(i) = data.find("\r\n\r\n") {
        (&data[..i], &data[i + 4..])
    } else if let Some(i) = data.find("\n\n") {
        (&data[..i], &data[i + 2..])
    } else {
        (data, "")
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for raw in head.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push_str(raw);
            }
        } else if let Some((name, value)) = raw.split_once(':') {
            headers.push((name.trim().to_owned(), value.to_owned()));
        }
    }
    (headers, body)
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// A parameter of a structured header value such as `multipart/alternative; boundary="x"`.
fn header_param(value: &str, param: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (name, val) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case(param)
            .then(|| val.trim().trim_matches('"').to_owned())
    })
}

/// Decodes an entity to text: a single part is transfer-decoded (whatever its type when
/// `top_level`, else only `text/plain`); a multipart yields its first `text/plain` part.
fn decode_entity(headers: &[(String, String)], body: &str, top_level: bool) -> Option<String> {
    let content_type = find_header(headers, "content-type").unwrap_or("text/plain");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if mime.starts_with("multipart/") {
        let boundary = header_param(content_type, "boundary")?;
        return multipart_parts(body, &boundary)
            .into_iter()
            .find_map(|part| {
                let (h, b) = split_message(part);
                decode_entity(&h, b, false)
            });
    }
    if !top_level && mime != "text/plain" {
        return None;
    }
    let encoding = find_header(headers, "content-transfer-encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "quoted-printable" => decode_quoted_printable(body),
        "base64" => decode_base64(body),
        _ => body.as_bytes().to_vec(),
    };
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The parts of a multipart body (the text between the delimiter lines).
fn multipart_parts<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed == delimiter || trimmed == format!("{delimiter}--") {
            if let Some(s) = start {
                // The CRLF before a delimiter belongs to the delimiter.
                let part = &body[s..offset];
                let part = part.strip_suffix('\n').unwrap_or(part);
                parts.push(part.strip_suffix('\r').unwrap_or(part));
            }
            if trimmed != delimiter {
                break;
            }
            start = Some(offset + line.len());
        }
        offset += line.len();
    }
    parts
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `=XX` escapes; with `underscore_is_space`, `_` is a space (RFC 2047 "Q").
fn decode_hex_escapes(input: &[u8], underscore_is_space: bool, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'=' if i + 2 < input.len() => {
                if let (Some(h), Some(l)) = (hex_value(input[i + 1]), hex_value(input[i + 2])) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                out.push(b'=');
            }
            b'_' if underscore_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
}

/// Decodes a quoted-printable body (RFC 2045 §6.7): trailing whitespace is dropped, `=` at the
/// end of a line is a soft line break, `=XX` is a byte.
fn decode_quoted_printable(body: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut lines = body.split('\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = line.trim_end_matches([' ', '\t']);
        let (line, soft) = match line.strip_suffix('=') {
            Some(l) => (l, true),
            None => (line, false),
        };
        decode_hex_escapes(line.as_bytes(), false, &mut out);
        if !soft && lines.peek().is_some() {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// Decodes standard base64, skipping line breaks and any other non-alphabet byte, stopping at
/// padding.
fn decode_base64(input: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in input.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Decodes one RFC 2047 encoded word's payload; `None` if it is malformed.
fn decode_word(charset: &str, encoding: &str, text: &str) -> Option<String> {
    let bytes = match encoding {
        "b" | "B" => decode_base64(text),
        "q" | "Q" => {
            let mut out = Vec::new();
            decode_hex_escapes(text.as_bytes(), true, &mut out);
            out
        }
        _ => return None,
    };
    let charset = charset.split('*').next().unwrap_or_default();
    if charset.eq_ignore_ascii_case("iso-8859-1") || charset.eq_ignore_ascii_case("latin1") {
        Some(bytes.iter().map(|&b| char::from(b)).collect())
    } else {
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Decodes RFC 2047 encoded words in a header value; whitespace between two adjacent encoded
/// words is dropped.
fn decode_encoded_words(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    let mut pending_space = String::new();
    let mut last_was_word = false;
    loop {
        let Some(start) = rest.find("=?") else {
            out.push_str(&pending_space);
            out.push_str(rest);
            break;
        };
        let literal = &rest[..start];
        let candidate = &rest[start + 2..];
        let parsed = (|| {
            let (charset, after) = candidate.split_once('?')?;
            let (encoding, after) = after.split_once('?')?;
            let end = after.find("?=")?;
            let text = &after[..end];
            let consumed = 2 + charset.len() + 1 + encoding.len() + 1 + end + 2;
            Some((decode_word(charset, encoding, text)?, consumed))
        })();
        match parsed {
            Some((decoded, consumed)) => {
                let only_space = literal.chars().all(char::is_whitespace);
                if !(last_was_word && only_space) {
                    out.push_str(&pending_space);
                    out.push_str(literal);
                }
                pending_space.clear();
                out.push_str(&decoded);
                last_was_word = true;
                rest = &rest[start + consumed..];
            }
            None => {
                out.push_str(&pending_space);
                pending_space.clear();
                out.push_str(&rest[..start + 2]);
                last_was_word = false;
                rest = &rest[start + 2..];
            }
        }
    }
    out
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
/// of [`WebhookSmsSender`](crate::notify::WebhookSmsSender) in tests.
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;
    use crate::notify::{
        EmailMessage, EmailSender, MemoryOutbox, NotifyError, SmsMessage, SmsSender,
        SmtpEmailSender, WebhookSmsSender, extract_code, extract_token,
    };

    const FROM: &str = "nauth <no-reply@localhost>";
    const WAIT: Duration = Duration::from_secs(5);

    fn mail(to: &str, subject: &str, text: &str) -> EmailMessage {
        EmailMessage {
            to: to.to_owned(),
            subject: subject.to_owned(),
            text: text.to_owned(),
        }
    }

    #[tokio::test]
    async fn smtp_round_trip_quoted_printable() {
        let capture = SmtpCapture::start().await.expect("start capture");
        let sender = SmtpEmailSender::from_url(&capture.url(), FROM).expect("sender");
        let link = "http://x/auth/verify-email?token=abc_DEF-1";
        let text = format!(
            "Grüße!\n\nYour verification code is 123456.\n\nOr open this link: {link}\n\n\
             A long line so that the encoder has to wrap it somewhere, with a few more words \
             and umlauts: äöü ÄÖÜ ß, then some = signs == and the end.\n.a line starting with a dot\n"
        );
        let subject = "Bestätigen Sie Ihre E-Mail-Adresse – nauth";
        EmailSender::send(&sender, &mail("jane@example.com", subject, &text))
            .await
            .expect("send");

        let mails = capture.wait_for(1, WAIT).await;
        assert_eq!(mails.len(), 1);
        let got = &mails[0];
        assert_eq!(got.mail_from, "no-reply@localhost");
        assert_eq!(got.rcpt_to, vec!["jane@example.com".to_owned()]);
        assert_eq!(got.header("subject").as_deref(), Some(subject));
        assert_eq!(got.header("To").as_deref(), Some("jane@example.com"));
        assert!(
            got.header("From")
                .expect("From")
                .contains("no-reply@localhost")
        );
        assert!(
            got.header("Content-Type")
                .expect("Content-Type")
                .to_ascii_lowercase()
                .starts_with("text/plain; charset=utf-8")
        );
        assert_eq!(
            got.header("Content-Transfer-Encoding")
                .map(|e| e.to_ascii_lowercase())
                .as_deref(),
            Some("quoted-printable")
        );
        assert!(
            got.data.contains("=\r\n"),
            "no soft line break: {}",
            got.data
        );
        let body = got.body_text();
        assert_eq!(body.trim_end(), text.trim_end());
        assert!(body.contains("123456"));
        assert!(body.contains(link));
        assert_eq!(extract_code(&body).as_deref(), Some("123456"));
        assert_eq!(extract_token(&body).as_deref(), Some("abc_DEF-1"));
    }

    #[tokio::test]
    async fn smtp_round_trip_base64_and_dot_stuffing() {
        let capture = SmtpCapture::start().await.expect("start capture");
        let sender = SmtpEmailSender::from_url(&capture.url(), FROM).expect("sender");

        // Mostly non-ASCII: lettre picks base64.
        let text = "Код подтверждения: 654321\nСсылка: http://x/auth/magic-link/verify?token=Zz9_-q\nこんにちは、世界。ありがとうございます。\n";
        EmailSender::send(&sender, &mail("a@example.com", "Ваш код", text))
            .await
            .expect("send base64");
        // Pure ASCII: 7bit, so lettre dot-stuffs the lines that start with a dot.
        let ascii = "Your code: 111222\n.\n..two dots\n.one dot\nend\n";
        EmailSender::send(&sender, &mail("b@example.com", "Plain", ascii))
            .await
            .expect("send 7bit");

        let mails = capture.wait_for(2, WAIT).await;
        assert_eq!(mails.len(), 2);
        assert_eq!(
            mails[0]
                .header("Content-Transfer-Encoding")
                .map(|e| e.to_ascii_lowercase())
                .as_deref(),
            Some("base64")
        );
        assert_eq!(mails[0].header("Subject").as_deref(), Some("Ваш код"));
        assert_eq!(mails[0].body_text().trim_end(), text.trim_end());
        assert_eq!(
            extract_code(&mails[0].body_text()).as_deref(),
            Some("654321")
        );
        assert_eq!(
            extract_token(&mails[0].body_text()).as_deref(),
            Some("Zz9_-q")
        );

        assert_eq!(mails[1].rcpt_to, vec!["b@example.com".to_owned()]);
        assert_eq!(
            mails[1]
                .header("Content-Transfer-Encoding")
                .map(|e| e.to_ascii_lowercase())
                .as_deref(),
            Some("7bit")
        );
        assert_eq!(mails[1].body_text().trim_end(), ascii.trim_end());
        assert_eq!(capture.messages(), mails);
    }

    #[tokio::test]
    async fn capture_speaks_the_basic_commands() {
        let capture = SmtpCapture::start().await.expect("start capture");
        let stream = TcpStream::connect(capture.addr).await.expect("connect");
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        let mut line = Vec::new();
        let mut expect = async |r: &mut BufReader<_>, code: &str| {
            // Read a (possibly multi-line) reply and check its code.
            loop {
                assert!(read_line(r, &mut line).await.expect("read"), "closed");
                let text = String::from_utf8_lossy(&line).into_owned();
                assert!(text.starts_with(code), "expected {code}, got {text}");
                if text.as_bytes().get(3) != Some(&b'-') {
                    return text;
                }
                assert!(!text.contains("STARTTLS") && !text.contains("AUTH"));
            }
        };
        expect(&mut r, "220").await;
        for (cmd, code) in [
            ("EHLO test", "250"),
            ("NOOP", "250"),
            ("RCPT TO:<x@y>", "503"),
            ("DATA", "503"),
            ("STARTTLS", "502"),
            ("MAIL FROM:<> SIZE=10", "250"),
            ("RCPT TO:<x@y>", "250"),
            ("RSET", "250"),
            ("DATA", "503"),
            ("mail from:<s@y>", "250"),
            ("rcpt to:<x@y>", "250"),
            ("RCPT TO:<z@y>", "250"),
            ("DATA", "354"),
        ] {
            w.write_all(format!("{cmd}\r\n").as_bytes())
                .await
                .expect("write");
            expect(&mut r, code).await;
        }
        w.write_all(b"Subject: hi\r\n\r\n..x\r\nbody\r\n.\r\n")
            .await
            .expect("write data");
        expect(&mut r, "250").await;
        w.write_all(b"QUIT\r\n").await.expect("quit");
        expect(&mut r, "221").await;

        let mails = capture.wait_for(1, WAIT).await;
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].mail_from, "s@y");
        assert_eq!(mails[0].rcpt_to, vec!["x@y".to_owned(), "z@y".to_owned()]);
        assert_eq!(mails[0].data, "Subject: hi\r\n\r\n.x\r\nbody\r\n");
        assert_eq!(mails[0].header("SUBJECT").as_deref(), Some("hi"));
        assert_eq!(mails[0].body_text(), ".x\nbody\n");
        capture.clear();
        assert!(capture.messages().is_empty());
    }

    #[tokio::test]
    async fn wait_for_times_out_with_what_it_has() {
        let capture = SmtpCapture::start().await.expect("start capture");
        let started = Instant::now();
        let mails = capture.wait_for(1, Duration::from_millis(200)).await;
        assert!(mails.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(150));
    }

    #[test]
    fn multipart_and_encoded_words_decode() {
        let data = "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus?=\r\n =?utf-8?b?QmVybGlu?= !\r\n\
                    Content-Type: multipart/alternative;\r\n boundary=\"XyZ\"\r\n\r\n\
                    preamble\r\n--XyZ\r\nContent-Type: text/plain; charset=utf-8\r\n\
                    Content-Transfer-Encoding: quoted-printable\r\n\r\n\
                    Code 123456 =\r\nGr=C3=BC=C3=9Fe   \r\nx=3Dy\r\n--XyZ\r\n\
                    Content-Type: text/html\r\n\r\n<p>html</p>\r\n--XyZ--\r\n";
        let m = CapturedMail {
            mail_from: String::new(),
            rcpt_to: vec![],
            data: data.to_owned(),
        };
        assert_eq!(m.header("subject").as_deref(), Some("Grüße ausBerlin !"));
        assert_eq!(m.body_text(), "Code 123456 Grüße\nx=y");
        assert_eq!(m.header("X-Missing"), None);
        assert_eq!(decode_encoded_words("plain =?bad"), "plain =?bad");
        assert_eq!(
            decode_encoded_words("a =?iso-8859-1?q?caf=E9?= b"),
            "a café b"
        );
    }

    #[tokio::test]
    async fn memory_outbox_records_both_kinds() {
        let outbox = MemoryOutbox::new();
        let engine_side = outbox.clone();
        EmailSender::send(
            &engine_side,
            &mail("Jane@Example.com", "one", "code 111111"),
        )
        .await
        .expect("mail");
        EmailSender::send(&engine_side, &mail("bob@example.com", "two", "code 222222"))
            .await
            .expect("mail");
        EmailSender::send(
            &engine_side,
            &mail("jane@example.com", "three", "code 333333"),
        )
        .await
        .expect("mail");
        SmsSender::send(
            &engine_side,
            &SmsMessage {
                to: "+15551234567".into(),
                text: "code 444444".into(),
            },
        )
        .await
        .expect("sms");

        assert_eq!(outbox.emails().len(), 3);
        assert_eq!(outbox.sms().len(), 1);
        let last = outbox.last_email_to("jane@example.com").expect("jane");
        assert_eq!(last.subject, "three");
        assert_eq!(
            outbox
                .emails_to("JANE@example.com")
                .iter()
                .map(|m| m.subject.as_str())
                .collect::<Vec<_>>(),
            ["one", "three"]
        );
        assert_eq!(outbox.last_email_to("nobody@example.com"), None);
        assert_eq!(
            outbox.last_sms_to("+1 555 123 4567").map(|m| m.text),
            Some("code 444444".to_owned())
        );
        assert_eq!(outbox.last_sms_to("+15550000000"), None);
        assert!(!format!("{outbox:?}").contains("111111"));
        outbox.clear();
        assert!(engine_side.emails().is_empty() && engine_side.sms().is_empty());
    }

    #[test]
    fn from_url_validates_its_input() {
        for bad in [
            "",
            "not a url",
            "localhost:25",
            "http://localhost:25",
            "smtp://",
            "smtp://host:99999",
            "smtp://host?tls=sometimes",
        ] {
            match SmtpEmailSender::from_url(bad, FROM) {
                Err(NotifyError::Config(_)) => {}
                other => panic!("{bad:?}: expected Config, got {other:?}"),
            }
        }
        for bad_from in ["", "no at sign", "nauth <>"] {
            assert!(matches!(
                SmtpEmailSender::from_url("smtp://localhost:25", bad_from),
                Err(NotifyError::Config(_))
            ));
        }
        let err = SmtpEmailSender::from_url("smtps://user:s3cret@", FROM).expect_err("no host");
        assert!(!err.to_string().contains("s3cret"));
        for good in [
            "smtp://127.0.0.1:2525",
            "smtp://localhost",
            "smtp://user:p%40ss@mail.example.com:587?tls=required",
            "smtp://mail.example.com:587?tls=opportunistic",
            "smtps://user:pass@mail.example.com:465",
            "smtps://mail.example.com",
        ] {
            let sender = SmtpEmailSender::from_url(good, FROM).expect(good);
            assert!(!format!("{sender:?}").contains("pass"));
        }
        assert!(SmtpEmailSender::from_url("smtp://localhost", "no-reply@localhost").is_ok());
    }

    #[tokio::test]
    async fn bad_recipient_is_an_address_error() {
        let sender = SmtpEmailSender::from_url("smtp://127.0.0.1:9", FROM).expect("sender");
        for to in ["", "nobody", "a@", "<@x>"] {
            match EmailSender::send(&sender, &mail(to, "s", "code 123456")).await {
                Err(NotifyError::Address(reason)) => assert!(!reason.contains("123456")),
                other => panic!("{to:?}: expected Address, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn closed_port_fails_fast() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let sender = SmtpEmailSender::from_url(&format!("smtp://{addr}"), FROM).expect("sender");
        let started = Instant::now();
        let result = tokio::time::timeout(
            Duration::from_secs(15),
            EmailSender::send(&sender, &mail("jane@example.com", "s", "code 123456")),
        )
        .await
        .expect("send returned within the timeout");
        match result {
            Err(NotifyError::Delivery(reason)) => assert!(!reason.contains("123456"), "{reason}"),
            other => panic!("expected Delivery, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(11));
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Accepts, then never says a word.
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let sender = SmtpEmailSender::from_url(&format!("smtp://{addr}"), FROM)
            .expect("sender")
            .with_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let result =
            EmailSender::send(&sender, &mail("jane@example.com", "s", "code 123456")).await;
        assert!(
            matches!(result, Err(NotifyError::Delivery(_))),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        hold.abort();
    }

    #[tokio::test]
    async fn rejection_does_not_leak_the_body() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // A relay that quotes the message back in its rejection.
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let (r, mut w) = stream.into_split();
            let mut r = BufReader::new(r);
            let mut line = Vec::new();
            w.write_all(b"220 hi\r\n").await.expect("greet");
            let mut in_data = false;
            while read_line(&mut r, &mut line).await.unwrap_or(false) {
                let reply: &[u8] = if in_data {
                    if line.as_slice() != b"." {
                        continue;
                    }
                    in_data = false;
                    b"554 5.7.1 rejected: Your code is 123456\r\n"
                } else if line.starts_with(b"DATA") {
                    in_data = true;
                    b"354 go\r\n"
                } else if line.starts_with(b"QUIT") {
                    b"221 bye\r\n"
                } else {
                    b"250 ok\r\n"
                };
                w.write_all(reply).await.expect("reply");
            }
        });
        let sender = SmtpEmailSender::from_url(&format!("smtp://{addr}"), FROM).expect("sender");
        let result = EmailSender::send(
            &sender,
            &mail("jane@example.com", "s", "Your code is 123456"),
        )
        .await;
        match result {
            Err(NotifyError::Delivery(reason)) => {
                assert!(reason.contains("554"), "{reason}");
                assert!(!reason.contains("123456"), "{reason}");
            }
            other => panic!("expected Delivery, got {other:?}"),
        }
        server.abort();
    }

    // -----------------------------------------------------------------------------------------
    // SMS webhook
    // -----------------------------------------------------------------------------------------

    const SMS_TEXT: &str = "Your nauth code is 482913. It expires in 15 minutes.";

    fn sms() -> SmsMessage {
        SmsMessage {
            to: "+15551234567".to_owned(),
            text: SMS_TEXT.to_owned(),
        }
    }

    /// Asserts that a delivery failed without leaking the text or the code.
    fn assert_clean_delivery_error(result: Result<(), NotifyError>) -> String {
        match result {
            Err(NotifyError::Delivery(reason)) => {
                let shown = NotifyError::Delivery(reason.clone()).to_string();
                for leak in ["482913", "nauth code", "+15551234567"] {
                    assert!(!shown.contains(leak), "{shown:?} leaks {leak:?}");
                }
                reason
            }
            other => panic!("expected Delivery, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn webhook_round_trip() {
        let capture = WebhookCapture::start().await.expect("capture");
        let sender = WebhookSmsSender::new(&capture.url()).expect("sender");
        SmsSender::send(&sender, &sms()).await.expect("delivered");

        let requests = capture.wait_for(1, WAIT).await;
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/sms");
        assert_eq!(
            request.header("host"),
            Some(format!("127.0.0.1:{}", capture.addr.port()).as_str())
        );
        assert_eq!(request.header("Content-Type"), Some("application/json"));
        assert_eq!(
            request.header("content-length"),
            Some(request.body.len().to_string().as_str())
        );
        assert_eq!(request.header("connection"), Some("close"));
        let body: serde_json::Value = serde_json::from_str(&request.body).expect("JSON body");
        assert_eq!(
            body,
            serde_json::json!({"to": "+15551234567", "message": SMS_TEXT})
        );
        assert_eq!(
            body["message"].as_str().and_then(extract_code).as_deref(),
            Some("482913")
        );
    }

    #[tokio::test]
    async fn webhook_escapes_and_counts_bytes_not_chars() {
        let capture = WebhookCapture::start().await.expect("capture");
        let sender = WebhookSmsSender::new(&format!("{}?key=abc", capture.url())).expect("sender");
        let text = "Code \"123456\"\nGrüße ✓ \\ end";
        SmsSender::send(
            &sender,
            &SmsMessage {
                to: "+4915112345678".into(),
                text: text.into(),
            },
        )
        .await
        .expect("delivered");
        let request = capture.requests().pop().expect("one request");
        assert_eq!(request.path, "/sms?key=abc");
        assert_eq!(
            request.header("content-length"),
            Some(request.body.len().to_string().as_str())
        );
        let body: serde_json::Value = serde_json::from_str(&request.body).expect("JSON body");
        assert_eq!(body["message"], text);
        assert_eq!(body["to"], "+4915112345678");
    }

    #[tokio::test]
    async fn webhook_retries_once_after_a_failure() {
        let capture = WebhookCapture::start().await.expect("capture");
        capture.fail_next(1);
        let sender = WebhookSmsSender::new(&capture.url()).expect("sender");
        SmsSender::send(&sender, &sms())
            .await
            .expect("the retry succeeds");
        let requests = capture.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0], requests[1], "the retry sends the same request");
    }

    #[tokio::test]
    async fn webhook_gives_up_after_two_failures() {
        let capture = WebhookCapture::start().await.expect("capture");
        capture.fail_next(2);
        let sender = WebhookSmsSender::new(&capture.url()).expect("sender");
        let reason = assert_clean_delivery_error(SmsSender::send(&sender, &sms()).await);
        assert!(reason.contains("500"), "{reason}");
        assert_eq!(capture.requests().len(), 2, "one try and one retry");
        // The failures are used up: the next message goes through on the first try.
        SmsSender::send(&sender, &sms()).await.expect("delivered");
        assert_eq!(capture.requests().len(), 3);
    }

    #[tokio::test]
    async fn webhook_silent_server_times_out() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Accepts, reads nothing, never answers.
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let sender = WebhookSmsSender::new(&format!("http://{addr}/sms"))
            .expect("sender")
            .with_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let reason = assert_clean_delivery_error(SmsSender::send(&sender, &sms()).await);
        let elapsed = started.elapsed();
        assert!(reason.contains("timed out"), "{reason}");
        assert!(
            elapsed >= Duration::from_millis(600),
            "retried: {elapsed:?}"
        );
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        hold.abort();
    }

    #[tokio::test]
    async fn webhook_closed_port_fails_fast() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let sender = WebhookSmsSender::new(&format!("http://{addr}/sms")).expect("sender");
        let started = Instant::now();
        let reason = assert_clean_delivery_error(SmsSender::send(&sender, &sms()).await);
        assert!(reason.contains("connect"), "{reason}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn webhook_rejects_a_non_http_answer() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Reads the whole request (it ends with the JSON body's `}`), then answers garbage that
        // quotes the code and closes.
        let server = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut chunk = [0u8; 1024];
                while !request.ends_with(b"}") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = stream.write_all(b"SMS 482913 rejected\r\n").await;
            }
        });
        let sender = WebhookSmsSender::new(&format!("http://{addr}/sms")).expect("sender");
        let reason = assert_clean_delivery_error(SmsSender::send(&sender, &sms()).await);
        assert!(reason.contains("not an HTTP status line"), "{reason}");
        server.abort();
    }

    #[test]
    fn webhook_url_is_validated() {
        for bad in [
            "",
            "not a url",
            "ftp://x",
            "ftp://example.com/sms",
            "smtp://localhost:25",
            "http://",
            "http:///sms",
            "http://:8080/sms",
            "https://host:0/sms",
            "https://host:99999/sms",
            "https://host:/sms",
            "http://user:s3cret@host/sms",
            "http://ho st/sms",
            "http://host/s ms",
            "http://host/sms\r\nX-Injected: 1",
            "http://hôst/sms",
            "http://[::1/sms",
            "http://[nonsense]/sms",
            "http://host:80:81/sms",
            "//host/sms",
        ] {
            match WebhookSmsSender::new(bad) {
                Err(NotifyError::Config(reason)) => {
                    assert!(!reason.contains("s3cret"), "{reason}");
                }
                other => panic!("{bad:?}: expected Config, got {other:?}"),
            }
        }
        for good in [
            "http://127.0.0.1:8080/sms",
            "http://localhost/",
            "http://localhost",
            "HTTP://sms.internal:8080/v1/send?key=s3cret",
            "https://api.example.com/v1/sms?key=s3cret#frag",
            "https://[::1]:8443/sms",
            "http://[::1]/sms",
        ] {
            let sender = WebhookSmsSender::new(good).expect(good);
            let debug = format!("{sender:?}");
            assert!(
                !debug.contains("s3cret") && !debug.contains("/v1"),
                "{debug}"
            );
        }
        let debug = format!(
            "{:?}",
            WebhookSmsSender::new("https://api.example.com/v1/sms?key=s3cret").expect("sender")
        );
        assert!(
            debug.contains("https") && debug.contains("api.example.com"),
            "{debug}"
        );
    }

    // A private CA and a `localhost` / `127.0.0.1` server certificate it signed (ECDSA P-256,
    // valid 2020–2120), generated with openssl for these tests only.
    const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBYjCCAQmgAwIBAgIBATAKBggqhkjOPQQDAjAYMRYwFAYDVQQDDA1uYXV0aCB0
ZXN0IENBMCAXDTIwMDEwMTAwMDAwMFoYDzIxMjAwMTAxMDAwMDAwWjAYMRYwFAYD
VQQDDA1uYXV0aCB0ZXN0IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQsmh
QksM2EC0ZCrpqnxb/1L3ytwhsjneee0prY0OPwm/Bd0hvEE50Ls3mcADQK/hwRYm
kgwlWtqrI/fxY0QhdaNCMEAwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMC
AQYwHQYDVR0OBBYEFCPV86oQFvjZdEejSYgYGFl1SALcMAoGCCqGSM49BAMCA0cA
MEQCH20CIUD5CQbUiReqZYH0+tx+IgarTpjB7lLbZedpmvcCIQDsNV83Vqg/wGUP
YolcCPqQ6F6WTAxWVMCT/UWwVHrFkg==
-----END CERTIFICATE-----
";
    const TEST_SERVER_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBsDCCAVagAwIBAgIBAjAKBggqhkjOPQQDAjAYMRYwFAYDVQQDDA1uYXV0aCB0
ZXN0IENBMCAXDTIwMDEwMTAwMDAwMFoYDzIxMjAwMTAxMDAwMDAwWjAUMRIwEAYD
VQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARKMtgUHOLN
iaZ2kf3HUScWjUoYXTJ82BPkEc81Gh+j+bIH3xUjHoSj8LOeyFYA/HjDEp5LKU53
FXq/sGVeWeu2o4GSMIGPMAwGA1UdEwEB/wQCMAAwDgYDVR0PAQH/BAQDAgeAMBMG
A1UdJQQMMAoGCCsGAQUFBwMBMBoGA1UdEQQTMBGCCWxvY2FsaG9zdIcEfwAAATAf
BgNVHSMEGDAWgBQj1fOqEBb42XRHo0mIGBhZdUgC3DAdBgNVHQ4EFgQU1GMM+LNU
ya2L19fGovTYxvw298EwCgYIKoZIzj0EAwIDSAAwRQIgULPPGp8hZXshasC7Je6R
OO+8M72EEDywdM7miXwPu3ACIQDg3etu1CWPa5z3X9bb2MpWg/+hmWvwOCgP86Pk
NJFWQA==
-----END CERTIFICATE-----
";
    const TEST_SERVER_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgtMZg7AW1l6AY5jYM
5zZ9jvHU6Xa9PZs0AZi8lOToM7ChRANCAARKMtgUHOLNiaZ2kf3HUScWjUoYXTJ8
2BPkEc81Gh+j+bIH3xUjHoSj8LOeyFYA/HjDEp5LKU53FXq/sGVeWeu2
-----END PRIVATE KEY-----
";

    /// Serves HTTPS with the test certificate, recording into a fresh [`WebhookShared`].
    async fn start_tls_capture() -> (SocketAddr, Arc<WebhookShared>, JoinHandle<()>) {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio_rustls::rustls::{self, ServerConfig};

        let cert = CertificateDer::from_pem_slice(TEST_SERVER_CERT_PEM.as_bytes()).expect("cert");
        let key = PrivateKeyDer::from_pem_slice(TEST_SERVER_KEY_PEM.as_bytes()).expect("key");
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("protocols")
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(WebhookShared::default());
        let recorder = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let recorder = Arc::clone(&recorder);
                connections.spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        serve_http(tls, recorder).await;
                    }
                });
            }
        });
        (addr, shared, task)
    }

    fn test_roots() -> tokio_rustls::rustls::RootCertStore {
        use tokio_rustls::rustls::pki_types::CertificateDer;
        use tokio_rustls::rustls::pki_types::pem::PemObject;

        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(TEST_CA_PEM.as_bytes()).expect("CA"))
            .expect("add CA");
        roots
    }

    #[tokio::test]
    async fn webhook_https_round_trip() {
        let (addr, shared, task) = start_tls_capture().await;
        for host in ["localhost", "127.0.0.1"] {
            let sender = WebhookSmsSender::new(&format!("https://{host}:{}/sms", addr.port()))
                .expect("sender")
                .with_tls_roots(test_roots())
                .expect("roots");
            SmsSender::send(&sender, &sms()).await.expect(host);
        }
        let requests = lock(&shared.state).requests.clone();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            requests[0].header("host"),
            Some(format!("localhost:{}", addr.port()).as_str())
        );
        let body: serde_json::Value = serde_json::from_str(&requests[1].body).expect("JSON body");
        assert_eq!(
            body,
            serde_json::json!({"to": "+15551234567", "message": SMS_TEXT})
        );
        task.abort();
    }

    #[tokio::test]
    async fn webhook_https_checks_the_certificate() {
        let (addr, shared, task) = start_tls_capture().await;
        // The public roots do not know the test CA.
        let sender = WebhookSmsSender::new(&format!("https://localhost:{}/sms", addr.port()))
            .expect("sender");
        let reason = assert_clean_delivery_error(SmsSender::send(&sender, &sms()).await);
        assert!(reason.contains("TLS"), "{reason}");
        assert!(lock(&shared.state).requests.is_empty());
        task.abort();

        // A plain HTTP server behind an https URL.
        let capture = WebhookCapture::start().await.expect("capture");
        let sender =
            WebhookSmsSender::new(&format!("https://127.0.0.1:{}/sms", capture.addr.port()))
                .expect("sender")
                .with_timeout(Duration::from_secs(2));
        assert_clean_delivery_error(SmsSender::send(&sender, &sms()).await);
        assert!(capture.requests().is_empty());
    }
}
