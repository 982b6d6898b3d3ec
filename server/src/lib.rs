//! Ferry's deployment server: a hyper 1 HTTP service (HTTP/1.1 and h2c, or
//! TLS with ALPN h2) over any [`ferry_store::Backend`], with Prometheus
//! metrics, a status page and an optional pull-through mirror layer.
//!
//! Every store call runs in `spawn_blocking`; chunk verification fans out to
//! rayon from there. Entry point for the binary and for tests:
//! [`serve`]`(listener, state, shutdown)`; tests bind port 0.

pub mod admin;
mod api;
mod auth;
mod body;
mod error;
mod fetch;
pub mod groups;
mod manifest;
mod metered;
pub mod metrics;
pub mod mirror;
mod ops;
mod publish;
mod router;
mod serve;
mod single_flight;
mod status;
pub mod tls;
mod ui;
mod upload;
mod upstream;

pub use error::ApiError;
pub use serve::{serve, ServerConfig, ServerState};
pub use upstream::UpstreamError;
