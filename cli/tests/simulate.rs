//! `switchyard simulate` on a generated access log whose answers are known: shares, costs,
//! budget exhaustion times, and the diff against the policy in force.
//!
//! The log: 2,000 `chat` requests, one every 9 s from 2026-12-01T00:00:00Z (5 hours), each
//! with 1,000 input and 200 output tokens; even ones from team `support`, odd ones from
//! `sales`, with the `x-team` header recorded hashed as the proxy records it; then 10 requests
//! for an unknown model and a few lines that are not decision records. The new policy sends
//! support to a 50/50 split under a 100-requests-per-hour budget; the old one sends all chat
//! to `p/big`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const FIXTURES: &str = "cli/tests/fixtures/simulate";
/// Micro-dollars of one request (1,000 in, 200 out) on each model.
const BIG: u64 = 1_000 * 2 + 200 * 10;
const SMALL: u64 = 1_000 / 2 + 200;

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

fn timestamp(secs: u64) -> String {
    format!(
        "2026-12-01T{:02}:{:02}:{:02}.000000Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn record(secs: u64, model: &str, team: &str) -> String {
    let hashed = switchyard_dsl::headers::hashed(team);
    format!(
        r#"{{"timestamp":"{}","level":"INFO","fields":{{"message":"request","record":1,"method":"POST","path":"/v1/chat/completions","endpoint":"chat","requested_model":"{model}","key":"app-1","team":"{team}","prompt_tokens":990,"headers":{{"x-team":"{hashed}"}},"route":"chat","provider":"p","model":"big","status":200,"attempts":1,"stream":false,"stream_error":false,"duration_ms":812.5,"input_tokens":1000,"output_tokens":200}},"target":"switchyard::access"}}"#,
        timestamp(secs)
    )
}

fn write_log(dir: &Path) -> PathBuf {
    let mut log = String::new();
    let _ = writeln!(
        log,
        r#"{{"timestamp":"2026-12-01T00:00:00.000000Z","level":"INFO","fields":{{"message":"listening"}},"target":"switchyard_proxy::server"}}"#
    );
    for i in 0..2000u64 {
        let team = if i % 2 == 0 { "support" } else { "sales" };
        let _ = writeln!(log, "{}", record(i * 9, "chat", team));
    }
    for _ in 0..10 {
        let _ = writeln!(log, "{}", record(1999 * 9, "gone", "sales"));
    }
    log.push_str("not json\n\n");
    let path = dir.join("access.log");
    std::fs::write(&path, log).expect("log written");
    path
}

fn simulate(extra: &[&str]) -> (Value, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path());
    let log = log.to_str().expect("utf-8 path");
    let new = format!("{FIXTURES}/new");
    let mut args = vec!["simulate", &new, "--traffic", log];
    args.extend_from_slice(extra);
    let out = switchyard(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if extra.contains(&"json") {
        let v = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        (v, stderr)
    } else {
        (Value::String(stdout), stderr)
    }
}

fn row<'a>(v: &'a Value, route: &str, target: &str) -> &'a Value {
    v["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .find(|r| r["route"] == route && r["target"] == target)
        .unwrap_or_else(|| panic!("no row {route} {target} in {v:#}"))
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn shares_costs_and_budget_exhaustion_match_the_generated_traffic() {
    let old = format!("{FIXTURES}/old");
    let (v, stderr) = simulate(&["--output", "json", "--against", &old]);
    assert!(stderr.contains("1 malformed line(s) skipped"), "{stderr}");
    assert_eq!(v["records"], 2010);
    assert_eq!(v["skipped_lines"], 1);
    assert_eq!(v["from"], "2026-12-01T00:00:00Z");
    assert_eq!(v["to"], "2026-12-01T04:59:51Z");

    // Sales always take `chat`; support: 100 served per hour, the rest refused.
    let sales = row(&v, "chat", "p/big");
    assert_eq!(sales["requests"], 1000);
    assert_eq!(count(&sales["input_tokens"]), 1000 * 1000);
    let big = count(&row(&v, "support", "p/big")["requests"]);
    let small = count(&row(&v, "support", "p/small")["requests"]);
    assert_eq!(big + small, 500);
    assert!(
        big.abs_diff(250) <= 5,
        "a 50/50 split sent {big} of 500 to p/big"
    );
    assert_eq!(v["not_found"], 10);
    assert_eq!(v["rejected"][0]["budget"], "support-hourly");
    assert_eq!(v["rejected"][0]["requests"], 500);

    let cost = (1000 + big) * BIG + small * SMALL;
    let approx = |x: &Value, want: f64| {
        let got = x.as_f64().expect("a number");
        assert!((got - want).abs() < 1e-6, "{got} != {want}");
    };
    approx(&v["cost_usd"], cost as f64 / 1e6);
    let days = (1999.0 * 9.0) / 86_400.0;
    approx(&v["cost_per_day_usd"], cost as f64 / 1e6 / days);

    // The 100th support request of the first hour, number 198 of the log at 198 × 9 s.
    let budget = &v["budgets"][0];
    assert_eq!(budget["budget"], "support-hourly");
    assert_eq!(budget["scope"], "support");
    assert_eq!(budget["limit"], "100 requests per hour");
    assert_eq!(budget["first_exhausted_at"], "2026-12-01T00:29:42Z");
    assert_eq!(budget["windows_exhausted"], 5);
    assert_eq!(budget["rejected"], 500);

    // Against the old policy: every support request changes, nothing else does.
    let diff = &v["diff"];
    assert_eq!(diff["changed"], 1000);
    assert_eq!(diff["new_not_found"], 0);
    let old_cost = 2000 * BIG;
    approx(&diff["old_cost_usd"], old_cost as f64 / 1e6);
    approx(
        &diff["cost_delta_per_day_usd"],
        (cost as f64 - old_cost as f64) / 1e6 / days,
    );
    let moves = diff["moves"].as_array().expect("moves");
    let moved = |to: &str| {
        moves
            .iter()
            .find(|m| m["from"] == "chat → p/big" && m["to"] == to)
            .map_or(0, |m| count(&m["requests"]))
    };
    assert_eq!(moved("429 budget support-hourly"), 500);
    assert_eq!(moved("support → p/big"), big);
    assert_eq!(moved("support → p/small"), small);
}

#[test]
fn a_policy_replayed_against_itself_changes_nothing() {
    let new = format!("{FIXTURES}/new");
    let (v, _) = simulate(&["--output", "json", "--against", &new]);
    assert_eq!(v["diff"]["changed"], 0, "{v:#}");
    assert_eq!(v["diff"]["moves"], Value::Array(Vec::new()));
}

#[test]
fn the_table_names_routes_targets_budgets_and_the_diff() {
    let old = format!("{FIXTURES}/old");
    let (v, _) = simulate(&["--against", &old]);
    let table = v.as_str().expect("text");
    for needle in [
        "replayed 2010 requests",
        "(no route: 404)",
        "(429: budget support-hourly)",
        "budgets that would be exhausted:",
        "2026-12-01T00:29:42Z",
        "1000 requests change route or target (49.8%); 0 new 404s",
    ] {
        assert!(table.contains(needle), "no `{needle}` in:\n{table}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.trim_start().starts_with("support ") && l.contains("p/small")),
        "no support → p/small row in:\n{table}"
    );
}
