//! What the parser expected, in the user's words: grammar rules mapped to [`Want`]s, each
//! with a description for the message and, where one helps, a help line.

use super::BlockKind;
use super::errors::Context;
use super::grammar::Rule;

/// What the parser expected, from most to least specific (the order of the message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Want {
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
    AffinityKey,
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

pub(super) const ROUTE_KEYWORDS: &[&str] = &[
    "when", "use", "split", "cheapest", "fastest", "failover", "retry", "timeout", "hedge",
    "cache", "affinity",
];
pub(super) const BUDGET_KEYWORDS: &[&str] = &["for", "limit", "warn", "on"];

pub(super) fn want(rule: Rule) -> Option<Want> {
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
        affinity_key | affinity_fn | affinity_word => AffinityKey,
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
        kw_affinity => Token("`affinity`"),
        _ => return None,
    })
}

impl Want {
    pub(super) fn describe(self, cx: &Context<'_>) -> &'static str {
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
            Want::AffinityKey => "a session key like `header(\"x-session-id\")`",
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
    pub(super) fn help(self) -> Option<&'static str> {
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
            Want::AffinityKey => {
                "a session is identified by `header(\"NAME\")`, `body(\"FIELD\")`, \
                 `prefix(N)` (the first N tokens of the conversation), `key` or `user`"
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
pub(super) fn syntax(stmt: &str) -> Option<&'static str> {
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
        "affinity" => {
            "`affinity by header(\"x-session-id\") for 10m` (or by `body(\"FIELD\")`, `prefix(N)`, `key`, `user`)"
        }
        "for" => "`for all`, `for team \"support\"`, `for each key` or `for route NAME`",
        "limit" => "`limit 2M tokens per minute, $500 per month`",
        "warn" => "`warn at 80%, 95%`",
        "on" => {
            "`on exhausted reject`, `on exhausted downgrade to P/M`, `on overrun finish` or `on overrun cut`"
        }
        _ => return None,
    })
}
