//! App: what every handler shares — the actor core, the front end's settings, and whether the
//! server is draining.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use hyper::HeaderMap;
use omnichat_actors::Core;
use uuid::Uuid;

use crate::{
    config::ServerConfig,
    handlers::health::Readiness,
    http::{error::HttpError, request::bearer_token},
};

pub struct App {
    pub core: Arc<Core>,
    pub config: ServerConfig,
    /// Set from the moment a shutdown begins: `/readyz` turns 503 and no new answer starts.
    pub draining: AtomicBool,
    pub readiness: Readiness,
}

impl App {
    pub fn new(core: Arc<Core>, config: ServerConfig) -> App {
        App {
            core,
            config,
            draining: AtomicBool::new(false),
            readiness: Readiness::default(),
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// The user behind the request's bearer token, or 401 (also for a revoked token). No actor;
    /// the database only the first time this node sees the user.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Uuid, HttpError> {
        let token = bearer_token(headers)?;
        Ok(self.core.verify_token(token).await?)
    }
}
