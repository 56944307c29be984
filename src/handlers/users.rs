//! `POST /users/`, `GET /users/me/`, `PUT /users/me/`, `DELETE /users/me/`,
//! `PUT /users/me/password`, `GET /users/me/usage`.

use hyper::{body::Incoming, Request, Response};
use serde::Deserialize;

use crate::{
    app::App,
    http::{
        body::Body,
        error::HttpError,
        request::read_json,
        response::{json, no_content},
    },
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePassword {
    current_password: String,
    new_password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteMe {
    password: String,
}

pub async fn sign_up(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let body: SignUp = read_json(req, app.config.max_body_bytes).await?;
    let user = app
        .core
        .sign_up(body.username, body.email, body.password)
        .await?;
    Ok(json(&user))
}

/// `GET /users/me/usage?from=YYYY-MM-DD&to=YYYY-MM-DD`: both optional (the last 30 days).
pub async fn usage(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let (mut from, mut to) = (None, None);
    // Dates need no percent-decoding: anything else is refused as not a date.
    let query = req.uri().query().unwrap_or("");
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "from" => from = Some(value.to_owned()),
            "to" => to = Some(value.to_owned()),
            other => {
                let other: String = other.chars().take(40).collect();
                return Err(HttpError::unprocessable(format!(
                    "unknown query parameter '{other}'; use from and to"
                )));
            }
        }
    }
    let report = app
        .core
        .usage(user_id, from.as_deref(), to.as_deref())
        .await?;
    Ok(json(&report))
}

pub async fn me(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    Ok(json(&app.core.profile(user_id).await?))
}

pub async fn update_me(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let body: UpdateMe = read_json(req, app.config.max_body_bytes).await?;
    Ok(json(&app.core.rename_user(user_id, body.username).await?))
}

/// 204 once changed; every token of the user, this one included, is refused afterwards.
pub async fn change_password(
    app: &App,
    req: Request<Incoming>,
) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let body: ChangePassword = read_json(req, app.config.max_body_bytes).await?;
    app.core
        .change_password(user_id, body.current_password, body.new_password)
        .await?;
    Ok(no_content())
}

/// 204 once the account, its sessions and messages are gone.
pub async fn delete_me(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let body: DeleteMe = read_json(req, app.config.max_body_bytes).await?;
    app.core.delete_account(user_id, body.password).await?;
    Ok(no_content())
}
