//! Outgoing mail and text messages (API §2 "Mails", §9 Email/SMS).
//!
//! The engine talks to two small traits, [`EmailSender`] and [`SmsSender`]. This module ships:
//!
//! - [`SmtpEmailSender`]: real delivery through an SMTP relay (lettre, tokio, rustls);
//! - [`ConsoleEmailSender`] / [`ConsoleSmsSender`]: the development outbox, which prints whole
//!   messages to standard output (never to the log);
//! - [`MemoryOutbox`]: an in-memory outbox for tests that implements both traits;
//! - [`extract_code`] / [`extract_token`]: helpers that pull the 6-digit code and the link token
//!   out of a message text.
//!
//! The module is quiet: it never logs. Message bodies carry codes and link tokens, so they are
//! never put in a log line or an error; logging a failed delivery (with a masked address and the
//! error kind only) is the caller's job.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// A plain-text mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMessage {
    /// The recipient's address, e.g. `jane@example.com`.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body. It may carry a code or a link token: never log it.
    pub text: String,
}

/// A text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsMessage {
    /// The recipient's number in E.164 form, e.g. `+15551234567`.
    pub to: String,
    /// The message text. It may carry a code: never log it.
    pub text: String,
}

/// Why a mail or a text message could not be sent.
///
/// No variant ever carries a message body.
#[derive(Debug, thiserror::Error)]
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

/// The development mail outbox: prints every mail, whole, to standard output with a banner
/// saying that it was not delivered.
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
    format!(
        "{BANNER_RULE}\nnauth development outbox: mail NOT sent (no SMTP configured)\n\
         {BANNER_RULE}\nTo: {}\nSubject: {}\n\n{}\n{BANNER_RULE}",
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
/// Every mail is a single `text/plain; charset=utf-8` part (lettre picks 7bit, quoted-printable
/// or base64 as the text needs). Each [`send`](EmailSender::send) opens its own connection and
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
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.as_str())
            .header(ContentType::TEXT_PLAIN)
            .body(message.text.clone())
            .map_err(|e| NotifyError::Delivery(format!("could not build the message: {e}")))
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
// Extraction helpers
// ---------------------------------------------------------------------------------------------

/// Characters that may appear inside a link token (base64url plus the URL-safe extras).
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '%')
}

/// Extracts the first 6-digit code of a message text.
///
/// A code is a run of exactly six ASCII digits that is not part of a longer word: neither
/// neighbour is an ASCII letter, a digit, `_` or `-` (so digits inside a link token or a longer
/// number do not count). Returns `None` when there is no such run.
pub fn extract_code(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let before_ok = start == 0 || !word(bytes[start - 1]);
        let after_ok = i == bytes.len() || !word(bytes[i]);
        if i - start == 6 && before_ok && after_ok {
            return Some(text[start..i].to_owned());
        }
    }
    None
}

/// Extracts the value of the first `token=` query parameter of a message text.
///
/// The parameter must follow `?` or `&`; the value runs until the first character that cannot
/// belong to a token (`&`, `#`, whitespace, a quote, `>`, `)`, …) and is percent-decoded.
/// Returns `None` when there is no such parameter or its value is empty.
pub fn extract_token(text: &str) -> Option<String> {
    const KEY: &str = "token=";
    let mut from = 0;
    while let Some(pos) = text[from..].find(KEY) {
        let at = from + pos;
        from = at + KEY.len();
        if !matches!(text[..at].chars().next_back(), Some('?' | '&')) {
            continue;
        }
        let rest = &text[from..];
        let end = rest.find(|c| !is_token_char(c)).unwrap_or(rest.len());
        let raw = &rest[..end];
        // A trailing full stop ends a sentence, not the token.
        let raw = raw.trim_end_matches('.');
        if raw.is_empty() {
            continue;
        }
        return Some(percent_decode(raw));
    }
    None
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_a_standalone_six_digit_run() {
        assert_eq!(
            extract_code("Your code is 123456.").as_deref(),
            Some("123456")
        );
        assert_eq!(extract_code("code:654321").as_deref(), Some("654321"));
        assert_eq!(extract_code("123456").as_deref(), Some("123456"));
        assert_eq!(
            extract_code("ref 1234567 then 2026 then 000111\n").as_deref(),
            Some("000111")
        );
        assert_eq!(extract_code("token=ab123456cd and -123456_"), None);
        assert_eq!(extract_code("no code here"), None);
        assert_eq!(extract_code("Grüße 987654 ✓").as_deref(), Some("987654"));
    }

    #[test]
    fn token_is_the_first_token_query_value() {
        let text = "Open http://x/auth/verify-email?token=abc_DEF-1 to verify.";
        assert_eq!(extract_token(text).as_deref(), Some("abc_DEF-1"));
        assert_eq!(
            extract_token("see <https://a/b?x=1&token=T0k.en~2&y=3>").as_deref(),
            Some("T0k.en~2")
        );
        assert_eq!(
            extract_token("link: https://a/reset?token=abc.").as_deref(),
            Some("abc")
        );
        assert_eq!(
            extract_token("https://a/?token=a%2Bb%3D").as_deref(),
            Some("a+b=")
        );
        assert_eq!(extract_token("a device_token=zzz here"), None);
        assert_eq!(extract_token("https://a/?token=&x=1"), None);
        assert_eq!(
            extract_token("?mytoken=no&token=yes").as_deref(),
            Some("yes")
        );
        assert_eq!(extract_token("nothing"), None);
    }

    #[test]
    fn console_output_has_banner_and_whole_message() {
        let out = console_email(&EmailMessage {
            to: "a@b.c".into(),
            subject: "S".into(),
            text: "line 1\ncode 123456\n".into(),
        });
        assert!(out.contains("development outbox"));
        assert!(out.contains("To: a@b.c\nSubject: S\n\nline 1\ncode 123456\n===="));
        let out = console_sms(&SmsMessage {
            to: "+15551234567".into(),
            text: "code 123456".into(),
        });
        assert!(out.contains("development outbox"));
        assert!(out.contains("To: +15551234567\n\ncode 123456\n"));
    }
}
