//! Conditions: subjects, operators and value types, built straight into [`ir::Condition`].

use super::Cx;
use super::resolve::did_you_mean;
use crate::ast::{CmpOp, Expr, ExprKind, Span, StrLit, Subject, Value};
use crate::ir::{Condition, NumOp, StringMatch};
use crate::units;

const SUBJECTS: [&str; 7] = [
    "model",
    "key",
    "team",
    "user",
    "prompt_tokens",
    "stream",
    "header",
];

fn subjects_help() -> String {
    "conditions look at `model`, `header(\"name\")`, `has header(\"name\")`, `key`, `team`, `user`, \
     `prompt_tokens` or `stream`"
        .to_string()
}

/// What kind of value a subject is compared with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SubjectType {
    Text,
    Count,
    Bool,
}

/// A resolved subject, with how to build the IR from a string match.
#[derive(Clone)]
enum Subj {
    Model,
    Key,
    Team,
    User,
    Header(String),
    PromptTokens,
    Stream,
}

impl Subj {
    fn ty(&self) -> SubjectType {
        match self {
            Self::PromptTokens => SubjectType::Count,
            Self::Stream => SubjectType::Bool,
            _ => SubjectType::Text,
        }
    }

    fn text(&self, m: StringMatch) -> Condition {
        match self {
            Self::Model => Condition::Model(m),
            Self::Key => Condition::Key(m),
            Self::Team => Condition::Team(m),
            Self::User => Condition::User(m),
            Self::Header(name) => Condition::Header {
                name: name.clone(),
                matches: m,
            },
            Self::PromptTokens | Self::Stream => Condition::Always,
        }
    }
}

fn subject_text(s: &Subject) -> String {
    match s {
        Subject::Word(w) => w.name.clone(),
        Subject::Header(h) => format!("header(\"{}\")", h.value),
    }
}

fn op_text(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "==",
        CmpOp::Ne => "!=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
        CmpOp::Matches => "matches",
        CmpOp::In => "in",
    }
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Str(_) => "a string",
        Value::List(..) => "a list",
        Value::Quantity(_) => "a number",
        Value::Bool(..) => "`true`/`false`",
    }
}

fn value_span(v: &Value) -> Span {
    match v {
        Value::Str(s) => s.span,
        Value::List(_, span) | Value::Bool(_, span) => *span,
        Value::Quantity(q) => q.span,
    }
}

