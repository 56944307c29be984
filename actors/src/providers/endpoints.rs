//! The upstream URLs that do not change between requests, parsed once at start-up instead of on
//! every turn (parsing a URL is a good part of what building a request costs).

use reqwest::{Client, RequestBuilder, Url};

use super::{settings::base, ProviderSettings};

/// One endpoint: parsed, or (should it not parse) the text, so that the request fails exactly as
/// it would have when built from the text.
#[derive(Clone, Debug)]
pub(crate) enum Endpoint {
    Parsed(Url),
    Text(String),
}

impl Endpoint {
    fn new(url: String) -> Self {
        match Url::parse(&url) {
            Ok(parsed) => Endpoint::Parsed(parsed),
            Err(_) => Endpoint::Text(url),
        }
    }

    /// A POST to this endpoint.
    pub(crate) fn post(&self, client: &Client) -> RequestBuilder {
        match self {
            Endpoint::Parsed(url) => client.post(url.clone()),
            Endpoint::Text(url) => client.post(url.as_str()),
        }
    }
}

/// The fixed endpoints (Gemini's names the model in its path, so it is built per request).
#[derive(Clone, Debug)]
pub(crate) struct Endpoints {
    pub(crate) openai: Endpoint,
    pub(crate) anthropic: Endpoint,
    pub(crate) ollama: Endpoint,
}

impl Endpoints {
    pub(crate) fn new(settings: &ProviderSettings) -> Self {
        Endpoints {
            openai: Endpoint::new(format!(
                "{}/chat/completions",
                base(&settings.openai_base_url)
            )),
            anthropic: Endpoint::new(format!(
                "{}/v1/messages",
                base(&settings.anthropic_base_url)
            )),
            ollama: Endpoint::new(format!("{}/api/chat", base(&settings.ollama_host))),
        }
    }
}
