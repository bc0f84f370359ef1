//! The key ring of RS256/EdDSA access tokens: the key from `jwt.private_key_file`, or keys
//! generated on first start and kept in the database (sealed with the engine secret); rotation,
//! the verification window of retired keys, and how an instance learns of keys another one
//! added (a reload on an unknown `kid`, throttled; a lazy re-check of the live key).

use std::sync::atomic::{AtomicI64, Ordering};

use crate::Inner;
use crate::config::{ConfigError, JwtAlgorithm, NAuthConfig};
use crate::error::{AuthError, AuthResult};
use crate::jwk::{KeyMaterial, PublicJwk};
use crate::store::{self, SigningKeyRow, Store};
use crate::tokens::{KeySet, LEEWAY_SECS, TokenSigner};

/// An unknown `kid` reloads the key set at most this often (ms), so random kids cannot hammer
/// the database.
pub(crate) const RELOAD_EVERY_MS: i64 = 1_000;
/// The signing path re-reads the live key at most this often (ms): a rotation made by another
/// instance (or the CLI) is signed with here within this interval.
pub(crate) const RECHECK_EVERY_MS: i64 = 10_000;
/// `Cache-Control: max-age` of the JWKS document (seconds).
pub(crate) const JWKS_MAX_AGE_SECS: u64 = 300;
/// How long a retired key's row outlives its verification window before the purge deletes it.
const PURGE_GRACE_MS: i64 = 86_400_000;
/// Attempts at adding a key while other instances add theirs.
const INSERT_ATTEMPTS: usize = 5;

/// One signing key, as [`crate::NAuth::signing_keys`] lists it. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SigningKeyInfo {
    /// The key id tokens carry: the RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// `RS256` or `EdDSA`.
    pub algorithm: JwtAlgorithm,
    /// When the key was added.
    pub created_at: i64,
    /// When a newer key replaced it; `None` for the live key.
    pub retired_at: Option<i64>,
    /// After this time its tokens are refused and it leaves the JWKS; `None` while live.
    pub verifiable_until: Option<i64>,
    /// Whether new tokens are signed with it (the newest key that is not retired).
    pub active: bool,
}

/// Where the private keys come from.
enum Source {
    /// HS256: the engine secret; nothing is stored or published.
    Secret,
    /// `jwt.private_key_file`: that key signs; the database keeps the public parts.
    File(KeyMaterial),
    /// Generated, sealed in `nauth_signing_keys`.
    Database,
}

/// The engine's key ring (see the module comment).
pub(crate) struct Keyring {
    source: Source,
    algorithm: JwtAlgorithm,
    seal: [u8; 32],
    /// How long a retired key keeps verifying (ms): the longest access-token life, the clock
    /// leeway, and the re-check interval (another instance may sign with a key that long
    /// after it was retired elsewhere).
    window_ms: i64,
    last_reload_ms: AtomicI64,
    last_check_ms: AtomicI64,
    reload: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn parse_algorithm(s: &str) -> Option<JwtAlgorithm> {
    [JwtAlgorithm::Rs256, JwtAlgorithm::EdDsa]
        .into_iter()
        .find(|a| a.as_str() == s)
}

/// The key of `jwt.private_key_file` (`None` when unset), read and checked against
/// `jwt.algorithm`; errors name the key and the file.
pub(crate) fn key_file(cfg: &NAuthConfig) -> Result<Option<KeyMaterial>, ConfigError> {
    let path = &cfg.jwt.private_key_file;
    if path.is_empty() {
        return Ok(None);
    }
    let bad = |message: String| ConfigError {
        key: "jwt.private_key_file".into(),
        message: format!("{path:?}: {message}"),
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let key = KeyMaterial::from_pem(&text).map_err(bad)?;
    if key.algorithm != cfg.jwt.algorithm {
        return Err(bad(format!(
            "holds a key for {}, but jwt.algorithm = {:?}",
            key.algorithm.as_str(),
            cfg.jwt.algorithm.as_str()
        )));
    }
    Ok(Some(key))
}

fn internal(what: &str) -> impl Fn(String) -> AuthError + '_ {
    move |e| AuthError::Internal(format!("{what}: {e}"))
}

impl Keyring {
    /// The ring for a validated configuration and its signer, with the key set in force
    /// (generating and storing the first key if there is none).
    pub(crate) async fn start(
        cfg: &NAuthConfig,
        keys: &crate::codes::Keys,
        store: &Store,
        now_ms: i64,
    ) -> Result<(Keyring, TokenSigner), crate::StartError> {
        let (iss, aud) = (&cfg.jwt.issuer, &cfg.jwt.audience);
        let source = match cfg.jwt.algorithm {
            JwtAlgorithm::Hs256 => Source::Secret,
            _ => match key_file(cfg)? {
                Some(k) => Source::File(k),
                None => Source::Database,
            },
        };
        let ring = Keyring {
            source,
            algorithm: cfg.jwt.algorithm,
            seal: *keys.signing_seal_key(),
            window_ms: crate::clock::ms(cfg.jwt.access_ttl)
                + (LEEWAY_SECS * 1000)
                + RECHECK_EVERY_MS,
            last_reload_ms: AtomicI64::new(now_ms),
            last_check_ms: AtomicI64::new(now_ms),
            reload: tokio::sync::Mutex::new(()),
        };
        let signer = TokenSigner::hs256(&keys.jwt, iss, aud);
        let start = match &ring.source {
            Source::Secret => return Ok((ring, signer)),
            Source::File(k) => ring.record_file_key(store, k, now_ms).await,
            Source::Database => ring.ensure_live_key(store, now_ms).await,
        };
        let set = match start {
            Ok(()) => ring.load(store, &signer, now_ms).await,
            Err(e) => Err(e),
        };
        match set {
            Ok(Some(set)) => signer.replace(set),
            Ok(None) => {
                return Err(crate::StartError::Database(
                    "no usable signing key after generating one".into(),
                ));
            }
            Err(e) => return Err(crate::StartError::Database(format!("signing keys: {e}"))),
        }
        Ok((ring, signer))
    }

