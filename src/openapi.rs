//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! attributes and the request and answer types themselves, so it cannot drift from the code.
//! Served at `GET /openapi.json` and printed by `omnichat openapi`.

use std::sync::OnceLock;

use utoipa::{
    openapi::{
        header::HeaderBuilder,
        path::Operation,
        response::ResponseBuilder,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
        Content, Object, OpenApi as Document, PathItem, Ref, RefOr, Type,
    },
    Modify, OpenApi,
};

use crate::{
    handlers::{
        chat, export, health, metrics, openapi as openapi_handler, providers, sessions, token,
        users, web,
    },
    http::{error::ErrorBody, sse},
};

/// The document's skeleton: one entry per handler in `paths(...)`, in the order of
/// `router::ROUTES` (a test checks that both name the same operations).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "OmniChat",
        description = "A multi-provider LLM chat backend: accounts, chat sessions with their \
history, and answers streamed as Server-Sent Events.

Conventions that hold for every operation:

* Errors are JSON `{\"detail\": \"…\"}` (schema `ErrorBody`) with the status that fits. \
Every status an operation can answer is listed with it; a path asked with a method it does not \
take is 405 with `Allow`, and a path that does not exist is 404.
* 404 means not found *or not yours*: another user's session or answer is never revealed.
* Paths work with and without a trailing slash; the ones below are canonical.
* Protected operations take `Authorization: Bearer <token>` from `POST /token`. 401 (with \
`WWW-Authenticate: Bearer`) also answers a token revoked by a logout, a password change or an \
account deletion (`Token has been revoked`).
* JSON bodies must be objects with exactly the fields documented: an unknown field is 422, \
named in the detail. Malformed JSON is 400, another content type 415, a body past the server's \
limit 413.
* 429 and 503 carry `Retry-After`. A 5xx is never the answer to bad input.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        web::index,
        web::asset,
        health::healthz,
        health::readyz,
        metrics::serve,
        openapi_handler::document,
        token::login,
        token::logout,
        token::logout_all,
        users::sign_up,
        users::me,
        users::update_me,
        users::delete_me,
        users::change_password,
        users::usage,
        sessions::list,
        sessions::create,
        sessions::get,
        sessions::rename,
        sessions::delete,
        export::export,
        chat::stream,
        chat::resume,
        chat::stop,
        providers::list,
    ),
    components(schemas(ErrorBody, sse::StreamDelta, sse::StreamError)),
    modifiers(&BearerScheme, &CommonErrors, &AssetNames),
    tags(
        (name = "auth", description = "Tokens: log in, log out"),
        (name = "users", description = "Accounts"),
        (name = "sessions", description = "Chat sessions and their history"),
        (name = "chat", description = "Answers, streamed as Server-Sent Events"),
        (name = "operations", description = "For supervisors, load balancers and tooling"),
        (name = "web", description = "The built-in chat page"),
    )
)]
pub struct ApiDoc;

/// The document as pretty-printed JSON, built once.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        // Serialising the document's own types cannot fail; an empty object is the fallback.
        let mut json = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        spell_links_as_openapi_does(&mut json);
        describe_event_streams(&mut json);
        describe_chat_body_shapes(&mut json);
        serde_json::to_string_pretty(&json).unwrap_or_else(|_| "{}".into())
    })
}

/// A chat body is one of two shapes, which utoipa cannot state: a prompt (new, or replacing the
/// last one with `edit_message_id`), or `regenerate: true` with no `edit_message_id` (its
/// `prompt` optional). Stated as `anyOf`, so a tool that generates bodies from the document
/// makes only bodies the server takes.
fn describe_chat_body_shapes(json: &mut serde_json::Value) {
    if let Some(body) = json.pointer_mut("/components/schemas/ChatBody") {
        body["anyOf"] = serde_json::json!([
            {
                "required": ["prompt"],
                "properties": {
                    "prompt": { "type": "string" },
                    "regenerate": { "enum": [false, null] }
                }
            },
            {
                "required": ["regenerate"],
                "properties": { "regenerate": { "const": true } },
                "not": { "required": ["edit_message_id"] }
            }
        ]);
    }
}

