//! Asymmetric access tokens and the JWKS (issue 12, item 6; docs/api.md §5): the document's
//! shape and headers, tokens verified by a standard JWT library from the published keys
//! alone, rotation and its window, algorithm confusion, and a rotation reaching another
//! instance. Every case that holds keys runs on a database of its own (a fresh SQLite file,
//! or a fresh database on the PostgreSQL/MySQL server): the key ring is global to a database,
//! and the other cases of the run share one.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use nauth_core::config::JwtAlgorithm;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use super::cases::{PW, assert_error, email, login, signup_verified, token};
use super::{Backend, CaseFn, Door, Env, TestRequest};

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub(super) const JWKS_CASES: &[(&str, CaseFn)] = &[$((stringify!($name), |d, b| Box::pin($name(d, b)))),*];
    };
}

cases!(
    jwks_under_hs256_is_empty_and_cacheable,
    jwks_verifies_rs256_and_eddsa_tokens_with_a_standard_library,
    jwks_rotation_keeps_old_tokens_until_their_window,
    jwks_algorithm_confusion_is_refused,
    jwks_two_engines_share_one_key_and_follow_a_rotation,
);

const JWKS: &str = "/auth/.well-known/jwks.json";

/// A database of the case's own on the backend's server (a fresh SQLite file without one):
/// its URL, and its name on the server to drop afterwards.
async fn own_database(b: &Backend) -> (String, Option<String>) {
    let Some(server) = b.url.clone() else {
        return (super::sqlite_url(), None);
    };
    let name = format!(
        "nauth_jwks_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let db = Database::connect(server.as_str())
        .await
        .expect("the test database server");
    db.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let _ = db.close().await;
    // scheme://user@host:port/<db>[?query] → the same with the new database.
    let scheme_end = server.find("://").map_or(0, |i| i + 3);
    let path_start = server[scheme_end..]
        .find('/')
        .map_or(server.len(), |i| scheme_end + i);
    let query = server[path_start..]
        .find('?')
        .map_or("", |i| &server[path_start + i..]);
    let url = format!("{}/{name}{query}", &server[..path_start]);
    if let (Some(redis), Ok(mut m)) = (&b.redis, super::redis_backed().lock()) {
        m.insert(url.clone(), redis.clone());
    }
    (url, Some(name))
}

/// Closes the engines and drops the case's database (best effort).
async fn finish(b: &Backend, envs: &[&Env], name: Option<String>) {
    for e in envs {
        e.nauth.close().await;
    }
    let (Some(server), Some(name)) = (b.url.clone(), name) else {
        return;
    };
    if let Ok(db) = Database::connect(server.as_str()).await {
        let force = if server.starts_with("postgres") {
            " WITH (FORCE)"
        } else {
            ""
        };
        let _ = db
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}{force}"))
            .await;
        let _ = db.close().await;
    }
}

/// An engine under `algorithm` with generated keys, on `url`.
async fn start(door: &dyn Door, url: &str, algorithm: JwtAlgorithm) -> Env {
    Env::start(door, url, |c| c.jwt.algorithm = algorithm).await
}

/// The JWKS as served, after checking its status and headers.
async fn jwks(env: &Env) -> Value {
    let r = env.get(JWKS, None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        r.header("content-type")
    );
    r.json()
}

