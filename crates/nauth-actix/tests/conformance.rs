//! The shared conformance suite, through actix-web. The app served here has the example app's
//! protected routes, so the extractors are held to the contract too.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use actix_web::{App, HttpResponse, HttpServer, web};
use nauth_actix::{Admin, AuthUser, OptionalAuthUser, RequireRole};
use nauth_core::NAuth;
use nauth_core::conformance::Door;
use serde_json::json;

struct ActixDoor;

async fn data(AuthUser(u): AuthUser) -> HttpResponse {
    HttpResponse::Ok().json(json!({"sub": u.sub, "message": "protected data"}))
}

async fn admin(RequireRole(u, ..): RequireRole<Admin>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"sub": u.sub, "message": "admin data"}))
}

async fn optional(OptionalAuthUser(u): OptionalAuthUser) -> HttpResponse {
    HttpResponse::Ok().json(json!({"sub": u.map(|u| u.sub)}))
}

impl Door for ActixDoor {
    fn serve(&self, nauth: NAuth) -> Pin<Box<dyn Future<Output = SocketAddr> + Send + '_>> {
        Box::pin(async move {
            // actix-web runs on its own single-threaded System; the listener is bound here, so
            // connections queue in its backlog until the server thread accepts them.
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            std::thread::spawn(move || {
                let server = HttpServer::new(move || {
                    App::new()
                        .service(
                            web::resource("/api/data")
                                .route(web::get().to(data))
                                .route(web::post().to(data)),
                        )
                        .route("/api/admin", web::get().to(admin))
                        .route("/api/optional", web::get().to(optional))
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

nauth_core::conformance_tests!(&ActixDoor);
