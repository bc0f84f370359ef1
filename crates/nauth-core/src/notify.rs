//! Outgoing mail and text messages (API §2 "Mails", §9 Email/SMS).
//!
//! The engine talks to two small traits, [`EmailSender`] and [`SmsSender`]. This module ships:
//!
//! - [`SmtpEmailSender`]: real delivery through an SMTP relay (lettre, tokio, rustls);
//! - [`WebhookSmsSender`]: text messages as a JSON `POST` to an HTTP(S) webhook (tokio, rustls);
//! - [`ConsoleEmailSender`] / [`ConsoleSmsSender`]: the development outbox, which prints whole
//!   messages to standard output (never to the log);
//! - [`MemoryOutbox`]: an in-memory outbox for tests that implements both traits.
//!
//! The module is quiet: it never logs. Message bodies carry codes and link tokens, so they are
//! never put in a log line or an error; logging a failed delivery (with a masked address and the
//! error kind only) is the caller's job.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// A mail: a plain-text body, and optionally an HTML alternative of the same content.
/// `Debug` shows the recipient and subject, never a body.
///
/// ```
/// let mail = nauth_core::EmailMessage {
///     to: "jane@example.com".into(),
///     subject: "Hello".into(),
///     text: "Hello Jane\n".into(),
///     html: Some("<p>Hello Jane</p>".into()),
/// };
/// assert!(!format!("{mail:?}").contains("Hello Jane"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct EmailMessage {
    /// The recipient's address, e.g. `jane@example.com`.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body. It may carry a code or a link token: never log it.
    pub text: String,
    /// The HTML alternative of `text` (user-supplied text in it is escaped), if any. It carries
    /// the same code or link as `text`: never log it.
    pub html: Option<String>,
}

/// A text message. `Debug` shows the recipient, never the text.
#[derive(Clone, PartialEq, Eq)]
pub struct SmsMessage {
    /// The recipient's number in E.164 form, e.g. `+15551234567`.
    pub to: String,
    /// The message text. It may carry a code: never log it.
    pub text: String,
}

impl fmt::Debug for EmailMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailMessage")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("text", &"[redacted]")
            .field("html", &self.html.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl fmt::Debug for SmsMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsMessage")
            .field("to", &self.to)
            .field("text", &"[redacted]")
            .finish()
    }
}

/// Why a mail or a text message could not be sent.
///
/// No variant ever carries a message body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The recipient (or sender) address could not be parsed; the payload says why, without the
    /// address itself.
    #[error("invalid address: {0}")]
    Address(String),
    /// The transport failed (connection refused, timeout, TLS, a 4xx/5xx reply…).
    #[error("delivery failed: {0}")]
    Delivery(String),
    /// The sender is misconfigured (a bad SMTP URL or `from` mailbox).
    #[error("configuration: {0}")]
    Config(String),
}

/// Sends mails. Implementations must be cheap to share behind an `Arc`.
#[async_trait::async_trait]
pub trait EmailSender: Send + Sync + 'static {
    /// Delivers one mail. A failure is reported, never panics, and carries no message body.
    async fn send(&self, message: &EmailMessage) -> Result<(), NotifyError>;
}

/// Sends text messages. Implementations must be cheap to share behind an `Arc`.
#[async_trait::async_trait]
pub trait SmsSender: Send + Sync + 'static {
    /// Delivers one text message. A failure is reported, never panics, and carries no text.
    async fn send(&self, message: &SmsMessage) -> Result<(), NotifyError>;
}

// ---------------------------------------------------------------------------------------------
// Development outbox
// ---------------------------------------------------------------------------------------------

const BANNER_RULE: &str =
    "==============================================================================";

/// The development mail outbox: prints every mail (its text part; an HTML part is only
/// mentioned) to standard output with a banner saying that it was not delivered.
///
/// It writes with `println!`, never through `tracing`, so codes do not reach the log. Use it
/// only in development.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleEmailSender;

/// The development SMS outbox: prints every text message, whole, to standard output with a
/// banner saying that it was not delivered.
///
/// It writes with `println!`, never through `tracing`, so codes do not reach the log. Use it
/// only in development.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleSmsSender;

fn console_email(message: &EmailMessage) -> String {
    let html = if message.html.is_some() {
        "\n(an HTML part too, not shown)"
    } else {
        ""
    };
    format!(
        "{BANNER_RULE}\nnauth development outbox: mail NOT sent (no SMTP configured)\n\
         {BANNER_RULE}\nTo: {}\nSubject: {}\n\n{}\n{BANNER_RULE}{html}",
        message.to,
        message.subject,
        message.text.trim_end_matches(['\r', '\n']),
    )
}