/// Every `text/event-stream` answer gets the schema of one event (`sse::event_schema`), as a
/// component: utoipa has no way to say "each event" of a stream, nor `contentSchema`.
fn describe_event_streams(json: &mut serde_json::Value) {
    let reference = serde_json::json!({ "$ref": "#/components/schemas/StreamEvent" });
    if let Some(paths) = json.get_mut("paths").and_then(|p| p.as_object_mut()) {
        let streams = paths
            .values_mut()
            .filter_map(|item| item.as_object_mut())
            .flat_map(|item| item.values_mut())
            .filter_map(|operation| operation.get_mut("responses")?.as_object_mut())
            .flat_map(|responses| responses.values_mut())
            .filter_map(|response| response.get_mut("content")?.get_mut("text/event-stream"));
        for stream in streams {
            stream["schema"] = reference.clone();
        }
    }
    if let Some(schemas) = json.pointer_mut("/components/schemas") {
        schemas["StreamEvent"] = sse::event_schema();
    }
}

/// utoipa 5 writes a Link Object's fields in snake case (`operation_id`, `request_body`); the
/// OpenAPI spelling, which tools read, is camel case. Renamed here, in every response's links.
fn spell_links_as_openapi_does(json: &mut serde_json::Value) {
    let Some(paths) = json.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let links = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links")?.as_object_mut())
        .flat_map(|links| links.values_mut())
        .filter_map(|link| link.as_object_mut());
    for link in links {
        for (snake, camel) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(value) = link.remove(snake) {
                link.insert(camel.to_owned(), value);
            }
        }
    }
}

/// The `bearer` security scheme the protected operations name: a JWT from `POST /token`.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The `access_token` of `POST /token` (HS256, expires after `expires_in` \
                         seconds)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds the errors that follow from what an operation takes, where its own attribute does not
/// already say more: 401 to every protected one, the body errors to every one with a body, and
/// 503/500 to every one that reaches the actor core or the database. One rule here rather than
/// the same lines on every handler, so a new route gets them too.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut Document) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                let protected = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_body = operation.request_body.is_some();
                let has_query = operation.parameters.iter().flatten().any(|parameter| {
                    matches!(
                        parameter.parameter_in,
                        utoipa::openapi::path::ParameterIn::Query
                    )
                });
                if has_query && !has_body {
                    add_error(
                        operation,
                        400,
                        "The query string is malformed (a parameter given twice, say)",
                        None,
                    );
                }
                if protected {
                    add_error(
                        operation,
                        401,
                        "No token, or a token that is malformed, expired or revoked",
                        Some(("WWW-Authenticate", "`Bearer`", Type::String)),
                    );
                }
                if has_body {
                    add_error(
                        operation,
                        400,
                        "The body is malformed (not JSON, or not a form)",
                        None,
                    );
                    add_error(operation, 408, "The body took too long to arrive", None);
                    add_error(
                        operation,
                        413,
                        "The body is larger than the server takes",
                        None,
                    );
                    add_error(
                        operation,
                        415,
                        "The body is not of the content type documented",
                        None,
                    );
                    add_error(
                        operation,
                        422,
                        "A field is missing, unknown, of the wrong type or invalid (named in the \
                         detail), or the JSON body is not an object",
                        None,
                    );
                }
                if protected || has_body {
                    add_error(
                        operation,
                        503,
                        "Overloaded, or the database is busy or away: try again after \
                         `Retry-After` seconds",
                        Some(("Retry-After", "Seconds to wait", Type::Integer)),
                    );
                    add_error(
                        operation,
                        500,
                        "The database failed in a way other than a time-out (never an answer \
                         to bad input)",
                        None,
                    );
                }
            }
        }
    }
}

/// Sets the file names `GET /assets/{name}` serves as its parameter's allowed values.
struct AssetNames;

impl Modify for AssetNames {
    fn modify(&self, openapi: &mut Document) {
        let Some(item) = openapi.paths.paths.get_mut("/assets/{name}") else {
            return;
        };
        let parameters = operations(item)
            .filter_map(|operation| operation.parameters.as_mut())
            .flatten();
        for parameter in parameters.filter(|parameter| parameter.name == "name") {
            let mut schema = Object::with_type(Type::String);
            schema.enum_values = Some(web::asset_names().map(Into::into).collect());
            parameter.schema = Some(RefOr::T(schema.into()));
        }
    }
}

