//! The Switchyard data plane. Filled in by the data-plane issue; this crate is a placeholder
//! so the workspace layout is fixed from the start.