fn console_sms(message: &SmsMessage) -> String {
    format!(
        "{BANNER_RULE}\nnauth development outbox: SMS NOT sent (no SMS provider configured)\n\
         {BANNER_RULE}\nTo: {}\n\n{}\n{BANNER_RULE}",
        message.to,
        message.text.trim_end_matches(['\r', '\n']),
    )
}

#[async_trait::async_trait]
impl EmailSender for ConsoleEmailSender {
    async fn send(&self, message: &EmailMessage) -> Result<(), NotifyError> {
        // One call, so that concurrent mails do not interleave.
        println!("{}", console_email(message));
        Ok(())
    }
}

#[async_trait::async_trait]
impl SmsSender for ConsoleSmsSender {
    async fn send(&self, message: &SmsMessage) -> Result<(), NotifyError> {
        println!("{}", console_sms(message));
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// In-memory outbox
// ---------------------------------------------------------------------------------------------

/// An in-memory outbox for tests: keeps every mail and text message it is given, in order.
///
/// Clones share the same storage, so hand one clone to the engine (it implements both
/// [`EmailSender`] and [`SmsSender`]) and read the messages from another. Because both traits
/// have a `send` method, call them as `EmailSender::send(&outbox, &mail)`.
#[derive(Clone, Default)]
pub struct MemoryOutbox {
    emails: Arc<Mutex<Vec<EmailMessage>>>,
    sms: Arc<Mutex<Vec<SmsMessage>>>,
    arrived: Arc<tokio::sync::Notify>,
}

/// Locks a mutex, recovering the data if another thread panicked while holding it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryOutbox {
    /// Waits until at least `n` mails to `to` have arrived (mail is sent after the HTTP answer,
    /// off the request path), or `timeout` passes; returns the mails to `to` so far.
    pub async fn wait_emails_to(
        &self,
        to: &str,
        n: usize,
        timeout: std::time::Duration,
    ) -> Vec<EmailMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.arrived.notified();
            let got = self.emails_to(to);
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.emails_to(to);
            }
        }
    }

    /// Creates an empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every mail sent so far, oldest first.
    pub fn emails(&self) -> Vec<EmailMessage> {
        lock(&self.emails).clone()
    }

    /// Every text message sent so far, oldest first.
    pub fn sms(&self) -> Vec<SmsMessage> {
        lock(&self.sms).clone()
    }

    /// The most recent mail to `to` (addresses compared case-insensitively, surrounding
    /// whitespace ignored).
    pub fn last_email_to(&self, to: &str) -> Option<EmailMessage> {
        lock(&self.emails)
            .iter()
            .rev()
            .find(|m| same_address(&m.to, to))
            .cloned()
    }

    /// The most recent text message to `to` (spaces ignored).
    pub fn last_sms_to(&self, to: &str) -> Option<SmsMessage> {
        lock(&self.sms)
            .iter()
            .rev()
            .find(|m| same_number(&m.to, to))
            .cloned()
    }

    /// Every mail to `to`, oldest first (addresses compared case-insensitively).
    pub fn emails_to(&self, to: &str) -> Vec<EmailMessage> {
        lock(&self.emails)
            .iter()
            .filter(|m| same_address(&m.to, to))
            .cloned()
            .collect()
    }

    /// Forgets every mail and text message.
    pub fn clear(&self) {
        lock(&self.emails).clear();
        lock(&self.sms).clear();
    }
}

fn same_address(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn same_number(a: &str, b: &str) -> bool {
    let digits = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    digits(a) == digits(b)
}

impl fmt::Debug for MemoryOutbox {
    // Counts only: the messages carry codes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryOutbox")
            .field("emails", &lock(&self.emails).len())
            .field("sms", &lock(&self.sms).len())
            .finish()
    }
}

#[async_trait::async_trait]
impl EmailSender for MemoryOutbox {
    async fn send(&self, message: &EmailMessage) -> Result<(), NotifyError> {
        lock(&self.emails).push(message.clone());
        self.arrived.notify_waiters();
        Ok(())
    }
}

