//! The scale section (issue 11), on PostgreSQL (`NAUTH_TEST_POSTGRES_URL`): one database per
//! size on that server (`nauth_scale_1k`, `nauth_scale_100k`, `nauth_scale_1m`; the prefix is
//! `NAUTH_BENCH_SCALE_DB`), dropped, recreated and seeded by `nauth_bench::seed` (the
//! `nauth-seed` command's code) on every run:
//!
//! 1. For 1,000, 100,000 and 1,000,000 seeded users (up to `NAUTH_BENCH_SCALE_MAX`, default
//!    100,000), throughput and p99 latency of `POST /auth/login` (random seeded users),
//!    `POST /auth/refresh` (each connection rotating its own chain) and `GET /api/data`
//!    (`database` validation, no cache, 1,000 sessions of random seeded users), in
//!    `NAUTH_BENCH_SCALE_ROUNDS` interleaved rounds (3 when the section runs alone, 1 in the
//!    full benchmark) so that a drift of the shared machine
//!    hits every size alike, with the sequential scans PostgreSQL counted on the nauth tables
//!    during the runs and the CPU share other processes took during each run.
//! 2. Refresh rotations per second vs the minimal raw SQL rotation transaction, same database,
//!    same concurrency; and the double-issue race.
//! 3. Two engines vs one on the same database (session cache on, `LISTEN/NOTIFY`), each on its
//!    own single-threaded runtime, with the CPU time of the server threads.
//!
//! Argon2id runs with m=64 KiB, t=1 here, so that the database's share of a login is measured,
//! not the hash's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nauth_bench::seed;
use nauth_core::NAuthConfig;
use nauth_core::config::SessionValidation;
use sea_orm::sqlx::{self, PgPool, Row};
use serde_json::{Value, json};

use crate::{CONNECTIONS, Conn, axum_app, config, get_req, percentile, post_req, secs, serve};

/// The sizes measured, in order, up to `NAUTH_BENCH_SCALE_MAX`.
const SIZES: [u64; 3] = [1_000, 100_000, 1_000_000];

/// Sessions (of random seeded users) whose access tokens the protected-route load cycles through.
const DATA_SESSIONS: u64 = 1_000;

/// How long PostgreSQL may hold a connection's table statistics before publishing them: an
/// idle backend flushes within 10 s (PGSTAT_IDLE_INTERVAL), a busy one every second.
const STATS_SETTLE: Duration = Duration::from_secs(11);

/// Parallel refreshes of one token per race, and races.
const RACE_WIDTH: usize = 16;
const RACES: usize = 100;

/// The tables whose sequential scans are always shown.
const HOT_TABLES: [&str; 3] = ["nauth_users", "nauth_sessions", "nauth_refresh_tokens"];

/// A small non-cryptographic generator (splitmix64): which seeded user logs in next.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(salt: u64) -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(t ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// 64 hex digits, the shape of a stored refresh-token hash.
    fn hex64(&mut self) -> String {
        (0..4).map(|_| format!("{:016x}", self.next())).collect()
    }
}

fn login_req(i: u64) -> Vec<u8> {
    post_req(
        "/auth/login",
        &json!({"identifier": seed::email(i), "password": seed::DEFAULT_PASSWORD}),
    )
}

fn refresh_req(token: &str) -> Vec<u8> {
    post_req("/auth/refresh", &json!({"refreshToken": token}))
}

/// Logs seeded user `i` in; its access and refresh tokens.
async fn login(c: &mut Conn, i: u64) -> (String, String) {
    let status = c.call(&login_req(i)).await;
    assert_eq!(
        status,
        200,
        "login of seeded user {i}: {}",
        String::from_utf8_lossy(c.body())
    );
    tokens(c.body())
}

/// The access and refresh tokens of a tokens answer.
fn tokens(body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).expect("a JSON body");
    let field = |k: &str| v[k].as_str().expect("a token").to_string();
    (field("accessToken"), field("refreshToken"))
}

/// What one connection sends, and what it learns from each answer.
trait Workload: Send + 'static {
    /// The next request.
    fn request(&mut self) -> &[u8];
    /// Checks an answer (and keeps what the next request needs).
    fn answered(&mut self, status: u16, body: &[u8]);
}

/// Logins of random seeded users.
struct Logins {
    size: u64,
    rng: Rng,
    req: Vec<u8>,
}

impl Workload for Logins {
    fn request(&mut self) -> &[u8] {
        self.req = login_req(self.rng.below(self.size));
        &self.req
    }
    fn answered(&mut self, status: u16, body: &[u8]) {
        assert_eq!(status, 200, "login: {}", String::from_utf8_lossy(body));
    }
}

/// One session's refresh chain: every answer's refresh token is the next request's.
struct Refreshes {
    req: Vec<u8>,
}

impl Workload for Refreshes {
    fn request(&mut self) -> &[u8] {
        &self.req
    }
    fn answered(&mut self, status: u16, body: &[u8]) {
        assert_eq!(status, 200, "refresh: {}", String::from_utf8_lossy(body));
        self.req = refresh_req(&tokens(body).1);
    }
}

