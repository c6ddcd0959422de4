//! Errors found while loading YAML documents, each with the file, line and column it is about.

use std::fmt;

/// What went wrong, for callers that react to some kinds differently (messages are for people).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoadErrorKind {
    /// A file or folder could not be read.
    Io,
    /// The text is not valid YAML.
    Yaml,
    /// `kind` is missing or not one of the known kinds.
    UnknownKind,
    /// `apiVersion` is missing or wrong for the kind.
    UnknownApiVersion,
    /// `metadata.name` is missing or empty.
    MissingName,
    /// Another document already defined an object of the same kind, namespace and name.
    Duplicate,
    /// A field has the wrong type or a required field is missing.
    Field,
    /// A field the resource's schema does not have (the API server would drop it).
    UnknownField,
    /// A value is well-typed but not allowed (negative price, bad duration, ...).
    Invalid,
}

/// One problem in the input, located as `file:line:column` (one-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub kind: LoadErrorKind,
    /// The path as given or found while walking a folder, e.g. `examples/quickstart/routes.yaml`.
    pub file: String,
    /// One-based line in `file`; `None` for errors about the whole file.
    pub line: Option<u32>,
    /// One-based column (in characters); `None` when only the line is known.
    pub column: Option<u32>,
    /// Lower-case, user input in backticks.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

impl LoadError {
    pub(crate) fn new(
        kind: LoadErrorKind,
        file: &str,
        line: Option<u32>,
        column: Option<u32>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            file: file.to_string(),
            line,
            column,
            message: message.into(),
            help: None,
        }
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `file:line:col`, `file:line` or `file`.
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.file),
            (Some(l), None) => format!("{}:{l}", self.file),
            _ => self.file.clone(),
        }
    }
}

/// `file:line:col: message`, then `  = help: ...` on a second line when there is help.
impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location(), self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// Every problem found, in file order; never empty when returned as an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadErrors(pub Vec<LoadError>);

impl LoadErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, LoadError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for LoadErrors {
    type Item = LoadError;
    type IntoIter = std::vec::IntoIter<LoadError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// One error per line (help lines included), in order.
impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}
