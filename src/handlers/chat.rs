//! `POST /chat/stream` starts a generation and streams it as SSE; `GET /chat/stream/{id}` resumes
//! one (honouring `Last-Event-ID`); `POST /chat/stream/{id}/stop` stops one. Everything that can
//! be known wrong before the first byte (bad fields, unknown or unconfigured provider, a model
//! outside the allow-list, missing session, a provider that fails before any text within the
//! first-event wait) is a plain JSON error with its status. A provider slower than that wait
//! gets the SSE headers and keep-alive comments instead, and a later failure is the stream's
//! `error` event.

use hyper::{body::Incoming, HeaderMap, Request, Response};
use omnichat_actors::{
    chat::StreamEvent,
    providers::ProviderKind,
    session::{Replace, StartChat},
    CoreError,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    app::App,
    http::{
        body::Body,
        error::{ErrorBody, HttpError},
        request::read_json,
        response::json,
        sse::{sse_response, sse_waiting_response, STREAM_DESCRIPTION},
    },
};

/// The largest prompt accepted, in bytes.
pub const MAX_PROMPT_BYTES: usize = 100_000;
/// The longest model name accepted.
pub const MAX_MODEL_CHARS: usize = 200;

/// A prompt for a session, and who should answer it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatBody {
    /// One of the caller's sessions.
    #[schema(format = Uuid, example = "0193a4c2-6f1e-7c3a-9d2b-5e8f0a1b2c3d")]
    session_id: String,
    /// Not blank (some character other than white space); at most 100,000 bytes (UTF-8).
    /// Required, except with `regenerate`: there it may be left out, and when sent it must be
    /// the session's last prompt exactly (422 otherwise; `edit_message_id` changes a prompt).
    // The pattern is unanchored, so it means "contains": its class is Unicode's White_Space,
    // exactly what `trim` removes.
    #[serde(default)]
    #[schema(
        min_length = 1,
        pattern = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]",
        example = "Tell me a joke"
    )]
    prompt: Option<String>,
    /// `echo` when absent. A provider this server has no key for is 422.
    #[serde(default)]
    #[schema(value_type = Option<ProviderKind>)]
    provider: Option<String>,
    /// The provider's default when absent or blank; at most 200 characters, no control
    /// characters; 422 when the server's allow-list for the provider leaves it out.
    #[serde(default)]
    #[schema(
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
        example = "gemini-pro"
    )]
    model: Option<String>,
    /// The longest answer wanted, in tokens (at least 1); passed to every provider in its own
    /// form. It is capped by the server (32,768 unless configured otherwise) and by what the
    /// model's context window leaves beside the prompt: an answer asked longer than fits gets
    /// what fits. Absent: the provider's default, with the server's answer reserve kept free.
    #[serde(default, deserialize_with = "whole_tokens")]
    #[schema(value_type = Option<u64>, minimum = 1, example = 1024)]
    max_tokens: Option<u32>,
    /// `true`: answer the session's last prompt again. Its answer stays readable as an earlier
    /// version (`superseded: true` in `GET /sessions/{session_id}`); what goes upstream is the
    /// current line of the conversation only. 422 when the session has no answered prompt or
    /// with `edit_message_id`; 409 while an answer of the session is streaming.
    #[serde(default)]
    regenerate: Option<bool>,
    /// The id of the session's last prompt, to replace it with `prompt` and answer that: the
    /// prompt and its answer stay readable as earlier versions. 422 for any other message.
    #[serde(default)]
    #[schema(format = Uuid, example = "0193a4c2-6f1e-7c3a-9d2b-5e8f0a1b2c3d")]
    edit_message_id: Option<String>,
}

/// `max_tokens` read as JSON Schema reads an integer: any number without a fraction (`1024` and
/// `1024.0` alike). One past what a `u32` holds is past every cap anyway, so it is held at the
/// largest (and capped later like any other); a negative or fractional one is refused.
fn whole_tokens<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = match (number.as_u64(), number.as_f64()) {
        (Some(n), _) => Some(n),
        (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 => Some(f.min(u64::MAX as f64) as u64),
        _ => None,
    };
    whole
        .map(|n| Some(u32::try_from(n).unwrap_or(u32::MAX)))
        .ok_or_else(|| serde::de::Error::custom("max_tokens must be a whole number of at least 1"))
}