fn kids(doc: &Value) -> Vec<String> {
    doc["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn header_of(token: &str) -> Header {
    jsonwebtoken::decode_header(token).expect("a JWT header")
}

/// A signed-up user's access token.
async fn access_token(env: &Env) -> String {
    token(&signup_verified(env, &email()).await, "accessToken")
}

/// Verifies `token` with the JWKS document only, through jsonwebtoken: the claims.
fn verify_with_jwks(doc: &Value, token: &str, env: &Env) -> Value {
    let set: JwkSet = serde_json::from_value(doc.clone()).expect("a JWK set");
    let h = header_of(token);
    let jwk = set
        .find(h.kid.as_deref().expect("kid"))
        .expect("the token's key is published");
    let key = DecodingKey::from_jwk(jwk).expect("a decoding key from the JWK");
    let mut v = Validation::new(h.alg);
    let cfg = &env.nauth.config().jwt;
    v.set_issuer(&[cfg.issuer.as_str()]);
    v.set_audience(&[cfg.audience.as_str()]);
    // The engine's clock is not the library's.
    v.validate_exp = false;
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .expect("verified with the published key")
        .claims
}

/// `GET /api/data` with the token: its status and code.
async fn protected(env: &Env, token: &str) -> (u16, String) {
    let r = env.get("/api/data", Some(token)).await;
    (r.status, r.code())
}

/// Under HS256 the document exists, is cacheable, and publishes nothing (never the secret).
async fn jwks_under_hs256_is_empty_and_cacheable(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    assert_eq!(jwks(&env).await, json!({"keys": []}));
    let r = env.send(TestRequest::new("HEAD", JWKS)).await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
    let r = env.post(JWKS, json!({})).await;
    assert_error(&r, 405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
}

/// RS256 and EdDSA: the token's `kid` is the published key's, the protected route accepts
/// it, and a standard JWT library verifies it from the JWKS fetched over HTTP alone.
async fn jwks_verifies_rs256_and_eddsa_tokens_with_a_standard_library(
    door: &dyn Door,
    b: &Backend,
) {
    for (alg, kty) in [(JwtAlgorithm::Rs256, "RSA"), (JwtAlgorithm::EdDsa, "OKP")] {
        let (url, db) = own_database(b).await;
        let env = start(door, &url, alg).await;
        let doc = jwks(&env).await;
        let keys = doc["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 1, "{doc}");
        let k = keys[0].as_object().expect("a key");
        assert_eq!(k["kty"], kty);
        assert_eq!(k["alg"], alg.as_str());
        assert_eq!(k["use"], "sig");
        let public: &[&str] = if kty == "RSA" {
            &["n", "e"]
        } else {
            &["crv", "x"]
        };
        let mut names: Vec<&str> = k.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut want = vec!["alg", "kid", "kty", "use"];
        want.extend(public);
        want.sort_unstable();
        assert_eq!(names, want, "public parts only");
        let t = access_token(&env).await;
        let h = header_of(&t);
        assert_eq!(h.kid.as_deref(), k["kid"].as_str());
        assert_eq!(format!("{:?}", h.alg), alg.as_str());
        assert_eq!(protected(&env, &t).await.0, 200);
        let claims = verify_with_jwks(&doc, &t, &env);
        assert_eq!(claims["type"], "access");
        // Again from the cache of verified tokens.
        assert_eq!(protected(&env, &t).await.0, 200);
        finish(b, &[&env], db).await;
    }
}

/// A rotation: old tokens keep working and their key stays published; new tokens carry the
/// new kid; once the window has passed the old token is refused and its key unpublished.
async fn jwks_rotation_keeps_old_tokens_until_their_window(door: &dyn Door, b: &Backend) {
    let (url, db) = own_database(b).await;
    let env = start(door, &url, JwtAlgorithm::EdDsa).await;
    let e = email();
    let tokens = signup_verified(&env, &e).await;
    let old = token(&tokens, "accessToken");
    let old_kid = header_of(&old).kid.expect("kid");
    let info = env.nauth.rotate_signing_key().await.expect("rotate");
    assert!(info.active);
    assert_ne!(info.kid, old_kid);
    assert_eq!(
        protected(&env, &old).await.0,
        200,
        "the old token still works"
    );
    let r = login(&env, &e, PW).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let new = token(&r.json(), "accessToken");
    assert_eq!(header_of(&new).kid.as_deref(), Some(info.kid.as_str()));
    assert_eq!(protected(&env, &new).await.0, 200);
    let doc = jwks(&env).await;
    assert_eq!(kids(&doc), vec![info.kid.clone(), old_kid.clone()]);
    verify_with_jwks(&doc, &old, &env);
    verify_with_jwks(&doc, &new, &env);
    let keys = env.nauth.signing_keys().await.expect("list");
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .any(|k| k.kid == old_kid && !k.active && k.retired_at.is_some())
    );
    // Past the window: access TTL + leeway + re-check interval.
    let ttl = env.nauth.config().jwt.access_ttl;
    env.clock.advance(ttl + Duration::from_secs(30 + 10 + 1));
    let (status, code) = protected(&env, &old).await;
    assert_eq!(status, 401);
    assert!(
        code == "AUTH_TOKEN_INVALID" || code == "AUTH_TOKEN_EXPIRED",
        "{code}"
    );
    assert_eq!(kids(&jwks(&env).await), vec![info.kid.clone()]);
    // The session lives on under the new key.
    let r = env
        .post(
            "/auth/refresh",
            json!({"refreshToken": tokens["refreshToken"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let fresh = token(&r.json(), "accessToken");
    assert_eq!(header_of(&fresh).kid.as_deref(), Some(info.kid.as_str()));
    assert_eq!(protected(&env, &fresh).await.0, 200);
    finish(b, &[&env], db).await;
}

/// The real session's claims re-signed as an attacker would: HS256 with the secret or with
/// the public key as the HMAC key, `alg: none`, a kid of another key type, an unknown kid.
async fn jwks_algorithm_confusion_is_refused(door: &dyn Door, b: &Backend) {
    let (url, db) = own_database(b).await;
    let env = start(door, &url, JwtAlgorithm::Rs256).await;
    let (ed_url, ed_db) = own_database(b).await;
    let ed = start(door, &ed_url, JwtAlgorithm::EdDsa).await;
    let hs = Env::start(door, &b.url(), |_| {}).await;
    let real = access_token(&env).await;
    assert_eq!(protected(&env, &real).await.0, 200);
    let claims: Value = {
        let body = real.split('.').nth(1).expect("payload");
        serde_json::from_slice(&B64.decode(body).expect("b64")).expect("json")
    };
    let doc = jwks(&env).await;
    let rsa = &doc["keys"][0];
    let rsa_kid = rsa["kid"].as_str().expect("kid").to_string();
    let ed_kid = kids(&jwks(&ed).await)[0].clone();
    let forge = |alg: Algorithm, kid: &str, key: &[u8]| {
        let h = Header {
            kid: Some(kid.to_string()),
            ..Header::new(alg)
        };
        jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(key)).expect("encode")
    };
    let secret = env.nauth.config().secret.clone();
    let n = B64.decode(rsa["n"].as_str().expect("n")).expect("b64");
    let jwk_json = serde_json::to_vec(rsa).expect("json");
    let none = format!(
        "{}.{}.",
        B64.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{rsa_kid}"}}"#)),
        real.split('.').nth(1).expect("payload")
    );
    // The RS256 signature under the Ed25519 key's kid; and a token of another engine.
    let parts: Vec<&str> = real.split('.').collect();
    let other_type = format!(
        "{}.{}.{}",
        B64.encode(format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{ed_kid}"}}"#)),
        parts[1],
        parts[2]
    );
    let foreign = access_token(&hs).await;
    let attempts = [
        (
            "hs256 with the secret",
            forge(Algorithm::HS256, &rsa_kid, secret.as_bytes()),
        ),
        (
            "hs256 with the modulus",
            forge(Algorithm::HS256, &rsa_kid, &n),
        ),
        (
            "hs256 with the JWK",
            forge(Algorithm::HS256, &rsa_kid, &jwk_json),
        ),
        ("alg none", none),
        ("a kid of another key type", other_type),
        (
            "an unknown kid",
            forge(Algorithm::HS256, "no-such-kid", secret.as_bytes()),
        ),
        ("an HS256 engine's token", foreign),
    ];
    for (what, t) in attempts {
        let (status, code) = protected(&env, &t).await;
        assert_eq!(
            (status, code.as_str()),
            (401, "AUTH_TOKEN_INVALID"),
            "{what}"
        );
    }
    // The real token still works after all of it.
    assert_eq!(protected(&env, &real).await.0, 200);
    finish(b, &[&env], db).await;
    finish(b, &[&ed], ed_db).await;
}

/// Two engines starting at once on an empty table share one key; a rotation on one is
/// accepted by the other at once and signed with by it within its re-check interval.
async fn jwks_two_engines_share_one_key_and_follow_a_rotation(door: &dyn Door, b: &Backend) {
    let (url, db) = own_database(b).await;
    let (a, other) = tokio::join!(
        start(door, &url, JwtAlgorithm::Rs256),
        start(door, &url, JwtAlgorithm::Rs256)
    );
    let mut other = other;
    other.ip = a.ip.clone();
    let first = kids(&jwks(&a).await);
    assert_eq!(first.len(), 1, "one key for both");
    assert_eq!(kids(&jwks(&other).await), first);
    let e = email();
    signup_verified(&a, &e).await;
    let info = a.nauth.rotate_signing_key().await.expect("rotate");
    // The other engine signs with the new key within its re-check interval.
    for env in [&a, &other] {
        env.clock.advance(Duration::from_secs(11));
    }
    let r = login(&other, &e, PW).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let t = token(&r.json(), "accessToken");
    assert_eq!(header_of(&t).kid.as_deref(), Some(info.kid.as_str()));
    assert_eq!(protected(&a, &t).await.0, 200);
    // A token of a newer key, made on A, is accepted by the other engine at once.
    let info2 = a.nauth.rotate_signing_key().await.expect("rotate again");
    let r = login(&a, &e, PW).await;
    let t2 = token(&r.json(), "accessToken");
    assert_eq!(header_of(&t2).kid.as_deref(), Some(info2.kid.as_str()));
    for env in [&a, &other] {
        env.clock.advance(Duration::from_secs(2));
    }
    assert_eq!(protected(&other, &t2).await.0, 200);
    let doc = jwks(&other).await;
    assert_eq!(kids(&doc)[0], info2.kid);
    verify_with_jwks(&doc, &t2, &other);
    finish(b, &[&a, &other], db).await;
}
