//! The poem door.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use nauth_core::NAuth;
use nauth_poem::{Admin, AuthUser, Methods, OptionalAuthUser, Read, RequireRole, RequireScope};
use poem::listener::TcpAcceptor;
use poem::web::Json;
use poem::{EndpointExt, Route, Server, handler};
use serde_json::{Value, json};

use crate::Door;

/// Serves the engine through `nauth_poem` (`mount`, extractors, `Methods`, fallback) on a
/// tokio task of the calling runtime.
#[derive(Debug, Clone, Copy, Default)]
pub struct Poem;

#[handler]
async fn data(AuthUser(u): AuthUser) -> Json<Value> {
    Json(json!({"sub": u.sub, "message": "protected data"}))
}

#[handler]
async fn admin(RequireRole(u, ..): RequireRole<Admin>) -> Json<Value> {
    Json(json!({"sub": u.sub, "message": "admin data"}))
}

#[handler]
async fn reports(RequireScope(u, ..): RequireScope<Read>) -> Json<Value> {
    Json(json!({"sub": u.sub, "message": "reports", "authMethod": u.auth_method}))
}

#[handler]
async fn optional(OptionalAuthUser(u): OptionalAuthUser) -> Json<Value> {
    Json(json!({"sub": u.map(|u| u.sub)}))
}

impl Door for Poem {
    fn serve(&self, nauth: NAuth) -> Pin<Box<dyn Future<Output = SocketAddr> + Send + '_>> {
        Box::pin(async move {
            let routes = Route::new()
                .at("/api/data", Methods::new().get(data).post(data))
                .at("/api/admin", Methods::new().get(admin))
                .at("/api/reports", Methods::new().get(reports))
                .at("/api/optional", Methods::new().get(optional));
            let app = nauth_poem::mount(routes, &nauth)
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
                    .expect("serve");
            });
            addr
        })
    }
}
