//! `switchyard test`: run the `RoutePolicyTest` documents found beside the policies.
//!
//! The policies under the given paths are compiled exactly as `check` does; each case is then
//! decided against the snapshot and its expectations compared. The report imitates `cargo
//! test`: one line per case, the failures with `file:line:column` of the broken expectation,
//! and a summary line `test result: ok. N passed, M failed`. Compile errors, load errors, no
//! test found, or a failing case exit 1.

mod eval;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use switchyard_crds::{Loaded, RoutePolicyTest};
use switchyard_dsl::Snapshot;

use crate::check::load_and_compile;
use crate::{EXIT_ERRORS, EXIT_OK};

pub(crate) fn run(paths: &[PathBuf]) -> anyhow::Result<u8> {
    let Some((config, compiled)) = load_and_compile(paths)? else {
        return Ok(EXIT_ERRORS);
    };
    let Some(snapshot) = &compiled.snapshot else {
        return Ok(EXIT_ERRORS);
    };
    if config.tests.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "error: no `RoutePolicyTest` documents in {}\n  = help: add a `*_test.yaml` file \
             with `kind: RoutePolicyTest` beside the policies",
            shown.join(", ")
        );
        return Ok(EXIT_ERRORS);
    }
    let report = report(snapshot, &config.tests);
    print!("{}", report.text);
    Ok(if report.failed == 0 {
        EXIT_OK
    } else {
        EXIT_ERRORS
    })
}

/// The printed report and its counts.
#[derive(Debug)]
struct Report {
    text: String,
    failed: usize,
}

/// Runs every case of every document and renders the report.
fn report(snapshot: &Snapshot, documents: &[Loaded<RoutePolicyTest>]) -> Report {
    let total: usize = documents.iter().map(|d| d.object.spec.cases.len()).sum();
    let mut text = format!(
        "running {total} test{}\n",
        if total == 1 { "" } else { "s" }
    );
    let mut failures: Vec<(String, String)> = Vec::new();
    for document in documents {
        let mut names = HashSet::new();
        for (i, case) in document.object.spec.cases.iter().enumerate() {
            let title = format!("{}::{}", document.qualified_name(), case.name);
            let outcome = eval::outcome(snapshot, &case.request);
            let mut broken = eval::check(snapshot, case, &outcome);
            if !names.insert(case.name.as_str()) {
                broken.push(eval::Failure {
                    field: "name".into(),
                    message: format!("another case of this document is named `{}`", case.name),
                    help: Some("give each case its own name".into()),
                });
            }
            let verdict = if broken.is_empty() { "ok" } else { "FAILED" };
            let _ = writeln!(text, "test {title} ... {verdict}");
            if broken.is_empty() {
                continue;
            }
            let mut detail = String::new();
            for failure in broken {
                let path = format!("spec.cases[{i}].{}", failure.field);
                let (line, column) = document.origin.position_of(&path);
                let at = match column {
                    Some(c) => format!("{}:{line}:{c}", document.origin.file),
                    None => format!("{}:{line}", document.origin.file),
                };
                let _ = writeln!(detail, "{at}: {}", failure.message);
                if let Some(help) = failure.help {
                    let _ = writeln!(detail, "  = help: {help}");
                }
            }
            failures.push((title, detail));
        }
    }
    if !failures.is_empty() {
        text.push_str("\nfailures:\n");
        for (title, detail) in &failures {
            let _ = write!(text, "\n---- {title} ----\n{detail}");
        }
        text.push_str("\nfailures:\n");
        for (title, _) in &failures {
            let _ = writeln!(text, "    {title}");
        }
    }
    let failed = failures.len();
    let _ = writeln!(
        text,
        "\ntest result: {}. {} passed, {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        total - failed
    );
    Report { text, failed }
}