#[async_trait::async_trait]
impl SmsSender for MemoryOutbox {
    async fn send(&self, message: &SmsMessage) -> Result<(), NotifyError> {
        lock(&self.sms).push(message.clone());
        self.arrived.notify_waiters();
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// SMTP
// ---------------------------------------------------------------------------------------------

/// How long one delivery (connect, TLS, the whole SMTP transaction) may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Delivers mails through an SMTP relay with lettre's tokio transport.
///
/// A mail without HTML is a single `text/plain; charset=utf-8` part; with HTML it is
/// `multipart/alternative` with the text part first and the `text/html; charset=utf-8` part
/// second (lettre picks 7bit, quoted-printable or base64 as each part needs). Each [`send`](EmailSender::send) opens its own connection and
/// is bounded by a 10 s timeout.
#[derive(Clone)]
pub struct SmtpEmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl fmt::Debug for SmtpEmailSender {
    // The transport holds the relay credentials: leave it out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpEmailSender")
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpEmailSender {
    /// Builds a sender from a lettre connection URL and a `from` mailbox.
    ///
    /// URL forms:
    /// - `smtp://host:port`: plain SMTP, no TLS (local relays, test servers; port 25 by default);
    /// - `smtp://user:pass@host:587?tls=required`: STARTTLS, required
    ///   (`?tls=opportunistic` also works);
    /// - `smtps://user:pass@host:465`: implicit TLS.
    ///
    /// Percent-encode special characters in the user name and password. `from` is a mailbox
    /// such as `nauth <no-reply@example.com>` or a bare address. Nothing connects here; a bad
    /// URL or mailbox is a [`NotifyError::Config`].
    pub fn from_url(smtp_url: &str, from: &str) -> Result<Self, NotifyError> {
        let from: Mailbox = from
            .trim()
            .parse()
            .map_err(|e| NotifyError::Config(format!("invalid `from` mailbox: {e}")))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url.trim())
            .map_err(|e| NotifyError::Config(format!("invalid SMTP URL: {e}")))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Self {
            transport,
            from,
            timeout: SMTP_TIMEOUT,
        })
    }

    /// Replaces the per-delivery timeout (10 s by default). It bounds the whole delivery; the
    /// connect step also stays within lettre's own 10 s limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The `From` mailbox of every mail.
    pub fn from_mailbox(&self) -> &Mailbox {
        &self.from
    }

    fn build(&self, message: &EmailMessage) -> Result<Message, NotifyError> {
        let to: Mailbox = message
            .to
            .trim()
            .parse()
            .map_err(|e| NotifyError::Address(format!("recipient: {e}")))?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.as_str());
        let built = match &message.html {
            None => builder
                .header(ContentType::TEXT_PLAIN)
                .body(message.text.clone()),
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                html.clone(),
            )),
        };
        built.map_err(|e| NotifyError::Delivery(format!("could not build the message: {e}")))
    }
}

/// Describes a lettre SMTP error by kind only: the reply code, or the underlying I/O error,
/// never a server reply text (which may quote what was sent) nor the message.
fn describe_smtp_error(err: &lettre::transport::smtp::Error) -> String {
    use std::error::Error as _;

    let io = {
        let mut source = err.source();
        let mut found = None;
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                found = Some(io.to_string());
                break;
            }
            source = e.source();
        }
        found
    };
    let kind = if let Some(code) = err.status() {
        if err.is_permanent() {
            format!("permanent SMTP error {code}")
        } else {
            format!("transient SMTP error {code}")
        }
    } else if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_tls() {
        "TLS error".to_owned()
    } else if err.is_response() {
        "unreadable server response".to_owned()
    } else if err.is_client() {
        "SMTP client error".to_owned()
    } else if err.is_transport_shutdown() {
        "transport shut down".to_owned()
    } else {
        "connection error".to_owned()
    };
    match io {
        Some(io) => format!("{kind}: {io}"),
        None => kind,
    }
}