/// What `POST /chat/stream/{generation_id}/stop` answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StoppedGeneration {
    pub generation_id: Uuid,
    /// How the answer ended: `stopped` when this stopped it; `complete`, `stopped` or `error`
    /// when it had already ended.
    #[schema(value_type = String, example = "stopped")]
    pub status: &'static str,
}

/// The generation a path names.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct GenerationPath {
    /// The answer's generation id (`X-Generation-Id` of its stream, `generation_id` of a
    /// streaming message); anything that is not a UUID is 404.
    #[allow(dead_code)] // read by the router as a path segment; this type only documents it
    generation_id: Uuid,
}

/// `Last-Event-ID` on a resumed stream.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct ResumeHeaders {
    /// The id of the last event received: the answer's length in bytes so far, as digits.
    /// Absent or empty: from the start. Not a whole number: 400; no position in this answer: 409.
    #[param(rename = "Last-Event-ID", required = false, pattern = "^[0-9]{0,19}$")]
    #[allow(dead_code)]
    // read from the headers by `last_event_id`; this type only documents it
    last_event_id: String,
}

/// Checks the fields and turns them into a request for the core.
fn validate(body: ChatBody) -> Result<StartChat, HttpError> {
    let session_id = Uuid::parse_str(body.session_id.trim())
        .map_err(|_| HttpError::unprocessable("session_id must be a UUID"))?;
    let replace = match (body.regenerate == Some(true), body.edit_message_id) {
        (true, Some(_)) => {
            return Err(HttpError::unprocessable(
                "regenerate and edit_message_id cannot be sent together",
            ))
        }
        (true, None) => Some(Replace::Regenerate {
            sent_prompt: body.prompt.clone(),
        }),
        (false, Some(id)) => Some(Replace::Edit {
            message_id: Uuid::parse_str(id.trim())
                .map_err(|_| HttpError::unprocessable("edit_message_id must be a UUID"))?,
        }),
        (false, None) => None,
    };
    let regenerate = matches!(replace, Some(Replace::Regenerate { .. }));
    let prompt = match body.prompt {
        Some(prompt) => prompt,
        // The stored prompt is answered again: none is needed.
        None if regenerate => String::new(),
        None => return Err(HttpError::unprocessable("missing field `prompt`")),
    };
    if !regenerate && prompt.trim().is_empty() {
        return Err(HttpError::unprocessable("prompt must not be empty"));
    }
    if prompt.len() > MAX_PROMPT_BYTES {
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
    // The rules first, then "blank means the default": a model of tabs breaks the rule the API
    // document states (no control characters) and is refused, not taken for blank.
    let model = match body.model {
        Some(model)
            if model.chars().count() > MAX_MODEL_CHARS || model.chars().any(char::is_control) =>
        {
            return Err(HttpError::unprocessable(format!(
                "model must be at most {MAX_MODEL_CHARS} characters without control characters"
            )));
        }
        Some(model) if model.trim().is_empty() => None,
        other => other,
    };
    Ok(StartChat {
        session_id,
        prompt,
        provider,
        model,
        max_tokens: body.max_tokens,
        replace,
    })
}

#[utoipa::path(
    post,
    path = "/chat/stream",
    operation_id = "stream_chat",
    tag = "chat",
    summary = "Send a prompt and stream the answer (Server-Sent Events)",
    description = "The prompt is stored first; the session's history goes upstream with it \
                   (its current line: never the earlier versions a `regenerate` or an \
                   `edit_message_id` replaced). \
                   Whatever goes wrong before the answer's first event and within the server's \
                   first-event wait is a JSON error with its status; a failure after that is \
                   the stream's error event. The answer belongs to the server, not to this \
                   connection: a client that leaves can resume with \
                   `GET /chat/stream/{generation_id}`.",
    security(("bearer" = [])),
    request_body = ChatBody,
    responses(
        (status = 200, description = STREAM_DESCRIPTION, content_type = "text/event-stream",
            body = String, headers(
                ("X-Generation-Id" = Uuid, description = "The answer's id, for resume and stop"),
                ("Cache-Control" = String, description = "`no-cache`"),
                ("X-Accel-Buffering" = String, description = "`no`, so proxies pass events at once"),
                ("X-Context-Omitted" = u32, description = "How many earlier messages of the \
                  session did not fit the model's context window beside the prompt and were \
                  left out (also the stored answer's `context_omitted`)"),
            ),
            links(
                ("resume" = (operation_id = "resume_chat_stream",
                    parameters(("generation_id" = "$response.header.X-Generation-Id")))),
                ("stop" = (operation_id = "stop_chat_stream",
                    parameters(("generation_id" = "$response.header.X-Generation-Id")))),
            )),
        (status = 402, description = "The provider account's quota or credit is exhausted", body = ErrorBody),
        (status = 404, description = "No such session of the caller's", body = ErrorBody),
        (status = 409, description = "The session is full, already has an answer streaming, or \
                                      was changed by another server node; or `regenerate` / \
                                      `edit_message_id` do not fit the session as it is (no \
                                      answered prompt yet, `edit_message_id` naming another \
                                      message than its last prompt, a regenerate `prompt` that \
                                      is not its last prompt)", body = ErrorBody),
        (status = 422, description = "A field is invalid (the detail names it)",
            body = ErrorBody),
        (status = 429, description = "The caller's own quota (tokens a day, prompts a minute: \
                                      with the `RateLimit-*` headers), too many answers of the \
                                      caller's at once, or the provider rate-limited us (the \
                                      detail says so)", body = ErrorBody,
            headers(
                ("Retry-After" = u64, description = "Seconds to wait"),
                ("RateLimit-Limit" = u64, description = "The quota refused (only for the caller's own quota)"),
                ("RateLimit-Remaining" = u64, description = "What is left of it: 0"),
                ("RateLimit-Reset" = u64, description = "Seconds until it renews"),
            )),
        (status = 502, description = "The provider failed, refused our credentials or could not \
                                      be reached", body = ErrorBody),
        (status = 504, description = "The provider timed out", body = ErrorBody),
    )
)]
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

