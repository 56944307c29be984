//! App: what every handler shares — the actor core and the front end's settings.

use std::sync::Arc;

use hyper::HeaderMap;
use omnichat_actors::Core;
use uuid::Uuid;

use crate::{
    config::ServerConfig,
    http::{error::HttpError, request::bearer_token},
};

pub struct App {
    pub core: Arc<Core>,
    pub config: ServerConfig,
}

impl App {
    /// The user behind the request's bearer token, or 401 (also for a revoked token). No actor;
    /// the database only the first time this node sees the user.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Uuid, HttpError> {
        let token = bearer_token(headers)?;
        Ok(self.core.verify_token(token).await?)
    }
}
