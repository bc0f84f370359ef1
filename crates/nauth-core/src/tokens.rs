//! Access tokens: JWTs behind our own [`TokenSigner`], so the JWT crate's types never reach
//! the public API. HS256 signs with a key derived from the secret; RS256/EdDSA with the key
//! ring's keys (`signing_keys`), each token naming its key by `kid`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::codes::sha256_hex;
use crate::config::JwtAlgorithm;
use crate::error::{AuthError, AuthResult};
use crate::jwk::{KeyMaterial, PublicJwk};

/// Clock leeway for `exp` and a future `iat` or `nbf` (docs/api.md §5).
pub(crate) const LEEWAY_SECS: i64 = 30;

/// `401 AUTH_TOKEN_INVALID` for a token not valid yet (`not_before`, the later of `iat` and
/// `nbf`, beyond the leeway), `401 AUTH_TOKEN_EXPIRED` past `exp` plus the leeway; at `now`
/// (Unix seconds).
pub(crate) fn check_times(exp: i64, not_before: i64, now: i64) -> AuthResult<()> {
    if not_before > now + LEEWAY_SECS {
        return Err(AuthError::TokenInvalid);
    }
    if exp + LEEWAY_SECS < now {
        return Err(AuthError::TokenExpired);
    }
    Ok(())
}

/// The claims as decoded, with the optional `nbf` (tokens issued here carry none, but a token
/// that does is held to it).
#[derive(Deserialize)]
struct Decoded {
    #[serde(flatten)]
    claims: Claims,
    #[serde(default)]
    nbf: Option<i64>,
}

/// The claims of an access token; every one is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    /// Unique per token.
    pub jti: String,
    /// The user's roles.
    pub roles: Vec<String>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Audience (a single string).
    pub aud: String,
    /// Always `access`.
    #[serde(rename = "type")]
    pub token_type: String,
    /// How the session was authenticated (`password`, …); informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<String>,
}

/// One key tokens are verified with: its algorithm (the header's `alg` must equal it) and,
/// for a retired key, the last second its tokens are accepted.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    algorithm: Algorithm,
    decoding: DecodingKey,
    validation: Validation,
    /// `None` while the key may still sign; else Unix seconds after which it is refused.
    until: Option<i64>,
    /// The JWKS entry (asymmetric keys only: a secret is never published).
    jwk: Option<serde_json::Value>,
}

/// The key that signs.
#[derive(Clone)]
struct SignKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
}

/// The keys in force: the one that signs and every one that verifies, by `kid`. Immutable;
/// the key ring swaps in a new set.
#[derive(Clone)]
pub(crate) struct KeySet {
    signing: SignKey,
    verifying: HashMap<String, VerifyKey>,
}

impl KeySet {
    /// A set that signs with `kid` (whose verifying key must be added too).
    fn new(kid: String, algorithm: Algorithm, encoding: EncodingKey) -> Self {
        KeySet {
            signing: SignKey {
                kid,
                algorithm,
                encoding,
            },
            verifying: HashMap::new(),
        }
    }

    /// The `kid` new tokens carry.
    pub(crate) fn signing_kid(&self) -> &str {
        &self.signing.kid
    }

    /// Whether a token under `kid` may be verified at all.
    pub(crate) fn knows(&self, kid: &str) -> bool {
        self.verifying.contains_key(kid)
    }

    /// The JWKS document: the public keys whose tokens are still accepted at `now` (Unix s).
    pub(crate) fn jwks(&self, now: i64) -> serde_json::Value {
        let mut keys: Vec<(&String, &serde_json::Value)> = self
            .verifying
            .iter()
            .filter(|(_, k)| k.until.is_none_or(|u| now <= u))
            .filter_map(|(kid, k)| k.jwk.as_ref().map(|j| (kid, j)))
            .collect();
        // The signing key first, then by kid: a stable document for caches and tests.
        keys.sort_by_key(|(kid, _)| (*kid != &self.signing.kid, (*kid).clone()));
        serde_json::json!({ "keys": keys.into_iter().map(|(_, j)| j.clone()).collect::<Vec<_>>() })
    }
}