    /// The key set the stored rows give at `now_ms`; `None` when the database holds no usable
    /// live key of the configured algorithm (generated keys only).
    async fn load(
        &self,
        store: &Store,
        signer: &TokenSigner,
        now_ms: i64,
    ) -> AuthResult<Option<KeySet>> {
        let rows = store::signing_keys::all(store).await?;
        let signing = match &self.source {
            Source::Secret => return Ok(None),
            Source::File(k) => k.clone(),
            Source::Database => match self.live_key(&rows) {
                Some(k) => k,
                None => return Ok(None),
            },
        };
        let others: Vec<_> = rows
            .iter()
            .filter(|r| r.kid != signing.kid())
            .filter_map(|r| self.verifiable(r, now_ms))
            .collect();
        signer.asymmetric(&signing, &others).map(Some)
    }

    /// The last second a row's tokens are accepted, if it is still within its window.
    fn until(&self, r: &SigningKeyRow) -> Option<i64> {
        r.retired_at.map(|t| (t + self.window_ms) / 1000)
    }

    /// A stored key as the signer verifies it, unless its window has passed or it is unusable.
    fn verifiable(
        &self,
        r: &SigningKeyRow,
        now_ms: i64,
    ) -> Option<(String, JwtAlgorithm, PublicJwk, Option<i64>)> {
        let until = self.until(r);
        if until.is_some_and(|u| u < now_ms / 1000) {
            return None;
        }
        let alg = parse_algorithm(&r.algorithm)?;
        let public: PublicJwk = serde_json::from_str(&r.public_jwk).ok()?;
        Some((r.kid.clone(), alg, public, until))
    }

    /// The live key (the newest one not retired) when it is of the configured algorithm and
    /// opens with this engine's secret.
    fn live_key(&self, rows: &[SigningKeyRow]) -> Option<KeyMaterial> {
        let head = rows
            .iter()
            .filter(|r| r.retired_at.is_none())
            .max_by_key(|r| r.seq)?;
        if head.algorithm != self.algorithm.as_str() {
            return None;
        }
        let sealed = head.private_sealed.as_deref()?;
        let opened = crate::mfa::open(&self.seal, &head.kid, sealed)
            .map_err(|e| e.to_string())
            .and_then(|der| KeyMaterial::from_pkcs8_der(&der));
        match opened {
            Ok(k) if k.kid() == head.kid => Some(k),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(kid = %head.kid, error = %e,
                    "stored signing key does not open with this secret; a new one replaces it");
                None
            }
        }
    }

