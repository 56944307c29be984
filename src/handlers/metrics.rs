//! `GET /metrics`: the server's Prometheus metrics in the text exposition format, on the public
//! address or, when `OMNICHAT_METRICS_ADDR` is set, only on that one.

use hyper::{header, Response};
use omnichat_actors::{metrics::CONTENT_TYPE, Core};

use crate::{
    app::App,
    http::{
        body::{full, Body},
        error::{ErrorBody, HttpError},
    },
};

/// `GET /metrics` on the public address: the metrics, unless they have an address of their own.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "Prometheus metrics (text exposition format)",
    description = "Served here only when `OMNICHAT_METRICS_ADDR` is unset; with it set, only on \
                   that address, and this path is 404.",
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain", body = String),
        (status = 404, description = "Metrics are served on their own address", body = ErrorBody),
    )
)]
pub async fn serve(app: &App) -> Result<Response<Body>, HttpError> {
    match app.config.metrics_addr {
        None => Ok(render(&app.core)),
        Some(_) => Err(HttpError::not_found("Not Found")),
    }
}

pub fn render(core: &Core) -> Response<Body> {
    let mut response = Response::new(full(core.metrics().render()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}
