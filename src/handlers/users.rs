//! `POST /users/`, `GET /users/me/`, `PUT /users/me/`.

use hyper::{body::Incoming, Request, Response};
use serde::Deserialize;

use crate::{
    app::App,
    http::{body::Body, error::HttpError, request::read_json, response::json},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignUp {
    username: String,
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateMe {
    username: String,
}

pub async fn sign_up(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let body: SignUp = read_json(req, app.config.max_body_bytes).await?;
    let user = app
        .core
        .sign_up(body.username, body.email, body.password)
        .await?;
    Ok(json(&user))
}

pub async fn me(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers())?;
    Ok(json(&app.core.profile(user_id).await?))
}

pub async fn update_me(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers())?;
    let body: UpdateMe = read_json(req, app.config.max_body_bytes).await?;
    Ok(json(&app.core.rename_user(user_id, body.username).await?))
}
