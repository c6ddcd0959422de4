//! proptest strategies for policy trees the language can spell: valid names and targets, any
//! quantity text the lexer reads back the same way, conditions of any shape.
//!
//! Spans are left at their default: span equality is always true, so trees compare by content.

use proptest::prelude::*;
use switchyard_dsl::ast::*;

fn sp() -> Span {
    Span::default()
}

fn ident(name: impl Into<String>) -> Ident {
    Ident {
        name: name.into(),
        span: sp(),
    }
}

fn words(list: &'static [&'static str]) -> impl Strategy<Value = Ident> {
    proptest::sample::select(list).prop_map(ident)
}

/// Any text a string literal can hold (no line breaks), quotes and backslashes included.
fn str_lit() -> impl Strategy<Value = StrLit> {
    "[^\r\n]{0,10}".prop_map(|value| StrLit { value, span: sp() })
}

fn name() -> impl Strategy<Value = Ident> {
    "[a-zA-Z][a-zA-Z0-9_-]{0,10}".prop_map(ident)
}

/// A number with any unit the lexer accepts right after digits, or money.
fn quantity() -> impl Strategy<Value = Quantity> {
    let units = prop_oneof![
        proptest::sample::select(&["", "ms", "s", "m", "h", "d", "k", "M", "%", "$"][..])
            .prop_map(String::from),
        "[a-zA-Z][a-zA-Z0-9_]{0,3}",
    ];
    ("[0-9]{1,4}(\\.[0-9]{1,3})?", units).prop_map(|(value, unit)| Quantity {
        value,
        unit,
        span: sp(),
    })
}

/// A plain number, as in a status code.
fn count() -> impl Strategy<Value = Quantity> {
    "[0-9]{1,3}".prop_map(|value| Quantity {
        value,
        unit: String::new(),
        span: sp(),
    })
}

/// The grammar's `stmt_keyword`s.
const STATEMENT_KEYWORDS: &[&str] = &[
    "when", "use", "split", "cheapest", "fastest", "failover", "retry", "timeout", "hedge",
    "cache", "affinity", "for", "limit", "warn", "on",
];

fn target() -> impl Strategy<Value = TargetRef> {
    let bare = "[a-zA-Z0-9][a-zA-Z0-9._:-]{0,12}".prop_map(|m| (m, false));
    let quoted = "[^\r\n]{0,12}".prop_map(|m| (m, true));
    // A statement keyword is never read as a provider (`cheapest of on/m` is an error).
    let provider = "[a-z0-9][a-z0-9.-]{0,8}".prop_filter("not a statement keyword", |p| {
        !STATEMENT_KEYWORDS.contains(&p.as_str())
    });
    (provider, prop_oneof![bare, quoted]).prop_map(|(provider, (model, quoted))| TargetRef {
        provider: ident(provider),
        model,
        model_span: sp(),
        quoted,
        span: sp(),
    })
}

fn targets() -> impl Strategy<Value = Vec<TargetRef>> {
    proptest::collection::vec(target(), 1..4)
}

fn latency() -> impl Strategy<Value = LatencyRef> {
    ("p[0-9]{2}(\\.[0-9])?", words(&["ttft", "latency"])).prop_map(|(p, metric)| LatencyRef {
        percentile: ident(p),
        metric,
        span: sp(),
    })
}

fn subject() -> impl Strategy<Value = Subject> {
    prop_oneof![
        words(&[
            "model",
            "team",
            "key",
            "user",
            "prompt_tokens",
            "stream",
            "header",
            "x_1"
        ])
        .prop_map(Subject::Word),
        str_lit().prop_map(Subject::Header),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        str_lit().prop_map(Value::Str),
        proptest::collection::vec(str_lit(), 0..3).prop_map(|v| Value::List(v, sp())),
        quantity().prop_map(Value::Quantity),
        any::<bool>().prop_map(|b| Value::Bool(b, sp())),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    use CmpOp::*;
    let op = proptest::sample::select(&[Eq, Ne, Lt, Le, Gt, Ge, Matches, In][..]);
    let leaf = prop_oneof![
        (subject(), op, value()).prop_map(|(subject, op, value)| ExprKind::Compare {
            subject,
            op,
            op_span: sp(),
            value
        }),
        subject().prop_map(ExprKind::Bare),
        str_lit().prop_map(ExprKind::HasHeader),
    ]
    .prop_map(|kind| Expr { kind, span: sp() });
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 2..4).prop_map(ExprKind::And),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(ExprKind::Or),
            inner.prop_map(|e| ExprKind::Not(Box::new(e))),
        ]
        .prop_map(|kind| Expr { kind, span: sp() })
    })
}

fn trigger() -> impl Strategy<Value = Trigger> {
    let pattern = prop_oneof![
        count().prop_map(StatusPattern::Code),
        "[1-5]xx".prop_map(|c| StatusPattern::Class(ident(c))),
        (count(), count()).prop_map(|(a, b)| StatusPattern::Range(a, b)),
    ];
    let kind = prop_oneof![
        proptest::collection::vec(pattern, 0..4).prop_map(TriggerKind::Status),
        words(&[
            "connect_failure",
            "timeout",
            "rate_limited",
            "overloaded",
            "auth",
            "boom"
        ])
        .prop_map(TriggerKind::Error),
        (quantity(), quantity())
            .prop_map(|(threshold, window)| TriggerKind::ErrorRate { threshold, window }),
        (
            latency(),
            quantity(),
            quantity(),
            proptest::option::of(quantity())
        )
            .prop_map(
                |(metric, threshold, window, min_samples)| TriggerKind::Latency {
                    metric,
                    threshold,
                    window,
                    min_samples
                }
            ),
    ];
    kind.prop_map(|kind| Trigger { kind, span: sp() })
}

