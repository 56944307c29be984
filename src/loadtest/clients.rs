//! The clients: each runs closed-loop turns (the next prompt once the answer is in), or keeps one
//! stream open until the hold ends; a ticker prints progress meanwhile.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::json;

use super::{
    report::{self, Sample},
    setup::{self, ClientStart},
    turn::{run_turn, Dialect, ErrorKind, Gauges, TurnOutcome},
    Plan, Target, Work,
};

/// Samples kept in all; past it turns are still counted, not timed.
const MAX_SAMPLES: usize = 2_000_000;
/// Pause after a failure before a client tries again, so a broken server is not hammered.
const BACKOFF: Duration = Duration::from_millis(100);

/// State every client shares.
pub(super) struct Run {
    http: reqwest::Client,
    plan: Plan,
    pub(super) gauges: Gauges,
    /// Turns handed out (for `--turns`).
    tickets: AtomicU64,
    pub(super) ok: AtomicU64,
    pub(super) failed: AtomicU64,
}

/// What one client saw.
#[derive(Default)]
pub(super) struct ClientReport {
    pub samples: Vec<Sample>,
    pub errors: HashMap<String, u64>,
    /// Streams that ran to `[DONE]` during a hold.
    pub completed: u64,
}

/// What all clients saw, and for how long.
pub(super) struct Outcome {
    pub clients: Vec<ClientReport>,
    pub elapsed: Duration,
    pub hold: Option<report::HoldMeasure>,
    pub events: u64,
}

impl Run {
    pub(super) fn new(http: reqwest::Client, plan: Plan) -> Run {
        Run {
            http,
            plan,
            gauges: Gauges::default(),
            tickets: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// Whether another turn may start.
    fn take_ticket(&self, deadline: Instant) -> bool {
        match self.plan.work {
            Work::Turns(turns) => self.tickets.fetch_add(1, Ordering::Relaxed) < turns,
            Work::For(_) | Work::Hold { .. } => Instant::now() < deadline,
        }
    }

    /// The request of one turn.
    fn request(&self, start: &ClientStart, session: Option<&str>) -> reqwest::RequestBuilder {
        let plan = &self.plan;
        let timeout = match plan.work {
            Work::Hold { secs, .. } => plan.timeout + Duration::from_secs(secs),
            _ => plan.timeout,
        };
        match &plan.target {
            Target::OmniChat { base, provider, .. } => {
                let mut body = json!({
                    "session_id": session.unwrap_or_default(),
                    "prompt": plan.prompt,
                    "provider": provider,
                });
                if let Some(model) = &plan.model {
                    body["model"] = json!(model);
                }
                self.http
                    .post(format!("{base}/chat/stream"))
                    .bearer_auth(start.token.as_deref().unwrap_or_default())
                    .json(&body)
                    .timeout(timeout)
            }
            Target::Direct { base } => self
                .http
                .post(format!("{base}/chat/completions"))
                .bearer_auth("x")
                .json(&json!({
                    "model": plan.model.as_deref().unwrap_or("mock"),
                    "messages": [{"role": "user", "content": plan.prompt}],
                    "stream": true,
                    "stream_options": {"include_usage": true},
                }))
                .timeout(timeout),
        }
    }
}

/// Runs every client to the end of the plan.
pub(super) async fn drive(run: Arc<Run>, starts: Vec<ClientStart>) -> Outcome {
    let started = Instant::now();
    let (deadline, stop_at) = match run.plan.work {
        Work::Turns(_) => (started, None),
        Work::For(duration) => (started + duration, None),
        Work::Hold { secs, .. } => {
            let end = started + Duration::from_secs(secs);
            (end, Some(end))
        }
    };
    let per_client = (MAX_SAMPLES / starts.len().max(1)).max(1);
    let ticker = run
        .plan
        .progress
        .then(|| tokio::spawn(report::progress(run.clone(), started)));
    let sampler = match (run.plan.work, run.plan.watch_pid) {
        (Work::Hold { secs, .. }, Some(pid)) => Some(tokio::spawn(report::measure_hold(
            run.clone(),
            pid,
            started + Duration::from_secs(secs) / 2,
        ))),
        _ => None,
    };
    let tasks: Vec<_> = starts
        .into_iter()
        .map(|start| {
            let run = run.clone();
            tokio::spawn(async move { client(&run, start, deadline, stop_at, per_client).await })
        })
        .collect();
    let mut clients = Vec::with_capacity(tasks.len());
    for task in tasks {
        clients.push(task.await.unwrap_or_default());
    }
    let elapsed = started.elapsed();
    if let Some(ticker) = ticker {
        // Wait for it to be gone, so no progress line lands inside the summary.
        ticker.abort();
        let _ = ticker.await;
    }
    let hold = match sampler {
        Some(sampler) => sampler.await.ok().flatten(),
        None => None,
    };
    Outcome {
        clients,
        elapsed,
        hold,
        events: run.gauges.events.load(Ordering::Relaxed),
    }
}

/// One client: turns until the plan says stop.
async fn client(
    run: &Run,
    start: ClientStart,
    deadline: Instant,
    stop_at: Option<Instant>,
    max_samples: usize,
) -> ClientReport {
    let mut report = ClientReport::default();
    let (dialect, per_session) = match &run.plan.target {
        Target::OmniChat {
            turns_per_session, ..
        } => (Dialect::OmniChat, *turns_per_session),
        Target::Direct { .. } => (Dialect::OpenAi, None),
    };
    let mut session = start.session.clone();
    let mut turn_in_session: u64 = 0;
    while run.take_ticket(deadline) {
        if let (Target::OmniChat { base, .. }, true) = (
            &run.plan.target,
            session.is_none() || per_session.is_some_and(|n| turn_in_session >= n),
        ) {
            let token = start.token.as_deref().unwrap_or_default();
            match setup::session(&run.http, base, token, run.plan.timeout).await {
                Ok(id) => {
                    session = Some(id);
                    turn_in_session = 0;
                }
                Err(kind) => {
                    fail(run, &mut report, kind).await;
                    continue;
                }
            }
        }
        turn_in_session += 1;
        let request = run.request(&start, session.as_deref());
        match run_turn(request, dialect, stop_at, &run.gauges).await {
            TurnOutcome::Done { first_token, total } => {
                run.ok.fetch_add(1, Ordering::Relaxed);
                report.completed += 1;
                if report.samples.len() < max_samples {
                    report.samples.push(Sample {
                        first_token,
                        total,
                        turn_in_session,
                    });
                }
            }
            TurnOutcome::Failed(kind) => {
                // The session may be stuck on the failed answer: the next turn gets a fresh one.
                session = None;
                fail(run, &mut report, kind).await;
            }
            TurnOutcome::Held => break,
        }
    }
    report
}

async fn fail(run: &Run, report: &mut ClientReport, kind: ErrorKind) {
    run.failed.fetch_add(1, Ordering::Relaxed);
    *report.errors.entry(kind.label()).or_default() += 1;
    tokio::time::sleep(BACKOFF).await;
}
