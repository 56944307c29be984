//! `GET /` and `GET /assets/{name}`: a small built-in chat page over this API (log in, sessions,
//! Markdown answers streamed live, resume after a reload, stop), so a fresh install can be tried
//! in a browser with nothing else. Every file is embedded in the binary; nothing comes from a CDN.

use std::sync::OnceLock;

use hyper::{header, HeaderMap, Response, StatusCode};

use crate::{
    app::App,
    http::{
        body::{empty, full, Body},
        error::{ErrorBody, HttpError},
    },
};

const PAGE: &str = include_str!("../web/index.html");
/// Where `index.html` names the asset version, so a new binary's page never runs old scripts.
const VERSION_MARK: &str = "__ASSET_VERSION__";

/// One embedded file under `/assets/`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// The page's own files and the vendored libraries (see `src/web/vendor/README.md`).
const ASSETS: [Asset; 11] = [
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../web/app.css"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        body: include_bytes!("../web/api.js"),
    },
    Asset {
        name: "render.js",
        content_type: JS,
        body: include_bytes!("../web/render.js"),
    },
    Asset {
        name: "view.js",
        content_type: JS,
        body: include_bytes!("../web/view.js"),
    },
    Asset {
        name: "sessions.js",
        content_type: JS,
        body: include_bytes!("../web/sessions.js"),
    },
    Asset {
        name: "providers.js",
        content_type: JS,
        body: include_bytes!("../web/providers.js"),
    },
    Asset {
        name: "stream.js",
        content_type: JS,
        body: include_bytes!("../web/stream.js"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_bytes!("../web/app.js"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../web/icon.svg"),
    },
    Asset {
        name: "marked.js",
        content_type: JS,
        body: include_bytes!("../web/vendor/marked/marked.umd.js"),
    },
    Asset {
        name: "purify.js",
        content_type: JS,
        body: include_bytes!("../web/vendor/dompurify/purify.min.js"),
    },
];

/// FNV-1a, evaluated at compile time: a content hash for ETags and the asset version (not a
/// security boundary, only a cache key).
const fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// One hash over every asset: it changes whenever any of them does.
const ASSET_VERSION: u64 = {
    let mut hash = FNV_OFFSET;
    let mut i = 0;
    while i < ASSETS.len() {
        hash = fnv1a(hash, ASSETS[i].body);
        i += 1;
    }
    hash
};

/// The page with its asset links pinned to this build's version.
fn page() -> &'static str {
    static PAGE_WITH_VERSION: OnceLock<String> = OnceLock::new();
    PAGE_WITH_VERSION.get_or_init(|| PAGE.replace(VERSION_MARK, &format!("{ASSET_VERSION:016x}")))
}

fn etag(bytes: &[u8]) -> String {
    format!("\"{:016x}\"", fnv1a(FNV_OFFSET, bytes))
}

/// Whether the client's `If-None-Match` already names `etag` (weak or strong, or `*`).
fn client_has(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

/// A 200 with `body`, or a bodiless 304 when the client holds this version already.
fn cached(
    request: &HeaderMap,
    body: &'static [u8],
    content_type: &'static str,
    cache_control: &'static str,
) -> Response<Body> {
    let tag = etag(body);
    let mut response = if client_has(request, &tag) {
        let mut response = Response::new(empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = Response::new(full(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(content_type),
        );
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = header::HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static(cache_control),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

/// The page talks only to this server and runs only its own files: no inline script or style,
/// nothing from elsewhere, so HTML that slips into an answer cannot run or load anything.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[utoipa::path(
    get,
    path = "/",
    operation_id = "chat_page",
    tag = "web",
    summary = "The built-in chat page",
    params(("If-None-Match" = Option<String>, Header, description = "An ETag the client holds")),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String,
            headers(("ETag" = String), ("Cache-Control" = String, description = "`no-cache`"))),
        (status = 304, description = "The client's copy is current", headers(("ETag" = String))),
    )
)]
pub async fn index(_app: &App, request: &HeaderMap) -> Result<Response<Body>, HttpError> {
    // Revalidated on every load, so a new binary's page (and with it the new asset version)
    // shows up at once.
    let mut response = cached(
        request,
        page().as_bytes(),
        "text/html; charset=utf-8",
        "no-cache",
    );
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(PAGE_CSP),
    );
    Ok(response)
}

/// The names `GET /assets/{name}` serves.
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|asset| asset.name)
}

/// `GET /assets/{name}`. Asked for with this build's `?v=`, a file can never change, so it is
/// cached for a year; any other way it is revalidated by its ETag.
#[utoipa::path(
    get,
    path = "/assets/{name}",
    operation_id = "chat_page_asset",
    tag = "web",
    summary = "A file of the chat page (scripts, style, icon), embedded in the binary",
    params(
        ("name" = String, Path, description = "The file's name"),
        ("v" = Option<String>, Query, description = "The build's asset version, as the page \
            names it: with the current one the file is cached for a year"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag the client holds"),
    ),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml")),
            headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "The client's copy is current", headers(("ETag" = String))),
        (status = 404, description = "No such file", body = ErrorBody),
    )
)]
pub async fn asset(
    _app: &App,
    request: &HeaderMap,
    query: Option<&str>,
    name: &str,
) -> Result<Response<Body>, HttpError> {
    let asset = ASSETS
        .iter()
        .find(|asset| asset.name == name)
        .ok_or_else(|| HttpError::not_found("Not Found"))?;
    let current = format!("v={ASSET_VERSION:016x}");
    let pinned = query.is_some_and(|query| query.split('&').any(|pair| pair == current));
    let cache_control = if pinned {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok(cached(
        request,
        asset.body,
        asset.content_type,
        cache_control,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_this_builds_assets() {
        let page = page();
        assert!(!page.contains(VERSION_MARK));
        for asset in ASSETS.iter().map(|asset| asset.name) {
            let link = format!("/assets/{asset}?v={ASSET_VERSION:016x}");
            assert!(page.contains(&link), "{link} missing from index.html");
        }
    }

    #[test]
    fn if_none_match_accepts_lists_and_weak_tags() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            header::HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(client_has(&headers, "\"b\""));
        assert!(!client_has(&headers, "\"c\""));
    }
}
