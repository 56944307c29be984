//! The integration suite: the real server over HTTP, one test binary for build speed.

mod account_lifecycle;
mod accounts;
mod auth;
mod bench;
mod bench_memory;
mod chat;
mod connection_cap;
mod database_outage;
mod edges;
mod edges_logs;
mod fake_upstream;
mod generations;
mod load_tools;
mod openapi;
mod provider_adapters;
mod providers_http;
mod providers_reachable;
mod restart;
mod session_state;
mod sessions;
mod support;
mod users;
