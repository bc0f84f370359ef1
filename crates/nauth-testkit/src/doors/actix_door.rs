//! The actix-web door.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, Route, guard, web};
use nauth_actix::{Admin, AuthUser, OptionalAuthUser, Read, RequireRole, RequireScope};
use nauth_core::NAuth;
use serde_json::json;

use crate::Door;

/// Serves the engine through `nauth_actix` (`configure`, extractors, `contract_routing`,
/// fallback) on a single-worker actix system of its own thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Actix;

async fn data(AuthUser(u): AuthUser) -> HttpResponse {
    HttpResponse::Ok().json(json!({"sub": u.sub, "message": "protected data"}))
}

async fn admin(RequireRole(u, ..): RequireRole<Admin>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"sub": u.sub, "message": "admin data"}))
}

async fn reports(RequireScope(u, ..): RequireScope<Read>) -> HttpResponse {
    HttpResponse::Ok()
        .json(json!({"sub": u.sub, "message": "reports", "authMethod": u.auth_method}))
}

async fn optional(OptionalAuthUser(u): OptionalAuthUser) -> HttpResponse {
    HttpResponse::Ok().json(json!({"sub": u.map(|u| u.sub)}))
}

/// A GET route that also answers HEAD, as axum's and poem's do.
fn get() -> Route {
    Route::new().guard(guard::Any(guard::Get()).or(guard::Head()))
}

impl Door for Actix {
    fn serve(&self, nauth: NAuth) -> Pin<Box<dyn Future<Output = SocketAddr> + Send + '_>> {
        Box::pin(async move {
            // actix-web runs on its own single-threaded System; the listener is bound here, so
            // connections queue in its backlog until the server thread accepts them.
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            std::thread::spawn(move || {
                let server = HttpServer::new(move || {
                    App::new()
                        .wrap(from_fn(nauth_actix::contract_routing))
                        .service(
                            web::resource("/api/data")
                                .route(get().to(data))
                                .route(web::post().to(data)),
                        )
                        .service(web::resource("/api/admin").route(get().to(admin)))
                        .service(web::resource("/api/reports").route(get().to(reports)))
                        .service(web::resource("/api/optional").route(get().to(optional)))
                        .configure(nauth_actix::configure(nauth.clone()))
                        .app_data(nauth.clone())
                        .default_service(web::to(nauth_actix::fallback))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .expect("listen")
                .run();
                actix_web::rt::System::new()
                    .block_on(server)
                    .expect("serve");
            });
            addr
        })
    }
}
