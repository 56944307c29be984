//! `POST /token`: the OAuth2 password form (username is the email) for a bearer token. Only the
//! password grant exists; another `grant_type` is refused as RFC 6749 §5.2 says.
//! `POST /logout` refuses the token it is called with; `POST /logout/all` every token of the
//! user; either on every node.

use hyper::{body::Incoming, header, Request, Response};
use omnichat_actors::auth::LoginClient;
use serde::Deserialize;

use crate::{
    app::App,
    http::{
        body::Body,
        error::HttpError,
        request::{bearer_token, client_addr, read_form},
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
pub async fn logout(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let subject = app.core.token_subject(bearer_token(req.headers())?).await?;
    app.core.revoke_token(subject).await?;
    Ok(no_content())
}

/// Revokes every token of the caller's account, this one included.
pub async fn logout_all(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    app.core.revoke_tokens(user_id).await?;
    Ok(no_content())
}
