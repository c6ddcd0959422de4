//! `switchyard check`: compile everything under the given paths and report.

use std::path::PathBuf;

use switchyard_crds::Config;
use switchyard_dsl::{Compiled, Severity, Snapshot, render_all};

use crate::{EXIT_ERRORS, EXIT_OK};

/// Loads YAML and compiles it, printing load errors and diagnostics to stderr. `None` means
/// the YAML itself could not be loaded (already reported).
pub(crate) fn load_and_compile(paths: &[PathBuf]) -> anyhow::Result<Option<(Config, Compiled)>> {
    for path in paths {
        anyhow::ensure!(path.exists(), "no such file or folder: {}", path.display());
    }
    let config = match switchyard_crds::load_paths(paths) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(None);
        }
    };
    for skipped in &config.skipped {
        eprintln!("warning: {skipped}");
    }
    let sources = switchyard_crds::sources(&config);
    let compiled = match switchyard_crds::compile(&config) {
        Ok(compiled) => compiled,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(None);
        }
    };
    if !compiled.diagnostics.is_empty() {
        eprintln!("{}", render_all(&compiled.diagnostics, &sources));
    }
    // `mode: Shadow` policies: checked as they would serve once promoted.
    if let (Some(Ok(shadow)), Some(shadow_sources)) = (
        switchyard_crds::compile_shadow(&config),
        switchyard_crds::shadow_sources(&config),
    ) {
        let own: Vec<_> = shadow
            .diagnostics
            .iter()
            .filter(|d| {
                let origin = &shadow_sources[d.source.0 as usize].origin;
                config
                    .route_policies
                    .iter()
                    .any(|p| p.object.spec.is_shadow() && &p.qualified_name() == origin)
            })
            .cloned()
            .collect();
        if !own.is_empty() {
            eprintln!("{}", render_all(&own, &shadow_sources));
        }
        if shadow.snapshot.is_none() {
            eprintln!("error: the shadow policies would not compile once promoted");
            return Ok(None);
        }
    }
    Ok(Some((config, compiled)))
}

pub(crate) fn run(paths: &[PathBuf], deny_warnings: bool) -> anyhow::Result<u8> {
    let Some((_, compiled)) = load_and_compile(paths)? else {
        return Ok(EXIT_ERRORS);
    };
    let warnings = compiled
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    match &compiled.snapshot {
        Some(snapshot) if !(deny_warnings && warnings > 0) => {
            println!("{}", summary(snapshot, warnings));
            Ok(EXIT_OK)
        }
        _ => Ok(EXIT_ERRORS),
    }
}

fn summary(snapshot: &Snapshot, warnings: usize) -> String {
    let mut text = format!(
        "ok: {}, {}, {}; snapshot {}",
        counted(snapshot.providers.len(), "provider"),
        counted(snapshot.routes.len(), "route"),
        counted(snapshot.budgets.len(), "budget"),
        &snapshot.hash[..12.min(snapshot.hash.len())],
    );
    if warnings > 0 {
        text.push_str(&format!(" ({})", counted(warnings, "warning")));
    }
    text
}

fn counted(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}
