//! Switchyard's Kubernetes operator: watches `LLMProvider`, `RoutePolicy`, `Budget` and the
//! Secrets they name, compiles them into one snapshot per scope, pushes new versions to proxy
//! pods over the control channel and reports everything in status.
//!
//! ```text
//!  watch caches ──compile::compile──▶ Outcome ──Publisher::publish──▶ Publication ──SSE──▶ proxies
//!  (4 kinds)        (pure, cached       │         (new version only when        │            │
//!                    by fingerprint)    │          hash/credentials changed)     │       POST /v1/acks
//!                                       ▼                                        ▼            ▼
//!                             status::{provider, policy} ◀──────────── Pods (connected, acked)
//!                                       │
//!                          server-side apply on /status, Events
//! ```
//!
//! Shaped like kube-rs's controller-rs: [`Context`], [`reconcile`] + [`error_policy`], one
//! [`Error`] with `metric_label()`; `main.rs` only parses flags and calls [`run`].

pub mod admin;
mod budget;
pub mod channel;
pub mod compile;
pub mod context;
pub mod error;
pub mod http;
pub mod leader;
pub mod metrics;
mod provider;
pub mod publish;
pub mod reconcile;
mod route_policy;
pub mod run;
pub mod status;
pub mod telemetry;
pub mod tls;
pub mod usage;

pub use context::{Context, Stores};
pub use error::{Error, Result};
pub use reconcile::{Watched, error_policy, reconcile};
pub use run::{Settings, run, run_with};

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;
