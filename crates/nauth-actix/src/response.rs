//! Writing the core's `Reply` as an actix-web response, byte for byte, and the extractors'
//! rejection type.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use nauth_core::Reply;

/// A rejection from nauth's extractors: the contract's JSON error, sent as it is (actix-web's
/// own error page never appears).
#[derive(Debug)]
pub struct NAuthRejection(pub Reply);

impl fmt::Display for NAuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "nauth rejected the request with status {}",
            self.0.status
        )
    }
}

impl ResponseError for NAuthRejection {
    fn status_code(&self) -> StatusCode {
        status(self.0.status)
    }

    fn error_response(&self) -> HttpResponse {
        into_response(self.0.clone())
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Copies status, headers (every value, so `set-cookie` may repeat) and body.
pub(crate) fn into_response(reply: Reply) -> HttpResponse {
    let mut res = HttpResponse::build(status(reply.status)).body(reply.body);
    for (k, v) in reply.headers {
        // Checked here rather than through the builder, whose error would become actix's page.
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            res.headers_mut().append(k, v);
        }
    }
    res
}

/// The engine is not in the app data: a setup mistake, said plainly to the developer.
pub(crate) fn missing_engine() -> NAuthRejection {
    NAuthRejection(Reply {
        status: 500,
        headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
        body: b"nauth: register the engine with App::app_data(nauth.clone())".to_vec(),
    })
}