impl Cx<'_> {
    /// Checks a `when` expression; `None` when any part of it was wrong.
    pub(super) fn condition(&mut self, e: &Expr) -> Option<Condition> {
        match &e.kind {
            ExprKind::And(xs) => self.all_of(xs).map(Condition::All),
            ExprKind::Or(xs) => self.all_of(xs).map(Condition::Any),
            ExprKind::Not(x) => self.condition(x).map(|c| Condition::Not(Box::new(c))),
            ExprKind::HasHeader(h) => self.header_name(h).map(Condition::HasHeader),
            ExprKind::Bare(s) => {
                let subj = self.subject(s)?;
                if subj.ty() == SubjectType::Bool {
                    return Some(Condition::Stream(true));
                }
                let name = subject_text(s);
                let help = match subj {
                    Subj::Header(_) => format!(
                        "compare it, e.g. `{name} == \"value\"`, or test presence with `has {name}`"
                    ),
                    Subj::PromptTokens => format!("compare it with a count, e.g. `{name} < 4k`"),
                    _ => format!(
                        "compare it, e.g. `{name} == \"value\"` or `{name} in [\"a\", \"b\"]`"
                    ),
                };
                self.error(
                    e.span,
                    format!("`{name}` is not a condition on its own"),
                    "not true or false",
                    help,
                );
                None
            }
            ExprKind::Compare {
                subject,
                op,
                op_span,
                value,
            } => self.compare(subject, *op, *op_span, value),
        }
    }

    /// Checks every operand (reporting all problems) and keeps them only if all are valid.
    fn all_of(&mut self, xs: &[Expr]) -> Option<Vec<Condition>> {
        let checked: Vec<Option<Condition>> = xs.iter().map(|x| self.condition(x)).collect();
        checked.into_iter().collect()
    }

    pub(super) fn header_name(&mut self, h: &StrLit) -> Option<String> {
        if h.value.is_empty() {
            self.error(
                h.span,
                "empty header name".into(),
                "no name",
                "write the header's name, e.g. `header(\"x-team\")`",
            );
            return None;
        }
        Some(h.value.to_ascii_lowercase())
    }

    fn subject(&mut self, s: &Subject) -> Option<Subj> {
        let word = match s {
            Subject::Header(h) => return self.header_name(h).map(Subj::Header),
            Subject::Word(w) => w,
        };
        Some(match word.name.as_str() {
            "model" => Subj::Model,
            "key" => Subj::Key,
            "team" => Subj::Team,
            "user" => Subj::User,
            "prompt_tokens" => Subj::PromptTokens,
            "stream" => Subj::Stream,
            other => {
                let help = format!("{}{}", did_you_mean(other, SUBJECTS), subjects_help());
                self.error(
                    word.span,
                    format!("unknown condition subject `{other}`"),
                    "not a request property",
                    help,
                );
                return None;
            }
        })
    }

    fn compare(
        &mut self,
        subject: &Subject,
        op: CmpOp,
        op_span: Span,
        value: &Value,
    ) -> Option<Condition> {
        let subj = self.subject(subject)?;
        let name = subject_text(subject);
        let ops_help = match subj.ty() {
            SubjectType::Text => {
                format!("`{name}` is text: use `==`, `!=`, `in [..]` or `matches \"glob\"`")
            }
            SubjectType::Count => format!(
                "`{name}` is a count: use `<`, `<=`, `>`, `>=`, `==` or `!=` with a number like `4k`"
            ),
            SubjectType::Bool => {
                "write `stream`, `not stream`, `stream == true` or `stream == false`".to_string()
            }
        };
        let op_ok = match subj.ty() {
            SubjectType::Text => matches!(op, CmpOp::Eq | CmpOp::Ne | CmpOp::In | CmpOp::Matches),
            SubjectType::Count => !matches!(op, CmpOp::In | CmpOp::Matches),
            SubjectType::Bool => matches!(op, CmpOp::Eq | CmpOp::Ne),
        };
        if !op_ok {
            self.error(
                op_span,
                format!("`{name}` cannot be compared with `{}`", op_text(op)),
                "operator not allowed here",
                ops_help,
            );
            return None;
        }
        let cond = match (subj.ty(), op, value) {
            (SubjectType::Text, CmpOp::In, Value::List(items, span)) => {
                if items.is_empty() {
                    self.error(
                        *span,
                        "empty list".into(),
                        "matches nothing",
                        "list at least one value, e.g. `[\"a\", \"b\"]`",
                    );
                    return None;
                }
                subj.text(StringMatch::OneOf(
                    items.iter().map(|s| s.value.clone()).collect(),
                ))
            }
            (SubjectType::Text, CmpOp::Matches, Value::Str(s)) => {
                subj.text(StringMatch::Glob(s.value.clone()))
            }
            (SubjectType::Text, CmpOp::Eq | CmpOp::Ne, Value::Str(s)) => {
                subj.text(StringMatch::Exact(s.value.clone()))
            }
            (SubjectType::Count, _, Value::Quantity(q)) => match units::count(q) {
                Ok(n) => Condition::PromptTokens {
                    op: num_op(op),
                    value: n,
                },
                Err(err) => {
                    self.unit_error(q.span, &err);
                    return None;
                }
            },
            (SubjectType::Bool, _, Value::Bool(b, _)) => Condition::Stream(*b == (op == CmpOp::Eq)),
            _ => {
                let wanted = match (subj.ty(), op) {
                    (SubjectType::Text, CmpOp::In) => "a list of strings",
                    (SubjectType::Text, _) => "a string",
                    (SubjectType::Count, _) => "a count",
                    (SubjectType::Bool, _) => "`true` or `false`",
                };
                self.error(
                    value_span(value),
                    format!(
                        "`{name} {}` needs {wanted}, found {}",
                        op_text(op),
                        value_kind(value)
                    ),
                    "wrong type of value",
                    ops_help,
                );
                return None;
            }
        };
        // `stream != x` is already folded into the boolean; `prompt_tokens != n` keeps `Ne`.
        if op == CmpOp::Ne && subj.ty() == SubjectType::Text {
            return Some(Condition::Not(Box::new(cond)));
        }
        Some(cond)
    }

    /// Reports a typed-literal error at `span`.
    pub(super) fn unit_error(&mut self, span: Span, err: &units::UnitError) {
        self.error(span, err.to_string(), "wrong unit or value", err.help());
    }
}

fn num_op(op: CmpOp) -> NumOp {
    match op {
        CmpOp::Ne => NumOp::Ne,
        CmpOp::Lt => NumOp::Lt,
        CmpOp::Le => NumOp::Le,
        CmpOp::Gt => NumOp::Gt,
        CmpOp::Ge => NumOp::Ge,
        CmpOp::Eq | CmpOp::Matches | CmpOp::In => NumOp::Eq,
    }
}
