//! nauth benchmarks, run in one process so every ratio compares numbers measured side by side
//! on the same machine: `cargo run --release -p nauth-bench`.
//!
//! 1. `GET /api/data` through nauth-axum (`AuthUser`) vs a bare axum handler returning the
//!    same JSON, with session validation `token` and `database` (SQLite).
//!    The same route with an API key (`X-API-Key`, SQLite, the key's cache warm).
//! 2. Logins per second vs raw Argon2id verifies per second at the same parameters.
//! 3. The latency of protected requests while logins run flat out.
//! 4. PostgreSQL, without and with the session-liveness cache (`NAUTH_TEST_POSTGRES_URL`).
//! 5. Scale (`scale.rs`): login, refresh and protected route at 1,000 / 100,000 / 1,000,000
//!    seeded users, refresh vs the raw SQL rotation, double issue, two instances vs one.
//!    `NAUTH_BENCH_ONLY=scale` (or the argument `--scale`) runs only this section.
//! 6. `GET /api/data` through axum with access tokens signed HS256, RS256 and EdDSA, under
//!    `token` and `database` validation (target: RS256 and EdDSA within 5 % of HS256, as the
//!    verified-token cache makes a repeated token skip the signature check).
//!    `NAUTH_BENCH_ONLY=algorithms` runs only this section.
//!
//! The load generator is a small keep-alive HTTP/1.1 client in this process (no external
//! tools), so server and client share the machine's cores, equally for every variant.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Extension, Json, Router};
use nauth_axum::{AuthUser, NAuth};
use nauth_core::config::{JwtAlgorithm, NAuthConfig, SessionValidation, Verification};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod scale;

const CONNECTIONS: usize = 4;

fn secs() -> Duration {
    let s = std::env::var("NAUTH_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    Duration::from_secs(s)
}

/// One keep-alive connection: sends `req` again and again, reading each full response.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Where the body of the last response starts in `buf`.
    body_start: usize,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream,
            buf: Vec::with_capacity(4096),
            body_start: 0,
        }
    }

    /// The body of the last response.
    fn body(&self) -> &[u8] {
        &self.buf[self.body_start.min(self.buf.len())..]
    }

    /// Sends a request and returns the status.
    async fn call(&mut self, req: &[u8]) -> u16 {
        self.stream.write_all(req).await.expect("write");
        self.buf.clear();
        let mut tmp = [0u8; 4096];
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while self.buf.len() < end + 4 + len {
                    let n = self.stream.read(&mut tmp).await.expect("read");
                    assert!(n > 0, "server closed");
                    self.buf.extend_from_slice(&tmp[..n]);
                }
                self.body_start = end + 4;
                return head[9..12].parse().unwrap_or(0);
            }
            let n = self.stream.read(&mut tmp).await.expect("read");
            assert!(n > 0, "server closed");
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }
}

fn get_req(path: &str, bearer: Option<&str>) -> Vec<u8> {
    let auth = bearer
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nhost: bench\r\n{auth}\r\n").into_bytes()
}

fn post_req(path: &str, body: &Value) -> Vec<u8> {
    let b = body.to_string();
    format!("POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{b}", b.len())
        .into_bytes()
}

/// Requests per second over `secs()` with `CONNECTIONS` keep-alive connections.
async fn throughput(addr: SocketAddr, req: Vec<u8>, want: u16) -> f64 {
    throughput_with(addr, req, want, CONNECTIONS).await
}

