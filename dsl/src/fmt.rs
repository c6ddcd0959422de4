//! Canonical formatting of policy text. (stub: being written)
