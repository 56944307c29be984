//! CORS, so a web page served from another origin can call the API: preflights are answered
//! here, and every answer to an allowed origin carries the headers a browser needs to read it.
//! Off unless `OMNICHAT_CORS_ORIGINS` names origins (or `*`); bearer tokens, not cookies, carry
//! the credentials, so no `Allow-Credentials` is ever sent.

use hyper::{header, HeaderMap, Method, Response, StatusCode};

use super::body::{empty, Body};

/// The origins allowed to call the API from a browser.
#[derive(Clone, Debug, Default)]
pub struct CorsPolicy {
    any: bool,
    origins: Vec<String>,
}

impl CorsPolicy {
    /// Parses a comma-separated list of origins; `*` allows any.
    pub fn parse(list: &str) -> Self {
        let origins: Vec<String> = list
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        CorsPolicy {
            any: origins.iter().any(|o| o == "*"),
            origins,
        }
    }

    /// The request's origin, if it is allowed.
    fn allowed<'a>(&self, headers: &'a HeaderMap) -> Option<&'a header::HeaderValue> {
        self.allowed_origin(headers.get(header::ORIGIN))
    }

    fn allowed_origin<'a>(
        &self,
        origin: Option<&'a header::HeaderValue>,
    ) -> Option<&'a header::HeaderValue> {
        let origin = origin?;
        let text = origin.to_str().ok()?;
        (self.any || self.origins.iter().any(|o| o == text)).then_some(origin)
    }

    /// The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`), if this is one.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response<Body>> {
        if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let mut response = Response::new(empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        if let Some(origin) = self.allowed(headers) {
            let out = response.headers_mut();
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            out.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                header::HeaderValue::from_static("GET, POST, PUT, DELETE"),
            );
            out.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                header::HeaderValue::from_static("authorization, content-type, last-event-id"),
            );
            out.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                header::HeaderValue::from_static("600"),
            );
            out.insert(header::VARY, header::HeaderValue::from_static("origin"));
        }
        Some(response)
    }

    /// Adds the CORS headers to an answer for a request from `origin`, if it is allowed.
    pub fn decorate(&self, origin: Option<&header::HeaderValue>, response: &mut Response<Body>) {
        let Some(origin) = self.allowed_origin(origin) else {
            return;
        };
        let out = response.headers_mut();
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            header::HeaderValue::from_static(
                "x-generation-id, x-context-omitted, retry-after, www-authenticate, \
                 ratelimit-limit, ratelimit-remaining, ratelimit-reset",
            ),
        );
        out.append(header::VARY, header::HeaderValue::from_static("origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_origin(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, origin.parse().unwrap());
        headers
    }

    #[test]
    fn only_listed_origins_are_allowed() {
        let policy = CorsPolicy::parse("https://app.example.com, http://localhost:5173/");
        assert!(policy
            .allowed(&with_origin("https://app.example.com"))
            .is_some());
        assert!(policy
            .allowed(&with_origin("http://localhost:5173"))
            .is_some());
        assert!(policy
            .allowed(&with_origin("https://evil.example.com"))
            .is_none());
        assert!(CorsPolicy::parse("")
            .allowed(&with_origin("https://app.example.com"))
            .is_none());
        assert!(CorsPolicy::parse("*")
            .allowed(&with_origin("https://any.example"))
            .is_some());
    }
}
