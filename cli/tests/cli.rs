//! End-to-end tests of the `switchyard` binary: real processes over the repository's examples.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn switchyard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .current_dir(repo())
        .args(args)
        .output()
        .expect("the switchyard binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn examples_pass_the_checker_without_warnings() {
    for dir in ["examples/quickstart", "examples/multi-provider"] {
        let out = switchyard(&["check", "--deny-warnings", dir]);
        assert_eq!(out.status.code(), Some(0), "{dir}: {}", stderr(&out));
        assert!(stdout(&out).starts_with("ok: "), "{}", stdout(&out));
    }
}

#[test]
fn a_broken_policy_reports_every_error_with_its_yaml_position() {
    let out = switchyard(&["check", "tests/fixtures/broken"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for location in [
        "tests/fixtures/broken/routes.yaml:10:7",
        "tests/fixtures/broken/routes.yaml:14:21",
        "tests/fixtures/broken/routes.yaml:18:11",
    ] {
        assert!(err.contains(location), "missing {location} in:\n{err}");
    }
    assert_eq!(err.matches("= help:").count(), 3, "{err}");
    assert!(err.contains("did you mean `openai`?"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn explain_follows_the_split_draw() {
    let base = [
        "explain",
        "examples/quickstart",
        "--model",
        "gpt-4o",
        "--prompt-tokens",
        "1200",
    ];
    let low = switchyard(&[&base[..], &["--draw", "0.1"]].concat());
    assert_eq!(low.status.code(), Some(0), "{}", stderr(&low));
    let low = stdout(&low);
    assert!(low.contains("route: chat"), "{low}");
    assert!(low.contains("  1. mock-primary/mock-large"), "{low}");

    let high = stdout(&switchyard(&[&base[..], &["--draw", "0.95"]].concat()));
    assert!(high.contains("  1. mock-backup/mock-large"), "{high}");
}

#[test]
fn explain_matches_headers_and_prompt_size_and_lists_budgets() {
    let out = switchyard(&[
        "explain",
        "examples/quickstart",
        "--model",
        "gpt-4o",
        "--header",
        "X-Task=summarize",
        "--key",
        "ci-key",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(text.contains("route: summaries"), "{text}");
    assert!(text.contains("per-key"), "{text}");

    let short = stdout(&switchyard(&[
        "explain",
        "examples/quickstart",
        "--model",
        "gpt-4o",
        "--prompt-tokens",
        "50",
    ]));
    assert!(short.contains("route: summaries"), "{short}");
}

#[test]
fn explain_exits_3_when_no_route_matches() {
    let out = switchyard(&["explain", "examples/quickstart", "--model", "llama-9000"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout(&out).contains("no route matches"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn crds_prints_all_three_definitions() {
    let out = switchyard(&["crds"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for name in ["llmproviders", "routepolicies", "budgets"] {
        assert!(
            text.contains(&format!("name: {name}.switchyard.dev")),
            "{name}"
        );
    }
    assert_eq!(text.matches("kind: CustomResourceDefinition").count(), 3);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(switchyard(&["check", "no/such/dir"]).status.code(), Some(2));
    assert_eq!(
        switchyard(&["explain", "examples/quickstart"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        switchyard(&[
            "explain",
            "examples/quickstart",
            "--model",
            "m",
            "--draw",
            "1.5"
        ])
        .status
        .code(),
        Some(2)
    );
}

#[test]
fn bad_yaml_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: switchyard.dev/v1alpha1\nkind: LLMProviderr\nmetadata:\n  name: x\n",
    )
    .expect("write");
    let out = switchyard(&["check", file.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("bad.yaml:2"), "{err}");
    assert!(err.contains("LLMProviderr"), "{err}");
}

#[test]
fn fmt_rewrites_only_policy_text_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["providers.yaml", "routes.yaml", "budgets.yaml"] {
        std::fs::copy(
            repo().join("examples/quickstart").join(name),
            dir.path().join(name),
        )
        .expect("copy example");
    }
    let routes = dir.path().join("routes.yaml");
    let canonical = std::fs::read_to_string(&routes).expect("read");
    let messy = canonical
        .replace(
            "      use mock-primary/mock-small",
            "      use    mock-primary/mock-small",
        )
        .replace(
            "90% mock-primary/mock-large",
            "90%   mock-primary/mock-large",
        );
    assert_ne!(messy, canonical);
    std::fs::write(&routes, &messy).expect("write");
    let path = dir.path().to_str().expect("utf-8 path");

    let check = switchyard(&["fmt", "--check", path]);
    assert_eq!(check.status.code(), Some(1), "{}", stderr(&check));
    assert!(
        stdout(&check).contains("would reformat"),
        "{}",
        stdout(&check)
    );
    assert_eq!(
        std::fs::read_to_string(&routes).expect("read"),
        messy,
        "--check changed the file"
    );

    let fix = switchyard(&["fmt", path]);
    assert_eq!(fix.status.code(), Some(0), "{}", stderr(&fix));
    assert_eq!(std::fs::read_to_string(&routes).expect("read"), canonical);

    let again = switchyard(&["fmt", "--check", path]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}

#[test]
fn examples_are_already_formatted() {
    // Each example folder is its own configuration (they may reuse object names).
    let examples = std::fs::read_dir(repo().join("examples")).expect("examples folder");
    let mut checked = 0;
    for entry in examples {
        let path = entry.expect("folder entry").path();
        if !path.is_dir() {
            continue;
        }
        let path = path.to_str().expect("utf-8 path").to_owned();
        let out = switchyard(&["fmt", "--check", &path]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{path}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} example folders");
}
