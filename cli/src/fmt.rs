//! `switchyard fmt`: canonical policy text inside YAML block scalars, rewritten in place.
//!
//! Only the lines of each `policy: |` block change; the rest of the YAML file (comments,
//! key order, quoting) is left byte-for-byte alone.

use std::collections::BTreeMap;
use std::path::PathBuf;

use switchyard_dsl::{Source, SourceId, render_all};

use crate::{EXIT_ERRORS, EXIT_OK};

pub(crate) fn run(paths: &[PathBuf], check_only: bool) -> anyhow::Result<u8> {
    for path in paths {
        anyhow::ensure!(path.exists(), "no such file or folder: {}", path.display());
    }
    let config = match switchyard_crds::load_paths(paths) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(EXIT_ERRORS);
        }
    };
    let mut by_file: BTreeMap<String, Vec<Source>> = BTreeMap::new();
    for source in switchyard_crds::sources(&config) {
        by_file.entry(source.file.clone()).or_default().push(source);
    }

    let mut failed = false;
    let mut changed = Vec::new();
    for (file, mut sources) in by_file {
        let original = std::fs::read_to_string(&file)?;
        sources.sort_by_key(|s| std::cmp::Reverse(s.line_offset));
        let mut lines: Vec<String> = original.lines().map(str::to_owned).collect();
        for source in &sources {
            match reformat_block(&mut lines, source) {
                Ok(()) => {}
                Err(BlockError::Diagnostics(diags)) => {
                    eprintln!("{}", render_all(&diags, std::slice::from_ref(source)));
                    failed = true;
                }
                Err(BlockError::NotABlockScalar) => eprintln!(
                    "note: {file}:{}: policy of `{}` is not a `|` block scalar; left as is",
                    source.line_offset + 1,
                    source.origin
                ),
            }
        }
        let mut updated = lines.join("\n");
        if original.ends_with('\n') {
            updated.push('\n');
        }
        if updated != original {
            if !check_only {
                std::fs::write(&file, &updated)?;
            }
            changed.push(file);
        }
    }

    for file in &changed {
        println!(
            "{}{file}",
            if check_only {
                "would reformat "
            } else {
                "reformatted "
            }
        );
    }
    Ok(if failed || (check_only && !changed.is_empty()) {
        EXIT_ERRORS
    } else {
        EXIT_OK
    })
}

enum BlockError {
    Diagnostics(Vec<switchyard_dsl::Diagnostic>),
    NotABlockScalar,
}

/// Replaces the file lines holding `source` with its formatted text, re-indented.
fn reformat_block(lines: &mut Vec<String>, source: &Source) -> Result<(), BlockError> {
    let indent = " ".repeat(source.column_offset as usize);
    let start = source.line_offset as usize;
    let old: Vec<&str> = source.text.lines().collect();
    let end = start + old.len();
    let verbatim = source.column_offset > 0
        && end <= lines.len()
        && lines[start..end]
            .iter()
            .zip(&old)
            .all(|(file_line, text_line)| {
                file_line.strip_prefix(&indent) == Some(*text_line)
                    || (text_line.is_empty() && file_line.trim().is_empty())
            });
    if !verbatim {
        return Err(BlockError::NotABlockScalar);
    }
    let formatted =
        switchyard_dsl::fmt::format_source(SourceId(0), source).map_err(BlockError::Diagnostics)?;
    let new = formatted.lines().map(|l| {
        if l.is_empty() {
            String::new()
        } else {
            format!("{indent}{l}")
        }
    });
    lines.splice(start..end, new);
    Ok(())
}
