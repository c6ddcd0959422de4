//! Policy text → [`crate::ast`]. (stub: being written)

use crate::ast::PolicyFile;
use crate::diagnostic::{Diagnostic, SourceId};
use crate::source::Source;

/// Parses one source. All syntax errors found are returned (pest stops at the first, so in
/// practice one per block at most).
pub fn parse(id: SourceId, source: &Source) -> Result<PolicyFile, Vec<Diagnostic>> {
    let _ = (id, source);
    unimplemented!("parser")
}