/// Signs and verifies access tokens with the current [`KeySet`] (HS256 over a key derived from
/// the secret, or the key ring's RS256/EdDSA keys).
pub(crate) struct TokenSigner {
    keys: RwLock<Arc<KeySet>>,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.current().signing_kid())
            .finish_non_exhaustive()
    }
}

/// The validation of one algorithm: issuer, audience, required claims; times are checked
/// against nauth's own (injectable) clock, not jsonwebtoken's.
fn validation(algorithm: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation
}

/// The JWT crate's name of an asymmetric algorithm.
pub(crate) fn jwt_algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::Rs256 => Algorithm::RS256,
        JwtAlgorithm::EdDsa => Algorithm::EdDSA,
        _ => Algorithm::HS256,
    }
}

impl TokenSigner {
    /// An HS256 signer over a derived key.
    pub(crate) fn hs256(key: &[u8], issuer: &str, audience: &str) -> Self {
        let kid = sha256_hex(&format!("kid:{}", String::from_utf8_lossy(key)))[..16].to_string();
        let mut set = KeySet::new(kid.clone(), Algorithm::HS256, EncodingKey::from_secret(key));
        set.verifying.insert(
            kid,
            VerifyKey {
                algorithm: Algorithm::HS256,
                decoding: DecodingKey::from_secret(key),
                validation: validation(Algorithm::HS256, issuer, audience),
                until: None,
                jwk: None,
            },
        );
        TokenSigner::with_keys(set, issuer, audience)
    }

    /// A signer over a key set built by [`TokenSigner::asymmetric`].
    pub(crate) fn with_keys(set: KeySet, issuer: &str, audience: &str) -> Self {
        TokenSigner {
            keys: RwLock::new(Arc::new(set)),
            issuer: issuer.to_string(),
            audience: audience.to_string(),
        }
    }

    /// A key set that signs with `signing` and verifies with it and with `others` (kid,
    /// algorithm, public key, last accepted second). A key that cannot be used is skipped
    /// with a log line; the signing key must be usable.
    pub(crate) fn asymmetric(
        &self,
        signing: &KeyMaterial,
        others: &[(String, JwtAlgorithm, PublicJwk, Option<i64>)],
    ) -> AuthResult<KeySet> {
        let encoding = signing
            .encoding_key()
            .map_err(|e| AuthError::Internal(format!("signing key: {e}")))?;
        let kid = signing.kid();
        let mut set = KeySet::new(kid.clone(), jwt_algorithm(signing.algorithm), encoding);
        let own = (kid, signing.algorithm, signing.public.clone(), None);
        for (kid, alg, public, until) in others.iter().chain(std::iter::once(&own)) {
            match self.verify_key(*alg, public, *until) {
                Ok(k) => {
                    set.verifying.insert(kid.clone(), k);
                }
                Err(e) => tracing::warn!(kid = %kid, error = %e, "signing key skipped"),
            }
        }
        Ok(set)
    }

    fn verify_key(
        &self,
        alg: JwtAlgorithm,
        public: &PublicJwk,
        until: Option<i64>,
    ) -> Result<VerifyKey, String> {
        if public.algorithm() != Some(alg) {
            return Err(format!(
                "a {} key recorded for {}",
                public.kty,
                alg.as_str()
            ));
        }
        let algorithm = jwt_algorithm(alg);
        Ok(VerifyKey {
            algorithm,
            decoding: public.decoding_key()?,
            validation: validation(algorithm, &self.issuer, &self.audience),
            until,
            jwk: Some(public.jwks_entry(&public.thumbprint(), alg)),
        })
    }

    /// The key set in force.
    pub(crate) fn current(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .map_or_else(|p| p.into_inner().clone(), |k| k.clone())
    }

