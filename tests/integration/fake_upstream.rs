//! Fake LLM providers for the integration tests: the library's mock upstream
//! (`omnichat::mock_upstream`, also behind `omnichat mock-upstream`), one wire format per
//! instance, on 127.0.0.1 port 0, recording every request, with a short reply and no pauses.

#![allow(dead_code)] // Each test uses a different part of this toolbox.

use std::time::Duration;

pub use omnichat::mock_upstream::{Fault, RecordedRequest, Wire, INTERNAL_HOST};
use omnichat::mock_upstream::{MockSettings, MockUpstream};

/// A running fake provider; dropping it stops accepting connections.
pub struct FakeUpstream {
    /// What the matching OmniChat setting takes (`…/v1` for OpenAI, the bare host otherwise).
    pub base_url: String,
    mock: MockUpstream,
}

impl FakeUpstream {
    pub async fn start(wire: Wire) -> FakeUpstream {
        Self::start_with_stream_limit(wire, MockSettings::default().max_streams_per_connection)
            .await
    }

    /// A fake whose HTTP/2 connections carry at most `max_streams` streams at once.
    pub async fn start_with_stream_limit(wire: Wire, max_streams: u32) -> FakeUpstream {
        let settings = MockSettings {
            only: Some(wire),
            reply: ["Hello", ",", " wörld", " 😀"].map(String::from).to_vec(),
            record_requests: true,
            max_streams_per_connection: max_streams,
            ..MockSettings::default()
        };
        let mock = MockUpstream::start(([127, 0, 0, 1], 0).into(), settings)
            .await
            .expect("bind a port");
        FakeUpstream {
            base_url: mock.base_url(wire),
            mock,
        }
    }

    /// The text deltas the fake streams.
    pub fn set_reply(&self, words: Vec<String>) {
        self.mock.set_reply(words);
    }

    pub fn set_fault(&self, fault: Fault) {
        self.mock.set_fault(fault);
    }

    /// Pause before each delta.
    pub fn set_token_delay(&self, delay: Duration) {
        self.mock.set_token_delay(delay);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.mock.requests()
    }

    /// Response bodies currently being written; drops to 0 once clients went away.
    pub fn open_streams(&self) -> usize {
        self.mock.open_streams()
    }

    /// TCP connections the fake accepted.
    pub fn connections(&self) -> usize {
        self.mock.connections()
    }
}
