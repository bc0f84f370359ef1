//! The same scripted session (signup → verify → login → refresh → cookie mode with CSRF →
//! errors) through every door; the normalised transcripts must be identical.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use nauth_core::NAuth;
use nauth_core::conformance::Door;
use nauth_core::conformance::wire::transcript;
use serde_json::{Value, json};

struct Axum;
struct Poem;
struct Actix;

impl Door for Actix {
    fn serve(&self, nauth: NAuth) -> Pin<Box<dyn Future<Output = SocketAddr> + Send + '_>> {
        use actix_web::{App, HttpResponse, HttpServer, web};
        async fn data(nauth_actix::AuthUser(u): nauth_actix::AuthUser) -> HttpResponse {
            HttpResponse::Ok().json(json!({"sub": u.sub, "message": "protected data"}))
        }
        Box::pin(async move {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            std::thread::spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    HttpServer::new(move || {
                        App::new()
                            .app_data(nauth.clone())
                            .route("/api/data", web::get().to(data))
                            .configure(nauth_actix::configure(nauth.clone()))
                            .default_service(web::to(nauth_actix::fallback))
                    })
                    .workers(1)
                    .disable_signals()
                    .listen(listener)
                    .expect("listen")
                    .run()
                    .await
                    .expect("serve");
                });
            });
            addr
        })
    }
}

impl Door for Axum {
    fn serve(&self, nauth: NAuth) -> Pin<Box<dyn Future<Output = SocketAddr> + Send + '_>> {
        use axum::{Extension, Json, Router, routing::get};
        async fn data(nauth_axum::AuthUser(u): nauth_axum::AuthUser) -> Json<Value> {
            Json(json!({"sub": u.sub, "message": "protected data"}))
        }
        Box::pin(async move {
            let app = Router::new()
                .route("/api/data", get(data))
                .merge(nauth_axum::router(nauth.clone()))
                .fallback(nauth_axum::fallback)
                .layer(Extension(nauth));
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
        })
    }
}

impl Door for Poem {
    fn serve(&self, nauth: NAuth) -> Pin<Box<dyn Future<Output = SocketAddr> + Send + '_>> {
        use poem::{EndpointExt, Route, Server, get, handler, listener::TcpAcceptor, web::Json};
        #[handler]
        async fn data(nauth_poem::AuthUser(u): nauth_poem::AuthUser) -> Json<Value> {
            Json(json!({"sub": u.sub, "message": "protected data"}))
        }
        Box::pin(async move {
            let app = nauth_poem::mount(Route::new().at("/api/data", get(data)), &nauth)
                .catch_error(nauth_poem::fallback(&nauth))
                .data(nauth);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let acceptor = TcpAcceptor::from_tokio(listener).expect("acceptor");
            tokio::spawn(async move {
                Server::new_with_acceptor(acceptor)
                    .run(app)
                    .await
                    .expect("serve")
            });
            addr
        })
    }
}

fn diff(a: &[String], b: &[String]) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!("{} exchanges vs {}", a.len(), b.len()));
    }
    a.iter()
        .zip(b)
        .find(|(x, y)| x != y)
        .map(|(x, y)| format!("--- axum\n{x}--- other\n{y}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_door_sends_the_same_bytes() {
    let reference = transcript(&Axum).await;
    assert!(
        reference.len() > 25,
        "the script ran: {} exchanges",
        reference.len()
    );
    // The transcript must show the contract, not just agreement.
    assert!(
        reference[0].starts_with("signup -> 201"),
        "{}",
        reference[0]
    );
    assert!(reference.iter().any(|e| e.contains("set-cookie: nauth_refresh_token=<value>; Path=/auth; Max-Age=604800; HttpOnly; Secure; SameSite=Strict")), "{reference:#?}");
    assert!(
        reference
            .iter()
            .any(|e| e.starts_with("csrf missing -> 403"))
    );
    for (name, t) in [
        ("poem", transcript(&Poem).await),
        ("actix", transcript(&Actix).await),
    ] {
        if let Some(d) = diff(&reference, &t) {
            panic!("{name} differs from axum:\n{d}");
        }
    }
}