    /// Puts a new key set in force.
    pub(crate) fn replace(&self, set: KeySet) {
        match self.keys.write() {
            Ok(mut k) => *k = Arc::new(set),
            Err(p) => *p.into_inner() = Arc::new(set),
        }
    }

    /// The issuer written into tokens.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audience written into tokens.
    pub(crate) fn audience(&self) -> &str {
        &self.audience
    }

    /// Signs claims with the current signing key; the header carries its `kid`.
    pub(crate) fn sign(&self, claims: &Claims) -> AuthResult<String> {
        let set = self.current();
        let mut header = Header::new(set.signing.algorithm);
        header.kid = Some(set.signing.kid.clone());
        jsonwebtoken::encode(&header, claims, &set.signing.encoding)
            .map_err(|e| AuthError::Internal(format!("jwt sign: {e}")))
    }

    /// The `kid` of a token whose header parses but names no key of the current set (a key
    /// added by another instance, or garbage); `None` otherwise.
    pub(crate) fn unknown_kid(&self, token: &str) -> Option<String> {
        let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
        (!self.current().knows(&kid)).then_some(kid)
    }

    /// Verifies signature, algorithm, `kid`, issuer, audience, type and times (`exp`, and
    /// `iat`/`nbf` in the future) at `now` (Unix s).
    pub(crate) fn verify(&self, token: &str, now: i64) -> AuthResult<Claims> {
        self.verify_with_start(token, now).map(|(c, _)| c)
    }

