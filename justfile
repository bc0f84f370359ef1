# nauth tasks; every recipe is a plain cargo command underneath.

# The whole suite on SQLite (set NAUTH_TEST_POSTGRES_URL / NAUTH_TEST_MYSQL_URL for more).
test:
    cargo test --workspace --all-features

# The suite on SQLite, PostgreSQL and MariaDB as CI runs it.
test-all:
    bash .ci/run

# Run the axum example on http://127.0.0.1:3000.
run-axum:
    cargo run -p axum-app

# Benchmarks (release build): protected route vs bare handler, logins vs raw Argon2id.
bench:
    cargo run --release -p nauth-bench

fmt:
    cargo fmt --all

lint:
    cargo clippy --workspace --all-features --all-targets