    /// A new row for `key` after `rows`, sealed unless only its public part is kept.
    fn row(
        &self,
        rows: &[SigningKeyRow],
        key: &KeyMaterial,
        sealed: bool,
        now_ms: i64,
    ) -> AuthResult<SigningKeyRow> {
        let kid = key.kid();
        let private_sealed = if sealed {
            Some(crate::mfa::seal(&self.seal, &kid, key.pkcs8_der())?)
        } else {
            None
        };
        Ok(SigningKeyRow {
            kid,
            seq: rows.iter().map(|r| r.seq).max().unwrap_or(0) + 1,
            algorithm: key.algorithm.as_str().into(),
            private_sealed,
            public_jwk: serde_json::to_string(&key.public)
                .map_err(|e| internal("jwk")(e.to_string()))?,
            created_at: now_ms,
            retired_at: None,
        })
    }

    /// Adds `key` as the newest, retiring the older ones; retried while other instances add
    /// theirs. `false` if `stop` (given the fresh rows) says another key makes it unneeded.
    async fn add(
        &self,
        store: &Store,
        key: &KeyMaterial,
        sealed: bool,
        now_ms: i64,
        stop: impl Fn(&Keyring, &[SigningKeyRow]) -> bool,
    ) -> AuthResult<bool> {
        for _ in 0..INSERT_ATTEMPTS {
            let rows = store::signing_keys::all(store).await?;
            if stop(self, &rows) {
                return Ok(false);
            }
            let row = self.row(&rows, key, sealed, now_ms)?;
            let seq = row.seq;
            if store::signing_keys::insert(store, row).await? {
                store::signing_keys::retire_before(store, seq, now_ms).await?;
                return Ok(true);
            }
        }
        Err(AuthError::Contention)
    }

    /// Generated keys: makes sure a usable live key exists, generating one if not. Of two
    /// instances starting together on an empty table, one insert wins and both use its key.
    async fn ensure_live_key(&self, store: &Store, now_ms: i64) -> AuthResult<()> {
        let rows = store::signing_keys::all(store).await?;
        if self.live_key(&rows).is_some() {
            return Ok(());
        }
        let key = generate(self.algorithm).await?;
        self.add(store, &key, true, now_ms, |ring, rows| {
            ring.live_key(rows).is_some()
        })
        .await
        .map(drop)
    }

    /// A key file: records its public part (a new file's key becomes the live one; the
    /// previous keys keep verifying through their window).
    async fn record_file_key(
        &self,
        store: &Store,
        key: &KeyMaterial,
        now_ms: i64,
    ) -> AuthResult<()> {
        let kid = key.kid();
        let rows = store::signing_keys::all(store).await?;
        match rows.iter().find(|r| r.kid == kid) {
            None => {
                let known = |_: &Keyring, rows: &[SigningKeyRow]| rows.iter().any(|r| r.kid == kid);
                self.add(store, key, false, now_ms, known).await.map(drop)
            }
            Some(r) => {
                let others_live = rows.iter().any(|o| o.kid != kid && o.retired_at.is_none());
                if r.retired_at.is_some() || others_live {
                    store::signing_keys::reinstate(store, &kid, now_ms).await?;
                }
                Ok(())
            }
        }
    }

    /// Reads the stored keys and puts the set in force; a failure keeps the current set.
    async fn refresh(&self, inner: &Inner, now_ms: i64) {
        match self.load(&inner.store, &inner.signer, now_ms).await {
            Ok(Some(set)) => inner.signer.replace(set),
            Ok(None) => tracing::warn!(
                "no live {} signing key in the database; still signing with the current one",
                self.algorithm.as_str()
            ),
            Err(e) => tracing::warn!(error = %e, "signing keys could not be reloaded"),
        }
    }

    /// Whether an unknown `kid` may reload the key set now.
    pub(crate) fn may_reload(&self, now_ms: i64) -> bool {
        !matches!(self.source, Source::Secret)
            && now_ms - self.last_reload_ms.load(Ordering::Relaxed) >= RELOAD_EVERY_MS
    }

    /// A token named a `kid` this instance does not know: reloads the set (at most once per
    /// [`RELOAD_EVERY_MS`]; concurrent callers wait for one reload).
    pub(crate) async fn reload_for_unknown_kid(&self, inner: &Inner) {
        if matches!(self.source, Source::Secret) {
            return;
        }
        let _one = self.reload.lock().await;
        let now = inner.clock.now_ms();
        if !self.may_reload(now) {
            return;
        }
        self.last_reload_ms.store(now, Ordering::Relaxed);
        self.refresh(inner, now).await;
    }

