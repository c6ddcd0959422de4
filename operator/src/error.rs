//! The crate's one error type.

/// Everything a reconcile or the operator's startup can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot serialize: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("the watch caches are not ready")]
    NotReady,
    #[error("object has no {0}")]
    MissingField(&'static str),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    /// A short, bounded label for the `failures` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Serialize(_) => "serialize",
            Error::NotReady => "not_ready",
            Error::MissingField(_) => "missing_field",
            Error::Io(_) => "io",
            Error::Config(_) => "config",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
