//! pest errors → [`Diagnostic`]s in words a policy author knows.
//!
//! pest reports the furthest position it reached and the rules it tried there. Rule names mean
//! nothing to users, so each is mapped to a [`Want`] ("a target like `openai/gpt-4o`"), the
//! wants are listed in the message, and the most specific one chooses the help line. When the
//! statement is clearly unfinished at the end of a line, the caret goes right after the last
//! word instead of on the next line.

use pest::error::{Error, ErrorVariant, InputLocation};

use super::BlockKind;
use super::grammar::Rule;
use crate::diagnostic::{Diagnostic, SourceId};
use crate::source::Span;

/// Where the failed parse was.
#[derive(Debug)]
pub(super) struct Context<'t> {
    pub kind: BlockKind,
    /// The first word of the statement being parsed; `None` for a block header.
    pub stmt: Option<&'t str>,
    /// Where the text given to pest ended.
    pub limit: usize,
    /// Byte offset of the block's closing `}`, if it has one.
    pub closed: Option<usize>,
}

/// What the parser expected, from most to least specific (the order of the message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Want {
    RouteStmt,
    BudgetStmt,
    Name,
    Target,
    Model,
    Arm,
    Condition,
    CmpOp,
    Value,
    Trigger,
    Status,
    Latency,
    LatencyMetric,
    TimeoutItem,
    Scope,
    Limit,
    Metric,
    Window,
    Overrun,
    Str,
    Number,
    Token(&'static str),
    NextStmt,
    End,
}

const ROUTE_KEYWORDS: &[&str] = &[
    "when", "use", "split", "cheapest", "fastest", "failover", "retry", "timeout", "hedge", "cache",
];
const BUDGET_KEYWORDS: &[&str] = &["for", "limit", "warn", "on"];

fn want(rule: Rule) -> Option<Want> {
    use Rule::*;
    use Want::*;
    Some(match rule {
        route_stmt => RouteStmt,
        budget_stmt => BudgetStmt,
        next_route_stmt | next_budget_stmt => NextStmt,
        EOI => End,
        name => Name,
        target | provider => Target,
        model => Model,
        split_arm => Arm,
        condition | or_expr | and_expr | not_expr | paren_expr | has_header | comparison | bare
        | subject | header_subject | subject_word => Condition,
        cmp_op => CmpOp,
        value | list | bool => Value,
        trigger | status_trigger | error_rate_trigger | latency_trigger | error_class => Trigger,
        status_list | status_class | status_range | status_code => Status,
        latency_ref | percentile => Latency,
        latency_metric => LatencyMetric,
        timeout_item | timeout_kind => TimeoutItem,
        scope | scope_subject => Scope,
        limit => Limit,
        metric => Metric,
        window => Window,
        overrun_action => Overrun,
        string | string_inner => Str,
        quantity | money | number => Number,
        lbrace => Token("`{`"),
        rbrace => Token("`}`"),
        lparen => Token("`(`"),
        rparen => Token("`)`"),
        lbracket => Token("`[`"),
        rbracket => Token("`]`"),
        comma => Token("`,`"),
        dots => Token("`..`"),
        gt => Token("`>`"),
        slash => Token("`/`"),
        kw_route => Token("`route`"),
        kw_budget => Token("`budget`"),
        kw_of => Token("`of`"),
        kw_by => Token("`by`"),
        kw_explore => Token("`explore`"),
        kw_to => Token("`to`"),
        kw_backoff => Token("`backoff`"),
        kw_after => Token("`after`"),
        kw_for => Token("`for`"),
        kw_and => Token("`and`"),
        kw_or => Token("`or`"),
        kw_when => Token("`when`"),
        kw_header => Token("`header`"),
        kw_in => Token("`in`"),
        kw_over => Token("`over`"),
        kw_min_samples => Token("`min_samples`"),
        kw_per => Token("`per`"),
        kw_at => Token("`at`"),
        kw_exhausted => Token("`exhausted`"),
        kw_overrun => Token("`overrun`"),
        kw_reject => Token("`reject`"),
        kw_downgrade => Token("`downgrade`"),
        _ => return None,
    })
}

