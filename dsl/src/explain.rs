//! Human explanation of a route decision, for `switchyard explain`. (being written)
