//! Checked program → [`crate::ir::Snapshot`]. (stub: being written)
use crate::check::Checked;
use crate::ir::Snapshot;

pub fn lower(checked: &Checked) -> Snapshot {
    let _ = checked;
    unimplemented!("lower")
}
