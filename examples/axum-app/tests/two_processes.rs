//! Two instances, one truth, as users deploy them: two processes of this example app behind
//! no shared memory, on the machine's PostgreSQL (and Redis with the `redis` feature), each on
//! its own port. Requests of one race are split between them; what one instance changes, the
//! other sees on the very next request. Skipped when
//! `NAUTH_TEST_POSTGRES_URL` is unset (`.ci/run` sets it).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nauth_testkit::{TestRequest, TestResponse, extract_code};
use serde_json::{Value, json};

const PW: &str = "Correct-Horse-9";

/// One example process and what it printed (its console outbox).
struct App {
    child: Child,
    addr: SocketAddr,
    out: Arc<Mutex<String>>,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl App {
    /// Starts the example on a free port with the given `NAUTH_*` settings and waits until it
    /// listens.
    async fn start(settings: &[(&str, String)]) -> App {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_axum-app"));
        cmd.env("NAUTH_BIND", addr.to_string())
            .env("NAUTH_SECRET", "two-processes-secret-0123456789abcdef")
            .env("NAUTH_PASSWORD__ARGON2_MEMORY_KIB", "64")
            .env("NAUTH_PASSWORD__ARGON2_ITERATIONS", "1")
            .env("NAUTH_SIGNUP__IP_MAX_PER_HOUR", "1000")
            .env("NAUTH_LOCKOUT__IP_MAX_ATTEMPTS", "1000")
            .env("NAUTH_SESSION__VALIDATION", "database")
            .env("NAUTH_SESSION__CACHE_MAX_AGE", "60s")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in settings {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the example starts");
        let out = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("stdout");
        let sink = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut o) = sink.lock() {
                    o.push_str(&line);
                    o.push('\n');
                }
            }
        });
        let app = App { child, addr, out };
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return app;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the example did not listen on {addr}");
    }

    /// Sends a request as a JSON client (the example delivers tokens in `hybrid` mode).
    async fn send(&self, req: TestRequest) -> TestResponse {
        let req = req.header("x-token-delivery", "json");
        nauth_testkit::conformance::send(self.addr, &req).await
    }

    async fn post(&self, path: &str, body: Value) -> TestResponse {
        self.send(TestRequest::json("POST", path, &body)).await
    }

    async fn data(&self, access: &str) -> TestResponse {
        self.send(TestRequest::new("GET", "/api/data").bearer(access))
            .await
    }

    /// The code of the latest mail this process printed to `to`.
    async fn code_to(&self, to: &str) -> String {
        for _ in 0..100 {
            let out = self.out.lock().map(|o| o.clone()).unwrap_or_default();
            if let Some(mail) = out
                .rsplit(&format!("To: {to}\n"))
                .next()
                .filter(|_| out.contains(to))
                && let Some(code) = extract_code(mail)
            {
                return code;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no code to {to}");
    }
}

fn token(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {v}"))
        .to_string()
}

fn email() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("proc{n:x}{}@example.com", std::process::id())
}

