//! Access tokens: JWTs behind our own [`TokenSigner`], so the JWT crate's types never reach
//! the public API and RS256/EdDSA keys can join later behind the same `kid` seam.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::codes::sha256_hex;
use crate::error::{AuthError, AuthResult};

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

/// Signs and verifies access tokens.
#[derive(Clone)]
pub(crate) struct TokenSigner {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// An HS256 signer over a derived key.
    pub(crate) fn hs256(key: &[u8], issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Time is checked against nauth's own (injectable) clock below.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let kid = sha256_hex(&format!("kid:{}", String::from_utf8_lossy(key)))[..16].to_string();
        TokenSigner {
            kid,
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
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

    /// Signs claims.
    pub(crate) fn sign(&self, claims: &Claims) -> AuthResult<String> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| AuthError::Internal(format!("jwt sign: {e}")))
    }

    /// Verifies signature, algorithm, `kid`, issuer, audience, type and times (`exp`, and
    /// `iat`/`nbf` in the future) at `now` (Unix s).
    pub(crate) fn verify(&self, token: &str, now: i64) -> AuthResult<Claims> {
        self.verify_with_start(token, now).map(|(c, _)| c)
    }

    /// [`TokenSigner::verify`], also returning the time the token is valid from (the later
    /// of `iat` and `nbf`), so a cached token's times can be checked again on every use.
    pub(crate) fn verify_with_start(&self, token: &str, now: i64) -> AuthResult<(Claims, i64)> {
        let data = jsonwebtoken::decode::<Decoded>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::TokenExpired,
                _ => AuthError::TokenInvalid,
            })?;
        if data.header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(AuthError::TokenInvalid);
        }
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
            kid: Some(s.kid.clone()),
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
                kid: Some(s.kid.clone()),
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
