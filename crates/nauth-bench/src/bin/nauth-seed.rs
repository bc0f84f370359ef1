//! `nauth-seed`: bulk-seeds a PostgreSQL database with users that can log in, each with a live
//! session, for the scale benchmark (see `nauth_bench::seed` and docs/storage.md).
//!
//! ```text
//! cargo run --release -p nauth-bench --bin nauth-seed -- --users 1M
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use nauth_bench::seed;
use nauth_core::NAuthConfig;

const USAGE: &str = "\
nauth-seed: seeds users (verified, able to log in, one live session each) into PostgreSQL.

usage: nauth-seed --users N [options]

  --users N          seed until N seeded users exist (adds only the missing ones);
                     N may be written 1000, 100k, 1M or 1e6
  --database NAME    the database to seed, created if missing on the server of --server
                     (default: nauth_scale)
  --server URL       any database URL of the PostgreSQL server (default:
                     $NAUTH_TEST_POSTGRES_URL)
  --url URL          seed this database instead (it must exist; --database, --server unused)
  --config FILE      the engine's configuration (TOML, NAUTH_* overrides apply): the password
                     is hashed with its password.argon2_* parameters, sessions expire after
                     its refresh.ttl (default: the built-in defaults)
  --argon2 M,T,P     Argon2id memory (KiB), iterations and parallelism instead of the
                     configuration's (the benchmark uses 64,1,1)
  --password P       the password every seeded user shares (default: Scale-Bench-Password-42)
  -h, --help         this text

Seeded user i logs in as seed-{i}@scale.example (i from 0).";

/// The parsed command line.
#[derive(Debug, Default)]
struct Args {
    users: Option<u64>,
    database: Option<String>,
    server: Option<String>,
    url: Option<String>,
    config: Option<PathBuf>,
    argon2: Option<(u32, u32, u32)>,
    password: Option<String>,
}

/// `1000`, `100k`, `1M`, `1e6`.
fn parse_count(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    let lower = s.to_ascii_lowercase();
    if let Some((m, e)) = lower.split_once('e') {
        return m
            .parse::<u64>()
            .ok()?
            .checked_mul(10u64.checked_pow(e.parse().ok()?)?);
    }
    let (digits, factor) = match lower.chars().last()? {
        'k' => (&lower[..lower.len() - 1], 1_000),
        'm' => (&lower[..lower.len() - 1], 1_000_000),
        _ => (lower.as_str(), 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

fn parse_argon2(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split(',').map(|p| p.trim().parse::<u32>().ok());
    let v = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(v)
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args::default();
    while let Some(flag) = argv.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--users" => {
                let v = value()?;
                a.users = Some(parse_count(&v).ok_or_else(|| format!("--users {v}: a count"))?);
            }
            "--database" => a.database = Some(value()?),
            "--server" => a.server = Some(value()?),
            "--url" => a.url = Some(value()?),
            "--config" => a.config = Some(PathBuf::from(value()?)),
            "--argon2" => {
                let v = value()?;
                a.argon2 =
                    Some(parse_argon2(&v).ok_or_else(|| format!("--argon2 {v}: like 64,1,1"))?);
            }
            "--password" => a.password = Some(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Some(a))
}

async fn run(a: Args) -> Result<(), String> {
    let users = a.users.ok_or("--users N is required")?;
    let url = match a.url {
        Some(u) => u,
        None => {
            let server = a
                .server
                .or_else(|| std::env::var("NAUTH_TEST_POSTGRES_URL").ok())
                .ok_or("give --url, or --server (or set NAUTH_TEST_POSTGRES_URL)")?;
            let name = a
                .database
                .unwrap_or_else(|| seed::DEFAULT_DATABASE.to_string());
            if seed::create_database(&server, &name)
                .await
                .map_err(|e| e.to_string())?
            {
                println!("created database {name}");
            }
            seed::database_url(&server, &name).map_err(|e| e.to_string())?
        }
    };
    let mut cfg = match &a.config {
        Some(path) => nauth_core::config::load(Some(path)).map_err(|e| e.to_string())?,
        None => NAuthConfig {
            // The engine started here only creates the schema; it signs nothing.
            secret: "nauth-seed-schema-only-0123456789abcdef".into(),
            ..NAuthConfig::default()
        },
    };
    cfg.database_url = url.clone();
    if let Some((m, t, p)) = a.argon2 {
        cfg.password.argon2_memory_kib = m;
        cfg.password.argon2_iterations = t;
        cfg.password.argon2_parallelism = p;
    }
    let password = a
        .password
        .unwrap_or_else(|| seed::DEFAULT_PASSWORD.to_string());
    println!(
        "seeding {} to {users} users (Argon2id m={} t={} p={})",
        nauth_core::config::redact_url(&url),
        cfg.password.argon2_memory_kib,
        cfg.password.argon2_iterations,
        cfg.password.argon2_parallelism
    );
    let mut last = std::time::Instant::now();
    let done = seed::seed(&cfg, users, &password, |n| {
        if last.elapsed().as_secs() >= 5 {
            println!("  {n} users");
            last = std::time::Instant::now();
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    println!(
        "{} seeded users before, {} added, {} now ({:.1} s)",
        done.before,
        done.added,
        done.total,
        done.elapsed.as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nauth-seed: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Ok(Some(args)) => match run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("nauth-seed: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_params() {
        assert_eq!(parse_count("1000"), Some(1000));
        assert_eq!(parse_count("100k"), Some(100_000));
        assert_eq!(parse_count("1M"), Some(1_000_000));
        assert_eq!(parse_count("1e6"), Some(1_000_000));
        assert_eq!(parse_count("1_000_000"), Some(1_000_000));
        assert_eq!(parse_count("many"), None);
        assert_eq!(parse_argon2("64,1,1"), Some((64, 1, 1)));
        assert_eq!(parse_argon2("64,1"), None);
        let args = ["--users", "2k", "--argon2", "64,1,1"].map(String::from);
        let a = parse(args.into_iter()).expect("parses").expect("not help");
        assert_eq!((a.users, a.argon2), (Some(2000), Some((64, 1, 1))));
        assert!(parse(["--bogus".to_string()].into_iter()).is_err());
    }
}
