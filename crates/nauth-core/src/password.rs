//! Passwords: Argon2id hashing on a bounded blocking pool (so a login storm queues instead of
//! starving the async workers), a same-cost dummy hash for unknown users, parameter upgrades,
//! and the NIST SP 800-63B policy with the bundled list of the 10,000 most common passwords.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::PasswordConfig;
use crate::error::{AuthError, AuthResult};

static COMMON: &str = include_str!("../data/common-passwords.txt");

fn common_set() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| COMMON.lines().map(|l| l.to_lowercase()).collect())
}

/// Whether the password is on the bundled common-password list (case-insensitive).
pub fn is_common(password: &str) -> bool {
    common_set().contains(&password.to_lowercase())
}

/// The policy violations of a candidate password; empty when it is acceptable.
pub fn policy_violations(password: &str, email: Option<&str>, cfg: &PasswordConfig) -> Vec<String> {
    let mut errors = Vec::new();
    let len = password.chars().count();
    if len < cfg.min_length {
        errors.push(format!(
            "Password must be at least {} characters",
            cfg.min_length
        ));
    }
    if len > cfg.max_length {
        errors.push(format!(
            "Password must be at most {} characters",
            cfg.max_length
        ));
    }
    if cfg.require_uppercase && !password.chars().any(char::is_uppercase) {
        errors.push("Password must contain an uppercase letter".into());
    }
    if cfg.require_lowercase && !password.chars().any(char::is_lowercase) {
        errors.push("Password must contain a lowercase letter".into());
    }
    if cfg.require_digit && !password.chars().any(|c| c.is_ascii_digit()) {
        errors.push("Password must contain a digit".into());
    }
    if cfg.require_symbol
        && !password
            .chars()
            .any(|c| !c.is_alphanumeric() && !c.is_whitespace())
    {
        errors.push("Password must contain a symbol".into());
    }
    if cfg.block_common && is_common(password) {
        errors.push("Password is too common".into());
    }
    if let Some(local) = email.and_then(|e| e.split('@').next())
        && local.chars().count() >= 3
        && password.to_lowercase().contains(&local.to_lowercase())
    {
        errors.push("Password must not contain your email address".into());
    }
    errors
}

/// Checks the policy, answering `400 SIGNUP_WEAK_PASSWORD` with the list of violations.
pub fn check_policy(password: &str, email: Option<&str>, cfg: &PasswordConfig) -> AuthResult<()> {
    let errors = policy_violations(password, email, cfg);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AuthError::WeakPassword(errors))
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The process-wide hashing pool: one long-lived thread per core, fed by a queue. Long-lived
/// threads keep their allocator arenas warm (a fresh thread per hash pays page faults on 19 MiB
/// every time, measured at ~20 % of throughput), and the fixed size bounds the CPU that a login
/// storm can take: requests beyond it wait asynchronously in the queue.
fn pool() -> &'static std::sync::mpsc::SyncSender<Job> {
    static POOL: OnceLock<std::sync::mpsc::SyncSender<Job>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(4096);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("nauth-hash-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            // A panicking job must not take a pool thread with it.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a hashing thread");
            }
        }
        tx
    })
}

/// Argon2id with the configured parameters, run on the bounded hashing pool.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    prefix: Arc<str>,
    dummy: Arc<str>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("params", &self.prefix)
            .finish()
    }
}

