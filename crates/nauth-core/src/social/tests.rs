//! The ID-token checks with tokens signed here (RS256 keys made for the test), and the
//! GitHub answer parsing.

use base64::Engine;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};

use super::*;

const ISS: &str = "https://issuer.example";
const CLIENT: &str = "nauth-test";
const NOW: i64 = 1_800_000_000_000;

struct Key {
    enc: jsonwebtoken::EncodingKey,
    jwk: Value,
}

fn key(kid: &str) -> Key {
    let k = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("key");
    let b64 = |b: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = json!({
        "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": b64(k.n().to_bytes_be()), "e": b64(k.e().to_bytes_be()),
    });
    let der = k.to_pkcs1_der().expect("der");
    Key {
        enc: jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()),
        jwk,
    }
}

fn jwks(keys: &[&Key]) -> CoreJsonWebKeySet {
    let doc = json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
    serde_json::from_value(doc).expect("jwks")
}

fn claims() -> Value {
    json!({
        "iss": ISS, "aud": CLIENT, "sub": "sub-alice", "nonce": "n-1",
        "iat": NOW / 1000 - 10, "exp": NOW / 1000 + 300,
        "email": "Alice@Example.com", "email_verified": true,
        "given_name": "Alice", "family_name": "Doe",
    })
}

fn sign(k: &Key, kid: &str, claims: &Value) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, &k.enc).expect("sign")
}

fn expect() -> Expect {
    Expect {
        client_id: CLIENT.into(),
        issuer: IssuerRule::Exact(ISS.into()),
    }
}

fn code(r: Result<ProviderIdentity, Checked>) -> &'static str {
    match r {
        Ok(_) => "OK",
        Err(Checked::NoKey) => "NO_KEY",
        Err(Checked::Refused(e)) => e.code(),
    }
}

#[test]
fn id_token_checks() {
    let k = key("k1");
    let set = jwks(&[&k]);
    let check = |c: &Value| check_id_token(&sign(&k, "k1", c), &expect(), &set, "n-1", NOW);

    let id = check(&claims()).expect("a good token");
    assert_eq!(id.subject, "sub-alice");
    assert_eq!(id.verified_email(), Some("alice@example.com"));
    assert_eq!(
        (id.first_name.as_deref(), id.last_name.as_deref()),
        (Some("Alice"), Some("Doe"))
    );

    let with = |k: &str, v: Value| {
        let mut c = claims();
        c[k] = v;
        c
    };
    let nonce = check_id_token(&sign(&k, "k1", &claims()), &expect(), &set, "other", NOW);
    assert_eq!(code(nonce), "SOCIAL_NONCE_INVALID");
    let mut no_nonce = claims();
    no_nonce.as_object_mut().expect("object").remove("nonce");
    assert_eq!(code(check(&no_nonce)), "SOCIAL_NONCE_INVALID");
    for (what, c) in [
        ("another audience", with("aud", json!("other-client"))),
        (
            "an extra audience",
            with("aud", json!([CLIENT, "other-client"])),
        ),
        ("another issuer", with("iss", json!("https://evil.example"))),
        ("expired", with("exp", json!(NOW / 1000 - 1))),
        (
            "issued in the future",
            with("iat", json!(NOW / 1000 + 3600)),
        ),
        ("azp of another client", with("azp", json!("other-client"))),
    ] {
        assert_eq!(code(check(&c)), "SOCIAL_ID_TOKEN_INVALID", "{what}");
    }
    // Signed by another key under the same kid: a bad signature.
    let forger = key("k1");
    let forged = check_id_token(&sign(&forger, "k1", &claims()), &expect(), &set, "n-1", NOW);
    assert_eq!(code(forged), "SOCIAL_ID_TOKEN_INVALID");
    // An unknown kid asks for the key set again.
    let rotated = check_id_token(&sign(&forger, "k2", &claims()), &expect(), &set, "n-1", NOW);
    assert_eq!(code(rotated), "NO_KEY");
    // An unsigned token and garbage.
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims()));
    assert_eq!(
        code(check_id_token(&none, &expect(), &set, "n-1", NOW)),
        "SOCIAL_ID_TOKEN_INVALID"
    );
    assert_eq!(
        code(check_id_token("x.y.z", &expect(), &set, "n-1", NOW)),
        "SOCIAL_ID_TOKEN_INVALID"
    );
    // An unverified email is kept, and said to be unverified.
    let id = check(&with("email_verified", json!(false))).expect("still a valid token");
    assert_eq!(id.verified_email(), None);
}

#[test]
fn microsoft_multi_tenant_issuers() {
    let r = IssuerRule::MicrosoftAnyTenant;
    assert!(
        r.accepts("https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0")
    );
    assert!(!r.accepts("https://login.microsoftonline.com/common/v2.0"));
    assert!(!r.accepts("https://evil.example/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"));
    let k = key("k1");
    let set = jwks(&[&k]);
    let mut c = claims();
    c["iss"] = json!("https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0");
    let e = Expect {
        client_id: CLIENT.into(),
        issuer: r,
    };
    assert!(check_id_token(&sign(&k, "k1", &c), &e, &set, "n-1", NOW).is_ok());
    c["iss"] = json!(ISS);
    assert!(check_id_token(&sign(&k, "k1", &c), &e, &set, "n-1", NOW).is_err());
}

#[test]
fn github_primary_verified_email() {
    let user = br#"{"id": 42, "login": "octo", "name": "Mona Lisa Octocat"}"#;
    let emails = br#"[{"email":"other@x.test","primary":false,"verified":true},
                      {"email":"Mona@X.test","primary":true,"verified":true}]"#;
    let id = github_identity(user, emails).expect("identity");
    assert_eq!(id.subject, "42");
    assert_eq!(id.verified_email(), Some("mona@x.test"));
    assert_eq!(id.first_name.as_deref(), Some("Mona"));
    assert_eq!(id.last_name.as_deref(), Some("Lisa Octocat"));
    let unverified = br#"[{"email":"mona@x.test","primary":true,"verified":false}]"#;
    let id = github_identity(user, unverified).expect("identity");
    assert_eq!(id.verified_email(), None);
    assert!(github_identity(b"{}", emails).is_none());
}

#[test]
fn apple_client_secret_is_an_es256_jwt() {
    // A P-256 key made for this test only.
    let pem = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbSjBxgK1JZlbR0hY
Z7Xr37l+jvbzb1eX6w8RTY9gABqhRANCAARrb+8w6AMqjeuoOocSZB72x6bdplrH
2sqRaA3n3udmCEYhEk3dNEunQp6tFOwdhPljEzPlWfHbLvIafpq7qMb2
-----END PRIVATE KEY-----
";
    let mut cfg: SocialProviderConfig = serde_json::from_value(json!({
        "kind": "apple", "client_id": "com.example.web", "team_id": "TEAM", "key_id": "KEY1",
    }))
    .expect("config");
    cfg.private_key = pem.into();
    let jwt = apple_client_secret(&cfg, NOW / 1000).expect("secret");
    let header = jsonwebtoken::decode_header(&jwt).expect("header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), Some("KEY1"));
}
