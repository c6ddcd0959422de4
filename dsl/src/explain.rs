//! Human-readable account of a decision. (stub: being written)
