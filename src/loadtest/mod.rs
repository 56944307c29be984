//! `omnichat loadtest`: closed-loop chat turns (or long-held streams) against an OmniChat
//! deployment, or the same OpenAI-wire requests straight at an upstream, measuring throughput,
//! time to first token and total time, with errors sorted by kind.

use std::{sync::Arc, time::Duration};

use clap::Args;
use reqwest::Url;
use thiserror::Error;

mod clients;
mod report;
mod setup;
mod turn;

pub use report::{HoldMeasure, HoldReport, Percentiles, Summary};
pub use turn::ErrorKind;

/// Bounds on what one run may ask for, so a typo cannot exhaust the machine or the server.
const MAX_CONCURRENCY: usize = 10_000;
const MAX_USERS: usize = 10_000;
const MAX_HOLD_STREAMS: usize = 20_000;
const MAX_DURATION_SECS: u64 = 24 * 3600;
const MAX_TURNS: u64 = 100_000_000;
const MAX_TIMEOUT_SECS: u64 = 3600;
const MAX_PROMPT_BYTES: usize = 10_000;

#[derive(Debug, Clone, Args)]
pub struct LoadtestArgs {
    /// OmniChat's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Users to sign up; clients share them round-robin (default: one per client).
    #[arg(long)]
    pub users: Option<usize>,
    /// Clients running turns at once, each waiting for its answer before the next prompt.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Turns to run in all (default: run for --duration-secs, or 10 s).
    #[arg(long, conflicts_with = "duration_secs")]
    pub turns: Option<u64>,
    /// Seconds to run turns for.
    #[arg(long)]
    pub duration_secs: Option<u64>,
    /// Instead of turns: keep this many streams open (one client each) for --hold-secs.
    #[arg(long, conflicts_with_all = ["turns", "duration_secs", "concurrency"])]
    pub hold_streams: Option<usize>,
    /// Seconds to hold the streams open.
    #[arg(long, default_value_t = 30, requires = "hold_streams")]
    pub hold_secs: u64,
    /// Provider every prompt asks for.
    #[arg(long, default_value = "openai")]
    pub provider: String,
    /// Model every prompt asks for (default: the provider's; `mock` with --direct-upstream).
    #[arg(long)]
    pub model: Option<String>,
    /// Password of the users signed up.
    #[arg(long, default_value = "loadtest-password")]
    pub password: String,
    /// Write the summary as JSON to this file (`-`: stdout).
    #[arg(long)]
    pub json: Option<String>,
    /// Call this OpenAI-wire upstream (e.g. http://127.0.0.1:9100/v1) directly instead of OmniChat.
    #[arg(long)]
    pub direct_upstream: Option<String>,
    /// Turns a client runs in one session before it opens a new one (0: no limit).
    #[arg(long, default_value_t = 100)]
    pub turns_per_session: u64,
    /// Every turn of a client in one session (same as --turns-per-session 0).
    #[arg(long)]
    pub same_session: bool,
    /// Longest a turn may take, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
    /// Report this process's resident memory before and while streams are held (Linux).
    #[arg(long)]
    pub watch_pid: Option<u32>,
    /// The prompt of every turn.
    #[arg(long, default_value = "Tell me a short story about load testing")]
    pub prompt: String,
}

/// What the run talks to.
#[derive(Clone, Debug)]
pub enum Target {
    /// OmniChat: users, sessions, `POST /chat/stream`.
    OmniChat {
        base: String,
        users: usize,
        password: String,
        provider: String,
        turns_per_session: Option<u64>,
    },
    /// An OpenAI-wire upstream: `POST {base}/chat/completions`.
    Direct { base: String },
}

/// How long the run goes on.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    Turns(u64),
    For(Duration),
    Hold { streams: usize, secs: u64 },
}

/// A checked run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub target: Target,
    pub concurrency: usize,
    pub work: Work,
    pub timeout: Duration,
    pub model: Option<String>,
    pub prompt: String,
    pub watch_pid: Option<u32>,
    /// Print a progress line about once a second to stderr.
    pub progress: bool,
}

#[derive(Debug, Error)]
pub enum LoadtestError {
    #[error("{0}")]
    InvalidOption(String),
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("{what}: {detail}")]
    Setup { what: String, detail: String },
    #[error("reading the memory of process {pid}: {source}")]
    Watch {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
}

fn invalid(message: impl Into<String>) -> LoadtestError {
    LoadtestError::InvalidOption(message.into())
}

