//! Writing the core's `Reply` as a poem response, byte for byte.

use nauth_core::Reply;
use poem::http::{HeaderName, HeaderValue, StatusCode};
use poem::{IntoResponse, Response};

/// A rejection from nauth's extractors: the contract's JSON error, ready to send.
///
/// It converts into a [`poem::Error`] that renders exactly this reply.
#[derive(Debug)]
pub struct NAuthRejection(pub Reply);

impl IntoResponse for NAuthRejection {
    fn into_response(self) -> Response {
        into_response(self.0)
    }
}

impl From<NAuthRejection> for poem::Error {
    fn from(r: NAuthRejection) -> Self {
        poem::Error::from_response(r.into_response())
    }
}

/// Copies status, headers (repeated ones appended, e.g. `set-cookie`) and body.
pub(crate) fn into_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = Response::builder().status(status).body(reply.body);
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
