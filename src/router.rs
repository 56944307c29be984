//! The route table: method and path to handler. Paths match with or without a trailing slash;
//! an unknown path is 404 and a known path with the wrong method is 405 with `Allow`.

use hyper::{body::Incoming, Method, Request, Response};

use crate::{
    app::App,
    handlers::{chat, health, metrics, providers, sessions, token, users, web},
    http::{body::Body, error::HttpError},
};

/// Dispatches one request. Every failure comes back as an `HttpError` for the caller to render.
pub async fn route(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let path = req.uri().path().to_owned();
    let trimmed = path.trim_end_matches('/');
    let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
    let method = req.method().clone();
    match (segments.as_slice(), &method) {
        ([], &Method::GET) => web::index(app, req.headers()).await,
        ([], _) => Err(HttpError::method_not_allowed("GET")),
        (["assets", name], &Method::GET) => {
            web::asset(app, req.headers(), req.uri().query(), name).await
        }
        (["assets", _], _) => Err(HttpError::method_not_allowed("GET")),
        (["healthz"], &Method::GET) => health::healthz(app).await,
        (["healthz"], _) => Err(HttpError::method_not_allowed("GET")),
        (["readyz"], &Method::GET) => health::readyz(app).await,
        (["readyz"], _) => Err(HttpError::method_not_allowed("GET")),
        // Served here only when no separate metrics address is configured.
        (["metrics"], &Method::GET) if app.config.metrics_addr.is_none() => {
            Ok(metrics::render(&app.core))
        }
        (["metrics"], _) if app.config.metrics_addr.is_none() => {
            Err(HttpError::method_not_allowed("GET"))
        }

        (["token"], &Method::POST) => token::login(app, req).await,
        (["token"], _) => Err(HttpError::method_not_allowed("POST")),
        (["logout"], &Method::POST) => token::logout(app, req).await,
        (["logout", "all"], &Method::POST) => token::logout_all(app, req).await,
        (["logout"], _) | (["logout", "all"], _) => Err(HttpError::method_not_allowed("POST")),

        (["users"], &Method::POST) => users::sign_up(app, req).await,
        (["users"], _) => Err(HttpError::method_not_allowed("POST")),
        (["users", "me"], &Method::GET) => users::me(app, req).await,
        (["users", "me"], &Method::PUT) => users::update_me(app, req).await,
        (["users", "me"], &Method::DELETE) => users::delete_me(app, req).await,
        (["users", "me"], _) => Err(HttpError::method_not_allowed("GET, PUT, DELETE")),
        (["users", "me", "usage"], &Method::GET) => users::usage(app, req).await,
        (["users", "me", "usage"], _) => Err(HttpError::method_not_allowed("GET")),
        (["users", "me", "password"], &Method::PUT) => users::change_password(app, req).await,
        (["users", "me", "password"], _) => Err(HttpError::method_not_allowed("PUT")),

        (["sessions"], &Method::GET) => sessions::list(app, req).await,
        (["sessions"], &Method::POST) => sessions::create(app, req).await,
        (["sessions"], _) => Err(HttpError::method_not_allowed("GET, POST")),
        (["sessions", id], &Method::GET) => sessions::get(app, req, id).await,
        (["sessions", id], &Method::PUT) => sessions::rename(app, req, id).await,
        (["sessions", id], &Method::DELETE) => sessions::delete(app, req, id).await,
        (["sessions", _], _) => Err(HttpError::method_not_allowed("GET, PUT, DELETE")),

        (["chat", "stream"], &Method::POST) => chat::stream(app, req).await,
        (["chat", "stream"], _) => Err(HttpError::method_not_allowed("POST")),
        (["chat", "stream", id], &Method::GET) => chat::resume(app, req, id).await,
        (["chat", "stream", _], _) => Err(HttpError::method_not_allowed("GET")),
        (["chat", "stream", id, "stop"], &Method::POST) => chat::stop(app, req, id).await,
        (["chat", "stream", _, "stop"], _) => Err(HttpError::method_not_allowed("POST")),

        (["providers"], &Method::GET) => providers::list(app, req).await,
        (["providers"], _) => Err(HttpError::method_not_allowed("GET")),

        _ => Err(HttpError::not_found("Not Found")),
    }
}

/// The route template of `path`, as the metrics label requests: ids become `{id}`, so the
/// label's values are a fixed set whatever clients send. Unknown paths are `unmatched`. Kept
/// beside [`route`]; a route added there is added here.
pub fn template(path: &str) -> &'static str {
    let trimmed = path.trim_end_matches('/');
    let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
    match segments.as_slice() {
        [] => "/",
        ["assets", _] => "/assets/{name}",
        ["healthz"] => "/healthz",
        ["readyz"] => "/readyz",
        ["metrics"] => "/metrics",
        ["token"] => "/token",
        ["logout"] => "/logout",
        ["logout", "all"] => "/logout/all",
        ["users"] => "/users/",
        ["users", "me"] => "/users/me/",
        ["users", "me", "password"] => "/users/me/password",
        ["users", "me", "usage"] => "/users/me/usage",
        ["sessions"] => "/sessions",
        ["sessions", _] => "/sessions/{id}",
        ["chat", "stream"] => "/chat/stream",
        ["chat", "stream", _] => "/chat/stream/{id}",
        ["chat", "stream", _, "stop"] => "/chat/stream/{id}/stop",
        ["providers"] => "/providers",
        _ => "unmatched",
    }
}

#[cfg(test)]
mod tests {
    use super::template;

    #[test]
    fn ids_never_reach_the_label() {
        assert_eq!(
            template("/sessions/0190a5d2-1111-7000-8000-000000000000"),
            "/sessions/{id}"
        );
        assert_eq!(template("/sessions/"), "/sessions");
        assert_eq!(template("/chat/stream/abc/stop"), "/chat/stream/{id}/stop");
        assert_eq!(template("/users/me"), "/users/me/");
        assert_eq!(template("/no/such/0190a5d2"), "unmatched");
        assert_eq!(template("/"), "/");
    }
}
