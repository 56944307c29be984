//! One module per resource; each handler parses, asks the core, and renders.

pub mod chat;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod providers;
pub mod sessions;
pub mod token;
pub mod users;
pub mod web;
