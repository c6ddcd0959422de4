//! The per-request route decision. (stub: being written)

/// What the decision needs to know about a request.
pub trait RequestFeatures {
    fn model(&self) -> &str;
}

#[derive(Debug)]
pub struct RequestView;

#[derive(Debug)]
pub struct Decision;

pub fn decide() {}
