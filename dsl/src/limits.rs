//! Bounds on policy text, so that hostile or generated input gets a located diagnostic instead
//! of exhausting the stack, memory or time of the CLI, the proxy or the operator.
//!
//! Every stage after the parser (AST build, check, lower, fmt, explain, decide) recurses once
//! per level of condition nesting, and pest recurses a few frames per level too. The parser
//! enforces [`MAX_NESTING`] with a linear pre-scan before pest runs, so no later stage sees a
//! deeper tree, and a policy that compiles on one machine compiles the same way on a thread
//! with a small stack. The bounds are fixed (not configuration) because the operator and the
//! proxy must agree on what compiles.

/// Largest policy text (one `RoutePolicy` or `Budget` `spec.policy`, or one policy file) in
/// bytes: 4 MiB, room for about 10,000 routes, above Kubernetes' own object size limit.
pub const MAX_POLICY_BYTES: usize = 4 * 1024 * 1024;

/// Deepest nesting of `not` and parentheses in one condition. Hand-written conditions rarely
/// nest past 4; 32 keeps every recursive pass shallow and keeps the compiled IR within the
/// JSON nesting limit (128) of the control channel, which holds two levels per nested
/// `and`/`or` group.
pub const MAX_NESTING: usize = 32;
