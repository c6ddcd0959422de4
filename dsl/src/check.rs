//! Name resolution and validation. (stub: being written)

use crate::ast::PolicyFile;
use crate::diagnostic::{Diagnostic, SourceId};
use crate::ir::Provider;
use crate::source::Source;

/// The checked program: everything [`crate::lower`] needs, plus the diagnostics found.
#[derive(Debug)]
pub struct Checked {
    pub diagnostics: Vec<Diagnostic>,
}

pub fn check(sources: &[Source], files: &[(SourceId, PolicyFile)], catalogue: &[Provider]) -> Checked {
    let _ = (sources, files, catalogue);
    Checked { diagnostics: Vec::new() }
}
