//! Request bodies and fields: JSON parsing, typed field access with collected errors, and the
//! normalisation rules of docs/api.md §1 (emails, usernames, phones, identifiers).

use serde_json::{Map, Value};

use crate::error::{AuthError, AuthResult, FieldErrors};

/// Most characters accepted in a password field before policy checks (bounds hashing work).
pub(crate) const PASSWORD_HARD_MAX: usize = 1024;

/// A parsed JSON object body with typed accessors; errors are collected per field.
#[derive(Debug, Default)]
pub(crate) struct Input {
    map: Map<String, Value>,
    errors: FieldErrors,
}

/// What an identifier names (docs/api.md §1: `@` → email, E.164 → phone, else username).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identifier {
    /// A normalised email.
    Email(String),
    /// A normalised E.164 phone.
    Phone(String),
    /// A lower-cased username.
    Username(String),
}

impl Identifier {
    /// The normalised text.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Identifier::Email(s) | Identifier::Phone(s) | Identifier::Username(s) => s,
        }
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c <= '\u{1f}' || c == '\u{7f}')
}

/// Trims and lower-cases an email and checks its shape (ASCII only, one `@`, a dotted domain).
pub(crate) fn normalize_email(raw: &str) -> Result<String, &'static str> {
    let e = raw.trim().to_ascii_lowercase();
    if e.is_empty() {
        return Err("is required");
    }
    if e.len() > 254 {
        return Err("must be at most 254 characters");
    }
    let Some((local, domain)) = e.split_once('@') else {
        return Err("must be a valid email");
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let domain_ok = domain.contains('.')
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if local_ok && domain_ok {
        Ok(e)
    } else {
        Err("must be a valid email")
    }
}

/// Lower-cases a username and checks `[a-z0-9_-]{3,32}`.
pub(crate) fn normalize_username(raw: &str) -> Result<String, &'static str> {
    let u = raw.to_ascii_lowercase();
    let ok = (3..=32).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(u)
    } else {
        Err("must be 3-32 characters of a-z, 0-9, _ or -")
    }
}

/// Strips spaces and checks E.164 (`^\+[1-9]\d{1,14}$`).
pub(crate) fn normalize_phone(raw: &str) -> Result<String, &'static str> {
    let p: String = raw.chars().filter(|c| *c != ' ').collect();
    let digits = p.strip_prefix('+').unwrap_or("");
    let ok = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(p)
    } else {
        Err("must be an E.164 phone number like +14155550123")
    }
}

/// Classifies and normalises a login identifier.
pub(crate) fn parse_identifier(raw: &str) -> Result<Identifier, &'static str> {
    if raw.contains('@') {
        normalize_email(raw).map(Identifier::Email)
    } else if let Ok(p) = normalize_phone(raw) {
        Ok(Identifier::Phone(p))
    } else {
        let t = raw.trim();
        if t.is_empty() {
            return Err("is required");
        }
        if t.len() > 254 || has_control(t) {
            return Err("is invalid");
        }
        Ok(Identifier::Username(t.to_lowercase()))
    }
}

/// Masks an email: first and last character of the local part, the whole domain.
pub(crate) fn mask_email(email: &str) -> String {
    let Some((local, domain)) = email.split_once('@') else {
        return "***".into();
    };
    let chars: Vec<char> = local.chars().collect();
    match chars.len() {
        0 => format!("***@{domain}"),
        1 => format!("{}***@{domain}", chars[0]),
        n => format!("{}***{}@{domain}", chars[0], chars[n - 1]),
    }
}

/// Masks a phone: only the last four digits.
pub(crate) fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!("***-***-{tail}")
}

/// What a bad time field or parameter is told.
pub(crate) const RFC3339_HINT: &str = "must be an RFC 3339 time, e.g. 2030-01-31T12:00:00Z";

/// An RFC 3339 time as Unix milliseconds.
pub(crate) fn rfc3339_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

