//! Building responses: JSON with a status (errors too, through `HttpError`), 204s.

use hyper::{header, Response, StatusCode};
use serde::Serialize;

use super::body::{empty, full, Body};

/// `value` as a JSON response with `status`.
pub fn json_with_status<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    // Serialising our own view types cannot fail; fall back to an empty object rather than panic.
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    // Errors are built here too, so every JSON answer says it: no browser may sniff one as HTML.
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

/// `value` as a 200 JSON response.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Response<Body> {
    json_with_status(StatusCode::OK, value)
}

/// 204 No Content.
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}
