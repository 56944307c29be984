//! `GET /sessions/{id}/export?format=json|markdown`: a whole session as a file to download
//! (`Content-Disposition: attachment`), JSON by default.

use std::fmt::Write as _;

use hyper::{body::Incoming, header, Request, Response};
use omnichat_actors::session::{MessagePageRequest, SessionDetail};
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    app::App,
    http::{body::full, body::Body, error::HttpError},
};

/// The query of an export.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `json` (the default: `GET /sessions/{session_id}`'s body) or `markdown`.
    #[param(pattern = "^(json|markdown)$")]
    format: Option<String>,
}

/// The formats a session can be exported in.
#[derive(Clone, Copy)]
enum Format {
    Json,
    Markdown,
}

#[utoipa::path(
    get,
    path = "/sessions/{session_id}/export",
    operation_id = "export_session",
    tag = "sessions",
    summary = "A whole session as a JSON or Markdown download",
    security(("bearer" = [])),
    params(crate::handlers::sessions::SessionPath, ExportQuery),
    responses(
        (status = 200, description = "The session as a file (`Content-Disposition: attachment`)",
         content(
            (SessionDetail = "application/json"),
            (String = "text/markdown"),
         ),
         headers(("Content-Disposition" = String, description = "attachment; filename=\"<title>-<id>.json\""))),
        (status = 404, description = "No such session of the caller's", body = crate::http::error::ErrorBody),
        (status = 422, description = "A format other than json or markdown", body = crate::http::error::ErrorBody),
    )
)]
pub async fn export(
    app: &App,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response<Body>, HttpError> {
    let user_id = app.authenticate(req.headers()).await?;
    let id = Uuid::parse_str(id).map_err(|_| HttpError::not_found("Session not found"))?;
    let params: ExportQuery = match req.uri().query() {
        None => ExportQuery::default(),
        Some(raw) => serde_urlencoded::from_str(raw)
            .map_err(|_| HttpError::bad_request("Malformed query string"))?,
    };
    let format = match params.format.as_deref() {
        None | Some("json") => Format::Json,
        Some("markdown" | "md") => Format::Markdown,
        Some(_) => return Err(HttpError::unprocessable("format must be json or markdown")),
    };
    let detail = app
        .core
        .get_session(user_id, id, MessagePageRequest::default())
        .await?;
    let (bytes, content_type, extension) = match format {
        Format::Json => (
            serde_json::to_vec_pretty(&detail).unwrap_or_default(),
            "application/json",
            "json",
        ),
        Format::Markdown => (
            markdown(&detail).into_bytes(),
            "text/markdown; charset=utf-8",
            "md",
        ),
    };
    let filename = format!("{}-{}.{extension}", slug(&detail.session.title), id);
    let mut response = Response::new(full(bytes));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    // The slug is ASCII letters, digits and dashes: always a valid, unquoted-safe header value.
    if let Ok(value) =
        header::HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// The title as a file name: lowercase ASCII letters and digits joined by dashes, at most 60
/// characters, `session` when nothing is left.
fn slug(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 60 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "session".to_owned()
    } else {
        slug.to_owned()
    }
}

/// The session as a Markdown document: the title, the system prompt if any, then each message
/// under a heading naming its author (and, for answers, the provider and model).
fn markdown(detail: &SessionDetail) -> String {
    let session = &detail.session;
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", session.title.trim());
    let _ = writeln!(
        out,
        "_Session {} · created {} · exported from OmniChat_\n",
        session.id,
        session.created_at.format("%Y-%m-%d %H:%M UTC")
    );
    if let Some(prompt) = &session.system_prompt {
        let _ = writeln!(out, "## System prompt\n\n{}\n", prompt.trim_end());
    }
    for message in &detail.messages {
        let author = match message.role.as_str() {
            "user" => "User".to_owned(),
            "assistant" => match (&message.provider, &message.model) {
                (Some(provider), Some(model)) => format!("Assistant ({provider} · {model})"),
                _ => "Assistant".to_owned(),
            },
            other => other.to_owned(),
        };
        // An earlier version a regenerate or an edit replaced is kept, and said to be one.
        let earlier = if message.superseded == Some(true) {
            " (earlier version)"
        } else {
            ""
        };
        let _ = writeln!(out, "## {author}{earlier}\n");
        let _ = writeln!(out, "{}\n", message.content.trim_end());
        match message.status.as_deref() {
            Some("stopped") => out.push_str("_(stopped before the end)_\n\n"),
            Some("error") => out.push_str("_(ended with an error)_\n\n"),
            Some("streaming") => out.push_str("_(still being written)_\n\n"),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slugs_are_safe_file_names() {
        assert_eq!(slug("My First Chat!"), "my-first-chat");
        assert_eq!(slug("  ¿Qué?  "), "qu");
        assert_eq!(slug("\"; rm -rf /\r\n"), "rm-rf");
        assert_eq!(slug("日本語"), "session");
        assert!(slug(&"ab ".repeat(100)).len() <= 60);
    }
}
