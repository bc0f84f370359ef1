//! Mounting: every path under the configured prefix goes to `NAuth::handle`, untouched.

use nauth_core::{Body, MAX_BODY_BYTES, NAuth};
use poem::error::NotFoundError;
use poem::http::Method;
use poem::http::header::CONTENT_LENGTH;
use poem::{Endpoint, IntoEndpoint, Request, Response, Route, RouteMethod};

use crate::response::into_response;

/// Adds the nauth routes to `route`: the configured `mount_prefix` and everything below it,
/// any method. Call it on the app's top-level [`Route`], so the core sees the full path.
///
/// The app's own extractors also need the engine: add `.data(nauth)` to the app.
pub fn mount(route: Route, nauth: &NAuth) -> Route {
    // Two plain routes rather than `Route::nest`: nest strips the prefix and answers its own
    // 400 text for a tail that is not valid UTF-8 once percent-decoded (`/auth/%FF`).
    let prefix = nauth.mount_prefix();
    route
        .at(prefix, NAuthEndpoint(nauth.clone()))
        .at(format!("{prefix}/*"), NAuthEndpoint(nauth.clone()))
}

/// Turns poem's "not found" into nauth's `404 RESOURCE_NOT_FOUND` JSON, for the whole app:
/// `app.catch_error(nauth_poem::fallback(&nauth))`.
pub fn fallback(
    nauth: &NAuth,
) -> impl Fn(NotFoundError) -> std::future::Ready<Response> + Send + Sync + use<> {
    let nauth = nauth.clone();
    move |_| std::future::ready(into_response(nauth.not_found()))
}

/// The methods of one of the app's paths, like poem's [`RouteMethod`], answering a method the
/// path lacks as the routes under the prefix do (docs/api.md §1): the contract's
/// `405 METHOD_NOT_ALLOWED` JSON with `Allow` (the path's methods, `HEAD` with `GET`, then
/// `OPTIONS`), and `204` with that `Allow` for `OPTIONS`. poem's own `MethodNotAllowedError`
/// does not say which methods the path has, hence this list of them.
///
/// Needs `.data(nauth)` on the app, like the extractors.
///
/// ```no_run
/// use nauth_poem::Methods;
/// use poem::{Route, handler};
///
/// #[handler]
/// fn healthz() -> &'static str {
///     "ok"
/// }
///
/// let routes = Route::new().at("/healthz", Methods::new().get(healthz));
/// ```
#[derive(Default)]
pub struct Methods {
    names: Vec<Method>,
    inner: RouteMethod,
}

impl std::fmt::Debug for Methods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Methods")
            .field("methods", &self.names)
            .finish_non_exhaustive()
    }
}

impl Methods {
    /// No methods yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `method` with `ep`.
    #[must_use]
    pub fn method<E>(mut self, method: Method, ep: E) -> Self
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        self.names.push(method.clone());
        self.inner = self.inner.method(method, ep);
        self
    }

    /// Serves `GET` (and `HEAD`, as poem does) with `ep`.
    #[must_use]
    pub fn get<E>(self, ep: E) -> Self
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        self.method(Method::GET, ep)
    }

    /// Serves `POST` with `ep`.
    #[must_use]
    pub fn post<E>(self, ep: E) -> Self
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        self.method(Method::POST, ep)
    }

    /// Serves `PUT` with `ep`.
    #[must_use]
    pub fn put<E>(self, ep: E) -> Self
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        self.method(Method::PUT, ep)
    }

    /// Serves `PATCH` with `ep`.
    #[must_use]
    pub fn patch<E>(self, ep: E) -> Self
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        self.method(Method::PATCH, ep)
    }

    /// Serves `DELETE` with `ep`.
    #[must_use]
    pub fn delete<E>(self, ep: E) -> Self
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        self.method(Method::DELETE, ep)
    }

    fn serves(&self, m: &Method) -> bool {
        self.names.contains(m) || (*m == Method::HEAD && self.names.contains(&Method::GET))
    }

    /// The `Allow` list: the methods in order, `HEAD` right after `GET`.
    fn allow(&self) -> Vec<&str> {
        let mut v = Vec::new();
        for m in &self.names {
            v.push(m.as_str());
            if *m == Method::GET {
                v.push("HEAD");
            }
        }
        v
    }
}

impl Endpoint for Methods {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if self.serves(req.method()) {
            return self.inner.call(req).await;
        }
        let nauth = req.data::<NAuth>().ok_or_else(missing_data)?;
        let reply = nauth_core::http::method_reply(nauth, req.method().as_str(), self.allow());
        Ok(into_response(reply))
    }
}

/// Answered when an extractor finds no engine in the request data.
pub(crate) fn missing_data() -> poem::Error {
    poem::Error::from_response(
        Response::builder()
            .status(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
            .body("nauth: add .data(nauth) to the app"),
    )
}

/// The core's view of a request's head: the path and query exactly as sent.
pub(crate) fn core_request(req: &Request, only: Option<&[&str]>) -> nauth_core::Request {
    let uri = req.original_uri();
    let mut r = nauth_core::Request::new(req.method().as_str(), "/");
    r.path = uri.path().to_string();
    r.query = uri.query().map(str::to_string);
    r.headers = req
        .headers()
        .iter()
        .filter(|(k, _)| only.is_none_or(|o| o.contains(&k.as_str())))
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    r.peer_ip = req.remote_addr().as_socket_addr().map(|a| a.ip());
    r
}

struct NAuthEndpoint(NAuth);

impl Endpoint for NAuthEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let mut r = core_request(&req, None);
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        r.body = if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            Body::TooLarge
        } else {
            // Reads in small pieces and stops as soon as the limit is passed (chunked too).
            match req.take_body().into_bytes_limit(MAX_BODY_BYTES).await {
                Ok(b) => Body::Bytes(b.to_vec()),
                Err(_) => Body::TooLarge,
            }
        };
        Ok(into_response(self.0.handle(r).await))
    }
}
