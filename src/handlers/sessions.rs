//! The `/sessions` endpoints. A malformed id is answered like a missing session: 404.
//! Listing and a session's messages page on request (`limit`, `cursor`/`before`), with the next
//! page in a `Link: <…>; rel="next"` header so the bodies keep the spec's shapes.

use hyper::{body::Incoming, header, Request, Response};
use omnichat_actors::session::{
    ListSessions, ListedSession, MessagePageRequest, NewSession, SessionChange, SessionDetail,
    SessionView,
};
use serde::{Deserialize, Serialize};
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

/// A change to a session: a new title, a new system prompt, or both.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// At most 200 characters, not all white space (trimmed off when stored), no control
    /// characters. Absent: the title stays. A title set here is never replaced by an
    /// automatic one.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0001-\\u001f\\u007f-\\u009f]*[^\\u0001-\\u001f\\u007f-\\u009f \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0001-\\u001f\\u007f-\\u009f]*$",
        example = "Updated Title"
    )]
    title: Option<String>,
    /// At most 16,000 characters; `null` or `""` removes it; absent: it stays.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 16000, example = "You are terse.")]
    system_prompt: Option<Option<String>>,
}

/// A field that is present, even as `null`, is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Both fields are optional on create.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// At most 200 characters, not all white space (trimmed off when stored), no control
    /// characters; `New Chat` when absent, replaced by an automatic title after the first
    /// answer.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0001-\\u001f\\u007f-\\u009f]*[^\\u0001-\\u001f\\u007f-\\u009f \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0001-\\u001f\\u007f-\\u009f]*$",
        example = "New Chat Session"
    )]
    title: Option<String>,
    /// Sent upstream before the history of every turn; at most 16,000 characters.
    #[serde(default)]
    #[schema(max_length = 16000, example = "You are terse.")]
    system_prompt: Option<String>,
}

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

/// The query of `GET /sessions`. Every field is text here: a bad number is a 422 with a
/// sentence, not a parser's message.
#[derive(Deserialize, Serialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Words to search titles and message text for (every word must match; at most 200
    /// characters; the first 16 words count); results best first, each with a `snippet`, 20 a
    /// page by default. Empty: no search. No word at all (only punctuation): no results.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[param(max_length = 200)]
    q: Option<String>,
    /// A page of at most this many (1 to 100); without `limit`, `cursor` or `q`, every session.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// Where the page starts: opaque, from the `Link` header of the page before.
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

/// The query of `GET /sessions/{session_id}`.
#[derive(Deserialize, Serialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    /// The newest this many messages (1 to 100), oldest first; without it, every message.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// Only messages older than this message of the session (from the `Link` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<Uuid>)]
    before: Option<String>,
}

/// The query string as `T`; a malformed one (bad percent-encoding, a field twice) is 400.
fn query<T: serde::de::DeserializeOwned + Default>(
    req: &Request<Incoming>,
) -> Result<T, HttpError> {
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

#[utoipa::path(
    get,
    path = "/sessions",
    operation_id = "list_sessions",
    tag = "sessions",
    summary = "The caller's sessions, newest activity first; a page of them, or a search",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "The sessions (with `snippet` on search results only); \
                                      `Link: <…>; rel=\"next\"` while more pages exist",
         body = Vec<ListedSession>,
         headers(("Link" = String, description = "The next page, while there is one"))),
        (status = 422, description = "A bad `limit`, `cursor` or `q`", body = ErrorBody),
    )
)]
pub async fn list(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let params: ListQuery = query(&req)?;
    let request = ListSessions {
        limit: limit(params.limit.as_deref())?,
        cursor: params.cursor.clone().filter(|c| !c.is_empty()),
        // An empty search box searches nothing: the plain listing.
        q: params.q.clone().filter(|q| !q.trim().is_empty()),
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
    let new = NewSession {
        title: body.title,
        system_prompt: body.system_prompt,
    };
    Ok(json(&app.core.create_session(user_id, new).await?))
}

#[utoipa::path(
    get,
    path = "/sessions/{session_id}",
    operation_id = "get_session",
    tag = "sessions",
    summary = "A session with its messages (or a page of them), oldest first",
    security(("bearer" = [])),
    params(SessionPath, MessagesQuery),
    responses(
        (status = 200, description = "The session and its history; `Link: <…>; rel=\"next\"` \
                                      to the older page while there is one",
         body = SessionDetail,
         headers(("Link" = String, description = "The page of older messages, while there is one"))),
        (status = 404, description = "No such session of the caller's (also for an id that is \
                                      not a UUID)", body = ErrorBody),
        (status = 422, description = "A bad `limit`, or `before` that is no message of the \
                                      session", body = ErrorBody),
    )
)]
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

#[utoipa::path(
    put,
    path = "/sessions/{session_id}",
    operation_id = "rename_session",
    tag = "sessions",
    summary = "Rename a session, change its system prompt, or both",
    security(("bearer" = [])),
    params(SessionPath),
    request_body = UpdateBody,
    responses(
        (status = 200, description = "The changed session", body = SessionView),
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
    let body: UpdateBody = read_json(req, app.config.max_body_bytes).await?;
    let change = SessionChange {
        title: body.title,
        system_prompt: body.system_prompt,
    };
    Ok(json(&app.core.update_session(user_id, id, change).await?))
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
