//! `GET /healthz`: liveness (the process answers). `GET /readyz`: readiness (send me traffic):
//! 200 only while the database answers and the server is not draining.

use std::time::{Duration, Instant};

use hyper::{Response, StatusCode};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::{
    app::App,
    http::{
        body::Body,
        error::{ErrorBody, HttpError},
        response::{json, json_with_status},
    },
};

/// The answer of a live server, and of a ready one.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` from `/healthz`, `ready` from `/readyz`.
    #[schema(value_type = String, example = "ok")]
    pub status: &'static str,
}

/// `GET /readyz`'s 503: the error body, and `status: unavailable`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NotReady {
    #[serde(flatten)]
    pub error: ErrorBody,
    /// Always `unavailable`.
    #[schema(value_type = String, example = "unavailable")]
    pub status: &'static str,
}

/// How long a database check stands for: a storm of probes costs one query per interval.
const CHECK_FRESH_FOR: Duration = Duration::from_secs(1);
/// The longest a readiness check waits for the database (less if the configured bound is less).
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// The last database check. Behind an async lock, so probes that arrive while a check runs
/// wait for its answer instead of starting more.
#[derive(Default)]
pub struct Readiness {
    last: Mutex<Option<(Instant, bool)>>,
}

impl Readiness {
    async fn database_ok(&self, app: &App) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ok)) = *last {
            if at.elapsed() < CHECK_FRESH_FOR {
                return ok;
            }
        }
        let timeout = CHECK_TIMEOUT.min(app.config.db_timeout);
        let ok = app.core.database_answers(timeout).await;
        *last = Some((Instant::now(), ok));
        ok
    }
}

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    summary = "Liveness: the process answers",
    responses((status = 200, description = "Alive", body = Health))
)]
pub async fn healthz(_app: &App) -> Result<Response<Body>, HttpError> {
    Ok(json(&Health { status: "ok" }))
}

#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    summary = "Readiness: send traffic here (the database answers, the server is not draining)",
    responses(
        (status = 200, description = "Ready (`status: ready`)", body = Health),
        (status = 503, description = "Not ready: the database does not answer, or the server is \
                                      shutting down", body = NotReady),
    )
)]
pub async fn readyz(app: &App) -> Result<Response<Body>, HttpError> {
    let unavailable = |reason: &str| {
        json_with_status(
            StatusCode::SERVICE_UNAVAILABLE,
            &NotReady {
                error: ErrorBody {
                    detail: reason.to_owned(),
                },
                status: "unavailable",
            },
        )
    };
    if app.is_draining() {
        return Ok(unavailable("The server is shutting down"));
    }
    if !app.readiness.database_ok(app).await {
        return Ok(unavailable("The database does not answer"));
    }
    // Checked again: a drain may have begun while the database was asked.
    if app.is_draining() {
        return Ok(unavailable("The server is shutting down"));
    }
    Ok(json(&Health { status: "ready" }))
}