#[async_trait::async_trait]
impl EmailSender for SmtpEmailSender {
    async fn send(&self, message: &EmailMessage) -> Result<(), NotifyError> {
        let mail = self.build(message)?;
        match tokio::time::timeout(self.timeout, self.transport.send(mail)).await {
            Ok(Ok(_response)) => Ok(()),
            Ok(Err(e)) => Err(NotifyError::Delivery(describe_smtp_error(&e))),
            Err(_elapsed) => Err(NotifyError::Delivery(format!(
                "timed out after {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SMS webhook
// ---------------------------------------------------------------------------------------------

/// How long one webhook attempt (connect, TLS, request, status line) may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest status line read from a webhook.
const MAX_STATUS_LINE: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WebhookScheme {
    Http,
    Https,
}

impl WebhookScheme {
    fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// Delivers text messages to an HTTP(S) webhook (API §9, `sms.provider = "webhook"`).
///
/// Each message is one `POST` of the JSON object `{"to": "+15551234567", "message": "…"}` with
/// `Content-Type: application/json`, a `Content-Length` and `Connection: close`, on a fresh
/// connection. Any `2xx` status is a success. Anything else (another status, a network or TLS
/// error, an unreadable answer, a timeout) is retried once, at once; if the retry fails too,
/// [`send`](SmsSender::send) returns [`NotifyError::Delivery`] naming what went wrong (the status
/// code, the I/O error kind), never the message text.
///
/// Each attempt (connect, TLS handshake, request, status line) is bounded by a 5 s timeout, so a
/// failing delivery takes at most about 10 s. Only the status line of the answer is read.
///
/// `https` URLs use rustls with the Mozilla root certificates (webpki-roots); `http` is plain
/// TCP. The URL's path and query (which may carry an API key) are never shown by `Debug`.
#[derive(Clone)]
pub struct WebhookSmsSender {
    scheme: WebhookScheme,
    /// The host as given, without brackets for an IPv6 literal.
    host: String,
    port: u16,
    /// The request target: the path and query, starting with `/`.
    target: String,
    timeout: Duration,
    /// The TLS client configuration, for `https` only.
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
}

impl fmt::Debug for WebhookSmsSender {
    // The path and query may carry an API key: scheme and host only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSmsSender")
            .field("scheme", &self.scheme.as_str())
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// The JSON body of a webhook request.
#[derive(serde::Serialize)]
struct WebhookBody<'a> {
    to: &'a str,
    message: &'a str,
}

fn webhook_tls_config(
    roots: tokio_rustls::rustls::RootCertStore,
) -> Result<Arc<tokio_rustls::rustls::ClientConfig>, NotifyError> {
    use tokio_rustls::rustls;
    // An explicit provider, so that nothing depends on a process-wide default being installed.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| NotifyError::Config(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

impl WebhookSmsSender {
    /// Builds a sender for `http://host[:port]/path` or `https://host[:port]/path` (a query is
    /// kept; a fragment is dropped; a missing path is `/`; an IPv6 host goes in brackets).
    ///
    /// Anything else (another scheme, no host, user information, a bad port, spaces, control or
    /// non-ASCII characters) is a [`NotifyError::Config`] whose text does not repeat the URL.
    /// Nothing connects here.
    pub fn new(url: &str) -> Result<Self, NotifyError> {
        let bad = |why: &str| NotifyError::Config(format!("invalid SMS webhook URL: {why}"));
        let url = url.trim();
        let (scheme, rest) = match url.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => (WebhookScheme::Http, rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("https") => (WebhookScheme::Https, rest),
            _ => return Err(bad("it must start with http:// or https://")),
        };
        if url.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(bad(
                "it must be ASCII without spaces or control characters (percent-encode them)",
            ));
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let target = if target.is_empty() {
            "/".to_owned()
        } else if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_owned()
        };
        if authority.contains('@') {
            return Err(bad(
                "user information is not supported (put a key in the path or query)",
            ));
        }
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let (ip, after) = inner
                .split_once(']')
                .ok_or_else(|| bad("unclosed IPv6 bracket"))?;
            ip.parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad("invalid IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("invalid port"))?),
            };
            (ip, port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
        {
            return Err(bad("invalid host"));
        }
        let port = match port {
            None => match scheme {
                WebhookScheme::Http => 80,
                WebhookScheme::Https => 443,
            },
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("invalid port"))?,
        };
        let tls = match scheme {
            WebhookScheme::Http => None,
            WebhookScheme::Https => {
                tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|_| bad("the host is not a valid TLS server name"))?;
                let roots = tokio_rustls::rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                Some(webhook_tls_config(roots)?)
            }
        };
        Ok(Self {
            scheme,
            host: host.to_owned(),
            port,
            target,
            timeout: WEBHOOK_TIMEOUT,
            tls,
        })
    }

    /// Replaces the per-attempt timeout (5 s by default). It bounds each of the two attempts
    /// (connect, TLS, request and status line together).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Trusts only the CA certificates in `pem` (PEM text, one or more `CERTIFICATE` blocks)
    /// instead of the Mozilla root certificates: an SMS gateway behind a private CA. No effect
    /// on an `http` sender. An unreadable bundle, or one without a certificate, is a
    /// [`NotifyError::Config`].
    pub fn with_root_certificates_pem(mut self, pem: &str) -> Result<Self, NotifyError> {
        use tokio_rustls::rustls::pki_types::CertificateDer;
        use tokio_rustls::rustls::pki_types::pem::PemObject;

        if self.tls.is_none() {
            return Ok(self);
        }
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| NotifyError::Config(format!("root certificates: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| NotifyError::Config(format!("root certificates: {e}")))?;
        }
        if roots.is_empty() {
            return Err(NotifyError::Config(
                "root certificates: no certificate in the PEM text".to_owned(),
            ));
        }
        self.tls = Some(webhook_tls_config(roots)?);
        Ok(self)
    }

    /// The `Host` header value: the host, bracketed if IPv6, with the port unless it is the
    /// scheme's default.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = match self.scheme {
            WebhookScheme::Http => 80,
            WebhookScheme::Https => 443,
        };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    fn request(&self, message: &SmsMessage) -> Result<Vec<u8>, NotifyError> {
        let body = serde_json::to_vec(&WebhookBody {
            to: &message.to,
            message: &message.text,
        })
        .map_err(|_| NotifyError::Delivery("could not encode the request".to_owned()))?;
        let mut request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\nUser-Agent: nauth\r\n\r\n",
            self.target,
            self.host_header(),
            body.len(),
        )
        .into_bytes();
        request.extend_from_slice(&body);
        Ok(request)
    }

    /// One attempt: connect, send `request`, read the status code. The error says what failed,
    /// never what was sent.
    async fn attempt(&self, request: &[u8]) -> Result<u16, String> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        // A small request: send it in one segment.
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => exchange(tcp, request).await,
            Some(config) => {
                let name = tokio_rustls::rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|_| "invalid TLS server name".to_owned())?;
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                exchange(tls, request).await
            }
        }
    }

    /// One attempt under the timeout, as a success or a reason.
    async fn attempt_with_timeout(&self, request: &[u8]) -> Result<(), String> {
        match tokio::time::timeout(self.timeout, self.attempt(request)).await {
            Ok(Ok(status)) if (200..300).contains(&status) => Ok(()),
            Ok(Ok(status)) => Err(format!("HTTP status {status}")),
            Ok(Err(reason)) => Err(reason),
            Err(_elapsed) => Err(format!("timed out after {} ms", self.timeout.as_millis())),
        }
    }
}

/// Writes `request` and reads the status code of the answer.
async fn exchange<S>(mut stream: S, request: &[u8]) -> Result<u16, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    stream
        .write_all(request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    stream.flush().await.map_err(|e| format!("write: {e}"))?;
    let mut line = Vec::with_capacity(128);
    let mut chunk = [0u8; 512];
    let end = loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before a status line".to_owned());
        }
        line.extend_from_slice(&chunk[..n]);
        if let Some(end) = line.iter().position(|&b| b == b'\n') {
            break end;
        }
        if line.len() > MAX_STATUS_LINE {
            return Err("status line too long".to_owned());
        }
    };
    parse_status_line(&line[..end]).ok_or_else(|| "not an HTTP status line".to_owned())
}