impl Want {
    fn describe(self, cx: &Context<'_>) -> &'static str {
        match self {
            Want::RouteStmt => "a route statement",
            Want::BudgetStmt => "a budget statement",
            Want::Name if cx.stmt.is_none() && cx.kind == BlockKind::Budget => {
                "a budget name like `team-support`"
            }
            Want::Name => "a route name like `support-chat`",
            Want::Target => "a target like `openai/gpt-4o`",
            Want::Model => "a model name after the `/`",
            Want::Arm => "a split arm like `90% openai/gpt-4o`",
            Want::Condition => "a condition like `model == \"gpt-4o\"`",
            Want::CmpOp => "a comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `matches`)",
            Want::Value => "a value",
            Want::Trigger => "a failover trigger",
            Want::Status => "a status code like `503`, `5xx` or `500..504`",
            Want::Latency => "a percentile like `p95(ttft)`",
            Want::LatencyMetric => "`ttft` or `latency`",
            Want::TimeoutItem => "a timeout like `total 60s`",
            Want::Scope => "a scope",
            Want::Limit => "a limit like `2M tokens per minute`",
            Want::Metric => "a metric",
            Want::Window => "a window (`second`, `minute`, `hour`, `day`, `month`)",
            Want::Overrun => "`finish` or `cut`",
            Want::Str => "a string in double quotes",
            Want::Number => "a number",
            Want::Token(t) => t,
            Want::NextStmt => "a new statement",
            Want::End if cx.closed.is_some() || cx.stmt.is_none() => "`}`",
            Want::End => "the end of the block",
        }
    }

    /// A help line specific to this want, if it has one.
    fn help(self) -> Option<&'static str> {
        Some(match self {
            Want::Name => "names use letters, digits, `_` and `-`, and start with a letter",
            Want::Target | Want::Model => {
                "write a target as `provider/model`; quote a model with other characters: \
                 `together/\"meta-llama/Llama-3-70b\"`"
            }
            Want::Arm => "each arm of a split is a weight and a target: `90% openai/gpt-4o`",
            Want::Condition => {
                "a condition compares a subject with a value (`model == \"gpt-4o\"`, \
                 `prompt_tokens < 4k`) and joins conditions with `and`, `or`, `not` and parentheses"
            }
            Want::CmpOp => {
                "compare with `==`, `!=`, `<`, `<=`, `>`, `>=`, `in [\"a\", \"b\"]` or \
                 `matches \"glob*\"`"
            }
            Want::Value => {
                "compare with a string (`\"gpt-4o\"`), a list of strings (`[\"a\", \"b\"]`), a \
                 number (`4k`), or `true` / `false`"
            }
            Want::Trigger => {
                "triggers are `status 503`, `status in [429, 5xx]`, an error class such as \
                 `timeout` or `overloaded`, `error_rate > 5% over 30s` or \
                 `p95(ttft) > 2s over 1m`, joined with `or`"
            }
            Want::Status => "a status is a code (`503`), a class (`5xx`) or a range (`500..504`)",
            Want::Latency | Want::LatencyMetric => {
                "a percentile is written `p95(ttft)` (time to first token) or `p99(latency)` \
                 (whole request)"
            }
            Want::TimeoutItem => {
                "timeouts are `total`, `first_token` or `connect` followed by a duration, \
                 separated by commas: `timeout total 60s, first_token 5s`"
            }
            Want::Scope => {
                "scopes are `all`, `key \"id\"`, `team \"name\"`, `user \"name\"`, `each key`, \
                 `each team`, `each user`, `each user in header \"x-user-id\"` or `route NAME`"
            }
            Want::Limit | Want::Metric | Want::Window => {
                "a limit is an amount, a metric and a window: `2M tokens per minute`, \
                 `600 requests per minute`, `$500 per month`"
            }
            Want::Str => "put the text in double quotes, e.g. `\"support\"`",
            Want::Number => {
                "write a number with its unit right after it: `2s`, `500ms`, `5%`, `2M`, `$0.50`"
            }
            _ => return None,
        })
    }
}