/// Requests per second over `secs()` with `conns` keep-alive connections.
async fn throughput_with(addr: SocketAddr, req: Vec<u8>, want: u16, conns: usize) -> f64 {
    let req = Arc::new(req);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (req, stop, count) = (req.clone(), stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(addr).await;
            while !stop.load(Ordering::Relaxed) {
                let status = c.call(&req).await;
                assert_eq!(status, want, "unexpected status");
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Warm-up, then measure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = (Instant::now(), count.load(Ordering::Relaxed));
    tokio::time::sleep(secs()).await;
    let done = count.load(Ordering::Relaxed) - start.1;
    let rate = done as f64 / start.0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("task");
    }
    rate
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    addr
}

fn config(validation: SessionValidation, db: &str) -> NAuthConfig {
    let mut cfg = NAuthConfig {
        database_url: format!("sqlite://{db}?mode=rwc"),
        secret: "benchmark-secret-0123456789abcdef-xyz".into(),
        ..NAuthConfig::default()
    };
    cfg.session.validation = validation;
    cfg.signup.verification = Verification::None;
    // A benchmark logs in many times from one address.
    cfg.lockout.enabled = false;
    cfg
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Framework {
    Axum,
    Actix,
    Poem,
}

const SUB: &str = "3f2b0c4e-8d1a-4c5e-9b7f-2a6d8e0c1f3b";

/// A bare handler of the framework returning the same JSON as the protected route.
async fn bare_app(fw: Framework) -> SocketAddr {
    match fw {
        Framework::Axum => {
            async fn bare() -> Json<Value> {
                Json(json!({ "sub": SUB, "message": "protected data" }))
            }
            serve(Router::new().route("/api/data", get(bare))).await
        }
        Framework::Actix => serve_actix(None),
        Framework::Poem => serve_poem(None).await,
    }
}

fn serve_actix(nauth: Option<NAuth>) -> SocketAddr {
    use actix_web::{App, HttpResponse, HttpServer, web};
    async fn protected(nauth_actix::AuthUser(u): nauth_actix::AuthUser) -> HttpResponse {
        HttpResponse::Ok().json(json!({ "sub": u.sub, "message": "protected data" }))
    }
    async fn bare() -> HttpResponse {
        HttpResponse::Ok().json(json!({ "sub": SUB, "message": "protected data" }))
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                let app = App::new();
                match &nauth {
                    Some(n) => app
                        .app_data(n.clone())
                        .route("/api/data", web::get().to(protected))
                        .configure(nauth_actix::configure(n.clone())),
                    None => app.route("/api/data", web::get().to(bare)),
                }
            })
            .workers(2)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run()
            .await
            .expect("serve");
        });
    });
    addr
}

