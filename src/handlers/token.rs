//! `POST /token`: the OAuth2 password form (username is the email) for a bearer token. Only the
//! password grant exists; another `grant_type` is refused as RFC 6749 §5.2 says.
//! `POST /logout` and `POST /logout/all`: both refuse every token of the user, on every node.

use hyper::{body::Incoming, header, Request, Response};
use serde::Deserialize;

use crate::{
    app::App,
    http::{
        body::Body,
        error::HttpError,
        request::{client_addr, read_form},
        response::{json, no_content},
    },
};

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    grant_type: Option<String>,
}

pub async fn login(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let client = client_addr(&req);
    let form: LoginForm = read_form(req, app.config.max_body_bytes).await?;
    if form
        .grant_type
        .as_deref()
        .is_some_and(|grant| grant != "password")
    {
        // Still a login attempt worth a line; the account is not looked up for it.
        let client = client.map_or_else(|| "unknown".to_owned(), |addr| addr.to_string());
        tracing::info!(
            account = "not checked",
            %client,
            outcome = "unsupported grant type",
            "login"
        );
        return Err(HttpError::bad_request("unsupported_grant_type"));
    }
    let token = app.core.login(form.username, form.password, client).await?;
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

/// Revokes the caller's tokens: all of them, as tokens carry no id of their own, so `/logout`
/// logs out every device just as `/logout/all` does (README says so).
pub async fn logout(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    app.core.revoke_tokens(user_id).await?;
    Ok(no_content())
}
