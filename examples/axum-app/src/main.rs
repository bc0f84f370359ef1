//! The nauth example app on axum (API.md §10): `/auth/*`, three protected routes, a health
//! check and a small HTML page that walks through signup → verify → login → profile.
//!
//! `cargo run -p axum-app` needs no configuration: SQLite `nauth.db`, codes on the console.

use std::net::SocketAddr;

use axum::response::Html;
use axum::routing::get;
use axum::{Extension, Json, Router};
use nauth_axum::{Admin, AuthUser, NAuth, RequireRole};
use nauth_core::example;
use serde_json::{Value, json};

async fn data(AuthUser(u): AuthUser) -> Json<Value> {
    Json(json!({ "sub": u.sub, "message": "protected data" }))
}

async fn admin(RequireRole(u, ..): RequireRole<Admin>) -> Json<Value> {
    Json(json!({ "sub": u.sub, "message": "admin data" }))
}

/// API keys arrive in a later release; until then a user session reads reports.
async fn reports(AuthUser(u): AuthUser) -> Json<Value> {
    Json(json!({ "sub": u.sub, "message": "reports" }))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The app: nauth under `/auth`, the demo routes, and JSON 404s for everything else.
fn app(nauth: NAuth) -> Router {
    Router::new()
        .route("/", get(|| async { Html(example::INDEX_HTML) }))
        .route(
            "/reset-password",
            get(|| async { Html(example::RESET_HTML) }),
        )
        .route("/healthz", get(healthz))
        .route("/api/data", get(data))
        .route("/api/admin", get(admin))
        .route("/api/reports", get(reports))
        .merge(nauth_axum::router(nauth.clone()))
        .fallback(nauth_axum::fallback)
        .layer(Extension(nauth))
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let cfg = match example::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("axum-app: {e}");
            std::process::exit(2);
        }
    };
    if cfg.generated_secret {
        eprintln!(
            "axum-app: WARNING no secret configured; using a random development secret (tokens die with the process). Set NAUTH_SECRET."
        );
    }
    let nauth = match NAuth::new(cfg.nauth).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("axum-app: {e}");
            std::process::exit(2);
        }
    };
    if let Some(email) = example::create_admin_arg() {
        match nauth.create_admin(&email).await {
            Ok(pw) => println!(
                "admin {email} created; one-time password: {pw}\n(change it at the first login)"
            ),
            Err(e) => {
                eprintln!("axum-app: cannot create admin {email}: {}", e.code());
                std::process::exit(1);
            }
        }
        return;
    }
    let listener = match tokio::net::TcpListener::bind(&cfg.bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("axum-app: cannot bind {}: {e}", cfg.bind);
            std::process::exit(2);
        }
    };
    println!("axum-app listening on http://{}", cfg.bind);
    if let Err(e) = axum::serve(
        listener,
        app(nauth).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    {
        eprintln!("axum-app: {e}");
    }
}
