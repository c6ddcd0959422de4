//! The Switchyard data plane: an OpenAI- and Anthropic-compatible LLM gateway on pingora.
//!
//! ```text
//!  client ──▶ listener (connection cap, header and idle deadlines)
//!                │
//!             service (one ProxyHttp) ──▶ api::request (borrowed top-level JSON)
//!                │   /v1/messages: api::anthropic │ model, stream, prompt estimate
//!                │   /v1/responses: api::responses│
//!                │   (translated to OpenAI chat)  ▼
//!                │                      switchyard_dsl::decide(snapshot)
//!                │                             │ candidates
//!                ▼                             ▼
//!           access log ◀── router (retry, failover, health) ──▶ providers/{openai,anthropic,
//!                                 │                               gemini,mock} + translate/
//!                                 └──── stream (SSE relay, checks) ◀──┘ upstream (pooled)
//! ```
//!
//! The listener bounds connections before pingora parses anything (`listener`); the whole
//! exchange happens in `request_filter`: the body is read in full within `body`'s bounds,
//! routed, sent to each candidate in turn and relayed back chunk by chunk. Nothing is retried
//! or failed over once a byte has reached the client. Every provider answers the router in
//! OpenAI's shapes (Anthropic and Gemini adapters translate as they read); answers to
//! Anthropic and Responses clients are translated back in `stream`, `api::anthropic` and
//! `api::responses` (with `responses_store` keeping conversations for `previous_response_id`).

pub mod access_log;
pub mod admin;
pub mod api;
pub mod auth;
pub mod body;
pub mod cache;
pub mod clock;
pub mod config;
pub mod ctx;
pub mod listener;
pub mod log_sink;
pub mod metrics;
pub mod providers;
pub mod quota;
pub mod redis_link;
pub mod responses_store;
pub mod router;
pub mod server;
pub mod service;
pub mod settings;
pub mod shadow;
pub mod stream;
pub mod telemetry;
pub mod translate;
pub mod upstream;

/// Errors that stop the proxy from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("invalid setting: {0}")]
    Settings(String),
    #[error("server: {0}")]
    Server(String),
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