/// The status code of `HTTP/1.x NNN reason` (the reason phrase is ignored: it may echo input).
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok()
}

#[async_trait::async_trait]
impl SmsSender for WebhookSmsSender {
    async fn send(&self, message: &SmsMessage) -> Result<(), NotifyError> {
        let request = self.request(message)?;
        let first = match self.attempt_with_timeout(&request).await {
            Ok(()) => return Ok(()),
            Err(reason) => reason,
        };
        match self.attempt_with_timeout(&request).await {
            Ok(()) => Ok(()),
            Err(second) => Err(NotifyError::Delivery(format!(
                "SMS webhook {}://{}: {second} (first attempt: {first})",
                self.scheme.as_str(),
                self.host,
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_output_has_banner_and_whole_message() {
        let mut mail = EmailMessage {
            to: "a@b.c".into(),
            subject: "S".into(),
            text: "line 1\ncode 123456\n".into(),
            html: None,
        };
        let out = console_email(&mail);
        assert!(out.contains("development outbox"));
        assert!(out.contains("To: a@b.c\nSubject: S\n\nline 1\ncode 123456\n===="));
        assert!(!out.contains("HTML"));
        // The HTML part is mentioned, never printed.
        mail.html = Some("<p>code <b>123456</b></p>".into());
        let out = console_email(&mail);
        assert!(
            out.ends_with("====\n(an HTML part too, not shown)"),
            "{out}"
        );
        assert!(!out.contains("<p>"));
        let debug = format!("{mail:?}");
        assert!(
            !debug.contains("123456") && debug.contains("[redacted]"),
            "{debug}"
        );
        let out = console_sms(&SmsMessage {
            to: "+15551234567".into(),
            text: "code 123456".into(),
        });
        assert!(out.contains("development outbox"));
        assert!(out.contains("To: +15551234567\n\ncode 123456\n"));
    }
}