fn route_stmt() -> impl Strategy<Value = RouteStmt> {
    let arm = (quantity(), target()).prop_map(|(weight, target)| SplitArm {
        weight,
        target,
        span: sp(),
    });
    let timeout_kind = words(&["total", "first_token", "connect", "other"]);
    let kind = prop_oneof![
        expr().prop_map(RouteStmtKind::When),
        target().prop_map(RouteStmtKind::Use),
        proptest::collection::vec(arm, 0..4).prop_map(RouteStmtKind::Split),
        targets().prop_map(RouteStmtKind::Cheapest),
        (
            targets(),
            proptest::option::of(latency()),
            proptest::option::of(quantity())
        )
            .prop_map(|(targets, by, explore)| RouteStmtKind::Fastest {
                targets,
                by,
                explore
            }),
        (targets(), proptest::collection::vec(trigger(), 0..4))
            .prop_map(|(targets, triggers)| RouteStmtKind::Failover { targets, triggers }),
        (quantity(), proptest::option::of((quantity(), quantity())))
            .prop_map(|(count, backoff)| RouteStmtKind::Retry { count, backoff }),
        proptest::collection::vec((timeout_kind, quantity()), 1..4)
            .prop_map(RouteStmtKind::Timeout),
        quantity().prop_map(|q| RouteStmtKind::Hedge(HedgeAfter::Fixed(q))),
        latency().prop_map(|l| RouteStmtKind::Hedge(HedgeAfter::Percentile(l))),
        quantity().prop_map(RouteStmtKind::Cache),
        (
            words(&["header", "body", "prefix", "key", "user", "cookie"]),
            proptest::option::of(prop_oneof![
                str_lit().prop_map(AffinityArg::Str),
                quantity().prop_map(AffinityArg::Quantity),
            ]),
            proptest::option::of(quantity()),
        )
            .prop_map(|(name, arg, idle)| RouteStmtKind::Affinity {
                by: AffinityBy {
                    name,
                    arg,
                    span: sp()
                },
                idle
            }),
    ];
    kind.prop_map(|kind| RouteStmt { kind, span: sp() })
}

fn scope() -> impl Strategy<Value = Scope> {
    let scope = |each, subject, value, header| Scope {
        each,
        subject,
        value,
        header,
        span: sp(),
    };
    prop_oneof![
        (
            words(&["all", "team", "key", "user"]),
            proptest::option::of(str_lit())
        )
            .prop_map(move |(s, v)| scope(false, s, v, None)),
        (
            words(&["team", "key", "user"]),
            proptest::option::of(str_lit())
        )
            .prop_map(move |(s, h)| scope(true, s, None, h)),
        prop_oneof![name().prop_map(|n| n.name), "[^\r\n]{0,10}"].prop_map(move |v| scope(
            false,
            ident("route"),
            Some(StrLit {
                value: v,
                span: sp()
            }),
            None
        )),
    ]
}

fn budget_stmt() -> impl Strategy<Value = BudgetStmt> {
    let limit = (
        quantity(),
        proptest::option::of(words(&[
            "tokens",
            "requests",
            "input_tokens",
            "output_tokens",
        ])),
        words(&["second", "minute", "hour", "day", "month", "week"]),
    )
        .prop_map(|(amount, metric, window)| Limit {
            amount,
            metric,
            window,
            span: sp(),
        });
    let kind = prop_oneof![
        scope().prop_map(BudgetStmtKind::For),
        proptest::collection::vec(limit, 1..4).prop_map(BudgetStmtKind::Limit),
        proptest::collection::vec(quantity(), 1..4).prop_map(BudgetStmtKind::Warn),
        Just(BudgetStmtKind::OnExhausted(Exhausted::Reject(sp()))),
        target().prop_map(|t| BudgetStmtKind::OnExhausted(Exhausted::Downgrade(t))),
        words(&["finish", "cut", "stop"]).prop_map(BudgetStmtKind::OnOverrun),
    ];
    kind.prop_map(|kind| BudgetStmt { kind, span: sp() })
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        (name(), proptest::collection::vec(route_stmt(), 0..6)).prop_map(|(name, stmts)| {
            Item::Route(RouteDecl {
                name,
                stmts,
                span: sp(),
            })
        }),
        (name(), proptest::collection::vec(budget_stmt(), 0..5)).prop_map(|(name, stmts)| {
            Item::Budget(BudgetDecl {
                name,
                stmts,
                span: sp(),
            })
        }),
    ]
}

/// A policy file of up to four blocks, without comments.
pub fn policy_file() -> impl Strategy<Value = PolicyFile> {
    proptest::collection::vec(item(), 0..5).prop_map(|items| PolicyFile {
        items,
        comments: vec![],
    })
}
