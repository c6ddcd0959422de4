//! The typed syntax tree: what the user wrote, with a [`Span`] on every node.
//!
//! The parser is deliberately lenient about *meaning* (any identifier may stand where a unit,
//! subject or error class goes; numbers keep the text the user typed) so that the checker can
//! reject bad input with a precise message and a help line instead of a generic syntax error.
//! The formatter prints this tree back, so nothing the user wrote is lost here except
//! whitespace (comments are kept beside the tree in [`PolicyFile::comments`]).

pub use crate::source::Span;

/// One parsed policy text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyFile {
    pub items: Vec<Item>,
    /// Every `#` comment in source order, so `fmt` can put it back.
    pub comments: Vec<Comment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// Text after the `#`, without the newline.
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Route(RouteDecl),
    Budget(BudgetDecl),
}

/// A name the user chose or a keyword-like word (`ttft`, `minute`, `rate_limited`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A double-quoted string, unescaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrLit {
    pub value: String,
    pub span: Span,
}

/// A number with an optional unit, exactly as written: `2M`, `100ms`, `5%`, `$0.50`, `429`.
/// `value` is the digits (`"0.50"`); `unit` is what followed (`"ms"`, `"%"`, `"M"`), or `"$"`
/// for money, or empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quantity {
    pub value: String,
    pub unit: String,
    pub span: Span,
}

/// `provider/model`. A model containing `/` or other unusual characters is written quoted:
/// `together/"meta-llama/Llama-3-70b"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetRef {
    pub provider: Ident,
    pub model: String,
    pub model_span: Span,
    pub quoted: bool,
    pub span: Span,
}

// ---------------------------------------------------------------------------------------------
// Routes

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteDecl {
    pub name: Ident,
    pub stmts: Vec<RouteStmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteStmt {
    pub kind: RouteStmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteStmtKind {
    /// `when <expr>`
    When(Expr),
    /// `use p/m`
    Use(TargetRef),
    /// `split { 90% a/b, 10% c/d }`
    Split(Vec<SplitArm>),
    /// `cheapest of a/b, c/d`
    Cheapest(Vec<TargetRef>),
    /// `fastest of a/b, c/d [by p90(ttft)] [explore 5%]`
    Fastest {
        targets: Vec<TargetRef>,
        by: Option<LatencyRef>,
        explore: Option<Quantity>,
    },
    /// `failover to a/b, c/d [when <trigger> or <trigger> ...]`
    Failover {
        targets: Vec<TargetRef>,
        triggers: Vec<Trigger>,
    },
    /// `retry 2 [backoff 100ms..2s]`
    Retry {
        count: Quantity,
        backoff: Option<(Quantity, Quantity)>,
    },
    /// `timeout total 60s, first_token 5s, connect 2s`
    Timeout(Vec<(Ident, Quantity)>),
    /// `hedge after 800ms` or `hedge after p90(ttft)`
    Hedge(HedgeAfter),
    /// `cache for 10m`
    Cache(Quantity),
    /// `affinity by header("x-session-id") [for 10m]`
    Affinity {
        by: AffinityBy,
        idle: Option<Quantity>,
    },
}

/// What identifies a session in `affinity by ...`, as written: a word (`key`, `user`) or a
/// call with one argument (`header("x")`, `body("field")`, `prefix(2k)`). The checker
/// validates the word and the argument's kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AffinityBy {
    pub name: Ident,
    pub arg: Option<AffinityArg>,
    pub span: Span,
}

/// The argument of `header(..)`, `body(..)` or `prefix(..)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AffinityArg {
    Str(StrLit),
    Quantity(Quantity),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitArm {
    pub weight: Quantity,
    pub target: TargetRef,
    pub span: Span,
}

/// `p95(ttft)`: a percentile (the ident, e.g. `p95`, `p99.9`) of a metric (`ttft` or `latency`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyRef {
    pub percentile: Ident,
    pub metric: Ident,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HedgeAfter {
    Fixed(Quantity),
    Percentile(LatencyRef),
}

/// A boolean condition over the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExprKind {
    /// Two or more operands joined by `and`.
    And(Vec<Expr>),
    /// Two or more operands joined by `or`.
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// `subject op value`, e.g. `model == "gpt-4o"`, `prompt_tokens < 4k`,
    /// `model matches "gpt-4*"`, `team in ["a", "b"]`.
    Compare {
        subject: Subject,
        op: CmpOp,
        op_span: Span,
        value: Value,
    },
    /// A subject on its own, e.g. `stream`; only boolean subjects are valid here.
    Bare(Subject),
    /// `has header("x-team")`
    HasHeader(StrLit),
}

/// What a condition looks at: a plain word (`model`, `team`, `key`, `user`, `prompt_tokens`,
/// `stream`; validated by the checker) or `header("name")`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Word(Ident),
    Header(StrLit),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Matches,
    In,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Str(StrLit),
    List(Vec<StrLit>, Span),
    Quantity(Quantity),
    /// `true` / `false`
    Bool(bool, Span),
}

/// One reason to leave a target and try the next candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    pub kind: TriggerKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TriggerKind {
    /// `status in [429, 5xx, 500..504]` or `status 503`
    Status(Vec<StatusPattern>),
    /// An error class word: `rate_limited`, `overloaded`, `timeout`, `connect_failure`, ...
    Error(Ident),
    /// `error_rate > 5% over 30s`
    ErrorRate {
        threshold: Quantity,
        window: Quantity,
    },
    /// `p95(ttft) > 2s over 1m [min_samples 20]`
    Latency {
        metric: LatencyRef,
        threshold: Quantity,
        window: Quantity,
        min_samples: Option<Quantity>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusPattern {
    /// `429`
    Code(Quantity),
    /// `5xx` (the ident as written)
    Class(Ident),
    /// `500..504`
    Range(Quantity, Quantity),
}

// ---------------------------------------------------------------------------------------------
// Budgets

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetDecl {
    pub name: Ident,
    pub stmts: Vec<BudgetStmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetStmt {
    pub kind: BudgetStmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BudgetStmtKind {
    /// `for team "support"`, `for each key`, `for each user in header "x-user"`, `for route chat`,
    /// `for all`
    For(Scope),
    /// `limit 2M tokens per minute, 600 requests per minute, $500 per month`
    Limit(Vec<Limit>),
    /// `warn at 80%, 95%`
    Warn(Vec<Quantity>),
    /// `on exhausted reject` / `on exhausted downgrade to p/m`
    OnExhausted(Exhausted),
    /// `on overrun finish` / `on overrun cut`: what a stream does when its running usage passes
    /// what the budget has left.
    OnOverrun(Ident),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// `each` was written.
    pub each: bool,
    /// `key`, `team`, `user`, `route`, `all`
    pub subject: Ident,
    /// The named key/team/user (string) or route (identifier, kept as a string literal with
    /// its span).
    pub value: Option<StrLit>,
    /// `for each user in header "x-user-id"`
    pub header: Option<StrLit>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    /// `2M`, `600`, `$500`
    pub amount: Quantity,
    /// `tokens`, `input_tokens`, `output_tokens`, `requests`; `None` for money.
    pub metric: Option<Ident>,
    /// `second`, `minute`, `hour`, `day`, `month`
    pub window: Ident,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exhausted {
    Reject(Span),
    Downgrade(TargetRef),
}
