//! The `/sessions` endpoints. A malformed id is answered like a missing session: 404.

use hyper::{body::Incoming, Request, Response};
use omnichat_actors::session::{SessionDetail, SessionView};
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    app::App,
    http::{
        body::Body,
        error::{ErrorBody, HttpError},
        request::read_json,
        response::{json, no_content},
    },
};

/// A new title.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TitleBody {
    /// At most 200 characters, not all white space (trimmed off when stored), no control
    /// characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0001-\\u001f\\u007f-\\u009f]*[^\\u0001-\\u001f\\u007f-\\u009f \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0001-\\u001f\\u007f-\\u009f]*$",
        example = "Updated Title"
    )]
    title: String,
}

/// The title is optional on create: a client may name the session after its first prompt.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// At most 200 characters, not all white space (trimmed off when stored), no control
    /// characters; `New Chat` when absent.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0001-\\u001f\\u007f-\\u009f]*[^\\u0001-\\u001f\\u007f-\\u009f \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0001-\\u001f\\u007f-\\u009f]*$",
        example = "New Chat Session"
    )]
    title: Option<String>,
}

const DEFAULT_TITLE: &str = "New Chat";

/// The session a path names.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionPath {
    /// The session's id; anything that is not a UUID is answered like a missing session: 404.
    #[allow(dead_code)] // read by the router as a path segment; this type only documents it
    session_id: Uuid,
}

fn session_id(raw: &str) -> Result<Uuid, HttpError> {
    Uuid::parse_str(raw).map_err(|_| HttpError::not_found("Session not found"))
}

#[utoipa::path(
    get,
    path = "/sessions",
    operation_id = "list_sessions",
    tag = "sessions",
    summary = "The caller's sessions, newest activity first",
    security(("bearer" = [])),
    responses((status = 200, description = "The sessions", body = Vec<SessionView>))
)]
pub async fn list(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    Ok(json(&app.core.list_sessions(user_id).await?))
}

#[utoipa::path(
    post,
    path = "/sessions",
    operation_id = "create_session",
    tag = "sessions",
    summary = "Create a chat session",
    security(("bearer" = [])),
    request_body = CreateBody,
    responses(
        (status = 200, description = "The new session", body = SessionView, links(
            ("get" = (operation_id = "get_session",
                parameters(("session_id" = "$response.body#/id")))),
            ("rename" = (operation_id = "rename_session",
                parameters(("session_id" = "$response.body#/id")))),
            ("delete" = (operation_id = "delete_session",
                parameters(("session_id" = "$response.body#/id")))),
            ("chat" = (operation_id = "stream_chat",
                request_body = json!({ "session_id": "$response.body#/id" }))),
        )),
        (status = 409, description = "The caller has as many sessions as allowed", body = ErrorBody),
    )
)]
pub async fn create(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let body: CreateBody = read_json(req, app.config.max_body_bytes).await?;
    let title = body.title.unwrap_or_else(|| DEFAULT_TITLE.to_owned());
    Ok(json(&app.core.create_session(user_id, title).await?))
}

#[utoipa::path(
    get,
    path = "/sessions/{session_id}",
    operation_id = "get_session",
    tag = "sessions",
    summary = "A session with its messages, oldest first",
    security(("bearer" = [])),
    params(SessionPath),
    responses(
        (status = 200, description = "The session and its history", body = SessionDetail),
        (status = 404, description = "No such session of the caller's (also for an id that is \
                                      not a UUID)", body = ErrorBody),
    )
)]
pub async fn get(app: &App, req: Request<Incoming>, id: &str) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let id = session_id(id)?;
    Ok(json(&app.core.get_session(user_id, id).await?))
}

#[utoipa::path(
    put,
    path = "/sessions/{session_id}",
    operation_id = "rename_session",
    tag = "sessions",
    summary = "Rename a session",
    security(("bearer" = [])),
    params(SessionPath),
    request_body = TitleBody,
    responses(
        (status = 200, description = "The renamed session", body = SessionView),
        (status = 404, description = "No such session of the caller's", body = ErrorBody),
    )
)]
pub async fn rename(
    app: &App,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let id = session_id(id)?;
    let body: TitleBody = read_json(req, app.config.max_body_bytes).await?;
    Ok(json(
        &app.core.rename_session(user_id, id, body.title).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/sessions/{session_id}",
    operation_id = "delete_session",
    tag = "sessions",
    summary = "Delete a session and its messages",
    security(("bearer" = [])),
    params(SessionPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such session of the caller's", body = ErrorBody),
    )
)]
pub async fn delete(
    app: &App,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let id = session_id(id)?;
    app.core.delete_session(user_id, id).await?;
    Ok(no_content())
}
