//! Parser and formatter tests: golden renderings of syntax errors, the examples of
//! docs/language.md read and formatted back, formatter goldens with comments, and properties
//! over generated trees (format → parse is the identity; format is idempotent).

#[path = "parse/strategy.rs"]
mod strategy;

use proptest::prelude::*;
use switchyard_dsl::ast::*;
use switchyard_dsl::fmt::{format, format_source};
use switchyard_dsl::{Source, SourceId, parse, render_all};

const LANGUAGE_DOC: &str = include_str!("../../docs/language.md");

/// Parses `text` that must be valid, or fails with the rendered errors.
fn parsed(text: &str) -> PolicyFile {
    let src = Source::new("policy.sy", text);
    match parse(SourceId(0), &src) {
        Ok(file) => file,
        Err(diags) => panic!("does not parse:\n{}", render_all(&diags, &[src])),
    }
}

/// The rendered syntax errors of `text`, which must not parse.
fn errors(text: &str) -> String {
    let src = Source::new("policy.sy", text);
    match parse(SourceId(0), &src) {
        Ok(file) => panic!("parses, but should not: {file:#?}"),
        Err(diags) => render_all(&diags, &[src]),
    }
}

fn formatted(text: &str) -> String {
    match format_source(SourceId(0), &Source::new("policy.sy", text)) {
        Ok(out) => out,
        Err(diags) => panic!("does not parse:\n{}", render_all(&diags, &[])),
    }
}

/// format is a fixed point after one pass and keeps the tree and the comments.
fn assert_round_trip(text: &str) {
    let once = formatted(text);
    assert_eq!(
        parsed(&once),
        parsed(text),
        "formatting changed the tree:\n{once}"
    );
    assert_eq!(formatted(&once), once, "formatting is not idempotent");
}

// ---------------------------------------------------------------------------------------------
// Syntax errors, rendered

#[test]
fn missing_closing_brace() {
    insta::assert_snapshot!(errors(
        "route a {\n  use openai/gpt-4o\n\nroute b {\n  use x/y\n}\n"
    ));
}

#[test]
fn missing_brace_of_a_split() {
    insta::assert_snapshot!(errors(
        "route a {\n  split {\n    90% openai/gpt-4o\n    10% deepseek/deepseek-chat\n}\n"
    ));
}

#[test]
fn missing_brace_with_a_one_line_split() {
    let out = errors("route a {\n  split { 90% a/b, 10% c/d }\n  retry 2\n\nroute b {\n}\n");
    assert!(out.starts_with("error: `route` block is missing its closing `}`\n --> policy.sy:1:9"));
}

#[test]
fn unknown_statement_keyword() {
    insta::assert_snapshot!(errors("route a {\n  usee openai/gpt-4o\n}\n"));
}

#[test]
fn unknown_budget_statement() {
    insta::assert_snapshot!(errors(
        "budget b {\n  for all\n  limits 5 requests per day\n}\n"
    ));
}

#[test]
fn missing_target_after_use() {
    insta::assert_snapshot!(errors("route a {\n  use\n  retry 2\n}\n"));
}

#[test]
fn missing_model_after_slash() {
    insta::assert_snapshot!(errors("route a {\n  use openai/\n}\n"));
}

#[test]
fn bad_string_escape() {
    insta::assert_snapshot!(errors(
        "route a {\n  when header(\"x\\team\") == \"a\"\n  use x/y\n}\n"
    ));
}

#[test]
fn unterminated_string() {
    insta::assert_snapshot!(errors(
        "route a {\n  when model == \"gpt-4o\n  use x/y\n}\n"
    ));
}

#[test]
fn garbage_in_condition() {
    insta::assert_snapshot!(errors(
        "route a {\n  when model == \"x\" && team == \"y\"\n  use x/y\n}\n"
    ));
}

#[test]
fn single_equals_in_condition() {
    insta::assert_snapshot!(errors("route a {\n  when model = \"x\"\n  use x/y\n}\n"));
}

#[test]
fn missing_condition() {
    insta::assert_snapshot!(errors("route a {\n  when\n  use x/y\n}\n"));
}