/// Signs up on `a`, answers VERIFY_EMAIL on `b` (a challenge of one instance answered on the
/// other); returns the tokens.
async fn signup_across(a: &App, b: &App, e: &str) -> Value {
    let r = a
        .post("/auth/signup", json!({"email": e, "password": PW}))
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    let session = token(&r.json(), "session");
    let code = a.code_to(e).await;
    let r = b
        .post(
            "/auth/respond-challenge",
            json!({"session": session, "type": "VERIFY_EMAIL", "code": code}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    r.json()
}

async fn two_processes(settings: Vec<(&str, String)>) {
    let a = App::start(&settings).await;
    let b = App::start(&settings).await;

    // A refresh race split across both: every exchange a pair or a refusal, and of all the
    // pairs handed out exactly one keeps working.
    let t = signup_across(&a, &b, &email()).await;
    let body = json!({"refreshToken": t["refreshToken"]});
    let race: Vec<_> = (0..12)
        .map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            app.post("/auth/refresh", body.clone())
        })
        .collect();
    let answers = futures_util::future::join_all(race).await;
    assert!(
        answers.iter().all(|r| r.status == 200 || r.status == 401),
        "{:?}",
        answers
            .iter()
            .map(|r| (r.status, r.code()))
            .collect::<Vec<_>>()
    );
    let pairs: Vec<Value> = answers
        .iter()
        .filter(|r| r.status == 200)
        .map(TestResponse::json)
        .collect();
    assert!(
        !pairs.is_empty(),
        "{:?} {t}",
        answers.iter().map(|r| r.code()).collect::<Vec<_>>()
    );
    let mut live = Vec::new();
    for (i, p) in pairs.iter().enumerate() {
        let app = if i % 2 == 0 { &b } else { &a };
        let r = app
            .post("/auth/refresh", json!({"refreshToken": p["refreshToken"]}))
            .await;
        if r.status == 200 {
            live.push(r.json());
        }
    }
    assert_eq!(live.len(), 1, "one family, one live token across both");
    let access = token(&live[0], "accessToken");

    // Both have cached the session; a logout on A is refused on B at once.
    for _ in 0..3 {
        assert_eq!(a.data(&access).await.status, 200);
        assert_eq!(b.data(&access).await.status, 200);
    }
    let r = a
        .send(TestRequest::json("POST", "/auth/logout", &json!({})).bearer(&access))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let r = b.data(&access).await;
    assert_eq!((r.status, r.code()), (401, "AUTH_SESSION_NOT_FOUND".into()));

    // An API key made on one serves `/api/reports` (scope `read`) on the other; revoked on
    // the other, it is refused on the first at once.
    let t = signup_across(&a, &b, &email()).await;
    let user = token(&t, "accessToken");
    let r = a
        .send(
            TestRequest::json(
                "POST",
                "/auth/api-keys",
                &json!({"name": "reports", "scopes": ["read"], "password": PW}),
            )
            .bearer(&user),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    let (id, key) = (token(&r.json(), "id"), token(&r.json(), "key"));
    let report = TestRequest::new("GET", "/api/reports").header("x-api-key", &key);
    assert_eq!(b.send(report.clone()).await.status, 200);
    let r = b
        .send(TestRequest::new("DELETE", &format!("/auth/api-keys/{id}")).bearer(&user))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let r = a.send(report).await;
    assert_eq!((r.status, r.code()), (401, "API_KEY_INVALID".into()));

    // The login budget counts across both: 16 wrong passwords at once, half to each, compare
    // at most `lockout.max_attempts` (5); then the right one is refused on both.
    let e = email();
    signup_across(&b, &a, &e).await;
    let burst: Vec<_> = (0..16)
        .map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            app.post(
                "/auth/login",
                json!({"identifier": e, "password": "Wrong-Password-1"}),
            )
        })
        .collect();
    let answers = futures_util::future::join_all(burst).await;
    let compared = answers
        .iter()
        .filter(|r| r.code() == "AUTH_INVALID_CREDENTIALS")
        .count();
    assert!(
        (1..=5).contains(&compared),
        "{compared} compared: {:?}",
        answers
            .iter()
            .map(|r| (r.status, r.code()))
            .collect::<Vec<_>>()
    );
    for app in [&a, &b] {
        let r = app
            .post("/auth/login", json!({"identifier": e, "password": PW}))
            .await;
        assert_eq!((r.status, r.code()), (429, "RATE_LIMIT_LOGIN".into()));
    }
}

/// PostgreSQL alone: counters in its kv table, the session cache through LISTEN/NOTIFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_postgres() {
    let Ok(pg) = std::env::var("NAUTH_TEST_POSTGRES_URL") else {
        eprintln!("NAUTH_TEST_POSTGRES_URL not set; skipped");
        return;
    };
    two_processes(vec![("NAUTH_DATABASE_URL", pg)]).await;
}

/// PostgreSQL and Redis: counters in Redis, the session cache through Redis pub/sub.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_postgres_and_redis() {
    let (Ok(pg), Ok(redis)) = (
        std::env::var("NAUTH_TEST_POSTGRES_URL"),
        std::env::var("NAUTH_TEST_REDIS_URL"),
    ) else {
        eprintln!("NAUTH_TEST_POSTGRES_URL or NAUTH_TEST_REDIS_URL not set; skipped");
        return;
    };
    two_processes(vec![
        ("NAUTH_DATABASE_URL", pg),
        ("NAUTH_KV__BACKEND", "redis".into()),
        ("NAUTH_KV__REDIS_URL", redis),
    ])
    .await;
}
