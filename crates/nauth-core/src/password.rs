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
pub(crate) fn is_common(password: &str) -> bool {
    common_set().contains(&password.to_lowercase())
}

/// The policy violations of a candidate password; empty when it is acceptable.
pub(crate) fn policy_violations(
    password: &str,
    email: Option<&str>,
    cfg: &PasswordConfig,
) -> Vec<String> {
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
pub(crate) fn check_policy(
    password: &str,
    email: Option<&str>,
    cfg: &PasswordConfig,
) -> AuthResult<()> {
    let errors = policy_violations(password, email, cfg);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AuthError::WeakPassword(errors))
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Jobs waiting per hashing thread. A login storm beyond this waits at most [`ADMIT_WAIT`],
/// then is answered `503` with `Retry-After`: a deeper queue only makes every waiting client
/// wait longer (and time out, after its hash was paid for anyway).
const QUEUE_PER_THREAD: usize = 4;

/// A fixed set of long-lived hashing threads fed by a small bounded queue. Long-lived threads
/// keep their allocator arenas warm (a fresh thread per hash pays page faults on 19 MiB every
/// time, measured at ~20 % of throughput), and the fixed size bounds the CPU that a login
/// storm can take.
struct Pool {
    tx: std::sync::mpsc::SyncSender<Job>,
    /// One permit per queue slot: a request holds one from before its job is queued until a
    /// thread takes the job, so the queue never overflows, and a short burst waits (FIFO) for
    /// a slot for at most [`ADMIT_WAIT`] instead of failing at once.
    admit: Arc<tokio::sync::Semaphore>,
    /// The queue's bound.
    depth: usize,
}

/// The hashing queue now: (hashes admitted and not yet taken by a thread, the bound).
pub(crate) fn queue() -> (usize, usize) {
    let p = pool();
    (p.depth.saturating_sub(p.admit.available_permits()), p.depth)
}

/// How long a request waits for room in the hashing queue before the `503`. Long enough that a
/// burst of a few dozen logins is absorbed, short enough that a sustained storm is refused
/// fast: with the queue's own bound a hash never waits much longer than this.
const ADMIT_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

impl Pool {
    /// Starts `threads` workers behind a queue of `depth` jobs.
    fn new(threads: usize, depth: usize) -> Pool {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(depth);
        let rx = Arc::new(std::sync::Mutex::new(rx));
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
        Pool {
            tx,
            admit: Arc::new(tokio::sync::Semaphore::new(depth)),
            depth,
        }
    }

    /// Queues `f`; a full queue is `503` with `Retry-After: 1` at once. When the receiver is
    /// dropped before a thread takes the job (the framework dropped the request future because
    /// its client went away), the job is skipped instead of hashed.
    fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> AuthResult<tokio::sync::oneshot::Receiver<T>> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if done.is_closed() {
                return;
            }
            let _ = done.send(f());
        });
        self.tx.try_send(job).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(_) => AuthError::Busy { retry_after: 1 },
            std::sync::mpsc::TrySendError::Disconnected(_) => {
                AuthError::Internal("no hashing threads".into())
            }
        })?;
        Ok(result)
    }

    /// Runs `f` on the pool and waits for its answer (see [`Pool::submit`]).
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> AuthResult<T> {
        // A client that goes away while it waits here never queues a job at all.
        let permit =
            match tokio::time::timeout(ADMIT_WAIT, self.admit.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                _ => return Err(AuthError::Busy { retry_after: 1 }),
            };
        self.submit(move || {
            // Taken off the queue: its slot is free for the next request.
            drop(permit);
            f()
        })?
        .await
        .map_err(|_| AuthError::Internal("hashing task failed".into()))
    }
}

