//! `omnichat mock-upstream`: the mock provider as a stand-alone server for load tests, answering
//! all four wire formats on one address until SIGINT or SIGTERM.

use std::{net::SocketAddr, str::FromStr, time::Duration};

use clap::Args;

use super::{reply_of, Fault, MockSettings, MockUpstream};

/// Longest answer the mock will stream, in tokens.
const MAX_TOKENS: usize = 100_000;
/// Longest pause the mock accepts, in milliseconds (an hour).
const MAX_PAUSE_MS: u64 = 3_600_000;

#[derive(Debug, Clone, Args)]
pub struct MockUpstreamArgs {
    /// Address to listen on, e.g. 127.0.0.1:9100.
    #[arg(long, required = true)]
    pub addr: SocketAddr,
    /// Pause before the first token, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub ttft_ms: u64,
    /// Pause between tokens, in milliseconds (0: the whole answer at once).
    #[arg(long, default_value_t = 0)]
    pub gap_ms: u64,
    /// Tokens per answer.
    #[arg(long, default_value_t = 20)]
    pub tokens: usize,
    /// none | status:CODE | mid-stream-error | abrupt-close | stall
    #[arg(long, default_value = "none")]
    pub fault: FaultSpec,
    /// Share of requests that get the fault, 0.0–1.0 (evenly spread).
    #[arg(long, default_value_t = 1.0)]
    pub fault_rate: f64,
    /// Streams an HTTP/2 (h2c) client may open on one connection; HTTP/1.1 is served too.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_connection: u32,
}

/// A fault as the command line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSpec(pub Fault);

impl FromStr for FaultSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fault = match text {
            "none" => Fault::None,
            "mid-stream-error" => Fault::MidStreamError,
            "abrupt-close" => Fault::AbruptClose,
            "stall" => Fault::Stall,
            _ => {
                let code = text
                    .strip_prefix("status:")
                    .and_then(|code| code.parse::<u16>().ok())
                    .filter(|code| (400..=599).contains(code))
                    .ok_or_else(|| {
                        format!(
                            "unknown fault {text:?}: expected none, status:CODE (400-599), \
                             mid-stream-error, abrupt-close or stall"
                        )
                    })?;
                Fault::Status(code, None)
            }
        };
        Ok(FaultSpec(fault))
    }
}

impl MockUpstreamArgs {
    /// The settings these flags ask for, or what is wrong with them.
    pub fn settings(&self) -> Result<MockSettings, String> {
        if self.tokens > MAX_TOKENS {
            return Err(format!("--tokens is at most {MAX_TOKENS}"));
        }
        if self.ttft_ms > MAX_PAUSE_MS || self.gap_ms > MAX_PAUSE_MS {
            return Err(format!("--ttft-ms and --gap-ms are at most {MAX_PAUSE_MS}"));
        }
        if !(0.0..=1.0).contains(&self.fault_rate) {
            return Err("--fault-rate is between 0.0 and 1.0".to_owned());
        }
        Ok(MockSettings {
            reply: reply_of(self.tokens),
            ttft: Duration::from_millis(self.ttft_ms),
            gap: Duration::from_millis(self.gap_ms),
            fault: self.fault.0.clone(),
            fault_rate: self.fault_rate,
            max_streams_per_connection: self.max_streams_per_connection,
            ..MockSettings::default()
        })
    }
}

/// Runs the mock until `stop` resolves.
pub async fn run(
    args: &MockUpstreamArgs,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let settings = args.settings()?;
    let mock = MockUpstream::start(args.addr, settings)
        .await
        .map_err(|err| format!("listening on {}: {err}", args.addr))?;
    eprintln!(
        "mock upstream on http://{addr}: OpenAI POST /v1/chat/completions, Gemini POST \
         /v1beta/models/{{model}}:streamGenerateContent?alt=sse, Anthropic POST /v1/messages, \
         Ollama POST /api/chat; HTTP/1.1 and h2c (OmniChat: --openai-base-url http://{addr}/v1, \
         and --upstream-h2c openai for HTTP/2)",
        addr = mock.addr()
    );
    stop.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_bad_ones_are_refused() {
        assert_eq!("stall".parse(), Ok(FaultSpec(Fault::Stall)));
        assert_eq!(
            "status:503".parse(),
            Ok(FaultSpec(Fault::Status(503, None)))
        );
        assert!("status:200".parse::<FaultSpec>().is_err());
        assert!("status:x".parse::<FaultSpec>().is_err());
        assert!("explode".parse::<FaultSpec>().is_err());
    }
}
