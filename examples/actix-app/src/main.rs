//! The nauth example app on actix-web (docs/api.md §10): `/auth/*`, three protected routes, a health
//! check and the demo page that walks through every flow (signup → verify → login → profile → MFA →
//! sessions → password → API keys → admin).
//!
//! `cargo run -p actix-app` needs no configuration: SQLite `nauth.db`, codes on the console.
//! With `NAUTH_TEST_OUTBOX=1` (tests only) mails stay in memory and `GET /__test/outbox?to=…`
//! answers them (`tests/browser`).

use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, Route, guard, web};
use nauth_actix::{Admin, AuthUser, Read, RequireRole, RequireScope};
use nauth_example_common as example;
use serde_json::json;

async fn data(AuthUser(u): AuthUser) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "sub": u.sub, "message": "protected data" }))
}

async fn admin(RequireRole(u, ..): RequireRole<Admin>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "sub": u.sub, "message": "admin data" }))
}

/// An API key with the `read` scope (`X-API-Key: nk_…`) or a user's session.
async fn reports(RequireScope(u, ..): RequireScope<Read>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "sub": u.sub, "message": "reports" }))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /__test/outbox?to=…` (only with `NAUTH_TEST_OUTBOX=1`): the mails sent to an address.
async fn outbox(
    req: actix_web::HttpRequest,
    outbox: web::Data<example::TestOutbox>,
) -> HttpResponse {
    let (status, body) = outbox.answer(Some(req.query_string()));
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body)
}

fn html(page: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page)
}

/// A GET route that also answers HEAD (as axum's `get` does); other methods get the contract's
/// 405 with `Allow` from `nauth_actix::contract_routing`.
fn get() -> Route {
    Route::new().guard(guard::Any(guard::Get()).or(guard::Head()))
}

#[actix_web::main]
async fn main() {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let Some((nauth, bind, test_outbox)) = example::start("actix-app").await else {
        return;
    };
    // The app: nauth under `/auth`, the demo routes (and the test outbox), JSON 404s for everything else; paths
    // match as sent and a missing method is the contract's 405 (`contract_routing`).
    let app = move || {
        App::new()
            .wrap(from_fn(nauth_actix::contract_routing))
            .service(web::resource("/").route(get().to(|| async { html(example::INDEX_HTML) })))
            .service(
                web::resource("/reset-password")
                    .route(get().to(|| async { html(example::RESET_HTML) })),
            )
            .service(web::resource("/healthz").route(get().to(healthz)))
            .service(web::resource("/api/data").route(get().to(data)))
            .service(web::resource("/api/admin").route(get().to(admin)))
            .service(web::resource("/api/reports").route(get().to(reports)))
            .configure(|cfg| {
                if let Some(o) = &test_outbox {
                    cfg.app_data(web::Data::new(o.clone()))
                        .service(web::resource(example::OUTBOX_PATH).route(get().to(outbox)));
                }
            })
            .configure(nauth_actix::configure(nauth.clone()))
            .app_data(nauth.clone())
            .default_service(web::to(nauth_actix::fallback))
    };
    let server = match HttpServer::new(app).bind(&bind) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("actix-app: cannot bind {}: {e}", bind);
            std::process::exit(2);
        }
    };
    println!("actix-app listening on http://{}", bind);
    if let Err(e) = server.run().await {
        eprintln!("actix-app: {e}");
    }
}
