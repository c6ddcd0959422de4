//! The Switchyard policy language.
//!
//! ```text
//!  Source text ──parse──▶ ast::PolicyFile ──check──▶ Checked ──lower──▶ ir::Snapshot
//!  (per object)   (spans,     │                 (names resolved,     (plain data,
//!                  comments)  │                  units validated)     content-hashed)
//!                             └──fmt──▶ canonical text                      │
//!                                                                         decide(request, draw)
//!                                                                            ▼
//!                                                                         Decision
//! ```
//!
//! Each arrow is a public function. No I/O happens here: sources and the provider catalogue
//! are handed in, a snapshot and diagnostics come out. pest stays inside [`parser`].

pub mod affinity;
pub mod ast;
pub mod channel;
pub mod check;
pub mod decide;
pub mod diagnostic;
pub mod explain;
pub mod fmt;
pub mod headers;
pub mod index;
pub mod ir;
pub mod limits;
pub mod lower;
pub mod parser;
mod render;
pub mod source;
pub mod units;
pub mod window;

pub use check::{Checked, check};
pub use decide::{Decision, RequestFeatures, RequestView, decide};
pub use diagnostic::{Diagnostic, Severity, SourceId, render, render_all};
pub use ir::Snapshot;
pub use lower::lower;
pub use parser::parse;
pub use source::{Source, SourceKind, Span};

/// The result of compiling a set of sources against a provider catalogue.
#[derive(Debug)]
pub struct Compiled {
    /// `None` when any error was found; warnings alone still produce a snapshot.
    pub snapshot: Option<Snapshot>,
    /// All errors and warnings, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Compiled {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// parse → check → lower over every source. Parse errors in one source do not stop the others
/// from being checked, so the user sees every problem at once.
pub fn compile(sources: &[Source], catalogue: &[ir::Provider]) -> Compiled {
    let mut diagnostics = Vec::new();
    let mut files = Vec::with_capacity(sources.len());
    for (i, source) in sources.iter().enumerate() {
        match parse(SourceId(i as u32), source) {
            Ok(file) => files.push((SourceId(i as u32), file)),
            Err(errs) => diagnostics.extend(errs),
        }
    }
    let parse_failed = !diagnostics.is_empty();
    let checked = check(sources, &files, catalogue);
    diagnostics.extend(checked.diagnostics.iter().cloned());
    diagnostics.sort_by_key(|d| (d.source, d.span.start));
    let snapshot = if parse_failed || diagnostics.iter().any(Diagnostic::is_error) {
        None
    } else {
        Some(lower(&checked))
    };
    Compiled {
        snapshot,
        diagnostics,
    }
}
