//! Golden tests of `switchyard test`: the report, the positions of failures and the exit
//! codes, from the real binary over fixture folders and the repository's examples.

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

const FIXTURES: &str = "cli/tests/fixtures/policytest";

#[test]
fn every_example_ships_tests_that_pass() {
    for example in [
        "quickstart",
        "multi-provider",
        "openai-compatible",
        "gitops",
    ] {
        let dir = format!("examples/{example}");
        let out = switchyard(&["test", &dir]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{dir}:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        let report = stdout(&out);
        assert!(report.starts_with("running "), "{report}");
        assert!(report.contains("test result: ok."), "{report}");
        assert!(report.ends_with(" 0 failed\n"), "{report}");
    }
}

#[test]
fn failing_cases_are_reported_at_their_yaml_positions() {
    let out = switchyard(&["test", &format!("{FIXTURES}/failing")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    insta::assert_snapshot!("failing_report", stdout(&out));
}

#[test]
fn a_misspelt_field_in_a_test_is_an_error_at_its_line() {
    let out = switchyard(&["test", &format!("{FIXTURES}/typo")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cli/tests/fixtures/policytest/typo/routes_test.yaml:10:"),
        "{err}"
    );
    assert!(err.contains("unknown field `rout`"), "{err}");
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

#[test]
fn no_tests_is_an_error_and_a_bad_path_a_usage_error() {
    let out = switchyard(&["test", "examples/quickstart/providers.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no `RoutePolicyTest` documents in"),
        "{}",
        stderr(&out)
    );
    let out = switchyard(&["test", "no/such/folder"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = switchyard(&["test"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn policies_that_do_not_compile_fail_before_any_case_runs() {
    let out = switchyard(&[
        "test",
        "tests/fixtures/broken",
        "examples/quickstart/routes_test.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("tests/fixtures/broken/routes.yaml:10:7"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_checker_and_the_proxy_loader_ignore_test_documents() {
    let out = switchyard(&["check", "--deny-warnings", "examples/quickstart"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let config = switchyard_crds::load_paths(&[repo().join("examples/quickstart")])
        .expect("the example loads");
    assert!(!config.tests.is_empty());
    let sources = switchyard_crds::sources(&config);
    assert!(sources.iter().all(|s| !s.file.ends_with("_test.yaml")));
}
