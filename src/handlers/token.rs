//! `POST /token`: the OAuth2 password form (username is the email) for a bearer token. Only the
//! password grant exists; another `grant_type` is refused as RFC 6749 §5.2 says.
//! `POST /logout` and `POST /logout/all`: both refuse every token of the user, on every node.

use hyper::{body::Incoming, header, Request, Response};
use serde::Deserialize;

use omnichat_actors::auth::IssuedToken;

use crate::{
    app::App,
    http::{
        body::Body,
        error::{ErrorBody, HttpError},
        request::{client_addr, read_form},
        response::{json, no_content},
    },
};

/// The OAuth2 password grant's form (RFC 6749 §4.3). Other fields OAuth2 clients send (`scope`,
/// `client_id`, …) are ignored.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginForm {
    /// The account's email.
    #[schema(example = "test@example.com")]
    username: String,
    #[schema(example = "strongpassword")]
    password: String,
    /// Optional; when sent it must be `password` (else 400 `unsupported_grant_type`).
    #[serde(default)]
    #[schema(nullable = false, pattern = "^password$")]
    grant_type: Option<String>,
}

#[utoipa::path(
    post,
    path = "/token",
    operation_id = "login",
    tag = "auth",
    summary = "Log in: an email and password for a bearer token",
    description = "Every attempt is logged at INFO with the account's email (or `unknown`), the \
                   outcome and the client address.",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A token; no cache may keep it", body = IssuedToken,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "`grant_type` is not `password` (detail: `unsupported_grant_type`)",
            body = ErrorBody),
        (status = 401, description = "Incorrect username or password", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
    )
)]
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
#[utoipa::path(
    post,
    path = "/logout",
    operation_id = "logout",
    tag = "auth",
    summary = "Log out: every token of the account is refused from now on, on every node",
    description = "Tokens carry no id of their own, so this also logs out the account's other \
                   devices, exactly as `POST /logout/all` does.",
    security(("bearer" = [])),
    responses((status = 204, description = "Every token of the account is revoked"))
)]
pub async fn logout(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    app.core.revoke_tokens(user_id).await?;
    Ok(no_content())
}

#[utoipa::path(
    post,
    path = "/logout/all",
    operation_id = "logout_all",
    tag = "auth",
    summary = "Log out every device: every token of the account is refused from now on",
    security(("bearer" = [])),
    responses((status = 204, description = "Every token of the account is revoked"))
)]
pub async fn logout_all(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    logout(app, req).await
}
