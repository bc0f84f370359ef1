//! The nauth example app on axum (docs/api.md §10): `/auth/*`, three protected routes, a health
//! check and the demo page that walks through every flow (signup → verify → login → profile → MFA →
//! sessions → password → API keys → admin).
//!
//! `cargo run -p axum-app` needs no configuration: SQLite `nauth.db`, codes on the console.
//! With `NAUTH_TEST_OUTBOX=1` (tests only) mails stay in memory and `GET /__test/outbox?to=…`
//! answers them (`tests/browser`).

use std::net::SocketAddr;

use axum::extract::RawQuery;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Extension, Json, Router};
use nauth_axum::{Admin, AuthUser, NAuth, Read, RequireRole, RequireScope};
use nauth_example_common as example;
use serde_json::{Value, json};

async fn data(AuthUser(u): AuthUser) -> Json<Value> {
    Json(json!({ "sub": u.sub, "message": "protected data" }))
}

async fn admin(RequireRole(u, ..): RequireRole<Admin>) -> Json<Value> {
    Json(json!({ "sub": u.sub, "message": "admin data" }))
}

/// An API key with the `read` scope (`X-API-Key: nk_…`) or a user's session.
async fn reports(RequireScope(u, ..): RequireScope<Read>) -> Json<Value> {
    Json(json!({ "sub": u.sub, "message": "reports" }))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /__test/outbox?to=…` (only with `NAUTH_TEST_OUTBOX=1`): the mails sent to an address.
fn outbox_route(outbox: example::TestOutbox) -> axum::routing::MethodRouter {
    get(move |RawQuery(query): RawQuery| async move {
        let (status, body) = outbox.answer(query.as_deref());
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    })
}

/// The app: nauth under `/auth`, the demo routes (and the test outbox when given), JSON 404s
/// for everything else, and the contract's 405/OPTIONS answers on every route.
fn app(nauth: NAuth, outbox: Option<example::TestOutbox>) -> Router {
    let mut app = Router::new()
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
        .layer(Extension(nauth.clone()));
    if let Some(outbox) = outbox {
        app = app.route(example::OUTBOX_PATH, outbox_route(outbox));
    }
    nauth_axum::contract_routing(app, &nauth)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let Some((nauth, bind, outbox)) = example::start("axum-app").await else {
        return;
    };
    let listener = match tokio::net::TcpListener::bind(&bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("axum-app: cannot bind {}: {e}", bind);
            std::process::exit(2);
        }
    };
    println!("axum-app listening on http://{}", bind);
    if let Err(e) = axum::serve(
        listener,
        app(nauth, outbox).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    {
        eprintln!("axum-app: {e}");
    }
}
