//! Reading requests: the bearer token, bodies under a size limit, JSON and form decoding.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::{body::Incoming, header, HeaderMap, Request, StatusCode};
use serde::de::DeserializeOwned;

use super::error::HttpError;

/// A client trickling its body in holds a connection; past this it gets 408.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The address of the TCP peer, put in every request's extensions by the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

/// The TCP peer the request came from (`client_ip` looks through trusted proxies).
pub fn client_addr<B>(req: &Request<B>) -> Option<SocketAddr> {
    req.extensions().get::<ClientAddr>().map(|addr| addr.0)
}

/// The token of an `Authorization: Bearer …` header, or 401.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, HttpError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| HttpError::unauthorized("Not authenticated"))?;
    let value = value
        .to_str()
        .map_err(|_| HttpError::unauthorized("Could not validate credentials"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| HttpError::unauthorized("Not authenticated"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(HttpError::unauthorized("Not authenticated"));
    }
    Ok(token.trim())
}

/// The media type of the request, lowercased, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    Some(essence)
}

/// 415 unless the request says it carries `expected`.
fn require_media_type(headers: &HeaderMap, expected: &str) -> Result<(), HttpError> {
    match media_type(headers) {
        Some(found) if found == expected => Ok(()),
        Some(found) => Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be {expected}, not {found}"),
        )),
        None => Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be {expected}"),
        )),
    }
}

/// The whole body, or 413 once it passes `limit` bytes (checked against Content-Length first,
/// so an honest oversized upload is refused before it is read).
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, HttpError> {
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body exceeds {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(
        BODY_READ_TIMEOUT,
        Limited::new(req.into_body(), limit).collect(),
    );
    let Ok(collected) = read.await else {
        return Err(HttpError::new(
            StatusCode::REQUEST_TIMEOUT,
            "The request body took too long to arrive",
        ));
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err)
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(_) => Err(HttpError::bad_request("Could not read the request body")),
    }
}

/// Decodes a JSON body: 415 for another content type, 400 for malformed JSON, 422 for JSON of
/// the wrong shape (not an object, a missing or unknown field, a wrong type). Every body the API
/// takes is an object: serde would otherwise read an array as a struct's fields in order.
pub async fn read_json<T: DeserializeOwned>(
    req: Request<Incoming>,
    limit: usize,
) -> Result<T, HttpError> {
    require_media_type(req.headers(), "application/json")?;
    let bytes = read_body(req, limit).await?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Still malformed JSON is a 400; well-formed JSON of another kind is the wrong shape.
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                Ok(_) => HttpError::unprocessable("The request body must be a JSON object"),
                Err(err) => json_error(err),
            },
        );
    }
    serde_json::from_slice(&bytes).map_err(json_error)
}

/// A serde error as the client's fault: its message names the field (`unknown field `x``).
fn json_error(err: serde_json::Error) -> HttpError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Data => HttpError::unprocessable(format!("Invalid request body: {err}")),
        Category::Syntax | Category::Eof | Category::Io => {
            HttpError::bad_request(format!("Malformed JSON: {err}"))
        }
    }
}

/// Decodes an `application/x-www-form-urlencoded` body; a missing field is 422.
pub async fn read_form<T: DeserializeOwned>(
    req: Request<Incoming>,
    limit: usize,
) -> Result<T, HttpError> {
    require_media_type(req.headers(), "application/x-www-form-urlencoded")?;
    let bytes = read_body(req, limit).await?;
    serde_urlencoded::from_bytes(&bytes)
        .map_err(|err| HttpError::unprocessable(format!("Invalid form: {err}")))
}
