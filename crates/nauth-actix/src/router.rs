//! Mounting: every path under the configured prefix, with any method, goes to `NAuth::handle`.

use std::sync::LazyLock;

use actix_router::Quoter;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use nauth_core::{Body, MAX_BODY_BYTES, NAuth};

use crate::response::{into_response, missing_engine};

/// The nauth routes at the configured `mount_prefix` (the prefix itself and every path below
/// it, any method): `App::new().configure(nauth_actix::configure(nauth.clone()))`.
///
/// Apply it to the `App` itself, not inside a `web::scope`, so the prefix is the whole path.
/// The app's extractors and [`fallback`] also need the engine: add `.app_data(nauth)`.
pub fn configure(nauth: NAuth) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg| {
        let prefix = nauth.mount_prefix();
        let nauth = nauth.clone();
        // `Resource::to` adds a route without guards: every method reaches the core, which
        // answers 405/OPTIONS/HEAD itself.
        let resource = web::resource([prefix.to_string(), format!("{prefix}/{{rest:.*}}")]).to(
            move |req: HttpRequest, payload: web::Payload| {
                let nauth = nauth.clone();
                async move { handle(&nauth, req, payload).await }
            },
        );
        cfg.service(resource);
    }
}

/// The app's default service, answering `404 RESOURCE_NOT_FOUND` in the contract's shape:
/// `.default_service(web::to(nauth_actix::fallback))` (needs `.app_data(nauth)`).
pub async fn fallback(req: HttpRequest) -> HttpResponse {
    match req.app_data::<NAuth>() {
        Some(n) => into_response(n.not_found()),
        None => missing_engine().error_response(),
    }
}

/// Decodes no escaped ASCII character: the path is matched as sent. (Escaped bytes above ASCII
/// still decode, which cannot turn a path into one of the app's ASCII routes.)
static AS_SENT: LazyLock<Quoter> = LazyLock::new(|| {
    let ascii: Vec<u8> = (0..=127).collect();
    Quoter::new(b"", &ascii)
});

/// App-wide middleware that holds the app's own routes to the framework-level rules of docs/api.md
/// §1, as the routes under the prefix are:
///
/// - paths match as sent: actix-web decodes escaped characters before routing (so
///   `/api/d%61ta` would reach `/api/data`); here an escaped character never matches a
///   literal one, and the JSON 404 answers instead. Path parameters still decode as usual.
/// - a method a resource lacks is the contract's `405 METHOD_NOT_ALLOWED` JSON with `Allow`
///   (the resource's methods, then `OPTIONS`), and `OPTIONS` is `204` with that `Allow`.
///
/// Needs the engine in the app data (`.app_data(nauth)`).
///
/// ```no_run
/// use actix_web::{App, middleware::from_fn, web};
/// # fn app(nauth: nauth_actix::NAuth) {
/// let app = App::new()
///     .wrap(from_fn(nauth_actix::contract_routing))
///     .configure(nauth_actix::configure(nauth.clone()))
///     .app_data(nauth)
///     .default_service(web::to(nauth_actix::fallback));
/// # }
/// ```
pub async fn contract_routing<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let uri = req.uri().clone();
    req.match_info_mut()
        .get_mut()
        .update_with_quoter(&uri, &AS_SENT);
    let res = next.call(req).await?;
    if res.status() != StatusCode::METHOD_NOT_ALLOWED || res.headers().contains_key(CONTENT_TYPE) {
        return Ok(res.map_into_left_body());
    }
    let Some(nauth) = res.request().app_data::<NAuth>().cloned() else {
        return Ok(res.map_into_left_body());
    };
    let allow: Vec<String> = res
        .headers()
        .get_all(ALLOW)
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    if allow.is_empty() {
        return Ok(res.map_into_left_body());
    }
    let method = res.request().method().as_str().to_string();
    let reply = nauth_core::http::method_reply(&nauth, &method, allow.iter().map(String::as_str));
    Ok(res
        .into_response(into_response(reply))
        .map_into_right_body())
}

/// The core's view of a request's head.
pub(crate) fn core_request(req: &HttpRequest, only: Option<&[&str]>) -> nauth_core::Request {
    let mut r = nauth_core::Request::new(req.method().as_str(), "/");
    // The raw URI: actix's routing path is partly percent-decoded, the contract's is not.
    r.path = req.uri().path().to_string();
    r.query = req.uri().query().map(str::to_string);
    r.headers = req
        .headers()
        .iter()
        .filter(|(k, _)| only.is_none_or(|o| o.contains(&k.as_str())))
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    r.peer_ip = req.peer_addr().map(|a| a.ip());
    r
}

/// Reads at most `MAX_BODY_BYTES`: a larger declared length is refused unread, a longer
/// stream (chunked included) is abandoned at the first chunk past the limit.
async fn read_body(req: &HttpRequest, payload: web::Payload) -> Body {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Body::TooLarge;
    }
    match payload.to_bytes_limited(MAX_BODY_BYTES).await {
        Ok(Ok(bytes)) => Body::Bytes(bytes.to_vec()),
        // A broken stream (the client went away) is treated like the axum door does.
        Ok(Err(_)) | Err(_) => Body::TooLarge,
    }
}

async fn handle(nauth: &NAuth, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let mut r = core_request(&req, None);
    r.body = read_body(&req, payload).await;
    into_response(nauth.handle(r).await)
}
