//! Whether a provider can answer now, told as cheaply as possible: a TCP connect to its host and
//! port, bounded by a short timeout and cached for a while, so `GET /providers` can show which
//! choices would work (an Ollama with nothing listening, say) without calling any model.

use std::time::{Duration, Instant};

use hyper_util::client::proxy::matcher::Matcher;
use tokio::{net::TcpStream, sync::Mutex};

use super::{ProviderKind, ProviderSettings, Providers};

/// The longest a probe may take: a reachable host on a sane network answers far sooner.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// How long a probe's answer is reused: a page refresh must not hammer the upstream.
pub const PROBE_TTL: Duration = Duration::from_secs(30);

/// The last probe of each provider. A per-provider async lock makes concurrent askers wait for
/// one probe instead of each opening a connection.
#[derive(Debug)]
pub(crate) struct Reachability {
    last: [Mutex<Option<(Instant, bool)>>; ProviderKind::ALL.len()],
    /// The environment's proxy rules, read as the provider client reads them (reqwest's system
    /// proxy is this matcher): where requests go through a proxy, the proxy must answer.
    proxies: Matcher,
}

impl Default for Reachability {
    fn default() -> Self {
        Reachability {
            last: std::array::from_fn(|_| Mutex::new(None)),
            proxies: Matcher::from_system(),
        }
    }
}

impl Reachability {
    async fn check(&self, kind: ProviderKind, settings: &ProviderSettings) -> bool {
        let Some(slot) = ProviderKind::ALL
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| self.last.get(i))
        else {
            return false;
        };
        let mut last = slot.lock().await;
        if let Some((at, reachable)) = *last {
            if at.elapsed() < PROBE_TTL {
                return reachable;
            }
        }
        let reachable = match settings.base_url(kind) {
            None => true,
            Some(url) => probe(url, &self.proxies).await,
        };
        *last = Some((Instant::now(), reachable));
        reachable
    }
}

/// A TCP connect (name lookup included) within [`PROBE_TIMEOUT`]; the connection is closed at
/// once. Nothing is sent, so no key or prompt can leave. Where the provider's requests go through
/// an HTTP proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, less `NO_PROXY`), the proxy is what
/// must answer.
async fn probe(url: &str, proxies: &Matcher) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    let proxy = url
        .as_str()
        .parse::<http::Uri>()
        .ok()
        .and_then(|uri| proxies.intercept(&uri))
        .and_then(|intercept| reqwest::Url::parse(&intercept.uri().to_string()).ok());
    let url = proxy.unwrap_or(url);
    let Some(port) = url.port_or_known_default() else {
        return false;
    };
    // IPv6 literals come bracketed; `(host, port)` resolves names and parses bare literals.
    let Some(host) = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
    else {
        return false;
    };
    let connect = TcpStream::connect((host, port));
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, connect).await,
        Ok(Ok(_))
    )
}

impl Providers {
    /// Whether `kind` looks able to answer now: echo always; the others when a TCP connection
    /// to their host opens within [`PROBE_TIMEOUT`], remembered for [`PROBE_TTL`]. Says nothing
    /// about the key: an unconfigured provider is not listed at all.
    pub async fn reachable(&self, kind: ProviderKind) -> bool {
        self.reachability.check(kind, &self.settings).await
    }
}
