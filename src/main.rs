//! The `omnichat` binary: `serve` (the default) runs the server, `migrate` applies migrations,
//! `mock-upstream` and `loadtest` are the load-testing tools, `openapi` prints the API's
//! OpenAPI document.

use std::process::ExitCode;

use clap::Parser;
use omnichat::config::{Cli, Command, LogFormat};
use omnichat_actors::store::Store;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let result = match cli.command {
        None => serve(&cli.serve).await,
        Some(Command::Serve(args)) => serve(&args).await,
        Some(Command::Migrate(args)) => migrate(&args).await,
        Some(Command::MockUpstream(args)) => mock_upstream(&args).await,
        Some(Command::Loadtest(args)) => omnichat::loadtest::run_cli(&args).await,
        Some(Command::Openapi(args)) => write_openapi(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("omnichat: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines to stdout, filtered by `RUST_LOG` (default `info`), as text or JSON.
fn init_logging(cli: &Cli) {
    let format = match &cli.command {
        None => cli.serve.log_format,
        Some(Command::Serve(args) | Command::Migrate(args)) => args.log_format,
        Some(Command::MockUpstream(_) | Command::Loadtest(_) | Command::Openapi(_)) => {
            LogFormat::Text
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        // One object per line; the request's span (with its `request_id`) comes with each.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

async fn serve(args: &omnichat::config::ServeArgs) -> Result<(), String> {
    // Listen for signals before the server answers anything: a supervisor that sends SIGTERM
    // as soon as the health check passes must get a clean shutdown, not the default death.
    let shutdown =
        ShutdownSignal::install().map_err(|err| format!("installing signal handlers: {err}"))?;
    let server = omnichat::start(args.server_config(), |bound| args.core_config(bound))
        .await
        .map_err(|err| err.to_string())?;
    shutdown.received().await;
    tracing::info!("signal received; shutting down");
    server.shutdown().await;
    Ok(())
}

/// `omnichat openapi`: the document `GET /openapi.json` serves, to stdout or `--output`.
fn write_openapi(args: &omnichat::config::OpenapiArgs) -> Result<(), String> {
    let mut json = omnichat::openapi::document_json().to_owned();
    json.push('\n');
    match &args.output {
        Some(path) => {
            std::fs::write(path, json).map_err(|err| format!("writing {}: {err}", path.display()))
        }
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(json.as_bytes())
                .map_err(|err| format!("writing to standard output: {err}"))
        }
    }
}

async fn mock_upstream(
    args: &omnichat::mock_upstream::cli::MockUpstreamArgs,
) -> Result<(), String> {
    let shutdown =
        ShutdownSignal::install().map_err(|err| format!("installing signal handlers: {err}"))?;
    omnichat::mock_upstream::cli::run(args, shutdown.received()).await
}

async fn migrate(args: &omnichat::config::ServeArgs) -> Result<(), String> {
    let timeout = std::time::Duration::from_millis(args.db_timeout_ms.max(1));
    let store = Store::connect(&args.database_url, 1, timeout)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    tracing::info!("migrations applied");
    store.close().await.map_err(|e| e.to_string())
}

/// SIGINT and SIGTERM, registered from the moment it is installed.
struct ShutdownSignal {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(ShutdownSignal {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(ShutdownSignal {})
        }
    }

    /// Resolves on the first SIGINT or SIGTERM.
    async fn received(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
