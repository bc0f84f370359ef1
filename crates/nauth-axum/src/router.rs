//! Mounting: every path under the configured prefix goes to `NAuth::handle`.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use axum::routing::any;
use http_body_util::BodyExt;
use nauth_core::{Body, MAX_BODY_BYTES, NAuth};

use crate::response::into_response;

/// The nauth routes, at the configured `mount_prefix`; merge them into the app's router.
///
/// The app's own extractors also need the engine: add `.layer(Extension(nauth))`.
pub fn router<S: Clone + Send + Sync + 'static>(nauth: NAuth) -> Router<S> {
    let prefix = nauth.mount_prefix().to_string();
    let handler = move |req: Request| {
        let nauth = nauth.clone();
        async move { handle(&nauth, req).await }
    };
    Router::new()
        .route(&prefix, any(handler.clone()))
        .route(&format!("{prefix}/{{*rest}}"), any(handler))
}

/// A fallback answering `404 RESOURCE_NOT_FOUND` in the contract's shape, for the app's router
/// (needs `Extension(nauth)`).
pub async fn fallback(req: Request) -> Response {
    match req.extensions().get::<NAuth>() {
        Some(n) => into_response(n.not_found()),
        None => missing_extension(),
    }
}

/// Wraps the finished app so its own routes answer a method they lack as the routes under the
/// mount prefix do (docs/api.md §1): the contract's `405 METHOD_NOT_ALLOWED` JSON with `Allow`
/// (the route's methods, then `OPTIONS`), and `204` with that `Allow` for `OPTIONS`.
///
/// ```no_run
/// # async fn run(app: axum::Router, nauth: nauth_axum::NAuth) -> std::io::Result<()> {
/// let app = nauth_axum::contract_routing(app, &nauth);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
/// axum::serve(listener, app).await
/// # }
/// ```
///
/// It goes around the whole router because axum writes a route's `Allow` header after
/// everything that `Router::layer` adds has run.
pub fn contract_routing(app: Router, nauth: &NAuth) -> Router {
    Router::new()
        .fallback_service(app)
        .layer(from_fn_with_state(nauth.clone(), method_answer))
}

/// Rewrites axum's own bare `405` (no body type, `Allow: GET,HEAD`) into the contract's answer.
async fn method_answer(State(nauth): State<NAuth>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let res = next.run(req).await;
    if res.status() != StatusCode::METHOD_NOT_ALLOWED || res.headers().contains_key(CONTENT_TYPE) {
        return res;
    }
    let allow: Vec<&str> = res
        .headers()
        .get_all(ALLOW)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if allow.is_empty() {
        return res;
    }
    let reply = nauth_core::http::method_reply(&nauth, method.as_str(), allow);
    into_response(reply)
}

pub(crate) fn missing_extension() -> Response {
    axum::http::Response::builder()
        .status(500)
        .body(axum::body::Body::from(
            "nauth: add .layer(Extension(nauth)) to the router",
        ))
        .unwrap_or_default()
}

/// The core's view of a request's head; `only` limits the headers copied.
pub(crate) fn core_request(parts: &Parts, only: Option<&[&str]>) -> nauth_core::Request {
    let mut r = nauth_core::Request::new(parts.method.as_str(), "/");
    r.path = parts.uri.path().to_string();
    r.query = parts.uri.query().map(str::to_string);
    r.headers = parts
        .headers
        .iter()
        .filter(|(k, _)| only.is_none_or(|o| o.contains(&k.as_str())))
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    r.peer_ip = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    r
}

async fn handle(nauth: &NAuth, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut r = core_request(&parts, None);
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    r.body = if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        Body::TooLarge
    } else {
        match http_body_util::Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
        {
            Ok(c) => Body::Bytes(c.to_bytes().to_vec()),
            Err(_) => Body::TooLarge,
        }
    };
    into_response(nauth.handle(r).await)
}