#[test]
fn missing_value_in_comparison() {
    insta::assert_snapshot!(errors("route a {\n  when prompt_tokens <\n  use x/y\n}\n"));
}

#[test]
fn errors_in_two_blocks_are_both_reported() {
    insta::assert_snapshot!(errors(
        "route a {\n  cheapest openai/gpt-4o, x/y\n}\n\nbudget b {\n  for team support\n  limit 5 requests per day\n}\n"
    ));
}

#[test]
fn errors_in_one_block_are_all_reported() {
    insta::assert_snapshot!(errors(
        "route a {\n  use x/y\n  failover to a/b\n    when overloaded or\n  retry 2 backoff 100ms...2s\n  timeout total 60s first_token 5s\n  cache 10m\n}\n"
    ));
}

#[test]
fn unfinished_latency_trigger() {
    insta::assert_snapshot!(errors(
        "route a {\n  use x/y\n  failover to a/b when p95(ttft) > 2s\n}\n"
    ));
}

#[test]
fn top_level_junk() {
    insta::assert_snapshot!(errors("rout a {\n  use x/y\n}\nroute b {\n  use x/y\n}\n"));
}

#[test]
fn stray_closing_brace() {
    insta::assert_snapshot!(errors("route a {\n  use x/y\n}\n}\n"));
}

#[test]
fn missing_route_name() {
    insta::assert_snapshot!(errors("route {\n  use x/y\n}\n"));
}

#[test]
fn bad_budget_actions() {
    insta::assert_snapshot!(errors(
        "budget b {\n  for all\n  on exhausted drop\n  on slowdown cut\n  warn 80%\n}\n"
    ));
}

#[test]
fn carets_count_characters_not_bytes() {
    insta::assert_snapshot!(errors("route a {\n  when team == \"équipe\" && ok\n}\n"));
}

#[test]
fn error_in_a_yaml_block_scalar_points_into_the_file() {
    let mut src = Source::new(
        "policies/support.yaml",
        "route a {\n  usee openai/gpt-4o\n}\n",
    );
    src.line_offset = 9;
    src.column_offset = 4;
    let diags = parse(SourceId(0), &src).expect_err("should not parse");
    insta::assert_snapshot!(render_all(&diags, &[src]));
}

// ---------------------------------------------------------------------------------------------
// What the parser produces

#[test]
fn quantities_keep_their_text() {
    let file = parsed(
        "route a {\n  retry 2 backoff 100ms..2s\n  failover to a/b when status in [429, 5xx, 500..599]\n  hedge after p99.9(ttft)\n}\nbudget b {\n  for all\n  limit 2M tokens per minute, $0.50 per day\n}\n",
    );
    let q = |value: &str, unit: &str| Quantity {
        value: value.into(),
        unit: unit.into(),
        span: Span::default(),
    };
    let Item::Route(route) = &file.items[0] else {
        panic!("not a route")
    };
    let kinds: Vec<&RouteStmtKind> = route.stmts.iter().map(|s| &s.kind).collect();
    assert_eq!(
        kinds[0],
        &RouteStmtKind::Retry {
            count: q("2", ""),
            backoff: Some((q("100", "ms"), q("2", "s")))
        }
    );
    let RouteStmtKind::Failover { triggers, .. } = kinds[1] else {
        panic!("not a failover")
    };
    let ident = |name: &str| Ident {
        name: name.into(),
        span: Span::default(),
    };
    assert_eq!(
        triggers[0].kind,
        TriggerKind::Status(vec![
            StatusPattern::Code(q("429", "")),
            StatusPattern::Class(ident("5xx")),
            StatusPattern::Range(q("500", ""), q("599", "")),
        ])
    );
    let RouteStmtKind::Hedge(HedgeAfter::Percentile(p)) = kinds[2] else {
        panic!("not a hedge")
    };
    assert_eq!(p.percentile.name, "p99.9");
    let Item::Budget(budget) = &file.items[1] else {
        panic!("not a budget")
    };
    let BudgetStmtKind::Limit(limits) = &budget.stmts[1].kind else {
        panic!("not a limit")
    };
    assert_eq!(limits[0].amount, q("2", "M"));
    assert_eq!(limits[1].amount, q("0.50", "$"));
    assert_eq!(limits[1].metric, None);
}

