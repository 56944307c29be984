//! `GET /metrics`: the server's Prometheus metrics in the text exposition format, on the public
//! address or, when `OMNICHAT_METRICS_ADDR` is set, only on that one.

use hyper::{header, Response};
use omnichat_actors::{metrics::CONTENT_TYPE, Core};

use crate::http::body::{full, Body};

pub fn render(core: &Core) -> Response<Body> {
    let mut response = Response::new(full(core.metrics().render()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}
