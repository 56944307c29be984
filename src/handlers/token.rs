//! `POST /token`: the OAuth2 password form (username is the email) for a bearer token.

use hyper::{body::Incoming, header, Request, Response};
use serde::Deserialize;

use crate::{
    app::App,
    http::{body::Body, error::HttpError, request::read_form, response::json},
};

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

pub async fn login(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let form: LoginForm = read_form(req, app.config.max_body_bytes).await?;
    let token = app.core.login(form.username, form.password).await?;
    let mut response = json(&token);
    // A token is a credential: no cache may keep it.
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(header::PRAGMA, header::HeaderValue::from_static("no-cache"));
    Ok(response)
}
