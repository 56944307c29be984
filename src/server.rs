//! The accept loop: one hyper HTTP/1.1 connection task per client, a header-read timeout, a cap
//! on open connections, and a graceful shutdown that lets in-flight answers finish. Every request
//! runs in a span carrying its request id, and is counted in the metrics by route template.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use hyper::{body::Incoming, server::conn::http1, service::service_fn, Method, Request, Response};
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

use tracing::Instrument;

use crate::{
    app::App,
    config::ServerConfig,
    handlers::metrics,
    http::{body::Body, error::HttpError, request::ClientAddr, request_id},
    router,
};

/// How long open connections get to send their last bytes once every answer has ended.
const CONNECTION_FLUSH: Duration = Duration::from_secs(5);

/// A server that is accepting connections.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when it has an address of its own.
    pub metrics_addr: Option<SocketAddr>,
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

/// Starts the core and the accept loop on `config.addr` (port 0 picks a free port), and the
/// metrics listener on `config.metrics_addr` if set; `core` makes the core's settings once the
/// address is known.
pub async fn start(
    config: ServerConfig,
    core: impl FnOnce(SocketAddr) -> omnichat_actors::CoreConfig,
) -> Result<RunningServer, ServeError> {
    let (listener, addr) = bind(config.addr).await?;
    let metrics_listener = match config.metrics_addr {
        Some(metrics_addr) => Some(bind(metrics_addr).await?),
        None => None,
    };
    let core = Arc::new(Core::start(core(addr)).await?);
    let app = Arc::new(App::new(core, config));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let metrics_addr = metrics_listener.map(|(listener, metrics_addr)| {
        tokio::spawn(serve_metrics(listener, app.clone(), shutdown_rx.clone()));
        tracing::info!(%metrics_addr, "metrics served on their own address");
        metrics_addr
    });
    let task = tokio::spawn(accept_loop(listener, app, shutdown_rx));
    tracing::info!(%addr, "omnichat listening");
    Ok(RunningServer {
        addr,
        metrics_addr,
        shutdown,
        task,
    })
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    let bind_error = |source| ServeError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

/// Accepts connections until shutdown; then, while running answers drain, goes on accepting
/// (so `/readyz` can say 503 to the load balancer and in-flight clients are not refused), and
/// stops once the answers are over.
async fn accept_loop(listener: TcpListener, app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(app.config.max_connections));
    tokio::select! {
        _ = accept_all(&listener, &app, &slots, &graceful) => {}
        _ = shutdown.changed() => {}
    }
    app.draining.store(true, Ordering::Release);
    tracing::info!(
        grace = ?app.config.shutdown_grace,
        live = app.core.live_generations(),
        "shutting down: draining running answers"
    );
    tokio::select! {
        _ = accept_all(&listener, &app, &slots, &graceful) => {}
        _ = wait_for_answers(&app) => {}
    }
    drop(listener);
    if tokio::time::timeout(CONNECTION_FLUSH, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("closing connections that did not finish in time");
    }
    app.core.shutdown().await;
    tracing::info!("stopped");
}

/// Serves every connection `listener` accepts, within the connection cap; never returns.
async fn accept_all(
    listener: &TcpListener,
    app: &Arc<App>,
    slots: &Arc<Semaphore>,
    graceful: &GracefulShutdown,
) {
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return std::future::pending().await;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
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
}

/// Lets running answers finish within the grace period, then stops (and stores) what is left.
async fn wait_for_answers(app: &App) {
    let deadline = tokio::time::Instant::now() + app.config.shutdown_grace;
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
}

/// The metrics listener: `GET /metrics` and nothing else, until shutdown.
async fn serve_metrics(listener: TcpListener, app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let app = app.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let response = match (req.method(), router::template(req.uri().path())) {
                (&Method::GET, "/metrics") => metrics::render(&app.core),
                (_, "/metrics") => HttpError::method_not_allowed("GET").into_response(),
                _ => HttpError::not_found("Not Found").into_response(),
            };
            std::future::ready(Ok::<_, Infallible>(response))
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), service);
        tokio::spawn(connection);
    }
}

async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let request_id = request_id::of(req.headers());
    let method = method_label(req.method());
    let route = router::template(req.uri().path());
    let span = tracing::info_span!(
        "request",
        request_id = request_id::as_str(&request_id),
        method,
        route
    );
    // Boxed: hyper keeps one allocation the size of this future for the connection's life,
    // and the largest handler's state would make that ~4 KiB on every held stream.
    let mut response = Box::pin(respond(&app, req)).instrument(span).await;
    response
        .headers_mut()
        .insert(request_id::HEADER, request_id);
    app.core
        .metrics()
        .record_request(method, route, response.status().as_u16(), started.elapsed());
    Ok(response)
}

async fn respond(app: &App, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    if let Some(preflight) = app.config.cors.preflight(&method, req.headers()) {
        return preflight;
    }
    let origin = req.headers().get(hyper::header::ORIGIN).cloned();
    let mut response = match router::route(app, req).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    app.config.cors.decorate(origin.as_ref(), &mut response);
    tracing::debug!(%method, %path, status = response.status().as_u16(), "request");
    response
}

/// The method as a metrics label: the standard ones by name, anything else `other`, so a client
/// cannot mint label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