/// `GET /api/data` with each of several sessions' access tokens in turn.
struct Protected {
    reqs: Vec<Vec<u8>>,
    next: usize,
}

impl Workload for Protected {
    fn request(&mut self) -> &[u8] {
        self.next = (self.next + 1) % self.reqs.len();
        &self.reqs[self.next]
    }
    fn answered(&mut self, status: u16, body: &[u8]) {
        assert_eq!(
            status,
            200,
            "GET /api/data: {}",
            String::from_utf8_lossy(body)
        );
    }
}

/// `GET /api/data` for `tokens`, split over `conns` workloads.
fn protected_loads(tokens: &[String], conns: usize) -> Vec<Protected> {
    (0..conns)
        .map(|k| Protected {
            reqs: tokens
                .iter()
                .skip(k)
                .step_by(conns)
                .map(|t| get_req("/api/data", Some(t)))
                .collect(),
            next: 0,
        })
        .collect()
}

/// A measured run.
#[derive(Debug, Clone, Default)]
struct Measured {
    /// Answers per second over the window.
    rate: f64,
    p99: Duration,
    /// CPU time (user + system) of each thread asked for, over the window.
    cpu: Vec<Duration>,
    /// The share of the machine's CPU that processes other than this one and PostgreSQL
    /// used during the window (another build, …): how disturbed the run was.
    foreign: f64,
}

/// CPU counters of the machine, this process and PostgreSQL's processes, in clock ticks.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTicks {
    /// Every tick of every core (`/proc/stat`).
    total: u64,
    /// Ticks spent running tasks (user, nice, system; not interrupts, idle or steal).
    tasks: u64,
    /// This process (`/proc/self/stat`).
    ours: u64,
    /// Every `postgres` process (the server and its backends).
    postgres: u64,
}

/// utime + stime of a `/proc/…/stat` line (fields 14 and 15), and the command name.
fn stat_ticks(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let (name, rest) = stat[open + 1..].rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((name, ticks))
}

fn cpu_ticks() -> CpuTicks {
    let mut t = CpuTicks::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/stat")
        && let Some(line) = stat.lines().next()
    {
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        t.total = v.iter().take(8).sum();
        t.tasks = v.iter().take(3).sum();
    }
    t.ours = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_ticks(&s).map(|(_, n)| n))
        .unwrap_or(0);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let name = e.file_name();
            if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if let Ok(s) = std::fs::read_to_string(e.path().join("stat"))
                && let Some(("postgres", n)) = stat_ticks(&s)
            {
                t.postgres += n;
            }
        }
    }
    t
}

/// The share of all CPU time between two readings used by other processes.
fn foreign_share(a: CpuTicks, b: CpuTicks) -> f64 {
    let total = b.total.saturating_sub(a.total).max(1);
    let tasks = b.tasks.saturating_sub(a.tasks);
    let known = b.ours.saturating_sub(a.ours) + b.postgres.saturating_sub(a.postgres);
    tasks.saturating_sub(known) as f64 / total as f64
}

/// Runs each workload on its own keep-alive connection to its address, flat out: 500 ms of
/// warm-up, then `secs()` measured (answers and their latencies; the CPU time of `threads`).
async fn run_load<W: Workload>(loads: Vec<(SocketAddr, W)>, threads: &[u32]) -> Measured {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = loads
        .into_iter()
        .map(|(addr, mut w)| {
            let (measuring, stop) = (measuring.clone(), stop.clone());
            tokio::spawn(async move {
                let mut c = Conn::open(addr).await;
                let mut lat = Vec::with_capacity(1 << 16);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let status = c.call(w.request()).await;
                    let took = t.elapsed();
                    w.answered(status, c.body());
                    if measuring.load(Ordering::Relaxed) {
                        lat.push(took);
                    }
                }
                lat
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu0: Vec<Duration> = threads.iter().map(|t| thread_cpu(*t)).collect();
    let machine0 = cpu_ticks();
    let start = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(secs()).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let machine1 = cpu_ticks();
    let cpu = threads
        .iter()
        .zip(cpu0)
        .map(|(t, before)| thread_cpu(*t).saturating_sub(before))
        .collect();
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("load task"));
    }
    lat.sort();
    if lat.is_empty() {
        return Measured::default();
    }
    Measured {
        rate: lat.len() as f64 / elapsed.as_secs_f64(),
        p99: percentile(&lat, 0.99),
        cpu,
        foreign: foreign_share(machine0, machine1),
    }
}

/// The id of the calling thread (`/proc/thread-self` names it; no libc needed).
fn current_tid() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) a thread of this process has used so far, from
/// `/proc/self/task/<tid>/stat`, in clock ticks of 10 ms (Linux's USER_HZ = 100).
fn thread_cpu(tid: u32) -> Duration {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .ok()
        .and_then(|s| stat_ticks(&s).map(|(_, n)| Duration::from_millis(n * 10)))
        .unwrap_or(Duration::ZERO)
}

