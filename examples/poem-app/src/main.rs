//! The nauth example app on poem (docs/api.md §10): `/auth/*`, three protected routes, a health
//! check and the demo page that walks through every flow (signup → verify → login → profile → MFA →
//! sessions → password → API keys → admin).
//!
//! `cargo run -p poem-app` needs no configuration: SQLite `nauth.db`, codes on the console.
//! With `NAUTH_TEST_OUTBOX=1` (tests only) mails stay in memory and `GET /__test/outbox?to=…`
//! answers them (`tests/browser`).

use nauth_example_common as example;
use nauth_poem::{Admin, AuthUser, Methods, NAuth, Read, RequireRole, RequireScope};
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::web::{Data, Html, Json};
use poem::{Endpoint, EndpointExt, Request, Response, Route, Server, handler};
use serde_json::{Value, json};

#[handler]
fn index() -> Html<&'static str> {
    Html(example::INDEX_HTML)
}

#[handler]
fn reset_password() -> Html<&'static str> {
    Html(example::RESET_HTML)
}

#[handler]
fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[handler]
fn data(AuthUser(u): AuthUser) -> Json<Value> {
    Json(json!({ "sub": u.sub, "message": "protected data" }))
}

#[handler]
fn admin(RequireRole(u, ..): RequireRole<Admin>) -> Json<Value> {
    Json(json!({ "sub": u.sub, "message": "admin data" }))
}

/// An API key with the `read` scope (`X-API-Key: nk_…`) or a user's session.
#[handler]
fn reports(RequireScope(u, ..): RequireScope<Read>) -> Json<Value> {
    Json(json!({ "sub": u.sub, "message": "reports" }))
}

/// `GET /__test/outbox?to=…` (only with `NAUTH_TEST_OUTBOX=1`): the mails sent to an address.
#[handler]
fn outbox_messages(req: &Request, Data(outbox): Data<&example::TestOutbox>) -> Response {
    let (status, body) = outbox.answer(req.uri().query());
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body)
}

/// The app: nauth under `/auth`, the demo routes (`Methods` answers the contract's 405 and
/// OPTIONS for them; the test outbox when given), and JSON 404s for everything else.
fn app(nauth: NAuth, test_outbox: Option<example::TestOutbox>) -> impl Endpoint {
    let mut routes = Route::new()
        .at("/", Methods::new().get(index))
        .at("/reset-password", Methods::new().get(reset_password))
        .at("/healthz", Methods::new().get(healthz))
        .at("/api/data", Methods::new().get(data))
        .at("/api/admin", Methods::new().get(admin))
        .at("/api/reports", Methods::new().get(reports));
    if let Some(o) = test_outbox {
        routes = routes.at(
            example::OUTBOX_PATH,
            Methods::new().get(outbox_messages.data(o)),
        );
    }
    nauth_poem::mount(routes, &nauth)
        .catch_error(nauth_poem::fallback(&nauth))
        .data(nauth)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let Some((nauth, bind, outbox)) = example::start("poem-app").await else {
        return;
    };
    // A tokio listener, so a bind error is reported here; poem's server passes every
    // connection's peer address to the handlers (per-IP login throttling needs it).
    let acceptor = match tokio::net::TcpListener::bind(&bind)
        .await
        .and_then(TcpAcceptor::from_tokio)
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("poem-app: cannot bind {}: {e}", bind);
            std::process::exit(2);
        }
    };
    println!("poem-app listening on http://{}", bind);
    if let Err(e) = Server::new_with_acceptor(acceptor)
        .run(app(nauth, outbox))
        .await
    {
        eprintln!("poem-app: {e}");
    }
}
