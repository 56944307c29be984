//! `POST /token`: the OAuth2 password form (username is the email) for a bearer token. Only the
//! password grant exists; another `grant_type` is refused as RFC 6749 §5.2 says.
//! `POST /logout` refuses the token it is called with; `POST /logout/all` every token of the
//! user; either on every node.

use hyper::{body::Incoming, header, Request, Response};
use omnichat_actors::auth::{IssuedToken, LoginClient};
use serde::Deserialize;

use crate::{
    app::App,
    http::{
        body::Body,
        error::{ErrorBody, HttpError},
        request::{bearer_token, client_addr, read_form},
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

/// Who is logging in: the address throttling counts (through a trusted proxy, the client it
/// names) and how the log line shows it.
fn login_client<B>(app: &App, req: &Request<B>) -> LoginClient {
    let Some(peer) = client_addr(req) else {
        return LoginClient {
            ip: None,
            shown: "unknown".to_owned(),
        };
    };
    let ip = app
        .config
        .trusted_proxies
        .client_ip(peer.ip(), req.headers());
    let shown = if ip == peer.ip().to_canonical() {
        peer.to_string()
    } else {
        format!("{ip} via {peer}")
    };
    LoginClient {
        ip: Some(ip),
        shown,
    }
}

#[utoipa::path(
    post,
    path = "/token",
    operation_id = "login",
    tag = "auth",
    summary = "Log in: an email and password for a bearer token",
    description = "Every attempt is logged at INFO with the account's email (or `unknown`), the \
                   outcome and the client address. Failed logins are counted per account and \
                   address, and per address: past a few, each attempt is slowed, then refused \
                   for a while (429).",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A token; no cache may keep it", body = IssuedToken,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "`grant_type` is not `password` (detail: `unsupported_grant_type`)",
            body = ErrorBody),
        (status = 401, description = "Incorrect username or password", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 429, description = "Too many failed logins of this account from this address, \
                                      or from this address: try again after `Retry-After` seconds",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn login(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let client = login_client(app, &req);
    let form: LoginForm = read_form(req, app.config.max_body_bytes).await?;
    if form
        .grant_type
        .as_deref()
        .is_some_and(|grant| grant != "password")
    {
        // Still a login attempt worth a line; the account is not looked up for it.
        tracing::info!(
            account = "not checked",
            client = %client.shown,
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

/// Revokes the token the request carries, and only it: the user's other devices stay in.
#[utoipa::path(
    post,
    path = "/logout",
    operation_id = "logout",
    tag = "auth",
    summary = "Log out this token: it is refused from now on, on every node",
    description = "The account's other tokens (other devices) stay valid.",
    security(("bearer" = [])),
    responses((status = 204, description = "This token is revoked"))
)]
pub async fn logout(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let subject = app.core.token_subject(bearer_token(req.headers())?).await?;
    app.core.revoke_token(subject).await?;
    Ok(no_content())
}

/// Revokes every token of the caller's account, this one included.
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
    let user_id = app.authenticate(req.headers()).await?;
    app.core.revoke_tokens(user_id).await?;
    Ok(no_content())
}