/// A base URL without its trailing slash, when it is http(s).
fn base_url(flag: &str, text: &str) -> Result<String, LoadtestError> {
    let url = Url::parse(text).map_err(|err| invalid(format!("{flag} {text:?}: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(format!(
            "{flag} must be an http(s) URL, not {text:?}"
        )));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

impl LoadtestArgs {
    /// The run these flags ask for, or what is wrong with them.
    pub fn plan(&self) -> Result<Plan, LoadtestError> {
        let (concurrency, work) = match self.hold_streams {
            Some(streams) => {
                if streams == 0 || streams > MAX_HOLD_STREAMS {
                    return Err(invalid(format!(
                        "--hold-streams is between 1 and {MAX_HOLD_STREAMS}"
                    )));
                }
                if self.hold_secs == 0 || self.hold_secs > MAX_DURATION_SECS {
                    return Err(invalid(format!(
                        "--hold-secs is between 1 and {MAX_DURATION_SECS}"
                    )));
                }
                let secs = self.hold_secs;
                (streams, Work::Hold { streams, secs })
            }
            None => {
                if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
                    return Err(invalid(format!(
                        "--concurrency is between 1 and {MAX_CONCURRENCY}"
                    )));
                }
                let work = match (self.turns, self.duration_secs) {
                    (Some(turns), _) if turns == 0 || turns > MAX_TURNS => {
                        return Err(invalid(format!("--turns is between 1 and {MAX_TURNS}")))
                    }
                    (Some(turns), _) => Work::Turns(turns),
                    (None, Some(secs)) if secs == 0 || secs > MAX_DURATION_SECS => {
                        return Err(invalid(format!(
                            "--duration-secs is between 1 and {MAX_DURATION_SECS}"
                        )))
                    }
                    (None, secs) => Work::For(Duration::from_secs(secs.unwrap_or(10))),
                };
                (self.concurrency, work)
            }
        };
        if self.timeout_secs == 0 || self.timeout_secs > MAX_TIMEOUT_SECS {
            return Err(invalid(format!(
                "--timeout-secs is between 1 and {MAX_TIMEOUT_SECS}"
            )));
        }
        if self.prompt.trim().is_empty() || self.prompt.len() > MAX_PROMPT_BYTES {
            return Err(invalid(format!(
                "--prompt needs some text, at most {MAX_PROMPT_BYTES} bytes"
            )));
        }
        let target = match &self.direct_upstream {
            Some(upstream) => Target::Direct {
                base: base_url("--direct-upstream", upstream)?,
            },
            None => {
                let users = self.users.unwrap_or(concurrency);
                if users == 0 || users > MAX_USERS {
                    return Err(invalid(format!("--users is between 1 and {MAX_USERS}")));
                }
                // Clients share users round-robin: a user beyond the clients would be signed up
                // (an scrypt hash on the server) and never used.
                if users > concurrency {
                    return Err(invalid(format!(
                        "--users ({users}) is more than the {concurrency} clients that would use them"
                    )));
                }
                if self.password.len() < 8 {
                    return Err(invalid("--password needs at least 8 bytes"));
                }
                let per_session = if self.same_session {
                    0
                } else {
                    self.turns_per_session
                };
                Target::OmniChat {
                    base: base_url("--url", &self.url)?,
                    users,
                    password: self.password.clone(),
                    provider: self.provider.clone(),
                    turns_per_session: (per_session > 0).then_some(per_session),
                }
            }
        };
        Ok(Plan {
            target,
            concurrency,
            work,
            timeout: Duration::from_secs(self.timeout_secs),
            model: self.model.clone().filter(|m| !m.is_empty()),
            prompt: self.prompt.clone(),
            watch_pid: self.watch_pid,
            progress: true,
        })
    }
}

/// Runs the plan: sets up users and sessions (OmniChat only), runs the clients, sums up.
pub async fn run(plan: &Plan) -> Result<Summary, LoadtestError> {
    if let Some(pid) = plan.watch_pid {
        report::rss_kb(pid).map_err(|source| LoadtestError::Watch { pid, source })?;
    }
    let http = reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(plan.concurrency)
        .build()?;
    let clients = setup::prepare(&http, plan).await?;
    let run = Arc::new(clients::Run::new(http, plan.clone()));
    let outcome = clients::drive(run.clone(), clients).await;
    Ok(report::summarize(plan, outcome))
}

/// `omnichat loadtest`: runs, prints the summary and writes the JSON one where asked.
pub async fn run_cli(args: &LoadtestArgs) -> Result<(), String> {
    let plan = args.plan().map_err(|err| err.to_string())?;
    let summary = run(&plan).await.map_err(|err| err.to_string())?;
    let json = serde_json::to_string_pretty(&summary).map_err(|err| err.to_string())?;
    match args.json.as_deref() {
        Some("-") => {
            // stdout is the JSON alone, so it can be piped.
            eprint!("{}", summary.text());
            println!("{json}");
        }
        Some(path) => {
            print!("{}", summary.text());
            std::fs::write(path, json + "\n").map_err(|err| format!("writing {path}: {err}"))?;
        }
        None => print!("{}", summary.text()),
    }
    Ok(())
}
