//! The HTTP clients a provider's requests go out on, with open streams spread over them so that
//! no answer waits for room on an HTTP/2 connection.
//!
//! reqwest multiplexes every request to a host over one HTTP/2 connection (TLS providers
//! negotiate HTTP/2) and never opens a second one when the server's `MAX_CONCURRENT_STREAMS` is
//! reached: the next request waits until a stream ends, and an answer streams for minutes. So a
//! client here carries at most `streams_per_connection` open streams; one more goes out on
//! another client, hence another connection. Streams are placed first-fit, so when the load
//! falls the later clients fall idle and their connections close on the pool's idle timeout.
//! Over HTTP/1.1 every open stream has a connection of its own anyway, and the spreading
//! changes nothing.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use super::{ProviderKind, ProviderSettings};

/// How a client to one provider is built.
#[derive(Clone, Debug)]
struct ClientRecipe {
    connect_timeout: Duration,
    /// HTTP/2 from the first byte over plain TCP (h2c), for a plaintext base URL whose server
    /// speaks it; TLS connections negotiate HTTP/2 by themselves.
    h2c: bool,
}

impl ClientRecipe {
    fn build(&self) -> Result<reqwest::Client, String> {
        let builder = reqwest::Client::builder()
            .tcp_nodelay(true)
            // Redirects are never followed: reqwest strips `Authorization` on a cross-host
            // redirect but not `x-api-key` / `x-goog-api-key`, which would leak to the new host.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("omnichat/", env!("CARGO_PKG_VERSION")));
        let builder = if self.h2c {
            // Plaintext only (its base URL is checked to be http://), so no root certificates:
            // loading the system's costs a few hundred KiB per client.
            builder
                .http2_prior_knowledge()
                .tls_certs_only(std::iter::empty())
        } else {
            builder
        };
        builder.build().map_err(|err| err.to_string())
    }
}

/// One client and the streams open on it.
#[derive(Debug)]
struct Slot {
    client: reqwest::Client,
    open: AtomicUsize,
}

/// The right to one open stream on a client; the stream is counted until this is dropped, so it
/// lives as long as the response body.
#[derive(Debug)]
pub(crate) struct Lease {
    slot: Arc<Slot>,
}

impl Lease {
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.slot.client
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slot.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The clients of one provider.
#[derive(Debug)]
pub(crate) struct ConnectionPool {
    recipe: ClientRecipe,
    streams_per_connection: usize,
    /// Only ever grows: a client's idle connections close by themselves, and a client without
    /// connections is a few hundred bytes.
    slots: Mutex<Vec<Arc<Slot>>>,
}

impl ConnectionPool {
    fn new(first: reqwest::Client, recipe: ClientRecipe, streams_per_connection: usize) -> Self {
        Self {
            recipe,
            streams_per_connection: streams_per_connection.max(1),
            slots: Mutex::new(vec![Arc::new(Slot {
                client: first,
                open: AtomicUsize::new(0),
            })]),
        }
    }

    /// A client with room for one more stream, building one when every client is full; `Err`
    /// only if a new client cannot be built (its TLS set-up failed), with why.
    pub(crate) fn lease(&self) -> Result<Lease, String> {
        // Increments happen under the lock, so two callers never both take a client's last
        // place; a lease ends without it.
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let limit = self.streams_per_connection;
        if let Some(slot) = slots
            .iter()
            .find(|slot| slot.open.load(Ordering::Relaxed) < limit)
        {
            slot.open.fetch_add(1, Ordering::Relaxed);
            return Ok(Lease { slot: slot.clone() });
        }
        let slot = Arc::new(Slot {
            client: self.recipe.build()?,
            open: AtomicUsize::new(1),
        });
        slots.push(slot.clone());
        Ok(Lease { slot })
    }
}

/// The pools of the four remote providers. Providers over TLS or HTTP/1.1 start on one shared
/// client (its connections are per host anyway); an h2c provider has clients of its own.
#[derive(Debug)]
pub(crate) struct Connections {
    pub(crate) openai: ConnectionPool,
    pub(crate) gemini: ConnectionPool,
    pub(crate) anthropic: ConnectionPool,
    pub(crate) ollama: ConnectionPool,
}

impl Connections {
    pub(crate) fn new(settings: &ProviderSettings) -> Result<Self, String> {
        let recipe = |h2c| ClientRecipe {
            connect_timeout: settings.connect_timeout,
            h2c,
        };
        let shared = recipe(false).build()?;
        let pool = |kind: ProviderKind| -> Result<ConnectionPool, String> {
            let recipe = recipe(settings.h2c_providers.contains(&kind));
            let first = if recipe.h2c {
                recipe.build()?
            } else {
                shared.clone()
            };
            Ok(ConnectionPool::new(
                first,
                recipe,
                settings.streams_per_connection,
            ))
        };
        Ok(Self {
            openai: pool(ProviderKind::OpenAi)?,
            gemini: pool(ProviderKind::Gemini)?,
            anthropic: pool(ProviderKind::Anthropic)?,
            ollama: pool(ProviderKind::Ollama)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(streams_per_connection: usize) -> ConnectionPool {
        let recipe = ClientRecipe {
            connect_timeout: Duration::from_secs(1),
            h2c: false,
        };
        let first = recipe.build().unwrap();
        ConnectionPool::new(first, recipe, streams_per_connection)
    }

    fn clients(pool: &ConnectionPool) -> usize {
        pool.slots.lock().unwrap().len()
    }

    #[test]
    fn a_full_client_sends_the_next_stream_to_another() {
        let pool = pool(2);
        let first = pool.lease().unwrap();
        let second = pool.lease().unwrap();
        assert!(Arc::ptr_eq(&first.slot, &second.slot));
        assert_eq!(clients(&pool), 1);
        let third = pool.lease().unwrap();
        assert!(!Arc::ptr_eq(&first.slot, &third.slot));
        assert_eq!(clients(&pool), 2);
    }

    #[test]
    fn an_ended_stream_frees_its_place_on_the_first_client() {
        let pool = pool(2);
        let first = pool.lease().unwrap();
        let _second = pool.lease().unwrap();
        let third = pool.lease().unwrap();
        let first_slot = first.slot.clone();
        drop(first);
        let fourth = pool.lease().unwrap();
        assert!(Arc::ptr_eq(&fourth.slot, &first_slot), "first fit");
        assert_eq!(clients(&pool), 2);
        drop(third);
        assert_eq!(first_slot.open.load(Ordering::Relaxed), 2);
    }
}
