//! `POST /users/`, `GET /users/me/`, `PUT /users/me/`, `DELETE /users/me/`,
//! `PUT /users/me/password`, `GET /users/me/usage`.

use hyper::{body::Incoming, Request, Response};
use omnichat_actors::{auth::UserProfile, budget::UsageReport};
use serde::Deserialize;

use crate::{
    app::App,
    http::{
        body::Body,
        error::{ErrorBody, HttpError},
        request::read_json,
        response::{json, no_content},
    },
};

/// A new account.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    /// At most 64 characters, not all white space (trimmed off when stored), no control
    /// characters.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0001-\\u001f\\u007f-\\u009f]*[^\\u0001-\\u001f\\u007f-\\u009f \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0001-\\u001f\\u007f-\\u009f]*$",
        example = "testuser"
    )]
    username: String,
    /// A valid address; compared and stored lowercased, so it signs up once whatever the case.
    #[schema(format = Email, max_length = 320, example = "test@example.com")]
    email: String,
    /// 8–1024 characters, not one of ~8,000 commonly breached passwords, nor the email or the
    /// username, whatever the case.
    #[schema(
        min_length = 8,
        max_length = 1024,
        example = "correct horse battery staple"
    )]
    password: String,
}

/// A new username.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    /// At most 64 characters, not all white space (trimmed off when stored), no control
    /// characters.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0001-\\u001f\\u007f-\\u009f]*[^\\u0001-\\u001f\\u007f-\\u009f \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0001-\\u001f\\u007f-\\u009f]*$",
        example = "new_username"
    )]
    username: String,
}

/// A password change: the current password confirms it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    current_password: String,
    /// Follows the sign-up rules: 8–1024 characters, not a commonly breached password, nor
    /// the email or the username.
    #[schema(min_length = 8, max_length = 1024)]
    new_password: String,
}

/// An account deletion: the password confirms it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteMe {
    password: String,
}

#[utoipa::path(
    post,
    path = "/users/",
    operation_id = "sign_up",
    tag = "users",
    summary = "Sign up",
    request_body = SignUp,
    responses(
        (status = 200, description = "The new account", body = UserProfile),
        (status = 409, description = "The email (or username) is taken", body = ErrorBody),
    )
)]
pub async fn sign_up(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let body: SignUp = read_json(req, app.config.max_body_bytes).await?;
    let user = app
        .core
        .sign_up(body.username, body.email, body.password)
        .await?;
    Ok(json(&user))
}

/// The range of a usage report.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageRange {
    /// The first UTC day, `YYYY-MM-DD`; by default 29 days before `to`.
    #[param(required = false, format = Date, example = "2026-11-01")]
    #[allow(dead_code)] // read from the query by `usage`; this type only documents it
    from: String,
    /// The last UTC day, `YYYY-MM-DD`, included; by default today. A range with `from` after
    /// `to` reports nothing.
    #[param(required = false, format = Date, example = "2026-11-25")]
    #[allow(dead_code)]
    to: String,
}

#[utoipa::path(
    get,
    path = "/users/me/usage",
    operation_id = "get_my_usage",
    tag = "users",
    summary = "The caller's token usage by day, provider and model",
    security(("bearer" = [])),
    params(UsageRange),
    responses(
        (status = 200, description = "The usage over the range, days without usage left out",
            body = UsageReport),
        (status = 422, description = "A bound is not a date, or the query has another parameter",
            body = ErrorBody),
    )
)]
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

#[utoipa::path(
    get,
    path = "/users/me/",
    operation_id = "get_me",
    tag = "users",
    summary = "The caller's profile",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller's profile", body = UserProfile))
)]
pub async fn me(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    Ok(json(&app.core.profile(user_id).await?))
}

#[utoipa::path(
    put,
    path = "/users/me/",
    operation_id = "update_me",
    tag = "users",
    summary = "Change the caller's username",
    security(("bearer" = [])),
    request_body = UpdateMe,
    responses(
        (status = 200, description = "The updated profile", body = UserProfile),
        (status = 409, description = "The username is taken", body = ErrorBody),
    )
)]
pub async fn update_me(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let body: UpdateMe = read_json(req, app.config.max_body_bytes).await?;
    Ok(json(&app.core.rename_user(user_id, body.username).await?))
}

/// 204 once changed; every token of the user, this one included, is refused afterwards.
#[utoipa::path(
    put,
    path = "/users/me/password",
    operation_id = "change_password",
    tag = "users",
    summary = "Change the password; every token of the account, this one included, is revoked",
    security(("bearer" = [])),
    request_body = ChangePassword,
    responses(
        (status = 204, description = "Changed; log in again with the new password"),
        (status = 403, description = "`current_password` is wrong (403, not 401: the token is \
                                      still good)", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    delete,
    path = "/users/me/",
    operation_id = "delete_me",
    tag = "users",
    summary = "Delete the account",
    description = "Its live answers are stopped, its sessions and messages deleted, its tokens \
                   refused, and its email may sign up again.",
    security(("bearer" = [])),
    request_body = DeleteMe,
    responses(
        (status = 204, description = "The account is gone"),
        (status = 403, description = "`password` is wrong", body = ErrorBody),
    )
)]
pub async fn delete_me(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let body: DeleteMe = read_json(req, app.config.max_body_bytes).await?;
    app.core.delete_account(user_id, body.password).await?;
    Ok(no_content())
}
