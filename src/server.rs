//! The accept loop: one hyper HTTP/1.1 connection task per client, a header-read timeout, a cap
//! on open connections, and a graceful shutdown that lets in-flight answers finish.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use omnichat_actors::{Core, StartError};
use tokio::{
    net::TcpListener,
    sync::{watch, Semaphore},
    task::JoinHandle,
};

use crate::{
    app::App,
    config::ServerConfig,
    http::{body::Body, request::ClientAddr},
    router,
};

/// How long open connections get to send their last bytes once every answer has ended.
const CONNECTION_FLUSH: Duration = Duration::from_secs(5);

/// A server that is accepting connections.
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, waits up to the grace period for open requests, then stops the core.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Core(#[from] StartError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Starts the core and the accept loop on `config.addr` (port 0 picks a free port); `core`
/// makes the core's settings once the address is known.
pub async fn start(
    config: ServerConfig,
    core: impl FnOnce(SocketAddr) -> omnichat_actors::CoreConfig,
) -> Result<RunningServer, ServeError> {
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.addr,
        source,
    })?;
    let core = Arc::new(Core::start(core(addr)).await?);
    let app = Arc::new(App { core, config });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, app, shutdown_rx));
    tracing::info!(%addr, "omnichat listening");
    Ok(RunningServer {
        addr,
        shutdown,
        task,
    })
}

async fn accept_loop(listener: TcpListener, app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(app.config.max_connections));
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let header_read_timeout = app.config.header_read_timeout;
        let app = app.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ClientAddr(peer));
            handle(app.clone(), req)
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, %err, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    drain(&app, graceful).await;
    app.core.shutdown().await;
    tracing::info!("stopped");
}

/// Lets running answers finish within the grace period, stops (and stores) what is left, then
/// waits briefly for the connections to flush their last bytes.
async fn drain(app: &App, graceful: GracefulShutdown) {
    let grace = app.config.shutdown_grace;
    tracing::info!(
        ?grace,
        live = app.core.live_generations(),
        "shutting down: no new connections"
    );
    let deadline = tokio::time::Instant::now() + grace;
    while app.core.live_generations() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if app.core.live_generations() > 0 {
        tracing::warn!(
            live = app.core.live_generations(),
            "grace period over; stopping the answers still running"
        );
        if let Err(err) = app.core.stop_all_generations().await {
            tracing::error!(%err, "stopping generations");
        }
    }
    if tokio::time::timeout(CONNECTION_FLUSH, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("closing connections that did not finish in time");
    }
}

async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    if let Some(preflight) = app.config.cors.preflight(&method, req.headers()) {
        return Ok(preflight);
    }
    let origin = req.headers().get(hyper::header::ORIGIN).cloned();
    let mut response = match router::route(&app, req).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    app.config.cors.decorate(origin.as_ref(), &mut response);
    tracing::debug!(%method, %path, status = response.status().as_u16(), "request");
    Ok(response)
}