/// Every operation of a path item.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Adds an `ErrorBody` answer with `status` to `operation`, unless it has one already.
fn add_error(
    operation: &mut Operation,
    status: u16,
    description: &str,
    header: Option<(&str, &str, Type)>,
) {
    let responses = &mut operation.responses.responses;
    let key = status.to_string();
    if responses.contains_key(&key) {
        return;
    }
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody")))),
    );
    if let Some((name, header_description, kind)) = header {
        response = response.header(
            name,
            HeaderBuilder::new()
                .schema(Object::with_type(kind))
                .description(Some(header_description))
                .build(),
        );
    }
    responses.insert(key, RefOr::T(response.build()));
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::router::ROUTES;

    /// (method, path) of every operation in the document.
    fn documented() -> BTreeSet<(String, String)> {
        let json: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        let mut operations = BTreeSet::new();
        for (path, item) in json["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if method != "parameters" {
                    operations.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        operations
    }

    #[test]
    fn the_document_names_exactly_the_routes_the_router_serves() {
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(method, path)| (method.as_str().to_owned(), (*path).to_owned()))
            .collect();
        assert_eq!(routed.len(), ROUTES.len(), "a route is listed twice");
        let documented = documented();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "routes without a documented operation: {undocumented:?}; documented operations \
             the router does not serve: {unrouted:?}"
        );
    }

    #[test]
    fn links_are_spelt_as_openapi_spells_them_and_name_real_operations() {
        let json: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        let mut operation_ids = BTreeSet::new();
        let mut targets = Vec::new();
        for item in json["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                operation_ids.insert(operation["operationId"].as_str().unwrap().to_owned());
                for response in operation["responses"].as_object().unwrap().values() {
                    for link in response["links"]
                        .as_object()
                        .into_iter()
                        .flat_map(|l| l.values())
                    {
                        assert!(
                            link.get("operation_id").is_none()
                                && link.get("request_body").is_none()
                        );
                        targets.push(link["operationId"].as_str().unwrap().to_owned());
                    }
                }
            }
        }
        assert!(targets.len() >= 6, "{targets:?}");
        for target in targets {
            assert!(operation_ids.contains(&target), "a link names {target}");
        }
        let chat = &json["paths"]["/sessions"]["post"]["responses"]["200"]["links"]["chat"];
        assert_eq!(chat["requestBody"]["session_id"], "$response.body#/id");
    }

    #[test]
    fn both_streams_are_described_event_by_event() {
        let json: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        for (path, method) in [
            ("/chat/stream", "post"),
            ("/chat/stream/{generation_id}", "get"),
        ] {
            let content = &json["paths"][path][method]["responses"]["200"]["content"];
            assert_eq!(
                content["text/event-stream"]["schema"]["$ref"], "#/components/schemas/StreamEvent",
                "{method} {path}"
            );
        }
        let event = &json["components"]["schemas"]["StreamEvent"];
        assert_eq!(event["anyOf"].as_array().unwrap().len(), 3);
        for schema in ["StreamDelta", "StreamError", "StreamErrorDetail"] {
            assert!(
                json["components"]["schemas"][schema].is_object(),
                "{schema}"
            );
        }
    }

    #[test]
    fn every_error_answer_is_the_detail_body_and_every_protected_operation_names_bearer() {
        let json: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        assert_eq!(json["openapi"], "3.1.0");
        assert_eq!(
            json["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let protected = operation["security"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty());
                let responses = operation["responses"].as_object().unwrap();
                if protected {
                    assert_eq!(operation["security"][0]["bearer"], serde_json::json!([]));
                    assert!(responses.contains_key("401"), "{method} {path} lacks 401");
                }
                for (status, response) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        // `ErrorBody`, or a schema made of it and more (readyz's `NotReady`).
                        let schema = &response["content"]["application/json"]["schema"]["$ref"];
                        let name = schema.as_str().and_then(|s| s.rsplit('/').next());
                        let error_body = serde_json::json!("#/components/schemas/ErrorBody");
                        let is_error_body = *schema == error_body
                            || name.is_some_and(|name| {
                                json["components"]["schemas"][name]["allOf"][0]["$ref"]
                                    == error_body
                            });
                        assert!(is_error_body, "{method} {path} {status}: {schema}");
                    }
                }
            }
        }
    }
}
