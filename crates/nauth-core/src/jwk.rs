//! Asymmetric access-token keys (RS256, EdDSA) as data: generation from the OS CSPRNG,
//! PKCS#8 PEM and DER parsing, the public JWK and its RFC 7638 thumbprint (the `kid`). No I/O;
//! the key ring in `signing_keys` stores and loads them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
// The PKCS#8 traits of the one `pkcs8` crate that rsa and ed25519-dalek share.
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use jsonwebtoken::{DecodingKey, EncodingKey};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::JwtAlgorithm;

/// Bits of a generated RSA key.
const RSA_BITS: usize = 2048;
/// The smallest RSA key accepted from a file.
const RSA_MIN_BITS: usize = 2048;
/// `rsaEncryption`, the algorithm of a PKCS#8 RSA key.
const OID_RSA: &str = "1.2.840.113549.1.1.1";
/// `id-Ed25519` (RFC 8410).
const OID_ED25519: &str = "1.3.101.112";

/// The public half of a key as a JWK (RFC 7517): `kty` plus `n`/`e` (RSA) or `crv`/`x` (OKP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PublicJwk {
    /// `RSA` or `OKP`.
    pub(crate) kty: String,
    /// RSA modulus, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) n: Option<String>,
    /// RSA public exponent, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) e: Option<String>,
    /// `Ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) crv: Option<String>,
    /// The Ed25519 public key, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) x: Option<String>,
}

impl PublicJwk {
    /// The RFC 7638 thumbprint: base64url SHA-256 of the required members in lexical order.
    pub(crate) fn thumbprint(&self) -> String {
        let canonical = match (&self.n, &self.e, &self.crv, &self.x) {
            (Some(n), Some(e), _, _) => {
                serde_json::json!({"e": e, "kty": self.kty, "n": n})
            }
            (_, _, Some(crv), Some(x)) => {
                serde_json::json!({"crv": crv, "kty": self.kty, "x": x})
            }
            _ => serde_json::json!({"kty": self.kty}),
        };
        // serde_json's map is ordered by key and writes no whitespace, as RFC 7638 requires.
        B64.encode(Sha256::digest(canonical.to_string().as_bytes()))
    }

    /// The algorithm this key type signs with.
    pub(crate) fn algorithm(&self) -> Option<JwtAlgorithm> {
        match (self.kty.as_str(), self.crv.as_deref()) {
            ("RSA", _) => Some(JwtAlgorithm::Rs256),
            ("OKP", Some("Ed25519")) => Some(JwtAlgorithm::EdDsa),
            _ => None,
        }
    }

    /// The key that verifies signatures.
    pub(crate) fn decoding_key(&self) -> Result<DecodingKey, String> {
        let bad = |e: jsonwebtoken::errors::Error| format!("public key: {e}");
        match (&self.n, &self.e, &self.x) {
            (Some(n), Some(e), _) if self.kty == "RSA" => {
                DecodingKey::from_rsa_components(n, e).map_err(bad)
            }
            (_, _, Some(x)) if self.kty == "OKP" => DecodingKey::from_ed_components(x).map_err(bad),
            _ => Err(format!("unsupported public key type {:?}", self.kty)),
        }
    }

    /// The JWKS entry: the public parts with `kid`, `alg` and `use: "sig"`.
    pub(crate) fn jwks_entry(&self, kid: &str, algorithm: JwtAlgorithm) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.insert("kid".into(), kid.into());
            m.insert("alg".into(), algorithm.as_str().into());
            m.insert("use".into(), "sig".into());
        }
        v
    }
}

/// A private key: its algorithm, its PKCS#8 DER and its public JWK. `Debug` shows the kid only.
#[derive(Clone)]
pub(crate) struct KeyMaterial {
    /// `RS256` or `EdDSA`.
    pub(crate) algorithm: JwtAlgorithm,
    /// The private key, PKCS#8 DER (what is sealed in the database).
    pkcs8: Vec<u8>,
    /// The public half.
    pub(crate) public: PublicJwk,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

fn rsa_public(key: &rsa::RsaPrivateKey) -> PublicJwk {
    PublicJwk {
        kty: "RSA".into(),
        n: Some(B64.encode(key.n().to_bytes_be())),
        e: Some(B64.encode(key.e().to_bytes_be())),
        crv: None,
        x: None,
    }
}

fn ed_public(key: &ed25519_dalek::SigningKey) -> PublicJwk {
    PublicJwk {
        kty: "OKP".into(),
        n: None,
        e: None,
        crv: Some("Ed25519".into()),
        x: Some(B64.encode(key.verifying_key().as_bytes())),
    }
}

impl KeyMaterial {
    /// A new key from the OS CSPRNG: RSA 2048 for `RS256` (CPU-heavy: call it off the async
    /// threads), Ed25519 for `EdDSA`. `HS256` has no key pair.
    pub(crate) fn generate(algorithm: JwtAlgorithm) -> Result<Self, String> {
        match algorithm {
            JwtAlgorithm::Rs256 => {
                let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, RSA_BITS)
                    .map_err(|e| format!("RSA key generation: {e}"))?;
                let der = key.to_pkcs8_der().map_err(|e| format!("RSA key: {e}"))?;
                Ok(KeyMaterial {
                    algorithm,
                    pkcs8: der.as_bytes().to_vec(),
                    public: rsa_public(&key),
                })
            }
            JwtAlgorithm::EdDsa => {
                let seed = crate::codes::random_bytes::<32>();
                let key = ed25519_dalek::SigningKey::from_bytes(&seed);
                let der = key
                    .to_pkcs8_der()
                    .map_err(|e| format!("Ed25519 key: {e}"))?;
                Ok(KeyMaterial {
                    algorithm,
                    pkcs8: der.as_bytes().to_vec(),
                    public: ed_public(&key),
                })
            }
            _ => Err(format!("{} has no key pair", algorithm.as_str())),
        }
    }

