//! The `/sessions` endpoints. A malformed id is answered like a missing session: 404.
//! Listing and a session's messages page on request (`limit`, `cursor`/`before`), with the next
//! page in a `Link: <…>; rel="next"` header so the bodies keep the spec's shapes.

use hyper::{body::Incoming, header, Request, Response};
use omnichat_actors::session::{ListSessions, MessagePageRequest};
use serde::{Deserialize, Serialize};
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

/// The query of `GET /sessions`. Every field is text here: a bad number is a 422 with a
/// sentence, not a parser's message.
#[derive(Deserialize, Serialize, Default)]
struct ListQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    q: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

/// The query of `GET /sessions/{id}`.
#[derive(Deserialize, Serialize, Default)]
struct MessagesQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<String>,
}

/// The query string as `T`; a malformed one (bad percent-encoding, a field twice) is 400.
fn query<T: serde::de::DeserializeOwned + Default>(req: &Request<Incoming>) -> Result<T, HttpError> {
    match req.uri().query() {
        None => Ok(T::default()),
        Some(raw) => serde_urlencoded::from_str(raw)
            .map_err(|_| HttpError::bad_request("Malformed query string")),
    }
}

fn limit(raw: Option<&str>) -> Result<Option<u64>, HttpError> {
    raw.map(|text| {
        text.parse::<u64>().map_err(|_| {
            HttpError::unprocessable(format!(
                "limit must be a whole number from 1 to {}",
                omnichat_actors::session::MAX_PAGE
            ))
        })
    })
    .transpose()
}

/// Adds `Link: <path?query>; rel="next"`.
fn with_next<Q: Serialize>(mut response: Response<Body>, path: &str, next: &Q) -> Response<Body> {
    let query = serde_urlencoded::to_string(next).unwrap_or_default();
    if let Ok(value) = header::HeaderValue::from_str(&format!("<{path}?{query}>; rel=\"next\"")) {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}

pub async fn list(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let params: ListQuery = query(&req)?;
    let request = ListSessions {
        limit: limit(params.limit.as_deref())?,
        cursor: params.cursor.clone(),
        q: params.q.clone(),
    };
    let page = app.core.list_sessions(user_id, request).await?;
    let response = json(&page.sessions);
    Ok(match page.next {
        Some(cursor) => with_next(
            response,
            "/sessions",
            &ListQuery {
                cursor: Some(cursor),
                ..params
            },
        ),
        None => response,
    })
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
    let params: MessagesQuery = query(&req)?;
    let before = params
        .before
        .as_deref()
        .map(|raw| {
            Uuid::parse_str(raw)
                .map_err(|_| HttpError::unprocessable("before must be a message id"))
        })
        .transpose()?;
    let page = MessagePageRequest {
        limit: limit(params.limit.as_deref())?,
        before,
    };
    let detail = app.core.get_session(user_id, id, page).await?;
    let response = json(&detail);
    Ok(match detail.older {
        Some(older) => with_next(
            response,
            &format!("/sessions/{id}"),
            &MessagesQuery {
                before: Some(older.to_string()),
                ..params
            },
        ),
        None => response,
    })
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
