//! Secrets: one-time codes and tokens from the operating system's CSPRNG, keyed hashes for
//! storing them, and constant-time comparison. Nothing here logs or formats a secret.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Fills a buffer from the OS CSPRNG. Failure of the OS RNG is unrecoverable for an auth
/// server, so it aborts the request with a panic the adapter turns into a 500.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut b).expect("operating system random number generator failed");
    b
}

/// A uniformly random integer in `0..bound` (rejection sampling, no modulo bias).
pub(crate) fn random_below(bound: u32) -> u32 {
    let zone = u32::MAX - (u32::MAX % bound);
    loop {
        let v = u32::from_le_bytes(random_bytes::<4>());
        if v < zone {
            return v % bound;
        }
    }
}

/// A 6-digit one-time code, zero-padded.
pub(crate) fn random_code() -> String {
    format!("{:06}", random_below(1_000_000))
}

/// A 32-byte random token, base64url without padding (43 characters).
pub(crate) fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// `N` random bytes as lower-case hex (`2N` digits).
pub(crate) fn random_hex<const N: usize>() -> String {
    hex(&random_bytes::<N>())
}

/// A random string over `alphabet` of `len` characters.
pub(crate) fn random_string(alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| alphabet[random_below(alphabet.len() as u32) as usize] as char)
        .collect()
}

/// Lower-case hex SHA-256 of the input (refresh tokens, API keys: high-entropy secrets).
pub(crate) fn sha256_hex(input: &str) -> String {
    hex(&Sha256::digest(input.as_bytes()))
}

/// Constant-time equality of two strings (lengths may differ).
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Constant-time equality for long strings such as whole access tokens (an RS256 token is
/// about 800 bytes): eight bytes a step, no early exit, one barrier at the end, where
/// [`ct_eq`] pays a barrier per byte. Unequal lengths answer at once, as [`ct_eq`] does.
pub(crate) fn ct_eq_long(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (wa, ta) = a.as_chunks::<8>();
    let (wb, tb) = b.as_chunks::<8>();
    let words = wa.iter().zip(wb).fold(0u64, |acc, (x, y)| {
        acc | (u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y))
    });
    let tail = ta
        .iter()
        .zip(tb)
        .fold(0u64, |acc, (x, y)| acc | u64::from(x ^ y));
    (words | tail).ct_eq(&0).into()
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Keys derived from the configured `secret`, one per purpose, so that a JWT signature can
/// never be replayed as a CSRF token or a code hash.
#[derive(Clone)]
pub(crate) struct Keys {
    /// HS256 signing key for access tokens.
    pub jwt: Vec<u8>,
    csrf: Vec<u8>,
    code: Vec<u8>,
    mfa: [u8; 32],
    signing: [u8; 32],
    social: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys([redacted])")
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    #[allow(clippy::expect_used)]
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    for p in parts {
        m.update(&(p.len() as u64).to_be_bytes());
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

impl Keys {
    /// Derives the purpose keys from the master secret.
    pub(crate) fn derive(secret: &str) -> Self {
        let k = |label: &str| hmac(secret.as_bytes(), &[b"nauth/v1", label.as_bytes()]).to_vec();
        Keys {
            jwt: k("jwt"),
            csrf: k("csrf"),
            code: k("code"),
            mfa: hmac(secret.as_bytes(), &[b"nauth/v1", b"mfa-seal"]),
            signing: hmac(secret.as_bytes(), &[b"nauth/v1", b"signing-key-seal"]),
            social: hmac(secret.as_bytes(), &[b"nauth/v1", b"social-flow-seal"]),
        }
    }

    /// The key that seals generated access-token signing keys at rest.
    pub(crate) fn signing_seal_key(&self) -> &[u8; 32] {
        &self.signing
    }

    /// The key that seals the social login flow cookie (state, nonce, PKCE verifier).
    #[cfg_attr(not(feature = "social"), allow(dead_code))]
    pub(crate) fn social_seal_key(&self) -> &[u8; 32] {
        &self.social
    }

    /// The key that seals MFA secrets at rest.
    pub(crate) fn mfa_key(&self) -> &[u8; 32] {
        &self.mfa
    }

    /// Keyed hash of a code or link token for storage: `purpose` and `scope` (e.g. the
    /// challenge id) are bound in, so a code for one purpose or user never matches another.
    pub(crate) fn hash_code(&self, purpose: &str, scope: &str, code: &str) -> String {
        hex(&hmac(
            &self.code,
            &[purpose.as_bytes(), scope.as_bytes(), code.as_bytes()],
        ))
    }

    /// Whether `code` hashes to `stored`, compared in constant time.
    pub(crate) fn verify_code(&self, purpose: &str, scope: &str, code: &str, stored: &str) -> bool {
        ct_eq(&self.hash_code(purpose, scope, code), stored)
    }

    /// The CSRF token of a session: `nonce.mac(session, nonce)`, bound to that session.
    pub(crate) fn csrf_token(&self, session_id: &str) -> String {
        let nonce = URL_SAFE_NO_PAD.encode(random_bytes::<16>());
        let mac =
            URL_SAFE_NO_PAD.encode(hmac(&self.csrf, &[session_id.as_bytes(), nonce.as_bytes()]));
        format!("{nonce}.{mac}")
    }

    /// Whether a CSRF token was issued by us for this session.
    pub(crate) fn csrf_valid(&self, session_id: &str, token: &str) -> bool {
        let Some((nonce, mac)) = token.split_once('.') else {
            return false;
        };
        let want =
            URL_SAFE_NO_PAD.encode(hmac(&self.csrf, &[session_id.as_bytes(), nonce.as_bytes()]));
        ct_eq(&want, mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_constant_time_equality() {
        let t = "a".repeat(37) + &"b".repeat(800);
        assert!(ct_eq_long(&t, &t.clone()));
        assert!(ct_eq_long("", ""));
        for i in [0, 7, 8, 400, 836] {
            let mut other = t.clone().into_bytes();
            other[i] ^= 1;
            let other = String::from_utf8(other).expect("ascii");
            assert!(!ct_eq_long(&t, &other), "byte {i}");
        }
        assert!(!ct_eq_long(&t, &t[1..]));
    }

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..200).map(|_| random_code()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        assert!(
            codes.len() > 190,
            "a CSPRNG should rarely repeat in 200 draws"
        );
        assert_eq!(random_token().len(), 43);
    }

    #[test]
    fn keyed_hashes_bind_purpose_and_scope() {
        let k = Keys::derive("0123456789abcdef0123456789abcdef");
        let h = k.hash_code("verify", "s1", "123456");
        assert!(k.verify_code("verify", "s1", "123456", &h));
        assert!(!k.verify_code("verify", "s2", "123456", &h));
        assert!(!k.verify_code("reset", "s1", "123456", &h));
        assert!(!k.verify_code("verify", "s1", "123457", &h));
        assert_ne!(k.jwt, Keys::derive("0123456789abcdef0123456789abcdeX").jwt);
    }

    #[test]
    fn csrf_tokens_are_session_bound() {
        let k = Keys::derive("0123456789abcdef0123456789abcdef");
        let t = k.csrf_token("sess-a");
        assert!(k.csrf_valid("sess-a", &t));
        assert!(!k.csrf_valid("sess-b", &t));
        assert!(!k.csrf_valid("sess-a", "garbage"));
        assert!(!k.csrf_valid("sess-a", &t.replace('.', "x")));
    }

    #[test]
    fn sha256_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