/// How a statement is written, keyed by its keyword; the fallback help line.
fn syntax(stmt: &str) -> Option<&'static str> {
    Some(match stmt {
        "when" => "`when CONDITION`, e.g. `when model == \"gpt-4o\" and stream`",
        "use" => "`use PROVIDER/MODEL`, e.g. `use openai/gpt-4o`",
        "split" => "`split { 90% openai/gpt-4o, 10% deepseek/deepseek-chat }`",
        "cheapest" => {
            "`cheapest of TARGET, ...`, e.g. `cheapest of openai/gpt-4o-mini, deepseek/deepseek-chat`"
        }
        "fastest" => "`fastest of TARGET, ... [by p50(ttft)] [explore 5%]`",
        "failover" => "`failover to TARGET, ... [when TRIGGER or TRIGGER ...]`",
        "retry" => "`retry N [backoff MIN..MAX]`, e.g. `retry 2 backoff 100ms..2s`",
        "timeout" => "`timeout total 60s, first_token 5s, connect 2s` (any of them, any order)",
        "hedge" => "`hedge after 800ms` or `hedge after p90(ttft)`",
        "cache" => "`cache for 10m`",
        "for" => "`for all`, `for team \"support\"`, `for each key` or `for route NAME`",
        "limit" => "`limit 2M tokens per minute, $500 per month`",
        "warn" => "`warn at 80%, 95%`",
        "on" => {
            "`on exhausted reject`, `on exhausted downgrade to P/M`, `on overrun finish` or `on overrun cut`"
        }
        _ => return None,
    })
}

/// The token at an error position, for "found ..." and the caret.
#[derive(Debug)]
pub(super) struct Found {
    pub text: String,
    pub span: Span,
}

/// Describes what is at `pos`; `limit` is where the parsed text ended.
pub(super) fn describe_found(text: &str, pos: usize, limit: usize) -> Found {
    let rest = text.get(pos..limit.min(text.len())).unwrap_or_default();
    let Some(c) = rest.chars().next() else {
        return if text[limit.min(text.len())..].starts_with('}') {
            Found {
                text: "`}`".into(),
                span: Span::new(limit, limit + 1),
            }
        } else {
            Found {
                text: "end of input".into(),
                span: Span::new(pos, pos),
            }
        };
    };
    if c == '\n' || c == '\r' {
        return Found {
            text: "end of line".into(),
            span: Span::new(pos, pos),
        };
    }
    if c.is_whitespace() {
        return Found {
            text: "a space".into(),
            span: Span::new(pos, pos + c.len_utf8()),
        };
    }
    let len = if c.is_alphanumeric() || c == '_' {
        rest.find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .unwrap_or(rest.len())
    } else if c == '"' {
        rest[1..]
            .find(['"', '\n'])
            .map_or(rest.len(), |n| n + 2)
            .min(rest.len())
    } else if ["&&", "||", "==", "!=", "<=", ">=", ".."]
        .iter()
        .any(|op| rest.starts_with(op))
    {
        2
    } else {
        c.len_utf8()
    };
    let token = &rest[..len];
    let shown = match token.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &token[..cut]),
        None => token.to_string(),
    };
    Found {
        text: format!("`{shown}`"),
        span: Span::new(pos, pos + len),
    }
}

/// Turns a pest error on the text starting at byte `off` into a diagnostic.
pub(super) fn convert(
    id: SourceId,
    text: &str,
    off: usize,
    err: &Error<Rule>,
    cx: &Context<'_>,
) -> Diagnostic {
    let rel = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let at = off + rel;
    let positives = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => positives,
        ErrorVariant::CustomError { .. } => {
            return Diagnostic::error(id, Span::new(at, at), "this statement is nested too deeply")
                .with_help("split the condition into simpler parts");
        }
    };
    let mut wants: Vec<Want> = positives.iter().filter_map(|&r| want(r)).collect();
    wants.sort();
    wants.dedup();
    if wants.contains(&Want::Model) {
        wants.retain(|w| *w != Want::Str);
    }
    let open_ended = wants
        .iter()
        .any(|w| matches!(w, Want::NextStmt | Want::End));
    // A word starting a line where a statement may start: an unknown statement keyword.
    let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
    let first_on_line = text[line_start..at].trim().is_empty();
    if wants.contains(&Want::NextStmt) && first_on_line && cx.stmt.is_some() {
        wants = vec![match cx.kind {
            BlockKind::Route => Want::RouteStmt,
            BlockKind::Budget => Want::BudgetStmt,
        }];
    }
    let mut found = describe_found(text, at, cx.limit);
    // An unfinished statement at the end of a line: point just after its last word.
    if !open_ended && !wants.is_empty() {
        let code_end = last_code_end(text, off, at);
        if text[code_end..at].contains('\n') {
            found = Found {
                text: "end of line".into(),
                span: Span::new(code_end, code_end),
            };
        }
    }
    let list: Vec<&str> = wants.iter().map(|w| w.describe(cx)).collect();
    let expected = match list.split_last() {
        None => "something else".to_string(),
        Some((last, [])) => last.to_string(),
        Some((last, init)) => format!("{} or {last}", init.join(", ")),
    };
    let message = format!("expected {expected}, found {}", found.text);
    let help = help_for(text, &wants, &found, cx);
    Diagnostic::error(id, found.span, message).with_help(help)
}

