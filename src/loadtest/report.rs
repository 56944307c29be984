//! What a load test reports: the progress line while it runs, resident memory of a watched
//! process, and the summary (percentiles, errors by kind) as text and as JSON.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use serde::Serialize;

use super::{
    clients::{Outcome, Run},
    Plan, Target, Work,
};

/// One successful turn.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sample {
    pub first_token: Duration,
    pub total: Duration,
    /// 1 for a session's first turn.
    pub turn_in_session: u64,
}

/// Milliseconds at three percentiles; `None` without samples.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

/// Memory of the watched process around a hold.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HoldMeasure {
    pub pid: u32,
    /// VmRSS before any stream opened.
    pub rss_before_kb: u64,
    /// VmRSS halfway through the hold.
    pub rss_during_kb: u64,
    /// Streams live when `rss_during_kb` was read.
    pub live_streams: usize,
    /// (during − before) / live streams.
    pub rss_per_stream_kb: Option<f64>,
}

/// The `--hold-streams` part of a summary.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HoldReport {
    pub streams: usize,
    pub hold_secs: u64,
    /// Text events received over all streams.
    pub events: u64,
    /// Streams that ended with `[DONE]` before the hold did (each client then opened another).
    pub completed: u64,
    pub lost_connections: u64,
    pub memory: Option<HoldMeasure>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    /// `omnichat` or `direct`.
    pub target: String,
    pub url: String,
    pub concurrency: usize,
    pub users: usize,
    pub elapsed_secs: f64,
    /// Turns answered to `[DONE]` without error.
    pub turns: u64,
    pub errors: u64,
    /// Errors by kind: `http_<status>`, `sse_<code>`, `connect`, `timeout`, `lost_connection`,
    /// `protocol`.
    pub errors_by_kind: BTreeMap<String, u64>,
    pub turns_per_sec: f64,
    /// From sending the request to the first text event.
    pub first_token_ms: Percentiles,
    /// From sending the request to `[DONE]` (p90 included for completeness).
    pub total_ms: Percentiles,
    /// Median time to first token over each session's turns 1–10, and over all its turns.
    pub first_token_p50_ms_turns_1_10: Option<f64>,
    pub first_token_p50_ms_all_turns: Option<f64>,
    pub hold: Option<HoldReport>,
}

/// Resident memory of `pid` in kB, from `/proc/<pid>/status`.
pub(super) fn rss_kb(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| std::io::Error::other("no VmRSS line"))
}

/// Reads memory before the streams open, and again at `midpoint`.
pub(super) async fn measure_hold(
    run: Arc<Run>,
    pid: u32,
    midpoint: Instant,
) -> Option<HoldMeasure> {
    let before = rss_kb(pid).ok()?;
    tokio::time::sleep_until(midpoint.into()).await;
    let during = rss_kb(pid).ok()?;
    let live = run.gauges.live.load(Ordering::Relaxed);
    Some(HoldMeasure {
        pid,
        rss_before_kb: before,
        rss_during_kb: during,
        live_streams: live,
        rss_per_stream_kb: (live > 0).then(|| (during as f64 - before as f64) / live as f64),
    })
}

/// Prints a progress line to stderr every second until aborted.
pub(super) async fn progress(run: Arc<Run>, started: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = 0;
    loop {
        tick.tick().await;
        let ok = run.ok.load(Ordering::Relaxed);
        eprintln!(
            "loadtest {:>4}s: {ok} turns ({}/s), {} errors, {} streams live, {} text events",
            started.elapsed().as_secs(),
            ok - last,
            run.failed.load(Ordering::Relaxed),
            run.gauges.live.load(Ordering::Relaxed),
            run.gauges.events.load(Ordering::Relaxed),
        );
        last = ok;
    }
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(millis(sorted[rank.clamp(1, sorted.len()) - 1]))
}

fn percentiles(mut values: Vec<Duration>) -> Percentiles {
    values.sort_unstable();
    Percentiles {
        p50: percentile(&values, 50.0),
        p90: percentile(&values, 90.0),
        p99: percentile(&values, 99.0),
    }
}

