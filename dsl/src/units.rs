//! Typed literals: durations, counts, money, percentages. (stub: being written)