#[test]
fn spans_cover_the_words_without_trailing_comments() {
    let text = "route a {\n  when model == \"x\"   # why\n  use together/\"m/n\"\n}\n";
    let file = parsed(text);
    let Item::Route(route) = &file.items[0] else {
        panic!("not a route")
    };
    let at = |s: Span| &text[s.range()];
    assert_eq!(at(route.name.span), "a");
    assert_eq!(at(route.stmts[0].span), "when model == \"x\"");
    let RouteStmtKind::Use(t) = &route.stmts[1].kind else {
        panic!("not a use")
    };
    assert_eq!(
        (at(t.span), at(t.model_span), t.model.as_str()),
        ("together/\"m/n\"", "\"m/n\"", "m/n")
    );
    assert_eq!(at(route.span), &text[..text.len() - 1]);
    assert_eq!(file.comments[0].text, " why");
}

#[test]
fn precedence_not_then_and_then_or() {
    let file = parsed("route a {\n  when not a and b or c\n}\n");
    let Item::Route(route) = &file.items[0] else {
        panic!("not a route")
    };
    let RouteStmtKind::When(e) = &route.stmts[0].kind else {
        panic!("not a when")
    };
    let ExprKind::Or(ors) = &e.kind else {
        panic!("not an or: {e:?}")
    };
    let ExprKind::And(ands) = &ors[0].kind else {
        panic!("not an and")
    };
    assert!(matches!(ands[0].kind, ExprKind::Not(_)));
}

#[test]
fn empty_and_comment_only_files() {
    assert_eq!(parsed("").items, vec![]);
    assert_eq!(parsed("  # only a comment\n").comments.len(), 1);
    assert_eq!(formatted("# a\n\n\n# b\n"), "# a\n\n# b\n");
}

#[test]
fn crlf_line_ends_and_a_byte_order_mark_are_accepted() {
    let text = "\u{feff}route a {\r\n  use x/y # c\r\n  when model == \"b\"\r\n}\r\n";
    assert_eq!(
        formatted(text),
        "route a {\n  use x/y # c\n  when model == \"b\"\n}\n"
    );
}

// ---------------------------------------------------------------------------------------------
// docs/language.md

/// The first fenced block of the language reference is a complete policy: it parses, and it
/// is already in canonical form.
#[test]
fn language_reference_example_is_canonical() {
    let example = LANGUAGE_DOC
        .split("```\n")
        .nth(1)
        .expect("the reference has an example");
    assert_eq!(parsed(example).items.len(), 4);
    assert_eq!(formatted(example), example);
    assert_round_trip(example);
}

/// Every statement form the reference mentions, inside blocks.
#[test]
fn language_reference_statements_round_trip() {
    let text = r#"route r {
  when model in ["gpt-4o", "gpt-4o-mini"] and not has header("x-debug") or team matches "ml-*"
  when stream == true and (key != "k1" or user == "u") and prompt_tokens >= 4k
  when stream
  use together/"meta-llama/Llama-3-70b"
  split { 90% openai/gpt-4o, 10% deepseek/deepseek-chat }
  cheapest of openai/gpt-4o-mini, deepseek/deepseek-chat
  fastest of openai/gpt-4o, anthropic/claude-sonnet-4 by p90(latency) explore 5%
  failover to anthropic/claude-sonnet-4 when status 503 or status in [429, 5xx, 500..504] or connect_failure or timeout or error_rate > 5% over 30s or p95(ttft) > 2s over 1m min_samples 20
  failover to mistral/mistral-large
  retry 2
  timeout connect 2s, total 60s
  hedge after 800ms
  hedge after p90(ttft)
  cache for 10m
}
budget b {
  for each user in header "x-user-id"
  for key "id"
  for each team
  for route support-chat
  limit 1.5M input_tokens per day, 4k output_tokens per hour, $0.25 per second
  on exhausted reject
  on overrun cut
}
"#;
    assert_round_trip(text);
    insta::assert_snapshot!(formatted(text));
}

