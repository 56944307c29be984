//! The `omnichat` binary: `serve` (the default) runs the server, `migrate` applies migrations.

use std::process::ExitCode;

use clap::Parser;
use omnichat::config::{Cli, Command};
use omnichat_actors::store::Store;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli.serve).await,
        Command::Migrate => migrate(&cli.serve.database_url).await,
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

async fn serve(args: &omnichat::config::ServeArgs) -> Result<(), String> {
    let server = omnichat::start(args.server_config(), |bound| args.core_config(bound))
        .await
        .map_err(|err| err.to_string())?;
    shutdown_signal().await;
    tracing::info!("signal received; shutting down");
    server.shutdown().await;
    Ok(())
}

async fn migrate(database_url: &str) -> Result<(), String> {
    let store = Store::connect(database_url, 1)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    tracing::info!("migrations applied");
    store.close().await.map_err(|e| e.to_string())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
