//! The axum door.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use ::axum::routing::get;
use ::axum::{Extension, Json, Router};
use nauth_axum::{Admin, AuthUser, OptionalAuthUser, Read, RequireRole, RequireScope};
use nauth_core::NAuth;
use serde_json::{Value, json};

use crate::Door;

/// Serves the engine through `nauth_axum` (router, extractors, `contract_routing`, fallback)
/// on a tokio task of the calling runtime.
#[derive(Debug, Clone, Copy, Default)]
pub struct Axum;

async fn data(AuthUser(u): AuthUser) -> Json<Value> {
    Json(json!({"sub": u.sub, "message": "protected data"}))
}

async fn admin(RequireRole(u, ..): RequireRole<Admin>) -> Json<Value> {
    Json(json!({"sub": u.sub, "message": "admin data"}))
}

async fn reports(RequireScope(u, ..): RequireScope<Read>) -> Json<Value> {
    Json(json!({"sub": u.sub, "message": "reports", "authMethod": u.auth_method}))
}

async fn optional(OptionalAuthUser(u): OptionalAuthUser) -> Json<Value> {
    Json(json!({"sub": u.map(|u| u.sub)}))
}

impl Door for Axum {
    fn serve(&self, nauth: NAuth) -> Pin<Box<dyn Future<Output = SocketAddr> + Send + '_>> {
        Box::pin(async move {
            let app = Router::new()
                .route("/api/data", get(data).post(data))
                .route("/api/admin", get(admin))
                .route("/api/reports", get(reports))
                .route("/api/optional", get(optional))
                .merge(nauth_axum::router(nauth.clone()))
                .fallback(nauth_axum::fallback)
                .layer(Extension(nauth.clone()));
            let app = nauth_axum::contract_routing(app, &nauth);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(async move {
                ::axum::serve(
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
