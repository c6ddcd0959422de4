//! Writes the CRD YAML generated from the Rust types.
//!
//! `cargo run -p switchyard-crds --bin crdgen` rewrites the committed files in `crds/`;
//! `crdgen DIR` writes them into DIR (e.g. a Helm chart's `crds/`); `crdgen -` prints all
//! CRDs as one multi-document stream on stdout.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("-") {
        print!("{}", switchyard_crds::crd_documents());
        return Ok(());
    }
    let dir = arg.map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    std::fs::create_dir_all(&dir)?;
    for (name, content) in switchyard_crds::crd_files() {
        let path = dir.join(name);
        std::fs::write(&path, content)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