pub(super) fn summarize(plan: &Plan, outcome: Outcome) -> Summary {
    let samples: Vec<Sample> = outcome
        .clients
        .iter()
        .flat_map(|c| c.samples.iter().copied())
        .collect();
    let mut errors_by_kind = BTreeMap::new();
    for client in &outcome.clients {
        for (kind, count) in &client.errors {
            *errors_by_kind.entry(kind.clone()).or_default() += count;
        }
    }
    let turns: u64 = outcome.clients.iter().map(|c| c.completed).sum();
    let first_tokens = |max_turn: u64| {
        if matches!(plan.target, Target::Direct { .. }) {
            return None; // no sessions
        }
        let mut values: Vec<Duration> = samples
            .iter()
            .filter(|s| s.turn_in_session <= max_turn)
            .map(|s| s.first_token)
            .collect();
        values.sort_unstable();
        percentile(&values, 50.0)
    };
    let (target, url, users) = match &plan.target {
        Target::OmniChat { base, users, .. } => ("omnichat", base.clone(), *users),
        Target::Direct { base } => ("direct", base.clone(), 0),
    };
    let hold = match plan.work {
        Work::Hold { streams, secs } => Some(HoldReport {
            streams,
            hold_secs: secs,
            events: outcome.events,
            completed: turns,
            lost_connections: errors_by_kind.get("lost_connection").copied().unwrap_or(0),
            memory: outcome.hold.clone(),
        }),
        _ => None,
    };
    let elapsed = outcome.elapsed.as_secs_f64();
    Summary {
        target: target.to_owned(),
        url,
        concurrency: plan.concurrency,
        users,
        elapsed_secs: (elapsed * 1e3).round() / 1e3,
        turns,
        errors: errors_by_kind.values().sum(),
        errors_by_kind,
        turns_per_sec: if elapsed > 0.0 {
            (turns as f64 / elapsed * 10.0).round() / 10.0
        } else {
            0.0
        },
        first_token_ms: percentiles(samples.iter().map(|s| s.first_token).collect()),
        total_ms: percentiles(samples.iter().map(|s| s.total).collect()),
        first_token_p50_ms_turns_1_10: first_tokens(10),
        first_token_p50_ms_all_turns: first_tokens(u64::MAX),
        hold,
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2} ms"))
}

impl Summary {
    /// The summary for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} {} with {} clients: {} turns in {:.1} s = {:.1} turns/s, {} errors",
            self.target,
            self.url,
            self.concurrency,
            self.turns,
            self.elapsed_secs,
            self.turns_per_sec,
            self.errors
        );
        let first = &self.first_token_ms;
        let _ = writeln!(
            out,
            "  first token p50 {} p90 {} p99 {}; total p50 {} p99 {}",
            ms(first.p50),
            ms(first.p90),
            ms(first.p99),
            ms(self.total_ms.p50),
            ms(self.total_ms.p99)
        );
        let _ = writeln!(
            out,
            "  first token p50 over turns 1-10 of a session {}, over all turns {}",
            ms(self.first_token_p50_ms_turns_1_10),
            ms(self.first_token_p50_ms_all_turns)
        );
        for (kind, count) in &self.errors_by_kind {
            let _ = writeln!(out, "  error {kind}: {count}");
        }
        if let Some(hold) = &self.hold {
            let _ = writeln!(
                out,
                "  held {} streams for {} s: {} text events, {} completed, {} lost connections",
                hold.streams, hold.hold_secs, hold.events, hold.completed, hold.lost_connections
            );
            if let Some(m) = &hold.memory {
                let _ = writeln!(
                    out,
                    "  pid {} RSS {} kB before, {} kB with {} streams live: {} kB per stream",
                    m.pid,
                    m.rss_before_kb,
                    m.rss_during_kb,
                    m.live_streams,
                    m.rss_per_stream_kb
                        .map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = percentiles(values);
        assert_eq!((p.p50, p.p90, p.p99), (Some(50.0), Some(90.0), Some(99.0)));
        assert_eq!(percentiles(Vec::new()), Percentiles::default());
        assert_eq!(percentile(&[Duration::from_millis(7)], 99.0), Some(7.0));
    }
}
