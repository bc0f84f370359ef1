//! MFA building blocks, pure and testable: TOTP (RFC 6238) with replay protection, secrets
//! sealed at rest (XChaCha20-Poly1305 under a key derived from the configured secret), the
//! provisioning QR code as a PNG data URL, and backup codes.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::codes::{ct_eq, random_bytes, random_string};
use crate::error::{AuthError, AuthResult};

/// TOTP step length (seconds).
pub(crate) const STEP: u64 = 30;

/// The unambiguous alphabet of backup codes (no 0/O, 1/I/L).
pub(crate) const BACKUP_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A fresh 160-bit TOTP secret.
pub(crate) fn new_totp_secret() -> Vec<u8> {
    random_bytes::<20>().to_vec()
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> AuthResult<totp_rs::Totp> {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP)
        .with_secret(secret.to_vec())
        .with_issuer(Some(issuer.replace(':', "")))
        .with_account_name(account.replace(':', ""))
        .build()
        .map_err(|e| AuthError::Internal(format!("totp: {e}")))
}

/// The base32 form of a secret (what authenticator apps accept by hand).
pub(crate) fn base32(secret: &[u8]) -> String {
    base32_encode(secret)
}

fn base32_encode(data: &[u8]) -> String {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for b in data {
        buf = (buf << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            out.push(A[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(A[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The `otpauth://totp/...` provisioning URI.
pub(crate) fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> AuthResult<String> {
    totp(secret, issuer, account)?
        .to_url()
        .map_err(|e| AuthError::Internal(format!("totp url: {e}")))
}

/// The 6-digit code for a time (Unix seconds).
#[cfg(test)]
pub(crate) fn totp_code(secret: &[u8], at: u64) -> AuthResult<String> {
    Ok(totp(secret, "nauth", "x")?.generate(at).to_string())
}

/// Checks a code against the steps `now-1 ..= now+1`; returns the matched step if it is newer
/// than `last_step` (a step already used is refused: no replay within the window). Every
/// candidate is compared in constant time.
pub(crate) fn verify_totp(
    secret: &[u8],
    code: &str,
    now_s: u64,
    last_step: Option<i64>,
) -> AuthResult<Option<i64>> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let t = totp(secret, "nauth", "x")?;
    let origin = now_s / STEP;
    let mut matched = None;
    for step in origin.saturating_sub(1)..=origin + 1 {
        if ct_eq(&t.generate(step * STEP).to_string(), code) {
            matched = Some(step as i64);
        }
    }
    Ok(matched.filter(|s| last_step.is_none_or(|last| *s > last)))
}

/// Seals a secret: `base64url(nonce || ciphertext)` under `key` (32 bytes), with `aad` bound
/// in (the owner's id), so a sealed value moved to another row does not open.
pub(crate) fn seal(key: &[u8; 32], aad: &str, plaintext: &[u8]) -> AuthResult<String> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce_bytes = random_bytes::<24>();
    let nonce = XNonce::from(nonce_bytes);
    let ct = cipher
        .encrypt(
            &nonce,
            chacha20poly1305::aead::Payload {
                msg: plaintext,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| AuthError::Internal("seal failed".into()))?;
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&ct);
    Ok(URL_SAFE_NO_PAD.encode(out))
}

/// Opens what [`seal`] sealed.
pub(crate) fn open(key: &[u8; 32], aad: &str, sealed: &str) -> AuthResult<Vec<u8>> {
    let raw = URL_SAFE_NO_PAD
        .decode(sealed)
        .map_err(|_| AuthError::Internal("sealed value corrupt".into()))?;
    if raw.len() < 24 + 16 {
        return Err(AuthError::Internal("sealed value corrupt".into()));
    }
    let (nonce, ct) = raw.split_at(24);
    let nonce =
        XNonce::try_from(nonce).map_err(|_| AuthError::Internal("sealed value corrupt".into()))?;
    XChaCha20Poly1305::new(key.into())
        .decrypt(
            &nonce,
            chacha20poly1305::aead::Payload {
                msg: ct,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| AuthError::Internal("sealed value does not open".into()))
}

/// `n` backup codes of 8 characters from the unambiguous alphabet.
pub(crate) fn backup_codes(n: usize) -> Vec<String> {
    (0..n).map(|_| random_string(BACKUP_ALPHABET, 8)).collect()
}

/// A backup code as typed: upper-cased, spaces and dashes removed.
pub(crate) fn normalize_backup_code(code: &str) -> String {
    code.chars()
        .filter(|c| *c != ' ' && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase()
}

/// A QR code of `text` as a `data:image/png;base64,…` URL (black on white, 4-module border).
pub(crate) fn qr_data_url(text: &str) -> AuthResult<String> {
    let qr = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Medium)
        .map_err(|_| AuthError::Internal("QR code too long".into()))?;
    let (scale, border) = (6usize, 4i32);
    let modules = qr.size() as usize + 2 * border as usize;
    let px = modules * scale;
    let mut rows = Vec::with_capacity(px * (px + 1));
    for y in 0..px {
        rows.push(0u8); // filter: none
        for x in 0..px {
            let (mx, my) = ((x / scale) as i32 - border, (y / scale) as i32 - border);
            rows.push(if qr.get_module(mx, my) { 0 } else { 255 });
        }
    }
    Ok(format!(
        "data:image/png;base64,{}",
        STANDARD.encode(png_gray(px as u32, px as u32, &rows))
    ))
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// An 8-bit greyscale PNG from filtered scanlines, deflated as stored blocks (no compression
/// library needed; a QR image is small).
fn png_gray(w: u32, h: u32, scanlines: &[u8]) -> Vec<u8> {
    let mut z = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = scanlines.chunks(65_535).collect();
    for (i, c) in chunks.iter().enumerate() {
        z.push(u8::from(i + 1 == chunks.len()));
        let len = c.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(c);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for x in scanlines {
        a = (a + u32::from(*x)) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (b"IHDR", ihdr.as_slice()),
        (b"IDAT", z.as_slice()),
        (b"IEND", &[][..]),
    ] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    png
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1, truncated to 6 digits (the last 6 of the 8-digit values).
    #[test]
    fn rfc6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, eight) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(totp_code(secret, t).expect("code"), &eight[2..], "t={t}");
        }
    }

    #[test]
    fn window_and_replay() {
        let s = new_totp_secret();
        let now = 1_800_000_015;
        let code = totp_code(&s, now).expect("code");
        let step = verify_totp(&s, &code, now, None)
            .expect("ok")
            .expect("accepted");
        assert_eq!(step as u64, now / STEP);
        assert_eq!(
            verify_totp(&s, &code, now, Some(step)).expect("ok"),
            None,
            "replay refused"
        );
        let prev = totp_code(&s, now - 30).expect("code");
        assert!(
            verify_totp(&s, &prev, now, None).expect("ok").is_some(),
            "one step back"
        );
        let old = totp_code(&s, now - 90).expect("code");
        if old != code && old != prev {
            assert!(
                verify_totp(&s, &old, now, None).expect("ok").is_none(),
                "three steps back"
            );
        }
        assert!(verify_totp(&s, "abcdef", now, None).expect("ok").is_none());
    }

    #[test]
    fn uri_and_base32() {
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let uri = otpauth_uri(b"12345678901234567890", "nauth", "a@b.co").expect("uri");
        assert!(
            uri.starts_with(
                "otpauth://totp/nauth:a%40b.co?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
            ),
            "{uri}"
        );
        assert!(uri.contains("issuer=nauth"));
    }

    #[test]
    fn sealing() {
        let k = [7u8; 32];
        let sealed = seal(&k, "user-1", b"secret").expect("seal");
        assert_eq!(open(&k, "user-1", &sealed).expect("open"), b"secret");
        assert!(open(&k, "user-2", &sealed).is_err(), "bound to its owner");
        assert!(open(&[8u8; 32], "user-1", &sealed).is_err(), "wrong key");
        assert_ne!(
            seal(&k, "user-1", b"secret").expect("seal"),
            sealed,
            "fresh nonce"
        );
    }

    #[test]
    fn backup_codes_shape() {
        let codes = backup_codes(10);
        assert_eq!(codes.len(), 10);
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 8 && c.bytes().all(|b| BACKUP_ALPHABET.contains(&b)))
        );
        assert_eq!(normalize_backup_code("abcd-efgh"), "ABCDEFGH");
    }

    #[test]
    fn qr_png_is_a_valid_png() {
        let url = qr_data_url("otpauth://totp/nauth:a?secret=ABC").expect("qr");
        let png = STANDARD
            .decode(url.trim_start_matches("data:image/png;base64,"))
            .expect("b64");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }
}
