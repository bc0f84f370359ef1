//! Pulling the 6-digit code and the link token out of a message text, as a person reading
//! the mail would.

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
}