#[utoipa::path(
    get,
    path = "/chat/stream/{generation_id}",
    operation_id = "resume_chat_stream",
    tag = "chat",
    summary = "Resume an answer's stream after `Last-Event-ID`",
    description = "Live or already ended, the rest of the answer comes exactly once, then its \
                   error event if it failed, then `[DONE]`. Any server node serves it: one that \
                   does not run the answer follows it from the one that does.",
    security(("bearer" = [])),
    params(GenerationPath, ResumeHeaders),
    responses(
        (status = 200, description = STREAM_DESCRIPTION, content_type = "text/event-stream",
            body = String, headers(
                ("X-Generation-Id" = Uuid, description = "The answer's id"),
                ("Cache-Control" = String, description = "`no-cache`"),
                ("X-Accel-Buffering" = String, description = "`no`"),
            )),
        (status = 400, description = "`Last-Event-ID` is not a whole number", body = ErrorBody),
        (status = 409, description = "`Last-Event-ID` is no position in this answer (past its \
                                      end, or inside a character)", body = ErrorBody),
        (status = 404, description = "No such answer of the caller's", body = ErrorBody),
        (status = 503, description = "The answer is still running on a server node that did not \
                                      answer (it is being restarted or has just died): try \
                                      again", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
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

#[utoipa::path(
    post,
    path = "/chat/stream/{generation_id}/stop",
    operation_id = "stop_chat_stream",
    tag = "chat",
    summary = "Stop an answer; what was written so far is kept",
    security(("bearer" = [])),
    params(GenerationPath),
    responses(
        (status = 200, description = "How the answer ended", body = StoppedGeneration),
        (status = 404, description = "No such answer of the caller's", body = ErrorBody),
    )
)]
pub async fn stop(
    app: &App,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let generation_id = generation_id(id)?;
    let status = app.core.stop_generation(user_id, generation_id).await?;
    Ok(json(&StoppedGeneration {
        generation_id,
        status,
    }))
}
