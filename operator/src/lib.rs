//! Kubernetes operator for Switchyard: reconciles `LLMProvider`, `RoutePolicy` and `Budget`
//! objects into compiled snapshots. Filled in by the operator issue; this crate is a
//! placeholder so the workspace layout is fixed from the start.
