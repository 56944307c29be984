//! `GET /healthz`: liveness for supervisors and load balancers.

use hyper::Response;
use serde::Serialize;

use crate::{
    app::App,
    http::{body::Body, error::HttpError, response::json},
};

/// The answer of a live server.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(value_type = String, example = "ok")]
    pub status: &'static str,
}

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    summary = "Liveness: the server answers",
    responses((status = 200, description = "Alive", body = Health))
)]
pub async fn healthz(_app: &App) -> Result<Response<Body>, HttpError> {
    Ok(json(&Health { status: "ok" }))
}
