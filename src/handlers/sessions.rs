//! The `/sessions` endpoints. A malformed id is answered like a missing session: 404.
//! Listing and a session's messages page on request (`limit`, `cursor`/`before`), with the next
//! page in a `Link: <…>; rel="next"` header so the bodies keep the spec's shapes.

use hyper::{body::Incoming, header, Request, Response};
use omnichat_actors::session::{ListSessions, MessagePageRequest, NewSession, SessionChange};
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

/// `PUT /sessions/{id}`: either field or both. `"system_prompt": null` (or `""`) removes the
/// system prompt; leaving the field out keeps it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    title: Option<String>,
    #[serde(default, deserialize_with = "present")]
    system_prompt: Option<Option<String>>,
}

/// A field that is present, even as `null`, is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Both fields are optional on create: without a title the session gets a default one, replaced
/// by an automatic title after its first answer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    system_prompt: Option<String>,
}

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
    let new = NewSession {
        title: body.title,
        system_prompt: body.system_prompt,
    };
    Ok(json(&app.core.create_session(user_id, new).await?))
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
    let body: UpdateBody = read_json(req, app.config.max_body_bytes).await?;
    let change = SessionChange {
        title: body.title,
        system_prompt: body.system_prompt,
    };
    Ok(json(&app.core.update_session(user_id, id, change).await?))
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