    /// On the signing path: re-reads the live key when [`RECHECK_EVERY_MS`] has passed, so a
    /// rotation made elsewhere is signed with here too (one task re-reads; the rest go on).
    pub(crate) async fn recheck(&self, inner: &Inner) {
        if matches!(self.source, Source::Secret) {
            return;
        }
        let now = inner.clock.now_ms();
        let last = self.last_check_ms.load(Ordering::Relaxed);
        if now - last < RECHECK_EVERY_MS
            || self
                .last_check_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.refresh(inner, now).await;
    }

    /// Generates a key, makes it the live one (signing here at once), and retires the
    /// previous one, which keeps verifying through its window.
    pub(crate) async fn rotate(&self, inner: &Inner) -> AuthResult<SigningKeyInfo> {
        match self.source {
            Source::Secret => {
                return Err(AuthError::Internal(
                    "jwt.algorithm = \"HS256\" signs with the secret: there is no key to rotate \
                     (use RS256 or EdDSA for rotating keys)"
                        .into(),
                ));
            }
            Source::File(_) => {
                return Err(AuthError::Internal(
                    "the signing key comes from jwt.private_key_file: rotate it by replacing \
                     that file and restarting; tokens of the previous key keep verifying \
                     until they expire"
                        .into(),
                ));
            }
            Source::Database => {}
        }
        let now = inner.clock.now_ms();
        let key = generate(self.algorithm).await?;
        self.add(&inner.store, &key, true, now, |_, _| false)
            .await?;
        self.last_check_ms.store(now, Ordering::Relaxed);
        self.refresh(inner, now).await;
        let kid = key.kid();
        self.list(inner)
            .await?
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| AuthError::Internal("rotated key not found".into()))
    }

    /// Every stored key, oldest first (empty under HS256); the purge deletes retired keys a day
    /// after their window.
    pub(crate) async fn list(&self, inner: &Inner) -> AuthResult<Vec<SigningKeyInfo>> {
        if matches!(self.source, Source::Secret) {
            return Ok(Vec::new());
        }
        let rows = store::signing_keys::all(&inner.store).await?;
        let live = rows
            .iter()
            .filter(|r| r.retired_at.is_none())
            .map(|r| r.seq)
            .max();
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(SigningKeyInfo {
                    kid: r.kid.clone(),
                    algorithm: parse_algorithm(&r.algorithm)?,
                    created_at: r.created_at,
                    retired_at: r.retired_at,
                    verifiable_until: r.retired_at.map(|t| t + self.window_ms),
                    active: Some(r.seq) == live,
                })
            })
            .collect())
    }
}

impl Keyring {
    /// Deletes the keys whose verification window ended more than a day ago (kept that long
    /// so a late token is still refused as invalid by a known key rather than an unknown
    /// one, and for `NAuth::signing_keys`); how many. Errors are logged.
    pub(crate) async fn purge(&self, store: &Store, now_ms: i64) -> u64 {
        let cutoff = now_ms - self.window_ms - PURGE_GRACE_MS;
        match store::signing_keys::delete_retired(store, cutoff).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "purge of retired signing keys failed");
                0
            }
        }
    }
}

/// A new key, generated on the blocking pool (RSA takes a while).
async fn generate(algorithm: JwtAlgorithm) -> AuthResult<KeyMaterial> {
    tokio::task::spawn_blocking(move || KeyMaterial::generate(algorithm))
        .await
        .map_err(|e| AuthError::Internal(format!("key generation: {e}")))?
        .map_err(internal("key generation"))
}