    /// [`TokenSigner::verify`], also returning the time the token is valid from (the later
    /// of `iat` and `nbf`), so a cached token's times can be checked again on every use.
    /// The key is chosen by the header's `kid` alone, and the header's `alg` must be that
    /// key's algorithm: an unknown kid, another algorithm (HS256 against an RSA key: the
    /// algorithm confusion attack; `none`), or a key past its window is `AUTH_TOKEN_INVALID`.
    pub(crate) fn verify_with_start(&self, token: &str, now: i64) -> AuthResult<(Claims, i64)> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::TokenInvalid)?;
        let set = self.current();
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| set.verifying.get(kid))
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| k.until.is_none_or(|u| now <= u))
            .ok_or(AuthError::TokenInvalid)?;
        let data = jsonwebtoken::decode::<Decoded>(token, &key.decoding, &key.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::TokenExpired,
                _ => AuthError::TokenInvalid,
            },
        )?;
        let Decoded { claims: c, nbf } = data.claims;
        if c.token_type != "access" {
            return Err(AuthError::TokenInvalid);
        }
        let start = nbf.map_or(c.iat, |n| n.max(c.iat));
        check_times(c.exp, start, now)?;
        Ok((c, start))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use serde_json::{Value, json};

    use super::*;

    fn claims(now: i64) -> Claims {
        Claims {
            sub: "u1".into(),
            sid: "s1".into(),
            jti: "j1".into(),
            roles: vec!["user".into()],
            iat: now,
            exp: now + 900,
            iss: "nauth".into(),
            aud: "nauth".into(),
            token_type: "access".into(),
            amr: Some("password".into()),
        }
    }

    #[test]
    fn round_trip_and_rejections() {
        let s = TokenSigner::hs256(b"k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1", "nauth", "nauth");
        let now = 1_800_000_000;
        let t = s.sign(&claims(now)).expect("sign");
        assert_eq!(s.verify(&t, now).expect("verify"), claims(now));
        // Expired past the leeway; within it still fine.
        assert!(s.verify(&t, now + 900 + 29).is_ok());
        assert!(matches!(
            s.verify(&t, now + 900 + 31),
            Err(AuthError::TokenExpired)
        ));
        // iat in the future beyond leeway.
        assert!(matches!(
            s.verify(&t, now - 31),
            Err(AuthError::TokenInvalid)
        ));
        // Another key, issuer, audience or type.
        let other = TokenSigner::hs256(b"k2k2k2k2k2k2k2k2k2k2k2k2k2k2k2k2", "nauth", "nauth");
        assert!(matches!(
            other.verify(&t, now),
            Err(AuthError::TokenInvalid)
        ));
        let wrong_aud = TokenSigner::hs256(b"k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1", "nauth", "x");
        assert!(matches!(
            wrong_aud.verify(&t, now),
            Err(AuthError::TokenInvalid)
        ));
        let refresh = Claims {
            token_type: "refresh".into(),
            ..claims(now)
        };
        let t2 = s.sign(&refresh).expect("sign");
        assert!(matches!(s.verify(&t2, now), Err(AuthError::TokenInvalid)));
        // alg: none with the same claims.
        let header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = B64.encode(serde_json::to_vec(&claims(now)).expect("json"));
        assert!(s.verify(&format!("{header}.{body}."), now).is_err());
        // Tampered payload.
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = B64.encode(
            serde_json::to_vec(&Claims {
                roles: vec!["admin".into()],
                ..claims(now)
            })
            .expect("json"),
        );
        parts[1] = &forged;
        assert!(s.verify(&parts.join("."), now).is_err());
        assert!(s.verify("garbage", now).is_err());
        // A missing claim (no jti).
        let mut v = serde_json::to_value(claims(now)).expect("json");
        v.as_object_mut().expect("object").remove("jti");
        let h = Header {
            kid: Some(s.current().signing_kid().to_string()),
            ..Header::new(Algorithm::HS256)
        };
        let t3 = jsonwebtoken::encode(
            &h,
            &v,
            &EncodingKey::from_secret(b"k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1"),
        )
        .expect("sign");
        assert!(matches!(s.verify(&t3, now), Err(AuthError::TokenInvalid)));
    }

    #[test]
    fn not_before() {
        let key = b"k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1";
        let s = TokenSigner::hs256(key, "nauth", "nauth");
        let now = 1_800_000_000;
        let sign = |nbf: Value| {
            let mut v = serde_json::to_value(claims(now)).expect("json");
            v["nbf"] = nbf;
            let h = Header {
                kid: Some(s.current().signing_kid().to_string()),
                ..Header::new(Algorithm::HS256)
            };
            jsonwebtoken::encode(&h, &v, &EncodingKey::from_secret(key)).expect("sign")
        };
        // (nbf, verified at, answer)
        let cases: &[(Value, i64, Result<i64, AuthError>)] = &[
            (json!(now), now, Ok(now)),
            (json!(now - 100), now, Ok(now)),
            (json!(now + 30), now, Ok(now + 30)),
            (json!(now + 31), now, Err(AuthError::TokenInvalid)),
            (json!(now + 600), now, Err(AuthError::TokenInvalid)),
            (json!(now + 600), now + 570, Ok(now + 600)),
            (json!("soon"), now, Err(AuthError::TokenInvalid)),
            (json!(null), now, Ok(now)),
        ];
        for (nbf, at, want) in cases {
            let got = s
                .verify_with_start(&sign(nbf.clone()), *at)
                .map(|(_, start)| start);
            assert_eq!(
                format!("{got:?}"),
                format!("{want:?}"),
                "nbf {nbf} at {}",
                at - now
            );
        }
        assert!(check_times(now + 900, now + 31, now).is_err());
        assert!(check_times(now + 900, now + 30, now).is_ok());
        assert!(matches!(
            check_times(now, now, now + 31),
            Err(AuthError::TokenExpired)
        ));
    }
}

#[cfg(test)]
mod asymmetric_tests {
    use std::sync::OnceLock;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn claims() -> Claims {
        Claims {
            sub: "u1".into(),
            sid: "s1".into(),
            jti: "j1".into(),
            roles: vec!["user".into()],
            iat: NOW,
            exp: NOW + 900,
            iss: "nauth".into(),
            aud: "nauth".into(),
            token_type: "access".into(),
            amr: None,
        }
    }

