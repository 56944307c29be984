//! `GET /`: a small built-in chat page over this API (log in, sessions, streaming, stop), so a
//! fresh install can be tried in a browser with nothing else.

use hyper::{header, Response};

use crate::{
    app::App,
    http::{body::full, body::Body, error::HttpError},
};

const PAGE: &str = include_str!("../web/index.html");

pub async fn index(_app: &App) -> Result<Response<Body>, HttpError> {
    let mut response = Response::new(full(PAGE));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    // The page talks only to this server; nothing else may load or run in it.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}