impl Input {
    /// Parses a body: empty counts as `{}`; anything but a JSON object is a 400.
    pub(crate) fn parse(body: &[u8]) -> AuthResult<Input> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input::default());
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| AuthError::field("body", "must be valid UTF-8 JSON"))?;
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(Input {
                map,
                errors: FieldErrors::new(),
            }),
            Ok(_) => Err(AuthError::field("body", "must be a JSON object")),
            Err(_) => Err(AuthError::field("body", "must be valid JSON")),
        }
    }

    /// Records an error against a field.
    pub(crate) fn error(&mut self, field: &str, message: &str) {
        self.errors
            .entry(field.to_string())
            .or_default()
            .push(message.to_string());
    }

    /// Whether a key is present (even as `null`).
    pub(crate) fn has(&self, field: &str) -> bool {
        self.map.contains_key(field)
    }

    fn raw_str(&mut self, field: &str, required: bool) -> Option<String> {
        match self.map.get(field) {
            None | Some(Value::Null) => {
                if required {
                    self.error(field, "is required");
                }
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.error(field, "must be a string");
                None
            }
        }
    }

    /// An optional text field: at most `max` characters, no control characters.
    pub(crate) fn text(&mut self, field: &str, max: usize) -> Option<String> {
        let s = self.raw_str(field, false)?;
        self.check_text(field, s, max)
    }

    /// A required text field.
    pub(crate) fn text_req(&mut self, field: &str, max: usize) -> String {
        match self.raw_str(field, true) {
            Some(s) if s.is_empty() => {
                self.error(field, "is required");
                String::new()
            }
            Some(s) => self.check_text(field, s, max).unwrap_or_default(),
            None => String::new(),
        }
    }

    fn check_text(&mut self, field: &str, s: String, max: usize) -> Option<String> {
        if s.chars().count() > max {
            self.error(field, &format!("must be at most {max} characters"));
            None
        } else if has_control(&s) {
            self.error(field, "must not contain control characters");
            None
        } else {
            Some(s)
        }
    }

    /// A required password: any characters, never trimmed; length is the policy's business,
    /// but more than [`PASSWORD_HARD_MAX`] is refused outright.
    pub(crate) fn password(&mut self, field: &str) -> String {
        match self.raw_str(field, true) {
            Some(s) if s.is_empty() => {
                self.error(field, "is required");
                String::new()
            }
            Some(s) if s.chars().count() > PASSWORD_HARD_MAX => {
                self.error(
                    field,
                    &format!("must be at most {PASSWORD_HARD_MAX} characters"),
                );
                String::new()
            }
            Some(s) => s,
            None => String::new(),
        }
    }

    /// A required email, normalised.
    pub(crate) fn email(&mut self, field: &str) -> String {
        let raw = self.raw_str(field, true).unwrap_or_default();
        if !self.errors.contains_key(field) {
            match normalize_email(&raw) {
                Ok(e) => return e,
                Err(m) => self.error(field, m),
            }
        }
        String::new()
    }

    /// An optional username, normalised.
    pub(crate) fn username(&mut self, field: &str) -> Option<String> {
        let raw = self.raw_str(field, false)?;
        normalize_username(&raw)
            .map_err(|m| self.error(field, m))
            .ok()
    }

    /// An optional phone, normalised.
    pub(crate) fn phone(&mut self, field: &str) -> Option<String> {
        let raw = self.raw_str(field, false)?;
        normalize_phone(&raw).map_err(|m| self.error(field, m)).ok()
    }

    /// A required identifier.
    pub(crate) fn identifier(&mut self, field: &str) -> Option<Identifier> {
        let raw = self.raw_str(field, true)?;
        parse_identifier(&raw)
            .map_err(|m| self.error(field, m))
            .ok()
    }

    /// An optional boolean.
    pub(crate) fn bool(&mut self, field: &str) -> Option<bool> {
        match self.map.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.error(field, "must be a boolean");
                None
            }
        }
    }

    /// An optional JSON object of at most `max_bytes` serialised.
    pub(crate) fn object(&mut self, field: &str, max_bytes: usize) -> Option<Value> {
        match self.map.get(field) {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => {
                if v.to_string().len() > max_bytes {
                    self.error(field, &format!("must be at most {max_bytes} bytes"));
                    None
                } else {
                    Some(v.clone())
                }
            }
            Some(_) => {
                self.error(field, "must be an object");
                None
            }
        }
    }

    /// A required array of at most `max_items` strings, each 1 to `max_len` characters without
    /// control characters; duplicates are dropped, the order kept.
    pub(crate) fn strings(&mut self, field: &str, max_items: usize, max_len: usize) -> Vec<String> {
        let items = match self.map.get(field) {
            None | Some(Value::Null) => {
                self.error(field, "is required");
                return Vec::new();
            }
            Some(Value::Array(a)) if a.len() > max_items => {
                self.error(field, &format!("must have at most {max_items} items"));
                return Vec::new();
            }
            Some(Value::Array(a)) => a.clone(),
            Some(_) => {
                self.error(field, "must be an array of strings");
                return Vec::new();
            }
        };
        let mut out: Vec<String> = Vec::new();
        for item in items {
            match item {
                Value::String(s)
                    if !s.is_empty() && s.chars().count() <= max_len && !has_control(&s) =>
                {
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
                _ => {
                    self.error(
                        field,
                        &format!("must hold strings of 1 to {max_len} characters"),
                    );
                    return Vec::new();
                }
            }
        }
        out
    }

    /// An optional RFC 3339 time (`2030-01-31T12:00:00Z`), as Unix milliseconds.
    pub(crate) fn time(&mut self, field: &str) -> Option<i64> {
        let raw = self.raw_str(field, false)?;
        let parsed = rfc3339_ms(&raw);
        if parsed.is_none() {
            self.error(field, RFC3339_HINT);
        }
        parsed
    }

    /// One of a fixed set of strings.
    pub(crate) fn one_of(
        &mut self,
        field: &str,
        allowed: &[&str],
        required: bool,
    ) -> Option<String> {
        let s = self.raw_str(field, required)?;
        if allowed.contains(&s.as_str()) {
            Some(s)
        } else {
            self.error(field, &format!("must be one of {}", allowed.join(", ")));
            None
        }
    }

    /// An optional language for mails: a language tag whose primary language nauth ships
    /// (`fr`, `fr-CA`, `FR`), read as that language (`fr`); anything else is a field error.
    pub(crate) fn locale(&mut self, field: &str) -> Option<String> {
        let raw = self.raw_str(field, false)?;
        let tag = raw.trim().replace('_', "-");
        match crate::mail::locale_of_tag(&tag).filter(|_| crate::mail::is_language_tag(&tag)) {
            Some(l) => Some(l.as_str().to_string()),
            None => {
                let shipped = crate::mail::LOCALES.map(|l| l.as_str()).join(", ");
                self.error(
                    field,
                    &format!("must be a language nauth writes mails in: {shipped} (or a tag such as fr-CA)"),
                );
                None
            }
        }
    }

    /// Ends parsing: a `400 VALIDATION_FAILED` when any field was wrong.
    pub(crate) fn finish(self) -> AuthResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(AuthError::ValidationFailed(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        assert_eq!(
            normalize_email("  John.Doe@Example.COM ").as_deref(),
            Ok("john.doe@example.com")
        );
        for bad in [
            "",
            "x",
            "a@b",
            "a@@b.c",
            "a b@c.d",
            "jöhn@example.com",
            "a@exa_mple.com",
            ".a@b.co",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(250))).is_err());
        assert_eq!(normalize_username("Jo_hn-1").as_deref(), Ok("jo_hn-1"));
        assert!(normalize_username("jo").is_err());
        assert!(normalize_username("jo hn").is_err());
        assert_eq!(
            normalize_phone("+1 415 555 0123").as_deref(),
            Ok("+14155550123")
        );
        assert!(normalize_phone("14155550123").is_err());
        assert!(normalize_phone("+0123").is_err());
        assert_eq!(
            parse_identifier("A@B.CO"),
            Ok(Identifier::Email("a@b.co".into()))
        );
        assert_eq!(
            parse_identifier("+14155550123"),
            Ok(Identifier::Phone("+14155550123".into()))
        );
        assert_eq!(
            parse_identifier("Bob"),
            Ok(Identifier::Username("bob".into()))
        );
    }

    #[test]
    fn masking() {
        assert_eq!(mask_email("john@example.com"), "j***n@example.com");
        assert_eq!(mask_email("a@example.com"), "a***@example.com");
        assert_eq!(mask_phone("+14155551234"), "***-***-1234");
    }

    #[test]
    fn parsing_and_fields() {
        assert!(Input::parse(b"").is_ok());
        assert!(Input::parse(b"[1]").is_err());
        assert!(Input::parse(b"{").is_err());
        assert!(Input::parse(&[0x7b, 0xff, 0x7d]).is_err());
        let mut i =
            Input::parse(br#"{"a": 1, "b": "x\u0001", "c": "ok", "p": " pw "}"#).expect("json");
        assert_eq!(i.text("a", 10), None);
        assert_eq!(i.text("b", 10), None);
        assert_eq!(i.text("c", 1), None);
        assert_eq!(i.password("p"), " pw ");
        let e = i.finish().expect_err("errors");
        let AuthError::ValidationFailed(f) = e else {
            panic!("wrong error")
        };
        assert_eq!(f.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    }
}