/// The process-wide hashing pool: one thread per core, [`QUEUE_PER_THREAD`] jobs each.
fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Pool::new(threads, threads * QUEUE_PER_THREAD)
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
        pool().run(move || f(params)).await
    }

    /// Hashes a password (PHC string).
    pub async fn hash(&self, password: &str) -> AuthResult<String> {
        let pw = password.to_string();
        self.run(move |params| hash_sync(&params, &pw)).await?
    }

    /// Verifies a password against a stored hash, in the hash's own parameters. An empty
    /// hash is an account without a password (created by social login): it never matches,
    /// after the same work as a wrong password (the dummy hash is verified instead).
    pub async fn verify(&self, password: &str, hash: &str) -> AuthResult<bool> {
        let no_password = hash.is_empty();
        let h = if no_password { &*self.dummy } else { hash };
        let (pw, h) = (password.to_string(), h.to_string());
        self.run(move |params| {
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .verify_password(pw.as_bytes(), h.as_str())
                .is_ok()
                && !no_password
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
        !hash.is_empty() && !hash.starts_with(&*self.prefix)
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
        // No password (social login): nothing matches the empty hash, not even "".
        for pw in ["", "correct horse"] {
            assert!(!h.verify(pw, "").await.expect("verify"), "{pw:?}");
        }
        assert!(!h.needs_rehash(""));
    }

    /// Occupies the pool's thread until the returned sender is dropped.
    async fn blocker(pool: &Arc<Pool>) -> std::sync::mpsc::Sender<()> {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let pool = pool.clone();
        tokio::spawn(async move {
            pool.run(move || {
                let _ = started_tx.send(());
                let _ = wait.recv();
            })
            .await
        });
        started.await.expect("the blocker runs");
        release
    }

    fn counting(ran: &Arc<AtomicUsize>) -> impl FnOnce() + Send + 'static {
        let ran = ran.clone();
        move || {
            ran.fetch_add(1, Ordering::SeqCst);
        }
    }

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    #[test]
    fn queue_is_a_few_jobs_per_thread() {
        assert!((2..=8).contains(&QUEUE_PER_THREAD));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_queue_is_a_fast_503_with_retry_after() {
        let pool = Arc::new(Pool::new(1, 2));
        let release = blocker(&pool).await;
        // Two slow jobs fill the queue behind the busy thread.
        let slow: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    pool.run(|| std::thread::sleep(Duration::from_millis(10)))
                        .await
                })
            })
            .collect();
        while pool.admit.available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = Instant::now();
        let err = pool.run(|| ()).await.expect_err("queue full");
        let waited = started.elapsed();
        assert!(
            waited >= ADMIT_WAIT && waited < ADMIT_WAIT + Duration::from_millis(500),
            "refused after the short admission wait, not queued: {waited:?}"
        );
        assert!(matches!(err, AuthError::Busy { retry_after: 1 }), "{err:?}");
        assert_eq!((err.status(), err.code()), (503, "SERVICE_UNAVAILABLE"));
        assert!(err.headers().contains(&("retry-after".into(), "1".into())));
        // The queue itself never overflows: a job submitted past the permits is refused at once.
        assert!(matches!(
            pool.submit(|| ()).map(|_| ()),
            Err(AuthError::Busy { retry_after: 1 })
        ));
        drop(release);
        for s in slow {
            s.await.expect("task").expect("queued jobs still run");
        }
        pool.run(|| ()).await.expect("room again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_client_has_gone_is_skipped() {
        let pool = Arc::new(Pool::new(1, 4));
        let ran = Arc::new(AtomicUsize::new(0));
        let release = blocker(&pool).await;
        // The client goes away while its job waits in the queue: the request future (and with
        // it the receiver) is dropped.
        let gone = tokio::time::timeout(Duration::from_millis(20), pool.run(counting(&ran))).await;
        assert!(gone.is_err(), "still queued behind the blocker");
        let waiting = {
            let (pool, job) = (pool.clone(), counting(&ran));
            tokio::spawn(async move { pool.run(job).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(release);
        waiting
            .await
            .expect("task")
            .expect("the waited-for job ran");
        assert_eq!(
            ran.load(Ordering::SeqCst),
            1,
            "only the job whose client waited was run"
        );
        // Every permit came back, the skipped job's included.
        let deadline = Instant::now() + Duration::from_secs(2);
        while pool.admit.available_permits() < 4 {
            assert!(Instant::now() < deadline, "a permit leaked");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
