//! The route table: method and path to handler. Paths match with or without a trailing slash;
//! an unknown path is 404 and a known path with the wrong method is 405 with `Allow`.

use std::sync::LazyLock;

use hyper::{body::Incoming, Method, Request, Response, StatusCode};

use crate::{
    app::App,
    handlers::{chat, export, health, metrics, openapi, providers, sessions, token, users, web},
    http::{body::Body, error::HttpError},
};

/// Every operation the server answers: method and path template, spelt as the OpenAPI document
/// spells them (`{name}` stands for one path segment). A request is checked against this list
/// before it is dispatched, so a route missing here is never served; the `Allow` of a 405 is
/// built from it; and a test checks that the OpenAPI document names exactly these operations.
/// Adding a route: one line here, one arm in [`route`], the handler's `#[utoipa::path]` and its
/// name in the document's `paths(...)` (src/openapi.rs).
pub const ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/"),
    (Method::GET, "/assets/{name}"),
    (Method::GET, "/healthz"),
    (Method::GET, "/readyz"),
    (Method::GET, "/metrics"),
    (Method::GET, "/openapi.json"),
    (Method::POST, "/token"),
    (Method::POST, "/logout"),
    (Method::POST, "/logout/all"),
    (Method::POST, "/users/"),
    (Method::GET, "/users/me/"),
    (Method::PUT, "/users/me/"),
    (Method::DELETE, "/users/me/"),
    (Method::PUT, "/users/me/password"),
    (Method::GET, "/users/me/usage"),
    (Method::GET, "/sessions"),
    (Method::POST, "/sessions"),
    (Method::GET, "/sessions/{session_id}"),
    (Method::PUT, "/sessions/{session_id}"),
    (Method::DELETE, "/sessions/{session_id}"),
    (Method::GET, "/sessions/{session_id}/export"),
    (Method::POST, "/chat/stream"),
    (Method::GET, "/chat/stream/{generation_id}"),
    (Method::POST, "/chat/stream/{generation_id}/stop"),
    (Method::GET, "/providers"),
];

/// Dispatches one request. Every failure comes back as an `HttpError` for the caller to render.
pub async fn route(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let path = req.uri().path().to_owned();
    let segments = segments(&path);
    let method = req.method().clone();
    listed(&method, &segments)?;
    match (segments.as_slice(), &method) {
        ([], &Method::GET) => web::index(app, req.headers()).await,
        (["assets", name], &Method::GET) => {
            web::asset(app, req.headers(), req.uri().query(), name).await
        }
        (["healthz"], &Method::GET) => health::healthz(app).await,
        (["readyz"], &Method::GET) => health::readyz(app).await,
        (["metrics"], &Method::GET) => metrics::serve(app).await,
        (["openapi.json"], &Method::GET) => openapi::document(app).await,

        (["token"], &Method::POST) => token::login(app, req).await,
        (["logout"], &Method::POST) => token::logout(app, req).await,
        (["logout", "all"], &Method::POST) => token::logout_all(app, req).await,

        (["users"], &Method::POST) => users::sign_up(app, req).await,
        (["users", "me"], &Method::GET) => users::me(app, req).await,
        (["users", "me"], &Method::PUT) => users::update_me(app, req).await,
        (["users", "me"], &Method::DELETE) => users::delete_me(app, req).await,
        (["users", "me", "password"], &Method::PUT) => users::change_password(app, req).await,
        (["users", "me", "usage"], &Method::GET) => users::usage(app, req).await,

        (["sessions"], &Method::GET) => sessions::list(app, req).await,
        (["sessions"], &Method::POST) => sessions::create(app, req).await,
        (["sessions", id], &Method::GET) => sessions::get(app, req, id).await,
        (["sessions", id], &Method::PUT) => sessions::rename(app, req, id).await,
        (["sessions", id], &Method::DELETE) => sessions::delete(app, req, id).await,
        (["sessions", id, "export"], &Method::GET) => export::export(app, req, id).await,

        (["chat", "stream"], &Method::POST) => chat::stream(app, req).await,
        (["chat", "stream", id], &Method::GET) => chat::resume(app, req, id).await,
        (["chat", "stream", id, "stop"], &Method::POST) => chat::stop(app, req, id).await,

        (["providers"], &Method::GET) => providers::list(app, req).await,

        // Listed in ROUTES but given no handler above: a bug of ours, which the route test finds.
        _ => Err(HttpError::new(
            StatusCode::NOT_IMPLEMENTED,
            "This route has no handler",
        )),
    }
}

