//! `GET /openapi.json`: the API's OpenAPI 3.1 document, for clients, code generators and the
//! conformance tests.

use hyper::{header, Response};

use crate::{
    app::App,
    http::{
        body::{full, Body},
        error::HttpError,
    },
};

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi_document",
    tag = "operations",
    summary = "This document (OpenAPI 3.1)",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
pub async fn document(_app: &App) -> Result<Response<Body>, HttpError> {
    let mut response = Response::new(full(crate::openapi::document_json()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}
