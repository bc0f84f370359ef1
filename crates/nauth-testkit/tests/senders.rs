//! The real senders against the capture servers: `SmtpEmailSender` through lettre to
//! [`SmtpCapture`], `WebhookSmsSender` (plain and TLS) to [`WebhookCapture`], their failure
//! modes (timeouts, closed ports, rejections) without leaking a message, and the capture
//! servers themselves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nauth_core::{
    EmailMessage, EmailSender, MemoryOutbox, NotifyError, SmsMessage, SmsSender, SmtpEmailSender,
    WebhookSmsSender,
};
use nauth_testkit::capture::{CapturedMail, SmtpCapture, WebhookCapture};
use nauth_testkit::{extract_code, extract_token};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Reads one line without its CRLF into `buf`; `false` at the end of the stream.
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    buf.clear();
    if reader.read_until(b'\n', buf).await? == 0 || buf.last() != Some(&b'\n') {
        return Ok(false);
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(true)
}

const FROM: &str = "nauth <no-reply@localhost>";
const WAIT: Duration = Duration::from_secs(5);

fn mail(to: &str, subject: &str, text: &str) -> EmailMessage {
    EmailMessage {
        to: to.to_owned(),
        subject: subject.to_owned(),
        text: text.to_owned(),
        html: None,
    }
}

#[tokio::test]
async fn smtp_text_and_html_go_as_multipart_alternative() {
    let capture = SmtpCapture::start().await.expect("start capture");
    let sender = SmtpEmailSender::from_url(&capture.url(), FROM).expect("sender");
    let link = "http://x/auth/verify-email?token=abc_DEF-1";
    let text = format!(
        "Bonjour Jane <b>x</b>,\n\nVotre code de vérification est 123456\n\n\
         Ou ouvrez ce lien :\n{link}\n"
    );
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"fr\">\n<body>\n<p>Bonjour Jane &lt;b&gt;x&lt;&#x2f;b&gt;,</p>\n\
         <p class=\"code\">123456</p>\n<p><a href=\"{link}\">Vérifier mon adresse</a></p>\n\
         </body>\n</html>\n"
    );
    let message = EmailMessage {
        html: Some(html.clone()),
        ..mail("jane@example.com", "Vérifiez votre adresse e-mail", &text)
    };
    EmailSender::send(&sender, &message).await.expect("send");

    let mails = capture.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    let got = &mails[0];
    assert!(
        got.header("Content-Type")
            .expect("Content-Type")
            .to_ascii_lowercase()
            .starts_with("multipart/alternative"),
        "{}",
        got.data
    );
    // The text first, then the HTML: clients show the last part they can render.
    assert_eq!(
        got.part_types(),
        ["multipart/alternative", "text/plain", "text/html"]
    );
    let plain_at = got.data.find("text/plain").expect("text part");
    let html_at = got.data.find("text/html").expect("html part");
    assert!(plain_at < html_at);
    for charset in got.data.match_indices("charset=") {
        let rest = &got.data[charset.0..];
        assert!(
            rest.to_ascii_lowercase().starts_with("charset=utf-8"),
            "{rest}"
        );
    }
    assert_eq!(
        got.header("Subject").as_deref(),
        Some("Vérifiez votre adresse e-mail")
    );
    assert_eq!(got.body_text().trim_end(), text.trim_end());
    assert_eq!(got.body_html().expect("html").trim_end(), html.trim_end());
    assert_eq!(extract_code(&got.body_text()).as_deref(), Some("123456"));
    assert_eq!(
        extract_token(&got.body_text()).as_deref(),
        Some("abc_DEF-1")
    );

    // Without HTML, the mail stays a single text part.
    EmailSender::send(&sender, &mail("b@example.com", "Plain", "code 111222\n"))
        .await
        .expect("send");
    let mails = capture.wait_for(2, WAIT).await;
    assert_eq!(mails[1].part_types(), ["text/plain"]);
    assert_eq!(mails[1].body_html(), None);
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
    let subject = |value: &str| {
        CapturedMail {
            mail_from: String::new(),
            rcpt_to: vec![],
            data: format!("Subject: {value}\r\n\r\nbody\r\n"),
        }
        .header("Subject")
    };
    assert_eq!(subject("plain =?bad").as_deref(), Some("plain =?bad"));
    assert_eq!(
        subject("a =?iso-8859-1?q?caf=E9?= b").as_deref(),
        Some("a café b")
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
    let result = EmailSender::send(&sender, &mail("jane@example.com", "s", "code 123456")).await;
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

/// Serves HTTPS with the test certificate in front of a plain [`WebhookCapture`] (TLS ends
/// here; the bytes inside go to the capture unchanged). Returns the TLS address.
async fn start_tls_capture() -> (SocketAddr, WebhookCapture, JoinHandle<()>) {
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
    let capture = WebhookCapture::start().await.expect("capture");
    let inner = capture.addr;
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            connections.spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await
                    && let Ok(mut plain) = TcpStream::connect(inner).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    (addr, capture, task)
}

#[tokio::test]
async fn webhook_https_round_trip() {
    let (addr, capture, task) = start_tls_capture().await;
    for host in ["localhost", "127.0.0.1"] {
        let sender = WebhookSmsSender::new(&format!("https://{host}:{}/sms", addr.port()))
            .expect("sender")
            .with_root_certificates_pem(TEST_CA_PEM)
            .expect("roots");
        SmsSender::send(&sender, &sms()).await.expect(host);
    }
    let requests = capture.requests();
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
    let (addr, tls_capture, task) = start_tls_capture().await;
    // The public roots do not know the test CA.
    let sender =
        WebhookSmsSender::new(&format!("https://localhost:{}/sms", addr.port())).expect("sender");
    let reason = assert_clean_delivery_error(SmsSender::send(&sender, &sms()).await);
    assert!(reason.contains("TLS"), "{reason}");
    assert!(tls_capture.requests().is_empty());
    task.abort();

    // A plain HTTP server behind an https URL.
    let capture = WebhookCapture::start().await.expect("capture");
    let sender = WebhookSmsSender::new(&format!("https://127.0.0.1:{}/sms", capture.addr.port()))
        .expect("sender")
        .with_timeout(Duration::from_secs(2));
    assert_clean_delivery_error(SmsSender::send(&sender, &sms()).await);
    assert!(capture.requests().is_empty());
}

#[test]
fn root_certificates_must_hold_a_certificate() {
    let https = || WebhookSmsSender::new("https://localhost:8443/sms").expect("sender");
    for bad in ["", "not pem", TEST_SERVER_KEY_PEM] {
        match https().with_root_certificates_pem(bad) {
            Err(NotifyError::Config(reason)) => assert!(reason.contains("root certificates")),
            other => panic!("{bad:?}: expected Config, got {other:?}"),
        }
    }
    assert!(https().with_root_certificates_pem(TEST_CA_PEM).is_ok());
    // A plain http sender has no TLS to configure.
    let http = WebhookSmsSender::new("http://localhost:8080/sms").expect("sender");
    assert!(http.with_root_certificates_pem("").is_ok());
}
