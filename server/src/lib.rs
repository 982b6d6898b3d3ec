//! Ferry's deployment server: a hyper 1 HTTP service (HTTP/1.1 and h2c) over
//! a [`ferry_store::Store`].
//!
//! Every store call runs in `spawn_blocking`; chunk verification fans out to
//! rayon from there. Entry point for the binary and for tests:
//! [`serve`]`(listener, state, shutdown)`; tests bind port 0.

mod api;
mod auth;
mod body;
mod error;
mod fetch;
pub mod groups;
mod manifest;
mod publish;
mod router;
mod serve;
mod status;
mod upload;

pub use error::ApiError;
pub use serve::{serve, ServerConfig, ServerState};
