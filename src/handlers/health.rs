//! `GET /healthz`: liveness for supervisors and load balancers.

use hyper::Response;
use serde_json::json;

use crate::{
    app::App,
    http::{body::Body, error::HttpError, response::json},
};

pub async fn healthz(_app: &App) -> Result<Response<Body>, HttpError> {
    Ok(json(&json!({ "status": "ok" })))
}
