//! `GET /providers`: the providers this server can use, with their default models and whether
//! each can be reached now (a short, cached TCP probe), so a client offers only working choices.

use futures_util::future::join_all;
use hyper::{body::Incoming, Request, Response};
use omnichat_actors::providers::{ProviderInfo, ProviderKind};
use serde::Serialize;

use crate::{
    app::App,
    http::{body::Body, error::HttpError, response::json},
};

/// One entry of the list: the provider's info and whether it answers now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Listed {
    #[serde(flatten)]
    info: ProviderInfo,
    /// Always true for `echo`; for the others, whether a TCP connection to their host opened
    /// within 300 ms (nothing is sent), remembered for 30 s.
    reachable: bool,
}

#[utoipa::path(
    get,
    path = "/providers",
    operation_id = "list_providers",
    tag = "chat",
    summary = "The providers this server can use, their models, and whether each is reachable now",
    description = "A provider without its key is not listed.",
    security(("bearer" = [])),
    responses((status = 200, description = "The usable providers", body = Vec<Listed>))
)]
pub async fn list(app: &App, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    app.authenticate(req.headers()).await?;
    let providers = app.core.providers();
    // Probed side by side, so the list costs one probe timeout at worst, not one per provider.
    let listed = join_all(providers.available().into_iter().map(|info| async move {
        let reachable = match ProviderKind::parse(info.name) {
            Some(kind) => providers.reachable(kind).await,
            None => false,
        };
        Listed { info, reachable }
    }))
    .await;
    Ok(json(&listed))
}