    /// One RSA key for every test (generation is slow in debug builds).
    fn rsa() -> &'static KeyMaterial {
        static KEY: OnceLock<KeyMaterial> = OnceLock::new();
        KEY.get_or_init(|| KeyMaterial::generate(JwtAlgorithm::Rs256).expect("rsa"))
    }

    fn ed() -> KeyMaterial {
        KeyMaterial::generate(JwtAlgorithm::EdDsa).expect("ed")
    }

    /// A signer over `key`, also verifying `others` (key, last accepted second).
    fn signer(key: &KeyMaterial, others: &[(&KeyMaterial, Option<i64>)]) -> TokenSigner {
        let s = TokenSigner::hs256(b"k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1", "nauth", "nauth");
        let others: Vec<_> = others
            .iter()
            .map(|(k, until)| (k.kid(), k.algorithm, k.public.clone(), *until))
            .collect();
        let set = s.asymmetric(key, &others).expect("key set");
        s.replace(set);
        s
    }

    /// A token with this header over the claims, signed by `key` (raw JWT crate).
    fn forge(header: Header, key: &EncodingKey) -> String {
        jsonwebtoken::encode(&header, &claims(), key).expect("encode")
    }

    fn header(alg: Algorithm, kid: &str) -> Header {
        Header {
            kid: Some(kid.to_string()),
            ..Header::new(alg)
        }
    }

    fn refused(s: &TokenSigner, token: &str, why: &str) {
        assert!(
            matches!(s.verify(token, NOW), Err(AuthError::TokenInvalid)),
            "{why}: {:?}",
            s.verify(token, NOW)
        );
    }

    #[test]
    fn rs256_and_eddsa_round_trip_with_thumbprint_kids() {
        for key in [rsa().clone(), ed()] {
            let s = signer(&key, &[]);
            let t = s.sign(&claims()).expect("sign");
            let h = jsonwebtoken::decode_header(&t).expect("header");
            assert_eq!(h.kid.as_deref(), Some(key.kid().as_str()));
            assert_eq!(h.alg, jwt_algorithm(key.algorithm));
            assert_eq!(s.verify(&t, NOW).expect("verify"), claims());
            assert!(s.unknown_kid(&t).is_none());
        }
    }

    #[test]
    fn refusals() {
        let rsa = rsa();
        let (e1, e2) = (ed(), ed());
        let s = signer(rsa, &[(&e1, None)]);
        // Unknown kid: a key of nobody here.
        let t = forge(
            header(Algorithm::EdDSA, &e2.kid()),
            &e2.encoding_key().expect("key"),
        );
        refused(&s, &t, "unknown kid");
        assert_eq!(s.unknown_kid(&t), Some(e2.kid()));
        // No kid at all.
        let t = forge(
            Header::new(Algorithm::RS256),
            &rsa.encoding_key().expect("k"),
        );
        refused(&s, &t, "no kid");
        // HS256 with the secret, under the RSA key's kid and under the old HS256 kid.
        let secret = EncodingKey::from_secret(b"k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1");
        refused(
            &s,
            &forge(header(Algorithm::HS256, &rsa.kid()), &secret),
            "hs256 secret",
        );
        let hs_kid = TokenSigner::hs256(b"k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1", "nauth", "nauth")
            .current()
            .signing_kid()
            .to_string();
        refused(
            &s,
            &forge(header(Algorithm::HS256, &hs_kid), &secret),
            "hs256 kid",
        );
        // HS256 with the public key's bytes as the HMAC key (algorithm confusion).
        let n = B64
            .decode(rsa.public.n.as_deref().expect("n"))
            .expect("b64");
        let x = B64.decode(e1.public.x.as_deref().expect("x")).expect("b64");
        for (bytes, kid) in [(&n, rsa.kid()), (&x, e1.kid())] {
            let t = forge(
                header(Algorithm::HS256, &kid),
                &EncodingKey::from_secret(bytes),
            );
            refused(&s, &t, "hs256 with the public key");
        }
        let jwk_json = serde_json::to_vec(&rsa.public).expect("json");
        let t = forge(
            header(Algorithm::HS256, &rsa.kid()),
            &EncodingKey::from_secret(&jwk_json),
        );
        refused(&s, &t, "hs256 with the public JWK");
        // A kid of another key type: RS256 header naming the Ed25519 key, and the reverse.
        let t = forge(
            header(Algorithm::RS256, &e1.kid()),
            &rsa.encoding_key().expect("k"),
        );
        refused(&s, &t, "rs256 header, eddsa kid");
        let t = forge(
            header(Algorithm::EdDSA, &rsa.kid()),
            &e1.encoding_key().expect("k"),
        );
        refused(&s, &t, "eddsa header, rsa kid");
        // alg: none under a valid kid, and another RSA algorithm under the RSA kid.
        let h = B64.encode(format!(
            r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#,
            rsa.kid()
        ));
        let body = B64.encode(serde_json::to_vec(&claims()).expect("json"));
        refused(&s, &format!("{h}.{body}."), "alg none");
        let t = forge(
            header(Algorithm::PS256, &rsa.kid()),
            &rsa.encoding_key().expect("k"),
        );
        refused(&s, &t, "PS256 under an RS256 key");
        // A signature of another key under a known kid.
        let t = forge(
            header(Algorithm::EdDSA, &e1.kid()),
            &e2.encoding_key().expect("k"),
        );
        refused(&s, &t, "wrong signature");
        // The other, verify-only key still works for its own tokens.
        let t = forge(
            header(Algorithm::EdDSA, &e1.kid()),
            &e1.encoding_key().expect("k"),
        );
        assert!(s.verify(&t, NOW).is_ok());
    }

    #[test]
    fn retired_key_window_edges() {
        let (old, new) = (ed(), ed());
        let until = NOW + 960;
        let s = signer(&new, &[(&old, Some(until))]);
        let t = signer(&old, &[]).sign(&claims()).expect("sign");
        // Valid through the last second of the window (the token's own exp + leeway is
        // NOW + 930, so move exp out of the way to test the window alone).
        let late = Claims {
            exp: NOW + 5000,
            ..claims()
        };
        let t_late = signer(&old, &[]).sign(&late).expect("sign");
        assert!(
            s.verify(&t_late, until).is_ok(),
            "last second of the window"
        );
        assert!(
            matches!(s.verify(&t_late, until + 1), Err(AuthError::TokenInvalid)),
            "past the window"
        );
        assert!(s.verify(&t, NOW + 930).is_ok());
        // The JWKS: both keys inside the window (the signing key first), one after it.
        let ids = |at: i64| -> Vec<String> {
            s.current().jwks(at)["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .map(|k| k["kid"].as_str().unwrap_or_default().to_string())
                .collect()
        };
        assert_eq!(ids(until), vec![new.kid(), old.kid()]);
        assert_eq!(ids(until + 1), vec![new.kid()]);
        let doc = s.current().jwks(NOW);
        let k = &doc["keys"][0];
        assert_eq!(
            (k["kty"].as_str(), k["crv"].as_str()),
            (Some("OKP"), Some("Ed25519"))
        );
        assert_eq!(
            (k["alg"].as_str(), k["use"].as_str()),
            (Some("EdDSA"), Some("sig"))
        );
        assert!(k.get("d").is_none(), "never a private part");
    }

    #[test]
    fn hs256_publishes_nothing() {
        let s = TokenSigner::hs256(b"k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1", "nauth", "nauth");
        assert_eq!(s.current().jwks(NOW), serde_json::json!({"keys": []}));
        let r = signer(rsa(), &[]);
        let doc = r.current().jwks(NOW);
        let k = &doc["keys"][0];
        assert_eq!(
            (k["kty"].as_str(), k["alg"].as_str()),
            (Some("RSA"), Some("RS256"))
        );
        assert_eq!(k["e"].as_str(), Some("AQAB"));
        assert!(k.get("d").is_none() && k.get("p").is_none());
    }
}