/// Sequential scans so far per nauth table (`pg_stat_user_tables` of the pool's database).
async fn seq_scans(pool: &PgPool) -> BTreeMap<String, i64> {
    sqlx::query(
        "SELECT relname::text, seq_scan FROM pg_stat_user_tables WHERE relname LIKE 'nauth\\_%'",
    )
    .fetch_all(pool)
    .await
    .expect("pg_stat_user_tables")
    .into_iter()
    .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
    .collect()
}

fn scans_text(d: &BTreeMap<String, i64>) -> String {
    d.iter()
        .filter(|(t, n)| **n != 0 || HOT_TABLES.contains(&t.as_str()))
        .map(|(t, n)| format!("{} {n}", t.trim_start_matches("nauth_")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The engine configuration of this section: `database` validation, cheap Argon2id (the
/// database is measured, not the hash), and the liveness cache off or on (60 s, invalidated
/// through `LISTEN/NOTIFY`).
fn scale_config(url: &str, cache: bool) -> NAuthConfig {
    let mut cfg = config(SessionValidation::Database, "unused");
    cfg.database_url = url.to_string();
    cfg.password.argon2_memory_kib = 64;
    cfg.password.argon2_iterations = 1;
    cfg.password.argon2_parallelism = 1;
    cfg.session.cache_max_age = if cache {
        Duration::from_secs(60)
    } else {
        Duration::ZERO
    };
    cfg
}

/// A count from the environment: `1000`, `100k`, `1M`.
fn env_count(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| {
            let v = v.trim().to_ascii_lowercase().replace('_', "");
            let (d, f) = match v.chars().last() {
                Some('k') => (&v[..v.len() - 1], 1_000),
                Some('m') => (&v[..v.len() - 1], 1_000_000),
                _ => (v.as_str(), 1),
            };
            d.parse::<u64>().ok().map(|n| n * f)
        })
        .unwrap_or(default)
}

/// `1k`, `100k`, `1m`: the database suffix of a size.
fn size_label(size: u64) -> String {
    match size {
        n if n >= 1_000_000 && n.is_multiple_of(1_000_000) => format!("{}m", n / 1_000_000),
        n if n >= 1_000 && n.is_multiple_of(1_000) => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// The measures, in the order of the table.
const MEASURES: [&str; 3] = ["POST /auth/login", "POST /auth/refresh", "GET /api/data"];

/// One size: its own database (so that sizes can be measured in interleaved rounds), engine
/// and server, and what was measured on it.
struct Target {
    size: u64,
    addr: SocketAddr,
    nauth: nauth_core::NAuth,
    url: String,
    /// One connection: statistics, EXPLAIN, checks.
    pool: PgPool,
    /// Access tokens of `DATA_SESSIONS` logins of random seeded users.
    access: Vec<String>,
    /// Refresh tokens of more logins: `CONNECTIONS` chains per round.
    chains: Vec<String>,
    /// When the last activity on this database ended, and which measure's run it was (none:
    /// preparation, booked to no measure).
    last: Option<(Instant, Option<usize>)>,
    /// The latest reading of the sequential-scan counters.
    reading: BTreeMap<String, i64>,
    /// Sequential scans counted during each measure's runs, summed over the rounds.
    scans: [BTreeMap<String, i64>; 3],
    runs: [Vec<Measured>; 3],
}

impl Target {
    /// Reads the counters once the last run's statistics have settled, and books the change
    /// to that run's measure.
    async fn settle_and_read(&mut self) {
        if let Some((end, _)) = self.last {
            let waited = end.elapsed();
            if waited < STATS_SETTLE {
                tokio::time::sleep(STATS_SETTLE - waited).await;
            }
        }
        let now = seq_scans(&self.pool).await;
        if let Some((_, Some(m))) = self.last.take() {
            for (t, n) in &now {
                let d = n - self.reading.get(t).copied().unwrap_or(0);
                *self.scans[m].entry(t.clone()).or_insert(0) += d;
            }
        }
        self.reading = now;
    }

    /// One measured run of measure `m`.
    async fn run(&mut self, m: usize, rng: &mut Rng) -> Measured {
        self.settle_and_read().await;
        let addr = self.addr;
        let measured = match m {
            0 => {
                let loads = (0..CONNECTIONS)
                    .map(|_| {
                        let w = Logins {
                            size: self.size,
                            rng: Rng::new(rng.next()),
                            req: Vec::new(),
                        };
                        (addr, w)
                    })
                    .collect();
                run_load(loads, &[]).await
            }
            1 => {
                let split = self.chains.len().saturating_sub(CONNECTIONS);
                let loads = self
                    .chains
                    .split_off(split)
                    .iter()
                    .map(|t| {
                        (
                            addr,
                            Refreshes {
                                req: refresh_req(t),
                            },
                        )
                    })
                    .collect();
                run_load(loads, &[]).await
            }
            _ => {
                let loads = protected_loads(&self.access, CONNECTIONS)
                    .into_iter()
                    .map(|w| (addr, w))
                    .collect();
                run_load(loads, &[]).await
            }
        };
        self.last = Some((Instant::now(), Some(m)));
        self.runs[m].push(measured.clone());
        measured
    }
}

/// The median by rate, and the median p99, of some runs.
fn median_of(runs: &[Measured]) -> (f64, Duration) {
    let mut rates: Vec<f64> = runs.iter().map(|r| r.rate).collect();
    let mut p99s: Vec<Duration> = runs.iter().map(|r| r.p99).collect();
    if rates.is_empty() {
        return (0.0, Duration::ZERO);
    }
    p99s.sort();
    (crate::median(&mut rates), p99s[p99s.len() / 2])
}

/// The whole scale section; `alone`: run by itself (`--scale`), so with 3 rounds by default
/// instead of 1.
pub(crate) async fn section(alone: bool) {
    let Ok(server) = std::env::var("NAUTH_TEST_POSTGRES_URL") else {
        println!("\n(Scale: NAUTH_TEST_POSTGRES_URL not set; skipped)");
        return;
    };
    let prefix =
        std::env::var("NAUTH_BENCH_SCALE_DB").unwrap_or_else(|_| seed::DEFAULT_DATABASE.into());
    if !prefix.starts_with(seed::DEFAULT_DATABASE) {
        println!(
            "\n(Scale: NAUTH_BENCH_SCALE_DB must start with {}: the section drops and recreates \
             its databases; skipped)",
            seed::DEFAULT_DATABASE
        );
        return;
    }
    let max = env_count("NAUTH_BENCH_SCALE_MAX", 100_000).max(SIZES[0]);
    let sizes: Vec<u64> = SIZES.into_iter().filter(|s| *s <= max).collect();
    let rounds = env_count("NAUTH_BENCH_SCALE_ROUNDS", if alone { 3 } else { 1 }).max(1) as usize;
    println!(
        "\nScale on PostgreSQL: {} seeded users (NAUTH_BENCH_SCALE_MAX to change), one database \
         per size ({prefix}_<size>, recreated empty, seeded by nauth-seed's code), each measure \
         run {rounds} times in interleaved rounds",
        sizes
            .iter()
            .map(|s| thousands(*s))
            .collect::<Vec<_>>()
            .join(" / ")
    );
    println!(
        "  Argon2id m=64 KiB t=1 p=1 in this section (not the default m=19456 t=2): a login's \
         database work is measured, not the hash; `database` validation, no session cache \
         (cache_max_age = 0), lockout off"
    );

    let mut targets = Vec::new();
    for &size in &sizes {
        let name = format!("{prefix}_{}", size_label(size));
        seed::drop_database(&server, &name)
            .await
            .expect("drop a scale database");
        seed::create_database(&server, &name)
            .await
            .expect("create a scale database");
        let url = seed::database_url(&server, &name).expect("scale database url");
        let cfg = scale_config(&url, false);
        let mut last = Instant::now();
        let s = seed::seed(&cfg, size, seed::DEFAULT_PASSWORD, |n| {
            if last.elapsed() >= Duration::from_secs(10) {
                println!("    … {} seeded", thousands(n));
                last = Instant::now();
            }
        })
        .await
        .expect("seeding");
        let pool = seed::pool(&url, 2).await.expect("pool on a scale database");
        sqlx::query("ANALYZE")
            .execute(&pool)
            .await
            .expect("ANALYZE");
        println!(
            "  {name}: {} users seeded in {:.1} s (with their sessions and refresh tokens), \
             ANALYZE",
            thousands(s.added),
            s.elapsed.as_secs_f64(),
        );
        let nauth = nauth_core::NAuth::new(cfg).await.expect("engine");
        let addr = serve(axum_app(nauth.clone())).await;
        targets.push(Target {
            size,
            addr,
            nauth,
            url,
            pool,
            access: Vec::new(),
            chains: Vec::new(),
            last: None,
            reading: BTreeMap::new(),
            scans: Default::default(),
            runs: Default::default(),
        });
    }
    let mut rng = Rng::new(1);
    for t in &mut targets {
        let mut c = Conn::open(t.addr).await;
        for _ in 0..DATA_SESSIONS {
            t.access.push(login(&mut c, rng.below(t.size)).await.0);
        }
        for _ in 0..rounds * CONNECTIONS {
            t.chains.push(login(&mut c, rng.below(t.size)).await.1);
        }
        t.last = Some((Instant::now(), None));
    }
    // The logins above are nobody's run: read past them.
    for t in &mut targets {
        t.settle_and_read().await;
    }
    for round in 1..=rounds {
        for (m, what) in MEASURES.iter().enumerate() {
            let mut line = format!("    round {round}/{rounds} {what:<19}");
            for t in &mut targets {
                let r = t.run(m, &mut rng).await;
                line.push_str(&format!(
                    "  {}: {:.0}/s p99 {:.2} ms (others {:.0}% CPU)",
                    size_label(t.size),
                    r.rate,
                    ms(r.p99),
                    r.foreign * 100.0
                ));
            }
            println!("{line}");
        }
    }
    for t in &mut targets {
        t.settle_and_read().await;
    }
    print_table(&targets, rounds);

    let Some(largest) = targets.pop() else {
        return;
    };
    for t in targets {
        t.pool.close().await;
        t.nauth.close().await;
    }
    plans(&largest.pool, largest.size).await;
    refresh_vs_raw(largest.addr, &largest.url, largest.size, rounds).await;
    double_issue(largest.addr, &largest.pool, largest.size).await;
    two_instances(&largest.url, largest.addr, largest.size).await;
    largest.pool.close().await;
    largest.nauth.close().await;
}

fn print_table(targets: &[Target], rounds: usize) {
    let Some(base) = targets.first() else {
        return;
    };
    println!(
        "\n  {CONNECTIONS} connections, {}s per run, median of {rounds} runs; ratio = req/s / req/s at \
         {} users (target >= 0.90), p99 ratio = p99 / p99 at {} users",
        secs().as_secs(),
        thousands(base.size),
        thousands(base.size)
    );
    println!(
        "  {:>10} | {:<36} | {:<36} | {:<36}",
        "users", MEASURES[0], MEASURES[1], "GET /api/data (database)"
    );
    println!(
        "  {:>10} | {:>8} {:>8} {:>8} {:>9} | {:>8} {:>8} {:>8} {:>9} | {:>8} {:>8} {:>8} {:>9}",
        "",
        "req/s",
        "p99 ms",
        "ratio",
        "p99 ratio",
        "req/s",
        "p99 ms",
        "ratio",
        "p99 ratio",
        "req/s",
        "p99 ms",
        "ratio",
        "p99 ratio"
    );
    for t in targets {
        let cells: Vec<String> = (0..3)
            .map(|m| {
                let (rate, p99) = median_of(&t.runs[m]);
                let (brate, bp99) = median_of(&base.runs[m]);
                format!(
                    "{:>8.0} {:>8.2} {:>8.2} {:>9.2}",
                    rate,
                    ms(p99),
                    rate / brate,
                    ms(p99) / ms(bp99)
                )
            })
            .collect();
        println!(
            "  {:>10} | {} | {} | {}",
            thousands(t.size),
            cells[0],
            cells[1],
            cells[2]
        );
    }
    println!(
        "\n  sequential scans PostgreSQL counted during the runs of each measure (pg_stat_user_tables \
         of that size's database, read at least {}s after a run so every backend has published; \
         expect 0 on users and sessions)",
        STATS_SETTLE.as_secs()
    );
    for t in targets {
        for (what, d) in MEASURES.iter().zip(&t.scans) {
            println!("  {:>10} {:<19} {}", thousands(t.size), what, scans_text(d));
        }
    }
}

/// Unix milliseconds now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The planner's choice for the engine's hot statements (the statements as the engine sends
/// them, with seeded values) at this size, with the real statistics and sequential scans
/// allowed: the scan nodes of each plan.
async fn plans(pool: &PgPool, size: u64) {
    let (user, session) = (seed::user_id(size / 2), seed::session_id(size / 2));
    let token: String = sqlx::query_scalar(
        "SELECT token_hash FROM nauth_refresh_tokens WHERE session_id = $1 LIMIT 1",
    )
    .bind(&session)
    .fetch_one(pool)
    .await
    .expect("a seeded token");
    let cutoff = now_ms() - 86_400_000;
    let email = seed::email(size / 2);
    let statements = [
        (
            "GET /api/data: session and user",
            format!(
                "SELECT s.user_id, s.access_jti, s.auth_method, s.expires_at, \
                 s.absolute_expires_at, u.roles FROM nauth_sessions s \
                 JOIN nauth_users u ON u.id = s.user_id \
                 WHERE s.id = '{session}' AND s.revoked_at IS NULL AND u.disabled = FALSE"
            ),
        ),
        (
            "login: the user by email",
            format!("SELECT * FROM nauth_users WHERE email = '{email}' LIMIT 1"),
        ),
        (
            "refresh: the token",
            format!("SELECT * FROM nauth_refresh_tokens WHERE token_hash = '{token}' LIMIT 1"),
        ),
        (
            "refresh: the session, locked",
            format!("SELECT * FROM nauth_sessions WHERE id = '{session}' LIMIT 1 FOR UPDATE"),
        ),
        (
            "refresh: the user",
            format!("SELECT * FROM nauth_users WHERE id = '{user}' LIMIT 1"),
        ),
        (
            "refresh: mark rotated",
            format!(
                "UPDATE nauth_refresh_tokens SET state = 1, rotated_at = 1 \
                 WHERE token_hash = '{token}'"
            ),
        ),
        (
            "refresh: discard current",
            format!(
                "UPDATE nauth_refresh_tokens SET state = 2 \
                 WHERE session_id = '{session}' AND state = 0"
            ),
        ),
        (
            "refresh: rotate the session",
            format!(
                "UPDATE nauth_sessions SET access_jti = 'j', expires_at = 1, \
                 last_activity_at = 1 WHERE id = '{session}'"
            ),
        ),
        (
            "logout-all: the user's sessions",
            format!(
                "UPDATE nauth_sessions SET revoked_at = 1 \
                 WHERE user_id = '{user}' AND revoked_at IS NULL"
            ),
        ),
        (
            "purge: dead sessions",
            format!(
                "SELECT id FROM nauth_sessions WHERE revoked_at <= {cutoff} \
                 OR expires_at <= {cutoff} LIMIT 500"
            ),
        ),
    ];
    println!(
        "\n  EXPLAIN at {} users (real statistics, sequential scans allowed): the scan nodes",
        thousands(size)
    );
    let mut seq = 0;
    for (what, sql) in statements {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
            .fetch_all(pool)
            .await
            .expect("EXPLAIN");
        let scans: Vec<String> = rows
            .iter()
            .map(|r| r.get::<String, _>(0))
            .filter(|l| l.contains("Scan"))
            .map(|l| {
                let l = l.trim().trim_start_matches("->").trim();
                l.split("  (").next().unwrap_or(l).to_string()
            })
            .collect();
        seq += scans.iter().filter(|s| s.starts_with("Seq Scan")).count();
        println!("  {what:<34} {}", scans.join("; "));
    }
    println!("  sequential scans planned: {seq}");
}

/// One rotation by hand, the minimum the engine's must do: lock the session of the presented
/// token's hash (checking the token is current, the session live and its user enabled), mark
/// the token rotated, store the new one, point the session at the new access token and expiry.
/// Returns the new token's hash.
async fn raw_rotation(pool: &PgPool, hash: &str, rng: &mut Rng) -> String {
    let now = now_ms();
    let mut tx = pool.begin().await.expect("begin");
    let row = sqlx::query(
        "SELECT s.id, s.expires_at, s.absolute_expires_at, s.revoked_at, r.state, u.disabled \
         FROM nauth_refresh_tokens r JOIN nauth_sessions s ON s.id = r.session_id \
         JOIN nauth_users u ON u.id = s.user_id WHERE r.token_hash = $1 FOR UPDATE OF s",
    )
    .bind(hash)
    .fetch_one(&mut *tx)
    .await
    .expect("the token's session");
    let session: String = row.get(0);
    let (expires, absolute): (i64, i64) = (row.get(1), row.get(2));
    let revoked: Option<i64> = row.get(3);
    let (state, disabled): (i16, bool) = (row.get(4), row.get(5));
    assert!(
        state == 0 && revoked.is_none() && !disabled && expires > now,
        "a live token"
    );
    sqlx::query("UPDATE nauth_refresh_tokens SET state = 1, rotated_at = $2 WHERE token_hash = $1")
        .bind(hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .expect("mark rotated");
    let new = rng.hex64();
    sqlx::query(
        "INSERT INTO nauth_refresh_tokens (token_hash, session_id, state, created_at, rotated_at) \
         VALUES ($1, $2, 0, $3, NULL)",
    )
    .bind(&new)
    .bind(&session)
    .bind(now)
    .execute(&mut *tx)
    .await
    .expect("new token");
    let jti = rng.hex64();
    sqlx::query(
        "UPDATE nauth_sessions SET access_jti = $2, expires_at = $3, last_activity_at = $4 \
         WHERE id = $1",
    )
    .bind(&session)
    .bind(&jti[..36])
    .bind((now + 7 * 86_400_000).min(absolute))
    .bind(now)
    .execute(&mut *tx)
    .await
    .expect("rotate session");
    tx.commit().await.expect("commit");
    new
}

/// Raw rotations per second with `CONNECTIONS` chains on seeded sessions, each on its own
/// connection.
async fn raw_rate(url: &str, size: u64) -> f64 {
    let pool = seed::pool(url, CONNECTIONS as u32).await.expect("pool");
    let mut rng = Rng::new(7);
    let mut chains = Vec::new();
    while chains.len() < CONNECTIONS {
        let session = seed::session_id(rng.below(size));
        let hash: Option<String> = sqlx::query_scalar(
            "SELECT r.token_hash FROM nauth_refresh_tokens r JOIN nauth_sessions s \
             ON s.id = r.session_id WHERE r.session_id = $1 AND r.state = 0 \
             AND s.revoked_at IS NULL",
        )
        .bind(&session)
        .fetch_optional(&pool)
        .await
        .expect("a seeded session's token");
        // Each chain its own session.
        chains.extend(hash.filter(|h| !chains.contains(h)));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = chains
        .into_iter()
        .enumerate()
        .map(|(k, mut hash)| {
            let (pool, stop, measuring) = (pool.clone(), stop.clone(), measuring.clone());
            tokio::spawn(async move {
                let mut rng = Rng::new(100 + k as u64);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    hash = raw_rotation(&pool, &hash, &mut rng).await;
                    if measuring.load(Ordering::Relaxed) {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(secs()).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut n = 0;
    for t in tasks {
        n += t.await.expect("raw task");
    }
    pool.close().await;
    n as f64 / elapsed.as_secs_f64()
}

/// `POST /auth/refresh` vs the raw rotation transaction, in `rounds` interleaved pairs.
async fn refresh_vs_raw(addr: SocketAddr, url: &str, size: u64, rounds: usize) {
    let mut rng = Rng::new(11);
    let (mut http, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut c = Conn::open(addr).await;
        let mut loads = Vec::new();
        for _ in 0..CONNECTIONS {
            let token = login(&mut c, rng.below(size)).await.1;
            loads.push((
                addr,
                Refreshes {
                    req: refresh_req(&token),
                },
            ));
        }
        http.push(run_load(loads, &[]).await.rate);
        raw.push(raw_rate(url, size).await);
    }
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "\nRefresh rotations/s at {} users, {CONNECTIONS} chains each on its own connection, median of \
         {rounds} interleaved runs (raw: {}; nauth: {}) (target >= 0.50)",
        thousands(size),
        list(&raw),
        list(&http)
    );
    let (h, r) = (crate::median(&mut http), crate::median(&mut raw));
    println!(
        "  raw SQL rotation (BEGIN; SELECT … FOR UPDATE; UPDATE; INSERT; UPDATE; COMMIT) {r:>9.0}     1.00"
    );
    println!(
        "  POST /auth/refresh through nauth (HTTP, JSON, JWT)                          {h:>9.0}     {:.2}",
        h / r
    );
}

/// Races `RACE_WIDTH` parallel refreshes of one token, `RACES` times (a fresh login each
/// time), and counts double issue: a race after which the session has more than one live
/// refresh token, or more than one of the answers' access tokens is accepted.
async fn double_issue(addr: SocketAddr, pool: &PgPool, size: u64) {
    let mut rng = Rng::new(13);
    let mut probe = Conn::open(addr).await;
    let mut conns = Vec::new();
    for _ in 0..RACE_WIDTH {
        conns.push(Conn::open(addr).await);
    }
    let (mut doubles, mut min_ok, mut max_ok, mut answers) = (0, usize::MAX, 0, BTreeMap::new());
    for _ in 0..RACES {
        let token = login(&mut probe, rng.below(size)).await.1;
        let req = Arc::new(refresh_req(&token));
        let barrier = Arc::new(tokio::sync::Barrier::new(RACE_WIDTH));
        let tasks: Vec<_> = conns
            .drain(..)
            .map(|mut c| {
                let (req, barrier) = (req.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let status = c.call(&req).await;
                    let body = c.body().to_vec();
                    (c, status, body)
                })
            })
            .collect();
        let mut issued = Vec::new();
        for t in tasks {
            let (c, status, body) = t.await.expect("race task");
            conns.push(c);
            *answers.entry(status).or_insert(0u64) += 1;
            if status == 200 {
                issued.push(tokens(&body));
            }
        }
        min_ok = min_ok.min(issued.len());
        max_ok = max_ok.max(issued.len());
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM nauth_refresh_tokens WHERE state = 0 AND session_id = \
             (SELECT session_id FROM nauth_refresh_tokens \
              WHERE token_hash = encode(sha256(convert_to($1, 'UTF8')), 'hex'))",
        )
        .bind(&token)
        .fetch_one(pool)
        .await
        .expect("live tokens");
        let refresh: Vec<String> = issued.iter().map(|(_, r)| r.clone()).collect();
        let live_issued: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM nauth_refresh_tokens WHERE state = 0 AND token_hash IN \
             (SELECT encode(sha256(convert_to(t, 'UTF8')), 'hex') FROM unnest($1::text[]) t)",
        )
        .bind(&refresh)
        .fetch_one(pool)
        .await
        .expect("live issued tokens");
        let mut accepted = 0;
        for (access, _) in &issued {
            if probe.call(&get_req("/api/data", Some(access))).await == 200 {
                accepted += 1;
            }
        }
        if live != 1 || live_issued != 1 || accepted != 1 {
            doubles += 1;
        }
    }
    println!(
        "\nDouble issue: {RACES} races of {RACE_WIDTH} parallel refreshes of one token (fresh login \
         each), {} users",
        thousands(size)
    );
    println!(
        "  answers: {}; 200s per race: min {min_ok}, max {max_ok}",
        answers
            .iter()
            .map(|(s, n)| format!("{s} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  double issue: {doubles} (races after which the session had other than exactly one live \
         refresh token, that token was not one of the answers', or other than exactly one of the \
         answers' access tokens was accepted by GET /api/data)"
    );
    println!(
        "  (a repeat of a just-rotated token within refresh.reuse_interval = 10s is a benign race \
         by contract, docs/api.md §5: it gets a new pair and the earlier pair stops working, so \
         several 200s per race are expected; what must never happen is two live pairs)"
    );
}

/// An engine serving the axum app on a single-threaded runtime on its own OS thread.
struct Instance {
    addr: SocketAddr,
    tid: u32,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Instance {
    fn start(cfg: NAuthConfig, n: usize) -> Instance {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("nauth-instance-{n}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let nauth = nauth_core::NAuth::new(cfg).await.expect("engine");
                    let addr = serve(axum_app(nauth.clone())).await;
                    ready_tx
                        .send((addr, current_tid()))
                        .expect("report the address");
                    let _ = stop_rx.await;
                    nauth.close().await;
                });
            })
            .expect("instance thread");
        let (addr, tid) = ready_rx.recv().expect("instance started");
        Instance {
            addr,
            tid,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `run_load` on a single-threaded runtime on its own OS thread (the load generator),
/// measuring the CPU time of `servers` and of the generator itself (last).
fn load_thread(loads: Vec<(SocketAddr, Protected)>, servers: Vec<u32>) -> Measured {
    std::thread::Builder::new()
        .name("nauth-load".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let mut threads = servers;
            threads.push(current_tid());
            rt.block_on(run_load(loads, &threads))
        })
        .expect("load thread")
        .join()
        .expect("load generator")
}

/// Protected-route throughput of one engine vs two on the same database, the session cache on.
async fn two_instances(url: &str, login_addr: SocketAddr, size: u64) {
    let mut rng = Rng::new(17);
    let mut c = Conn::open(login_addr).await;
    let mut access = Vec::new();
    for _ in 0..DATA_SESSIONS {
        access.push(login(&mut c, rng.below(size)).await.0);
    }
    drop(c);
    let cfg = scale_config(url, true);
    let a = Instance::start(cfg.clone(), 1);
    let b = Instance::start(cfg, 2);
    // The same load per instance: CONNECTIONS connections each.
    let loads = |to: &[SocketAddr]| {
        to.iter()
            .flat_map(|addr| {
                protected_loads(&access, CONNECTIONS)
                    .into_iter()
                    .map(move |w| (*addr, w))
            })
            .collect::<Vec<_>>()
    };
    let one = || loads(&[a.addr]);
    let two = || loads(&[a.addr, b.addr]);
    // Interleaved: one, two, one, two, one, two; the median run of each by rate.
    let (mut ones, mut twos) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (loads, tids) = (one(), vec![a.tid]);
        ones.push(
            tokio::task::spawn_blocking(move || load_thread(loads, tids))
                .await
                .expect("one instance"),
        );
        let (loads, tids) = (two(), vec![a.tid, b.tid]);
        twos.push(
            tokio::task::spawn_blocking(move || load_thread(loads, tids))
                .await
                .expect("two instances"),
        );
    }
    let pick = |v: &mut Vec<Measured>| {
        v.sort_by(|x, y| x.rate.total_cmp(&y.rate));
        v[v.len() / 2].clone()
    };
    let m1 = pick(&mut ones);
    let m2 = pick(&mut twos);
    let server_cpu =
        |m: &Measured, n: usize| -> f64 { m.cpu.iter().take(n).map(Duration::as_secs_f64).sum() };
    let gen_cpu = |m: &Measured| m.cpu.last().map_or(0.0, Duration::as_secs_f64);
    let (s1, s2) = (server_cpu(&m1, 1), server_cpu(&m2, 2));
    let window = secs().as_secs_f64();
    let eff1 = m1.rate * window / s1.max(1e-9);
    let eff2 = m2.rate * window / s2.max(1e-9);
    println!(
        "\nTwo instances vs one: GET /api/data (database validation, session cache 60s through \
         LISTEN/NOTIFY), {} sessions of random seeded users, {CONNECTIONS} connections to each \
         instance; each engine on a single-threaded runtime on its own OS thread, the load \
         generator on another; {} cores in all (median of 3 interleaved runs)",
        thousands(DATA_SESSIONS),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "  {:<14}{:>10}{:>10}{:>15}{:>17}{:>23}{:>13}",
        "",
        "req/s",
        "p99 ms",
        "server CPU s",
        "load-gen CPU s",
        "req per server CPU-s",
        "others CPU"
    );
    for (label, m, s, e) in [
        ("one instance", &m1, s1, eff1),
        ("two instances", &m2, s2, eff2),
    ] {
        println!(
            "  {label:<14}{:>10.0}{:>10.2}{:>15.2}{:>17.2}{:>23.0}{:>12.0}%",
            m.rate,
            ms(m.p99),
            s,
            gen_cpu(m),
            e,
            m.foreign * 100.0
        );
    }
    println!(
        "  raw throughput ratio two/one: {:.2} (target 1.8 needs a core per instance; here two \
         server threads and the load generator share {} cores)",
        m2.rate / m1.rate,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "  per-instance efficiency ratio (req per server CPU-second, two/one): {:.2} (1.00: a \
         second instance costs nothing per request, so with a core each two would serve 2x)",
        eff2 / eff1
    );
    drop(a);
    drop(b);
}