impl Hasher {
    /// Builds the hasher and computes the dummy hash used for unknown users.
    pub fn new(cfg: &PasswordConfig) -> AuthResult<Self> {
        let params = Params::new(
            cfg.argon2_memory_kib,
            cfg.argon2_iterations,
            cfg.argon2_parallelism,
            None,
        )
        .map_err(|e| AuthError::Internal(format!("argon2 parameters: {e}")))?;
        let prefix: Arc<str> = format!(
            "$argon2id$v=19$m={},t={},p={}$",
            cfg.argon2_memory_kib, cfg.argon2_iterations, cfg.argon2_parallelism
        )
        .into();
        let dummy_pw = crate::codes::random_token();
        let dummy = hash_sync(&params, &dummy_pw)?;
        Ok(Hasher {
            params,
            prefix,
            dummy: dummy.into(),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(Params) -> T + Send + 'static,
    ) -> AuthResult<T> {
        let params = self.params.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(f(params));
        });
        // The queue is deep; a full one means the pool is far behind: refuse rather than block.
        pool()
            .try_send(job)
            .map_err(|_| AuthError::Unavailable("password hashing queue full".into()))?;
        result
            .await
            .map_err(|_| AuthError::Internal("hashing task failed".into()))
    }

    /// Hashes a password (PHC string).
    pub async fn hash(&self, password: &str) -> AuthResult<String> {
        let pw = password.to_string();
        self.run(move |params| hash_sync(&params, &pw)).await?
    }

    /// Verifies a password against a stored hash, in the hash's own parameters.
    pub async fn verify(&self, password: &str, hash: &str) -> AuthResult<bool> {
        let (pw, h) = (password.to_string(), hash.to_string());
        self.run(move |params| {
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .verify_password(pw.as_bytes(), h.as_str())
                .is_ok()
        })
        .await
    }

    /// Spends the same time as a real verify, for an identifier that names no account.
    pub async fn verify_dummy(&self, password: &str) -> AuthResult<()> {
        let dummy = self.dummy.to_string();
        self.verify(password, &dummy).await.map(|_| ())
    }

    /// Whether a stored hash was made with other parameters and should be upgraded.
    pub fn needs_rehash(&self, hash: &str) -> bool {
        !hash.starts_with(&*self.prefix)
    }
}

fn hash_sync(params: &Params, password: &str) -> AuthResult<String> {
    let salt = crate::codes::random_bytes::<16>();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Internal(format!("argon2: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordConfig {
        PasswordConfig {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            ..PasswordConfig::default()
        }
    }

    #[test]
    fn common_list_is_bundled() {
        assert_eq!(COMMON.lines().count(), 10_000);
        assert!(is_common("password"));
        assert!(is_common("PassWord"));
        assert!(!is_common("correct horse battery staple"));
    }

    #[test]
    fn nist_policy() {
        let c = PasswordConfig::default();
        assert!(policy_violations("Tr0ub4dor&3x", None, &c).is_empty());
        assert_eq!(policy_violations("zq7!x", None, &c).len(), 1);
        assert!(!policy_violations("password123", None, &c).is_empty());
        assert!(!policy_violations("alice-is-great-42", Some("alice@example.com"), &c).is_empty());
        assert!(!policy_violations(&"x".repeat(129), None, &c).is_empty());
        let strict = PasswordConfig {
            require_uppercase: true,
            require_digit: true,
            require_symbol: true,
            ..c.clone()
        };
        assert_eq!(policy_violations("lowercaseonly", None, &strict).len(), 3);
        assert!(policy_violations("Upper1!lower", None, &strict).is_empty());
    }

    #[tokio::test]
    async fn hash_verify_and_rehash() {
        let h = Hasher::new(&cheap()).expect("hasher");
        let stored = h.hash("correct horse").await.expect("hash");
        assert!(stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(h.verify("correct horse", &stored).await.expect("verify"));
        assert!(!h.verify("correct horsE", &stored).await.expect("verify"));
        assert!(!h.verify("x", "not a phc string").await.expect("verify"));
        assert!(!h.needs_rehash(&stored));
        let stronger = Hasher::new(&PasswordConfig {
            argon2_iterations: 2,
            ..cheap()
        })
        .expect("hasher");
        assert!(stronger.needs_rehash(&stored));
        // Verification uses the stored hash's parameters, so old hashes keep working.
        assert!(
            stronger
                .verify("correct horse", &stored)
                .await
                .expect("verify")
        );
        h.verify_dummy("anything").await.expect("dummy");
    }
}
