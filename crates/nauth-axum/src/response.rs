//! Writing the core's `Reply` as an axum response, byte for byte.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use nauth_core::Reply;

/// A rejection from nauth's extractors: the contract's JSON error, ready to send.
#[derive(Debug)]
pub struct NAuthRejection(pub Reply);

impl IntoResponse for NAuthRejection {
    fn into_response(self) -> Response {
        into_response(self.0)
    }
}

/// Copies status, headers and body.
pub(crate) fn into_response(reply: Reply) -> Response {
    let mut res = Response::new(axum::body::Body::from(reply.body));
    *res.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            res.headers_mut().append(k, v);
        }
    }
    res
}
