//! `POST /chat/stream` starts a generation and streams it as SSE; `GET /chat/stream/{id}` resumes
//! one (honouring `Last-Event-ID`); `POST /chat/stream/{id}/stop` stops one. Everything that can
//! be known wrong before the first byte (bad fields, unknown or unconfigured provider, a model
//! outside the allow-list, missing session, a provider that fails before any text within the
//! first-event wait) is a plain JSON error with its status. A provider slower than that wait
//! gets the SSE headers and keep-alive comments instead, and a later failure is the stream's
//! `error` event.

use hyper::{body::Incoming, HeaderMap, Request, Response};
use omnichat_actors::{chat::StreamEvent, providers::ProviderKind, session::StartChat, CoreError};
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    app::App,
    http::{
        body::Body,
        error::HttpError,
        request::read_json,
        response::json,
        sse::{sse_response, sse_waiting_response},
    },
};

/// The largest prompt accepted, in bytes.
pub const MAX_PROMPT_BYTES: usize = 100_000;
/// The longest model name accepted.
pub const MAX_MODEL_CHARS: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatBody {
    session_id: String,
    prompt: String,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    model: Option<String>,
    /// The longest answer wanted, in tokens (capped by configuration).
    #[serde(default)]
    max_tokens: Option<u32>,
}

/// Checks the fields and turns them into a request for the core.
fn validate(body: ChatBody) -> Result<StartChat, HttpError> {
    let session_id = Uuid::parse_str(body.session_id.trim())
        .map_err(|_| HttpError::unprocessable("session_id must be a UUID"))?;
    if body.prompt.trim().is_empty() {
        return Err(HttpError::unprocessable("prompt must not be empty"));
    }
    if body.prompt.len() > MAX_PROMPT_BYTES {
        return Err(HttpError::unprocessable(format!(
            "prompt must be at most {MAX_PROMPT_BYTES} bytes"
        )));
    }
    let provider_name = body.provider.as_deref().unwrap_or("echo");
    let provider = ProviderKind::parse(provider_name).ok_or_else(|| {
        let known: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.name()).collect();
        HttpError::unprocessable(format!(
            "Unknown provider '{provider_name}'; use one of: {}",
            known.join(", ")
        ))
    })?;
    let model = match body.model {
        Some(model) if model.trim().is_empty() => None,
        Some(model)
            if model.chars().count() > MAX_MODEL_CHARS || model.chars().any(char::is_control) =>
        {
            return Err(HttpError::unprocessable(format!(
                "model must be at most {MAX_MODEL_CHARS} characters without control characters"
            )));
        }
        other => other,
    };
    Ok(StartChat {
        session_id,
        prompt: body.prompt,
        provider,
        model,
        max_tokens: body.max_tokens,
    })
}

pub async fn stream(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let body: ChatBody = read_json(req, app.config.max_body_bytes).await?;
    let mut request = validate(body)?;
    // Checked here, before the prompt is stored or anything goes upstream.
    request.model = app
        .core
        .providers()
        .choose_model(request.provider, request.model.take())?;
    if app.is_draining() {
        // An answer started now would be cut off by the shutdown: send the client elsewhere.
        return Err(CoreError::Overloaded {
            message: "The server is shutting down; send the prompt again".into(),
            retry_after: std::time::Duration::from_secs(1),
        }
        .into());
    }
    let mut start = app.core.start_chat(user_id, request).await?;
    let omitted = start.context_omitted;
    // Wait a little for the first event, so a provider that fails at once still gets a proper
    // status; past that, open the stream so clients and proxies see it is alive.
    let first = match tokio::time::timeout(app.config.first_event_wait, start.events.recv()).await {
        Ok(Some(StreamEvent::Error { mut failure })) => match failure.before_output.take() {
            Some(error) => return Err(CoreError::from(error).into()),
            None => vec![StreamEvent::Error { failure }],
        },
        Ok(Some(event)) => vec![event],
        Ok(None) => Vec::new(),
        Err(_still_waiting) => {
            return Ok(with_context_omitted(
                sse_waiting_response(
                    start.generation_id,
                    start.events,
                    app.config.keep_alive_every,
                ),
                omitted,
            ))
        }
    };
    Ok(with_context_omitted(
        sse_response(
            start.generation_id,
            first,
            start.events,
            app.config.keep_alive_every,
        ),
        omitted,
    ))
}

/// Says how many earlier messages of the session did not go upstream (the stored answer says
/// it too, as `context_omitted`).
fn with_context_omitted(mut response: Response<Body>, omitted: u32) -> Response<Body> {
    response
        .headers_mut()
        .insert("x-context-omitted", omitted.into());
    response
}

fn generation_id(raw: &str) -> Result<Uuid, HttpError> {
    Uuid::parse_str(raw).map_err(|_| HttpError::not_found("Generation not found"))
}

/// The byte position a reconnecting client already has (`Last-Event-ID`), 0 when absent.
fn last_event_id(headers: &HeaderMap) -> Result<u64, HttpError> {
    match headers.get("last-event-id") {
        None => Ok(0),
        Some(value) => value
            .to_str()
            .ok()
            .map(str::trim)
            .and_then(|v| {
                if v.is_empty() {
                    Some(0)
                } else {
                    v.parse().ok()
                }
            })
            .ok_or_else(|| {
                HttpError::bad_request("Last-Event-ID must be an event id from this stream")
            }),
    }
}

pub async fn resume(
    app: &App,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let generation_id = generation_id(id)?;
    let after = last_event_id(req.headers())?;
    let events = app.core.attach(user_id, generation_id, after).await?;
    Ok(sse_response(
        generation_id,
        Vec::new(),
        events,
        app.config.keep_alive_every,
    ))
}

pub async fn stop(
    app: &App,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let generation_id = generation_id(id)?;
    let status = app.core.stop_generation(user_id, generation_id).await?;
    Ok(json(
        &serde_json::json!({ "generation_id": generation_id, "status": status }),
    ))
}