/// The path's segments, a trailing slash ignored: `/users/me/` and `/users/me` are `[users, me]`.
fn segments(path: &str) -> Vec<&str> {
    path.trim_end_matches('/').split('/').skip(1).collect()
}

/// [`ROUTES`] with each template split into its segments, once: every request is matched
/// against them (for its metrics label, then for dispatch), and splitting them anew each time
/// cost more than the rest of routing.
static SPLIT_ROUTES: LazyLock<Vec<(&'static Method, &'static str, Vec<&'static str>)>> =
    LazyLock::new(|| {
        ROUTES
            .iter()
            .map(|(method, template)| (method, *template, segments(template)))
            .collect()
    });

/// Whether a template split into `parts` names the path made of `segments`.
fn matches(parts: &[&str], segments: &[&str]) -> bool {
    parts.len() == segments.len()
        && parts
            .iter()
            .zip(segments)
            .all(|(part, segment)| part.starts_with('{') || part == segment)
}

/// The route template of `path` (from [`ROUTES`]), as the metrics label requests: ids stay
/// `{session_id}` and the like, so the label's values are a fixed set whatever clients send.
/// Unknown paths are `unmatched`.
pub fn template(path: &str) -> &'static str {
    let segments = segments(path);
    SPLIT_ROUTES
        .iter()
        .find(|(_, _, parts)| matches(parts, &segments))
        .map_or("unmatched", |(_, template, _)| template)
}

/// `Ok` when [`ROUTES`] has this method and path; else 404 for a path no route has, or 405 with
/// `Allow` naming the methods the path takes.
fn listed(method: &Method, segments: &[&str]) -> Result<(), HttpError> {
    let mut allowed = Vec::new();
    for (route_method, _, parts) in SPLIT_ROUTES.iter() {
        if matches(parts, segments) {
            if *route_method == method {
                return Ok(());
            }
            allowed.push(route_method.as_str());
        }
    }
    if allowed.is_empty() {
        Err(HttpError::not_found("Not Found"))
    } else {
        Err(HttpError::method_not_allowed(allowed.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_with_and_without_a_trailing_slash() {
        assert!(listed(&Method::GET, &segments("/users/me")).is_ok());
        assert!(listed(&Method::GET, &segments("/users/me/")).is_ok());
        assert!(listed(&Method::POST, &segments("/users")).is_ok());
        assert!(listed(&Method::GET, &segments("/")).is_ok());
        assert!(listed(&Method::GET, &segments("")).is_ok());
        assert!(listed(&Method::POST, &segments("/chat/stream/abc/stop")).is_ok());
    }

    #[test]
    fn a_known_path_with_another_method_is_405_with_its_methods() {
        let err = listed(&Method::PATCH, &segments("/users/me")).unwrap_err();
        assert_eq!(err.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(err.allow.as_deref(), Some("GET, PUT, DELETE"));
        let err = listed(&Method::GET, &segments("/chat/stream/abc/stop")).unwrap_err();
        assert_eq!(err.allow.as_deref(), Some("POST"));
    }

    #[test]
    fn ids_never_reach_the_label() {
        assert_eq!(
            template("/sessions/0190a5d2-1111-7000-8000-000000000000"),
            "/sessions/{session_id}"
        );
        assert_eq!(template("/sessions/"), "/sessions");
        assert_eq!(
            template("/chat/stream/abc/stop"),
            "/chat/stream/{generation_id}/stop"
        );
        assert_eq!(template("/users/me"), "/users/me/");
        assert_eq!(template("/no/such/0190a5d2"), "unmatched");
        assert_eq!(template("/"), "/");
        assert_eq!(template("/metrics"), "/metrics");
    }

    #[test]
    fn an_unknown_path_is_404() {
        for path in ["/nope", "/users/you", "/sessions/a/b", "/chat/stream/a/go"] {
            let err = listed(&Method::GET, &segments(path)).unwrap_err();
            assert_eq!(err.status, StatusCode::NOT_FOUND, "{path}");
        }
    }
}