    /// A key from PKCS#8 DER (RSA of at least 2048 bits, or Ed25519).
    pub(crate) fn from_pkcs8_der(der: &[u8]) -> Result<Self, String> {
        let info = rsa::pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|e| format!("not a PKCS#8 private key: {e}"))?;
        match info.algorithm.oid.to_string().as_str() {
            OID_RSA => {
                let key = rsa::RsaPrivateKey::from_pkcs8_der(der)
                    .map_err(|e| format!("bad RSA key: {e}"))?;
                if key.size() * 8 < RSA_MIN_BITS {
                    return Err(format!(
                        "RSA key of {} bits; at least {RSA_MIN_BITS} are required",
                        key.size() * 8
                    ));
                }
                Ok(KeyMaterial {
                    algorithm: JwtAlgorithm::Rs256,
                    pkcs8: der.to_vec(),
                    public: rsa_public(&key),
                })
            }
            OID_ED25519 => {
                let key = ed25519_dalek::SigningKey::from_pkcs8_der(der)
                    .map_err(|e| format!("bad Ed25519 key: {e}"))?;
                Ok(KeyMaterial {
                    algorithm: JwtAlgorithm::EdDsa,
                    pkcs8: der.to_vec(),
                    public: ed_public(&key),
                })
            }
            other => Err(format!(
                "key algorithm {other} is neither RSA (RS256) nor Ed25519 (EdDSA)"
            )),
        }
    }

    /// A key from a PKCS#8 PEM text (`-----BEGIN PRIVATE KEY-----`).
    pub(crate) fn from_pem(pem: &str) -> Result<Self, String> {
        let (label, doc) = rsa::pkcs8::SecretDocument::from_pem(pem).map_err(|e| match pem {
            p if p.contains("BEGIN RSA PRIVATE KEY") => "a PKCS#1 RSA key; convert it to PKCS#8 \
                 with `openssl pkcs8 -topk8 -nocrypt -in old.pem -out key.pem`"
                .to_string(),
            p if p.contains("BEGIN ENCRYPTED PRIVATE KEY") => {
                "an encrypted key; store it unencrypted (PKCS#8) with file permissions instead"
                    .to_string()
            }
            _ => format!("not a PEM private key: {e}"),
        })?;
        if label != "PRIVATE KEY" {
            return Err(format!(
                "a PEM `{label}`, expected a PKCS#8 `PRIVATE KEY` (the file must hold the private key)"
            ));
        }
        Self::from_pkcs8_der(doc.as_bytes())
    }

    /// The private key as PKCS#8 DER.
    pub(crate) fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The `kid`: the thumbprint of the public key.
    pub(crate) fn kid(&self) -> String {
        self.public.thumbprint()
    }

    /// The key that signs tokens.
    pub(crate) fn encoding_key(&self) -> Result<EncodingKey, String> {
        match self.algorithm {
            JwtAlgorithm::Rs256 => {
                let key = rsa::RsaPrivateKey::from_pkcs8_der(&self.pkcs8)
                    .map_err(|e| format!("RSA key: {e}"))?;
                // jsonwebtoken signs RSA with a PKCS#1 key.
                let der = key.to_pkcs1_der().map_err(|e| format!("RSA key: {e}"))?;
                Ok(EncodingKey::from_rsa_der(der.as_bytes()))
            }
            JwtAlgorithm::EdDsa => Ok(EncodingKey::from_ed_der(&self.pkcs8)),
            other => Err(format!("{} has no key pair", other.as_str())),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fixed Ed25519 PKCS#8 PEM (RFC 8410 §10.3's example key).
    pub(crate) const ED_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn rfc7638_thumbprint_vector() {
        // RFC 7638 §3.1.
        let jwk = PublicJwk {
            kty: "RSA".into(),
            n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
            e: Some("AQAB".into()),
            crv: None,
            x: None,
        };
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(jwk.algorithm(), Some(JwtAlgorithm::Rs256));
    }

    #[test]
    fn ed25519_pem_round_trip() {
        let k = KeyMaterial::from_pem(ED_PEM).expect("ed pem");
        assert_eq!(k.algorithm, JwtAlgorithm::EdDsa);
        // RFC 8410 §10.3: the public key of this private key.
        assert_eq!(
            k.public.x.as_deref(),
            Some("Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE")
        );
        assert_eq!(k.kid().len(), 43);
        let again = KeyMaterial::from_pkcs8_der(k.pkcs8_der()).expect("der");
        assert_eq!(again.kid(), k.kid());
        assert!(k.encoding_key().is_ok() && k.public.decoding_key().is_ok());
    }

    #[test]
    fn bad_pem_is_named() {
        let cases = [
            ("", "not a PEM"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
                "PKCS#1",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n",
                "PUBLIC KEY",
            ),
        ];
        for (pem, want) in cases {
            let e = KeyMaterial::from_pem(pem).expect_err(want);
            assert!(e.contains(want), "{e}");
        }
        assert!(KeyMaterial::generate(JwtAlgorithm::Hs256).is_err());
    }

    #[test]
    fn generated_keys_have_distinct_kids() {
        let a = KeyMaterial::generate(JwtAlgorithm::EdDsa).expect("ed");
        let b = KeyMaterial::generate(JwtAlgorithm::EdDsa).expect("ed");
        assert_ne!(a.kid(), b.kid());
        let back = KeyMaterial::from_pkcs8_der(a.pkcs8_der()).expect("der");
        assert_eq!(back.public, a.public);
    }
}
