//! The `/sessions` endpoints. A malformed id is answered like a missing session: 404.

use hyper::{body::Incoming, Request, Response};
use serde::Deserialize;
use uuid::Uuid;

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
struct TitleBody {
    title: String,
}

/// The title is optional on create: a client may name the session after its first prompt.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    title: Option<String>,
}

const DEFAULT_TITLE: &str = "New Chat";

fn session_id(raw: &str) -> Result<Uuid, HttpError> {
    Uuid::parse_str(raw).map_err(|_| HttpError::not_found("Session not found"))
}

pub async fn list(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    Ok(json(&app.core.list_sessions(user_id).await?))
}

pub async fn create(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let body: CreateBody = read_json(req, app.config.max_body_bytes).await?;
    let title = body.title.unwrap_or_else(|| DEFAULT_TITLE.to_owned());
    Ok(json(&app.core.create_session(user_id, title).await?))
}

pub async fn get(app: &App, req: Request<Incoming>, id: &str) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let id = session_id(id)?;
    Ok(json(&app.core.get_session(user_id, id).await?))
}

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