async fn serve_poem(nauth: Option<NAuth>) -> SocketAddr {
    use poem::{EndpointExt, Route, Server, handler, listener::TcpAcceptor};
    #[handler]
    fn protected(nauth_poem::AuthUser(u): nauth_poem::AuthUser) -> poem::web::Json<Value> {
        poem::web::Json(json!({ "sub": u.sub, "message": "protected data" }))
    }
    #[handler]
    fn bare() -> poem::web::Json<Value> {
        poem::web::Json(json!({ "sub": SUB, "message": "protected data" }))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = TcpAcceptor::from_tokio(listener).expect("acceptor");
    match nauth {
        Some(n) => {
            let routes = Route::new().at("/api/data", poem::get(protected));
            let app = nauth_poem::mount(routes, &n).data(n);
            tokio::spawn(async move { Server::new_with_acceptor(acceptor).run(app).await });
        }
        None => {
            let app = Route::new().at("/api/data", poem::get(bare));
            tokio::spawn(async move { Server::new_with_acceptor(acceptor).run(app).await });
        }
    }
    addr
}

async fn nauth_app_on(fw: Framework, validation: SessionValidation) -> (SocketAddr, String, NAuth) {
    let name = format!(
        "nauth-bench-{}-{fw:?}-{validation:?}.db",
        std::process::id()
    );
    let db = std::env::temp_dir().join(name);
    let _ = std::fs::remove_file(&db);
    nauth_app_with(
        fw,
        config(validation, &db.display().to_string()),
        "bench@example.com",
    )
    .await
}

/// The protected axum app under `validation`, its tokens signed with `algorithm` (generated
/// keys for RS256/EdDSA).
async fn nauth_app_signed(
    validation: SessionValidation,
    algorithm: JwtAlgorithm,
) -> (SocketAddr, String, NAuth) {
    let name = format!(
        "nauth-bench-{}-{validation:?}-{}.db",
        std::process::id(),
        algorithm.as_str()
    );
    let db = std::env::temp_dir().join(name);
    let _ = std::fs::remove_file(&db);
    let mut cfg = config(validation, &db.display().to_string());
    cfg.jwt.algorithm = algorithm;
    nauth_app_with(Framework::Axum, cfg, "bench@example.com").await
}

/// Section 6: the protected route per signing algorithm, three interleaved rounds, medians.
async fn algorithms_section() {
    println!(
        "\nGET /api/data (axum) by access-token algorithm, req/s (ratio to HS256; target >= 0.95)"
    );
    println!(
        "  {:<10}{:>12}{:>12}{:>8}{:>12}{:>8}",
        "validation", "HS256", "RS256", "ratio", "EdDSA", "ratio"
    );
    for validation in [SessionValidation::Token, SessionValidation::Database] {
        let mut apps = Vec::new();
        for alg in [
            JwtAlgorithm::Hs256,
            JwtAlgorithm::Rs256,
            JwtAlgorithm::EdDsa,
        ] {
            apps.push(nauth_app_signed(validation, alg).await);
        }
        let mut rates = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..3 {
            for (i, (addr, token, _)) in apps.iter().enumerate() {
                rates[i].push(throughput(*addr, get_req("/api/data", Some(token)), 200).await);
            }
        }
        let [hs, rs, ed] = [0, 1, 2].map(|i| median(&mut rates[i]));
        println!(
            "  {:<10}{hs:>12.0}{rs:>12.0}{:>8.2}{ed:>12.0}{:>8.2}",
            format!("{validation:?}").to_lowercase(),
            rs / hs,
            ed / hs
        );
    }
}

/// The axum app: `GET /api/data` behind `AuthUser`, and nauth's routes under `/auth`.
fn axum_app(nauth: NAuth) -> Router {
    async fn data(AuthUser(u): AuthUser) -> Json<Value> {
        Json(json!({ "sub": u.sub, "message": "protected data" }))
    }
    Router::new()
        .route("/api/data", get(data))
        .merge(nauth_axum::router(nauth.clone()))
        .layer(Extension(nauth))
}

/// The protected app on `fw` around an engine of `cfg`, with one signed-up user `email`;
/// returns its address and the user's access token.
async fn nauth_app_with(
    fw: Framework,
    cfg: NAuthConfig,
    email: &str,
) -> (SocketAddr, String, NAuth) {
    let nauth = NAuth::new(cfg).await.expect("engine");
    let addr = match fw {
        Framework::Axum => serve(axum_app(nauth.clone())).await,
        Framework::Actix => serve_actix(Some(nauth.clone())),
        Framework::Poem => serve_poem(Some(nauth.clone())).await,
    };
    // Let a server on its own thread start listening.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = Conn::open(addr).await;
    let body = json!({"email": email, "password": "Correct-Horse-42"});
    assert_eq!(c.call(&post_req("/auth/signup", &body)).await, 201);
    let token = {
        let text = String::from_utf8_lossy(&c.buf).to_string();
        let json_start = text.find("\r\n\r\n").expect("head") + 4;
        let v: Value = serde_json::from_str(&text[json_start..]).expect("json");
        v["accessToken"].as_str().expect("token").to_string()
    };
    (addr, token, nauth)
}

fn raw_argon2_rate(cfg: &NAuthConfig) -> f64 {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};
    let p = &cfg.password;
    let params = argon2::Params::new(
        p.argon2_memory_kib,
        p.argon2_iterations,
        p.argon2_parallelism,
        None,
    )
    .expect("params");
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let hash = a
        .hash_password_with_salt(b"Correct-Horse-42", b"0123456789abcdef")
        .expect("hash")
        .to_string();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (a, hash, stop, count) = (a.clone(), hash.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    a.verify_password(b"Correct-Horse-42", hash.as_str())
                        .expect("verify");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(secs());
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("thread");
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Verifies through nauth's bounded blocking pool, 8 callers at once, no HTTP or database.
async fn pool_verify_rate(cfg: &NAuthConfig) -> f64 {
    let hasher = nauth_core::PasswordHasher::new(&cfg.password).expect("hasher");
    let hash = hasher.hash("Correct-Horse-42").await.expect("hash");
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (h, hash, stop, count) =
                (hasher.clone(), hash.clone(), stop.clone(), count.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    assert!(h.verify("Correct-Horse-42", &hash).await.expect("verify"));
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(secs()).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("task");
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let only_scale = std::env::var("NAUTH_BENCH_ONLY").is_ok_and(|v| v == "scale")
        || std::env::args().any(|a| a == "--scale");
    if std::env::var("NAUTH_BENCH_ONLY").is_ok_and(|v| v == "algorithms") {
        println!(
            "nauth benchmark, algorithms section only: {} keep-alive connections, {}s per measurement",
            CONNECTIONS,
            secs().as_secs()
        );
        algorithms_section().await;
        return;
    }
    if only_scale {
        println!(
            "nauth benchmark, scale section only: {} keep-alive connections, {}s per measurement, {} cores",
            CONNECTIONS,
            secs().as_secs(),
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0)
        );
        scale::section(true).await;
        return;
    }
    println!(
        "nauth benchmark: {} keep-alive connections, {}s per measurement, {} cores",
        CONNECTIONS,
        secs().as_secs(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // 1. Protected route vs the same framework's bare handler.
    println!(
        "\nGET /api/data, req/s (ratio to the same framework's bare handler; targets: token >= 0.85, database >= 0.40)"
    );
    println!(
        "  {:<8}{:>12}{:>12}{:>8}{:>20}{:>8}",
        "door", "bare", "token", "ratio", "database (SQLite)", "ratio"
    );
    // Three interleaved rounds per framework; the median of each variant, so a drift of the
    // machine during the run does not favour whichever variant ran first.
    let mut axum_db = None;
    for fw in [Framework::Axum, Framework::Actix, Framework::Poem] {
        let bare_addr = bare_app(fw).await;
        let (tok_addr, tok, _n1) = nauth_app_on(fw, SessionValidation::Token).await;
        let (d_addr, dbt, n2) = nauth_app_on(fw, SessionValidation::Database).await;
        let (mut bare, mut token, mut database) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            bare.push(throughput(bare_addr, get_req("/api/data", None), 200).await);
            token.push(throughput(tok_addr, get_req("/api/data", Some(&tok)), 200).await);
            database.push(throughput(d_addr, get_req("/api/data", Some(&dbt)), 200).await);
        }
        let (bare_rate, tok_rate, db_rate) =
            (median(&mut bare), median(&mut token), median(&mut database));
        println!(
            "  {:<8}{bare_rate:>12.0}{tok_rate:>12.0}{:>8.2}{db_rate:>20.0}{:>8.2}",
            format!("{fw:?}").to_lowercase(),
            tok_rate / bare_rate,
            db_rate / bare_rate
        );
        if fw == Framework::Axum {
            axum_db = Some((d_addr, dbt, n2));
        }
    }
    let (db_addr, dbt, _n2) = axum_db.expect("axum ran");
    api_key_rows().await;
    algorithms_section().await;

    // 2. Logins vs raw Argon2id at the default (OWASP) parameters.
    let cfg = NAuthConfig::default();
    let raw = raw_argon2_rate(&cfg);
    let login = post_req(
        "/auth/login",
        &json!({"identifier": "bench@example.com", "password": "Correct-Horse-42"}),
    );
    let login_rate = throughput(db_addr, login.clone(), 200).await;
    let login_rate8 = throughput_with(db_addr, login.clone(), 200, 8).await;
    let pool_rate = pool_verify_rate(&cfg).await;
    println!(
        "\nArgon2id m={} t={} p={}                  per second  ratio",
        cfg.password.argon2_memory_kib,
        cfg.password.argon2_iterations,
        cfg.password.argon2_parallelism
    );
    println!("  raw verifies (all cores)      {raw:>10.1}     1.00");
    println!(
        "  nauth's hashing pool (no HTTP){pool_rate:>10.1}     {:.2}",
        pool_rate / raw
    );
    println!(
        "  POST /auth/login              {login_rate:>10.1}     {:.2}  (target >= 0.90)",
        login_rate / raw
    );
    println!(
        "  POST /auth/login, 8 conns     {login_rate8:>10.1}     {:.2}",
        login_rate8 / raw
    );

    // 3. Protected-route latency while logins run flat out.
    let stop = Arc::new(AtomicBool::new(false));
    let mut flood = Vec::new();
    for _ in 0..CONNECTIONS {
        let (stop, login) = (stop.clone(), login.clone());
        flood.push(tokio::spawn(async move {
            let mut c = Conn::open(db_addr).await;
            while !stop.load(Ordering::Relaxed) {
                c.call(&login).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = Conn::open(db_addr).await;
    let req = get_req("/api/data", Some(&dbt));
    let mut lat = Vec::new();
    let end = Instant::now() + secs();
    while Instant::now() < end {
        let t = Instant::now();
        assert_eq!(c.call(&req).await, 200);
        lat.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        f.await.expect("flood");
    }
    lat.sort();
    println!(
        "\nGET /api/data (validation=database) while {CONNECTIONS} connections log in flat out: {} requests",
        lat.len()
    );
    println!(
        "  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms  (target p99 <= 5 ms)",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
    );

    // 4. Several instances' topology: PostgreSQL, without and with the liveness cache shared
    //    through Redis (when NAUTH_TEST_POSTGRES_URL / NAUTH_TEST_REDIS_URL are set).
    postgres_section().await;

    // 5. Scale: seeded users on PostgreSQL (NAUTH_TEST_POSTGRES_URL).
    scale::section(false).await;
}

/// The protected route with an API key (`X-API-Key`) vs the same framework's bare handler,
/// on SQLite, where the key is answered from the liveness cache once seen.
async fn api_key_rows() {
    println!(
        "\nGET /api/data with an API key (X-API-Key, SQLite), req/s (target >= 0.85 of the bare handler)"
    );
    println!(
        "  {:<8}{:>12}{:>12}{:>8}",
        "door", "bare", "api key", "ratio"
    );
    for fw in [Framework::Axum, Framework::Actix, Framework::Poem] {
        let bare_addr = bare_app(fw).await;
        // A database of its own: section 1's engines still serve theirs.
        let name = format!("nauth-bench-{}-{fw:?}-api-key.db", std::process::id());
        let db = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&db);
        let cfg = config(SessionValidation::Database, &db.display().to_string());
        let (addr, access, _nauth) = nauth_app_with(fw, cfg, "bench@example.com").await;
        let mut c = Conn::open(addr).await;
        let body = json!({"name": "bench", "scopes": ["read"], "password": "Correct-Horse-42"})
            .to_string();
        let create = format!(
            "POST /auth/api-keys HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {access}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(c.call(create.as_bytes()).await, 201);
        let created: Value = serde_json::from_slice(c.body()).expect("json");
        let key = created["key"].as_str().expect("key");
        let req = format!("GET /api/data HTTP/1.1\r\nhost: bench\r\nx-api-key: {key}\r\n\r\n")
            .into_bytes();
        let (mut bare, mut keyed) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            bare.push(throughput(bare_addr, get_req("/api/data", None), 200).await);
            keyed.push(throughput(addr, req.clone(), 200).await);
        }
        let (bare_rate, key_rate) = (median(&mut bare), median(&mut keyed));
        println!(
            "  {:<8}{bare_rate:>12.0}{key_rate:>12.0}{:>8.2}",
            format!("{fw:?}").to_lowercase(),
            key_rate / bare_rate
        );
    }
}

/// `GET /api/data` under `database` validation on PostgreSQL vs the bare axum handler: every
/// request reading its session row, and the per-thread cache invalidated through Redis.
async fn postgres_section() {
    let Ok(pg) = std::env::var("NAUTH_TEST_POSTGRES_URL") else {
        println!("\n(PostgreSQL: NAUTH_TEST_POSTGRES_URL not set; skipped)");
        return;
    };
    let redis = std::env::var("NAUTH_TEST_REDIS_URL").ok();
    // 0: no cache; 1: the cache through PostgreSQL LISTEN/NOTIFY; 2: through Redis.
    let pg_config = |cache: u8| {
        let mut cfg = config(SessionValidation::Database, "unused");
        cfg.database_url = pg.clone();
        if cache > 0 {
            cfg.session.cache_max_age = Duration::from_secs(60);
        }
        if let (2, Some(r)) = (cache, &redis) {
            cfg.kv.backend = nauth_core::config::KvBackend::Redis;
            cfg.kv.redis_url = r.clone();
        }
        cfg
    };
    let unique = || format!("bench-{}@example.com", uuid_like());
    let bare_addr = bare_app(Framework::Axum).await;
    let (plain_addr, plain_tok, _p) =
        nauth_app_with(Framework::Axum, pg_config(0), &unique()).await;
    let (pgc_addr, pgc_tok, _c) = nauth_app_with(Framework::Axum, pg_config(1), &unique()).await;
    let cached = match &redis {
        Some(_) => Some(nauth_app_with(Framework::Axum, pg_config(2), &unique()).await),
        None => None,
    };
    let (mut bare, mut plain, mut pg_cache, mut with_cache) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        bare.push(throughput(bare_addr, get_req("/api/data", None), 200).await);
        plain.push(throughput(plain_addr, get_req("/api/data", Some(&plain_tok)), 200).await);
        pg_cache.push(throughput(pgc_addr, get_req("/api/data", Some(&pgc_tok)), 200).await);
        if let Some((addr, tok, _)) = &cached {
            with_cache.push(throughput(*addr, get_req("/api/data", Some(tok)), 200).await);
        }
    }
    let bare_rate = median(&mut bare);
    let plain_rate = median(&mut plain);
    println!("\nGET /api/data on PostgreSQL (validation=database, axum), req/s (target >= 0.60)");
    println!("  bare handler                       {bare_rate:>10.0}     1.00");
    println!(
        "  every request reads its session    {plain_rate:>10.0}     {:.2}",
        plain_rate / bare_rate
    );
    let pgc_rate = median(&mut pg_cache);
    println!(
        "  liveness cache, LISTEN/NOTIFY      {pgc_rate:>10.0}     {:.2}",
        pgc_rate / bare_rate
    );
    if !with_cache.is_empty() {
        let cache_rate = median(&mut with_cache);
        println!(
            "  liveness cache shared via Redis    {cache_rate:>10.0}     {:.2}",
            cache_rate / bare_rate
        );
    }
}

/// A value unique to this run, for emails on a shared database.
fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{t:x}-{}", std::process::id())
}