// ---------------------------------------------------------------------------------------------
// Formatter goldens

#[test]
fn fmt_layout() {
    insta::assert_snapshot!(formatted(
        "route   a{when (model==\"x\") and ((team==\"t\")) use a/b\nsplit{50% a/b 50% c/d}failover to a/b,c/d when overloaded  or   timeout retry 2 backoff 1s..2s}budget b{for all limit 5 requests per day warn at 50%,90%}"
    ));
}

#[test]
fn fmt_keeps_comments() {
    let text = "# Header, kept apart from the first block.\n\nroute a { # on the brace line\n    # before use\n    use a/b   # after use\n  split { # on the split line\n  # before an arm\n  90% a/b # after an arm\n  10% c/d\n  # after the last arm\n  } # after the split\n  failover to a/b # after the targets\n  # between targets and triggers\n  when status 503 # after the triggers\n  when model == \"x\" # inside a condition\n    or model == \"y\"\n  # trailing the block\n} # after the block\n# before the budget\nbudget b {\nfor all\n}\n# at the end\n";
    let out = formatted(text);
    assert_eq!(parsed(&out).comments, parsed(text).comments);
    assert_round_trip(text);
    insta::assert_snapshot!(out);
}

#[test]
fn fmt_parenthesizes_by_precedence_only() {
    let out =
        formatted("route a {\n  when (a or (b or c)) and not (d and e) and (not f) and ((g))\n}\n");
    assert_eq!(
        out,
        "route a {\n  when (a or (b or c)) and not (d and e) and not f and g\n}\n"
    );
}

#[test]
fn fmt_reescapes_strings() {
    let out = formatted("route a {\n  when header(\"a\\\"b\") == \"c\\\\d\"\n}\n");
    assert_eq!(
        out,
        "route a {\n  when header(\"a\\\"b\") == \"c\\\\d\"\n}\n"
    );
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Printing a tree and reading it back gives the same tree.
    #[test]
    fn format_then_parse_is_identity(file in strategy::policy_file()) {
        let text = format(&file, "");
        let src = Source::new("generated", text.clone());
        match parse(SourceId(0), &src) {
            Ok(back) => prop_assert_eq!(back, file, "text:\n{}", text),
            Err(d) => prop_assert!(false, "{}\n{}", text, render_all(&d, std::slice::from_ref(&src))),
        }
    }

    /// Formatting formatted text changes nothing.
    #[test]
    fn format_is_idempotent(file in strategy::policy_file()) {
        let once = format(&file, "");
        let twice = format_source(SourceId(0), &Source::new("generated", once.clone()));
        prop_assert_eq!(twice.ok(), Some(once));
    }

    /// Comments sprinkled over formatted text survive formatting, in order, and the result is
    /// stable.
    #[test]
    fn comments_survive_formatting(
        file in strategy::policy_file(),
        sprinkle in proptest::collection::vec((any::<bool>(), "[ -~]{0,12}"), 0..40),
    ) {
        let base = format(&file, "");
        let mut text = String::new();
        for (i, line) in base.lines().enumerate() {
            let Some((full_line, comment)) = sprinkle.get(i) else {
                text.push_str(&format!("{line}\n"));
                continue;
            };
            if *full_line {
                text.push_str(&format!("#{comment}\n{line}\n"));
            } else {
                text.push_str(&format!("{line} #{comment}\n"));
            }
        }
        let src = Source::new("sprinkled", text.clone());
        let before = parse(SourceId(0), &src).map_err(|d| render_all(&d, std::slice::from_ref(&src)));
        prop_assert!(before.is_ok(), "{}\n{:?}", text, before.err());
        let once = formatted(&text);
        let after = parsed(&once);
        prop_assert_eq!(Some(&after), before.as_ref().ok(), "text:\n{}\nformatted:\n{}", text, once);
        prop_assert_eq!(formatted(&once), once);
    }
}
