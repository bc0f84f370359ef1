//! What a case computes the way a client, an authenticator app or an attacker holding the
//! secret would: random values, TOTP codes, the JWT signing key, the masked email of the
//! contract. Written from the contract (docs/api.md) and the documented key derivation, not
//! borrowed from the engine, so a change there shows up here as a failing case.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// `N` bytes from the OS CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("operating system random number generator");
    b
}

/// `n` random decimal digits (each from one random byte, rejecting 250..=255: no bias).
pub(crate) fn random_digits(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let [b] = random_bytes::<1>();
        if b < 250 {
            out.push(char::from(b'0' + b % 10));
        }
    }
    out
}

/// The HS256 key the engine signs access tokens with: HMAC-SHA256 keyed with the configured
/// `secret` over the length-prefixed labels `nauth/v1` and `jwt` (each part preceded by its
/// length as a big-endian u64).
pub(crate) fn jwt_key(secret: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    for part in [b"nauth/v1".as_slice(), b"jwt".as_slice()] {
        m.update(&(part.len() as u64).to_be_bytes());
        m.update(part);
    }
    m.finalize().into_bytes().to_vec()
}

/// The TOTP code an authenticator app shows at Unix time `at_s` for `secret` (RFC 6238:
/// SHA-1, 6 digits, 30-second steps, as the provisioning URI says).
pub(crate) fn totp_code(secret: &[u8], at_s: u64) -> String {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(secret.to_vec())
        .build()
        .expect("a valid TOTP secret")
        .generate(at_s)
        .to_string()
}

/// The RFC 4648 base32 form of a secret, without padding (what the contract's `secret` field
/// shows for typing into an app by hand).
pub(crate) fn base32(secret: &[u8]) -> String {
    totp_rs::Secret::from(secret.to_vec())
        .to_base32()
        .trim_end_matches('=')
        .to_string()
}

/// Decodes a base32 secret as an authenticator app reads it from a URI.
pub(crate) fn base32_decode(s: &str) -> Vec<u8> {
    totp_rs::Secret::try_from_base32(s)
        .unwrap_or_else(|e| panic!("not base32: {s:?}: {e:?}"))
        .as_bytes()
        .to_vec()
}

/// The masked email of the contract's `codeDeliveryDestination`: the first and last character
/// of the local part around `***`, the whole domain (`j***e@example.com`).
pub(crate) fn mask_email(email: &str) -> String {
    let Some((local, domain)) = email.split_once('@') else {
        return "***".into();
    };
    let chars: Vec<char> = local.chars().collect();
    match chars.as_slice() {
        [] => format!("***@{domain}"),
        [only] => format!("{only}***@{domain}"),
        [first, .., last] => format!("{first}***{last}@{domain}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_rfc_6238() {
        // RFC 6238 appendix B, SHA-1, truncated to 6 digits.
        let secret = b"12345678901234567890";
        assert_eq!(totp_code(secret, 59), "287082");
        assert_eq!(totp_code(secret, 1_111_111_109), "081804");
        assert_eq!(base32_decode(&base32(secret)), secret);
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn masks_like_the_contract() {
        assert_eq!(mask_email("wire@example.com"), "w***e@example.com");
        assert_eq!(mask_email("a@b.c"), "a***@b.c");
        assert_eq!(mask_email("nope"), "***");
    }

    #[test]
    fn digits_are_digits() {
        let d = random_digits(40);
        assert_eq!(d.len(), 40);
        assert!(d.bytes().all(|b| b.is_ascii_digit()));
    }
}