/// Verifies an access token, reloading the key set first when it names an unknown `kid`
/// (throttled; see [`Keyring::reload_for_unknown_kid`]).
pub(crate) async fn verify(inner: &Inner, token: &str, now_s: i64) -> AuthResult<crate::Claims> {
    match inner.signer.verify(token, now_s) {
        Err(AuthError::TokenInvalid) if inner.signer.unknown_kid(token).is_some() => {
            inner.keyring.reload_for_unknown_kid(inner).await;
            inner.signer.verify(token, now_s)
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};

    use super::*;
    use crate::{Claims, ManualClock, NAuth};

    fn config(url: &str, algorithm: JwtAlgorithm) -> NAuthConfig {
        let mut cfg = crate::store::purge::tests::config(url);
        cfg.jwt.algorithm = algorithm;
        cfg
    }

    async fn engine(cfg: NAuthConfig, clock: &ManualClock) -> NAuth {
        NAuth::builder(cfg)
            .clock(clock.clone())
            .build()
            .await
            .expect("engine")
    }

    fn claims(n: &NAuth) -> Claims {
        let iat = n.inner.clock.now_ms() / 1000;
        Claims {
            sub: "u1".into(),
            sid: "s1".into(),
            jti: uuid::Uuid::new_v4().to_string(),
            roles: vec!["user".into()],
            iat,
            exp: iat + 900,
            iss: "nauth".into(),
            aud: "nauth".into(),
            token_type: "access".into(),
            amr: None,
        }
    }

    fn token(n: &NAuth) -> String {
        n.inner.signer.sign(&claims(n)).expect("sign")
    }

    fn kid(token: &str) -> String {
        jsonwebtoken::decode_header(token)
            .expect("header")
            .kid
            .expect("kid")
    }

    fn now_s(n: &NAuth) -> i64 {
        n.inner.clock.now_ms() / 1000
    }

    fn jwks_kids(n: &NAuth) -> Vec<String> {
        n.inner.signer.current().jwks(now_s(n))["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn temp_file(text: &str) -> String {
        let path = std::env::temp_dir().join(format!("nauth-key-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&path, text).expect("write key");
        path.display().to_string()
    }

    #[test]
    fn bad_key_files_are_named() {
        let k = KeyMaterial::generate(JwtAlgorithm::Rs256).expect("rsa");
        let rsa_pem = rsa::RsaPrivateKey::from_pkcs8_der(k.pkcs8_der())
            .expect("der")
            .to_pkcs8_pem(Default::default())
            .expect("pem")
            .to_string();
        let ed = temp_file(crate::jwk::tests::ED_PEM);
        let rsa = temp_file(&rsa_pem);
        let garbage = temp_file("not a key");
        let cases: &[(JwtAlgorithm, &str, &str)] = &[
            (
                JwtAlgorithm::Rs256,
                "/nonexistent/key.pem",
                "cannot be read",
            ),
            (JwtAlgorithm::Rs256, &garbage, "not a PEM private key"),
            (
                JwtAlgorithm::Rs256,
                &ed,
                "holds a key for EdDSA, but jwt.algorithm = \"RS256\"",
            ),
            (
                JwtAlgorithm::EdDsa,
                &rsa,
                "holds a key for RS256, but jwt.algorithm = \"EdDSA\"",
            ),
            (
                JwtAlgorithm::Hs256,
                &ed,
                "must be empty when jwt.algorithm = \"HS256\"",
            ),
        ];
        for (alg, path, want) in cases {
            let mut cfg = config("sqlite::memory:", *alg);
            cfg.jwt.private_key_file = path.to_string();
            let e = cfg.validate().expect_err(want);
            assert_eq!(e.key, "jwt.private_key_file", "{e}");
            assert!(e.message.contains(want), "{e}");
            if *alg != JwtAlgorithm::Hs256 {
                assert!(e.message.contains(path), "the file is named: {e}");
            }
        }
        for (alg, path) in [(JwtAlgorithm::EdDsa, &ed), (JwtAlgorithm::Rs256, &rsa)] {
            let mut cfg = config("sqlite::memory:", alg);
            cfg.jwt.private_key_file = path.clone();
            assert!(cfg.validate().is_ok(), "{alg:?}");
        }
        for p in [ed, rsa, garbage] {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Four instances starting at once on an empty table end with one key, which all sign with.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_starts_store_one_key() {
        let url = crate::store::tests::sqlite_url();
        let clock = ManualClock::new();
        let starts: Vec<_> = (0..4)
            .map(|_| {
                let (cfg, clock) = (config(&url, JwtAlgorithm::EdDsa), clock.clone());
                tokio::spawn(async move { engine(cfg, &clock).await })
            })
            .collect();
        let mut engines = Vec::new();
        for s in starts {
            engines.push(s.await.expect("task"));
        }
        let keys = engines[0].signing_keys().await.expect("list");
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert!(keys[0].active && keys[0].retired_at.is_none());
        for e in &engines {
            assert_eq!(kid(&token(e)), keys[0].kid);
        }
        // A restart adopts the stored key.
        let again = engine(config(&url, JwtAlgorithm::EdDsa), &clock).await;
        assert_eq!(kid(&token(&again)), keys[0].kid);
    }

    /// Rotation signs with the new key at once; the old one verifies (and is published) through
    /// its window, to the second, then neither.
    #[tokio::test]
    async fn rotation_window_edges() {
        let url = crate::store::tests::sqlite_url();
        let clock = ManualClock::new();
        let n = engine(config(&url, JwtAlgorithm::EdDsa), &clock).await;
        let old = token(&n);
        let info = n.rotate_signing_key().await.expect("rotate");
        assert!(info.active && info.algorithm == JwtAlgorithm::EdDsa);
        let new = token(&n);
        assert_eq!(kid(&new), info.kid);
        assert_ne!(kid(&old), kid(&new));
        let keys = n.signing_keys().await.expect("list");
        assert_eq!(keys.len(), 2);
        let retired = keys.iter().find(|k| k.kid == kid(&old)).expect("old key");
        assert!(!retired.active);
        let until = retired.verifiable_until.expect("window") / 1000;
        assert_eq!(
            retired.verifiable_until,
            retired
                .retired_at
                .map(|t| t + (900 + LEEWAY_SECS) * 1000 + RECHECK_EVERY_MS)
        );
        assert_eq!(jwks_kids(&n), vec![kid(&new), kid(&old)]);
        assert!(n.inner.signer.verify(&old, now_s(&n)).is_ok());
        // A token of the old key that lives longer than the window isolates the window.
        let long = |n: &NAuth| Claims {
            exp: now_s(n) + 10_000,
            ..claims(n)
        };
        // Re-sign with the retired key: load it from the database.
        let rows = store::signing_keys::all(&n.inner.store)
            .await
            .expect("rows");
        let row = rows.iter().find(|r| r.kid == kid(&old)).expect("row");
        let der = crate::mfa::open(
            &n.inner.keyring.seal,
            &row.kid,
            row.private_sealed.as_deref().expect("sealed"),
        )
        .expect("open");
        let old_material = KeyMaterial::from_pkcs8_der(&der).expect("der");
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        h.kid = Some(row.kid.clone());
        let long_token =
            jsonwebtoken::encode(&h, &long(&n), &old_material.encoding_key().expect("k"))
                .expect("sign");
        let at = |s: i64| s - now_s(&n);
        clock.advance(Duration::from_secs(at(until) as u64));
        assert_eq!(now_s(&n), until);
        assert!(
            n.inner.signer.verify(&long_token, now_s(&n)).is_ok(),
            "last second"
        );
        assert_eq!(jwks_kids(&n).len(), 2);
        clock.advance(Duration::from_secs(1));
        assert!(matches!(
            n.inner.signer.verify(&long_token, now_s(&n)),
            Err(AuthError::TokenInvalid)
        ));
        assert_eq!(jwks_kids(&n), vec![kid(&new)]);
        // A reload (another engine starting) no longer loads the old key at all.
        n.inner
            .keyring
            .refresh(&n.inner, n.inner.clock.now_ms())
            .await;
        assert!(!n.inner.signer.current().knows(&kid(&old)));
        // The purge keeps the row a day past the window, then deletes it (never the live key).
        assert_eq!(n.purge().await.signing_keys, 0);
        clock.advance(Duration::from_millis(PURGE_GRACE_MS as u64));
        assert_eq!(n.purge().await.signing_keys, 1);
        let keys = n.signing_keys().await.expect("list");
        assert_eq!(keys.len(), 1);
        assert!(keys[0].active && keys[0].kid == kid(&new));
    }

    /// Two engines on one database: a rotation on one reaches the other through an unknown
    /// kid (at once, throttled) and the lazy re-check (signing within its interval).
    #[tokio::test]
    async fn other_instances_follow_a_rotation() {
        let url = crate::store::tests::sqlite_url();
        let clock = ManualClock::new();
        let a = engine(config(&url, JwtAlgorithm::EdDsa), &clock).await;
        let b = engine(config(&url, JwtAlgorithm::EdDsa), &clock).await;
        let c = engine(config(&url, JwtAlgorithm::EdDsa), &clock).await;
        let before = token(&b);
        clock.advance(Duration::from_secs(2));
        let info = a.rotate_signing_key().await.expect("rotate");
        let t = token(&a);
        assert_eq!(kid(&t), info.kid);
        // B: unknown kid → one reload → accepted; its own older token still verifies.
        assert!(b.inner.signer.unknown_kid(&t).is_some());
        assert!(b.inner.keyring.may_reload(b.inner.clock.now_ms()));
        let claims = verify(&b.inner, &t, now_s(&b)).await.expect("after reload");
        assert_eq!(claims.sub, "u1");
        assert!(b.inner.signer.verify(&before, now_s(&b)).is_ok());
        // Throttled: a second unknown kid within the second reads nothing.
        assert!(!b.inner.keyring.may_reload(b.inner.clock.now_ms()));
        clock.advance(Duration::from_millis(RELOAD_EVERY_MS as u64));
        assert!(b.inner.keyring.may_reload(b.inner.clock.now_ms()));
        // The reload brought the live key too: B signs with it now.
        assert_eq!(kid(&token(&b)), info.kid);
        // C, which saw no token of the new key, signs with the old one until the re-check
        // interval has passed since its last look.
        c.inner.keyring.recheck(&c.inner).await;
        assert_ne!(kid(&token(&c)), info.kid, "re-checked too early");
        clock.advance(Duration::from_millis(RECHECK_EVERY_MS as u64));
        c.inner.keyring.recheck(&c.inner).await;
        assert_eq!(kid(&token(&c)), info.kid);
    }

    /// A key file: its public part is recorded; rotation is refused with advice; a new file's
    /// key takes over while the previous file's tokens keep verifying.
    #[tokio::test]
    async fn key_files_are_recorded_and_replaced() {
        let url = crate::store::tests::sqlite_url();
        let clock = ManualClock::new();
        let first = temp_file(crate::jwk::tests::ED_PEM);
        let mut cfg = config(&url, JwtAlgorithm::EdDsa);
        cfg.jwt.private_key_file = first.clone();
        let a = engine(cfg.clone(), &clock).await;
        let old = token(&a);
        let e = a
            .rotate_signing_key()
            .await
            .expect_err("file keys rotate by file");
        assert!(e.to_string().contains("replacing"), "{e}");
        let keys = a.signing_keys().await.expect("list");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid, kid(&old));
        let rows = store::signing_keys::all(&a.inner.store)
            .await
            .expect("rows");
        assert!(
            rows[0].private_sealed.is_none(),
            "a file's private key is not copied"
        );
        // The same file again: nothing new.
        let _same = engine(cfg.clone(), &clock).await;
        assert_eq!(a.signing_keys().await.expect("list").len(), 1);
        // A new file.
        let pem = {
            use ed25519_dalek::pkcs8::EncodePrivateKey as _;
            let k = ed25519_dalek::SigningKey::from_bytes(&crate::codes::random_bytes::<32>());
            k.to_pkcs8_pem(Default::default()).expect("pem").to_string()
        };
        let second = temp_file(&pem);
        cfg.jwt.private_key_file = second.clone();
        let b = engine(cfg, &clock).await;
        let new = token(&b);
        assert_ne!(kid(&new), kid(&old));
        assert!(
            b.inner.signer.verify(&old, now_s(&b)).is_ok(),
            "previous file's token"
        );
        assert_eq!(jwks_kids(&b), vec![kid(&new), kid(&old)]);
        let keys = b.signing_keys().await.expect("list");
        assert!(keys.iter().any(|k| k.kid == kid(&new) && k.active));
        assert!(
            keys.iter()
                .any(|k| k.kid == kid(&old) && k.retired_at.is_some())
        );
        clock.advance(Duration::from_secs(900 + 30 + 10 + 1));
        assert!(b.inner.signer.verify(&old, now_s(&b)).is_err());
        assert_eq!(jwks_kids(&b), vec![kid(&new)]);
        for p in [first, second] {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Under HS256 nothing is stored, listed or published, and rotation explains why.
    #[tokio::test]
    async fn hs256_has_no_key_ring() {
        let url = crate::store::tests::sqlite_url();
        let n = engine(config(&url, JwtAlgorithm::Hs256), &ManualClock::new()).await;
        assert!(n.signing_keys().await.expect("list").is_empty());
        assert!(n.rotate_signing_key().await.is_err());
        assert!(jwks_kids(&n).is_empty());
        assert!(
            store::signing_keys::all(&n.inner.store)
                .await
                .expect("rows")
                .is_empty()
        );
    }
}