/// Chooses the help line: a fix for a familiar mistake, then the most specific want, then the
/// statement's syntax.
fn help_for(text: &str, wants: &[Want], found: &Found, cx: &Context<'_>) -> String {
    let token = text.get(found.span.range()).unwrap_or_default();
    match token {
        "&&" | "&" => return "write `and` instead of `&&`".into(),
        "||" | "|" => return "write `or` instead of `||`".into(),
        "!" => return "write `not` instead of `!`".into(),
        "=" if wants.contains(&Want::CmpOp) => return "use `==` to compare".into(),
        _ => {}
    }
    let comparison = ["==", "!=", "<", "<=", ">", ">=", "in", "matches", "="];
    if cx.stmt == Some("failover") && comparison.contains(&token) {
        return "a `when` right after `failover to ...` lists its triggers; write the route's \
                condition before its selection, or in parentheses: `when (model == \"x\")`"
            .into();
    }
    let keywords = match wants.first() {
        Some(Want::RouteStmt) => Some(ROUTE_KEYWORDS),
        Some(Want::BudgetStmt) => Some(BUDGET_KEYWORDS),
        _ => None,
    };
    if let Some(keywords) = keywords {
        let noun = if keywords == ROUTE_KEYWORDS {
            "route"
        } else {
            "budget"
        };
        let list: Vec<String> = keywords.iter().map(|k| format!("`{k}`")).collect();
        let guess = suggest(token, keywords)
            .map(|s| format!("did you mean `{s}`? "))
            .unwrap_or_default();
        return format!(
            "{guess}a {noun} statement starts with one of {}",
            list.join(", ")
        );
    }
    if let Some(help) = wants.iter().find_map(|w| w.help()) {
        return help.to_string();
    }
    if let Some(syntax) = cx.stmt.and_then(syntax) {
        let extra = if wants.contains(&Want::NextStmt) {
            "; start each statement on its own line"
        } else {
            ""
        };
        return format!("the statement is written {syntax}{extra}");
    }
    match cx.kind {
        BlockKind::Route => "a route block starts `route NAME {`".into(),
        BlockKind::Budget => "a budget block starts `budget NAME {`".into(),
    }
}

/// Byte offset just after the last character of code (not whitespace, not a comment) in
/// `from..to`, or `from` when there is none.
fn last_code_end(text: &str, from: usize, to: usize) -> usize {
    let (mut end, mut in_str, mut in_comment, mut escaped) = (from, false, false, false);
    for (i, c) in text[from..to].char_indices() {
        let i = from + i;
        if in_comment {
            in_comment = c != '\n';
            continue;
        }
        if in_str {
            in_str = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if c == '#' {
            in_comment = true;
            continue;
        } else if c == '"' {
            in_str = true;
        }
        if !c.is_whitespace() {
            end = i + c.len_utf8();
        }
    }
    end
}

/// The candidate closest to `word` (at most two edits away), for "did you mean".
pub(super) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|&(d, c)| d > 0 && d <= 2 && d < c.len().max(2))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A statement pest accepted but the builder could not read: a bug, not a user mistake.
pub(super) fn internal(id: SourceId, pos: usize) -> Diagnostic {
    Diagnostic::error(
        id,
        Span::new(pos, pos),
        "internal error: could not read this statement",
    )
    .with_help("this is a bug in the policy parser; please report it with the policy text")
}
