//! `GET /providers`: the providers this server can use, with their default models.

use hyper::{body::Incoming, Request, Response};

use crate::{
    app::App,
    http::{body::Body, error::HttpError, response::json},
};

pub async fn list(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    app.authenticate(req.headers())?;
    Ok(json(&app.core.providers().available()))
}
