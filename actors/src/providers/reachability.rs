//! Whether a provider can answer now, told as cheaply as possible: a TCP connect to its host and
//! port, bounded by a short timeout and cached for a while, so `GET /providers` can show which
//! choices would work (an Ollama with nothing listening, say) without calling any model.

use std::time::{Duration, Instant};

use tokio::{net::TcpStream, sync::Mutex};

use super::{ProviderKind, ProviderSettings, Providers};

/// The longest a probe may take: a reachable host on a sane network answers far sooner.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// How long a probe's answer is reused: a page refresh must not hammer the upstream.
pub const PROBE_TTL: Duration = Duration::from_secs(30);

/// The last probe of each provider. A per-provider async lock makes concurrent askers wait for
/// one probe instead of each opening a connection.
#[derive(Debug, Default)]
pub(crate) struct Reachability {
    last: [Mutex<Option<(Instant, bool)>>; ProviderKind::ALL.len()],
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
        let reachable = match endpoint(kind, settings) {
            None => true,
            Some(url) => probe(&url).await,
        };
        *last = Some((Instant::now(), reachable));
        reachable
    }
}

/// The URL a provider's requests go to; `None` for the offline echo.
fn endpoint(kind: ProviderKind, settings: &ProviderSettings) -> Option<String> {
    match kind {
        ProviderKind::Echo => None,
        ProviderKind::OpenAi => Some(settings.openai_base_url.clone()),
        ProviderKind::Gemini => Some(settings.gemini_base_url.clone()),
        ProviderKind::Anthropic => Some(settings.anthropic_base_url.clone()),
        ProviderKind::Ollama => Some(settings.ollama_host.clone()),
    }
}

/// A TCP connect (name lookup included) within [`PROBE_TIMEOUT`]; the connection is closed at
/// once. Nothing is sent, so no key or prompt can leave. Where the provider's requests go through
/// an HTTP proxy (the environment's `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`, which the provider
/// client follows), the proxy is what must answer.
async fn probe(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    let url = match proxy_for(&url, &|name| std::env::var(name).ok()) {
        Some(proxy) => proxy,
        None => url,
    };
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

/// The proxy requests to `url` go through, read as reqwest reads the environment: the
/// scheme's variable (lower case first), then `ALL_PROXY`, unless `NO_PROXY` names the host (`*`,
/// the host itself, or a domain it is under).
fn proxy_for(url: &reqwest::Url, env: &dyn Fn(&str) -> Option<String>) -> Option<reqwest::Url> {
    let var = |name: &str| {
        env(&name.to_ascii_lowercase())
            .or_else(|| env(name))
            .filter(|v| !v.trim().is_empty())
    };
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    if let Some(no_proxy) = var("NO_PROXY") {
        let exempt = no_proxy.split(',').map(str::trim).any(|entry| {
            let entry = entry.trim_start_matches('.');
            entry == "*"
                || (!entry.is_empty()
                    && (host.eq_ignore_ascii_case(entry)
                        || host
                            .to_ascii_lowercase()
                            .ends_with(&format!(".{}", entry.to_ascii_lowercase()))))
        });
        if exempt {
            return None;
        }
    }
    let proxy = match url.scheme() {
        "https" => var("HTTPS_PROXY"),
        "http" => var("HTTP_PROXY"),
        _ => None,
    }
    .or_else(|| var("ALL_PROXY"))?;
    // A proxy given as `host:port` is an HTTP proxy, as reqwest reads it.
    let proxy = if proxy.contains("://") {
        proxy
    } else {
        format!("http://{proxy}")
    };
    reqwest::Url::parse(&proxy).ok()
}

impl Providers {
    /// Whether `kind` looks able to answer now: echo always; the others when a TCP connection
    /// to their host opens within [`PROBE_TIMEOUT`], remembered for [`PROBE_TTL`]. Says nothing
    /// about the key: an unconfigured provider is not listed at all.
    pub async fn reachable(&self, kind: ProviderKind) -> bool {
        self.reachability.check(kind, &self.settings).await
    }
}

#[cfg(test)]
mod tests {
    use super::proxy_for;

    fn proxied(url: &str, vars: &[(&str, &str)]) -> Option<String> {
        let env = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        proxy_for(&reqwest::Url::parse(url).unwrap(), &env).map(|u| u.to_string())
    }

    #[test]
    fn the_schemes_proxy_is_probed_unless_no_proxy_names_the_host() {
        let vars = [
            ("HTTPS_PROXY", "http://proxy.corp:3128"),
            ("http_proxy", "plain.corp:8080"),
            ("NO_PROXY", "localhost, .internal.example"),
        ];
        assert_eq!(
            proxied("https://api.openai.com/v1", &vars).as_deref(),
            Some("http://proxy.corp:3128/")
        );
        assert_eq!(
            proxied("http://ollama.lan:11434", &vars).as_deref(),
            Some("http://plain.corp:8080/")
        );
        assert_eq!(proxied("http://localhost:11434", &vars), None);
        assert_eq!(proxied("https://llm.internal.example/v1", &vars), None);
        assert_eq!(proxied("https://api.openai.com/v1", &[]), None);
        assert_eq!(
            proxied(
                "https://api.anthropic.com",
                &[("ALL_PROXY", "http://all:1")]
            )
            .as_deref(),
            Some("http://all:1/")
        );
        assert_eq!(
            proxied(
                "https://x.example",
                &[("ALL_PROXY", "http://all:1"), ("no_proxy", "*")]
            ),
            None
        );
    }
}
